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
    let mut ex = Extractor::new(&*session.repo, &session.key, opts, Some(&cwd))?;
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
    let mut window: Vec<(Item, Vec<u8>)> = Vec::new();
    let flush = |window: &mut Vec<(Item, Vec<u8>)>,
                 ex: &mut Extractor,
                 progress: &mut Option<(crate::log::ProgressPercent, u64)>|
     -> anyhow::Result<()> {
        // items run in archive order; consecutive regular files run in parallel
        let dups = {
            let mut seen = std::collections::HashSet::new();
            window.iter().any(|(_, d)| !seen.insert(d.clone()))
        };
        let parallel = !(dups || a.stdout);
        let mut run: Vec<&(Item, Vec<u8>)> = Vec::new();
        let exr = &*ex;
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
        // With unique paths, every directory of the window can be made up front (each comes
        // after its parent in archive order): files are then no longer split into short runs
        // at every directory, and the whole window's files go to the pool together.
        if parallel {
            for (item, dest) in window.iter() {
                if is_dir(item) {
                    report(exr.make_dir(dest));
                }
            }
        }
        for entry in window.iter() {
            let (item, dest) = entry;
            if is_parallel_file(item) {
                run.push(entry);
            } else if parallel && is_dir(item) {
                // made above
            } else {
                flush_run(&mut run)?;
                if is_dir(item) {
                    report(exr.make_dir(dest));
                } else {
                    report(exr.extract_item(item, dest)?);
                }
            }
            if let Some((p, done)) = progress.as_mut() {
                *done += item.content_size();
                p.show_with(*done, Some(&String::from_utf8_lossy(dest)));
            }
        }
        flush_run(&mut run)?;
        for (item, dest) in window.drain(..) {
            if is_dir(&item) && !ex.opts.dry_run && !ex.opts.stdout {
                ex.dirs.push(Item { path: dest, ..item });
            }
        }
        Ok(())
    };
    let mut unflagged_indexed = false;
    // Items are fetched and decoded on a helper thread, in batches, while the pool extracts the
    // previous window: otherwise the workers would idle during every window's decoding.
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
        for item in rx.iter().flatten() {
            let item = item?;
            if item.hardlink_master == Some(true) {
                if let Some(c) = &item.chunks {
                    ex.masters.insert(item.path.clone(), c.clone());
                }
            }
            let Some(dest) = selected(&item) else {
                continue;
            };
            if item.is_hardlink_slave() && !unflagged_indexed {
                let src = item.source.as_deref().unwrap_or_default();
                let known = ex.masters.contains_key(src)
                    || ex
                        .written_masters
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains_key(src);
                if !known {
                    index_unflagged_masters(&mut ex, &selected, &session, &meta)?;
                    unflagged_indexed = true;
                }
            }
            if a.list {
                crate::log::info("borg.output.list", &String::from_utf8_lossy(&dest));
            }
            window.push((item, dest));
            if window.len() >= WINDOW {
                flush(&mut window, &mut ex, &mut progress)?;
            }
        }
        Ok(())
    })?;
    flush(&mut window, &mut ex, &mut progress)?;
    if let Some((mut p, _)) = progress {
        p.finish();
    }
    // directory attributes last, deepest (latest) first
    let dirs = std::mem::take(&mut ex.dirs);
    for d in dirs.iter().rev() {
        let dest = d.path.clone();
        report(ex.restore_dir(d, &dest));
    }
    for w in matcher.never_matched_warnings() {
        exit::warn(101, Some("IncludePatternNeverMatchedWarning"), &w);
    }
    Ok(())
}

/// Archives made by import-tar (borg's and rborg's) mark no `hardlink_master`: a slave's
/// master is simply the earlier item at its `source` path. The first time a slave's master is
/// unknown, one extra pass over the items finds every slave's master: a selected master is
/// linked to at its destination, an unselected one lends its chunks.
fn index_unflagged_masters(
    ex: &mut Extractor,
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
                    ex.masters.entry(item.path.clone()).or_insert(c);
                }
            }
        }
    }
    Ok(())
}
