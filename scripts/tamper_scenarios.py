"""Camera tamper scenarios: real GStreamer filters over real footage
(OpenCV's vtest.avi: 768x576, 10 fps, people on a campus path), with the
exact time each tamper starts and ends.

Method
  Each scenario is a sequence of segments on one time line of SOURCE
  frames: vtest played from its start, looped (it is 795 frames; the camera
  never moves, so the loop only makes people jump). A segment takes the
  next frames of that time line and either passes them through untouched
  (normal) or through a gst-launch-1.0 pipeline with the tamper's filter
  element (raw RGB in on stdin, raw RGB out on stdout, same size and count):

    tamper_covered  videobalance contrast=0.06 brightness=0.01 saturation=0.3:
                    the lens covered by a hand or a cap; near-black (RGB
                    mean about 9 of 255, standard deviation about 3) with a
                    faint trace of the scene
    tamper_blur     gaussianblur sigma=4: defocused, or the dome sprayed
                    (the variance of the Laplacian falls from about 720 to 5)
    tamper_moved    videocrop of 20 % on the right and at the top, videoscale
                    (Lanczos) back to 768x576, then gaussianblur sigma=-1 (a
                    mild sharpen: a re-aimed camera keeps its sensor's
                    detail, and without it the 1.25x upscale alone halves the
                    edge energy, which is defocus, not a move): the camera
                    knocked down and left (and a little zoomed in); it stays
                    so to the end
    tamper_frozen   imagefreeze on the last normal frame: the encoder
                    repeats one image; when it recovers, the scene is 30 s
                    later (the frames of the frozen time are skipped)

  Timing: NORMAL_S of normal footage first (the detector's learning period,
  then enough normal time that a false event would show), TAMPER_S of
  tamper, then RECOVERY_S of normal footage again (except tamper_moved,
  which stays moved to the end). The result is encoded like
  scripts/scenarios.py's: raw RGB piped to gst-launch, H.264 (x264, one
  thread: byte-for-byte reproducible) in MPEG-TS.

Usage: tamper_scenarios.py --media DIR --out OUTDIR [--models-dir PATH] [--only NAME ...]
Writes NAME.ts, NAME.toml (a headcount config for `analyze --config`: one
camera `cam` analysed at 2 fps, with tamper detection: learning_secs = 20,
frozen_secs = 10) and
NAME.truth.json: {"kind": the anomaly type, "subject": "cam", "onset_s",
"end_s" (null: to the end), ...; "sha256": this script's}. Times count from
the first frame; first_frame_ms is the time stamp a demuxer gives that frame.
A scenario whose truth file records this script's sha256 is not generated
again; the truth file is written last, so an interrupted run never leaves a
scenario that looks finished. Frame counts are checked by decoding the
result (gst-launch, fakesink).
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from itertools import islice
from typing import Iterable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenarios import part_path, write_atomically  # noqa: E402  (the same atomic writes)

W, H, FPS = 768, 576, 10
FRAME_BYTES = W * H * 3
SOURCE_FRAMES = 795  # vtest.avi
NORMAL_S, TAMPER_S, RECOVERY_S = 45, 30, 15
CRF = 20  # as scripts/scenarios.py
LEARNING_S, FROZEN_S = 20, 10  # the configs' tamper settings

RAW_CAPS = f"width={W} height={H} format=rgb framerate={FPS}/1"
BACK_TO_RGB = f"videoconvert ! video/x-raw,format=RGB,width={W},height={H}"
CROP_X, CROP_Y = 154, 115  # 20 %


@dataclass
class Tamper:
    kind: str  # the anomaly type the appliance should report
    filter: str  # gst-launch elements between raw RGB in and out
    frames_in: int | None = None  # source frames the filter reads (None: as many as it writes)
    recovers: bool = True
    description: str = ""


SCENARIOS = {
    "tamper_covered": Tamper(
        "lens_covered", f"videoconvert ! videobalance contrast=0.06 brightness=0.01 saturation=0.3 ! {BACK_TO_RGB}",
        description="lens covered: near-black, a faint trace of the scene"),
    "tamper_blur": Tamper(
        "defocused", f"videoconvert ! gaussianblur sigma=4 ! {BACK_TO_RGB}",
        description="heavy blur (defocused or sprayed)"),
    "tamper_moved": Tamper(
        "camera_moved", f"videocrop top={CROP_Y} right={CROP_X} ! videoscale method=lanczos ! "
                        f"video/x-raw,width={W},height={H} ! videoconvert ! gaussianblur sigma=-1 ! {BACK_TO_RGB}",
        recovers=False, description="re-aimed down and left, for good"),
    "tamper_frozen": Tamper(
        "frozen_image", f"imagefreeze num-buffers={TAMPER_S * FPS} ! {BACK_TO_RGB}", frames_in=1,
        description="one image repeated, then the live scene again"),
}


# ---------------------------------------------------------------- frames


def vtest_frames(video: Path) -> Iterator[bytes]:
    """vtest's frames as raw RGB, looped for ever."""
    cmd = ["gst-launch-1.0", "-q", "filesrc", f"location={video}", "!", "decodebin", "!", "videoconvert",
           "!", "video/x-raw,format=RGB", "!", "fdsink", "fd=1"]
    while True:
        count = 0
        with subprocess.Popen(cmd, stdout=subprocess.PIPE) as proc:
            try:
                while len(data := proc.stdout.read(FRAME_BYTES)) == FRAME_BYTES:
                    count += 1
                    yield data
            finally:  # also when the caller stops early
                proc.kill()
        if count != SOURCE_FRAMES:
            sys.exit(f"error: {video} decoded to {count} frames, expected {SOURCE_FRAMES}")


def filtered(frames: Iterable[bytes], filter_desc: str, expected: int) -> Iterator[bytes]:
    """The frames through a gst-launch pipeline with the filter: expected
    frames out."""
    cmd = ["gst-launch-1.0", "-q", "fdsrc", "fd=0", "!", "rawvideoparse", *RAW_CAPS.split(), "!",
           *filter_desc.split(), "!", "fdsink", "fd=1"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def feed():  # in a thread: the filter's output is read at the same time
        try:
            for frame in frames:
                proc.stdin.write(frame)
            proc.stdin.close()
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed)
    writer.start()
    count = 0
    while len(data := proc.stdout.read(FRAME_BYTES)) == FRAME_BYTES:
        count += 1
        yield data
    writer.join()
    if proc.wait() != 0 or count != expected:
        sys.exit(f"error: the filter `{filter_desc}` gave {count} frames of {expected} (exit {proc.returncode})")


def segments(tamper: Tamper, source: Iterator[bytes]) -> Iterator[bytes]:
    """The scenario's frames: normal, tamper, recovery."""
    last = None
    for _ in range(NORMAL_S * FPS):
        last = next(source)
        yield last
    n = TAMPER_S * FPS if tamper.recovers else (TAMPER_S + RECOVERY_S) * FPS
    if tamper.frames_in == 1:  # frozen: the last normal image, held; time goes on
        for _ in range(n):
            next(source)
        inputs = [last]
    else:
        inputs = islice(source, n)  # read by the filter's feeding thread, as it goes
    yield from filtered(inputs, tamper.filter, n)
    if tamper.recovers:
        for _ in range(RECOVERY_S * FPS):
            yield next(source)


def encode(frames: Iterator[bytes], out: Path) -> int:
    part = part_path(out)
    cmd = ["gst-launch-1.0", "-q", "fdsrc", "fd=0", "!", "rawvideoparse", *RAW_CAPS.split(), "!",
           "videoconvert", "!", "video/x-raw,format=I420", "!",
           "x264enc", "speed-preset=veryfast", "key-int-max=10", "bframes=0", "threads=1",
           "pass=qual", f"quantizer={CRF}", "!",
           "h264parse", "!", "mpegtsmux", "!", "filesink", f"location={part}"]
    count = 0
    with subprocess.Popen(cmd, stdin=subprocess.PIPE) as proc:
        for frame in frames:
            proc.stdin.write(frame)
            count += 1
        proc.stdin.close()
    if proc.returncode != 0:
        sys.exit(f"error: encoding {out} failed ({proc.returncode})")
    part.rename(out)
    return count


def decoded(video: Path) -> tuple[int, float]:
    """Frames a decoder gets out of the file (gst-launch, fakesink) and the
    time they span (s): from the first one's time stamp to the last one's end."""
    cmd = ["gst-launch-1.0", "-v", "filesrc", f"location={video}", "!", "decodebin", "!", "fakesink",
           "silent=false"]
    log = subprocess.run(cmd, capture_output=True, text=True).stdout
    stamps = [(seconds(m[1]), seconds(m[2]))
              for m in re.finditer(r"chain\s+\*+ .*?pts: ([\d:.]+), duration: ([\d:.]+)", log)]
    if not stamps:
        return 0, 0.0
    return len(stamps), round(stamps[-1][0] + stamps[-1][1] - stamps[0][0], 3)


def seconds(clock: str) -> float:
    """A GStreamer time (H:MM:SS.NNNNNNNNN) in seconds."""
    h, m, s = clock.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def first_frame_ms(video: Path) -> float:
    """The time stamp a demuxer gives the first frame (as scripts/scenarios.py)."""
    cmd = ["gst-launch-1.0", "-v", "filesrc", f"location={video}", "!", "tsdemux", "!", "fakesink",
           "silent=false", "num-buffers=1"]
    log = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"pts: (\d+):(\d+):(\d+(?:\.\d+)?)", log)
    if m is None:
        sys.exit(f"error: no time stamp found in {video}")
    return round((int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])) * 1000, 3)


# ------------------------------------------------------------ config, truth


def config(name: str, tamper: Tamper, models_dir: Path) -> str:
    return f"""# Tamper scenario {name}, made by scripts/tamper_scenarios.py: {tamper.description}.
[appliance]
site = "tamper"
models_dir = "{models_dir}"
state_dir = "state-{name}"

[cameras.cam]
url = "file:{name}.ts"
analysis_fps = 2  # as the appliance on live 1080p streams; enough for image statistics

[cameras.cam.tamper]
sensitivity = "medium"
learning_secs = {LEARNING_S}
frozen_secs = {FROZEN_S}

# The paved path (as config/demo.toml).
[cameras.cam.zones.path]
polygon = [[0.0, 0.33], [0.45, 0.30], [0.75, 0.17], [1.0, 0.17], [1.0, 0.86], [0.55, 0.62], [0.30, 0.50], [0.0, 0.45]]
"""


def truth(name: str, tamper: Tamper, frames: int, sha: str, first_ms: float) -> dict:
    return {
        "name": name, "kind": tamper.kind, "subject_type": "camera", "subject": "cam",
        "onset_s": float(NORMAL_S), "end_s": float(NORMAL_S + TAMPER_S) if tamper.recovers else None,
        "learning_s": LEARNING_S, "filter": tamper.filter, "description": tamper.description,
        "fps": FPS, "frames": frames, "duration_s": frames / FPS, "width": W, "height": H,
        "first_frame_ms": first_ms, "sha256": sha,
    }


# -------------------------------------------------------------------- main


def up_to_date(out: Path, name: str, sha: str) -> bool:
    try:
        recorded = json.loads((out / f"{name}.truth.json").read_text())["sha256"]
    except (OSError, ValueError, KeyError):
        return False
    return recorded == sha and (out / f"{name}.ts").exists()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", type=Path, default=os.environ.get("HEADCOUNT_MEDIA"),
                        help="folder with vtest.avi (default: $HEADCOUNT_MEDIA)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models-dir", type=Path, default=Path(__file__).resolve().parent.parent / "models")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=list(SCENARIOS))
    args = parser.parse_args()
    if args.media is None:
        parser.error("--media or $HEADCOUNT_MEDIA is needed")
    sha = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(SCENARIOS)
    for name in names:  # cheap, and follows --models-dir
        write_atomically(args.out / f"{name}.toml", config(name, SCENARIOS[name], args.models_dir.resolve()))
    for name in names:
        if up_to_date(args.out, name, sha):
            continue
        tamper = SCENARIOS[name]
        video = args.out / f"{name}.ts"
        (args.out / f"{name}.truth.json").unlink(missing_ok=True)
        written = encode(segments(tamper, vtest_frames(args.media / "vtest.avi")), video)
        frames, span = decoded(video)
        if frames != written or abs(span - written / FPS) > 1e-3:
            sys.exit(f"error: {video} decodes to {frames} frames over {span} s; {written} were written")
        truth_json = truth(name, tamper, written, sha, first_frame_ms(video))
        write_atomically(args.out / f"{name}.truth.json", json.dumps(truth_json) + "\n")
        print(f"{name}: {written} frames, {written / FPS:.0f} s, {tamper.kind} from {NORMAL_S} s")


if __name__ == "__main__":
    main()
