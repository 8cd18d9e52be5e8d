//! Chunker throughput: the full buzhash chunker (default params) over 64 MiB of random data for
//! every scan backend available here, the automatically dispatched one, and `is_zero`.
//!
//! `cargo bench --bench chunker` (criterion; `harness = false`).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rborg::chunker::{Chunker, ChunkerParams};
use rborg_simd::Backend;

const LEN: usize = 64 << 20;

fn random_data(len: usize) -> Vec<u8> {
    // xorshift64*: fast and good enough to look random to the chunker.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

fn run(c: &Chunker, data: &[u8]) -> usize {
    c.chunks(data)
        .map(|ch| ch.len() ^ ch[0] as usize)
        .fold(0, |a, b| a ^ b)
}

fn bench_buzhash(cr: &mut Criterion) {
    let data = random_data(LEN);
    for (name, params) in [
        ("default", ChunkerParams::DEFAULT),
        ("items", ChunkerParams::ITEMS),
    ] {
        let mut g = cr.benchmark_group(format!("chunker_buzhash_{name}"));
        g.throughput(Throughput::Bytes(LEN as u64));
        g.sample_size(10);
        let auto = Chunker::new(params, 0x2F5A_0C31).unwrap();
        g.bench_function(BenchmarkId::new("dispatched", auto.backend().name()), |b| {
            b.iter(|| run(&auto, black_box(&data)))
        });
        for backend in Backend::available() {
            let c = Chunker::with_backend(params, 0x2F5A_0C31, backend).unwrap();
            g.bench_function(BenchmarkId::new("backend", backend.name()), |b| {
                b.iter(|| run(&c, black_box(&data)))
            });
        }
        g.finish();
    }
}

fn bench_is_zero(cr: &mut Criterion) {
    // Write the buffer so its pages are real memory (a fresh `vec![0; n]` maps the shared zero
    // page, which would measure cache bandwidth).
    let mut zeros = vec![1u8; LEN];
    black_box(&mut zeros);
    zeros.fill(0);
    black_box(&mut zeros);
    let mut g = cr.benchmark_group("is_zero");
    g.throughput(Throughput::Bytes(LEN as u64));
    g.sample_size(10);
    for backend in Backend::available() {
        g.bench_function(BenchmarkId::new("backend", backend.name()), |b| {
            b.iter(|| rborg_simd::zero::is_zero_with(backend, black_box(&zeros)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_buzhash, bench_is_zero);
criterion_main!(benches);
