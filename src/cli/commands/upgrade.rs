//! `borg upgrade`: TAM management (the CVE-2023-36811 procedure). Conversion of Attic and
//! borg 0.xx repositories is not supported.

use clap::Args;

use crate::archive::cache::Cache;
use crate::archive::manifest::Operation;
use crate::archive::prune::{format_archive, ArchiveRef};
use crate::archive::session::Session;
use crate::archive::upgrade::{archives_tam, ArchiveTam};
use crate::cli::common::{location, Ctx, Want};
use crate::cli::exit::{self, GenericError};
use crate::cli::timefmt::SystemZone;
use crate::compress::Compression;
use crate::crypto::keyblob;
use crate::crypto::KeyKind;

#[derive(Args, Debug)]
pub struct UpgradeArgs {
    /// do not change repository
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// rewrite repository in place, with no chance of going back to older versions of the repository.
    #[arg(long)]
    pub inplace: bool,
    /// Force upgrade
    #[arg(long)]
    pub force: bool,
    /// Enable manifest authentication (in key and cache) (Borg 1.0.9 and later).
    #[arg(long)]
    pub tam: bool,
    /// check manifest authentication (in key and cache).
    #[arg(long = "check-tam")]
    pub check_tam: bool,
    /// Disable manifest authentication (in key and cache).
    #[arg(long = "disable-tam")]
    pub disable_tam: bool,
    /// check TAM authentication for all archives.
    #[arg(long = "check-archives-tam")]
    pub check_archives_tam: bool,
    /// add TAM authentication for all archives.
    #[arg(long = "archives-tam")]
    pub archives_tam: bool,
    /// path to the repository to be upgraded
    #[arg(value_name = "REPOSITORY")]
    pub location: Option<String>,
}

fn archive_line(name: &[u8], e: &crate::archive::manifest::ArchiveEntry) -> String {
    format_archive(
        &ArchiveRef {
            name: String::from_utf8_lossy(name).into_owned(),
            id: e.id.0,
            ts: e.ts(),
        },
        &SystemZone,
    )
}

fn open(a: &UpgradeArgs, ctx: &Ctx, force: bool) -> anyhow::Result<Session> {
    let loc = location(a.location.as_deref(), Want::Repo, "REPOSITORY")?;
    let repo = crate::repo::open(&loc, &ctx.open_options(true))?;
    Ok(Session::from_repo_opts(
        repo,
        &loc,
        Operation::Check,
        force,
    )?)
}

pub fn run(a: &UpgradeArgs, ctx: &Ctx) -> anyhow::Result<()> {
    if a.archives_tam || a.check_archives_tam {
        upgrade_archives(a, ctx)
    } else if a.tam || a.check_tam {
        upgrade_manifest(a, ctx)
    } else if a.disable_tam {
        disable_tam(a, ctx)
    } else {
        Err(GenericError(
            "rborg upgrade converts no Attic or borg 0.xx repositories; use --tam, --check-tam, \
             --archives-tam, --check-archives-tam or --disable-tam"
                .into(),
        )
        .into())
    }
}

fn upgrade_archives(a: &UpgradeArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let read_only = a.check_archives_tam;
    let mut s = open(a, ctx, a.force)?;
    let mut cache = Cache::open(&*s.repo, &s.key, &s.manifest)?;
    let issues = archives_tam(
        &*s.repo,
        &s.key,
        &mut s.manifest,
        &mut cache.chunks,
        read_only,
        |name, entry, outcome| {
            let line = archive_line(name, entry);
            match outcome {
                ArchiveTam::Present => crate::outln!("Archive TAM present: {line}"),
                ArchiveTam::Missing => crate::outln!("Archive TAM missing: {line}"),
                ArchiveTam::Added(id) => {
                    crate::outln!("Added archive TAM:   {line} -> [{}]", id.hex())
                }
            }
        },
    )?;
    if read_only {
        if issues > 0 {
            exit::warn(
                1,
                None,
                &format!("Found {issues} archives with TAM issues!"),
            );
        } else {
            crate::outln!("All archives are TAM authenticated.");
        }
        return Ok(());
    }
    s.commit_manifest(&Compression::Lz4)?;
    cache.commit(&s.manifest)?;
    if issues > 0 {
        crate::outln!("Fixed {issues} archives with TAM issues!");
        crate::outln!("All archives are TAM authenticated now.");
    } else {
        crate::outln!("All archives are TAM authenticated.");
    }
    Ok(())
}

/// Re-saves the key blob with `tam_required` set as given (same passphrase).
fn save_key_tam(s: &mut Session, required: bool) -> anyhow::Result<()> {
    let Some(material) = s.key.material.as_mut() else {
        return Ok(());
    };
    material.tam_required = required;
    s.key.tam_required = required;
    let pass: String = s
        .passphrase
        .as_ref()
        .map(|p| p.as_str())
        .unwrap_or_default()
        .to_string();
    let keyfile = s
        .key
        .target
        .as_ref()
        .filter(|_| s.key.kind.storage() == crate::crypto::key::KeyStorage::Keyfile)
        .map(std::path::PathBuf::from);
    let target = keyblob::save_key(
        &s.key,
        &*s.repo,
        &s.location,
        &pass,
        keyfile.as_deref(),
        false,
    )?;
    crate::outln!("Key updated");
    if let Some(t) = target {
        crate::outln!("Key location: {}", t.display());
    }
    Ok(())
}

fn key_has_blob(kind: KeyKind) -> bool {
    kind != KeyKind::Plaintext
}

fn upgrade_manifest(a: &UpgradeArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let read_only = a.check_tam;
    let mut s = open(a, ctx, a.force)?;
    let mut issues = 0;
    if !s.manifest.tam_verified || !s.manifest.config_tam_required() {
        if read_only {
            issues += 1;
            exit::warn(
                1,
                None,
                "Repository Manifest is not TAM verified or a TAM is not required!",
            );
        } else {
            crate::outln!("Manifest contents:");
            let mut entries: Vec<_> = s.manifest.archives.iter().collect();
            entries.sort_by_key(|(_, e)| e.ts());
            for (name, e) in entries {
                crate::outln!("{}", archive_line(name, e));
            }
            s.manifest.set_config_bool("tam_required", true);
            s.commit_manifest(&Compression::Lz4)?;
        }
    }
    let key_requires = s.key.material.as_ref().is_some_and(|m| m.tam_required);
    if !key_requires && key_has_blob(s.key.kind) {
        if read_only {
            issues += 1;
            exit::warn(1, None, "Key does not require TAM authentication!");
        } else {
            save_key_tam(&mut s, true)?;
        }
    }
    if !s.security.tam_required() {
        if read_only {
            issues += 1;
            exit::warn(
                1,
                None,
                "Client-side security database does not require a TAM!",
            );
        } else {
            s.security.set_tam_required(true)?;
            crate::outln!("Updated security database");
        }
    }
    if read_only && issues == 0 {
        crate::outln!("Manifest authentication setup OK for this client and this repository.");
    }
    Ok(())
}

fn disable_tam(a: &UpgradeArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let mut s = open(a, ctx, true)?;
    s.security.set_tam_required(false)?;
    let key_requires = s.key.material.as_ref().is_some_and(|m| m.tam_required);
    if key_requires && key_has_blob(s.key.kind) {
        save_key_tam(&mut s, false)?;
    }
    s.manifest.set_config_bool("tam_required", false);
    s.commit_manifest(&Compression::Lz4)?;
    Ok(())
}
