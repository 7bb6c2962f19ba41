//! Network coordinates (Serf's Vivaldi): our coordinate, the cache of peers' ones, RTT
//! estimates, and updating ours from each ping ack's payload.

use super::Serf;
use crate::coordinate::{self, Coordinate};
use std::time::Duration;
use tracing::{debug, warn};

impl Serf {
    /// Our network coordinate (None when coordinates are disabled).
    pub fn coordinate(&self) -> Option<&Coordinate> {
        self.coord_client.as_ref().map(|c| c.coordinate())
    }

    /// How often our coordinate went invalid and was reset (None when coordinates are disabled).
    pub fn coordinate_resets(&self) -> Option<u64> {
        self.coord_client.as_ref().map(|c| c.stats().resets)
    }

    /// The last coordinate `node` sent us; our own for our name.
    pub fn cached_coordinate(&self, node: &str) -> Option<&Coordinate> {
        if node == self.name() {
            return self.coordinate();
        }
        self.coord_cache.get(node)
    }

    /// Estimated round-trip time between two members from their coordinates (`serf rtt`).
    pub fn estimated_rtt(&self, a: &str, b: &str) -> Option<Duration> {
        let (ca, cb) = (self.cached_coordinate(a)?, self.cached_coordinate(b)?);
        ca.is_compatible_with(cb).then(|| ca.distance_to(cb))
    }

    /// Serf's ping delegate: a peer's ack carried its coordinate; update ours from the RTT.
    pub(super) fn handle_ping_complete(&mut self, node: &str, rtt: Duration, payload: &[u8]) {
        let Some(client) = self.coord_client.as_mut() else {
            return;
        };
        if payload.is_empty() {
            // A peer with coordinates disabled.
            return;
        }
        let other = match coordinate::decode_ping_payload(payload) {
            Ok(c) => c,
            Err(e) => {
                warn!(node = %self.config.memberlist.name, peer = node, error = %e, "serf: bad coordinate in ping ack");
                return;
            }
        };
        match client.update(node, &other, rtt) {
            Ok(mine) => {
                self.swim
                    .set_ack_payload(coordinate::encode_ping_payload(&mine));
                self.coord_cache.insert(node.to_owned(), other);
            }
            Err(e) => {
                debug!(node = %self.config.memberlist.name, peer = node, error = %e, "serf: rejected coordinate");
            }
        }
    }

    pub(super) fn forget_coordinate(&mut self, node: &str) {
        self.coord_cache.remove(node);
        if let Some(c) = self.coord_client.as_mut() {
            c.forget_node(node);
        }
    }
}
