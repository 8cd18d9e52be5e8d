//! `borg key export|import|change-passphrase|migrate-to-repokey`.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::archive::manifest::fetch_envelope;
use crate::cli::common::{location, Ctx, Want};
use crate::crypto::key::KeyStorage;
use crate::crypto::keyblob::{self, text_to_blob};
use crate::crypto::{passphrase, CryptoError, Key, KeyKind, KeyMaterial};

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Export the repository key for backup
    Export(ExportArgs),
    /// Import the repository key from backup
    Import(ImportArgs),
    /// Change repository key file passphrase
    #[command(name = "change-passphrase")]
    ChangePassphrase(RepoArg),
    /// Migrate passphrase -> repokey
    #[command(name = "migrate-to-repokey")]
    MigrateToRepokey(RepoArg),
}

#[derive(Args, Debug)]
pub struct RepoArg {
    #[arg(value_name = "REPOSITORY")]
    pub location: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[arg(value_name = "REPOSITORY")]
    pub location: Option<String>,
    /// where to store the backup
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Create an export suitable for printing and later type-in
    #[arg(long)]
    pub paper: bool,
    /// Create an html file suitable for printing and later type-in or qr scan
    #[arg(long = "qr-html", conflicts_with = "paper")]
    pub qr_html: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[arg(value_name = "REPOSITORY")]
    pub location: Option<String>,
    /// path to the backup ('-' to read from stdin)
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// interactively import from a backup done with ``--paper``
    #[arg(long)]
    pub paper: bool,
}

pub fn run(cmd: KeyCommand, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Export(a) => export(&a, ctx),
        KeyCommand::Import(a) => import(&a, ctx),
        KeyCommand::ChangePassphrase(a) => change_passphrase(&a, ctx),
        KeyCommand::MigrateToRepokey(a) => migrate(&a, ctx),
    }
}

fn write_out(path: Option<&PathBuf>, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    match path {
        None => {
            std::io::stdout().write_all(data)?;
            Ok(())
        }
        Some(p) if p.as_os_str() == "-" => {
            std::io::stdout().write_all(data)?;
            Ok(())
        }
        Some(p) => std::fs::write(p, data).map_err(|e| CryptoError::io(p, e).into()),
    }
}

fn key_kind_of(repo: &dyn crate::repo::Repository) -> anyhow::Result<KeyKind> {
    let env = fetch_envelope(repo)?;
    let kind = KeyKind::from_type_byte(env[0])?;
    if kind.storage() == KeyStorage::None {
        return Err(CryptoError::UnencryptedRepo.into());
    }
    Ok(kind)
}

fn export(a: &ExportArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(a.location.as_deref(), Want::Repo, "REPOSITORY")?;
    let repo = ctx.repository(&loc, false)?;
    let kind = key_kind_of(&*repo)?;
    let (text, _) = keyblob::load_blob_text(kind, &*repo)?;
    let keyfile = keyblob::keyfile_text(&repo.id().0, &text);
    let blob = text_to_blob(&text)?;
    let paper = keyblob::paper_export(&repo.id().0, &blob);
    if a.paper {
        write_out(a.path.as_ref(), paper.as_bytes())
    } else if a.qr_html {
        write_out(
            a.path.as_ref(),
            keyblob::qr_html(&keyfile, &paper).as_bytes(),
        )
    } else {
        write_out(a.path.as_ref(), keyfile.as_bytes())
    }
}

fn import(a: &ImportArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(a.location.as_deref(), Want::Repo, "REPOSITORY")?;
    let repo = ctx.repository(&loc, true)?;
    let kind = key_kind_of(&*repo)?;
    let id = repo.id().0;
    let blob_text = if a.paper {
        let stdin = std::io::stdin();
        let ask = |prompt: &str| -> Option<String> {
            eprint!("{prompt}");
            let mut l = String::new();
            match stdin.read_line(&mut l) {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(l.trim_end_matches(['\n', '\r']).to_string()),
            }
        };
        match keyblob::paper_import(&id, ask, |m| eprintln!("{m}"))? {
            Some(blob) => keyblob::blob_to_text(&blob),
            None => {
                eprintln!("\n - aborted");
                return Ok(());
            }
        }
    } else {
        let path = a.path.as_ref().ok_or_else(|| {
            crate::cli::exit::CommandError("expected input file to import key from".into())
        })?;
        let mut data = String::new();
        if path.as_os_str() == "-" {
            std::io::stdin().read_to_string(&mut data)?;
        } else {
            if !path.exists() {
                return Err(crate::cli::exit::CommandError(format!(
                    "input file to import key from does not exist: {}",
                    path.display()
                ))
                .into());
            }
            data = std::fs::read_to_string(path).map_err(|e| CryptoError::io(path, e))?;
        }
        let first = format!("{} {}\n", keyblob::FILE_ID, hex::encode(id));
        if !data.starts_with(&first) {
            if !data.starts_with(keyblob::FILE_ID) {
                return Err(CryptoError::NotABorgKeyFile.into());
            }
            return Err(CryptoError::RepoIdMismatch.into());
        }
        data[first.len()..].trim().to_string()
    };
    let existing = if kind.storage() == KeyStorage::Keyfile {
        keyblob::find_keyfile(&id, &repo.location().canonical_path()).ok()
    } else {
        None
    };
    keyblob::store_blob_text(kind, &*repo, &loc, &blob_text, existing.as_deref(), false)?;
    Ok(())
}

fn change_passphrase(a: &RepoArg, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(a.location.as_deref(), Want::Repo, "REPOSITORY")?;
    let repo = ctx.repository(&loc, true)?;
    let env = fetch_envelope(&*repo)?;
    let (key, _) = keyblob::load_key(&*repo, env[0])?;
    if key.kind.storage() == KeyStorage::None {
        return Err(CryptoError::UnencryptedRepo.into());
    }
    let newpass = passphrase::new_passphrase(true)?;
    let keyfile = key
        .target
        .as_ref()
        .filter(|_| key.kind.storage() == KeyStorage::Keyfile)
        .map(PathBuf::from);
    let target = keyblob::save_key(&key, &*repo, &loc, &newpass, keyfile.as_deref(), false)?;
    crate::log::info("borg.archiver", "Key updated");
    if let Some(t) = target {
        crate::log::info("borg.archiver", &format!("Key location: {}", t.display()));
    }
    Ok(())
}

/// Pre-1.0 "passphrase" mode derived the key from the passphrase with the repository id as
/// salt; this re-wraps that key material as a repokey.
fn migrate(a: &RepoArg, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(a.location.as_deref(), Want::Repo, "REPOSITORY")?;
    let repo = ctx.repository(&loc, true)?;
    let env = fetch_envelope(&*repo)?;
    if env[0] != KeyKind::Passphrase.type_byte() {
        return Err(crate::cli::exit::GenericError(
            "repository is not in (legacy) passphrase mode".into(),
        )
        .into());
    }
    let derive = |pass: &str| -> KeyMaterial {
        let mut out = [0u8; 100];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(pass.as_bytes(), &repo.id().0, 100_000, &mut out);
        KeyMaterial {
            repository_id: repo.id().0,
            enc_key: out[0..32].try_into().expect("32"),
            enc_hmac_key: out[32..64].to_vec(),
            id_key: out[64..96].to_vec(),
            chunk_seed: u32::from_be_bytes(out[96..100].try_into().expect("4")) as i32,
            tam_required: false,
        }
    };
    let prompt = format!("Enter passphrase for {}: ", loc.canonical_path());
    let mut pass = match passphrase::env_passphrase()? {
        Some(p) => p,
        None => passphrase::getpass(&prompt)?,
    };
    let mut tries = 0;
    let material = loop {
        let m = derive(&pass);
        let k = Key::new(KeyKind::Repokey, Some(m.clone()));
        if k.open(None, &env).is_ok() {
            break m;
        }
        tries += 1;
        if tries >= 3 {
            return Err(CryptoError::PasswordRetriesExceeded.into());
        }
        pass = passphrase::getpass(&prompt)?;
    };
    let key = Key::new(KeyKind::Repokey, Some(material));
    let newpass = passphrase::new_passphrase(true)?;
    keyblob::save_key(&key, &*repo, &loc, &newpass, None, false)?;
    crate::log::info("borg.archiver", "Key updated");
    Ok(())
}
