"""Person-count accuracy on the hand-labelled vtest.avi frames of
tests/fixtures/vtest_person_labels.toml. Reads `headcount analyze --boxes`
JSON lines on stdin (any rate that includes the labelled frames: frame f is
at f * 100 ms) and prints, per frame and overall: the count by eye, the
detector's count (boxes at or above the person threshold) and the tracker's
count (people held present), their mean absolute errors, and the detector's
recall and false positives, matching boxes one to one at IoU >= 0.3."""

import argparse
import json
import sys
import tomllib
from pathlib import Path

LABELS = Path(__file__).resolve().parent.parent / "tests/fixtures/vtest_person_labels.toml"


def iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(truth, found, threshold=0.3):
    """One-to-one greedy matching by descending IoU: the indices of the
    matched truth boxes and of the matched found boxes."""
    pairs = sorted(((iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)), reverse=True)
    used_t, used_f = set(), set()
    for score, i, j in pairs:
        if score >= threshold and i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
    return used_t, used_f


def matches(truth, found, threshold=0.3):
    return len(match(truth, found, threshold)[0])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threshold", type=float, default=0.5, help="the config's person_threshold")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument(
        "--list",
        action="store_true",
        help="also name, per frame, the tracker's boxes no person matches and the people no tracked box matches",
    )
    args = parser.parse_args()
    labels = tomllib.loads(LABELS.read_text())["frames"]
    by_time = {}
    for line in sys.stdin:
        record = json.loads(line)
        if "timestamp_ms" in record:
            by_time[record["timestamp_ms"]] = record
    rows = []
    for label in labels:
        record = by_time.get(label["frame"] * 100)
        if record is None:
            sys.exit(f"analyze printed no frame at {label['frame'] * 100} ms")
        truth = label["persons"]
        boxes = [b[:4] for b in record["boxes"]["persons"] if b[4] >= args.threshold]
        rows.append((label["frame"], len(truth), len(boxes), record["tracked"], matches(truth, boxes)))
        if args.list:
            tracked = record["boxes"].get("tracked", [])
            held, hits = match(truth, tracked)
            for j, b in enumerate(tracked):
                if j not in hits:
                    print(f"frame {label['frame']}: tracked, no person there {b}")
            for i, b in enumerate(truth):
                if i not in held:
                    print(f"frame {label['frame']}: person not tracked {b}")
    people = sum(r[1] for r in rows)
    detected = sum(r[2] for r in rows)
    true_positives = sum(r[4] for r in rows)
    figures = {
        "frames": len(rows),
        "people_by_eye": people,
        "detector_mae": sum(abs(r[2] - r[1]) for r in rows) / len(rows),
        "tracker_mae": sum(abs(r[3] - r[1]) for r in rows) / len(rows),
        "detector_recall": true_positives / people,
        "detector_false_positives": detected - true_positives,
        "detector_false_positives_per_frame": (detected - true_positives) / len(rows),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print("frame  by eye  detected  tracked  matched")
    for frame, truth, found, tracked, matched in rows:
        print(f"{frame:5}  {truth:6}  {found:8}  {tracked:7}  {matched:7}")
    print(
        f"{len(rows)} frames, {people} people by eye: count MAE {figures['tracker_mae']:.2f} (tracker, "
        f"what zones count), {figures['detector_mae']:.2f} (detector alone; target <= 0.4); detector recall "
        f"{figures['detector_recall']:.1%}, false positives {figures['detector_false_positives']} "
        f"({figures['detector_false_positives_per_frame']:.2f}/frame)"
    )


if __name__ == "__main__":
    main()
