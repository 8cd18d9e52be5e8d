//! `import-tar`: a tar stream into a new archive, with the items borg 1.x's
//! `TarfileObjectProcessors` makes: normalized relative paths, `mode | type`, uid/gid and
//! names (empty names stored as nil), mtime in ns (clamped like borg's `safe_ns`), symlink
//! and hardlink targets in `source` (as written in the tar), `rdev` for devices, and the
//! content of regular files chunked with the archive's chunker and stored deduplicated.
//!
//! Members of `--tar-format=BORG` exports carry the complete borg item; its metadata
//! (times, xattrs, ACLs, flags ...) is taken from there.

use std::io::Read;
use std::time::Instant;

use base64::Engine as _;
use rayon::prelude::*;

use super::header::*;
use super::reader::{Entry, ReadError, TarReader};
use crate::archive::cache::Cache;
use crate::archive::chunkstore::{ChunkStore, Stats};
use crate::archive::create::walk::{make_path_safe, normpath_bytes};
use crate::archive::create::{Created, Reporter};
use crate::archive::item::{ChunkRef, Item, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG};
use crate::archive::itemstream::ItemWriter;
use crate::archive::manifest::{format_timestamp, ArchiveEntry, Manifest};
use crate::archive::meta::ArchiveMeta;
use crate::archive::session::Session;
use crate::archive::{ArchiveError, Result};
use crate::chunker::{Chunker, ChunkerParams};
use crate::compress::Compression;
use crate::crypto::Key;
use crate::repo::{ObjectId, Repository};

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub compression: Compression,
    pub chunker_params: ChunkerParams,
    pub ignore_zeros: bool,
    /// Seconds between checkpoints (0: none). Checkpoints are taken between members.
    pub checkpoint_interval: u64,
    pub comment: String,
    pub timestamp: Option<chrono::DateTime<chrono::Utc>>,
    pub hostname: String,
    pub username: String,
    pub cmdline: Vec<String>,
}

/// borg's `MAX_NS` (with 32-bit platform support: 2038 minus 48 hours).
pub const MAX_NS: i128 = 2_147_310_847_000_000_000;

/// borg's `safe_ns`: negative times become 0, huge ones `MAX_NS`.
pub fn safe_ns(ns: i128) -> i128 {
    ns.clamp(0, MAX_NS)
}

/// `make_path_safe(os.path.normpath(name))`.
pub fn archive_path(name: &[u8]) -> Vec<u8> {
    make_path_safe(&normpath_bytes(name))
}

/// Python's `repr()` of a one-byte `bytes` value (`b'D'`, `b'\x01'`).
fn bytes_repr(b: u8) -> String {
    match b {
        b'\\' => "b'\\\\'".into(),
        b'\'' => "b\"'\"".into(),
        b'\t' => "b'\\t'".into(),
        b'\n' => "b'\\n'".into(),
        b'\r' => "b'\\r'".into(),
        0x20..=0x7e => format!("b'{}'", b as char),
        _ => format!("b'\\x{b:02x}'"),
    }
}

/// `os.makedev` (Linux).
fn makedev(major: i128, minor: i128) -> u64 {
    let (ma, mi) = (major as u64, minor as u64);
    ((ma & 0xffff_f000) << 32) | ((ma & 0x0fff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
}

/// The archive under construction (item stream, stats, checkpoints).
struct Builder<'s, 'a> {
    repo: &'a dyn Repository,
    key: &'a Key,
    manifest: &'s mut Manifest,
    security: &'s crate::crypto::security::SecurityDir,
    store: &'s ChunkStore<'a>,
    items: ItemWriter,
    stats: Stats,
    name: String,
    opts: &'s ImportOptions,
    started: Instant,
    last_checkpoint: Instant,
}

impl Builder<'_, '_> {
    fn add_item(&mut self, item: &Item) -> Result<()> {
        let store = self.store;
        let mut f = |data: &[u8]| -> Result<(ObjectId, u32, u32)> {
            let (r, _) = store.store(data)?;
            Ok((r.id, r.size, r.csize))
        };
        self.items.add(item, &mut f)
    }

    fn meta(&mut self, name: &str) -> Result<(ArchiveMeta, chrono::DateTime<chrono::Utc>)> {
        let store = self.store;
        let mut f = |data: &[u8]| -> Result<(ObjectId, u32, u32)> {
            let (r, _) = store.store(data)?;
            Ok((r.id, r.size, r.csize))
        };
        self.items.flush(true, &mut f)?;
        let duration = chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default();
        let (start, end) = match self.opts.timestamp {
            Some(ts) => (ts, ts + duration),
            None => {
                let end = chrono::Utc::now();
                (end - duration, end)
            }
        };
        let meta = ArchiveMeta {
            version: 1,
            name: name.as_bytes().to_vec(),
            items: self.items.chunks.clone(),
            cmdline: self
                .opts
                .cmdline
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            hostname: self.opts.hostname.as_bytes().to_vec(),
            username: self.opts.username.as_bytes().to_vec(),
            time: format_timestamp(&start),
            time_end: format_timestamp(&end),
            comment: self.opts.comment.as_bytes().to_vec(),
            chunker_params: Some(self.opts.chunker_params.to_value()),
            size: self.stats.osize,
            csize: self.stats.csize,
            nfiles: self.stats.nfiles,
            size_parts: self.stats.osize_parts,
            csize_parts: self.stats.csize_parts,
            nfiles_parts: self.stats.nfiles_parts,
            recreate_cmdline: None,
            cwd: None,
            tam: None,
        };
        Ok((meta, start))
    }

    fn save_meta(
        &mut self,
        name: &str,
    ) -> Result<(ObjectId, ArchiveMeta, chrono::DateTime<chrono::Utc>)> {
        let (meta, start) = self.meta(name)?;
        let packed = meta.pack(self.key);
        let (r, _) = self.store.store(&packed)?;
        self.manifest.archives.insert(
            name.as_bytes().to_vec(),
            ArchiveEntry {
                id: r.id,
                time: meta.time.clone(),
            },
        );
        Ok((r.id, meta, start))
    }

    fn commit(&mut self) -> Result<()> {
        crate::archive::session::commit_manifest(
            self.repo,
            self.key,
            self.manifest,
            self.security,
            &self.opts.compression,
        )
    }

    fn maybe_checkpoint(&mut self) -> Result<()> {
        let iv = self.opts.checkpoint_interval;
        if iv == 0 || self.last_checkpoint.elapsed().as_secs() < iv {
            return Ok(());
        }
        let cp = format!("{}.checkpoint", self.name);
        let (id, _, _) = self.save_meta(&cp)?;
        self.commit()?;
        self.manifest.archives.remove(cp.as_bytes());
        self.store.decref(&id)?;
        self.last_checkpoint = Instant::now();
        crate::log::info("borg.archive", &format!("checkpoint archive {cp} written"));
        Ok(())
    }
}

/// Chunks a stream and stores the chunks (batches hashed/compressed/encrypted in parallel).
fn store_content(
    chunker: &Chunker,
    store: &ChunkStore,
    content: impl Read,
    stats: &mut Stats,
    path: &[u8],
) -> anyhow::Result<Vec<ChunkRef>> {
    const BATCH_BYTES: usize = 32 << 20;
    let mut refs = Vec::new();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut flush = |batch: &mut Vec<Vec<u8>>, refs: &mut Vec<ChunkRef>| -> Result<()> {
        let stored: Result<Vec<(ChunkRef, bool)>> =
            batch.par_iter().map(|d| store.store(d)).collect();
        for (r, new) in stored? {
            stats.osize += r.size as u64;
            stats.csize += r.csize as u64;
            if new {
                stats.usize += r.csize as u64;
            }
            refs.push(r);
        }
        batch.clear();
        Ok(())
    };
    for chunk in chunker.reader(content) {
        let chunk = chunk.map_err(|e| {
            anyhow::Error::new(ReadError::Format(e.to_string())).context(format!(
                "{}: reading the tar member failed",
                String::from_utf8_lossy(path)
            ))
        })?;
        batch_bytes += chunk.len();
        batch.push(chunk);
        if batch.len() >= 16 || batch_bytes >= BATCH_BYTES {
            flush(&mut batch, &mut refs)?;
            batch_bytes = 0;
        }
    }
    flush(&mut batch, &mut refs)?;
    Ok(refs)
}

/// The item borg's `create_helper` makes for a member (plus the BORG-format metadata).
fn base_item(e: &Entry, type_bits: u32) -> Item {
    let path = archive_path(&e.name);
    if e.pax_get(b"BORG.item.version") == Some(b"1") {
        if let Some(meta) = e.pax_get(b"BORG.item.meta") {
            if let Ok(bin) = base64::engine::general_purpose::STANDARD.decode(meta) {
                if let Ok(mut it) = Item::unpack(&bin) {
                    it.path = path;
                    it.chunks = None;
                    it.chunks_healthy = None;
                    it.part = None;
                    it.source = None;
                    return it;
                }
            }
        }
    }
    let name = |v: &[u8]| Some((!v.is_empty()).then(|| v.to_vec()));
    Item {
        path,
        mode: (e.mode as u32) | type_bits,
        uid: Some(e.uid as u32),
        gid: Some(e.gid as u32),
        user: name(&e.uname),
        group: name(&e.gname),
        mtime: safe_ns(e.mtime.to_ns()),
        ..Item::default()
    }
}

/// Imports the tar stream `input` as archive `name`.
pub fn import_tar(
    session: &mut Session,
    cache: &mut Cache,
    name: &str,
    input: &mut dyn Read,
    opts: &ImportOptions,
    reporter: &dyn Reporter,
) -> anyhow::Result<Created> {
    if session.manifest.get(name).is_some() {
        return Err(ArchiveError::AlreadyExists(name.to_string()).into());
    }
    let chunker = Chunker::new(opts.chunker_params, session.key.chunk_seed())
        .map_err(|e| ArchiveError::Other(e.to_string()))?;
    let index = std::mem::take(&mut cache.chunks);
    let Session {
        repo,
        key,
        manifest,
        security,
        ..
    } = session;
    let repo: &dyn Repository = &**repo;
    let key: &Key = key;
    let store = ChunkStore::new(repo, key, opts.compression.clone(), index);
    let now = Instant::now();
    let mut b = Builder {
        repo,
        key,
        manifest,
        security,
        store: &store,
        items: ItemWriter::new(key.chunk_seed()),
        stats: Stats::default(),
        name: name.to_string(),
        opts,
        started: now,
        last_checkpoint: now,
    };
    let mut tar = TarReader::new(
        std::io::BufReader::with_capacity(1 << 20, input),
        opts.ignore_zeros,
    );
    let result = (|| -> anyhow::Result<()> {
        while let Some(e) = tar.next_entry()? {
            let status: Option<char>;
            match e.typeflag {
                t if REGULAR_TYPES.contains(&t) => {
                    let mut item = base_item(&e, S_IFREG);
                    reporter.file_status('A', &item.path);
                    let mut st = Stats::default();
                    let content = tar.content(&e)?;
                    let refs = store_content(&chunker, &store, content, &mut st, &item.path)?;
                    item.size = Some(refs.iter().map(|r| r.size as u64).sum());
                    item.chunks = Some(refs);
                    // borg counts each imported file twice (in the processor's and the
                    // archive's statistics, which are then added up); so do we
                    st.nfiles += 2;
                    b.stats += st;
                    b.add_item(&item)?;
                    reporter.progress(&b.stats, &item.path);
                    status = None;
                }
                DIRTYPE => {
                    b.add_item(&base_item(&e, S_IFDIR))?;
                    status = Some('d');
                }
                SYMTYPE | LNKTYPE => {
                    let (bits, s) = if e.typeflag == SYMTYPE {
                        (S_IFLNK, 's')
                    } else {
                        (S_IFREG, 'h')
                    };
                    let mut item = base_item(&e, bits);
                    item.source = Some(e.linkname.clone());
                    b.add_item(&item)?;
                    status = Some(s);
                }
                BLKTYPE | CHRTYPE => {
                    let (bits, s) = if e.typeflag == BLKTYPE {
                        (S_IFBLK, 'b')
                    } else {
                        (S_IFCHR, 'c')
                    };
                    let mut item = base_item(&e, bits);
                    item.rdev = Some(makedev(e.devmajor, e.devminor));
                    b.add_item(&item)?;
                    status = Some(s);
                }
                FIFOTYPE => {
                    b.add_item(&base_item(&e, S_IFIFO))?;
                    status = Some('f');
                }
                t => {
                    reporter.warning(
                        1,
                        &format!(
                            "{}: Unsupported tarinfo type {}",
                            String::from_utf8_lossy(&e.name),
                            bytes_repr(t)
                        ),
                    );
                    status = Some('E');
                }
            }
            if let Some(s) = status {
                // borg prints these with the member name as found in the tar
                reporter.file_status(s, &e.name);
            }
            b.maybe_checkpoint()?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = repo.rollback();
        return Err(e);
    }
    let (id, meta, start) = b.save_meta(name)?;
    let duration = b.started.elapsed().as_secs_f64();
    let stats = b.stats;
    b.commit()?;
    drop(b);
    let (index, added) = store.into_index();
    cache.chunks = index;
    cache.commit(manifest)?;
    cache.remember_archive(&id, &added)?;
    cache.remember_sizes(&id, meta.size, meta.csize)?;
    let end = crate::archive::manifest::parse_timestamp(&meta.time_end).unwrap_or(start);
    // what is left of the input (the record padding) is drained by the caller
    drop(tar);
    Ok(Created {
        name: name.to_string(),
        id,
        meta,
        stats,
        start,
        end,
        duration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(archive_path(b"./dir/file"), b"dir/file");
        assert_eq!(archive_path(b"/abs//x/./y/"), b"abs/x/y");
        assert_eq!(archive_path(b"../../up"), b"up");
        assert_eq!(archive_path(b"a/../../b"), b"b");
        assert_eq!(archive_path(b"."), b".");
        assert_eq!(archive_path(b""), b".");
    }

    #[test]
    fn misc() {
        assert_eq!(bytes_repr(b'D'), "b'D'");
        assert_eq!(bytes_repr(1), "b'\\x01'");
        assert_eq!(makedev(1, 3), libc::makedev(1, 3));
        assert_eq!(makedev(259, 70000), libc::makedev(259, 70000));
        assert_eq!(safe_ns(-5), 0);
        assert_eq!(safe_ns(i128::MAX), MAX_NS);
    }
}
