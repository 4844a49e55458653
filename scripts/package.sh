#!/usr/bin/env bash
# Builds the Debian package: target/debian/headcount_VERSION_ARCH.deb and
# its CycloneDX SBOM beside it (.cdx.json). Sets everything up first (the
# release build, ONNX Runtime and the models, each verified by sha256): the
# package carries all it runs with, nothing is downloaded at install or run
# time.
#
#   /usr/bin/headcount                        the binary (debug info stripped)
#   /lib/systemd/system/headcount.service     the hardened unit (DynamicUser=)
#   /etc/headcount/headcount.toml             the commented config (a conffile)
#   /usr/share/headcount/models/              models, manifest and its signature
#   /usr/lib/headcount/libonnxruntime.so.*    ONNX Runtime
#   /usr/share/doc/headcount/                 README, example config, copyright, SBOM
#
# Maintainer scripts make no user (the unit's DynamicUser=), no token and no
# key: the first start makes them. The service is not started on install;
# it needs a camera in the config first. Purge removes the state directory.
#
# Usage: scripts/package.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)-1"
arch="$(dpkg --print-architecture)"
out="$repo/target/debian"
root="$out/root"
rm -rf "$root"
mkdir -p "$root/DEBIAN"

install -D -m 0755 target/release/headcount "$root/usr/bin/headcount"
strip --strip-debug "$root/usr/bin/headcount"
install -D -m 0644 systemd/headcount.service "$root/lib/systemd/system/headcount.service"
install -D -m 0644 config/packaged.toml "$root/etc/headcount/headcount.toml"
for file in manifest.toml manifest.toml.sig release-key.pub README.md $(sed -n 's/^file = "\(.*\)"/\1/p' models/manifest.toml); do
  install -D -m 0644 "models/$file" "$root/usr/share/headcount/models/$file"
done
install -D -m 0644 "$ORT_DYLIB_PATH" "$root/usr/lib/headcount/$(basename "$ORT_DYLIB_PATH")"
doc="$root/usr/share/doc/headcount"
install -D -m 0644 README.md "$doc/README.md"
install -D -m 0644 config/example.toml "$doc/example.toml"
install -D -m 0644 SECURITY.md "$doc/SECURITY.md"

cargo metadata --format-version 1 --filter-platform "$(rustc -vV | sed -n 's/^host: //p')" >"$out/metadata.json"
python3 scripts/package_meta.py "$out/metadata.json" Cargo.lock models/manifest.toml "$ORT_DYLIB_PATH" \
  "$version" "$doc/copyright" "$doc/sbom.cdx.json"
chmod 0644 "$doc/copyright" "$doc/sbom.cdx.json"
/usr/bin/python3 scripts/package_meta.py --validate "$doc/sbom.cdx.json" "$HEADCOUNT_CACHE/schemas/cyclonedx"

# Dependencies: the shared libraries the binary links (dpkg-shlibdeps), and
# the GStreamer plugins it builds its pipelines from at run time.
mkdir -p "$out/shlibs/debian"
printf 'Source: headcount\n\nPackage: headcount\nArchitecture: any\n' >"$out/shlibs/debian/control"
shlibs="$(cd "$out/shlibs" && dpkg-shlibdeps -O "$root/usr/bin/headcount" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
[ -n "$shlibs" ] || { echo "error: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
plugins="gstreamer1.0-plugins-base, gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad, gstreamer1.0-plugins-ugly, gstreamer1.0-libav"
size_kb="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"

cat >"$root/DEBIAN/control" <<EOF
Package: headcount
Version: $version
Architecture: $arch
Maintainer: headcount maintainers <security@headcount.invalid>
Installed-Size: $size_kb
Depends: $shlibs, $plugins
Section: video
Priority: optional
Homepage: https://headcount.invalid
Description: privacy-preserving people counting for RTSP cameras
 Counts people per zone, entries and exits and dwell from a site's existing
 cameras with ONNX models on the box, redacts faces before any pixel can
 leave the process, and serves only aggregated, minimised counts over a
 local API with per-role tokens and an audit log.
EOF
echo /etc/headcount/headcount.toml >"$root/DEBIAN/conffiles"

cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    # An upgrade restarts a running service (its database migrates at start).
    if systemctl is-active --quiet headcount.service; then
        systemctl restart headcount.service
    fi
fi
if [ "$1" = configure ] && [ -z "$2" ]; then
    cat <<'NOTE'
headcount is installed but not started. Next:
  1. add a camera to /etc/headcount/headcount.toml and check it:
       headcount check-config /etc/headcount/headcount.toml
  2. sudo systemctl enable --now headcount
  3. read the first admin token once: sudo cat /var/lib/headcount/initial-admin-token
NOTE
fi
exit 0
EOF
cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl disable --now headcount.service || true
fi
exit 0
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
# Debian policy: the data stays on remove and goes on purge (the counts,
# the audit log, the keys, the sealed camera passwords, dashboard edits),
# with any state a restore kept aside.
if [ "$1" = purge ]; then
    rm -rf /var/lib/private/headcount /var/lib/headcount \
        /var/lib/private/headcount.before-restore-* /var/lib/headcount.before-restore-*
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

deb="$out/headcount_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
cp "$doc/sbom.cdx.json" "${deb%.deb}.cdx.json"
echo "package: $deb ($(du -h "$deb" | cut -f1), installed $((size_kb / 1024)) MB)"
echo "SBOM: ${deb%.deb}.cdx.json"
