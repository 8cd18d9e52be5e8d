//! TAM upgrades (borg's `upgrade --archives-tam`): archives written before borg 1.2.5 / 1.4
//! carry no archive TAM and are refused once TAMs are required; re-packing them with a TAM
//! gives them a new id, the old object is dropped.

use super::cache::ChunkIndex;
use super::chunkstore::Stats;
use super::delete::decref;
use super::manifest::{ArchiveEntry, Manifest};
use super::meta::{open_object, store_object};
use super::{ArchiveError, Result};
use crate::compress::Compression;
use crate::crypto::tam::{self, TamStatus};
use crate::crypto::Key;
use crate::msgpack::Value;
use crate::repo::{ObjectId, Repository};

/// What happened to one archive.
#[derive(Debug, PartialEq, Eq)]
pub enum ArchiveTam {
    Present,
    Missing,
    Added(ObjectId),
}

/// Checks (and unless `read_only`, adds) archive TAMs, oldest archive first. `report` sees
/// each archive's name, entry and outcome. The caller writes the manifest and commits.
pub fn archives_tam(
    repo: &dyn Repository,
    key: &Key,
    manifest: &mut Manifest,
    index: &mut ChunkIndex,
    read_only: bool,
    mut report: impl FnMut(&[u8], &ArchiveEntry, &ArchiveTam),
) -> Result<usize> {
    let mut order: Vec<(Vec<u8>, ArchiveEntry)> = manifest
        .archives
        .iter()
        .map(|(n, e)| (n.clone(), e.clone()))
        .collect();
    order.sort_by_key(|(_, e)| e.ts());
    let mut issues = 0;
    for (name, entry) in order {
        let data = open_object(key, &entry.id, repo.get(&entry.id)?, None)?;
        let (dict, status) = tam::unpack_and_verify(key, &data, b"archive")
            .map_err(|e| ArchiveError::Corrupt(format!("archive {}: {e}", entry.id.hex())))?;
        let outcome = if status == TamStatus::Verified {
            ArchiveTam::Present
        } else {
            issues += 1;
            if read_only {
                ArchiveTam::Missing
            } else {
                let Value::Map(pairs) = dict else {
                    return Err(ArchiveError::Corrupt(
                        "archive metadata is not a map".into(),
                    ));
                };
                let packed = tam::pack_and_authenticate(key, pairs, b"archive");
                let (new_id, size, csize) = store_object(repo, key, &Compression::Lz4, &packed)?;
                index.add(new_id, size, csize, 1);
                decref(repo, index, &entry.id, &mut Stats::default())?;
                manifest.archives.insert(
                    name.clone(),
                    ArchiveEntry {
                        id: new_id,
                        time: entry.time.clone(),
                    },
                );
                ArchiveTam::Added(new_id)
            }
        };
        report(&name, &entry, &outcome);
    }
    Ok(issues)
}
