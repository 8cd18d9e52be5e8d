//! `borg init`: create an empty repository with a new key.

use clap::Args;

use crate::archive::manifest::Manifest;
use crate::cli::common::{location, Ctx, UsageError, Want};
use crate::compress::Compression;
use crate::crypto::keyblob;
use crate::crypto::passphrase;
use crate::crypto::security::SecurityDir;
use crate::crypto::{Key, KeyKind, KeyMaterial};
use crate::repo::local::config::parse_file_size;
use crate::repo::OpenOptions;

fn parse_quota(s: &str) -> Result<u64, String> {
    let v = parse_file_size(s).ok_or_else(|| format!("invalid file size: {s:?}"))?;
    if v < 10_000_000 {
        return Err(format!(
            "quota is too small ({s}). At least 10M are required."
        ));
    }
    Ok(v)
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// repository to create
    #[arg(value_name = "REPOSITORY")]
    pub location: Option<String>,
    /// select encryption key mode **(required)**
    #[arg(short = 'e', long = "encryption", value_name = "MODE", required = true,
          value_parser = ["none", "keyfile", "repokey", "keyfile-blake2", "repokey-blake2", "authenticated", "authenticated-blake2"])]
    pub encryption: String,
    /// create an append-only mode repository.
    #[arg(long = "append-only")]
    pub append_only: bool,
    /// Set storage quota of the new repository (e.g. 5G, 1.5T). Default: no quota.
    #[arg(long = "storage-quota", value_name = "QUOTA", value_parser = parse_quota)]
    pub storage_quota: Option<u64>,
    /// create the parent directories of the repository directory, if they are missing.
    #[arg(long = "make-parent-dirs")]
    pub make_parent_dirs: bool,
}

pub fn run(a: &InitArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(a.location.as_deref(), Want::Repo, "REPOSITORY")?;
    let kind = KeyKind::from_arg_name(&a.encryption)
        .ok_or_else(|| UsageError(format!("invalid encryption mode {:?}", a.encryption)))?;
    let path = loc.canonical_path();
    crate::log::info(
        "borg.archiver",
        &format!("Initializing repository at \"{path}\""),
    );
    let opts = OpenOptions {
        create: true,
        exclusive: Some(true),
        lock_wait: ctx.common.lock_wait,
        append_only: a.append_only,
        storage_quota: a.storage_quota,
        make_parent_dirs: a.make_parent_dirs,
    };
    let repo = crate::repo::open(&loc, &opts)?;
    let result = (|| -> anyhow::Result<Key> {
        if kind == KeyKind::Plaintext {
            crate::log::info(
                "borg.crypto.key",
                "Encryption NOT enabled.\nUse the \"--encryption=repokey|keyfile\" to enable encryption.",
            );
            return Ok(Key::plaintext());
        }
        let pass = passphrase::new_passphrase(true)?;
        let key = Key::new(kind, Some(KeyMaterial::generate(kind, repo.id().0)));
        let target = keyblob::save_key(&key, &*repo, &loc, &pass, None, true)?;
        if let Some(t) = target {
            crate::log::info(
                "borg.crypto.key",
                &format!("Key in \"{}\" created.", t.display()),
            );
            crate::log::info(
                "borg.crypto.key",
                "Keep this key safe. Your data will be inaccessible without it.",
            );
        }
        Ok(key)
    })();
    let key = match result {
        Ok(k) => k,
        Err(e) => {
            // No key, no repository: do not leave a half-made one behind.
            let _ = repo.destroy();
            return Err(e);
        }
    };
    key.init_ivs_from_manifest(None)?;
    let mut manifest = Manifest::new(&key);
    manifest.write(&*repo, &key, &Compression::Lz4)?;
    repo.commit(false, 0.1, false)?;
    let security = SecurityDir::for_repo(&repo.id().0);
    security.save(&path, key.kind.type_byte(), &manifest.timestamp)?;
    let _ = crate::archive::cache::Cache::open(&*repo, &key, &manifest)?;
    if key.tam_required {
        security.set_tam_required(true)?;
    }
    if kind != KeyKind::Plaintext {
        crate::log::warning(
            "borg.archiver",
            "\nIMPORTANT: you will need both KEY AND PASSPHRASE to access this repo!\n\n\
Key storage location depends on the mode:\n\
- repokey modes: key is stored in the repository directory.\n\
- keyfile modes: key is stored in the home directory of this user.\n\n\
For any mode, you should:\n\
1. Export the borg key and store the result at a safe place:\n   \
borg key export           REPOSITORY encrypted-key-backup\n   \
borg key export --paper   REPOSITORY encrypted-key-backup.txt\n   \
borg key export --qr-html REPOSITORY encrypted-key-backup.html\n\
2. Write down the borg key passphrase and store it at safe place.\n",
        );
    }
    repo.close()?;
    Ok(())
}
