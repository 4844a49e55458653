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
# Unit and integration tests (doc tests: none). The last line sums them up.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set -o pipefail
cargo test --release --workspace --all-targets 2>&1 | tee "$log"
awk '/^test result:/ { p += $4; f += $6 } END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
# A short fuzzing run of the config parser and the API (longer: scripts/fuzz.sh 600).
"$repo/scripts/fuzz.sh" 15
