//! resolve: a naming service over the cluster's tags.
//!
//! Answers `query:resolve` whose payload is a service name with the addresses of the alive members
//! that offer it, one `ip:port` per line (IPv6 as `[ip]:port`), sorted.
//!
//! Tag convention: a member offers service NAME by carrying the tag `service:NAME`, whose value is
//! the port on the member's gossip address (`service:api=8080`), or a full `ip:port` when the
//! service listens elsewhere (`service:api=10.0.0.9:8080`). Members that are not alive, and tag
//! values that are neither, are left out. No member offering it gives an empty reply.

use hearsay_sdk::{Event, Handler, Member, MemberStatus};

struct Resolve;

fn endpoint(member: &Member, value: &str) -> Option<String> {
    let value = value.trim();
    if let Ok(port) = value.parse::<u16>() {
        return Some(if member.addr.contains(':') {
            format!("[{}]:{port}", member.addr)
        } else {
            format!("{}:{port}", member.addr)
        });
    }
    value
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.to_string())
}

/// The endpoints of `service` among `members`, sorted and de-duplicated.
fn resolve(service: &str, members: &[Member]) -> Vec<String> {
    let key = format!("service:{service}");
    let mut out: Vec<String> = members
        .iter()
        .filter(|m| m.status == MemberStatus::Alive)
        .filter_map(|m| m.tag(&key).and_then(|v| endpoint(m, v)))
        .collect();
    out.sort();
    out.dedup();
    out
}

impl Handler for Resolve {
    fn handle(event: Event) -> Result<(), String> {
        let Event::Query(q) = event else {
            return Ok(());
        };
        if q.name != "resolve" {
            return Ok(());
        }
        let service = std::str::from_utf8(&q.payload)
            .map_err(|_| "resolve: service name is not UTF-8".to_string())?;
        let service = service.trim();
        if service.is_empty() {
            return Err("resolve: empty service name".into());
        }
        let mut text = resolve(service, &hearsay_sdk::members()).join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        hearsay_sdk::reply(text.as_bytes()).map_err(|e| format!("resolve: {e}"))
    }
}

hearsay_sdk::export!(Resolve);
