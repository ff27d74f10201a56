#!/usr/bin/env bash
# The determinism contract: the same seed, global batch and shard size give
# byte-identical model files for any worker count, and a checkpoint written with
# one worker count resumes with another to the same bytes.
# usage: cli_determinism.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
. "$(dirname "$0")/lib.sh"
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

# Winograd convolutions (forced on every layer they apply to) keep the contract, and are
# really used: --profile marks the layers, and the bytes differ from the direct algorithm's
for w in 1 2 4; do
    "$parcnn" train --model whitenet-s "${common[@]}" --conv-algo winograd --workers $w --profile \
        --out "$tmp/wino-w$w" > "$tmp/wino-w$w.log" 2>&1 || { echo "FAIL winograd workers $w:"; cat "$tmp/wino-w$w.log"; }
done
"$parcnn" train --model whitenet-s "${common[@]}" --conv-algo direct --workers 2 --out "$tmp/direct-w2" \
    > "$tmp/direct-w2.log" 2>&1 || { echo "FAIL direct:"; cat "$tmp/direct-w2.log"; }
check "winograd: model.safetensors identical for 1, 2, 4 workers" "$tmp"/wino-w{1,2,4}/model.safetensors
if grep -q 'conv:wino' "$tmp/wino-w1.log" && ! cmp -s "$tmp/wino-w1/model.safetensors" "$tmp/direct-w2/model.safetensors"; then
    passed=$((passed + 1)); echo "ok   winograd runs (conv:wino in --profile) and differs from direct"
else
    failed=$((failed + 1)); echo "FAIL winograd not used, or the same bytes as direct"
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

# The recipe features together: a weight average (--ema, or --lookahead), the triangular
# schedule, parameter groups and the alternating flip, on minixception (batch norm): the
# same bytes on 1 and 2 workers; a 2-worker checkpoint (holding the average) resumed on
# 1 worker reaches them too (7 steps: between two lookahead syncs of every 3); and the
# average changes the weights saved.
recipe=(--model minixception "${common[@]}" --schedule triangular --peak-epoch 0.5
        --optimizer sgd --lr 0.05 --nesterov --weight-decay 5e-4 --no-decay-bn-bias --bias-lr-mult 4 --norm-bias-lr-mult 8
        --augment flip=alt,crop=2)
"$parcnn" train "${recipe[@]}" --workers 2 --out "$tmp/recipe-plain" > /dev/null 2>&1
averaged() { # averaged NAME FLAG VALUE
    local name=$1 run=("${recipe[@]}" "$2" "$3")
    for w in 1 2; do
        "$parcnn" train "${run[@]}" --workers $w --out "$tmp/$name-w$w" > "$tmp/$name-w$w.log" 2>&1 \
            || { echo "FAIL $2 workers $w:"; cat "$tmp/$name-w$w.log"; }
    done
    check "$2 and the recipe flags: model.safetensors identical for 1, 2 workers" "$tmp/$name"-w{1,2}/model.safetensors
    check "$2 and the recipe flags: checkpoint identical for 1, 2 workers" "$tmp/$name"-w{1,2}/checkpoint.safetensors
    "$parcnn" train "${run[@]}" --workers 2 --max-steps 7 --out "$tmp/$name-resume" > /dev/null 2>&1
    "$parcnn" train "${run[@]}" --workers 1 --resume --out "$tmp/$name-resume" > "$tmp/$name-r.log" 2>&1 \
        || { echo "FAIL $2 resume:"; cat "$tmp/$name-r.log"; }
    check "$2: 7 steps on 2 workers resumed on 1 worker gives the same model" \
        "$tmp/$name-w1/model.safetensors" "$tmp/$name-resume/model.safetensors"
    check "$2: ... and the same checkpoint" "$tmp/$name-w1/checkpoint.safetensors" "$tmp/$name-resume/checkpoint.safetensors"
    if cmp -s "$tmp/recipe-plain/model.safetensors" "$tmp/$name-w1/model.safetensors"; then
        failed=$((failed + 1)); echo "FAIL $2 saved the same model as without it"
    else
        passed=$((passed + 1)); echo "ok   $2 saves other (averaged) weights"
    fi
}
averaged ema --ema 0.99
averaged lookahead --lookahead 3

# --ensemble 2 with the recipe features and test-time augmentation: members and ensemble
# metrics identical for 1 and 2 workers; member 1 is the plain run of seed 1 (the
# lookahead run above), member 2 another model.
for w in 1 2; do
    "$parcnn" train "${recipe[@]}" --lookahead 3 --ensemble 2 --tta flip,translate=1 --workers $w \
        --out "$tmp/ens-w$w" > "$tmp/ens-w$w.log" 2>&1 || { echo "FAIL ensemble workers $w:"; cat "$tmp/ens-w$w.log"; }
done
check "--ensemble 2: member 1 identical for 1, 2 workers and to the single run" \
    "$tmp/lookahead-w1/model.safetensors" "$tmp"/ens-w{1,2}/member-1/model.safetensors
check "--ensemble 2: member 2 identical for 1, 2 workers" "$tmp"/ens-w{1,2}/member-2/model.safetensors
if /usr/bin/env python3 - "$tmp"/ens-w{1,2}/ensemble.json "$tmp"/ens-w1/member-{1,2}/model.safetensors <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
keys = ["test_accuracy", "test_loss", "macro_f1", "tta"]
assert [a[k] for k in keys] == [b[k] for k in keys], (a, b)
assert [m["test_accuracy"] for m in a["members"]] == [m["test_accuracy"] for m in b["members"]]
assert [m["seed"] for m in a["members"]] == [1, 2] and a["tta"] == "flip,translate=1"
assert open(sys.argv[3], "rb").read() != open(sys.argv[4], "rb").read(), "the members are the same model"
PY
then passed=$((passed + 1)); echo "ok   --ensemble 2: ensemble metrics identical for 1, 2 workers; the members differ"
else failed=$((failed + 1)); echo "FAIL --ensemble 2 metrics"; fi

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
finish
