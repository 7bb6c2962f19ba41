//! TCP streams: serving incoming ones (ping, push/pull, user message), the replies to the
//! ones we opened (push/pull, the fallback TCP ping), their failures, and opening new ones.

use super::{Event, Phase, StreamId, StreamOutcome, StreamPurpose, StreamRequest, Swim};
use crate::drops::DropKind;
use crate::wire::{Ack, ErrResp, StreamMessage};
use std::net::SocketAddr;
use std::time::Instant;
use tracing::{debug, warn};

impl Swim {
    /// Bytes arrived on an incoming TCP connection from `from`: `buf` holds everything read
    /// so far. Returns what to do with the connection.
    pub fn handle_stream(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) -> StreamOutcome {
        let msg = match self.codec.open_stream(buf) {
            Ok(None) => return StreamOutcome::NeedMore,
            Ok(Some((msg, _))) => msg,
            Err(e) => {
                self.drops.count_stream();
                let kind = stream_kind(DropKind::of(&e));
                if self.warn_allowed(now, from, kind) {
                    warn!(node = %self.config.name, %from, error = %e, "memberlist: failed to receive stream");
                }
                let reply = StreamMessage::Err(ErrResp {
                    error: e.to_string(),
                });
                return StreamOutcome::Reply(self.codec.seal_stream_reply(&reply, &mut self.rng));
            }
        };
        let outcome = match msg {
            StreamMessage::Ping(p) => {
                if !p.node.is_empty() && p.node != self.config.name {
                    // memberlist's handleConn logs and closes the connection without a reply.
                    if self.warn_allowed(now, from, "stream-wrong-node") {
                        warn!(node = %self.config.name, %from, target = %p.node, "memberlist: got stream ping for another node");
                    }
                    StreamOutcome::Done
                } else {
                    let ack = StreamMessage::Ack(Ack {
                        seq_no: p.seq_no,
                        payload: Vec::new(),
                    });
                    StreamOutcome::Reply(self.codec.seal_stream_reply(&ack, &mut self.rng))
                }
            }
            StreamMessage::PushPull(pp) => {
                let join = pp.join;
                let reply = self.local_state(join, false);
                if let Err(e) = self.merge_remote_state(now, pp) {
                    if self.warn_allowed(now, from, "push-pull") {
                        warn!(node = %self.config.name, %from, error = %e, "memberlist: push/pull merge failed");
                    }
                }
                StreamOutcome::Reply(reply)
            }
            StreamMessage::User(m) => {
                self.events.push_back(Event::UserMessage(m));
                StreamOutcome::Done
            }
            StreamMessage::Ack(_) => {
                if self.warn_allowed(now, from, "stream-ack") {
                    warn!(node = %self.config.name, %from, "memberlist: unexpected ack on an incoming stream");
                }
                StreamOutcome::Done
            }
            StreamMessage::Err(e) => {
                if self.warn_allowed(now, from, "stream-remote-error") {
                    warn!(node = %self.config.name, %from, error = %e.error, "memberlist: remote error on stream");
                }
                StreamOutcome::Done
            }
        };
        self.collect_finished();
        outcome
    }

    /// Bytes arrived in reply on a stream we opened. `buf` holds everything read so far.
    /// Returns [`StreamOutcome::NeedMore`] until the reply is complete.
    pub fn handle_stream_reply(&mut self, now: Instant, id: StreamId, buf: &[u8]) -> StreamOutcome {
        if !self.streams.contains_key(&id) {
            return StreamOutcome::Done;
        }
        // A reply carries no label header: memberlist writes it from the dialing side only.
        let msg = match self.codec.open_stream_reply(buf) {
            Ok(None) => return StreamOutcome::NeedMore,
            Ok(Some((msg, _))) => msg,
            Err(e) => {
                self.handle_stream_failed(now, id, &e.to_string());
                return StreamOutcome::Done;
            }
        };
        let purpose = self.streams.remove(&id).expect("checked above");
        match (purpose, msg) {
            (StreamPurpose::PushPull { join, dst }, StreamMessage::PushPull(pp)) => {
                let result = self.merge_remote_state(now, pp);
                if let Err(e) = &result {
                    warn!(node = %self.config.name, %dst, error = %e, "memberlist: push/pull failed");
                }
                if let Some(j) = join {
                    self.join_result(j, dst, result.map_err(|e| e.to_string()));
                }
            }
            (StreamPurpose::TcpPing { seq }, StreamMessage::Ack(ack)) => {
                if ack.seq_no == seq {
                    if let Some(p) = &mut self.probe {
                        if let Phase::Indirect { tcp, tcp_ok, .. } = &mut p.phase {
                            if *tcp == Some(id) {
                                *tcp_ok = true;
                            }
                        }
                    }
                } else {
                    warn!(node = %self.config.name, want = seq, got = ack.seq_no, "memberlist: TCP ping ack with wrong sequence number");
                }
            }
            (purpose, StreamMessage::Err(e)) => {
                self.fail_stream(id, purpose, &format!("remote error: {}", e.error))
            }
            (purpose, other) => {
                let what = format!("unexpected reply {:?}", std::mem::discriminant(&other));
                self.fail_stream(id, purpose, &what)
            }
        }
        self.collect_finished();
        StreamOutcome::Done
    }

    /// A stream we opened could not be connected, written or read (or timed out).
    pub fn handle_stream_failed(&mut self, _now: Instant, id: StreamId, error: &str) {
        if let Some(purpose) = self.streams.remove(&id) {
            self.fail_stream(id, purpose, error);
        }
        self.collect_finished();
    }

    /// A stream we opened without expecting a reply was written successfully.
    pub fn handle_stream_sent(&mut self, id: StreamId) {
        self.streams.remove(&id);
    }

    fn fail_stream(&mut self, _id: StreamId, purpose: StreamPurpose, error: &str) {
        match purpose {
            StreamPurpose::PushPull { join: Some(j), dst } => {
                warn!(node = %self.config.name, %dst, error, "memberlist: failed to join");
                self.join_result(j, dst, Err(error.to_owned()));
            }
            StreamPurpose::PushPull { join: None, dst } => {
                warn!(node = %self.config.name, %dst, error, "memberlist: push/pull failed");
            }
            StreamPurpose::TcpPing { .. } => {
                debug!(node = %self.config.name, error, "memberlist: failed fallback ping");
            }
            StreamPurpose::Fire => {
                warn!(node = %self.config.name, error, "memberlist: failed to send stream message");
            }
        }
    }

    pub(super) fn open_stream(
        &mut self,
        now: Instant,
        dst: SocketAddr,
        payload: Vec<u8>,
        expect_reply: bool,
        purpose: StreamPurpose,
    ) -> StreamId {
        let id = self.next_stream;
        self.next_stream += 1;
        self.streams.insert(id, purpose);
        self.stream_requests.push_back(StreamRequest {
            id,
            dst,
            payload,
            expect_reply,
            deadline: now + self.config.tcp_timeout,
        });
        id
    }
}

/// The log limiter's kind for an incoming stream refused for `kind`.
fn stream_kind(kind: DropKind) -> &'static str {
    match kind {
        DropKind::Label => "stream-label",
        DropKind::Decrypt => "stream-decrypt",
        DropKind::Crc => "stream-crc",
        DropKind::UnknownType => "stream-unknown-type",
        DropKind::Decode => "stream-decode",
    }
}
