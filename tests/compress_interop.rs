//! Interoperability of `rborg::compress` with real borg (1.2.4 system install, and borg 1.4 when
//! it is present at /opt/borg14): borg must decompress every payload rborg writes, and rborg
//! must decompress what borg writes for the same specs.
//!
//! borg is a test dependency: this test FAILS (it does not skip) when borg 1.2 cannot be
//! imported by `/usr/bin/python3` (override with `RBORG_BORG_PYTHON=/path/to/python3`).

use std::fs;
use std::path::Path;
use std::process::Command;

use rborg::compress::{decompress, decompress_with_hint, Compression};

const SCRIPT: &str = r#"
import os, sys
import borg
from borg.compress import Compressor, CompressionSpec

d = sys.argv[1]
print("borg", borg.__version__)
inputs = sorted(os.listdir(os.path.join(d, "inputs")))
bad = 0
# 1. rborg -> borg
checked = 0
for name in sorted(os.listdir(os.path.join(d, "rborg"))):
    payload = open(os.path.join(d, "rborg", name), "rb").read()
    want = open(os.path.join(d, "inputs", name.split("__")[0]), "rb").read()
    try:
        got = bytes(Compressor("lz4").decompress(payload))
    except Exception as e:
        print("FAIL", name, type(e).__name__, e)
        bad += 1
        continue
    if got != want:
        print("FAIL", name, "plaintext differs")
        bad += 1
    checked += 1
print("borg decompressed", checked, "rborg payloads")
# 2. borg -> rborg
os.makedirs(os.path.join(d, "borg"), exist_ok=True)
specs = open(os.path.join(d, "specs.txt")).read().split()
for i, spec in enumerate(specs):
    c = CompressionSpec(spec).compressor
    for inp in inputs:
        data = open(os.path.join(d, "inputs", inp), "rb").read()
        with open(os.path.join(d, "borg", "%s__%03d" % (inp, i)), "wb") as f:
            f.write(c.compress(data))
sys.exit(1 if bad else 0)
"#;

/// Specs borg 1.2.4 understands (so both directions can use them).
const SPECS: &[&str] = &[
    "none",
    "lz4",
    "zstd,1",
    "zstd,3",
    "zstd,10",
    "zstd,22",
    "zlib,0",
    "zlib,1",
    "zlib,6",
    "zlib,9",
    "lzma,0",
    "lzma,6",
    "lzma,9",
    "auto,zstd",
    "auto,lzma,1",
    "auto,zlib,9",
    "obfuscate,1,lz4",
    "obfuscate,3,none",
    "obfuscate,110,zstd,3",
    "obfuscate,123,zlib",
    "obfuscate,2,auto,zstd,10",
];

/// Deterministic inputs: empty, tiny, text-like, incompressible, zeros, mixed.
fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let random: Vec<u8> = (0..60_000).map(|_| next() as u8).collect();
    let words = [
        "borg ",
        "rborg ",
        "chunk ",
        "archive ",
        "the ",
        "of ",
        "\n",
        "2024-01-01 ",
    ];
    let mut text = Vec::new();
    while text.len() < 150_000 {
        text.extend_from_slice(words[(next() % words.len() as u64) as usize].as_bytes());
    }
    let mut mixed = text[..40_000].to_vec();
    mixed.extend_from_slice(&random[..40_000]);
    mixed.extend_from_slice(&[0u8; 40_000]);
    vec![
        ("empty", Vec::new()),
        ("tiny", b"x".to_vec()),
        ("text", text),
        ("random", random),
        ("zeros", vec![0u8; 300_000]),
        ("mixed", mixed),
    ]
}

fn run_borg(python: &str, dir: &Path) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e} (borg is required for this test)"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{python} with borg failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

fn check_with(python: &str, want_version_prefix: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("inputs")).unwrap();
    fs::create_dir_all(dir.join("rborg")).unwrap();
    let inputs = inputs();
    for (name, data) in &inputs {
        fs::write(dir.join("inputs").join(name), data).unwrap();
    }
    // rborg's payloads: every spec above plus the borg 1.4-only Padmé padding (the format is
    // the same, so 1.2.4 reads it too).
    let mut specs: Vec<&str> = SPECS.to_vec();
    specs.push("obfuscate,250,lzma,1");
    let mut written = 0;
    for (i, spec) in specs.iter().enumerate() {
        let c: Compression = spec.parse().unwrap();
        for (name, data) in &inputs {
            let payload = c.compress(data);
            fs::write(dir.join("rborg").join(format!("{name}__{i:03}")), payload).unwrap();
            written += 1;
        }
    }
    fs::write(dir.join("specs.txt"), SPECS.join("\n")).unwrap();

    let stdout = run_borg(python, dir);
    assert!(
        stdout.starts_with(&format!("borg {want_version_prefix}")),
        "unexpected borg version from {python}: {stdout}"
    );
    assert!(
        stdout.contains(&format!("borg decompressed {written} rborg payloads")),
        "{stdout}"
    );

    // borg's payloads, read back by rborg
    let mut read = 0;
    for (i, spec) in SPECS.iter().enumerate() {
        for (name, data) in &inputs {
            let p = fs::read(dir.join("borg").join(format!("{name}__{i:03}"))).unwrap();
            assert_eq!(&decompress(&p).unwrap(), data, "borg {spec} on {name}");
            assert_eq!(
                &decompress_with_hint(&p, data.len()).unwrap(),
                data,
                "borg {spec} on {name} (hint)"
            );
            read += 1;
        }
    }
    assert_eq!(read, SPECS.len() * inputs.len());
}

#[test]
fn borg_12_reads_rborg_payloads_and_rborg_reads_borg_payloads() {
    let python = std::env::var("RBORG_BORG_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    check_with(&python, "1.2");
}

#[test]
fn borg_14_interop_when_installed() {
    let python = "/opt/borg14/bin/python3";
    if !Path::new(python).exists() {
        eprintln!("borg 1.4 not installed at /opt/borg14: skipped (borg 1.2 test is mandatory)");
        return;
    }
    check_with(python, "1.4");
}
