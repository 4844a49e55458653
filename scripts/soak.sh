#!/usr/bin/env bash
# Faults over days, compressed (scripts/soak.py): four cameras, two on the
# bundled RTSP server (TCP, UDP) and two on VLC (UDP; auto, as VLC offers no TCP), killed and
# frozen in turn; between them the disk filled, the state directory made
# read-only, the appliance's clock stepped 3 h back and forward (fault
# injection, never the machine's clock), SIGKILL during start-up
# maintenance, the broker and webhook receiver down. Prints per fault:
# recoveries, time to recover, counts lost; RSS, open files and CPU.
# Not part of the test command. Run as root: the state directory is a small
# ext4 on a loop device (filled, and made immutable with chattr).
#   scripts/soak.sh                   # 10 minutes
#   scripts/soak.sh --minutes 60      # the hour-long soak
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
# VLC: the RTSP server not written by this project (runs as nobody).
ensure_packages vlc-bin vlc-plugin-base e2fsprogs
exec python3 "$repo/scripts/soak.py" --binary "${CARGO_TARGET_DIR:-$repo/target}/release/headcount" \
  --media "$HEADCOUNT_MEDIA/vtest.ts" "$@"
