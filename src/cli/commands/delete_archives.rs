//! `borg delete REPO::ARCHIVE ...` and filtered deletes of archives.

use super::delete::DeleteArgs;
use crate::archive::cache::Cache;
use crate::archive::chunkstore::Stats;
use crate::archive::delete::delete_archive;
use crate::archive::manifest::Operation;
use crate::cli::common::{ArchiveFilterOpts, Ctx};
use crate::cli::exit;
use crate::compress::Compression;

pub fn run(a: &DeleteArgs, ctx: &Ctx, loc: &crate::repo::Location) -> anyhow::Result<()> {
    let mut session = ctx.session(loc, true, Operation::Delete)?;
    let names: Vec<String> = if loc.archive.is_some() || !a.archives.is_empty() {
        loc.archive
            .iter()
            .cloned()
            .chain(a.archives.iter().cloned())
            .collect()
    } else {
        let f = ArchiveFilterOpts {
            prefix: a.prefix.clone(),
            glob_archives: a.glob_archives.clone(),
            sort_by: a.sort_by.clone(),
            first: a.first,
            last: a.last,
        };
        super::list::filtered_archives(&session, &f, true)?
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r.name).into_owned())
            .collect()
    };
    if names.is_empty() {
        return Ok(());
    }
    let n = names.len();
    if a.force >= 2 {
        let mut deleted = false;
        for (i, name) in names.iter().enumerate() {
            match session.manifest.get(name).cloned() {
                None => exit::warn(
                    1,
                    None,
                    &format!("Archive {name} not found ({}/{n}).", i + 1),
                ),
                Some(e) => {
                    session.manifest.archives.remove(name.as_bytes());
                    deleted = true;
                    if a.list {
                        let msg = if a.dry_run {
                            "Would delete"
                        } else {
                            "Deleted archive"
                        };
                        crate::log::info(
                            "borg.output.list",
                            &format!("{msg}: {name} ({}/{n})", i + 1),
                        );
                    }
                    let _ = e;
                }
            }
        }
        if deleted && !a.dry_run {
            session.commit_manifest(&Compression::Lz4)?;
            crate::log::warning(
                "borg.archiver",
                "Done. Run \"borg check --repair\" to clean up the mess.",
            );
        } else if a.dry_run {
            crate::log::warning("borg.archiver", "Aborted (dry run).");
        }
        return Ok(());
    }
    let mut cache = Cache::open(&*session.repo, &session.key, &session.manifest)?;
    let mut stats = Stats::default();
    let mut uncommitted = 0;
    let mut last_commit = std::time::Instant::now();
    let mut progress =
        crate::log::ProgressPercent::new(n as u64, "Deleting archives %3.0f%%", "archive.delete");
    for (i, name) in names.iter().enumerate() {
        progress.show(i as u64);
        let Some(entry) = session.manifest.get(name).cloned() else {
            exit::warn(
                1,
                None,
                &format!("Archive {name} not found ({}/{n}).", i + 1),
            );
            continue;
        };
        if a.list {
            let msg = if a.dry_run {
                "Would delete archive"
            } else {
                "Deleting archive"
            };
            crate::log::info(
                "borg.output.list",
                &format!(
                    "{msg}: {:<36} {} [{}] ({}/{n})",
                    name,
                    crate::cli::timefmt::format_time_local(&entry.ts()),
                    entry.id.hex(),
                    i + 1
                ),
            );
        }
        if a.dry_run {
            continue;
        }
        delete_archive(
            &*session.repo,
            &session.key,
            &mut session.manifest,
            &mut cache.chunks,
            name.as_bytes(),
            a.force > 0,
            &mut stats,
        )?;
        cache.forget_archive(&entry.id);
        uncommitted += 1;
        if last_commit.elapsed().as_secs() >= a.checkpoint_interval {
            session.commit_manifest(&Compression::Lz4)?;
            cache.commit(&session.manifest)?;
            uncommitted = 0;
            last_commit = std::time::Instant::now();
        }
    }
    progress.finish();
    if uncommitted > 0 {
        session.commit_manifest(&Compression::Lz4)?;
        cache.commit(&session.manifest)?;
    }
    if a.stats && !a.dry_run {
        super::prune::print_deleted_stats(&stats, Some(&cache));
    }
    Ok(())
}
