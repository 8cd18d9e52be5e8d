//! Options every command accepts, the per-invocation context, and location arguments.

use clap::{ArgAction, Args};

use crate::archive::manifest::Operation;
use crate::archive::session::Session;
use crate::repo::{Location, OpenOptions};

fn parse_umask(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8).map_err(|_| format!("invalid octal umask: {s:?}"))
}

/// borg's common options, accepted before and after the subcommand.
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// work on log level CRITICAL
    #[arg(long, global = true, action = ArgAction::SetTrue)]
    pub critical: bool,
    /// work on log level ERROR
    #[arg(long, global = true, action = ArgAction::SetTrue)]
    pub error: bool,
    /// work on log level WARNING (default)
    #[arg(long, global = true, action = ArgAction::SetTrue)]
    pub warning: bool,
    /// work on log level INFO
    #[arg(short = 'v', long = "info", visible_alias = "verbose", global = true, action = ArgAction::SetTrue)]
    pub info: bool,
    /// enable debug output, work on log level DEBUG
    #[arg(long, global = true, action = ArgAction::SetTrue)]
    pub debug: bool,
    /// enable TOPIC debugging (can be specified multiple times)
    #[arg(long = "debug-topic", global = true, value_name = "TOPIC", action = ArgAction::Append)]
    pub debug_topic: Vec<String>,
    /// show progress information
    #[arg(short = 'p', long, global = true, action = ArgAction::SetTrue)]
    pub progress: bool,
    /// format using IEC units (1KiB = 1024B)
    #[arg(long, global = true, action = ArgAction::SetTrue)]
    pub iec: bool,
    /// Output one JSON object per log line instead of formatted text.
    #[arg(long = "log-json", global = true, action = ArgAction::SetTrue)]
    pub log_json: bool,
    /// wait at most SECONDS for acquiring a repository/cache lock (default: 1).
    #[arg(
        long = "lock-wait",
        global = true,
        value_name = "SECONDS",
        default_value = "1"
    )]
    pub lock_wait: f64,
    /// Bypass locking mechanism
    #[arg(long = "bypass-lock", global = true, action = ArgAction::SetTrue)]
    pub bypass_lock: bool,
    /// show/log the borg version
    #[arg(long = "show-version", global = true, action = ArgAction::SetTrue)]
    pub show_version: bool,
    /// show/log the return code (rc)
    #[arg(long = "show-rc", global = true, action = ArgAction::SetTrue)]
    pub show_rc: bool,
    /// set umask to M (local only, default: 0077)
    #[arg(long, global = true, value_name = "M", value_parser = parse_umask)]
    pub umask: Option<u32>,
    /// use PATH as borg executable on the remote (default: "borg")
    #[arg(long = "remote-path", global = true, value_name = "PATH")]
    pub remote_path: Option<String>,
    /// deprecated, use ``--upload-ratelimit`` instead
    #[arg(
        long = "remote-ratelimit",
        global = true,
        value_name = "RATE",
        hide = true
    )]
    pub remote_ratelimit: Option<u64>,
    /// set network upload rate limit in kiByte/s (default: 0=unlimited)
    #[arg(long = "upload-ratelimit", global = true, value_name = "RATE")]
    pub upload_ratelimit: Option<u64>,
    /// deprecated, use ``--upload-buffer`` instead
    #[arg(
        long = "remote-buffer",
        global = true,
        value_name = "UPLOAD_BUFFER",
        hide = true
    )]
    pub remote_buffer: Option<u64>,
    /// set network upload buffer size in MiB. (default: 0=no buffer)
    #[arg(long = "upload-buffer", global = true, value_name = "UPLOAD_BUFFER")]
    pub upload_buffer: Option<u64>,
    /// treat part files like normal files (e.g. to list/extract them)
    #[arg(long = "consider-part-files", global = true, action = ArgAction::SetTrue)]
    pub consider_part_files: bool,
    /// Write execution profile in Borg format into FILE.
    #[arg(long = "debug-profile", global = true, value_name = "FILE")]
    pub debug_profile: Option<String>,
    /// Use this command to connect to the 'borg serve' process (default: 'ssh')
    #[arg(long, global = true, value_name = "RSH")]
    pub rsh: Option<String>,
}

/// Everything a command needs besides its own arguments.
pub struct Ctx {
    pub common: Common,
    /// Matches of the (deepest) subcommand, for option order and occurrence queries.
    pub sub: clap::ArgMatches,
    /// The command line as invoked (stored in archives).
    pub argv: Vec<String>,
    pub log_level: crate::log::Level,
}

/// Wrong arguments: printed as `borg <cmd>: error: <msg>`, rc 2 in both exit-code schemes.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Repo,
    Archive,
    Either,
}

/// Expands placeholders in a location text.
fn expand(text: &str) -> anyhow::Result<String> {
    Ok(super::placeholders::replace_placeholders(
        text,
        &Default::default(),
    )?)
}

/// Resolves a REPOSITORY / ARCHIVE argument like borg: placeholders, `BORG_REPO` for an empty
/// or `::name` argument, and whether an archive part is required or forbidden.
pub fn location(arg: Option<&str>, want: Want, argname: &str) -> anyhow::Result<Location> {
    let raw = arg.unwrap_or("");
    let text = expand(raw)?;
    let invalid = |t: &str| {
        UsageError(format!(
            "argument {argname}: Invalid location format: \"{t}\""
        ))
    };
    let loc = match Location::parse(&text) {
        Ok(l) => l,
        Err(_) => {
            // `::archive`, `::` or nothing: repository from BORG_REPO
            let archive = if text.is_empty() || text == "::" {
                None
            } else if let Some(a) = text.strip_prefix("::") {
                if a.contains('/') {
                    return Err(invalid(&text).into());
                }
                Some(a.to_string())
            } else {
                return Err(invalid(&text).into());
            };
            let repo = std::env::var("BORG_REPO").map_err(|_| invalid(&text))?;
            let repo = expand(&repo)?;
            let mut l = Location::parse(&repo).map_err(|_| invalid(&repo))?;
            if archive.is_some() {
                l.archive = archive;
            }
            l
        }
    };
    match want {
        Want::Archive if loc.archive.is_none() => Err(UsageError(format!(
            "argument {argname}: \"{raw}\": No archive specified"
        ))
        .into()),
        Want::Repo if loc.archive.is_some() => Err(UsageError(format!(
            "argument {argname}: \"{raw}\": No archive can be specified"
        ))
        .into()),
        _ => Ok(loc),
    }
}

/// Validates a new archive name (after placeholder expansion).
pub fn archive_name(text: &str) -> anyhow::Result<String> {
    let t = expand(text)?;
    if t.is_empty() || t.contains('/') || t.contains("::") {
        return Err(UsageError(format!("Invalid archive name: \"{t}\"")).into());
    }
    Ok(t)
}

impl Ctx {
    pub fn open_options(&self, exclusive: bool) -> OpenOptions {
        OpenOptions {
            exclusive: if self.common.bypass_lock {
                None
            } else {
                Some(exclusive)
            },
            lock_wait: self.common.lock_wait,
            ..OpenOptions::default()
        }
    }

    /// Opens a repository with its key and manifest.
    pub fn session(
        &self,
        loc: &Location,
        exclusive: bool,
        op: Operation,
    ) -> anyhow::Result<Session> {
        Ok(Session::open(
            &loc.without_archive(),
            &self.open_options(exclusive),
            op,
        )?)
    }

    /// Opens a bare repository (no key, no manifest).
    pub fn repository(
        &self,
        loc: &Location,
        exclusive: bool,
    ) -> anyhow::Result<Box<dyn crate::repo::Repository>> {
        Ok(crate::repo::open(
            &loc.without_archive(),
            &self.open_options(exclusive),
        )?)
    }
}

/// Include/exclude options shared by create, extract, list, diff, export-tar, recreate, mount.
#[derive(Args, Debug, Clone, Default)]
pub struct PatternOpts {
    /// exclude paths matching PATTERN
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN", action = ArgAction::Append)]
    pub exclude: Vec<String>,
    /// read exclude patterns from EXCLUDEFILE, one per line
    #[arg(long = "exclude-from", value_name = "EXCLUDEFILE", action = ArgAction::Append)]
    pub exclude_from: Vec<String>,
    /// include/exclude paths matching PATTERN
    #[arg(long = "pattern", value_name = "PATTERN", action = ArgAction::Append, allow_hyphen_values = true)]
    pub pattern: Vec<String>,
    /// read include/exclude patterns from PATTERNFILE, one per line
    #[arg(long = "patterns-from", value_name = "PATTERNFILE", action = ArgAction::Append)]
    pub patterns_from: Vec<String>,
}

impl PatternOpts {
    /// The pattern options in command-line order (borg evaluates them in that order).
    pub fn build(
        &self,
        m: &clap::ArgMatches,
    ) -> anyhow::Result<crate::archive::patterns::PatternArgs> {
        use crate::archive::patterns::{PatternArgs, PatternOption};
        let mut all: Vec<(usize, PatternOption, String)> = Vec::new();
        for (id, opt) in [
            ("exclude", PatternOption::Exclude),
            ("exclude_from", PatternOption::ExcludeFrom),
            ("pattern", PatternOption::Pattern),
            ("patterns_from", PatternOption::PatternsFrom),
        ] {
            if let (Ok(Some(vals)), Some(idx)) = (m.try_get_many::<String>(id), m.indices_of(id)) {
                for (v, i) in vals.zip(idx) {
                    all.push((i, opt, v.clone()));
                }
            }
        }
        all.sort_by_key(|(i, _, _)| *i);
        let mut pa = PatternArgs::new();
        for (_, opt, v) in all {
            pa.add_option(opt, &v)
                .map_err(|e| crate::cli::exit::GenericError(e.to_string()))?;
        }
        Ok(pa)
    }
}

/// Archive filter options (`-P`, `-a`, `--sort-by`, `--first`, `--last`).
#[derive(Args, Debug, Clone, Default)]
pub struct ArchiveFilterOpts {
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
    /// Comma-separated list of sorting keys; valid keys are: timestamp, archive, name, id; default is: timestamp
    #[arg(long = "sort-by", value_name = "KEYS", default_value = "timestamp")]
    pub sort_by: String,
    /// consider first N archives after other filters were applied
    #[arg(long = "first", value_name = "N", value_parser = positive_int)]
    pub first: Option<usize>,
    /// consider last N archives after other filters were applied
    #[arg(long = "last", value_name = "N", value_parser = positive_int, conflicts_with = "first")]
    pub last: Option<usize>,
}

impl ArchiveFilterOpts {
    pub fn any(&self) -> bool {
        self.prefix.is_some()
            || self.glob_archives.is_some()
            || self.first.is_some()
            || self.last.is_some()
    }
}

pub fn positive_int(s: &str) -> Result<usize, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(n as usize),
        _ => Err(format!("A positive integer is required: {s}")),
    }
}
