//! Repository-level `check`: verify every segment's entries, rebuild the index from them and
//! compare it with the committed one; `--repair` salvages damaged segments and rewrites the
//! index. Partial checks (`--max-duration`) resume at `last_segment_checked`.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use super::config::SECTION;
use super::segment::ReadMode;
use super::{update_index, Inner, LocalRepository, Txn, LOGGER};
use crate::repo::local::hints::Hints;
use crate::repo::{ObjectId, ObjectVerifier, RepoError, Result, VerifiedObjects};

/// Values waiting for a verifying worker are bounded by this; beyond it the reading thread
/// verifies some itself (memory stays bounded, the reader never waits for a worker).
const VERIFY_IN_FLIGHT: usize = 8 << 20;

type Failure = (ObjectId, u32, u32, bool, String);
type Queued = (ObjectId, u32, u32, Vec<u8>);

#[derive(Default)]
struct Queue {
    items: VecDeque<Queued>,
    bytes: usize,
    closed: bool,
}

/// Verifies values handed over by the segment reader: workers on the rayon pool each pull
/// objects one at a time as their hash lanes free up (no batches whose slowest object
/// holds a worker).
struct Verifying<'v> {
    verify: &'v ObjectVerifier<'v>,
    failures: Mutex<Vec<Failure>>,
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Verifying<'_> {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a value; when too much is waiting, the caller verifies some itself.
    fn push(&self, obj: Queued) {
        let over = {
            let mut q = self.queue();
            q.bytes += obj.3.len();
            q.items.push_back(obj);
            q.bytes >= VERIFY_IN_FLIGHT
        };
        self.wake.notify_one();
        if over {
            self.work(false);
        }
    }

    /// No more values: workers finish what is queued and stop.
    fn close(&self) {
        self.queue().closed = true;
        self.wake.notify_all();
    }

    /// The next queued value; with `wait`, blocks until one arrives or the queue closes,
    /// without, stops once the queue is below half its bound.
    fn pull(&self, wait: bool) -> Option<Queued> {
        let mut q = self.queue();
        loop {
            if !wait && q.bytes < VERIFY_IN_FLIGHT / 2 {
                return None;
            }
            if let Some(obj) = q.items.pop_front() {
                q.bytes -= obj.3.len();
                return Some(obj);
            }
            if q.closed || !wait {
                return None;
            }
            q = self.wake.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Verifies pulled values until [`Verifying::pull`] yields none.
    fn work(&self, wait: bool) {
        let wheres = std::cell::RefCell::new(Vec::new());
        let mut source = std::iter::from_fn(|| {
            let (id, seg, off, data) = self.pull(wait)?;
            wheres.borrow_mut().push((id, seg, off));
            Some((id, data))
        });
        (self.verify)(&mut source, &mut |i, r| {
            if let Err((integrity, msg)) = r {
                let (id, seg, off) = wheres.borrow()[i];
                self.failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((id, seg, off, integrity, msg));
            }
        });
    }
}

/// Closes the queue however the reading loop ends, so no worker waits forever.
struct CloseOnDrop<'a, 'v>(Option<&'a Verifying<'v>>);

impl Drop for CloseOnDrop<'_, '_> {
    fn drop(&mut self) {
        if let Some(v) = self.0 {
            v.close();
        }
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
        queue: Mutex::new(Queue::default()),
        wake: Condvar::new(),
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
        let _close = CloseOnDrop(verifier);
        if let Some(v) = verifier {
            for _ in 0..rayon::current_num_threads() {
                scope.spawn(move |_| v.work(true));
            }
        }
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
                                    v.push((e.key, seg, e.offset, data));
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
