//! `borg delete`: delete archives, or a whole repository.

use clap::{ArgAction, Args};

use crate::archive::cache::Cache;
use crate::archive::manifest::{fetch_envelope, Manifest};
use crate::cli::common::{location, Ctx, Want};
use crate::cli::exit::{CancelledByUser, CommandError};
use crate::crypto::keyblob;
use crate::crypto::security::SecurityDir;
use crate::prompt::{self, Question};

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// do not change repository
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// output verbose list of archives
    #[arg(long = "list")]
    pub list: bool,
    /// print statistics for the deleted archive
    #[arg(short = 's', long = "stats")]
    pub stats: bool,
    /// delete only the local cache for the given repository
    #[arg(long = "cache-only")]
    pub cache_only: bool,
    /// force deletion of corrupted archives, use ``--force --force`` in case ``--force`` does not work.
    #[arg(long = "force", action = ArgAction::Count)]
    pub force: u8,
    /// keep the local security info when deleting a repository
    #[arg(long = "keep-security-info")]
    pub keep_security_info: bool,
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
    /// only consider archive names starting with this prefix. (deprecated)
    #[arg(short = 'P', long = "prefix", value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// only consider archive names matching the glob.
    #[arg(short = 'a', long = "glob-archives", value_name = "GLOB")]
    pub glob_archives: Option<String>,
    /// Comma-separated list of sorting keys
    #[arg(long = "sort-by", value_name = "KEYS", default_value = "timestamp")]
    pub sort_by: String,
    /// consider first N archives after other filters were applied
    #[arg(long = "first", value_name = "N")]
    pub first: Option<usize>,
    /// consider last N archives after other filters were applied
    #[arg(long = "last", value_name = "N", conflicts_with = "first")]
    pub last: Option<usize>,
    /// repository or archive to delete
    #[arg(value_name = "REPOSITORY_OR_ARCHIVE")]
    pub location: Option<String>,
    /// archives to delete
    #[arg(value_name = "ARCHIVE")]
    pub archives: Vec<String>,
}

pub fn run(a: &DeleteArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(a.location.as_deref(), Want::Either, "REPOSITORY_OR_ARCHIVE")?;
    let filters =
        a.first.is_some() || a.last.is_some() || a.prefix.is_some() || a.glob_archives.is_some();
    let explicit = loc.archive.is_some() || !a.archives.is_empty();
    if filters && explicit {
        return Err(CommandError(
            "Mixing archive filters and explicitly named archives is not supported.".into(),
        )
        .into());
    }
    if filters || explicit {
        return super::delete_archives::run(a, ctx, &loc);
    }
    delete_repository(a, ctx, &loc)
}

fn delete_repository(a: &DeleteArgs, ctx: &Ctx, loc: &crate::repo::Location) -> anyhow::Result<()> {
    let repo = ctx.repository(loc, true)?;
    let repo_id = repo.id();
    if !a.cache_only {
        if a.force == 0 {
            let mut msg = Vec::new();
            let manifest = fetch_envelope(&*repo).ok().and_then(|env| {
                keyblob::load_key(&*repo, env[0])
                    .ok()
                    .and_then(|(k, _)| Manifest::load(&k, &env, "").ok())
            });
            match &manifest {
                Some(m) => msg.push(format!(
                    "You requested to completely DELETE the following repository *including* {} archives it contains:",
                    m.archives.len()
                )),
                None => msg.push("You requested to completely DELETE the following repository *including* all archives it may contain:".into()),
            }
            msg.push(super::info::DASHES.into());
            msg.push(format!("Repository ID: {}", repo_id.hex()));
            msg.push(format!("Location: {}", repo.location().canonical_path()));
            if a.list {
                msg.push(String::new());
                msg.push("Archives:".into());
                match &manifest {
                    Some(m) if !m.archives.is_empty() => {
                        let mut v: Vec<_> = m.archives.iter().collect();
                        v.sort_by_key(|(_, e)| e.ts());
                        for (name, e) in v {
                            msg.push(format!(
                                "{:<36} {} [{}]",
                                String::from_utf8_lossy(name),
                                crate::cli::timefmt::format_time_local(&e.ts()),
                                e.id.hex()
                            ));
                        }
                    }
                    Some(_) => msg.push("This repository seems to not have any archives.".into()),
                    None => msg.push("This repository seems to have no manifest, so we can't tell anything about its contents.".into()),
                }
            }
            msg.push(super::info::DASHES.into());
            msg.push("Type 'YES' if you understand this and want to continue: ".into());
            let text = msg.join("\n");
            if !prompt::yes(&Question {
                msg: Some(&text),
                false_msg: Some("Aborting."),
                invalid_msg: Some("Invalid answer, aborting."),
                truish: Some(&["YES"]),
                retry: false,
                env_var_override: Some("BORG_DELETE_I_KNOW_WHAT_I_AM_DOING"),
                ..Default::default()
            }) {
                return Err(CancelledByUser.into());
            }
        }
        if !a.dry_run {
            repo.destroy()?;
            crate::log::info("borg.archiver", "Repository deleted.");
            if !a.keep_security_info {
                SecurityDir::for_repo(&repo_id.0).destroy()?;
            }
        } else {
            crate::log::info("borg.archiver", "Would delete repository.");
            crate::log::info(
                "borg.archiver",
                &format!(
                    "Would {} security info.",
                    if a.keep_security_info {
                        "keep"
                    } else {
                        "delete"
                    }
                ),
            );
        }
    }
    if !a.dry_run {
        Cache::destroy(&repo_id)?;
        crate::log::info("borg.archiver", "Cache deleted.");
    } else {
        crate::log::info("borg.archiver", "Would delete cache.");
    }
    Ok(())
}
