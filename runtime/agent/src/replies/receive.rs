//! The originator's and the relay's side of incoming response streams.
//!
//! The transport (`hearsay_net::quic`) knows nothing of Serf; this is where a response stream
//! becomes "node X's answer to query (ltime, id)": it checks that the stream's certificate is
//! the one node X advertises, counts it as X's answer in the Serf layer
//! (`handle_external_response`), and streams the body to the query's consumer bounded by the
//! query's deadline. It is also where a relay node forwards another responder's stream to the
//! originator its relay header names (relay factor), and where the originator refuses the
//! copies of a response that came second (`StopCode::Duplicate`).

use super::reply::open_stream;
use super::wire::{advert_of, bump, RunningQuery, Shared};
use crate::node::{Node, QueryResult};
use bytes::Bytes;
use hearsay_net::quic::{IncomingResponse, IncomingResponses, QuicEndpoint, QuicError, StopCode};
use hearsay_serf::event::{Event, MemberStatus, QueryId};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// How often the admitted-certificate set is refreshed from the member list even without a
/// member event (member events may be coalesced for seconds).
const MEMBER_REFRESH: Duration = Duration::from_secs(1);
/// The most bytes one [`QueryResult::ResponseChunk`] carries. QUIC hands out packet-sized
/// pieces (~1.4 KB); whatever has already arrived is joined up to this size, so consumers
/// (and RPC clients) see few large chunks, never a piece that waits for more data.
const MAX_CHUNK: usize = 64 << 10;
/// How long a finished or failed response waits to hand its end record to a slow consumer
/// after the query's deadline.
const END_GRACE: Duration = Duration::from_secs(10);

/// Keeps the admitted-certificate set in step with the member list: on every member event and
/// every [`MEMBER_REFRESH`].
pub(super) async fn watch_members(agent: Node, shared: Arc<Shared>) {
    let mut events = agent.subscribe();
    let mut tick = tokio::time::interval(MEMBER_REFRESH);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(Event::Member(_)) | Err(RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {}
            _ = shared.refresh_now.notified() => {}
        }
        match agent.members().await {
            Ok(members) => shared.refresh(&members),
            Err(_) => return,
        }
    }
}

/// Every incoming stream: a relay header naming another originator is forwarded
/// ([`relay`]); anything else is a response to one of this node's queries
/// ([`accept_response`]). Each is handled in its own task, so a slow member-list lookup or
/// a relay's dial never holds up the next stream.
pub(super) async fn receive(
    agent: Node,
    shared: Arc<Shared>,
    endpoint: QuicEndpoint,
    mut incoming: IncomingResponses,
) {
    while let Some(resp) = incoming.next().await {
        let for_other = resp
            .header
            .relay
            .as_ref()
            .is_some_and(|r| r.origin != agent.name());
        if for_other {
            tokio::spawn(relay(agent.clone(), shared.clone(), endpoint.clone(), resp));
        } else {
            tokio::spawn(accept_response(agent.clone(), shared.clone(), resp));
        }
    }
}

/// The originator's side: a response is matched to a running query, checked against the
/// advert of the node it claims to be from (or, relayed, against the member list: the relay
/// node vouches for the responder, as a Serf relay does), counted by the Serf layer (the first
/// stream per node wins; later ones are refused as duplicates), and its body streamed to the
/// query's consumer.
async fn accept_response(agent: Node, shared: Arc<Shared>, resp: IncomingResponse) {
    let h = &resp.header;
    let (ltime, id, from) = (h.ltime, h.query_id, h.from.clone());
    let relayed_by = h.relay.as_ref().map(|_| {
        shared
            .admitted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&resp.peer)
            .cloned()
    });
    let via = match &relayed_by {
        None => String::from("directly"),
        Some(Some(node)) => format!("relayed by {node:?}"),
        Some(None) => format!("relayed by an unknown certificate {}", resp.peer),
    };
    let Some(query) = shared.running((ltime, id)) else {
        if relayed_by.is_some() {
            // A relayed copy often trails the direct one past the query's end.
            tracing::debug!(
                "agent.quic: dropping a response from {from:?} ({via}) to an unknown or finished query (ltime {ltime}, id {id})"
            );
        } else {
            tracing::warn!(
                "agent.quic: dropping a response from {from:?} ({}) to an unknown or finished query (ltime {ltime}, id {id})",
                resp.remote
            );
        }
        return;
    };
    match &relayed_by {
        None => {
            let Ok(members) = agent.members().await else {
                return;
            };
            let advertised = members
                .iter()
                .find(|m| m.name == from)
                .and_then(advert_of)
                .map(|a| a.fingerprint);
            if advertised != Some(resp.peer) {
                let want = advertised.map_or_else(|| "no advert".to_owned(), |f| f.to_string());
                tracing::warn!(
                    "agent.quic: refusing a response claiming to be from {from:?} ({}): its certificate {} is not the one {from:?} advertises ({want})",
                    resp.remote,
                    resp.peer
                );
                return;
            }
        }
        Some(None) => {
            // The peer filter admits only members' certificates, so this is a member that
            // left between its handshake and now.
            tracing::warn!(
                "agent.quic: refusing a response from {from:?} {via} ({}): the relay is not a member",
                resp.remote
            );
            return;
        }
        Some(Some(_)) => {}
    }
    let counted = {
        let from = from.clone();
        agent
            .handle()
            .call(move |serf, _| serf.handle_external_response(ltime, id, &from))
            .await
    };
    let qid = match counted {
        Ok(Ok(qid)) => qid,
        Ok(Err(hearsay_serf::Error::AlreadyResponded)) => {
            bump(&shared.stats.duplicates_dropped);
            tracing::debug!(
                "agent.quic: dropped a duplicate response from {from:?} ({via}) to query (ltime {ltime}, id {id}): its response already arrived"
            );
            resp.body.refuse(StopCode::Duplicate);
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(
                "agent.quic: dropping the response from {from:?} ({via}) to query (ltime {ltime}, id {id}): {e}"
            );
            return;
        }
        Err(_) => return,
    };
    if relayed_by.is_some() {
        bump(&shared.stats.relayed_accepted);
        tracing::debug!(
            "agent.quic: taking the response from {from:?} ({via}) to query (ltime {ltime}, id {id})"
        );
    }
    stream_body(agent, resp, query, qid).await;
}

/// A relay node's side: checks that the stream comes from the node it names and that the
/// originator it names is the member gossip knows (same advert, so the originator's
/// certificate is pinned exactly as for a direct response), opens a stream to the originator
/// with the same header, and pipes the body through one chunk at a time (at most
/// [`MAX_CHUNK`] held here, QUIC flow control pacing both sides). The end passes through both
/// ways: the responder's end or failure goes on to the originator, and the originator's
/// verdict (taken whole, or refused with a reason such as a duplicate) comes back to the
/// responder. Nothing runs past the query's deadline as the responder gave it.
async fn relay(agent: Node, shared: Arc<Shared>, endpoint: QuicEndpoint, resp: IncomingResponse) {
    let IncomingResponse {
        header,
        peer,
        remote,
        mut body,
    } = resp;
    let Some(r) = header.relay.clone() else {
        return;
    };
    let (ltime, id, from) = (header.ltime, header.query_id, header.from.clone());
    let what = format!(
        "the response from {from:?} to {:?}'s query (ltime {ltime}, id {id})",
        r.origin
    );
    let deadline = Instant::now() + Duration::from_millis(u64::from(r.remaining_ms));
    let Ok(members) = agent.members().await else {
        return;
    };
    let advert_of_alive = |name: &str| {
        members
            .iter()
            .find(|m| m.name == name)
            .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Leaving))
            .and_then(advert_of)
    };
    if advert_of_alive(&from).map(|a| a.fingerprint) != Some(peer) {
        tracing::warn!(
            "agent.quic: refusing to relay {what} from {remote}: its certificate {peer} is not the one {from:?} advertises"
        );
        body.refuse(StopCode::RelayFailed);
        return;
    }
    let origin = match advert_of_alive(&r.origin) {
        Some(a) if a == r.origin_advert => a,
        other => {
            let known = other.map_or_else(
                || "no advert of an alive member".to_owned(),
                |a| a.to_string(),
            );
            tracing::warn!(
                "agent.quic: refusing to relay {what}: the header names the originator's endpoint {} but gossip says {known}",
                r.origin_advert
            );
            body.refuse(StopCode::RelayFailed);
            return;
        }
    };
    let mut onward = match open_stream(&endpoint, &origin, &header, deadline).await {
        Ok(w) => w,
        Err(e) => {
            tracing::info!("agent.quic: cannot relay {what}: {e}");
            body.refuse(StopCode::RelayFailed);
            return;
        }
    };
    bump(&shared.stats.relays_forwarded);
    tracing::debug!("agent.quic: relaying {what} to {origin}");
    body.hold_verdict();
    let deadline = tokio::time::Instant::from_std(deadline);
    let failed = |e: &QuicError| e.stop_code().unwrap_or(StopCode::RelayFailed);
    loop {
        match tokio::time::timeout_at(deadline, body.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                match tokio::time::timeout_at(deadline, onward.write(&chunk)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        log_relay_end(&what, &e);
                        body.refuse(failed(&e));
                        return;
                    }
                    Err(_) => {
                        tracing::info!(
                            "agent.quic: gave up relaying {what}: the query's deadline passed"
                        );
                        body.refuse(StopCode::RelayFailed);
                        return;
                    }
                }
            }
            Ok(Ok(None)) => {
                match tokio::time::timeout_at(deadline, onward.finish()).await {
                    Ok(Ok(())) => {
                        bump(&shared.stats.relays_delivered);
                        body.accept();
                    }
                    Ok(Err(e)) => {
                        log_relay_end(&what, &e);
                        body.refuse(failed(&e));
                    }
                    Err(_) => {
                        tracing::info!(
                            "agent.quic: gave up relaying {what}: the query's deadline passed"
                        );
                        body.refuse(StopCode::RelayFailed);
                    }
                }
                return;
            }
            Ok(Err(e)) => {
                // The responder's side failed: the originator sees this copy aborted.
                tracing::debug!("agent.quic: {what} failed on its way in: {e}");
                onward.abort();
                return;
            }
            Err(_) => {
                tracing::info!("agent.quic: gave up relaying {what}: the query's deadline passed");
                onward.abort();
                body.refuse(StopCode::RelayFailed);
                return;
            }
        }
    }
}

/// A relayed copy refused as a duplicate is the normal case (another path was first).
fn log_relay_end(what: &str, e: &QuicError) {
    if e.stop_code() == Some(StopCode::Duplicate) {
        tracing::debug!("agent.quic: the originator already had {what}; dropped this copy");
    } else {
        tracing::info!("agent.quic: relaying {what} failed: {e}");
    }
}

/// Forwards one response body chunk by chunk, bounded by the query's deadline, then reports
/// how it ended and releases the Serf layer's hold on finishing early.
async fn stream_body(agent: Node, resp: IncomingResponse, query: RunningQuery, qid: QueryId) {
    let IncomingResponse {
        header, mut body, ..
    } = resp;
    let from = header.from;
    let deadline = tokio::time::Instant::from_std(query.deadline);
    let mut pending: Option<Result<Option<Bytes>, QuicError>> = None;
    let result = loop {
        let received = body.received();
        let next = match pending.take() {
            Some(r) => Ok(r),
            None => tokio::time::timeout_at(deadline, body.chunk()).await,
        };
        match next {
            Err(_) => {
                break Err(format!(
                    "the query's deadline passed after {received} bytes"
                ))
            }
            Ok(Ok(None)) => break Ok(received),
            Ok(Err(e)) => break Err(e.to_string()),
            Ok(Ok(Some(first))) => {
                let mut joined: Option<Vec<u8>> = None;
                // Join what has already arrived (a zero timeout polls once), up to MAX_CHUNK.
                while joined.as_ref().map_or(first.len(), Vec::len) < MAX_CHUNK {
                    match tokio::time::timeout(Duration::ZERO, body.chunk()).await {
                        Err(_) => break,
                        Ok(Ok(Some(more)))
                            if joined.as_ref().map_or(first.len(), Vec::len) + more.len()
                                <= MAX_CHUNK =>
                        {
                            joined
                                .get_or_insert_with(|| {
                                    let mut v = Vec::with_capacity(MAX_CHUNK);
                                    v.extend_from_slice(&first);
                                    v
                                })
                                .extend_from_slice(&more);
                        }
                        // Too big to join, the end, or a failure: handled next round.
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                    }
                }
                let chunk = joined.map_or(first, Bytes::from);
                let rec = QueryResult::ResponseChunk {
                    from: from.clone(),
                    chunk,
                };
                match tokio::time::timeout_at(deadline, query.tx.send(rec)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break Err("nobody is reading the query's results".to_owned()),
                    Err(_) => {
                        break Err(format!(
                            "the query's deadline passed after {} bytes (its reader is slow)",
                            body.received()
                        ))
                    }
                }
            }
        }
    };
    // Dropping the body now refuses an unfinished response, so the responder stops at once.
    drop(body);
    if let Err(e) = &result {
        tracing::warn!(
            "agent.quic: response from {from:?} to query (ltime {}, id {}) failed: {e}",
            qid.ltime,
            qid.id
        );
    }
    let end = QueryResult::ResponseEnd {
        from: from.clone(),
        result,
    };
    let _ = tokio::time::timeout_at(deadline + END_GRACE, query.tx.send(end)).await;
    drop(query);
    let _ = agent
        .handle()
        .call(move |serf, now| serf.handle_external_response_done(now, qid, &from))
        .await;
}
