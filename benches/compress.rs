//! Compression throughput: `cargo bench --bench compress`.
//!
//! Inputs are ~4 MiB of text-like data (a skewed word distribution, compresses ~3x with lz4)
//! and ~4 MiB of random bytes (incompressible: deciding codecs fall back to `none`). lzma runs
//! on 256 KiB only, it is two orders of magnitude slower.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rborg::compress::{decompress, decompress_into, decompress_with_hint, Compression};
use std::time::Duration;

const SIZE: usize = 4 << 20;
const LZMA_SIZE: usize = 256 << 10;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn text_like(n: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "of",
        "and",
        "to",
        "in",
        "a",
        "is",
        "that",
        "for",
        "it",
        "as",
        "was",
        "with",
        "be",
        "by",
        "on",
        "not",
        "he",
        "this",
        "are",
        "or",
        "his",
        "from",
        "at",
        "which",
        "but",
        "have",
        "an",
        "had",
        "they",
        "you",
        "were",
        "their",
        "one",
        "all",
        "we",
        "can",
        "her",
        "has",
        "there",
        "been",
        "if",
        "more",
        "when",
        "will",
        "would",
        "who",
        "so",
        "no",
        "backup",
        "archive",
        "repository",
        "chunk",
        "deduplication",
        "compression",
        "segment",
        "encryption",
        "borg",
        "rborg",
        "manifest",
        "index",
        "cache",
        "files",
        "directory",
    ];
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut out = Vec::with_capacity(n + 64);
    let mut line = 0;
    while out.len() < n {
        let r = rng.next();
        // skewed choice: low indexes (frequent words) much more likely
        let i =
            ((r % WORDS.len() as u64) * ((r >> 32) % WORDS.len() as u64)) as usize / WORDS.len();
        out.extend_from_slice(WORDS[i].as_bytes());
        if r >> 60 == 0 {
            out.extend_from_slice(format!(" {}", (r >> 20) % 100_000).as_bytes());
        }
        line += 1;
        out.push(if line % 12 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(n);
    out
}

fn random(n: usize) -> Vec<u8> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(n);
    out
}

fn specs() -> Vec<(&'static str, Compression, usize)> {
    ["none", "lz4", "zstd,3", "zlib,6", "lzma,6", "auto,zstd"]
        .into_iter()
        .map(|s| {
            let n = if s.starts_with("lzma") {
                LZMA_SIZE
            } else {
                SIZE
            };
            (s, s.parse().unwrap(), n)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let inputs = [("text", text_like(SIZE)), ("random", random(SIZE))];
    for (label, data) in &inputs {
        let mut g = c.benchmark_group(format!("compress/{label}"));
        g.sample_size(10).warm_up_time(Duration::from_millis(500));
        for (name, spec, n) in specs() {
            let d = &data[..n];
            g.throughput(Throughput::Bytes(n as u64));
            let mut out = Vec::with_capacity(n + 1024);
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    out.clear();
                    spec.compress_into(black_box(d), &mut out);
                    black_box(out.len())
                })
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("decompress/{label}"));
        g.sample_size(10).warm_up_time(Duration::from_millis(500));
        for (name, spec, n) in specs() {
            let d = &data[..n];
            let payload = spec.compress(d);
            eprintln!(
                "{label} {name}: {} -> {} bytes ({:.3})",
                n,
                payload.len(),
                payload.len() as f64 / n as f64
            );
            g.throughput(Throughput::Bytes(n as u64));
            g.bench_function(BenchmarkId::new("new-vec", name), |b| {
                b.iter(|| decompress(black_box(&payload)).unwrap().len())
            });
            g.bench_function(BenchmarkId::new("new-vec+hint", name), |b| {
                b.iter(|| decompress_with_hint(black_box(&payload), n).unwrap().len())
            });
            let mut out = Vec::with_capacity(n);
            g.bench_function(BenchmarkId::new("reused-buf+hint", name), |b| {
                b.iter(|| {
                    out.clear();
                    decompress_into(black_box(&payload), Some(n), &mut out).unwrap()
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
