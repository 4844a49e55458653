#!/usr/bin/env bash
# Anomaly detection against exact ground truth: per anomaly type, the
# detection rate and the time from onset to event on the tamper videos
# (scripts/tamper_scenarios.py) and the counting scenarios
# (scripts/scenarios.py) through `headcount analyze --config`; false events
# over N minutes of normal vtest through the running appliance, and stream
# loss when its camera server dies; the tamper statistics' cost per frame
# (`headcount-bench tamper`). Prints figures against the targets.
# Usage: scripts/eval-anomalies.sh [--minutes N] [--only TYPE ...] [--json]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
exec /usr/bin/python3 scripts/eval_anomalies.py --scenarios "$HEADCOUNT_SCENARIOS" --tamper "$HEADCOUNT_TAMPER" \
  --media "$HEADCOUNT_MEDIA" --headcount target/release/headcount "$@"
