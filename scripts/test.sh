#!/usr/bin/env bash
# Sets everything up (idempotent) and runs the whole test suite: formatting,
# clippy with warnings as errors, then every unit and integration test
# (real GStreamer, a real RTSP server on loopback, real SQLite, real models),
# the Debian package in a clean root, and a short fuzzing run.
set -euo pipefail
started=$SECONDS
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Each step's time, and the whole command's, printed at the end however it ends.
times=()
step_started=$SECONDS
step_done() { times+=("$1 $((SECONDS - step_started)) s"); step_started=$SECONDS; }
report() {
  local total=$((SECONDS - started)) parts
  parts="$(printf '%s, ' "${times[@]}")"
  echo "test command: $((total / 60)) min $((total % 60)) s (${parts%, })"
}
trap report EXIT
source "$repo/scripts/setup.sh"
step_done setup
cd "$repo"
cargo fmt --version >/dev/null && cargo clippy --version >/dev/null || { echo "error: rustfmt and clippy are needed (rustup component add rustfmt clippy)" >&2; exit 1; }
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets --quiet -- -D warnings
step_done "fmt+clippy"
# Unit and integration tests (doc tests: none), every test binary even
# after a failure. The last line sums them up.
log="$(mktemp)"
trap 'rm -f "$log"; report' EXIT
status=0
cargo test --release --workspace --all-targets --no-fail-fast 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { p += $4; f += $6 } END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
step_done tests
[ "$status" -eq 0 ] || exit "$status"
# The Debian package, built, installed in a clean Debian root, run as the
# service would run it, removed and purged (scripts/test-package.sh).
"$repo/scripts/test-package.sh"
step_done package
# A short fuzzing run of the config parser and the API (longer: scripts/fuzz.sh 600).
"$repo/scripts/fuzz.sh" 15
step_done fuzzing
