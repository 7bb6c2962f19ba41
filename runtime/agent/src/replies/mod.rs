//! Query replies and large responses: the node's QUIC side channel.
//!
//! - [`start_with_quic`] starts a [`Node`] with a QUIC endpoint attached (advertised in the
//!   `_hearsay_quic` tag; see `wire`), through which large responses to this node's queries
//!   arrive (see `receive`) and, on a relay node, pass on to their originator.
//! - [`QueryReply`] is the one way the agent answers a query, small (Serf's UDP response) or
//!   large (streamed over QUIC), directly and through relay nodes.
//!
//! The layer under it, `node`, knows nothing of QUIC; the layers above
//! (`handlers`, the RPC backend, `run`) answer queries through this one.

mod error;
mod receive;
mod reply;
mod wire;

pub use error::ReplyError;
pub use reply::{QueryReply, ReplyPath, ReplyTarget, STRAGGLER_GRACE};
pub use wire::{advert_of, QuicOptions, QuicStats};

use crate::node::{Node, NodeOptions};
use hearsay_net::quic::{QuicAdvert, QUIC_TAG};
use hearsay_net::Transport;
use std::net::SocketAddr;
use std::sync::Arc;
use wire::QuicWire;

/// Starts a node as [`Node::start`] does, with a QUIC endpoint for large query responses:
/// binds it, advertises it in the `_hearsay_quic` tag, admits only client certificates that
/// alive members advertise, and delivers large responses to this node's queries through its
/// [`crate::node::QueryResults`]. Replies opened with [`QueryReply::open`] stream over it when
/// they outgrow Serf's UDP limit.
///
/// A wildcard QUIC bind (0.0.0.0 or ::) is advertised with the transport's address: with a
/// fixed port, on that port; with port 0, the endpoint binds the transport's IP instead (the
/// chosen port must be known to be advertised).
pub fn start_with_quic<T: Transport>(
    mut options: NodeOptions,
    transport: T,
    mut quic: QuicOptions,
) -> Result<Node, ReplyError> {
    let name = options.config.memberlist.name.clone();
    if quic.advertise.is_none() && quic.bind.ip().is_unspecified() {
        let ip = transport.local_addr().ip();
        if quic.bind.port() == 0 {
            quic.bind.set_ip(ip);
        } else {
            quic.advertise = Some(SocketAddr::new(ip, quic.bind.port()));
        }
    }
    let (wire, incoming) = QuicWire::bind(quic, &name)?;
    let advert = wire.endpoint.advert();
    options
        .config
        .tags
        .insert(QUIC_TAG.to_owned(), advert.to_tag_value());
    let bare = Node::start(options, transport)?;
    wire.spawn_tasks(bare.clone(), incoming);
    tracing::info!("agent.quic: QUIC endpoint for large responses at {advert}");
    Ok(bare.with_side_channel(Arc::new(wire)))
}

/// This node's QUIC advert (address and certificate fingerprint), when it runs QUIC.
pub fn quic_advert(node: &Node) -> Option<QuicAdvert> {
    node.side_channel::<QuicWire>().map(|w| w.endpoint.advert())
}

/// This node's QUIC endpoint, when it runs QUIC (the deploy service asks peers through it).
pub fn quic_endpoint(node: &Node) -> Option<hearsay_net::quic::QuicEndpoint> {
    node.side_channel::<QuicWire>().map(|w| w.endpoint.clone())
}

/// The requests peers send to this node's QUIC endpoint (for the deploy service), once:
/// the first call takes them; `None` after that or without QUIC. Until taken they wait in
/// the endpoint's queue.
pub fn take_requests(node: &Node) -> Option<hearsay_net::quic::IncomingRequests> {
    node.side_channel::<QuicWire>()?
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
}

/// How this node's QUIC response paths were used (relays opened, forwarded and taken,
/// duplicates refused), when it runs QUIC.
pub fn quic_stats(node: &Node) -> Option<QuicStats> {
    node.side_channel::<QuicWire>()
        .map(|w| w.shared.stats.snapshot())
}

/// The QUIC advert of the member named `member`: `Ok(None)` when it is unknown or carries no
/// valid `_hearsay_quic` tag (a Serf node).
pub async fn member_quic_advert(
    node: &Node,
    member: &str,
) -> Result<Option<QuicAdvert>, crate::node::Error> {
    Ok(node.member(member).await?.as_ref().and_then(advert_of))
}
