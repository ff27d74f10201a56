#!/usr/bin/env bash
# What a run leaves besides the model: DIR/eval.json (the final evaluation, after
# test-time augmentation) equal to the final line and to `parcnn eval --json`; the
# evaluation metrics the same bytes for any worker and rank count.
# usage: cli_report.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
py=/usr/bin/python3

"$parcnn" train --limit 1024 --epochs 2 --workers 2 --tta flip --augment flip --no-progress \
    --out "$tmp/run" > "$tmp/train.log" 2>&1 || { bad "train: $(tail -3 "$tmp/train.log")"; }
"$parcnn" eval --weights "$tmp/run/model.safetensors" --tta flip --batch 32 --json > "$tmp/eval-w1.json" 2> "$tmp/eval.err" \
    || bad "eval --json: $(cat "$tmp/eval.err")"
$py - "$tmp/run/eval.json" "$tmp/eval-w1.json" "$tmp/train.log" <<'PY' && ok "eval.json = the final line = eval --json (tta flip)" || bad "eval.json"
import json, re, sys
saved, ev = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert saved == ev, "eval.json differs from eval --json"
assert saved["tta"] == "flip" and saved["samples"] == 10000
acc, loss, f1 = re.search(r"^final: test accuracy ([0-9.]+), test loss ([0-9.]+), macro F1 ([0-9.]+), "
                          r"test-time augmentation flip$", open(sys.argv[3]).read(), re.M).groups()
assert "%.4f" % saved["accuracy"] == acc and "%.4f" % saved["loss"] == loss and "%.4f" % saved["macro_f1"] == f1
for key in ["balanced_accuracy", "kappa", "quadratic_kappa", "roc_auc_macro"]:
    assert 0 < saved[key] <= 1, (key, saved[key])
assert all(0.5 < c["roc_auc"] <= 1 for c in saved["per_class"]), saved["per_class"]
PY
ls "$tmp/run" | grep -q tmp && bad "temporary files left behind" || ok "no temporary files left"

# the same bytes for 1 and 2 workers and for 2 MPI ranks
"$parcnn" eval --weights "$tmp/run/model.safetensors" --tta flip --batch 32 --json --workers 2 > "$tmp/eval-w2.json" 2>&1
cmp -s "$tmp/eval-w1.json" "$tmp/eval-w2.json" && ok "eval --json: the same bytes on 1 and 2 workers" || bad "eval differs across workers"
if command -v mpirun > /dev/null; then
    mpirun --oversubscribe --bind-to none -np 2 "$parcnn" eval --weights "$tmp/run/model.safetensors" --tta flip \
        --batch 32 --json > "$tmp/eval-r2.json" 2> "$tmp/eval-r2.err"
    cmp -s "$tmp/eval-w1.json" "$tmp/eval-r2.json" && ok "eval --json: the same bytes on 2 MPI ranks" \
        || bad "eval differs on 2 ranks: $(cat "$tmp/eval-r2.err")"
fi
"$parcnn" eval --weights "$tmp/run/model.safetensors" > "$tmp/eval.txt" 2>&1
grep -q "^balanced accuracy  0\.[0-9]*$" "$tmp/eval.txt" && grep -q "^quadratic kappa    0\." "$tmp/eval.txt" \
    && grep -q "^ROC AUC (macro)    0\." "$tmp/eval.txt" && grep -q "f1  support  ROC AUC" "$tmp/eval.txt" \
    && ok "eval prints balanced accuracy, kappa, AUC" || { bad "eval text:"; cat "$tmp/eval.txt"; }
echo "$passed passed, $failed failed"
[ $failed = 0 ]
