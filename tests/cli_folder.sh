#!/usr/bin/env bash
# Image folders end to end, on JPEG and PNG folders that tests/make_images.c writes
# (CIFAR-10's class names, 32x32 and some 40x36 images): training with augmentation,
# identical bytes for any worker and loader thread count, a validation split with its
# file lists, predict on image files, check-data, bad images, and the cifar10 recipes'
# short runs.
# usage: cli_folder.sh PARCNN SOURCE_DIR
set -u
parcnn=$1 src=$2
make_images="$(dirname "$parcnn")/make_images"
. "$(dirname "$0")/lib.sh"
# tensors FILE... <<'PY': the Python check on stdin, with `files` the tensors (name -> raw
# bytes) of each safetensors FILE; its exit status
tensors() {
    /usr/bin/env python3 -c '
import json, struct, sys
def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    return {k: raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
            for k, v in head.items() if k != "__metadata__"}
files = [load(path) for path in sys.argv[1:]]
exec(sys.stdin.read())' "$@"
}

# 60 training and 20 test images per class
"$make_images" "$tmp/small" 60 20 || { echo "FAIL make_images"; exit 1; }
[ "$(ls "$tmp/small/train/cat" | grep -c '\.jpg$')" = 45 ] && [ "$(ls "$tmp/small/train/cat" | grep -c '\.png$')" = 15 ] \
    && ok "generated folders: JPEG and PNG images in every class" || bad "generated folders"
common=(--data "folder:$tmp/small" --model simple-cnn --epochs 2 --batch 64 --shard-size 8 --augment flip,crop=4,rotate=10,brightness=0.2,cutout=0.3 --no-progress)

"$parcnn" train "${common[@]}" --workers 1 --loader-threads 0 --out "$tmp/a" > "$tmp/a.log" 2>&1 || { bad "train on folders:"; cat "$tmp/a.log"; }
grep -q "train images from .*small/train: 600 in 10 classes, 32x32x3" "$tmp/a.log" && ok "summary: 600 training images in 10 classes" || bad "summary"
grep -q "airplane  *60" "$tmp/a.log" && ok "summary lists images per class" || bad "per-class counts"
"$parcnn" train "${common[@]}" --workers 2 --loader-threads 2 --out "$tmp/b" > "$tmp/b.log" 2>&1 || bad "train with 2 workers, 2 loader threads"
"$parcnn" train "${common[@]}" --workers 4 --loader-threads 1 --out "$tmp/c" > "$tmp/c.log" 2>&1 || bad "train with 4 workers"
cmp -s "$tmp/a/model.safetensors" "$tmp/b/model.safetensors" && cmp -s "$tmp/a/model.safetensors" "$tmp/c/model.safetensors" \
    && ok "augmented training: identical bytes for 1/2/4 workers and 0/1/2 loader threads" || bad "augmented training differs across workers or loader threads"
grep -q "time: data" "$tmp/b.log" && ok "per-epoch time split printed" || bad "no time split"
"$parcnn" train "${common[@]}" --workers 2 --cache none --out "$tmp/none" > "$tmp/none.log" 2>&1 || { bad "--cache none:"; cat "$tmp/none.log"; }
cmp -s "$tmp/a/model.safetensors" "$tmp/none/model.safetensors" && grep -q "checked (decoded again whenever used" "$tmp/none.log" \
    && ok "--cache none (decoding every batch): identical bytes" || bad "--cache none differs"

# predict on image files, with the class names stored in the model
"$parcnn" predict --weights "$tmp/a/model.safetensors" --top 3 "$tmp/small/test/cat/0000.jpg" "$tmp/small/test/cat/0003.png" > "$tmp/pred.txt" 2>&1
[ $? = 0 ] && grep -qE "cat/0000.jpg:  [a-z]+ 0\.[0-9]{4}  [a-z]+ 0\." "$tmp/pred.txt" && grep -qE "cat/0003.png:  [a-z]+ 0\.[0-9]{4}  [a-z]+ 0\." "$tmp/pred.txt" \
    && ok "predict JPEG and PNG files prints top-3 class names" || { bad "predict IMAGE:"; cat "$tmp/pred.txt"; }
"$parcnn" eval --weights "$tmp/a/model.safetensors" --data "folder:$tmp/small" > "$tmp/eval.txt" 2>&1 \
    && grep -q "samples   200" "$tmp/eval.txt" && ok "eval on the folder's test part" || { bad "eval on folder:"; cat "$tmp/eval.txt"; }

# a flat folder with a validation split and its file lists
mkdir -p "$tmp/flat"
cp -r "$tmp/small/train/"* "$tmp/flat/"
"$parcnn" train --data "folder:$tmp/flat" --val-split 0.2 --epochs 1 --batch 64 --no-progress --out "$tmp/split" > "$tmp/split.log" 2>&1 || { bad "val split:"; cat "$tmp/split.log"; }
[ "$(wc -l < "$tmp/split/train.txt" 2>/dev/null)" = 480 ] && [ "$(wc -l < "$tmp/split/val.txt" 2>/dev/null)" = 120 ] \
    && ok "--val-split 0.2: 480/120 stratified, file lists written" || bad "split lists"
[ "$(grep -c '^airplane/' "$tmp/split/val.txt")" = 12 ] && ok "the split is stratified per class" || bad "not stratified"
"$parcnn" train --data "folder:$tmp/flat" --epochs 1 --no-progress > "$tmp/nosplit.log" 2>&1
[ $? = 2 ] && grep -q -- "--val-split" "$tmp/nosplit.log" && ok "no test folder and no --val-split: usage error" || bad "missing split accepted"

# The cifar10 recipe (patch whitening, identity init, frozen parameters, scaled logits,
# Nesterov SGD with a bias multiplier, triangular schedule, label smoothing, alternating
# flips, flip+translate TTA) keeps the contract: same bytes for 1 and 2 workers.
recipe=(--recipe cifar10 --data "folder:$tmp/small" --epochs 2 --peak-epoch 0.5 --batch 256 --shard-size 64 --no-progress)
for w in 1 2; do
    "$parcnn" train "${recipe[@]}" --workers $w --out "$tmp/recipe-w$w" > "$tmp/recipe-w$w.log" 2>&1 || { bad "recipe cifar10, $w worker(s):"; tail -3 "$tmp/recipe-w$w.log"; }
    grep '^final:' "$tmp/recipe-w$w.log" > "$tmp/recipe-w$w.final"
done
cmp -s "$tmp/recipe-w1/model.safetensors" "$tmp/recipe-w2/model.safetensors" && [ -s "$tmp/recipe-w1.final" ] && cmp -s "$tmp"/recipe-w{1,2}.final \
    && ok "recipe cifar10: model and final (TTA) metrics identical for 1 and 2 workers" || bad "recipe cifar10 differs across workers"
grep -q "whiten whitens patches (init from 600 training images)" "$tmp/recipe-w1.log" && ok "recipe cifar10: first layer whitened from the data" || bad "no whitening line"
"$parcnn" train "${recipe[@]}" --max-steps 1 --out "$tmp/recipe-1step" > "$tmp/recipe-1step.log" 2>&1 || bad "recipe cifar10, 1 step"
tensors "$tmp/recipe-1step/model.safetensors" "$tmp/recipe-w1/model.safetensors" <<'PY' \
    && ok "frozen parameters (whitening filters, batch-norm scales) stay put while the rest trains" || bad "frozen parameters moved"
one, two = files
scales = [k for k in one if k.endswith(".weight") and k.replace(".weight", ".running_mean") in one]
assert len(scales) == 6, scales
for k in scales:
    assert one[k] == two[k] and set(struct.unpack("<%df" % (len(one[k]) // 4), one[k])) == {1.0}, k
assert one["whiten.weight"] == two["whiten.weight"]
moved = [k for k in one if one[k] != two[k]]
assert any(k.endswith(".bias") for k in moved) and "layers.4.weight" in moved, moved
PY
"$parcnn" train --recipe cifar10-wide --data "folder:$tmp/small" --epochs 1 --peak-epoch 0.5 --batch 256 --shard-size 64 \
    --max-steps 1 --no-progress --out "$tmp/wide-1step" > "$tmp/wide-1step.log" 2>&1 \
    && grep -q "model whitenet-wide: .*bf16 mixed precision" "$tmp/wide-1step.log" && [ -s "$tmp/wide-1step/model.safetensors" ] \
    && ok "recipe cifar10-wide: one step on whitenet-wide" || { bad "recipe cifar10-wide:"; tail -3 "$tmp/wide-1step.log"; }
# train_epochs=1 on the whitening layer: its bias trains in epoch 1 (steps 1-2) and then
# stays put while the rest trains on; a run stopped in epoch 2 and resumed freezes it too.
# (Lookahead syncs every step here: with the recipe's 5, the run's last step would move
# the weights towards slow ones older than step 2.)
sed 's/train_epochs=3/train_epochs=1/' "$src/models/whitenet.cfg" > "$tmp/whitenet-1.cfg"
timed=("${recipe[@]}" --model "$tmp/whitenet-1.cfg" --lookahead 1)
"$parcnn" train "${timed[@]}" --max-steps 2 --out "$tmp/timed-1" > "$tmp/timed-1.log" 2>&1 || bad "train_epochs: 2 steps"
"$parcnn" train "${timed[@]}" --out "$tmp/timed" > "$tmp/timed.log" 2>&1 || bad "train_epochs: whole run"
"$parcnn" train "${timed[@]}" --max-steps 3 --out "$tmp/timed-r" > /dev/null 2>&1 \
    && "$parcnn" train "${timed[@]}" --resume --out "$tmp/timed-r" > /dev/null 2>&1 || bad "train_epochs: resumed run"
grep -q "layer whiten trains for the first 1 epoch(s), then freezes" "$tmp/timed.log" && ok "train_epochs: said at start" || bad "train_epochs not said"
cmp -s "$tmp/timed/model.safetensors" "$tmp/timed-r/model.safetensors" && ok "train_epochs: 3 steps + resumed = the whole run" || bad "train_epochs: resumed run differs"
tensors "$tmp/timed-1/model.safetensors" "$tmp/timed/model.safetensors" <<'PY' \
    && ok "train_epochs=1: the whitening bias trains in epoch 1, then freezes" || bad "train_epochs: bias not frozen after epoch 1"
one, two = files
assert one["whiten.bias"] == two["whiten.bias"] and any(one["whiten.bias"][i] for i in range(96))
assert one["layers.4.weight"] != two["layers.4.weight"]
PY
"$parcnn" train --recipe cifar10 --no-progress > "$tmp/recipe-nodata.log" 2>&1
[ $? = 2 ] && grep -q -- "--recipe cifar10 needs --data" "$tmp/recipe-nodata.log" && ok "recipe cifar10 without --data: usage error" || { bad "recipe without data:"; cat "$tmp/recipe-nodata.log"; }

# bad images
printf 'not an image at all' > "$tmp/small/train/cat/zz-corrupt.jpg"
head -c 300 "$tmp/small/train/dog/$(ls "$tmp/small/train/dog" | head -1)" > "$tmp/small/train/dog/zz-truncated.jpg"
: > "$tmp/small/train/frog/zz-empty.png"
"$parcnn" check-data --data "folder:$tmp/small" > "$tmp/check.txt" 2>&1
rc=$?
[ $rc = 1 ] && grep -q "zz-corrupt.jpg" "$tmp/check.txt" && grep -q "zz-truncated.jpg" "$tmp/check.txt" && grep -q "zz-empty.png" "$tmp/check.txt" \
    && grep -q "3 bad file(s)" "$tmp/check.txt" && ok "check-data names the 3 bad files, exit 1" || { bad "check-data (exit $rc):"; cat "$tmp/check.txt"; }
"$parcnn" train "${common[@]}" --epochs 1 --out "$tmp/fail" > "$tmp/fail.log" 2>&1
rc=$?
[ $rc = 1 ] && grep -q "zz-corrupt.jpg" "$tmp/fail.log" && ok "--on-bad-image fail (default) stops naming the file" || { bad "bad image fail (exit $rc):"; tail -3 "$tmp/fail.log"; }
"$parcnn" train "${common[@]}" --epochs 1 --on-bad-image skip --out "$tmp/skip" > "$tmp/skip.log" 2>&1 \
    && grep -q "skipped 3 bad images" "$tmp/skip.log" && ok "--on-bad-image skip trains and counts 3 skipped" || { bad "skip:"; grep -i skip "$tmp/skip.log"; tail -3 "$tmp/skip.log"; }
finish
