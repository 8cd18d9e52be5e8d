//! Opening a repository for archive operations: lock, key (with passphrase), manifest, and
//! the security-dir checks borg performs on every access.

use super::manifest::{fetch_envelope, Manifest, Operation};
use super::{ArchiveError, Result};
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

    /// Opens a repository for `check`: like borg's checker it needs no manifest. The key comes
    /// from the manifest envelope or, when the manifest is missing, from the first object whose
    /// type byte names a key kind; the manifest is loaded if it can be (its state is returned,
    /// a placeholder empty manifest stands in otherwise). No security-dir checks are made
    /// (borg's `check` skips them too); a verified manifest still updates `tam_required`.
    pub fn for_check(repo: Box<dyn Repository>, location: &Location) -> Result<CheckOpen> {
        let (envelope, status_missing) = match fetch_envelope(&*repo) {
            Ok(e) => (Some(e), false),
            Err(ArchiveError::NoManifest) => (None, true),
            Err(e) => return Err(e),
        };
        let (mut key, passphrase, key_envelope) = match &envelope {
            Some(env) if !env.is_empty() && KeyKind::from_type_byte(env[0]).is_ok() => {
                let (k, p) = keyblob::load_key(&*repo, env[0])?;
                (k, p, env.clone())
            }
            _ => match make_key(&*repo)? {
                Some(r) => r,
                None => return Ok(CheckOpen::Empty),
            },
        };
        let security = SecurityDir::for_repo(&repo.id().0);
        if key.kind != KeyKind::Plaintext && !key.tam_required && security.tam_required() {
            key.tam_required = true;
        }
        // Nonces: start after the envelope the key was recognised from (the allocator also
        // honours the repository's and the security dir's reservations).
        let _ = key.init_ivs_from_manifest(Some(&key_envelope));
        let (manifest, status) = match &envelope {
            None => {
                debug_assert!(status_missing);
                (Manifest::new(&key), ManifestStatus::Missing)
            }
            Some(env) => match Manifest::load(&key, env, &repo.location().canonical_path()) {
                Ok(m) => {
                    m.check_features(Operation::Check)?;
                    if m.tam_verified && key.kind != KeyKind::Plaintext {
                        security.set_tam_required(m.config_tam_required())?;
                    }
                    (m, ManifestStatus::Ok)
                }
                Err(e @ ArchiveError::Crypto(crate::crypto::CryptoError::UnsupportedManifest)) => {
                    return Err(e)
                }
                Err(e) => (
                    Manifest::new(&key),
                    ManifestStatus::Corrupted(object_error(&e)),
                ),
            },
        };
        Ok(CheckOpen::Ready(
            Box::new(Session {
                repo,
                key,
                manifest,
                location: location.clone(),
                passphrase,
                security,
            }),
            status,
        ))
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

/// What [`Session::for_check`] found.
pub enum CheckOpen {
    /// The repository holds no objects at all (nothing to derive a key from).
    Empty,
    Ready(Box<Session>, ManifestStatus),
}

/// The state of the manifest as `check` found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestStatus {
    Ok,
    Missing,
    /// Present but unusable (decryption, MAC, TAM or format error): the message says why.
    Corrupted(String),
}

/// borg's wording for an object that does not open: a failed decryption is reported by its
/// bare cause (borg's low-level "MAC Authentication failed"), everything else as it is.
pub(crate) fn object_error(e: &ArchiveError) -> String {
    let ArchiveError::Crypto(crate::crypto::CryptoError::Integrity(msg)) = e else {
        return e.to_string();
    };
    let inner = msg
        .find("Could not decrypt [")
        .map(|i| &msg[i + "Could not decrypt [".len()..])
        .and_then(|m| m.strip_suffix(']'));
    match inner {
        Some(inner) => inner.to_string(),
        None => e.to_string(),
    }
}

/// A key, its passphrase and the envelope its kind was recognised from.
type KeyFound = (Key, Option<Passphrase>, Vec<u8>);

/// borg's `make_key` for a repository without a usable manifest: the key kind named by the
/// type byte of the first object that has a known one (at most 999 tries). `None` if the
/// repository holds no objects.
fn make_key(repo: &dyn Repository) -> Result<Option<KeyFound>> {
    let ids = repo.list(Some(1000), None)?;
    if ids.is_empty() {
        return Ok(None);
    }
    let mut attempts = 0;
    for id in ids.iter().take(999) {
        attempts += 1;
        let Ok(env) = repo.get(id) else { continue };
        let Some(&tb) = env.first() else { continue };
        if KeyKind::from_type_byte(tb).is_err() {
            continue;
        }
        let (k, p) = keyblob::load_key(repo, tb)?;
        return Ok(Some((k, p, env)));
    }
    Err(ArchiveError::Corrupt(format!(
        "make_key: failed to create the key (tried {attempts} chunks)"
    )))
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
