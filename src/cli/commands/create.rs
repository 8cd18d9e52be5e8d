//! `borg create`: create an archive.

use std::io::Read;
use std::sync::Mutex;
use std::time::Instant;

use clap::{ArgAction, Args};
use serde_json::{json, Value as J};

use crate::archive::cache::Cache;
use crate::archive::chunkstore::Stats;
use crate::archive::create::{self, CreateOptions, FilesChanged, Reporter, StdinSource};
use crate::archive::files_cache::FilesCacheMode;
use crate::archive::manifest::Operation;
use crate::archive::patterns::PatternMatcher;
use crate::archive::session::Session;
use crate::chunker::ChunkerParams;
use crate::cli::commands::info::{basic_json, cache_summary, DASHES, STATS_HEADER};
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
fn parse_octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8).map_err(|_| format!("invalid octal mode: {s:?}"))
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// do not create a backup archive
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// print statistics for the created archive
    #[arg(short = 's', long = "stats")]
    pub stats: bool,
    /// print statistics for the created archive (without cache info)
    #[arg(long = "quick-stats", conflicts_with = "stats")]
    pub quick_stats: bool,
    /// output verbose list of items (files, dirs, ...)
    #[arg(long = "list")]
    pub list: bool,
    /// only display items with the given status characters
    #[arg(long = "filter", value_name = "STATUSCHARS")]
    pub filter: Option<String>,
    /// output stats as JSON. Implies ``--stats``.
    #[arg(long = "json")]
    pub json: bool,
    /// experimental: do not synchronize the cache. Implies not using the files cache.
    #[arg(long = "no-cache-sync")]
    pub no_cache_sync: bool,
    /// use NAME in archive for stdin data (default: 'stdin')
    #[arg(long = "stdin-name", value_name = "NAME", default_value = "stdin")]
    pub stdin_name: String,
    /// set user USER in archive for stdin data (default: 'root')
    #[arg(long = "stdin-user", value_name = "USER", default_value = "root")]
    pub stdin_user: String,
    /// set group GROUP in archive for stdin data (default: 'root')
    #[arg(long = "stdin-group", value_name = "GROUP", default_value = "root")]
    pub stdin_group: String,
    /// set mode to M in archive for stdin data (default: 0660)
    #[arg(long = "stdin-mode", value_name = "M", default_value = "0660", value_parser = parse_octal)]
    pub stdin_mode: u32,
    /// interpret PATH as command and store its stdout.
    #[arg(long = "content-from-command")]
    pub content_from_command: bool,
    /// read DELIM-separated list of paths to back up from stdin. All control is external: it will back up all files given - no more, no less.
    #[arg(long = "paths-from-stdin")]
    pub paths_from_stdin: bool,
    /// interpret PATH as command and treat its output as ``--paths-from-stdin``
    #[arg(long = "paths-from-command")]
    pub paths_from_command: bool,
    /// set path delimiter for ``--paths-from-stdin`` and ``--paths-from-command`` (default: \n)
    #[arg(long = "paths-delimiter", value_name = "DELIM")]
    pub paths_delimiter: Option<String>,
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
    /// exclude files flagged NODUMP
    #[arg(long = "exclude-nodump")]
    pub exclude_nodump: bool,
    /// exclude dataless files (macOS only)
    #[arg(long = "exclude-dataless")]
    pub exclude_dataless: bool,
    /// stay in the same file system and do not store mount points of other file systems
    #[arg(short = 'x', long = "one-file-system")]
    pub one_file_system: bool,
    /// only store numeric user and group identifiers
    #[arg(long = "numeric-ids", visible_alias = "numeric-owner")]
    pub numeric_ids: bool,
    /// do not store atime into archive (deprecated: this is the default now)
    #[arg(long = "noatime")]
    pub noatime: bool,
    /// do store atime into archive
    #[arg(long = "atime")]
    pub atime: bool,
    /// do not store ctime into archive
    #[arg(long = "noctime")]
    pub noctime: bool,
    /// do not store birthtime (creation date) into archive
    #[arg(long = "nobirthtime")]
    pub nobirthtime: bool,
    /// do not read and store flags (e.g. NODUMP, IMMUTABLE) into archive
    #[arg(long = "noflags", visible_alias = "nobsdflags")]
    pub noflags: bool,
    /// do not read and store ACLs into archive
    #[arg(long = "noacls")]
    pub noacls: bool,
    /// do not read and store xattrs into archive
    #[arg(long = "noxattrs")]
    pub noxattrs: bool,
    /// detect sparse holes in input (supported only by fixed chunker)
    #[arg(long = "sparse")]
    pub sparse: bool,
    /// operate files cache in MODE. default: ctime,size,inode
    #[arg(
        long = "files-cache",
        value_name = "MODE",
        default_value = "ctime,size,inode"
    )]
    pub files_cache: String,
    /// how to detect files changed while backing up: ctime (default), mtime, disabled
    #[arg(long = "files-changed", value_name = "MODE", default_value = "ctime", value_parser = ["ctime", "mtime", "disabled"])]
    pub files_changed: String,
    /// open and read block and char device files as well as FIFOs as if they were regular files.
    #[arg(long = "read-special")]
    pub read_special: bool,
    /// add a comment text to the archive
    #[arg(long = "comment", value_name = "COMMENT", default_value = "")]
    pub comment: String,
    /// manually specify the archive creation date/time (UTC, yyyy-mm-ddThh:mm:ss format). Alternatively, give a reference file/directory.
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
    /// accepted for borgmatic compatibility (borg 2 option); ignored
    #[arg(long = "checkpoint-volume", value_name = "BYTES", hide = true)]
    pub checkpoint_volume: Option<u64>,
    /// specify the chunker parameters (ALGO, CHUNK_MIN_EXP, CHUNK_MAX_EXP, HASH_MASK_BITS, HASH_WINDOW_SIZE).
    #[arg(long = "chunker-params", value_name = "PARAMS", default_value = "buzhash,19,23,21,4095", value_parser = parse_chunker)]
    pub chunker_params: ChunkerParams,
    /// select compression algorithm, see the output of the "borg help compression" command for details.
    #[arg(short = 'C', long = "compression", value_name = "COMPRESSION", default_value = "lz4", value_parser = parse_compression)]
    pub compression: Compression,
    /// name of archive to create (must be also a valid directory name)
    #[arg(value_name = "ARCHIVE")]
    pub location: String,
    /// paths to archive
    #[arg(
        value_name = "PATH",
        allow_hyphen_values = true,
        trailing_var_arg = true
    )]
    pub paths: Vec<String>,
}

/// Status lines, warnings and progress of a running create.
pub struct CliReporter {
    pub list: bool,
    pub filter: Option<String>,
    pub progress: bool,
    pub json: bool,
    last: Mutex<Option<Instant>>,
}

impl CliReporter {
    pub fn new(list: bool, filter: Option<String>, progress: bool) -> CliReporter {
        CliReporter {
            list,
            filter,
            progress,
            json: crate::log::is_json(),
            last: Mutex::new(None),
        }
    }

    pub fn finish_progress(&self) {
        if !self.progress {
            return;
        }
        if self.json {
            crate::log::emit_json(
                &json!({"time": crate::log::unix_time(), "type": "archive_progress", "finished": true}),
            );
        } else {
            crate::log::clear_progress();
        }
    }
}

fn warning_msgid(code: i32) -> &'static str {
    match code {
        100 => "FileChangedWarning",
        101 => "IncludePatternNeverMatchedWarning",
        102 => "BackupError",
        103 => "BackupRaceConditionError",
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

impl Reporter for CliReporter {
    fn file_status(&self, status: char, path: &[u8]) {
        if !self.list {
            return;
        }
        if let Some(f) = &self.filter {
            if !f.contains(status) {
                return;
            }
        }
        let p = String::from_utf8_lossy(path);
        if self.json {
            crate::log::emit_json(
                &json!({"type": "file_status", "status": status.to_string(), "path": p}),
            );
        } else {
            crate::log::log(
                crate::log::Level::Info,
                "borg.output.list",
                &format!("{status} {p}"),
            );
        }
    }

    fn warning(&self, code: i32, msg: &str) {
        exit::warn(code, Some(warning_msgid(code)), msg);
    }

    fn progress(&self, stats: &Stats, path: &[u8]) {
        if !self.progress {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|l| l.elapsed().as_secs_f64() < 0.2) {
            return;
        }
        *last = Some(Instant::now());
        let p = String::from_utf8_lossy(path);
        if self.json {
            crate::log::emit_json(&json!({
                "original_size": stats.osize,
                "compressed_size": stats.csize,
                "deduplicated_size": stats.usize,
                "nfiles": stats.nfiles,
                "path": p,
                "time": crate::log::unix_time(),
                "type": "archive_progress",
                "finished": false,
            }));
        } else {
            let line = format!(
                "{} O {} C {} D {} N {}",
                fsize(stats.osize as i128),
                fsize(stats.csize as i128),
                fsize(stats.usize as i128),
                stats.nfiles,
                p
            );
            if crate::log::stderr_is_tty() {
                let width = terminal_width();
                let shown: String = if line.chars().count() > width && width > 4 {
                    line.chars().take(width - 1).collect()
                } else {
                    line
                };
                crate::log::write_stderr_progress(&shown);
            } else {
                crate::log::write_stderr_line(&line);
            }
        }
    }
}

fn terminal_width() -> usize {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills a winsize struct.
    if unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        80
    }
}

/// Parses `--timestamp`: a reference file's mtime, or a UTC date/time.
pub fn parse_timestamp_arg(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(m) = std::fs::metadata(s) {
        if let Ok(t) = m.modified() {
            return Ok(t.into());
        }
    }
    crate::cli::timefmt::parse_timestamp(s)
        .map_err(|e| UsageError(format!("argument --timestamp: {e}")).into())
}

/// Expands `\0`, `\n`, `\t` ... escapes in `--paths-delimiter`.
fn eval_escapes(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut it = s.bytes().peekable();
    while let Some(b) = it.next() {
        if b == b'\\' {
            match it.next() {
                Some(b'n') => out.push(b'\n'),
                Some(b't') => out.push(b'\t'),
                Some(b'r') => out.push(b'\r'),
                Some(b'0') => out.push(0),
                Some(b'\\') => out.push(b'\\'),
                Some(o) => {
                    out.push(b'\\');
                    out.push(o);
                }
                None => out.push(b'\\'),
            }
        } else {
            out.push(b);
        }
    }
    out
}

pub fn run(a: &CreateArgs, ctx: &Ctx) -> anyhow::Result<()> {
    if a.noatime {
        crate::log::warning(
            "borg.archiver",
            "Warning: \"--noatime\" has been deprecated because it is the default now.",
        );
    }
    let loc = location(Some(&a.location), Want::Archive, "ARCHIVE")?;
    let name = archive_name(loc.archive.as_deref().unwrap_or(""))?;
    let mut pargs = a.patterns.build(&ctx.sub)?;
    let mut roots: Vec<Vec<u8>> = Vec::new();
    let external = a.content_from_command || a.paths_from_command;
    if a.paths_from_stdin && !a.paths.is_empty() {
        return Err(CommandError("Must not pass PATH with ``--paths-from-stdin``.".into()).into());
    }
    if !external && !a.paths_from_stdin {
        use std::os::unix::ffi::OsStrExt;
        for p in &a.paths {
            roots.push(std::ffi::OsStr::new(p).as_bytes().to_vec());
        }
        for r in std::mem::take(&mut pargs.roots) {
            roots.push(r.into_bytes());
        }
        if roots.is_empty() {
            return Err(CommandError("Need at least one PATH argument.".into()).into());
        }
    }
    if external && a.paths.is_empty() {
        return Err(CommandError("No command given.".into()).into());
    }
    let timestamp = a
        .timestamp
        .as_deref()
        .map(parse_timestamp_arg)
        .transpose()?;
    let files_cache: FilesCacheMode = a
        .files_cache
        .parse()
        .map_err(|e: String| UsageError(format!("argument --files-cache: {e}")))?;
    let cwd = std::env::current_dir().unwrap_or_default();
    let opts = CreateOptions {
        compression: a.compression.clone(),
        chunker_params: a.chunker_params,
        numeric_ids: a.numeric_ids,
        atime: a.atime,
        noctime: a.noctime,
        noflags: a.noflags,
        noacls: a.noacls,
        noxattrs: a.noxattrs,
        read_special: a.read_special,
        one_file_system: a.one_file_system,
        exclude_caches: a.exclude_caches,
        exclude_if_present: a.exclude_if_present.clone(),
        keep_exclude_tags: a.keep_exclude_tags,
        exclude_nodump: a.exclude_nodump,
        files_cache: if a.no_cache_sync {
            "disabled".parse().expect("valid")
        } else {
            files_cache
        },
        files_changed: match a.files_changed.as_str() {
            "mtime" => FilesChanged::Mtime,
            "disabled" => FilesChanged::Disabled,
            _ => FilesChanged::Ctime,
        },
        sparse: a.sparse,
        dry_run: a.dry_run,
        checkpoint_interval: a.checkpoint_interval,
        comment: crate::cli::placeholders::replace_placeholders(&a.comment, &Default::default())?,
        timestamp,
        hostname: std::env::var("BORG_HOSTNAME")
            .unwrap_or_else(|_| crate::platform::host::hostname()),
        username: std::env::var("BORG_USERNAME")
            .unwrap_or_else(|_| crate::platform::users::os_username()),
        cmdline: ctx.argv.clone(),
        cwd,
    };
    let matcher = PatternMatcher::for_create(pargs.patterns);
    let reporter = CliReporter::new(a.list, a.filter.clone(), ctx.common.progress);
    if a.dry_run && (a.stats || a.quick_stats) {
        crate::log::warning(
            "borg.archiver",
            "Ignoring --stats. It is not supported when using --dry-run.",
        );
    }
    crate::log::info("borg.archiver", &format!("Creating archive at \"{}\"", loc));

    // stdin / command content
    let mut child = None;
    let stdin_src = if a.content_from_command {
        let mut c = std::process::Command::new(&a.paths[0])
            .args(&a.paths[1..])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| CommandError(format!("Failed to execute command: {e}")))?;
        let out = c.stdout.take().expect("piped");
        child = Some(c);
        Some(Box::new(out) as Box<dyn Read + Send>)
    } else if a.paths.iter().any(|p| p == "-") && !external && !a.paths_from_stdin {
        roots.retain(|r| r != b"-");
        Some(Box::new(std::io::stdin()) as Box<dyn Read + Send>)
    } else {
        None
    };
    let stdin_source = match stdin_src {
        Some(reader) => {
            let uid = crate::platform::users::user2uid(&a.stdin_user)
                .ok_or_else(|| exit::GenericError(format!("no such user: {}", a.stdin_user)))?;
            let gid = crate::platform::users::group2gid(&a.stdin_group)
                .ok_or_else(|| exit::GenericError(format!("no such group: {}", a.stdin_group)))?;
            Some(StdinSource {
                reader,
                name: a.stdin_name.clone().into_bytes(),
                mode: a.stdin_mode,
                uid,
                gid,
                user: a.stdin_user.clone(),
                group: a.stdin_group.clone(),
            })
        }
        None => None,
    };
    // paths from stdin / command: each path processed without recursion
    let mut path_list_child = None;
    let single_paths: Option<Vec<Vec<u8>>> = if a.paths_from_stdin || a.paths_from_command {
        let delim = a
            .paths_delimiter
            .as_deref()
            .map(eval_escapes)
            .unwrap_or_else(|| b"\n".to_vec());
        let mut data = Vec::new();
        if a.paths_from_command {
            let mut c = std::process::Command::new(&a.paths[0])
                .args(&a.paths[1..])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| CommandError(format!("Failed to execute command: {e}")))?;
            c.stdout.take().expect("piped").read_to_end(&mut data)?;
            path_list_child = Some(c);
        } else {
            std::io::stdin().read_to_end(&mut data)?;
        }
        let mut v = Vec::new();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let (p, r) = match rest
                .windows(delim.len().max(1))
                .position(|w| w == delim.as_slice())
            {
                Some(i) => (&rest[..i], &rest[i + delim.len()..]),
                None => (rest, &rest[rest.len()..]),
            };
            if !p.is_empty() {
                v.push(p.to_vec());
            }
            rest = r;
        }
        Some(v)
    } else {
        None
    };

    if a.dry_run {
        // Nothing is read or stored; the walk still reports what would be archived.
        let opts = CreateOptions {
            dry_run: true,
            ..opts
        };
        if stdin_source.is_some() {
            reporter.file_status('-', a.stdin_name.as_bytes());
        }
        let mut sink = |jobs: &mut Vec<create::Job>| -> crate::archive::Result<()> {
            for job in jobs.drain(..) {
                if let create::JobKind::Warning(w) = &job.kind {
                    reporter.warning(w.code, &w.msg);
                }
                if let Some(s) = job.status {
                    reporter.file_status(s, &job.path);
                }
            }
            Ok(())
        };
        let mut walker = create::walk::Walker::new(&opts, &matcher, &mut sink);
        for r in roots.iter().chain(single_paths.iter().flatten()) {
            walker.root(r);
        }
        walker.flush();
        return Ok(());
    }

    let all_roots: Vec<Vec<u8>> = roots
        .into_iter()
        .chain(single_paths.into_iter().flatten())
        .collect();
    let repo_path = loc.is_local().then(|| loc.local_path());
    let mut sources = create::Sources::start(all_roots, &matcher, &opts, repo_path.as_deref());
    let repo = ctx.repository(&loc, true)?;
    sources.load_files_cache(&repo.id(), opts.files_cache);
    let mut session = Session::from_repo(repo, &loc.without_archive(), Operation::Write)?;
    let mut cache = Cache::open(&*session.repo, &session.key, &session.manifest)?;
    // Ctrl-C: checkpoint, then stop (borg's behaviour); a second one ends us at once
    let sigint = crate::platform::sigint::install();
    let created = create::create(
        &mut session,
        &mut cache,
        &name,
        sources,
        &matcher,
        &opts,
        &reporter,
        stdin_source,
    );
    drop(sigint);
    let created = created?;
    reporter.finish_progress();
    if let Some(mut c) = child {
        let status = c.wait()?;
        if !status.success() {
            return Err(CommandError(format!(
                "Command {:?} exited with status {}",
                a.paths[0],
                status.code().unwrap_or(-1)
            ))
            .into());
        }
    }
    if let Some(mut c) = path_list_child {
        let status = c.wait()?;
        if !status.success() {
            return Err(CommandError(format!(
                "Command {:?} exited with status {}",
                a.paths[0],
                status.code().unwrap_or(-1)
            ))
            .into());
        }
    }
    let Some(created) = created else {
        return Ok(());
    };
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
    } else if a.stats || a.quick_stats {
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
