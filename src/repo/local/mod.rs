//! borg's local repository format: segments + index + hints + integrity, transactions,
//! compaction, check and repair, locking, nonce file, append-only log, storage quota.

pub mod atomic;
mod check;
mod compact;
pub mod config;
pub mod hashindex;
pub mod hints;
pub mod integrity;
pub mod lock;
pub mod segment;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use self::config::RepoConfig;
use self::hashindex::NsIndex;
use self::hints::{Hints, Parsed};
use self::lock::Lock;
use self::segment::{
    ReadMode, SegmentIo, ATTIC_MAGIC, PUT_HEADER_SIZE, TAG_COMMIT, TAG_DELETE, TAG_PUT,
};
use super::{
    GetResult, Location, ObjectId, OpenOptions, RepoError, Repository, Result, MAX_OBJECT_SIZE,
};
use crate::units::fsize;

pub const README: &str =
    "This is a Borg Backup repository.\nSee https://borgbackup.readthedocs.io/\n";

const LOGGER: &str = "borg.repository";

/// Transaction state (what hints.N persists).
struct Txn {
    hints: Hints,
}

struct Inner {
    io: SegmentIo,
    lock: Option<Lock>,
    index: Option<NsIndex>,
    txn: Option<Txn>,
    /// A quota violation dooms the transaction: commit rolls back and re-raises.
    doomed: Option<(String, String)>,
    /// Sorted ids for paged `list` calls (invalidated by writes).
    sorted_ids: Option<Vec<ObjectId>>,
    config: RepoConfig,
}

pub struct LocalRepository {
    location: Location,
    path: PathBuf,
    display: String,
    id: ObjectId,
    append_only: bool,
    storage_quota: u64,
    exclusive: Option<bool>,
    created: bool,
    inner: Mutex<Inner>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RepoError + '_ {
    move |e| RepoError::io(path, e)
}

/// Is there a borg repository README at `path`?
pub fn is_repository(path: &Path) -> bool {
    let Ok(mut f) = fs::File::open(path.join("README")) else {
        return false;
    };
    let mut head = [0u8; 100];
    let n = io::Read::read(&mut f, &mut head).unwrap_or(0);
    let head = &head[..n];
    contains(head, b"Borg Backup repository") || contains(head, b"Borg repository")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn free_space(path: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

impl LocalRepository {
    /// A full repository check (no repair) that also hands every object's value to `verify`
    /// as the segments are read, in parallel with reading.
    pub fn check_verifying(
        &self,
        verify: &crate::repo::ObjectVerifier,
    ) -> Result<(bool, crate::repo::VerifiedObjects)> {
        let mut inner = self.inner();
        let (ok, v) = check::check(self, &mut inner, false, 0, Some(verify))?;
        Ok((ok, v.unwrap_or_default()))
    }

    /// Creates an empty repository (borg init's repository part).
    pub fn create(
        path: &Path,
        append_only: bool,
        storage_quota: u64,
        make_parent_dirs: bool,
    ) -> Result<()> {
        let disp = path.display().to_string();
        match fs::metadata(path) {
            Ok(st) => {
                if is_repository(path) {
                    return Err(RepoError::AlreadyExists(disp));
                }
                let empty_dir = st.is_dir()
                    && fs::read_dir(path)
                        .map(|mut r| r.next().is_none())
                        .unwrap_or(false);
                if !empty_dir {
                    if st.is_dir() && fs::read_dir(path).is_err() {
                        return Err(RepoError::PathPermissionDenied(disp));
                    }
                    return Err(RepoError::PathAlreadyExists(disp));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(RepoError::PathPermissionDenied(disp))
            }
            Err(e) => return Err(RepoError::io(path, e)),
        }
        let mut p = path.to_path_buf();
        while let Some(parent) = p.parent() {
            if parent == p {
                break;
            }
            if is_repository(parent) {
                return Err(RepoError::AlreadyExists(parent.display().to_string()));
            }
            p = parent.to_path_buf();
        }
        if make_parent_dirs {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
        }
        if !path.exists() {
            match fs::create_dir(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(RepoError::ParentPathDoesNotExist(disp))
                }
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    return Err(RepoError::PathPermissionDenied(disp))
                }
                Err(e) => return Err(RepoError::io(path, e)),
            }
        }
        let readme = path.join("README");
        fs::write(&readme, README).map_err(io_err(&readme))?;
        let data = path.join("data");
        fs::create_dir(&data).map_err(io_err(&data))?;
        let mut id = [0u8; 32];
        getrandom::getrandom(&mut id)
            .map_err(|e| RepoError::io(path, io::Error::other(e.to_string())))?;
        RepoConfig::new(id, append_only, storage_quota).save(path)
    }

    pub fn open(location: &Location, opts: &OpenOptions) -> Result<LocalRepository> {
        let path = location.local_path();
        let display = location.canonical_path();
        if opts.create {
            Self::create(
                &path,
                opts.append_only,
                opts.storage_quota.unwrap_or(0),
                opts.make_parent_dirs,
            )?;
        }
        match fs::metadata(&path) {
            Ok(st) if st.is_dir() => {}
            Ok(_) => return Err(RepoError::InvalidRepository(display)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RepoError::DoesNotExist(display))
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(RepoError::PathPermissionDenied(display))
            }
            Err(e) => return Err(RepoError::io(&path, e)),
        }
        // A directory without our config is not a repository; say so before touching locks.
        if !path.join("config").exists() {
            if fs::read_dir(&path).is_err() {
                return Err(RepoError::PathPermissionDenied(display));
            }
            return Err(RepoError::InvalidRepository(display));
        }
        let lock = match opts.exclusive {
            None => None,
            Some(excl) => {
                let mut l = Lock::new(&path.join("lock"), excl, Some(opts.lock_wait));
                l.acquire()?;
                Some(l)
            }
        };
        let config = RepoConfig::load(&path, &display)?;
        let append_only = opts.append_only || config.append_only;
        let storage_quota = opts.storage_quota.unwrap_or(config.storage_quota);
        let mut io = SegmentIo::new(&path, config.max_segment_size, config.segments_per_dir);
        if let Some(latest) = io.latest_segment()? {
            if io.segment_size(latest).unwrap_or(0) >= 8
                && io.segment_magic(latest)? == *ATTIC_MAGIC
            {
                return Err(RepoError::AtticRepository(display));
            }
        }
        io.next_segment = 0;
        Ok(LocalRepository {
            location: location.without_archive(),
            id: ObjectId(config.id),
            path,
            display,
            append_only,
            storage_quota,
            exclusive: opts.exclusive,
            created: opts.create,
            inner: Mutex::new(Inner {
                io,
                lock,
                index: None,
                txn: None,
                doomed: None,
                sorted_ids: None,
                config,
            }),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn is_append_only(&self) -> bool {
        self.append_only
    }
    pub fn storage_quota(&self) -> u64 {
        self.storage_quota
    }
    /// The current config (for `borg config`).
    pub fn config(&self) -> RepoConfig {
        self.inner().config.clone()
    }
    /// Replaces and saves the config (for `borg config`).
    pub fn save_config(&self, cfg: RepoConfig) -> Result<()> {
        cfg.save(&self.path)?;
        self.inner().config = cfg;
        Ok(())
    }

    fn index_transaction_id(&self) -> Result<Option<u32>> {
        let mut best = None;
        for e in fs::read_dir(&self.path).map_err(io_err(&self.path))? {
            let e = e.map_err(io_err(&self.path))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(num) = name.strip_prefix("index.") else {
                continue;
            };
            if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if e.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
                continue;
            }
            if let Ok(n) = num.parse::<u32>() {
                best = best.max(Some(n));
            }
        }
        Ok(best)
    }

    fn check_transaction(&self, inner: &mut Inner) -> Result<()> {
        let index_tid = self.index_transaction_id()?;
        let segments_tid = inner.io.segments_transaction_id()?;
        match (index_tid, segments_tid) {
            (Some(_), None) => Err(RepoError::CheckNeeded(format!(
                "{}\" - although likely this is \"beyond repair",
                self.display
            ))),
            (a, b) if a == b => Ok(()),
            (a, b) => {
                let replay_from = match (a, b) {
                    (Some(i), Some(s)) if i > s => None,
                    _ => a,
                };
                self.replay_segments(inner, replay_from, b)
            }
        }
    }

    fn transaction_id(&self, inner: &mut Inner) -> Result<Option<u32>> {
        self.check_transaction(inner)?;
        self.index_transaction_id()
    }

    fn read_integrity(&self, tid: u32, key: &str) -> Result<integrity::Expected> {
        let name = format!("integrity.{tid}");
        let p = self.path.join(&name);
        let data = match fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(integrity::Expected::Unverified)
            }
            Err(e) => return Err(RepoError::io(&p, e)),
        };
        match integrity::read_integrity_entry(&data, key, &name) {
            Ok(Some(json)) => integrity::parse_description(&json, &format!("{key}.{tid}"))
                .map_err(|e| RepoError::FileIntegrity(e.to_string())),
            Ok(None) => Ok(integrity::Expected::Unverified),
            Err(e) => Err(RepoError::FileIntegrity(e.to_string())),
        }
    }

    fn load_index_file(&self, tid: u32) -> Result<NsIndex> {
        let name = format!("index.{tid}");
        let p = self.path.join(&name);
        let expected = self.read_integrity(tid, "index")?;
        let data = fs::read(&p).map_err(io_err(&p))?;
        integrity::verify(
            &name,
            &data,
            &[("HashHeader", hashindex::HEADER_SIZE)],
            &expected,
        )
        .map_err(|e| RepoError::FileIntegrity(e.to_string()))?;
        hashindex::parse_nsindex(&data)
            .map_err(|e| RepoError::FileIntegrity(format!("{}: {e}", p.display())))
    }

    /// Loads `index.tid`; a missing or corrupt index is deleted and rebuilt from the segments.
    fn open_index(
        &self,
        inner: &mut Inner,
        tid: Option<u32>,
        auto_recover: bool,
    ) -> Result<NsIndex> {
        let Some(tid) = tid else {
            return Ok(NsIndex::default());
        };
        match self.load_index_file(tid) {
            Ok(idx) => Ok(idx),
            Err(e) => {
                crate::log::warning(
                    LOGGER,
                    &format!("Repository index missing or corrupted, trying to recover from: {e}"),
                );
                let _ = fs::remove_file(self.path.join(format!("index.{tid}")));
                if !auto_recover {
                    return Err(e);
                }
                let t = self.transaction_id(inner)?;
                self.prepare_txn(inner, t, true)?;
                self.commit_inner(inner, false, 0.1, false)?;
                let t = self.transaction_id(inner)?;
                self.open_index(inner, t, false)
            }
        }
    }

    fn ensure_index(&self, inner: &mut Inner) -> Result<()> {
        if inner.index.is_none() {
            let tid = self.transaction_id(inner)?;
            let idx = self.open_index(inner, tid, true)?;
            inner.index = Some(idx);
        }
        Ok(())
    }

    fn ensure_exclusive(&self, inner: &mut Inner) -> Result<()> {
        if let Some(lock) = &mut inner.lock {
            if !lock.got_exclusive_lock() {
                if self.exclusive.is_some() && self.exclusive != Some(false) {
                    return Err(RepoError::Integrity(
                        "bug in code, exclusive lock should exist here".into(),
                    ));
                }
                lock.upgrade()?;
            }
        }
        Ok(())
    }

    fn prepare_txn(&self, inner: &mut Inner, tid: Option<u32>, do_cleanup: bool) -> Result<()> {
        self.ensure_exclusive(inner)?;
        if inner.index.is_none() || tid.is_none() {
            match self.open_index(inner, tid, false) {
                Ok(i) => inner.index = Some(i),
                Err(e) => {
                    crate::log::warning(
                        LOGGER,
                        &format!("Checking repository transaction due to previous error: {e}"),
                    );
                    self.check_transaction(inner)?;
                    let i = self.open_index(inner, tid, false)?;
                    inner.index = Some(i);
                }
            }
        }
        inner.sorted_ids = None;
        let Some(tid) = tid else {
            inner.txn = Some(Txn {
                hints: Hints::default(),
            });
            return Ok(());
        };
        if do_cleanup {
            inner.io.cleanup(Some(tid))?;
        } else {
            inner.io.next_segment = inner.io.next_segment.max(tid + 1);
        }
        let hints_name = format!("hints.{tid}");
        let hints_path = self.path.join(&hints_name);
        let loaded: std::result::Result<Parsed, String> = (|| {
            let expected = self
                .read_integrity(tid, "hints")
                .map_err(|e| e.to_string())?;
            let data = fs::read(&hints_path).map_err(|e| e.to_string())?;
            integrity::verify(&hints_name, &data, &[], &expected).map_err(|e| e.to_string())?;
            Hints::decode(&data).map_err(|e| e.to_string())
        })();
        let hints = match loaded {
            Ok(Parsed::V2(h)) => h,
            Ok(Parsed::V1 {
                segments,
                compact_segments,
            }) => {
                crate::log::debug(LOGGER, &format!("Upgrading from v1 hints.{tid}"));
                let mut h = Hints {
                    segments,
                    ..Hints::default()
                };
                let index = inner.index.as_ref().expect("index loaded");
                for seg in compact_segments {
                    rebuild_sparse(&inner.io, index, &mut h, seg)?;
                }
                h
            }
            Err(e) => {
                crate::log::warning(
                    LOGGER,
                    &format!("Repository hints file missing or corrupted, trying to recover: {e}"),
                );
                let _ = fs::remove_file(&hints_path);
                let _ = fs::remove_file(self.path.join(format!("index.{tid}")));
                inner.index = None;
                self.check_transaction(inner)?;
                return self.prepare_txn(inner, Some(tid), do_cleanup);
            }
        };
        let mut hints = hints;
        for segs in hints.shadow_index.values_mut() {
            segs.retain(|s| *s <= tid);
        }
        inner.txn = Some(Txn { hints });
        Ok(())
    }

    fn ensure_txn(&self, inner: &mut Inner) -> Result<()> {
        if inner.txn.is_none() {
            let tid = self.transaction_id(inner)?;
            self.prepare_txn(inner, tid, true)?;
        }
        Ok(())
    }

    fn write_index(&self, inner: &mut Inner) -> Result<()> {
        let tid = inner
            .io
            .segments_transaction_id()?
            .ok_or_else(|| RepoError::Integrity("write_index: no committed segment".into()))?;
        let txn = inner.txn.as_ref().expect("transaction active");
        if self.append_only {
            use std::io::Write;
            let p = self.path.join("transactions");
            let mut f = fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&p)
                .map_err(io_err(&p))?;
            let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f");
            writeln!(f, "transaction {tid}, UTC time {now}").map_err(io_err(&p))?;
        }
        let write_tmp = |name: &str, data: &[u8]| -> Result<()> {
            use std::io::Write;
            let p = self.path.join(format!("{name}.tmp"));
            let mut f = fs::File::create(&p).map_err(io_err(&p))?;
            f.write_all(data).map_err(io_err(&p))?;
            f.sync_all().map_err(io_err(&p))
        };
        let hints_name = format!("hints.{tid}");
        let hints_bytes = txn.hints.encode();
        let mut hh = integrity::IntegrityHasher::new(&hints_name);
        hh.update(&hints_bytes);
        let hints_json = hh.finish();
        write_tmp(&hints_name, &hints_bytes)?;

        let index_name = format!("index.{tid}");
        let index_bytes = hashindex::build_nsindex(inner.index.as_ref().expect("index"));
        let mut ih = integrity::IntegrityHasher::new(&index_name);
        ih.update(&index_bytes[..hashindex::HEADER_SIZE]);
        ih.hash_part("HashHeader");
        ih.update(&index_bytes[hashindex::HEADER_SIZE..]);
        let index_json = ih.finish();
        write_tmp(&index_name, &index_bytes)?;
        drop(index_bytes);

        let integrity_name = format!("integrity.{tid}");
        write_tmp(
            &integrity_name,
            &integrity::encode_integrity_file(&hints_json, &index_json),
        )?;
        let rename = |name: &str| -> Result<()> {
            let from = self.path.join(format!("{name}.tmp"));
            fs::rename(&from, self.path.join(name)).map_err(io_err(&from))
        };
        rename(&integrity_name)?;
        atomic::sync_dir(&self.path).map_err(io_err(&self.path))?;
        rename(&hints_name)?;
        rename(&index_name)?;
        atomic::sync_dir(&self.path).map_err(io_err(&self.path))?;
        let current = format!(".{tid}");
        for e in fs::read_dir(&self.path)
            .map_err(io_err(&self.path))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("index.")
                || name.starts_with("hints.")
                || name.starts_with("integrity."))
            {
                continue;
            }
            if name.ends_with(&current) {
                continue;
            }
            let _ = fs::remove_file(e.path());
        }
        inner.index = None;
        Ok(())
    }

    fn check_free_space(&self, inner: &mut Inner) -> Result<()> {
        let txn = inner.txn.as_ref().expect("txn");
        let index_len = inner.index.as_ref().map_or(0, |i| i.len());
        let buckets = hashindex::table_size_for(index_len);
        let mut required = (hashindex::HEADER_SIZE as u64 + buckets * 40) * 4;
        required +=
            txn.hints.segments.len() as u64 * 10 + txn.hints.compact.len() as u64 * 10 + 4096;
        required += inner.config.additional_free_space;
        if !self.append_only {
            let full = inner.config.max_segment_size + MAX_OBJECT_SIZE as u64;
            if txn.hints.compact.len() < 10 {
                let mut ws = 0u64;
                for (seg, free) in &txn.hints.compact {
                    if let Ok(sz) = inner.io.segment_size(*seg) {
                        ws += sz.saturating_sub(*free);
                    }
                }
                required += ws.min(full);
            } else {
                required += full;
            }
        }
        let Some(free) = free_space(&self.path) else {
            crate::log::warning(LOGGER, "Failed to check free space before committing");
            return Ok(());
        };
        if free < required {
            if self.created {
                crate::log::error(
                    LOGGER,
                    "Not enough free space to initialize repository at this location.",
                );
                let _ = fs::remove_file(self.path.join("config"));
                let _ = fs::remove_dir_all(&self.path);
            } else {
                self.rollback_inner(inner, true)?;
            }
            return Err(RepoError::InsufficientFreeSpace(
                fsize(required as i128),
                fsize(free as i128),
            ));
        }
        Ok(())
    }

    fn commit_inner(
        &self,
        inner: &mut Inner,
        compact: bool,
        threshold: f64,
        cleanup_commits: bool,
    ) -> Result<()> {
        if let Some((q, u)) = inner.doomed.take() {
            self.rollback_inner(inner, false)?;
            return Err(RepoError::StorageQuotaExceeded(q, u));
        }
        self.ensure_txn(inner)?;
        self.check_free_space(inner)?;
        if self.storage_quota > 0 {
            let use_ = inner.txn.as_ref().expect("txn").hints.storage_quota_use;
            crate::log::info(
                LOGGER,
                &format!(
                    "Storage quota: {} out of {} used.",
                    fsize(use_ as i128),
                    fsize(self.storage_quota as i128)
                ),
            );
        }
        let result = (|| {
            let seg = inner.io.write_commit(false)?;
            {
                let h = &mut inner.txn.as_mut().expect("txn").hints;
                h.segments.entry(seg).or_insert(0);
                *h.compact.entry(seg).or_insert(0) += segment::HEADER_SIZE as u64;
            }
            if compact && !self.append_only {
                if cleanup_commits {
                    let segs = inner.io.segment_numbers()?;
                    for s in segs {
                        if inner.io.segment_size(s).unwrap_or(0) == 17 {
                            let h = &mut inner.txn.as_mut().expect("txn").hints;
                            h.segments.insert(s, 0);
                            h.compact.insert(s, segment::HEADER_SIZE as u64);
                        }
                    }
                }
                self.compact_segments(inner, threshold)?;
            }
            self.write_index(inner)
        })();
        if let Err(e) = result {
            if let RepoError::Io { source, .. } = &e {
                if source.raw_os_error() == Some(libc::ENOSPC) {
                    crate::log::warning(
                        LOGGER,
                        "No space left on device, cleaning up partial transaction to free space.",
                    );
                    let _ = self.rollback_inner(inner, true);
                    return Err(e);
                }
            }
            let _ = self.rollback_inner(inner, false);
            return Err(e);
        }
        self.rollback_inner(inner, false)
    }

    fn rollback_inner(&self, inner: &mut Inner, cleanup: bool) -> Result<()> {
        inner.io.abandon_write();
        if cleanup {
            let tid = inner.io.segments_transaction_id()?;
            inner.io.cleanup(tid)?;
        }
        inner.index = None;
        inner.txn = None;
        inner.doomed = None;
        inner.sorted_ids = None;
        Ok(())
    }

    /// Rebuilds index and hints from segments `from_tid+1 ..= to_tid` and writes them.
    fn replay_segments(
        &self,
        inner: &mut Inner,
        from_tid: Option<u32>,
        to_tid: Option<u32>,
    ) -> Result<()> {
        let Some(to_tid) = to_tid else { return Ok(()) };
        self.ensure_exclusive(inner)?;
        inner.index = None;
        self.prepare_txn(inner, from_tid, false)?;
        let result = (|| {
            let segs = inner.io.segment_numbers()?;
            let total = segs.len();
            let mut progress = crate::log::ProgressPercent::new(
                total as u64,
                "Replaying segments %3.0f%%",
                "repository.replay_segments",
            );
            for (i, seg) in segs.into_iter().enumerate() {
                progress.show(i as u64);
                if from_tid.is_some_and(|f| seg <= f) {
                    continue;
                }
                if seg > to_tid {
                    break;
                }
                let entries = inner
                    .io
                    .iter_objects(seg, 0, ReadMode::Verify)?
                    .collect::<Result<Vec<_>>>()?;
                update_index(inner, seg, &entries, None)?;
            }
            progress.finish();
            self.write_index(inner)
        })();
        let r2 = self.rollback_inner(inner, false);
        result.and(r2)
    }

    /// Checks whether the process holds the exclusive lock (for nonce operations).
    fn require_exclusive(&self, inner: &Inner) -> Result<()> {
        match &inner.lock {
            Some(l) if !l.got_exclusive_lock() => Err(RepoError::Integrity(
                "exclusive repository lock required for nonce reservation".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Closes (syncs) the segment being written, so it is complete on disk.
    pub fn close_segment(&self) -> Result<()> {
        self.inner().io.close_segment()
    }

    /// Lists segment files with their sizes (for `borg info`-like statistics and tests).
    pub fn segment_files(&self) -> Result<Vec<(u32, u64)>> {
        let inner = self.inner();
        let segs = inner.io.segment_numbers()?;
        Ok(segs
            .into_iter()
            .map(|s| (s, inner.io.segment_size(s).unwrap_or(0)))
            .collect())
    }
}

/// Applies a segment's entries to index and hints (shared by replay and check).
fn update_index(
    inner: &mut Inner,
    segment: u32,
    entries: &[segment::Entry],
    mut report: Option<&mut dyn FnMut(String)>,
) -> Result<()> {
    let Inner { io, index, txn, .. } = inner;
    let index = index.as_mut().expect("index");
    let h = &mut txn.as_mut().expect("txn").hints;
    h.segments.insert(segment, 0);
    for e in entries {
        match e.tag {
            TAG_PUT => {
                if let Some(&(s, _)) = index.get(&e.key) {
                    *h.compact.entry(s).or_insert(0) += e.size as u64;
                    *h.segments.entry(s).or_insert(0) -= 1;
                    h.shadow_index.entry(e.key).or_default().push(s);
                }
                index.insert(e.key, (segment, e.offset));
                *h.segments.entry(segment).or_insert(0) += 1;
                h.storage_quota_use += e.size as u64;
            }
            TAG_DELETE => {
                if let Some((s, off)) = index.remove(&e.key) {
                    if io.segment_exists(s) {
                        *h.segments.entry(s).or_insert(0) -= 1;
                        let (size, _) = io.read(s, off, &e.key, false)?;
                        *h.compact.entry(s).or_insert(0) += size as u64;
                        h.shadow_index.entry(e.key).or_default().push(s);
                    }
                }
            }
            TAG_COMMIT => {}
            t => {
                let msg = format!("Unexpected tag {t} in segment {segment}");
                match report.as_mut() {
                    Some(r) => r(msg),
                    None => return Err(RepoError::CheckNeeded(msg)),
                }
            }
        }
    }
    if h.segments.get(&segment) == Some(&0) {
        h.compact.insert(segment, io.segment_size(segment)?);
    }
    Ok(())
}

/// Recomputes freeable bytes of one segment relative to the index (hints v1 upgrade).
fn rebuild_sparse(io: &SegmentIo, index: &NsIndex, h: &mut Hints, segment: u32) -> Result<()> {
    let Ok(size) = io.segment_size(segment) else {
        h.segments.remove(&segment);
        return Ok(());
    };
    if h.segments.get(&segment).copied().unwrap_or(0) == 0 {
        h.compact.insert(segment, size);
        return Ok(());
    }
    let mut free = 0;
    for e in io.iter_objects(segment, 0, ReadMode::HeadersOnly)? {
        let e = e?;
        match e.tag {
            TAG_PUT if index.get(&e.key) != Some(&(segment, e.offset)) => free += e.size as u64,
            TAG_DELETE => free += e.size as u64,
            _ => {}
        }
    }
    h.compact.insert(segment, free);
    Ok(())
}

impl Repository for LocalRepository {
    fn id(&self) -> ObjectId {
        self.id
    }
    fn location(&self) -> &Location {
        &self.location
    }

    fn get(&self, id: &ObjectId) -> GetResult {
        let reader;
        let offset;
        {
            let mut inner = self.inner();
            self.ensure_index(&mut inner)?;
            let Some(&(seg, off)) = inner.index.as_ref().expect("index").get(id) else {
                return Err(RepoError::ObjectNotFound(
                    *id,
                    self.path.display().to_string(),
                ));
            };
            reader = inner.io.reader_for(seg)?;
            offset = off;
        }
        // The read itself happens outside the lock, so parallel readers do not serialise.
        Ok(reader
            .read_put(offset, id, true)?
            .1
            .expect("data requested"))
    }

    fn get_many<'a>(&'a self, ids: Vec<ObjectId>) -> Box<dyn Iterator<Item = GetResult> + 'a> {
        Box::new(ids.into_iter().map(move |id| self.get(&id)))
    }

    fn put(&self, id: &ObjectId, data: &[u8]) -> Result<()> {
        let mut inner = self.inner();
        self.ensure_txn(&mut inner)?;
        let inner = &mut *inner;
        inner.sorted_ids = None;
        if let Some(&(seg, off)) = inner.index.as_ref().expect("index").get(id) {
            delete_bookkeeping(inner, id, seg, off)?;
        }
        let (seg, off) = match inner.io.write_put(id, data, false) {
            Ok(r) => r.expect("no raise_full"),
            Err(e) => {
                if is_enospc(&e) {
                    crate::log::warning(
                        LOGGER,
                        "No space left on device, cleaning up partial transaction to free space.",
                    );
                    let _ = self.rollback_inner(inner, true);
                }
                return Err(e);
            }
        };
        let h = &mut inner.txn.as_mut().expect("txn").hints;
        h.storage_quota_use += (data.len() + PUT_HEADER_SIZE) as u64;
        *h.segments.entry(seg).or_insert(0) += 1;
        inner.index.as_mut().expect("index").insert(*id, (seg, off));
        if self.storage_quota > 0 && h.storage_quota_use > self.storage_quota {
            let q = fsize(self.storage_quota as i128);
            let u = fsize(h.storage_quota_use as i128);
            inner.doomed = Some((q.clone(), u.clone()));
            return Err(RepoError::StorageQuotaExceeded(q, u));
        }
        Ok(())
    }

    fn delete(&self, id: &ObjectId) -> Result<()> {
        let mut inner = self.inner();
        self.ensure_txn(&mut inner)?;
        let inner = &mut *inner;
        inner.sorted_ids = None;
        let Some((seg, off)) = inner.index.as_mut().expect("index").remove(id) else {
            return Err(RepoError::ObjectNotFound(
                *id,
                self.path.display().to_string(),
            ));
        };
        delete_bookkeeping(inner, id, seg, off)
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn commit(&self, compact: bool, threshold: f64, cleanup_commits: bool) -> Result<()> {
        let mut inner = self.inner();
        self.commit_inner(&mut inner, compact, threshold, cleanup_commits)
    }

    fn rollback(&self) -> Result<()> {
        let mut inner = self.inner();
        self.rollback_inner(&mut inner, false)
    }

    fn list(&self, limit: Option<usize>, marker: Option<&ObjectId>) -> Result<Vec<ObjectId>> {
        let mut inner = self.inner();
        self.ensure_index(&mut inner)?;
        if inner.sorted_ids.is_none() {
            let mut ids: Vec<ObjectId> = inner
                .index
                .as_ref()
                .expect("index")
                .keys()
                .copied()
                .collect();
            ids.sort_unstable();
            inner.sorted_ids = Some(ids);
        }
        let ids = inner.sorted_ids.as_ref().expect("sorted");
        let start = match marker {
            None => 0,
            Some(m) => match ids.binary_search(m) {
                Ok(i) => i + 1,
                Err(_) => return Err(RepoError::ObjectNotFound(*m, self.display.clone())),
            },
        };
        let end = limit.map_or(ids.len(), |l| (start + l).min(ids.len()));
        Ok(ids[start..end].to_vec())
    }

    fn scan(&self, limit: Option<usize>, marker: Option<&ObjectId>) -> Result<Vec<ObjectId>> {
        if limit == Some(0) {
            return Err(RepoError::Integrity(
                "please use limit > 0 or limit = None".into(),
            ));
        }
        let mut inner = self.inner();
        self.ensure_index(&mut inner)?;
        let index = inner.index.as_ref().expect("index");
        let (start_seg, mut start_off) = match marker {
            None => (0, 0),
            Some(m) => *index
                .get(m)
                .ok_or_else(|| RepoError::ObjectNotFound(*m, self.display.clone()))?,
        };
        let mut out = Vec::new();
        for seg in inner.io.segment_numbers()? {
            if seg < start_seg {
                continue;
            }
            let Ok(iter) = inner.io.iter_objects(seg, start_off, ReadMode::HeadersOnly) else {
                start_off = 0;
                continue;
            };
            let skip_first = start_off > 0;
            start_off = 0;
            for (i, e) in iter.enumerate() {
                let Ok(e) = e else { break };
                if skip_first && i == 0 {
                    continue;
                }
                if e.tag == TAG_PUT && index.get(&e.key) == Some(&(seg, e.offset)) {
                    out.push(e.key);
                    if Some(out.len()) == limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    fn len(&self) -> Result<usize> {
        let mut inner = self.inner();
        self.ensure_index(&mut inner)?;
        Ok(inner.index.as_ref().expect("index").len())
    }

    fn check(&self, repair: bool, max_duration: u64) -> Result<bool> {
        let mut inner = self.inner();
        check::check(self, &mut inner, repair, max_duration, None).map(|(ok, _)| ok)
    }

    fn destroy(&self) -> Result<()> {
        if self.append_only {
            return Err(RepoError::AppendOnly(self.path.display().to_string()));
        }
        let mut inner = self.inner();
        inner.io.abandon_write();
        let cfg = self.path.join("config");
        fs::remove_file(&cfg).map_err(io_err(&cfg))?;
        // The lock lives inside the repository directory; drop our handle without releasing.
        if let Some(mut l) = inner.lock.take() {
            let _ = l.release();
        }
        fs::remove_dir_all(&self.path).map_err(io_err(&self.path))
    }

    fn save_key(&self, keydata: &[u8]) -> Result<()> {
        let mut inner = self.inner();
        let mut cfg = inner.config.clone();
        cfg.ini.set(
            config::SECTION,
            "key",
            String::from_utf8_lossy(keydata).into_owned(),
        );
        cfg.save(&self.path)?;
        inner.config = cfg;
        Ok(())
    }

    fn load_key(&self) -> Result<Vec<u8>> {
        Ok(self.inner().config.key_text().into_bytes())
    }

    fn break_lock(&self) -> Result<()> {
        Lock::break_lock(&self.path.join("lock")).map_err(io_err(&self.path))
    }

    fn get_free_nonce(&self) -> Result<Option<u64>> {
        let inner = self.inner();
        self.require_exclusive(&inner)?;
        read_nonce_file(&self.path.join("nonce"))
    }

    fn commit_nonce_reservation(
        &self,
        next_unreserved: u64,
        start_nonce: Option<u64>,
    ) -> Result<()> {
        let inner = self.inner();
        self.require_exclusive(&inner)?;
        let p = self.path.join("nonce");
        if read_nonce_file(&p)? != start_nonce {
            return Err(RepoError::NonceMismatch);
        }
        atomic::save_file(&p, format!("{next_unreserved:016x}").as_bytes()).map_err(io_err(&p))
    }

    fn close(&self) -> Result<()> {
        let mut inner = self.inner();
        inner.io.abandon_write();
        if let Some(mut l) = inner.lock.take() {
            l.release()?;
        }
        Ok(())
    }

    fn as_local(&self) -> Option<&LocalRepository> {
        Some(self)
    }
}

impl Drop for LocalRepository {
    fn drop(&mut self) {
        let _ = Repository::close(self);
    }
}

/// Bookkeeping for superseding the entry at (seg, off): count it freeable, record the shadowed
/// segment (as 1.4 does, also for overwriting PUTs) and log a DELETE.
fn delete_bookkeeping(inner: &mut Inner, id: &ObjectId, seg: u32, off: u32) -> Result<()> {
    let (size, _) = inner.io.read(seg, off, id, false)?;
    let h = &mut inner.txn.as_mut().expect("txn").hints;
    h.shadow_index.entry(*id).or_default().push(seg);
    *h.segments.entry(seg).or_insert(0) -= 1;
    *h.compact.entry(seg).or_insert(0) += size as u64;
    let (dseg, dsize) = inner.io.write_delete(id, false)?.expect("no raise_full");
    let h = &mut inner.txn.as_mut().expect("txn").hints;
    *h.compact.entry(dseg).or_insert(0) += dsize as u64;
    h.segments.entry(dseg).or_insert(0);
    Ok(())
}

fn is_enospc(e: &RepoError) -> bool {
    matches!(e, RepoError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
}

/// Reads a nonce file (16 hex digits, big-endian u64); `None` if absent.
pub fn read_nonce_file(p: &Path) -> Result<Option<u64>> {
    match fs::read_to_string(p) {
        Ok(s) => {
            let s = s.trim();
            if s.len() != 16 {
                return Err(RepoError::InvalidNonce(s.to_string()));
            }
            u64::from_str_radix(s, 16)
                .map(Some)
                .map_err(|_| RepoError::InvalidNonce(s.to_string()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RepoError::io(p, e)),
    }
}
