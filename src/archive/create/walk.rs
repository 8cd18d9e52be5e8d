//! The filesystem walk of `create`, in borg's order: a root, then depth-first, each
//! directory's item before its contents, entries of a directory in inode order.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::prefetch::{list_dir, Prefetch};
use super::{CreateOptions, Job, JobKind, Warn};
use crate::archive::item::{
    Item, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
use crate::archive::patterns::PatternMatcher;

/// borg's `make_path_safe`: no leading `/` or `../` sequences; `.` for the empty path.
pub fn make_path_safe(p: &[u8]) -> Vec<u8> {
    let mut s = p;
    loop {
        let before = s.len();
        if s.starts_with(b"../") {
            s = &s[2..];
        }
        while s.first() == Some(&b'/') {
            s = &s[1..];
        }
        if s.len() == before {
            break;
        }
    }
    if s.is_empty() {
        b".".to_vec()
    } else {
        s.to_vec()
    }
}

/// The slashdot hack: `/a/b/./c` archives as `c` (prefix `/a/b/` stripped).
pub fn strip_prefix_of(path: &[u8]) -> Option<Vec<u8>> {
    let pos = path.windows(3).position(|w| w == b"/./")?;
    if pos == 0 {
        return None;
    }
    let pre = crate::repo::location::normpath(&String::from_utf8_lossy(&path[..pos]));
    let mut v = pre.into_bytes();
    v.push(b'/');
    Some(v)
}

/// Python's `os.path.normpath` on bytes (keeps non-UTF-8 names intact).
pub fn normpath_bytes(p: &[u8]) -> Vec<u8> {
    if p.is_empty() {
        return b".".to_vec();
    }
    let initial: &[u8] = if p.starts_with(b"//") && !p.starts_with(b"///") {
        b"//"
    } else if p.starts_with(b"/") {
        b"/"
    } else {
        b""
    };
    let mut parts: Vec<&[u8]> = Vec::new();
    for comp in p.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|l| *l != b"..") {
                    parts.pop();
                } else if initial.is_empty() {
                    parts.push(b"..");
                }
            }
            c => parts.push(c),
        }
    }
    let mut out = initial.to_vec();
    out.extend_from_slice(&parts.join(&b'/'));
    if out.is_empty() {
        b".".to_vec()
    } else {
        out
    }
}

/// `normpath_bytes(join(dir, name))` for a normalised `dir` and a name read from it (never
/// empty, `.`, `..` or holding a `/`), without splitting the whole path again per entry.
pub(super) fn child_path(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir == b"." {
        name.to_vec()
    } else {
        join(dir, name)
    }
}

pub(super) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.ends_with(b"/") {
        [dir, name].concat()
    } else {
        [dir, b"/", name].concat()
    }
}

const CACHEDIR_TAG: &str = "CACHEDIR.TAG";

fn is_cachedir(dir: &Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(dir.join(CACHEDIR_TAG)) else {
        return false;
    };
    let sig = crate::dirs::CACHE_TAG_SIGNATURE;
    let mut buf = vec![0u8; sig.len()];
    f.read_exact(&mut buf).is_ok() && buf == sig
}

/// Names of tag files/dirs that make this directory excluded.
fn tag_names(dir: &Path, opts: &CreateOptions) -> Vec<String> {
    let mut tags = Vec::new();
    if opts.exclude_caches && is_cachedir(dir) {
        tags.push(CACHEDIR_TAG.to_string());
    }
    for name in &opts.exclude_if_present {
        if std::fs::symlink_metadata(dir.join(name)).is_ok() {
            tags.push(name.clone());
        }
    }
    tags
}

/// Receives the walk's jobs, in archive order, a batch at a time.
pub type Sink<'s> = dyn FnMut(&mut Vec<Job>) -> crate::archive::Result<()> + 's;

/// Jobs collected before they are handed to the sink.
const BATCH: usize = 64;

/// Walk state: produces jobs in archive order.
pub struct Walker<'a, 's> {
    pub opts: &'a CreateOptions,
    pub matcher: &'a PatternMatcher,
    pub skip_inodes: HashSet<(u64, u64)>,
    /// (dev, ino) of hardlink masters → archive path.
    hard_links: HashMap<(u64, u64), Vec<u8>>,
    pub jobs: Vec<Job>,
    sink: &'s mut Sink<'s>,
    /// The sink's error; the walk stops at the next entry.
    pub error: Option<crate::archive::ArchiveError>,
    /// Listings read ahead by a helper thread, if one runs.
    pub prefetch: Option<&'a Prefetch>,
}

/// Error text like Python's OSError: `[Errno 2] No such file or directory: 'path'`.
pub fn os_error_text(e: &std::io::Error, path: &[u8]) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let msg = std::io::Error::from_raw_os_error(code).to_string();
            let msg = msg.split(" (os error").next().unwrap_or(&msg).to_string();
            format!("[Errno {code}] {msg}: '{}'", String::from_utf8_lossy(path))
        }
        None => e.to_string(),
    }
}

/// borg's warning code for an OS error on a source file.
pub fn os_error_code(e: &std::io::Error) -> i32 {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => 105,
        Some(libc::EIO) => 106,
        Some(libc::ENOENT) => 107,
        _ => 104,
    }
}

impl<'a, 's> Walker<'a, 's> {
    pub fn new(
        opts: &'a CreateOptions,
        matcher: &'a PatternMatcher,
        sink: &'s mut Sink<'s>,
    ) -> Walker<'a, 's> {
        Walker {
            opts,
            matcher,
            skip_inodes: HashSet::new(),
            hard_links: HashMap::new(),
            jobs: Vec::new(),
            sink,
            error: None,
            prefetch: None,
        }
    }

    /// Hands the collected jobs to the sink.
    pub fn flush(&mut self) {
        if self.error.is_none() && !self.jobs.is_empty() {
            if let Err(e) = (self.sink)(&mut self.jobs) {
                self.error = Some(e);
            }
        }
        self.jobs.clear();
    }

    fn status(&mut self, status: char, path: &[u8]) {
        self.jobs.push(Job::status(status, path.to_vec()));
    }

    fn warn(&mut self, code: i32, path: &[u8], msg: String) {
        self.jobs.push(Job {
            kind: JobKind::Warning(Warn {
                code,
                msg: format!("{}: {msg}", String::from_utf8_lossy(path)),
            }),
            status: Some('E'),
            path: path.to_vec(),
            item: None,
            fs_path: PathBuf::new(),
            result: None,
        });
    }

    /// Archive path for a filesystem path, honouring the slashdot prefix. `None` = a level
    /// above the kept part (no item; status `x`).
    fn archive_path(path: &[u8], strip: Option<&[u8]>) -> Option<Vec<u8>> {
        match strip {
            None => Some(make_path_safe(path)),
            Some(pre) => {
                let mut with_sep = path.to_vec();
                with_sep.push(b'/');
                if with_sep == pre {
                    Some(b".".to_vec())
                } else if pre.starts_with(&with_sep) {
                    None
                } else {
                    Some(make_path_safe(path.strip_prefix(pre).unwrap_or(path)))
                }
            }
        }
    }

    /// Processes one root given on the command line.
    pub fn root(&mut self, raw: &[u8]) {
        let strip = strip_prefix_of(raw);
        let path = normpath_bytes(raw);
        let meta = match std::fs::symlink_metadata(OsStr::from_bytes(&path)) {
            Ok(m) => m,
            Err(e) => {
                let code = os_error_code(&e);
                self.warn(code, &path, os_error_text(&e, &path));
                return;
            }
        };
        let restrict_dev = self.opts.one_file_system.then_some(meta.dev());
        self.rec_walk(&path, meta, restrict_dev, strip.as_deref());
        if let Ok(m) = std::fs::symlink_metadata(OsStr::from_bytes(&path)) {
            self.skip_inodes.insert((m.ino(), m.dev()));
        }
    }

    fn rec_walk(
        &mut self,
        path: &[u8],
        meta: std::fs::Metadata,
        restrict_dev: Option<u64>,
        strip: Option<&[u8]>,
    ) {
        // Safe point: no job index of an enclosing directory is still needed here.
        if self.jobs.len() >= BATCH {
            self.flush();
        }
        if self.error.is_some() {
            return;
        }
        let pstr = String::from_utf8_lossy(path);
        let d = self.matcher.evaluate(&pstr);
        let mut recurse_excluded = false;
        if !d.include {
            self.status('x', path);
            if !d.recurse || (meta.mode() & S_IFMT) != S_IFDIR {
                return;
            }
            recurse_excluded = true;
        }
        if self.skip_inodes.contains(&(meta.ino(), meta.dev())) {
            return;
        }
        let recurse = restrict_dev.is_none_or(|d| meta.dev() == d);
        let fs_path = PathBuf::from(OsStr::from_bytes(path));
        if self.opts.exclude_nodump {
            let flags = crate::platform::flags::get(&fs_path, meta.mode(), None);
            if flags & crate::platform::flags::UF_NODUMP != 0 {
                self.status('x', path);
                return;
            }
        }
        let ftype = meta.mode() & S_IFMT;
        if ftype != S_IFDIR {
            self.process_any(path, &fs_path, &meta, strip);
            return;
        }
        if recurse {
            let tags = tag_names(&fs_path, self.opts);
            if !tags.is_empty() {
                if !recurse_excluded {
                    if self.opts.keep_exclude_tags {
                        if !self.opts.dry_run {
                            self.dir_item(path, &fs_path, &meta, strip);
                        }
                        for t in tags {
                            let tp = join(path, t.as_bytes());
                            if let Ok(m) = std::fs::symlink_metadata(OsStr::from_bytes(&tp)) {
                                self.rec_walk(&tp, m, restrict_dev, strip);
                            }
                        }
                    }
                    self.status('x', path);
                }
                return;
            }
        }
        let dir_job_index = if !recurse_excluded {
            if self.opts.dry_run {
                None
            } else {
                self.dir_item(path, &fs_path, &meta, strip)
            }
        } else {
            None
        };
        if recurse {
            let listing = self
                .prefetch
                .and_then(|p| p.take(path))
                .unwrap_or_else(|| list_dir(fs_path.as_os_str()));
            match listing {
                Ok(listing) => {
                    if let Some(e) = listing.error {
                        self.warn(os_error_code(&e), path, os_error_text(&e, path));
                    }
                    for (name, meta) in listing.entries {
                        let child = child_path(path, name.as_bytes());
                        match meta {
                            Ok(m) => self.rec_walk(&child, m, restrict_dev, strip),
                            Err(e) => {
                                if !self
                                    .matcher
                                    .evaluate(&String::from_utf8_lossy(&child))
                                    .include
                                {
                                    self.status('x', &child);
                                    continue;
                                }
                                self.warn(os_error_code(&e), &child, os_error_text(&e, &child));
                            }
                        }
                    }
                }
                Err(e) => {
                    self.warn(os_error_code(&e), path, os_error_text(&e, path));
                    if let Some(i) = dir_job_index {
                        self.jobs[i].status = Some('E');
                    }
                    return;
                }
            }
        }
        if !recurse_excluded {
            // the directory's status line comes after its contents
            let st = if self.opts.dry_run { '-' } else { 'd' };
            if dir_job_index.is_some() || self.opts.dry_run {
                self.status(st, path);
            }
        }
    }

    /// Adds a directory item; returns its job index.
    fn dir_item(
        &mut self,
        path: &[u8],
        fs_path: &Path,
        meta: &std::fs::Metadata,
        strip: Option<&[u8]>,
    ) -> Option<usize> {
        let apath = Self::archive_path(path, strip)?;
        let mut item = self.stat_item(apath.clone(), meta);
        item.mode = meta.mode();
        // only where the files cache can supply its attributes (no path hash otherwise)
        let dir = self
            .opts
            .files_cache
            .keeps_dir_attrs()
            .then(|| crate::archive::files_cache::FileStat::of(meta));
        self.jobs.push(Job {
            kind: JobKind::Special {
                ext_attrs: true,
                dir,
            },
            status: None,
            path: path.to_vec(),
            item: Some(item),
            fs_path: fs_path.to_path_buf(),
            result: None,
        });
        Some(self.jobs.len() - 1)
    }

    /// The stat-derived attributes borg stores for every item.
    pub fn stat_item(&self, path: Vec<u8>, m: &std::fs::Metadata) -> Item {
        let o = self.opts;
        let (user, group) = if o.numeric_ids {
            (Some(None), Some(None))
        } else {
            (
                Some(crate::platform::users::uid2user(m.uid()).map(String::into_bytes)),
                Some(crate::platform::users::gid2group(m.gid()).map(String::into_bytes)),
            )
        };
        Item {
            path,
            mode: m.mode(),
            uid: Some(m.uid()),
            gid: Some(m.gid()),
            user,
            group,
            mtime: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            atime: o
                .atime
                .then(|| m.atime() as i128 * 1_000_000_000 + m.atime_nsec() as i128),
            ctime: (!o.noctime).then(|| m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128),
            ..Item::default()
        }
    }

    fn process_any(
        &mut self,
        path: &[u8],
        fs_path: &Path,
        meta: &std::fs::Metadata,
        strip: Option<&[u8]>,
    ) {
        if self.opts.dry_run {
            self.status('-', path);
            return;
        }
        let ftype = meta.mode() & S_IFMT;
        let read_special = self.opts.read_special;
        match ftype {
            S_IFREG => self.file(path, fs_path, meta, strip, false),
            S_IFLNK => {
                if read_special {
                    if let Ok(target) = std::fs::metadata(fs_path) {
                        let t = target.mode() & S_IFMT;
                        if matches!(t, S_IFCHR | S_IFBLK | S_IFIFO) {
                            return self.file(path, fs_path, &target, strip, true);
                        }
                    }
                }
                self.symlink(path, fs_path, meta, strip)
            }
            S_IFIFO | S_IFCHR | S_IFBLK => {
                if read_special {
                    return self.file(path, fs_path, meta, strip, true);
                }
                self.special(path, fs_path, meta, strip)
            }
            S_IFSOCK => {}
            _ => {
                self.jobs.push(Job {
                    kind: JobKind::Warning(Warn {
                        code: 1,
                        msg: format!("Unknown file type: {}", String::from_utf8_lossy(path)),
                    }),
                    status: None,
                    path: path.to_vec(),
                    item: None,
                    fs_path: PathBuf::new(),
                    result: None,
                });
            }
        }
    }

    /// Hardlink bookkeeping: `Some(master path)` for a slave, `None` otherwise; `master` tells
    /// whether this is the first link seen.
    fn hardlink(&mut self, meta: &std::fs::Metadata, apath: &[u8]) -> (Option<Vec<u8>>, bool) {
        if meta.nlink() <= 1 {
            return (None, false);
        }
        let k = (meta.ino(), meta.dev());
        match self.hard_links.get(&k) {
            Some(src) => (Some(src.clone()), false),
            None => {
                self.hard_links.insert(k, apath.to_vec());
                (None, true)
            }
        }
    }

    fn symlink(
        &mut self,
        path: &[u8],
        fs_path: &Path,
        meta: &std::fs::Metadata,
        strip: Option<&[u8]>,
    ) {
        let Some(apath) = Self::archive_path(path, strip) else {
            return self.status('x', path);
        };
        match std::fs::read_link(fs_path) {
            Ok(target) => {
                let mut item = self.stat_item(apath, meta);
                item.source = Some(target.as_os_str().as_bytes().to_vec());
                self.jobs.push(Job {
                    kind: JobKind::Special {
                        ext_attrs: true,
                        dir: None,
                    },
                    status: Some('s'),
                    path: path.to_vec(),
                    item: Some(item),
                    fs_path: fs_path.to_path_buf(),
                    result: None,
                });
            }
            Err(e) => self.warn(os_error_code(&e), path, os_error_text(&e, path)),
        }
    }

    fn special(
        &mut self,
        path: &[u8],
        fs_path: &Path,
        meta: &std::fs::Metadata,
        strip: Option<&[u8]>,
    ) {
        let Some(apath) = Self::archive_path(path, strip) else {
            return self.status('x', path);
        };
        let ftype = meta.mode() & S_IFMT;
        let letter = match ftype {
            S_IFIFO => 'f',
            S_IFCHR => 'c',
            _ => 'b',
        };
        let (source, master) = self.hardlink(meta, &apath);
        let mut item = self.stat_item(apath, meta);
        let status = if source.is_some() { 'h' } else { letter };
        if ftype != S_IFIFO {
            item.rdev = Some(meta.rdev());
        }
        if let Some(s) = source {
            item.source = Some(s);
        } else {
            item.hardlink_master = Some(master);
        }
        self.jobs.push(Job {
            kind: JobKind::Special {
                ext_attrs: true,
                dir: None,
            },
            status: Some(status),
            path: path.to_vec(),
            item: Some(item),
            fs_path: fs_path.to_path_buf(),
            result: None,
        });
    }

    fn file(
        &mut self,
        path: &[u8],
        fs_path: &Path,
        meta: &std::fs::Metadata,
        strip: Option<&[u8]>,
        special: bool,
    ) {
        let Some(apath) = Self::archive_path(path, strip) else {
            return self.status('x', path);
        };
        let (source, master) = self.hardlink(meta, &apath);
        let mut item = self.stat_item(apath, meta);
        if special {
            item.mode = S_IFREG | (item.mode & 0o7777);
        }
        if let Some(s) = source {
            item.source = Some(s);
            self.jobs.push(Job {
                kind: JobKind::Special {
                    ext_attrs: true,
                    dir: None,
                },
                status: Some('h'),
                path: path.to_vec(),
                item: Some(item),
                fs_path: fs_path.to_path_buf(),
                result: None,
            });
            return;
        }
        item.hardlink_master = Some(master);
        self.jobs.push(Job {
            kind: JobKind::File {
                special,
                size: meta.len(),
                ino: meta.ino(),
                dev: meta.dev(),
                ctime: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
                mtime: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            },
            status: None,
            path: path.to_vec(),
            item: Some(item),
            fs_path: fs_path.to_path_buf(),
            result: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_safety() {
        assert_eq!(make_path_safe(b"/etc/passwd"), b"etc/passwd");
        assert_eq!(make_path_safe(b"../../x"), b"x");
        assert_eq!(make_path_safe(b"///"), b".");
        assert_eq!(make_path_safe(b"a/../b"), b"a/../b");
        assert_eq!(normpath_bytes(b"./a//b/"), b"a/b");
        assert_eq!(strip_prefix_of(b"/a/b/./c/d"), Some(b"/a/b/".to_vec()));
        for dir in [
            &b"."[..],
            b"..",
            b"../..",
            b"/",
            b"//",
            b"a",
            b"a/b",
            b"/a/b",
            b"//a",
            b"...",
        ] {
            for name in [&b"x"[..], b"..x", b".x", b"x.", b"\xff"] {
                assert_eq!(
                    child_path(&normpath_bytes(dir), name),
                    normpath_bytes(&join(dir, name)),
                    "{dir:?} {name:?}"
                );
            }
        }
        assert_eq!(strip_prefix_of(b"./c"), None);
        assert_eq!(
            Walker::archive_path(b"/a/b/c/d", Some(b"/a/b/")),
            Some(b"c/d".to_vec())
        );
        assert_eq!(
            Walker::archive_path(b"/a/b", Some(b"/a/b/")),
            Some(b".".to_vec())
        );
        assert_eq!(Walker::archive_path(b"/a", Some(b"/a/b/")), None);
    }
}
