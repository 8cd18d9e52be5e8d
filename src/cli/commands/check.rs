//! `borg check`: verify repository and archive consistency, optionally repair.

use clap::Args;

use crate::archive::check::{verify_objects, ArchiveChecker};
use crate::archive::session::{CheckOpen, ManifestStatus, Session};
use crate::cli::common::{location, ArchiveFilterOpts, Ctx, Want};
use crate::cli::exit::{self, CancelledByUser, CommandError};
use crate::prompt::{self, Question};

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// only perform repository checks
    #[arg(long = "repository-only")]
    pub repo_only: bool,
    /// only perform archives checks
    #[arg(long = "archives-only")]
    pub archives_only: bool,
    /// perform cryptographic archive data integrity verification (conflicts with ``--repository-only``)
    #[arg(long = "verify-data")]
    pub verify_data: bool,
    /// attempt to repair any inconsistencies found
    #[arg(long = "repair")]
    pub repair: bool,
    /// work slower, but using less space
    #[arg(long = "save-space")]
    pub save_space: bool,
    /// do only a partial repo check for max. SECONDS seconds (Default: unlimited)
    #[arg(long = "max-duration", value_name = "SECONDS", default_value_t = 0)]
    pub max_duration: u64,
    #[command(flatten)]
    pub filters: ArchiveFilterOpts,
    /// repository or archive to check consistency of
    #[arg(value_name = "REPOSITORY_OR_ARCHIVE")]
    pub location: Option<String>,
}

pub fn run(a: &CheckArgs, ctx: &Ctx) -> anyhow::Result<()> {
    if a.repair {
        let msg = "This is a potentially dangerous function.\ncheck --repair might lead to data loss (for kinds of corruption it is not\ncapable of dealing with). BE VERY CAREFUL!\n\nType 'YES' if you understand this and want to continue: ";
        if !prompt::yes(&Question {
            msg: Some(msg),
            false_msg: Some("Aborting."),
            invalid_msg: Some("Invalid answer, aborting."),
            truish: Some(&["YES"]),
            retry: false,
            env_var_override: Some("BORG_CHECK_I_KNOW_WHAT_I_AM_DOING"),
            ..Default::default()
        }) {
            return Err(CancelledByUser.into());
        }
    }
    if a.repo_only && (a.verify_data || a.filters.any()) {
        return Err(CommandError("--repository-only contradicts --first, --last, --glob-archives, --prefix and --verify-data arguments.".into()).into());
    }
    if a.repair && a.max_duration > 0 {
        return Err(CommandError("--repair does not allow --max-duration argument.".into()).into());
    }
    if a.max_duration > 0 && !a.repo_only {
        return Err(CommandError(
            "--repository-only is required for --max-duration support.".into(),
        )
        .into());
    }
    let loc = location(a.location.as_deref(), Want::Either, "REPOSITORY_OR_ARCHIVE")?;
    let repo = ctx.repository(&loc, true)?;
    // `--verify-data` of a local repository: the key is loaded first so that the repository
    // check verifies every object as it reads the segments (one pass over the data instead
    // of two). Not when repairing (the index is rebuilt) or if the manifest cannot be read
    // before the repository check.
    let fused = a.verify_data && !a.repair && !a.archives_only && repo.as_local().is_some();
    let mut preverified = None;
    let mut opened = None;
    let repo = if fused {
        let early = Session::for_check(repo, &loc.without_archive());
        match early {
            Ok(CheckOpen::Ready(s, status)) if matches!(status, ManifestStatus::Ok) => {
                let local = s.repo.as_local().expect("local");
                let key = &s.key;
                let verify = |objs: &mut dyn Iterator<Item = _>, verdict: &mut dyn FnMut(_, _)| {
                    verify_objects(key, objs, verdict)
                };
                let (ok, v) = local.check_verifying(&verify)?;
                if !ok {
                    exit::set_ec(exit::EXIT_WARNING);
                    return Ok(());
                }
                preverified = Some(v);
                opened = Some((s, status));
                None
            }
            other => {
                // release the repository (and its lock) before opening it again
                drop(other);
                Some(ctx.repository(&loc, true)?)
            }
        }
    } else {
        Some(repo)
    };
    // like borg: a failed repository check ends the command (the archive check would run on
    // an index that does not match the segments)
    if let Some(repo) = &repo {
        if !a.archives_only && !repo.check(a.repair, a.max_duration)? {
            exit::set_ec(exit::EXIT_WARNING);
            return Ok(());
        }
    }
    let mut ok = true;
    if !a.repo_only {
        let (mut session, status) = match (opened, repo) {
            (Some(o), _) => o,
            (None, Some(repo)) => match Session::for_check(repo, &loc.without_archive())? {
                CheckOpen::Ready(s, status) => (s, status),
                CheckOpen::Empty => {
                    crate::log::error(
                        "borg.archive",
                        "Repository contains no apparent data at all, cannot continue check/repair.",
                    );
                    exit::set_ec(exit::EXIT_WARNING);
                    return Ok(());
                }
            },
            (None, None) => unreachable!("a repository or an opened session"),
        };
        let mut checker = ArchiveChecker::new(&mut session, status, a.repair);
        if let Some(v) = preverified {
            checker.set_preverified(v);
        }
        if checker.start(a.verify_data)? {
            let archives = if let Some(name) = &loc.archive {
                Some(vec![name.as_bytes().to_vec()])
            } else if a.filters.any() {
                let rows = crate::cli::commands::list::filtered_archives(
                    checker.session(),
                    &a.filters,
                    true,
                )?;
                Some(rows.into_iter().map(|r| r.name).collect())
            } else {
                None
            };
            if !checker.check_archives(archives)? {
                ok = false;
            }
        } else {
            ok = false;
        }
    }
    if !ok {
        exit::set_ec(exit::EXIT_WARNING);
    }
    Ok(())
}
