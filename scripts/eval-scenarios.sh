#!/usr/bin/env bash
# Counting accuracy on the scenario videos (scripts/scenarios.py: real vtest
# people composited along scripted paths, exact ground truth): line crossings
# per direction, zone occupancy over time and dwell, through
# `headcount analyze --config`. Prints figures against the targets.
# Usage: scripts/eval-scenarios.sh [--only NAME ...] [--json]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
exec /usr/bin/python3 scripts/eval_scenarios.py --dir "$HEADCOUNT_SCENARIOS" \
  --headcount target/release/headcount "$@"
