//! The archive part of `check`: every archive's metadata and TAM, every item, every referenced
//! chunk present (and, with `verify_data`, every object decrypting to its id); orphaned
//! objects. `repair` replaces missing file chunks by all-zero chunks of the same size
//! (keeping `chunks_healthy` so a later create can heal them), drops archives whose
//! metadata is unusable or unauthenticated, and deletes orphans.

use std::collections::HashSet;

use rayon::prelude::*;

use super::item::{ChunkRef, Item};
use super::itemstream::{ItemReader, ItemWriter};
use super::manifest::{ArchiveEntry, Manifest};
use super::meta::{open_object, ArchiveMeta, TamStatusKind};
use super::session::Session;
use super::Result;
use crate::compress::Compression;
use crate::repo::{IdMap, ObjectId, LIST_SCAN_LIMIT};

const LOGGER: &str = "borg.archive";

pub struct CheckOptions {
    pub repair: bool,
    pub verify_data: bool,
    /// Archive names to check (None = all).
    pub archives: Option<Vec<Vec<u8>>>,
}

pub struct ArchiveChecker<'s> {
    s: &'s mut Session,
    pub error_found: bool,
    /// Every object id in the repository → references found.
    refs: IdMap<u32>,
    /// Objects a repair replaced (old archive objects and item chunks): deleted without being
    /// reported as orphans.
    superseded: HashSet<ObjectId>,
}

fn err(msg: &str) {
    crate::log::error(LOGGER, msg);
}

impl<'s> ArchiveChecker<'s> {
    pub fn new(s: &'s mut Session) -> Self {
        ArchiveChecker {
            s,
            error_found: false,
            refs: IdMap::default(),
            superseded: HashSet::new(),
        }
    }

    fn report(&mut self, msg: &str) {
        self.error_found = true;
        err(msg);
    }

    fn init_chunks(&mut self) -> Result<()> {
        let mut marker = None;
        loop {
            let ids = self.s.repo.list(Some(LIST_SCAN_LIMIT), marker.as_ref())?;
            if ids.is_empty() {
                break;
            }
            marker = ids.last().copied();
            for id in ids {
                self.refs.insert(id, 0);
            }
        }
        Ok(())
    }

    /// Decrypts every object in parallel and checks it against its id.
    fn verify_data(&mut self) -> Result<Vec<ObjectId>> {
        crate::log::info(
            LOGGER,
            "Starting cryptographic data integrity verification...",
        );
        let mut ids: Vec<ObjectId> = self.refs.keys().copied().collect();
        ids.sort_unstable();
        let total = ids.len() as u64;
        let mut progress =
            crate::log::ProgressPercent::new(total, "Verifying data %6.2f%%", "check.verify_data");
        let repo = &*self.s.repo;
        let key = &self.s.key;
        let mut defects = Vec::new();
        let mut messages = Vec::new();
        let mut done = 0u64;
        for batch in ids.chunks(256) {
            let results: Vec<(ObjectId, Option<String>)> = batch
                .par_iter()
                .map(|id| {
                    let r = repo.get(id).map_err(|e| e.to_string()).and_then(|env| {
                        let check_id = (*id != ObjectId::MANIFEST).then_some(id);
                        match check_id {
                            Some(i) => open_object(key, i, &env, None)
                                .map(|_| ())
                                .map_err(|e| e.to_string()),
                            None => key.open(None, &env).map(|_| ()).map_err(|e| e.to_string()),
                        }
                    });
                    (*id, r.err())
                })
                .collect();
            for (id, e) in results {
                if let Some(e) = e {
                    messages.push(format!("chunk {}, integrity error: {e}", id.hex()));
                    defects.push(id);
                }
            }
            done += batch.len() as u64;
            progress.show(done);
        }
        progress.finish();
        for m in messages {
            self.report(&m);
        }
        if !defects.is_empty() {
            crate::log::info(LOGGER, &format!("Found {} defect chunks.", defects.len()));
        }
        crate::log::info(
            LOGGER,
            &format!("Finished cryptographic data integrity verification, verified {total} chunks with {} integrity errors.", defects.len()),
        );
        Ok(defects)
    }

    fn add_ref(&mut self, id: &ObjectId) -> bool {
        match self.refs.get_mut(id) {
            Some(n) => {
                *n += 1;
                true
            }
            None => false,
        }
    }

    /// Checks one archive; returns a replacement item list when repair changed items.
    fn check_archive(
        &mut self,
        name: &[u8],
        entry: &ArchiveEntry,
        repair: bool,
    ) -> Result<ArchiveOutcome> {
        let sname = String::from_utf8_lossy(name).into_owned();
        if !self.refs.contains_key(&entry.id) {
            self.report(&format!(
                "Archive metadata block {} is missing!",
                entry.id.hex()
            ));
            return Ok(ArchiveOutcome::Drop);
        }
        let data = match open_object(&self.s.key, &entry.id, &self.s.repo.get(&entry.id)?, None) {
            Ok(d) => d,
            Err(e) => {
                self.report(&format!(
                    "Archive metadata block {} is corrupted: {e}",
                    entry.id.hex()
                ));
                return Ok(ArchiveOutcome::Drop);
            }
        };
        let meta = match ArchiveMeta::unpack(&self.s.key, &data) {
            Ok(m) => m,
            Err(e) => {
                self.report(&format!(
                    "Archive metadata block {} is corrupted: {e}",
                    entry.id.hex()
                ));
                return Ok(ArchiveOutcome::Drop);
            }
        };
        if self.s.key.tam_required {
            match meta.tam {
                Some(TamStatusKind::Verified) => {}
                Some(TamStatusKind::Missing) => {
                    self.report(&format!("Archive {sname} is unauthenticated, but it is required for this repository."));
                    return Ok(ArchiveOutcome::Drop);
                }
                _ => {
                    self.report(&format!("Archive TAM authentication issue for archive {sname}: Archive authentication did not verify"));
                    return Ok(ArchiveOutcome::Drop);
                }
            }
        }
        self.add_ref(&entry.id);
        let mut changed = false;
        let mut items = Vec::new();
        // item metadata chunks: skip missing ones (their items are lost)
        let mut present = Vec::new();
        for (i, id) in meta.items.iter().enumerate() {
            if self.add_ref(id) {
                present.push(*id);
            } else {
                self.report(&format!(
                    "{sname}: item metadata chunk missing [chunk: {i:06}_{}]",
                    id.hex()
                ));
                changed = true;
            }
        }
        let zero_cache: std::cell::RefCell<IdMap<u32>> = Default::default();
        let all: Vec<Result<Item>> =
            ItemReader::new(&*self.s.repo, &self.s.key, &present).collect();
        for item in all {
            let mut item: Item = match item {
                Ok(i) => i,
                Err(e) => {
                    self.report(&format!("{sname}: {e}"));
                    changed = true;
                    break;
                }
            };
            if let Some(chunks) = item.chunks.clone() {
                let healthy = item
                    .chunks_healthy
                    .clone()
                    .unwrap_or_else(|| chunks.clone());
                let mut new_list = Vec::with_capacity(chunks.len());
                let mut offset = 0u64;
                let mut replaced = false;
                for (cur, good) in chunks.iter().zip(healthy.iter()) {
                    if self.add_ref(&good.id) {
                        new_list.push(*good);
                        if cur != good {
                            crate::log::info(
                                LOGGER,
                                &format!("{sname}: {}: Healed previously missing file chunk! (Byte {offset}-{}, Chunk {})", item.path_str(), offset + good.size as u64, good.id.hex()),
                            );
                            changed = true;
                        }
                    } else if cur == good {
                        let msg = if repair {
                            "Replacing with all-zero chunk."
                        } else {
                            "Would replace it with all-zero chunk with --repair."
                        };
                        self.report(&format!(
                            "{sname}: {}: New missing file chunk detected (Byte {offset}-{}, Chunk {}). {msg}",
                            item.path_str(),
                            offset + good.size as u64,
                            good.id.hex()
                        ));
                        replaced = true;
                        if repair {
                            new_list.push(self.zero_chunk(good.size, &zero_cache)?);
                        } else {
                            new_list.push(*good);
                        }
                    } else {
                        // still missing, keep the existing all-zero replacement
                        self.add_ref(&cur.id);
                        new_list.push(*cur);
                    }
                    offset += good.size as u64;
                }
                if replaced && repair {
                    if item.chunks_healthy.is_none() {
                        item.chunks_healthy = Some(chunks.clone());
                    }
                    changed = true;
                }
                if item.chunks_healthy.as_ref() == Some(&new_list) {
                    item.chunks_healthy = None;
                    changed = true;
                }
                item.chunks = Some(new_list);
            }
            items.push(item);
        }
        if changed && repair {
            Ok(ArchiveOutcome::Rewrite(Box::new(meta), items))
        } else {
            Ok(ArchiveOutcome::Keep)
        }
    }

    /// An all-zero replacement chunk of `size` bytes (stored once per size).
    fn zero_chunk(
        &mut self,
        size: u32,
        cache: &std::cell::RefCell<IdMap<u32>>,
    ) -> Result<ChunkRef> {
        let data = vec![0u8; size as usize];
        let id = self.s.key.id_hash(&data);
        let _ = cache;
        if !self.refs.contains_key(&id) {
            let payload = Compression::Lz4.compress(&data);
            let env = self.s.key.seal(&*self.s.repo, &payload)?;
            self.s.repo.put(&id, &env)?;
            self.refs.insert(id, 0);
        }
        self.add_ref(&id);
        let env_len = self.s.repo.get(&id)?.len() as u32;
        Ok(ChunkRef {
            id,
            size,
            csize: env_len,
        })
    }

    /// Runs the archive checks; `Ok(true)` if no problem was found (or all were repaired).
    pub fn check(&mut self, opts: &CheckOptions) -> Result<bool> {
        crate::log::info(LOGGER, "Starting archive consistency check...");
        self.init_chunks()?;
        if self.refs.is_empty() {
            err("Repository contains no apparent data at all, cannot continue check/repair.");
            return Ok(false);
        }
        if opts.verify_data {
            let defects = self.verify_data()?;
            if opts.repair && !defects.is_empty() {
                crate::log::warning(LOGGER, "Found defect chunks. They will be deleted now, so affected files can get repaired now and maybe healed later.");
                for id in &defects {
                    if *id != ObjectId::MANIFEST {
                        self.s.repo.delete(id)?;
                        self.refs.remove(id);
                    }
                }
            }
        }
        self.refs.remove(&ObjectId::MANIFEST);
        let all_checked = opts.archives.is_none();
        let names: Vec<Vec<u8>> = match &opts.archives {
            Some(n) => n.clone(),
            None => self.s.manifest.archives.keys().cloned().collect(),
        };
        let total = names.len();
        let mut dirty = false;
        for (i, name) in names.iter().enumerate() {
            let Some(entry) = self.s.manifest.archives.get(name).cloned() else {
                continue;
            };
            crate::log::info(
                LOGGER,
                &format!(
                    "Analyzing archive {} ({}/{total})",
                    String::from_utf8_lossy(name),
                    i + 1
                ),
            );
            match self.check_archive(name, &entry, opts.repair)? {
                ArchiveOutcome::Keep => {}
                ArchiveOutcome::Drop => {
                    if opts.repair {
                        self.s.manifest.archives.remove(name);
                        dirty = true;
                    }
                }
                ArchiveOutcome::Rewrite(meta, items) => {
                    for old in meta.items.iter().chain(std::iter::once(&entry.id)) {
                        if let Some(n) = self.refs.get_mut(old) {
                            *n = n.saturating_sub(1);
                            self.superseded.insert(*old);
                        }
                    }
                    self.rewrite_archive(name, *meta, &items)?;
                    dirty = true;
                }
            }
        }
        if all_checked {
            let unused: Vec<ObjectId> = self
                .refs
                .iter()
                .filter(|(_, n)| **n == 0)
                .map(|(id, _)| *id)
                .collect();
            let orphans = unused
                .iter()
                .filter(|id| !self.superseded.contains(id))
                .count();
            if orphans > 0 {
                self.report(&format!("{orphans} orphaned objects found!"));
            }
            if opts.repair && !unused.is_empty() {
                for id in unused {
                    self.s.repo.delete(&id)?;
                }
                dirty = true;
            }
        }
        if opts.repair && (dirty || self.error_found) {
            self.s.commit_manifest(&Compression::Lz4)?;
        }
        if self.error_found {
            err("Archive consistency check complete, problems found.");
        } else {
            crate::log::info(
                LOGGER,
                "Archive consistency check complete, no problems found.",
            );
        }
        Ok(opts.repair || !self.error_found)
    }

    fn rewrite_archive(
        &mut self,
        name: &[u8],
        mut meta: ArchiveMeta,
        items: &[Item],
    ) -> Result<()> {
        let repo = &*self.s.repo;
        let key = &self.s.key;
        let mut w = ItemWriter::new(key.chunk_seed());
        let comp = Compression::Lz4;
        let refs = &mut self.refs;
        let mut store = |data: &[u8]| -> Result<(ObjectId, u32, u32)> {
            let id = key.id_hash(data);
            if let Some(n) = refs.get_mut(&id) {
                *n += 1;
                return Ok((id, data.len() as u32, 0));
            }
            let env = key.seal(repo, &comp.compress(data))?;
            repo.put(&id, &env)?;
            refs.insert(id, 1);
            Ok((id, data.len() as u32, env.len() as u32))
        };
        for it in items {
            w.add(it, &mut store)?;
        }
        w.flush(true, &mut store)?;
        meta.items = w.chunks.clone();
        let (id, _, _) = meta.save(repo, key, &comp)?;
        self.refs.insert(id, 1);
        let time = meta.time.clone();
        self.s
            .manifest
            .archives
            .insert(name.to_vec(), ArchiveEntry { id, time });
        Ok(())
    }
}

enum ArchiveOutcome {
    Keep,
    Drop,
    Rewrite(Box<ArchiveMeta>, Vec<Item>),
}

/// Archive names the filters select (helper for the command layer).
pub fn all_names(m: &Manifest) -> HashSet<Vec<u8>> {
    m.archives.keys().cloned().collect()
}
