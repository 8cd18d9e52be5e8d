//! Exit codes: borg's legacy (0/1/2) and modern (`BORG_EXIT_CODES=modern`) schemes, the
//! process-wide warning list, and the mapping of every typed error to borg's message class.

use std::sync::Mutex;

use crate::archive::ArchiveError;
use crate::crypto::security::SecurityError;
use crate::crypto::CryptoError;
use crate::repo::local::lock::LockError;
use crate::repo::remote::RemoteError;
use crate::repo::RepoError;

pub const EXIT_SUCCESS: i32 = 0;
pub const EXIT_WARNING: i32 = 1;
pub const EXIT_ERROR: i32 = 2;
pub const EXIT_SIGNAL_BASE: i32 = 128;

pub fn modern() -> bool {
    std::env::var("BORG_EXIT_CODES").as_deref() == Ok("modern")
}

struct State {
    code: i32,
    warnings: Vec<i32>,
}

static STATE: Mutex<State> = Mutex::new(State {
    code: EXIT_SUCCESS,
    warnings: Vec::new(),
});

fn class(ec: i32) -> u8 {
    match ec {
        0 => 0,
        1 | 100..=127 => 1,
        2..=99 => 2,
        _ => 3,
    }
}

/// Records a warning with its modern code (legacy: 1) and logs its message.
pub fn warn(modern_code: i32, msgid: Option<&str>, msg: &str) {
    crate::log::log_with_msgid(crate::log::Level::Warning, "borg.archiver", msg, msgid);
    add_warning(modern_code);
}

pub fn add_warning(modern_code: i32) {
    let code = if modern() { modern_code } else { EXIT_WARNING };
    STATE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .warnings
        .push(code);
}

/// Raises the exit code if `ec` is more severe.
pub fn set_ec(ec: i32) {
    let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if class(ec) > class(s.code) {
        s.code = ec;
    }
}

/// The final exit code (borg's `get_ec`).
pub fn final_code() -> i32 {
    let s = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if s.code != EXIT_SUCCESS {
        return s.code;
    }
    let mut rcs = s.warnings.clone();
    rcs.sort_unstable();
    rcs.dedup();
    match rcs.len() {
        0 => EXIT_SUCCESS,
        1 => rcs[0],
        _ => EXIT_WARNING,
    }
}

/// An error for the command line: message, borg's msgid, modern exit code.
pub struct ErrorInfo {
    pub msg: String,
    pub msgid: String,
    pub modern_rc: i32,
}

/// A command-level error (borg's `CommandError`, modern rc 4).
#[derive(Debug, thiserror::Error)]
#[error("Command Error: {0}")]
pub struct CommandError(pub String);

/// A generic error (borg's `Error`, rc 2).
#[derive(Debug, thiserror::Error)]
#[error("Error: {0}")]
pub struct GenericError(pub String);

/// A runtime error (borg's `RTError`).
#[derive(Debug, thiserror::Error)]
#[error("Runtime Error: {0}")]
pub struct RtError(pub String);

/// The user declined a dangerous operation.
#[derive(Debug, thiserror::Error)]
#[error("Cancelled by user.")]
pub struct CancelledByUser;

fn info(msg: String, msgid: &str, rc: i32) -> ErrorInfo {
    ErrorInfo {
        msg,
        msgid: msgid.to_string(),
        modern_rc: rc,
    }
}

fn repo_info(e: &RepoError) -> ErrorInfo {
    let m = e.to_string();
    match e {
        RepoError::DoesNotExist(_) => info(m, "Repository.DoesNotExist", 13),
        RepoError::AlreadyExists(_) => info(m, "Repository.AlreadyExists", 10),
        RepoError::PathAlreadyExists(_) => info(m, "Repository.PathAlreadyExists", 19),
        RepoError::ParentPathDoesNotExist(_) => info(m, "Repository.ParentPathDoesNotExist", 18),
        RepoError::InvalidRepository(_) => info(m, "Repository.InvalidRepository", 15),
        RepoError::InvalidRepositoryConfig(..) => info(m, "Repository.InvalidRepositoryConfig", 16),
        RepoError::AtticRepository(_) => info(m, "Repository.AtticRepository", 11),
        RepoError::CheckNeeded(_) => info(m, "Repository.CheckNeeded", 12),
        RepoError::ObjectNotFound(..) => info(m, "Repository.ObjectNotFound", 17),
        RepoError::Integrity(_) => info(m, "IntegrityError", 90),
        RepoError::FileIntegrity(_) => info(m, "FileIntegrityError", 91),
        RepoError::StorageQuotaExceeded(..) => info(m, "Repository.StorageQuotaExceeded", 20),
        RepoError::InsufficientFreeSpace(..) => {
            info(m, "Repository.InsufficientFreeSpaceError", 14)
        }
        RepoError::PathPermissionDenied(_) => info(m, "Repository.PathPermissionDenied", 21),
        RepoError::AppendOnly(_) => info(format!("Error: {m}"), "Error", 2),
        RepoError::InvalidNonce(_) => info(m, "Error", 2),
        RepoError::NonceMismatch => info(format!("Error: {m}"), "Error", 2),
        RepoError::Lock(l) => lock_info(l),
        RepoError::Io { .. } => info(format!("Error: {m}"), "Error", 2),
        RepoError::Remote(r) => remote_info(r),
    }
}

fn lock_info(e: &LockError) -> ErrorInfo {
    let m = e.to_string();
    match e {
        LockError::Timeout(_) => info(m, "LockTimeout", 73),
        LockError::Failed(..) => info(m, "LockFailed", 72),
        LockError::NotLocked(_) => info(m, "NotLocked", 74),
        LockError::NotMyLock(_) => info(m, "NotMyLock", 75),
        LockError::Error(_) => info(m, "LockError", 70),
    }
}

fn remote_info(e: &RemoteError) -> ErrorInfo {
    let m = e.to_string();
    match e {
        RemoteError::ConnectionClosed => info(m, "ConnectionClosed", 80),
        RemoteError::ConnectionClosedWithHint(_) => info(m, "ConnectionClosedWithHint", 81),
        RemoteError::InvalidRpcMethod(_) => info(m, "InvalidRPCMethod", 82),
        RemoteError::PathNotAllowed(_) => info(m, "PathNotAllowed", 83),
        RemoteError::ServerOutdated(..) => info(m, "RemoteRepository.RPCServerOutdated", 84),
        RemoteError::UnexpectedDataFormat(_) => info(m, "UnexpectedRPCDataFormatFromServer", 86),
        RemoteError::Rpc { class, .. } => info(m, class, 2),
        #[allow(unreachable_patterns)]
        _ => info(m, "Error", 2),
    }
}

fn crypto_info(e: &CryptoError) -> ErrorInfo {
    let m = e.to_string();
    match e {
        CryptoError::PassphraseWrong => info(m, "PassphraseWrong", 52),
        CryptoError::NoPassphrase(_) => info(m, "NoPassphraseFailure", 50),
        CryptoError::PasscommandFailure(_) => info(m, "PasscommandFailure", 51),
        CryptoError::PasswordRetriesExceeded => info(m, "PasswordRetriesExceeded", 53),
        CryptoError::UnsupportedPayload(_) => info(m, "UnsupportedPayloadError", 48),
        CryptoError::UnsupportedManifest => info(m, "UnsupportedManifestError", 27),
        CryptoError::KeyfileNotFound(..) => info(m, "KeyfileNotFoundError", 42),
        CryptoError::KeyfileInvalid(..) => info(m, "KeyfileInvalidError", 40),
        CryptoError::KeyfileMismatch(..) => info(m, "KeyfileMismatchError", 41),
        CryptoError::RepoKeyNotFound(_) => info(m, "RepoKeyNotFoundError", 44),
        CryptoError::NotABorgKeyFile => info(m, "NotABorgKeyFile", 43),
        CryptoError::RepoIdMismatch => info(m, "RepoIdMismatch", 45),
        CryptoError::UnencryptedRepo => info(m, "UnencryptedRepo", 46),
        CryptoError::UnknownKeyType(_) => info(m, "UnknownKeyType", 47),
        CryptoError::Integrity(_) => info(m, "IntegrityError", 90),
        CryptoError::TamRequired(_) => info(m, "TAMRequiredError", 98),
        CryptoError::TamInvalid => info(m, "TAMInvalid", 97),
        CryptoError::TamUnsupportedSuite(_) => info(m, "TAMUnsupportedSuiteError", 99),
        CryptoError::ArchiveTamInvalid => info(m, "ArchiveTAMInvalid", 95),
        CryptoError::ArchiveTamRequired(_) => info(m, "ArchiveTAMRequiredError", 96),
        CryptoError::KeyExists(_) | CryptoError::Other(_) => {
            info(format!("Error: {m}"), "Error", 2)
        }
        CryptoError::Io { .. } => info(format!("Error: {m}"), "Error", 2),
        CryptoError::Repo(r) => repo_info(r),
    }
}

fn security_info(e: &SecurityError) -> ErrorInfo {
    let m = e.to_string();
    match e {
        SecurityError::CacheInitAborted => info(m, "Cache.CacheInitAbortedError", 60),
        SecurityError::EncryptionMethodMismatch => info(m, "Cache.EncryptionMethodMismatch", 61),
        SecurityError::RepositoryAccessAborted => info(m, "Cache.RepositoryAccessAborted", 62),
        SecurityError::RepositoryIdNotUnique => info(m, "Cache.RepositoryIDNotUnique", 63),
        SecurityError::RepositoryReplay => info(m, "Cache.RepositoryReplay", 64),
        SecurityError::Io { .. } => info(format!("Error: {m}"), "Error", 2),
    }
}

fn archive_info(e: &ArchiveError) -> ErrorInfo {
    let m = e.to_string();
    match e {
        ArchiveError::Repo(r) => repo_info(r),
        ArchiveError::Crypto(c) => crypto_info(c),
        ArchiveError::Security(s) => security_info(s),
        ArchiveError::NoManifest => info(m, "NoManifestError", 26),
        ArchiveError::MandatoryFeatureUnsupported(_) => info(m, "MandatoryFeatureUnsupported", 25),
        ArchiveError::AlreadyExists(_) => info(m, "Archive.AlreadyExists", 30),
        ArchiveError::DoesNotExist(_) => info(m, "Archive.DoesNotExist", 31),
        ArchiveError::Decompress(_) => info(m, "DecompressionError", 92),
        ArchiveError::Corrupt(_) => info(m, "IntegrityError", 90),
        ArchiveError::Interrupted => info(format!("Error: {m}"), "Error", 2),
        ArchiveError::Io { .. } | ArchiveError::Other(_) => info(format!("Error: {m}"), "Error", 2),
    }
}

/// Classifies any error that reaches the command edge.
pub fn classify(e: &anyhow::Error) -> ErrorInfo {
    for cause in e.chain() {
        if let Some(x) = cause.downcast_ref::<ArchiveError>() {
            return archive_info(x);
        }
        if let Some(x) = cause.downcast_ref::<RepoError>() {
            return repo_info(x);
        }
        if let Some(x) = cause.downcast_ref::<CryptoError>() {
            return crypto_info(x);
        }
        if let Some(x) = cause.downcast_ref::<SecurityError>() {
            return security_info(x);
        }
        if let Some(x) = cause.downcast_ref::<LockError>() {
            return lock_info(x);
        }
        if let Some(x) = cause.downcast_ref::<RemoteError>() {
            return remote_info(x);
        }
        if let Some(x) = cause.downcast_ref::<CommandError>() {
            return info(x.to_string(), "CommandError", 4);
        }
        if let Some(x) = cause.downcast_ref::<CancelledByUser>() {
            return info(x.to_string(), "CancelledByUser", 3);
        }
        if let Some(x) = cause.downcast_ref::<RtError>() {
            return info(x.to_string(), "RTError", 2);
        }
        if let Some(x) = cause.downcast_ref::<GenericError>() {
            return info(x.to_string(), "Error", 2);
        }
    }
    info(format!("Error: {e:#}"), "Error", 2)
}

/// Logs an error like borg's top-level handler and returns its exit code.
pub fn report(e: &anyhow::Error) -> i32 {
    let i = classify(e);
    crate::log::log_with_msgid(
        crate::log::Level::Error,
        "borg.archiver",
        &i.msg,
        Some(&i.msgid),
    );
    if modern() {
        i.modern_rc
    } else {
        EXIT_ERROR
    }
}

/// `--show-rc`'s closing line.
pub fn show_rc(rc: i32) {
    let (lvl, what) = match class(rc) {
        0 => (crate::log::Level::Info, "success"),
        1 => (crate::log::Level::Warning, "warning"),
        2 => (crate::log::Level::Error, "error"),
        _ if (EXIT_SIGNAL_BASE..=255).contains(&rc) => (crate::log::Level::Error, "signal"),
        _ => (crate::log::Level::Error, "abnormal"),
    };
    crate::log::log(
        lvl,
        "borg.output.show-rc",
        &format!("terminating with {what} status, rc {rc}"),
    );
}
