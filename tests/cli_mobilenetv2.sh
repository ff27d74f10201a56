#!/usr/bin/env bash
# The pretrained MobileNetV2 of nsfwjs (scripts/get-mobilenetv2.sh), converted to ONNX:
# - the script's own check passes: parcnn's logits within 1e-4 of TensorFlow.js' on 4 images;
# - the layers keep their Keras names and the model its normalization and class names;
# - --init with --cut block_13_expand_relu (Keras' name of the ReLU6 fused into
#   block_13_expand_BN, its alias) trains a head on cached features, the bytes of
#   --cut block_13_expand_BN;
# - parcnn's export of it passes the onnx checker and runs on onnxruntime-node (1e-4).
# The package and @tensorflow/tfjs are fetched once into the build tree (mobilenetv2/); without
# them and without a reachable npm registry the test is skipped, saying so.
# usage: cli_mobilenetv2.sh PARCNN SOURCE_DIR
set -u
parcnn=$1 src=$2
py=/usr/bin/python3
. "$(dirname "$0")/lib.sh"

dir=$PWD/mobilenetv2
if [ ! -d "$dir/tfjs/node_modules/@tensorflow/tfjs" ] &&
   ! { command -v npm > /dev/null && timeout 60 npm view nsfwjs@4.4.0 version > /dev/null 2>&1; }; then
    echo "skipped: npm or the npm registry is not reachable (nsfwjs@4.4.0 cannot be fetched)"
    echo "0 passed, 0 failed"
    exit 0
fi
if PARCNN=$parcnn bash "$src/scripts/get-mobilenetv2.sh" "$dir" > "$tmp/get.log" 2>&1; then
    ok "get-mobilenetv2.sh: $(grep 'vs TensorFlow.js' "$tmp/get.log")"
else
    bad "get-mobilenetv2.sh:"; cat "$tmp/get.log"
    echo "$passed passed, $failed failed"; exit 1
fi
model=$dir/mobilenetv2.onnx

"$parcnn" inspect "$model" > "$tmp/inspect.txt" 2>&1
grep -qE "^ +[0-9]+ +block_13_expand_BN +batchnorm .* \+relu6 .* 576x14x14 .* alias block_13_expand_relu$" "$tmp/inspect.txt" &&
grep -qE "^ +[0-9]+ +block_1_pad +pad .* 96x113x113" "$tmp/inspect.txt" &&
grep -qE "^ +[0-9]+ +Conv_1_bn +batchnorm .* \+relu6 .* 1280x7x7" "$tmp/inspect.txt" &&
grep -q "^total: 2585349 parameters, 34112 batch-norm statistics" "$tmp/inspect.txt" \
    && ok "Keras layer names, asymmetric pads and unfolded batch norms (ReLU6 fused, its name the alias) kept" || { bad "inspect:"; cat "$tmp/inspect.txt"; }
grep -q "mean 0.5,0.5,0.5 std 0.5,0.5,0.5" "$tmp/inspect.txt" && grep -q "classes (5): Drawing Hentai Neutral Porn Sexy" "$tmp/inspect.txt" \
    && ok "normalization and nsfwjs' class names from metadata_props" || { bad "metadata:"; tail -2 "$tmp/inspect.txt"; }

# a head on block_13_expand_BN, trained on cached features of a few generated images
"$py" - "$tmp/imgs" <<'PY'
import os, sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(3)
for c, colour in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200)]):
    os.makedirs(f"{sys.argv[1]}/c{c}", exist_ok=True)
    for i in range(4):
        px = np.clip(rng.normal(colour, 40, (240, 260, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(px).save(f"{sys.argv[1]}/c{c}/{i}.png")
PY
for cut in block_13_expand_relu block_13_expand_BN; do
    "$parcnn" train --init "$model" --cut $cut --freeze all-but-head --data "folder:$tmp/imgs" \
        --val-split 0.25 --epochs 2 --batch 4 --shard-size 2 --no-progress --out "$tmp/$cut" > "$tmp/$cut.log" 2>&1 &&
    grep -q "features of head_pool (576 floats per image): extracted 9 training images" "$tmp/$cut.log" \
        && ok "--init --cut $cut: a head on 576 cached features" || { bad "--cut $cut:"; cat "$tmp/$cut.log"; }
done
cmp -s "$tmp/block_13_expand_relu/model.safetensors" "$tmp/block_13_expand_BN/model.safetensors" \
    && ok "--cut block_13_expand_relu (the alias) and block_13_expand_BN: identical bytes" || bad "--cut by alias differs"

# parcnn's export of the imported network: the onnx checker accepts it and onnxruntime-node
# (installed into the build tree as tests/cli_onnx.sh does) computes parcnn's logits
ort_dir=$PWD/onnx-node
[ -d "$ort_dir/node_modules/onnxruntime-node" ] ||
    (mkdir -p "$ort_dir" && cd "$ort_dir" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit \
        --no-fund --silent onnxruntime-node@1.31.1)
"$py" -c "import numpy as np; np.save('$tmp/x.npy', np.random.default_rng(4).standard_normal((2, 3, 224, 224)).astype(np.float32))"
if "$parcnn" export --weights "$model" --out "$tmp/re.onnx" > /dev/null &&
   "$parcnn" predict --weights "$model" --npy-in "$tmp/x.npy" --npy-out "$tmp/parcnn.npy" > /dev/null &&
   NODE_PATH="$ort_dir/node_modules" node "$src/tests/onnx/ort_run.js" "$tmp/re.onnx" "$tmp/x.npy" "$tmp/ort.npy" &&
   "$py" "$src/tests/onnx/check_model.py" "$tmp/re.onnx" > /dev/null &&
   out=$("$py" "$src/tests/onnx/compare.py" "$tmp/ort.npy" "$tmp/parcnn.npy" 1e-4 "re-export on onnxruntime vs parcnn"); then
    ok "$out; onnx checker passes"
else
    bad "re-export on onnxruntime: ${out:-export, predict, onnxruntime or the checker failed}"
fi

finish
