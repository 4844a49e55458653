#!/usr/bin/env bash
# One idempotent setup for the demo, the tests and the bench, on Debian 12:
# Debian packages, then (via fetch.py) ONNX Runtime, the models and the test
# media, all verified by sha256 and cached outside the repository, then the
# demo camera's H.264 stream, the scenario and tamper videos, then a release
# build.
#
# Usage: scripts/setup.sh        (sourced by demo.sh, test.sh and bench.sh)
# Env:   HEADCOUNT_CACHE (default /var/cache/headcount)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HEADCOUNT_CACHE="${HEADCOUNT_CACHE:-/var/cache/headcount}"
export ORT_DYLIB_PATH="$HEADCOUNT_CACHE/onnxruntime/libonnxruntime.so.1.31.1"
export HEADCOUNT_MEDIA="$HEADCOUNT_CACHE/media"
export HEADCOUNT_SCENARIOS="$HEADCOUNT_CACHE/scenarios"
export HEADCOUNT_TAMPER="$HEADCOUNT_CACHE/tamper"

packages=(
  pkg-config build-essential python3 python3-pip python3-numpy python3-scipy curl tzdata
  # systemd-analyze checks the hardened unit (scripts/check-unit.sh)
  systemd
  # the TLS test reads the device's certificate with openssl x509
  openssl
  # a real MQTT broker and client for the fleet tests; wrk for the API bench
  mosquitto mosquitto-clients wrk
  # JSON Schema validation of published payloads (docs/schemas, tests/e2e/check_json.py)
  python3-jsonschema
  # a real Modbus client for the building automation test (tests/e2e/modbus_client.py)
  python3-pymodbus python3-serial-asyncio
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-rtsp
)
# Installs those of the given Debian packages that are missing (also used
# by the scripts that source this one).
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing Debian packages: ${missing[*]}"
  local sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
ensure_packages "${packages[@]}"
command -v cargo >/dev/null || { echo "error: Rust (cargo) is needed: install it with rustup" >&2; exit 1; }

# The dashboard's browser test (tests/dashboard.rs): Debian's Chromium
# (/usr/bin/chromium), driven by playwright-core, pinned in
# tests/e2e/package-lock.json; no browser is ever downloaded. Node.js comes
# from Debian unless one is installed already (playwright-core 1.61 runs on
# Debian 12's Node 18 and later).
ensure_packages chromium
command -v node >/dev/null || ensure_packages nodejs npm
e2e="$repo/tests/e2e"
lock_sum="$(sha256sum "$e2e/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$e2e/node_modules/.package-lock.sha256" 2>/dev/null)" != "$lock_sum" ]; then
  echo "Installing the browser test's packages (npm ci in tests/e2e)"
  (cd "$e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" >"$e2e/node_modules/.package-lock.sha256"
fi

mkdir -p "$HEADCOUNT_CACHE"
python3 "$repo/scripts/fetch.py" "$HEADCOUNT_CACHE"
python3 "$repo/scripts/fetch.py" "$HEADCOUNT_CACHE" --redaction-media

# The demo camera serves vtest as H.264 in MPEG-TS, one keyframe a second
# (10 frames) so that a client that joins or reconnects decodes at once.
transcode() { # SOURCE TARGET CAPS KEYINT
  [ -s "$2" ] && return 0
  echo "Transcoding $(basename "$1") -> $(basename "$2")"
  gst-launch-1.0 -q filesrc location="$1" ! decodebin ! videoconvert ! videoscale ! videorate ! "$3" \
    ! x264enc speed-preset=veryfast key-int-max="$4" bframes=0 ! h264parse ! mpegtsmux ! filesink location="$2.part"
  mv "$2.part" "$2"
}
transcode "$HEADCOUNT_MEDIA/vtest.avi" "$HEADCOUNT_MEDIA/vtest.ts" "video/x-raw,format=I420" 10
# A camera with a large face, for the privacy egress tests.
transcode "$HEADCOUNT_MEDIA/faces/carphone_pristine.mp4" "$HEADCOUNT_MEDIA/faces/carphone.ts" "video/x-raw,format=I420" 15

# Scenario videos with exact ground truth (crossings, occupancy, dwell), made
# from vtest; regenerated only when scripts/scenarios.py changes.
/usr/bin/python3 "$repo/scripts/scenarios.py" --media "$HEADCOUNT_MEDIA" --out "$HEADCOUNT_SCENARIOS"
# Camera tamper videos (covered, blurred, moved, frozen: real GStreamer
# filters over vtest) for the anomaly tests; likewise only when
# scripts/tamper_scenarios.py changes.
/usr/bin/python3 "$repo/scripts/tamper_scenarios.py" --media "$HEADCOUNT_MEDIA" --out "$HEADCOUNT_TAMPER"

cd "$repo"
cargo build --release --quiet
echo "Setup done: $repo/target/release/headcount"
