#!/bin/sh
# Checks systemd/headcount.service with systemd-analyze (Debian 12, systemd 252):
# `verify` must print nothing about the unit, and the offline security
# exposure must be <= 1.5. Both run on a copy of the unit whose
# /usr/bin/headcount is replaced by $1 (default /bin/true), because verify
# requires the ExecStart= binaries to exist.
#   scripts/check-unit.sh [BINARY]
set -eu

bin=${1:-/bin/true}
max=1.5
unit_src="$(cd "$(dirname "$0")/.." && pwd)/systemd/headcount.service"
[ -x "$bin" ] || { echo "check-unit: $bin is not an executable" >&2; exit 2; }
[ -f "$unit_src" ] || { echo "check-unit: $unit_src is missing" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unit="$tmp/headcount.service"
sed "s#/usr/bin/headcount#$bin#g" "$unit_src" >"$unit"

status=0

# verify: any line naming the unit (or a non-zero exit) fails the check.
rc=0
systemd-analyze verify "$unit" >"$tmp/verify.out" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] || grep -q 'headcount\.service' "$tmp/verify.out"; then
    echo "check-unit: systemd-analyze verify failed (exit $rc):" >&2
    cat "$tmp/verify.out" >&2
    status=1
elif [ -s "$tmp/verify.out" ]; then
    echo "check-unit: verify passed; output about other units:" >&2
    cat "$tmp/verify.out" >&2
fi

# security: the overall exposure, e.g. "→ Overall exposure level for headcount.service: 1.0 OK".
systemd-analyze security --offline=true "$unit" >"$tmp/security.out" 2>&1 || true
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: *\([0-9][0-9.]*\).*/\1/p' "$tmp/security.out")
if [ -z "$exposure" ]; then
    echo "check-unit: no exposure level in systemd-analyze security output:" >&2
    cat "$tmp/security.out" >&2
    exit 1
fi
echo "exposure: $exposure (max $max)"
if awk -v e="$exposure" -v m="$max" 'BEGIN { exit !(e > m) }'; then
    echo "check-unit: exposure $exposure is above $max; findings:" >&2
    grep '✗' "$tmp/security.out" >&2 || true
    status=1
fi

exit $status
