//! What a checkpoint needs to know about files being read: which chunks each has stored so far.
//!
//! A checkpoint commits the repository while files are still being read in parallel. Every
//! chunk stored by then must be referenced by the checkpoint archive (borg's check calls an
//! unreferenced object an orphan, an error). So each file being read keeps its chunk list
//! here; stores happen under the read side of the pipeline's gate and are recorded under it,
//! and a checkpoint holds the write side: then every stored chunk is in some list, and chunks
//! handed to a worker but not yet stored are stored by the checkpoint itself, so each list is
//! a gap-free prefix of its file.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::archive::chunkstore::ChunkStore;
use crate::archive::item::{ChunkRef, Item};
use crate::archive::{ArchiveError, Result};

/// Plaintext of a chunk handed to a worker; taken by whoever stores it first.
pub type PendingChunk = Mutex<Option<Vec<u8>>>;

pub struct FileProgress {
    /// The file's item without content: the template of its part items.
    template: Item,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Chunks in file order; `None` while handed to a worker and not yet stored.
    chunks: Vec<Option<ChunkRef>>,
    pending: Vec<(usize, Arc<PendingChunk>)>,
    /// Stored bytes of chunks new to the repository.
    new_bytes: u64,
    error: Option<ArchiveError>,
    /// Chunks already in part items of the archive, and the next part number.
    in_parts: usize,
    next_part: u32,
}

impl FileProgress {
    pub fn new(template: &Item) -> FileProgress {
        let mut template = template.clone();
        template.chunks = None;
        template.size = None;
        // borg decides this only once the file is complete; its part items never carry it
        template.hardlink_master = None;
        FileProgress {
            template,
            inner: Mutex::new(Inner {
                next_part: 1,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a chunk stored by the reader itself (call under the gate's read side).
    pub fn push_stored(&self, r: ChunkRef, new: bool) {
        let mut g = self.lock();
        g.chunks.push(Some(r));
        if new {
            g.new_bytes += r.csize as u64;
        }
    }

    /// Appends a chunk a worker will store; returns its position and the shared data.
    pub fn push_pending(&self, data: Vec<u8>) -> (usize, Arc<PendingChunk>) {
        let p = Arc::new(Mutex::new(Some(data)));
        let mut g = self.lock();
        let i = g.chunks.len();
        g.chunks.push(None);
        g.pending.push((i, p.clone()));
        (i, p)
    }

    /// Records the outcome of storing pending chunk `i` (call under the gate's read side).
    pub fn record(&self, i: usize, r: Result<(ChunkRef, bool)>) {
        let mut g = self.lock();
        g.pending.retain(|(j, _)| *j != i);
        match r {
            Ok((r, new)) => {
                g.chunks[i] = Some(r);
                if new {
                    g.new_bytes += r.csize as u64;
                }
            }
            Err(e) => {
                g.error.get_or_insert(e);
            }
        }
    }

    pub fn fail(&self, e: ArchiveError) {
        self.lock().error.get_or_insert(e);
    }

    /// Stores the chunks still waiting for a worker (the gate's write side must be held, so
    /// no worker is storing one right now).
    pub fn store_pending(&self, store: &ChunkStore) -> Result<()> {
        let pending = std::mem::take(&mut self.lock().pending);
        for (i, p) in pending {
            let data = p.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(data) = data {
                let r = store.store(&data)?;
                self.record(i, Ok(r));
            }
        }
        Ok(())
    }

    /// Drops the references of a file that will not be archived (read error), so its
    /// chunks do not stay behind unreferenced. Call under the gate's read side.
    pub fn abandon(&self, store: &ChunkStore) -> Result<()> {
        let chunks = std::mem::take(&mut self.lock().chunks);
        for c in chunks.into_iter().flatten() {
            store.decref(&c.id)?;
        }
        Ok(())
    }

    /// The complete chunk list once reading ended, and the bytes new to the repository; the
    /// list stays here for checkpoints until the file's item is emitted.
    pub fn finish(&self) -> Result<(Vec<ChunkRef>, u64)> {
        let mut g = self.lock();
        if let Some(e) = g.error.take() {
            return Err(e);
        }
        let chunks = g
            .chunks
            .iter()
            .map(|c| c.ok_or_else(|| ArchiveError::Other("chunk of a file never stored".into())))
            .collect::<Result<Vec<_>>>()?;
        Ok((chunks, g.new_bytes))
    }

    /// The stored chunks not yet in a part item, as part item number N; `commit` moves them
    /// into the archive's parts (only the file at the front of the archive order does that,
    /// as borg's sequential reader would). Call with the gate's write side held.
    pub fn part(&self, commit: bool) -> Option<Item> {
        let mut g = self.lock();
        let from = g.in_parts;
        let chunks: Vec<ChunkRef> = g.chunks[from..].iter().map_while(|c| *c).collect();
        if chunks.is_empty() {
            return None;
        }
        let n = g.next_part;
        if commit {
            g.in_parts += chunks.len();
            g.next_part += 1;
        }
        Some(part_item(&self.template, chunks, n))
    }

    /// After the file's item is complete: its remaining chunks as the last part item, if the
    /// file already has parts (so its parts concatenate to the whole file, as in borg).
    pub fn last_part(&self, item: &Item) -> Option<Item> {
        let g = self.lock();
        if g.next_part == 1 {
            return None;
        }
        let chunks = item.chunks.as_deref().unwrap_or_default();
        let rest = chunks.get(g.in_parts..).unwrap_or_default();
        if rest.is_empty() {
            return None;
        }
        Some(part_item(&self.template, rest.to_vec(), g.next_part))
    }
}

/// `<path>.borg_part_<n>` holding `chunks`, with its size recomputed from them.
pub fn part_item(template: &Item, chunks: Vec<ChunkRef>, n: u32) -> Item {
    let mut item = template.clone();
    item.hardlink_master = None;
    item.path
        .extend_from_slice(format!(".borg_part_{n}").as_bytes());
    item.part = Some(n);
    item.size = Some(chunks.iter().map(|c| c.size as u64).sum());
    item.chunks = Some(chunks);
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::ObjectId;

    fn r(b: u8, size: u32) -> ChunkRef {
        ChunkRef {
            id: ObjectId([b; 32]),
            size,
            csize: size / 2,
        }
    }

    #[test]
    fn parts_cover_the_stored_prefix_and_concatenate_to_the_file() {
        let item = Item {
            path: b"big".to_vec(),
            mode: 0o100644,
            ..Item::default()
        };
        let p = FileProgress::new(&item);
        p.push_stored(r(1, 10), true);
        let (i, _data) = p.push_pending(vec![0; 20]);
        p.push_stored(r(3, 30), false);
        // chunk 1 not stored yet: the part stops before it
        let part = p.part(true).expect("part 1");
        assert_eq!(part.path, b"big.borg_part_1");
        assert_eq!(part.part, Some(1));
        assert_eq!(part.size, Some(10));
        p.record(i, Ok((r(2, 20), true)));
        let transient = p.part(false).expect("part 2 preview");
        assert_eq!(transient.chunks.as_ref().map(Vec::len), Some(2));
        let part2 = p.part(true).expect("part 2");
        assert_eq!(part2.path, b"big.borg_part_2");
        assert_eq!(part2.size, Some(50));
        assert!(p.part(true).is_none());
        let (chunks, new_bytes) = p.finish().expect("complete");
        assert_eq!(chunks, vec![r(1, 10), r(2, 20), r(3, 30)]);
        assert_eq!(new_bytes, 5 + 10);
        let mut whole = item.clone();
        whole.chunks = Some(chunks);
        // everything is in parts already: no last part
        assert!(p.last_part(&whole).is_none());
    }

    #[test]
    fn last_part_holds_the_rest() {
        let p = FileProgress::new(&Item::default());
        p.push_stored(r(1, 10), true);
        assert!(p.part(true).is_some());
        p.push_stored(r(2, 20), true);
        let (chunks, _) = p.finish().expect("complete");
        let whole = Item {
            chunks: Some(chunks),
            ..Item::default()
        };
        let last = p.last_part(&whole).expect("last part");
        assert_eq!(last.part, Some(2));
        assert_eq!(last.chunks, Some(vec![r(2, 20)]));
        // a file without parts gets none at its end
        let q = FileProgress::new(&Item::default());
        assert!(q.last_part(&whole).is_none());
    }

    #[test]
    fn a_failed_store_fails_the_file() {
        let p = FileProgress::new(&Item::default());
        let (i, _) = p.push_pending(vec![1]);
        p.record(i, Err(ArchiveError::Other("disk full".into())));
        assert!(p.finish().is_err());
    }
}
