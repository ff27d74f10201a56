#!/usr/bin/env bash
# Transfer learning (docs/transfer.md) on torchvision's resnet18 (random weights, exported by
# torch.onnx.export with ImageNet normalization in its metadata) and small generated image
# folders (tests/transfer/make_fixtures.py; no ../shared needed):
# - --init MODEL.onnx: input size and normalization from the model, images centre-cropped;
#   the saved model predicts image files;
# - --bn-recalibrate agrees with PyTorch's training-mode statistics on the same images;
# - frozen layers (and their batch-norm statistics) stay bit-identical, unfrozen ones move;
# - identical bytes for 1 and 2 workers with recalibration, frozen layers, --cut,
#   --unfreeze-at and cached features; cached features give the bytes of training through
#   the frozen backbone; the disk cache is reused, and rebuilt when corrupt or the data change;
# - --cut and --freeze up-to also take a fused ReLU's name (the layer's alias), same bytes;
# - bad input: unknown --cut / --freeze names (the error lists the layers), a 1-class head,
#   a head that does not match the data, images below half the crop, ...
# usage: cli_transfer.sh PARCNN SOURCE_DIR
set -u
parcnn=$1 src=$2
py=/usr/bin/python3   # Debian's, with python3-torch, -torchvision, -onnx, -numpy, -pil
. "$(dirname "$0")/lib.sh"
# expect NAME STATUS PATTERN -- COMMAND...: exit status and one stderr line matching PATTERN
# tensors FILE... <<'PY': the Python check on stdin, with `files` the tensors (name -> float32
# array) of each safetensors FILE; its exit status
tensors() {
    $py -c '
import json, struct, sys
import numpy as np
def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], "<f4")
            for k, v in head.items() if k != "__metadata__"}
files = [load(path) for path in sys.argv[1:]]
exec(sys.stdin.read())' "$@"
}

fx=$tmp/fx
mkdir -p "$fx"
$py "$src/tests/transfer/make_fixtures.py" "$fx" > "$tmp/fx.log" 2>&1 || { bad "fixtures:"; cat "$tmp/fx.log"; echo "$passed passed, $failed failed"; exit 1; }
"$parcnn" import "$fx/r18.onnx" --out "$tmp/pre" > /dev/null 2>&1 || bad "import r18.onnx"
common=(--init "$fx/r18.onnx" --data "folder:$fx/imgs" --epochs 2 --batch 16 --shard-size 8 --no-progress)

# -- the whole backbone frozen: cached features, recalibration, 1 vs 2 workers
"$parcnn" train "${common[@]}" --freeze all-but-head --bn-recalibrate 32 --workers 1 --out "$tmp/f1" > "$tmp/f1.log" 2>&1 || { bad "features, 1 worker:"; cat "$tmp/f1.log"; }
"$parcnn" train "${common[@]}" --freeze all-but-head --bn-recalibrate 32 --workers 2 --out "$tmp/f2" > "$tmp/f2.log" 2>&1 || bad "features, 2 workers"
"$parcnn" train "${common[@]}" --freeze all-but-head --bn-recalibrate 32 --workers 2 --no-feature-cache --out "$tmp/f3" > "$tmp/f3.log" 2>&1 || bad "--no-feature-cache"
grep -q "train images from .*imgs/train: 48 in 3 classes, 32x32x3" "$tmp/f1.log" && ok "--init: images resized and cropped to the model's 32x32" || bad "input size from the model"
grep -q "features of avgpool_GlobalAveragePool (512 floats per image): extracted 48 training images x 1 view(s) and 18 test" "$tmp/f1.log" \
    && grep -qE "^time: feature extraction [0-9.]+ s, head training [0-9.]+ s" "$tmp/f1.log" \
    && ok "cached features: extraction and head-training times in the summary" || { bad "features summary:"; cat "$tmp/f1.log"; }
cmp -s "$tmp/f1/model.safetensors" "$tmp/f2/model.safetensors" && ok "features + recalibration: identical bytes for 1 and 2 workers" || bad "features differ across workers"
cmp -s "$tmp/f1/model.safetensors" "$tmp/f3/model.safetensors" && ok "cached features: the bytes of training through the frozen backbone" || bad "cached features differ from the uncached run"
"$parcnn" inspect "$tmp/f1/model.safetensors" > "$tmp/inspect.txt" 2>&1
grep -q "mean 0.485,0.456,0.406 std 0.229,0.224,0.225" "$tmp/inspect.txt" && grep -q "classes (3): c0 c1 c2" "$tmp/inspect.txt" \
    && ok "saved model: the ONNX metadata's normalization, the data's classes" || { bad "saved metadata:"; tail -3 "$tmp/inspect.txt"; }
"$parcnn" predict --weights "$tmp/f1/model.safetensors" --top 1 "$fx/imgs/test/c1/00.jpg" > "$tmp/pred.txt" 2>&1 \
    && grep -qE "00.jpg:  c[012] [01]\.[0-9]{4}" "$tmp/pred.txt" && ok "predict on an image file with the transferred model" || { bad "predict:"; cat "$tmp/pred.txt"; }

# -- recalibration against PyTorch (37x37 images: the crop is exact)
"$parcnn" train --init "$fx/r18.onnx" --data "folder:$fx/sq" --epochs 1 --batch 16 --shard-size 8 --no-progress \
    --freeze all-but-head --bn-recalibrate 40 --out "$tmp/rc" > "$tmp/rc.log" 2>&1 || bad "recalibration run"
grep -q "recalibrated from 40 training images" "$tmp/rc.log" || bad "recalibration summary"
if out=$($py "$src/tests/transfer/check_recalibration.py" "$fx" "$tmp/rc/model.safetensors" 40 8 2>&1); then
    ok "--bn-recalibrate 40: PyTorch's training-mode statistics ($out)"
else bad "recalibration vs PyTorch: $out"; fi

# -- --cut, --freeze up-to, --unfreeze-at: 1 vs 2 workers; what is frozen stays put
cut=(--cut layer3_layer3_1_Add --freeze up-to=layer2_layer2_1_Add --optimizer sgd --lr 0.01)
"$parcnn" train "${common[@]}" "${cut[@]}" --workers 1 --out "$tmp/c1" > "$tmp/c1.log" 2>&1 || { bad "--cut, 1 worker:"; cat "$tmp/c1.log"; }
"$parcnn" train "${common[@]}" "${cut[@]}" --workers 2 --out "$tmp/c2" > "$tmp/c2.log" 2>&1 || bad "--cut, 2 workers"
cmp -s "$tmp/c1/model.safetensors" "$tmp/c2/model.safetensors" && ok "--cut + --freeze up-to: identical bytes for 1 and 2 workers" || bad "--cut differs across workers"
# the fused ReLUs' names (alias= of the layers they fused into) name the same layers
alias=(--cut layer3_layer3_1_relu_1_Relu --freeze up-to=layer2_layer2_1_relu_1_Relu --optimizer sgd --lr 0.01)
"$parcnn" train "${common[@]}" "${alias[@]}" --workers 1 --out "$tmp/a1" > "$tmp/a1.log" 2>&1 || { bad "--cut by alias:"; cat "$tmp/a1.log"; }
cmp -s "$tmp/c1/model.safetensors" "$tmp/a1/model.safetensors" && ok "--cut + --freeze up-to by a fused ReLU's name (alias): the bytes of the layer's name" || bad "--cut by alias differs"
tensors "$tmp/pre/model.safetensors" "$tmp/c1/model.safetensors" <<'PY' && ok "--freeze up-to: frozen weights and batch-norm statistics bit-identical, later layers trained, layers after --cut gone" || bad "frozen tensors"
pre, run = files
frozen = ["conv1.weight", "bn1.running_var", "layer2_1_conv2.weight", "layer2_0_bn1_5.running_mean"]
trained = ["layer3_0_conv1.weight", "layer3_0_bn1.running_mean", "head.weight"]
assert all((pre[k] == run[k]).all() for k in frozen), "a frozen tensor moved"
assert all(not (pre[k] == run[k]).all() for k in trained[:2]), "a trainable tensor did not move"
assert "layer4_0_conv1.weight" not in run and "fc.weight" not in run and run["head.weight"].size == 3 * 256
PY
"$parcnn" train "${common[@]}" "${cut[@]}" --unfreeze-at 1 --finetune-lr-mult 0.1 --bn-recalibrate 16 --workers 1 --out "$tmp/u1" > "$tmp/u1.log" 2>&1 || { bad "--unfreeze-at:"; cat "$tmp/u1.log"; }
"$parcnn" train "${common[@]}" "${cut[@]}" --unfreeze-at 1 --finetune-lr-mult 0.1 --bn-recalibrate 16 --workers 2 --out "$tmp/u2" > "$tmp/u2.log" 2>&1 || bad "--unfreeze-at, 2 workers"
cmp -s "$tmp/u1/model.safetensors" "$tmp/u2/model.safetensors" && ok "--unfreeze-at + recalibration: identical bytes for 1 and 2 workers" || bad "--unfreeze-at differs across workers"
tensors "$tmp/c1/model.safetensors" "$tmp/u1/model.safetensors" <<'PY' && ok "--unfreeze-at 1: the frozen layers train in epoch 2" || bad "--unfreeze-at did not unfreeze"
frozen, unfrozen = files
assert not (frozen["conv1.weight"] == unfrozen["conv1.weight"]).all()
PY

# -- the feature cache on disk: reused, rebuilt when corrupt or when the images change
fc=(--freeze all-but-head --augment flip --feature-views 2 --cache "$tmp/cache" --workers 2)
mkdir -p "$tmp/cache"
"$parcnn" train "${common[@]}" "${fc[@]}" --out "$tmp/d1" > "$tmp/d1.log" 2>&1 || { bad "--cache DIR:"; cat "$tmp/d1.log"; }
"$parcnn" train "${common[@]}" "${fc[@]}" --out "$tmp/d2" > "$tmp/d2.log" 2>&1
grep -q "loaded 48 training images x 2 view(s)" "$tmp/d2.log" && cmp -s "$tmp/d1/model.safetensors" "$tmp/d2/model.safetensors" \
    && ok "feature cache reused: the same bytes" || { bad "feature cache not reused:"; grep features "$tmp/d2.log"; }
f=$(ls "$tmp/cache"/features-*.cache)
printf '\x55' | dd of="$f" bs=1 seek=3000 conv=notrunc 2>/dev/null
"$parcnn" train "${common[@]}" "${fc[@]}" --out "$tmp/d3" > "$tmp/d3.log" 2>&1
grep -q "extracted .*(rebuilt: corrupt (its checksum does not match))" "$tmp/d3.log" && cmp -s "$tmp/d1/model.safetensors" "$tmp/d3/model.safetensors" \
    && ok "corrupt feature cache detected and rebuilt" || { bad "corrupt cache:"; grep features "$tmp/d3.log"; }
$py -c "from PIL import Image; Image.new('RGB', (50, 60), (200, 10, 10)).save('$fx/imgs/train/c0/99.png')"
"$parcnn" train "${common[@]}" "${fc[@]}" --out "$tmp/d4" > "$tmp/d4.log" 2>&1
grep -q "extracted 49 training images .*(rebuilt: made from other images" "$tmp/d4.log" && ok "feature cache rebuilt when the images change" || { bad "changed data:"; grep features "$tmp/d4.log"; }
rm "$fx/imgs/train/c0/99.png"

# -- --tta with cached features: the whole network evaluates the test images, as without the cache
"$parcnn" train "${common[@]}" --freeze all-but-head --tta flip --workers 1 --out "$tmp/t1" > "$tmp/t1.log" 2>&1 || { bad "features + --tta:"; cat "$tmp/t1.log"; }
"$parcnn" train "${common[@]}" --freeze all-but-head --tta flip --workers 2 --no-feature-cache --out "$tmp/t2" > "$tmp/t2.log" 2>&1 || bad "--tta, --no-feature-cache"
grep -q "extracted 48 training images" "$tmp/t1.log" && grep "^final:" "$tmp/t1.log" | grep -q "test-time augmentation flip" \
    && [ "$(grep "^final:" "$tmp/t1.log")" = "$(grep "^final:" "$tmp/t2.log")" ] && cmp -s "$tmp/t1/model.safetensors" "$tmp/t2/model.safetensors" \
    && ok "--tta flip with cached features: the metrics and bytes of training through the backbone" || { bad "--tta with cached features:"; grep "^final:" "$tmp/t1.log" "$tmp/t2.log"; }

# -- the recipes, on the small folder (shorter runs): 1 vs 2 workers
small=(--init "$fx/r18.onnx" --cut layer3_layer3_1_Add --data "folder:$fx/imgs" --epochs 2 --batch 16 --shard-size 8 --bn-recalibrate 16 --no-progress)
for r in features finetune; do
    extra=(); [ $r = finetune ] && extra=(--unfreeze-at 1)
    "$parcnn" train --recipe $r "${small[@]}" "${extra[@]}" --workers 1 --out "$tmp/$r-1" > "$tmp/$r-1.log" 2>&1 || { bad "recipe $r:"; cat "$tmp/$r-1.log"; }
    "$parcnn" train --recipe $r "${small[@]}" "${extra[@]}" --workers 2 --out "$tmp/$r-2" > "$tmp/$r-2.log" 2>&1 || bad "recipe $r, 2 workers"
    cmp -s "$tmp/$r-1/model.safetensors" "$tmp/$r-2/model.safetensors" && [ "$(grep "^final:" "$tmp/$r-1.log")" = "$(grep "^final:" "$tmp/$r-2.log")" ] \
        && ok "recipe $r: identical bytes and final metrics for 1 and 2 workers" || bad "recipe $r differs across workers"
done
grep -q "extracted 48 training images x 2 view(s)" "$tmp/features-1.log" && grep "^final:" "$tmp/features-1.log" | grep -q "test-time augmentation flip" \
    && ok "recipe features: two cached views per image, flip test-time augmentation" || bad "recipe features did not cache"
grep -q "they train from epoch 1 on, at 0.1 x the learning rate" "$tmp/finetune-1.log" && ok "recipe finetune: unfreezes at a tenth of the rate" || bad "recipe finetune schedule"

# -- bad input
expect "recipe features without --init" 2 "--recipe features needs --init" -- "$parcnn" train --recipe features --data "folder:$fx/imgs"
expect "--cut of an unknown layer lists the layers" 2 "^parcnn: error: --cut nosuch: .*r18.onnx has no layer of that name; its layers: conv1, bn1 \(relu_Relu\), maxpool_MaxPool, " -- \
    "$parcnn" train "${common[@]}" --cut nosuch
expect "--freeze up-to= an unknown layer lists the layers" 2 "^parcnn: error: --freeze up-to=nosuch: .* has no layer of that name; its layers: conv1, bn1 \(relu_Relu\), " -- \
    "$parcnn" train "${common[@]}" --freeze up-to=nosuch
expect "--head 1" 2 "^parcnn: error: --head 1: a classifier needs at least 2 classes" -- "$parcnn" train "${common[@]}" --head 1
expect "--head that does not match the data" 2 "^parcnn: error: --head 5: the data has 3 classes" -- "$parcnn" train "${common[@]}" --head 5
expect "--freeze without --init" 2 "^parcnn: error: --freeze needs --init MODEL" -- "$parcnn" train --freeze all-but-head --epochs 1
expect "--feature-views without --augment" 2 "^parcnn: error: --feature-views 3: the views differ only by --augment" -- \
    "$parcnn" train "${common[@]}" --freeze all-but-head --feature-views 3
expect "--tta and --ensemble with cached features" 2 "^parcnn: error: --tta with --ensemble: not with cached features" -- \
    "$parcnn" train "${common[@]}" --freeze all-but-head --tta flip --ensemble 2
expect "--init of a missing file" 1 "^parcnn: error: --init: .*nosuch.onnx" -- "$parcnn" train "${common[@]}" --init "$tmp/nosuch.onnx"
$py -c "from PIL import Image; Image.new('RGB', (40, 15), (0, 200, 0)).save('$fx/imgs/train/c1/tiny.png')"
expect "an image below half the crop" 1 "tiny.png: 40x15 pixels, less than half the model's 32x32 crop" -- "$parcnn" train "${common[@]}"
rm "$fx/imgs/train/c1/tiny.png"

finish
