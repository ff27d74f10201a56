#!/usr/bin/env bash
# The determinism contract: the same seed, global batch and shard size give
# byte-identical model files for any worker count, and a checkpoint written with
# one worker count resumes with another to the same bytes.
# usage: cli_determinism.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() { # check NAME FILE...: all files byte-identical
    local name=$1; shift
    local first; first=$(sha256sum "$1" 2>/dev/null | cut -d' ' -f1)
    local ok=1
    for f in "$@"; do
        [ -s "$f" ] || { ok=0; echo "FAIL $name: $f missing"; continue; }
        [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$first" ] || { ok=0; echo "FAIL $name: $f differs from $1"; }
    done
    if [ $ok = 1 ]; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); fi
}
# 1,200 training images, batch 96 = 12 shards of 8: divisible by 1, 2, 3 and 4 workers.
common=(--limit 1200 --eval-limit 256 --epochs 2 --batch 96 --shard-size 8 --no-progress)
for model in simple-cnn minixception; do
    for w in 1 2 3 4; do
        "$parcnn" train --model $model "${common[@]}" --workers $w --out "$tmp/$model-w$w" \
            > "$tmp/$model-w$w.log" 2>&1 || { echo "FAIL $model workers $w:"; cat "$tmp/$model-w$w.log"; }
    done
    check "$model: model.safetensors identical for 1, 2, 3, 4 workers" "$tmp/$model"-w{1,2,3,4}/model.safetensors
    # the per-epoch test accuracy printed is identical, not merely close
    for w in 1 2 3 4; do grep -E '^ +[0-9]+ ' "$tmp/$model-w$w.log" | awk '{print $5}' > "$tmp/$model-w$w.acc"; done
    check "$model: test accuracy identical for 1, 2, 3, 4 workers" "$tmp/$model"-w{1,2,3,4}.acc
done

# bf16 mixed precision keeps the contract, and really changes the arithmetic
for w in 1 2 4; do
    "$parcnn" train --model minixception "${common[@]}" --precision bf16 --workers $w --out "$tmp/bf16-w$w" \
        > "$tmp/bf16-w$w.log" 2>&1 || { echo "FAIL bf16 workers $w:"; cat "$tmp/bf16-w$w.log"; }
done
check "bf16: model.safetensors identical for 1, 2, 4 workers" "$tmp"/bf16-w{1,2,4}/model.safetensors
if cmp -s "$tmp/bf16-w1/model.safetensors" "$tmp/minixception-w1/model.safetensors"; then
    failed=$((failed + 1)); echo "FAIL bf16 gave the fp32 bytes"
else
    passed=$((passed + 1)); echo "ok   bf16 differs from fp32"
fi

# a shipped recipe (bf16, EMA, one-cycle, flips, TTA) keeps the contract too
for w in 1 2; do
    "$parcnn" train --recipe fmnist --limit 1200 --eval-limit 256 --epochs 2 --batch 96 --shard-size 8 --workers $w \
        --no-progress --out "$tmp/preset-w$w" > "$tmp/preset-w$w.log" 2>&1 || { echo "FAIL recipe workers $w:"; cat "$tmp/preset-w$w.log"; }
    grep '^final' "$tmp/preset-w$w.log" > "$tmp/preset-w$w.final"
done
check "recipe fmnist: model and final (TTA) accuracy identical for 1 and 2 workers" \
    "$tmp"/preset-w{1,2}/model.safetensors
check "recipe fmnist: final line identical for 1 and 2 workers" "$tmp"/preset-w{1,2}.final

# Resume across worker counts: 12 steps with 4 workers, then the rest with 1 worker.
"$parcnn" train --model minixception "${common[@]}" --workers 4 --max-steps 12 --out "$tmp/resume" > "$tmp/r1.log" 2>&1
"$parcnn" train --model minixception "${common[@]}" --workers 1 --resume --out "$tmp/resume" > "$tmp/r2.log" 2>&1 \
    || { echo "FAIL resume:"; cat "$tmp/r2.log"; }
check "checkpoint from 4 workers resumed with 1 worker gives the same bytes" \
    "$tmp/minixception-w1/model.safetensors" "$tmp/resume/model.safetensors"

# N steps, then N resumed steps, equals 2N steps (mid-epoch, with dropout).
"$parcnn" train --model simple-cnn "${common[@]}" --workers 2 --max-steps 5 --out "$tmp/half" > /dev/null 2>&1
"$parcnn" train --model simple-cnn "${common[@]}" --workers 2 --max-steps 10 --resume --out "$tmp/half" > /dev/null 2>&1
"$parcnn" train --model simple-cnn "${common[@]}" --workers 2 --max-steps 10 --out "$tmp/full" > /dev/null 2>&1
check "5 steps + 5 resumed steps = 10 steps (model)" "$tmp/half/model.safetensors" "$tmp/full/model.safetensors"
check "5 steps + 5 resumed steps = 10 steps (checkpoint)" "$tmp/half/checkpoint.safetensors" "$tmp/full/checkpoint.safetensors"

# The recipe features together: weight averaging (--ema), the triangular schedule,
# parameter groups and the alternating flip, on minixception (batch norm): the same bytes
# on 1 and 2 workers, and a 2-worker checkpoint (holding the average) resumed on 1 worker
# reaches them too.
recipe=(--model minixception "${common[@]}" --ema 0.99 --schedule triangular --peak-epoch 0.5
        --optimizer sgd --lr 0.05 --nesterov --weight-decay 5e-4 --no-decay-bn-bias --bias-lr-mult 4
        --augment flip=alt,crop=2)
for w in 1 2; do
    "$parcnn" train "${recipe[@]}" --workers $w --out "$tmp/recipe-w$w" > "$tmp/recipe-w$w.log" 2>&1 \
        || { echo "FAIL recipe workers $w:"; cat "$tmp/recipe-w$w.log"; }
done
check "--ema and the recipe flags: model.safetensors identical for 1, 2 workers" "$tmp"/recipe-w{1,2}/model.safetensors
check "--ema and the recipe flags: checkpoint identical for 1, 2 workers" "$tmp"/recipe-w{1,2}/checkpoint.safetensors
"$parcnn" train "${recipe[@]}" --workers 2 --max-steps 7 --out "$tmp/recipe-resume" > /dev/null 2>&1
"$parcnn" train "${recipe[@]}" --workers 1 --resume --out "$tmp/recipe-resume" > "$tmp/recipe-r.log" 2>&1 \
    || { echo "FAIL recipe resume:"; cat "$tmp/recipe-r.log"; }
check "--ema: 7 steps on 2 workers resumed on 1 worker gives the same model" \
    "$tmp/recipe-w1/model.safetensors" "$tmp/recipe-resume/model.safetensors"
check "--ema: ... and the same checkpoint" "$tmp/recipe-w1/checkpoint.safetensors" "$tmp/recipe-resume/checkpoint.safetensors"
no_ema=()
for a in "${recipe[@]}"; do [ "$a" = --ema ] || [ "$a" = 0.99 ] || no_ema+=("$a"); done
"$parcnn" train "${no_ema[@]}" --workers 2 --out "$tmp/recipe-noema" > /dev/null 2>&1
if cmp -s "$tmp/recipe-noema/model.safetensors" "$tmp/recipe-w1/model.safetensors"; then
    failed=$((failed + 1)); echo "FAIL --ema saved the same model as without it"
else
    passed=$((passed + 1)); echo "ok   --ema saves other (averaged) weights"
fi

# --lookahead instead of --ema: the same bytes on 1 and 2 workers; resumed from a step
# between two syncs (7 of every 3) with the slow weights from the checkpoint; and the
# syncs change the result.
look=()
for a in "${recipe[@]}"; do [ "$a" = --ema ] && a=--lookahead; [ "$a" = 0.99 ] && a=3; look+=("$a"); done
for w in 1 2; do
    "$parcnn" train "${look[@]}" --workers $w --out "$tmp/look-w$w" > "$tmp/look-w$w.log" 2>&1 \
        || { echo "FAIL lookahead workers $w:"; cat "$tmp/look-w$w.log"; }
done
check "--lookahead: model.safetensors identical for 1, 2 workers" "$tmp"/look-w{1,2}/model.safetensors
"$parcnn" train "${look[@]}" --workers 2 --max-steps 7 --out "$tmp/look-resume" > /dev/null 2>&1
"$parcnn" train "${look[@]}" --workers 1 --resume --out "$tmp/look-resume" > "$tmp/look-r.log" 2>&1 \
    || { echo "FAIL lookahead resume:"; cat "$tmp/look-r.log"; }
check "--lookahead: 7 steps on 2 workers resumed on 1 worker gives the same model" \
    "$tmp/look-w1/model.safetensors" "$tmp/look-resume/model.safetensors"
check "--lookahead: ... and the same checkpoint" "$tmp/look-w1/checkpoint.safetensors" "$tmp/look-resume/checkpoint.safetensors"
if cmp -s "$tmp/recipe-noema/model.safetensors" "$tmp/look-w1/model.safetensors"; then
    failed=$((failed + 1)); echo "FAIL --lookahead saved the same model as without it"
else
    passed=$((passed + 1)); echo "ok   --lookahead changes the weights"
fi

# The lookahead arithmetic: 4 steps with --lookahead 4 sync once, after the last step, with
# d = 0.95^4, from the initial weights (the slow weights of a checkpoint before any sync)
# towards the weights of 4 plain steps; after the sync the weights are the slow ones.
la=(--model simple-cnn --limit 384 --eval-limit 64 --epochs 1 --batch 96 --shard-size 8 --no-progress)
"$parcnn" train "${la[@]}" --lookahead 4 --max-steps 1 --out "$tmp/la-init" > /dev/null 2>&1
"$parcnn" train "${la[@]}" --lookahead 4 --out "$tmp/la-sync" > /dev/null 2>&1
"$parcnn" train "${la[@]}" --out "$tmp/la-plain" > /dev/null 2>&1
if /usr/bin/env python3 - "$tmp/la-init/checkpoint.safetensors" "$tmp/la-sync/checkpoint.safetensors" \
    "$tmp/la-plain/checkpoint.safetensors" <<'PY'
import json, struct, sys
def load(path):  # the named parameters in file order, and the flat slow weights
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    get = lambda v: struct.unpack("<%df" % ((v["data_offsets"][1] - v["data_offsets"][0]) // 4),
                                  raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
    named = sorted((v["data_offsets"][0], k) for k, v in head.items()
                   if k.endswith((".weight", ".bias")))
    flat = [x for _, k in named for x in get(head[k])]
    return flat, list(get(head["ema.params"])) if "ema.params" in head else None
_, w0 = load(sys.argv[1])
fast, slow = load(sys.argv[2])
plain, _ = load(sys.argv[3])
d = 0.95 ** 4
assert len(w0) == len(fast) == len(plain) > 1000
assert fast == slow, "after the sync the weights are not the slow weights"
worst = max(abs(s - (d * a + (1 - d) * p)) / (abs(s) + 1e-3) for s, a, p in zip(slow, w0, plain))
assert worst < 1e-5, worst
assert max(abs(a - p) for a, p in zip(w0, plain)) > 1e-3  # the steps moved the weights
PY
then passed=$((passed + 1)); echo "ok   --lookahead: slow = d slow + (1-d) weights at the sync, then the weights = slow"
else failed=$((failed + 1)); echo "FAIL --lookahead arithmetic"; fi

# A different seed must change the bytes (the comparison above can fail).
"$parcnn" train --model simple-cnn "${common[@]}" --workers 2 --max-steps 10 --seed 2 --out "$tmp/seed2" > /dev/null 2>&1
if cmp -s "$tmp/seed2/model.safetensors" "$tmp/full/model.safetensors"; then
    failed=$((failed + 1)); echo "FAIL another seed gave the same bytes"
else
    passed=$((passed + 1)); echo "ok   another seed gives other bytes"
fi
echo "$passed passed, $failed failed"
[ $failed = 0 ]
