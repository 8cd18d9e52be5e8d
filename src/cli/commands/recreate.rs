//! `borg recreate [REPOSITORY_OR_ARCHIVE] [PATH...]`: re-create archives.

use clap::{ArgAction, Args};

use crate::archive::cache::Cache;
use crate::archive::cache::CacheStats;
use crate::archive::manifest::Operation;
use crate::archive::patterns::PatternMatcher;
use crate::archive::recreate::{Outcome, RecreateOptions, Recreated, Recreater};
use crate::chunker::ChunkerParams;
use crate::cli::commands::create::{parse_timestamp_arg, CliReporter};
use crate::cli::commands::info::{cache_summary, DASHES, STATS_HEADER};
use crate::cli::common::{archive_name, location, Ctx, PatternOpts, UsageError, Want};
use crate::cli::exit::{self, CommandError};
use crate::compress::Compression;
use crate::units::{format_timedelta, fsize};

fn parse_compression(s: &str) -> Result<Compression, String> {
    s.parse::<Compression>().map_err(|e| e.to_string())
}

fn parse_chunker(s: &str) -> Result<ChunkerParams, String> {
    ChunkerParams::parse(s).map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
pub struct RecreateArgs {
    /// output verbose list of items (files, dirs, ...)
    #[arg(long = "list")]
    pub list: bool,
    /// only display items with the given status characters (listed in borg create --help)
    #[arg(long = "filter", value_name = "STATUSCHARS")]
    pub filter: Option<String>,
    /// do not change anything
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// print statistics at end
    #[arg(short = 's', long = "stats")]
    pub stats: bool,
    #[command(flatten)]
    pub patterns: PatternOpts,
    /// exclude directories that contain a CACHEDIR.TAG file
    #[arg(long = "exclude-caches")]
    pub exclude_caches: bool,
    /// exclude directories that are tagged by containing a filesystem object with the given NAME
    #[arg(long = "exclude-if-present", value_name = "NAME", action = ArgAction::Append)]
    pub exclude_if_present: Vec<String>,
    /// if tag objects are specified with ``--exclude-if-present``, don't omit the tag objects themselves
    #[arg(long = "keep-exclude-tags", visible_alias = "keep-tag-files")]
    pub keep_exclude_tags: bool,
    /// create a new archive with the name ARCHIVE, do not replace existing archive (only applies for a single archive)
    #[arg(long = "target", value_name = "TARGET")]
    pub target: Option<String>,
    /// write checkpoint every SECONDS seconds (Default: 1800)
    #[arg(
        short = 'c',
        long = "checkpoint-interval",
        value_name = "SECONDS",
        default_value_t = 1800
    )]
    pub checkpoint_interval: u64,
    /// add a comment text to the archive
    #[arg(long = "comment", value_name = "COMMENT")]
    pub comment: Option<String>,
    /// manually specify the archive creation date/time (UTC, yyyy-mm-ddThh:mm:ss format). alternatively, give a reference file/directory.
    #[arg(long = "timestamp", value_name = "TIMESTAMP")]
    pub timestamp: Option<String>,
    /// select compression algorithm, see the output of the "borg help compression" command for details.
    #[arg(short = 'C', long = "compression", value_name = "COMPRESSION", default_value = "lz4", value_parser = parse_compression)]
    pub compression: Compression,
    /// recompress data chunks according to `MODE` and ``--compression``: if-different, always, never (default; no MODE: if-different)
    #[arg(
        long = "recompress",
        value_name = "MODE",
        num_args = 0..=1,
        default_value = "never",
        default_missing_value = "if-different",
        value_parser = ["never", "if-different", "always"]
    )]
    pub recompress: String,
    /// rechunk using given chunker parameters (ALGO, CHUNK_MIN_EXP, CHUNK_MAX_EXP, HASH_MASK_BITS, HASH_WINDOW_SIZE) or `default` to use the chunker defaults. default: do not rechunk
    #[arg(long = "chunker-params", value_name = "PARAMS", value_parser = parse_chunker)]
    pub chunker_params: Option<ChunkerParams>,
    /// repository or archive to recreate
    #[arg(value_name = "REPOSITORY_OR_ARCHIVE")]
    pub location: Option<String>,
    /// paths to recreate; patterns are supported
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
}

fn print_stats(r: &Recreated, location: &str, cache: &CacheStats) {
    let s = &r.stats;
    let duration = (r.end - r.start).num_microseconds().unwrap_or(0) as f64 / 1e6;
    let lines = [
        DASHES.to_string(),
        format!("Repository: {location}"),
        format!("Archive name: {}", r.name),
        format!("Archive fingerprint: {}", r.id.hex()),
        format!(
            "Time (start): {}",
            crate::cli::timefmt::format_time_local(&r.start)
        ),
        format!(
            "Time (end):   {}",
            crate::cli::timefmt::format_time_local(&r.end)
        ),
        format!("Duration: {}", format_timedelta(duration)),
        format!("Number of files: {}", s.nfiles),
        format!(
            "Utilization of max. archive size: {:.0}%",
            r.meta_csize as f64 / crate::repo::MAX_DATA_SIZE as f64 * 100.0
        ),
        DASHES.to_string(),
        STATS_HEADER.to_string(),
        format!(
            "{:<15} {:>20} {:>20} {:>20}",
            "This archive:",
            fsize(s.osize as i128),
            fsize(s.csize as i128),
            fsize(s.usize as i128)
        ),
        cache_summary(cache),
        DASHES.to_string(),
    ];
    // borg logs this block on the `borg.archive` logger at INFO (shown with --info)
    crate::log::info("borg.archive", &lines.join("\n"));
}

pub fn run(a: &RecreateArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(a.location.as_deref(), Want::Either, "REPOSITORY_OR_ARCHIVE")?;
    let target = a
        .target
        .as_deref()
        .map(|t| archive_name(t).map_err(|e| UsageError(format!("argument --target: {e}")).into()))
        .transpose()
        .map_err(|e: anyhow::Error| e)?;
    let timestamp = a
        .timestamp
        .as_deref()
        .map(parse_timestamp_arg)
        .transpose()?;
    let comment = a
        .comment
        .as_deref()
        .map(|c| crate::cli::placeholders::replace_placeholders(c, &Default::default()))
        .transpose()?;
    let mut pargs = a.patterns.build(&ctx.sub)?;
    let mut paths = a.paths.clone();
    if paths.is_empty() {
        paths = std::mem::take(&mut pargs.roots);
    }
    let matcher = PatternMatcher::for_archive(pargs.patterns, &paths)
        .map_err(|e| exit::GenericError(e.to_string()))?;
    let opts = RecreateOptions {
        exclude_caches: a.exclude_caches,
        exclude_if_present: a.exclude_if_present.clone(),
        keep_exclude_tags: a.keep_exclude_tags,
        chunker_params: a.chunker_params,
        compression: a.compression.clone(),
        recompress: a.recompress != "never",
        always_recompress: a.recompress == "always",
        dry_run: a.dry_run,
        timestamp,
        checkpoint_interval: if a.dry_run { 0 } else { a.checkpoint_interval },
        cmdline: ctx.argv.clone(),
        hostname: std::env::var("BORG_HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(crate::platform::host::hostname),
        username: std::env::var("BORG_USERNAME")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(crate::platform::users::os_username),
    };
    let mut session = ctx.session(&loc, true, Operation::Check)?;
    let mut cache = Cache::open(&*session.repo, &session.key, &session.manifest)?;
    let location_text = session.repo.location().canonical_path();
    let reporter = CliReporter::new(a.list, a.filter.clone(), ctx.common.progress);
    {
        let archive_names: Vec<String> = match &loc.archive {
            Some(name) => {
                if Recreater::is_temporary_archive(name) {
                    return Err(CommandError(format!(
                        "Refusing to work on temporary archive of prior recreate: {name}"
                    ))
                    .into());
                }
                vec![name.clone()]
            }
            None => {
                if target.is_some() {
                    return Err(
                        CommandError("--target: Need to specify single archive".into()).into(),
                    );
                }
                let mut v: Vec<(chrono::DateTime<chrono::Utc>, String)> = session
                    .manifest
                    .archives
                    .iter()
                    .map(|(n, e)| (e.ts(), String::from_utf8_lossy(n).into_owned()))
                    .collect();
                v.sort_by_key(|(ts, _)| *ts);
                v.into_iter().map(|(_, n)| n).collect()
            }
        };
        let single = loc.archive.is_some();
        let mut recreater = Recreater::new(&mut session, &mut cache, matcher, opts);
        for name in archive_names {
            if !single {
                if Recreater::is_temporary_archive(&name) || is_checkpoint(&name) {
                    continue;
                }
                crate::outln!("Processing {name}");
            }
            let done = recreater.recreate(
                &name,
                comment.as_deref(),
                if single { target.as_deref() } else { None },
                &reporter,
            );
            reporter.finish_progress();
            let done = done?;
            match done {
                Outcome::Done(r) => {
                    if a.stats {
                        print_stats(&r, &location_text, &recreater.cache_stats());
                    }
                }
                Outcome::DryRun => {}
                Outcome::NothingToDo if single => {
                    return Err(CommandError(
                        "Nothing to do. Archive was not processed.\n\
                         Specify at least one pattern, PATH, --comment, re-compression or re-chunking option."
                            .into(),
                    )
                    .into());
                }
                Outcome::NothingToDo => crate::log::info(
                    "borg.archiver",
                    &format!("Skipped archive {name}: Nothing to do. Archive was not processed."),
                ),
            }
        }
        recreater.finish()?;
    }
    Ok(())
}

fn is_checkpoint(name: &str) -> bool {
    let re = regex::Regex::new(r"\.checkpoint(\.\d+)?$").expect("static regex");
    re.is_match(name)
}
