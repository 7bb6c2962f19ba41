//! The embedder's side of the contract: what the host calls back into while a handler runs
//! (member information, query replies, emitted events).
//!
//! The agent implements [`Embedder`]. Its methods are async and run inside the guest's call, on
//! the host's own runtime (tokio, timers and I/O enabled): a guest waiting on one holds no
//! thread, and the event's deadline covers the wait. When the deadline passes, the future is
//! dropped where it stands, so an embedder's futures must be cancel-safe: dropping a
//! [`ReplySink`] mid-write abandons the reply.

use async_trait::async_trait;

use crate::event::{Member, Query};

/// Why a reply was refused; mirrors the WIT `reply-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The event being handled is not a query.
    #[error("the event is not a query")]
    NotAQuery,
    /// The query was already answered.
    #[error("the query was already answered")]
    AlreadyReplied,
    /// The reply would exceed what the asker can receive (bytes).
    #[error("reply exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// The reply channel is gone.
    #[error("reply channel closed: {0}")]
    Closed(String),
}

/// Why an emitted user event was refused; mirrors the WIT `emit-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The handler's grant does not allow emitting.
    #[error("the handler is not granted emitting events")]
    NotGranted,
    /// The event exceeds the size limit (bytes).
    #[error("user event exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// The agent refused the event.
    #[error("user event rejected: {0}")]
    Rejected(String),
}

/// Where one query reply goes, written chunk by chunk so a large reply is never held whole.
///
/// The host calls `write` any number of times, then `finish` once. A sink dropped without
/// `finish` means the reply was abandoned (the guest dropped its stream, trapped, or hit its
/// deadline, possibly in the middle of a `write`): the embedder should discard what it sent or
/// tell the asker.
#[async_trait]
pub trait ReplySink: Send {
    /// Appends `chunk` to the reply (may wait while the asker is slow to read).
    async fn write(&mut self, chunk: &[u8]) -> Result<(), ReplyError>;
    /// Completes the reply.
    async fn finish(self: Box<Self>) -> Result<(), ReplyError>;
}

/// What the host needs from its embedder while a handler runs. One `Arc<dyn Embedder>` is given
/// with every dispatched event, so an embedder may carry per-event context (e.g. the query's
/// return address).
#[async_trait]
pub trait Embedder: Send + Sync {
    /// This node.
    async fn local_member(&self) -> Member;
    /// Every known member, including this node.
    async fn members(&self) -> Vec<Member>;
    /// Opens the reply to `query`. The host calls this at most once per query event (it enforces
    /// "one reply per query" itself).
    fn open_reply(&self, query: &Query) -> Result<Box<dyn ReplySink>, ReplyError>;
    /// Broadcasts a user event. Called only for handlers whose grant allows emitting.
    async fn emit(&self, name: &str, payload: &[u8], coalesce: bool) -> Result<(), EmitError>;
    /// Sets this node's tag `name` to `value`, or removes it (`None`), and gossips the change.
    /// Called only for tag names a pattern of the handler's `grants.tags` matches; `Err` says
    /// why the agent refused. The default refuses: an embedder without tags.
    async fn set_tag(&self, name: &str, value: Option<&str>) -> Result<(), String> {
        let _ = (name, value);
        Err("this agent does not let handlers set tags".into())
    }
}
