use std::io;
use std::time::Duration;

/// What can go wrong talking to the resource host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot spawn the resource host: {0}")]
    Spawn(io::Error),
    /// The host refuses to start resources while the node holds no lease.
    #[error("no lease")]
    NoLease,
    /// The host answered the request with an error.
    #[error("resource host refused: {0}")]
    Refused(String),
    #[error("resource host did not answer within {0:?}")]
    Timeout(Duration),
    /// The host process exited (or closed its output); nothing more will be
    /// answered.
    #[error("resource host is gone")]
    HostGone,
    #[error("bad message from resource host: {0}")]
    Protocol(String),
}

pub type Result<T, E = HostError> = std::result::Result<T, E>;
