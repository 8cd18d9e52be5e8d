//! The client's security directory `<security root>/<repo id hex>/`: what this machine
//! remembers about a repository to detect downgrade, relocation and replay attacks.
//! Same files as borg (`key-type`, `location`, `manifest-timestamp`, `nonce`, `tam_required`),
//! so borg and rborg share one view.

use std::path::{Path, PathBuf};

use crate::prompt::{self, Question};
use crate::repo::local::atomic::save_file;

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("Cache initialization aborted")]
    CacheInitAborted,
    #[error("Repository encryption method changed since last access, refusing to continue")]
    EncryptionMethodMismatch,
    #[error("Repository access aborted")]
    RepositoryAccessAborted,
    #[error("Cache is newer than repository - do you have multiple, independently updated repos with same ID?")]
    RepositoryIdNotUnique,
    #[error("Cache, or information obtained from the security directory is newer than repository - this is either an attack or unsafe (multiple repos with same ID)")]
    RepositoryReplay,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, SecurityError>;

pub struct SecurityDir {
    pub dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SecurityError + '_ {
    move |source| SecurityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl SecurityDir {
    pub fn for_repo(repo_id: &[u8; 32]) -> SecurityDir {
        SecurityDir {
            dir: crate::dirs::security_root().join(hex::encode(repo_id)),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.file(name)).ok()
    }

    fn write(&self, name: &str, content: &str) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let p = self.file(name);
        save_file(&p, content.as_bytes()).map_err(io(&p))
    }

    /// All three identity files exist.
    pub fn known(&self) -> bool {
        ["key-type", "location", "manifest-timestamp"]
            .iter()
            .all(|f| self.file(f).exists())
    }

    pub fn tam_required(&self) -> bool {
        self.file("tam_required").is_file()
    }

    pub fn set_tam_required(&self, required: bool) -> Result<()> {
        let p = self.file("tam_required");
        if required {
            if !p.exists() {
                self.write("tam_required", "")?;
            }
        } else if p.exists() {
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
        Ok(())
    }

    /// Records the state after a successful access or write.
    pub fn save(&self, location: &str, key_type: u8, manifest_timestamp: &str) -> Result<()> {
        self.write("location", location)?;
        self.write("key-type", &key_type.to_string())?;
        self.write("manifest-timestamp", manifest_timestamp)
    }

    /// borg's `assert_secure`: unknown unencrypted repo prompt, relocation prompt, key type
    /// and manifest replay checks; remembers a previously unknown repository.
    pub fn assert_secure(
        &self,
        location: &str,
        key_type: u8,
        logically_encrypted: bool,
        manifest_timestamp: &str,
        warn_if_unencrypted: bool,
    ) -> Result<()> {
        if !logically_encrypted && !self.known() && warn_if_unencrypted {
            let ok = prompt::yes(&Question {
                msg: Some("Warning: Attempting to access a previously unknown unencrypted repository!\nDo you want to continue? [yN] "),
                false_msg: Some("Aborting."),
                invalid_msg: Some("Invalid answer, aborting."),
                retry: false,
                env_var_override: Some("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK"),
                ..Default::default()
            });
            if !ok {
                return Err(SecurityError::CacheInitAborted);
            }
        }
        if let Some(prev) = self.read("location") {
            if !prev.is_empty() && prev != location {
                let msg = format!(
                    "Warning: The repository at location {location} was previously located at {prev}\nDo you want to continue? [yN] "
                );
                let ok = prompt::yes(&Question {
                    msg: Some(&msg),
                    false_msg: Some("Aborting."),
                    invalid_msg: Some("Invalid answer, aborting."),
                    retry: false,
                    env_var_override: Some("BORG_RELOCATED_REPO_ACCESS_IS_OK"),
                    ..Default::default()
                });
                if !ok {
                    return Err(SecurityError::RepositoryAccessAborted);
                }
                self.write("location", location)?;
            }
        }
        if self.known() && self.read("key-type").as_deref() != Some(key_type.to_string().as_str()) {
            return Err(SecurityError::EncryptionMethodMismatch);
        }
        let seen = self.read("manifest-timestamp").unwrap_or_default();
        if !seen.is_empty() && seen.as_str() > manifest_timestamp {
            return Err(if key_type == 0x02 {
                SecurityError::RepositoryIdNotUnique
            } else {
                SecurityError::RepositoryReplay
            });
        }
        if !self.known() {
            self.save(location, key_type, manifest_timestamp)?;
        }
        Ok(())
    }

    /// Removes the directory (`borg delete` of a whole repository).
    pub fn destroy(&self) -> Result<()> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).map_err(io(&self.dir))?;
        }
        Ok(())
    }
}
