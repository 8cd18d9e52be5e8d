//! Remote repositories over ssh, speaking `borg serve`'s RPC protocol.

use super::{Location, OpenOptions, Repository, Result};

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("Connection closed by remote host.")]
    ConnectionClosed,
    #[error("Connection closed by remote host. {0}")]
    ConnectionClosedWithHint(String),
    #[error("RPC method {0} is not valid.")]
    InvalidRpcMethod(String),
    #[error("Repository path not allowed: {0}")]
    PathNotAllowed(String),
    #[error("Borg server is too old for {0}. Required version {1}")]
    ServerOutdated(String, String),
    #[error("Got unexpected RPC data format from server:\n{0}")]
    UnexpectedDataFormat(String),
    #[error("{class}: {message}")]
    Rpc { class: String, message: String },
    #[error("remote repositories (ssh://) are not supported by this build yet")]
    Unsupported,
}

pub fn open(_location: &Location, _opts: &OpenOptions) -> Result<Box<dyn Repository>> {
    Err(RemoteError::Unsupported.into())
}
