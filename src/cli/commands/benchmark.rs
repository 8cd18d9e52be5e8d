//! `borg benchmark crud` (create/read/update/delete timings, borg's output) and
//! `benchmark cpu` (throughput of each primitive on this machine, like borg 2's).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::{Args, Subcommand};

use crate::chunker::{Chunker, ChunkerParams};
use crate::cli::common::{location, Ctx, Want};
use crate::cli::exit::CommandError;
use crate::compress::Compression;
use crate::crypto::{Key, KeyKind, KeyMaterial};
use crate::units::format_file_size;

#[derive(Subcommand, Debug)]
pub enum BenchmarkCommand {
    /// Benchmarks Borg CRUD (create, extract, update, delete).
    Crud(CrudArgs),
    /// Benchmark CPU bound operations.
    Cpu(CpuArgs),
}

#[derive(Args, Debug)]
pub struct CrudArgs {
    /// repository to use for benchmark (must exist)
    #[arg(value_name = "REPOSITORY")]
    pub location: String,
    /// path were to create benchmark input data
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

#[derive(Args, Debug)]
pub struct CpuArgs {}

pub fn run(cmd: &BenchmarkCommand, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        BenchmarkCommand::Crud(a) => crud(a, ctx),
        BenchmarkCommand::Cpu(_) => cpu(),
    }
}

/// Runs this binary as a sub-command, inheriting the options that reach the repository.
fn sub(ctx: &Ctx, args: &[&str]) -> anyhow::Result<f64> {
    let exe = std::env::current_exe()?;
    let mut c = Command::new(exe);
    if let Some(r) = &ctx.common.rsh {
        c.args(["--rsh", r]);
    }
    if let Some(r) = &ctx.common.remote_path {
        c.args(["--remote-path", r]);
    }
    c.args(args);
    let t = Instant::now();
    let status = c.status()?;
    let dt = t.elapsed().as_secs_f64();
    if !status.success() {
        return Err(CommandError(format!(
            "benchmark step failed (rc {}): {}",
            status.code().unwrap_or(-1),
            args.join(" ")
        ))
        .into());
    }
    Ok(dt)
}

fn measurement_run(ctx: &Ctx, repo: &str, path: &str) -> anyhow::Result<[f64; 4]> {
    let archive = format!("{repo}::borg-benchmark-crud");
    let a = |n: u32| format!("{archive}{n}");
    let comp = "--compression=none";
    // create without files cache, so every file is chunked
    let dt_create = sub(
        ctx,
        &["create", comp, "--files-cache=disabled", &a(1), path],
    )?;
    // build the files cache, then time an unchanged update
    sub(ctx, &["create", comp, &a(2), path])?;
    sub(ctx, &["delete", &a(2)])?;
    let dt_update = sub(ctx, &["create", comp, &a(3), path])?;
    sub(ctx, &["delete", &a(3)])?;
    let dt_extract = sub(ctx, &["extract", "--dry-run", &a(1)])?;
    let dt_delete = sub(ctx, &["delete", &a(1)])?;
    Ok([dt_create, dt_update, dt_extract, dt_delete])
}

/// Writes `count` files of `size` bytes (zeros or random) and removes them when dropped.
struct TestFiles(PathBuf);

impl TestFiles {
    fn new(base: &Path, count: usize, size: usize, random: bool) -> anyhow::Result<TestFiles> {
        use std::io::Write;
        let dir = base.join("borg-test-data");
        std::fs::create_dir_all(&dir)?;
        let files = TestFiles(dir.clone());
        let zeros = vec![0u8; if random { 0 } else { size }];
        let mut buf = vec![0u8; if random { size } else { 0 }];
        for i in 0..count {
            let data: &[u8] = if random {
                crate::crypto::fill_random(&mut buf);
                &buf
            } else {
                &zeros
            };
            let mut f = std::fs::File::create(dir.join(format!("file_{i}")))?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        Ok(files)
    }
}

impl Drop for TestFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn crud(a: &CrudArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(Some(&a.location), Want::Repo, "REPOSITORY")?;
    let repo = loc.canonical_path();
    let tests: &[(&str, usize, usize, bool)] =
        if std::env::var_os("_BORG_BENCHMARK_CRUD_TEST").is_some() {
            &[("Z-TEST", 1, 1, false), ("R-TEST", 1, 1, true)]
        } else {
            &[
                ("Z-BIG", 10, 100_000_000, false),
                ("R-BIG", 10, 100_000_000, true),
                ("Z-MEDIUM", 1000, 1_000_000, false),
                ("R-MEDIUM", 1000, 1_000_000, true),
                ("Z-SMALL", 10000, 10_000, false),
                ("R-SMALL", 10000, 10_000, true),
            ]
        };
    for &(msg, count, size, random) in tests {
        let files = TestFiles::new(&a.path, count, size, random)?;
        let [c, u, r, d] = measurement_run(ctx, &repo, &files.0.display().to_string())?;
        drop(files);
        let total_mb = (count * size) as f64 / 1e6;
        let fsz = format_file_size(size as i128, 2, false, crate::units::iec());
        let content = if random { "random" } else { "all-zero" };
        for (letter, dt) in [("C", c), ("R", r), ("U", u), ("D", d)] {
            crate::outln!(
                "{letter}-{msg:<10} {:>9.2} MB/s ({count} * {fsz} {content} files: {dt:.2}s)",
                total_mb / dt
            );
        }
    }
    Ok(())
}

/// Runs `f` until ~0.3 s have passed; returns bytes per second for `bytes` per call.
fn rate(bytes: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed().as_secs_f64() < 0.3 {
        f();
        n += 1;
    }
    bytes as f64 * n as f64 / t.elapsed().as_secs_f64()
}

fn line(name: &str, bytes_per_sec: f64) {
    crate::outln!(
        "{name:<36} {:>12}/s",
        format_file_size(bytes_per_sec as i128, 2, false, crate::units::iec())
    );
}

/// Text-like data: words drawn from a small skewed vocabulary (compresses about like prose).
fn text_like(n: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "the ",
        "of ",
        "and ",
        "to ",
        "in ",
        "a ",
        "is ",
        "that ",
        "backup ",
        "archive ",
        "chunk ",
        "repository ",
        "deduplication ",
        "borg ",
        "rust ",
        "\n",
    ];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // squaring skews the distribution toward the first words
        let r = (x % 256) as usize;
        out.extend_from_slice(WORDS[(r * r) >> 12].as_bytes());
    }
    out.truncate(n);
    out
}

fn cpu() -> anyhow::Result<()> {
    const SIZE: usize = 16 << 20;
    let mut random = vec![0u8; SIZE];
    crate::crypto::fill_random(&mut random);
    let text = text_like(SIZE);
    let zeros = {
        // written, so the pages are real memory rather than the shared zero page
        let mut z = vec![1u8; SIZE];
        std::hint::black_box(&mut z);
        z.fill(0);
        z
    };

    crate::outln!("Chunkers =======================================================");
    let c = Chunker::new(ChunkerParams::DEFAULT, 0)?;
    line(
        &format!("{} (auto: {})", ChunkerParams::DEFAULT, c.backend().name()),
        rate(SIZE, || {
            std::hint::black_box(c.chunks(&random).count());
        }),
    );
    for backend in rborg_simd::Backend::available() {
        let c = Chunker::with_backend(ChunkerParams::DEFAULT, 0, backend)?;
        line(
            &format!("buzhash scan backend {}", backend.name()),
            rate(SIZE, || {
                std::hint::black_box(c.chunks(&random).count());
            }),
        );
    }

    crate::outln!("Non-cryptographic checksums / hashes ===========================");
    line(
        "crc32 (crc32fast)",
        rate(SIZE, || {
            std::hint::black_box(crc32fast::hash(&random));
        }),
    );
    line(
        "xxh64",
        rate(SIZE, || {
            std::hint::black_box(xxhash_rust::xxh64::xxh64(&random, 0));
        }),
    );
    line(
        "all-zero detection",
        rate(SIZE, || {
            std::hint::black_box(crate::chunker::is_all_zero(&zeros));
        }),
    );

    crate::outln!("Cryptographic hashes / MACs / encryption =======================");
    let chunk = &random[..1 << 20];
    for kind in [
        KeyKind::Repokey,
        KeyKind::RepokeyBlake2,
        KeyKind::Authenticated,
        KeyKind::AuthenticatedBlake2,
    ] {
        let key = Key::new(kind, Some(KeyMaterial::generate(kind, [7; 32])));
        line(
            &format!("id hash ({})", kind.arg_name()),
            rate(chunk.len(), || {
                std::hint::black_box(key.id_hash(chunk));
            }),
        );
        if !kind.encrypts() {
            continue;
        }
        let env = key.seal_with_iv(1, chunk);
        line(
            &format!("seal ({})", kind.arg_name()),
            rate(chunk.len(), || {
                std::hint::black_box(key.seal_with_iv(1, chunk));
            }),
        );
        line(
            &format!("open ({})", kind.arg_name()),
            rate(chunk.len(), || {
                std::hint::black_box(key.open(None, &env).ok());
            }),
        );
    }

    crate::outln!("KDFs (slow is GOOD, use argon2!) ===============================");
    let t = Instant::now();
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"passphrase", &[0u8; 32], 100_000, &mut out);
    crate::outln!(
        "{:<36} {:>10.3}s",
        "pbkdf2-sha256 (100000 iterations)",
        t.elapsed().as_secs_f64()
    );

    crate::outln!("Compression ====================================================");
    for spec in [
        "lz4", "zstd,1", "zstd,3", "zstd,10", "zlib,6", "lzma,0", "lzma,6",
    ] {
        let c: Compression = spec.parse()?;
        let input = if spec.starts_with("lzma") {
            &text[..1 << 20]
        } else {
            &text[..]
        };
        line(
            &format!("compress {spec} (text)"),
            rate(input.len(), || {
                std::hint::black_box(c.compress(input));
            }),
        );
        let packed = c.compress(input);
        line(
            &format!("decompress {spec} (text)"),
            rate(input.len(), || {
                std::hint::black_box(crate::compress::decompress(&packed).ok());
            }),
        );
    }
    Ok(())
}
