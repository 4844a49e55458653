#!/usr/bin/env bash
# Sets everything up, makes the bench's streams from vtest and the scenario
# videos (cached), and runs `headcount-bench streams`: per-stage cost, then
# live RTSP cameras at 2 analysed fps added step by step until the machine
# no longer keeps up, against the decode-only ceiling measured in the same run.
#
# Usage: scripts/bench.sh [1080p|substream|mixed] [extra arguments]
#   1080p      (default) 1080p25 H.264 of vtest: busy cameras
#   substream  640x360 at 25 fps: the second stream most cameras offer
#   mixed      a building: cameras in turn busy (vtest), quiet (a scenario
#              with a few passers-by) and empty (a still empty view)
# Extra arguments go to `headcount-bench streams` (e.g. --from-streams 8 --step 2).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
hd="video/x-raw,format=I420,width=1920,height=1080,pixel-aspect-ratio=1/1,framerate=25/1"
transcode "$HEADCOUNT_MEDIA/vtest.avi" "$HEADCOUNT_MEDIA/vtest-1080p25.ts" "$hd" 25
transcode "$HEADCOUNT_MEDIA/vtest.avi" "$HEADCOUNT_MEDIA/vtest-360p25.ts" \
  "video/x-raw,format=I420,width=640,height=360,pixel-aspect-ratio=1/1,framerate=25/1" 25
transcode "$HEADCOUNT_SCENARIOS/crossing_both_ways.ts" "$HEADCOUNT_MEDIA/quiet-1080p25.ts" "$hd" 25
empty="$HEADCOUNT_MEDIA/empty-1080p25.ts"
if [ ! -s "$empty" ]; then
  echo "Making an empty view (the scenario's background, still, 20 s)"
  gst-launch-1.0 -q filesrc location="$HEADCOUNT_SCENARIOS/crossing_both_ways.ts" ! tsdemux ! h264parse \
    ! avdec_h264 ! videoconvert ! videoscale ! "video/x-raw,format=I420,width=1920,height=1080,pixel-aspect-ratio=1/1" \
    ! imagefreeze num-buffers=500 ! "video/x-raw,framerate=25/1" \
    ! x264enc speed-preset=veryfast key-int-max=25 bframes=0 ! h264parse ! mpegtsmux ! filesink location="$empty.part"
  mv "$empty.part" "$empty"
fi
cd "$repo"
kind="${1:-1080p}"
case "$kind" in
  1080p) video=("$HEADCOUNT_MEDIA/vtest-1080p25.ts"); shift || true ;;
  substream) video=("$HEADCOUNT_MEDIA/vtest-360p25.ts"); shift ;;
  mixed) video=("$HEADCOUNT_MEDIA/vtest-1080p25.ts" --mixed "$HEADCOUNT_MEDIA/quiet-1080p25.ts" "$empty"); shift ;;
  -*) video=("$HEADCOUNT_MEDIA/vtest-1080p25.ts") ;;
  *) echo "error: unknown bench '$kind' (1080p, substream or mixed)" >&2; exit 2 ;;
esac
exec target/release/headcount-bench streams --video "${video[@]}" \
  --stage-video "$HEADCOUNT_MEDIA/vtest.avi" --models-dir models "$@"
