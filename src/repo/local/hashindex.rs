//! `index.N`: borg's on-disk hash table (`BORG_IDX`) mapping object id → (segment, offset).
//!
//! In memory rborg keeps a plain hash map; the table layout (linear probing from the home
//! bucket `u32le(key[0..4]) % buckets`, EMPTY/DELETED markers in the first value word) only
//! exists in the file, built on write so that borg finds every key without a rebuild.

use crate::repo::{IdMap, ObjectId};

pub const MAGIC: &[u8; 8] = b"BORG_IDX";
pub const HEADER_SIZE: usize = 18;
const EMPTY: u32 = 0xffff_ffff;
const DELETED: u32 = 0xffff_fffe;
const MAX_VALUE: u32 = 0xffff_fbff;

/// borg's table sizes (primes); any of them is acceptable to its reader.
pub const SIZES: &[u64] = &[
    1031, 2053, 4099, 8209, 16411, 32771, 65537, 131101, 262147, 445649, 757607, 1287917, 2189459,
    3065243, 4291319, 6007867, 8410991, 11775359, 16485527, 23079703, 27695653, 33234787, 39881729,
    47858071, 57429683, 68915617, 82698751, 99238507, 119086189, 144378011, 157223263, 173476439,
    190253911, 209915011, 230493629, 253169431, 278728861, 306647623, 337318939, 370742809,
    408229973, 449387209, 493428073, 543105119, 596976533, 657794869, 722676499, 795815791,
    874066969, 962279771, 1057701643, 1164002657, 1280003147, 1407800297, 1548442699, 1703765389,
    1873768367, 2062383853,
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashIndexError {
    #[error("Unknown MAGIC in header")]
    BadMagic,
    #[error("hashindex header too short")]
    Short,
    #[error("Unexpected key/value size {0}/{1}")]
    BadSizes(u8, u8),
    #[error("Incorrect file length (expected {expected}, got {got})")]
    BadLength { expected: u64, got: u64 },
    #[error("hashindex header is inconsistent ({0})")]
    Inconsistent(&'static str),
}

/// Smallest table size keeping the load at most 75 %.
pub fn table_size_for(entries: usize) -> u64 {
    SIZES
        .iter()
        .copied()
        .find(|&s| s * 3 / 4 >= entries as u64)
        .unwrap_or(*SIZES.last().expect("sizes"))
}

/// Parses a table with 32-byte keys and `value_size`-byte values, returning the live entries.
pub fn parse(data: &[u8], value_size: u8) -> Result<Vec<(ObjectId, &[u8])>, HashIndexError> {
    if data.len() < HEADER_SIZE {
        return Err(HashIndexError::Short);
    }
    if &data[..8] != MAGIC {
        return Err(HashIndexError::BadMagic);
    }
    let num_entries = i32::from_le_bytes(data[8..12].try_into().expect("4"));
    let num_buckets = i32::from_le_bytes(data[12..16].try_into().expect("4"));
    let (ks, vs) = (data[16], data[17]);
    if ks != 32 || vs != value_size {
        return Err(HashIndexError::BadSizes(ks, vs));
    }
    if num_buckets < 1 || num_entries < 0 || num_entries > num_buckets {
        return Err(HashIndexError::Inconsistent("counts"));
    }
    let bsize = 32 + value_size as u64;
    let expected = HEADER_SIZE as u64 + num_buckets as u64 * bsize;
    if data.len() as u64 != expected {
        return Err(HashIndexError::BadLength {
            expected,
            got: data.len() as u64,
        });
    }
    let mut out = Vec::with_capacity(num_entries as usize);
    for b in data[HEADER_SIZE..].chunks_exact(bsize as usize) {
        let marker = u32::from_le_bytes(b[32..36].try_into().expect("4"));
        if marker == EMPTY || marker == DELETED {
            continue;
        }
        out.push((ObjectId(b[..32].try_into().expect("32")), &b[32..]));
    }
    if out.len() != num_entries as usize {
        return Err(HashIndexError::Inconsistent("entry count"));
    }
    Ok(out)
}

/// Builds the table bytes for entries whose values are `value_size` bytes each and whose first
/// value word is a real value (≤ 0xfffffbff).
pub fn build<'a>(
    entries: impl ExactSizeIterator<Item = (&'a ObjectId, Vec<u8>)>,
    value_size: u8,
) -> Vec<u8> {
    let n = entries.len();
    let buckets = table_size_for(n);
    let bsize = 32 + value_size as usize;
    let mut out = vec![0u8; HEADER_SIZE + buckets as usize * bsize];
    out[..8].copy_from_slice(MAGIC);
    out[8..12].copy_from_slice(&(n as i32).to_le_bytes());
    out[12..16].copy_from_slice(&(buckets as i32).to_le_bytes());
    out[16] = 32;
    out[17] = value_size;
    let table = &mut out[HEADER_SIZE..];
    for b in table.chunks_exact_mut(bsize) {
        b[32..36].copy_from_slice(&EMPTY.to_le_bytes());
    }
    for (key, value) in entries {
        debug_assert_eq!(value.len(), value_size as usize);
        debug_assert!(u32::from_le_bytes(value[..4].try_into().expect("4")) <= MAX_VALUE);
        let mut idx = u32::from_le_bytes(key.0[..4].try_into().expect("4")) as u64 % buckets;
        loop {
            let b = &mut table[idx as usize * bsize..(idx as usize + 1) * bsize];
            if u32::from_le_bytes(b[32..36].try_into().expect("4")) == EMPTY {
                b[..32].copy_from_slice(&key.0);
                b[32..].copy_from_slice(&value);
                break;
            }
            idx = (idx + 1) % buckets;
        }
    }
    out
}

/// The repository index: id → (segment, offset).
pub type NsIndex = IdMap<(u32, u32)>;

pub fn parse_nsindex(data: &[u8]) -> Result<NsIndex, HashIndexError> {
    let entries = parse(data, 8)?;
    let mut m = NsIndex::with_capacity_and_hasher(entries.len(), Default::default());
    for (k, v) in entries {
        let seg = u32::from_le_bytes(v[..4].try_into().expect("4"));
        let off = u32::from_le_bytes(v[4..8].try_into().expect("4"));
        m.insert(k, (seg, off));
    }
    Ok(m)
}

pub fn build_nsindex(index: &NsIndex) -> Vec<u8> {
    build(
        index.iter().map(|(k, (s, o))| {
            let mut v = Vec::with_capacity(8);
            v.extend_from_slice(&s.to_le_bytes());
            v.extend_from_slice(&o.to_le_bytes());
            (k, v)
        }),
        8,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_init_index_layout() {
        let mut idx = NsIndex::default();
        idx.insert(ObjectId::MANIFEST, (0, 8));
        let bytes = build_nsindex(&idx);
        assert_eq!(bytes.len(), 41258);
        assert_eq!(
            &bytes[..18],
            &hex::decode("424f52475f494458010000000704000020 08".replace(' ', "")).unwrap()[..]
        );
        assert_eq!(&bytes[18 + 32..18 + 40], &[0, 0, 0, 0, 8, 0, 0, 0]);
        assert_eq!(&bytes[18 + 40 + 32..18 + 40 + 36], &[0xff; 4]);
        let back = parse_nsindex(&bytes).unwrap();
        assert_eq!(back.get(&ObjectId::MANIFEST), Some(&(0, 8)));
    }

    #[test]
    fn home_bucket_and_probing() {
        let mut k = ObjectId([0; 32]);
        k.0[..4].copy_from_slice(&[0, 1, 2, 3]);
        let mut idx = NsIndex::default();
        idx.insert(k, (22, 8));
        let bytes = build_nsindex(&idx);
        let b = 18 + 681 * 40;
        assert_eq!(&bytes[b..b + 32], &k.0);
        // colliding keys land in consecutive buckets and all parse back
        let mut many = NsIndex::default();
        for i in 0..700u32 {
            let mut id = ObjectId([i as u8; 32]);
            id.0[..4].copy_from_slice(&(i * 1031).to_le_bytes()); // all home bucket 0
            many.insert(id, (i, i));
        }
        let bytes = build_nsindex(&many);
        assert_eq!(parse_nsindex(&bytes).unwrap(), many);
    }

    #[test]
    fn sizes_and_validation() {
        assert_eq!(table_size_for(0), 1031);
        assert_eq!(table_size_for(773), 1031);
        assert_eq!(table_size_for(774), 2053);
        let mut bytes = build_nsindex(&NsIndex::default());
        bytes.pop();
        assert!(matches!(
            parse_nsindex(&bytes),
            Err(HashIndexError::BadLength { .. })
        ));
        let mut lying = build_nsindex(&NsIndex::default());
        lying[8] = 5;
        assert!(parse_nsindex(&lying).is_err());
    }
}
