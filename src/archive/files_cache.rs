//! The files cache: for each backed-up path (by keyed hash), the size, inode, ctime/mtime and
//! chunk ids seen last time, so an unchanged file costs one stat and no read.
//!
//! Beyond borg, an entry may also remember the file's flags and xattrs as last read (never
//! its ACLs: a file with ACLs is always read again), so that under a ctime-comparing mode an
//! unchanged file is archived without even being opened: changing xattrs or flags changes
//! the ctime, which sends the file down the normal path.
//!
//! Semantics follow borg: entries age by one per run and are dropped at `BORG_FILES_CACHE_TTL`
//! (20); files seen in this run are only remembered if their timestamp is older than the newest
//! one seen (timestamp granularity race); `--files-cache` selects what is compared.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh64::xxh64;

use super::{ArchiveError, Result};
use crate::repo::{IdMap, ObjectId};

/// What `--files-cache` compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilesCacheMode {
    pub ctime: bool,
    pub mtime: bool,
    pub size: bool,
    pub inode: bool,
    pub rechunk: bool,
    pub disabled: bool,
}

impl FilesCacheMode {
    /// Does this mode remember directories' attributes ([`FilesCache::memorize_attrs`])?
    /// Only a ctime comparison notices attribute changes.
    pub fn keeps_dir_attrs(&self) -> bool {
        self.ctime && !self.disabled
    }
}

impl Default for FilesCacheMode {
    fn default() -> Self {
        FilesCacheMode {
            ctime: true,
            mtime: false,
            size: true,
            inode: true,
            rechunk: false,
            disabled: false,
        }
    }
}

impl std::str::FromStr for FilesCacheMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let words: Vec<&str> = s.split(',').map(|w| w.trim()).collect();
        const VALID: &[&str] = &["ctime", "disabled", "inode", "mtime", "rechunk", "size"];
        if words.iter().any(|w| !VALID.contains(w)) {
            return Err("cache mode must be a comma-separated list of: ctime,disabled,inode,mtime,rechunk,size".into());
        }
        let has = |w: &str| words.contains(&w);
        let m = FilesCacheMode {
            ctime: has("ctime"),
            mtime: has("mtime"),
            size: has("size"),
            inode: has("inode"),
            rechunk: has("rechunk"),
            disabled: has("disabled"),
        };
        let short: String = [
            (m.ctime, 'c'),
            (m.inode, 'i'),
            (m.mtime, 'm'),
            (m.size, 's'),
            (m.rechunk, 'r'),
            (m.disabled, 'd'),
        ]
        .iter()
        .filter(|(b, _)| *b)
        .map(|(_, c)| *c)
        .collect();
        let mut sorted: Vec<char> = short.chars().collect();
        sorted.sort_unstable();
        let sorted: String = sorted.into_iter().collect();
        const ALLOWED: &[&str] = &["cis", "ims", "cs", "ms", "cr", "mr", "d", "s"];
        if !ALLOWED.iter().any(|a| {
            let mut v: Vec<char> = a.chars().collect();
            v.sort_unstable();
            v.into_iter().collect::<String>() == sorted
        }) {
            return Err("cache mode short must be one of: cis,ims,cs,ms,cr,mr,d,s".into());
        }
        Ok(m)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub age: u8,
    pub inode: u64,
    pub size: u64,
    pub ctime: i64,
    pub mtime: i64,
    pub chunks: Vec<ObjectId>,
    pub ext: Option<Box<ExtAttrs>>,
}

/// Extended attributes remembered with an entry; `mask` says which kinds were collected
/// (`EXT_*` bits) when they were read.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ExtAttrs {
    pub mask: u8,
    pub bsdflags: Option<u32>,
    pub xattrs: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// Flags were read.
pub const EXT_FLAGS: u8 = 1;
/// xattrs were read.
pub const EXT_XATTRS: u8 = 2;
/// ACLs were read, and the file had none.
pub const EXT_NO_ACLS: u8 = 4;

/// Stat fields the cache compares.
#[derive(Clone, Copy, Debug)]
pub struct FileStat {
    pub inode: u64,
    pub size: u64,
    pub ctime: i64,
    pub mtime: i64,
}

impl FileStat {
    /// The fields of a stat result (times in ns).
    pub fn of(m: &std::fs::Metadata) -> FileStat {
        use std::os::unix::fs::MetadataExt;
        FileStat {
            inode: m.ino(),
            size: m.size(),
            ctime: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            mtime: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        }
    }
}

pub struct FilesCache {
    path: PathBuf,
    mode: FilesCacheMode,
    entries: IdMap<FileEntry>,
    newest_cmtime: Option<i64>,
}

const MAGIC: &[u8; 8] = b"RBORGFC2";

impl FilesCache {
    /// Loads `<cache>/files[.<BORG_FILES_CACHE_SUFFIX>]`, aging every entry by one run.
    pub fn load(cache_dir: &Path, mode: FilesCacheMode) -> FilesCache {
        let name = match std::env::var("BORG_FILES_CACHE_SUFFIX") {
            Ok(s) if !s.is_empty() => format!("files.{s}"),
            _ => "files".to_string(),
        };
        let path = cache_dir.join(name);
        let mut fc = FilesCache {
            path,
            mode,
            entries: IdMap::default(),
            newest_cmtime: None,
        };
        if mode.disabled {
            return fc;
        }
        if let Ok(data) = std::fs::read(&fc.path) {
            if let Some(entries) = decode(&data) {
                fc.entries = entries;
                for e in fc.entries.values_mut() {
                    e.age = e.age.saturating_add(1);
                }
            }
        }
        fc
    }

    /// borg's `file_known_and_unchanged`: (known, chunk ids if unchanged).
    pub fn lookup(&mut self, path_hash: &ObjectId, st: &FileStat) -> (bool, Option<Vec<ObjectId>>) {
        if self.mode.disabled || self.mode.rechunk {
            return (false, None);
        }
        let Some(e) = self.entries.get_mut(path_hash) else {
            return (false, None);
        };
        if self.mode.size && e.size != st.size {
            return (true, None);
        }
        if self.mode.inode && e.inode != st.inode {
            return (true, None);
        }
        if self.mode.ctime && e.ctime != st.ctime {
            return (true, None);
        }
        if !self.mode.ctime && self.mode.mtime && e.mtime != st.mtime {
            return (true, None);
        }
        e.inode = st.inode;
        e.age = 0;
        (true, Some(e.chunks.clone()))
    }

    /// An unchanged file's chunk ids and remembered attributes, when the mode compares
    /// ctimes (so that attribute changes cannot go unnoticed) and the entry holds at least
    /// the kinds of attributes in `need`. Otherwise `None`: take the normal path.
    pub fn lookup_with_ext(
        &mut self,
        path_hash: &ObjectId,
        st: &FileStat,
        need: u8,
    ) -> Option<(Vec<ObjectId>, ExtAttrs)> {
        if !self.mode.ctime {
            return None;
        }
        let e = self.entries.get(path_hash)?;
        let ext = e.ext.as_deref()?;
        if ext.mask & need != need {
            return None;
        }
        let ext = ext.clone();
        let (_, ids) = self.lookup(path_hash, st);
        Some((ids?, ext))
    }

    /// Remembers the attributes just read for an entry memorized or found in this run.
    pub fn set_ext(&mut self, path_hash: &ObjectId, ext: ExtAttrs) {
        if let Some(e) = self.entries.get_mut(path_hash) {
            e.ext = Some(Box::new(ext));
        }
    }

    /// Remembers a directory's attributes (an entry without chunks). Directories do not
    /// move the newest timestamp that decides which files are kept: only files do in borg.
    pub fn memorize_attrs(&mut self, path_hash: ObjectId, st: &FileStat, ext: ExtAttrs) {
        if self.mode.keeps_dir_attrs() {
            self.insert(path_hash, st, Vec::new(), Some(Box::new(ext)));
        }
    }

    /// borg's `memorize_file`.
    pub fn memorize(&mut self, path_hash: ObjectId, st: &FileStat, chunks: Vec<ObjectId>) {
        if self.mode.disabled {
            return;
        }
        let cm = if self.mode.ctime || !self.mode.mtime {
            st.ctime
        } else {
            st.mtime
        };
        self.newest_cmtime = Some(self.newest_cmtime.map_or(cm, |n| n.max(cm)));
        self.insert(path_hash, st, chunks, None);
    }

    fn insert(
        &mut self,
        path_hash: ObjectId,
        st: &FileStat,
        chunks: Vec<ObjectId>,
        ext: Option<Box<ExtAttrs>>,
    ) {
        self.entries.insert(
            path_hash,
            FileEntry {
                age: 0,
                inode: st.inode,
                size: st.size,
                ctime: st.ctime,
                mtime: st.mtime,
                chunks,
                ext,
            },
        );
    }

    /// Saves the entries worth keeping (see module docs).
    pub fn save(&self) -> Result<()> {
        match self.encode() {
            Some(data) => Self::write(&self.path, &data),
            None => Ok(()),
        }
    }

    /// Writes what [`FilesCache::encode`] made to `path` (the cache's [`FilesCache::path`]).
    pub fn write(path: &Path, data: &[u8]) -> Result<()> {
        crate::repo::local::atomic::save_file(path, data).map_err(|e| ArchiveError::io(path, e))
    }

    /// The file's bytes with the entries worth keeping (`None`: the cache is disabled).
    pub fn encode(&self) -> Option<Vec<u8>> {
        if self.mode.disabled {
            return None;
        }
        let ttl: u8 = std::env::var("BORG_FILES_CACHE_TTL")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .map(|v| v.min(255) as u8)
            .unwrap_or(20);
        let newest = self.newest_cmtime.unwrap_or(i64::MAX);
        let use_ctime = self.mode.ctime || !self.mode.mtime;
        let keep = self.entries.iter().filter(|(_, e)| {
            let cm = if use_ctime { e.ctime } else { e.mtime };
            (e.age == 0 && cm < newest) || (e.age > 0 && e.age < ttl)
        });
        let mut out = MAGIC.to_vec();
        let mut n = 0u64;
        let mut body = Vec::new();
        for (k, e) in keep {
            body.extend_from_slice(&k.0);
            body.push(e.age);
            body.extend_from_slice(&e.inode.to_le_bytes());
            body.extend_from_slice(&e.size.to_le_bytes());
            body.extend_from_slice(&e.ctime.to_le_bytes());
            body.extend_from_slice(&e.mtime.to_le_bytes());
            body.extend_from_slice(&(e.chunks.len() as u32).to_le_bytes());
            for c in &e.chunks {
                body.extend_from_slice(&c.0);
            }
            encode_ext(&mut body, e.ext.as_deref());
            n += 1;
        }
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&body);
        let h = xxh64(&out, 0);
        out.extend_from_slice(&h.to_le_bytes());
        Some(out)
    }

    /// The file it is loaded from and saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn decode(data: &[u8]) -> Option<IdMap<FileEntry>> {
    if data.len() < 24 || &data[..8] != MAGIC {
        return None;
    }
    let (body, tail) = data.split_at(data.len() - 8);
    if xxh64(body, 0).to_le_bytes() != tail {
        return None;
    }
    let n = u64::from_le_bytes(body[8..16].try_into().ok()?) as usize;
    let mut p = 16;
    let mut m = IdMap::with_capacity_and_hasher(n.min(1 << 24), Default::default());
    let take = |p: &mut usize, k: usize| -> Option<&[u8]> {
        let s = body.get(*p..*p + k)?;
        *p += k;
        Some(s)
    };
    for _ in 0..n {
        let id = ObjectId(take(&mut p, 32)?.try_into().ok()?);
        let age = take(&mut p, 1)?[0];
        let inode = u64::from_le_bytes(take(&mut p, 8)?.try_into().ok()?);
        let size = u64::from_le_bytes(take(&mut p, 8)?.try_into().ok()?);
        let ctime = i64::from_le_bytes(take(&mut p, 8)?.try_into().ok()?);
        let mtime = i64::from_le_bytes(take(&mut p, 8)?.try_into().ok()?);
        let nc = u32::from_le_bytes(take(&mut p, 4)?.try_into().ok()?) as usize;
        let mut chunks = Vec::with_capacity(nc.min(1 << 16));
        for _ in 0..nc {
            chunks.push(ObjectId(take(&mut p, 32)?.try_into().ok()?));
        }
        let ext = match take(&mut p, 1)?[0] {
            0 => None,
            _ => {
                let mask = take(&mut p, 1)?[0];
                let bsdflags = match take(&mut p, 1)?[0] {
                    0 => None,
                    _ => Some(u32::from_le_bytes(take(&mut p, 4)?.try_into().ok()?)),
                };
                let nx = u32::from_le_bytes(take(&mut p, 4)?.try_into().ok()?) as usize;
                let xattrs = if nx == 0 {
                    None
                } else {
                    let mut v = Vec::with_capacity(nx.min(1 << 10));
                    for _ in 0..nx {
                        let kl = u32::from_le_bytes(take(&mut p, 4)?.try_into().ok()?) as usize;
                        let k = take(&mut p, kl)?.to_vec();
                        let vl = u32::from_le_bytes(take(&mut p, 4)?.try_into().ok()?) as usize;
                        v.push((k, take(&mut p, vl)?.to_vec()));
                    }
                    Some(v)
                };
                Some(Box::new(ExtAttrs {
                    mask,
                    bsdflags,
                    xattrs,
                }))
            }
        };
        m.insert(
            id,
            FileEntry {
                age,
                inode,
                size,
                ctime,
                mtime,
                chunks,
                ext,
            },
        );
    }
    Some(m)
}

fn encode_ext(body: &mut Vec<u8>, ext: Option<&ExtAttrs>) {
    let Some(ext) = ext else {
        body.push(0);
        return;
    };
    body.push(1);
    body.push(ext.mask);
    match ext.bsdflags {
        None => body.push(0),
        Some(f) => {
            body.push(1);
            body.extend_from_slice(&f.to_le_bytes());
        }
    }
    let xs = ext.xattrs.as_deref().unwrap_or_default();
    body.extend_from_slice(&(xs.len() as u32).to_le_bytes());
    for (k, v) in xs {
        body.extend_from_slice(&(k.len() as u32).to_le_bytes());
        body.extend_from_slice(k);
        body.extend_from_slice(&(v.len() as u32).to_le_bytes());
        body.extend_from_slice(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert!("ctime,size,inode".parse::<FilesCacheMode>().is_ok());
        assert!("mtime,size".parse::<FilesCacheMode>().is_ok());
        assert!("disabled".parse::<FilesCacheMode>().is_ok());
        assert_eq!(
            "ctime,mtime".parse::<FilesCacheMode>().unwrap_err(),
            "cache mode short must be one of: cis,ims,cs,ms,cr,mr,d,s"
        );
        assert!("foo"
            .parse::<FilesCacheMode>()
            .unwrap_err()
            .starts_with("cache mode must be"));
    }

    #[test]
    fn memorize_save_load_age() {
        let d = tempfile::tempdir().unwrap();
        let mut fc = FilesCache::load(d.path(), FilesCacheMode::default());
        let st = FileStat {
            inode: 5,
            size: 10,
            ctime: 100,
            mtime: 90,
        };
        let newer = FileStat {
            inode: 6,
            size: 10,
            ctime: 200,
            mtime: 90,
        };
        fc.memorize(ObjectId([1; 32]), &st, vec![ObjectId([9; 32])]);
        fc.memorize(ObjectId([2; 32]), &newer, vec![]);
        fc.save().unwrap();
        let mut fc2 = FilesCache::load(d.path(), FilesCacheMode::default());
        // the newest-cmtime file is not remembered (granularity race)
        assert_eq!(fc2.len(), 1);
        assert_eq!(
            fc2.lookup(&ObjectId([1; 32]), &st),
            (true, Some(vec![ObjectId([9; 32])]))
        );
        let changed = FileStat { size: 11, ..st };
        assert_eq!(fc2.lookup(&ObjectId([1; 32]), &changed), (true, None));
        assert_eq!(fc2.lookup(&ObjectId([3; 32]), &st), (false, None));
    }

    #[test]
    fn remembered_attributes() {
        let d = tempfile::tempdir().unwrap();
        let mut fc = FilesCache::load(d.path(), FilesCacheMode::default());
        let st = FileStat {
            inode: 5,
            size: 10,
            ctime: 100,
            mtime: 90,
        };
        let newest = FileStat { ctime: 300, ..st };
        let (a, b, c) = (ObjectId([1; 32]), ObjectId([2; 32]), ObjectId([4; 32]));
        fc.memorize(a, &st, vec![ObjectId([9; 32])]);
        fc.memorize(b, &st, vec![]);
        fc.memorize(c, &newest, vec![]);
        // nothing remembered yet: the normal path
        assert_eq!(fc.lookup_with_ext(&a, &st, EXT_FLAGS), None);
        let ext = ExtAttrs {
            mask: EXT_FLAGS | EXT_XATTRS,
            bsdflags: Some(0x10),
            xattrs: Some(vec![(b"user.k".to_vec(), b"\0v".to_vec())]),
        };
        fc.set_ext(&a, ext.clone());
        fc.set_ext(
            &b,
            ExtAttrs {
                mask: EXT_FLAGS | EXT_XATTRS | EXT_NO_ACLS,
                ..ExtAttrs::default()
            },
        );
        fc.save().unwrap();
        let mut fc2 = FilesCache::load(d.path(), FilesCacheMode::default());
        assert_eq!(
            fc2.lookup_with_ext(&a, &st, EXT_FLAGS | EXT_XATTRS),
            Some((vec![ObjectId([9; 32])], ext))
        );
        // ACLs were not read for `a`: a run that wants them reads the file
        assert_eq!(fc2.lookup_with_ext(&a, &st, EXT_NO_ACLS), None);
        assert!(fc2.lookup_with_ext(&b, &st, 7).is_some());
        // a changed ctime (e.g. an xattr was set) is a miss
        let touched = FileStat { ctime: 101, ..st };
        assert_eq!(fc2.lookup_with_ext(&b, &touched, 0), None);
        // modes without ctime never skip the open
        let mut fc3 = FilesCache::load(d.path(), "mtime,size".parse().unwrap());
        assert_eq!(fc3.lookup_with_ext(&a, &st, 0), None);
    }

    /// Directory entries (attributes, no chunks) are kept by the files' newest timestamp and
    /// do not move it.
    #[test]
    fn directory_attributes() {
        let d = tempfile::tempdir().unwrap();
        let mut fc = FilesCache::load(d.path(), FilesCacheMode::default());
        let at = |ctime| FileStat {
            inode: 7,
            size: 60,
            ctime,
            mtime: ctime,
        };
        let ext = ExtAttrs {
            mask: EXT_FLAGS | EXT_XATTRS | EXT_NO_ACLS,
            bsdflags: None,
            xattrs: Some(vec![(b"user.d".to_vec(), b"1".to_vec())]),
        };
        let (file, newest, old_dir, new_dir) = (
            ObjectId([1; 32]),
            ObjectId([2; 32]),
            ObjectId([3; 32]),
            ObjectId([4; 32]),
        );
        fc.memorize(file, &at(100), vec![ObjectId([9; 32])]);
        fc.memorize(newest, &at(300), vec![]);
        fc.memorize_attrs(old_dir, &at(50), ext.clone());
        // newer than every file: were it counted, `newest` would be kept
        fc.memorize_attrs(new_dir, &at(400), ext.clone());
        fc.save().unwrap();
        let mut fc = FilesCache::load(d.path(), FilesCacheMode::default());
        assert!(fc.lookup_with_ext(&file, &at(100), 0).is_none(), "no ext");
        assert_eq!(fc.lookup(&file, &at(100)).1, Some(vec![ObjectId([9; 32])]));
        assert_eq!(fc.lookup(&newest, &at(300)), (false, None));
        assert_eq!(
            fc.lookup_with_ext(&old_dir, &at(50), 7),
            Some((vec![], ext))
        );
        assert_eq!(fc.lookup_with_ext(&new_dir, &at(400), 0), None);
        // a changed directory (an entry added moves its ctime) is read again
        assert_eq!(fc.lookup_with_ext(&old_dir, &at(51), 0), None);
        // without ctime comparison nothing is remembered for directories
        let mut fc = FilesCache::load(d.path(), "mtime,size,inode".parse().unwrap());
        fc.memorize_attrs(new_dir, &at(400), ExtAttrs::default());
        assert!(!fc.entries.contains_key(&new_dir));
    }
}
