#!/usr/bin/env bash
# Sets everything up, makes a 1080p25 H.264 version of vtest (cached), and
# runs `headcount-bench streams`: per-stage cost, then live 1080p25 RTSP streams at
# 2 analysed fps added one by one until the machine no longer keeps up.
# Extra arguments go to `headcount-bench streams` (e.g. --max-streams 12 --seconds 30).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
transcode "$HEADCOUNT_MEDIA/vtest.avi" "$HEADCOUNT_MEDIA/vtest-1080p25.ts" \
  "video/x-raw,format=I420,width=1920,height=1080,pixel-aspect-ratio=1/1,framerate=25/1" 25
cd "$repo"
exec target/release/headcount-bench streams --video "$HEADCOUNT_MEDIA/vtest-1080p25.ts" \
  --stage-video "$HEADCOUNT_MEDIA/vtest.avi" --models-dir models "$@"
