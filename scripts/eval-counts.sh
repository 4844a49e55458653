#!/usr/bin/env bash
# Person-count accuracy on hand-counted vtest.avi frames, with and without
# 2x2 tiling. Usage: scripts/eval-counts.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
for tiling in "" "--tiling"; do
  echo "== full frame${tiling:+ + 2x2 tiles} (analysis width 640)"
  target/release/headcount analyze --input "$HEADCOUNT_MEDIA/vtest.avi" --fps 1 $tiling | python3 scripts/eval_counts.py
done
