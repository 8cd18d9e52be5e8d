//! `hints.N`: per-segment bookkeeping for compaction and the storage quota.

use std::collections::BTreeMap;

use crate::msgpack::{self, ordered_map, Value};
use crate::repo::{IdMap, ObjectId};

/// In-memory hints (version 2 layout).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hints {
    /// Live (indexed) PUT count per segment.
    pub segments: BTreeMap<u32, i64>,
    /// Freeable bytes per segment.
    pub compact: BTreeMap<u32, u64>,
    pub storage_quota_use: u64,
    /// Segments holding PUTs of a key that a later DELETE shadowed.
    pub shadow_index: IdMap<Vec<u32>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HintsError {
    #[error("hints: {0}")]
    Decode(#[from] msgpack::DecodeError),
    #[error("Unknown hints file version: {0}")]
    Version(i128),
}

/// A parsed hints file; version 1 needs upgrading with the index's help.
pub enum Parsed {
    V2(Hints),
    /// Only `segments` is usable; `compact` must be recomputed for the listed segments.
    V1 {
        segments: BTreeMap<u32, i64>,
        compact_segments: Vec<u32>,
    },
}

fn seg_map(v: &Value) -> Result<BTreeMap<u32, i64>, HintsError> {
    let mut m = BTreeMap::new();
    for (k, v) in v.as_map()? {
        m.insert(k.as_u64()? as u32, v.as_i64()?);
    }
    Ok(m)
}

impl Hints {
    pub fn encode(&self) -> Vec<u8> {
        let segments = Value::Map(
            self.segments
                .iter()
                .map(|(k, v)| (Value::from(*k), Value::from(*v)))
                .collect(),
        );
        let compact = Value::Map(
            self.compact
                .iter()
                .map(|(k, v)| (Value::from(*k), Value::from(*v)))
                .collect(),
        );
        let mut shadow: Vec<_> = self.shadow_index.iter().collect();
        shadow.sort_by_key(|(k, _)| **k);
        let shadow = Value::Map(
            shadow
                .into_iter()
                .map(|(k, v)| {
                    (
                        Value::from(&k.0[..]),
                        Value::Array(v.iter().map(|s| Value::from(*s)).collect()),
                    )
                })
                .collect(),
        );
        ordered_map(vec![
            ("version", Value::Int(2)),
            ("segments", segments),
            ("compact", compact),
            ("storage_quota_use", Value::from(self.storage_quota_use)),
            ("shadow_index", shadow),
        ])
        .to_bytes()
    }

    pub fn decode(data: &[u8]) -> Result<Parsed, HintsError> {
        let v = msgpack::decode(data)?;
        let version = v.req("version")?.as_int()?;
        match version {
            1 => {
                let segments = seg_map(v.req("segments")?)?;
                let compact_segments = match v.req("compact")? {
                    Value::Array(a) => a
                        .iter()
                        .map(|x| x.as_u64().map(|s| s as u32))
                        .collect::<Result<_, _>>()?,
                    m @ Value::Map(_) => seg_map(m)?.keys().copied().collect(),
                    other => {
                        return Err(HintsError::Decode(msgpack::DecodeError::Type {
                            expected: "array",
                            found: other.type_name(),
                        }))
                    }
                };
                Ok(Parsed::V1 {
                    segments,
                    compact_segments,
                })
            }
            2 => {
                let segments = seg_map(v.req("segments")?)?;
                let mut compact = BTreeMap::new();
                for (k, v) in v.req("compact")?.as_map()? {
                    compact.insert(k.as_u64()? as u32, v.as_u64()?);
                }
                let storage_quota_use = match v.get("storage_quota_use") {
                    Some(x) => x.as_u64()?,
                    None => 0,
                };
                let mut shadow_index = IdMap::default();
                if let Some(s) = v.get("shadow_index") {
                    for (k, segs) in s.as_map()? {
                        let Some(id) = ObjectId::from_slice(k.as_bytes()?) else {
                            continue;
                        };
                        let list = segs
                            .as_array()?
                            .iter()
                            .map(|x| x.as_u64().map(|s| s as u32))
                            .collect::<Result<Vec<_>, _>>()?;
                        shadow_index.insert(id, list);
                    }
                }
                Ok(Parsed::V2(Hints {
                    segments,
                    compact,
                    storage_quota_use,
                    shadow_index,
                }))
            }
            other => Err(HintsError::Version(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_worked_example() {
        let mut h = Hints::default();
        h.segments.insert(0, 1);
        h.segments.insert(1, 0);
        h.compact.insert(1, 9);
        h.storage_quota_use = 468;
        assert_eq!(
            hex::encode(h.encode()),
            "85a776657273696f6e02a87365676d656e74738200010100a7636f6d70616374810109b173746f726167655f71756f74615f757365cd01d4ac736861646f775f696e64657880"
        );
        let Parsed::V2(back) = Hints::decode(&h.encode()).unwrap() else {
            panic!("v2")
        };
        assert_eq!(back, h);
    }

    #[test]
    fn shadow_index_roundtrip() {
        let mut h = Hints::default();
        h.shadow_index.insert(ObjectId([9; 32]), vec![2, 4]);
        let enc = h.encode();
        assert!(enc.windows(3).any(|w| w == [0xda, 0x00, 0x20]));
        let Parsed::V2(back) = Hints::decode(&enc).unwrap() else {
            panic!("v2")
        };
        assert_eq!(back.shadow_index[&ObjectId([9; 32])], vec![2, 4]);
    }
}
