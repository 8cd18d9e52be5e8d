//! `borg diff REPO::ARCHIVE1 ARCHIVE2 [PATH...]`: differences between two archives.

use clap::Args;

use crate::archive::diff::{compare_archives, parse_sort_spec, sort_diffs, DiffOptions, ItemDiff};
use crate::archive::manifest::Operation;
use crate::archive::patterns::PatternMatcher;
use crate::chunker::ChunkerParams;
use crate::cli::common::{archive_name, location, Ctx, PatternOpts, Want};
use crate::cli::exit;

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// only consider numeric user and group identifiers
    #[arg(long = "numeric-ids", visible_alias = "numeric-owner")]
    pub numeric_ids: bool,
    /// Override check of chunker parameters.
    #[arg(long = "same-chunker-params")]
    pub same_chunker_params: bool,
    /// Sort the output by path (deprecated, use --sort-by=path).
    #[arg(long = "sort")]
    pub sort: bool,
    /// Advanced sorting: specify field(s) to sort by. Accepts a comma-separated list. Prefix with > for descending or < for ascending (default).
    #[arg(long = "sort-by", value_name = "FIELDS", value_parser = parse_sort_spec)]
    pub sort_by: Option<String>,
    /// Only compare differences in content (exclude metadata differences)
    #[arg(long = "content-only")]
    pub content_only: bool,
    /// Format output as JSON Lines.
    #[arg(long = "json-lines")]
    pub json_lines: bool,
    #[command(flatten)]
    pub patterns: PatternOpts,
    /// repository location and ARCHIVE1 name
    #[arg(value_name = "REPO::ARCHIVE1")]
    pub location: String,
    /// ARCHIVE2 name (no repository location allowed)
    #[arg(value_name = "ARCHIVE2")]
    pub archive2: String,
    /// paths of items inside the archives to compare; patterns are supported
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
}

/// borg's deprecation notes for options spelled the old way (printed before anything else).
pub fn deprecation_warnings(argv: &[String], olds: &[(&str, &str)]) {
    for arg in argv.iter().skip(1) {
        for (old, msg) in olds {
            if arg == old || (arg.starts_with(old) && arg.as_bytes().get(old.len()) == Some(&b'='))
            {
                crate::log::write_stderr_line(msg);
            }
        }
    }
}

pub fn run(a: &DiffArgs, ctx: &Ctx) -> anyhow::Result<()> {
    deprecation_warnings(
        &ctx.argv,
        &[
            (
                "--numeric-owner",
                "Warning: \"--numeric-owner\" has been deprecated. Use --numeric-ids instead.",
            ),
            (
                "--sort",
                "Warning: \"--sort\" is deprecated. Use \"--sort-by=path\" instead.",
            ),
        ],
    );
    if ctx
        .sub
        .get_many::<String>("sort_by")
        .map_or(0, |v| v.count())
        > 1
    {
        return Err(crate::cli::common::UsageError(
            "argument --sort-by: There can be only one.".into(),
        )
        .into());
    }
    let loc = location(Some(&a.location), Want::Archive, "REPO::ARCHIVE1")?;
    let name2 = archive_name(&a.archive2)
        .map_err(|e| crate::cli::common::UsageError(format!("argument ARCHIVE2: {e}")))?;
    let mut pargs = a.patterns.build(&ctx.sub)?;
    let mut paths = a.paths.clone();
    if paths.is_empty() {
        paths = std::mem::take(&mut pargs.roots);
    }
    let matcher = PatternMatcher::for_archive(pargs.patterns, &paths)
        .map_err(|e| exit::GenericError(e.to_string()))?;
    let session = ctx.session(&loc, false, Operation::Read)?;
    let name1 = loc.archive.clone().unwrap_or_default();
    let archive1 = super::extract::load_archive(&session, &name1)?;
    let archive2 = super::extract::load_archive(&session, &name2)?;

    let can_compare_chunk_ids = if a.same_chunker_params {
        true
    } else {
        match (&archive1.chunker_params, &archive2.chunker_params) {
            (Some(v1), Some(v2)) => {
                let same = match (ChunkerParams::from_value(v1), ChunkerParams::from_value(v2)) {
                    (Ok(p1), Ok(p2)) => p1 == p2,
                    _ => v1 == v2,
                };
                if !same {
                    crate::log::warning(
                        "borg.archiver",
                        "--chunker-params are different between archives, diff will be slow.",
                    );
                }
                same
            }
            _ => {
                crate::log::warning(
                    "borg.archiver",
                    "--chunker-params might be different between archives, diff will be slow.\n\
                     If you know for certain that they are the same, pass --same-chunker-params \
                     to override this check.",
                );
                false
            }
        }
    };
    let opts = DiffOptions {
        can_compare_chunk_ids,
        content_only: a.content_only,
        consider_part_files: ctx.common.consider_part_files,
    };
    let specs: Vec<String> = match (&a.sort_by, a.sort) {
        (Some(s), _) => s.split(',').map(String::from).collect(),
        (None, true) => vec!["path".into()],
        (None, false) => Vec::new(),
    };
    let json = a.json_lines;
    let print = |d: &ItemDiff| {
        if json {
            crate::outln!("{}", crate::cli::json::dumps_line(&d.json()));
        } else {
            crate::outln!("{}", d.text_line());
        }
    };
    let mut collected: Vec<ItemDiff> = Vec::new();
    let sorting = !specs.is_empty();
    compare_archives(
        &*session.repo,
        &session.key,
        &archive1,
        &archive2,
        &matcher,
        opts,
        &mut |w| exit::warn(1, None, &w),
        &mut |d| {
            if d.equal {
                return Ok(());
            }
            if sorting {
                collected.push(d);
            } else {
                print(&d);
            }
            Ok(())
        },
    )?;
    if sorting {
        sort_diffs(&mut collected, &specs);
        for d in &collected {
            print(d);
        }
    }
    for w in matcher.never_matched_warnings() {
        exit::warn(101, Some("IncludePatternNeverMatchedWarning"), &w);
    }
    Ok(())
}
