#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ and runs each for a while, on stable Rust:
# the same sanitizer-coverage instrumentation cargo-fuzz uses (all stable
# rustc flags; only AddressSanitizer, a nightly -Z flag, is left out), and
# the libFuzzer that libfuzzer-sys builds and links (needs g++).
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#        (default 30 s, every target in fuzz/fuzz_targets/)
# Env:   HEADCOUNT_CACHE (default /var/cache/headcount): the growing corpus
#        and any crash artifacts live in $HEADCOUNT_CACHE/fuzz, never in git.
#        CARGO_TARGET_DIR (default target/): builds go to its fuzz/ folder.
# Exit:  non-zero if any target crashed (or timed out, or ran out of memory).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-30}"
shift || true
# (libFuzzer reads -max_total_time=0 as "forever": refuse it.)
case "$seconds" in
  '' | *[!0-9]* | 0) echo "usage: $0 [SECONDS_PER_TARGET (>= 1)] [TARGET...]" >&2; exit 2 ;;
esac
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in "$root"/fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

command -v c++ >/dev/null || command -v g++ >/dev/null || {
  echo "error: libFuzzer is C++: install g++ (Debian: build-essential)" >&2; exit 1; }

# cargo-fuzz's flags: coverage counters, PC table and compare tracing for
# libFuzzer, `cfg(fuzzing)`, and checked arithmetic and debug assertions.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros,
# which would not link with instrumentation but without libFuzzer.
host="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${CARGO_TARGET_DIR:-$root/target}/fuzz"
echo "Building fuzz targets (release, $host) in $target_dir"
build_start=$SECONDS
bin_args=()
for t in "${targets[@]}"; do bin_args+=(--bin "$t"); done
cargo build --manifest-path "$root/fuzz/Cargo.toml" --release \
  --target "$host" --target-dir "$target_dir" "${bin_args[@]}"
echo "Built in $((SECONDS - build_start)) s"

# Outside the repository: the corpus grows from run to run.
cache="${HEADCOUNT_CACHE:-/var/cache/headcount}/fuzz"
failed=0
for t in "${targets[@]}"; do
  bin="$target_dir/$host/release/$t"
  corpus="$cache/corpus/$t"
  artifacts="$cache/artifacts/$t"
  log="$cache/logs/$t.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  # Seed the working corpus with the committed seeds it does not have yet.
  for seed in "$root/fuzz/seeds/$t"/*; do
    if [ -e "$seed" ] && [ ! -e "$corpus/$(basename "$seed")" ]; then cp "$seed" "$corpus/"; fi
  done
  echo "Fuzzing $t for $seconds s: corpus $corpus, artifacts $artifacts, log $log"
  start=$SECONDS
  # A target's dictionary (fuzz/<target>.dict: keywords it may splice in).
  dict=()
  if [ -f "$root/fuzz/$t.dict" ]; then dict=(-dict="$root/fuzz/$t.dict"); fi
  # Targets make temp dirs (a test database) they cannot delete at exit:
  # give them one, emptied after the run.
  scratch="$cache/tmp/$t"
  rm -rf "$scratch" && mkdir -p "$scratch"
  rc=0
  TMPDIR="$scratch" "$bin" -max_total_time="$seconds" -print_final_stats=1 \
    -timeout=10 "${dict[@]}" -artifact_prefix="$artifacts/" "$corpus" \
    >"$log" 2>&1 || rc=$?
  elapsed=$((SECONDS - start))
  rm -rf "$scratch"
  executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  # libFuzzer stops at the first finding and names the file it wrote.
  found="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log")"
  crashes="$(printf '%s' "$found" | grep -c . || true)"
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
  echo "fuzz $t: ${executions:-?} executions in $elapsed s, $crashes crashes"
  if [ "$crashes" -ne 0 ]; then
    failed=1
    tail -n 40 "$log" >&2
    echo "fuzz $t: FAILED (exit $rc); artifacts in $artifacts" >&2
    while read -r artifact; do
      if [ -n "$artifact" ]; then echo "  reproduce: $bin $artifact" >&2; fi
    done <<<"$found"
  fi
done
exit "$failed"
