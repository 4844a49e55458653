#!/usr/bin/env bash
# Data-governance figures. Sets everything up, then:
#  1. `headcount-bench governance`: suppression and Laplace noise on a
#     generated month, rollup and retention-sweep time on a generated year of
#     1-minute buckets for 50 zones;
#  2. the aggregates endpoint under load: a generated month in a real
#     appliance on loopback, read by wrk with a planner token (every request
#     authenticated, answered from SQLite and written durably to the audit
#     log before it is answered);
#  3. backup, restore and upgrade of a generated year of minute buckets for
#     50 zones (`headcount backup` and `restore` as an admin runs them; the
#     upgrade is the first open by this binary of the same database one
#     schema step back, migration 0009's indexes dropped).
# Extra arguments go to `headcount-bench governance` (e.g. --days 30).
# Env: WRK_SECONDS (default 15), WRK_CONNECTIONS (default 16).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
bin="$repo/target/release/headcount"
bench="$repo/target/release/headcount-bench"

echo "== bench-governance"
"$bench" governance "$@"

echo "== aggregates endpoint under load (wrk)"
work="$(mktemp -d)"
appliance=""
cleanup() { [ -n "$appliance" ] && kill "$appliance" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$work/headcount.toml" <<EOF
[appliance]
site = "bench"
state_dir = "$work/state"
models_dir = "$repo/models"
[api]
bind = "127.0.0.1:$port"
token_burst = 1000000       # one wrk token, far past a person's rate limit
token_rate = 100000.0
[security]
syslog = "none"
[cameras.cam0]
url = "testsrc:ball"
analysis_fps = 0.5
[cameras.cam0.lines.door0]
points = [[0.1, 0.5], [0.3, 0.5]]
in = "left"
[cameras.cam0.lines.door1]
points = [[0.4, 0.5], [0.6, 0.5]]
in = "left"
[cameras.cam0.lines.door2]
points = [[0.7, 0.5], [0.9, 0.5]]
in = "left"
[spaces.space0]
entrances = ["cam0.door0", "cam0.door1", "cam0.door2"]
EOF
"$bench" governance --spaces 1 --entrances 3 --seed "$work/state/headcount.db"
"$bin" run --config "$work/headcount.toml" >"$work/appliance.log" 2>&1 &
appliance=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/livez" >/dev/null && break; sleep 0.2; done
token="$("$bin" tokens create --name wrk --role planner --state-dir "$work/state" | grep -o 'hc_[0-9a-f_]*' | head -1)"
from="$(date -u -d '-8 days' +%Y-%m-%dT00:00:00Z)"
to="$(date -u -d '-1 days' +%Y-%m-%dT00:00:00Z)"
url="http://127.0.0.1:$port/api/v1/aggregates?space=space0&bucket=1h&from=$from&to=$to"
curl -sf -H "Authorization: Bearer $token" "$url" | python3 -c '
import json, sys
buckets = json.load(sys.stdin)["buckets"]
withheld = sum(1 for b in buckets if b["withheld"])
print("one response:", len(buckets), "hourly buckets,", withheld, "with withheld cells")'
wrk -t2 -c"${WRK_CONNECTIONS:-16}" -d"${WRK_SECONDS:-15}s" --latency -H "Authorization: Bearer $token" "$url"
audited="$(curl -sf -H "Authorization: Bearer $token" "$url" >/dev/null; python3 - "$work/state/headcount.db" <<'PY'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM audit_log WHERE target = 'GET /api/v1/aggregates'").fetchone()[0])
PY
)"
echo "audit log: $audited entries for GET /api/v1/aggregates (wrk repeats one read: the first of each minute, then one entry with the count of its repeats)"

echo "== backup, restore and upgrade of a year x 50 zones"
ops="$work/operate"
mkdir -p "$ops/state"
"$bench" governance --year-db "$ops/state/headcount.db"
echo "database: $(du -m "$ops/state/headcount.db" | cut -f1) MB"
passphrase="a passphrase for the bench only"
echo "$passphrase" | "$bin" backup --state-dir "$ops/state" --out "$ops/year.hcbackup"
echo "$passphrase" | "$bin" restore --in "$ops/year.hcbackup" --state-dir "$ops/restored"
rm -rf "$ops/restored" "$ops/year.hcbackup"
python3 - "$ops/state/headcount.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '%_time'").fetchall():
    db.execute(f"DROP INDEX {name}")
db.execute("PRAGMA user_version = 8")
db.commit()
PY
began="$(date +%s.%N)"
"$bin" tokens list --state-dir "$ops/state" >/dev/null
echo "upgrade: schema 8 -> $(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA user_version").fetchone()[0])' "$ops/state/headcount.db") on the first open by this binary in $(python3 -c "import sys,time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$began") s (migration 0009 indexes the year's buckets)"
