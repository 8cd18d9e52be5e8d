//! `create`: walk → read → chunk → id-hash → compress → encrypt → put, in parallel, with the
//! archive's item order and bytes equal to a sequential run.
//!
//! The walk (cheap: stat calls) runs on the calling thread and hands jobs, in archive order,
//! to the rayon pool as it goes; big files additionally split their chunks across workers.
//! Finished jobs are emitted strictly in submission order into the item stream, so the
//! archive is byte-identical to a sequential run. There is no barrier: the walker only waits
//! when too many jobs are in flight, which bounds memory independently of the input.

mod file;
mod prefetch;
mod progress;
pub mod walk;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::cache::{Cache, ChunkIndex};
use super::chunkstore::{ChunkStore, Stats};
use super::files_cache::{FilesCache, FilesCacheMode};
use super::item::Item;
use super::itemstream::ItemWriter;
use super::manifest::{format_timestamp, ArchiveEntry};
use super::meta::ArchiveMeta;
use super::patterns::PatternMatcher;
use super::session::Session;
use super::{ArchiveError, Result};
use crate::chunker::{Chunker, ChunkerParams};
use crate::compress::Compression;
use crate::platform::sigint;
use crate::repo::ObjectId;

/// `--files-changed`: how a file changing while read is detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FilesChanged {
    #[default]
    Ctime,
    Mtime,
    Disabled,
}

#[derive(Clone, Debug)]
pub struct CreateOptions {
    pub compression: Compression,
    pub chunker_params: ChunkerParams,
    pub numeric_ids: bool,
    pub atime: bool,
    pub noctime: bool,
    pub noflags: bool,
    pub noacls: bool,
    pub noxattrs: bool,
    pub read_special: bool,
    pub one_file_system: bool,
    pub exclude_caches: bool,
    pub exclude_if_present: Vec<String>,
    pub keep_exclude_tags: bool,
    pub exclude_nodump: bool,
    pub files_cache: FilesCacheMode,
    pub files_changed: FilesChanged,
    pub sparse: bool,
    pub dry_run: bool,
    pub checkpoint_interval: u64,
    pub comment: String,
    /// `--timestamp`: the archive's start time (end = start + duration).
    pub timestamp: Option<chrono::DateTime<chrono::Utc>>,
    pub hostname: String,
    pub username: String,
    pub cmdline: Vec<String>,
    /// Absolute working directory (files-cache keys are absolute paths).
    pub cwd: PathBuf,
}

/// How `create` reports to the user (file status lines, warnings, progress).
pub trait Reporter: Sync {
    fn file_status(&self, status: char, path: &[u8]);
    /// A backup warning (borg's modern code and message); the archive is still written.
    fn warning(&self, code: i32, msg: &str);
    fn progress(&self, _stats: &Stats, _path: &[u8]) {}
}

pub struct Warn {
    pub code: i32,
    pub msg: String,
}

pub enum JobKind {
    /// Status line only (`x`, directory status after its contents, dry-run `-`).
    Status,
    Warning(Warn),
    /// An item needing only extended attributes (dirs, symlinks, devices, hardlink slaves).
    Special {
        ext_attrs: bool,
        /// A directory's stat as the walker saw it (its attributes may come from the files
        /// cache).
        dir: Option<crate::archive::files_cache::FileStat>,
    },
    /// A regular file (or special file read as one) whose content must be stored.
    File {
        special: bool,
        size: u64,
        ino: u64,
        dev: u64,
        /// ctime and mtime (ns) as the walker saw them.
        ctime: i64,
        mtime: i64,
    },
}

/// One unit of the ordered walk.
pub struct Job {
    pub kind: JobKind,
    pub status: Option<char>,
    /// Path as walked (for messages and status lines).
    pub path: Vec<u8>,
    pub item: Option<Item>,
    pub fs_path: PathBuf,
    /// Filled by the parallel stage.
    pub result: Option<JobResult>,
}

impl Job {
    fn status(status: char, path: Vec<u8>) -> Job {
        Job {
            kind: JobKind::Status,
            status: Some(status),
            path,
            item: None,
            fs_path: PathBuf::new(),
            result: None,
        }
    }
}

#[derive(Default)]
pub struct JobResult {
    /// A/M/U for files; `C` (changed while read) is reported as a second line.
    pub status: Option<char>,
    pub changed: bool,
    pub warnings: Vec<Warn>,
    pub failed: bool,
    pub stats: Stats,
}

/// Shared state of the parallel stage.
pub struct Shared<'a> {
    pub opts: &'a CreateOptions,
    pub store: &'a ChunkStore<'a>,
    pub chunker: Chunker,
    pub files: Mutex<FilesCache>,
    pub key: &'a crate::crypto::Key,
    /// Chunks of big files handed to other workers and not yet stored.
    pub chunks_in_flight: std::sync::atomic::AtomicUsize,
    /// Big files' read buffer.
    pub read_buffer: KeptBuffer,
    /// Workers store chunks under the read side; a checkpoint takes the write side to see
    /// every stored chunk recorded in some file's progress (see `progress`).
    pub gate: RwLock<()>,
    /// Set after the checkpoint of a Ctrl-C: jobs in flight stop (their work is rolled back).
    pub abort: AtomicBool,
    /// The walker asks the files cache about every job before a worker gets it (only
    /// ctime-comparing modes answer without opening the file, and only a cache with entries).
    pub inline_unchanged: bool,
}

/// One big buffer kept for the next file: a fresh one costs a page fault for every 4 KiB (the
/// kernel maps and zeroes each page), and big files' 9 MiB read buffers were a third of a
/// first create's fresh-memory faults (bench corpus: 148k -> 110k). Only one is kept: a
/// second big file read at the same time gets a buffer of its own, which is then dropped
/// (peak RSS stays below borg's).
#[derive(Default)]
pub struct KeptBuffer(Mutex<Vec<u8>>);

/// A buffer grown beyond this (by unusual chunker parameters) is not kept.
const KEEP_BUFFER: usize = 32 << 20;

impl KeptBuffer {
    /// The kept buffer (with whatever it held), or a new empty one.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn give(&self, b: Vec<u8>) {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.capacity() == 0 && b.capacity() <= KEEP_BUFFER {
            *kept = b;
        }
    }
}

/// What `create` produced.
pub struct Created {
    pub name: String,
    pub id: ObjectId,
    pub meta: ArchiveMeta,
    pub stats: Stats,
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    pub duration: f64,
}

/// Jobs submitted but not yet emitted; the walker waits beyond this. Only item metadata is
/// held for a waiting job, file contents are read when its worker starts it.
const MAX_IN_FLIGHT: usize = 2048;

/// The archive under construction: item stream, statistics, checkpoints.
struct Builder<'s, 'a> {
    repo: &'a dyn crate::repo::Repository,
    key: &'a crate::crypto::Key,
    manifest: &'s mut super::manifest::Manifest,
    security: &'s crate::crypto::security::SecurityDir,
    store: &'s ChunkStore<'a>,
    items: ItemWriter,
    stats: Stats,
    name: String,
    opts: &'s CreateOptions,
    start: chrono::DateTime<chrono::Utc>,
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

    fn meta(&mut self, name: &str) -> Result<ArchiveMeta> {
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
        self.start = start;
        Ok(ArchiveMeta {
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
        })
    }

    /// Stores the archive object and records it in the manifest (not yet committed).
    fn save_meta(&mut self, name: &str) -> Result<(ObjectId, ArchiveMeta)> {
        let meta = self.meta(name)?;
        let packed = meta.pack(self.key);
        let (r, _) = self.store.store(&packed)?;
        self.manifest.archives.insert(
            name.as_bytes().to_vec(),
            ArchiveEntry {
                id: r.id,
                time: meta.time.clone(),
            },
        );
        Ok((r.id, meta))
    }

    fn commit(&mut self) -> Result<()> {
        super::session::commit_manifest(
            self.repo,
            self.key,
            self.manifest,
            self.security,
            &self.opts.compression,
        )
    }

    /// A checkpoint is due by `--checkpoint-interval`, or because the user pressed Ctrl-C.
    fn checkpoint_due(&self) -> bool {
        sigint::requested()
            || (!self.opts.dry_run
                && self.opts.checkpoint_interval > 0
                && self.last_checkpoint.elapsed().as_secs() >= self.opts.checkpoint_interval)
    }

    /// Adds a part item (`<path>.borg_part_N`) to the archive for good: borg keeps them in
    /// the final archive, hidden unless `--consider-part-files`. Its chunks get a reference
    /// of their own, counted in the `*_parts` statistics.
    fn add_part(&mut self, part: &Item) -> Result<()> {
        for c in part.chunks.iter().flatten() {
            self.store.incref(&c.id).ok_or_else(|| {
                ArchiveError::Other(format!("chunk {} of a part file is not stored", c.id.hex()))
            })?;
            self.stats.osize_parts += c.size as u64;
            self.stats.csize_parts += c.csize as u64;
        }
        self.stats.nfiles_parts += 1;
        self.add_item(part)
    }

    /// `<name>.checkpoint`, or `.checkpoint.1`, … if a checkpoint of an interrupted run with
    /// that name is still in the repository (borg's naming).
    fn checkpoint_name(&self) -> String {
        (0..)
            .map(|i| match i {
                0 => format!("{}.checkpoint", self.name),
                i => format!("{}.checkpoint.{i}", self.name),
            })
            .find(|n| self.manifest.get(n).is_none())
            .expect("a free name")
    }

    /// Writes the checkpoint archive: the items so far plus `extra` (items of files finished
    /// or being read behind the archive's current position, which reference the rest of the
    /// chunks stored so far), commits, then forgets it in memory (the next checkpoint or the
    /// final archive replaces it in the manifest).
    /// After a Ctrl-C, returns `Interrupted` once the checkpoint is committed.
    fn checkpoint(&mut self, extra: &[Item]) -> Result<()> {
        let interrupted = sigint::requested();
        if !self.opts.dry_run {
            if interrupted {
                crate::log::info(
                    "borg.archive",
                    "checkpoint requested: starting checkpoint creation...",
                );
            }
            self.write_checkpoint(extra)?;
            if interrupted {
                crate::log::info(
                    "borg.archive",
                    "checkpoint requested: finished checkpoint creation!",
                );
            }
        }
        if interrupted {
            return Err(ArchiveError::Interrupted);
        }
        Ok(())
    }

    fn write_checkpoint(&mut self, extra: &[Item]) -> Result<()> {
        let cp = self.checkpoint_name();
        let mut items = self.items.clone();
        let store = self.store;
        let mut f = |data: &[u8]| -> Result<(ObjectId, u32, u32)> {
            let (r, _) = store.store(data)?;
            Ok((r.id, r.size, r.csize))
        };
        for it in extra {
            items.add(it, &mut f)?;
        }
        // the archive's own item stream stays as it is (its chunking does not depend on
        // when checkpoints happened); the copy is flushed into the checkpoint
        std::mem::swap(&mut self.items, &mut items);
        let saved = self.save_meta(&cp);
        std::mem::swap(&mut self.items, &mut items);
        let (id, _) = saved?;
        self.commit()?;
        self.manifest.archives.remove(cp.as_bytes());
        // the checkpoint's own objects are dropped again; its items stay referenced
        self.store.decref(&id)?;
        for c in &items.chunks[self.items.chunks.len()..] {
            self.store.decref(c)?;
        }
        self.last_checkpoint = Instant::now();
        crate::log::debug("borg.archive", &format!("checkpoint archive {cp} written"));
        Ok(())
    }
}

/// The trees to archive (paths as given; `-` is handled by the caller), their directories
/// already being listed by a helper thread.
pub struct Sources {
    roots: Vec<Vec<u8>>,
    skip_inodes: std::collections::HashSet<(u64, u64)>,
    ahead: prefetch::ReadAhead,
    /// The files cache, being loaded meanwhile ([`Sources::load_files_cache`]).
    files: Option<std::thread::JoinHandle<FilesCache>>,
}

impl Sources {
    /// Starts listing `roots` at once: the listing overlaps the key derivation and the cache
    /// loading that come before the walk. `repo_path`: a local repository, never archived
    /// (nor is the cache directory).
    pub fn start(
        roots: Vec<Vec<u8>>,
        matcher: &PatternMatcher,
        opts: &CreateOptions,
        repo_path: Option<&std::path::Path>,
    ) -> Sources {
        use std::os::unix::fs::MetadataExt;
        let mut skip_inodes = std::collections::HashSet::new();
        let cache_dir = crate::dirs::cache_dir();
        for p in std::iter::once(cache_dir.as_path()).chain(repo_path) {
            if let Ok(st) = std::fs::metadata(p) {
                skip_inodes.insert((st.ino(), st.dev()));
            }
        }
        let ahead = prefetch::ReadAhead::start(prefetch::Plan {
            roots: roots.clone(),
            matcher: matcher.clone(),
            one_file_system: opts.one_file_system,
            skip_inodes: skip_inodes.clone(),
        });
        Sources {
            roots,
            skip_inodes,
            ahead,
            files: None,
        }
    }

    /// Loads the files cache of the repository whose id is `repo_id` on a thread of its own,
    /// while the key is derived (the same PBKDF2 work as borg's, ~10 ms).
    pub fn load_files_cache(&mut self, repo_id: &crate::repo::ObjectId, mode: FilesCacheMode) {
        let dir = super::cache::cache_path(repo_id);
        self.files = std::thread::Builder::new()
            .name("rborg-filescache".into())
            .spawn(move || FilesCache::load(&dir, mode))
            .ok();
    }
}

/// Runs `create` for `sources`.
#[allow(clippy::too_many_arguments)]
pub fn create(
    session: &mut Session,
    cache: &mut Cache,
    name: &str,
    mut sources: Sources,
    matcher: &PatternMatcher,
    opts: &CreateOptions,
    reporter: &dyn Reporter,
    stdin: Option<file::StdinSource>,
) -> Result<Option<Created>> {
    if !opts.dry_run && session.manifest.get(name).is_some() {
        return Err(ArchiveError::AlreadyExists(name.to_string()));
    }
    let chunker = Chunker::new(opts.chunker_params, session.key.chunk_seed())
        .map_err(|e| ArchiveError::Other(e.to_string()))?;
    let files = match sources.files.take().map(|t| t.join()) {
        Some(Ok(f)) if f.path().parent() == Some(cache.path.as_path()) => f,
        _ => FilesCache::load(&cache.path, opts.files_cache),
    };
    let index = std::mem::take(&mut cache.chunks);
    let Session {
        repo,
        key,
        manifest,
        security,
        ..
    } = session;
    let repo: &dyn crate::repo::Repository = &**repo;
    let key: &crate::crypto::Key = key;
    let store = ChunkStore::new(repo, key, opts.compression.clone(), index);
    let shared = Shared {
        opts,
        store: &store,
        chunker,
        inline_unchanged: opts.files_cache.ctime && !files.is_empty(),
        files: Mutex::new(files),
        key,
        chunks_in_flight: std::sync::atomic::AtomicUsize::new(0),
        read_buffer: KeptBuffer::default(),
        gate: RwLock::new(()),
        abort: AtomicBool::new(false),
    };
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
        start: chrono::Utc::now(),
        started: now,
        last_checkpoint: now,
    };
    let result = (|| -> Result<()> {
        if let Some(src) = stdin {
            let (item, st) = file::process_stdin(&shared, src, &mut b)?;
            reporter.file_status('i', &item.path);
            b.stats += st;
            if !opts.dry_run {
                b.add_item(&item)?;
            }
        }
        let done = Arc::new(Done::default());
        rayon::in_place_scope(|scope| -> Result<()> {
            let mut pipe = Pipeline {
                queue: VecDeque::new(),
                done: done.clone(),
                batch: Vec::new(),
                batch_bytes: 0,
            };
            let shared = &shared;
            let mut sink = |jobs: &mut Vec<Job>| -> Result<()> {
                for job in jobs.drain(..) {
                    pipe.submit(scope, shared, job);
                    pipe.emit_ready(&mut b, reporter)?;
                    if b.checkpoint_due() {
                        pipe.checkpoint(&mut b, shared, reporter)?;
                    }
                    if pipe.queue.len() >= MAX_IN_FLIGHT {
                        pipe.flush(scope, shared);
                        while pipe.queue.len() >= MAX_IN_FLIGHT {
                            if !pipe.wait_front(&b) {
                                pipe.checkpoint(&mut b, shared, reporter)?;
                            }
                            pipe.emit_ready(&mut b, reporter)?;
                        }
                    }
                }
                // the walker goes on reading directories: keep the workers fed meanwhile
                pipe.flush(scope, shared);
                Ok(())
            };
            let Sources {
                roots,
                skip_inodes,
                ahead,
                ..
            } = sources;
            let walked = {
                let mut walker = walk::Walker::new(opts, matcher, &mut sink);
                walker.skip_inodes = skip_inodes;
                walker.prefetch = Some(ahead.prefetch());
                (|| {
                    for root in &roots {
                        walker.root(root);
                        walker.flush();
                        if let Some(e) = walker.error.take() {
                            return Err(e);
                        }
                    }
                    Ok(())
                })()
            };
            drop(ahead);
            walked?;
            pipe.flush(scope, shared);
            pipe.drain(&mut b, shared, reporter)
        })?;
        if sigint::requested() {
            // Ctrl-C with no checkpoint opportunity since: checkpoint now, then stop
            b.checkpoint(&[])?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = repo.rollback();
        return Err(e);
    }
    if opts.dry_run {
        return Ok(None);
    }
    let files = shared.files.into_inner().unwrap_or_else(|e| e.into_inner());
    // The files cache is encoded while the archive is committed, and written once that
    // succeeded (as borg, a failed run leaves the old one).
    let files_path = files.path().to_path_buf();
    let encoder = std::thread::spawn(move || files.encode());
    let (id, meta) = b.save_meta(name)?;
    let start = b.start;
    let duration = b.started.elapsed().as_secs_f64();
    let stats = b.stats;
    b.commit()?;
    drop(b);
    let (index, added) = store.into_index();
    cache.chunks = index;
    cache.commit(manifest)?;
    cache.remember_archive(&id, &added)?;
    cache.remember_sizes(&id, meta.size, meta.csize)?;
    let encoded = encoder
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    if let Some(data) = encoded {
        FilesCache::write(&files_path, &data)?;
    }
    let end = super::manifest::parse_timestamp(&meta.time_end).unwrap_or(start);
    Ok(Some(Created {
        name: name.to_string(),
        id,
        meta,
        stats,
        start,
        end,
        duration,
    }))
}

/// Completion signal of the worker tasks. Workers only take the lock and wake the walker when
/// it is actually waiting, so a job's completion normally costs no syscall.
#[derive(Default)]
struct Done {
    lock: Mutex<()>,
    cv: Condvar,
    waiting: AtomicBool,
}

impl Done {
    fn finished(&self, slot: &Slot) {
        slot.ready.store(true, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.cv.notify_all();
        }
    }
}

/// One submitted job; `job` is set (and `ready` raised) when its worker finished.
struct Slot {
    ready: AtomicBool,
    job: Mutex<Option<Job>>,
    error: Mutex<Option<ArchiveError>>,
    /// The chunks stored so far, while its file is being read.
    progress: Mutex<Option<Arc<progress::FileProgress>>>,
}

impl Slot {
    fn new(ready: bool, job: Option<Job>) -> Arc<Slot> {
        Arc::new(Slot {
            ready: AtomicBool::new(ready),
            job: Mutex::new(job),
            error: Mutex::new(None),
            progress: Mutex::new(None),
        })
    }
}

/// Consecutive small jobs go to one worker task together (fewer task hand-offs and wakeups);
/// a batch closes at this many jobs or file bytes.
const BATCH_JOBS: usize = 32;
const BATCH_BYTES: u64 = 4 << 20;

/// The ordered in-flight queue between the walker and the emitter.
struct Pipeline {
    queue: VecDeque<Arc<Slot>>,
    done: Arc<Done>,
    batch: Vec<(Job, Arc<Slot>)>,
    batch_bytes: u64,
}

impl Pipeline {
    fn submit<'s>(&mut self, scope: &rayon::Scope<'s>, shared: &'s Shared<'s>, mut job: Job) {
        let cheap = matches!(
            job.kind,
            JobKind::Status
                | JobKind::Warning(_)
                | JobKind::Special {
                    ext_attrs: false,
                    ..
                }
        );
        if cheap || (shared.inline_unchanged && file::finish_unchanged(shared, &mut job)) {
            self.queue.push_back(Slot::new(true, Some(job)));
            return;
        }
        let slot = Slot::new(false, None);
        self.queue.push_back(slot.clone());
        let size = match job.kind {
            JobKind::File { size, .. } => size,
            _ => 0,
        };
        self.batch.push((job, slot));
        self.batch_bytes += size;
        if self.batch.len() >= BATCH_JOBS || self.batch_bytes >= BATCH_BYTES {
            self.flush(scope, shared);
        }
    }

    /// Hands the collected batch to a worker.
    fn flush<'s>(&mut self, scope: &rayon::Scope<'s>, shared: &'s Shared<'s>) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let done = self.done.clone();
        scope.spawn(move |_| {
            for (mut job, slot) in batch {
                if let Err(e) = file::process_job(shared, &mut job, &slot.progress) {
                    *slot.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                }
                *slot.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
                done.finished(&slot);
            }
        });
    }

    /// Blocks until the oldest job is finished (its batch must have been handed out): true;
    /// or until a checkpoint falls due: false.
    fn wait_front(&self, b: &Builder) -> bool {
        let Some(front) = self.queue.front() else {
            return true;
        };
        let mut g = self.done.lock.lock().unwrap_or_else(|e| e.into_inner());
        let finished = loop {
            self.done.waiting.store(true, Ordering::SeqCst);
            if front.ready.load(Ordering::SeqCst) {
                break true;
            }
            if b.checkpoint_due() {
                break false;
            }
            g = self
                .done
                .cv
                .wait_timeout(g, Duration::from_millis(20))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        };
        self.done.waiting.store(false, Ordering::SeqCst);
        finished
    }

    /// Waits for and emits every job in flight (all batches must have been handed out).
    fn drain(&mut self, b: &mut Builder, shared: &Shared, reporter: &dyn Reporter) -> Result<()> {
        while !self.queue.is_empty() {
            if !self.wait_front(b) {
                self.checkpoint(b, shared, reporter)?;
            }
            self.emit_ready(b, reporter)?;
        }
        Ok(())
    }

    /// Writes a checkpoint without waiting for the jobs in flight. Under the gate's write
    /// side no chunk is being stored, and every stored one is either in the item stream, in a
    /// finished job's item, or in the progress of a file being read. The file at the front
    /// gets a part item for good (what borg's sequential reader would have written); the
    /// others are written into this checkpoint only.
    fn checkpoint(
        &mut self,
        b: &mut Builder,
        shared: &Shared,
        reporter: &dyn Reporter,
    ) -> Result<()> {
        self.emit_ready(b, reporter)?;
        let _gate = shared.gate.write().unwrap_or_else(|e| e.into_inner());
        // what finished while the gate was being taken
        self.emit_ready(b, reporter)?;
        let mut extra = Vec::new();
        for (pos, slot) in self.queue.iter().enumerate() {
            if slot.ready.load(Ordering::Acquire) {
                let job = slot.job.lock().unwrap_or_else(|e| e.into_inner());
                let item = job.as_ref().and_then(|job| {
                    let failed = job.result.as_ref().is_some_and(|r| r.failed);
                    job.item.as_ref().filter(|_| !failed)
                });
                if let Some(item) =
                    item.filter(|i| i.chunks.as_ref().is_some_and(|c| !c.is_empty()))
                {
                    extra.push(item.clone());
                }
                continue;
            }
            let progress = slot
                .progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let Some(progress) = progress else {
                continue;
            };
            progress.store_pending(shared.store)?;
            if pos == 0 {
                if let Some(part) = progress.part(true) {
                    b.add_part(&part)?;
                }
            } else if let Some(part) = progress.part(false) {
                extra.push(part);
            }
        }
        let r = b.checkpoint(&extra);
        if r.is_err() {
            // committed or not, nothing after this point is kept: jobs in flight stop early
            shared.abort.store(true, Ordering::SeqCst);
        }
        r
    }

    /// Emits finished jobs from the front, in order.
    fn emit_ready(&mut self, b: &mut Builder, reporter: &dyn Reporter) -> Result<()> {
        while let Some(front) = self.queue.front() {
            if !front.ready.load(Ordering::Acquire) {
                break;
            }
            let slot = self.queue.pop_front().expect("front");
            if let Some(e) = slot.error.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Err(e);
            }
            let job = slot.job.lock().unwrap_or_else(|e| e.into_inner()).take();
            let progress = slot
                .progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(job) = job {
                emit(b, job, progress.as_deref(), reporter)?;
            }
        }
        Ok(())
    }
}

/// Reports one finished job and adds its item to the archive.
fn emit(
    b: &mut Builder,
    job: Job,
    progress: Option<&progress::FileProgress>,
    reporter: &dyn Reporter,
) -> Result<()> {
    match &job.kind {
        JobKind::Status => {
            if let Some(s) = job.status {
                reporter.file_status(s, &job.path);
            }
            return Ok(());
        }
        JobKind::Warning(w) => {
            reporter.warning(w.code, &w.msg);
            if let Some(s) = job.status {
                reporter.file_status(s, &job.path);
            }
            return Ok(());
        }
        _ => {}
    }
    let res = job.result.unwrap_or_default();
    for w in &res.warnings {
        reporter.warning(w.code, &w.msg);
    }
    if res.failed {
        reporter.file_status('E', &job.path);
        return Ok(());
    }
    if let Some(s) = res.status.or(job.status) {
        reporter.file_status(s, &job.path);
    }
    if res.changed {
        reporter.warning(
            100,
            &format!(
                "{}: file changed while we backed it up",
                String::from_utf8_lossy(&job.path)
            ),
        );
        reporter.file_status('C', &job.path);
    }
    b.stats += res.stats;
    if let Some(item) = &job.item {
        if let Some(last) = progress.and_then(|p| p.last_part(item)) {
            b.add_part(&last)?;
        }
        b.add_item(item)?;
        reporter.progress(&b.stats, &job.path);
    }
    Ok(())
}

/// The references this archive added, for the cache's per-archive chunk lists.
pub fn empty_refs() -> ChunkIndex {
    ChunkIndex::default()
}

pub use file::StdinSource;
