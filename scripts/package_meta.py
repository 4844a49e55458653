"""The package's bill of materials, from what ships and nothing else:
the Rust crates linked into /usr/bin/headcount (cargo metadata: the
binary's normal dependencies for the target, with Cargo.lock's checksums),
the models (models/manifest.toml) and ONNX Runtime (scripts/fetch.py's
pin). Writes the Debian copyright file and a CycloneDX 1.5 SBOM.

Usage: package_meta.py METADATA_JSON CARGO_LOCK MANIFEST ORT_LIB VERSION COPYRIGHT_OUT SBOM_OUT
       package_meta.py --validate SBOM SCHEMA_DIR
         (the SBOM against CycloneDX's own JSON Schema, bom-1.5, with Debian's
         python3-jsonschema; exit 1 naming each violation)
"""

import hashlib
import json
import sys
import tomllib
import uuid
from datetime import datetime, timezone
from pathlib import Path

ORT_VERSION = "1.31.1"


def shipped_crates(metadata, root_name):
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    root = next(p["id"] for p in metadata["packages"] if p["name"] == root_name and p["source"] is None)
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for dep in nodes[node]["deps"]:
            # Normal dependencies only: build scripts and dev-dependencies
            # do not end up in the binary.
            if any(kind["kind"] is None for kind in dep["dep_kinds"]):
                stack.append(dep["pkg"])
    return sorted((packages[i] for i in seen), key=lambda p: (p["name"], p["version"]))


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def licence(crate):
    # Old crates write "MIT/Apache-2.0"; SPDX says OR.
    text = crate.get("license") or ""
    return " OR ".join(part.strip() for part in text.replace(" / ", "/").split("/")) if "/" in text else text


def main():
    metadata_path, lock_path, manifest_path, ort_lib, version, copyright_out, sbom_out = sys.argv[1:]
    metadata = json.loads(Path(metadata_path).read_text())
    lock = tomllib.loads(Path(lock_path).read_text())
    checksums = {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}
    manifest = tomllib.loads(Path(manifest_path).read_text())
    crates = [c for c in shipped_crates(metadata, "headcount") if c["source"] is not None]
    unlicensed = [c["name"] for c in crates if not c.get("license")]
    if unlicensed:
        sys.exit(f"crates without a licence expression: {', '.join(unlicensed)}")

    components = []
    for crate in crates:
        component = {
            "type": "library",
            "bom-ref": f"pkg:cargo/{crate['name']}@{crate['version']}",
            "name": crate["name"],
            "version": crate["version"],
            "purl": f"pkg:cargo/{crate['name']}@{crate['version']}",
            "licenses": [{"expression": licence(crate)}],
        }
        checksum = checksums.get((crate["name"], crate["version"]))
        if checksum:
            component["hashes"] = [{"alg": "SHA-256", "content": checksum}]
        components.append(component)
    for model in manifest["model"]:
        source = model["source"]
        components.append({
            "type": "machine-learning-model",
            "bom-ref": f"model:{model['file']}",
            "name": model["name"],
            "version": source["version"],
            "description": f"{model['role']} model; upstream {model['upstream']}; from the {source['registry']} package "
                           f"{source['package']} {source['version']}, {source['path']}",
            "licenses": [{"expression": model["licence"]}],
            "hashes": [{"alg": "SHA-256", "content": model["sha256"]}],
        })
    components.append({
        "type": "library",
        "bom-ref": f"pkg:pypi/onnxruntime@{ORT_VERSION}",
        "name": "onnxruntime",
        "version": ORT_VERSION,
        "purl": f"pkg:pypi/onnxruntime@{ORT_VERSION}",
        "description": "libonnxruntime.so from the PyPI wheel, loaded at run time (ort load-dynamic)",
        "licenses": [{"expression": "MIT"}],
        "hashes": [{"alg": "SHA-256", "content": sha256(ort_lib)}],
    })
    sbom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "tools": {"components": [{"type": "application", "name": "headcount scripts/package_meta.py"}]},
            "component": {
                "type": "application",
                "bom-ref": f"pkg:deb/headcount@{version}",
                "name": "headcount",
                "version": version,
                "purl": f"pkg:deb/headcount@{version}",
                "licenses": [{"expression": "Apache-2.0"}],
            },
        },
        "components": components,
        "dependencies": [{
            "ref": f"pkg:deb/headcount@{version}",
            "dependsOn": [c["bom-ref"] for c in components],
        }],
    }
    Path(sbom_out).write_text(json.dumps(sbom, indent=2) + "\n")

    models = "\n".join(
        f"Files: usr/share/headcount/models/{m['file']}\n"
        f"Copyright: {m['upstream']}\n"
        f"License: {m['licence']}\n"
        f"Comment: from the {m['source']['registry']} package {m['source']['package']} {m['source']['version']} "
        f"({m['source']['path']}), sha256 {m['sha256']}\n"
        for m in manifest["model"]
    )
    linked = "\n".join(f" {c['name']} {c['version']}: {licence(c)}" for c in crates)
    texts = sorted({part.strip("() ") for c in crates for part in licence(c).replace(" AND ", " OR ").split(" OR ")}
                   | {m["licence"] for m in manifest["model"]} | {"MIT", "Apache-2.0"})
    Path(copyright_out).write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: headcount\n\n"
        "Files: *\n"
        "Copyright: the headcount authors\n"
        "License: Apache-2.0\n"
        " On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.\n\n"
        f"{models}\n"
        f"Files: usr/lib/headcount/libonnxruntime.so.{ORT_VERSION}\n"
        "Copyright: Microsoft Corporation\n"
        "License: MIT\n"
        f"Comment: from the PyPI wheel onnxruntime=={ORT_VERSION}\n\n"
        "Files: usr/bin/headcount\n"
        "Copyright: the headcount authors, and the authors of the Rust crates below\n"
        "License: Apache-2.0\n"
        "Comment: these crates are linked into the binary (name, version: licence;\n"
        " where a crate offers a choice, any one of them applies):\n"
        f"{linked}\n"
        " Their licences: " + ", ".join(texts) + ".\n"
        " The machine-readable list with checksums is /usr/share/doc/headcount/sbom.cdx.json.\n"
    )
    print(f"{len(crates)} crates, {len(manifest['model'])} models and ONNX Runtime listed")


def validate(sbom_path, schema_dir):
    import jsonschema

    schemas = {p.name: json.loads(p.read_text()) for p in Path(schema_dir).glob("*.schema.json")}
    bom_schema = schemas["bom-1.5.SNAPSHOT.schema.json"]
    # The schemas refer to each other by file name (and by their $id).
    store = {**schemas, **{s["$id"]: s for s in schemas.values() if "$id" in s}}
    resolver = jsonschema.RefResolver.from_schema(bom_schema, store=store)
    validator = jsonschema.Draft7Validator(bom_schema, resolver=resolver)
    sbom = json.loads(Path(sbom_path).read_text())
    errors = sorted(validator.iter_errors(sbom), key=lambda e: list(e.absolute_path))
    for error in errors:
        print(f"{sbom_path}: {'/'.join(map(str, error.absolute_path))}: {error.message}", file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"SBOM valid against CycloneDX 1.5: {len(sbom['components'])} components")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--validate"]:
        validate(*sys.argv[2:])
    else:
        main()
