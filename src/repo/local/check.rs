//! Repository-level `check`: verify every segment's entries, rebuild the index from them and
//! compare it with the committed one; `--repair` salvages damaged segments and rewrites the
//! index. Partial checks (`--max-duration`) resume at `last_segment_checked`.

use std::time::Instant;

use super::config::SECTION;
use super::segment::ReadMode;
use super::{update_index, Inner, LocalRepository, Txn, LOGGER};
use crate::repo::local::hints::Hints;
use crate::repo::{RepoError, Result};

pub(super) fn check(
    repo: &LocalRepository,
    inner: &mut Inner,
    repair: bool,
    max_duration: u64,
) -> Result<bool> {
    if repo.append_only && repair {
        return Err(RepoError::AppendOnly(repo.path.display().to_string()));
    }
    let mut errors: Vec<String> = Vec::new();
    let mut report = |msg: String| {
        crate::log::error(LOGGER, &msg);
        errors.push(msg);
    };
    crate::log::info(LOGGER, "Starting repository check");
    let (mut tid, current_index) = match (|| -> Result<_> {
        let t = repo.transaction_id(inner)?;
        let idx = repo.open_index(inner, t, true)?;
        Ok((t, Some(idx)))
    })() {
        Ok(r) => r,
        Err(e) => {
            crate::log::debug(LOGGER, &format!("Failed to read committed index ({e})"));
            (inner.io.segments_transaction_id()?, None)
        }
    };
    if tid.is_none() {
        tid = repo.index_transaction_id()?;
    }
    if tid.is_none() {
        tid = inner.io.latest_segment()?;
    }
    let Some(tid) = tid else {
        report("This repository contains no valid data.".into());
        return Ok(false);
    };
    if repair {
        repo.ensure_exclusive(inner)?;
        inner.io.cleanup(Some(tid))?;
    }
    let segments_tid = inner.io.segments_transaction_id()?;
    // Start from nothing: the index is rebuilt from the segments.
    inner.index = Some(Default::default());
    inner.txn = Some(Txn {
        hints: Hints::default(),
    });
    inner.io.next_segment = tid + 1;
    let segs = inner.io.segment_numbers()?;
    let partial = max_duration > 0;
    let mut cfg = inner.config.clone();
    let last_checked: i64 = if partial {
        let v = cfg
            .ini
            .get(SECTION, "last_segment_checked")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1);
        crate::log::info(LOGGER, &format!("skipping to segments >= {}", v + 1));
        v
    } else {
        if cfg.ini.remove(SECTION, "last_segment_checked") {
            cfg.save(&repo.path)?;
            inner.config = cfg.clone();
        }
        -1
    };
    let mode = if partial { "partial" } else { "full" };
    let start = Instant::now();
    let mut progress = crate::log::ProgressPercent::new(
        segs.len() as u64,
        "Checking segments %3.1f%%",
        "repository.check",
    );
    let mut completed = true;
    let mut last_seg: i64 = -1;
    for (i, &seg) in segs.iter().enumerate() {
        progress.show(i as u64);
        last_seg = seg as i64;
        if (seg as i64) <= last_checked || seg > tid {
            continue;
        }
        let mut entries = Vec::new();
        let mut damaged = false;
        match inner.io.iter_objects(seg, 0, ReadMode::Verify) {
            Ok(iter) => {
                for e in iter {
                    match e {
                        Ok(e) => entries.push(e),
                        Err(err) => {
                            report(format!(
                                "{err} [file {}]",
                                inner.io.segment_filename(seg).display()
                            ));
                            damaged = true;
                            break;
                        }
                    }
                }
            }
            Err(err) => {
                report(err.to_string());
                damaged = true;
            }
        }
        if damaged {
            entries.clear();
            if repair {
                inner.io.recover_segment(seg)?;
                entries = inner
                    .io
                    .iter_objects(seg, 0, ReadMode::Verify)?
                    .collect::<Result<Vec<_>>>()?;
            }
        }
        if !partial {
            let mut rep = |m: String| report(m);
            update_index(inner, seg, &entries, Some(&mut rep))?;
        }
        if partial && start.elapsed().as_secs() >= max_duration {
            crate::log::info(
                LOGGER,
                &format!("finished partial segment check, last segment checked is {seg}"),
            );
            cfg.ini
                .set(SECTION, "last_segment_checked", seg.to_string());
            cfg.save(&repo.path)?;
            inner.config = cfg.clone();
            completed = false;
            break;
        }
    }
    if completed {
        crate::log::info(
            LOGGER,
            &format!("finished segment check at segment {last_seg}"),
        );
        if cfg.ini.remove(SECTION, "last_segment_checked") {
            cfg.save(&repo.path)?;
            inner.config = cfg.clone();
        }
    }
    progress.finish();
    if repair && segments_tid.is_none() {
        report(format!("Adding commit tag to segment {tid}"));
        inner.io.next_segment = tid + 1;
        inner.io.write_commit(false)?;
    }
    if !partial {
        crate::log::info(LOGGER, "Starting repository index check");
        let rebuilt = inner.index.as_ref().expect("index");
        if let (Some(current), false) = (&current_index, repair) {
            if current.len() != rebuilt.len() {
                report("Index object count mismatch.".into());
                crate::log::error(
                    LOGGER,
                    &format!("committed index: {} objects", current.len()),
                );
                crate::log::error(
                    LOGGER,
                    &format!("rebuilt index:   {} objects", rebuilt.len()),
                );
            } else {
                crate::log::info(LOGGER, "Index object count match.");
            }
            let mut mismatches = Vec::new();
            for (k, v) in rebuilt.iter() {
                if current.get(k) != Some(v) {
                    mismatches.push(format!(
                        "ID: {:<64} rebuilt index: {:<16} committed index: {:<16}",
                        k.hex(),
                        format!("{v:?}"),
                        current
                            .get(k)
                            .map_or("<not found>".to_string(), |c| format!("{c:?}"))
                    ));
                }
            }
            for (k, v) in current.iter() {
                if !rebuilt.contains_key(k) {
                    mismatches.push(format!(
                        "ID: {:<64} rebuilt index: {:<16} committed index: {:<16}",
                        k.hex(),
                        "<not found>",
                        format!("{v:?}")
                    ));
                }
            }
            // borg 1.4 counts per-key differences as errors.
            for m in mismatches {
                report(m);
            }
        }
        if repair {
            repo.write_index(inner)?;
        }
    }
    repo.rollback_inner(inner, false)?;
    let found = !errors.is_empty();
    if found {
        if repair {
            crate::log::info(
                LOGGER,
                &format!("Finished {mode} repository check, errors found and repaired."),
            );
        } else {
            crate::log::error(
                LOGGER,
                &format!("Finished {mode} repository check, errors found."),
            );
        }
    } else {
        crate::log::info(
            LOGGER,
            &format!("Finished {mode} repository check, no problems found."),
        );
    }
    Ok(!found || repair)
}
