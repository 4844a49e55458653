#!/usr/bin/env python3
"""Helper for scripts/convert-person-model.sh (runs inside the throwaway venv).

Subcommands:
  strip IN.pb OUT.pb
      Remove the attributes that tf2onnx 1.17 + onnx 1.23 cannot type
      ("Could not infer the attribute type"): the `_input_shapes` /
      `_output_shapes` annotations and empty list attributes such as
      `explicit_paddings`.
  canonicalize IN.onnx OUT.onnx
  dynamic IN.onnx OUT.onnx
      Renumber tf2onnx's generated names so the output is byte-reproducible.
  compare FROZEN.pb MODEL.onnx
      Run the frozen TF graph and the ONNX model on the same inputs and fail
      unless they agree.
  reference VIDEO OUT.json MODEL.onnx [FRAME ...]
      Decode frames (needs opencv-python-headless), run NanoDet with the
      reference pre/post-processing and write person boxes, in pixels of the
      original frame, as {"frame_N": [[x1, y1, x2, y2, score], ...]}.
"""
import json
import os
import sys

import numpy as np

INPUT = "input_1:0"
OUTPUTS = [f"Identity{s}:0" for s in ("", "_1", "_2", "_3", "_4", "_5")]
SIZE = 416
STRIDES = (8, 16, 32)
REG_BINS = 11  # reg_max = 10 -> 11 bins per side
MEAN = np.array([103.53, 116.28, 123.675], dtype=np.float32)  # B, G, R
STD = np.array([57.375, 57.12, 58.395], dtype=np.float32)


def strip(src, dst):
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    with open(src, "rb") as f:
        gd.ParseFromString(f.read())
    removed = 0
    for node in gd.node:
        for key in list(node.attr):
            value = node.attr[key]
            empty_list = value.WhichOneof("value") == "list" and not value.list.ListFields()
            if key in ("_input_shapes", "_output_shapes") or empty_list:
                del node.attr[key]
                removed += 1
    with open(dst, "wb") as f:
        f.write(gd.SerializeToString())
    print(f"strip: {len(gd.node)} nodes, removed {removed} attributes")


def canonicalize(src, dst):
    """Make tf2onnx's output byte-reproducible.

    tf2onnx numbers the names it invents (`pad_const__118`, `Conv__146`) from
    counters whose values, and the initializer order, change from run to run.
    Renumber those names in graph order and sort initializers by first use, so
    the same input always gives the same bytes and the model can be pinned.
    """
    import re

    import onnx

    model = onnx.load(src)
    g = model.graph
    generated = re.compile(r"^(.*?)__\d+(:\d+)?$")
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    mapping, counter = {}, [0]

    def rename(name):
        if not name or name in keep:
            return name
        if name not in mapping:
            m = generated.match(name)
            if m:
                mapping[name] = f"{m.group(1)}__{counter[0]}{m.group(2) or ''}"
                counter[0] += 1
            else:
                mapping[name] = name
        return mapping[name]

    order = {}
    for node in g.node:
        node.name = rename(node.name)
        for i, name in enumerate(node.input):
            node.input[i] = rename(name)
            order.setdefault(node.input[i], len(order))
        for i, name in enumerate(node.output):
            node.output[i] = rename(name)
    for vi in g.value_info:
        vi.name = rename(vi.name)
    inits = sorted(g.initializer, key=lambda t: order.get(rename(t.name), len(order)))
    inits = [onnx.TensorProto.FromString(t.SerializeToString()) for t in inits]
    for t in inits:
        t.name = rename(t.name)
    del g.initializer[:]
    g.initializer.extend(inits)
    vis = sorted((onnx.ValueInfoProto.FromString(v.SerializeToString()) for v in g.value_info),
                 key=lambda v: v.name)
    del g.value_info[:]
    g.value_info.extend(vis)
    clashes = len(set(mapping.values())) != len(mapping)
    if clashes:
        sys.exit("canonicalize: renaming produced duplicate names")
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, dst)
    print(f"canonicalize: renumbered {sum(k != v for k, v in mapping.items())} names")


def dynamic(src, dst):
    """Declare the input's height and width (and the outputs' row counts)
    dynamic. The graph is fully convolutional and its reshapes use -1, so a
    16:9 frame can be fed as 416x256 instead of padded to 416x416, which costs
    ~40 % less. Checks that 416x416 gives the same outputs as before and that
    a smaller multiple of 32 runs.
    """
    import onnx

    model = onnx.load(src)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "rows"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, dst)
    x = _test_inputs()[0]
    before, after = _run_onnx(src, [x])[0], _run_onnx(dst, [x])[0]
    # Unknown shapes can select other kernels: equal up to float rounding.
    diff = max(float(np.abs(before[k] - after[k]).max()) for k in before)
    if diff > 1e-4:
        sys.exit(f"dynamic: outputs at 416x416 changed by {diff}")
    wide = np.random.default_rng(1).uniform(-2, 2, (1, 3, 256, 416)).astype(np.float32)
    rows = [o.shape[1] for o in _run_onnx(dst, [wide])[0].values()]
    if rows != [1664, 416, 104, 1664, 416, 104]:
        sys.exit(f"dynamic: unexpected rows {rows} for a 416x256 input")
    print(f"dynamic: input height and width are now dynamic (416x416 max abs diff {diff:.2e})")


def _test_inputs():
    rng = np.random.default_rng(0)
    # one random input plus one shaped like a normalised image
    a = rng.standard_normal((1, 3, SIZE, SIZE), dtype=np.float32)
    b = rng.uniform(-2.0, 2.2, (1, 3, SIZE, SIZE)).astype(np.float32)
    return [a, b]


def _run_onnx(path, xs):
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = [o.name for o in sess.get_outputs()]
    return [dict(zip(outs, sess.run(None, {name: x}))) for x in xs]


def compare(pb, onnx_path):
    import tensorflow as tf

    xs = _test_inputs()
    gd = tf.compat.v1.GraphDef()
    with open(pb, "rb") as f:
        gd.ParseFromString(f.read())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(gd, name="")
    with tf.compat.v1.Session(graph=graph) as s:
        ref = [dict(zip(OUTPUTS, s.run(OUTPUTS, {INPUT: x}))) for x in xs]
    got = _run_onnx(onnx_path, xs)
    worst = 0.0
    for r, g in zip(ref, got):
        for name in OUTPUTS:
            if r[name].shape != g[name].shape:
                sys.exit(f"compare: {name} shape {g[name].shape} != TF {r[name].shape}")
            worst = max(worst, float(np.abs(r[name] - g[name]).max()))
    print(f"compare: ONNX vs frozen TF graph, max abs diff {worst:.3g}")
    if worst > 1e-3:
        sys.exit("compare: ONNX output differs from the TF graph")


# ---- reference pre/post-processing -------------------------------------------------

def letterbox(bgr):
    """Scale the longer side to SIZE keeping aspect, pad bottom/right with 0.

    Returns the NCHW float tensor and the scale factor (model px per frame px).
    """
    import cv2

    h, w = bgr.shape[:2]
    scale = SIZE / max(h, w)
    nw, nh = round(w * scale), round(h * scale)
    canvas = np.zeros((SIZE, SIZE, 3), dtype=np.float32)
    resized = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas[:nh, :nw] = (resized.astype(np.float32) - MEAN) / STD
    # padding stays 0 == the per-channel mean after normalisation
    return canvas.transpose(2, 0, 1)[None].copy(), scale


def decode(outputs, score_thr=0.5, cls=0):
    """outputs: 6 arrays (scores s8, s16, s32, dist s8, s16, s32) -> boxes in model px."""
    boxes, scores = [], []
    proj = np.arange(REG_BINS, dtype=np.float32)
    for k, stride in enumerate(STRIDES):
        sc = outputs[k][0][:, cls]
        reg = outputs[3 + k][0]
        n = SIZE // stride  # cells per row (52, 26, 13)
        assert sc.shape[0] == n * n, (sc.shape, stride)
        keep = np.nonzero(sc >= score_thr)[0]
        if keep.size == 0:
            continue
        logits = reg[keep].reshape(-1, 4, REG_BINS)  # side-major: l, t, r, b
        e = np.exp(logits - logits.max(axis=2, keepdims=True))
        dist = (e / e.sum(axis=2, keepdims=True)) @ proj * stride  # (k, 4)
        cx = (keep % n + 0.5) * stride
        cy = (keep // n + 0.5) * stride
        boxes.append(np.stack([cx - dist[:, 0], cy - dist[:, 1],
                               cx + dist[:, 2], cy + dist[:, 3]], axis=1))
        scores.append(sc[keep])
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    return np.concatenate(boxes), np.concatenate(scores)


def nms(boxes, scores, iou_thr=0.5):
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
        iou = inter / (area(boxes[i]) + area(boxes[rest]) - inter + 1e-9)
        order = rest[iou <= iou_thr]
    return np.array(keep, dtype=np.int64)


def detect(sess, bgr, score_thr=0.5, iou_thr=0.5):
    x, scale = letterbox(bgr)
    outs = sess.run(OUTPUTS_ONNX, {sess.get_inputs()[0].name: x})
    boxes, scores = decode(outs, score_thr)
    keep = nms(boxes, scores, iou_thr)
    h, w = bgr.shape[:2]
    res = []
    for i in keep:
        b = boxes[i] / scale
        b = np.clip(b, 0, [w, h, w, h])
        res.append([round(float(v), 1) for v in b] + [round(float(scores[i]), 4)])
    return res


OUTPUTS_ONNX = OUTPUTS  # tf2onnx keeps the TF tensor names


def reference(video, out_json, model, frames):
    import cv2
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    cap = cv2.VideoCapture(video)
    result, idx, wanted = {}, 0, sorted(frames)
    while wanted:
        ok, frame = cap.read()
        if not ok:
            sys.exit(f"reference: video ended before frame {wanted[0]}")
        if idx == wanted[0]:
            wanted.pop(0)
            cv2.imwrite(os.path.join(os.path.dirname(os.path.abspath(out_json)), f"vtest_f{idx}.png"), frame)
            dets = detect(sess, frame)
            result[f"frame_{idx}"] = dets
            print(f"frame {idx}: {frame.shape[1]}x{frame.shape[0]}, {len(dets)} persons")
        idx += 1
    with open(out_json, "w") as f:  # one box per line, easy to diff
        f.write("{\n" + ",\n".join(
            f' "{k}": [' + ",".join(f"\n  {json.dumps(b)}" for b in v) + ("\n ]" if v else "]")
            for k, v in result.items()) + "\n}\n")


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "strip":
        strip(*args)
    elif cmd == "canonicalize":
        canonicalize(*args)
    elif cmd == "dynamic":
        dynamic(*args)
    elif cmd == "compare":
        compare(*args)
    elif cmd == "reference":
        frames = [int(a) for a in args[3:]] or [0, 100, 200]
        reference(args[0], args[1], args[2], frames)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
