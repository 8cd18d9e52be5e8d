//! Deleting and renaming archives, and per-archive statistics: reference counting against
//! the chunk index, objects deleted when their last reference goes.

use super::cache::ChunkIndex;
use super::chunkstore::Stats;
use super::item::Item;
use super::itemstream::ItemReader;
use super::manifest::{ArchiveEntry, Manifest};
use super::meta::{open_object, ArchiveMeta};
use super::{ArchiveError, Result};
use crate::compress::Compression;
use crate::crypto::Key;
use crate::repo::{IdMap, ObjectId, Repository};

/// Drops one reference; deletes the object when it was the last one. Returns the entry's
/// (size, csize) and whether it became unique garbage.
pub(crate) fn decref(
    repo: &dyn Repository,
    index: &mut ChunkIndex,
    id: &ObjectId,
    stats: &mut Stats,
) -> Result<()> {
    let Some(e) = index.get(id).copied() else {
        return Ok(());
    };
    stats.osize += e.size as u64;
    stats.csize += e.csize as u64;
    if index.decref(id).is_some() {
        stats.usize += e.csize as u64;
        repo.delete(id)?;
    }
    Ok(())
}

/// Deletes an archive: all its chunk references, its item-metadata chunks and its object.
/// The manifest entry is removed; the caller commits. `stats` counts what was released.
pub fn delete_archive(
    repo: &dyn Repository,
    key: &Key,
    manifest: &mut Manifest,
    index: &mut ChunkIndex,
    name: &[u8],
    forced: bool,
    stats: &mut Stats,
) -> Result<()> {
    let entry =
        manifest.archives.get(name).cloned().ok_or_else(|| {
            ArchiveError::DoesNotExist(String::from_utf8_lossy(name).into_owned())
        })?;
    let meta = match open_object(key, &entry.id, repo.get(&entry.id)?, None)
        .and_then(|d| ArchiveMeta::unpack(key, &d))
    {
        Ok(m) => Some(m),
        Err(e) if forced => {
            crate::log::warning("borg.archive", &format!("Archive metadata damaged: {e}"));
            None
        }
        Err(e) => return Err(e),
    };
    if let Some(meta) = &meta {
        let mut items_ok = true;
        let items: Vec<Result<Item>> = ItemReader::new(repo, key, &meta.items).collect();
        for item in items {
            match item {
                Ok(item) => {
                    if let Some(chunks) = &item.chunks {
                        for c in chunks {
                            decref(repo, index, &c.id, stats)?;
                        }
                    }
                }
                Err(e) if forced => {
                    crate::log::warning(
                        "borg.archive",
                        &format!("Archive item metadata damaged: {e}"),
                    );
                    items_ok = false;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let _ = items_ok;
        for id in &meta.items {
            decref(repo, index, id, stats)?;
        }
    }
    decref(repo, index, &entry.id, stats)?;
    manifest.archives.remove(name);
    Ok(())
}

/// Renames an archive: the archive object is rewritten with the new name and a fresh TAM
/// (so it gets a new id); the old object is dropped.
pub fn rename_archive(
    repo: &dyn Repository,
    key: &Key,
    manifest: &mut Manifest,
    index: &mut ChunkIndex,
    old: &[u8],
    new: &[u8],
) -> Result<ObjectId> {
    let entry = manifest
        .archives
        .get(old)
        .cloned()
        .ok_or_else(|| ArchiveError::DoesNotExist(String::from_utf8_lossy(old).into_owned()))?;
    if manifest.archives.contains_key(new) {
        return Err(ArchiveError::AlreadyExists(
            String::from_utf8_lossy(new).into_owned(),
        ));
    }
    let mut meta = ArchiveMeta::load(repo, key, &entry.id)?;
    meta.name = new.to_vec();
    let (id, size, csize) = meta.save(repo, key, &Compression::Lz4)?;
    index.add(id, size, csize, 1);
    let mut scratch = Stats::default();
    decref(repo, index, &entry.id, &mut scratch)?;
    manifest.archives.remove(old);
    manifest.archives.insert(
        new.to_vec(),
        ArchiveEntry {
            id,
            time: entry.time,
        },
    );
    Ok(id)
}

/// borg's `calc_stats`: original/compressed sizes from the archive object; deduplicated size
/// = stored size of the file content chunks referenced only by this archive. As in borg 1.4.5
/// the archive object and the item-stream chunks are left out, so `info` agrees with the
/// figure `create --stats` printed.
pub fn archive_stats(
    repo: &dyn Repository,
    key: &Key,
    index: &ChunkIndex,
    meta: &ArchiveMeta,
) -> Result<Stats> {
    let mut counts: IdMap<u32> = IdMap::default();
    for item in ItemReader::new(repo, key, &meta.items) {
        if let Some(chunks) = item?.chunks {
            for c in chunks {
                *counts.entry(c.id).or_default() += 1;
            }
        }
    }
    let mut usize = 0u64;
    for (cid, n) in counts {
        if let Some(e) = index.get(&cid) {
            if e.refcount == n {
                usize += e.csize as u64;
            }
        }
    }
    Ok(Stats {
        osize: meta.size,
        csize: meta.csize,
        usize,
        nfiles: meta.nfiles,
        ..Stats::default()
    })
}
