//! Requests and replies over the endpoint's pinned connections: the asking side's
//! [`QuicEndpoint::request`], and the answering side's [`IncomingRequests`] /
//! [`IncomingRequest`] (framing in [`super::request`]).
//!
//! A request is one bidirectional stream on the connection the endpoint caches for the peer
//! (the same one large responses use): the asker writes the request header and body and
//! finishes its half; the answerer reads both within [`QuicConfig::header_timeout`], hands the
//! request to the embedder, and writes the reply (status, length, body) on the other half.
//! Either side that gives up says why with a [`StopCode`]: an endpoint that does not serve
//! requests refuses with [`StopCode::NoRequests`], an answerer that drops the request
//! unanswered with [`StopCode::Unanswered`], so the asker always gets an error, never a hang
//! (short of a peer that stalls without closing, which the caller's timeout bounds).
//!
//! [`QuicConfig::header_timeout`]: super::QuicConfig::header_timeout

use super::endpoint::{read_error, Shared, StopCode, Stream};
use super::request::{
    error_message, ReplyHeader, ReplyStatus, RequestHeader, MAX_ERROR_LEN, REPLY_HEADER_LEN,
};
use super::{Fingerprint, QuicAdvert, QuicEndpoint, QuicError};
use std::net::SocketAddr;
use tokio::sync::mpsc;

/// What a request body read reserves at most before data arrives: a peer that declares a
/// large body and sends little costs only what it sent.
const INITIAL_CAPACITY: usize = 64 << 10;

/// What a stop or reset with `code` means on a request stream, for error messages.
pub(super) fn describe_request(code: u64) -> String {
    let what = match StopCode::from_code(code) {
        Some(StopCode::HeaderRejected) => "the peer rejected the request stream",
        Some(StopCode::NoRequests) => "the peer does not serve requests",
        Some(StopCode::RequestLimit) => "the request body exceeded the peer's request limit",
        Some(StopCode::ReplyLimit) => "the reply exceeded the requester's limit",
        Some(StopCode::Unanswered) => "the peer dropped the request unanswered",
        Some(StopCode::Aborted) => "the peer aborted the reply",
        Some(StopCode::Dropped) => "the requester dropped the reply",
        _ => "stream stopped for an unknown reason",
    };
    format!("{what} (code {code})")
}

impl QuicEndpoint {
    /// Asks the endpoint at `peer` a question: connects (or reuses the cached connection),
    /// opens a stream, writes the request for `service` with `body`, and returns the reply's
    /// body.
    ///
    /// Fails with [`QuicError::Refused`] carrying the peer's reason when it answered with an
    /// error (e.g. "no such module", or a body over its
    /// [`Limits::max_request`](super::Limits::max_request), which it says before reading the
    /// body); [`QuicError::ReplyLimit`] naming both sizes when the reply declares more than
    /// `max_reply` bytes (refused before its body is read); [`QuicError::RequestStopped`] when
    /// the peer refused the stream (see [`QuicError::stop_code`]: it does not serve requests,
    /// or dropped the request unanswered); [`QuicError::Connect`] or [`QuicError::Request`]
    /// when the connection failed or the reply was malformed.
    ///
    /// Nothing here bounds time: a peer that accepts the stream and never answers keeps it
    /// waiting as long as the connection lives. Bound it with `tokio::time::timeout`;
    /// dropping the future abandons the request.
    pub async fn request(
        &self,
        peer: &QuicAdvert,
        service: u8,
        body: &[u8],
        max_reply: u64,
    ) -> Result<Vec<u8>, QuicError> {
        let addr = peer.addr;
        let body_len = u32::try_from(body.len()).map_err(|_| QuicError::Request {
            addr,
            reason: format!(
                "the request body of {} bytes does not fit the 32-bit length field",
                body.len()
            ),
        })?;
        let (mut send, mut recv) = self.open_raw_stream(peer).await?;
        let header = RequestHeader { service, body_len }.encode();
        let sent = write_request(&mut send, &header, body, addr).await;
        // Read the reply even when the peer stopped our request early: an error reply says why.
        let reply = read_reply(&mut recv, addr, max_reply).await;
        match (sent, reply) {
            (Ok(()), reply) => reply,
            (Err(_), Err(refused @ QuicError::Refused { .. })) => Err(refused),
            (Err(e), _) => Err(e),
        }
    }
}

async fn write_request(
    send: &mut quinn::SendStream,
    header: &[u8],
    body: &[u8],
    addr: SocketAddr,
) -> Result<(), QuicError> {
    let failed = |e| write_error(addr, e);
    send.write_all(header).await.map_err(failed)?;
    send.write_all(body).await.map_err(failed)?;
    send.finish().map_err(|_| QuicError::Request {
        addr,
        reason: "the request stream was closed before it was finished".into(),
    })
}

fn write_error(addr: SocketAddr, e: quinn::WriteError) -> QuicError {
    match e {
        quinn::WriteError::Stopped(code) => QuicError::RequestStopped {
            addr,
            code: code.into_inner(),
        },
        quinn::WriteError::ConnectionLost(c) => QuicError::Request {
            addr,
            reason: format!("connection lost: {c}"),
        },
        other => QuicError::Request {
            addr,
            reason: other.to_string(),
        },
    }
}

fn reply_read_error(addr: SocketAddr, e: quinn::ReadError) -> QuicError {
    match e {
        quinn::ReadError::Reset(code) => QuicError::RequestStopped {
            addr,
            code: code.into_inner(),
        },
        other => QuicError::Request {
            addr,
            reason: read_error(&other),
        },
    }
}

/// Why [`read_exactly`] stopped short.
enum ShortRead {
    /// The stream ended after this many bytes.
    Ended(usize),
    /// Reading failed.
    Read(quinn::ReadError),
}

/// Reads exactly `len` bytes (one copy out of quinn's buffers), reserving at most `reserve`
/// bytes before they arrive.
async fn read_exactly(
    recv: &mut quinn::RecvStream,
    len: usize,
    reserve: usize,
) -> Result<Vec<u8>, ShortRead> {
    let mut body = Vec::with_capacity(len.min(reserve));
    while body.len() < len {
        match recv.read_chunk(len - body.len(), true).await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk.bytes),
            Ok(None) => return Err(ShortRead::Ended(body.len())),
            Err(e) => return Err(ShortRead::Read(e)),
        }
    }
    Ok(body)
}

/// Reads a reply: its header, a body within `max_reply` (an error message within
/// [`MAX_ERROR_LEN`]), and the end of the stream right after it.
async fn read_reply(
    recv: &mut quinn::RecvStream,
    addr: SocketAddr,
    max_reply: u64,
) -> Result<Vec<u8>, QuicError> {
    let malformed = |reason: String| QuicError::Request {
        addr,
        reason: format!("malformed reply: {reason}"),
    };
    let mut head = [0u8; REPLY_HEADER_LEN];
    if let Err(e) = recv.read_exact(&mut head).await {
        return Err(match e {
            quinn::ReadExactError::FinishedEarly(n) => QuicError::Request {
                addr,
                reason: format!("the peer ended the stream after {n} bytes, before its reply"),
            },
            quinn::ReadExactError::ReadError(e) => reply_read_error(addr, e),
        });
    }
    let header = match ReplyHeader::decode(&head) {
        Ok(h) => h,
        Err(e) => {
            let _ = recv.stop(StopCode::HeaderRejected.varint());
            return Err(malformed(e.to_string()));
        }
    };
    let declared = header.body_len;
    // A peer's declared length is only a claim: memory grows as bytes arrive, from a modest
    // start, so a peer cannot make us reserve `max_reply` with a header alone.
    let (limit, reserve) = match header.status {
        ReplyStatus::Ok => (max_reply, INITIAL_CAPACITY),
        ReplyStatus::Error => (MAX_ERROR_LEN as u64, MAX_ERROR_LEN),
    };
    let Some(len) = usize::try_from(declared).ok().filter(|_| declared <= limit) else {
        let _ = recv.stop(StopCode::ReplyLimit.varint());
        return Err(match header.status {
            ReplyStatus::Ok => QuicError::ReplyLimit {
                addr,
                len: declared,
                limit: max_reply,
            },
            ReplyStatus::Error => malformed(format!(
                "error message of {declared} bytes exceeds {MAX_ERROR_LEN} bytes"
            )),
        });
    };
    let body = match read_exactly(recv, len, reserve).await {
        Ok(body) => body,
        Err(ShortRead::Ended(n)) => {
            return Err(malformed(format!(
                "the reply ended after {n} of its {len} bytes"
            )))
        }
        Err(ShortRead::Read(e)) => return Err(reply_read_error(addr, e)),
    };
    match recv.read_to_end(0).await {
        Ok(_) => {}
        Err(quinn::ReadToEndError::TooLong) => {
            let _ = recv.stop(StopCode::HeaderRejected.varint());
            return Err(malformed(format!(
                "the reply is longer than its declared {len} bytes"
            )));
        }
        Err(quinn::ReadToEndError::Read(e)) => return Err(reply_read_error(addr, e)),
    }
    match header.status {
        ReplyStatus::Ok => Ok(body),
        ReplyStatus::Error => Err(QuicError::Refused {
            addr,
            reason: String::from_utf8_lossy(&body).into_owned(),
        }),
    }
}

/// Writes a reply's header and body and finishes the stream. The body is not gathered with
/// the header: it is copied once, into quinn's send buffer, as flow control admits it.
async fn write_reply(
    send: &mut quinn::SendStream,
    status: ReplyStatus,
    body: &[u8],
) -> Result<(), String> {
    let header = ReplyHeader {
        status,
        body_len: body.len() as u64,
    }
    .encode();
    let failed = |e: quinn::WriteError| match e {
        quinn::WriteError::Stopped(code) => describe_request(code.into_inner()),
        quinn::WriteError::ConnectionLost(c) => format!("connection lost: {c}"),
        other => other.to_string(),
    };
    send.write_all(&header).await.map_err(failed)?;
    send.write_all(body).await.map_err(failed)?;
    send.finish()
        .map_err(|_| "the stream was closed before the reply was finished".to_owned())
}

/// Serves one request stream whose header has been read: refuses it when nobody takes
/// requests or its body is over the limit, else reads the body (by `deadline`) and hands it
/// to [`IncomingRequests`].
pub(super) async fn serve_request(
    mut stream: Stream,
    header: RequestHeader,
    peer: Fingerprint,
    remote: SocketAddr,
    deadline: tokio::time::Instant,
    shared: &Shared,
) {
    let service = header.service;
    let Some(requests) = shared.requests.clone() else {
        tracing::debug!(
            "QUIC: refused a request from {remote} ({peer}) for service {service}: this endpoint does not serve requests"
        );
        stream.refuse(StopCode::NoRequests);
        return;
    };
    let limit = shared.limits.max_request;
    if u64::from(header.body_len) > limit {
        tracing::warn!(
            "QUIC: refused a request from {remote} ({peer}) for service {service}: its body of {} bytes exceeds the request limit of {limit} bytes",
            header.body_len
        );
        let _ = stream.recv.stop(StopCode::RequestLimit.varint());
        let reason = format!(
            "request body of {} bytes exceeds the peer's limit of {limit} bytes",
            header.body_len
        );
        let written = tokio::time::timeout(
            shared.header_timeout,
            write_reply(&mut stream.verdict, ReplyStatus::Error, reason.as_bytes()),
        )
        .await;
        if !matches!(written, Ok(Ok(()))) {
            let _ = stream.verdict.reset(StopCode::RequestLimit.varint());
        }
        return;
    }
    let len = header.body_len as usize;
    let read = async {
        let body = read_exactly(&mut stream.recv, len, INITIAL_CAPACITY)
            .await
            .map_err(|e| match e {
                ShortRead::Ended(n) => format!("the request ended after {n} of its {len} bytes"),
                ShortRead::Read(e) => format!("reading the request: {}", read_error(&e)),
            })?;
        match stream.recv.read_to_end(0).await {
            Ok(_) => Ok(body),
            Err(quinn::ReadToEndError::TooLong) => Err(format!(
                "the request is longer than its declared {len} bytes"
            )),
            Err(quinn::ReadToEndError::Read(e)) => {
                Err(format!("reading the request: {}", read_error(&e)))
            }
        }
    };
    let body = match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(why)) => {
            tracing::warn!("QUIC: rejected a request stream from {remote} ({peer}): {why}");
            stream.refuse(StopCode::HeaderRejected);
            return;
        }
        Err(_) => {
            tracing::warn!(
                "QUIC: rejected a request stream from {remote} ({peer}): its header and {len}-byte body did not arrive within {:?}",
                shared.header_timeout
            );
            stream.refuse(StopCode::HeaderRejected);
            return;
        }
    };
    let request = IncomingRequest {
        service,
        peer,
        remote,
        body,
        reply: Some(stream.verdict),
    };
    if let Err(mpsc::error::SendError(refused)) = requests.send(request).await {
        refused.refuse(StopCode::NoRequests);
    }
}

/// The requests arriving at an endpoint bound with [`QuicEndpoint::bind_with_requests`].
pub struct IncomingRequests {
    rx: mpsc::Receiver<IncomingRequest>,
}

impl IncomingRequests {
    pub(super) fn new(rx: mpsc::Receiver<IncomingRequest>) -> Self {
        Self { rx }
    }

    /// The next request whose body has arrived; `None` once the endpoint is gone.
    pub async fn next(&mut self) -> Option<IncomingRequest> {
        self.rx.recv().await
    }
}

/// One request, its body read whole (at most [`Limits::max_request`] bytes). Answer it with
/// [`IncomingRequest::reply`] or [`IncomingRequest::fail`]; dropping it unanswered resets the
/// stream with [`StopCode::Unanswered`], so the asker gets an error, never a hang.
///
/// [`Limits::max_request`]: super::Limits::max_request
pub struct IncomingRequest {
    /// The service asked (the embedder's numbering).
    pub service: u8,
    /// The fingerprint of the certificate the asker presented: check it against the member
    /// you expect before answering anything that is not public.
    pub peer: Fingerprint,
    /// The asker's UDP address.
    pub remote: SocketAddr,
    /// The request body.
    pub body: Vec<u8>,
    /// The stream's reply half, until the reply is finished (or the request refused).
    reply: Option<quinn::SendStream>,
}

impl std::fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingRequest")
            .field("service", &self.service)
            .field("peer", &self.peer)
            .field("remote", &self.remote)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl IncomingRequest {
    /// Answers with `body`, which may be large: it is written as the asker's flow control
    /// admits it, copied once into quinn's send buffer. Returns once the asker has
    /// acknowledged all of it; fails with [`QuicError::Reply`] if the asker refused it (e.g.
    /// over its `max_reply`) or the connection was lost. Bound it with
    /// `tokio::time::timeout` if the asker may stall; dropping the future resets the stream
    /// unless the reply was already finished.
    pub async fn reply(mut self, body: &[u8]) -> Result<(), QuicError> {
        self.answer(ReplyStatus::Ok, body).await
    }

    /// Answers with an error: the asker's [`QuicEndpoint::request`] fails with
    /// [`QuicError::Refused`] carrying `reason` (cut to
    /// [`MAX_ERROR_LEN`](super::request::MAX_ERROR_LEN) bytes). Fails as
    /// [`IncomingRequest::reply`] does.
    pub async fn fail(mut self, reason: &str) -> Result<(), QuicError> {
        self.answer(ReplyStatus::Error, error_message(reason).as_bytes())
            .await
    }

    async fn answer(&mut self, status: ReplyStatus, body: &[u8]) -> Result<(), QuicError> {
        let addr = self.remote;
        let Some(send) = self.reply.as_mut() else {
            return Err(QuicError::Reply {
                addr,
                reason: "the request was already answered".into(),
            });
        };
        // Until the reply is finished the stream stays in `self.reply`, so a failure or a
        // dropped future resets it (in `Drop`) rather than leaving a short reply.
        write_reply(send, status, body)
            .await
            .map_err(|reason| QuicError::Reply { addr, reason })?;
        let Some(send) = self.reply.take() else {
            return Ok(());
        };
        match send.stopped().await {
            Ok(None) => Ok(()),
            Ok(Some(code)) => Err(QuicError::Reply {
                addr,
                reason: describe_request(code.into_inner()),
            }),
            Err(e) => Err(QuicError::Reply {
                addr,
                reason: e.to_string(),
            }),
        }
    }

    /// Refuses the request with `code` instead of answering it.
    fn refuse(mut self, code: StopCode) {
        if let Some(mut send) = self.reply.take() {
            let _ = send.reset(code.varint());
        }
    }
}

impl Drop for IncomingRequest {
    fn drop(&mut self) {
        if let Some(mut send) = self.reply.take() {
            // quinn would finish a dropped stream, which the asker would read as a short
            // reply: say that nobody answered.
            let _ = send.reset(StopCode::Unanswered.varint());
        }
    }
}
