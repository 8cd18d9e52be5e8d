//! `borg import-tar`: create an archive from a tarball (or stdin).
//!
//! `-c/--checkpoint-interval` is honoured between tar members (a member being imported is
//! never split into part files, unlike borg's checkpoints inside big files).

use clap::Args;
use serde_json::{json, Value as J};

use crate::archive::cache::Cache;
use crate::archive::create::walk::os_error_text;
use crate::archive::manifest::Operation;
use crate::archive::tar::filter::{self, InStream, Source};
use crate::archive::tar::import::{import_tar, ImportOptions};
use crate::chunker::ChunkerParams;
use crate::cli::commands::create::{parse_timestamp_arg, CliReporter};
use crate::cli::commands::info::{basic_json, cache_summary, DASHES, STATS_HEADER};
use crate::cli::common::{archive_name, location, Ctx, Want};
use crate::cli::exit;
use crate::compress::Compression;
use crate::units::{format_timedelta, fsize};

fn parse_compression(s: &str) -> Result<Compression, String> {
    s.parse::<Compression>().map_err(|e| e.to_string())
}
fn parse_chunker(s: &str) -> Result<ChunkerParams, String> {
    ChunkerParams::parse(s).map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
pub struct ImportTarArgs {
    /// filter program to pipe data through
    #[arg(long = "tar-filter", value_name = "TAR_FILTER", default_value = "auto")]
    pub tar_filter: String,
    /// print statistics for the created archive
    #[arg(short = 's', long = "stats")]
    pub stats: bool,
    /// print only archive statistics, skipping repository-wide statistics
    #[arg(long = "quick-stats")]
    pub quick_stats: bool,
    /// output verbose list of items (files, dirs, ...)
    #[arg(long = "list")]
    pub list: bool,
    /// only display items with the given status characters
    #[arg(long = "filter", value_name = "STATUSCHARS")]
    pub filter: Option<String>,
    /// output stats as JSON (implies --stats)
    #[arg(long = "json")]
    pub json: bool,
    /// ignore zero-filled blocks in the input tarball
    #[arg(long = "ignore-zeros")]
    pub ignore_zeros: bool,
    /// add a comment text to the archive
    #[arg(long = "comment", value_name = "COMMENT", default_value = "")]
    pub comment: String,
    /// manually specify the archive creation date/time (UTC, yyyy-mm-ddThh:mm:ss format). alternatively, give a reference file/directory.
    #[arg(long = "timestamp", value_name = "TIMESTAMP")]
    pub timestamp: Option<String>,
    /// write checkpoint every SECONDS seconds (Default: 1800)
    #[arg(
        short = 'c',
        long = "checkpoint-interval",
        value_name = "SECONDS",
        default_value_t = 1800
    )]
    pub checkpoint_interval: u64,
    /// specify the chunker parameters (ALGO, CHUNK_MIN_EXP, CHUNK_MAX_EXP, HASH_MASK_BITS, HASH_WINDOW_SIZE). default: buzhash,19,23,21,4095
    #[arg(long = "chunker-params", value_name = "PARAMS", default_value = "buzhash,19,23,21,4095", value_parser = parse_chunker)]
    pub chunker_params: ChunkerParams,
    /// select compression algorithm, see the output of the "borg help compression" command for details.
    #[arg(short = 'C', long = "compression", value_name = "COMPRESSION", default_value = "lz4", value_parser = parse_compression)]
    pub compression: Compression,
    /// name of archive to create (must be also a valid directory name)
    #[arg(value_name = "ARCHIVE")]
    pub location: String,
    /// input tar file. "-" to read from stdin instead.
    #[arg(value_name = "TARFILE", allow_hyphen_values = true)]
    pub tarfile: String,
}

pub fn run(a: &ImportTarArgs, ctx: &Ctx) -> anyhow::Result<()> {
    if a.list {
        crate::log::force_info("borg.output.list");
    }
    if a.stats || a.quick_stats {
        crate::log::force_info("borg.output.stats");
    }
    let loc = location(Some(&a.location), Want::Archive, "ARCHIVE")?;
    let name = archive_name(loc.archive.as_deref().unwrap_or(""))?;
    let timestamp = a
        .timestamp
        .as_deref()
        .map(parse_timestamp_arg)
        .transpose()?;
    let opts = ImportOptions {
        compression: a.compression.clone(),
        chunker_params: a.chunker_params,
        ignore_zeros: a.ignore_zeros,
        checkpoint_interval: a.checkpoint_interval,
        comment: a.comment.clone(),
        timestamp,
        hostname: std::env::var("BORG_HOSTNAME")
            .unwrap_or_else(|_| crate::platform::host::hostname()),
        username: std::env::var("BORG_USERNAME")
            .unwrap_or_else(|_| crate::platform::users::os_username()),
        cmdline: ctx.argv.clone(),
    };
    let mut session = ctx.session(&loc, true, Operation::Write)?;
    let mut cache = Cache::open(&*session.repo, &session.key, &session.manifest)?;

    let filter = filter::resolve(&a.tar_filter, &a.tarfile, true);
    crate::log::debug(
        "borg.archiver",
        &format!("Automatically determined tar filter: {filter:?}"),
    );
    let source = if a.tarfile == "-" {
        Source::Stdin
    } else {
        let f = std::fs::File::open(&a.tarfile)
            .map_err(|e| exit::GenericError(os_error_text(&e, a.tarfile.as_bytes())))?;
        Source::File(f)
    };
    let mut input = InStream::open(source, filter.as_deref())?;
    let reporter = CliReporter::new(a.list, a.filter.clone(), ctx.common.progress);
    let created = import_tar(
        &mut session,
        &mut cache,
        &name,
        &mut input,
        &opts,
        &reporter,
    )?;
    reporter.finish_progress();
    input.finish()?;

    if !(a.stats || a.quick_stats || a.json) {
        return Ok(());
    }
    let max_size = cache
        .chunks
        .get(&created.id)
        .map(|e| e.csize as f64 / crate::repo::MAX_DATA_SIZE as f64)
        .unwrap_or(0.0);
    if a.json {
        let mut m = basic_json(&session, if a.quick_stats { None } else { Some(&cache) });
        m.insert(
            "archive".into(),
            json!({
                "name": created.name,
                "id": created.id.hex(),
                "start": crate::cli::timefmt::isoformat_local_secs(&created.start),
                "end": crate::cli::timefmt::isoformat_local_secs(&created.end),
                "duration": created.duration,
                "stats": {
                    "original_size": created.stats.osize,
                    "compressed_size": created.stats.csize,
                    "deduplicated_size": created.stats.usize,
                    "nfiles": created.stats.nfiles,
                },
                "limits": {"max_archive_size": max_size},
                "command_line": ctx.argv,
            }),
        );
        crate::cli::json::print(&J::Object(m));
    } else {
        let s = &created.stats;
        let mut lines = vec![
            DASHES.to_string(),
            format!("Repository: {}", session.repo.location().canonical_path()),
            format!("Archive name: {}", created.name),
            format!("Archive fingerprint: {}", created.id.hex()),
            format!(
                "Time (start): {}",
                crate::cli::timefmt::format_time_local(&created.start)
            ),
            format!(
                "Time (end):   {}",
                crate::cli::timefmt::format_time_local(&created.end)
            ),
            format!("Duration: {}", format_timedelta(created.duration)),
            format!("Number of files: {}", s.nfiles),
            format!("Utilization of max. archive size: {:.0}%", max_size * 100.0),
            DASHES.to_string(),
            STATS_HEADER.to_string(),
            format!(
                "{:<15} {:>20} {:>20} {:>20}",
                "This archive:",
                fsize(s.osize as i128),
                fsize(s.csize as i128),
                fsize(s.usize as i128)
            ),
        ];
        if !a.quick_stats {
            lines.push(cache_summary(&cache.stats()));
        }
        lines.push(DASHES.to_string());
        crate::log::log(
            crate::log::Level::Info,
            "borg.output.stats",
            &lines.join("\n"),
        );
    }
    Ok(())
}
