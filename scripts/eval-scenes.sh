#!/usr/bin/env bash
# Person-detector accuracy beyond vtest: the multi-scene labelled set of
# tests/fixtures/scenes.toml (campus, street film, beach, bar, office, card
# table; media from registry packages, fetched and verified by fetch.py):
# at the default (a still is a camera's first look: the whole view once,
# then surveyed in detail tiles, which the appliance repeats every 40th
# look to learn where people are small), the whole view once alone
# (--no-detail: after learning that people are large everywhere), and with
# 2x2 tiling. Extra arguments go to
# scripts/eval_scenes.py (--json, --threshold T, or headcount analyze
# arguments such as --config FILE).
# Usage: scripts/eval-scenes.sh [ARGS...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
/usr/bin/python3 scripts/fetch.py "$HEADCOUNT_CACHE" --scene-media
echo "== default (the view, then detail tiles over it)"
/usr/bin/python3 scripts/eval_scenes.py "$@"
echo "== the view once (--no-detail)"
/usr/bin/python3 scripts/eval_scenes.py "$@" --no-detail
echo "== the view + 2x2 tiles (--no-detail --tiling)"
/usr/bin/python3 scripts/eval_scenes.py "$@" --no-detail --tiling
