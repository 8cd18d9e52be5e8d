//! Keys, envelopes, id functions, TAM and nonce management.
//!
//! * [`key`] — the key kinds (`-e` modes), the secret key material and the runtime [`Key`]
//!   that hashes ids and seals/opens object envelopes.
//! * [`keyblob`] — the passphrase-protected key blob, key files and `key export` formats.
//! * [`lanes`] — HMAC-SHA256 / SHA-256 of many messages at once (two per core).
//! * [`tam`] — tamper-authenticated metadata for manifest and archives.
//! * [`nonce`] — AES-CTR counter allocation with reservations in repository and security dir.
//! * [`passphrase`] — where passphrases come from (environment, command, fd, prompt).
//! * [`security`] — the client's per-repository security directory.

pub mod key;
pub mod keyblob;
pub mod lanes;
pub mod nonce;
pub mod passphrase;
pub mod security;
pub mod tam;

pub use key::{Key, KeyKind, KeyMaterial};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("Passphrase supplied in BORG_PASSPHRASE, by BORG_PASSCOMMAND, or via BORG_PASSPHRASE_FD is incorrect.")]
    PassphraseWrong,
    #[error("Cannot acquire a passphrase: {0}")]
    NoPassphrase(String),
    #[error("Passcommand supplied in BORG_PASSCOMMAND failed: {0}")]
    PasscommandFailure(String),
    #[error("Exceeded the maximum password retries.")]
    PasswordRetriesExceeded,
    #[error(
        "Unsupported payload type {0}. A newer version is required to access this repository."
    )]
    UnsupportedPayload(u8),
    #[error(
        "Unsupported manifest envelope. A newer version is required to access this repository."
    )]
    UnsupportedManifest,
    #[error("No key file for repository {0} found in {1}.")]
    KeyfileNotFound(String, String),
    #[error("Invalid key data for repository {0} found in {1}.")]
    KeyfileInvalid(String, String),
    #[error("Mismatch between repository {0} and key file {1}.")]
    KeyfileMismatch(String, String),
    #[error("No key entry found in the config of repository {0}.")]
    RepoKeyNotFound(String),
    #[error("This file is not a Borg key backup, aborting.")]
    NotABorgKeyFile,
    #[error("This key backup seems to be for a different backup repository, aborting.")]
    RepoIdMismatch,
    #[error("Key management not available for unencrypted repositories.")]
    UnencryptedRepo,
    #[error("Key type {0} is unknown.")]
    UnknownKeyType(u8),
    #[error("Data integrity error: {0}")]
    Integrity(String),
    #[error("Manifest is unauthenticated, but it is required for this repository. This either means that you are under attack, or that you modified this repository with a Borg version older than 1.0.9 after TAM authentication was enabled. In the latter case, use \"borg upgrade --tam --force '{0}'\" to re-authenticate the manifest.")]
    TamRequired(String),
    #[error("Data integrity error: Manifest authentication did not verify")]
    TamInvalid,
    #[error("Could not verify manifest: Unsupported suite {0}; a newer version is needed.")]
    TamUnsupportedSuite(String),
    #[error("Data integrity error: Archive authentication did not verify")]
    ArchiveTamInvalid,
    #[error("Archive '{0}' is unauthenticated, but it is required for this repository.")]
    ArchiveTamRequired(String),
    #[error("Aborting because key in \"{0}\" already exists.")]
    KeyExists(String),
    #[error("{0}")]
    Other(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
}

impl CryptoError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> CryptoError {
        CryptoError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

/// Fills `buf` from the OS CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::getrandom(buf).expect("OS random number generator failed");
}

/// Fills a fresh buffer from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("OS random number generator failed");
    b
}
