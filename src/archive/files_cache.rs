//! The files cache: for each backed-up path (by keyed hash), the size, inode, ctime/mtime and
//! chunk ids seen last time, so an unchanged file costs one stat and no read.
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
}

/// Stat fields the cache compares.
#[derive(Clone, Copy, Debug)]
pub struct FileStat {
    pub inode: u64,
    pub size: u64,
    pub ctime: i64,
    pub mtime: i64,
}

pub struct FilesCache {
    path: PathBuf,
    mode: FilesCacheMode,
    entries: IdMap<FileEntry>,
    newest_cmtime: Option<i64>,
}

const MAGIC: &[u8; 8] = b"RBORGFC1";

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
        self.entries.insert(
            path_hash,
            FileEntry {
                age: 0,
                inode: st.inode,
                size: st.size,
                ctime: st.ctime,
                mtime: st.mtime,
                chunks,
            },
        );
    }

    /// Saves the entries worth keeping (see module docs).
    pub fn save(&self) -> Result<()> {
        if self.mode.disabled {
            return Ok(());
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
            n += 1;
        }
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&body);
        let h = xxh64(&out, 0);
        out.extend_from_slice(&h.to_le_bytes());
        crate::repo::local::atomic::save_file(&self.path, &out)
            .map_err(|e| ArchiveError::io(&self.path, e))
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
        m.insert(
            id,
            FileEntry {
                age,
                inode,
                size,
                ctime,
                mtime,
                chunks,
            },
        );
    }
    Some(m)
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
}
