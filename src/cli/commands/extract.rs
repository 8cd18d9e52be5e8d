//! `borg extract`: restore archive contents into the current directory.

use clap::Args;

use crate::archive::extract::{is_dir, is_parallel_file, ExtractOptions, Extractor, ItemWarning};
use crate::archive::item::Item;
use crate::archive::itemstream::ItemReader;
use crate::archive::manifest::Operation;
use crate::archive::meta::ArchiveMeta;
use crate::archive::patterns::{strip_components, PatternMatcher};
use crate::archive::ArchiveError;
use crate::cli::common::{location, Ctx, PatternOpts, Want};
use crate::cli::exit;

#[derive(Args, Debug)]
pub struct ExtractArgs {
    /// output verbose list of items (files, dirs, ...)
    #[arg(long = "list")]
    pub list: bool,
    /// do not actually change any files
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// only obey numeric user and group identifiers
    #[arg(long = "numeric-ids", visible_alias = "numeric-owner")]
    pub numeric_ids: bool,
    /// do not extract/set flags (e.g. NODUMP, IMMUTABLE)
    #[arg(long = "noflags", visible_alias = "nobsdflags")]
    pub noflags: bool,
    /// do not extract/set ACLs
    #[arg(long = "noacls")]
    pub noacls: bool,
    /// do not extract/set xattrs
    #[arg(long = "noxattrs")]
    pub noxattrs: bool,
    /// write all extracted data to stdout
    #[arg(long = "stdout")]
    pub stdout: bool,
    /// create holes in output sparse file from all-zero chunks
    #[arg(long = "sparse")]
    pub sparse: bool,
    #[command(flatten)]
    pub patterns: PatternOpts,
    /// Remove the specified number of leading path elements. Paths with fewer elements will be silently skipped.
    #[arg(long = "strip-components", value_name = "NUMBER", default_value_t = 0)]
    pub strip_components: usize,
    /// archive to extract
    #[arg(value_name = "ARCHIVE")]
    pub location: String,
    /// paths to extract; patterns are supported
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
}

fn report(ws: Vec<ItemWarning>) {
    for w in ws {
        exit::warn(w.code, Some(warning_msgid(w.code)), &w.msg);
    }
}

fn warning_msgid(code: i32) -> &'static str {
    match code {
        101 => "IncludePatternNeverMatchedWarning",
        102 => "BackupError",
        104 => "BackupOSError",
        105 => "BackupPermissionError",
        106 => "BackupIOError",
        107 => "BackupFileNotFoundError",
        108 => "BackupSymlinkParentError",
        109 => "BackupPathTraversalError",
        110 => "BackupHardlinkSourceError",
        _ => "BorgWarning",
    }
}

/// Consecutive files whose content is fetched together: at most this many bytes...
const SMALL_GROUP_BYTES: u64 = 1 << 20;
/// ...and this many items.
const SMALL_GROUP_ITEMS: usize = 16;

/// Loads an archive's metadata by name.
pub fn load_archive(
    session: &crate::archive::session::Session,
    name: &str,
) -> anyhow::Result<ArchiveMeta> {
    let entry = session
        .manifest
        .get(name)
        .ok_or_else(|| ArchiveError::DoesNotExist(name.to_string()))?;
    Ok(ArchiveMeta::load(&*session.repo, &session.key, &entry.id)?)
}

const WINDOW: usize = 4096;

pub fn run(a: &ExtractArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(Some(&a.location), Want::Archive, "ARCHIVE")?;
    let mut pargs = a.patterns.build(&ctx.sub)?;
    // `R` roots act as PATHs when no PATH is given
    let mut paths = a.paths.clone();
    if paths.is_empty() {
        paths = std::mem::take(&mut pargs.roots);
    }
    let matcher = PatternMatcher::for_archive(pargs.patterns, &paths)
        .map_err(|e| exit::GenericError(e.to_string()))?;
    let session = ctx.session(&loc, false, Operation::Read)?;
    let name = loc.archive.clone().unwrap_or_default();
    let meta = load_archive(&session, &name)?;
    let opts = ExtractOptions {
        numeric_ids: a.numeric_ids,
        noacls: a.noacls,
        noxattrs: a.noxattrs,
        noflags: a.noflags,
        sparse: a.sparse,
        dry_run: a.dry_run,
        stdout: a.stdout,
    };
    let cwd = std::env::current_dir()?;
    let ex = Extractor::new(&*session.repo, &session.key, opts, Some(&cwd))?;
    let consider_parts = ctx.common.consider_part_files;
    let strip = a.strip_components;
    let selected = |item: &Item| -> Option<Vec<u8>> {
        if item.part.is_some() && !consider_parts {
            return None;
        }
        let p = item.path_str();
        if !matcher.is_included(&p) {
            return None;
        }
        if strip == 0 {
            return Some(item.path.clone());
        }
        strip_components(&p, strip).map(|s| s.as_bytes().to_vec())
    };
    let mut progress = None;
    if ctx.common.progress {
        let mut total = 0u64;
        for item in ItemReader::new(&*session.repo, &session.key, &meta.items) {
            let item = item?;
            if selected(&item).is_some() {
                total += item.content_size();
            }
        }
        progress = Some((
            crate::log::ProgressPercent::new(total, "%5.1f%% Extracting: %s", "extract"),
            0u64,
        ));
    }
    let progress = std::sync::Mutex::new(progress);
    // Extracts one window in archive order; consecutive regular files run in parallel (in
    // groups) when `parallel`, whose directories were then made before.
    let execute = |window: &[(Item, Vec<u8>)], parallel: bool| -> anyhow::Result<()> {
        let mut run: Vec<&(Item, Vec<u8>)> = Vec::new();
        let exr = &ex;
        let flush_run = |run: &mut Vec<&(Item, Vec<u8>)>| -> anyhow::Result<()> {
            use rayon::prelude::*;
            let results: Vec<anyhow::Result<Vec<ItemWarning>>> = if parallel {
                // small files in groups: their chunks are opened together (shared hash lanes)
                let mut groups: Vec<&[&(Item, Vec<u8>)]> = Vec::new();
                let (mut start, mut bytes) = (0, 0u64);
                for (k, (item, _)) in run.iter().enumerate() {
                    bytes += item.size.unwrap_or(0);
                    if bytes >= SMALL_GROUP_BYTES || k + 1 - start >= SMALL_GROUP_ITEMS {
                        groups.push(&run[start..=k]);
                        (start, bytes) = (k + 1, 0);
                    }
                }
                if start < run.len() {
                    groups.push(&run[start..]);
                }
                groups
                    .into_par_iter()
                    .flat_map_iter(|g| {
                        let pre = exr.prefetch_small(g);
                        g.iter()
                            .zip(pre)
                            .map(|((i, d), p)| Ok(exr.extract_item_with(i, d, p)?))
                            .collect::<Vec<_>>()
                    })
                    .collect()
            } else {
                run.iter()
                    .map(|(i, d)| Ok(exr.extract_item(i, d)?))
                    .collect()
            };
            run.clear();
            for r in results {
                report(r?);
            }
            Ok(())
        };
        for entry in window {
            let (item, dest) = entry;
            if is_parallel_file(item) {
                run.push(entry);
            } else if parallel && is_dir(item) {
                // made before
            } else {
                flush_run(&mut run)?;
                if is_dir(item) {
                    report(exr.make_dir(dest));
                } else {
                    report(exr.extract_item(item, dest)?);
                }
            }
            let mut progress = progress.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((p, done)) = progress.as_mut() {
                *done += item.content_size();
                p.show_with(*done, Some(&String::from_utf8_lossy(dest)));
            }
        }
        flush_run(&mut run)
    };
    let keep_dirs = !ex.opts.dry_run && !ex.opts.stdout;
    // directories, with their destination paths, for restoring their attributes last
    let mut dirs: Vec<Item> = Vec::new();
    let mut window: Window = Vec::new();
    // hardlink masters of `window`, made known when it is extracted
    let mut pending_masters: Vec<(Vec<u8>, Vec<crate::archive::item::ChunkRef>)> = Vec::new();
    let mut unflagged_indexed = false;
    // Items are fetched and decoded on a helper thread, in batches; while the pool extracts
    // one window (on a thread of its own), this thread takes the next one and makes its
    // directories: otherwise the workers would idle at every window's start.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<crate::archive::Result<Item>>>(4);
    let (repo, key, ids) = (&*session.repo, &session.key, &meta.items);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        scope.spawn(move || {
            let mut batch = Vec::with_capacity(256);
            for item in ItemReader::new(repo, key, ids) {
                let failed = item.is_err();
                batch.push(item);
                // an error ends the stream, but is always delivered
                if batch.len() == 256 || failed {
                    let gone = tx.send(std::mem::take(&mut batch)).is_err();
                    if gone || failed {
                        return;
                    }
                }
            }
            let _ = tx.send(batch);
        });
        // dropping `rx` on an early return stops the helper at its next send
        let rx = rx;
        let mut inflight: Option<InFlight> = None;
        // `None` at the end: the last window is dispatched like the others
        let items = rx.iter().flatten().map(Some).chain(std::iter::once(None));
        for item in items {
            if let Some(item) = item {
                let item = item?;
                if item.hardlink_master == Some(true) {
                    if let Some(c) = &item.chunks {
                        pending_masters.push((item.path.clone(), c.clone()));
                    }
                }
                let Some(dest) = selected(&item) else {
                    continue;
                };
                if item.is_hardlink_slave() && !unflagged_indexed {
                    let src = item.source.as_deref().unwrap_or_default();
                    let known = || {
                        pending_masters.iter().any(|(p, _)| p == src)
                            || ex
                                .masters
                                .read()
                                .unwrap_or_else(|e| e.into_inner())
                                .contains_key(src)
                            || ex
                                .written_masters
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .contains_key(src)
                    };
                    if !known() {
                        // the window in flight may be the one writing it
                        if let Some(f) = inflight.take() {
                            f.finish(keep_dirs, &mut dirs)?;
                        }
                        if !known() {
                            index_unflagged_masters(&ex, &selected, &session, &meta)?;
                            unflagged_indexed = true;
                        }
                    }
                }
                if a.list {
                    crate::log::info("borg.output.list", &String::from_utf8_lossy(&dest));
                }
                window.push((item, dest));
                if window.len() < WINDOW {
                    continue;
                }
            }
            if window.is_empty() {
                continue;
            }
            let window = std::mem::take(&mut window);
            let dups = {
                let mut seen = std::collections::HashSet::new();
                window.iter().any(|(_, d)| !seen.insert(d.as_slice()))
            };
            let writes: std::collections::HashSet<Vec<u8>> = window
                .iter()
                .filter(|(item, _)| !is_dir(item))
                .filter_map(|(_, d)| normalised(d))
                .collect();
            // With unique paths and no directory at or under another item's path, every
            // directory of the window can be made up front (each comes after its parent in
            // archive order): files are then not split into short runs at every directory.
            let parallel = !(dups || a.stdout || clashes(&writes, &window));
            if parallel {
                // made while the previous window is extracted, unless one is at or under a
                // path that window writes
                if inflight
                    .as_ref()
                    .is_some_and(|f| clashes(&f.writes, &window))
                {
                    if let Some(f) = inflight.take() {
                        f.finish(keep_dirs, &mut dirs)?;
                    }
                }
                for (item, dest) in &window {
                    if is_dir(item) {
                        report(ex.make_dir(dest));
                    }
                }
            }
            if let Some(f) = inflight.take() {
                f.finish(keep_dirs, &mut dirs)?;
            }
            ex.masters
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .extend(pending_masters.drain(..));
            let execute = &execute;
            let handle = scope.spawn(move || (execute(&window, parallel), window));
            inflight = Some(InFlight { handle, writes });
        }
        if let Some(f) = inflight.take() {
            f.finish(keep_dirs, &mut dirs)?;
        }
        Ok(())
    })?;
    if let Some((mut p, _)) = progress.into_inner().unwrap_or_else(|e| e.into_inner()) {
        p.finish();
    }
    // directory attributes last, deepest first
    ex.restore_dirs(&dirs, &mut report);
    for w in matcher.never_matched_warnings() {
        exit::warn(101, Some("IncludePatternNeverMatchedWarning"), &w);
    }
    Ok(())
}

/// Items to extract, each with its destination path.
type Window = Vec<(Item, Vec<u8>)>;

/// A window being extracted on its own thread.
struct InFlight<'s> {
    /// the outcome, and the window handed back
    handle: std::thread::ScopedJoinHandle<'s, (anyhow::Result<()>, Window)>,
    /// normalised paths of its items other than directories
    writes: std::collections::HashSet<Vec<u8>>,
}

impl InFlight<'_> {
    /// Waits for the window; its directories go to `dirs` when `keep_dirs`.
    fn finish(self, keep_dirs: bool, dirs: &mut Vec<Item>) -> anyhow::Result<()> {
        let (outcome, window) = self
            .handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        outcome?;
        if keep_dirs {
            for (item, dest) in window {
                if is_dir(&item) {
                    dirs.push(Item { path: dest, ..item });
                }
            }
        }
        Ok(())
    }
}

/// Is a directory of `window` at or under one of the (normalised) paths in `writes`?
fn clashes(writes: &std::collections::HashSet<Vec<u8>>, window: &[(Item, Vec<u8>)]) -> bool {
    window
        .iter()
        .filter(|(item, _)| is_dir(item))
        .any(|(_, dest)| {
            let Ok(comps) = crate::archive::extract::SafeRoot::components(dest) else {
                return false;
            };
            (1..=comps.len()).any(|n| writes.contains(&comps[..n].join(&b'/')))
        })
}

/// A destination path with its components joined by single slashes (`None`: not
/// extractable; such an item gets a warning and writes nothing).
fn normalised(dest: &[u8]) -> Option<Vec<u8>> {
    crate::archive::extract::SafeRoot::components(dest)
        .ok()
        .map(|c| c.join(&b'/'))
}

/// Archives made by import-tar (borg's and rborg's) mark no `hardlink_master`: a slave's
/// master is simply the earlier item at its `source` path. The first time a slave's master is
/// unknown, one extra pass over the items finds every slave's master: a selected master is
/// linked to at its destination, an unselected one lends its chunks.
fn index_unflagged_masters(
    ex: &Extractor,
    selected: &dyn Fn(&Item) -> Option<Vec<u8>>,
    session: &crate::archive::session::Session,
    meta: &crate::archive::meta::ArchiveMeta,
) -> anyhow::Result<()> {
    let mut sources = std::collections::HashSet::new();
    for item in ItemReader::new(&*session.repo, &session.key, &meta.items) {
        let item = item?;
        if item.is_hardlink_slave() {
            if let Some(s) = item.source {
                sources.insert(s);
            }
        }
    }
    let mut written = ex.written_masters.lock().unwrap_or_else(|e| e.into_inner());
    for item in ItemReader::new(&*session.repo, &session.key, &meta.items) {
        let item = item?;
        if item.source.is_some() || !sources.remove(&item.path) {
            continue;
        }
        match selected(&item) {
            Some(dest) => {
                written.entry(item.path.clone()).or_insert(dest);
            }
            None => {
                if let Some(c) = item.chunks {
                    ex.masters
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(item.path.clone())
                        .or_insert(c);
                }
            }
        }
    }
    Ok(())
}
