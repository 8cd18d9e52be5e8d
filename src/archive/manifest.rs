//! The manifest: the repository's table of archives, stored under the all-zero id with a TAM.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{ArchiveError, Result};
use crate::compress::Compression;
use crate::crypto::tam::{self, TamStatus};
use crate::crypto::Key;
use crate::msgpack::{sorted_map, Value};
use crate::repo::{ObjectId, Repository};

/// borg's timestamp format for stored times (UTC, always 6 fractional digits).
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f";

/// Every item key borg 1.x knows (written to `item_keys`, sorted).
pub const ITEM_KEYS: &[&str] = &[
    "acl_access",
    "acl_default",
    "acl_extended",
    "acl_nfs4",
    "atime",
    "birthtime",
    "bsdflags",
    "chunks",
    "chunks_healthy",
    "ctime",
    "gid",
    "group",
    "hardlink_master",
    "mode",
    "mtime",
    "part",
    "path",
    "rdev",
    "size",
    "source",
    "uid",
    "user",
    "xattrs",
];

/// One manifest entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveEntry {
    pub id: ObjectId,
    /// Start time as stored (UTC text).
    pub time: String,
}

impl ArchiveEntry {
    pub fn ts(&self) -> DateTime<Utc> {
        parse_timestamp(&self.time).unwrap_or_default()
    }
}

/// Parses borg's stored UTC timestamp text (with or without fraction).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .ok()
        .map(|n| n.and_utc())
}

pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.format(TIMESTAMP_FORMAT).to_string()
}

#[derive(Clone, Debug)]
pub struct Manifest {
    /// Archive name (raw bytes, usually UTF-8) → entry.
    pub archives: BTreeMap<Vec<u8>, ArchiveEntry>,
    pub timestamp: String,
    pub config: Vec<(Value, Value)>,
    pub version: i128,
    /// Whether the loaded manifest carried a valid TAM.
    pub tam_verified: bool,
    /// `ID_HASH` of the packed manifest as read (the cache's notion of "manifest id").
    pub id: ObjectId,
}

/// Operations whose feature flags a manifest may mark mandatory.
#[derive(Clone, Copy, Debug)]
pub enum Operation {
    Read,
    Check,
    Write,
    Delete,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Check => "check",
            Operation::Write => "write",
            Operation::Delete => "delete",
        }
    }
}

impl Manifest {
    pub fn new(key: &Key) -> Manifest {
        let config = if key.tam_required {
            vec![(Value::from("tam_required"), Value::Bool(true))]
        } else {
            vec![]
        };
        Manifest {
            archives: BTreeMap::new(),
            timestamp: String::new(),
            config,
            version: 1,
            tam_verified: true,
            id: ObjectId::default(),
        }
    }

    /// Decrypts, decompresses, verifies and parses the manifest from its envelope.
    pub fn load(key: &Key, envelope: &[u8], repo_location: &str) -> Result<Manifest> {
        let payload = key.open(None, envelope)?;
        let data = crate::compress::decompress(&payload)
            .map_err(|e| ArchiveError::Decompress(e.to_string()))?;
        if data.starts_with(&[0xc1; 4]) {
            return Err(crate::crypto::CryptoError::UnsupportedManifest.into());
        }
        let (dict, status) = tam::unpack_and_verify(key, &data, b"manifest")
            .map_err(|e| ArchiveError::Corrupt(format!("manifest: {e}")))?;
        let required = key.tam_required;
        let verified = match status {
            TamStatus::Verified => true,
            TamStatus::Missing if required => {
                return Err(
                    crate::crypto::CryptoError::TamRequired(repo_location.to_string()).into(),
                )
            }
            TamStatus::Missing => false,
            TamStatus::Invalid => return Err(crate::crypto::CryptoError::TamInvalid.into()),
            TamStatus::UnsupportedSuite(s) if required => {
                return Err(
                    crate::crypto::CryptoError::TamUnsupportedSuite(format!("'{s}'")).into(),
                )
            }
            TamStatus::UnsupportedSuite(_) => false,
        };
        let bad = |m: &str| ArchiveError::Corrupt(format!("manifest: {m}"));
        let version = dict
            .req("version")
            .and_then(|v| v.as_int())
            .map_err(|e| bad(&e.to_string()))?;
        if version != 1 && version != 2 {
            return Err(bad("Invalid manifest version"));
        }
        let mut archives = BTreeMap::new();
        for (name, entry) in dict
            .req("archives")
            .and_then(|a| a.as_map())
            .map_err(|e| bad(&e.to_string()))?
        {
            let name = name.as_bytes().map_err(|e| bad(&e.to_string()))?.to_vec();
            let id = entry
                .req("id")
                .and_then(|i| i.as_bytes())
                .ok()
                .and_then(ObjectId::from_slice)
                .ok_or_else(|| bad("archive id"))?;
            let time = entry
                .req("time")
                .and_then(|t| t.as_str())
                .map_err(|e| bad(&e.to_string()))?;
            archives.insert(name, ArchiveEntry { id, time });
        }
        let timestamp = dict
            .get("timestamp")
            .and_then(|t| t.as_str().ok())
            .unwrap_or_default();
        let config = dict
            .get("config")
            .and_then(|c| c.as_map().ok())
            .map(|m| m.to_vec())
            .unwrap_or_default();
        Ok(Manifest {
            archives,
            timestamp,
            config,
            version,
            tam_verified: verified,
            id: key.id_hash(&data),
        })
    }

    /// Reads the manifest of an opened repository.
    pub fn fetch(repo: &dyn Repository, key: &Key) -> Result<Manifest> {
        let env = fetch_envelope(repo)?;
        Manifest::load(key, &env, &repo.location().canonical_path())
    }

    /// Refuses to continue if the manifest marks features mandatory for `op` (rborg, like borg
    /// 1.x, supports none).
    pub fn check_features(&self, op: Operation) -> Result<()> {
        let Some((_, flags)) = self
            .config
            .iter()
            .find(|(k, _)| k.as_bytes().ok() == Some(b"feature_flags"))
        else {
            return Ok(());
        };
        let Some(opflags) = flags.get(op.name()) else {
            return Ok(());
        };
        if let Some(Value::Array(m)) = opflags.get("mandatory") {
            if !m.is_empty() {
                let names: Vec<String> = m.iter().filter_map(|v| v.as_str().ok()).collect();
                return Err(ArchiveError::MandatoryFeatureUnsupported(format!(
                    "{names:?}"
                )));
            }
        }
        Ok(())
    }

    pub fn config_tam_required(&self) -> bool {
        self.config.iter().any(|(k, v)| {
            k.as_bytes().ok() == Some(b"tam_required") && v.as_bool().unwrap_or(false)
        })
    }

    /// Sets a boolean in the manifest's `config` dict.
    pub fn set_config_bool(&mut self, name: &str, value: bool) {
        self.config
            .retain(|(k, _)| k.as_bytes().ok() != Some(name.as_bytes()));
        self.config.push((Value::from(name), Value::Bool(value)));
    }

    /// Last-modified time (the manifest timestamp).
    pub fn last_timestamp(&self) -> DateTime<Utc> {
        parse_timestamp(&self.timestamp).unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<&ArchiveEntry> {
        self.archives.get(name.as_bytes())
    }

    /// Packs the manifest with a fresh timestamp (strictly after the previous one) and TAM.
    pub fn pack(&mut self, key: &Key) -> Vec<u8> {
        let now = Utc::now();
        let prev = parse_timestamp(&self.timestamp);
        let ts = match prev {
            Some(p) if p >= now => p + chrono::Duration::microseconds(1),
            _ => now,
        };
        self.timestamp = format_timestamp(&ts);
        let mut archives: Vec<(Value, Value)> = self
            .archives
            .iter()
            .map(|(name, e)| {
                (
                    Value::Bytes(name.clone()),
                    sorted_map(vec![
                        ("id", Value::from(&e.id.0[..])),
                        ("time", Value::from(e.time.as_str())),
                    ]),
                )
            })
            .collect();
        archives.sort_by(|a, b| {
            a.0.as_bytes()
                .unwrap_or(&[])
                .cmp(b.0.as_bytes().unwrap_or(&[]))
        });
        let mut config = self.config.clone();
        config.sort_by(|a, b| {
            a.0.as_bytes()
                .unwrap_or(&[])
                .cmp(b.0.as_bytes().unwrap_or(&[]))
        });
        let dict = vec![
            (Value::from("archives"), Value::Map(archives)),
            (Value::from("config"), Value::Map(config)),
            (
                Value::from("item_keys"),
                Value::Array(ITEM_KEYS.iter().map(|k| Value::from(*k)).collect()),
            ),
            (
                Value::from("timestamp"),
                Value::from(self.timestamp.as_str()),
            ),
            (Value::from("version"), Value::Int(1)),
        ];
        self.version = 1;
        tam::pack_and_authenticate(key, dict, b"manifest")
    }

    /// Writes the manifest (caller commits).
    pub fn write(
        &mut self,
        repo: &dyn Repository,
        key: &Key,
        compression: &Compression,
    ) -> Result<()> {
        let packed = self.pack(key);
        self.id = key.id_hash(&packed);
        self.tam_verified = true;
        let payload = compression.compress(&packed);
        let env = key.seal(repo, &payload)?;
        repo.put(&ObjectId::MANIFEST, &env)?;
        Ok(())
    }
}

/// The raw manifest envelope, or `NoManifest`.
pub fn fetch_envelope(repo: &dyn Repository) -> Result<Vec<u8>> {
    match repo.get(&ObjectId::MANIFEST) {
        Ok(e) => Ok(e),
        Err(crate::repo::RepoError::ObjectNotFound(..)) => Err(ArchiveError::NoManifest),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{KeyKind, KeyMaterial};

    #[test]
    fn pack_load_roundtrip_and_timestamps() {
        let key = Key::new(
            KeyKind::Repokey,
            Some(KeyMaterial::generate(KeyKind::Repokey, [3; 32])),
        );
        let mut m = Manifest::new(&key);
        m.archives.insert(
            b"a1".to_vec(),
            ArchiveEntry {
                id: ObjectId([7; 32]),
                time: "2024-01-03T00:00:00.000000".into(),
            },
        );
        let packed = m.pack(&key);
        let first = m.timestamp.clone();
        assert_eq!(first.len(), 26);
        let _ = m.pack(&key);
        assert!(m.timestamp > first, "timestamps strictly increase");
        let env = key.seal_with_iv(0, &Compression::Lz4.compress(&packed));
        let back = Manifest::load(&key, &env, "/r").unwrap();
        assert!(back.tam_verified);
        assert!(back.config_tam_required());
        assert_eq!(back.get("a1").unwrap().id, ObjectId([7; 32]));
        assert_eq!(back.get("a1").unwrap().ts().timestamp(), 1704240000);
    }
}
