//! Storing chunks with deduplication, shared by parallel workers: hash, look the id up in the
//! chunk index, and only if it is new compress, seal and put it. Two workers meeting the same
//! new chunk at once store it once: the first claims it, the second waits for its stored size.

use std::sync::{Condvar, Mutex};

use super::cache::{ChunkEntry, ChunkIndex};
use super::item::ChunkRef;
use super::Result;
use crate::compress::Compression;
use crate::crypto::Key;
use crate::repo::{ObjectId, Repository};

/// Per-archive counters (borg's `Statistics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Original (plaintext) bytes of all chunk references.
    pub osize: u64,
    /// Stored bytes of all chunk references.
    pub csize: u64,
    /// Stored bytes of chunks that were new to the repository.
    pub usize: u64,
    pub nfiles: u64,
    pub osize_parts: u64,
    pub csize_parts: u64,
    pub nfiles_parts: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.osize += o.osize;
        self.csize += o.csize;
        self.usize += o.usize;
        self.nfiles += o.nfiles;
        self.osize_parts += o.osize_parts;
        self.csize_parts += o.csize_parts;
        self.nfiles_parts += o.nfiles_parts;
    }
}

pub struct ChunkStore<'a> {
    pub repo: &'a dyn Repository,
    pub key: &'a Key,
    pub compression: Compression,
    index: Mutex<ChunkIndex>,
    stored: Condvar,
    /// References this run added (for the per-archive chunk list and rollback of the cache).
    added: Mutex<ChunkIndex>,
}

thread_local! {
    /// Per-thread envelope buffer, reused for every chunk this thread stores.
    static ENVELOPE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A buffer grown beyond this (by an unusually large object) is not kept.
const KEEP_BUFFER: usize = 12 << 20;

/// csize 0 marks a chunk being stored right now (real envelopes are never empty).
const PENDING: u32 = 0;

impl<'a> ChunkStore<'a> {
    pub fn new(
        repo: &'a dyn Repository,
        key: &'a Key,
        compression: Compression,
        index: ChunkIndex,
    ) -> Self {
        ChunkStore {
            repo,
            key,
            compression,
            index: Mutex::new(index),
            stored: Condvar::new(),
            added: Mutex::new(ChunkIndex::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChunkIndex> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note_added(&self, id: ObjectId, size: u32, csize: u32) {
        self.added
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(id, size, csize, 1);
    }

    /// Adds a reference to a chunk that must already exist (files-cache hits).
    pub fn incref(&self, id: &ObjectId) -> Option<ChunkRef> {
        let mut idx = self.lock();
        let e = idx.map.get_mut(id)?;
        if e.csize == PENDING {
            return None;
        }
        e.refcount = e.refcount.saturating_add(1);
        let r = ChunkRef {
            id: *id,
            size: e.size,
            csize: e.csize,
        };
        drop(idx);
        self.note_added(*id, r.size, r.csize);
        Some(r)
    }

    /// References to every one of `ids` (an unchanged file's chunks) under one lock, or
    /// `None`, taking none, when one is unknown or still being stored.
    pub fn incref_all(&self, ids: &[ObjectId]) -> Option<Vec<ChunkRef>> {
        let mut idx = self.lock();
        let mut refs = Vec::with_capacity(ids.len());
        for id in ids {
            let e = idx.map.get(id).filter(|e| e.csize != PENDING)?;
            refs.push(ChunkRef {
                id: *id,
                size: e.size,
                csize: e.csize,
            });
        }
        for id in ids {
            let e = idx.map.get_mut(id).expect("checked above");
            e.refcount = e.refcount.saturating_add(1);
        }
        drop(idx);
        let mut added = self.added.lock().unwrap_or_else(|e| e.into_inner());
        for r in &refs {
            added.add(r.id, r.size, r.csize, 1);
        }
        Some(refs)
    }

    /// Stores (or references) one chunk of plaintext; returns its reference and whether it
    /// was new to the repository.
    pub fn store(&self, data: &[u8]) -> Result<(ChunkRef, bool)> {
        let id = self.key.id_hash(data);
        self.store_with_id(id, data)
    }

    pub fn store_with_id(&self, id: ObjectId, data: &[u8]) -> Result<(ChunkRef, bool)> {
        {
            let mut idx = self.lock();
            loop {
                match idx.map.get_mut(&id) {
                    Some(e) if e.csize != PENDING => {
                        e.refcount = e.refcount.saturating_add(1);
                        let r = ChunkRef {
                            id,
                            size: e.size,
                            csize: e.csize,
                        };
                        drop(idx);
                        self.note_added(id, r.size, r.csize);
                        return Ok((r, false));
                    }
                    Some(_) => {
                        idx = self.stored.wait(idx).unwrap_or_else(|e| e.into_inner());
                    }
                    None => {
                        idx.map.insert(
                            id,
                            ChunkEntry {
                                refcount: 0,
                                size: data.len() as u32,
                                csize: PENDING,
                            },
                        );
                        break;
                    }
                }
            }
        }
        // We claimed it: compress, seal and store outside the lock, in this thread's buffer
        // (no per-chunk allocations; the bytes stay in cache from compression to the put).
        let result = ENVELOPE.with(|buf| {
            let mut buf = buf.borrow_mut();
            let head = self.key.envelope_header_len();
            let n = self.compression.compress_reusing(data, &mut buf, head);
            let env = &mut buf[..head + n];
            self.key.seal_in_place(self.repo, env)?;
            self.repo.put(&id, env)?;
            let csize = env.len() as u32;
            if buf.len() > KEEP_BUFFER {
                *buf = Vec::new();
            }
            Ok(csize)
        });
        let mut idx = self.lock();
        match result {
            Ok(csize) => {
                let e = idx.map.get_mut(&id).expect("claimed entry");
                e.csize = csize;
                e.refcount = e.refcount.saturating_add(1);
                drop(idx);
                self.stored.notify_all();
                self.note_added(id, data.len() as u32, csize);
                Ok((
                    ChunkRef {
                        id,
                        size: data.len() as u32,
                        csize,
                    },
                    true,
                ))
            }
            Err(e) => {
                idx.map.remove(&id);
                drop(idx);
                self.stored.notify_all();
                Err(e)
            }
        }
    }

    /// Drops one reference; deletes the object from the repository when none remain.
    pub fn decref(&self, id: &ObjectId) -> Result<()> {
        let gone = self.lock().decref(id).is_some();
        let mut added = self.added.lock().unwrap_or_else(|e| e.into_inner());
        added.decref(id);
        drop(added);
        if gone {
            self.repo.delete(id)?;
        }
        Ok(())
    }

    /// The index with everything this run stored.
    pub fn into_index(self) -> (ChunkIndex, ChunkIndex) {
        (
            self.index.into_inner().unwrap_or_else(|e| e.into_inner()),
            self.added.into_inner().unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// References added so far (taken, e.g. per archive).
    pub fn take_added(&self) -> ChunkIndex {
        std::mem::take(&mut *self.added.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn index_snapshot_stats(&self) -> super::cache::CacheStats {
        self.lock().stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incref_all_takes_every_reference_or_none() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("repo");
        let loc = crate::repo::location::Location::parse(p.to_str().unwrap()).unwrap();
        let opts = crate::repo::OpenOptions {
            create: true,
            exclusive: Some(true),
            ..Default::default()
        };
        let repo = crate::repo::open(&loc, &opts).unwrap();
        let key = Key::plaintext();
        let store = ChunkStore::new(&*repo, &key, Compression::None, ChunkIndex::default());
        let (a, _) = store.store(b"one").unwrap();
        let (b, _) = store.store(b"two").unwrap();
        let unknown = key.id_hash(b"three");
        // a chunk another worker is storing right now
        let pending = key.id_hash(b"four");
        store.lock().map.insert(
            pending,
            ChunkEntry {
                refcount: 0,
                size: 4,
                csize: PENDING,
            },
        );
        assert_eq!(store.incref_all(&[a.id, pending]), None);
        assert_eq!(store.incref_all(&[b.id, unknown]), None);
        assert_eq!(store.incref_all(&[a.id, b.id, a.id]), Some(vec![a, b, a]));
        assert_eq!(store.incref_all(&[]), Some(vec![]));
        let (index, added) = store.into_index();
        // one reference from storing, two more taken; nothing from the refused calls
        assert_eq!(index.get(&a.id).unwrap().refcount, 3);
        assert_eq!(index.get(&b.id).unwrap().refcount, 2);
        assert_eq!(added.get(&a.id).unwrap().refcount, 3);
        assert_eq!(added.get(&b.id).unwrap().refcount, 2);
        assert_eq!(index.get(&pending).unwrap().refcount, 0);
    }
}
