//! Crypto throughput: chunk id hashes (HMAC-SHA256, keyed BLAKE2b-256) and envelope
//! seal/open (AES-256-CTR + HMAC-SHA256 and + BLAKE2b MAC) on 1 MiB and 64 KiB payloads, and
//! SHA-256 over many messages (sequential vs two interleaved lanes).
//!
//! `cargo bench --bench crypto` (criterion; `harness = false`).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rborg::crypto::{Key, KeyKind, KeyMaterial};

fn payload(n: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn key(kind: KeyKind) -> Key {
    Key::new(kind, Some(KeyMaterial::generate(kind, [7; 32])))
}

fn bench_id(c: &mut Criterion) {
    let mut g = c.benchmark_group("id_hash");
    g.sample_size(20);
    for size in [64 << 10, 1 << 20] {
        let data = payload(size);
        g.throughput(Throughput::Bytes(size as u64));
        for kind in [KeyKind::Repokey, KeyKind::RepokeyBlake2] {
            let k = key(kind);
            g.bench_with_input(BenchmarkId::new(kind.arg_name(), size), &data, |b, d| {
                b.iter(|| k.id_hash(black_box(d)))
            });
        }
    }
    g.finish();
}

fn bench_envelope(c: &mut Criterion) {
    let mut g = c.benchmark_group("envelope");
    g.sample_size(20);
    for size in [64 << 10, 1 << 20] {
        let data = payload(size);
        g.throughput(Throughput::Bytes(size as u64));
        for kind in [KeyKind::Repokey, KeyKind::RepokeyBlake2] {
            let k = key(kind);
            g.bench_with_input(
                BenchmarkId::new(format!("seal/{}", kind.arg_name()), size),
                &data,
                |b, d| b.iter(|| k.seal_with_iv(1, black_box(d))),
            );
            let env = k.seal_with_iv(1, &data);
            g.bench_with_input(
                BenchmarkId::new(format!("open/{}", kind.arg_name()), size),
                &env,
                |b, e| b.iter(|| k.open(None, black_box(e)).unwrap()),
            );
        }
    }
    g.finish();
}

/// SHA-256 of eight 256 KiB messages: one after the other, and two lanes interleaved.
fn bench_sha256_lanes(c: &mut Criterion) {
    use rborg_simd::sha256::{finish_many_with, Midstate, Sha256Impl};
    let mut g = c.benchmark_group("sha256_many");
    g.sample_size(20);
    let data: Vec<Vec<u8>> = (0..8).map(|_| payload(256 << 10)).collect();
    let msgs: Vec<&[u8]> = data.iter().map(|m| m.as_slice()).collect();
    g.throughput(Throughput::Bytes(8 * (256 << 10)));
    for imp in [Sha256Impl::Sequential, Sha256Impl::ShaNiX2] {
        if !imp.is_available() {
            continue;
        }
        let mut out = [[0u8; 32]; 8];
        g.bench_function(format!("{imp:?}"), |b| {
            b.iter(|| finish_many_with(imp, &Midstate::default(), black_box(&msgs), &mut out))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_id, bench_envelope, bench_sha256_lanes);
criterion_main!(benches);
