//! Directory listings read ahead of the walk on a helper thread.
//!
//! When little has changed, `create` is bound by the walking thread, and half of its time
//! is the kernel listing directories and stat-ing entries. A helper thread walks the same
//! tree in the same order a little ahead and hands each directory's listing (names in
//! inode order, each with its `lstat` result) to the walker, which decides everything else
//! as before. The walker never waits for the helper unless the helper is reading that very
//! directory; a directory the helper has not reached is listed by the walker itself.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::walk::{child_path, normpath_bytes};
use crate::archive::patterns::PatternMatcher;

/// A directory's entries in inode order, each with its `lstat` result, and the error that
/// ended the listing early, if any.
pub struct Listing {
    pub entries: Vec<(OsString, std::io::Result<std::fs::Metadata>)>,
    pub error: Option<std::io::Error>,
}

/// Lists a directory as the walker does: `read_dir`, inode order, `fstatat` per entry.
pub fn list_dir(dir: &OsStr) -> std::io::Result<Listing> {
    let mut found: Vec<(u64, std::fs::DirEntry)> = Vec::new();
    let mut error = None;
    for e in std::fs::read_dir(dir)? {
        match e {
            Ok(e) => found.push((e.ino(), e)),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    found.sort_by_key(|(ino, _)| *ino);
    // DirEntry::metadata stats relative to the open directory (no path walk per entry)
    let entries = found
        .into_iter()
        .map(|(_, e)| (e.file_name(), e.metadata()))
        .collect();
    Ok(Listing { entries, error })
}

/// Entries held for the walker at most (~1 MiB of listings: a few directories ahead is all
/// it takes to keep the walker from waiting); the helper waits beyond it.
const AHEAD: usize = 4_096;

#[derive(Default)]
struct State {
    ready: HashMap<Vec<u8>, std::io::Result<Listing>>,
    /// Directories the walker listed itself: not kept if the helper gets to them later.
    claimed: HashSet<Vec<u8>>,
    /// The directory the helper is reading now.
    reading: Option<Vec<u8>>,
    held: usize,
    stop: bool,
    /// Threads waiting on `changed`: a wake-up costs a syscall even with nobody to wake.
    waiters: usize,
}

/// The shared state between the walker and the helper thread.
#[derive(Default)]
pub struct Prefetch {
    state: Mutex<State>,
    changed: Condvar,
}

/// What the helper needs to follow the walker's path through the tree.
pub struct Plan {
    pub roots: Vec<Vec<u8>>,
    /// A copy: the helper's evaluations must not count as the walker's pattern matches.
    pub matcher: PatternMatcher,
    pub one_file_system: bool,
    pub skip_inodes: HashSet<(u64, u64)>,
}

/// The helper thread. It is started as soon as its plan is known, before the key is derived
/// and the caches are loaded, so its listings are ready when the walk starts; dropping it
/// stops and joins it (whether or not the walk ever ran).
pub struct ReadAhead {
    prefetch: std::sync::Arc<Prefetch>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReadAhead {
    pub fn start(plan: Plan) -> ReadAhead {
        let prefetch = std::sync::Arc::new(Prefetch::default());
        let p = prefetch.clone();
        let thread = std::thread::Builder::new()
            .name("rborg-readahead".into())
            .spawn(move || p.run(plan))
            .ok();
        if thread.is_none() {
            // no thread: the walker lists every directory itself
            prefetch.stop();
        }
        ReadAhead { prefetch, thread }
    }

    pub fn prefetch(&self) -> &Prefetch {
        &self.prefetch
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.prefetch.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Prefetch {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'g>(&self, mut s: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        s.waiters += 1;
        let mut s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        s.waiters -= 1;
        s
    }

    fn wake(&self, s: &State) {
        if s.waiters > 0 {
            self.changed.notify_all();
        }
    }

    /// The listing of `path` if the helper has it (waiting only while it reads exactly
    /// that directory); `None` means the caller lists it itself.
    pub fn take(&self, path: &[u8]) -> Option<std::io::Result<Listing>> {
        let mut s = self.lock();
        loop {
            if let Some(l) = s.ready.remove(path) {
                s.held -= l.as_ref().map_or(1, |l| l.entries.len().max(1));
                self.wake(&s);
                return Some(l);
            }
            if s.reading.as_deref() != Some(path) || s.stop {
                s.claimed.insert(path.to_vec());
                return None;
            }
            s = self.wait(s);
        }
    }

    /// Ends the helper's walk (the walker is done or failed).
    pub fn stop(&self) {
        self.lock().stop = true;
        self.changed.notify_all();
    }

    /// The helper thread's walk: depth-first, directories in the walker's order.
    fn run(&self, plan: Plan) {
        for raw in &plan.roots {
            let path = normpath_bytes(raw);
            let Ok(meta) = std::fs::symlink_metadata(OsStr::from_bytes(&path)) else {
                continue;
            };
            let dev = plan.one_file_system.then_some(meta.dev());
            if meta.is_dir() && !self.visit(&plan, path, dev) {
                return;
            }
        }
    }

    /// Lists `path` and descends into its subdirectories; `false` once stopped.
    fn visit(&self, plan: &Plan, path: Vec<u8>, dev: Option<u64>) -> bool {
        {
            let mut s = self.lock();
            while s.held >= AHEAD && !s.stop {
                s = self.wait(s);
            }
            if s.stop {
                return false;
            }
            s.reading = Some(path.clone());
        }
        let listing = list_dir(OsStr::from_bytes(&path));
        let mut subdirs = Vec::new();
        if let Ok(l) = &listing {
            for (name, meta) in &l.entries {
                let Ok(m) = meta else { continue };
                if !m.is_dir()
                    || dev.is_some_and(|d| d != m.dev())
                    || plan.skip_inodes.contains(&(m.ino(), m.dev()))
                {
                    continue;
                }
                let child = child_path(&path, name.as_bytes());
                let d = plan.matcher.evaluate(&String::from_utf8_lossy(&child));
                if d.include || d.recurse {
                    subdirs.push(child);
                }
            }
        }
        {
            let mut s = self.lock();
            s.reading = None;
            if !s.claimed.remove(&path) {
                s.held += listing.as_ref().map_or(1, |l| l.entries.len().max(1));
                s.ready.insert(path, listing);
            }
            self.wake(&s);
        }
        subdirs
            .into_iter()
            .all(|child| self.visit(plan, child, dev))
    }
}
