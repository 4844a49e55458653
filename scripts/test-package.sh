#!/usr/bin/env bash
# The Debian package as a site gets it, in a clean Debian 12 root (a
# chroot; systemd does not run there): builds it (scripts/package.sh),
# installs it with `apt-get install ./headcount_*.deb`, checks what it
# installed (owners, modes, no set-id bit, nothing writable by others),
# runs `systemd-analyze verify` and the exposure check on the installed
# unit, starts the installed binary as the unit would (a user of its own,
# the unit's environment, its config and state paths) on the demo camera
# served by the installed binary too, reads /api/v1/occupancy with the
# first admin token, checks that a second start on the taken port fails
# clearly and writes nothing, then removes the package (the state stays)
# and purges it (the state goes). Prints the package's size and the time
# from `apt-get install` to the first count.
#
# The clean root (debootstrap --variant=minbase bookworm) is made once and
# cached as a tarball in $HEADCOUNT_CACHE/debroot, with the .debs apt
# fetches for it. Needs root (chroot, mount).
#
# Usage: scripts/test-package.sh      (called by scripts/test.sh)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ "$(id -u)" -eq 0 ] || exec sudo --preserve-env=HEADCOUNT_CACHE "$0" "$@"
rm -f "$repo"/target/debian/headcount_*.deb
"$repo/scripts/package.sh"
source "$repo/scripts/setup.sh" >/dev/null
ensure_packages debootstrap
deb="$(ls "$repo"/target/debian/headcount_*.deb)"

cache="$HEADCOUNT_CACHE/debroot"
base="$cache/bookworm-minbase.tar"
mkdir -p "$cache/archives/partial"
if [ ! -s "$base" ]; then
  echo "making a clean Debian 12 root (once; cached in $base)"
  fresh="$(mktemp -d)"
  debootstrap --variant=minbase bookworm "$fresh/root" http://deb.debian.org/debian >"$fresh/log" 2>&1 ||
    { tail -20 "$fresh/log" >&2; exit 1; }
  tar -C "$fresh/root" -cf "$base.partial" . && mv "$base.partial" "$base"
  rm -rf "$fresh"
fi

work="$(mktemp -d)"
root="$work/root"
pids=()
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for mount in "$root/var/cache/apt/archives" "$root/proc"; do
    mountpoint -q "$mount" && umount -l "$mount"
  done
  # Only once nothing is mounted inside: never through a mount into the cache.
  if ! grep -q " $root/" /proc/mounts; then rm -rf --one-file-system "$work"; fi
}
trap cleanup EXIT
mkdir -p "$root"
tar -C "$root" -xf "$base"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount --bind "$cache/archives" "$root/var/cache/apt/archives"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

cp "$deb" "$root/tmp/"
started=$SECONDS
in_root apt-get update -qq
if ! in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "/tmp/$(basename "$deb")" >"$work/install.log" 2>&1; then
  tail -30 "$work/install.log" >&2
  fail "apt-get install ./$(basename "$deb") failed"
fi
grep -q "headcount is installed but not started" "$work/install.log" || fail "postinst printed no next steps"
echo "installed in $((SECONDS - started)) s"

# What the package installed: root's, no set-id bit, nothing others may write.
in_root dpkg -L headcount >"$work/files"
while read -r path; do
  # (links such as merged-/usr's /lib are the base system's, not ours)
  [ -e "$root$path" ] && [ ! -L "$root$path" ] || continue
  stat -c '%U:%G %a %n' "$root$path"
done <"$work/files" | sed "s#$root##" >"$work/modes"
awk '$1 != "root:root" { print "not root'"'"'s: " $0; bad = 1 } END { exit bad }' "$work/modes" || fail "files not owned by root"
awk '{ m = substr($2, length($2) - 2); if ($2 ~ /^[2467][0-7][0-7][0-7]$/ || substr(m, 3, 1) ~ /[2367]/) { print; bad = 1 } } END { exit bad }' "$work/modes" ||
  fail "a set-id bit or a file writable by others"
for expect in "755 /usr/bin/headcount" "644 /etc/headcount/headcount.toml" "644 /lib/systemd/system/headcount.service" \
              "644 /usr/share/headcount/models/manifest.toml.sig" "644 /usr/share/doc/headcount/copyright" \
              "644 /usr/share/doc/headcount/sbom.cdx.json"; do
  grep -q "^root:root $expect\$" "$work/modes" || fail "expected root:root $expect"
done
for model in $(sed -n 's/^file = "\(.*\)"/\1/p' "$root/usr/share/headcount/models/manifest.toml"); do
  grep -q "^root:root 644 /usr/share/headcount/models/$model\$" "$work/modes" || fail "model $model is not installed 0644"
done
[ -f "$root/usr/lib/headcount/$(basename "$ORT_DYLIB_PATH")" ] || fail "ONNX Runtime is not in /usr/lib/headcount"
grep -q '^/etc/headcount/headcount.toml$' "$root/var/lib/dpkg/info/headcount.conffiles" || fail "the config is not a conffile"
! ls "$root"/var/lib/headcount "$root"/var/lib/private/headcount >/dev/null 2>&1 || fail "the package made a state directory (the first start makes it)"
in_root headcount models verify --models-dir /usr/share/headcount/models >/dev/null || fail "the installed models do not verify"

# The installed unit, as systemd would read it.
unit="$root/lib/systemd/system/headcount.service"
if systemd-analyze verify --root="$root" headcount.service >"$work/verify" 2>&1 && ! grep -q 'headcount\.service' "$work/verify"; then
  echo "systemd-analyze verify: clean"
else
  cat "$work/verify" >&2; fail "systemd-analyze verify on the installed unit"
fi
systemd-analyze security --offline=true --root="$root" headcount.service >"$work/security" 2>&1 || true
exposure="$(sed -n 's/.*Overall exposure level for [^:]*: *\([0-9][0-9.]*\).*/\1/p' "$work/security")"
[ -n "$exposure" ] || { cat "$work/security" >&2; fail "no exposure level"; }
awk -v e="$exposure" 'BEGIN { exit !(e <= 1.5) }' || fail "exposure $exposure is above 1.5"
echo "installed unit: exposure $exposure"

# The admin's edit: the demo camera, served by the installed binary.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rtsp="$(free_port)"; api="$(free_port)"
cp "$HEADCOUNT_MEDIA/vtest.ts" "$root/tmp/vtest.ts"
in_root headcount camera --port "$rtsp" --mount /vtest --file /tmp/vtest.ts >/dev/null 2>&1 &
pids+=($!)
sed -i "s#^bind = \"127.0.0.1:8080\"#bind = \"127.0.0.1:$api\"#" "$root/etc/headcount/headcount.toml"
cat >>"$root/etc/headcount/headcount.toml" <<EOF

[cameras.demo]
url = "rtsp://127.0.0.1:$rtsp/vtest"
[cameras.demo.zones.path]
polygon = [[0.0, 0.33], [0.45, 0.30], [0.75, 0.17], [1.0, 0.17], [1.0, 0.86], [0.55, 0.62], [0.30, 0.50], [0.0, 0.45]]
EOF
in_root headcount check-config /etc/headcount/headcount.toml >/dev/null || fail "check-config refused the edited config"

# As the unit starts it: a dynamic user's uid, StateDirectory= (0700 under
# /var/lib/private, linked from /var/lib), UMask=0077, the unit's Environment=.
uid=61234
# (systemd keeps /var/lib/private 0700 and gives the service its own view
# of it; a chroot has no such view, so it is 0711 here.)
mkdir -p "$root/var/lib/private"
chmod 0711 "$root/var/lib/private"
install -d -m 0700 -o "$uid" -g "$uid" "$root/var/lib/private/headcount"
ln -s private/headcount "$root/var/lib/headcount"
mapfile -t unit_env < <(sed -n 's/^Environment=//p' "$unit")
exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
# (exec all the way down: the pid is the appliance's own, as systemd's MainPID)
service() {
  exec chroot --userspec="$uid:$uid" "$root" /usr/bin/env -i PATH=/usr/bin:/bin "${unit_env[@]}" sh -c "umask 0077; exec $exec_start"
}
service >"$work/service.log" 2>&1 &
service_pid=$!
pids+=($service_pid)
token=""
for _ in $(seq 300); do
  token="$(cat "$root/var/lib/private/headcount/initial-admin-token" 2>/dev/null || true)"
  [ -n "$token" ] && curl -sf -o "$work/occupancy.json" -H "Authorization: Bearer $token" "http://127.0.0.1:$api/api/v1/occupancy" &&
    python3 -c 'import json,sys; z=json.load(open(sys.argv[1]))["zones"]; sys.exit(not any(x["zone"] == "demo.path" and x["occupancy"] is not None and x.get("updated_at") for x in z))' "$work/occupancy.json" &&
    break
  kill -0 "$service_pid" 2>/dev/null || { cat "$work/service.log" >&2; fail "the installed service stopped"; }
  sleep 0.2
done
[ -s "$work/occupancy.json" ] || { tail -20 "$work/service.log" >&2; fail "no occupancy from the installed service"; }
echo "first count $((SECONDS - started)) s after apt-get install began: $(cat "$work/occupancy.json")"
state_modes="$(find "$root/var/lib/private/headcount" -maxdepth 1 \( -type f -o -type d \) -printf '%u %m %P\n')"
echo "$state_modes" | awk -v uid="$uid" '$1 != uid { print "not the service user'"'"'s: " $0; bad = 1 } END { exit bad }' || fail "state files not the service user's"
# (the audit log's public key is meant to be read: 0644)
echo "$state_modes" | awk '($2 != "600" && $2 != "700" && !($2 == "644" && $3 ~ /\.pub$/)) { print; bad = 1 } END { exit bad }' ||
  fail "state files readable by others"

# The same port again (a second service, or any program holding it): a
# clear error naming the key, and nothing written.
kept=("$root/etc/headcount/headcount.toml" "$root/var/lib/private/headcount/initial-admin-token" "$root/var/lib/private/headcount/token.key")
before="$(sha256sum "${kept[@]}")"
other_state="$root/var/lib/other"
install -d -m 0700 -o "$uid" -g "$uid" "$other_state"
if chroot --userspec="$uid:$uid" "$root" /usr/bin/env -i PATH=/usr/bin:/bin "${unit_env[@]}" \
     headcount run --config /etc/headcount/headcount.toml --state-dir /var/lib/other >/dev/null 2>"$work/taken.log"; then
  fail "a second appliance started on a taken port"
fi
grep -q "api.bind: another program listens on 127.0.0.1:$api" "$work/taken.log" || { cat "$work/taken.log" >&2; fail "no clear error for the taken port"; }
[ -z "$(ls -A "$other_state" | grep -v '^run.lock$')" ] || { ls -la "$other_state" >&2; fail "a refused start wrote state"; }
[ "$before" = "$(sha256sum "${kept[@]}")" ] || fail "a refused start changed the running service's config or keys"
echo "taken port: $(grep -o 'api.bind: another program.*' "$work/taken.log" | head -1)"

# The admin's backup as root while the service runs (it reads the service
# user's directory as that user), a restore refused meanwhile, then, the
# service stopped, restored in place: the files stay the service user's.
passphrase="a site passphrase for the package test"
echo "$passphrase" | in_root headcount backup --out /root/site.hcbackup >/dev/null 2>"$work/backup.log" ||
  { cat "$work/backup.log" >&2; fail "backup as root of the running service's state"; }
if echo "$passphrase" | in_root headcount restore --in /root/site.hcbackup --state-dir /var/lib/headcount >/dev/null 2>"$work/restore.log"; then
  fail "a restore replaced the state under the running service"
fi
grep -q "is running on" "$work/restore.log" || { cat "$work/restore.log" >&2; fail "no clear error for a restore over the running service"; }
kill "$service_pid"; wait "$service_pid" 2>/dev/null || true
echo "$passphrase" | in_root headcount restore --in /root/site.hcbackup --state-dir /var/lib/headcount >"$work/restore.log" 2>&1 ||
  { cat "$work/restore.log" >&2; fail "restore as root with the service stopped"; }
[ -z "$(find "$root/var/lib/private/headcount" ! -uid "$uid")" ] || fail "restored files are not the service user's"
ls -d "$root"/var/lib/private/headcount.before-restore-* >/dev/null || fail "the replaced state was not kept"
in_root headcount audit verify --state-dir /var/lib/headcount >/dev/null || fail "the restored audit log does not verify"
echo "backup and restore as root: $(grep -o 'the audit log verifies.*' "$work/restore.log")"

# Remove keeps the state and the edited config; purge takes both.
in_root env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq headcount >"$work/remove.log" 2>&1 || { cat "$work/remove.log" >&2; fail "apt-get remove"; }
[ ! -e "$root/usr/bin/headcount" ] || fail "remove left the binary"
[ -f "$root/var/lib/private/headcount/headcount.db" ] || fail "remove deleted the state"
[ -f "$root/etc/headcount/headcount.toml" ] || fail "remove deleted the edited config"
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq headcount >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "apt-get purge"; }
for gone in /var/lib/private/headcount /var/lib/headcount /etc/headcount; do
  [ ! -e "$root$gone" ] && [ ! -L "$root$gone" ] || fail "purge left $gone"
done
left="$(find "$root/var/lib" "$root/var/lib/private" -maxdepth 1 -name 'headcount*')"
[ -z "$left" ] || fail "purge left $left"
echo "remove kept the state, purge removed it"
echo "package test passed: $(basename "$deb") $(du -h "$deb" | cut -f1)"
