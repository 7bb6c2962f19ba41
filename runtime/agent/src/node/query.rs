//! A query's results as its originator reads them ([`QueryResults`]): Serf's acks and UDP
//! responses from the node's events, merged with what a side channel delivers (large
//! responses' chunks and ends).

use bytes::Bytes;
use hearsay_serf::event::{Event, QueryId};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// One result of a query this node started.
///
/// A node answers either with one [`QueryResult::Response`] (Serf's UDP path, at most
/// [`super::Node::udp_response_limit`] bytes) or, for a large reply from a hearsay node, with
/// [`QueryResult::ResponseChunk`]s in order followed by one [`QueryResult::ResponseEnd`]
/// (chunks of different nodes interleave). Nothing holds a whole large response: each chunk
/// is at most 64 KiB and the consumer's pace throttles the responders (QUIC flow control).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryResult {
    /// A node acknowledged receiving the query (only when acks were requested).
    Ack {
        /// The node's name.
        from: String,
    },
    /// A node answered (over UDP, whole).
    Response {
        /// The node's name.
        from: String,
        /// The response.
        payload: Vec<u8>,
    },
    /// The next piece of a node's large response (streamed over QUIC).
    ResponseChunk {
        /// The node's name.
        from: String,
        /// The piece, following the node's earlier pieces.
        chunk: Bytes,
    },
    /// A node's large response ended: `Ok(total bytes)` when complete, or why it failed (the
    /// responder died or aborted, a limit was exceeded, the deadline passed). The chunks
    /// delivered before a failure are an incomplete response.
    ResponseEnd {
        /// The node's name.
        from: String,
        /// The response's total bytes, or why it failed.
        result: std::result::Result<u64, String>,
    },
    /// No more results will come.
    Done,
}

/// Where a side channel delivers one query's results ([`super::SideChannel::query_started`]).
pub struct SideQuery {
    /// Large responses' chunks and ends; the channel drops its senders by the query's deadline
    /// (plus a grace for the end records).
    pub results: mpsc::Receiver<QueryResult>,
    /// Dropped when Serf says the query is done, or when the results are dropped: from then on
    /// the channel accepts no new response to it.
    pub registration: Box<dyn Send + Sync>,
}

/// The results of one query, in arrival order: acks and responses, then [`QueryResult::Done`]
/// (which waits for large responses in flight to end, bounded by the query's deadline).
pub struct QueryResults {
    id: QueryId,
    events: broadcast::Receiver<Event>,
    done: bool,
    missed: u64,
    /// Large responses' chunks and ends, from the side channel.
    external: Option<mpsc::Receiver<QueryResult>>,
    registration: Option<Box<dyn Send + Sync>>,
    /// Serf said the query is done; what remains is draining `external`.
    serf_done: bool,
}

impl std::fmt::Debug for QueryResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryResults")
            .field("id", &self.id)
            .field("done", &self.done)
            .field("missed", &self.missed)
            .finish_non_exhaustive()
    }
}

impl QueryResults {
    pub(super) fn new(
        id: QueryId,
        events: broadcast::Receiver<Event>,
        side: Option<SideQuery>,
    ) -> Self {
        let (external, registration) = match side {
            Some(s) => (Some(s.results), Some(s.registration)),
            None => (None, None),
        };
        Self {
            id,
            events,
            done: false,
            missed: 0,
            external,
            registration,
            serf_done: false,
        }
    }

    /// Which query these are the results of.
    pub fn id(&self) -> QueryId {
        self.id
    }

    /// Events skipped because this receiver fell behind; some results may be among them.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The next result; `None` after [`QueryResult::Done`], or when the node stopped first.
    pub async fn next(&mut self) -> Option<QueryResult> {
        if self.done {
            return None;
        }
        loop {
            if self.serf_done {
                // Serf is done; large responses still streaming end by the deadline.
                let next = match self.external.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => None,
                };
                if next.is_none() {
                    self.done = true;
                    return Some(QueryResult::Done);
                }
                return next;
            }
            let received = match self.external.as_mut() {
                Some(rx) => tokio::select! {
                    ev = self.events.recv() => ev,
                    Some(r) = rx.recv() => return Some(r),
                },
                None => self.events.recv().await,
            };
            let ev = match received {
                Ok(ev) => ev,
                Err(RecvError::Lagged(n)) => {
                    self.missed += n;
                    continue;
                }
                Err(RecvError::Closed) => {
                    self.done = true;
                    return None;
                }
            };
            match ev {
                Event::QueryAck { query, from } if query == self.id => {
                    return Some(QueryResult::Ack { from })
                }
                Event::QueryResponse {
                    query,
                    from,
                    payload,
                } if query == self.id => return Some(QueryResult::Response { from, payload }),
                Event::QueryDone { query } if query == self.id => {
                    // No new large response is accepted from now on.
                    self.registration = None;
                    self.serf_done = true;
                }
                _ => {}
            }
        }
    }
}
