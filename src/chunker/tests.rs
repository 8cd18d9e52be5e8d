use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};

use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;
use crate::msgpack::Value;

const VECTORS: &str = include_str!("testdata/chunker.json");

fn vectors() -> serde_json::Value {
    serde_json::from_str(VECTORS).unwrap()
}

/// `SHA256(tag || u64be(0)) || SHA256(tag || u64be(1)) || ...`, truncated to `len`.
fn sha256ctr(tag: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        let mut h = Sha256::new();
        h.update(tag);
        h.update(i.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        i += 1;
    }
    out.truncate(len);
    out
}

/// 64 KiB blocks k = 0, 1, 2, ...: pseudo-random, zeros, text; truncated to `len`.
fn mixed(tag: &[u8], len: usize) -> Vec<u8> {
    let text: Vec<u8> = b"rborg mixed block ".repeat(4000)[..65536].to_vec();
    let mut out = Vec::with_capacity(len + 65536);
    let mut k = 0u32;
    while out.len() < len {
        match k % 3 {
            0 => {
                let mut t = tag.to_vec();
                t.extend_from_slice(&k.to_be_bytes());
                out.extend_from_slice(&sha256ctr(&t, 65536));
            }
            1 => out.resize(out.len() + 65536, 0),
            _ => out.extend_from_slice(&text),
        }
        k += 1;
    }
    out.truncate(len);
    out
}

fn gen_input(spec: &serde_json::Value) -> Vec<u8> {
    let len = spec["len"].as_u64().unwrap() as usize;
    let tag = spec["tag_utf8"].as_str().unwrap_or("").as_bytes();
    match spec["gen"].as_str().unwrap() {
        "sha256ctr" => sha256ctr(tag, len),
        "zeros" => vec![0u8; len],
        "mixed" => mixed(tag, len),
        g => panic!("unknown generator {g}"),
    }
}

fn params_from_json(p: &serde_json::Value) -> ChunkerParams {
    let arr = p.as_array().unwrap();
    let v = Value::Array(
        arr.iter()
            .map(|x| match x {
                serde_json::Value::String(s) => Value::Bytes(s.as_bytes().to_vec()),
                n => Value::Int(n.as_i64().unwrap() as i128),
            })
            .collect(),
    );
    ChunkerParams::from_value(&v).unwrap()
}

fn hex16(data: &[u8]) -> String {
    hex::encode(&Sha256::digest(data)[..8])
}

/// Every case of the borg 1.2.4 vectors: chunk sizes and the sha256 prefix of every chunk,
/// with the automatic backend over the whole buffer.
#[test]
fn vectors_every_case() {
    let v = vectors();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 30);
    let mut inputs: HashMap<String, Vec<u8>> = HashMap::new();
    for (n, case) in cases.iter().enumerate() {
        let key = case["input"].to_string();
        let data = inputs.entry(key).or_insert_with(|| {
            let d = gen_input(&case["input"]);
            assert_eq!(
                hex::encode(Sha256::digest(&d)),
                case["input_sha256"].as_str().unwrap(),
                "generator for {}",
                case["input"]
            );
            d
        });
        let params = params_from_json(&case["params"]);
        let seed = case["seed"].as_i64().unwrap() as i32;
        assert_eq!(seed as u32 as u64, case["seed_u32"].as_u64().unwrap());
        let chunker = Chunker::new(params, seed).unwrap();
        let chunks: Vec<&[u8]> = chunker.chunks(data).collect();
        let sizes: Vec<u64> = chunks.iter().map(|c| c.len() as u64).collect();
        let want: Vec<u64> = case["chunk_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(
            sizes, want,
            "case {n}: {params} seed {seed} {}",
            case["input"]
        );
        let want_h: Vec<&str> = case["chunk_sha256_prefix16"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        let got_h: Vec<String> = chunks.iter().map(|c| hex16(c)).collect();
        assert_eq!(got_h, want_h, "case {n}");
    }
}

/// The smaller vector cases once more through every available scan backend and through the
/// streaming reader with irregular read sizes.
#[test]
fn vectors_every_backend_and_reader() {
    let v = vectors();
    for case in v["cases"].as_array().unwrap() {
        let len = case["input"]["len"].as_u64().unwrap();
        if len > 4 << 20 {
            continue;
        }
        let data = gen_input(&case["input"]);
        let params = params_from_json(&case["params"]);
        let seed = case["seed"].as_i64().unwrap() as i32;
        let want: Vec<usize> = case["chunk_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        for b in Backend::available() {
            let c = Chunker::with_backend(params, seed, b).unwrap();
            assert_eq!(c.chunk_lengths(&data), want, "{b} {params} seed {seed}");
        }
        let c = Chunker::new(params, seed).unwrap();
        let got: Vec<usize> = c
            .reader(Jumpy::new(&data[..], seed as u64))
            .map(|r| r.unwrap().len())
            .collect();
        assert_eq!(got, want, "reader {params} seed {seed}");
    }
}

#[test]
fn vectors_buzhash_values() {
    let v = vectors();
    let input = sha256ctr(b"rborg-buzhash", 4096);
    assert_eq!(
        v["buzhash_window_input"],
        "sha256ctr(\"rborg-buzhash\", 4096)"
    );
    for e in v["buzhash_values"].as_array().unwrap() {
        let t = buzhash_table(e["seed"].as_i64().unwrap() as i32);
        let h = t.hash(&input[..4095]);
        assert_eq!(h as u64, e["buzhash_of_first_4095"].as_u64().unwrap());
        assert_eq!(t.hash_fast(&input[..4095]), h);
        let h2 = t.roll(h, input[0], input[4095], 4095);
        assert_eq!(
            h2 as u64,
            e["after_update_remove_byte0_add_byte4095"]
                .as_u64()
                .unwrap()
        );
        assert_eq!(h2, t.hash(&input[1..4096]));
        assert_eq!(
            t.hash(b"abc") as u64,
            e["buzhash_of_b\"abc\""].as_u64().unwrap()
        );
        assert_eq!(
            t.hash(&[0u8; 64]) as u64,
            e["buzhash_of_64_zero_bytes"].as_u64().unwrap()
        );
    }
}

/// A reader returning pseudo-random short reads (0-length only at the end).
struct Jumpy<'a> {
    data: &'a [u8],
    x: u64,
}

impl<'a> Jumpy<'a> {
    fn new(data: &'a [u8], seed: u64) -> Self {
        Jumpy { data, x: seed | 1 }
    }
}

impl Read for Jumpy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        let lim = match self.x % 4 {
            0 => 1 + (self.x >> 8) as usize % 7,
            1 => 1 + (self.x >> 8) as usize % 5000,
            2 => 1 + (self.x >> 8) as usize % 300_000,
            _ => usize::MAX,
        };
        let n = buf.len().min(lim).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn reader_matches_buffer_default_params() {
    let data = mixed(b"reader", 13 << 20);
    let c = Chunker::new(ChunkerParams::DEFAULT, 0x1234_5678).unwrap();
    let want: Vec<Vec<u8>> = c.chunks(&data).map(|s| s.to_vec()).collect();
    assert!(want.len() > 2);
    for seed in 1..4u64 {
        let got: Vec<Vec<u8>> = c
            .reader(Jumpy::new(&data, seed))
            .map(|r| r.unwrap())
            .collect();
        assert!(got == want, "seed {seed}");
    }
    // Empty stream: no chunks.
    assert_eq!(c.reader(&[][..]).count(), 0);
}

/// A buffer handed from one reader to the next (`reader_with` / `into_buffer`, as create
/// does from file to file) keeps the previous stream's bytes, in any length: the cuts must
/// not see them.
#[test]
fn reused_reader_buffer_gives_the_same_chunks() {
    let c = Chunker::new(ChunkerParams::DEFAULT, 0x1234_5678).unwrap();
    let mut buf = vec![0xA5u8; 3 << 20];
    for (n, len) in [
        (1u64, 13usize << 20),
        (2, 5 << 20),
        (3, 300_000),
        (4, 0),
        (5, 11 << 20),
    ] {
        let data = mixed(format!("reuse {n}").as_bytes(), len);
        let want: Vec<Vec<u8>> = c.chunks(&data).map(|s| s.to_vec()).collect();
        let mut r = c.reader_with(Jumpy::new(&data, n), std::mem::take(&mut buf));
        let mut got = Vec::new();
        while let Some(chunk) = r.next_chunk() {
            got.push(chunk.unwrap().to_vec());
        }
        assert!(got == want, "stream {n} ({len} bytes)");
        buf = r.into_buffer();
        assert!(!buf.is_empty() || len == 0, "the buffer comes back");
    }
    // longer than this chunker's buffer (kept by another chunker): cut down, same chunks
    let small = Chunker::new(
        ChunkerParams::Fixed {
            block_size: 4096,
            header_size: 0,
        },
        0,
    )
    .unwrap();
    let data = mixed(b"fixed", 100_000);
    let mut r = small.reader_with(&data[..], vec![7u8; 20 << 20]);
    let mut sizes = Vec::new();
    while let Some(chunk) = r.next_chunk() {
        sizes.push(chunk.unwrap().len());
    }
    assert_eq!(sizes, small.chunk_lengths(&data));
}

#[test]
fn reader_propagates_errors() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("boom"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }
    let c = Chunker::new(ChunkerParams::parse("buzhash,10,16,12,4095").unwrap(), 0).unwrap();
    let mut it = c.reader(Failing(1000));
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Small parameters (many chunks): reader = buffer iterator = spec 8.4 written out
    /// literally, for random data with zero runs, random seeds and random read sizes.
    #[test]
    fn reader_and_buffer_match_spec(seed in any::<i32>(), rs in any::<u64>(), len in 0usize..200_000,
                                    minx in 6u32..10, span in 1u32..5, win in prop_oneof![Just(31u32), Just(63), Just(64), Just(100), Just(255)]) {
        let maxx = minx + span;
        let mask = minx + (rs as u32 % (span + 1));
        prop_assume!(win as u64 + (1u64 << minx) < 1u64 << maxx);
        let params = ChunkerParams::Buzhash { min_exp: minx, max_exp: maxx, mask_bits: mask, window: win };
        let mut data = sha256ctr(&rs.to_le_bytes(), len);
        // Some zero runs.
        let mut x = rs | 1;
        for _ in 0..(len / 20_000) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            let a = (x as usize) % len.max(1);
            let b = (a + (x >> 32) as usize % 9000).min(len);
            data[a..b].fill(0);
        }
        let want = spec_84(&data, &params, seed);
        let c = Chunker::new(params, seed).unwrap();
        prop_assert_eq!(&c.chunk_lengths(&data), &want);
        let got: Vec<usize> = c.reader(Jumpy::new(&data, rs)).map(|r| r.unwrap().len()).collect();
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(want.iter().sum::<usize>(), len);
    }
}

/// Spec 8.4, transcribed.
fn spec_84(data: &[u8], params: &ChunkerParams, seed: i32) -> Vec<usize> {
    let ChunkerParams::Buzhash {
        min_exp,
        max_exp,
        mask_bits,
        window,
    } = *params
    else {
        unreachable!()
    };
    let t = buzhash_table(seed);
    let (min, max, w) = (1usize << min_exp, 1usize << max_exp, window as usize);
    let mask = ((1u64 << mask_bits) - 1) as u32;
    let l = data.len();
    let mut out = Vec::new();
    let mut s = 0;
    while s < l {
        if l - s < min + w + 1 {
            out.push(l - s);
            break;
        }
        let e = l.min(s + max);
        let mut p = s + min;
        let mut h = t.hash(&data[p..p + w]);
        let mut cut = e;
        loop {
            if h & mask == 0 && e - p > w {
                cut = p;
                break;
            }
            if p + w >= e {
                break;
            }
            h = t.roll(h, data[p], data[p + w], w);
            p += 1;
        }
        out.push(cut - s);
        s = cut;
    }
    out
}

#[test]
fn next_cut_needs_only_max_bytes() {
    let c = Chunker::new(ChunkerParams::parse("buzhash,10,14,13,255").unwrap(), 5).unwrap();
    let data = sha256ctr(b"nc", 100_000);
    let max = c.max_chunk_size();
    assert_eq!(max, 1 << 14);
    assert_eq!(c.next_cut(&data[..max - 1], 0, false), None);
    let full = c.next_cut(&data, 0, false).unwrap();
    assert_eq!(c.next_cut(&data[..max], 0, false), Some(full));
    assert_eq!(c.next_cut(&data[..max], 0, true), Some(full));
    assert!((1 << 10..=max).contains(&full));
    // Short tails are one chunk; empty at EOF means done.
    assert_eq!(c.next_cut(&data[..1024 + 255], 0, true), Some(1024 + 255));
    assert_eq!(c.next_cut(&data[..0], 0, true), None);
    assert_eq!(c.chunk_lengths(&[]), Vec::<usize>::new());
}

/// A window matching exactly at E - W is ignored (spec 8.4): build data whose only matching
/// window ends at the hard end.
#[test]
fn match_ending_at_hard_end_is_ignored() {
    // mask_bits 0 would match everywhere; use the all-zero hash of a 64-multiple window:
    // W = 64 zeros hash to 0, random windows almost never do with 20 mask bits.
    let params = ChunkerParams::Buzhash {
        min_exp: 8,
        max_exp: 12,
        mask_bits: 20,
        window: 64,
    };
    let c = Chunker::new(params, 77).unwrap();
    let t = buzhash_table(77);
    let max = 1 << 12;
    let mut data = sha256ctr(b"edge", 3 * max);
    // Zeros in [max - 64, max): the window starting at max - 64 ends exactly at E = max.
    data[max - 64..max].fill(0);
    // Make sure no other window in the candidate range hashes to 0 under the mask.
    let mask = (1u32 << 20) - 1;
    let hits: Vec<usize> = (256..max - 64)
        .filter(|&p| t.hash(&data[p..p + 64]) & mask == 0)
        .collect();
    assert!(hits.is_empty(), "{hits:?}");
    assert_eq!(c.next_cut(&data, 0, false), Some(max));
    // One byte earlier, the match counts.
    data[max - 65..max - 1].fill(0);
    assert_eq!(c.next_cut(&data, 0, false), Some(max - 65));
}

#[test]
fn parse_forms_and_display() {
    let ok = |s: &str, want: ChunkerParams| {
        assert_eq!(ChunkerParams::parse(s).unwrap(), want, "{s}");
    };
    ok("buzhash,19,23,21,4095", ChunkerParams::DEFAULT);
    ok("default", ChunkerParams::DEFAULT);
    ok(" DEFAULT ", ChunkerParams::DEFAULT);
    ok("19,23,21,4095", ChunkerParams::DEFAULT);
    ok("BuzHash, 15 ,19,17,+4_095", ChunkerParams::ITEMS);
    ok(
        "fixed,4096",
        ChunkerParams::Fixed {
            block_size: 4096,
            header_size: 0,
        },
    );
    ok(
        "fixed,4194304,512",
        ChunkerParams::Fixed {
            block_size: 4194304,
            header_size: 512,
        },
    );
    ok(
        "fixed,64,20971479",
        ChunkerParams::Fixed {
            block_size: 64,
            header_size: 20971479,
        },
    );
    assert_eq!(ChunkerParams::DEFAULT.to_string(), "buzhash,19,23,21,4095");
    assert_eq!(ChunkerParams::ITEMS.to_string(), "buzhash,15,19,17,4095");
    let f: ChunkerParams = "fixed,4096".parse().unwrap();
    assert_eq!(f.to_string(), "fixed,4096,0");
    for p in [ChunkerParams::DEFAULT, ChunkerParams::ITEMS, f] {
        assert_eq!(ChunkerParams::parse(&p.to_string()).unwrap(), p);
    }
}

#[test]
fn parse_errors_have_borg_messages() {
    let err = |s: &str| ChunkerParams::parse(s).unwrap_err().to_string();
    assert_eq!(
        err("buzhash,19,23,24,4095"),
        "required: chunk_min <= chunk_mask <= chunk_max"
    );
    assert_eq!(
        err("20,19,19,4095"),
        "required: chunk_min <= chunk_mask <= chunk_max"
    );
    assert_eq!(
        err("buzhash,5,23,21,4095"),
        "min. chunk size exponent must not be less than 6 (2^6 = 64B min. chunk size)"
    );
    assert_eq!(
        err("buzhash,19,24,21,4095"),
        "max. chunk size exponent must not be more than 23 (2^23 = 8MiB max. chunk size)"
    );
    assert_eq!(
        err("buzhash,19,23,21,4096"),
        "window_size must be an uneven (odd) number"
    );
    assert_eq!(err("fixed,63"), "block_size must not be less than 64 Bytes");
    assert_eq!(err("fixed,-1"), "block_size must not be less than 64 Bytes");
    assert_eq!(
        err("fixed,20971480"),
        "block_size and header_size must not exceed MAX_DATA_SIZE [20971479]"
    );
    assert_eq!(
        err("fixed,4096,20971480"),
        "block_size and header_size must not exceed MAX_DATA_SIZE [20971479]"
    );
    for bad in [
        "",
        "fixed",
        "buzhash,1,2,3,4,5",
        "fixed,1,2,3,4",
        "foo,1,2,3,4",
        "default,1",
        "zstd",
    ] {
        assert_eq!(err(bad), "invalid chunker params", "{bad:?}");
    }
    assert_eq!(
        err("fixed,1,2,3"),
        "invalid ChunkerParams value: 'fixed,1,2,3'"
    );
    assert_eq!(
        err("buzhash,19,23,x,4095"),
        "invalid ChunkerParams value: 'buzhash,19,23,x,4095'"
    );
    assert_eq!(err("fixed,4k"), "invalid ChunkerParams value: 'fixed,4k'");
    assert_eq!(
        err("fixed,1__0"),
        "invalid ChunkerParams value: 'fixed,1__0'"
    );
    assert_eq!(
        err("buzhash,19,19,19,524289"),
        "window_size + 2^chunk_min + 1 must not exceed 2^chunk_max"
    );
    assert!(matches!(
        ChunkerParams::parse("19,23,21,4095x"),
        Err(ParamsError::NotAnInteger(_))
    ));
}

#[test]
fn msgpack_forms() {
    let d = ChunkerParams::DEFAULT.to_value();
    assert_eq!(
        d.to_bytes(),
        [
            &[0x95, 0xa7][..],
            b"buzhash",
            &[0x13, 0x17, 0x15, 0xcd, 0x0f, 0xff]
        ]
        .concat()
    );
    let f = ChunkerParams::Fixed {
        block_size: 4096,
        header_size: 0,
    };
    assert_eq!(
        f.to_value().to_bytes(),
        [&[0x93, 0xa5][..], b"fixed", &[0xcd, 0x10, 0x00, 0x00]].concat()
    );
    for p in [ChunkerParams::DEFAULT, ChunkerParams::ITEMS, f] {
        let v = crate::msgpack::decode(&p.to_value().to_bytes()).unwrap();
        assert_eq!(ChunkerParams::from_value(&v).unwrap(), p);
    }
    // borg < 1.2: four integers.
    let legacy = Value::Array(vec![
        Value::Int(19),
        Value::Int(23),
        Value::Int(21),
        Value::Int(4095),
    ]);
    assert_eq!(
        ChunkerParams::from_value(&legacy).unwrap(),
        ChunkerParams::DEFAULT
    );
    let bad = Value::Array(vec![Value::Bytes(b"rabin".to_vec()), Value::Int(1)]);
    assert!(ChunkerParams::from_value(&bad).is_err());
    let bad = Value::Array(vec![
        Value::Bytes(b"buzhash".to_vec()),
        Value::Int(23),
        Value::Int(19),
        Value::Int(21),
        Value::Int(4095),
    ]);
    assert!(ChunkerParams::from_value(&bad).is_err());
    assert!(ChunkerParams::from_value(&Value::Int(3)).is_err());
}

#[test]
fn fixed_chunker_header_and_blocks() {
    let p = ChunkerParams::parse("fixed,4096,1000").unwrap();
    let c = Chunker::new(p, 0).unwrap();
    let data = sha256ctr(b"fixed", 1000 + 3 * 4096 + 17);
    assert_eq!(c.chunk_lengths(&data), vec![1000, 4096, 4096, 4096, 17]);
    assert_eq!(c.chunk_lengths(&data[..999]), vec![999]);
    assert_eq!(c.chunk_lengths(&data[..1000]), vec![1000]);
    assert_eq!(c.chunk_lengths(&data[..1001]), vec![1000, 1]);
    let got: Vec<usize> = c
        .reader(Jumpy::new(&data, 3))
        .map(|r| r.unwrap().len())
        .collect();
    assert_eq!(got, vec![1000, 4096, 4096, 4096, 17]);
    // Descriptors over a dense map give the same cuts.
    let descs = fixed::fixed_chunks(4096, 1000, &fixed::dense_map(data.len() as u64));
    let lens: Vec<usize> = descs.iter().map(|d| d.len as usize).collect();
    assert_eq!(lens, c.chunk_lengths(&data));
    assert!(descs.iter().all(|d| d.kind == ChunkKind::Data));
    let c0 = Chunker::new(ChunkerParams::parse("fixed,64").unwrap(), 0).unwrap();
    assert_eq!(c0.chunk_lengths(&data[..130]), vec![64, 64, 2]);
    assert!(fixed::fixed_chunks(64, 0, &fixed::dense_map(0)).is_empty());
}

#[test]
fn fixed_chunks_restart_alignment_at_ranges() {
    let map = [
        FileRange {
            offset: 0,
            len: 10_000,
            is_data: true,
        },
        FileRange {
            offset: 10_000,
            len: 9000,
            is_data: false,
        },
        FileRange {
            offset: 19_000,
            len: 5000,
            is_data: true,
        },
    ];
    let d = fixed::fixed_chunks(4096, 1024, &map);
    let got: Vec<(u64, u64, ChunkKind)> = d.iter().map(|c| (c.offset, c.len, c.kind)).collect();
    use ChunkKind::*;
    assert_eq!(
        got,
        vec![
            (0, 1024, Data),
            (1024, 4096, Data),
            (5120, 4096, Data),
            (9216, 784, Data),
            (10_000, 4096, Hole),
            (14_096, 4096, Hole),
            (18_192, 808, Hole),
            (19_000, 4096, Data),
            (23_096, 904, Data),
        ]
    );
    // A hole inside the header splits the header.
    let map = [
        FileRange {
            offset: 0,
            len: 500,
            is_data: true,
        },
        FileRange {
            offset: 500,
            len: 5000,
            is_data: false,
        },
    ];
    let got: Vec<(u64, u64, ChunkKind)> = fixed::fixed_chunks(4096, 1024, &map)
        .iter()
        .map(|c| (c.offset, c.len, c.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 500, Data),
            (500, 524, Hole),
            (1024, 4096, Hole),
            (5120, 380, Hole)
        ]
    );
}

#[test]
fn sparse_map_of_a_real_sparse_file() {
    const BS: u64 = 1 << 20;
    let mut f = tempfile::tempfile().unwrap();
    // Layout: hole, data, hole, data, hole (1 MiB each).
    f.set_len(5 * BS).unwrap();
    for k in [1u64, 3] {
        f.seek(SeekFrom::Start(k * BS)).unwrap();
        f.write_all(&sha256ctr(&k.to_le_bytes(), BS as usize))
            .unwrap();
    }
    f.sync_all().unwrap();
    f.seek(SeekFrom::Start(123)).unwrap();
    let map = fixed::sparse_map(&f).unwrap();
    // The file position is restored.
    assert_eq!(f.stream_position().unwrap(), 123);
    assert_eq!(map.iter().map(|r| r.len).sum::<u64>(), 5 * BS);
    for w in map.windows(2) {
        assert_eq!(w[0].offset + w[0].len, w[1].offset);
        assert_ne!(w[0].is_data, w[1].is_data);
    }
    if map.len() == 1 {
        eprintln!("filesystem of the temp dir reports no holes; sparse map is all data");
        assert!(map[0].is_data);
        return;
    }
    let want = vec![
        FileRange {
            offset: 0,
            len: BS,
            is_data: false,
        },
        FileRange {
            offset: BS,
            len: BS,
            is_data: true,
        },
        FileRange {
            offset: 2 * BS,
            len: BS,
            is_data: false,
        },
        FileRange {
            offset: 3 * BS,
            len: BS,
            is_data: true,
        },
        FileRange {
            offset: 4 * BS,
            len: BS,
            is_data: false,
        },
    ];
    assert_eq!(map, want);
    let d = fixed::fixed_chunks(BS, 0, &map);
    assert_eq!(d.len(), 5);
    assert_eq!(d.iter().filter(|c| c.kind == ChunkKind::Hole).count(), 3);
    // An empty file has an empty map.
    let e = tempfile::tempfile().unwrap();
    assert!(fixed::sparse_map(&e).unwrap().is_empty());
}

#[test]
fn all_zero_helper() {
    assert!(is_all_zero(&[]));
    assert!(is_all_zero(&[0u8; 100_000]));
    let mut v = vec![0u8; 100_000];
    v[99_999] = 1;
    assert!(!is_all_zero(&v));
    // Zero runs become max-size chunks for the default window, and every one is all-zero.
    let zeros = vec![0u8; 17 << 20];
    let c = Chunker::new(ChunkerParams::DEFAULT, 0).unwrap();
    let chunks: Vec<&[u8]> = c.chunks(&zeros).collect();
    assert_eq!(
        chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
        [8 << 20, 8 << 20, 1 << 20]
    );
    assert!(chunks.iter().all(|c| is_all_zero(c)));
    // Seed 0x003831ec makes the zero window match (spec 8.4): zero runs cut at every `min`.
    let c = Chunker::new(ChunkerParams::DEFAULT, 0x003831ec).unwrap();
    let lens = c.chunk_lengths(&zeros[..4 << 20]);
    assert_eq!(lens, vec![512 << 10; 8]);
}
