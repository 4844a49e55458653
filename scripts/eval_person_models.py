"""Compares person models (NanoDet-g fp32 and its INT8 quantisation, made by
scripts/quantize_person_model.py) on the hand-labelled vtest.avi frames of
tests/fixtures/vtest_person_labels.toml, the way the appliance runs them:

  frames   vtest.avi decoded with GStreamer, scaled to the analysis width
           (640, square pixels; decodebin ! videoscale ! videoconvert ! RGB,
           as pipelines/file.pipeline), frame f at f * 100 ms = the f-th frame;
  input    letterboxed as appliance/domain/src/pixels/letterbox.rs does
           (bilinear at pixel centres, top-left, BGR planes, mean/std of
           appliance/vision/src/person.rs, padding 0), at each --sizes input
           (416x320 is what the appliance uses for a 4:3 frame);
  decode   as person.rs: person score = column 0 of the sigmoid scores,
           box = softmax-expected bin x stride from the cell centre, then
           greedy NMS at IoU 0.5, full frame only (no tiles);
  session  ONNX Runtime CPU, 1 intra-op and 1 inter-op thread, no spinning,
           the memory arena on and no memory pattern
           (appliance/vision/src/runtime.rs, threads_per_worker = 1).

Per model and input size it prints recall (boxes matched one to one at
IoU >= 0.3, as scripts/eval_counts.py), recall of people under 40 px tall in
the 640-wide frame, and false positives, at each --thresholds score; and the
median milliseconds per inference (session.run only) over --reps repetitions
of all 27 frames, the models' runs interleaved frame by frame (order
alternating) so that a noisy machine slows them alike.

Usage (needs onnxruntime, numpy and GStreamer's Python bindings, e.g. a venv
made with --system-site-packages from /usr/bin/python3):
  python3 scripts/eval_person_models.py \
      --models models/nanodet-g-416.onnx models/nanodet-g-416-int8.onnx
"""

import argparse
import hashlib
import os
import statistics
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from eval_counts import iou, match  # the one matching rule of every person eval (same folder)

REPO = Path(__file__).resolve().parent.parent
LABELS = REPO / "tests/fixtures/vtest_person_labels.toml"
MEDIA = Path(os.environ.get("HEADCOUNT_MEDIA", "/var/cache/headcount/media"))
ANALYSIS_WIDTH = 640
MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
INPUT = "input_1:0"
SCORE_OUTPUTS = ["Identity:0", "Identity_1:0", "Identity_2:0"]
BOX_OUTPUTS = ["Identity_3:0", "Identity_4:0", "Identity_5:0"]
STRIDES = [8, 16, 32]
BINS = 11
NMS_IOU = 0.5
MATCH_IOU = 0.3
SMALL_PX = (40, 60)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def decode_video(path, wanted, width=ANALYSIS_WIDTH):
    """The frames of `path` whose index is in `wanted` (None: all), as
    {index: HxWx3 uint8 RGB}, scaled to `width` as the appliance does."""
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstApp", "1.0")
    from gi.repository import Gst, GstApp  # noqa: F401

    Gst.init(None)
    scale = f"videoscale ! video/x-raw,width={width},pixel-aspect-ratio=1/1 ! " if width else ""
    pipeline = Gst.parse_launch(
        f'filesrc location="{path}" ! decodebin ! {scale}videoconvert ! video/x-raw,format=RGB '
        "! appsink name=frames sync=false max-buffers=8"
    )
    sink = pipeline.get_by_name("frames")
    pipeline.set_state(Gst.State.PLAYING)
    frames, index = {}, 0
    try:
        while True:
            sample = sink.try_pull_sample(10 * Gst.SECOND)
            if sample is None:
                break
            if wanted is None or index in wanted:
                caps = sample.get_caps().get_structure(0)
                w, h = caps.get_value("width"), caps.get_value("height")
                buf = sample.get_buffer()
                ok, info = buf.map(Gst.MapFlags.READ)
                stride = len(info.data) // h
                rows = np.frombuffer(info.data, np.uint8).reshape(h, stride)[:, : w * 3]
                frames[index] = rows.reshape(h, w, 3).copy()
                buf.unmap(info)
            index += 1
    finally:
        pipeline.set_state(Gst.State.NULL)
    return frames


def input_size(frame_w, frame_h, long_side=416, max_stride=32):
    """person.rs input_size: long side `long_side`, the other scaled and
    rounded up to a multiple of 32."""
    scale = long_side / max(frame_w, frame_h)

    def fit(side):
        return max(-(-round(side * scale) // max_stride), 1) * max_stride

    return min(fit(frame_w), long_side), min(fit(frame_h), long_side)


def letterbox(rgb, width, height):
    """letterbox.rs Frame::letterbox for the full frame: returns the
    [1,3,height,width] f32 BGR tensor and the scale."""
    fh, fw, _ = rgb.shape
    scale = np.float32(min(width / fw, height / fh))
    dst_w = min(max(int(round(fw * scale)), 1), width)
    dst_h = min(max(int(round(fh * scale)), 1), height)

    def sample(n, extent):
        s = np.clip((np.arange(n, dtype=np.float32) + 0.5) / scale - 0.5, 0, extent - 1).astype(np.float32)
        i0 = np.floor(s).astype(np.int64)
        i1 = np.minimum(i0 + 1, extent - 1)
        return i0, i1, (s - i0).astype(np.float32)

    x0, x1, fx = sample(dst_w, fw)
    y0, y1, fy = sample(dst_h, fh)
    src = rgb.astype(np.float32)
    fx = fx[None, :, None]
    top = src[y0][:, x0] + (src[y0][:, x1] - src[y0][:, x0]) * fx
    bottom = src[y1][:, x0] + (src[y1][:, x1] - src[y1][:, x0]) * fx
    img = top + (bottom - top) * fy[:, None, None]
    bgr = img[:, :, ::-1]
    out = np.zeros((1, 3, height, width), np.float32)
    out[0, :, :dst_h, :dst_w] = ((bgr - MEAN_BGR) * (np.float32(1) / STD_BGR)).transpose(2, 0, 1)
    return out, float(scale)


def decode(outputs, width, height, threshold):
    """person.rs decode: person boxes [x1, y1, x2, y2, score] in input pixels."""
    found = []
    for level, stride in enumerate(STRIDES):
        scores, logits = outputs[SCORE_OUTPUTS[level]], outputs[BOX_OUTPUTS[level]]
        cells = width // stride
        rows = cells * (height // stride)
        scores = scores.reshape(-1, 80)
        logits = logits.reshape(-1, 4, BINS)
        if scores.shape[0] != rows or logits.shape[0] != rows:
            sys.exit(f"stride {stride}: {scores.shape[0]} score rows and {logits.shape[0]} box rows, expected {rows}")
        keep = np.nonzero(scores[:, 0] >= threshold)[0]
        if keep.size == 0:
            continue
        lg = logits[keep].astype(np.float64)
        e = np.exp(lg - lg.max(axis=2, keepdims=True))
        d = (e * np.arange(BINS)).sum(axis=2) / e.sum(axis=2) * stride
        cx = (keep % cells + 0.5) * stride
        cy = (keep // cells + 0.5) * stride
        for k, i in enumerate(keep):
            found.append([cx[k] - d[k, 0], cy[k] - d[k, 1], cx[k] + d[k, 2], cy[k] + d[k, 3], float(scores[i, 0])])
    return found


def nms(boxes, threshold=NMS_IOU):
    kept = []
    for b in sorted(boxes, key=lambda b: -b[4]):
        if all(iou(k, b) <= threshold for k in kept):
            kept.append(b)
    return kept


def to_frame(boxes, scale, fw, fh):
    """Input pixels -> normalised frame coordinates, clipped (to_frame +
    normalise in person.rs / letterbox.rs); empty boxes dropped."""
    out = []
    for x1, y1, x2, y2, s in boxes:
        b = [min(max(v / scale / ext, 0.0), 1.0) for v, ext in ((x1, fw), (y1, fh), (x2, fw), (y2, fh))]
        if (b[2] - b[0]) * (b[3] - b[1]) > 0:
            out.append(b + [s])
    return out


def session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.enable_cpu_mem_arena = True
    opts.enable_mem_pattern = False
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def describe_io(sess):
    return [(o.name, o.shape, o.type) for o in sess.get_outputs()], [(i.name, i.shape, i.type) for i in sess.get_inputs()]


def load_labels():
    doc = tomllib.loads(LABELS.read_text())
    return doc["source_sha256"], doc["frames"]


def parse_size(text):
    w, h = text.lower().split("x")
    return int(w), int(h)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", type=Path, required=True)
    parser.add_argument("--sizes", nargs="+", default=["416x320", "640x480"], help="model input WxH")
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.5, 0.45])
    parser.add_argument("--reps", type=int, default=5, help="timing repetitions of all labelled frames")
    parser.add_argument("--video", type=Path, default=MEDIA / "vtest.avi")
    args = parser.parse_args()

    import onnxruntime as ort

    source_sha, labels = load_labels()
    if sha256(args.video) != source_sha:
        sys.exit(f"{args.video} is not the labelled vtest.avi (sha256 {source_sha})")
    frames = decode_video(args.video, {l["frame"] for l in labels})
    missing = [l["frame"] for l in labels if l["frame"] not in frames]
    if missing:
        sys.exit(f"frames not decoded: {missing}")
    fh, fw, _ = frames[labels[0]["frame"]].shape
    people = sum(len(l["persons"]) for l in labels)
    small = [sum(1 for l in labels for p in l["persons"] if (p[3] - p[1]) * fh < px) for px in SMALL_PX]
    print(f"onnxruntime {ort.__version__}, numpy {np.__version__}; {len(labels)} frames at {fw}x{fh}, "
          f"{people} people, " + ", ".join(f"{n} under {px} px tall" for n, px in zip(small, SMALL_PX)))

    sessions = {}
    for path in args.models:
        sessions[path] = session(path)
        outs, ins = describe_io(sessions[path])
        print(f"{path}: {os.path.getsize(path):,} B, sha256 {sha256(path)[:16]}..; inputs {ins}; outputs {outs}")
    names = [path.name for path in args.models]
    ref_outputs = [o.name for o in sessions[args.models[0]].get_outputs()]
    for path in args.models[1:]:
        if [o.name for o in sessions[path].get_outputs()] != ref_outputs:
            print(f"note: {path} has outputs {[o.name for o in sessions[path].get_outputs()]}, not {ref_outputs}")

    rows = []
    for size in args.sizes:
        width, height = parse_size(size)
        inputs = {}
        for l in labels:
            inputs[l["frame"]], scale = letterbox(frames[l["frame"]], width, height)
        results = {p: {} for p in args.models}
        times = {p: [[] for _ in range(args.reps)] for p in args.models}
        score_diff = {p: [] for p in args.models}
        # Warm-up (first runs allocate) and the detections, once per model.
        for path in args.models:
            for l in labels:
                raw = sessions[path].run(None, {INPUT: inputs[l["frame"]]})
                out = dict(zip([o.name for o in sessions[path].get_outputs()], raw))
                results[path][l["frame"]] = out
        for path in args.models[1:]:
            for l in labels:
                a = results[args.models[0]][l["frame"]]
                b = results[path][l["frame"]]
                score_diff[path].extend(np.abs(a[n][..., 0] - b[n][..., 0]).ravel() for n in SCORE_OUTPUTS)
        # Timing: interleaved, alternating which model runs first.
        for rep in range(args.reps):
            for k, l in enumerate(labels):
                order = args.models if (k + rep) % 2 == 0 else list(reversed(args.models))
                feed = {INPUT: inputs[l["frame"]]}
                for path in order:
                    start = time.perf_counter()
                    sessions[path].run(None, feed)
                    times[path][rep].append((time.perf_counter() - start) * 1000)
        for path in args.models:
            per_rep = [statistics.median(t) for t in times[path]]
            diff = np.concatenate(score_diff[path]) if score_diff[path] else None
            for threshold in args.thresholds:
                tp = found_n = 0
                tp_small = [0] * len(SMALL_PX)
                for l in labels:
                    out = results[path][l["frame"]]
                    boxes = to_frame(nms(decode(out, width, height, threshold)), scale, fw, fh)
                    truth = l["persons"]
                    hit = match(truth, [b[:4] for b in boxes], MATCH_IOU)[0]
                    tp += len(hit)
                    for k, px in enumerate(SMALL_PX):
                        tp_small[k] += sum(1 for i in hit if (truth[i][3] - truth[i][1]) * fh < px)
                    found_n += len(boxes)
                rows.append({
                    "model": path.name, "size": size, "threshold": threshold,
                    "recall": tp / people, "tp_small": tp_small, "fp": found_n - tp,
                    "ms": statistics.median([t for r in times[path] for t in r]), "ms_reps": per_rep,
                    "dscore": (float(diff.mean()), float(diff.max())) if diff is not None else None,
                })

    print()
    print(f"{'model':34} {'input':8} {'thr':>4} {'recall':>7} "
          + " ".join(f"{'<' + str(px) + 'px':>14}" for px in SMALL_PX)
          + f" {'FP':>3} {'ms (median)':>11}  per-rep medians")
    for r in rows:
        print(f"{r['model']:34} {r['size']:8} {r['threshold']:4.2f} {r['recall']:7.3f} "
              + " ".join(f"{t / n if n else float('nan'):5.3f} ({t:3}/{n:3})" for t, n in zip(r["tp_small"], small))
              + f" {r['fp']:3} {r['ms']:11.1f}  " + " ".join(f"{m:.1f}" for m in r["ms_reps"]))
    for r in rows:
        if r["dscore"] and r["threshold"] == args.thresholds[0]:
            print(f"{r['model']} at {r['size']}: person score |difference| from {names[0]}: "
                  f"mean {r['dscore'][0]:.4f}, max {r['dscore'][1]:.4f}")
    return rows


if __name__ == "__main__":
    main()
