//! The archive metadata object (name, item chunk ids, times, command line, statistics) and
//! reading/writing objects through a key: get → open envelope → decompress → verify id.

use crate::chunker::ChunkerParams;
use crate::compress::Compression;
use crate::crypto::key::{Decoded, Plaintext};
use crate::crypto::tam::{self, TamStatus};
use crate::crypto::Key;
use crate::msgpack::{DecodeError, Value};
use crate::repo::{ObjectId, Repository};

use super::{ArchiveError, Result};

/// Reads one object and returns its verified plaintext.
pub fn fetch_object(
    repo: &dyn Repository,
    key: &Key,
    id: &ObjectId,
    size_hint: Option<usize>,
) -> Result<Vec<u8>> {
    let env = repo.get(id)?;
    open_object(key, id, env, size_hint)
}

/// Opens an envelope read for `id`: MAC, decryption, decompression, id check.
pub fn open_object(
    key: &Key,
    id: &ObjectId,
    mut envelope: Vec<u8>,
    size_hint: Option<usize>,
) -> Result<Vec<u8>> {
    // decrypted in the envelope's own buffer: no copy before decompression
    let payload = key.open_in_place(Some(id), &mut envelope)?;
    let data = decode_payload(id, payload, size_hint)?;
    key.assert_id(id, &data)?;
    Ok(data)
}

/// Decompresses an opened payload of object `id` (`size_hint`: its expected plaintext size).
pub fn decode_payload(id: &ObjectId, payload: &[u8], size_hint: Option<usize>) -> Result<Vec<u8>> {
    match size_hint {
        Some(h) => crate::compress::decompress_with_hint(payload, h),
        None => crate::compress::decompress(payload),
    }
    .map_err(|e| ArchiveError::Decompress(format!("Chunk {}: {e}", id.hex())))
}

/// [`decode_payload`] for [`Key::open_verify_many`]: a payload stored uncompressed is used
/// where it lies (no copy of the plaintext).
pub fn decode_in_place(id: &ObjectId, payload: &[u8], size_hint: Option<usize>) -> Result<Decoded> {
    match crate::compress::uncompressed_at(payload) {
        Some(at) => Ok(Decoded::InPayload(at)),
        None => decode_payload(id, payload, size_hint).map(Decoded::Owned),
    }
}

/// [`open_object`] for several objects at once: their MACs and id hashes run two messages
/// per core (most of the work). Results in input order.
pub fn open_objects(
    key: &Key,
    objs: Vec<(ObjectId, Vec<u8>, Option<usize>)>,
) -> Vec<Result<Plaintext>> {
    let mut hints = Vec::with_capacity(objs.len());
    let envs: Vec<(ObjectId, Vec<u8>)> = objs
        .into_iter()
        .map(|(id, env, hint)| {
            hints.push(hint);
            (id, env)
        })
        .collect();
    let mut out: Vec<Option<Result<Plaintext>>> = hints.iter().map(|_| None).collect();
    key.open_verify_many(
        envs,
        |i, id, payload| decode_in_place(id, payload, hints[i]),
        |i, r| out[i] = Some(r),
    );
    out.into_iter()
        .map(|r| r.expect("every object finished"))
        .collect()
}

/// Verifies objects as [`open_objects`] reads them, dropping each plaintext as soon as its
/// id is checked: `verdict(i, result)` per object, in any order.
pub fn verify_objects_with(
    key: &Key,
    objs: impl Iterator<Item = (ObjectId, Vec<u8>)>,
    mut verdict: impl FnMut(usize, Result<()>),
) {
    key.open_verify_many(
        objs,
        |_, id, payload| decode_in_place(id, payload, None),
        |i, r: Result<Plaintext>| verdict(i, r.map(drop)),
    );
}

/// Compresses, seals and stores plaintext under its id; returns (id, size, csize).
pub fn store_object(
    repo: &dyn Repository,
    key: &Key,
    compression: &Compression,
    data: &[u8],
) -> Result<(ObjectId, u32, u32)> {
    let id = key.id_hash(data);
    let payload = compression.compress(data);
    let env = key.seal(repo, &payload)?;
    repo.put(&id, &env)?;
    Ok((id, data.len() as u32, env.len() as u32))
}

#[derive(Clone, Debug, Default)]
pub struct ArchiveMeta {
    pub version: i128,
    pub name: Vec<u8>,
    pub items: Vec<ObjectId>,
    pub cmdline: Vec<Vec<u8>>,
    pub hostname: Vec<u8>,
    pub username: Vec<u8>,
    pub time: String,
    pub time_end: String,
    pub comment: Vec<u8>,
    pub chunker_params: Option<Value>,
    pub size: u64,
    pub csize: u64,
    pub nfiles: u64,
    pub size_parts: u64,
    pub csize_parts: u64,
    pub nfiles_parts: u64,
    pub recreate_cmdline: Option<Vec<Vec<u8>>>,
    pub cwd: Option<Vec<u8>>,
    /// TAM verdict of the loaded object.
    pub tam: Option<TamStatusKind>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TamStatusKind {
    Verified,
    Missing,
    Invalid,
}

fn strs(v: &Value) -> std::result::Result<Vec<Vec<u8>>, DecodeError> {
    v.as_array()?
        .iter()
        .map(|x| x.as_bytes().map(|b| b.to_vec()))
        .collect()
}

impl ArchiveMeta {
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    pub fn chunker_params(&self) -> Option<ChunkerParams> {
        self.chunker_params
            .as_ref()
            .and_then(|v| ChunkerParams::from_value(v).ok())
    }

    /// Parses a packed archive dict (verifying its TAM when present).
    pub fn unpack(key: &Key, data: &[u8]) -> Result<ArchiveMeta> {
        let (dict, status) = tam::unpack_and_verify(key, data, b"archive")
            .map_err(|e| ArchiveError::Corrupt(format!("archive metadata: {e}")))?;
        let bad = |e: DecodeError| ArchiveError::Corrupt(format!("archive metadata: {e}"));
        let version = dict.req("version").and_then(|v| v.as_int()).map_err(bad)?;
        if version != 1 && version != 2 {
            return Err(ArchiveError::Corrupt(format!(
                "Unknown archive metadata version {version}"
            )));
        }
        let bytes = |k: &str| -> Vec<u8> {
            dict.get(k)
                .and_then(|v| v.as_bytes().ok())
                .map(|b| b.to_vec())
                .unwrap_or_default()
        };
        let int = |k: &str| -> u64 { dict.get(k).and_then(|v| v.as_u64().ok()).unwrap_or(0) };
        let items = dict
            .req("items")
            .and_then(|v| v.as_array())
            .map_err(bad)?
            .iter()
            .map(|v| v.as_bytes().ok().and_then(ObjectId::from_slice))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ArchiveError::Corrupt("archive metadata: item id".into()))?;
        let tam = Some(match status {
            TamStatus::Verified => TamStatusKind::Verified,
            TamStatus::Missing => TamStatusKind::Missing,
            TamStatus::Invalid | TamStatus::UnsupportedSuite(_) => TamStatusKind::Invalid,
        });
        Ok(ArchiveMeta {
            version,
            name: dict
                .req("name")
                .and_then(|v| v.as_bytes())
                .map_err(bad)?
                .to_vec(),
            items,
            cmdline: dict
                .get("cmdline")
                .map(strs)
                .transpose()
                .map_err(bad)?
                .unwrap_or_default(),
            hostname: bytes("hostname"),
            username: bytes("username"),
            time: String::from_utf8_lossy(&bytes("time")).into_owned(),
            time_end: String::from_utf8_lossy(&bytes("time_end")).into_owned(),
            comment: bytes("comment"),
            chunker_params: dict.get("chunker_params").cloned(),
            size: int("size"),
            csize: int("csize"),
            nfiles: int("nfiles"),
            size_parts: int("size_parts"),
            csize_parts: int("csize_parts"),
            nfiles_parts: int("nfiles_parts"),
            recreate_cmdline: dict
                .get("recreate_cmdline")
                .map(strs)
                .transpose()
                .map_err(bad)?,
            cwd: dict
                .get("cwd")
                .and_then(|v| v.as_bytes().ok())
                .map(|b| b.to_vec()),
            tam,
        })
    }

    /// Loads an archive object by id.
    pub fn load(repo: &dyn Repository, key: &Key, id: &ObjectId) -> Result<ArchiveMeta> {
        let data = fetch_object(repo, key, id, None)?;
        let meta = Self::unpack(key, &data)?;
        if meta.tam == Some(TamStatusKind::Invalid) {
            return Err(crate::crypto::CryptoError::ArchiveTamInvalid.into());
        }
        Ok(meta)
    }

    /// The dict as borg 1.2.4 writes it (without `tam`; sorted keys are applied on packing).
    fn to_pairs(&self) -> Vec<(Value, Value)> {
        let raws =
            |v: &[Vec<u8>]| Value::Array(v.iter().map(|s| Value::Bytes(s.clone())).collect());
        let mut pairs = vec![
            ("version", Value::Int(1)),
            ("name", Value::Bytes(self.name.clone())),
            (
                "items",
                Value::Array(self.items.iter().map(|i| Value::from(&i.0[..])).collect()),
            ),
            ("cmdline", raws(&self.cmdline)),
            ("hostname", Value::Bytes(self.hostname.clone())),
            ("username", Value::Bytes(self.username.clone())),
            ("time", Value::from(self.time.as_str())),
            ("time_end", Value::from(self.time_end.as_str())),
            ("comment", Value::Bytes(self.comment.clone())),
            ("size", Value::from(self.size)),
            ("csize", Value::from(self.csize)),
            ("nfiles", Value::from(self.nfiles)),
            ("size_parts", Value::from(self.size_parts)),
            ("csize_parts", Value::from(self.csize_parts)),
            ("nfiles_parts", Value::from(self.nfiles_parts)),
        ];
        if let Some(cp) = &self.chunker_params {
            pairs.push(("chunker_params", cp.clone()));
        }
        if let Some(rc) = &self.recreate_cmdline {
            pairs.push(("recreate_cmdline", raws(rc)));
        }
        pairs
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect()
    }

    /// Packs with a fresh archive TAM.
    pub fn pack(&self, key: &Key) -> Vec<u8> {
        tam::pack_and_authenticate(key, self.to_pairs(), b"archive")
    }

    /// Stores the archive object; returns its id.
    pub fn save(
        &self,
        repo: &dyn Repository,
        key: &Key,
        compression: &Compression,
    ) -> Result<(ObjectId, u32, u32)> {
        let packed = self.pack(key);
        store_object(repo, key, compression, &packed)
    }
}
