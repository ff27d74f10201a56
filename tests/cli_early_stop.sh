#!/usr/bin/env bash
# Early stopping and the best model (--early-stop, --monitor, --min-delta, --keep best), on
# a small convnet and 512 Fashion-MNIST images whose val_loss flattens out within a few
# epochs: the run stops where Keras's EarlyStopping rule, recomputed here from
# metrics.jsonl, says; model-best.safetensors is the bytes of a run that ends at the best
# epoch; the same bytes on 1 and 2 workers (and 2 MPI ranks); a run interrupted in the
# middle of its patience resumes to the same end; a validation set held out of a training
# set that has its own test set (Fashion-MNIST, a folder with test/); bad values are usage
# errors.
# usage: cli_early_stop.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
make_images="$(dirname "$parcnn")/make_images"
. "$(dirname "$0")/lib.sh"
py=/usr/bin/python3

printf '[conv] filters=8 size=3\n[relu]\n[maxpool] size=2\n[dense] units=classes\n' > "$tmp/tiny.cfg"
run=(--model "$tmp/tiny.cfg" --limit 512 --eval-limit 256 --batch 64 --lr 0.01 --epochs 12
     --early-stop 2 --min-delta 0.05 --keep best --no-progress)

"$parcnn" train "${run[@]}" --workers 2 --out "$tmp/w2" > "$tmp/w2.log" 2> "$tmp/w2.err" \
    || bad "train: $(tail -3 "$tmp/w2.err")"
# Keras's rule, independently: wait counts epochs since the last value below best - delta
read -r stop best <<< "$($py - "$tmp/w2/metrics.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
best, best_epoch, wait = None, 0, 0
for line in lines:
    wait += 1
    if best is None or line["val_loss"] + 0.05 < best:
        best, best_epoch, wait = line["val_loss"], line["epoch"], 0
    elif wait >= 2:
        print(line["epoch"], best_epoch)
        break
else:
    print(0, best_epoch)
PY
)"
lines=$(wc -l < "$tmp/w2/metrics.jsonl")
if [ "$stop" -gt 1 ] && [ "$stop" -lt 12 ] && [ "$lines" = "$stop" ] \
    && grep -q "^parcnn: early stop after epoch $stop: no improvement of val_loss for 2 epochs" "$tmp/w2.log" \
    && grep -q "^best: epoch $best, val_loss .*(stopped early)" "$tmp/w2.log"; then
    ok "stops after epoch $stop of 12, 2 epochs after the best ($best), as Keras's rule"
else bad "stopped after $lines epochs, the rule says $stop (best $best)"; fi
$py - "$tmp/w2/eval.json" "$tmp/w2/metrics.jsonl" "$best" "$tmp/w2/settings.json" <<'PY' \
    && ok "eval.json names the best epoch; its metrics are the last epoch's" || bad "eval.json"
import json, sys
ev, lines, best = json.load(open(sys.argv[1])), [json.loads(l) for l in open(sys.argv[2])], int(sys.argv[3])
b = ev["best"]
assert b["epoch"] == best and b["monitor"] == "val_loss" and b["stopped_early"] is True, b
assert b["model"] == "model-best.safetensors" and b["patience"] == 2 and abs(b["min_delta"] - 0.05) < 1e-7, b
assert abs(b["value"] - lines[best - 1]["val_loss"]) < 1e-6, (b, lines[best - 1])
assert abs(ev["loss"] - lines[-1]["val_loss"]) < 1e-6, (ev["loss"], lines[-1])
s = json.load(open(sys.argv[4]))
assert s["early_stop"] == 2 and s["monitor"] == "val_loss" and s["keep"] == "best", s
PY
grep -q "<th>best epoch (val_loss)</th><td>$best: [0-9.]*, stopped early</td>" "$tmp/w2/report.html" \
    && ok "report.html names the best epoch" || bad "report.html: no best epoch"
grep -q "warning: --early-stop chooses the epoch by val_loss on the test set" "$tmp/w2.err" \
    && ok "warned: the test set chooses the epoch" || bad "no warning about the test set"

# the best model is the model of a run that ends at the best epoch (the exp schedule does
# not depend on the run's length)
"$parcnn" train "${run[@]:0:10}" --epochs "$best" --workers 1 --out "$tmp/upto" > "$tmp/upto.log" 2>&1 \
    || bad "train up to the best epoch: $(tail -3 "$tmp/upto.log")"
cmp -s "$tmp/w2/model-best.safetensors" "$tmp/upto/model.safetensors" \
    && ok "model-best.safetensors = the model after epoch $best" || bad "model-best differs from epoch $best's model"
cmp -s "$tmp/w2/model-best.safetensors" "$tmp/w2/model.safetensors" \
    && bad "model-best equals the last model" || ok "model.safetensors stays the last epoch's"

# the same bytes on 1 worker
"$parcnn" train "${run[@]}" --workers 1 --out "$tmp/w1" > "$tmp/w1.log" 2>&1 || bad "train on 1 worker"
fields() { $py -c 'import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l); print(d["epoch"], d["step"], d["train_loss"], d["val_loss"], d["val_acc"])' "$1"; }
if cmp -s "$tmp/w1/model-best.safetensors" "$tmp/w2/model-best.safetensors" \
    && cmp -s "$tmp/w1/model.safetensors" "$tmp/w2/model.safetensors" \
    && [ "$(fields "$tmp/w1/metrics.jsonl")" = "$(fields "$tmp/w2/metrics.jsonl")" ]; then
    ok "1 and 2 workers: the same stop, model-best and model"
else bad "1 and 2 workers differ"; fi
if command -v mpirun > /dev/null; then
    mpirun_lo -np 2 "$parcnn" train "${run[@]}" --workers 1 --out "$tmp/r2" \
        > "$tmp/r2.log" 2>&1 || bad "2 ranks: $(tail -3 "$tmp/r2.log")"
    cmp -s "$tmp/r2/model-best.safetensors" "$tmp/w2/model-best.safetensors" \
        && [ "$(fields "$tmp/r2/metrics.jsonl")" = "$(fields "$tmp/w2/metrics.jsonl")" ] \
        && ok "2 MPI ranks: the same stop and model-best" || bad "2 MPI ranks differ"
else
    echo "skipped: 2 MPI ranks (mpirun not found)"
fi

# interrupted one epoch after the best (patience 1 of 2 used), then resumed
spe=8
"$parcnn" train "${run[@]}" --workers 2 --max-steps $(((best + 1) * spe)) --out "$tmp/cut" > "$tmp/cut.log" 2>&1 \
    || bad "train up to mid-patience: $(tail -3 "$tmp/cut.log")"
grep -q "1 of 2 epoch(s) of patience" "$tmp/cut.log" || bad "the cut run did not end mid-patience"
"$parcnn" train "${run[@]}" --workers 1 --resume --out "$tmp/cut" > "$tmp/resume.log" 2>&1 \
    || bad "resume: $(tail -3 "$tmp/resume.log")"
if cmp -s "$tmp/cut/model-best.safetensors" "$tmp/w2/model-best.safetensors" \
    && cmp -s "$tmp/cut/model.safetensors" "$tmp/w2/model.safetensors" \
    && [ "$(fields "$tmp/cut/metrics.jsonl")" = "$(fields "$tmp/w2/metrics.jsonl")" ] \
    && grep -q "^parcnn: early stop after epoch $stop" "$tmp/resume.log"; then
    ok "resumed mid-patience: stops after epoch $stop with the uninterrupted run's bytes"
else bad "the resumed run differs"; fi
# a finished, stopped run resumes to nothing more than its final evaluation
"$parcnn" train "${run[@]}" --resume --out "$tmp/cut" > "$tmp/again.log" 2>&1 || bad "resume a stopped run"
[ "$(wc -l < "$tmp/cut/metrics.jsonl")" = "$stop" ] && grep -q "^best: epoch $best" "$tmp/again.log" \
    && ok "a stopped run resumed trains no further" || bad "a stopped run trained on"

# val_acc, higher is better, on a held-out validation split of an image folder: no warning
"$make_images" "$tmp/img" 24 8 > /dev/null || bad "make_images"
"$parcnn" train --data "folder:$tmp/img/train" --val-split 0.25 --image-size 8 --model "$tmp/tiny.cfg" --batch 32 \
    --epochs 3 --early-stop 1 --monitor val_acc --no-progress --out "$tmp/acc" > "$tmp/acc.log" 2> "$tmp/acc.err" \
    || bad "val_acc run: $(tail -3 "$tmp/acc.err")"
$py - "$tmp/acc/metrics.jsonl" "$tmp/acc/eval.json" <<'PY' && ! grep -q warning "$tmp/acc.err" \
    && ok "--monitor val_acc on a --val-split hold-out (no warning)" || bad "val_acc"
import json, sys
lines, ev = [json.loads(l) for l in open(sys.argv[1])], json.load(open(sys.argv[2]))
best = max(range(len(lines)), key=lambda i: (lines[i]["val_acc"], -i))
assert ev["best"]["epoch"] == best + 1 and ev["best"]["monitor"] == "val_acc", (ev["best"], lines)
assert "model" not in ev["best"], ev["best"]
PY

# a validation set held out of Fashion-MNIST's training images (the test set evaluated at
# the end): chosen on it, no warning; the same bytes on 1 and 2 workers
held=(--model "$tmp/tiny.cfg" --limit 640 --eval-limit 256 --batch 64 --lr 0.01 --epochs 6 --val-split 0.2
      --early-stop 1 --keep best --no-progress)
for w in 1 2; do
    "$parcnn" train "${held[@]}" --workers $w --out "$tmp/held$w" > "$tmp/held$w.log" 2> "$tmp/held$w.err" \
        || bad "train --val-split 0.2 on $w worker(s): $(tail -3 "$tmp/held$w.err")"
done
nval=$(sed -n 's/^parcnn: --val-split 0.2: \([0-9]*\) more training images held out for validation.*/\1/p' "$tmp/held2.log")
$py - "$tmp/held2" "${nval:-0}" <<'PY' && ! grep -q warning "$tmp/held2.err" \
    && ok "--val-split on Fashion-MNIST: $nval of 640 held out, epochs judged on them, eval.json on the 256 test images" \
    || bad "held-out validation set"
import json, sys
d, nval = sys.argv[1], int(sys.argv[2])
s, ev = json.load(open(d + "/settings.json")), json.load(open(d + "/eval.json"))
lines = [json.loads(l) for l in open(d + "/metrics.jsonl")]
assert 100 <= nval <= 156 and s["validation_samples"] == nval and s["train_samples"] == 640 - nval, (nval, s)
assert ev["samples"] == 256 and s["test_samples"] == 256, ev["samples"]
assert abs(ev["loss"] - lines[-1]["val_loss"]) > 1e-4, (ev["loss"], lines[-1])  # another set
assert abs(ev["best"]["value"] - min(l["val_loss"] for l in lines)) < 1e-6, (ev["best"], lines)
PY
cmp -s "$tmp/held1/model-best.safetensors" "$tmp/held2/model-best.safetensors" \
    && [ "$(fields "$tmp/held1/metrics.jsonl")" = "$(fields "$tmp/held2/metrics.jsonl")" ] \
    && ok "the held-out run: the same bytes on 1 and 2 workers" || bad "held-out run differs across workers"
if command -v mpirun > /dev/null; then
    mpirun_lo -np 2 "$parcnn" train "${held[@]}" --workers 1 --out "$tmp/heldr2" \
        > "$tmp/heldr2.log" 2>&1 || bad "held-out run on 2 ranks: $(tail -3 "$tmp/heldr2.log")"
    cmp -s "$tmp/heldr2/model-best.safetensors" "$tmp/held2/model-best.safetensors" \
        && cmp -s "$tmp/heldr2/eval.json" "$tmp/held2/eval.json" \
        && ok "the held-out run: the same model-best and eval.json on 2 MPI ranks" || bad "held-out run differs on 2 ranks"
fi
# an image folder with its own test/: the validation set comes out of train/
"$parcnn" train --data "folder:$tmp/img" --val-split 0.25 --image-size 8 --model "$tmp/tiny.cfg" --batch 32 \
    --epochs 1 --no-progress --out "$tmp/imgheld" > "$tmp/imgheld.log" 2>&1 || bad "folder with test/: $(tail -3 "$tmp/imgheld.log")"
grep -q "^parcnn: --val-split 0.25: 60 more training images held out" "$tmp/imgheld.log" \
    && $py -c 'import json, sys; assert json.load(open(sys.argv[1]))["samples"] == 80' "$tmp/imgheld/eval.json" \
    && ok "folder with test/: 60 of train/'s 240 held out, the 80 test images evaluated" || bad "folder with test/ and --val-split"

# bad values: one line naming the flag, exit 2
expect() { # expect WHAT PATTERN -- COMMAND...
    local what=$1 pattern=$2; shift 3
    "$@" > "$tmp/bad.log" 2>&1; local rc=$?
    if [ $rc = 2 ] && grep -q -- "$pattern" "$tmp/bad.log"; then ok "$what"
    else bad "$what: exit $rc: $(tail -2 "$tmp/bad.log")"; fi
}
small=(--model "$tmp/tiny.cfg" --limit 128 --eval-limit 64 --batch 64 --epochs 1 --no-progress)
expect "--early-stop 0" "--early-stop 0: expected an integer" -- "$parcnn" train "${small[@]}" --early-stop 0
expect "--early-stop x" "--early-stop x: expected an integer" -- "$parcnn" train "${small[@]}" --early-stop x
expect "--monitor loss" "--monitor loss: expected val_loss or val_acc" -- "$parcnn" train "${small[@]}" --monitor loss --early-stop 1
expect "--monitor alone" "--monitor: only with --early-stop PATIENCE or --keep best" -- "$parcnn" train "${small[@]}" --monitor val_acc
expect "--min-delta alone" "--min-delta: only with --early-stop" -- "$parcnn" train "${small[@]}" --min-delta 0.1
expect "--min-delta -1" "--min-delta -1: expected" -- "$parcnn" train "${small[@]}" --early-stop 1 --min-delta -1
expect "--keep newest" "--keep newest: expected last or best" -- "$parcnn" train "${small[@]}" --keep newest
expect "--keep best without --out" "--keep best writes DIR/model-best.safetensors: give --out DIR" -- "$parcnn" train "${small[@]}" --keep best
expect "resume with another --monitor" "was written with other settings: monitor: the checkpoint has val_loss, this run has val_acc" -- "$parcnn" train "${run[@]}" --monitor val_acc --resume --out "$tmp/cut"

finish
