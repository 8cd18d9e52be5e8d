#!/usr/bin/env bash
# Builds a release binary for one target: cross/build.sh <rust target triple>
set -euo pipefail
target=${1:?usage: cross/build.sh <target-triple>}
cd "$(dirname "$0")/.."
rustup target add "$target"
cargo build --release --target "$target" --bin rborg
ls -l "target/$target/release/rborg"
file "target/$target/release/rborg" || true
