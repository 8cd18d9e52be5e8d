//! The in-memory create pipeline, no I/O: buzhash chunking, id hash, lz4 compression and
//! AES-CTR + HMAC sealing of 64 MiB (half text-like, half random), on one thread and on
//! the rayon pool (chunks stored in parallel, as `create` does for big files).
//!
//! `cargo bench --bench pipeline` (criterion; `harness = false`).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rayon::prelude::*;
use rborg::chunker::{Chunker, ChunkerParams};
use rborg::compress::Compression;
use rborg::crypto::{Key, KeyKind, KeyMaterial};

const LEN: usize = 64 << 20;

fn corpus() -> Vec<u8> {
    let words: &[&[u8]] = &[
        b"the ",
        b"backup ",
        b"of ",
        b"archive ",
        b"chunk ",
        b"and ",
        b"\n",
    ];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut v = Vec::with_capacity(LEN + 16);
    while v.len() < LEN / 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(words[(x % words.len() as u64) as usize]);
    }
    while v.len() < LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(LEN);
    v
}

fn store(key: &Key, comp: &Compression, chunk: &[u8]) -> usize {
    let id = key.id_hash(chunk);
    let payload = comp.compress(chunk);
    let env = key.seal_with_iv(1, &payload);
    env.len() ^ id.0[0] as usize
}

fn bench(c: &mut Criterion) {
    let data = corpus();
    let kind = KeyKind::Repokey;
    let key = Key::new(kind, Some(KeyMaterial::generate(kind, [3; 32])));
    let chunker = Chunker::new(ChunkerParams::DEFAULT, key.chunk_seed()).unwrap();
    let comp: Compression = "lz4".parse().unwrap();
    let mut g = c.benchmark_group("pipeline_repokey_lz4");
    g.throughput(Throughput::Bytes(LEN as u64));
    g.sample_size(10);
    g.bench_function("sequential", |b| {
        b.iter(|| {
            chunker
                .chunks(black_box(&data))
                .map(|ch| store(&key, &comp, ch))
                .sum::<usize>()
        })
    });
    g.bench_function("rayon", |b| {
        b.iter(|| {
            let chunks: Vec<&[u8]> = chunker.chunks(black_box(&data)).collect();
            chunks
                .par_iter()
                .map(|ch| store(&key, &comp, ch))
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
