#!/usr/bin/env bash
# Sets everything up (idempotent) and runs the whole test suite: formatting,
# clippy with warnings as errors, then every unit and integration test
# (real GStreamer, a real RTSP server on loopback, real SQLite, real models).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
cargo fmt --version >/dev/null && cargo clippy --version >/dev/null || { echo "error: rustfmt and clippy are needed (rustup component add rustfmt clippy)" >&2; exit 1; }
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets --quiet -- -D warnings
cargo test --release --workspace
