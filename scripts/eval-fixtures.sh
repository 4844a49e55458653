#!/usr/bin/env bash
# Fixtures (appliance/domain/src/fixtures.rs): vtest.avi's 80 s of people
# passing, then the same view empty for 11 minutes (the scenarios' median
# background, still), through `headcount analyze` at 2 fps. vtest's blue
# sign post is found as a person by day and keeps a track all evening on
# weak boxes; the tracked count is printed every minute of the evening,
# and should fall to 0 ten minutes after the last motion near the sign.
# Usage: scripts/eval-fixtures.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
video="$HEADCOUNT_CACHE/eval/evening.ts"
if [ ! -s "$video" ]; then
  echo "Making $video (vtest at 5 fps, then 11 minutes of its empty view)"
  mkdir -p "$(dirname "$video")"
  frame=$((768 * 576 * 3))
  background="$HEADCOUNT_CACHE/eval/background.rgb"
  gst-launch-1.0 -q filesrc location="$HEADCOUNT_SCENARIOS/crossing_both_ways.ts" ! tsdemux ! h264parse \
    ! avdec_h264 ! videoconvert ! video/x-raw,format=RGB,width=768,height=576 ! fdsink fd=1 \
    | head -c "$frame" > "$background" || true # the decoder's SIGPIPE once head has its frame
  [ "$(stat -c %s "$background")" = "$frame" ] || { echo "error: no background frame" >&2; exit 1; }
  {
    gst-launch-1.0 -q filesrc location="$HEADCOUNT_MEDIA/vtest.avi" ! decodebin ! videoconvert ! videorate \
      ! video/x-raw,format=RGB,framerate=5/1 ! fdsink fd=1
    for _ in $(seq 3300); do cat "$background"; done
  } | gst-launch-1.0 -q fdsrc fd=0 blocksize="$frame" \
    ! rawvideoparse width=768 height=576 format=rgb framerate=5/1 ! videoconvert ! video/x-raw,format=I420 \
    ! x264enc speed-preset=veryfast key-int-max=50 bframes=0 ! h264parse ! mpegtsmux \
    ! filesink location="$video.part"
  rm -f "$background"
  mv "$video.part" "$video"
fi
target/release/headcount analyze --input "$video" --fps 2 | /usr/bin/python3 -c '
import json, sys
rows = [json.loads(line) for line in sys.stdin if "timestamp_ms" in line]
evening = [r for r in rows if r["timestamp_ms"] >= 80_000]
print("evening minute  tracked (what zones count), min-max")
for minute in range(11):
    counts = [r["tracked"] for r in evening if minute * 60_000 <= r["timestamp_ms"] - 80_000 < (minute + 1) * 60_000]
    if counts:
        print(f"{minute:14}  {min(counts)}-{max(counts)}")
'
