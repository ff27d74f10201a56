#!/usr/bin/env bash
# End to end: train simple-cnn on 2,000 Fashion-MNIST images, check a test-accuracy
# floor, the output files, eval (text and JSON) and predict.
# usage: cli_train.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
. "$(dirname "$0")/lib.sh"

"$parcnn" train --limit 2000 --epochs 3 --eval-limit 2000 --workers 2 --no-progress --out "$tmp/run" > "$tmp/train.log" 2>&1
rc=$?
cat "$tmp/train.log"
[ $rc = 0 ] && ok "train exits 0" || bad "train exited $rc"
acc=$(awk '/^final:/ {print $4}' "$tmp/train.log" | tr -d ,)
awk -v a="${acc:-0}" 'BEGIN {exit !(a >= 0.78)}' && ok "test accuracy $acc >= 0.78" || bad "test accuracy ${acc:-none} < 0.78"
grep -q "global batch 128 = 4 shard(s) of 32" "$tmp/train.log" && ok "start-up states batch, shards, shard size" || bad "start-up line"
[ "$(wc -l < "$tmp/run/metrics.jsonl")" = 3 ] && ok "metrics.jsonl has one line per epoch" || bad "metrics.jsonl lines"
for key in epoch train_loss train_acc val_loss val_acc lr epoch_seconds train_seconds images_per_second; do
    grep -q "\"$key\": " "$tmp/run/metrics.jsonl" || { bad "metrics.jsonl lacks $key"; continue; }
done
ok "metrics.jsonl keys"
[ -s "$tmp/run/model.safetensors" ] && [ -s "$tmp/run/checkpoint.safetensors" ] && ok "model and checkpoint written" || bad "model/checkpoint missing"
/usr/bin/env python3 - "$tmp/run/report.svg" <<'PY' && ok "report.svg: valid SVG, accuracy and loss charts of the 3 epochs" || bad "report.svg"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
lines = root.findall("{http://www.w3.org/2000/svg}polyline")
assert len(lines) == 4 and all(len(l.get("points").split()) == 3 for l in lines), [l.get("points") for l in lines]
texts = "".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
assert "final test accuracy" in texts and "wall-clock seconds" in texts and "epoch" in texts
PY
ls "$tmp/run" | grep -q tmp && bad "temporary files left behind" || ok "no temporary files left"

"$parcnn" eval --weights "$tmp/run/model.safetensors" > "$tmp/eval.txt" 2>&1
[ $? = 0 ] && ok "eval exits 0" || bad "eval failed: $(cat "$tmp/eval.txt")"
grep -q "Ankle boot" "$tmp/eval.txt" && grep -q "confusion matrix" "$tmp/eval.txt" && grep -q "macro avg" "$tmp/eval.txt" \
    && ok "eval prints class names, macro averages, confusion matrix" || bad "eval report incomplete"
"$parcnn" eval --weights "$tmp/run/model.safetensors" --json --workers 2 > "$tmp/eval.json" 2>&1
/usr/bin/env python3 - "$tmp/eval.json" <<'PY' && ok "eval --json is valid and consistent" || bad "eval --json"
import json, sys
r = json.load(open(sys.argv[1]))
assert set(["accuracy", "loss", "macro_f1", "per_class", "confusion"]) <= set(r), r.keys()
conf = r["confusion"]
assert len(conf) == 10 and sum(map(sum, conf)) == 10000
assert abs(sum(conf[k][k] for k in range(10)) / 10000 - r["accuracy"]) < 1e-9
assert r["per_class"][9]["class"] == "Ankle boot"
PY
"$parcnn" predict --weights "$tmp/run/model.safetensors" --top 2 0 1 > "$tmp/pred.txt" 2>&1
[ $? = 0 ] && [ "$(grep -c '^sample' "$tmp/pred.txt")" = 2 ] && ok "predict prints one line per sample" || bad "predict: $(cat "$tmp/pred.txt")"
grep -q "sample 0 (true: Ankle boot)" "$tmp/pred.txt" && ok "predict names the true class" || bad "predict true class"
# --ensemble 2 rates the ensemble of its members on the whole test set: eval of the two
# saved members (same batch, so the same arithmetic) gives the same accuracy and loss;
# --resume of the finished ensemble trains nothing and reports it again
"$parcnn" train --limit 1200 --epochs 1 --ensemble 2 --tta flip --workers 2 --no-progress \
    --out "$tmp/ens" > "$tmp/ens.log" 2>&1 || bad "train --ensemble 2: $(cat "$tmp/ens.log")"
grep -q "^final: ensemble of 2 models: test accuracy" "$tmp/ens.log" && ok "train --ensemble prints the ensemble's metrics" || bad "no ensemble line"
"$parcnn" eval --weights "$tmp/ens/member-1/model.safetensors" --weights "$tmp/ens/member-2/model.safetensors" \
    --tta flip --batch 32 --json > "$tmp/ens-eval.json" 2> "$tmp/ens-eval.err" || bad "eval of an ensemble: $(cat "$tmp/ens-eval.err")"
"$parcnn" eval --weights "$tmp/ens/member-1/model.safetensors" --tta flip --batch 32 --json > "$tmp/m1-eval.json" 2>&1
"$parcnn" train --limit 1200 --epochs 1 --ensemble 2 --tta flip --workers 2 --no-progress --resume \
    --out "$tmp/ens" > "$tmp/ens-resume.log" 2>&1 || bad "resume of a finished ensemble: $(cat "$tmp/ens-resume.log")"
/usr/bin/env python3 - "$tmp/ens/ensemble.json" "$tmp/ens-eval.json" "$tmp/m1-eval.json" "$tmp/ens.log" "$tmp/ens-resume.log" <<'PY' \
    && ok "eval --weights A,B = train --ensemble 2's metrics; not member 1's; resume reports the same" || bad "ensemble evaluation"
import json, re, sys
train, ev, one = (json.load(open(p)) for p in sys.argv[1:4])
assert train["test_accuracy"] == ev["accuracy"] and train["test_loss"] == ev["loss"], (train, ev)
assert one["accuracy"] == train["members"][0]["test_accuracy"], (one, train)
assert one["loss"] != ev["loss"]
final = lambda p: re.findall(r"^final: ensemble.*test accuracy ([0-9.]+), test loss ([0-9.]+)", open(p).read(), re.M)
assert final(sys.argv[4]) == final(sys.argv[5]) != [], (final(sys.argv[4]), final(sys.argv[5]))
assert "resuming from" in open(sys.argv[5]).read()
PY

# --tta flip averages the image and its mirror, so it is symmetric: evaluating the test
# set with every image mirrored gives the same metrics (while plain evaluation differs)
mkdir -p "$tmp/mirrored"
/usr/bin/env python3 - /usr/share/datasets/fashion-mnist "$tmp/mirrored" <<'PY'
import gzip, os, sys
src, dst = sys.argv[1:]
for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"]:
    os.symlink(os.path.join(src, name + ".gz"), os.path.join(dst, name + ".gz"))
raw = gzip.open(os.path.join(src, "t10k-images-idx3-ubyte.gz")).read()
head, px = raw[:16], raw[16:]
rows = [px[i:i + 28][::-1] for i in range(0, len(px), 28)]
open(os.path.join(dst, "t10k-images-idx3-ubyte"), "wb").write(head + b"".join(rows))
PY
weights="$tmp/run/model.safetensors"
"$parcnn" eval --weights "$weights" --json --workers 2 --tta flip > "$tmp/tta.json" 2>&1
"$parcnn" eval --weights "$weights" --json --tta flip --data "idx:$tmp/mirrored" > "$tmp/tta-mirrored.json" 2>&1
"$parcnn" eval --weights "$weights" --json --data "idx:$tmp/mirrored" > "$tmp/mirrored.json" 2>&1
/usr/bin/env python3 - "$tmp/eval.json" "$tmp/tta.json" "$tmp/tta-mirrored.json" "$tmp/mirrored.json" <<'PY' \
    && ok "eval --tta flip of the mirrored test set = of the test set (and plain evaluation differs)" || bad "eval --tta flip"
import json, sys
plain, tta, tta_mirrored, mirrored = (json.load(open(f)) for f in sys.argv[1:])
assert tta["confusion"] == tta_mirrored["confusion"], "confusion differs"
assert abs(tta["loss"] - tta_mirrored["loss"]) < 1e-6, (tta["loss"], tta_mirrored["loss"])
assert abs(plain["loss"] - mirrored["loss"]) > 1e-4, "mirroring does not change plain evaluation"
assert abs(plain["loss"] - tta["loss"]) > 1e-4, "--tta flip changes nothing"
PY
"$parcnn" predict --weights "$weights" --tta flip 0 1 2 > "$tmp/pred-tta.txt" 2>&1
"$parcnn" predict --weights "$weights" --tta flip --data "idx:$tmp/mirrored" 0 1 2 > "$tmp/pred-tta-mirrored.txt" 2>&1
[ -s "$tmp/pred-tta.txt" ] && cmp -s "$tmp/pred-tta.txt" "$tmp/pred-tta-mirrored.txt" \
    && ok "predict --tta flip: the same probabilities for mirrored samples" || bad "predict --tta flip: $(cat "$tmp/pred-tta.txt")"
"$parcnn" train --limit 512 --epochs 1 --eval-limit 256 --augment flip --tta flip,translate=1 --no-progress > "$tmp/train-tta.log" 2>&1
grep -q "^final: .*, test-time augmentation flip,translate=1$" "$tmp/train-tta.log" \
    && ok "train --tta: the final metrics name the test-time augmentation" || bad "train --tta: $(tail -2 "$tmp/train-tta.log")"
"$parcnn" eval --weights "$weights" --json --tta flip,translate=2 > "$tmp/tta2.json" 2>&1 \
    && /usr/bin/env python3 -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); assert a["loss"] != b["loss"]' \
       "$tmp/tta.json" "$tmp/tta2.json" && ok "eval --tta flip,translate=2 runs and differs from flip" || bad "eval --tta flip,translate=2"

# recipes: listed, printed, and run with the command line's flags overriding the recipe's
"$parcnn" recipes | grep -q "^fmnist " && ok "parcnn recipes lists fmnist" || bad "recipes list"
"$parcnn" recipes fmnist | grep -q -- "^--model whitenet-s" && ok "parcnn recipes fmnist prints its flags" || bad "recipes print"
"$parcnn" train --recipe fmnist --epochs 1 --peak-epoch 0.5 --limit 512 --eval-limit 128 --tta none --no-progress > "$tmp/recipe.log" 2>&1 \
    && grep -qE "^parcnn: recipe fmnist: .*--epochs [0-9]+ .*--epochs 1" "$tmp/recipe.log" \
    && grep -q "model whitenet-s: .*bf16 mixed precision" "$tmp/recipe.log" && grep -q " 1 epoch(s) of 1 steps" "$tmp/recipe.log" \
    && ok "train --recipe fmnist --epochs 1: the recipe's model and precision, the command line's epochs" \
    || { bad "train --recipe:"; cat "$tmp/recipe.log"; }

# every init=whiten layer is whitened from the data (two branches on the input here)
printf '[conv] name=w2 size=2 init=whiten trainable=none\n[gap] name=g2\n[conv] name=w3 size=3 init=whiten trainable=none from=-3\n[gap]\n[add] from=-1,g2\n[dense] units=classes\n' > "$tmp/whiten2.cfg"
"$parcnn" train --model "$tmp/whiten2.cfg" --limit 256 --eval-limit 64 --epochs 1 --batch 64 --no-progress > "$tmp/whiten2.log" 2>&1
grep -q "w2 whitens patches" "$tmp/whiten2.log" && grep -q "w3 whitens patches" "$tmp/whiten2.log" \
    && ok "two init=whiten layers: both whitened" || { bad "two whitening layers:"; cat "$tmp/whiten2.log"; }
finish
