//! Sending datagrams: sequence numbers and incarnations, ping messages, piggybacking
//! broadcasts on a message, compounds, and sealing (CRC, encryption) into [`Transmit`]s.

use super::{Swim, Transmit};
use crate::compact::Addr;
use crate::wire::{encode_compounds, ip_bytes, Ping, COMPOUND_HEADER_OVERHEAD, COMPOUND_OVERHEAD};
use std::net::SocketAddr;

impl Swim {
    // ----- sending -----------------------------------------------------------------------

    pub(super) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    pub(super) fn next_incarnation(&mut self) -> u32 {
        // Wraps like memberlist's atomic.AddUint32.
        self.incarnation = self.incarnation.wrapping_add(1);
        self.incarnation
    }

    pub(super) fn ping_msg(&self, seq: u32, node: &str) -> Ping {
        let adv = self.config.advertise;
        Ping {
            seq_no: seq,
            node: node.to_owned(),
            source_addr: ip_bytes(adv.ip()),
            source_port: adv.port(),
            source_node: self.config.name.clone(),
        }
    }

    pub(super) fn encrypt_overhead(&self) -> usize {
        match (&self.codec.keyring, self.config.wire.verify_outgoing) {
            (Some(_), true) => {
                crate::keyring::encrypt_overhead(self.config.wire.encryption_version)
            }
            _ => 0,
        }
    }

    /// memberlist's `sendMsg`: piggyback queued broadcasts on `msg` when there is room.
    pub(super) fn send_msg(&mut self, dst: SocketAddr, node: Option<String>, msg: Vec<u8>) {
        let avail = self
            .config
            .udp_buffer_size
            .saturating_sub(msg.len() + COMPOUND_HEADER_OVERHEAD + self.encrypt_overhead());
        let extra = self.take_broadcasts(COMPOUND_OVERHEAD, avail);
        let mut all = Vec::with_capacity(extra.len() + 1);
        all.push(msg);
        all.extend(extra);
        self.send_parts(dst, node.as_deref(), all);
    }

    /// Sends one message as is, or several as compounds. Many tiny user broadcasts can fit
    /// the byte budget yet exceed the 255 parts a compound can count (memberlist's
    /// makeCompoundMessage would silently wrap the count byte): split them like
    /// makeCompoundMessages into several packets instead.
    pub(super) fn send_parts(
        &mut self,
        dst: SocketAddr,
        node: Option<&str>,
        mut parts: Vec<Vec<u8>>,
    ) {
        if parts.len() == 1 {
            let msg = parts.pop().expect("one part");
            self.send_raw(dst, node, msg);
            return;
        }
        for buf in encode_compounds(&parts) {
            self.send_raw(dst, node, buf);
        }
    }

    /// memberlist's `rawSendMsgPacket`: CRC when the peer speaks protocol 5, then seal.
    pub(super) fn send_raw(&mut self, dst: SocketAddr, node: Option<&str>, msg: Vec<u8>) {
        let pmax = node
            .and_then(|n| self.nodes.get(n))
            .or_else(|| {
                let dst = Addr::from(dst);
                self.nodes.iter().map(|(_, e)| e).find(|e| e.addr == dst)
            })
            .map(|e| e.vsn[1])
            .unwrap_or(0);
        let payload = self.codec.seal_packet(&msg, pmax >= 5, &mut self.rng);
        self.transmits.push_back(Transmit { dst, payload });
    }
}
