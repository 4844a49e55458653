#!/usr/bin/env bash
# Sets everything up (idempotent) and runs the appliance on the bundled demo
# camera: a real RTSP server on 127.0.0.1:8554 serving vtest.avi (people on a
# campus path) as H.264, and the API on 127.0.0.1:8080. Ctrl-C stops both.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"

state="${HEADCOUNT_DEMO_STATE:-$HEADCOUNT_CACHE/demo-state}"
bin="$repo/target/release/headcount"
"$bin" camera --file "$HEADCOUNT_MEDIA/vtest.ts" --port 8554 --mount /vtest &
camera_pid=$!
trap 'kill $camera_pid 2>/dev/null || true' EXIT
echo
echo "Demo running. Dashboard: http://127.0.0.1:8080/ (log in with the admin token)."
echo "Every API route but /livez and the dashboard's files needs a token; the first"
echo "start prints the admin token and keeps it in $state/initial-admin-token."
echo "In another terminal:"
echo "  H=\"Authorization: Bearer \$(cat $state/initial-admin-token)\""
echo "  curl -s -H \"\$H\" http://127.0.0.1:8080/api/v1/occupancy"
echo "  curl -s -H \"\$H\" http://127.0.0.1:8080/api/v1/health"
echo "  curl -s -H \"\$H\" 'http://127.0.0.1:8080/api/v1/occupancy/history?zone=campus.path&bucket=5m'"
echo "  curl -s -H \"\$H\" 'http://127.0.0.1:8080/api/v1/flow?line=campus.midway&bucket=1m'"
echo "  curl -s -H \"\$H\" 'http://127.0.0.1:8080/api/v1/dwell?zone=campus.path&bucket=15m'"
echo
# The dashboard's editor saves zones and lines into the config it runs
# with: a copy in the state directory, so the checkout stays as committed.
# A newer config/demo.toml replaces the copy.
config="$state/demo.toml"
mkdir -p "$state"
if [ ! -f "$config" ] || [ "$repo/config/demo.toml" -nt "$config" ]; then
  sed "s#^models_dir = .*#models_dir = \"$repo/models\"#" "$repo/config/demo.toml" > "$config"
fi
"$bin" run --config "$config" --state-dir "$state"
