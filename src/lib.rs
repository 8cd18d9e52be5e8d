//! rborg — a BorgBackup 1.x compatible deduplicating archiver.
//!
//! The modules mirror the data path; dependencies point down this list only:
//!
//! * [`cli`] — command line (one file per command), output formats, exit codes.
//! * [`archive`] — items, archive objects, manifest, create/extract pipelines, caches, patterns.
//! * [`chunker`], [`compress`], [`crypto`] — content-defined chunking, codecs, keys/envelopes/TAM.
//! * [`repo`] — the `Repository` trait and its local (segments, index, locking) and remote backends.
//!
//! [`msgpack`] (borg's legacy msgpack dialect) and [`dirs`] (borg's config/cache/security
//! locations) are shared vocabulary used by several layers.

pub mod archive;
pub mod chunker;
pub mod cli;
pub mod compress;
pub mod crypto;
pub mod dirs;
pub mod log;
pub mod msgpack;
pub mod platform;
pub mod prompt;
pub mod pyrepr;
pub mod repo;
pub mod units;

/// The borg release whose behaviour and formats rborg follows; frontends (borgmatic, Vorta)
/// read it from `--version`.
pub const BORG_COMPAT_VERSION: &str = "1.4.1";
/// rborg's own version.
pub const RBORG_VERSION: &str = env!("CARGO_PKG_VERSION");
