//! `borg with-lock`: run a command while holding the repository's exclusive lock.

use clap::Args;

use crate::cli::common::{location, Ctx, Want};
use crate::cli::exit::{set_ec, CommandError};
use crate::repo::ObjectId;

#[derive(Args, Debug)]
pub struct WithLockArgs {
    /// repository to lock
    #[arg(value_name = "REPOSITORY")]
    pub location: String,
    /// command to run
    #[arg(value_name = "COMMAND")]
    pub command: String,
    /// command arguments
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

pub fn run(a: &WithLockArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(Some(&a.location), Want::Repo, "REPOSITORY")?;
    let repo = ctx.repository(&loc, true)?;
    // Rewrite the manifest unchanged: starts a transaction (what old servers needed to upgrade
    // their lock) and leaves a complete segment on disk before the command runs.
    let data = repo.get(&ObjectId::MANIFEST)?;
    repo.put(&ObjectId::MANIFEST, &data)?;
    if let Some(l) = repo.as_local() {
        l.close_segment()?;
    }
    let status = std::process::Command::new(&a.command)
        .args(&a.args)
        .status();
    // Commit the no-op so the new segment number is never reused for other content.
    repo.commit(false, 0.1, false)?;
    repo.close()?;
    match status {
        Ok(s) => {
            let rc = s.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)
            });
            set_ec(rc);
            Ok(())
        }
        Err(e) => {
            Err(CommandError(format!("Error while trying to run '{}': {e}", a.command)).into())
        }
    }
}
