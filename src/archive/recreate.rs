//! `recreate`: rewrite archives (borg 1.4's `ArchiveRecreater`): drop items by patterns or
//! exclusion tags, recompress and/or rechunk content, change comment or timestamp.
//!
//! The new archive is built as `<name>.recreate` (or `--target`) and committed; then the
//! original is deleted and the new one renamed to the original name. Everything after that
//! is committed by [`Recreater::finish`].

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::time::Instant;

use super::cache::{Cache, ChunkIndex};
use super::chunkstore::Stats;
use super::create::Reporter;
use super::item::{ChunkRef, Item, S_IFBLK, S_IFCHR, S_IFIFO, S_IFREG};
use super::itemstream::{ItemReader, ItemWriter};
use super::manifest::{format_timestamp, ArchiveEntry};
use super::meta::{open_object, ArchiveMeta};
use super::patterns::{Action, Pattern, PatternMatcher, PatternStyle};
use super::session::Session;
use super::{ArchiveError, Result};
use crate::chunker::{Chunker, ChunkerParams};
use crate::compress::Compression;
use crate::crypto::Key;
use crate::repo::{ObjectId, Repository};

const CACHE_TAG_NAME: &str = "CACHEDIR.TAG";
const CACHE_TAG_CONTENTS: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// What `recreate` does to each archive.
#[derive(Clone, Debug)]
pub struct RecreateOptions {
    pub exclude_caches: bool,
    pub exclude_if_present: Vec<String>,
    pub keep_exclude_tags: bool,
    /// `--chunker-params`: rechunk to these (only if they differ from the archive's).
    pub chunker_params: Option<ChunkerParams>,
    /// `-C`: for recompressed and new chunks and the new metadata.
    pub compression: Compression,
    pub recompress: bool,
    pub always_recompress: bool,
    pub dry_run: bool,
    pub timestamp: Option<chrono::DateTime<chrono::Utc>>,
    pub checkpoint_interval: u64,
    /// The recreate command line (stored as `recreate_cmdline`).
    pub cmdline: Vec<String>,
    pub hostname: String,
    pub username: String,
}

/// What [`Recreater::recreate`] did with one archive.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Nothing was asked for (no pattern, PATH, comment, recompression, rechunking or
    /// target): the archive was left alone.
    NothingToDo,
    /// `--dry-run`: items were listed, nothing was written.
    DryRun,
    Done(Recreated),
}

/// A finished recreate of one archive.
#[derive(Clone, Debug)]
pub struct Recreated {
    /// Final name (the original name, or `--target`).
    pub name: String,
    pub id: ObjectId,
    pub stats: Stats,
    /// Stored size of the archive object (for "Utilization of max. archive size").
    pub meta_csize: u32,
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
}

fn hardlinkable(mode: u32) -> bool {
    matches!(mode & 0o170000, S_IFREG | S_IFBLK | S_IFCHR | S_IFIFO)
}

fn file_status(mode: u32) -> char {
    match mode & 0o170000 {
        S_IFREG => 'A',
        0o040000 => 'd',
        S_IFBLK => 'b',
        S_IFCHR => 'c',
        0o120000 => 's',
        S_IFIFO => 'f',
        _ => '?',
    }
}

/// The codec name borg's `compressor.decide(data)` picks, and the payload when it was
/// computed on the way (reusable for storing).
fn decide(c: &Compression, data: &[u8]) -> (&'static str, Option<Vec<u8>>) {
    match c {
        Compression::None => ("none", None),
        Compression::Zlib(_) => ("zlib", None),
        Compression::Obfuscate { .. } => ("obfuscate", None),
        Compression::Auto(inner) => {
            let p = Compression::Lz4.compress(data);
            if (p.len() as f64) / ((data.len() + 2) as f64) < 0.97 {
                (inner.name(), None)
            } else {
                (codec_name(&p), None)
            }
        }
        _ => {
            let p = c.compress(data);
            (codec_name(&p), Some(p))
        }
    }
}

fn codec_name(payload: &[u8]) -> &'static str {
    crate::compress::detect(payload).map_or("unknown", |c| c.name())
}

/// Reads the plaintext of a chunk list in order (for rechunking).
struct ChunkStream<'a> {
    key: &'a Key,
    chunks: Vec<ChunkRef>,
    fetch: Box<dyn Iterator<Item = crate::repo::GetResult> + 'a>,
    pos: usize,
    cur: Vec<u8>,
    off: usize,
    error: Option<ArchiveError>,
}

impl<'a> ChunkStream<'a> {
    fn new(repo: &'a dyn Repository, key: &'a Key, chunks: &[ChunkRef]) -> ChunkStream<'a> {
        ChunkStream {
            key,
            chunks: chunks.to_vec(),
            fetch: repo.get_many(chunks.iter().map(|c| c.id).collect()),
            pos: 0,
            cur: Vec::new(),
            off: 0,
            error: None,
        }
    }
}

impl Read for ChunkStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.off == self.cur.len() {
            let Some(c) = self.chunks.get(self.pos).copied() else {
                return Ok(0);
            };
            self.pos += 1;
            let r = match self.fetch.next() {
                Some(env) => env
                    .map_err(ArchiveError::from)
                    .and_then(|e| open_object(self.key, &c.id, e, Some(c.size as usize))),
                None => Err(ArchiveError::Corrupt("chunk fetch ended early".into())),
            };
            match r {
                Ok(d) => {
                    self.cur = d;
                    self.off = 0;
                }
                Err(e) => {
                    let msg = e.to_string();
                    self.error = Some(e);
                    return Err(std::io::Error::other(msg));
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.off);
        buf[..n].copy_from_slice(&self.cur[self.off..self.off + n]);
        self.off += n;
        Ok(n)
    }
}

/// Chunk bookkeeping for one target archive: the repository-wide index (borrowed from the
/// cache), the references the target holds, and its statistics.
struct Target<'a> {
    repo: &'a dyn Repository,
    key: &'a Key,
    compression: &'a Compression,
    index: &'a mut ChunkIndex,
    refs: ChunkIndex,
    stats: Stats,
}

impl Target<'_> {
    fn incref(&mut self, id: &ObjectId, count_stats: bool) -> Result<ChunkRef> {
        let e = self.index.map.get_mut(id).ok_or_else(|| {
            ArchiveError::Corrupt(format!(
                "Chunk ID {} missing from chunks index, corrupted chunks index - aborting transaction.",
                id.hex()
            ))
        })?;
        e.refcount = e.refcount.saturating_add(1);
        let r = ChunkRef {
            id: *id,
            size: e.size,
            csize: e.csize,
        };
        self.refs.add(*id, r.size, r.csize, 1);
        if count_stats {
            self.stats.osize += r.size as u64;
            self.stats.csize += r.csize as u64;
        }
        Ok(r)
    }

    /// borg's `cache.add_chunk`: reference an existing chunk, or (new, or `overwrite`)
    /// compress, encrypt and put it. `payload` is a precomputed compressed form.
    fn add_chunk(
        &mut self,
        id: ObjectId,
        data: &[u8],
        overwrite: bool,
        payload: Option<Vec<u8>>,
        count_stats: bool,
    ) -> Result<ChunkRef> {
        let existed = self.index.contains(&id);
        if existed && !overwrite {
            return self.incref(&id, count_stats);
        }
        let payload = payload.unwrap_or_else(|| self.compression.compress(data));
        let env = self.key.seal(self.repo, &payload)?;
        self.put_sealed_counted(id, data.len() as u32, &env, existed, count_stats)
    }

    /// Puts an encrypted chunk (new, or replacing the stored one) and references it.
    fn put_sealed(&mut self, id: ObjectId, size: u32, env: &[u8]) -> Result<ChunkRef> {
        let existed = self.index.contains(&id);
        self.put_sealed_counted(id, size, env, existed, true)
    }

    fn put_sealed_counted(
        &mut self,
        id: ObjectId,
        size: u32,
        env: &[u8],
        existed: bool,
        count_stats: bool,
    ) -> Result<ChunkRef> {
        self.repo.put(&id, env)?;
        let csize = env.len() as u32;
        self.index.add(id, size, csize, 1);
        if let Some(e) = self.index.map.get_mut(&id) {
            e.size = size;
            e.csize = csize;
        }
        self.refs.add(id, size, csize, 1);
        if count_stats {
            self.stats.osize += size as u64;
            self.stats.csize += csize as u64;
            if !existed {
                self.stats.usize += csize as u64;
            }
        }
        Ok(ChunkRef { id, size, csize })
    }

    /// Stores metadata (item-stream chunks, archive objects): deduplicated, not counted.
    fn add_meta(&mut self, data: &[u8]) -> Result<(ObjectId, u32, u32)> {
        let id = self.key.id_hash(data);
        let r = self.add_chunk(id, data, false, None, false)?;
        Ok((r.id, r.size, r.csize))
    }

    fn decref(&mut self, id: &ObjectId) -> Result<()> {
        self.refs.decref(id);
        if self.index.decref(id).is_some() {
            self.repo.delete(id)?;
        }
        Ok(())
    }
}

/// Recreates archives of one repository session (borg's `ArchiveRecreater`).
pub struct Recreater<'s> {
    session: &'s mut Session,
    cache: &'s mut Cache,
    /// Shared by all archives of the run: tag exclusions found in one archive stay (as in borg).
    matcher: PatternMatcher,
    opts: RecreateOptions,
    /// Chunks already (re)processed in this run: later references just add a reference.
    seen_chunks: HashSet<ObjectId>,
    /// Chunk lists of archives written in this run, remembered in the cache on commit.
    written: Vec<(ObjectId, ChunkIndex)>,
    forgotten: Vec<ObjectId>,
}

impl<'s> Recreater<'s> {
    pub fn new(
        session: &'s mut Session,
        cache: &'s mut Cache,
        matcher: PatternMatcher,
        opts: RecreateOptions,
    ) -> Recreater<'s> {
        Recreater {
            session,
            cache,
            matcher,
            opts,
            seen_chunks: HashSet::new(),
            written: Vec::new(),
            forgotten: Vec::new(),
        }
    }

    pub fn is_temporary_archive(name: &str) -> bool {
        name.ends_with(".recreate")
    }

    /// Repository-wide chunk statistics as they are now (for `--stats`).
    pub fn cache_stats(&self) -> super::cache::CacheStats {
        self.cache.stats()
    }

    /// Recreates archive `name` (into `target_name` when given, else replacing it).
    pub fn recreate(
        &mut self,
        name: &str,
        comment: Option<&str>,
        target_name: Option<&str>,
        reporter: &dyn Reporter,
    ) -> Result<Outcome> {
        let started = Instant::now();
        let start_time = chrono::Utc::now();
        let entry = self
            .session
            .manifest
            .get(name)
            .cloned()
            .ok_or_else(|| ArchiveError::DoesNotExist(name.to_string()))?;
        let source = ArchiveMeta::load(&*self.session.repo, &self.session.key, &entry.id)?;
        let target = target_name
            .map(String::from)
            .unwrap_or_else(|| format!("{name}.recreate"));
        if self.session.manifest.get(&target).is_some() {
            return Err(ArchiveError::AlreadyExists(target));
        }
        let src_cp = source.chunker_params();
        let dst_cp = match self.opts.chunker_params {
            Some(cp) => cp,
            None => src_cp.unwrap_or(ChunkerParams::DEFAULT),
        };
        let rechunk = self.opts.chunker_params.is_some() && src_cp != Some(dst_cp);
        if rechunk {
            crate::log::debug(
                "borg.archive",
                &format!(
                    "Rechunking archive from {} to {}",
                    src_cp.map_or("(unknown)".to_string(), |c| c.to_string()),
                    dst_cp
                ),
            );
        }
        if !self.opts.exclude_if_present.is_empty() || self.opts.exclude_caches {
            self.add_tagged_dirs(&source)?;
        }
        if self.matcher.is_empty()
            && !self.opts.recompress
            && !rechunk
            && comment.is_none()
            && target_name.is_none()
        {
            return Ok(Outcome::NothingToDo);
        }
        let result = self.process(
            name,
            &source,
            &target,
            target_name,
            comment,
            dst_cp,
            rechunk,
            reporter,
            started,
            start_time,
        );
        if result.is_err() && !self.opts.dry_run {
            let _ = self.session.repo.rollback();
        }
        result
    }

    /// borg's `matcher_add_tagged_dirs`: excludes for directories tagged by
    /// `--exclude-if-present` / `--exclude-caches` objects found in the archive.
    fn add_tagged_dirs(&mut self, archive: &ArchiveMeta) -> Result<()> {
        let repo = &*self.session.repo;
        let key = &self.session.key;
        let basename = |p: &[u8]| -> Vec<u8> {
            match p.iter().rposition(|&b| b == b'/') {
                Some(i) => p[i + 1..].to_vec(),
                None => p.to_vec(),
            }
        };
        // hardlink slaves named CACHEDIR.TAG: their masters hold the content
        let mut cachedir_masters: HashMap<Vec<u8>, Option<Item>> = HashMap::new();
        if self.opts.exclude_caches {
            for item in ItemReader::new(repo, key, &archive.items) {
                let item = item?;
                if item.part.is_some() || basename(&item.path) != CACHE_TAG_NAME.as_bytes() {
                    continue;
                }
                if item.is_reg() && item.chunks.is_none() {
                    if let Some(src) = &item.source {
                        cachedir_masters.insert(src.clone(), None);
                    }
                }
            }
        }
        let mut tag_files = Vec::new();
        let mut tagged_dirs = Vec::new();
        let keep = self.opts.keep_exclude_tags;
        let mut exclude = |dir: &str, tag_path: &str| -> Result<()> {
            let pat = |style, text: &str| {
                Pattern::new(style, text).map_err(|e| ArchiveError::Other(e.to_string()))
            };
            if keep {
                tag_files.push(pat(PatternStyle::PathPrefix, tag_path)?);
                tagged_dirs.push(pat(PatternStyle::Fnmatch, &format!("{dir}/"))?);
            } else {
                tagged_dirs.push(pat(PatternStyle::PathPrefix, dir)?);
            }
            Ok(())
        };
        for item in ItemReader::new(repo, key, &archive.items) {
            let item = item?;
            if item.part.is_some() {
                continue;
            }
            let base = basename(&item.path);
            if base != CACHE_TAG_NAME.as_bytes() && !self.matcher.is_included(&item.path_str()) {
                continue;
            }
            if self.opts.exclude_caches {
                if let Some(slot) = cachedir_masters.get_mut(&item.path) {
                    *slot = Some(item.clone());
                }
            }
            let path = item.path_str();
            let (dir, tag) = match path.rfind('/') {
                Some(i) => (&path[..i], &path[i + 1..]),
                None => ("", path.as_str()),
            };
            if self.opts.exclude_if_present.iter().any(|t| t == tag) {
                exclude(dir, &path)?;
            } else if self.opts.exclude_caches && tag == CACHE_TAG_NAME && item.is_reg() {
                let content_item = if item.chunks.is_some() {
                    Some(&item)
                } else {
                    item.source
                        .as_ref()
                        .and_then(|s| cachedir_masters.get(s))
                        .and_then(|m| m.as_ref())
                };
                if let Some(ci) = content_item {
                    if starts_with_tag(repo, key, ci)? {
                        exclude(dir, &path)?;
                    }
                }
            }
        }
        self.matcher.add(tag_files, Action::Include);
        self.matcher.add(tagged_dirs, Action::ExcludeNoRecurse);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn process(
        &mut self,
        name: &str,
        source: &ArchiveMeta,
        target: &str,
        target_name: Option<&str>,
        comment: Option<&str>,
        dst_cp: ChunkerParams,
        rechunk: bool,
        reporter: &dyn Reporter,
        started: Instant,
        start_time: chrono::DateTime<chrono::Utc>,
    ) -> Result<Outcome> {
        let Session {
            repo,
            key,
            manifest,
            security,
            ..
        } = &mut *self.session;
        let repo: &dyn Repository = &**repo;
        let key: &Key = key;
        let opts = &self.opts;
        let matcher = &self.matcher;
        let seen = &mut self.seen_chunks;
        let chunker = Chunker::new(dst_cp, key.chunk_seed())
            .map_err(|e| ArchiveError::Other(e.to_string()))?;
        let mut t = Target {
            repo,
            key,
            compression: &opts.compression,
            index: &mut self.cache.chunks,
            refs: ChunkIndex::default(),
            stats: Stats::default(),
        };
        let mut items = ItemWriter::new(key.chunk_seed());
        let target_is_subset = !matcher.is_empty();
        // excluded hardlink masters: (chunks, chunks_healthy, path of the item that took over)
        type Moved = (
            Option<Vec<ChunkRef>>,
            Option<Vec<ChunkRef>>,
            Option<Vec<u8>>,
        );
        let mut hl_masters: HashMap<Vec<u8>, Moved> = HashMap::new();
        let mut last_checkpoint = Instant::now();
        let rewrite = opts.recompress || rechunk;
        let mut window = Window::default();
        let checkpoint_due = |last: &Instant| {
            opts.checkpoint_interval > 0 && last.elapsed().as_secs() >= opts.checkpoint_interval
        };
        for item in ItemReader::new(repo, key, &source.items) {
            let mut item = item?;
            if item.part.is_some() {
                continue;
            }
            if !matcher.is_included(&item.path_str()) {
                window
                    .pending
                    .push_back(Pending::Status('x', item.path.clone()));
                if target_is_subset
                    && hardlinkable(item.mode)
                    && item.hardlink_master.unwrap_or(true)
                    && item.source.is_none()
                {
                    hl_masters.insert(
                        item.path.clone(),
                        (item.chunks.clone(), item.chunks_healthy.clone(), None),
                    );
                }
                window.settle(&mut t, seen, opts, &mut items, reporter)?;
                continue;
            }
            if target_is_subset && hardlinkable(item.mode) {
                if let Some(src) = item.source.clone() {
                    if let Some(m) = hl_masters.get_mut(&src) {
                        match &m.2 {
                            None => {
                                // first item using this excluded master: it takes the chunks
                                item.chunks = m.0.take();
                                if let Some(h) = m.1.take() {
                                    item.chunks_healthy = Some(h);
                                }
                                m.2 = Some(item.path.clone());
                                item.source = None;
                            }
                            Some(new_source) => item.source = Some(new_source.clone()),
                        }
                    }
                }
            }
            if opts.dry_run {
                window
                    .pending
                    .push_back(Pending::Status('-', item.path.clone()));
                window.settle(&mut t, seen, opts, &mut items, reporter)?;
                continue;
            }
            let range = match &item.chunks {
                Some(chunks) if rewrite => {
                    if rechunk {
                        item.chunks_healthy = None;
                    }
                    let chunks = chunks.clone();
                    Some(window.queue_chunks(&mut t, seen, opts, &chunker, &chunks, rechunk)?)
                }
                _ => None,
            };
            window.pending.push_back(Pending::Item {
                item: Box::new(item),
                range,
            });
            window.settle(&mut t, seen, opts, &mut items, reporter)?;
            if window.pending.is_empty() && checkpoint_due(&last_checkpoint) {
                let cp = format!("{target}.checkpoint");
                let meta = build_meta(
                    &mut items, &mut t, source, &cp, comment, dst_cp, opts, started,
                )?;
                let packed = meta.pack(key);
                let (id, _, _) = t.add_meta(&packed)?;
                manifest.archives.insert(
                    cp.as_bytes().to_vec(),
                    ArchiveEntry {
                        id,
                        time: meta.time.clone(),
                    },
                );
                super::session::commit_manifest(repo, key, manifest, security, &opts.compression)?;
                manifest.archives.remove(cp.as_bytes());
                t.decref(&id)?;
                last_checkpoint = Instant::now();
                crate::log::info("borg.archive", &format!("checkpoint archive {cp} written"));
            }
        }
        window.finish(&mut t, seen, opts, &mut items, reporter)?;
        if opts.dry_run {
            return Ok(Outcome::DryRun);
        }
        // save the target (committed, like borg's Archive.save)
        let mut meta = build_meta(
            &mut items, &mut t, source, target, comment, dst_cp, opts, started,
        )?;
        if opts.timestamp.is_none() {
            // keep the original times
            meta.time = source.time.clone();
            meta.time_end = if source.time_end.is_empty() {
                source.time.clone()
            } else {
                source.time_end.clone()
            };
        }
        let packed = meta.pack(key);
        let (target_id, _, _) = t.add_meta(&packed)?;
        manifest.archives.insert(
            target.as_bytes().to_vec(),
            ArchiveEntry {
                id: target_id,
                time: meta.time.clone(),
            },
        );
        super::session::commit_manifest(repo, key, manifest, security, &opts.compression)?;
        let mut final_name = target.to_string();
        let mut final_id = target_id;
        if target_name.is_none() {
            // replace the original: delete it, rename the target
            let old_id = manifest
                .archives
                .get(name.as_bytes())
                .map(|e| e.id)
                .ok_or_else(|| ArchiveError::DoesNotExist(name.to_string()))?;
            super::delete::delete_archive(
                repo,
                key,
                manifest,
                t.index,
                name.as_bytes(),
                false,
                &mut Stats::default(),
            )?;
            self.forgotten.push(old_id);
            meta.name = name.as_bytes().to_vec();
            let packed = meta.pack(key);
            let (new_id, _, _) = t.add_meta(&packed)?;
            manifest.archives.insert(
                name.as_bytes().to_vec(),
                ArchiveEntry {
                    id: new_id,
                    time: meta.time.clone(),
                },
            );
            manifest.archives.remove(target.as_bytes());
            t.decref(&target_id)?;
            final_name = name.to_string();
            final_id = new_id;
        }
        let meta_csize = t.index.get(&final_id).map_or(0, |e| e.csize);
        let stats = t.stats;
        let refs = std::mem::take(&mut t.refs);
        self.written.push((final_id, refs));
        Ok(Outcome::Done(Recreated {
            name: final_name,
            id: final_id,
            stats,
            meta_csize,
            start: start_time,
            end: chrono::Utc::now(),
        }))
    }

    /// Writes the manifest, commits, and saves the cache (after all archives).
    pub fn finish(self) -> Result<()> {
        if self.opts.dry_run {
            return Ok(());
        }
        self.session
            .commit_manifest(&self.opts.compression.clone())?;
        self.cache.commit(&self.session.manifest)?;
        for id in &self.forgotten {
            self.cache.forget_archive(id);
        }
        for (id, refs) in &self.written {
            self.cache.remember_archive(id, refs)?;
        }
        Ok(())
    }
}

/// Does the item's content start with the CACHEDIR.TAG signature?
fn starts_with_tag(repo: &dyn Repository, key: &Key, item: &Item) -> Result<bool> {
    let mut stream = ChunkStream::new(repo, key, item.chunks.as_deref().unwrap_or_default());
    let mut buf = Vec::with_capacity(CACHE_TAG_CONTENTS.len());
    let r = (&mut stream)
        .take(CACHE_TAG_CONTENTS.len() as u64)
        .read_to_end(&mut buf);
    if let Some(e) = stream.error.take() {
        return Err(e);
    }
    r.map_err(|e| ArchiveError::Other(e.to_string()))?;
    Ok(buf == CACHE_TAG_CONTENTS)
}

/// A chunk on its way into the target: id, plaintext size, and the plaintext (`None`: an
/// existing chunk, fetched when it has to be processed).
struct Piece {
    id: ObjectId,
    size: u32,
    data: Option<Vec<u8>>,
}

/// Pieces per parallel batch, bounded by count and plaintext bytes.
const BATCH_PIECES: usize = 64;
const BATCH_BYTES: u64 = 64 << 20;
/// Items (and status lines) waiting for a batch, at most.
const MAX_PENDING: usize = 4096;

/// Items waiting for their rewritten chunks, in archive order. Chunks of several items are
/// processed together (one parallel batch), then the items are added to the target in
/// order, with their status lines in the order borg prints them.
#[derive(Default)]
struct Window {
    pending: std::collections::VecDeque<Pending>,
    /// Pieces queued, not yet processed; global index = `base + done.len() + position`.
    pieces: Vec<Piece>,
    bytes: u64,
    /// Results of processed pieces, global index = `base + position`.
    done: Vec<ChunkRef>,
    base: usize,
}

enum Pending {
    Status(char, Vec<u8>),
    /// An item; `range` (global piece indices) when its chunks are being rewritten.
    Item {
        item: Box<Item>,
        range: Option<(usize, usize)>,
    },
}

impl Window {
    fn next_index(&self) -> usize {
        self.base + self.done.len() + self.pieces.len()
    }

    fn push_piece(
        &mut self,
        t: &mut Target,
        seen: &mut HashSet<ObjectId>,
        opts: &RecreateOptions,
        piece: Piece,
    ) -> Result<()> {
        self.bytes += piece.size as u64;
        self.pieces.push(piece);
        if self.pieces.len() >= BATCH_PIECES || self.bytes >= BATCH_BYTES {
            self.run(t, seen, opts)?;
        }
        Ok(())
    }

    fn run(
        &mut self,
        t: &mut Target,
        seen: &mut HashSet<ObjectId>,
        opts: &RecreateOptions,
    ) -> Result<()> {
        let batch = std::mem::take(&mut self.pieces);
        self.bytes = 0;
        self.done.extend(run_batch(t, seen, opts, batch)?);
        Ok(())
    }

    /// Queues the chunks of one item, recompressed and/or rechunked (borg's
    /// `process_chunks` with `chunk_processor`); returns the item's piece range.
    fn queue_chunks(
        &mut self,
        t: &mut Target,
        seen: &mut HashSet<ObjectId>,
        opts: &RecreateOptions,
        chunker: &Chunker,
        chunks: &[ChunkRef],
        rechunk: bool,
    ) -> Result<(usize, usize)> {
        let start = self.next_index();
        let (key, repo) = (t.key, t.repo);
        if rechunk {
            let mut stream = ChunkStream::new(repo, key, chunks);
            let mut failed = None;
            for piece in chunker.reader(&mut stream) {
                match piece {
                    Ok(p) => {
                        let piece = Piece {
                            id: key.id_hash(&p),
                            size: p.len() as u32,
                            data: Some(p),
                        };
                        self.push_piece(t, seen, opts, piece)?;
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                return Err(stream
                    .error
                    .take()
                    .unwrap_or_else(|| ArchiveError::Other(e.to_string())));
            }
        } else {
            // recompress only: chunk boundaries and ids stay
            for c in chunks {
                let piece = Piece {
                    id: c.id,
                    size: c.size,
                    data: None,
                };
                self.push_piece(t, seen, opts, piece)?;
            }
        }
        Ok((start, self.next_index()))
    }

    /// Adds the items whose chunks are done (and the status lines before them).
    fn drain_ready(
        &mut self,
        t: &mut Target,
        items: &mut ItemWriter,
        reporter: &dyn Reporter,
    ) -> Result<()> {
        while let Some(front) = self.pending.front() {
            if let Pending::Item {
                range: Some((_, end)),
                ..
            } = front
            {
                if *end > self.base + self.done.len() {
                    break;
                }
            }
            match self.pending.pop_front().expect("front exists") {
                Pending::Status(c, path) => reporter.file_status(c, &path),
                Pending::Item { mut item, range } => {
                    let mut status = Some(file_status(item.mode));
                    if item.chunks.is_some() {
                        if let Some(s) = status.take() {
                            reporter.file_status(s, &item.path);
                        }
                        match range {
                            Some((a, b)) => {
                                item.chunks =
                                    Some(self.done[a - self.base..b - self.base].to_vec());
                            }
                            None => {
                                // the item keeps its chunk list entries as they are
                                for c in item.chunks.as_deref().unwrap_or_default() {
                                    t.incref(&c.id, true)?;
                                }
                            }
                        }
                        t.stats.nfiles += 1;
                    }
                    items.add(&item, &mut |d: &[u8]| t.add_meta(d))?;
                    if let Some(s) = status {
                        reporter.file_status(s, &item.path);
                    }
                    reporter.progress(&t.stats, &item.path);
                }
            }
        }
        if self.pending.is_empty() && self.pieces.is_empty() {
            self.base += self.done.len();
            self.done.clear();
        }
        Ok(())
    }

    /// Adds what is ready; with too much queued, processes the partial batch first (bounds
    /// memory when many items wait behind one being rewritten).
    fn settle(
        &mut self,
        t: &mut Target,
        seen: &mut HashSet<ObjectId>,
        opts: &RecreateOptions,
        items: &mut ItemWriter,
        reporter: &dyn Reporter,
    ) -> Result<()> {
        if self.pending.len() >= MAX_PENDING {
            self.run(t, seen, opts)?;
        }
        self.drain_ready(t, items, reporter)
    }

    fn finish(
        &mut self,
        t: &mut Target,
        seen: &mut HashSet<ObjectId>,
        opts: &RecreateOptions,
        items: &mut ItemWriter,
        reporter: &dyn Reporter,
    ) -> Result<()> {
        self.run(t, seen, opts)?;
        self.drain_ready(t, items, reporter)
    }
}

/// What to do with one piece of a batch.
enum Plan {
    /// Seen in this run (or earlier in the batch): add a reference.
    Incref(ObjectId),
    /// First sight: decide (in parallel) whether to (re)store it.
    Process { piece: Piece, exists: bool },
}

/// The parallel verdict for a `Plan::Process` piece: `Some((size, envelope))` to put, `None`
/// to reference the stored chunk.
type Verdict = Option<(u32, Vec<u8>)>;

/// borg's `ArchiveRecreater.chunk_processor` for a batch: chunks seen in this run get a
/// reference; otherwise they are (re)stored when new or when recompressing, unless
/// `if-different` finds them stored with the codec the compression would choose.
fn run_batch(
    t: &mut Target,
    seen: &mut HashSet<ObjectId>,
    opts: &RecreateOptions,
    batch: Vec<Piece>,
) -> Result<Vec<ChunkRef>> {
    use rayon::prelude::*;
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut first = HashSet::new();
    let plans: Vec<Plan> = batch
        .into_iter()
        .map(|piece| {
            if seen.contains(&piece.id) || !first.insert(piece.id) {
                Plan::Incref(piece.id)
            } else {
                let exists = t.index.contains(&piece.id);
                Plan::Process { piece, exists }
            }
        })
        .collect();
    let (repo, key) = (t.repo, t.key);
    let verdict = |piece: &Piece, exists: bool| -> Result<Verdict> {
        // the stored payload is only needed to detect its codec (if-different)
        let want_stored = exists && opts.recompress && !opts.always_recompress;
        let mut stored: Option<Vec<u8>> = None;
        let data: std::borrow::Cow<[u8]> = match &piece.data {
            Some(d) => std::borrow::Cow::Borrowed(d),
            None => {
                let env = repo.get(&piece.id)?;
                let payload = key.open(Some(&piece.id), &env)?;
                let d =
                    super::meta::decode_payload(&piece.id, &payload, Some(piece.size as usize))?;
                key.assert_id(&piece.id, &d)?;
                stored = Some(payload);
                std::borrow::Cow::Owned(d)
            }
        };
        let mut overwrite = opts.recompress;
        let mut payload = None;
        if want_stored {
            let stored_codec = match &stored {
                Some(p) => codec_name(p),
                None => codec_name(&key.open(Some(&piece.id), &repo.get(&piece.id)?)?),
            };
            let (wanted, p) = decide(&opts.compression, &data);
            if stored_codec == wanted {
                overwrite = false;
            }
            payload = p;
        }
        if exists && !overwrite {
            return Ok(None);
        }
        let payload = payload.unwrap_or_else(|| opts.compression.compress(&data));
        Ok(Some((data.len() as u32, key.seal(repo, &payload)?)))
    };
    let verdicts: Vec<Result<Verdict>> = plans
        .par_iter()
        .map(|p| match p {
            Plan::Incref(_) => Ok(None),
            Plan::Process { piece, exists } => verdict(piece, *exists),
        })
        .collect();
    let mut out = Vec::with_capacity(plans.len());
    for (plan, v) in plans.into_iter().zip(verdicts) {
        match plan {
            Plan::Incref(id) => out.push(t.incref(&id, true)?),
            Plan::Process { piece, .. } => {
                let r = match v? {
                    None => t.incref(&piece.id, true)?,
                    Some((size, env)) => t.put_sealed(piece.id, size, &env)?,
                };
                seen.insert(piece.id);
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// The archive object of the target (items flushed), borg's `Archive.save` fields plus
/// recreate's `additional_metadata`.
#[allow(clippy::too_many_arguments)]
fn build_meta(
    items: &mut ItemWriter,
    t: &mut Target,
    source: &ArchiveMeta,
    name: &str,
    comment: Option<&str>,
    dst_cp: ChunkerParams,
    opts: &RecreateOptions,
    started: Instant,
) -> Result<ArchiveMeta> {
    items.flush(true, &mut |d: &[u8]| t.add_meta(d))?;
    let duration = chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
    let (start, end) = match opts.timestamp {
        Some(ts) => (ts, ts + duration),
        None => {
            let end = chrono::Utc::now();
            (end - duration, end)
        }
    };
    Ok(ArchiveMeta {
        version: 1,
        name: name.as_bytes().to_vec(),
        items: items.chunks.clone(),
        cmdline: source.cmdline.clone(),
        hostname: opts.hostname.as_bytes().to_vec(),
        username: opts.username.as_bytes().to_vec(),
        time: format_timestamp(&start),
        time_end: format_timestamp(&end),
        comment: match comment {
            Some(c) => c.as_bytes().to_vec(),
            None => source.comment.clone(),
        },
        chunker_params: Some(dst_cp.to_value()),
        size: t.stats.osize,
        csize: t.stats.csize,
        nfiles: t.stats.nfiles,
        size_parts: 0,
        csize_parts: 0,
        nfiles_parts: 0,
        recreate_cmdline: Some(opts.cmdline.iter().map(|s| s.as_bytes().to_vec()).collect()),
        cwd: None,
        tam: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_like_borg() {
        let text: Vec<u8> = (0..4000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        assert_eq!(decide(&Compression::Lz4, &text).0, "lz4");
        assert_eq!(decide(&Compression::Zstd(3), &text).0, "zstd");
        assert_eq!(decide(&Compression::None, &text).0, "none");
        let auto: Compression = "auto,lzma".parse().unwrap();
        assert_eq!(decide(&auto, &text).0, "lzma");
        // incompressible data: deciding compressors pick none
        let mut x: u64 = 1;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 33) as u8
            })
            .collect();
        assert_eq!(decide(&Compression::Zstd(3), &noise).0, "none");
        assert_eq!(decide(&auto, &noise).0, "none");
        assert_eq!(file_status(0o100644), 'A');
        assert_eq!(file_status(0o120777), 's');
    }
}
