//! `borg export-tar`: write an archive's contents as a tarball (or to stdout).

use std::io::BufWriter;

use clap::Args;

use crate::archive::create::walk::os_error_text;
use crate::archive::manifest::Operation;
use crate::archive::patterns::PatternMatcher;
use crate::archive::tar::export::{export_tar, ExportOptions, ExportReporter};
use crate::archive::tar::filter::{self, OutStream, Sink};
use crate::archive::tar::TarFormat;
use crate::cli::commands::extract::load_archive;
use crate::cli::common::{location, Ctx, PatternOpts, Want};
use crate::cli::exit;

#[derive(Args, Debug)]
pub struct ExportTarArgs {
    /// filter program to pipe data through
    #[arg(long = "tar-filter", value_name = "TAR_FILTER", default_value = "auto")]
    pub tar_filter: String,
    /// output verbose list of items (files, dirs, ...)
    #[arg(long = "list")]
    pub list: bool,
    /// select tar format: GNU (borg 1.x's, whole-second times), PAX (ns times, xattrs, ACLs)
    /// or BORG (PAX plus the complete borg item metadata)
    #[arg(long = "tar-format", value_name = "FMT", default_value = "GNU",
          value_parser = |s: &str| s.parse::<TarFormat>())]
    pub tar_format: TarFormat,
    #[command(flatten)]
    pub patterns: PatternOpts,
    /// Remove the specified number of leading path elements. Paths with fewer elements will be silently skipped.
    #[arg(long = "strip-components", value_name = "NUMBER", default_value_t = 0)]
    pub strip_components: usize,
    /// archive to export
    #[arg(value_name = "ARCHIVE")]
    pub location: String,
    /// output tar file. "-" to write to stdout instead.
    #[arg(value_name = "FILE", allow_hyphen_values = true)]
    pub tarfile: String,
    /// paths to extract; patterns are supported
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
}

struct Report {
    list: bool,
}

impl ExportReporter for Report {
    fn listed(&self, path: &[u8]) {
        if self.list {
            crate::log::info("borg.output.list", &String::from_utf8_lossy(path));
        }
    }
    fn warning(&self, msg: &str) {
        exit::warn(1, None, msg);
    }
}

pub fn run(a: &ExportTarArgs, ctx: &Ctx) -> anyhow::Result<()> {
    if a.list {
        crate::log::force_info("borg.output.list");
    }
    let loc = location(Some(&a.location), Want::Archive, "ARCHIVE")?;
    let mut pargs = a.patterns.build(&ctx.sub)?;
    let mut paths = a.paths.clone();
    if paths.is_empty() {
        paths = std::mem::take(&mut pargs.roots);
    }
    let matcher = PatternMatcher::for_archive(pargs.patterns, &paths)
        .map_err(|e| exit::GenericError(e.to_string()))?;
    let session = ctx.session(&loc, false, Operation::Read)?;
    let name = loc.archive.clone().unwrap_or_default();
    let meta = load_archive(&session, &name)?;

    let filter = filter::resolve(&a.tar_filter, &a.tarfile, false);
    crate::log::debug(
        "borg.archiver",
        &format!("Automatically determined tar filter: {filter:?}"),
    );
    let sink = if a.tarfile == "-" {
        Sink::Stdout
    } else {
        let f = std::fs::File::create(&a.tarfile)
            .map_err(|e| exit::GenericError(os_error_text(&e, a.tarfile.as_bytes())))?;
        Sink::File(f)
    };
    let out = OutStream::open(sink, filter.as_deref())?;
    let opts = ExportOptions {
        strip_components: a.strip_components,
        format: a.tar_format,
        consider_part_files: ctx.common.consider_part_files,
        progress: ctx.common.progress,
    };
    let report = Report { list: a.list };
    let written = export_tar(
        &*session.repo,
        &session.key,
        &meta,
        &matcher,
        &opts,
        &report,
        BufWriter::with_capacity(1 << 20, out),
    );
    match written {
        Ok(w) => {
            let out = w.into_inner().map_err(|e| e.into_error())?;
            out.finish()?;
        }
        Err(e) => {
            // the BufWriter (and with it the filter's stdin) is gone already
            return Err(e);
        }
    }
    for w in matcher.never_matched_warnings() {
        exit::warn(101, Some("IncludePatternNeverMatchedWarning"), &w);
    }
    Ok(())
}
