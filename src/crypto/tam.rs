//! TAM: tamper-authenticated metadata. The manifest and every archive dict carry
//! `tam = {hmac, salt, type: "HKDF_HMAC_SHA512"}`; `hmac` is HMAC-SHA512 over the packed dict
//! with the hmac bytes zeroed, keyed by HKDF-SHA512(id_key ‖ enc_key ‖ enc_hmac_key, salt,
//! "borg-metadata-authentication-" ‖ context).

use hmac::{Hmac, Mac};
use sha2::Sha512;
use subtle::ConstantTimeEq;

use super::Key;
use crate::msgpack::{self, Value};

pub const SUITE: &str = "HKDF_HMAC_SHA512";

/// The per-write TAM key.
pub fn tam_key(key: &Key, salt: &[u8], context: &[u8]) -> Vec<u8> {
    match key.tam_ikm() {
        None => [salt, context].concat(),
        Some(ikm) => {
            let info = [b"borg-metadata-authentication-".as_slice(), context].concat();
            let hk = hkdf::Hkdf::<Sha512>::new(Some(salt), &ikm);
            let mut out = vec![0u8; 64];
            hk.expand(&info, &mut out)
                .expect("64 bytes is a valid HKDF length");
            out
        }
    }
}

fn hmac512(key: &[u8], data: &[u8]) -> [u8; 64] {
    let mut h = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("any key size");
    h.update(data);
    h.finalize().into_bytes().into()
}

fn with_tam(mut pairs: Vec<(Value, Value)>, hmac: &[u8], salt: &[u8]) -> Value {
    pairs.retain(|(k, _)| k.as_bytes().ok() != Some(b"tam"));
    let tam = msgpack::sorted_map(vec![
        ("type", Value::from(SUITE)),
        ("hmac", Value::from(hmac)),
        ("salt", Value::from(salt)),
    ]);
    pairs.push((Value::from("tam"), tam));
    pairs.sort_by(|a, b| {
        a.0.as_bytes()
            .unwrap_or(&[])
            .cmp(b.0.as_bytes().unwrap_or(&[]))
    });
    Value::Map(pairs)
}

/// Packs a metadata dict (sorted keys) with a fresh TAM for `context`.
pub fn pack_and_authenticate(key: &Key, dict: Vec<(Value, Value)>, context: &[u8]) -> Vec<u8> {
    let salt: [u8; 64] = super::random_bytes();
    pack_with_salt(key, dict, context, &salt)
}

pub fn pack_with_salt(
    key: &Key,
    dict: Vec<(Value, Value)>,
    context: &[u8],
    salt: &[u8],
) -> Vec<u8> {
    let zero = with_tam(dict.clone(), &[0u8; 64], salt).to_bytes();
    let mac = hmac512(&tam_key(key, salt, context), &zero);
    with_tam(dict, &mac, salt).to_bytes()
}

/// What the TAM of a packed dict says.
#[derive(Debug, PartialEq, Eq)]
pub enum TamStatus {
    Verified,
    Missing,
    UnsupportedSuite(String),
    Invalid,
}

/// Unpacks `data` and checks its TAM; returns the dict without `tam` and the verdict.
pub fn unpack_and_verify(
    key: &Key,
    data: &[u8],
    context: &[u8],
) -> Result<(Value, TamStatus), msgpack::DecodeError> {
    let v = msgpack::decode(data)?;
    let Value::Map(pairs) = v else {
        return Err(msgpack::DecodeError::Type {
            expected: "map",
            found: v.type_name(),
        });
    };
    let (tam, rest): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .partition(|(k, _)| k.as_bytes().ok() == Some(b"tam"));
    let dict = Value::Map(rest);
    let Some((_, tam)) = tam.into_iter().next() else {
        return Ok((dict, TamStatus::Missing));
    };
    if !matches!(tam, Value::Map(_)) {
        return Ok((dict, TamStatus::Invalid));
    }
    let suite = tam
        .get("type")
        .and_then(|t| t.as_bytes().ok())
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_else(|| "<none>".into());
    if suite != SUITE {
        return Ok((dict, TamStatus::UnsupportedSuite(suite)));
    }
    let (Some(Value::Bytes(hmac)), Some(Value::Bytes(salt))) = (tam.get("hmac"), tam.get("salt"))
    else {
        return Ok((dict, TamStatus::Invalid));
    };
    if hmac.is_empty() {
        return Ok((dict, TamStatus::Invalid));
    }
    let Some(off) = data.windows(hmac.len()).position(|w| w == hmac.as_slice()) else {
        return Ok((dict, TamStatus::Invalid));
    };
    let mut zeroed = data.to_vec();
    zeroed[off..off + hmac.len()].fill(0);
    let calc = hmac512(&tam_key(key, salt, context), &zeroed);
    let ok = hmac.len() == 64 && bool::from(calc.ct_eq(hmac.as_slice()));
    Ok((
        dict,
        if ok {
            TamStatus::Verified
        } else {
            TamStatus::Invalid
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{KeyKind, KeyMaterial};
    use serde_json::Value as J;

    fn vectors() -> J {
        let p = format!("{}/tests/data/vectors/tam.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }
    fn h(v: &J) -> Vec<u8> {
        hex::decode(v.as_str().unwrap()).unwrap()
    }
    fn key(v: &J) -> Key {
        Key::new(
            KeyKind::Repokey,
            Some(KeyMaterial {
                repository_id: [0; 32],
                enc_key: h(&v["enc_key"]).try_into().unwrap(),
                enc_hmac_key: h(&v["enc_hmac_key"]),
                id_key: h(&v["id_key"]),
                chunk_seed: 0,
                tam_required: true,
            }),
        )
    }

    #[test]
    fn tam_vectors() {
        let v = vectors();
        let k = key(&v);
        let salt = h(&v["salt"]);
        assert_eq!(tam_key(&k, &salt, b"manifest"), h(&v["manifest_tam_key"]));
        assert_eq!(tam_key(&k, &salt, b"archive"), h(&v["archive_tam_key"]));
        let packed = h(&v["manifest_packed_hex"]);
        let (dict, status) = unpack_and_verify(&k, &packed, b"manifest").unwrap();
        assert_eq!(status, TamStatus::Verified);
        // re-packing the same dict with the same salt reproduces borg's bytes exactly
        let pairs = dict.into_map().unwrap();
        assert_eq!(pack_with_salt(&k, pairs, b"manifest", &salt), packed);
        assert_eq!(
            k.id_hash(&packed).0.to_vec(),
            h(&v["manifest_id_hmac_sha256"])
        );
        let archive = h(&v["archive_packed_hex"]);
        assert_eq!(
            unpack_and_verify(&k, &archive, b"archive").unwrap().1,
            TamStatus::Verified
        );
        assert_eq!(
            unpack_and_verify(&k, &archive, b"manifest").unwrap().1,
            TamStatus::Invalid
        );
        assert_eq!(
            k.id_hash(&archive).0.to_vec(),
            h(&v["archive_id_hmac_sha256"])
        );
        let mut tampered = packed.clone();
        let n = tampered.len();
        tampered[n / 3] ^= 0x01;
        assert_ne!(
            unpack_and_verify(&k, &tampered, b"manifest")
                .map(|r| r.1)
                .ok(),
            Some(TamStatus::Verified)
        );
        let plain = h(&v["plaintext_key_manifest_packed_hex"]);
        assert_eq!(
            unpack_and_verify(&Key::plaintext(), &plain, b"manifest")
                .unwrap()
                .1,
            TamStatus::Verified
        );
    }
}
