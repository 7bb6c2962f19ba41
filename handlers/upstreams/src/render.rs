//! What the upstreams file holds: the endpoints of one service, in one of three formats. Pure
//! text, tested on the host.

use hearsay_sdk::services::Endpoint;

/// The file's format (`FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One `ip:port` per line.
    Lines,
    /// An nginx `upstream SERVICE { server ip:port; ... }` block.
    Nginx,
    /// An HAProxy `backend SERVICE` section of `server NODE ip:port check` lines.
    Haproxy,
}

impl Format {
    /// The format named `name`: `lines`, `nginx` or `haproxy`.
    pub fn parse(name: &str) -> Result<Format, String> {
        match name.trim() {
            "lines" => Ok(Format::Lines),
            "nginx" => Ok(Format::Nginx),
            "haproxy" => Ok(Format::Haproxy),
            other => Err(format!(
                "FORMAT={other:?} is not a format: lines, nginx or haproxy"
            )),
        }
    }
}

/// Checks that `service` can name an nginx upstream or an HAProxy backend as it is: letters,
/// digits, `-`, `_` and `.`.
pub fn check_service(service: &str) -> Result<(), String> {
    if service.is_empty() {
        return Err("SERVICE is empty".into());
    }
    if !service
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "SERVICE={service:?}: a service name here is letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// The placeholder of an nginx upstream no member offers: nginx refuses an empty `upstream`
/// block, so it gets one server marked `down` (requests get 502).
pub const NGINX_PLACEHOLDER: &str = "server 127.0.0.1:1 down;";

/// A node name as an HAProxy server name: characters other than letters, digits, `-`, `_`, `.`
/// and `:` become `_`.
fn haproxy_name(node: &str) -> String {
    let name: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "_".into()
    } else {
        name
    }
}

/// The file's text for `service`'s `endpoints` (sorted by address, as
/// `hearsay_sdk::services::endpoints` gives them). It depends on nothing else, so the same
/// members give the same bytes and an unchanged file is not rewritten.
pub fn render(format: Format, service: &str, endpoints: &[Endpoint]) -> String {
    let mut out = String::new();
    match format {
        Format::Lines => {
            for e in endpoints {
                out.push_str(&e.addr);
                out.push('\n');
            }
        }
        Format::Nginx => {
            out.push_str(&format!(
                "# Written by hearsay's upstreams handler: the alive members with tag service:{service}.\n"
            ));
            out.push_str(&format!("upstream {service} {{\n"));
            if endpoints.is_empty() {
                out.push_str(&format!(
                    "    # No alive member offers {service}; nginx refuses an empty upstream.\n"
                ));
                out.push_str(&format!("    {NGINX_PLACEHOLDER}\n"));
            }
            for e in endpoints {
                out.push_str(&format!("    server {};  # {}\n", e.addr, e.node));
            }
            out.push_str("}\n");
        }
        Format::Haproxy => {
            out.push_str(&format!(
                "# Written by hearsay's upstreams handler: the alive members with tag service:{service}.\n"
            ));
            out.push_str(&format!("backend {service}\n"));
            for e in endpoints {
                out.push_str(&format!(
                    "    server {} {} check\n",
                    haproxy_name(&e.node),
                    e.addr
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps() -> Vec<Endpoint> {
        vec![
            Endpoint {
                node: "web-1".into(),
                addr: "10.0.0.1:8080".into(),
            },
            Endpoint {
                node: "web 2".into(),
                addr: "[fd00::2]:8080".into(),
            },
        ]
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse("lines"), Ok(Format::Lines));
        assert_eq!(Format::parse(" nginx\n"), Ok(Format::Nginx));
        assert_eq!(Format::parse("haproxy"), Ok(Format::Haproxy));
        let err = Format::parse("apache").unwrap_err();
        assert!(
            err.contains("\"apache\"") && err.contains("lines, nginx or haproxy"),
            "{err}"
        );
    }

    #[test]
    fn service_names() {
        assert!(check_service("web").is_ok());
        assert!(check_service("api-v2.internal_1").is_ok());
        assert!(check_service("").is_err());
        assert!(check_service("web {").is_err());
        assert!(check_service("a;b").is_err());
    }

    #[test]
    fn lines() {
        assert_eq!(
            render(Format::Lines, "web", &eps()),
            "10.0.0.1:8080\n[fd00::2]:8080\n"
        );
        assert_eq!(render(Format::Lines, "web", &[]), "");
    }

    #[test]
    fn nginx() {
        assert_eq!(
            render(Format::Nginx, "web", &eps()),
            "# Written by hearsay's upstreams handler: the alive members with tag service:web.\n\
             upstream web {\n    server 10.0.0.1:8080;  # web-1\n    server [fd00::2]:8080;  # web 2\n}\n"
        );
    }

    #[test]
    fn nginx_without_backends_has_a_down_placeholder() {
        let text = render(Format::Nginx, "web", &[]);
        assert!(text.contains("upstream web {\n"), "{text}");
        assert!(text.contains("    server 127.0.0.1:1 down;\n}\n"), "{text}");
        assert_eq!(text.matches("server ").count(), 1, "{text}");
    }

    #[test]
    fn haproxy() {
        assert_eq!(
            render(Format::Haproxy, "web", &eps()),
            "# Written by hearsay's upstreams handler: the alive members with tag service:web.\n\
             backend web\n    server web-1 10.0.0.1:8080 check\n    server web_2 [fd00::2]:8080 check\n"
        );
        assert!(render(Format::Haproxy, "web", &[]).ends_with("backend web\n"));
    }
}
