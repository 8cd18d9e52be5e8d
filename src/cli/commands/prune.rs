//! `borg prune`: delete archives not kept by the retention rules.

use clap::Args;

use crate::archive::cache::Cache;
use crate::archive::chunkstore::Stats;
use crate::archive::delete::delete_archive;
use crate::archive::manifest::Operation;
use crate::archive::prune::{plan_prune, ArchiveRef, PruneRules};
use crate::cli::common::{location, Ctx, Want};
use crate::cli::exit::CommandError;
use crate::compress::Compression;

fn interval(s: &str) -> Result<u64, String> {
    crate::cli::timefmt::parse_interval(s).map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// do not change repository
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// force pruning of corrupted archives, use ``--force --force`` in case ``--force`` does not work.
    #[arg(long = "force", action = clap::ArgAction::Count)]
    pub force: u8,
    /// print statistics for the deleted archive
    #[arg(short = 's', long = "stats")]
    pub stats: bool,
    /// output verbose list of archives it keeps/prunes
    #[arg(long = "list")]
    pub list: bool,
    /// keep all archives within this time interval
    #[arg(long = "keep-within", value_name = "INTERVAL", value_parser = interval)]
    pub within: Option<u64>,
    /// number of secondly archives to keep
    #[arg(
        long = "keep-last",
        visible_alias = "keep-secondly",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub secondly: i64,
    /// number of minutely archives to keep
    #[arg(
        long = "keep-minutely",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub minutely: i64,
    /// number of hourly archives to keep
    #[arg(
        short = 'H',
        long = "keep-hourly",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub hourly: i64,
    /// number of daily archives to keep
    #[arg(
        short = 'd',
        long = "keep-daily",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub daily: i64,
    /// number of weekly archives to keep
    #[arg(
        short = 'w',
        long = "keep-weekly",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub weekly: i64,
    /// number of monthly archives to keep
    #[arg(
        short = 'm',
        long = "keep-monthly",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub monthly: i64,
    /// number of quarterly archives to keep (13 week strategy)
    #[arg(
        long = "keep-13weekly",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true,
        conflicts_with = "quarterly_3monthly"
    )]
    pub quarterly_13weekly: i64,
    /// number of quarterly archives to keep (3 month strategy)
    #[arg(
        long = "keep-3monthly",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub quarterly_3monthly: i64,
    /// number of yearly archives to keep
    #[arg(
        short = 'y',
        long = "keep-yearly",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub yearly: i64,
    /// only consider archive names starting with this prefix. (deprecated)
    #[arg(short = 'P', long = "prefix", value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// only consider archive names matching the glob.
    #[arg(
        short = 'a',
        long = "glob-archives",
        value_name = "GLOB",
        conflicts_with = "prefix"
    )]
    pub glob_archives: Option<String>,
    /// work slower, but using less space
    #[arg(long = "save-space")]
    pub save_space: bool,
    /// write checkpoint every SECONDS seconds (Default: 1800)
    #[arg(
        short = 'c',
        long = "checkpoint-interval",
        value_name = "SECONDS",
        default_value_t = 1800
    )]
    pub checkpoint_interval: u64,
    /// repository to prune
    #[arg(value_name = "REPOSITORY")]
    pub location: Option<String>,
}

pub fn run(a: &PruneArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let rules = PruneRules {
        within_hours: a.within,
        secondly: a.secondly,
        minutely: a.minutely,
        hourly: a.hourly,
        daily: a.daily,
        weekly: a.weekly,
        monthly: a.monthly,
        quarterly_13weekly: a.quarterly_13weekly,
        quarterly_3monthly: a.quarterly_3monthly,
        yearly: a.yearly,
    };
    if rules.validate().is_err() {
        return Err(CommandError(crate::archive::prune::PruneError::NoRules.to_string()).into());
    }
    let loc = location(a.location.as_deref(), Want::Repo, "REPOSITORY")?;
    let glob = match (&a.glob_archives, &a.prefix) {
        (Some(g), _) => Some(crate::cli::placeholders::replace_placeholders(
            g,
            &Default::default(),
        )?),
        (None, Some(p)) => Some(crate::cli::placeholders::prefix_to_glob(
            &crate::cli::placeholders::replace_placeholders(p, &Default::default())?,
        )),
        _ => None,
    };
    let mut session = ctx.session(&loc, true, Operation::Delete)?;
    let refs: Vec<ArchiveRef> = session
        .manifest
        .archives
        .iter()
        .map(|(n, e)| ArchiveRef {
            name: String::from_utf8_lossy(n).into_owned(),
            id: e.id.0,
            ts: e.ts(),
        })
        .collect();
    let plan = plan_prune(&refs, glob.as_deref(), &rules, chrono::Utc::now())
        .map_err(|e| CommandError(e.to_string()))?;
    for l in plan.info_lines() {
        crate::log::info("borg.archiver", &l);
    }
    let lines = plan.list_lines(a.dry_run);
    let to_delete: Vec<String> = plan.to_delete().map(|r| r.name.clone()).collect();
    let mut cache = if a.dry_run {
        None
    } else {
        Some(Cache::open(
            &*session.repo,
            &session.key,
            &session.manifest,
        )?)
    };
    let mut stats = Stats::default();
    let total = to_delete.len() as u64;
    let mut progress = crate::log::ProgressPercent::new(total, "Pruning archives %3.0f%%", "prune");
    let mut done = 0u64;
    let started = std::time::Instant::now();
    let mut last_commit = std::time::Instant::now();
    let mut uncommitted = 0;
    for line in &lines {
        if a.list {
            crate::log::info("borg.output.list", line);
        }
    }
    if let Some(cache) = cache.as_mut() {
        for name in &to_delete {
            progress.show(done);
            done += 1;
            let entry_id = session.manifest.get(name).map(|e| e.id);
            delete_archive(
                &*session.repo,
                &session.key,
                &mut session.manifest,
                &mut cache.chunks,
                name.as_bytes(),
                a.force > 0,
                &mut stats,
            )?;
            if let Some(id) = entry_id {
                cache.forget_archive(&id);
            }
            uncommitted += 1;
            if last_commit.elapsed().as_secs() >= a.checkpoint_interval {
                session.commit_manifest(&Compression::Lz4)?;
                cache.commit(&session.manifest)?;
                last_commit = std::time::Instant::now();
                uncommitted = 0;
            }
        }
        progress.finish();
        if uncommitted > 0 {
            session.commit_manifest(&Compression::Lz4)?;
            cache.commit(&session.manifest)?;
        }
    }
    let _ = started;
    if a.stats && !a.dry_run {
        print_deleted_stats(&stats, cache.as_ref());
    }
    Ok(())
}

/// The `Deleted data:` statistics block of prune/delete.
pub fn print_deleted_stats(stats: &Stats, cache: Option<&Cache>) {
    use crate::cli::commands::info::{cache_summary, DASHES, STATS_HEADER};
    use crate::units::format_file_size;
    let iec = crate::units::iec();
    let mut lines = vec![
        DASHES.to_string(),
        STATS_HEADER.to_string(),
        format!(
            "{:<15} {:>20} {:>20} {:>20}",
            "Deleted data:",
            format_file_size(-(stats.osize as i128), 2, false, iec),
            format_file_size(-(stats.csize as i128), 2, false, iec),
            format_file_size(-(stats.usize as i128), 2, false, iec)
        ),
    ];
    if let Some(c) = cache {
        lines.push(cache_summary(&c.stats()));
    }
    lines.push(DASHES.to_string());
    crate::log::log(
        crate::log::Level::Info,
        "borg.output.stats",
        &lines.join("\n"),
    );
}
