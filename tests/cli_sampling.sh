#!/usr/bin/env bash
# Which samples the steps see. --sampler balanced: the same model bytes on 1 and 2
# workers (the draws depend on the seed and the epoch only); a bad value is a usage error
# naming the flag. A batch larger than the training set is refused with the flags that
# fit, and those flags work. --class-weights: weights all 2 (a power of two) and
# "balanced" on classes of equal size give the unweighted run's bytes (the weighted mean
# normalizes by the batch's summed weights); other weights change the model, the same on
# 1 and 2 workers; bad weight files are refused naming file and line.
# usage: cli_sampling.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
. "$(dirname "$0")/lib.sh"

args=(train --limit 768 --eval-limit 200 --epochs 2 --sampler balanced --no-progress)
for w in 1 2; do
    "$parcnn" "${args[@]}" --workers $w --out "$tmp/w$w" > "$tmp/w$w.log" 2>&1 || bad "--workers $w: $(tail -2 "$tmp/w$w.log")"
done
cmp -s "$tmp/w1/model.safetensors" "$tmp/w2/model.safetensors" && ok "--sampler balanced: the same model bytes on 1 and 2 workers" \
    || bad "--sampler balanced: the models differ between 1 and 2 workers"
"$parcnn" train --limit 768 --eval-limit 200 --epochs 1 --workers 2 --no-progress --out "$tmp/shuffle" > /dev/null 2>&1
cmp -s "$tmp/w1/model.safetensors" "$tmp/shuffle/model.safetensors" && bad "--sampler balanced changes nothing" \
    || ok "--sampler balanced trains on another order than shuffle"
/usr/bin/python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["sampler"] == "balanced"' "$tmp/w1/settings.json" \
    && ok "settings.json names the sampler" || bad "settings.json: no sampler"
"$parcnn" train --sampler uniform > /dev/null 2> "$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q -- "--sampler uniform" "$tmp/err" && ok "--sampler uniform: usage error naming the flag" || bad "--sampler uniform: $rc $(cat "$tmp/err")"
"$parcnn" train --limit 768 --eval-limit 200 --epochs 3 --workers 1 --sampler balanced --no-progress --out "$tmp/w1" --resume > "$tmp/resume.log" 2>&1 \
    && ok "--resume keeps the sampler" || bad "--resume with --sampler balanced: $(tail -2 "$tmp/resume.log")"
"$parcnn" train --limit 768 --eval-limit 200 --epochs 3 --workers 1 --sampler shuffle --no-progress --out "$tmp/w2" --resume > "$tmp/resume2.log" 2>&1
[ $? != 0 ] && grep -q "sampler" "$tmp/resume2.log" && ok "--resume with another sampler is refused, naming it" || bad "resume with another sampler: $(tail -2 "$tmp/resume2.log")"

cw=(train --limit 640 --eval-limit 200 --epochs 1 --no-progress)
"$parcnn" "${cw[@]}" --workers 2 --out "$tmp/plain" > /dev/null 2>&1 || bad "unweighted run"
for k in $(seq 10); do echo 2; done > "$tmp/twos.txt"
"$parcnn" "${cw[@]}" --workers 2 --class-weights "$tmp/twos.txt" --out "$tmp/twos" > "$tmp/twos.log" 2>&1 || bad "weights 2: $(tail -2 "$tmp/twos.log")"
cmp -s "$tmp/plain/model.safetensors" "$tmp/twos/model.safetensors" && ok "--class-weights all 2: the unweighted model's bytes" || bad "--class-weights all 2 differs from unweighted"
# "balanced" = n / (classes x count), the weights scikit-learn's compute_class_weight gives
/usr/bin/python3 - /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz > "$tmp/balanced.txt" <<'PY'
import gzip, sys
import numpy as np
from sklearn.utils.class_weight import compute_class_weight
y = np.frombuffer(gzip.open(sys.argv[1]).read()[8:8 + 640], np.uint8)
for w in compute_class_weight("balanced", classes=np.arange(10), y=y):
    print(repr(float(w)))
PY
"$parcnn" "${cw[@]}" --workers 2 --class-weights balanced --out "$tmp/bal" > /dev/null 2>&1
"$parcnn" "${cw[@]}" --workers 2 --class-weights "$tmp/balanced.txt" --out "$tmp/balfile" > /dev/null 2>&1
cmp -s "$tmp/bal/model.safetensors" "$tmp/balfile/model.safetensors" && ! cmp -s "$tmp/bal/model.safetensors" "$tmp/plain/model.safetensors" \
    && ok "--class-weights balanced = scikit-learn's balanced weights in a file" || bad "balanced differs from scikit-learn's weights"
printf '# Fashion-MNIST, the shirts count 4 times\nT-shirt/top 1\nTrouser 1\nPullover 1\nDress 1\nCoat 1\nSandal 1\nShirt 4\nSneaker 1\nBag 1\nAnkle boot 0.5\n' > "$tmp/w.txt"
for w in 1 2; do
    "$parcnn" "${cw[@]}" --workers $w --class-weights "$tmp/w.txt" --out "$tmp/cw$w" > "$tmp/cw$w.log" 2>&1 || bad "weights file: $(tail -2 "$tmp/cw$w.log")"
done
cmp -s "$tmp/cw1/model.safetensors" "$tmp/cw2/model.safetensors" && ! cmp -s "$tmp/cw1/model.safetensors" "$tmp/plain/model.safetensors" \
    && ok "--class-weights FILE: the same bytes on 1 and 2 workers, not the unweighted ones" || bad "--class-weights FILE determinism"
sed 's/^Shirt 4/Shirts 4/' "$tmp/w.txt" > "$tmp/bad1.txt"
"$parcnn" "${cw[@]}" --class-weights "$tmp/bad1.txt" > /dev/null 2> "$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "bad1.txt:8: class 'Shirts', expected 'Shirt'" "$tmp/err" && ok "a weights file naming the wrong class: file and line" || bad "bad class name: $rc $(cat "$tmp/err")"
head -4 "$tmp/twos.txt" > "$tmp/bad2.txt"
"$parcnn" "${cw[@]}" --class-weights "$tmp/bad2.txt" > /dev/null 2> "$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "bad2.txt: 4 weights for 10 classes" "$tmp/err" && ok "too few weights: refused" || bad "too few weights: $rc $(cat "$tmp/err")"
printf '1\n-2\n' > "$tmp/bad3.txt"
"$parcnn" "${cw[@]}" --class-weights "$tmp/bad3.txt" > /dev/null 2> "$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "bad3.txt:2: '-2' is not a weight > 0" "$tmp/err" && ok "a negative weight: refused" || bad "negative weight: $rc $(cat "$tmp/err")"
"$parcnn" "${cw[@]}" --class-weights balanced --label-smoothing 0.1 > /dev/null 2> "$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "class-weights with --label-smoothing" "$tmp/err" && ok "--class-weights with --label-smoothing: usage error" || bad "with smoothing: $rc $(cat "$tmp/err")"

small() { "$parcnn" train --limit "$1" --eval-limit 100 --epochs 1 --no-progress "${@:2}"; }
small 98 --workers 1 > /dev/null 2> "$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q -- "--batch 128 is larger than the 98 training samples: use --batch 96 (3 shards of 32)" "$tmp/err" \
    && ok "--batch 128 on 98 samples: refused, naming --batch 96" || bad "batch > samples: $rc $(cat "$tmp/err")"
small 98 --workers 1 --batch 96 > "$tmp/ok.log" 2>&1 && grep -q "^final:" "$tmp/ok.log" && ok "--batch 96 on 98 samples trains" || bad "--batch 96: $(tail -2 "$tmp/ok.log")"
small 98 --workers 2 > /dev/null 2> "$tmp/err"
grep -q "use --batch 64 (2 shards of 32)" "$tmp/err" && ok "on 2 workers: --batch 64" || bad "2 workers: $(cat "$tmp/err")"
small 20 --workers 2 > /dev/null 2> "$tmp/err"
grep -q "use --batch 20 --shard-size 10" "$tmp/err" && ok "20 samples on 2 workers: --batch 20 --shard-size 10" || bad "20 samples: $(cat "$tmp/err")"
small 20 --workers 2 --batch 20 --shard-size 10 > "$tmp/ok.log" 2>&1 && ok "--batch 20 --shard-size 10 on 20 samples trains" || bad "$(tail -2 "$tmp/ok.log")"
finish
