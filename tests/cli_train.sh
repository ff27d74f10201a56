#!/usr/bin/env bash
# End to end: train simple-cnn on 2,000 Fashion-MNIST images, check a test-accuracy
# floor, the output files, eval (text and JSON) and predict.
# usage: cli_train.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }

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
echo "$passed passed, $failed failed"
[ $failed = 0 ]
