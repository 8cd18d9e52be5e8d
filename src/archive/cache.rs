//! The client cache: which chunks the repository holds (with reference counts and sizes, for
//! deduplication and statistics) and, for `create`, the files cache.
//!
//! rborg keeps its own compact formats under `<cache dir>/rborg/<repo id>/` so it never
//! disturbs borg's cache next to it (`<cache dir>/<repo id>/`). The chunk index is valid for
//! one manifest; when the manifest changed (another client wrote), it is rebuilt from the
//! archives, reusing per-archive chunk lists cached from earlier syncs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh64::xxh64;

use super::item::Item;
use super::itemstream::ItemReader;
use super::manifest::Manifest;
use super::meta::{open_object, ArchiveMeta};
use super::{ArchiveError, Result};
use crate::crypto::Key;
use crate::repo::local::atomic::save_file;
use crate::repo::{IdMap, ObjectId, Repository};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkEntry {
    pub refcount: u32,
    pub size: u32,
    pub csize: u32,
}

/// Repository-wide chunk statistics (borg's `cache.stats()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub total_chunks: u64,
    pub total_unique_chunks: u64,
    pub total_size: u64,
    pub total_csize: u64,
    pub unique_size: u64,
    pub unique_csize: u64,
}

#[derive(Clone, Debug, Default)]
pub struct ChunkIndex {
    pub map: IdMap<ChunkEntry>,
}

impl ChunkIndex {
    pub fn contains(&self, id: &ObjectId) -> bool {
        self.map.contains_key(id)
    }
    pub fn get(&self, id: &ObjectId) -> Option<&ChunkEntry> {
        self.map.get(id)
    }
    /// Adds `count` references to a chunk (creating it with the given sizes).
    pub fn add(&mut self, id: ObjectId, size: u32, csize: u32, count: u32) {
        let e = self.map.entry(id).or_insert(ChunkEntry {
            refcount: 0,
            size,
            csize,
        });
        e.refcount = e.refcount.saturating_add(count);
    }
    /// Drops one reference; returns the entry if it reached zero (and was removed).
    pub fn decref(&mut self, id: &ObjectId) -> Option<ChunkEntry> {
        let e = self.map.get_mut(id)?;
        e.refcount = e.refcount.saturating_sub(1);
        if e.refcount == 0 {
            return self.map.remove(id);
        }
        None
    }
    pub fn stats(&self) -> CacheStats {
        let mut s = CacheStats::default();
        for e in self.map.values() {
            s.total_unique_chunks += 1;
            s.total_chunks += e.refcount as u64;
            s.unique_size += e.size as u64;
            s.unique_csize += e.csize as u64;
            s.total_size += e.size as u64 * e.refcount as u64;
            s.total_csize += e.csize as u64 * e.refcount as u64;
        }
        s
    }

    fn encode(&self, magic: &[u8; 8], manifest: Option<&ObjectId>) -> Vec<u8> {
        let mut out = Vec::with_capacity(56 + self.map.len() * 44);
        out.extend_from_slice(magic);
        out.extend_from_slice(&manifest.copied().unwrap_or_default().0);
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        for (id, e) in &self.map {
            out.extend_from_slice(&id.0);
            out.extend_from_slice(&e.refcount.to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            out.extend_from_slice(&e.csize.to_le_bytes());
        }
        let h = xxh64(&out, 0);
        out.extend_from_slice(&h.to_le_bytes());
        out
    }

    fn decode(data: &[u8], magic: &[u8; 8]) -> Option<(ObjectId, ChunkIndex)> {
        if data.len() < 56 || &data[..8] != magic {
            return None;
        }
        let (body, tail) = data.split_at(data.len() - 8);
        if xxh64(body, 0).to_le_bytes() != tail {
            return None;
        }
        let manifest = ObjectId(body[8..40].try_into().ok()?);
        let n = u64::from_le_bytes(body[40..48].try_into().ok()?) as usize;
        let entries = &body[48..];
        if entries.len() != n.checked_mul(44)? {
            return None;
        }
        let mut map = IdMap::with_capacity_and_hasher(n, Default::default());
        for e in entries.chunks_exact(44) {
            map.insert(
                ObjectId(e[..32].try_into().ok()?),
                ChunkEntry {
                    refcount: u32::from_le_bytes(e[32..36].try_into().ok()?),
                    size: u32::from_le_bytes(e[36..40].try_into().ok()?),
                    csize: u32::from_le_bytes(e[40..44].try_into().ok()?),
                },
            );
        }
        Some((manifest, ChunkIndex { map }))
    }
}

const CHUNKS_MAGIC: &[u8; 8] = b"RBORGCI1";
const ARCHIVE_MAGIC: &[u8; 8] = b"RBORGAC1";
const SIZES_MAGIC: &[u8; 8] = b"RBORGAS1";

/// `magic | body | xxh64(magic | body)`: a torn or foreign file reads as absent.
fn checked_file(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(body);
    let h = xxh64(&out, 0);
    out.extend_from_slice(&h.to_le_bytes());
    out
}

fn checked_body<'a>(data: &'a [u8], magic: &[u8; 8]) -> Option<&'a [u8]> {
    if data.len() < 16 || &data[..8] != magic {
        return None;
    }
    let (head, tail) = data.split_at(data.len() - 8);
    (xxh64(head, 0).to_le_bytes() == tail).then_some(&head[8..])
}

/// The rborg cache directory of a repository.
pub fn cache_path(repo_id: &ObjectId) -> PathBuf {
    crate::dirs::cache_dir().join("rborg").join(repo_id.hex())
}

pub struct Cache {
    pub path: PathBuf,
    pub chunks: ChunkIndex,
    manifest_id: ObjectId,
    /// Original and compressed size of each archive (from its metadata): borg 1.2+ reports the
    /// sum of these as "All archives", not the chunk-index totals, so part files and metadata
    /// do not count.
    sizes: IdMap<(u64, u64)>,
}

fn io_err(p: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |e| ArchiveError::io(p, e)
}

/// Collects the chunk references of one archive: its own object, its item chunks, and every
/// item's content chunks.
pub fn archive_chunk_refs(repo: &dyn Repository, key: &Key, id: &ObjectId) -> Result<ChunkIndex> {
    let mut idx = ChunkIndex::default();
    let env = repo.get(id)?;
    let csize = env.len() as u32;
    let data = open_object(key, id, env, None)?;
    idx.add(*id, data.len() as u32, csize, 1);
    let meta = ArchiveMeta::unpack(key, &data)?;
    // item chunks: sizes come from fetching them (we need their plaintext anyway)
    let mut reader_ids = Vec::with_capacity(meta.items.len());
    for (iid, env) in meta.items.iter().zip(repo.get_many(meta.items.clone())) {
        let env = env?;
        let csize = env.len() as u32;
        let plain = open_object(key, iid, env, None)?;
        idx.add(*iid, plain.len() as u32, csize, 1);
        reader_ids.push(*iid);
    }
    for item in ItemReader::new(repo, key, &reader_ids) {
        let item: Item = item?;
        if let Some(chunks) = &item.chunks {
            for c in chunks {
                idx.add(c.id, c.size, c.csize, 1);
            }
        }
    }
    Ok(idx)
}

impl Cache {
    /// Opens (and if needed rebuilds) the chunk index for the current manifest.
    pub fn open(repo: &dyn Repository, key: &Key, manifest: &Manifest) -> Result<Cache> {
        let path = cache_path(&repo.id());
        std::fs::create_dir_all(&path).map_err(io_err(&path))?;
        let _ = crate::dirs::ensure_cache_dir();
        let chunks_file = path.join("chunks");
        if let Ok(data) = std::fs::read(&chunks_file) {
            if let Some((mid, chunks)) = ChunkIndex::decode(&data, CHUNKS_MAGIC) {
                if mid == manifest.id {
                    let mut cache = Cache {
                        path,
                        chunks,
                        manifest_id: mid,
                        sizes: IdMap::default(),
                    };
                    cache.load_sizes(repo, key, manifest)?;
                    return Ok(cache);
                }
            }
        }
        let mut cache = Cache {
            path,
            chunks: ChunkIndex::default(),
            manifest_id: ObjectId::default(),
            sizes: IdMap::default(),
        };
        cache.sync(repo, key, manifest)?;
        cache.load_sizes(repo, key, manifest)?;
        Ok(cache)
    }

    /// Loads the per-archive sizes, fetching the metadata of archives not seen before.
    fn load_sizes(&mut self, repo: &dyn Repository, key: &Key, manifest: &Manifest) -> Result<()> {
        let f = self.path.join("archive-sizes");
        let mut known: IdMap<(u64, u64)> = IdMap::default();
        if let Ok(data) = std::fs::read(&f) {
            if let Some(body) = checked_body(&data, SIZES_MAGIC) {
                for rec in body.chunks_exact(48) {
                    let mut id = [0u8; 32];
                    id.copy_from_slice(&rec[..32]);
                    let osize = u64::from_le_bytes(rec[32..40].try_into().unwrap());
                    let csize = u64::from_le_bytes(rec[40..48].try_into().unwrap());
                    known.insert(ObjectId(id), (osize, csize));
                }
            }
        }
        let mut changed = false;
        for entry in manifest.archives.values() {
            match known.get(&entry.id) {
                Some(v) => {
                    self.sizes.insert(entry.id, *v);
                }
                None => {
                    let meta = ArchiveMeta::load(repo, key, &entry.id)?;
                    self.sizes.insert(entry.id, (meta.size, meta.csize));
                    changed = true;
                }
            }
        }
        if changed || known.len() != self.sizes.len() {
            self.save_sizes()?;
        }
        Ok(())
    }

    fn save_sizes(&self) -> Result<()> {
        let f = self.path.join("archive-sizes");
        let mut body = Vec::with_capacity(self.sizes.len() * 48);
        for (id, (o, c)) in &self.sizes {
            body.extend_from_slice(&id.0);
            body.extend_from_slice(&o.to_le_bytes());
            body.extend_from_slice(&c.to_le_bytes());
        }
        save_file(&f, &checked_file(SIZES_MAGIC, &body)).map_err(io_err(&f))
    }

    /// Records the sizes of an archive just written (create, recreate, import-tar).
    pub fn remember_sizes(&mut self, archive_id: &ObjectId, osize: u64, csize: u64) -> Result<()> {
        self.sizes.insert(*archive_id, (osize, csize));
        self.save_sizes()
    }

    fn archives_dir(&self) -> PathBuf {
        self.path.join("archives")
    }

    /// Rebuilds the chunk index from the archives in the manifest.
    fn sync(&mut self, repo: &dyn Repository, key: &Key, manifest: &Manifest) -> Result<()> {
        let dir = self.archives_dir();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let wanted: HashSet<ObjectId> = manifest.archives.values().map(|e| e.id).collect();
        // forget archives that are gone
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if ObjectId::from_hex(&name).is_none_or(|id| !wanted.contains(&id)) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let total = manifest.archives.len();
        let mut progress = crate::log::ProgressPercent::new(
            total as u64,
            "%3.0f%% Syncing chunks cache.",
            "cache.sync",
        );
        let mut index = ChunkIndex::default();
        for (i, entry) in manifest.archives.values().enumerate() {
            progress.show(i as u64);
            let f = dir.join(entry.id.hex());
            let refs = match std::fs::read(&f)
                .ok()
                .and_then(|d| ChunkIndex::decode(&d, ARCHIVE_MAGIC))
            {
                Some((_, r)) => r,
                None => {
                    let r = archive_chunk_refs(repo, key, &entry.id)?;
                    save_file(&f, &r.encode(ARCHIVE_MAGIC, None)).map_err(io_err(&f))?;
                    r
                }
            };
            for (id, e) in refs.map {
                index.add(id, e.size, e.csize, e.refcount);
            }
        }
        progress.finish();
        self.chunks = index;
        self.manifest_id = manifest.id;
        self.save()
    }

    /// Remembers one archive's chunk references (after `create`, so a later sync is cheap).
    pub fn remember_archive(&self, archive_id: &ObjectId, refs: &ChunkIndex) -> Result<()> {
        let dir = self.archives_dir();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let f = dir.join(archive_id.hex());
        save_file(&f, &refs.encode(ARCHIVE_MAGIC, None)).map_err(io_err(&f))
    }

    pub fn forget_archive(&mut self, archive_id: &ObjectId) {
        let _ = std::fs::remove_file(self.archives_dir().join(archive_id.hex()));
        if self.sizes.remove(archive_id).is_some() {
            let _ = self.save_sizes();
        }
    }

    /// Persists the chunk index for the manifest now in the repository.
    pub fn commit(&mut self, manifest: &Manifest) -> Result<()> {
        self.manifest_id = manifest.id;
        self.save()
    }

    fn save(&self) -> Result<()> {
        let f = self.path.join("chunks");
        save_file(
            &f,
            &self.chunks.encode(CHUNKS_MAGIC, Some(&self.manifest_id)),
        )
        .map_err(io_err(&f))
    }

    pub fn stats(&self) -> CacheStats {
        let mut s = self.chunks.stats();
        s.total_size = self.sizes.values().map(|v| v.0).sum();
        s.total_csize = self.sizes.values().map(|v| v.1).sum();
        s
    }

    /// Deletes the whole cache of a repository.
    pub fn destroy(repo_id: &ObjectId) -> Result<()> {
        let p = cache_path(repo_id);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(io_err(&p))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_encoding_and_stats() {
        let mut idx = ChunkIndex::default();
        idx.add(ObjectId([1; 32]), 100, 60, 1);
        idx.add(ObjectId([1; 32]), 100, 60, 2);
        idx.add(ObjectId([2; 32]), 10, 50, 1);
        let s = idx.stats();
        assert_eq!((s.total_chunks, s.total_unique_chunks), (4, 2));
        assert_eq!(
            (s.total_size, s.unique_size, s.unique_csize),
            (310, 110, 110)
        );
        let enc = idx.encode(CHUNKS_MAGIC, Some(&ObjectId([9; 32])));
        let (m, back) = ChunkIndex::decode(&enc, CHUNKS_MAGIC).unwrap();
        assert_eq!(m, ObjectId([9; 32]));
        assert_eq!(back.map, idx.map);
        let mut bad = enc.clone();
        bad[60] ^= 1;
        assert!(ChunkIndex::decode(&bad, CHUNKS_MAGIC).is_none());
        assert!(idx.decref(&ObjectId([2; 32])).is_some());
        assert!(!idx.contains(&ObjectId([2; 32])));
    }
}
