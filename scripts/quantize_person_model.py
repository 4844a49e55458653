"""Static INT8 quantisation of the person model (NanoDet-g, models/nanodet-g-416.onnx)
with ONNX Runtime's own tools, for evaluation (scripts/eval_person_models.py).

  model        models/nanodet-g-416.onnx (fp32, committed; sha256 checked
               against models/manifest.toml);
  calibration  100 frames that the evaluation does not use, chosen by a fixed
               rule, each scaled to the analysis width (640) and letterboxed to
               416x320 exactly as the appliance does (see eval_person_models.py):
               - vtest.avi frames f with f % 30 in (10, 20): 53 frames, each at
                 least 1 s from the 27 labelled frames (f % 30 == 0);
               - with --calibration with-large, 20 frames of the face-redaction
                 media, where people are 100-480 px tall (LARGE_PEOPLE below;
                 none of them is in the scene set): calibrated on small people
                 only, the INT8 model finds no one taller than 200 px;
               - scenarios/busy_door.ts frames i with i % 16 == 8, up to 100 in
                 all (synthetic composites of vtest people on the median
                 background, made by scripts/scenarios.py);
  quantisation onnxruntime.quantization.quant_pre_process (shape inference
               and graph optimisation), then quantize_static: QDQ format,
               per-channel S8 weights, U8 activations (--activation), the calibration
               method of --method, optionally leaving nodes in fp32 (--exclude:
               the first conv and/or the heads' last 1x1 convs). Each quantised
               node gets its own Q/DQ pair on a shared input (DedicatedQDQPair):
               ORT fuses DQ -> Conv -> Q into QLinearConv only where the DQ has
               one consumer, and NanoDet's CSP blocks feed one tensor to two
               convs.
               Before calibration, TF's SAME padding of the max pool (a Pad with
               constant -inf, then MaxPool) is folded into the MaxPool's own
               pads, which is exact; the -inf would otherwise give an infinite
               range (a NaN scale with MinMax, an error with Entropy/Percentile).

Writes --output (default models/nanodet-g-416-int8.onnx) and prints its size
and sha256. The output's input and outputs have the same names, types and
shapes as the fp32 model's (QDQ keeps float interfaces).

Usage (a throwaway venv; GStreamer's Python bindings come from the system):
  /usr/bin/python3 -m venv --system-site-packages /tmp/qvenv
  /tmp/qvenv/bin/pip install onnxruntime==1.31.1 onnx numpy
  /tmp/qvenv/bin/python scripts/quantize_person_model.py
"""

import argparse
import hashlib
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_person_models import INPUT, decode_video, letterbox, load_labels, sha256  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models/nanodet-g-416.onnx"
CACHE = Path(os.environ.get("HEADCOUNT_CACHE", "/var/cache/headcount"))
MEDIA = Path(os.environ.get("HEADCOUNT_MEDIA", CACHE / "media"))
SCENARIOS = Path(os.environ.get("HEADCOUNT_SCENARIOS", CACHE / "scenarios"))
SIZE = (416, 320)
# Node names in models/nanodet-g-416.onnx.
FIRST_CONV = ["Conv__1"]
HEAD_CONVS = ["Conv__68", "Conv__77", "Conv__81"]  # the 1x1 convs giving scores and box logits
EXCLUDE = {"none": [], "first": FIRST_CONV, "heads": HEAD_CONVS, "first+heads": FIRST_CONV + HEAD_CONVS}


# --calibration with-large: frames of the face-redaction media (none of them in
# the scene set, tests/fixtures/scenes.toml), where people are 100-480 px tall:
# (file, index rule), each video's first 6 frames that match.
LARGE_PEOPLE = [
    ("messi5.jpg", lambda i: i == 0),
    ("astronaut.png", lambda i: i == 0),
    ("movie.avi", lambda i: i % 11 == 5),
    ("carphone_pristine.mp4", lambda i: i % 20 == 10),
    ("Megamind.avi", lambda i: i % 45 == 22),
]


def large_people_frames():
    """[(source, index, RGB frame)] from LARGE_PEOPLE."""
    chosen = []
    for name, rule in LARGE_PEOPLE:
        path = MEDIA / "faces" / name
        if not path.is_file():
            sys.exit(f"{path} is missing: run scripts/setup.sh")
        frames = decode_video(path, None)
        chosen += [(name, i, frames[i]) for i in sorted(frames) if rule(i)][:6]
    return chosen


def calibration_frames(with_large):
    """The fixed calibration set: [(source, index, RGB frame)]: vtest frames
    away from the labelled ones, optionally frames with large people, then
    busy_door frames up to 100."""
    _, labels = load_labels()
    labelled = {l["frame"] for l in labels}
    vtest = MEDIA / "vtest.avi"
    wanted = {f for f in range(795) if f % 30 in (10, 20)}
    assert not wanted & labelled and all(min(abs(f - g) for g in labelled) >= 10 for f in wanted)
    frames = decode_video(vtest, wanted)
    chosen = [("vtest.avi", f, frames[f]) for f in sorted(frames)]
    if with_large:
        chosen += large_people_frames()
    busy = SCENARIOS / "busy_door.ts"
    if not busy.is_file():
        sys.exit(f"{busy} is missing: run scripts/setup.sh")
    scenario = decode_video(busy, {i for i in range(100000) if i % 16 == 8})
    picks = sorted(scenario)[: 100 - len(chosen)]
    chosen += [("busy_door.ts", i, scenario[i]) for i in picks]
    if len(chosen) != 100:
        sys.exit(f"expected 100 calibration frames, got {len(chosen)}")
    return chosen


class Reader(CalibrationDataReader):
    """onnxruntime.quantization.CalibrationDataReader over the letterboxed
    calibration frames."""

    def __init__(self, tensors):
        self.tensors = tensors
        self.rewind()

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        self.it = iter({INPUT: t} for t in self.tensors)


def fold_maxpool_padding(path):
    """Pad(constant -inf) -> MaxPool becomes MaxPool with pads, in place."""
    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    consumers = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    folded = 0
    for pad in list(graph.node):
        if pad.op_type != "Pad" or len(pad.input) < 3 or pad.input[2] not in inits:
            continue
        users = consumers.get(pad.output[0], [])
        mode = [a for a in pad.attribute if a.name == "mode"]
        if not (np.isneginf(inits[pad.input[2]]).all() and len(users) == 1 and users[0].op_type == "MaxPool"
                and (not mode or mode[0].s == b"constant")):
            continue
        pads = inits[pad.input[1]].tolist()  # [n, c, h, w] begins, then ends
        pool = users[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in pool.attribute}
        if (pads[0] or pads[1] or pads[4] or pads[5] or attrs.get("auto_pad", b"NOTSET") != b"NOTSET"
                or any(attrs.get("pads", [0]))):
            continue
        for a in [a for a in pool.attribute if a.name == "pads"]:
            pool.attribute.remove(a)
        pool.attribute.append(onnx.helper.make_attribute("pads", [pads[2], pads[3], pads[6], pads[7]]))
        pool.input[0] = pad.input[0]
        graph.node.remove(pad)
        folded += 1
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    onnx.save(model, str(path))
    return folded


def check_same(a, b, tensor):
    """The two fp32 models give the same outputs for `tensor`."""
    outs = []
    for path in (a, b):
        sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {INPUT: tensor}))
    return max(float(np.abs(x - y).max()) for x, y in zip(*outs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="minmax")
    parser.add_argument("--exclude", choices=sorted(EXCLUDE), default="none")
    parser.add_argument("--activation", choices=["s8", "u8"], default="u8",
                        help="u8: ORT on x86 fuses every QDQ group (S8 left 19 of 34 convs fp32)")
    parser.add_argument("--reduce-range", action="store_true", help="7-bit weights (AVX2 without VNNI saturation)")
    parser.add_argument("--calibration", choices=["project", "with-large"], default="project",
                        help="with-large: 20 of the 100 frames from the face-redaction media, people 100-480 px tall")
    parser.add_argument("--output", type=Path, default=REPO / "models/nanodet-g-416-int8.onnx")
    args = parser.parse_args()

    manifest = tomllib.loads((REPO / "models/manifest.toml").read_text())
    entry = next(m for m in manifest["model"] if m["file"] == MODEL.name)
    if sha256(MODEL) != entry["sha256"]:
        sys.exit(f"{MODEL} differs from models/manifest.toml")

    started = time.time()
    frames = calibration_frames(args.calibration == "with-large")
    tensors = [letterbox(rgb, *SIZE)[0] for _, _, rgb in frames]
    counts = {}
    for source, _, _ in frames:
        counts[source] = counts.get(source, 0) + 1
    print(f"onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}, numpy {np.__version__}")
    print(f"calibration: {len(tensors)} frames at {SIZE[0]}x{SIZE[1]} ({counts}); "
          f"first {[(s, i) for s, i, _ in frames[:3]]}, last {[(s, i) for s, i, _ in frames[-2:]]}")

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[args.method]
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Symbolic shape inference cannot resolve the Reshape to "rows" here; ONNX
        # shape inference and the ORT graph optimisation still run.
        quant_pre_process(str(MODEL), str(prepared), skip_symbolic_shape=True)
        folded = fold_maxpool_padding(prepared)
        diff = check_same(MODEL, prepared, tensors[0])
        print(f"prepared: {folded} -inf Pad folded into MaxPool; outputs differ from the original by at most {diff:g}")
        if folded != 1 or diff > 1e-4:
            sys.exit("preparation changed the model")
        quantize_static(
            str(prepared),
            str(args.output),
            Reader(tensors),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if args.activation == "s8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=args.reduce_range,
            calibrate_method=method,
            nodes_to_exclude=EXCLUDE[args.exclude],
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, "DedicatedQDQPair": True},
        )
    print(f"calibration {args.calibration}, method {args.method}, exclude {args.exclude} {EXCLUDE[args.exclude]}, activations {args.activation}, "
          f"reduce_range {args.reduce_range}; {time.time() - started:.0f} s")
    print(f"wrote {args.output}: {args.output.stat().st_size:,} B, sha256 {sha256(args.output)}")


if __name__ == "__main__":
    main()
