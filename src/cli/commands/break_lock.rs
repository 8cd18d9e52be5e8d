//! `borg break-lock`: remove repository (and cache) locks unconditionally.

use clap::Args;

use crate::cli::common::{location, Ctx, Want};
use crate::repo::OpenOptions;

#[derive(Args, Debug)]
pub struct BreakLockArgs {
    /// repository for which to break the locks
    #[arg(value_name = "REPOSITORY")]
    pub location: Option<String>,
}

pub fn run(a: &BreakLockArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(a.location.as_deref(), Want::Repo, "REPOSITORY")?;
    let opts = OpenOptions {
        exclusive: None,
        lock_wait: ctx.common.lock_wait,
        ..OpenOptions::default()
    };
    let repo = crate::repo::open(&loc, &opts)?;
    repo.break_lock()?;
    let cache = crate::archive::cache::cache_path(&repo.id());
    let _ = std::fs::remove_dir_all(cache.join("lock.exclusive"));
    let _ = std::fs::remove_file(cache.join("lock.roster"));
    Ok(())
}
