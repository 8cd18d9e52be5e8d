//! Opening a repository for archive operations: lock, key (with passphrase), manifest, and
//! the security-dir checks borg performs on every access.

use super::manifest::{fetch_envelope, Manifest, Operation};
use super::Result;
use crate::crypto::keyblob;
use crate::crypto::passphrase::Passphrase;
use crate::crypto::security::SecurityDir;
use crate::crypto::{Key, KeyKind};
use crate::repo::{self, Location, OpenOptions, Repository};

pub struct Session {
    pub repo: Box<dyn Repository>,
    pub key: Key,
    pub manifest: Manifest,
    pub location: Location,
    pub passphrase: Option<Passphrase>,
    pub security: SecurityDir,
}

impl Session {
    /// Opens `location`, loads key and manifest, and runs the security checks.
    pub fn open(location: &Location, opts: &OpenOptions, op: Operation) -> Result<Session> {
        let repo = repo::open(location, opts)?;
        Self::from_repo(repo, location, op)
    }

    pub fn from_repo(
        repo: Box<dyn Repository>,
        location: &Location,
        op: Operation,
    ) -> Result<Session> {
        Self::from_repo_opts(repo, location, op, false)
    }

    /// Like [`Session::from_repo`]; `force_tam_not_required` accepts a manifest without TAM
    /// even where one is required (borg's `upgrade --force`, to repair such a repository).
    pub fn from_repo_opts(
        repo: Box<dyn Repository>,
        location: &Location,
        op: Operation,
        force_tam_not_required: bool,
    ) -> Result<Session> {
        let envelope = fetch_envelope(&*repo)?;
        let (mut key, passphrase) = keyblob::load_key(&*repo, envelope[0])?;
        let security = SecurityDir::for_repo(&repo.id().0);
        if key.kind != KeyKind::Plaintext && !key.tam_required && security.tam_required() {
            key.tam_required = true;
        }
        key.init_ivs_from_manifest(Some(&envelope))?;
        let required = key.tam_required;
        if force_tam_not_required {
            key.tam_required = false;
        }
        let manifest = Manifest::load(&key, &envelope, &repo.location().canonical_path());
        key.tam_required = required;
        let manifest = manifest?;
        manifest.check_features(op)?;
        let logically_encrypted = match key.kind {
            KeyKind::Plaintext | KeyKind::Authenticated | KeyKind::AuthenticatedBlake2 => false,
            KeyKind::Repokey | KeyKind::RepokeyBlake2 => {
                passphrase.as_ref().is_none_or(|p| !p.is_empty())
            }
            _ => true,
        };
        security.assert_secure(
            &repo.location().canonical_path(),
            key.kind.type_byte(),
            logically_encrypted,
            &manifest.timestamp,
            true,
        )?;
        if manifest.tam_verified && key.kind != KeyKind::Plaintext {
            security.set_tam_required(manifest.config_tam_required())?;
        }
        Ok(Session {
            repo,
            key,
            manifest,
            location: location.clone(),
            passphrase,
            security,
        })
    }

    /// Writes the manifest, commits, and records the new state in the security dir.
    pub fn commit_manifest(&mut self, compression: &crate::compress::Compression) -> Result<()> {
        commit_manifest(
            &*self.repo,
            &self.key,
            &mut self.manifest,
            &self.security,
            compression,
        )
    }
}

/// Writes the manifest, commits the transaction, and records the new manifest timestamp in
/// the security dir (so a rollback of the repository is detected as replay).
pub fn commit_manifest(
    repo: &dyn Repository,
    key: &Key,
    manifest: &mut Manifest,
    security: &SecurityDir,
    compression: &crate::compress::Compression,
) -> Result<()> {
    manifest.write(repo, key, compression)?;
    repo.commit(false, 0.1, false)?;
    security.save(
        &repo.location().canonical_path(),
        key.kind.type_byte(),
        &manifest.timestamp,
    )?;
    Ok(())
}
