//! `borg serve`: answer a borg (or rborg) client's repository RPC on stdin/stdout.

use clap::{ArgAction, Args};

use crate::cli::common::Ctx;
use crate::repo::local::config::parse_file_size;
use crate::repo::serve::{serve_stdio, ServeOptions};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// restrict repository access to PATH. Can be specified multiple times to allow the client access to several directories.
    #[arg(long = "restrict-to-path", value_name = "PATH", action = ArgAction::Append)]
    pub restrict_to_paths: Vec<String>,
    /// restrict repository access. Only the repository located at PATH (no sub-directories are considered) is accessible.
    #[arg(long = "restrict-to-repository", value_name = "PATH", action = ArgAction::Append)]
    pub restrict_to_repositories: Vec<String>,
    /// only allow appending to repository segment files.
    #[arg(long = "append-only")]
    pub append_only: bool,
    /// Override storage quota of the repository (e.g. 5G, 1.5T).
    #[arg(long = "storage-quota", value_name = "QUOTA")]
    pub storage_quota: Option<String>,
}

pub fn run(a: &ServeArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let quota = match &a.storage_quota {
        Some(q) => Some(parse_file_size(q).ok_or_else(|| {
            crate::cli::common::UsageError(format!("argument --storage-quota: invalid size {q:?}"))
        })?),
        None => None,
    };
    let opts = ServeOptions {
        restrict_to_paths: a.restrict_to_paths.iter().map(Into::into).collect(),
        restrict_to_repositories: a.restrict_to_repositories.iter().map(Into::into).collect(),
        append_only: a.append_only,
        storage_quota: quota,
        lock_wait: ctx.common.lock_wait,
        umask: ctx.common.umask,
        log_level: Some(ctx.log_level),
        debug_topics: ctx.common.debug_topic.clone(),
    };
    let rc = serve_stdio(opts);
    crate::cli::exit::set_ec(rc);
    Ok(())
}
