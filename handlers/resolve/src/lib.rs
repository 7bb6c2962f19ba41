//! resolve: a naming service over the cluster's tags.
//!
//! Answers `query:resolve` whose payload is a service name with the addresses of the alive members
//! that offer it, one `ip:port` per line (IPv6 as `[ip]:port`), sorted.
//!
//! Tag convention: a member offers service NAME by carrying the tag `service:NAME`, whose value is
//! the port on the member's gossip address (`service:api=8080`), or a full `ip:port` when the
//! service listens elsewhere (`service:api=10.0.0.9:8080`). Members that are not alive, and tag
//! values that are neither, are left out. No member offering it gives an empty reply.

use hearsay_sdk::{services, Event, Handler};

struct Resolve;

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
        // The convention's parsing lives in the SDK (`hearsay_sdk::services`), shared with the
        // upstreams handler.
        let addrs: Vec<String> = services::endpoints(service, &hearsay_sdk::members())
            .into_iter()
            .map(|e| e.addr)
            .collect();
        let mut text = addrs.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        hearsay_sdk::reply(text.as_bytes()).map_err(|e| format!("resolve: {e}"))
    }
}

hearsay_sdk::export!(Resolve);
