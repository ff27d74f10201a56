#!/usr/bin/env bash
# What a run leaves besides the model: DIR/eval.json (the final evaluation, after
# test-time augmentation) equal to the final line and to `parcnn eval --json`; the
# evaluation metrics the same bytes for any worker and rank count; report.svg;
# report.html and `parcnn report`'s comparison of a 1- and a 2-worker run, loaded in
# headless Chromium (tests/report_browser.py: no console error, no network request,
# every chart drawn, a screenshot that is not blank).
# usage: cli_report.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
. "$(dirname "$0")/lib.sh"
py=/usr/bin/python3

# Fashion-MNIST with its first 1,000 test images, so that evaluating is quick
mkdir -p "$tmp/fm"
$py - /usr/share/datasets/fashion-mnist "$tmp/fm" <<'PY'
import gzip, os, sys
src, dst = sys.argv[1:]
for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]:
    os.symlink(os.path.join(src, name + ".gz"), os.path.join(dst, name + ".gz"))
for name, head, size in [("t10k-images-idx3-ubyte", 16, 784), ("t10k-labels-idx1-ubyte", 8, 1)]:
    raw = bytearray(gzip.open(os.path.join(src, name + ".gz")).read()[:head + 1000 * size])
    raw[4:8] = (1000).to_bytes(4, "big")
    open(os.path.join(dst, name), "wb").write(raw)
PY
data="idx:$tmp/fm"
"$parcnn" train --data "$data" --limit 1024 --epochs 2 --workers 2 --tta flip --augment flip --no-progress \
    --out "$tmp/run" > "$tmp/train.log" 2>&1 || { bad "train: $(tail -3 "$tmp/train.log")"; }
"$parcnn" eval --data "$data" --weights "$tmp/run/model.safetensors" --tta flip --batch 32 --json > "$tmp/eval-w1.json" 2> "$tmp/eval.err" \
    || bad "eval --json: $(cat "$tmp/eval.err")"
$py - "$tmp/run/eval.json" "$tmp/eval-w1.json" "$tmp/train.log" <<'PY' && ok "eval.json = the final line = eval --json (tta flip)" || bad "eval.json"
import json, re, sys
saved, ev = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert saved == ev, "eval.json differs from eval --json"
assert saved["tta"] == "flip" and saved["samples"] == 1000
acc, loss, f1 = re.search(r"^final: test accuracy ([0-9.]+), test loss ([0-9.]+), macro F1 ([0-9.]+), "
                          r"test-time augmentation flip$", open(sys.argv[3]).read(), re.M).groups()
assert "%.4f" % saved["accuracy"] == acc and "%.4f" % saved["loss"] == loss and "%.4f" % saved["macro_f1"] == f1
for key in ["balanced_accuracy", "kappa", "quadratic_kappa", "roc_auc_macro"]:
    assert 0 < saved[key] <= 1, (key, saved[key])
assert all(0.5 < c["roc_auc"] <= 1 for c in saved["per_class"]), saved["per_class"]
PY
ls "$tmp/run" | grep -q tmp && bad "temporary files left behind" || ok "no temporary files left"

# the same bytes for 1 and 2 workers and for 2 MPI ranks
"$parcnn" eval --data "$data" --weights "$tmp/run/model.safetensors" --tta flip --batch 32 --json --workers 2 > "$tmp/eval-w2.json" 2>&1
cmp -s "$tmp/eval-w1.json" "$tmp/eval-w2.json" && ok "eval --json: the same bytes on 1 and 2 workers" || bad "eval differs across workers"
if command -v mpirun > /dev/null; then
    mpirun --oversubscribe --bind-to none -np 2 "$parcnn" eval --data "$data" --weights "$tmp/run/model.safetensors" --tta flip \
        --batch 32 --json > "$tmp/eval-r2.json" 2> "$tmp/eval-r2.err"
    cmp -s "$tmp/eval-w1.json" "$tmp/eval-r2.json" && ok "eval --json: the same bytes on 2 MPI ranks" \
        || bad "eval differs on 2 ranks: $(cat "$tmp/eval-r2.err")"
fi
"$parcnn" eval --data "$data" --weights "$tmp/run/model.safetensors" > "$tmp/eval.txt" 2>&1
grep -q "^balanced accuracy  0\.[0-9]*$" "$tmp/eval.txt" && grep -q "^quadratic kappa    0\." "$tmp/eval.txt" \
    && grep -q "^ROC AUC (macro)    0\." "$tmp/eval.txt" && grep -q "f1  support  ROC AUC" "$tmp/eval.txt" \
    && ok "eval prints balanced accuracy, kappa, AUC" || { bad "eval text:"; cat "$tmp/eval.txt"; }

# report.svg: test accuracy against time and epochs, and the train and test loss
$py - "$tmp/run/report.svg" <<'PY' && ok "report.svg: accuracy against time and epochs, train and test loss" || bad "report.svg"
import sys, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
lines = root.findall(ns + "polyline")
assert len(lines) == 4 and all(len(l.get("points").split()) == 2 for l in lines), [l.get("points") for l in lines]
texts = "".join(t.text or "" for t in root.iter(ns + "text"))
assert "final test accuracy" in texts and "(tta flip)" in texts and "loss" in texts and "train" in texts
PY

# samples.json: 48 test images, the misclassified first, as PNG data URIs
$py - "$tmp/run/samples.json" "$tmp/run/eval.json" <<'PY' && ok "samples.json: 48 PNG images, misclassified first" || bad "samples.json"
import base64, json, sys
s, ev = json.load(open(sys.argv[1]))["samples"], json.load(open(sys.argv[2]))
assert len(s) == 48
wrong = [x["true"] != x["predicted"] for x in s]
errors = ev["samples"] - sum(ev["confusion"][k][k] for k in range(10))
assert wrong == sorted(wrong, reverse=True) and sum(wrong) == min(48, errors), (wrong, errors)
png = base64.b64decode(s[0]["png"].split(",", 1)[1])
assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[16:24] == (28).to_bytes(4, "big") * 2, png[:24]
PY

# a 1-worker run beside the 2-worker one: the same epoch lines (but the times)
"$parcnn" train --data "$data" --limit 1024 --epochs 2 --workers 1 --tta flip --augment flip --no-progress \
    --out "$tmp/seq" > "$tmp/seq.log" 2>&1 || bad "train --workers 1: $(tail -3 "$tmp/seq.log")"
cp "$tmp/run/report.html" "$tmp/trained.html"
"$parcnn" report "$tmp/run" > "$tmp/report.log" 2>&1 && cmp -s "$tmp/run/report.html" "$tmp/trained.html" \
    && ok "parcnn report DIR rebuilds the same report.html" || bad "parcnn report DIR: $(cat "$tmp/report.log")"
"$parcnn" report "$tmp/seq" "$tmp/run" --out "$tmp/compare.html" > "$tmp/report.log" 2>&1 \
    && grep -q "seq (1 rank x 1 worker)" "$tmp/compare.html" && grep -q "run (1 rank x 2 workers)" "$tmp/compare.html" \
    && ok "parcnn report A B --out FILE: one page of both runs" || bad "parcnn report A B: $(cat "$tmp/report.log")"
grep -Eq "(src|href)=\"(https?:)?//" "$tmp/compare.html" && bad "report.html refers to the network" || ok "report.html: nothing from the network"
"$parcnn" report > /dev/null 2> "$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "parcnn report: give at least one run folder" "$tmp/err" && ok "report without a folder: usage error" || bad "report without a folder: $rc $(cat "$tmp/err")"
"$parcnn" report "$tmp/none" > /dev/null 2> "$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "$tmp/none/metrics.jsonl: cannot read" "$tmp/err" && ok "report of a folder without metrics.jsonl: names the file" || bad "report of a missing run: $rc $(cat "$tmp/err")"
echo '{"epoch": 1, "step": "x"}' > "$tmp/badrun.jsonl"; mkdir -p "$tmp/badrun"; mv "$tmp/badrun.jsonl" "$tmp/badrun/metrics.jsonl"
"$parcnn" report "$tmp/badrun" > /dev/null 2> "$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "badrun/metrics.jsonl:1: not a metrics line" "$tmp/err" && ok "report of a bad metrics.jsonl: names file and line" || bad "bad metrics.jsonl: $rc $(cat "$tmp/err")"

# in a real browser
$py "$2/tests/report_browser.py" --charts 7 "$tmp/run/report.html" > "$tmp/browser.log" 2>&1; rc=$?
cat "$tmp/browser.log"
if [ $rc = 77 ]; then
    echo "skipped: the browser checks: $(head -1 "$tmp/browser.log")"
else
    [ $rc = 0 ] && ok "chromium: report.html loads cleanly, every chart drawn, screenshot not blank" || bad "chromium: report.html"
    $py "$2/tests/report_browser.py" --charts 9 "$tmp/compare.html" > "$tmp/browser.log" 2>&1 \
        && ok "chromium: the comparison page of 2 runs (9 charts)" || { bad "chromium: comparison page"; cat "$tmp/browser.log"; }
    # the checker itself: a page with a script error, an empty chart and a network request fails
    printf '%s\n' '<!DOCTYPE html><html><body><p class="legend"><span data-run="0">x</span></p>' \
        '<figure class="chart" id="chart-empty"><svg width="100" height="100"><g class="series" data-run="0">' \
        '<polyline class="line" points=""/></g></svg></figure><img src="http://127.0.0.1:9/x.png">' \
        '<script>undefinedFunction();</script></body></html>' > "$tmp/broken.html"
    $py "$2/tests/report_browser.py" "$tmp/broken.html" > "$tmp/broken.log" 2>&1
    grep -q "problem: exception" "$tmp/broken.log" && grep -q "problem: chart chart-empty drew nothing" "$tmp/broken.log" \
        && grep -q "problem: network requests" "$tmp/broken.log" && grep -q "problem: screenshot looks blank" "$tmp/broken.log" \
        && ok "the browser check fails a broken page" || { bad "the browser check passed a broken page"; cat "$tmp/broken.log"; }
fi
finish
