#!/usr/bin/env bash
# Fixtures (appliance/domain/src/fixtures.rs), through `headcount analyze`
# at 2 fps, in two views of vtest's blue sign post, which the person model
# finds as a person:
# - evening: vtest.avi's 80 s of people passing, then the same view empty
#   for 11 minutes (the scenarios' median background, still). The sign
#   keeps a track all evening on weak boxes; the tracked count is printed
#   every minute of the evening, and should fall to 0 ten minutes after the
#   last motion near the sign.
# - walkway: vtest.avi nine times over (12 minutes). Someone walks in front
#   of the sign 16 s into every loop, and that motion inside its box ends
#   its stillness each time: a known limit of fixtures (a sign beside a
#   walkway is not learned; an exclusion is the remedy). Printed per loop:
#   the analysed frames at which a tracked box stands on the sign, and the
#   tracker's error on the 27 labelled frames of the first and the last
#   loop.
# Usage: scripts/eval-fixtures.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
# Both videos end in the same H.264 encoder and MPEG-TS muxer.
encode_ts=(x264enc speed-preset=veryfast key-int-max=50 bframes=0 ! h264parse ! mpegtsmux)
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
    ! "${encode_ts[@]}" ! filesink location="$video.part"
  rm -f "$background"
  mv "$video.part" "$video"
fi
echo "== evening"
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

walkway="$HEADCOUNT_CACHE/eval/walkway.ts"
if [ ! -s "$walkway" ]; then
  echo "Making $walkway (vtest nine times over)"
  mkdir -p "$(dirname "$walkway")"
  # Decoded one loop after another into one encoder: a concat element
  # over nine decodebins can stall before its first buffer.
  for _ in $(seq 9); do
    gst-launch-1.0 -q filesrc location="$HEADCOUNT_MEDIA/vtest.avi" ! decodebin ! videoconvert \
      ! video/x-raw,format=I420,width=768,height=576 ! fdsink fd=1
  done | gst-launch-1.0 -q fdsrc fd=0 blocksize=$((768 * 576 * 3 / 2)) \
    ! rawvideoparse width=768 height=576 format=i420 framerate=10/1 \
    ! "${encode_ts[@]}" ! filesink location="$walkway.part"
  mv "$walkway.part" "$walkway"
fi
echo "== walkway"
rows="$(mktemp)"
trap 'rm -f "$rows"' EXIT
target/release/headcount analyze --input "$walkway" --fps 2 --boxes > "$rows"
/usr/bin/python3 - "$rows" <<'PY'
import json, subprocess, sys
LOOP_MS = 79_500  # vtest.avi: 795 frames at 10 fps
SIGN = [0.038, 0.194, 0.0635, 0.245]  # where the model finds the sign post
sys.path.insert(0, "scripts")
from eval_counts import iou
rows = [json.loads(line) for line in open(sys.argv[1]) if "timestamp_ms" in line]
start = rows[0]["timestamp_ms"]
loops = {}
for r in rows:
    loop, at = divmod(r["timestamp_ms"] - start, LOOP_MS)
    r["timestamp_ms"] = at
    loops.setdefault(loop, []).append(r)
print("loop  minutes in  frames  sign tracked")
for loop, looks in sorted(loops.items()):
    on_sign = sum(any(iou(t, SIGN) >= 0.5 for t in r.get("boxes", {}).get("tracked", [])) for r in looks)
    print(f"{loop:4}  {loop * LOOP_MS / 60_000:10.1f}  {len(looks):6}  {on_sign:12}")
for name, loop in (("first", 0), ("last", max(loops))):
    lines = "".join(json.dumps(r) + "\n" for r in loops[loop])
    figures = subprocess.run(["/usr/bin/python3", "scripts/eval_counts.py"], input=lines, text=True,
                             stdout=subprocess.PIPE, check=True).stdout.strip().splitlines()[-1]
    print(f"{name} loop: {figures}")
PY
