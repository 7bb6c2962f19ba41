//! Why a call on a [`super::Node`] failed.

use std::time::Duration;
use thiserror::Error;

/// Why a call on a [`super::Node`] failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The driver or a transport failed, the node has stopped ([`hearsay_net::Error::Stopped`]),
    /// or a join contacted no node ([`hearsay_net::Error::JoinFailed`], naming every address
    /// tried with its error).
    #[error(transparent)]
    Net(#[from] hearsay_net::Error),
    /// The Serf layer refused the configuration or a command (too large, not allowed now, ...).
    #[error(transparent)]
    Serf(#[from] hearsay_serf::Error),
    /// A graceful leave did not finish within the time Serf's own timeouts allow.
    #[error("leave did not finish within {0:?}")]
    LeaveTimeout(Duration),
    /// A force-leave's broadcast did not go out within the broadcast timeout (Serf's words).
    #[error("timed out broadcasting node removal")]
    ForceLeaveTimeout(Duration),
}

impl Error {
    /// True when the node's driver task has stopped.
    pub fn is_stopped(&self) -> bool {
        matches!(self, Self::Net(hearsay_net::Error::Stopped))
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_error_names_every_address() {
        let e = Error::from(hearsay_net::Error::JoinFailed {
            errors: vec![("127.0.0.1:1".parse().unwrap(), "refused".into())],
        });
        assert!(e.to_string().contains("127.0.0.1:1: refused"), "{e}");
        assert!(Error::Net(hearsay_net::Error::Stopped).is_stopped());
    }
}
