//! Repository-level `check`: verify every segment's entries, rebuild the index from them and
//! compare it with the committed one; `--repair` salvages damaged segments and rewrites the
//! index. Partial checks (`--max-duration`) resume at `last_segment_checked`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::config::SECTION;
use super::segment::ReadMode;
use super::{update_index, Inner, LocalRepository, Txn, LOGGER};
use crate::repo::local::hints::Hints;
use crate::repo::{ObjectId, ObjectVerifier, RepoError, Result, VerifiedObjects};

/// Values waiting for a verifying worker are bounded by this; beyond it the reading thread
/// verifies itself (memory stays bounded, no thread waits for another).
const VERIFY_IN_FLIGHT: usize = 12 << 20;
/// Values handed to a worker together.
const VERIFY_BATCH: usize = 2 << 20;

type Failure = (ObjectId, u32, u32, bool, String);

/// Verifies values handed over by the segment reader on the rayon pool.
struct Verifying<'v> {
    verify: &'v ObjectVerifier<'v>,
    failures: Mutex<Vec<Failure>>,
    in_flight: AtomicUsize,
}

impl Verifying<'_> {
    fn run(&self, batch: Vec<(ObjectId, u32, u32, Vec<u8>)>) {
        for (id, seg, off, data) in batch {
            if let Err((integrity, msg)) = (self.verify)(&id, data) {
                self.failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((id, seg, off, integrity, msg));
            }
        }
    }

    fn dispatch<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        batch: &mut Vec<(ObjectId, u32, u32, Vec<u8>)>,
        bytes: &mut usize,
    ) {
        let batch = std::mem::take(batch);
        let n = std::mem::take(bytes);
        if self.in_flight.load(Ordering::Acquire) >= VERIFY_IN_FLIGHT {
            self.run(batch);
            return;
        }
        self.in_flight.fetch_add(n, Ordering::AcqRel);
        scope.spawn(move |_| {
            self.run(batch);
            self.in_flight.fetch_sub(n, Ordering::AcqRel);
        });
    }
}

pub(super) fn check(
    repo: &LocalRepository,
    inner: &mut Inner,
    repair: bool,
    max_duration: u64,
    verify: Option<&ObjectVerifier>,
) -> Result<(bool, Option<VerifiedObjects>)> {
    let verifying = verify.map(|verify| Verifying {
        verify,
        failures: Mutex::new(Vec::new()),
        in_flight: AtomicUsize::new(0),
    });
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
        return Ok((false, None));
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
    let read_mode = if verifying.is_some() {
        ReadMode::WithData
    } else {
        ReadMode::Verify
    };
    // with a verifier, the rayon pool verifies values while this thread reads on
    let verifier = verifying.as_ref();
    rayon::in_place_scope(|scope| -> Result<()> {
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        for (i, &seg) in segs.iter().enumerate() {
            progress.show(i as u64);
            last_seg = seg as i64;
            if (seg as i64) <= last_checked || seg > tid {
                continue;
            }
            let mut entries = Vec::new();
            let mut damaged = false;
            match inner.io.iter_objects(seg, 0, read_mode) {
                Ok(iter) => {
                    for e in iter {
                        match e {
                            Ok(mut e) => {
                                if let (Some(v), Some(data)) = (verifier, e.data.take()) {
                                    batch_bytes += data.len();
                                    batch.push((e.key, seg, e.offset, data));
                                    if batch_bytes >= VERIFY_BATCH {
                                        v.dispatch(scope, &mut batch, &mut batch_bytes);
                                    }
                                }
                                entries.push(e)
                            }
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
        if let Some(v) = verifier {
            v.dispatch(scope, &mut batch, &mut batch_bytes);
        }
        Ok(())
    })?;
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
    // verification outcome of the objects the rebuilt index holds (values of superseded or
    // damaged entries do not count)
    let verified = verifying.map(|v| {
        let index = inner.index.as_ref().expect("index");
        let failures = v.failures.into_inner().unwrap_or_else(|e| e.into_inner());
        VerifiedObjects {
            count: index.len(),
            failures: failures
                .into_iter()
                .filter(|(id, seg, off, _, _)| index.get(id) == Some(&(*seg, *off)))
                .map(|(id, _, _, integrity, msg)| (id, integrity, msg))
                .collect(),
        }
    });
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
    Ok((!found || repair, verified))
}
