//! Why the agent could not start or had to stop ([`Error`]): the composition's error, one
//! variant per concern, each keeping its cause as a source. The layers below have their own:
//! [`crate::NodeError`], [`crate::replies::ReplyError`], [`crate::handlers::Error`],
//! [`crate::config::ConfigError`], [`crate::SnapshotError`].

use thiserror::Error;

/// Why the agent could not start or had to stop. Every message names its cause on one line
/// (`hearsay agent` prints only this line).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The node failed: a bind, a join, a command, or it stopped.
    #[error(transparent)]
    Node(#[from] crate::node::Error),
    /// The QUIC endpoint for large responses could not start.
    #[error(transparent)]
    Replies(#[from] crate::replies::ReplyError),
    /// The agent's flags or config files are wrong (the message names the file or flag, and
    /// the key).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A WebAssembly handler could not be loaded, or the handler set is not valid.
    #[error(transparent)]
    Handlers(#[from] crate::handlers::Error),
    /// The deploy directory could not be opened.
    #[error("deploy directory {0}")]
    Deploy(String),
    /// The snapshot file could not be read, written or compacted.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    /// The RPC server could not start (its address could not be bound).
    #[error(transparent)]
    Rpc(#[from] hearsay_rpc::Error),
    /// The `-tags-file` could not be read or is not a JSON object of strings (the message
    /// names the file).
    #[error("tags file: {0}")]
    TagsFile(String),
    /// `-iface` names no usable interface, or one without the `-bind` address (Serf's words).
    #[error(transparent)]
    Interface(hearsay_net::Error),
    /// `-keyring-file` could not be read.
    #[error("cannot read keyring file {}: {source}", path.display())]
    KeyringFile {
        /// The keyring file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `-encrypt` or `-keyring-file` does not give a usable keyring (`what` names which).
    #[error("{what}: {source}")]
    Keyring {
        /// Which: `keyring file PATH`, or the encryption key.
        what: String,
        /// Why the key or keyring is not usable.
        #[source]
        source: hearsay_swim::Error,
    },
    /// The log output could not be installed (a global subscriber already exists).
    #[error("logging: {0}")]
    Logging(#[source] tracing_subscriber::util::TryInitError),
    /// A signal handler could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// `-retry-join` gave up after `retry_max` failed attempts; the last failure is kept.
    #[error("retry-join: giving up after {attempts} attempts; last error: {last}")]
    RetryJoinExhausted {
        /// How many attempts failed.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        last: Box<Error>,
    },
    /// Another node holds our name and the cluster voted for it (Serf's name conflict).
    #[error("another node uses the name {name:?} and the cluster voted for it ({matching} of {responses} members know us at our address); start this node with a unique name")]
    NameConflict {
        /// Our node name.
        name: String,
        /// How many members know us at our address.
        matching: usize,
        /// How many members answered the vote.
        responses: usize,
    },
}

/// A join address that does not resolve is a configuration error (the `-join` /
/// `-retry-join` address is named in it).
impl From<crate::conventions::AddrError> for Error {
    fn from(e: crate::conventions::AddrError) -> Self {
        Self::Config(crate::config::ConfigError::Addr(e))
    }
}

impl From<hearsay_net::Error> for Error {
    fn from(e: hearsay_net::Error) -> Self {
        Self::Node(e.into())
    }
}

/// Shorthand for results in the agent's composition.
pub type Result<T, E = Error> = std::result::Result<T, E>;
