#!/usr/bin/env bash
# The API under hostile load, on loopback (scripts/hostile.py, standard
# library only): the admin's GET /api/v1/occupancy without an attack, then
# while 2,000 idle connections, 200 slow-body logins and a 256-client login
# storm come from other loopback addresses; answered share and p50/p99 of
# each, and what became of the attack. Sets everything up first.
# Extra arguments go to hostile.py (e.g. --seconds 60 --keep).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
exec python3 "$repo/scripts/hostile.py" --binary "${CARGO_TARGET_DIR:-$repo/target}/release/headcount" "$@"
