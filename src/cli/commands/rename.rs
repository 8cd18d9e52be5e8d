//! `borg rename`: give an archive a new name (the archive object is rewritten with a new TAM).

use clap::Args;

use crate::archive::cache::Cache;
use crate::archive::delete::rename_archive;
use crate::archive::manifest::Operation;
use crate::cli::common::{archive_name, location, Ctx, Want};
use crate::compress::Compression;

#[derive(Args, Debug)]
pub struct RenameArgs {
    /// accepted as a no-op for borgmatic (borg 1.4 has no --dry-run here)
    #[arg(short = 'n', long = "dry-run", hide = true)]
    pub dry_run: bool,
    /// archive to rename
    #[arg(value_name = "ARCHIVE")]
    pub location: String,
    /// the new archive name to use
    #[arg(value_name = "NEWNAME")]
    pub name: String,
}

pub fn run(a: &RenameArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(Some(&a.location), Want::Archive, "ARCHIVE")?;
    let new = archive_name(&a.name)?;
    if a.dry_run {
        return Ok(());
    }
    let mut session = ctx.session(&loc, true, Operation::Write)?;
    let mut cache = Cache::open(&*session.repo, &session.key, &session.manifest)?;
    let old = loc.archive.clone().unwrap_or_default();
    let old_id = session.manifest.get(&old).map(|e| e.id);
    let id = rename_archive(
        &*session.repo,
        &session.key,
        &mut session.manifest,
        &mut cache.chunks,
        old.as_bytes(),
        new.as_bytes(),
    )?;
    session.commit_manifest(&Compression::Lz4)?;
    cache.commit(&session.manifest)?;
    if let Some(old_id) = old_id {
        cache.forget_archive(&old_id);
    }
    let _ = id;
    Ok(())
}
