#!/usr/bin/env bash
# Person-count accuracy on the hand-labelled vtest.avi frames
# (tests/fixtures/vtest_person_labels.toml): the tracker's count (what zones
# count) and the detector's alone, with recall and false positives; at 5
# analysed fps, on the full frame and with 2x2 tiling.
# Usage: scripts/eval-counts.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
for tiling in "" "--tiling"; do
  echo "== full frame${tiling:+ + 2x2 tiles} (analysis width 640, 5 fps)"
  target/release/headcount analyze --input "$HEADCOUNT_MEDIA/vtest.avi" --fps 5 --boxes $tiling \
    | /usr/bin/python3 scripts/eval_counts.py
done
