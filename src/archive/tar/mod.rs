//! Tar interchange: `export-tar` (archive → tarball) and `import-tar` (tarball → archive),
//! compatible with borg 1.x.
//!
//! The tar format code is our own rather than a crate's: borg's output is whatever Python's
//! `tarfile` writes (GNU format, its long-name members, base-256 numbers, record padding)
//! and its import accepts what `tarfile` accepts (V7 directories, `--ignore-zeros`, pax
//! global headers, old and new GNU sparse files, `prefix` fields even in GNU headers), and
//! matching both byte for byte is simpler with a small dedicated implementation.
//! Compression is done by external filter programs (gzip, bzip2, xz, zstd, lz4), as in borg.

pub mod export;
pub mod filter;
pub mod header;
pub mod import;
pub mod reader;
pub mod writer;

/// `export-tar --tar-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TarFormat {
    /// GNU tar format, whole-second mtimes (what borg 1.x writes).
    #[default]
    Gnu,
    /// POSIX pax: ns times (mtime, atime, ctime), xattrs as `SCHILY.xattr.*`, ACLs as
    /// `SCHILY.acl.*`.
    Pax,
    /// pax plus `BORG.item.version`/`BORG.item.meta` records carrying the whole borg item,
    /// which `import-tar` restores.
    Borg,
}

impl std::str::FromStr for TarFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "GNU" => Ok(TarFormat::Gnu),
            "PAX" => Ok(TarFormat::Pax),
            "BORG" => Ok(TarFormat::Borg),
            _ => Err(format!(
                "invalid choice: '{s}' (choose from 'BORG', 'PAX', 'GNU')"
            )),
        }
    }
}
