#!/usr/bin/env bash
# Writes tests/fixtures/upgrade/schema-N/: the state an appliance of this
# version leaves after counting the demo camera for a few minutes (its
# database as SQL text, its keys, two tokens' secrets), for the upgrade
# test (tests/integration/operate.rs) of every later version. Run it once
# per released schema, before the release that changes the schema, and
# commit the folder: it is test data, its keys guard nothing.
#
# Usage: scripts/make-upgrade-fixture.sh [SECONDS]   (default 150)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
bin="$repo/target/release/headcount"
seconds="${1:-150}"

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rtsp="$(free_port)"; api="$(free_port)"

# The example's shapes: a zone, an entrance line and the space it bounds.
cat > "$work/headcount.toml" <<EOF
[appliance]
site = "upgrade-fixture"
state_dir = "$work/state"
models_dir = "$repo/models"
[api]
bind = "127.0.0.1:$api"
[security]
syslog = "none"
[analytics]
flush_secs = 5
[cameras.door]
url = "rtsp://127.0.0.1:$rtsp/vtest"
[cameras.door.zones.path]
polygon = [[0.0, 0.33], [0.45, 0.30], [0.75, 0.17], [1.0, 0.17], [1.0, 0.86], [0.55, 0.62], [0.30, 0.50], [0.0, 0.45]]
[cameras.door.lines.entrance]
points = [[0.5, 0.2], [0.5, 0.9]]
in = "left"
[spaces.hall]
zones = ["door.path"]
entrances = ["door.entrance"]
capacity = 40
EOF
"$bin" check-config "$work/headcount.toml" >/dev/null

"$bin" camera --port "$rtsp" --mount /vtest --file "$HEADCOUNT_MEDIA/vtest.ts" >/dev/null &
pids+=($!)
"$bin" run --config "$work/headcount.toml" 2>"$work/run.log" &
appliance=$!
pids+=($appliance)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api/livez" >/dev/null && break; sleep 0.2; done
facilities="$("$bin" tokens create --name facilities-desk --role facilities --state-dir "$work/state" | grep -o 'hc_[0-9A-Za-z_]*')"
planner="$("$bin" tokens create --name city-planning --role planner --state-dir "$work/state" | grep -o 'hc_[0-9A-Za-z_]*')"
echo "counting the demo camera for $seconds s"
for _ in $(seq $((seconds / 10))); do
  sleep 10
  curl -sf -H "Authorization: Bearer $facilities" "http://127.0.0.1:$api/api/v1/occupancy" >/dev/null
  curl -sf -H "Authorization: Bearer $planner" "http://127.0.0.1:$api/api/v1/whoami" >/dev/null
done
kill -TERM "$appliance"
wait "$appliance" || true

version="$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA user_version").fetchone()[0])' "$work/state/headcount.db")"
out="$repo/tests/fixtures/upgrade/schema-$version"
rm -rf "$out"
mkdir -p "$out"
# The database as text (reviewable, and free of SQLite's page layout);
# user_version is not part of a dump, so it closes the file.
python3 - "$work/state/headcount.db" "$out/headcount.sql" "$version" <<'EOF'
import sqlite3, sys
db, out, version = sys.argv[1:]
with open(out, "w") as f:
    for line in sqlite3.connect(db).iterdump():
        f.write(line + "\n")
    f.write(f"PRAGMA user_version = {version};\n")
EOF
for file in "$work"/state/*; do
  case "$(basename "$file")" in
    headcount.db*|run.lock|gstreamer-registry.bin|initial-admin-token) ;;
    *) cp "$file" "$out/" ;;
  esac
done
cat > "$out/fixture.toml" <<EOF
# Made by scripts/make-upgrade-fixture.sh; test data, not secrets.
made_by = "headcount $("$bin" --version | awk '{print $2}')"
made_at_ms = $(date +%s%3N)
schema_version = $version
[tokens]
facilities-desk = "$facilities"
city-planning = "$planner"
EOF
echo "wrote $out:"
ls -l "$out"
