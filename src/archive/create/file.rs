//! The parallel stage of `create`: reading, chunking and storing one file's content, and
//! collecting extended attributes.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use std::sync::{Arc, Mutex};

use super::progress::{part_item, FileProgress};
use super::walk::{os_error_code, os_error_text};
use super::{Builder, FilesChanged, Job, JobKind, JobResult, Shared, Warn};
use crate::archive::chunkstore::Stats;
use crate::archive::files_cache::{ExtAttrs, FileStat, EXT_FLAGS, EXT_NO_ACLS, EXT_XATTRS};
use crate::archive::item::{ChunkRef, Item, S_IFMT, S_IFREG};
use crate::archive::Result;

/// Content for the `-` (stdin) / `--content-from-command` item.
pub struct StdinSource {
    pub reader: Box<dyn Read + Send>,
    pub name: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
}

/// Opens for reading without updating atime where permitted; special files (read with
/// `--read-special`, possibly through a symlink) are followed.
fn open_noatime(path: &Path, special: bool) -> std::io::Result<File> {
    let mut flags = libc::O_NOATIME;
    if !special {
        flags |= libc::O_NOFOLLOW;
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags & !libc::O_NOATIME)
            .open(path),
        r => r,
    }
}

fn warn(res: &mut JobResult, path: &[u8], e: &std::io::Error, op: Option<&str>) {
    let text = os_error_text(e, path);
    let msg = match op {
        Some(op) => format!("{}: {op}: {text}", String::from_utf8_lossy(path)),
        None => format!("{}: {text}", String::from_utf8_lossy(path)),
    };
    res.warnings.push(Warn {
        code: os_error_code(e),
        msg,
    });
}

/// xattrs, ACLs and flags, as borg's `stat_ext_attrs`. Returns them for the files cache when
/// they were read without a problem and the file has no ACLs.
fn ext_attrs(
    shared: &Shared,
    item: &mut Item,
    path: &Path,
    fd: Option<i32>,
    res: &mut JobResult,
    apath: &[u8],
) -> Option<ExtAttrs> {
    let o = shared.opts;
    let mode = item.mode;
    let warnings_before = res.warnings.len();
    if !o.noflags {
        let f = crate::platform::flags::get(path, mode, fd);
        if f != 0 {
            item.bsdflags = Some(f);
        }
    }
    if !o.noxattrs {
        match crate::platform::xattr::get_all(path, fd) {
            Ok(list) => {
                for w in list.warnings {
                    res.warnings.push(Warn {
                        code: 1,
                        msg: format!(
                            "{}: when getting extended attribute: {w}",
                            String::from_utf8_lossy(apath)
                        ),
                    });
                }
                if !list.attrs.is_empty() {
                    item.xattrs = Some(list.attrs);
                }
            }
            Err(e) => res.warnings.push(Warn {
                code: 104,
                msg: format!(
                    "{}: extended stat (xattrs): {e}",
                    String::from_utf8_lossy(apath)
                ),
            }),
        }
    }
    if !o.noacls {
        let is_dir = mode & S_IFMT == crate::archive::item::S_IFDIR;
        match crate::platform::acl::get(path, fd, is_dir, o.numeric_ids) {
            Ok((access, default)) => {
                item.acl_access = access;
                item.acl_default = default;
            }
            Err(e) => res.warnings.push(Warn {
                code: 104,
                msg: format!(
                    "{}: extended stat (ACLs): {e}",
                    String::from_utf8_lossy(apath)
                ),
            }),
        }
    }
    if res.warnings.len() != warnings_before
        || item.acl_access.is_some()
        || item.acl_default.is_some()
    {
        return None;
    }
    Some(ExtAttrs {
        mask: ext_needed(shared),
        bsdflags: item.bsdflags,
        xattrs: item.xattrs.clone(),
    })
}

/// The kinds of extended attributes this run stores (`EXT_*` bits).
fn ext_needed(shared: &Shared) -> u8 {
    let o = shared.opts;
    let mut m = 0;
    if !o.noflags {
        m |= EXT_FLAGS;
    }
    if !o.noxattrs {
        m |= EXT_XATTRS;
    }
    if !o.noacls {
        m |= EXT_NO_ACLS;
    }
    m
}

/// Finishes a job the files cache answers for (an unchanged file, or a directory whose
/// attributes it remembers) on the calling thread: no worker needs to wake up for the few
/// microseconds it takes. `false`: the job is untouched and goes to a worker.
pub fn finish_unchanged(shared: &Shared, job: &mut Job) -> bool {
    match job.kind {
        JobKind::File { special: false, .. } => unchanged_without_open(shared, job),
        JobKind::Special {
            ext_attrs: true,
            dir: Some(st),
        } => {
            let Some(ext) = cached_dir_attrs(shared, &path_hash_of(shared, &job.fs_path), &st)
            else {
                return false;
            };
            let mut item = job.item.take().expect("item");
            set_cached_attrs(shared, &mut item, ext);
            job.item = Some(item);
            job.result = Some(JobResult::default());
            true
        }
        _ => false,
    }
}

/// Does one job; a file being read publishes its progress in `progress` for checkpoints.
pub fn process_job(
    shared: &Shared,
    job: &mut Job,
    progress: &Mutex<Option<Arc<FileProgress>>>,
) -> Result<()> {
    if shared.abort.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(crate::archive::ArchiveError::Interrupted);
    }
    match job.kind {
        JobKind::Special {
            ext_attrs: true,
            dir,
        } => {
            let mut res = JobResult::default();
            let mut item = job.item.take().expect("item");
            // symlinks and devices are not opened (attributes by path, never following)
            let is_dir = item.is_dir();
            let cached = dir.map(|st| (path_hash_of(shared, &job.fs_path), st));
            if let Some(ext) = cached
                .as_ref()
                .filter(|_| !shared.inline_unchanged)
                .and_then(|(h, st)| cached_dir_attrs(shared, h, st))
            {
                set_cached_attrs(shared, &mut item, ext);
            } else if is_dir {
                match open_dir(&job.fs_path) {
                    Ok(f) => {
                        let ext = ext_attrs(
                            shared,
                            &mut item,
                            &job.fs_path,
                            Some(f.as_raw_fd()),
                            &mut res,
                            &job.path,
                        );
                        if let (Some(ext), Some((h, st))) = (ext, cached) {
                            shared
                                .files
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .memorize_attrs(h, &st, ext);
                        }
                    }
                    Err(e) => {
                        warn(&mut res, &job.path, &e, None);
                        res.failed = true;
                    }
                }
            } else {
                ext_attrs(shared, &mut item, &job.fs_path, None, &mut res, &job.path);
            }
            job.item = Some(item);
            job.result = Some(res);
            Ok(())
        }
        JobKind::File { special, .. } => process_file(shared, job, special, progress),
        _ => Ok(()),
    }
}

/// A directory's attributes from the files cache, if it is unchanged (as for files: only
/// under a ctime-comparing mode, so that attribute changes cannot go unnoticed).
fn cached_dir_attrs(
    shared: &Shared,
    path_hash: &crate::repo::ObjectId,
    st: &FileStat,
) -> Option<ExtAttrs> {
    let (ids, ext) = shared
        .files
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .lookup_with_ext(path_hash, st, ext_needed(shared))?;
    ids.is_empty().then_some(ext)
}

/// Attributes remembered in the files cache, as [`ext_attrs`] would have read them.
fn set_cached_attrs(shared: &Shared, item: &mut Item, ext: ExtAttrs) {
    let o = shared.opts;
    if !o.noflags {
        item.bsdflags = ext.bsdflags.filter(|&f| f != 0);
    }
    if !o.noxattrs {
        item.xattrs = ext.xattrs;
    }
}

fn open_dir(p: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(p)
}

/// Files-cache key: the absolute path as seen now, hashed with the id key.
fn path_hash_of(shared: &Shared, path: &Path) -> crate::repo::ObjectId {
    let p = path.as_os_str().as_bytes();
    let abs = if path.is_absolute() {
        p.to_vec()
    } else if shared.opts.cwd.is_absolute()
        && p.split(|&b| b == b'/')
            .all(|c| !matches!(c, b"" | b"." | b".."))
    {
        // a normalised relative path (as the walker's are) joined to the cwd (absolute,
        // normalised) needs no normpath
        super::walk::join(shared.opts.cwd.as_os_str().as_bytes(), p)
    } else {
        let j = shared.opts.cwd.join(path);
        super::walk::normpath_bytes(j.as_os_str().as_bytes())
    };
    shared.key.id_hash(&abs)
}

/// Completes a file item from its chunk list.
fn finish_file(item: &mut Item, chunks: Vec<ChunkRef>, stats: &mut Stats) {
    for c in &chunks {
        stats.osize += c.size as u64;
        stats.csize += c.csize as u64;
    }
    stats.nfiles = 1;
    item.size = Some(chunks.iter().map(|c| c.size as u64).sum());
    item.chunks = Some(chunks);
}

/// An unchanged file by the walker's stat alone, with its attributes from the files cache:
/// no open, no fstat, no xattr calls ("unchanged files cost one stat").
fn unchanged_without_open(shared: &Shared, job: &mut Job) -> bool {
    let JobKind::File {
        special: false,
        size,
        ino,
        ctime,
        mtime,
        ..
    } = job.kind
    else {
        return false;
    };
    let st = FileStat {
        inode: ino,
        size,
        ctime,
        mtime,
    };
    let path_hash = path_hash_of(shared, &job.fs_path);
    let Some((ids, ext)) = shared
        .files
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .lookup_with_ext(&path_hash, &st, ext_needed(shared))
    else {
        return false;
    };
    let Some(chunks) = shared.store.incref_all(&ids) else {
        return false;
    };
    let mut item = job.item.take().expect("item");
    let mut res = JobResult {
        status: Some('U'),
        ..JobResult::default()
    };
    finish_file(&mut item, chunks, &mut res.stats);
    set_cached_attrs(shared, &mut item, ext);
    job.item = Some(item);
    job.result = Some(res);
    true
}

fn process_file(
    shared: &Shared,
    job: &mut Job,
    special: bool,
    progress: &Mutex<Option<Arc<FileProgress>>>,
) -> Result<()> {
    // (the walker has asked the files cache already when it answers unchanged files)
    if !shared.inline_unchanged && unchanged_without_open(shared, job) {
        return Ok(());
    }
    let mut res = JobResult::default();
    let mut item = job.item.take().expect("item");
    let path = job.fs_path.clone();
    let JobKind::File { ino, dev, .. } = job.kind else {
        unreachable!()
    };
    let f = match open_noatime(&path, special) {
        Ok(f) => f,
        Err(e) => {
            warn(&mut res, &job.path, &e, None);
            res.failed = true;
            job.result = Some(res);
            return Ok(());
        }
    };
    let st = match f.metadata() {
        Ok(m) => m,
        Err(e) => {
            warn(&mut res, &job.path, &e, Some("fstat"));
            res.failed = true;
            job.result = Some(res);
            return Ok(());
        }
    };
    if !special && (st.ino() != ino || st.dev() != dev || st.mode() & S_IFMT != S_IFREG) {
        res.warnings.push(Warn {
            code: 103,
            msg: format!(
                "{}: file type or inode changed while we backed it up (race condition, skipped file)",
                String::from_utf8_lossy(&job.path)
            ),
        });
        res.failed = true;
        job.result = Some(res);
        return Ok(());
    }
    let fstat = FileStat::of(&st);
    let path_hash = path_hash_of(shared, &path);
    let mut chunks: Option<Vec<ChunkRef>> = None;
    let status;
    if special {
        status = 'A';
    } else {
        let (known, ids) = shared
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(&path_hash, &fstat);
        match ids {
            Some(ids) => match shared.store.incref_all(&ids) {
                Some(refs) => {
                    status = 'U';
                    chunks = Some(refs);
                }
                None => status = 'M',
            },
            None => status = if known { 'M' } else { 'A' },
        }
    }
    res.status = Some(status);
    let mut stats = Stats::default();
    let chunks = match chunks {
        Some(c) => c,
        None => {
            let p = Arc::new(FileProgress::new(&item));
            *progress.lock().unwrap_or_else(|e| e.into_inner()) = Some(p.clone());
            let refs = match read_and_store(
                shared,
                f.try_clone()
                    .map_err(|e| crate::archive::ArchiveError::io(&path, e))?,
                &mut stats,
                &p,
            ) {
                Ok(r) => r,
                Err(ReadError::Io(e)) => {
                    // the file is not archived: drop what was stored of it, no orphans
                    let _g = shared.gate.read().unwrap_or_else(|e| e.into_inner());
                    p.abandon(shared.store)?;
                    warn(&mut res, &job.path, &e, Some("read"));
                    res.failed = true;
                    job.result = Some(res);
                    return Ok(());
                }
                Err(ReadError::Store(e)) => return Err(e),
            };
            // changed while we read it?
            if let Ok(st2) = f.metadata() {
                let s2 = FileStat::of(&st2);
                res.changed = !special
                    && match shared.opts.files_changed {
                        FilesChanged::Ctime => s2.ctime != fstat.ctime,
                        FilesChanged::Mtime => s2.mtime != fstat.mtime,
                        FilesChanged::Disabled => false,
                    };
            }
            if !special && !res.changed {
                shared
                    .files
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .memorize(path_hash, &fstat, refs.iter().map(|r| r.id).collect());
            }
            refs
        }
    };
    finish_file(&mut item, chunks, &mut stats);
    let ext = ext_attrs(
        shared,
        &mut item,
        &path,
        Some(f.as_raw_fd()),
        &mut res,
        &job.path,
    );
    // remembered only for a file read cleanly through the files cache
    if let Some(ext) = ext.filter(|_| !special && !res.changed) {
        shared
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_ext(&path_hash, ext);
    }
    res.stats = stats;
    job.item = Some(item);
    job.result = Some(res);
    Ok(())
}

enum ReadError {
    Io(std::io::Error),
    Store(crate::archive::ArchiveError),
}

/// Files up to this size are read in one go and chunked in memory.
const WHOLE_READ: u64 = 8 << 20;

/// Reads a file, chunks it and stores the chunks, recording each in `progress`; big files
/// spread their chunks over the worker pool while the reader goes on. Every store happens
/// under the read side of the checkpoint gate and is recorded before it is released.
fn read_and_store(
    shared: &Shared,
    mut f: File,
    stats: &mut Stats,
    progress: &FileProgress,
) -> std::result::Result<Vec<ChunkRef>, ReadError> {
    let meta = f.metadata();
    let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
    // a special file (--read-special) is streamed: its size says nothing about its content
    let regular = meta.map(|m| m.is_file()).unwrap_or(false);
    let read = if regular && len <= WHOLE_READ {
        read_whole(shared, &mut f, len, progress)
    } else {
        read_big(shared, &mut f, progress)
    };
    // a repository error outweighs a read error
    let (out, new_bytes) = progress.finish().map_err(ReadError::Store)?;
    read?;
    stats.usize += new_bytes;
    Ok(out)
}

/// Small file: read in one go, chunked and stored in memory.
fn read_whole(
    shared: &Shared,
    f: &mut File,
    len: u64,
    progress: &FileProgress,
) -> std::result::Result<(), ReadError> {
    let mut data = Vec::with_capacity(len as usize + 1);
    f.read_to_end(&mut data).map_err(ReadError::Io)?;
    for c in shared.chunker.chunks(&data) {
        if shared.abort.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ReadError::Store(crate::archive::ArchiveError::Interrupted));
        }
        let _g = shared.gate.read().unwrap_or_else(|e| e.into_inner());
        let (r, new) = shared.store.store(c).map_err(ReadError::Store)?;
        progress.push_stored(r, new);
    }
    Ok(())
}

/// Large file: sequential chunking, parallel storing. At most one chunk per worker (over all
/// files being read) waits for a worker; beyond that the reader stores the chunk itself, so
/// memory stays bounded and no worker ever blocks waiting for another.
fn read_big(
    shared: &Shared,
    f: &mut File,
    progress: &FileProgress,
) -> std::result::Result<(), ReadError> {
    use std::sync::atomic::Ordering;
    let gate = &shared.gate;
    let in_flight = &shared.chunks_in_flight;
    let ahead = rayon::current_num_threads().max(1);
    let mut read_err = None;
    let mut reader = shared
        .chunker
        .reader_with(&mut *f, shared.read_buffer.take());
    rayon::scope(|s| loop {
        match reader.next_chunk() {
            None => break,
            Some(Err(e)) => {
                read_err = Some(e);
                break;
            }
            Some(Ok(_)) if shared.abort.load(Ordering::Relaxed) => {
                progress.fail(crate::archive::ArchiveError::Interrupted);
                break;
            }
            Some(Ok(data)) => {
                if in_flight.load(Ordering::Acquire) >= ahead {
                    // stored straight from the read buffer, no copy
                    let _g = gate.read().unwrap_or_else(|e| e.into_inner());
                    match shared.store.store(data) {
                        Ok((r, new)) => progress.push_stored(r, new),
                        Err(e) => {
                            progress.fail(e);
                            break;
                        }
                    }
                } else {
                    in_flight.fetch_add(1, Ordering::AcqRel);
                    let (i, pending) = progress.push_pending(data.to_vec());
                    s.spawn(move |_| {
                        {
                            let _g = gate.read().unwrap_or_else(|e| e.into_inner());
                            // None: a checkpoint stored it meanwhile
                            let data = pending.lock().unwrap_or_else(|e| e.into_inner()).take();
                            if let Some(data) = data {
                                progress.record(i, shared.store.store(&data));
                            }
                        }
                        in_flight.fetch_sub(1, Ordering::AcqRel);
                    });
                }
            }
        }
    });
    shared.read_buffer.give(reader.into_buffer());
    match read_err {
        Some(e) => Err(ReadError::Io(e)),
        None => Ok(()),
    }
}

/// Stores stdin / command output as one regular-file item (read on the calling thread, before
/// the walk; a checkpoint falling due meanwhile writes a part item, as borg does).
pub(super) fn process_stdin(
    shared: &Shared,
    src: StdinSource,
    b: &mut Builder,
) -> Result<(Item, Stats)> {
    let t = (chrono::Utc::now().timestamp() as i128) * 1_000_000_000;
    let mut item = Item {
        path: src.name,
        mode: (src.mode & 0o107777) | 0o100000,
        uid: Some(src.uid),
        gid: Some(src.gid),
        user: Some(Some(src.user.into_bytes())),
        group: Some(Some(src.group.into_bytes())),
        mtime: t,
        atime: Some(t),
        ctime: Some(t),
        hardlink_master: Some(false),
        ..Item::default()
    };
    let mut stats = Stats::default();
    let mut refs = Vec::new();
    let mut in_parts = 0;
    let mut next_part = 1;
    if !shared.opts.dry_run {
        for c in shared.chunker.reader(src.reader) {
            let data = c.map_err(|e| {
                crate::archive::ArchiveError::io(Path::new(OsStr::from_bytes(&item.path)), e)
            })?;
            let (r, new) = shared.store.store(&data)?;
            if new {
                stats.usize += r.csize as u64;
            }
            stats.osize += r.size as u64;
            stats.csize += r.csize as u64;
            refs.push(r);
            if b.checkpoint_due() {
                b.add_part(&part_item(&item, refs[in_parts..].to_vec(), next_part))?;
                in_parts = refs.len();
                next_part += 1;
                b.checkpoint(&[])?;
            }
        }
        if next_part > 1 && refs.len() > in_parts {
            b.add_part(&part_item(&item, refs[in_parts..].to_vec(), next_part))?;
        }
    }
    stats.nfiles = 1;
    item.size = Some(refs.iter().map(|r| r.size as u64).sum());
    item.chunks = Some(refs);
    Ok((item, stats))
}
