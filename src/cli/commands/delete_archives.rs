//! `borg delete REPO::ARCHIVE ...` and filtered deletes.

use super::delete::DeleteArgs;
use crate::cli::common::Ctx;

pub fn run(_a: &DeleteArgs, _ctx: &Ctx, _loc: &crate::repo::Location) -> anyhow::Result<()> {
    anyhow::bail!("deleting archives is not implemented yet")
}
