//! `extract`: restore an archive's items below a target directory — and never anywhere else.
//!
//! Every path is resolved component by component with `openat(O_NOFOLLOW | O_DIRECTORY)` from
//! the target directory's file descriptor, so neither `..` nor a symlink planted by an earlier
//! (hostile) item can lead outside it. Files are created with `O_EXCL | O_NOFOLLOW` after
//! removing whatever was there. Regular files of a window are written in parallel; directory
//! attributes are restored last, deepest first.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Mutex;

use rayon::prelude::*;

use super::item::{ChunkRef, Item, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG};
use super::meta::{decode_in_place, open_objects};
use super::{ArchiveError, Result};
use crate::crypto::key::Plaintext;
use crate::crypto::Key;
use crate::repo::Repository;

#[derive(Clone, Debug, Default)]
pub struct ExtractOptions {
    pub numeric_ids: bool,
    pub noacls: bool,
    pub noxattrs: bool,
    pub noflags: bool,
    pub sparse: bool,
    pub dry_run: bool,
    pub stdout: bool,
}

/// A per-item problem: reported as a warning (borg's BackupError family), extraction goes on.
#[derive(Debug)]
pub struct ItemWarning {
    pub code: i32,
    pub msg: String,
}

fn cstr(b: &[u8]) -> std::io::Result<CString> {
    CString::new(b).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

fn last_err() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn errtext(e: &std::io::Error, path: &[u8]) -> String {
    super::create::walk::os_error_text(e, path)
}

/// Plaintext bytes fetched and decrypted together while writing one file.
const BATCH_BYTES: u64 = 4 << 20;

/// The next batch of ~4 MiB of plaintext (decrypted in parallel, yet bounded memory per file).
fn next_batch<'c>(rest: &mut &'c [ChunkRef]) -> Option<&'c [ChunkRef]> {
    if rest.is_empty() {
        return None;
    }
    let mut n = 0;
    let mut bytes = 0u64;
    while n < rest.len() && (n == 0 || bytes < BATCH_BYTES) {
        bytes += rest[n].size as u64;
        n += 1;
    }
    let (batch, tail) = rest.split_at(n);
    *rest = tail;
    Some(batch)
}

/// Open directory handles kept for reuse; bounded because each holds a file descriptor.
const DIR_CACHE_FDS: usize = 256;

/// Recently used directories (relative path → fd), least recently used evicted first.
/// Restoring directory attributes visits thousands of directories deepest first; clearing
/// the whole cache when full (as before) made each of them walk from the target again.
#[derive(Default)]
struct DirCache {
    map: HashMap<Vec<u8>, (std::sync::Arc<OwnedFd>, u64)>,
    clock: u64,
}

impl DirCache {
    fn get(&mut self, key: &[u8]) -> Option<std::sync::Arc<OwnedFd>> {
        self.clock += 1;
        let now = self.clock;
        self.map.get_mut(key).map(|(fd, used)| {
            *used = now;
            fd.clone()
        })
    }

    fn insert(&mut self, key: Vec<u8>, fd: std::sync::Arc<OwnedFd>) {
        if self.map.len() >= DIR_CACHE_FDS && !self.map.contains_key(&key) {
            if let Some(old) = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&old);
            }
        }
        self.clock += 1;
        self.map.insert(key, (fd, self.clock));
    }
}

/// Resolves directories below the target without following symlinks.
pub struct SafeRoot {
    root: OwnedFd,
    cache: Mutex<DirCache>,
}

#[derive(Debug)]
pub enum PathProblem {
    Traversal,
    SymlinkParent,
    Io(std::io::Error),
}

impl SafeRoot {
    pub fn open(dir: &std::path::Path) -> std::io::Result<SafeRoot> {
        let c = cstr(dir.as_os_str().as_bytes())?;
        // SAFETY: valid C string; the fd is owned below.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(last_err());
        }
        Ok(SafeRoot {
            // SAFETY: fd was just opened and is owned by nobody else.
            root: unsafe { OwnedFd::from_raw_fd(fd) },
            cache: Mutex::new(DirCache::default()),
        })
    }

    /// Splits an archive path into safe components; `..`, empty or absolute paths are refused.
    pub fn components(path: &[u8]) -> std::result::Result<Vec<&[u8]>, PathProblem> {
        if path.starts_with(b"/") {
            return Err(PathProblem::Traversal);
        }
        let comps: Vec<&[u8]> = path
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        if comps.iter().any(|c| *c == b"..") {
            return Err(PathProblem::Traversal);
        }
        Ok(comps)
    }

    /// Opens (creating if asked) the directory `dir` (components), never following symlinks.
    fn open_dir(
        &self,
        comps: &[&[u8]],
        create: bool,
    ) -> std::result::Result<std::sync::Arc<OwnedFd>, PathProblem> {
        let key = comps.join(&b'/');
        // Start from the deepest cached ancestor (usually the parent's parent), so a new
        // directory costs one openat, not one per path component.
        let (base, skip) = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(fd) = cache.get(&key) {
                return Ok(fd);
            }
            let mut found = None;
            for n in (1..comps.len()).rev() {
                if let Some(fd) = cache.get(&comps[..n].join(&b'/')) {
                    found = Some((fd, n));
                    break;
                }
            }
            found.map_or((None, 0), |(fd, n)| (Some(fd), n))
        };
        // Every directory opened on the way is cached too: siblings and the deepest-first
        // attribute pass reuse their parents instead of walking from the target again.
        let mut cur: Option<std::sync::Arc<OwnedFd>> = base;
        for (i, c) in comps.iter().enumerate().skip(skip) {
            let cur_fd = cur
                .as_ref()
                .map_or(self.root.as_raw_fd(), |fd| fd.as_raw_fd());
            let name = cstr(c).map_err(PathProblem::Io)?;
            // SAFETY: cur is a valid directory fd; name a valid C string.
            let mut fd = unsafe {
                libc::openat(
                    cur_fd,
                    name.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                let e = last_err();
                match e.raw_os_error() {
                    Some(libc::ENOENT) if create => {
                        // SAFETY: as above.
                        if unsafe { libc::mkdirat(cur_fd, name.as_ptr(), 0o777) } < 0 {
                            let e2 = last_err();
                            if e2.raw_os_error() != Some(libc::EEXIST) {
                                return Err(PathProblem::Io(e2));
                            }
                        }
                        // SAFETY: as above.
                        fd = unsafe {
                            libc::openat(
                                cur_fd,
                                name.as_ptr(),
                                libc::O_RDONLY
                                    | libc::O_DIRECTORY
                                    | libc::O_NOFOLLOW
                                    | libc::O_CLOEXEC,
                            )
                        };
                        if fd < 0 {
                            return Err(PathProblem::Io(last_err()));
                        }
                    }
                    Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
                        return Err(PathProblem::SymlinkParent)
                    }
                    _ => return Err(PathProblem::Io(e)),
                }
            }
            // SAFETY: fd is freshly opened and owned here.
            let o = std::sync::Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(comps[..=i].join(&b'/'), o.clone());
            cur = Some(o);
        }
        Ok(match cur {
            Some(fd) => fd,
            None => {
                // SAFETY: dup of the root fd, owned by the new OwnedFd.
                let fd = std::sync::Arc::new(unsafe {
                    OwnedFd::from_raw_fd(libc::dup(self.root.as_raw_fd()))
                });
                self.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, fd.clone());
                fd
            }
        })
    }

    /// (parent dir fd, final name) of an archive path, creating parents.
    pub fn parent_of(
        &self,
        path: &[u8],
    ) -> std::result::Result<(std::sync::Arc<OwnedFd>, CString), PathProblem> {
        let comps = Self::components(path)?;
        let Some((last, parents)) = comps.split_last() else {
            return Err(PathProblem::Traversal);
        };
        let fd = self.open_dir(parents, true)?;
        Ok((fd, cstr(last).map_err(PathProblem::Io)?))
    }

    /// Forgets cached directory handles (a directory may have been replaced).
    pub fn forget(&self) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = DirCache::default();
    }
}

/// Removes whatever is at `name` in `dir` (file, symlink or empty directory).
fn remove_existing(dir: RawFd, name: &CStr) {
    // SAFETY: valid fd and C string.
    unsafe {
        if libc::unlinkat(dir, name.as_ptr(), 0) < 0 {
            libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR);
        }
    }
}

/// What extraction needs from the archive's items.
pub struct Extractor<'a> {
    pub repo: &'a dyn Repository,
    pub key: &'a Key,
    pub opts: ExtractOptions,
    pub root: Option<SafeRoot>,
    /// Hardlink masters' chunks (by archive path), for slaves whose master is not extracted.
    /// Locked: the next window's masters are added while the pool extracts the current one.
    pub masters: std::sync::RwLock<HashMap<Vec<u8>, Vec<ChunkRef>>>,
    /// Archive path → extracted (possibly stripped) path of masters that were written.
    pub written_masters: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    stdout: Mutex<()>,
}

fn map_problem(p: PathProblem, path: &[u8]) -> ItemWarning {
    let ps = String::from_utf8_lossy(path);
    match p {
        PathProblem::Traversal => ItemWarning {
            code: 109,
            msg: format!("{ps}: not extracted, path contains \"../\" (malicious or corrupted archive)"),
        },
        PathProblem::SymlinkParent => ItemWarning {
            code: 108,
            msg: format!("{ps}: not extracted, a parent directory is a symlink (malicious or corrupted archive)"),
        },
        PathProblem::Io(e) => ItemWarning {
            code: super::create::walk::os_error_code(&e),
            msg: format!("{ps}: {}", errtext(&e, path)),
        },
    }
}

impl<'a> Extractor<'a> {
    pub fn new(
        repo: &'a dyn Repository,
        key: &'a Key,
        opts: ExtractOptions,
        target: Option<&std::path::Path>,
    ) -> Result<Self> {
        let root = match target {
            Some(t) if !opts.dry_run && !opts.stdout => {
                Some(SafeRoot::open(t).map_err(|e| ArchiveError::io(t, e))?)
            }
            _ => None,
        };
        Ok(Extractor {
            repo,
            key,
            opts,
            root,
            masters: std::sync::RwLock::new(HashMap::new()),
            written_masters: Mutex::new(HashMap::new()),
            stdout: Mutex::new(()),
        })
    }

    /// Fetches and verifies a file's chunks (decryption and decompression in parallel).
    pub fn fetch_chunks(&self, chunks: &[ChunkRef]) -> Result<Vec<Plaintext>> {
        // groups of at least two: each group's hashes run two messages per core
        let per = 2.max(chunks.len().div_ceil(rayon::current_num_threads()));
        let mut envs = self.repo.get_many(chunks.iter().map(|c| c.id).collect());
        let groups = chunks
            .chunks(per)
            .map(|g| {
                g.iter()
                    .map(|c| {
                        let env = envs.next().expect("one result per id")?;
                        Ok((c.id, env, Some(c.size as usize)))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let opened: Vec<Vec<Result<Plaintext>>> = groups
            .into_par_iter()
            .map(|g| open_objects(self.key, g))
            .collect();
        opened.into_iter().flatten().collect()
    }

    /// Writes a file of several batches with every pool thread: each takes the next batch,
    /// fetches and decrypts its chunks and writes each at its offset, so decryption never
    /// waits for writing (the writes themselves still take turns on the file's inode lock).
    /// Returns the size written, or `None` without writing anything more when a chunk's
    /// plaintext is not the size its reference says (offsets are unknown: the caller writes
    /// such a file in order).
    fn write_positional(
        &self,
        f: &std::fs::File,
        chunks: &[ChunkRef],
        sparse: bool,
    ) -> Result<std::result::Result<Option<u64>, std::io::Error>> {
        use std::os::unix::fs::FileExt;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let mut batches = Vec::new();
        let mut rest = chunks;
        let mut offset = 0u64;
        while let Some(b) = next_batch(&mut rest) {
            batches.push((b, offset));
            offset += b.iter().map(|c| c.size as u64).sum::<u64>();
        }
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let outcome: Mutex<Result<std::result::Result<Option<u64>, std::io::Error>>> =
            Mutex::new(Ok(Ok(Some(offset))));
        let fail = |r| {
            stop.store(true, Ordering::Relaxed);
            let mut o = outcome.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(*o, Ok(Ok(Some(_)))) {
                *o = r;
            }
        };
        // Each worker streams the chunks of the batches it takes through one set of hash
        // lanes (no lane idles at a batch's end) and writes each chunk once it is verified.
        let worker = || {
            // (offset, size) of every chunk this worker took, in the order taken
            let taken = std::cell::RefCell::new(Vec::<(u64, u32)>::new());
            type Envs<'r> = Box<dyn Iterator<Item = crate::repo::GetResult> + 'r>;
            let mut current: Option<(Envs<'_>, std::slice::Iter<'_, ChunkRef>, u64)> = None;
            let source = std::iter::from_fn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                if let Some((envs, refs, pos)) = &mut current {
                    if let Some(c) = refs.next() {
                        let at = *pos;
                        *pos += c.size as u64;
                        match envs.next().expect("one result per id") {
                            Ok(env) => {
                                taken.borrow_mut().push((at, c.size));
                                return Some((c.id, env));
                            }
                            Err(e) => {
                                fail(Err(e.into()));
                                return None;
                            }
                        }
                    }
                }
                let &(batch, at) = batches.get(next.fetch_add(1, Ordering::Relaxed))?;
                let envs = self.repo.get_many(batch.iter().map(|c| c.id).collect());
                current = Some((envs, batch.iter(), at));
            });
            self.key.open_verify_many(
                source,
                |i, id, payload| decode_in_place(id, payload, Some(taken.borrow()[i].1 as usize)),
                |i, r: Result<Plaintext>| {
                    let d = match r {
                        Ok(d) => d,
                        Err(e) => return fail(Err(e)),
                    };
                    let (at, size) = taken.borrow()[i];
                    if d.len() as u64 != size as u64 {
                        return fail(Ok(Ok(None)));
                    }
                    if !(sparse && crate::chunker::is_all_zero(&d)) {
                        if let Err(e) = f.write_all_at(&d, at) {
                            fail(Ok(Err(e)));
                        }
                    }
                },
            );
        };
        let helpers = rayon::current_num_threads().min(batches.len()) - 1;
        rayon::in_place_scope(|s| {
            for _ in 0..helpers {
                s.spawn(|_| worker());
            }
            worker();
        });
        outcome.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// The content of the small regular files among `items` (each within one batch),
    /// fetched and opened together so their hashes share the two lanes; per item its
    /// content, or `None` for an item left to [`Extractor::extract_item_with`] to fetch.
    pub fn prefetch_small(
        &self,
        items: &[&(Item, Vec<u8>)],
    ) -> Vec<Option<Result<Vec<Plaintext>>>> {
        let wanted: Vec<Option<&[ChunkRef]>> = items
            .iter()
            .map(|(item, _)| {
                let chunks = item.chunks.as_deref().filter(|_| item.is_reg())?;
                let size: u64 = chunks.iter().map(|c| c.size as u64).sum();
                (!chunks.is_empty() && size <= BATCH_BYTES).then_some(chunks)
            })
            .collect();
        let all: Vec<&ChunkRef> = wanted.iter().flatten().flat_map(|c| c.iter()).collect();
        let mut fetched: Vec<Option<Result<Plaintext>>> = all.iter().map(|_| None).collect();
        let mut objs = Vec::with_capacity(all.len());
        let mut slots = Vec::with_capacity(all.len());
        let envs = self.repo.get_many(all.iter().map(|c| c.id).collect());
        for (k, (c, env)) in all.iter().zip(envs).enumerate() {
            match env {
                Ok(env) => {
                    objs.push((c.id, env, Some(c.size as usize)));
                    slots.push(k);
                }
                Err(e) => fetched[k] = Some(Err(e.into())),
            }
        }
        for (k, r) in slots.into_iter().zip(open_objects(self.key, objs)) {
            fetched[k] = Some(r);
        }
        let mut fetched = fetched.into_iter().map(|r| r.expect("every chunk opened"));
        wanted
            .into_iter()
            .map(|w| {
                let n = w?.len();
                Some(fetched.by_ref().take(n).collect::<Result<Vec<_>>>())
            })
            .collect()
    }

    /// Streams a file's content to `out` in batches (bounded memory for big files); the next
    /// batch is fetched and decrypted by the pool while this thread writes the current one.
    /// `pre`: the first batch's content, already fetched.
    fn write_content(
        &self,
        chunks: &[ChunkRef],
        pre: Option<Result<Vec<Plaintext>>>,
        out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<std::result::Result<u64, std::io::Error>> {
        let mut total = 0u64;
        let mut rest = chunks;
        let Some(first) = next_batch(&mut rest) else {
            return Ok(Ok(0));
        };
        let mut data = match pre {
            Some(d) => d?,
            None => self.fetch_chunks(first)?,
        };
        loop {
            let batch = next_batch(&mut rest);
            let mut fetched = None;
            let written = rayon::in_place_scope(|s| {
                if let Some(b) = batch {
                    let fetched = &mut fetched;
                    s.spawn(move |_| *fetched = Some(self.fetch_chunks(b)));
                }
                for d in &data {
                    out(d)?;
                    total += d.len() as u64;
                }
                Ok(())
            });
            if let Err(e) = written {
                return Ok(Err(e));
            }
            match fetched {
                Some(next) => data = next?,
                None => return Ok(Ok(total)),
            }
        }
    }

    /// Chunks of a regular-file item (its own, or its master's for a slave).
    fn chunks_of<'i>(&self, item: &'i Item) -> Option<std::borrow::Cow<'i, [ChunkRef]>> {
        if let Some(c) = &item.chunks {
            return Some(std::borrow::Cow::Borrowed(c));
        }
        let masters = self.masters.read().unwrap_or_else(|e| e.into_inner());
        let chunks = masters.get(item.source.as_ref()?)?;
        Some(std::borrow::Cow::Owned(chunks.clone()))
    }

    /// Extracts one non-directory item at `dest` (its possibly stripped path).
    pub fn extract_item(&self, item: &Item, dest: &[u8]) -> Result<Vec<ItemWarning>> {
        self.extract_item_with(item, dest, None)
    }

    /// [`Extractor::extract_item`] with the content of a small file already fetched
    /// ([`Extractor::prefetch_small`]).
    pub fn extract_item_with(
        &self,
        item: &Item,
        dest: &[u8],
        mut pre: Option<Result<Vec<Plaintext>>>,
    ) -> Result<Vec<ItemWarning>> {
        let mut warnings = Vec::new();
        let damaged = item.chunks_healthy.is_some();
        if self.opts.dry_run || self.opts.stdout {
            if item.is_reg() {
                if let Some(chunks) = self.chunks_of(item) {
                    let mut size = 0u64;
                    if self.opts.stdout {
                        let _g = self.stdout.lock().unwrap_or_else(|e| e.into_inner());
                        let mut so = std::io::stdout().lock();
                        match self.write_content(&chunks, pre.take(), &mut |d| so.write_all(d))? {
                            Ok(n) => size = n,
                            Err(e) => return Err(ArchiveError::io("<stdout>", e)),
                        }
                        let _ = so.flush();
                    } else {
                        // fetched, decrypted and verified, then dropped
                        if let Ok(n) = self.write_content(&chunks, pre.take(), &mut |_| Ok(()))? {
                            size = n;
                        }
                    }
                    if item.chunks.is_some() {
                        if let Some(s) = item.size {
                            if s != size {
                                warnings.push(ItemWarning {
                                    code: 102,
                                    msg: format!("{}: Size inconsistency detected: size {s}, chunks size {size}", item.path_str()),
                                });
                            }
                        }
                    }
                }
            }
            if damaged {
                warnings.push(damaged_warning(item));
            }
            return Ok(warnings);
        }
        let root = self.root.as_ref().expect("target directory");
        let (dir, name) = match root.parent_of(dest) {
            Ok(x) => x,
            Err(p) => {
                warnings.push(map_problem(p, dest));
                return Ok(warnings);
            }
        };
        let dfd = dir.as_raw_fd();
        // Whatever exists at the name is replaced: each create below retries once after
        // removing it on EEXIST (no extra syscalls for the common, empty target).
        let replace = |r: libc::c_int, again: &mut dyn FnMut() -> libc::c_int| -> libc::c_int {
            if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST) {
                remove_existing(dfd, &name);
                again()
            } else {
                r
            }
        };
        let ftype = item.file_type();
        // hardlink slave whose master was extracted: link to it
        if item.is_hardlink_slave() {
            let src = item.source.clone().unwrap_or_default();
            let target = self
                .written_masters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&src)
                .cloned();
            if let Some(t) = target {
                match root.parent_of(&t) {
                    Ok((sdir, sname)) => {
                        // SAFETY: valid fds and C strings; flags 0 = do not follow.
                        let mut link = || unsafe {
                            libc::linkat(sdir.as_raw_fd(), sname.as_ptr(), dfd, name.as_ptr(), 0)
                        };
                        if replace(link(), &mut link) == 0 {
                            return Ok(warnings);
                        }
                        let e = last_err();
                        warnings.push(map_problem(PathProblem::Io(e), dest));
                        return Ok(warnings);
                    }
                    Err(_) => {
                        warnings.push(ItemWarning {
                            code: 110,
                            msg: format!(
                                "{}: not extracted, hardlink source path is unsafe (malicious or corrupted archive)",
                                String::from_utf8_lossy(dest)
                            ),
                        });
                        return Ok(warnings);
                    }
                }
            }
        }
        match ftype {
            S_IFREG => {
                let Some(chunks) = self.chunks_of(item) else {
                    warnings.push(ItemWarning {
                        code: 102,
                        msg: format!(
                            "{}: hardlink master not found in archive",
                            String::from_utf8_lossy(dest)
                        ),
                    });
                    return Ok(warnings);
                };
                // SAFETY: valid fd and C string.
                let mut create = || unsafe {
                    libc::openat(
                        dfd,
                        name.as_ptr(),
                        libc::O_WRONLY
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC,
                        0o600,
                    )
                };
                let fd = replace(create(), &mut create);
                if fd < 0 {
                    warnings.push(map_problem(PathProblem::Io(last_err()), dest));
                    return Ok(warnings);
                }
                // SAFETY: fd freshly opened and owned by the File.
                let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
                let sparse = self.opts.sparse;
                let mut pos = 0u64;
                let big = chunks.iter().map(|c| c.size as u64).sum::<u64>() > BATCH_BYTES;
                let positional = if big {
                    self.write_positional(&f, &chunks, sparse)?
                } else {
                    Ok(None)
                };
                let r = match positional {
                    Ok(Some(n)) => {
                        pos = n;
                        Ok(n)
                    }
                    Err(e) => Err(e),
                    Ok(None) => {
                        // in order: small files, and big ones whose chunk sizes disagree
                        let restart = || {
                            use std::io::Seek;
                            f.set_len(0)?;
                            (&f).rewind()
                        };
                        match if big { restart() } else { Ok(()) } {
                            Err(e) => Err(e),
                            Ok(()) => self.write_content(&chunks, pre.take(), &mut |d| {
                                if sparse && crate::chunker::is_all_zero(d) {
                                    use std::io::Seek;
                                    f.seek(std::io::SeekFrom::Current(d.len() as i64))?;
                                } else {
                                    f.write_all(d)?;
                                }
                                pos += d.len() as u64;
                                Ok(())
                            })?,
                        }
                    }
                };
                // A fresh file written in order without holes already has its size; sparse
                // and positional writes may end in a hole.
                let finished = r.and_then(|_| {
                    if sparse || big {
                        f.set_len(pos)
                    } else {
                        Ok(())
                    }
                });
                if let Err(e) = finished {
                    // do not leave a partial file that looks complete
                    drop(f);
                    // SAFETY: valid fd and name.
                    unsafe { libc::unlinkat(dfd, name.as_ptr(), 0) };
                    warnings.push(ItemWarning {
                        code: super::create::walk::os_error_code(&e),
                        msg: format!(
                            "{}: write: {}",
                            String::from_utf8_lossy(dest),
                            errtext(&e, dest)
                        ),
                    });
                    return Ok(warnings);
                }
                self.restore_attrs_fd(f.as_raw_fd(), item, dest, &mut warnings);
                if item.chunks.is_some() {
                    if let Some(s) = item.size {
                        if s != pos {
                            warnings.push(ItemWarning {
                                code: 102,
                                msg: format!(
                                    "{}: Size inconsistency detected: size {s}, chunks size {pos}",
                                    item.path_str()
                                ),
                            });
                        }
                    }
                }
                if item.hardlink_master == Some(true) {
                    self.written_masters
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(item.path.clone(), dest.to_vec());
                } else if let Some(src) = item.source.as_ref().filter(|_| item.chunks.is_none()) {
                    // a slave written from its unextracted master's chunks: later slaves of
                    // the same master link to this one (as borg does)
                    self.written_masters
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(src.clone())
                        .or_insert_with(|| dest.to_vec());
                }
                if damaged {
                    warnings.push(damaged_warning(item));
                }
            }
            S_IFLNK => {
                let src = cstr(item.source.as_deref().unwrap_or(b""))
                    .map_err(|e| ArchiveError::io(item.path_str(), e))?;
                // SAFETY: valid strings and fd.
                let mut make = || unsafe { libc::symlinkat(src.as_ptr(), dfd, name.as_ptr()) };
                if replace(make(), &mut make) < 0 {
                    warnings.push(map_problem(PathProblem::Io(last_err()), dest));
                    return Ok(warnings);
                }
                self.restore_attrs_at(dfd, &name, item, true, dest, &mut warnings);
            }
            S_IFIFO | S_IFCHR | S_IFBLK => {
                let rdev = item.rdev.unwrap_or(0) as libc::dev_t;
                // SAFETY: valid fd and name.
                let mut make = || unsafe {
                    libc::mknodat(dfd, name.as_ptr(), item.mode as libc::mode_t, rdev)
                };
                if replace(make(), &mut make) < 0 {
                    warnings.push(map_problem(PathProblem::Io(last_err()), dest));
                    return Ok(warnings);
                }
                self.restore_attrs_at(dfd, &name, item, false, dest, &mut warnings);
                if item.hardlink_master == Some(true) {
                    self.written_masters
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(item.path.clone(), dest.to_vec());
                }
            }
            _ => warnings.push(ItemWarning {
                code: 102,
                msg: format!(
                    "{}: unknown archive item type {:o}",
                    item.path_str(),
                    item.mode
                ),
            }),
        }
        Ok(warnings)
    }

    /// Creates a directory (attributes are restored later by [`Extractor::restore_dir`]).
    pub fn make_dir(&self, dest: &[u8]) -> Vec<ItemWarning> {
        let mut w = Vec::new();
        if self.opts.dry_run || self.opts.stdout {
            return w;
        }
        let root = self.root.as_ref().expect("target");
        match SafeRoot::components(dest) {
            Ok(c) if c.is_empty() => {}
            Ok(c) => {
                // Made here first (the usual case: nothing there), so that opening it below
                // is one openat; an existing non-directory at the place is replaced. Other
                // failures are left to open_dir, which tries again and reports them.
                if let Ok((dir, name)) = root.parent_of(dest) {
                    // SAFETY: valid fd and name.
                    let made = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o777) };
                    if made < 0 && last_err().raw_os_error() == Some(libc::EEXIST) {
                        let mut st: libc::stat = unsafe { std::mem::zeroed() };
                        // SAFETY: valid fd/name/out-pointer.
                        let r = unsafe {
                            libc::fstatat(
                                dir.as_raw_fd(),
                                name.as_ptr(),
                                &mut st,
                                libc::AT_SYMLINK_NOFOLLOW,
                            )
                        };
                        if r == 0 && (st.st_mode & libc::S_IFMT) != libc::S_IFDIR {
                            remove_existing(dir.as_raw_fd(), &name);
                            root.forget();
                        }
                    }
                }
                if let Err(p) = root.open_dir(&c, true) {
                    w.push(map_problem(p, dest));
                }
            }
            Err(p) => w.push(map_problem(p, dest)),
        }
        w
    }

    /// Restores a directory's attributes (after its contents were written).
    pub fn restore_dir(&self, item: &Item, dest: &[u8]) -> Vec<ItemWarning> {
        let mut w = Vec::new();
        let root = self.root.as_ref().expect("target");
        let comps = match SafeRoot::components(dest) {
            Ok(c) => c,
            Err(p) => {
                w.push(map_problem(p, dest));
                return w;
            }
        };
        match root.open_dir(&comps, false) {
            Ok(fd) => self.restore_attrs_fd(fd.as_raw_fd(), item, dest, &mut w),
            Err(p) => w.push(map_problem(p, dest)),
        }
        w
    }

    /// Restores the attributes of `dirs` (items with their destination paths, in archive
    /// order), each after everything inside it was written; warnings go to `report` in the
    /// order the directories are done. Attributes of one directory never change another's,
    /// so the deepest directories go first, each depth in parallel; only where a path
    /// occurs twice (the first occurrence's attributes win, as borg's) is it one at a time.
    pub fn restore_dirs(&self, dirs: &[Item], report: &mut dyn FnMut(Vec<ItemWarning>)) {
        let mut seen = std::collections::HashSet::new();
        if !dirs.iter().all(|d| seen.insert(d.path.as_slice())) {
            for d in dirs.iter().rev() {
                report(self.restore_dir(d, &d.path));
            }
            return;
        }
        let depth = |d: &Item| SafeRoot::components(&d.path).map_or(0, |c| c.len());
        let mut order: Vec<(usize, &Item)> = dirs.iter().map(|d| (depth(d), d)).collect();
        order.sort_by_key(|&(n, _)| std::cmp::Reverse(n));
        for level in order.chunk_by(|a, b| a.0 == b.0) {
            let done: Vec<Vec<ItemWarning>> = level
                .par_iter()
                .map(|(_, d)| self.restore_dir(d, &d.path))
                .collect();
            done.into_iter().for_each(&mut *report);
        }
    }

    fn owner(&self, item: &Item) -> (u32, u32) {
        let mut uid = item.uid.unwrap_or(0);
        let mut gid = item.gid.unwrap_or(0);
        if !self.opts.numeric_ids {
            if let Some(Some(u)) = &item.user {
                if let Some(x) = crate::platform::users::user2uid(&String::from_utf8_lossy(u)) {
                    uid = x;
                }
            }
            if let Some(Some(g)) = &item.group {
                if let Some(x) = crate::platform::users::group2gid(&String::from_utf8_lossy(g)) {
                    gid = x;
                }
            }
        }
        (uid, gid)
    }

    fn times(item: &Item) -> [libc::timespec; 2] {
        let ts = |ns: i128| libc::timespec {
            tv_sec: ns.div_euclid(1_000_000_000) as _,
            tv_nsec: ns.rem_euclid(1_000_000_000) as libc::c_long,
        };
        [ts(item.atime.unwrap_or(item.mtime)), ts(item.mtime)]
    }

    fn restore_attrs_fd(&self, fd: RawFd, item: &Item, dest: &[u8], w: &mut Vec<ItemWarning>) {
        let (uid, gid) = self.owner(item);
        // SAFETY: valid fd for all calls below.
        unsafe {
            let _ = libc::fchown(fd, uid, gid);
            libc::fchmod(fd, (item.mode & 0o7777) as libc::mode_t);
        }
        let p = proc_fd_path(fd);
        self.restore_ext(&p, Some(fd), item, dest, w);
        let times = Self::times(item);
        // SAFETY: valid fd and timespec array.
        unsafe { libc::futimens(fd, times.as_ptr()) };
        if !self.opts.noflags {
            if let Some(f) = item.bsdflags {
                let _ = crate::platform::flags::set(&p, Some(fd), f);
            }
        }
    }

    fn restore_attrs_at(
        &self,
        dfd: RawFd,
        name: &CStr,
        item: &Item,
        symlink: bool,
        dest: &[u8],
        w: &mut Vec<ItemWarning>,
    ) {
        let (uid, gid) = self.owner(item);
        // SAFETY: valid fd and name.
        unsafe {
            let _ = libc::fchownat(dfd, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW);
            if !symlink {
                libc::fchmodat(dfd, name.as_ptr(), (item.mode & 0o7777) as libc::mode_t, 0);
            }
        }
        let mut p = proc_fd_path(dfd);
        p.push(OsStr::from_bytes(name.to_bytes()));
        self.restore_ext(&p, None, item, dest, w);
        let times = Self::times(item);
        // SAFETY: valid fd, name and timespecs.
        unsafe {
            libc::utimensat(
                dfd,
                name.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
    }

    fn restore_ext(
        &self,
        path: &std::path::Path,
        fd: Option<RawFd>,
        item: &Item,
        dest: &[u8],
        w: &mut Vec<ItemWarning>,
    ) {
        if !self.opts.noacls && (item.acl_access.is_some() || item.acl_default.is_some()) {
            if let Err(e) = crate::platform::acl::set(
                path,
                fd,
                item.acl_access.as_deref(),
                item.acl_default.as_deref(),
                self.opts.numeric_ids,
            ) {
                w.push(ItemWarning {
                    code: 104,
                    msg: format!("{}: acl: {e}", String::from_utf8_lossy(dest)),
                });
            }
        }
        if !self.opts.noxattrs {
            if let Some(x) = &item.xattrs {
                for e in crate::platform::xattr::set_all(path, fd, x) {
                    w.push(ItemWarning {
                        code: 1,
                        msg: format!(
                            "{}: when setting extended attribute: {e}",
                            String::from_utf8_lossy(dest)
                        ),
                    });
                }
            }
        }
    }
}

fn proc_fd_path(fd: RawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

fn damaged_warning(item: &Item) -> ItemWarning {
    ItemWarning {
        code: 102,
        msg: format!(
            "{}: File has damaged (all-zero) chunks. Try running borg check --repair.",
            item.path_str()
        ),
    }
}

/// Is an item a regular-file-like thing that takes the parallel path?
pub fn is_parallel_file(item: &Item) -> bool {
    item.file_type() == S_IFREG && !item.is_hardlink_slave()
}

pub fn is_dir(item: &Item) -> bool {
    item.mode & S_IFMT == S_IFDIR
}
