//! Archives: manifest, archive metadata, items, caches, and the create/extract pipelines.

pub mod cache;
pub mod check;
pub mod chunkstore;
pub mod create;
pub mod delete;
pub mod diff;
pub mod extract;
pub mod files_cache;
pub mod item;
pub mod itemstream;
pub mod manifest;
pub mod meta;
pub mod patterns;
pub mod prune;
pub mod recreate;
pub mod session;
pub mod tar;
pub mod upgrade;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error(transparent)]
    Security(#[from] crate::crypto::security::SecurityError),
    #[error("Repository has no manifest.")]
    NoManifest,
    #[error("Unsupported repository feature(s) {0}. A newer version of Borg is required to access this repository.")]
    MandatoryFeatureUnsupported(String),
    #[error("Archive {0} already exists")]
    AlreadyExists(String),
    #[error("Archive {0} does not exist")]
    DoesNotExist(String),
    #[error("Decompression error: {0}")]
    Decompress(String),
    #[error("Data integrity error: {0}")]
    Corrupt(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Ctrl-C during `create`: a checkpoint was written, the archive is not.
    #[error("Got Ctrl-C / SIGINT.")]
    Interrupted,
    #[error("{0}")]
    Other(String),
}

impl ArchiveError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ArchiveError {
        ArchiveError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;
