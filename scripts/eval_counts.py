"""Compares `headcount analyze` person counts with the hand counts in
tests/fixtures/vtest_person_counts.toml and prints the per-frame errors and
the mean absolute error. Reads analyze's JSON lines on stdin (run at 1 fps,
so that the analysed frame at t seconds is source frame 10 * t)."""

import json
import sys
import tomllib
from pathlib import Path

labels = tomllib.loads((Path(__file__).resolve().parent.parent / "tests/fixtures/vtest_person_counts.toml").read_text())
by_time = {json.loads(line)["timestamp_ms"]: json.loads(line)["persons"] for line in sys.stdin if line.strip()}
errors = []
for label in labels["counts"]:
    t = label["frame"] * 100
    if t not in by_time:
        sys.exit(f"analyze printed no frame at {t} ms")
    found = by_time[t]
    errors.append(found - label["persons"])
    print(f"frame {label['frame']:4}: counted by eye {label['persons']}, detected {found}, error {found - label['persons']:+d}")
mae = sum(abs(e) for e in errors) / len(errors)
print(f"{len(errors)} frames: mean absolute error {mae:.2f} persons/frame, mean signed error {sum(errors) / len(errors):+.2f}, "
      f"{sum(labels_p['persons'] for labels_p in labels['counts'])} people by eye, {sum(e + l['persons'] for e, l in zip(errors, labels['counts']))} detected")
