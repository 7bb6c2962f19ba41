//! health: offers a service while it answers its health check.
//!
//! On each `tick` (its filter: `events = "every:2s"`), it GETs `$URL` (an HTTP grant must allow
//! it), waiting at most 2 s for an answer. A 2xx answer sets this node's tag `service:$SERVICE`
//! to `$PORT` (the tag convention of `hearsay_sdk::services`: a port on this node's address, or
//! `ip:port`), unless it already has that value; anything else (another status, no answer)
//! deletes the tag, if it is set. So a load balancer or a naming service (`upstreams`,
//! `resolve`) sees the service only while it is healthy. Changes are logged; the grant
//! `tags = ["service:$SERVICE"]` (or `service:*`) is needed. Environment (`grants.env`):
//! `SERVICE`, `URL` and `PORT`, all required.

use hearsay_sdk::http::Request;
use hearsay_sdk::{services, tags, Event, Handler};
use std::time::Duration;

struct Health;

/// How long a check may take (connecting, then each wait for the answer): past it, the service
/// counts as unhealthy. The handler's own timeout (`limits.timeout`) must be longer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

fn required(name: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        Ok(_) => Err(format!("{name} is empty")),
        Err(std::env::VarError::NotPresent) => Err(format!(
            "{name} is not set (grants.env = {{ {name} = \"...\" }})"
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not UTF-8")),
    }
}

/// Whether `status` is a success (2xx).
fn healthy(status: u16) -> bool {
    (200..300).contains(&status)
}

fn check() -> Result<(), String> {
    let service = required("SERVICE")?;
    let url = required("URL")?;
    let port = required("PORT")?;
    // The value must follow the convention, or no one could use the tag.
    if services::endpoint("0.0.0.0", &port).is_none() {
        return Err(format!("PORT={port:?} is neither a port nor an ip:port"));
    }
    let tag = services::tag(&service);
    let current = tags::get(&tag);
    let verdict = match Request::get(&url).timeout(CHECK_TIMEOUT).send() {
        Ok(r) if healthy(r.status) => Ok(r.status),
        Ok(r) => Err(format!("HTTP {}", r.status)),
        Err(e) => Err(e.to_string()),
    };
    match verdict {
        Ok(status) => {
            if current.as_deref() != Some(port.as_str()) {
                tags::set(&tag, &port).map_err(|e| format!("cannot set tag {tag}: {e}"))?;
                hearsay_sdk::info(&format!(
                    "{url} is healthy (HTTP {status}): set tag {tag}={port}"
                ));
            }
        }
        Err(cause) => {
            if current.is_some() {
                tags::delete(&tag).map_err(|e| format!("cannot delete tag {tag}: {e}"))?;
                hearsay_sdk::warn(&format!("{url} is unhealthy ({cause}): deleted tag {tag}"));
            } else {
                hearsay_sdk::debug(&format!("{url} is still unhealthy ({cause})"));
            }
        }
    }
    Ok(())
}

impl Handler for Health {
    fn handle(event: Event) -> Result<(), String> {
        match event {
            Event::Tick(_) => check().map_err(|e| format!("health: {e}")),
            _ => Ok(()),
        }
    }
}

hearsay_sdk::export!(Health);

#[cfg(test)]
mod tests {
    #[test]
    fn healthy_is_2xx() {
        assert!(super::healthy(200));
        assert!(super::healthy(204));
        assert!(!super::healthy(199));
        assert!(!super::healthy(301));
        assert!(!super::healthy(503));
    }
}
