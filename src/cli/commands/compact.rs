//! `borg compact`: free repository space by compacting segments.

use clap::Args;

use crate::cli::common::{location, Ctx, Want};

#[derive(Args, Debug)]
pub struct CompactArgs {
    /// do nothing (borg 1.2.9+/1.4 accept it for borgmatic)
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// cleanup commit-only 17-byte segment files
    #[arg(long = "cleanup-commits")]
    pub cleanup_commits: bool,
    /// set minimum threshold for saved space in PERCENT (Default: 10)
    #[arg(long = "threshold", value_name = "PERCENT", default_value_t = 10.0)]
    pub threshold: f64,
    /// repository to compact
    #[arg(value_name = "REPOSITORY")]
    pub location: Option<String>,
}

pub fn run(a: &CompactArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(a.location.as_deref(), Want::Repo, "REPOSITORY")?;
    if a.dry_run {
        return Ok(());
    }
    let repo = ctx.repository(&loc, true)?;
    repo.commit(true, a.threshold / 100.0, a.cleanup_commits)?;
    repo.close()?;
    Ok(())
}
