#!/usr/bin/env bash
# parcnn bench predict: the table for each batch size and way to spend the cores, the
# fastest per batch, fp32 and bf16, batch norms folded (or not), a trained weights file,
# and bad flags.
# usage: cli_bench_predict.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
. "$(dirname "$0")/lib.sh"
cores=$(nproc)

"$parcnn" bench predict --model resnet20 --input 3x32x32 --batch 1,4 --reps 3 > "$tmp/fp32.txt" 2>&1
rc=$?
cat "$tmp/fp32.txt"
[ $rc = 0 ] && grep -q "^parcnn bench predict: resnet20, input 3x32x32, 10 classes, 269722 parameters, .* fp32, $cores cores, 19 batch norms folded" "$tmp/fp32.txt" \
    && ok "resnet20 fp32: header with parameters (as written), precision and the 19 batch norms folded" || bad "resnet20 fp32 (exit $rc)"
rows=$(awk '$1 ~ /^[0-9]+$/ && NF == 7 && $5 > 0' "$tmp/fp32.txt" | wc -l)
want=$(( cores > 1 ? (4 % cores == 0 ? 5 : 4) : 2 ))
[ "$rows" = "$want" ] && ok "$rows timed configurations (1x1 and 1x$cores at batch 1, also ${cores}x1 at batch 4)" || bad "rows: $rows, expected $want"
grep -qE "^best batch 1: [0-9.]+ ms, [0-9]+ images/s \(1 worker\(s\) x [0-9]+ thread\(s\), passes of 1\)" "$tmp/fp32.txt" \
    && grep -qE "^best batch 4: " "$tmp/fp32.txt" && ok "the fastest configuration per batch size" || bad "best lines"

"$parcnn" bench predict --model simple-cnn --precision bf16 --batch 2 --reps 2 --workers 1 --threads 1 > "$tmp/bf16.txt" 2>&1 \
    && grep -q ", bf16, " "$tmp/bf16.txt" && [ "$(grep -c '^ *2 ' "$tmp/bf16.txt")" = 1 ] \
    && ok "bf16, one given configuration" || { bad "bf16:"; cat "$tmp/bf16.txt"; }

# passes: a worker's whole part and passes of 8 by default; --chunk's sizes that divide it
"$parcnn" bench predict --model simple-cnn --batch 16 --reps 2 --workers 1 --threads 1 > "$tmp/chunk.txt" 2>&1 \
    && [ "$(awk '$1 == 16 && NF == 7 {print $4}' "$tmp/chunk.txt" | tr '\n' ' ')" = "16 8 " ] \
    && ok "batch 16: one pass of 16 and passes of 8" || { bad "default chunks:"; cat "$tmp/chunk.txt"; }
"$parcnn" bench predict --model minixception --input 3x32x32 --batch 4 --chunk 2,3 --reps 2 --workers 2 --threads 1 --profile > "$tmp/prof.txt" 2>&1 \
    && [ "$(awk '$1 == 4 && NF == 7 && $2 ~ /^[0-9]+$/ {print $4}' "$tmp/prof.txt" | tr '\n' ' ')" = "2 " ] \
    && grep -qE "^best batch 4: .*passes of 2\)" "$tmp/prof.txt" \
    && [ "$(grep -cE '^ +[0-9]+ [a-z0-9_.]+ +[a-z]+ +[0-9]+x[0-9]+x[0-9]+ +[0-9.]+ ms +[0-9.]+%' "$tmp/prof.txt")" = 32 ] \
    && grep -qE '^ +2 layers.2 +conv +8x28x28 .* (direct|winograd)' "$tmp/prof.txt" \
    && ok "--chunk 2,3 on 2 workers' parts of 2: passes of 2; --profile: 32 layers (14 batch norms folded) with the conv algorithm" \
    || { bad "--chunk / --profile:"; cat "$tmp/prof.txt"; }
"$parcnn" bench predict --model minixception --input 3x32x32 --batch 2 --reps 1 --workers 1 --threads 1 --profile --no-fold-bn > "$tmp/nofold.txt" 2>&1 \
    && grep -q ", 0 batch norms folded" "$tmp/nofold.txt" \
    && [ "$(grep -cE '^ +[0-9]+ [a-z0-9_.]+ +batchnorm ' "$tmp/nofold.txt")" = 14 ] \
    && ok "--no-fold-bn: the 14 batch norms run as layers of their own" || { bad "--no-fold-bn:"; cat "$tmp/nofold.txt"; }

# --conv-algo: resnet20's 32- and 64-channel 3x3 layers run Winograd by default, direct when asked
for algo in auto direct; do
    "$parcnn" bench predict --model resnet20 --input 3x32x32 --batch 2 --reps 1 --workers 1 --threads 1 \
        --conv-algo $algo --profile > "$tmp/algo-$algo.txt" 2>&1 || bad "--conv-algo $algo"
done
grep -q "winograd$" "$tmp/algo-auto.txt" && ! grep -q "winograd$" "$tmp/algo-direct.txt" \
    && [ "$(grep -c "direct$" "$tmp/algo-direct.txt")" = 19 ] \
    && ok "--conv-algo direct: all 19 convolutions direct (auto: some Winograd)" \
    || { bad "--conv-algo:"; cat "$tmp/algo-auto.txt" "$tmp/algo-direct.txt"; }

"$parcnn" train --limit 256 --eval-limit 64 --epochs 1 --no-progress --out "$tmp/run" > /dev/null 2>&1 || bad "train a model"
"$parcnn" bench predict --model "$tmp/run/model.safetensors" --batch 2 --reps 2 > "$tmp/file.txt" 2>&1 \
    && grep -q "input 1x28x28, 10 classes, 3274634 parameters" "$tmp/file.txt" \
    && ok "a trained weights file: its own model and input" || { bad "weights file:"; cat "$tmp/file.txt"; }

check_usage() { # MESSAGE ARGS...: exit 2 and one line naming the problem
    local msg=$1; shift
    "$parcnn" bench predict "$@" > "$tmp/err.txt" 2>&1
    local rc=$?
    [ $rc = 2 ] && [ "$(wc -l < "$tmp/err.txt")" = 1 ] && grep -q -- "$msg" "$tmp/err.txt" \
        && ok "usage error: $msg" || { bad "$* (exit $rc):"; cat "$tmp/err.txt"; }
}
check_usage "--model NAME|FILE is required"
check_usage "unknown model 'nosuch'" --model nosuch
check_usage "--batch 0: expected" --model simple-cnn --batch 0
check_usage "--batch 1,x: expected" --model simple-cnn --batch 1,x
check_usage "--workers 2 does not divide --batch 3" --model simple-cnn --batch 3 --workers 2 --threads 1
check_usage "--chunk 0: expected" --model simple-cnn --chunk 0
check_usage "--conv-algo fast: expected auto, direct or winograd" --model simple-cnn --conv-algo fast
check_usage "--workers and --threads go together" --model simple-cnn --workers 2
check_usage "--precision fp16: expected fp32 or bf16" --model simple-cnn --precision fp16
check_usage "--input 3x32: expected CxHxW" --model simple-cnn --input 3x32
"$parcnn" bench predict --model "$tmp/missing.safetensors" > "$tmp/err.txt" 2>&1
[ $? = 1 ] && grep -q "missing.safetensors" "$tmp/err.txt" && ok "a missing weights file: exit 1 naming it" || { bad "missing file:"; cat "$tmp/err.txt"; }
finish
