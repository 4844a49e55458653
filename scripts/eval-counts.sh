#!/usr/bin/env bash
# Person-count accuracy on the hand-labelled vtest.avi frames
# (tests/fixtures/vtest_person_labels.toml): the tracker's count (what zones
# count) and the detector's alone, with recall and false positives; at 5
# analysed fps, at the default (motion gate, learned detail tiles where
# people are small), then the earlier default (the whole frame once, every
# frame) and 2x2 tiling, for reference. Frames the gate coasted count with
# the boxes they coasted on, as the appliance counts them. Extra arguments go
# to scripts/eval_counts.py (--list names each tracked box no person matches
# and each person not tracked).
# Usage: scripts/eval-counts.sh [--list]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
extra=("$@")
run() { # TITLE ARGS...
  local title="$1"; shift
  echo "== $title (analysis width 640, 5 fps)"
  local start=$SECONDS
  target/release/headcount analyze --input "$HEADCOUNT_MEDIA/vtest.avi" --fps 5 --boxes "$@" \
    | tee >(/usr/bin/python3 -c 'import json,sys
rows=[json.loads(l) for l in sys.stdin if "timestamp_ms" in l]
looked=sum(1 for r in rows if not r.get("coasted"))
print("person model ran on", looked, "of", len(rows), "frames")' >&2) \
    | /usr/bin/python3 scripts/eval_counts.py "${extra[@]}"
  echo "($((SECONDS - start)) s)"
}
run "default: motion gate, learned detail"
run "whole frame, every frame (the earlier default)" --every-frame --no-detail
run "whole frame + 2x2 tiles, every frame" --every-frame --no-detail --tiling
