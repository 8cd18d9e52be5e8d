//! Compaction: copy the live entries of sparse segments into new segments, then delete the old
//! segments (borg's `compact_segments`, run inside a commit).

use super::segment::{ReadMode, HEADER_SIZE, PUT_HEADER_SIZE, TAG_COMMIT, TAG_DELETE, TAG_PUT};
use super::{Inner, LocalRepository, LOGGER};
use crate::repo::Result;
use crate::units::fsize;

impl LocalRepository {
    pub(super) fn compact_segments(&self, inner: &mut Inner, threshold: f64) -> Result<()> {
        if inner.txn.as_ref().expect("txn").hints.compact.is_empty() {
            crate::log::debug(LOGGER, "nothing to do: compact empty");
            return Ok(());
        }
        let quota_before = inner.txn.as_ref().expect("txn").hints.storage_quota_use;
        let index_tid = self.index_transaction_id()?;
        let mut unused: Vec<u32> = Vec::new();

        // Commits the target segments written so far and deletes the sources they replace.
        fn complete_xfer(
            inner: &mut Inner,
            unused: &mut Vec<u32>,
            intermediate: bool,
        ) -> Result<()> {
            let seg = inner.io.write_commit(intermediate)?;
            let h = &mut inner.txn.as_mut().expect("txn").hints;
            h.segments.entry(seg).or_insert(0);
            *h.compact.entry(seg).or_insert(0) += HEADER_SIZE as u64;
            for s in unused.drain(..) {
                let h = &mut inner.txn.as_mut().expect("txn").hints;
                let count = h.segments.remove(&s).unwrap_or(0);
                if count != 0 {
                    crate::log::warning(
                        LOGGER,
                        &format!("Corrupted segment reference count {count} for segment {s} - corrupted index or hints"),
                    );
                }
                h.compact.remove(&s);
                inner.io.delete_segment(s)?;
            }
            Ok(())
        }

        let candidates: Vec<(u32, u64)> = inner
            .txn
            .as_ref()
            .expect("txn")
            .hints
            .compact
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        let mut progress = crate::log::ProgressPercent::new(
            candidates.len() as u64,
            "Compacting segments %3.0f%%",
            "repository.compact_segments",
        );
        for (i, (segment, freeable)) in candidates.into_iter().enumerate() {
            progress.show(i as u64);
            if !inner.io.segment_exists(segment) {
                crate::log::warning(
                    LOGGER,
                    &format!("segment {segment} not found, but listed in compaction data"),
                );
                let h = &mut inner.txn.as_mut().expect("txn").hints;
                h.compact.remove(&segment);
                h.segments.remove(&segment);
                continue;
            }
            let size = inner.io.segment_size(segment)?;
            let ratio = freeable as f64 / size as f64;
            if ratio <= threshold {
                continue;
            }
            inner
                .txn
                .as_mut()
                .expect("txn")
                .hints
                .segments
                .entry(segment)
                .or_insert(0);
            let entries = inner.io.iter_objects(segment, 0, ReadMode::WithData)?;
            for e in entries {
                let e = e?;
                if e.tag == TAG_COMMIT {
                    continue;
                }
                let in_index = inner.index.as_ref().expect("index").get(&e.key).copied();
                let is_live = in_index == Some((segment, e.offset));
                if e.tag == TAG_PUT && is_live {
                    let data = e.data.as_deref().unwrap_or(&[]);
                    let (nseg, noff) = match inner.io.write_put(&e.key, data, true)? {
                        Ok(loc) => loc,
                        Err(_full) => {
                            complete_xfer(inner, &mut unused, true)?;
                            inner
                                .io
                                .write_put(&e.key, data, false)?
                                .expect("no raise_full")
                        }
                    };
                    inner
                        .index
                        .as_mut()
                        .expect("index")
                        .insert(e.key, (nseg, noff));
                    let h = &mut inner.txn.as_mut().expect("txn").hints;
                    *h.segments.entry(nseg).or_insert(0) += 1;
                    *h.segments.entry(segment).or_insert(0) -= 1;
                } else if e.tag == TAG_PUT {
                    let h = &mut inner.txn.as_mut().expect("txn").hints;
                    if let Some(list) = h.shadow_index.get_mut(&e.key) {
                        if let Some(p) = list.iter().position(|s| *s == segment) {
                            list.remove(p);
                        }
                    }
                    let len = e.data.as_ref().map_or(0, |d| d.len()) + PUT_HEADER_SIZE;
                    h.storage_quota_use = h.storage_quota_use.saturating_sub(len as u64);
                } else if e.tag == TAG_DELETE && in_index.is_none() {
                    let h = &inner.txn.as_ref().expect("txn").hints;
                    let shadowed_put_exists = match h.shadow_index.get(&e.key) {
                        None => true,
                        Some(list) => list.iter().any(|s| *s < segment),
                    };
                    let not_stable = index_tid.is_none_or(|t| segment > t);
                    if shadowed_put_exists || not_stable {
                        let (nseg, size) = match inner.io.write_delete(&e.key, true)? {
                            Ok(r) => r,
                            Err(_full) => {
                                complete_xfer(inner, &mut unused, true)?;
                                inner
                                    .io
                                    .write_delete(&e.key, false)?
                                    .expect("no raise_full")
                            }
                        };
                        let h = &mut inner.txn.as_mut().expect("txn").hints;
                        *h.compact.entry(nseg).or_insert(0) += size as u64;
                        h.segments.entry(nseg).or_insert(0);
                    } else {
                        let h = &mut inner.txn.as_mut().expect("txn").hints;
                        if h.shadow_index.get(&e.key).is_some_and(|l| l.is_empty()) {
                            h.shadow_index.remove(&e.key);
                        }
                    }
                }
            }
            let count = inner
                .txn
                .as_ref()
                .expect("txn")
                .hints
                .segments
                .get(&segment)
                .copied()
                .unwrap_or(0);
            if count != 0 {
                crate::log::warning(
                    LOGGER,
                    &format!("Corrupted segment reference count {count} for segment {segment} - corrupted index or hints"),
                );
            }
            unused.push(segment);
        }
        progress.finish();
        complete_xfer(inner, &mut unused, false)?;
        clear_empty_dirs(&inner.io.data_dir());
        let quota_after = inner.txn.as_ref().expect("txn").hints.storage_quota_use;
        crate::log::info(
            LOGGER,
            &format!(
                "compaction freed about {} repository space.",
                fsize(quota_before as i128 - quota_after as i128)
            ),
        );
        Ok(())
    }
}

/// Removes empty numeric `data/N` directories (best effort, as borg 1.4).
fn clear_empty_dirs(data: &std::path::Path) {
    if let Ok(rd) = std::fs::read_dir(data) {
        for e in rd.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}
