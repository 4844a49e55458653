#!/usr/bin/env bash
# The API under load: a real appliance on loopback (one test-source camera),
# read by wrk, in the same run:
#  1. GET /livez: no token, no audit: the server's ceiling on this machine;
#  2. GET /api/v1/occupancy with a facilities token: every request
#     authenticated (token read from SQLite through the reader pool, HMAC
#     compared in constant time, role), answered from the live board in
#     memory, and audited: the first identical read of each minute written
#     durably before it is answered, its repeats counted in memory and
#     written as one entry when the minute ends (docs/privacy.md).
# Then the audit entries wrk's reads left.
# Env: WRK_SECONDS (default 15), WRK_CONNECTIONS (default 64), WRK_THREADS (default 2).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ -n "${HEADCOUNT_SKIP_SETUP:-}" ] || source "$repo/scripts/setup.sh"
cd "$repo"
bin="$repo/target/release/headcount"
work="$(mktemp -d)"
appliance=""
cleanup() { [ -n "$appliance" ] && kill "$appliance" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$work/headcount.toml" <<TOML
[appliance]
site = "bench"
state_dir = "$work/state"
models_dir = "$repo/models"
[api]
bind = "127.0.0.1:$port"
token_burst = 1000000       # one wrk token, far past a person's rate limit
token_rate = 100000.0
[api.connections]
max = 256
per_client = 256
[security]
syslog = "none"
[cameras.cam0]
url = "testsrc:ball"
analysis_fps = 0.5
[cameras.cam0.zones.hall]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
TOML
"$bin" run --config "$work/headcount.toml" >"$work/appliance.log" 2>&1 &
appliance=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/livez" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$port/livez" >/dev/null || { echo "error: the appliance did not start:" >&2; tail -20 "$work/appliance.log" >&2; exit 1; }
token="$("$bin" tokens create --name wrk --role facilities --state-dir "$work/state" | grep -o 'hc_[0-9a-f_]*' | head -1)"
load() { wrk -t"${WRK_THREADS:-2}" -c"${WRK_CONNECTIONS:-64}" -d"${WRK_SECONDS:-15}s" --latency "$@"; }
echo "== 1. GET /livez (no token, no audit): the ceiling"
load "http://127.0.0.1:$port/livez"
echo "== 2. GET /api/v1/occupancy (facilities token, audited)"
load -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/occupancy"
sleep 61 # the minute's repeats are written when it ends
python3 - "$work/state/headcount.db" <<'PY'
import sqlite3, sys
import json
details = [json.loads(d) for (d,) in sqlite3.connect(sys.argv[1]).execute(
    "SELECT detail FROM audit_log WHERE target = 'GET /api/v1/occupancy'")]
reads = sum(d.get("count", 1) for d in details)
print(f"audit log: {len(details)} entries for GET /api/v1/occupancy (first reads, and the counts of their repeats: {reads} reads)")
PY
