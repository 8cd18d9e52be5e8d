//! Items: the per-file metadata dicts of an archive, packed exactly as borg 1.x packs them
//! (sorted raw-string keys, legacy raw strings, "bigint" timestamps beyond i64).

use crate::msgpack::{
    self, pack_array_len, pack_bool, pack_int, pack_map_len, pack_nil, pack_raw, DecodeError, Value,
};
use crate::repo::ObjectId;

/// A reference to a content chunk: id, plaintext size, stored (envelope) size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    pub id: ObjectId,
    pub size: u32,
    pub csize: u32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Item {
    pub path: Vec<u8>,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `Some(None)` = written as nil (unknown name / --numeric-ids), `None` = absent.
    pub user: Option<Option<Vec<u8>>>,
    pub group: Option<Option<Vec<u8>>>,
    /// Nanoseconds since the epoch.
    pub mtime: i128,
    pub atime: Option<i128>,
    pub ctime: Option<i128>,
    pub birthtime: Option<i128>,
    pub size: Option<u64>,
    pub chunks: Option<Vec<ChunkRef>>,
    pub chunks_healthy: Option<Vec<ChunkRef>>,
    /// Symlink target, or the master's path for a hardlink slave.
    pub source: Option<Vec<u8>>,
    pub hardlink_master: Option<bool>,
    pub rdev: Option<u64>,
    pub xattrs: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    pub bsdflags: Option<u32>,
    pub acl_access: Option<Vec<u8>>,
    pub acl_default: Option<Vec<u8>>,
    pub acl_extended: Option<Vec<u8>>,
    pub acl_nfs4: Option<Vec<u8>>,
    pub part: Option<u32>,
}

pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_IFSOCK: u32 = 0o140000;

impl Item {
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
    pub fn is_reg(&self) -> bool {
        self.file_type() == S_IFREG
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }
    pub fn is_link(&self) -> bool {
        self.file_type() == S_IFLNK
    }
    pub fn is_fifo(&self) -> bool {
        self.file_type() == S_IFIFO
    }
    pub fn is_chr(&self) -> bool {
        self.file_type() == S_IFCHR
    }
    pub fn is_blk(&self) -> bool {
        self.file_type() == S_IFBLK
    }
    /// A hardlink slave: regular file (or device/fifo) with `source` naming the master.
    pub fn is_hardlink_slave(&self) -> bool {
        self.source.is_some() && !self.is_link() && !self.is_dir()
    }
    pub fn path_str(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
    /// Sum of chunk sizes (or the `size` field).
    pub fn content_size(&self) -> u64 {
        match (&self.chunks, self.size) {
            (_, Some(s)) => s,
            (Some(c), None) => c.iter().map(|c| c.size as u64).sum(),
            _ => 0,
        }
    }

    /// Packs the item as borg does: a map with sorted keys.
    pub fn pack_into(&self, out: &mut Vec<u8>) {
        let n = [
            self.acl_access.is_some(),
            self.acl_default.is_some(),
            self.acl_extended.is_some(),
            self.acl_nfs4.is_some(),
            self.atime.is_some(),
            self.birthtime.is_some(),
            self.bsdflags.is_some(),
            self.chunks.is_some(),
            self.chunks_healthy.is_some(),
            self.ctime.is_some(),
            self.gid.is_some(),
            self.group.is_some(),
            self.hardlink_master.is_some(),
            true, // mode
            true, // mtime
            self.part.is_some(),
            true, // path
            self.rdev.is_some(),
            self.size.is_some(),
            self.source.is_some(),
            self.uid.is_some(),
            self.user.is_some(),
            self.xattrs.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        pack_map_len(out, n);
        let raw_opt = |out: &mut Vec<u8>, key: &[u8], v: &Option<Vec<u8>>| {
            if let Some(v) = v {
                pack_raw(out, key);
                pack_raw(out, v);
            }
        };
        let time_opt = |out: &mut Vec<u8>, key: &[u8], v: Option<i128>| {
            if let Some(v) = v {
                pack_raw(out, key);
                pack_time(out, v);
            }
        };
        let name_opt = |out: &mut Vec<u8>, key: &[u8], v: &Option<Option<Vec<u8>>>| {
            if let Some(v) = v {
                pack_raw(out, key);
                match v {
                    Some(s) => pack_raw(out, s),
                    None => pack_nil(out),
                }
            }
        };
        raw_opt(out, b"acl_access", &self.acl_access);
        raw_opt(out, b"acl_default", &self.acl_default);
        raw_opt(out, b"acl_extended", &self.acl_extended);
        raw_opt(out, b"acl_nfs4", &self.acl_nfs4);
        time_opt(out, b"atime", self.atime);
        time_opt(out, b"birthtime", self.birthtime);
        if let Some(f) = self.bsdflags {
            pack_raw(out, b"bsdflags");
            pack_int(out, f as i128);
        }
        if let Some(c) = &self.chunks {
            pack_raw(out, b"chunks");
            pack_chunks(out, c);
        }
        if let Some(c) = &self.chunks_healthy {
            pack_raw(out, b"chunks_healthy");
            pack_chunks(out, c);
        }
        time_opt(out, b"ctime", self.ctime);
        if let Some(g) = self.gid {
            pack_raw(out, b"gid");
            pack_int(out, g as i128);
        }
        name_opt(out, b"group", &self.group);
        if let Some(h) = self.hardlink_master {
            pack_raw(out, b"hardlink_master");
            pack_bool(out, h);
        }
        pack_raw(out, b"mode");
        pack_int(out, self.mode as i128);
        pack_raw(out, b"mtime");
        pack_time(out, self.mtime);
        if let Some(p) = self.part {
            pack_raw(out, b"part");
            pack_int(out, p as i128);
        }
        pack_raw(out, b"path");
        pack_raw(out, &self.path);
        if let Some(r) = self.rdev {
            pack_raw(out, b"rdev");
            pack_int(out, r as i128);
        }
        if let Some(s) = self.size {
            pack_raw(out, b"size");
            pack_int(out, s as i128);
        }
        raw_opt(out, b"source", &self.source);
        if let Some(u) = self.uid {
            pack_raw(out, b"uid");
            pack_int(out, u as i128);
        }
        name_opt(out, b"user", &self.user);
        if let Some(x) = &self.xattrs {
            pack_raw(out, b"xattrs");
            let mut x = x.clone();
            x.sort();
            pack_map_len(out, x.len());
            for (k, v) in x {
                pack_raw(out, &k);
                // borg stores an empty value as None (nil)
                if v.is_empty() {
                    pack_nil(out);
                } else {
                    pack_raw(out, &v);
                }
            }
        }
    }

    pub fn pack(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(256);
        self.pack_into(&mut v);
        v
    }

    /// Builds an item from a decoded msgpack map (unknown keys are ignored).
    pub fn from_value(v: Value) -> Result<Item, DecodeError> {
        let mut it = Item::default();
        let mut have_path = false;
        for (k, val) in v.into_map()? {
            let k = k.into_bytes()?;
            match k.as_slice() {
                b"path" => {
                    it.path = val.into_bytes()?;
                    have_path = true;
                }
                b"mode" => it.mode = val.as_u64()? as u32,
                b"uid" => it.uid = Some(val.as_u64()? as u32),
                b"gid" => it.gid = Some(val.as_u64()? as u32),
                b"user" => {
                    it.user = Some(if val.is_nil() {
                        None
                    } else {
                        Some(val.into_bytes()?)
                    })
                }
                b"group" => {
                    it.group = Some(if val.is_nil() {
                        None
                    } else {
                        Some(val.into_bytes()?)
                    })
                }
                b"mtime" => it.mtime = unpack_time(&val)?,
                b"atime" => it.atime = Some(unpack_time(&val)?),
                b"ctime" => it.ctime = Some(unpack_time(&val)?),
                b"birthtime" => it.birthtime = Some(unpack_time(&val)?),
                b"size" => it.size = Some(val.as_u64()?),
                b"chunks" => it.chunks = Some(unpack_chunks(&val)?),
                b"chunks_healthy" => it.chunks_healthy = Some(unpack_chunks(&val)?),
                b"source" => it.source = Some(val.into_bytes()?),
                b"hardlink_master" => it.hardlink_master = Some(val.as_bool()?),
                b"rdev" => it.rdev = Some(val.as_u64()?),
                b"xattrs" => {
                    let mut x = Vec::new();
                    for (k, v) in val.into_map()? {
                        let v = if v.is_nil() {
                            Vec::new()
                        } else {
                            v.into_bytes()?
                        };
                        x.push((k.into_bytes()?, v));
                    }
                    it.xattrs = Some(x);
                }
                b"bsdflags" => it.bsdflags = Some(val.as_u64()? as u32),
                b"acl_access" => it.acl_access = Some(val.into_bytes()?),
                b"acl_default" => it.acl_default = Some(val.into_bytes()?),
                b"acl_extended" => it.acl_extended = Some(val.into_bytes()?),
                b"acl_nfs4" => it.acl_nfs4 = Some(val.into_bytes()?),
                b"part" => it.part = Some(val.as_u64()? as u32),
                _ => {}
            }
        }
        if !have_path {
            return Err(DecodeError::MissingKey("path".into()));
        }
        Ok(it)
    }

    pub fn unpack(data: &[u8]) -> Result<Item, DecodeError> {
        Item::from_value(msgpack::decode(data)?)
    }
}

fn pack_chunks(out: &mut Vec<u8>, c: &[ChunkRef]) {
    pack_array_len(out, c.len());
    for r in c {
        pack_array_len(out, 3);
        pack_raw(out, &r.id.0);
        pack_int(out, r.size as i128);
        pack_int(out, r.csize as i128);
    }
}

fn unpack_chunks(v: &Value) -> Result<Vec<ChunkRef>, DecodeError> {
    let mut out = Vec::new();
    for e in v.as_array()? {
        let a = e.as_array()?;
        let id = a
            .first()
            .and_then(|x| x.as_bytes().ok())
            .and_then(ObjectId::from_slice)
            .ok_or(DecodeError::Type {
                expected: "chunk id",
                found: "other",
            })?;
        let size = a.get(1).map(|x| x.as_u64()).transpose()?.unwrap_or(0) as u32;
        let csize = a.get(2).map(|x| x.as_u64()).transpose()?.unwrap_or(0) as u32;
        out.push(ChunkRef { id, size, csize });
    }
    Ok(out)
}

/// Timestamps beyond the i64 range use borg's "bigint": raw little-endian two's complement.
pub fn pack_time(out: &mut Vec<u8>, t: i128) {
    if t >= i64::MIN as i128 && t <= i64::MAX as i128 {
        pack_int(out, t);
    } else {
        let bits = 128
            - if t < 0 {
                (!t).leading_zeros()
            } else {
                t.leading_zeros()
            };
        let n = ((bits + 9) / 8) as usize;
        pack_raw(out, &t.to_le_bytes()[..n.min(16)]);
    }
}

pub fn unpack_time(v: &Value) -> Result<i128, DecodeError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bytes(b) if !b.is_empty() && b.len() <= 16 => {
            let mut buf = if b[b.len() - 1] & 0x80 != 0 {
                [0xffu8; 16]
            } else {
                [0u8; 16]
            };
            buf[..b.len()].copy_from_slice(b);
            Ok(i128::from_le_bytes(buf))
        }
        Value::Float(f) => Ok((*f * 1e9) as i128),
        other => Err(DecodeError::Type {
            expected: "timestamp",
            found: other.type_name(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borg_item_vectors_roundtrip_bytes() {
        let p = format!(
            "{}/tests/data/vectors/items.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        for it in v["items"].as_array().unwrap() {
            let packed = hex::decode(it["packed_hex"].as_str().unwrap()).unwrap();
            let item = Item::unpack(&packed).unwrap();
            assert_eq!(item.pack(), packed, "{}", it["repr"]);
        }
    }

    #[test]
    fn bigint_times() {
        for t in [
            0i128,
            -5,
            1 << 63,
            -(1 << 63) - 1,
            1 << 70,
            1700000000123456789,
        ] {
            let mut out = Vec::new();
            pack_time(&mut out, t);
            let v = msgpack::decode(&out).unwrap();
            assert_eq!(unpack_time(&v).unwrap(), t, "{t}");
        }
        let mut out = Vec::new();
        pack_time(&mut out, 1 << 63);
        assert_eq!(out, b"\xa9\x00\x00\x00\x00\x00\x00\x00\x80\x00");
    }
}
