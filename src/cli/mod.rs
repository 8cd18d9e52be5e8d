//! Command line interface: borg's subcommands, options, output formats and exit codes.

pub mod commands;
pub mod common;
pub mod exit;
pub mod format;
pub mod json;
pub mod placeholders;
pub mod timefmt;

use std::ffi::OsString;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use self::commands::Command;
use self::common::{Common, Ctx, UsageError};
use crate::log::Level;

#[derive(Parser, Debug)]
#[command(
    name = "borg",
    bin_name = "borg",
    about = "Borg - Deduplicated Backups (rborg)",
    disable_version_flag = true,
    infer_long_args = true,
    args_override_self = true,
    subcommand_required = false
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    /// show version number and exit
    #[arg(short = 'V', long = "version", action = clap::ArgAction::SetTrue)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The version line frontends parse: its second word is the borg version we are compatible
/// with; rborg's own version follows in parentheses.
pub fn version_line() -> String {
    format!(
        "borg {} (rborg {})",
        crate::BORG_COMPAT_VERSION,
        crate::RBORG_VERSION
    )
}

/// The effective log level: the last level flag given wins (so the most specific level does).
fn log_level(m: &ArgMatches) -> Level {
    let mut deepest = m;
    while let Some((_, sub)) = deepest.subcommand() {
        deepest = sub;
    }
    let mut best: Option<(usize, Level)> = None;
    for (id, lvl) in [
        ("critical", Level::Critical),
        ("error", Level::Error),
        ("warning", Level::Warning),
        ("info", Level::Info),
        ("debug", Level::Debug),
    ] {
        for mm in [m, deepest] {
            if mm.get_flag(id) {
                if let Some(idx) = mm.indices_of(id).and_then(|i| i.max()) {
                    if best.is_none_or(|(b, _)| idx >= b) {
                        best = Some((idx, lvl));
                    }
                }
            }
        }
    }
    best.map_or(Level::Warning, |(_, l)| l)
}

fn setup_logging(c: &Common, level: Level) {
    crate::log::set_level(level);
    crate::log::set_json(c.log_json);
    crate::units::set_iec(c.iec);
    if c.progress {
        crate::log::force_info(crate::log::PROGRESS);
    }
    if c.show_rc {
        crate::log::force_info("borg.output.show-rc");
    }
    if c.show_version {
        crate::log::force_info("borg.output.show-version");
    }
}

/// Entry point of the `rborg` binary; returns the process exit code.
pub fn main() -> i32 {
    tune_allocator(HeapProfile::Writer);
    let argv: Vec<OsString> = std::env::args_os().collect();
    run(argv)
}

/// How a command uses the heap, for [`tune_allocator`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum HeapProfile {
    /// Writers (`create` and the rest): peak RSS stays near the live working set.
    Writer,
    /// Readers (`extract`, `check`, ...) recycle chunk buffers one after another: keeping them
    /// in the heap saves the page faults (and zeroing) of fresh memory for every chunk.
    Reader,
}

/// glibc raises its mmap threshold as big blocks are freed, after which chunk-sized buffers
/// stay in the heap for good; fixed thresholds decide it instead. A fixed mmap threshold also
/// pins the trim threshold at 128 KiB, so readers raise that too (measured: extract's system
/// time halves).
pub fn tune_allocator(profile: HeapProfile) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning.
    unsafe {
        match profile {
            HeapProfile::Writer => {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
            }
            HeapProfile::Reader => {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
                // one arena: chunk buffers allocated on one worker and freed on another would
                // otherwise stay cached in several arenas (extract, none/none: peak RSS 80 ->
                // 61 MiB, same speed; the per-thread caches keep small allocations lock-free)
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
        }
    }
    #[cfg(target_env = "musl")]
    {
        // mimalloc's option numbers, the same in its v2 and v3 headers (the -sys crate does
        // not name these two).
        const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
        const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
        let purge_ms = match profile {
            HeapProfile::Writer => 0,
            HeapProfile::Reader => 10,
        };
        // SAFETY: plain option setters of the global allocator, valid at any time.
        unsafe {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
            libmimalloc_sys::mi_option_set(PURGE_DELAY, purge_ms);
        }
    }
    #[cfg(not(any(all(target_os = "linux", target_env = "gnu"), target_env = "musl")))]
    let _ = profile;
}

pub fn run(argv: Vec<OsString>) -> i32 {
    let cmd = Cli::command();
    let matches = match cmd.try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    return 0;
                }
                _ => {
                    let _ = e.print();
                    return exit::EXIT_ERROR;
                }
            }
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return exit::EXIT_ERROR;
        }
    };
    if cli.version {
        crate::outln!("{}", version_line());
        return 0;
    }
    let level = log_level(&matches);
    setup_logging(&cli.common, level);
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(cli.common.umask.unwrap_or(0o077) as libc::mode_t) };
    if cli.common.show_version {
        crate::log::info(
            "borg.output.show-version",
            &format!("borgbackup version {}", crate::BORG_COMPAT_VERSION),
        );
    }
    let remote_path = match &cli.common.remote_path {
        Some(p) => match placeholders::replace_placeholders(p, &Default::default()) {
            Ok(x) => Some(x),
            Err(e) => {
                crate::log::error("borg.archiver", &e.to_string());
                return exit::EXIT_ERROR;
            }
        },
        None => None,
    };
    crate::repo::remote::set_default_options(crate::repo::remote::RemoteOptions {
        rsh: cli.common.rsh.clone(),
        remote_path,
        log_level: None,
        umask: cli.common.umask,
        debug_topics: cli.common.debug_topic.clone(),
    });
    let Some(command) = cli.command else {
        let _ = Cli::command().print_help();
        return 0;
    };
    let sub_name = matches.subcommand_name().unwrap_or("").to_string();
    let mut deepest = &matches;
    while let Some((_, sub)) = deepest.subcommand() {
        deepest = sub;
    }
    let ctx = Ctx {
        common: cli.common.clone(),
        sub: deepest.clone(),
        argv: argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        log_level: level,
    };
    let result = commands::dispatch(command, &ctx);
    crate::log::clear_progress();
    let rc = match result {
        Ok(()) => exit::final_code(),
        Err(e) => {
            if let Some(u) = e.downcast_ref::<UsageError>() {
                crate::log::write_stderr_line(&format!("borg {sub_name}: error: {u}"));
                exit::EXIT_ERROR
            } else {
                let rc = exit::report(&e);
                exit::set_ec(rc);
                exit::final_code()
            }
        }
    };
    if cli.common.show_rc {
        exit::show_rc(rc);
    }
    rc
}

/// Writes command output to stdout. A closed pipe (`rborg list | head`) ends the process the
/// way it ends other Unix tools: by SIGPIPE.
pub fn write_stdout(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(s.as_bytes()).and_then(|_| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // SAFETY: restoring the default action and raising the signal has no preconditions.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
        }
        std::process::exit(exit::EXIT_ERROR);
    }
}

/// `println!` for command output (see [`write_stdout`]).
#[macro_export]
macro_rules! outln {
    () => { $crate::cli::write_stdout("\n") };
    ($($t:tt)*) => { $crate::cli::write_stdout(&format!("{}\n", format!($($t)*))) };
}
