//! The item stream: items packed back to back, cut into chunks by the item chunker
//! (buzhash 15,19,17,4095, same seed) and stored as ordinary objects.

use crate::chunker::{Chunker, ChunkerParams};
use crate::compress::Compression;
use crate::crypto::Key;
use crate::msgpack::{DecodeError, Decoder};
use crate::repo::{ObjectId, Repository};

use super::item::Item;
use super::meta::{open_object, store_object};
use super::{ArchiveError, Result};

/// Stores one item-stream chunk; returns its id, plaintext size and stored size.
pub type StoreFn<'a> = dyn FnMut(&[u8]) -> Result<(ObjectId, u32, u32)> + 'a;

type Fetch<'a> = Box<dyn Iterator<Item = (ObjectId, crate::repo::GetResult)> + 'a>;

/// Reads the items of an archive in order, fetching item chunks ahead.
pub struct ItemReader<'a> {
    key: &'a Key,
    fetch: Fetch<'a>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<'a> ItemReader<'a> {
    pub fn new(repo: &'a dyn Repository, key: &'a Key, ids: &[ObjectId]) -> ItemReader<'a> {
        let idv = ids.to_vec();
        let fetch = Box::new(idv.clone().into_iter().zip(repo.get_many(idv)));
        ItemReader {
            key,
            fetch,
            buf: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    fn refill(&mut self) -> Result<bool> {
        match self.fetch.next() {
            None => Ok(false),
            Some((id, env)) => {
                let data = open_object(self.key, &id, env?, None)?;
                if self.pos > 0 {
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                }
                self.buf.extend_from_slice(&data);
                Ok(true)
            }
        }
    }
}

impl Iterator for ItemReader<'_> {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        if self.done {
            return None;
        }
        loop {
            let mut d = Decoder::new(&self.buf[self.pos..]);
            match d.next_value() {
                Ok(Some(v)) => {
                    self.pos += d.position();
                    return Some(
                        Item::from_value(v)
                            .map_err(|e| ArchiveError::Corrupt(format!("item: {e}"))),
                    );
                }
                Ok(None) | Err(DecodeError::Incomplete) => match self.refill() {
                    Ok(true) => continue,
                    Ok(false) => {
                        self.done = true;
                        if self.pos < self.buf.len() {
                            return Some(Err(ArchiveError::Corrupt(
                                "item stream ends inside an item".into(),
                            )));
                        }
                        return None;
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
                Err(e) => {
                    self.done = true;
                    return Some(Err(ArchiveError::Corrupt(format!("item stream: {e}"))));
                }
            }
        }
    }
}

/// borg's ChunkBuffer: packs items and stores the stream in content-defined chunks, flushing
/// whenever more than 8 MiB are buffered.
#[derive(Clone)]
pub struct ItemWriter {
    chunker: Chunker,
    buf: Vec<u8>,
    pub chunks: Vec<ObjectId>,
    /// (size, csize) of newly stored chunks: metadata statistics.
    pub stored: Vec<(ObjectId, u32, u32)>,
}

const BUFFER_SIZE: usize = 8 * 1024 * 1024;

impl ItemWriter {
    pub fn new(seed: i32) -> ItemWriter {
        ItemWriter {
            chunker: Chunker::new(ChunkerParams::ITEMS, seed).expect("valid item chunker params"),
            buf: Vec::new(),
            chunks: Vec::new(),
            stored: Vec::new(),
        }
    }

    pub fn add(&mut self, item: &Item, store: &mut StoreFn<'_>) -> Result<()> {
        item.pack_into(&mut self.buf);
        if self.buf.len() > BUFFER_SIZE {
            self.flush(false, store)?;
        }
        Ok(())
    }

    /// Stores complete chunks; unless `final_`, keeps the last piece (its cut may move).
    pub fn flush(&mut self, final_: bool, store: &mut StoreFn<'_>) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let lens = self.chunker.chunk_lengths(&self.buf);
        let keep_last = !final_ && lens.len() > 1;
        let store_n = if keep_last {
            lens.len() - 1
        } else {
            lens.len()
        };
        let mut off = 0;
        for &l in &lens[..store_n] {
            let r = store(&self.buf[off..off + l])?;
            self.chunks.push(r.0);
            self.stored.push(r);
            off += l;
        }
        self.buf.drain(..off);
        Ok(())
    }

    /// Convenience: a store function writing straight to the repository.
    pub fn store_fn<'a>(
        repo: &'a dyn Repository,
        key: &'a Key,
        compression: &'a Compression,
    ) -> impl FnMut(&[u8]) -> Result<(ObjectId, u32, u32)> + 'a {
        move |data| store_object(repo, key, compression, data)
    }
}
