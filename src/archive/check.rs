//! The archive part of `check`: the manifest (rebuilt from the archive objects found in the
//! repository when it is missing or corrupted), every archive's metadata and TAM, every item,
//! every referenced chunk present (and, with `verify_data`, every object decrypting to its id);
//! orphaned objects. `repair` replaces missing file chunks by all-zero chunks of the same size
//! (keeping `chunks_healthy` so a later create can heal them), drops archives whose metadata is
//! missing, unusable or unauthenticated, deletes orphans and commits a new manifest.

use std::collections::HashSet;

use rayon::prelude::*;

use super::item::{ChunkRef, Item};
use super::itemstream::ItemWriter;
use super::manifest::{ArchiveEntry, Manifest, ITEM_KEYS};
use super::meta::{open_object, verify_objects_with, ArchiveMeta};
use super::session::{object_error, ManifestStatus, Session};
use super::Result;
use crate::compress::Compression;
use crate::crypto::tam::{self, TamStatus};
use crate::crypto::CryptoError;
use crate::msgpack::{DecodeError, Decoder, Value};
use crate::repo::{IdMap, ObjectId, LIST_SCAN_LIMIT};

const LOGGER: &str = "borg.archive";

/// Keys every archive metadata dict has (borg's `REQUIRED_ARCHIVE_KEYS`).
const REQUIRED_ARCHIVE_KEYS: &[&str] = &["version", "name", "items", "cmdline", "time"];
/// Every key an archive metadata dict may have (borg's `ARCHIVE_KEYS`).
const ARCHIVE_KEYS: &[&str] = &[
    "version",
    "name",
    "items",
    "cmdline",
    "hostname",
    "username",
    "time",
    "time_end",
    "comment",
    "chunker_params",
    "recreate_cmdline",
    "recreate_source_id",
    "recreate_args",
    "recreate_partial_chunks",
    "size",
    "csize",
    "nfiles",
    "size_parts",
    "csize_parts",
    "nfiles_parts",
    "cwd",
];
/// Outcome of verifying one object: `Err((is_integrity_error, message))`.
type Verified = std::result::Result<(), (bool, String)>;

/// Keys every item has (borg's `REQUIRED_ITEM_KEYS`).
const REQUIRED_ITEM_KEYS: &[&str] = &["path", "mtime"];

pub struct CheckOptions {
    pub repair: bool,
    pub verify_data: bool,
    /// Archive names to check (None = all).
    pub archives: Option<Vec<Vec<u8>>>,
}

pub struct ArchiveChecker<'s> {
    s: &'s mut Session,
    manifest_status: ManifestStatus,
    repair: bool,
    pub error_found: bool,
    /// Every object id in the repository → references found.
    refs: IdMap<u32>,
    /// Objects that may have lost their last reference through this check (old archive
    /// objects, item chunks, replacement chunks): deleted without being reported as orphans.
    superseded: HashSet<ObjectId>,
    /// Stored size of each all-zero replacement chunk used so far.
    zero_csize: IdMap<u32>,
    /// `--verify-data` already done during the repository check (local repositories).
    preverified: Option<crate::repo::VerifiedObjects>,
}

fn err(msg: &str) {
    crate::log::error(LOGGER, msg);
}

/// The serialized msgpack string of each name (as borg writes dict keys).
fn serialized_keys(names: &[&str]) -> Vec<Vec<u8>> {
    names.iter().map(|n| Value::from(*n).to_bytes()).collect()
}

/// borg's `valid_msgpacked_dict`: `d` starts with a fixmap/map16 whose first key is one of
/// `keys` (serialized).
fn valid_msgpacked_dict(d: &[u8], keys: &[Vec<u8>]) -> bool {
    let offs = match d.first() {
        Some(b) if b & 0xf0 == 0x80 => 1,
        Some(0xde) => 3,
        _ => return false,
    };
    let Some(&k) = d.get(offs) else {
        return false;
    };
    if k & 0xe0 != 0xa0 && !matches!(k, 0xd9..=0xdb) {
        return false;
    }
    let rest = &d[offs..];
    keys.iter().any(|p| rest.starts_with(p))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn map_has_keys(v: &Value, keys: &[&str]) -> bool {
    matches!(v, Value::Map(_)) && keys.iter().all(|k| v.get(k).is_some())
}

/// Why a decoded item-stream value is not an item (borg's `valid_item`), or `None`.
fn invalid_item_reason(v: &Value) -> Option<String> {
    let Value::Map(pairs) = v else {
        return Some("not a dictionary".into());
    };
    let keys: Vec<String> = pairs
        .iter()
        .map(|(k, _)| String::from_utf8_lossy(k.as_bytes().unwrap_or(b"?")).into_owned())
        .collect();
    let missing: Vec<&str> = REQUIRED_ITEM_KEYS
        .iter()
        .copied()
        .filter(|k| !keys.iter().any(|x| x == k))
        .collect();
    if !missing.is_empty() {
        return Some(format!("missing required keys: {}", missing.join(", ")));
    }
    let invalid: Vec<&str> = keys
        .iter()
        .map(|s| s.as_str())
        .filter(|k| *k != "acl" && !ITEM_KEYS.contains(k))
        .collect();
    if !invalid.is_empty() {
        return Some(format!("invalid keys: {}", invalid.join(", ")));
    }
    None
}

/// Bytes at the end of a buffer that may still start an item once more data arrives (a map
/// header and the longest item key).
const RESYNC_TAIL: usize = 40;

/// Where the item stream can be picked up again after a gap (borg's `RobustUnpacker` in resync
/// mode): the first offset at which a complete, valid item dict decodes (`Ok(off)`), else the
/// offset from which the data must be kept until more arrives (`Err(off)`: the first offset
/// whose item was incomplete, or the tail too short to judge).
fn resync_offset(buf: &[u8], item_keys: &[Vec<u8>]) -> std::result::Result<usize, usize> {
    let mut keep = buf.len().saturating_sub(RESYNC_TAIL);
    for off in 0..buf.len() {
        if !valid_msgpacked_dict(&buf[off..], item_keys) {
            continue;
        }
        let mut d = Decoder::new(&buf[off..]);
        match d.next_value() {
            Ok(Some(v)) if map_has_keys(&v, &["path"]) => return Ok(off),
            Err(DecodeError::Incomplete) => keep = keep.min(off),
            _ => {}
        }
    }
    Err(keep)
}

/// Decrypts objects and checks each against its id (the manifest has no id to verify),
/// taking them from `objs` one at a time as the hash lanes free up; `verdict(i, result)`
/// for the i-th object taken, in any order.
pub fn verify_objects(
    key: &crate::crypto::Key,
    objs: &mut dyn Iterator<Item = (ObjectId, Vec<u8>)>,
    verdict: &mut dyn FnMut(usize, Verified),
) {
    // a segment scan may hand over several (older) manifests: verified here, the rest in lanes
    let mut manifests = Vec::new();
    let numbers = std::cell::RefCell::new(Vec::new());
    let mut taken = 0usize;
    let rest = objs.filter_map(|(id, env)| {
        let i = taken;
        taken += 1;
        if id == ObjectId::MANIFEST {
            let r = key.open(None, &env).map(|_| ());
            manifests.push((i, r.map_err(|e| (true, object_error(&e.into())))));
            None
        } else {
            numbers.borrow_mut().push(i);
            Some((id, env))
        }
    });
    verify_objects_with(key, rest, |j, r| {
        verdict(numbers.borrow()[j], r.map_err(|e| (true, object_error(&e))));
    });
    for (i, r) in manifests {
        verdict(i, r);
    }
}

impl<'s> ArchiveChecker<'s> {
    pub fn new(s: &'s mut Session, manifest_status: ManifestStatus, repair: bool) -> Self {
        ArchiveChecker {
            s,
            manifest_status,
            repair,
            error_found: false,
            refs: IdMap::default(),
            superseded: HashSet::new(),
            zero_csize: IdMap::default(),
            preverified: None,
        }
    }

    /// Verification of every object that the repository check already did
    /// (`LocalRepository::check_verifying`): `--verify-data` then reports it instead of
    /// reading everything again.
    pub fn set_preverified(&mut self, v: crate::repo::VerifiedObjects) {
        self.preverified = Some(v);
    }

    /// The session (with the loaded or rebuilt manifest once [`ArchiveChecker::start`] ran).
    pub fn session(&self) -> &Session {
        self.s
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

    /// Reads, decrypts and verifies a few objects.
    fn verify_some(&self, ids: &[ObjectId]) -> Vec<(ObjectId, Verified)> {
        let mut read = Vec::with_capacity(ids.len());
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.s.repo.get(id) {
                Ok(env) => read.push((*id, env)),
                Err(e) => out.push((*id, Err((false, e.to_string())))),
            }
        }
        let read_ids: Vec<ObjectId> = read.iter().map(|(id, _)| *id).collect();
        let mut verdicts: Vec<Verified> = read_ids.iter().map(|_| Ok(())).collect();
        verify_objects(&self.s.key, &mut read.into_iter(), &mut |i, r| {
            verdicts[i] = r
        });
        out.extend(read_ids.into_iter().zip(verdicts));
        out
    }

    /// Every known object id, in the order the repository stores them (as borg: reads then
    /// run along the segments instead of seeking at random). Ids a scan does not return (it
    /// failed, or an object went missing) follow in id order, so every one is still verified.
    fn ids_in_disk_order(&self) -> Vec<ObjectId> {
        let mut ids = Vec::with_capacity(self.refs.len());
        let mut seen = IdMap::<()>::default();
        let mut marker = None;
        while let Ok(batch) = self.s.repo.scan(Some(LIST_SCAN_LIMIT), marker.as_ref()) {
            let Some(last) = batch.last().copied() else {
                break;
            };
            marker = Some(last);
            for id in batch {
                if self.refs.contains_key(&id) && seen.insert(id, ()).is_none() {
                    ids.push(id);
                }
            }
        }
        let mut rest: Vec<ObjectId> = self
            .refs
            .keys()
            .filter(|id| !seen.contains_key(*id))
            .copied()
            .collect();
        rest.sort_unstable();
        ids.extend(rest);
        ids
    }

    /// Reads every object (in disk order) and verifies it, in parallel: how many, and the
    /// failures.
    fn verify_all(&self) -> (usize, Vec<(ObjectId, bool, String)>) {
        let ids = self.ids_in_disk_order();
        let mut progress = crate::log::ProgressPercent::new(
            ids.len() as u64,
            "Verifying data %6.2f%%",
            "check.verify_data",
        );
        let mut failures = Vec::new();
        let mut done = 0u64;
        // big batches: each one ends in a barrier where the slowest object holds both workers
        for batch in ids.chunks(2048) {
            let results: Vec<(ObjectId, Verified)> = batch
                .par_chunks(8)
                .flat_map_iter(|ids| self.verify_some(ids))
                .collect();
            for (id, r) in results {
                if let Err((integrity, e)) = r {
                    failures.push((id, integrity, e));
                }
            }
            done += batch.len() as u64;
            progress.show(done);
        }
        progress.finish();
        (ids.len(), failures)
    }

    /// Decrypts every object in parallel and checks it against its id; with repair, objects
    /// that fail twice are deleted (so the files using them get all-zero replacements).
    fn verify_data(&mut self) -> Result<()> {
        crate::log::info(
            LOGGER,
            "Starting cryptographic data integrity verification...",
        );
        let (total, failures) = match self.preverified.take() {
            Some(v) => (v.count, v.failures),
            None => self.verify_all(),
        };
        let mut defects = Vec::new();
        let mut messages = Vec::new();
        let errors = failures.len();
        for (id, integrity, e) in failures {
            if integrity {
                messages.push(format!("chunk {}, integrity error: {e}", id.hex()));
                defects.push(id);
            } else {
                messages.push(format!("chunk {}: {e}", id.hex()));
            }
        }
        for m in messages {
            self.report(&m);
        }
        if !defects.is_empty() {
            if self.repair {
                crate::log::warning(LOGGER, "Found defect chunks. They will be deleted now, so affected files can get repaired now and maybe healed later.");
                for id in &defects {
                    if self.verify_some(std::slice::from_ref(id))[0].1.is_ok() {
                        crate::log::warning(
                            LOGGER,
                            &format!("chunk {} not deleted, did not consistently fail.", id.hex()),
                        );
                        continue;
                    }
                    self.s.repo.delete(id)?;
                    self.refs.remove(id);
                    crate::log::debug(LOGGER, &format!("chunk {} deleted.", id.hex()));
                }
            } else {
                crate::log::warning(LOGGER, "Found defect chunks. With --repair, they would get deleted, so affected files could get repaired then and maybe healed later.");
                for id in &defects {
                    crate::log::debug(LOGGER, &format!("chunk {} is defect.", id.hex()));
                }
            }
        }
        let msg = format!("Finished cryptographic data integrity verification, verified {total} chunks with {errors} integrity errors.");
        if errors > 0 {
            err(&msg);
        } else {
            crate::log::info(LOGGER, &msg);
        }
        Ok(())
    }

    /// borg's `rebuild_manifest`: scans every object for archive metadata dicts and makes a
    /// new manifest of them. Archives whose TAM does not verify (or is missing where it is
    /// required) are left out; a name seen twice gets a `.1`, `.2`, ... suffix.
    fn rebuild_manifest(&mut self) -> Result<()> {
        crate::log::info(
            LOGGER,
            "Rebuilding missing manifest, this might take some time...",
        );
        let mut manifest = Manifest::new(&self.s.key);
        let archive_keys = serialized_keys(ARCHIVE_KEYS);
        let mut ids: Vec<ObjectId> = self.refs.keys().copied().collect();
        ids.sort_unstable();
        let mut progress = crate::log::ProgressPercent::new(
            ids.len() as u64,
            "Rebuilding manifest %6.2f%%",
            "check.rebuild_manifest",
        );
        for (n, id) in ids.iter().enumerate() {
            progress.show(n as u64);
            if *id == ObjectId::MANIFEST {
                continue;
            }
            let data = match self
                .s
                .repo
                .get(id)
                .map_err(super::ArchiveError::from)
                .and_then(|env| open_object(&self.s.key, id, env, None))
            {
                Ok(d) => d,
                Err(e) => {
                    self.report(&format!("Skipping corrupted chunk: {}", object_error(&e)));
                    continue;
                }
            };
            if !valid_msgpacked_dict(&data, &archive_keys)
                || !contains(&data, b"cmdline")
                || !contains(&data, b"\xa7version\x01")
            {
                continue;
            }
            let Ok(value) = crate::msgpack::decode(&data) else {
                continue;
            };
            if !map_has_keys(&value, REQUIRED_ARCHIVE_KEYS) {
                continue;
            }
            let name = value
                .get("name")
                .and_then(|v| v.as_bytes().ok())
                .map(|b| b.to_vec())
                .unwrap_or_else(|| b"<unknown>".to_vec());
            let sname = String::from_utf8_lossy(&name).into_owned();
            if let Some(problem) = self.archive_tam_problem(&data, &sname) {
                self.report(&format!(
                    "Archive TAM authentication issue for archive {sname}: {problem}"
                ));
                err(
                    "This archive will *not* be added to the rebuilt manifest! It will be deleted.",
                );
                continue;
            }
            let time = value
                .get("time")
                .and_then(|v| v.as_str().ok())
                .unwrap_or_default();
            crate::log::info(LOGGER, &format!("Found archive {sname}"));
            let mut key_name = name.clone();
            if manifest.archives.contains_key(&key_name) {
                let mut i = 1;
                loop {
                    let mut candidate = name.clone();
                    candidate.extend_from_slice(format!(".{i}").as_bytes());
                    if !manifest.archives.contains_key(&candidate) {
                        key_name = candidate;
                        break;
                    }
                    i += 1;
                }
                crate::log::warning(
                    LOGGER,
                    &format!(
                        "Duplicate archive name {sname}, storing as {}",
                        String::from_utf8_lossy(&key_name)
                    ),
                );
            }
            manifest
                .archives
                .insert(key_name, ArchiveEntry { id: *id, time });
        }
        progress.finish();
        crate::log::info(LOGGER, "Manifest rebuild complete.");
        if !self.repair {
            crate::log::warning(
                LOGGER,
                "The rebuilt manifest will only be committed when using --repair!",
            );
        }
        self.s.manifest = manifest;
        Ok(())
    }

    /// borg 1.4's archive TAM verdict: an invalid TAM is always refused, a missing one where
    /// the key requires TAMs. `None` if the archive is acceptable.
    fn archive_tam_problem(&self, data: &[u8], name: &str) -> Option<String> {
        let status = match tam::unpack_and_verify(&self.s.key, data, b"archive") {
            Ok((_, s)) => s,
            Err(e) => return Some(format!("Data integrity error: {e}")),
        };
        let required = self.s.key.tam_required;
        match status {
            TamStatus::Verified => None,
            TamStatus::Missing if required => {
                Some(CryptoError::ArchiveTamRequired(name.to_string()).to_string())
            }
            TamStatus::Missing => None,
            TamStatus::UnsupportedSuite(s) if required => {
                Some(CryptoError::TamUnsupportedSuite(format!("'{s}'")).to_string())
            }
            TamStatus::UnsupportedSuite(_) => None,
            TamStatus::Invalid => Some(CryptoError::ArchiveTamInvalid.to_string()),
        }
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

    fn mark_possibly_superseded(&mut self, id: &ObjectId) {
        if self.refs.get(id).copied().unwrap_or(0) == 0 {
            self.superseded.insert(*id);
        }
    }

    /// borg's robust iterator: the items of an archive, skipping item chunks that are missing
    /// or do not decrypt and picking the msgpack stream up again at the next valid item.
    /// Returns the items and whether anything was lost.
    fn robust_items(&mut self, ids: &[ObjectId]) -> Result<(Vec<Item>, bool)> {
        let item_keys = serialized_keys(ITEM_KEYS);
        let mut items = Vec::new();
        let mut lost = false;
        let mut buf: Vec<u8> = Vec::new();
        let mut resync = false;
        for (i, id) in ids.iter().enumerate() {
            let tag = format!("[chunk: {i:06}_{}]", id.hex());
            if !self.refs.contains_key(id) {
                self.report(&format!("item metadata chunk missing {tag}"));
                lost = true;
                buf.clear();
                resync = true;
                continue;
            }
            self.add_ref(id);
            let data = match self
                .s
                .repo
                .get(id)
                .map_err(super::ArchiveError::from)
                .and_then(|env| open_object(&self.s.key, id, env, None))
            {
                Ok(d) => d,
                Err(e) => {
                    self.report(&format!("{} {tag}", object_error(&e)));
                    lost = true;
                    buf.clear();
                    resync = true;
                    continue;
                }
            };
            buf.extend_from_slice(&data);
            let mut pos = 0;
            loop {
                if resync {
                    match resync_offset(&buf[pos..], &item_keys) {
                        Ok(off) => {
                            pos += off;
                            resync = false;
                        }
                        Err(keep) => {
                            pos += keep;
                            break;
                        }
                    }
                }
                let mut d = Decoder::new(&buf[pos..]);
                match d.next_value() {
                    Ok(Some(v)) => {
                        pos += d.position();
                        if let Some(reason) = invalid_item_reason(&v) {
                            self.report(&format!("Did not get expected metadata dict when unpacking item metadata ({reason}) {tag}"));
                            lost = true;
                            continue;
                        }
                        match Item::from_value(v) {
                            Ok(it) => items.push(it),
                            Err(e) => {
                                self.report(&format!("Did not get expected metadata dict when unpacking item metadata ({e}) {tag}"));
                                lost = true;
                            }
                        }
                    }
                    Ok(None) | Err(DecodeError::Incomplete) => break,
                    Err(_) => {
                        // like borg: the rest of this chunk is dropped, the stream is picked
                        // up again in the next one
                        self.report(&format!("Unpacker crashed while unpacking item metadata, trying to resync... {tag}"));
                        lost = true;
                        resync = true;
                        pos = buf.len();
                        break;
                    }
                }
            }
            buf.drain(..pos.min(buf.len()));
        }
        if !buf.is_empty() && !resync {
            // an item cut short at the end of the stream is dropped (borg does so silently)
            lost = true;
        }
        Ok((items, lost))
    }

    /// Checks one archive; returns a replacement item list when repair changed items.
    fn check_archive(&mut self, name: &[u8], entry: &ArchiveEntry) -> Result<ArchiveOutcome> {
        let repair = self.repair;
        let sname = String::from_utf8_lossy(name).into_owned();
        if !self.refs.contains_key(&entry.id) {
            self.report(&format!(
                "Archive metadata block {} is missing!",
                entry.id.hex()
            ));
            return Ok(ArchiveOutcome::Drop);
        }
        self.mark_possibly_superseded(&entry.id);
        let data = match self
            .s
            .repo
            .get(&entry.id)
            .map_err(super::ArchiveError::from)
            .and_then(|env| open_object(&self.s.key, &entry.id, env, None))
        {
            Ok(d) => d,
            Err(e) => {
                self.report(&format!(
                    "Archive metadata block {} is corrupted: {}",
                    entry.id.hex(),
                    object_error(&e)
                ));
                return Ok(ArchiveOutcome::Drop);
            }
        };
        if let Some(problem) = self.archive_tam_problem(&data, &sname) {
            self.report(&format!(
                "Archive TAM authentication issue for archive {sname}: {problem}"
            ));
            err(if repair {
                "This archive will be *removed* from the manifest! It will be deleted."
            } else {
                "This archive would be *removed* / *deleted* when using --repair!"
            });
            return Ok(ArchiveOutcome::Drop);
        }
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
        self.add_ref(&entry.id);
        let (items_in, mut changed) = self.robust_items(&meta.items)?;
        if changed {
            for id in &meta.items {
                self.mark_possibly_superseded(id);
            }
        }
        let mut items = Vec::with_capacity(items_in.len());
        for mut item in items_in {
            if item.chunks.is_some() && self.verify_file_chunks(&sname, &mut item)? {
                changed = true;
            }
            items.push(item);
        }
        if repair && changed {
            Ok(ArchiveOutcome::Rewrite(Box::new(meta), items))
        } else {
            Ok(ArchiveOutcome::Keep)
        }
    }

    /// borg's `verify_file_chunks`: every chunk of a file present; missing ones replaced by
    /// all-zero chunks (remembering the healthy list), reappeared ones healed. Returns
    /// whether the item changed.
    fn verify_file_chunks(&mut self, sname: &str, item: &mut Item) -> Result<bool> {
        let repair = self.repair;
        let path = item.path_str();
        let chunks = item.chunks.clone().unwrap_or_default();
        let mut changed = false;
        let mut has_healthy = item.chunks_healthy.is_some();
        if has_healthy && item.chunks_healthy.as_ref().map(|h| h.len()) != Some(chunks.len()) {
            let msg = if repair {
                "Invalid chunks_healthy metadata removed!"
            } else {
                "Invalid chunks_healthy metadata would be removed with --repair!"
            };
            crate::log::warning(LOGGER, &format!("{sname}: {path}: {msg}"));
            item.chunks_healthy = None;
            has_healthy = false;
            changed = true;
        }
        let healthy = item
            .chunks_healthy
            .clone()
            .unwrap_or_else(|| chunks.clone());
        let mut new_list = Vec::with_capacity(chunks.len());
        let mut offset = 0u64;
        let mut replaced = false;
        for (cur, good) in chunks.iter().zip(healthy.iter()) {
            let end = offset + good.size as u64;
            let chunk = good.id.hex();
            if !self.refs.contains_key(&good.id) {
                if cur == good {
                    let msg = if repair {
                        "Replacing with all-zero chunk."
                    } else {
                        "Would replace it with all-zero chunk with --repair."
                    };
                    self.report(&format!(
                        "{sname}: {path}: New missing file chunk detected (Byte {offset}-{end}, Chunk {chunk}). {msg}"
                    ));
                    replaced = true;
                    new_list.push(self.zero_chunk(good.size)?);
                } else {
                    crate::log::info(
                        LOGGER,
                        &format!("{sname}: {path}: Previously missing file chunk is still missing (Byte {offset}-{end}, Chunk {chunk}). It has an all-zero replacement chunk already."),
                    );
                    if self.add_ref(&cur.id) {
                        new_list.push(*cur);
                    } else {
                        let msg = if repair {
                            "Generating new replacement chunk."
                        } else {
                            "Would generate new replacement chunk with --repair."
                        };
                        crate::log::warning(
                            LOGGER,
                            &format!("{sname}: {path}: Missing all-zero replacement chunk detected (Byte {offset}-{end}, Chunk {}). {msg}", cur.id.hex()),
                        );
                        self.error_found = true;
                        replaced = true;
                        new_list.push(self.zero_chunk(good.size)?);
                    }
                }
            } else if cur == good {
                self.add_ref(&good.id);
                new_list.push(*good);
            } else {
                let msg = if repair {
                    "Healed previously missing file chunk!"
                } else {
                    "Missing file chunk would be healed with --repair!"
                };
                crate::log::info(
                    LOGGER,
                    &format!("{sname}: {path}: {msg} (Byte {offset}-{end}, Chunk {chunk})"),
                );
                self.add_ref(&good.id);
                new_list.push(*good);
                self.mark_possibly_superseded(&cur.id);
                changed = true;
            }
            offset = end;
        }
        if replaced {
            changed = true;
            if !has_healthy {
                item.chunks_healthy = Some(chunks.clone());
            }
        }
        if has_healthy && item.chunks_healthy.as_ref() == Some(&new_list) {
            let msg = if repair {
                "Completely healed previously damaged file!"
            } else {
                "Would completely heal damaged file with --repair!"
            };
            crate::log::info(LOGGER, &format!("{sname}: {path}: {msg}"));
            item.chunks_healthy = None;
            changed = true;
        }
        if let Some(size) = item.size {
            let from_chunks: u64 = new_list.iter().map(|c| c.size as u64).sum();
            if size != from_chunks {
                crate::log::warning(
                    LOGGER,
                    &format!("{sname}: {path}: size inconsistency detected: size {size}, chunks size {from_chunks}"),
                );
            }
        }
        item.chunks = Some(new_list);
        Ok(changed)
    }

    /// An all-zero replacement chunk of `size` bytes (stored once per size; only with repair).
    fn zero_chunk(&mut self, size: u32) -> Result<ChunkRef> {
        let data = vec![0u8; size as usize];
        let id = self.s.key.id_hash(&data);
        if let Some(&csize) = self.zero_csize.get(&id) {
            self.add_ref(&id);
            return Ok(ChunkRef { id, size, csize });
        }
        let payload = Compression::Lz4.compress(&data);
        let csize = if self.add_ref(&id) {
            match self.s.repo.get(&id) {
                Ok(env) => env.len() as u32,
                Err(_) => (payload.len() + 41) as u32,
            }
        } else if self.repair {
            let env = self.s.key.seal(&*self.s.repo, &payload)?;
            self.s.repo.put(&id, &env)?;
            self.refs.insert(id, 1);
            env.len() as u32
        } else {
            // dry run: account for it as if it had been stored
            self.refs.insert(id, 1);
            self.superseded.insert(id);
            (payload.len() + 41) as u32
        };
        self.zero_csize.insert(id, csize);
        Ok(ChunkRef { id, size, csize })
    }

    /// Loads or rebuilds the manifest after listing every object (and verifying each with
    /// `verify_data`). `Ok(false)` if the repository holds no data at all.
    pub fn start(&mut self, verify_data: bool) -> Result<bool> {
        crate::log::info(LOGGER, "Starting archive consistency check...");
        self.init_chunks()?;
        if self.refs.is_empty() {
            err("Repository contains no apparent data at all, cannot continue check/repair.");
            return Ok(false);
        }
        if verify_data {
            self.verify_data()?;
        }
        if !self.refs.contains_key(&ObjectId::MANIFEST) {
            self.report("Repository manifest not found!");
            self.rebuild_manifest()?;
        } else if let ManifestStatus::Corrupted(msg) = self.manifest_status.clone() {
            self.report(&format!("Repository manifest is corrupted: {msg}"));
            self.refs.remove(&ObjectId::MANIFEST);
            self.rebuild_manifest()?;
        }
        self.refs.remove(&ObjectId::MANIFEST);
        Ok(true)
    }

    /// Checks the archives named (all if `None`; in borg's default timestamp order), then
    /// orphans, and with repair writes the manifest and commits. `Ok(true)` if no problem was
    /// found (or all were repaired).
    pub fn check_archives(&mut self, archives: Option<Vec<Vec<u8>>>) -> Result<bool> {
        let all_checked = archives.is_none();
        let names: Vec<Vec<u8>> = match archives {
            Some(n) => n,
            None => {
                let mut v: Vec<(&Vec<u8>, &ArchiveEntry)> =
                    self.s.manifest.archives.iter().collect();
                v.sort_by(|a, b| a.1.ts().cmp(&b.1.ts()).then_with(|| a.0.cmp(b.0)));
                v.into_iter().map(|(n, _)| n.clone()).collect()
            }
        };
        let total = names.len();
        let mut progress = crate::log::ProgressPercent::new(
            total as u64,
            "Checking archives %3.1f%%",
            "check.rebuild_refcounts",
        );
        for (i, name) in names.iter().enumerate() {
            progress.show(i as u64);
            let sname = String::from_utf8_lossy(name).into_owned();
            let Some(entry) = self.s.manifest.archives.get(name).cloned() else {
                self.report(&format!("Archive '{sname}' not found."));
                continue;
            };
            crate::log::info(
                LOGGER,
                &format!("Analyzing archive {sname} ({}/{total})", i + 1),
            );
            match self.check_archive(name, &entry)? {
                ArchiveOutcome::Keep => {}
                ArchiveOutcome::Drop => {
                    self.s.manifest.archives.remove(name);
                }
                ArchiveOutcome::Rewrite(meta, items) => {
                    if let Some(n) = self.refs.get_mut(&entry.id) {
                        *n = n.saturating_sub(1);
                    }
                    for old in &meta.items {
                        if let Some(n) = self.refs.get_mut(old) {
                            *n = n.saturating_sub(1);
                        }
                        self.mark_possibly_superseded(old);
                    }
                    self.mark_possibly_superseded(&entry.id);
                    self.rewrite_archive(name, *meta, &items)?;
                }
            }
        }
        progress.finish();
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
            if self.repair && !unused.is_empty() {
                crate::log::info(
                    LOGGER,
                    &format!(
                        "Deleting {orphans} orphaned and {} superseded objects...",
                        self.superseded.len()
                    ),
                );
                for id in unused {
                    self.s.repo.delete(&id)?;
                }
                crate::log::info(LOGGER, "Finished deleting orphaned/superseded objects.");
            }
        } else {
            crate::log::info(
                LOGGER,
                "Orphaned objects check skipped (needs all archives checked).",
            );
        }
        if self.repair {
            crate::log::info(LOGGER, "Writing Manifest.");
            crate::log::info(LOGGER, "Committing repo.");
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
        Ok(self.repair || !self.error_found)
    }

    /// Runs all archive checks; `Ok(true)` if no problem was found (or all were repaired).
    pub fn check(&mut self, opts: &CheckOptions) -> Result<bool> {
        self.repair = opts.repair;
        if !self.start(opts.verify_data)? {
            return Ok(false);
        }
        self.check_archives(opts.archives.clone())
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
        let packed = meta.pack(key);
        let id = key.id_hash(&packed);
        match self.refs.get_mut(&id) {
            Some(n) => *n += 1,
            None => {
                let env = key.seal(repo, &comp.compress(&packed))?;
                repo.put(&id, &env)?;
                self.refs.insert(id, 1);
            }
        }
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
