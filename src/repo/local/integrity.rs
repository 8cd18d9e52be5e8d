//! `integrity.N` and the running XXH64 digests borg keeps for `index.N` and `hints.N`.
//!
//! One XXH64 state (seed 0) is fed `%10d(len(name)) name`, the file bytes, and at each part
//! boundary `%10d(len(part)) part decimal(pos)`; the digest at that moment is recorded.

use sha2::Digest;
use xxhash_rust::xxh64::Xxh64;

use crate::msgpack::{self, ordered_map, Value};

enum State {
    Xxh64(Xxh64),
    Sha512(sha2::Sha512),
}

impl State {
    fn update(&mut self, b: &[u8]) {
        match self {
            State::Xxh64(h) => h.update(b),
            State::Sha512(h) => h.update(b),
        }
    }
    fn hexdigest(&self) -> String {
        match self {
            State::Xxh64(h) => format!("{:016x}", h.digest()),
            State::Sha512(h) => hex::encode(h.clone().finalize()),
        }
    }
}

/// Computes the part digests of one file as it is written or read.
pub struct IntegrityHasher {
    state: State,
    pos: u64,
    pub digests: Vec<(String, String)>,
    algorithm: &'static str,
}

impl IntegrityHasher {
    pub fn new(final_name: &str) -> IntegrityHasher {
        Self::with_algorithm(final_name, "XXH64").expect("XXH64 is supported")
    }

    pub fn with_algorithm(final_name: &str, algorithm: &str) -> Option<IntegrityHasher> {
        let (state, algorithm) = match algorithm {
            "XXH64" => (State::Xxh64(Xxh64::new(0)), "XXH64"),
            "SHA512" => (State::Sha512(sha2::Sha512::new()), "SHA512"),
            _ => return None,
        };
        let mut h = IntegrityHasher {
            state,
            pos: 0,
            digests: Vec::new(),
            algorithm,
        };
        h.state
            .update(format!("{:10}", final_name.len()).as_bytes());
        h.state.update(final_name.as_bytes());
        Some(h)
    }

    pub fn update(&mut self, data: &[u8]) {
        self.state.update(data);
        self.pos += data.len() as u64;
    }

    pub fn hash_part(&mut self, part: &str) -> String {
        self.state.update(format!("{:10}", part.len()).as_bytes());
        self.state.update(part.as_bytes());
        self.state.update(self.pos.to_string().as_bytes());
        let d = self.state.hexdigest();
        self.digests.push((part.to_string(), d.clone()));
        d
    }

    /// Closes the file: records the `final` part and returns borg's JSON description.
    pub fn finish(mut self) -> String {
        self.hash_part("final");
        let mut s = format!("{{\"algorithm\": \"{}\", \"digests\": {{", self.algorithm);
        for (i, (k, v)) in self.digests.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&format!("\"{k}\": \"{v}\""));
        }
        s.push_str("}}");
        s
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IntegrityError {
    #[error("{0}: Invalid integrity data")]
    Invalid(String),
    #[error("{0}: Hash mismatch for part {1:?}")]
    Mismatch(String, String),
}

/// What `integrity.N` says about one file.
pub enum Expected {
    /// No integrity data (missing file, unknown version or algorithm): do not verify.
    Unverified,
    Digests {
        algorithm: String,
        digests: Vec<(String, String)>,
    },
}

/// Parses the JSON description of one file's digests.
pub fn parse_description(json: &str, file: &str) -> Result<Expected, IntegrityError> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|_| IntegrityError::Invalid(file.into()))?;
    let alg = v
        .get("algorithm")
        .and_then(|a| a.as_str())
        .ok_or_else(|| IntegrityError::Invalid(file.into()))?;
    let digests = v
        .get("digests")
        .and_then(|d| d.as_object())
        .ok_or_else(|| IntegrityError::Invalid(file.into()))?;
    if !digests.contains_key("final") {
        return Err(IntegrityError::Invalid(file.into()));
    }
    if alg != "XXH64" && alg != "SHA512" {
        crate::log::warning(
            "borg.crypto.file_integrity",
            &format!("Cannot verify integrity of {file}: Unknown algorithm {alg:?}"),
        );
        return Ok(Expected::Unverified);
    }
    Ok(Expected::Digests {
        algorithm: alg.to_string(),
        digests: digests
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect(),
    })
}

/// Verifies a whole file read into memory; `parts` lists (part name, end position) of the
/// intermediate parts in order (`final` is implied).
pub fn verify(
    final_name: &str,
    data: &[u8],
    parts: &[(&str, usize)],
    expected: &Expected,
) -> Result<(), IntegrityError> {
    let Expected::Digests { algorithm, digests } = expected else {
        return Ok(());
    };
    let mut h = IntegrityHasher::with_algorithm(final_name, algorithm)
        .ok_or_else(|| IntegrityError::Invalid(final_name.into()))?;
    let mut pos = 0;
    let check = |h: &mut IntegrityHasher, part: &str| -> Result<(), IntegrityError> {
        let got = h.hash_part(part);
        match digests.iter().find(|(k, _)| k == part) {
            Some((_, want)) if *want != got => {
                Err(IntegrityError::Mismatch(final_name.into(), part.into()))
            }
            _ => Ok(()),
        }
    };
    for (part, end) in parts {
        let end = (*end).min(data.len());
        h.update(&data[pos..end]);
        pos = end;
        check(&mut h, part)?;
    }
    h.update(&data[pos..]);
    check(&mut h, "final")
}

/// Encodes `integrity.N`: `{version: 2, hints: <json>, index: <json>}` in that order.
pub fn encode_integrity_file(hints_json: &str, index_json: &str) -> Vec<u8> {
    ordered_map(vec![
        ("version", Value::Int(2)),
        ("hints", Value::from(hints_json)),
        ("index", Value::from(index_json)),
    ])
    .to_bytes()
}

/// Reads the description for `key` ("hints" / "index") from `integrity.N` bytes.
/// `Ok(None)` = no verification possible (unknown version).
pub fn read_integrity_entry(
    data: &[u8],
    key: &str,
    file: &str,
) -> Result<Option<String>, IntegrityError> {
    let v = msgpack::decode(data).map_err(|_| IntegrityError::Invalid(file.into()))?;
    if v.get("version") != Some(&Value::Int(2)) {
        crate::log::warning(
            "borg.repository",
            &format!(
                "Unknown integrity data version {:?} in {file}",
                v.get("version")
            ),
        );
        return Ok(None);
    }
    let e = v
        .get(key)
        .and_then(|x| x.as_bytes().ok())
        .ok_or_else(|| IntegrityError::Invalid(file.into()))?;
    Ok(Some(String::from_utf8_lossy(e).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_worked_example_hints() {
        let hints = hex::decode("85a776657273696f6e02a87365676d656e74738200010100a7636f6d70616374810109b173746f726167655f71756f74615f757365cd01d4ac736861646f775f696e64657880").unwrap();
        assert_eq!(hints.len(), 70);
        let mut h = IntegrityHasher::new("hints.1");
        h.update(&hints);
        let json = h.finish();
        assert_eq!(
            json,
            "{\"algorithm\": \"XXH64\", \"digests\": {\"final\": \"47066451cc6d6e92\"}}"
        );
        let exp = parse_description(&json, "hints.1").unwrap();
        verify("hints.1", &hints, &[], &exp).unwrap();
        let mut bad = hints.clone();
        bad[3] ^= 1;
        assert!(verify("hints.1", &bad, &[], &exp).is_err());
    }

    #[test]
    fn spec_worked_example_index_header() {
        // index.1 of a fresh `init -e none`: 1 entry, 1031 buckets
        let mut header = b"BORG_IDX".to_vec();
        header.extend_from_slice(&1i32.to_le_bytes());
        header.extend_from_slice(&1031i32.to_le_bytes());
        header.extend_from_slice(&[32, 8]);
        let mut h = IntegrityHasher::new("index.1");
        h.update(&header);
        assert_eq!(h.hash_part("HashHeader"), "1e7b5372ec4f7b80");
        let mut buckets = vec![0u8; 1031 * 40];
        buckets[32..36].copy_from_slice(&0u32.to_le_bytes());
        buckets[36..40].copy_from_slice(&8u32.to_le_bytes());
        for b in 1..1031 {
            buckets[b * 40 + 32..b * 40 + 36].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        h.update(&buckets);
        assert_eq!(h.finish(), "{\"algorithm\": \"XXH64\", \"digests\": {\"HashHeader\": \"1e7b5372ec4f7b80\", \"final\": \"2aeee047ae71e07e\"}}");
    }

    #[test]
    fn integrity_file_uses_str16() {
        let f = encode_integrity_file(&"h".repeat(64), &"i".repeat(98));
        // 64-byte value must be `da 00 40`, never str8
        assert!(f.windows(3).any(|w| w == [0xda, 0x00, 0x40]));
        assert_eq!(
            read_integrity_entry(&f, "index", "x").unwrap().unwrap(),
            "i".repeat(98)
        );
    }
}
