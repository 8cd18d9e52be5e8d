//! The repository: a transactional key/value store of 32-byte ids → opaque bytes.
//!
//! [`Repository`] is the one interface the archive layer sees. [`local::LocalRepository`]
//! implements borg's on-disk format; the remote backend speaks `borg serve`'s RPC behind the same
//! trait. Methods take `&self` so one repository can be shared by parallel pipeline stages; the
//! backends serialise what must be serial (segment appends, RPC framing) internally.

pub mod local;
pub mod location;
pub mod remote;
pub mod serve;

use std::fmt;
use std::path::PathBuf;

pub use location::Location;

/// A 32-byte object id (chunk id, archive id, manifest id = all zeros).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ObjectId(pub [u8; 32]);

impl ObjectId {
    pub const MANIFEST: ObjectId = ObjectId([0u8; 32]);

    pub fn from_slice(b: &[u8]) -> Option<ObjectId> {
        Some(ObjectId(b.try_into().ok()?))
    }
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<ObjectId> {
        let v = hex::decode(s.trim()).ok()?;
        Self::from_slice(&v)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.hex())
    }
}
impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.hex())
    }
}

/// Object ids are MAC/hash outputs, so their first bytes are already uniformly distributed:
/// hashing them again is wasted work in the hot maps (index, chunk cache, files cache).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // [u8; 32] hashes as its bytes (no length prefix for arrays).
        if bytes.len() >= 8 {
            self.0 ^= u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        } else {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ b as u64;
            }
        }
    }
}

pub type IdBuildHasher = std::hash::BuildHasherDefault<IdHasher>;
pub type IdMap<V> = std::collections::HashMap<ObjectId, V, IdBuildHasher>;
pub type IdSet = std::collections::HashSet<ObjectId, IdBuildHasher>;

/// Largest value a PUT may carry (20 MiB − 41).
pub const MAX_DATA_SIZE: usize = 20_971_479;
/// Largest segment entry (20 MiB).
pub const MAX_OBJECT_SIZE: usize = 20_971_520;
/// `list`/`scan` page size borg uses (and the cap its 1.2 unpacker enforces).
pub const LIST_SCAN_LIMIT: usize = 100_000;

/// Errors of the repository layer. Messages follow borg's texts; the command layer maps each
/// variant to borg's exit code and msgid.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("Repository {0} does not exist.")]
    DoesNotExist(String),
    #[error("A repository already exists at {0}.")]
    AlreadyExists(String),
    #[error("There is already something at {0}.")]
    PathAlreadyExists(String),
    #[error("The parent path of the repo directory [{0}] does not exist.")]
    ParentPathDoesNotExist(String),
    #[error("{0} is not a valid repository. Check repo config.")]
    InvalidRepository(String),
    #[error("{0} does not have a valid configuration. Check repo config [{1}].")]
    InvalidRepositoryConfig(String, String),
    #[error("Attic repository detected. Please run \"borg upgrade {0}\".")]
    AtticRepository(String),
    #[error("Inconsistency detected. Please run \"borg check {0}\".")]
    CheckNeeded(String),
    #[error("Object with key {0} not found in repository {1}.")]
    ObjectNotFound(ObjectId, String),
    #[error("Data integrity error: {0}")]
    Integrity(String),
    #[error("File failed integrity check: {0}")]
    FileIntegrity(String),
    #[error("The storage quota ({0}) has been exceeded ({1}). Try deleting some archives.")]
    StorageQuotaExceeded(String, String),
    #[error("Insufficient free space to complete transaction (required: {0}, available: {1}).")]
    InsufficientFreeSpace(String, String),
    #[error("Permission denied to {0}.")]
    PathPermissionDenied(String),
    #[error("{0} is in append-only mode")]
    AppendOnly(String),
    #[error("Repository has an invalid nonce file: {0}")]
    InvalidNonce(String),
    #[error("nonce space reservation with mismatched previous state")]
    NonceMismatch,
    #[error(transparent)]
    Lock(#[from] local::lock::LockError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Remote(#[from] remote::RemoteError),
}

impl RepoError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> RepoError {
        let path = path.into();
        if source.raw_os_error() == Some(libc::EACCES) || source.raw_os_error() == Some(libc::EPERM)
        {
            // Keep the OS error text: borg shows "[Errno 13] Permission denied: '<path>'".
            return RepoError::Io { path, source };
        }
        RepoError::Io { path, source }
    }
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// Options for opening (or creating) a repository.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub create: bool,
    /// `None` = no lock at all (`--bypass-lock`).
    pub exclusive: Option<bool>,
    pub lock_wait: f64,
    pub append_only: bool,
    pub storage_quota: Option<u64>,
    pub make_parent_dirs: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            create: false,
            exclusive: Some(false),
            lock_wait: 1.0,
            append_only: false,
            storage_quota: None,
            make_parent_dirs: false,
        }
    }
}

/// Result of fetching one object in a batch.
pub type GetResult = Result<Vec<u8>>;

/// Verifies objects' values while a repository check reads them (`check --verify-data` on a
/// local repository reads every segment once for both checks): takes values from the
/// iterator (numbered from 0 in the order taken) and reports a verdict per number, in any
/// order: `Err((integrity, message))` when the value does not decrypt to its id.
pub type ObjectVerifier<'a> = dyn Fn(
        &mut dyn Iterator<Item = (ObjectId, Vec<u8>)>,
        &mut dyn FnMut(usize, std::result::Result<(), (bool, String)>),
    ) + Sync
    + 'a;

/// What an [`ObjectVerifier`] found among the objects the index holds.
#[derive(Debug, Default)]
pub struct VerifiedObjects {
    pub count: usize,
    pub failures: Vec<(ObjectId, bool, String)>,
}

/// The storage interface every backend implements.
pub trait Repository: Send + Sync {
    /// Repository id (from its config).
    fn id(&self) -> ObjectId;
    /// Where it is (canonical form used in messages).
    fn location(&self) -> &Location;

    /// Reads one object.
    fn get(&self, id: &ObjectId) -> GetResult;
    /// Reads many objects, yielding results in the order of `ids`. Backends read ahead
    /// (in parallel locally, pipelined remotely) so callers are not latency-bound.
    fn get_many<'a>(&'a self, ids: Vec<ObjectId>) -> Box<dyn Iterator<Item = GetResult> + 'a>;
    /// Stores an object (replacing an existing one with the same id). Remote backends may send
    /// it asynchronously; errors then surface at the next `flush`/`commit`.
    fn put(&self, id: &ObjectId, data: &[u8]) -> Result<()>;
    fn delete(&self, id: &ObjectId) -> Result<()>;
    /// Waits for outstanding asynchronous puts/deletes and reports their first error.
    fn flush(&self) -> Result<()>;
    fn commit(&self, compact: bool, threshold: f64, cleanup_commits: bool) -> Result<()>;
    fn rollback(&self) -> Result<()>;

    /// Ids in index order after `marker`.
    fn list(&self, limit: Option<usize>, marker: Option<&ObjectId>) -> Result<Vec<ObjectId>>;
    /// Ids of live objects in on-disk order after `marker`.
    fn scan(&self, limit: Option<usize>, marker: Option<&ObjectId>) -> Result<Vec<ObjectId>>;
    fn len(&self) -> Result<usize>;
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Repository-level consistency check (segments, index); `Ok(true)` = fine or repaired.
    fn check(&self, repair: bool, max_duration: u64) -> Result<bool>;
    fn destroy(&self) -> Result<()>;

    fn save_key(&self, keydata: &[u8]) -> Result<()>;
    /// The repokey blob text, empty if none.
    fn load_key(&self) -> Result<Vec<u8>>;
    fn break_lock(&self) -> Result<()>;

    fn get_free_nonce(&self) -> Result<Option<u64>>;
    fn commit_nonce_reservation(
        &self,
        next_unreserved: u64,
        start_nonce: Option<u64>,
    ) -> Result<()>;

    /// Releases locks and connections. Dropping does the same.
    fn close(&self) -> Result<()>;

    /// Local repositories expose their on-disk details (for `info`, `config`, `check`).
    fn as_local(&self) -> Option<&local::LocalRepository> {
        None
    }
    /// Version of the borg (or rborg) serving this repository, for feature gating.
    fn server_version(&self) -> (u32, u32, u32) {
        (1, 4, 1)
    }
}

/// Opens a repository at a location (local path or ssh://).
pub fn open(location: &Location, opts: &OpenOptions) -> Result<Box<dyn Repository>> {
    match location.proto {
        location::Proto::File => Ok(Box::new(local::LocalRepository::open(location, opts)?)),
        location::Proto::Ssh => remote::open(location, opts),
    }
}
