#!/usr/bin/env bash
# Fetch the pretrained MobileNetV2 that the npm package nsfwjs@4.4.0 (MIT) bundles, convert it
# to DIR/mobilenetv2.onnx, and check the conversion against TensorFlow.js itself.
#
# usage: scripts/get-mobilenetv2.sh DIR
#
# - `npm pack nsfwjs@4.4.0`; its dist/models/mobilenet_v2/ (a Keras MobileNetV2 1.0/224 as a
#   TF.js layers-model, weights 8-bit quantized) is unbundled into DIR/nsfwjs-mobilenet_v2/
#   (model.json + weight shard; scripts/tfjs_unbundle.js) and converted by
#   scripts/tfjs_to_onnx.py: batch norm kept, NCHW input, node names = Keras layer names,
#   normalization mean 0.5, std 0.5 (x / 127.5 - 1, MobileNetV2's ImageNet convention) and
#   nsfwjs' 5 class names in metadata_props. DIR/LICENSE.nsfwjs is the package's licence.
# - The check: npm @tensorflow/tfjs (pure JavaScript, its CPU backend) and `parcnn predict
#   --npy-in` run the original and the converted model on the same 4 generated images
#   (noise, gradients, stripes, blobs); the logits must agree within 1e-4 (relative max-abs),
#   else the script fails. tfjs is installed once into DIR/tfjs/ (or $PARCNN_TFJS_DIR).
# Needs node + npm, Debian's python3-onnx and python3-numpy, and a built parcnn
# ($PARCNN, default build/parcnn). Nothing is downloaded when DIR already holds both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# = 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
mkdir -p "$1"
dir=$(cd "$1" && pwd)
parcnn=${PARCNN:-$root/build/parcnn}
tfjs_dir=${PARCNN_TFJS_DIR:-$dir/tfjs}
py=/usr/bin/python3 # Debian's, with python3-onnx and python3-numpy
package=nsfwjs@4.4.0
tfjs=@tensorflow/tfjs@4.22.0
[ -x "$parcnn" ] || { echo "get-mobilenetv2: $parcnn not found: build parcnn first (or set PARCNN)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$dir/nsfwjs-mobilenet_v2/model.json" ] || [ ! -f "$dir/mobilenetv2.onnx" ]; then
    echo "get-mobilenetv2: npm pack $package"
    (cd "$tmp" && npm pack --silent "$package" > /dev/null && tar xzf nsfwjs-*.tgz) ||
        { echo "get-mobilenetv2: npm pack $package failed (is the npm registry reachable?)" >&2; exit 1; }
    node "$root/scripts/tfjs_unbundle.js" "$tmp/package/dist/models/mobilenet_v2" "$dir/nsfwjs-mobilenet_v2"
    cp "$tmp/package/LICENSE" "$dir/LICENSE.nsfwjs"
    classes=$(node -e 'const c = require(process.argv[1]).NSFW_CLASSES;
        process.stdout.write(Object.keys(c).sort((a, b) => a - b).map(k => c[k]).join(","))' \
        "$tmp/package/dist/cjs/nsfw_classes.js")
    "$py" "$root/scripts/tfjs_to_onnx.py" "$dir/nsfwjs-mobilenet_v2" "$dir/mobilenetv2.onnx" \
        --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --classes "$classes" --name mobilenetv2-nsfwjs \
        --doc "Keras MobileNetV2 1.0/224 from the npm package $package (MIT, see LICENSE.nsfwjs): \
layers up to block_10 ImageNet weights, the layers above retrained on nsfwjs' 5 classes; every \
tensor 8-bit quantized (min + scale x uint8). Converted by parcnn scripts/tfjs_to_onnx.py."
fi

if [ ! -d "$tfjs_dir/node_modules/@tensorflow/tfjs" ]; then
    echo "get-mobilenetv2: npm install $tfjs (for the check)"
    mkdir -p "$tfjs_dir"
    (cd "$tfjs_dir" && npm install --no-audit --no-fund --silent "$tfjs") ||
        { echo "get-mobilenetv2: npm install $tfjs failed" >&2; exit 1; }
fi
"$py" - "$tmp/x.npy" <<'PY'
import sys
import numpy as np
r = np.random.default_rng(7)
yy, xx = np.mgrid[0:224, 0:224] / 223.0
pixels = np.stack([
    r.uniform(0, 1, (3, 224, 224)),                                    # noise
    np.stack([xx, yy, 1 - xx * yy]),                                   # gradients
    np.stack([(np.sin(xx * 40 + c) > 0) * 0.8 + 0.1 for c in range(3)]), # stripes
    np.stack([np.exp(-((xx - 0.3 - 0.2 * c) ** 2 + (yy - 0.5) ** 2) * 20) for c in range(3)]),
]).astype(np.float32)
np.save(sys.argv[1], (pixels - 0.5) / 0.5)  # the model's normalization
PY
NODE_PATH="$tfjs_dir/node_modules" node "$root/scripts/tfjs_run.js" "$dir/nsfwjs-mobilenet_v2" \
    "$tmp/x.npy" "$tmp/tfjs.npy" > /dev/null 2> "$tmp/tfjs.err" || { cat "$tmp/tfjs.err" >&2; exit 1; }
"$parcnn" predict --weights "$dir/mobilenetv2.onnx" --npy-in "$tmp/x.npy" --npy-out "$tmp/parcnn.npy" > /dev/null
"$py" "$root/tests/onnx/compare.py" "$tmp/parcnn.npy" "$tmp/tfjs.npy" 1e-4 \
    "get-mobilenetv2: parcnn vs TensorFlow.js logits on 4 images" ||
    { echo "get-mobilenetv2: the conversion does not match TensorFlow.js" >&2; exit 1; }
echo "get-mobilenetv2: $dir/mobilenetv2.onnx"
