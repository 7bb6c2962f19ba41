//! [`QueryReply`]: the one way the agent answers a query, small or large.
//!
//! A reply is written chunk by chunk. While it fits Serf's UDP response limit
//! ([`Node::udp_response_limit`], 1024 bytes by default) it is buffered, and
//! [`QueryReply::finish`] sends it as Serf's normal UDP response. Once it grows past that, and
//! the originator advertises a QUIC endpoint (a valid `_hearsay_quic` tag), the reply claims
//! this node's one answer to the query and streams over QUIC to the originator: the buffered
//! bytes, then every further chunk as it is written, so nothing holds the whole reply. A Serf
//! originator (no advert) cannot take more than the UDP limit: the write that crosses it fails
//! with [`ReplyError::TooLarge`], a warning is logged, and nothing is sent.
//!
//! When the query asked for a relay factor R, a reply that streams over QUIC also goes to up
//! to R random other alive hearsay members (a relay header naming the originator), which
//! forward it to the originator; the originator takes the first stream per node and refuses
//! the others as duplicates. Every chunk is written to every live stream (nothing holds the
//! whole reply); a stream that fails is dropped without failing the others, and one that
//! stalls while another has taken the chunk is dropped after [`STRAGGLER_GRACE`]. The reply
//! succeeds when any stream was taken whole.
//!
//! Dropping a reply abandons it: a buffered reply is never sent, a streaming one is reset so
//! the originator sees that node's response fail (never a short one).

use super::wire::{advert_of, bump, QuicWire};
use super::{member_quic_advert, ReplyError};
use crate::node::Node;
use hearsay_net::quic::{QuicAdvert, QuicEndpoint, Relay, ResponseHeader, ResponseWriter};
use hearsay_serf::event::{MemberStatus, QueryEvent};
use hearsay_serf::LamportTime;
use rand::seq::SliceRandom;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

type Result<T, E = ReplyError> = std::result::Result<T, E>;

/// Pieces [`QueryReply::respond`] writes a whole payload in.
const RESPOND_PIECE: usize = 64 << 10;
/// The originator's refusal of a certificate it does not (yet) know.
const NOT_A_MEMBER: &str = "does not belong to a known member";
/// Retries of a connection refused with [`NOT_A_MEMBER`], pausing 200 ms, 400 ms, 600 ms.
const CONNECT_RETRIES: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Once one of a reply's streams has taken a chunk (or opened), how long the others may take
/// to do the same before they are dropped: a stalled relay must not hold the reply up until
/// the query's deadline.
pub const STRAGGLER_GRACE: Duration = Duration::from_secs(5);

/// How a finished reply travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyPath {
    /// As Serf's UDP response (`bytes` of payload).
    Udp {
        /// The payload's bytes.
        bytes: u64,
    },
    /// Streamed over QUIC (`bytes` of body), taken whole by the originator.
    Quic {
        /// The body's bytes.
        bytes: u64,
    },
}

/// Which query a reply answers and where its originator is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTarget {
    /// The query's Lamport time and id, as delivered in [`QueryEvent`].
    pub ltime: LamportTime,
    /// The query's id.
    pub id: u32,
    /// The originator's node name (`QueryEvent::source_node`; empty when it did not say).
    pub origin: String,
    /// The query's name, for log lines (may be empty).
    pub name: String,
    /// The query's deadline: no write waits past it.
    pub deadline: Instant,
}

impl From<&QueryEvent> for ReplyTarget {
    fn from(q: &QueryEvent) -> Self {
        Self {
            ltime: q.ltime,
            id: q.id,
            origin: q.source_node.clone(),
            name: q.name.clone(),
            deadline: q.deadline,
        }
    }
}

enum State {
    Buffering(Vec<u8>),
    Streaming(Fanout),
    Failed,
}

/// One QUIC stream of a streaming reply.
struct Leg {
    /// `None` straight to the originator, else the relay node's name.
    via: Option<String>,
    writer: ResponseWriter,
}

impl Leg {
    fn describe(via: &Option<String>) -> String {
        match via {
            None => "the direct stream".to_owned(),
            Some(node) => format!("the stream relayed by {node:?}"),
        }
    }
}

/// The streams a reply writes to: the direct one and the relayed ones.
struct Fanout {
    legs: Vec<Leg>,
    /// Why legs were dropped, kept until no leg is left (the direct leg's error first).
    errors: Vec<(Option<String>, ReplyError)>,
}

impl Fanout {
    /// Records a dropped leg: a duplicate refusal is the normal end of a losing copy.
    fn dropped(&mut self, target: &ReplyTarget, via: Option<String>, e: ReplyError) {
        let dup = e.is_duplicate();
        let msg = format!(
            "agent: reply to query {:?} (ltime {}, id {}): dropping {}: {e}",
            target.name,
            target.ltime,
            target.id,
            Leg::describe(&via)
        );
        if dup || via.is_some() {
            tracing::debug!("{msg}");
        } else {
            tracing::info!("{msg}");
        }
        if via.is_none() {
            self.errors.insert(0, (via, e));
        } else {
            self.errors.push((via, e));
        }
    }

    /// The error to report when no leg is left.
    fn failure(&mut self, written: u64) -> ReplyError {
        if self.errors.is_empty() {
            return ReplyError::Deadline { written };
        }
        self.errors.swap_remove(0).1
    }
}

/// A reply to one query in progress; see the module docs.
pub struct QueryReply {
    agent: Node,
    target: ReplyTarget,
    state: State,
    written: u64,
    /// The whole length when known up front ([`QueryReply::respond`]): announced in the
    /// QUIC header so the originator can refuse an over-limit reply before reading it.
    declared: Option<u64>,
}

impl QueryReply {
    /// Opens a reply on `node` to the query `target` names (one delivered as
    /// [`hearsay_serf::event::Event::Query`]: `ReplyTarget::from(&query)`, or one an RPC client
    /// is answering).
    pub fn open(node: &Node, target: ReplyTarget) -> Self {
        Self {
            agent: node.clone(),
            target,
            state: State::Buffering(Vec::new()),
            written: 0,
            declared: None,
        }
    }

    /// Answers a query with a whole payload of any size: over UDP when it fits, else over
    /// QUIC (written in 64 KiB pieces), else (a Serf originator) refused with
    /// [`ReplyError::TooLarge`].
    pub async fn respond(node: &Node, target: ReplyTarget, payload: &[u8]) -> Result<ReplyPath> {
        let mut reply = Self::open(node, target);
        reply.declared = Some(payload.len() as u64);
        for piece in payload.chunks(RESPOND_PIECE) {
            reply.write(piece).await?;
        }
        reply.finish().await
    }

    /// The query this reply answers.
    pub fn target(&self) -> &ReplyTarget {
        &self.target
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// True once the reply streams over QUIC.
    pub fn is_streaming(&self) -> bool {
        matches!(self.state, State::Streaming(_))
    }

    /// Appends `chunk` to the reply. Past the UDP limit this starts (or continues) the QUIC
    /// stream and waits while the originator's window is full, never past the query's
    /// deadline. After an error the reply is dead: every later call fails.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let r = self.write_inner(chunk).await;
        if r.is_err() {
            // Dropping a writer resets its stream: the originator sees this response fail.
            self.state = State::Failed;
        }
        r
    }

    async fn write_inner(&mut self, chunk: &[u8]) -> Result<()> {
        match &mut self.state {
            State::Failed => return Err(ReplyError::Failed),
            State::Buffering(buf) if buf.len() + chunk.len() <= self.agent.udp_response_limit() => {
                buf.extend_from_slice(chunk);
            }
            State::Buffering(buf) => {
                let buffered = std::mem::take(buf);
                let size = (buffered.len() + chunk.len()) as u64;
                let mut fan = self.start_stream(size).await?;
                self.send(&mut fan, &buffered, 0).await?;
                self.send(&mut fan, chunk, buffered.len() as u64).await?;
                self.state = State::Streaming(fan);
            }
            State::Streaming(_) => {
                let State::Streaming(mut fan) = std::mem::replace(&mut self.state, State::Failed)
                else {
                    unreachable!("matched above")
                };
                self.send(&mut fan, chunk, self.written).await?;
                self.state = State::Streaming(fan);
            }
        }
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Writes `bytes` to every live leg; `before` is how much was written before them.
    async fn send(&self, fan: &mut Fanout, bytes: &[u8], before: u64) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let (outcomes, late) = all_with_grace(
            fan.legs.iter_mut().map(|leg| leg.writer.write(bytes)),
            self.target.deadline,
        )
        .await;
        let mut kept = Vec::with_capacity(fan.legs.len());
        for (leg, outcome) in std::mem::take(&mut fan.legs).into_iter().zip(outcomes) {
            match outcome {
                Some(Ok(())) => kept.push(leg),
                Some(Err(e)) => fan.dropped(&self.target, leg.via, e.into()),
                None => fan.dropped(&self.target, leg.via, cut_off(late, before)),
            }
        }
        fan.legs = kept;
        if fan.legs.is_empty() {
            return Err(fan.failure(before));
        }
        Ok(())
    }

    /// Completes the reply: a buffered one goes as Serf's UDP response (or over QUIC when its
    /// encoded message is over the limit), a streaming one ends and waits until the
    /// originator has taken all of it (or says why it refused it), never past the deadline.
    pub async fn finish(mut self) -> Result<ReplyPath> {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Failed => Err(ReplyError::Failed),
            State::Buffering(buf) => {
                let (ltime, id) = (self.target.ltime, self.target.id);
                match self.agent.respond(ltime, id, &buf).await {
                    Ok(()) => Ok(ReplyPath::Udp {
                        bytes: buf.len() as u64,
                    }),
                    // The payload fits but Serf's framing pushes the message over the limit.
                    Err(crate::node::Error::Serf(hearsay_serf::Error::ResponseTooLarge {
                        ..
                    })) => {
                        let mut fan = self.start_stream(buf.len() as u64).await?;
                        self.send(&mut fan, &buf, 0).await?;
                        self.finish_stream(fan).await
                    }
                    Err(e) => Err(e.into()),
                }
            }
            State::Streaming(fan) => self.finish_stream(fan).await,
        }
    }

    /// Ends every leg and waits for the originator's verdicts: the reply succeeded when any
    /// leg was taken whole (the others are duplicates the originator refused, or failed).
    async fn finish_stream(&self, mut fan: Fanout) -> Result<ReplyPath> {
        let bytes = self.written;
        let legs = std::mem::take(&mut fan.legs);
        let vias: Vec<Option<String>> = legs.iter().map(|l| l.via.clone()).collect();
        let (outcomes, late) = all_with_grace(
            legs.into_iter().map(|leg| leg.writer.finish()),
            self.target.deadline,
        )
        .await;
        let mut taken = false;
        for (via, outcome) in vias.into_iter().zip(outcomes) {
            match outcome {
                Some(Ok(())) => taken = true,
                Some(Err(e)) => fan.dropped(&self.target, via, e.into()),
                None => fan.dropped(&self.target, via, cut_off(late, bytes)),
            }
        }
        if taken {
            Ok(ReplyPath::Quic { bytes })
        } else {
            Err(fan.failure(bytes))
        }
    }

    /// Switches to QUIC: finds the originator's advert, claims this node's answer in the Serf
    /// layer (which says the query's relay factor) and opens the streams: the direct one and,
    /// with a relay factor R, one to each of up to R random other alive hearsay members (the
    /// header naming the originator). The streams open concurrently; the reply goes on with
    /// those that opened (one failing to open fails only itself).
    async fn start_stream(&self, size: u64) -> Result<Fanout> {
        let t = &self.target;
        let advert = if t.origin.is_empty() {
            None
        } else {
            member_quic_advert(&self.agent, &t.origin).await?
        };
        let Some(advert) = advert else {
            let limit = self.agent.udp_response_limit();
            tracing::warn!(
                "agent: refusing to answer query {:?} (ltime {}, id {}) from {:?}: the reply of at least {size} bytes exceeds the UDP limit of {limit} bytes and the originator advertises no QUIC endpoint (a Serf node); nothing was sent",
                t.name, t.ltime, t.id, t.origin
            );
            return Err(ReplyError::TooLarge {
                origin: t.origin.clone(),
                size,
                limit,
            });
        };
        let Some(wire) = self.agent.side_channel::<QuicWire>() else {
            tracing::warn!(
                "agent: cannot answer query {:?} from {:?} with {size}+ bytes: this agent has no QUIC endpoint",
                t.name, t.origin
            );
            return Err(ReplyError::NoQuicEndpoint { size });
        };
        let (ltime, id) = (t.ltime, t.id);
        let relay_factor = self
            .agent
            .handle()
            .call(move |serf, now| serf.claim_response(now, ltime, id))
            .await??;
        let header = ResponseHeader {
            ltime,
            query_id: id,
            from: self.agent.name().to_owned(),
            total_len: self.declared,
            relay: None,
        };
        let relays = if relay_factor == 0 {
            Vec::new()
        } else {
            self.relay_nodes(relay_factor, &t.origin).await?
        };
        let remaining_ms = t
            .deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .min(u128::from(u32::MAX)) as u32;
        let mut targets = vec![(None, advert, header.clone())];
        for (node, relay_advert) in relays {
            let relayed = ResponseHeader {
                relay: Some(Relay {
                    origin: t.origin.clone(),
                    origin_advert: advert,
                    remaining_ms,
                }),
                ..header.clone()
            };
            targets.push((Some(node), relay_advert, relayed));
        }
        let endpoint = &wire.endpoint;
        let (outcomes, late) = all_with_grace(
            targets
                .iter()
                .map(|(_, to, h)| open_stream(endpoint, to, h, t.deadline)),
            t.deadline,
        )
        .await;
        let mut fan = Fanout {
            legs: Vec::new(),
            errors: Vec::new(),
        };
        for ((via, _, _), outcome) in targets.into_iter().zip(outcomes) {
            match outcome {
                Some(Ok(writer)) => {
                    if via.is_some() {
                        bump(&wire.shared.stats.relay_legs_opened);
                    }
                    fan.legs.push(Leg { via, writer });
                }
                Some(Err(e)) => fan.dropped(t, via, e),
                None => fan.dropped(t, via, cut_off(late, 0)),
            }
        }
        if fan.legs.is_empty() {
            return Err(fan.failure(0));
        }
        Ok(fan)
    }

    /// Up to `factor` random alive hearsay members (a QUIC advert, protocol 5 or later as
    /// Serf's relays require), neither this node nor the originator, with their adverts.
    async fn relay_nodes(&self, factor: u8, origin: &str) -> Result<Vec<(String, QuicAdvert)>> {
        let me = self.agent.name();
        let mut candidates: Vec<(String, QuicAdvert)> = self
            .agent
            .members()
            .await?
            .into_iter()
            .filter(|m| {
                m.status == MemberStatus::Alive && m.vsn[1] >= 5 && m.name != me && m.name != origin
            })
            .filter_map(|m| Some((m.name.clone(), advert_of(&m)?)))
            .collect();
        candidates.shuffle(&mut rand::thread_rng());
        candidates.truncate(usize::from(factor));
        Ok(candidates)
    }
}

/// Opens a response stream to `to` with `header`, by the query's deadline. The peer admits
/// certificates its member list advertises; one that has not seen this node's advert yet (it
/// joined a moment ago) refuses the handshake and refreshes its list, so a few retries get
/// through. Used by responders and by relay nodes alike.
pub(super) async fn open_stream(
    endpoint: &QuicEndpoint,
    to: &QuicAdvert,
    header: &ResponseHeader,
    deadline: Instant,
) -> Result<ResponseWriter> {
    let mut tries = 0u32;
    loop {
        let opened = bounded(deadline, 0, endpoint.open_response(to, header)).await?;
        match opened {
            Ok(w) => return Ok(w),
            Err(e) if tries < CONNECT_RETRIES && e.to_string().contains(NOT_A_MEMBER) => {
                tries += 1;
                tracing::debug!("agent: {} refused our certificate, retrying: {e}", to.addr);
                bounded(deadline, 0, tokio::time::sleep(RETRY_PAUSE * tries)).await?;
            }
            Err(e) => return Err(ReplyError::from(e)),
        }
    }
}

/// Runs `f`, giving up at the query's deadline.
async fn bounded<T>(
    deadline: Instant,
    written: u64,
    f: impl std::future::Future<Output = T>,
) -> Result<T> {
    tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), f)
        .await
        .map_err(|_| ReplyError::Deadline { written })
}

/// Runs `futs` concurrently until all are done, except that none runs past `deadline` and,
/// once one has succeeded, the others get at most [`STRAGGLER_GRACE`] more. Returns each
/// one's output in order (`None` for one cut off) and whether the deadline cut them off.
async fn all_with_grace<F, T, E>(
    futs: impl IntoIterator<Item = F>,
    deadline: Instant,
) -> (Vec<Option<std::result::Result<T, E>>>, bool)
where
    F: Future<Output = std::result::Result<T, E>>,
{
    let mut futs: Vec<Option<Pin<Box<F>>>> = futs.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut outs: Vec<Option<std::result::Result<T, E>>> = futs.iter().map(|_| None).collect();
    let hard = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
    tokio::pin!(hard);
    let mut grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut past_deadline = false;
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in futs.iter_mut().zip(outs.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if !pending {
            return Poll::Ready(());
        }
        if grace.is_none() && outs.iter().any(|o| matches!(o, Some(Ok(_)))) {
            grace = Some(Box::pin(tokio::time::sleep(STRAGGLER_GRACE)));
        }
        if hard.as_mut().poll(cx).is_ready() {
            past_deadline = true;
            return Poll::Ready(());
        }
        match grace.as_mut().map(|g| g.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(()),
            _ => Poll::Pending,
        }
    })
    .await;
    (outs, past_deadline)
}

/// Why a leg was cut off by [`all_with_grace`].
fn cut_off(past_deadline: bool, written: u64) -> ReplyError {
    if past_deadline {
        ReplyError::Deadline { written }
    } else {
        ReplyError::Straggler {
            written,
            grace: STRAGGLER_GRACE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{NodeOptions, QueryResult, QueryResults};
    use crate::replies::{start_with_quic, QuicOptions};
    use hearsay_net::{Config, Profile, UdpTcpTransport};
    use hearsay_serf::event::Event;
    use hearsay_serf::{QueryParams, SerfConfig};
    use std::net::SocketAddr;
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(30);

    async fn lone(name: &str, quic: bool) -> Node {
        let lo = SocketAddr::from(([127, 0, 0, 1], 0));
        let transport = UdpTcpTransport::bind(lo).await.unwrap();
        let addr = hearsay_net::Transport::local_addr(&transport);
        let config = SerfConfig::new(Config::profile(Profile::Local, name, addr));
        let options = NodeOptions::new(config);
        if quic {
            let q = QuicOptions::pinned(lo, name).unwrap();
            start_with_quic(options, transport, q).unwrap()
        } else {
            Node::start(options, transport).unwrap()
        }
    }

    /// Starts a query to the lone node and returns it as delivered, with its results.
    async fn ask(agent: &Node) -> (QueryEvent, QueryResults) {
        let mut events = agent.subscribe();
        let params = QueryParams {
            timeout: Duration::from_secs(10),
            finish_early: true,
            ..QueryParams::default()
        };
        let results = agent.query("q", b"", params).await.unwrap();
        let q = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(Event::Query(q)) = events.recv().await {
                    return q;
                }
            }
        })
        .await
        .unwrap();
        (q, results)
    }

    async fn collect(mut results: QueryResults) -> Vec<QueryResult> {
        let mut all = Vec::new();
        tokio::time::timeout(WAIT, async {
            while let Some(r) = results.next().await {
                all.push(r);
            }
        })
        .await
        .unwrap();
        all
    }

    #[tokio::test]
    async fn small_replies_take_udp_and_large_ones_quic() {
        let agent = lone("solo", true).await;
        let (q, results) = ask(&agent).await;
        let mut reply = QueryReply::open(&agent, ReplyTarget::from(&q));
        reply.write(b"tiny").await.unwrap();
        assert!(!reply.is_streaming());
        assert_eq!(reply.finish().await.unwrap(), ReplyPath::Udp { bytes: 4 });
        let all = collect(results).await;
        assert!(all.contains(&QueryResult::Response {
            from: "solo".into(),
            payload: b"tiny".to_vec()
        }));

        let (q, results) = ask(&agent).await;
        let consumer = tokio::spawn(collect(results));
        let mut reply = QueryReply::open(&agent, ReplyTarget::from(&q));
        for _ in 0..5 {
            reply.write(&[9u8; 1000]).await.unwrap();
        }
        assert!(reply.is_streaming());
        assert_eq!(reply.written(), 5000);
        assert_eq!(
            reply.finish().await.unwrap(),
            ReplyPath::Quic { bytes: 5000 }
        );
        let all = consumer.await.unwrap();
        let body: Vec<u8> = all
            .iter()
            .filter_map(|r| match r {
                QueryResult::ResponseChunk { chunk, .. } => Some(chunk.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(body, vec![9u8; 5000]);
        assert!(all.contains(&QueryResult::ResponseEnd {
            from: "solo".into(),
            result: Ok(5000)
        }));
        assert_eq!(all.last(), Some(&QueryResult::Done));
        // The node's one answer is used up by the stream.
        let again = agent.respond(q.ltime, q.id, b"x").await.unwrap_err();
        assert!(again.to_string().contains("already"), "{again}");
    }

    #[tokio::test]
    async fn a_large_reply_to_an_originator_without_quic_is_refused_and_nothing_is_sent() {
        let agent = lone("plain", false).await;
        let (q, results) = ask(&agent).await;
        let mut reply = QueryReply::open(&agent, ReplyTarget::from(&q));
        reply.write(&[1u8; 1000]).await.unwrap();
        let err = reply.write(&[1u8; 1000]).await.unwrap_err();
        assert!(
            matches!(
                err,
                ReplyError::TooLarge {
                    size: 2000,
                    limit: 1024,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("nothing was sent"), "{err}");
        assert!(matches!(reply.write(b"x").await, Err(ReplyError::Failed)));
        drop(reply);
        // Nothing was sent, and the node may still answer within the limit.
        agent.respond(q.ltime, q.id, b"fits").await.unwrap();
        let all = collect(results).await;
        let answers: Vec<_> = all
            .iter()
            .filter(|r| !matches!(r, QueryResult::Done | QueryResult::Ack { .. }))
            .collect();
        assert_eq!(
            answers,
            [&QueryResult::Response {
                from: "plain".into(),
                payload: b"fits".to_vec()
            }]
        );
    }
}
