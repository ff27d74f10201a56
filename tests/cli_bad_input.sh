#!/usr/bin/env bash
# Bad input: one clear line on stderr naming the file or flag, exit 2 for usage
# errors and 1 for data errors, no crash, and a good checkpoint is never lost.
# Also the smoke check of bench gemm (a small product, and its bad flags).
# usage: cli_bad_input.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
. "$(dirname "$0")/lib.sh"
# expect (tests/lib.sh) takes up to two stderr lines here
expect_lines=2
small=(--limit 256 --eval-limit 64 --epochs 1 --batch 64 --no-progress)

expect "unknown command" 2 "unknown command 'trian'" -- "$parcnn" trian
expect "unknown option" 2 "unknown or incomplete option '--bogus'" -- "$parcnn" train --bogus
expect "missing option value" 2 "incomplete option '--epochs'" -- "$parcnn" train --epochs
expect "non-numeric epochs" 2 "--epochs abc: expected an integer" -- "$parcnn" train --epochs abc
expect "zero epochs" 2 "--epochs 0: expected an integer" -- "$parcnn" train --epochs 0
expect "negative lr" 2 "--lr -1: expected a number" -- "$parcnn" train --lr -1
expect "bad optimizer" 2 "--optimizer rmsprop: expected sgd, adam or adamw" -- "$parcnn" train --optimizer rmsprop
expect "bad schedule" 2 "--schedule linear: expected" -- "$parcnn" train --schedule linear
expect "triangular with a warm-up" 2 "--warmup-epochs 1: the triangular schedule warms up by itself" -- "$parcnn" train "${small[@]}" --schedule triangular --warmup-epochs 1
expect "peak after the last epoch" 2 "--peak-epoch 3: must be at most --epochs 1" -- "$parcnn" train "${small[@]}" --schedule triangular --peak-epoch 3
expect "start factor above 1" 2 "--start-factor 1.5: expected a number in \[0, 1\]" -- "$parcnn" train --start-factor 1.5
expect "bias learning-rate multiplier of 0" 2 "--bias-lr-mult 0: expected a number" -- "$parcnn" train --bias-lr-mult 0
expect "norm-bias learning-rate multiplier of 0" 2 "--norm-bias-lr-mult 0: expected a number" -- "$parcnn" train --norm-bias-lr-mult 0
expect "no-decay-bn-bias without weight decay" 2 "--no-decay-bn-bias: there is no weight decay to turn off" -- "$parcnn" train "${small[@]}" --no-decay-bn-bias
expect "bad flip mode" 2 "--augment: bad item 'flip=maybe': expected no value or alt" -- "$parcnn" train --augment flip=maybe
expect "EMA decay of 1" 2 "--ema 1: expected a decay in \(0, 1\)" -- "$parcnn" train --ema 1
expect "EMA decay of 0" 2 "--ema 0: expected a decay in \(0, 1\)" -- "$parcnn" train --ema 0
expect "ensemble of 0 models" 2 "--ensemble 0: expected an integer" -- "$parcnn" train --ensemble 0
expect "lookahead of 0 steps" 2 "--lookahead 0: " -- "$parcnn" train --lookahead 0
expect "lookahead with --ema" 2 "--ema and --lookahead both average the weights: choose one" -- "$parcnn" train --ema 0.9 --lookahead 5
expect "bad test-time augmentation" 2 "--tta: unknown item 'mirror' \(expected flip or translate=N\)" -- "$parcnn" train --tta mirror
expect "test-time shift larger than the images" 2 "--tta translate=40: must be smaller than the 28x28 images" -- "$parcnn" train "${small[@]}" --tta flip,translate=40
expect "batch not a multiple of the shard size" 2 "--batch 100 is not a multiple of --shard-size 32" -- "$parcnn" train "${small[@]}" --batch 100
expect "workers not dividing the shards" 2 "--workers 3 must divide the 2 shards" -- "$parcnn" train "${small[@]}" --workers 3
expect "unknown recipe" 2 "--recipe nope: no such recipe" -- "$parcnn" train --recipe nope
expect "recipe without a name" 2 "--recipe: expected a name" -- "$parcnn" train --recipe
expect "recipes: unknown name" 2 "nope: no such recipe" -- "$parcnn" recipes nope
expect "recipe without its data folder" 2 "--recipe cifar10 needs --data: the image folders" -- "$parcnn" train --recipe cifar10
printf '[conv] filters=6 size=2 init=whiten\n[gap]\n[dense] units=classes\n' > "$tmp/whiten.cfg"
expect "whitening with the wrong filter count" 2 "whiten.cfg:1: \[conv\] init=whiten needs a conv on the input images with 4 or 8 filters" -- "$parcnn" train "${small[@]}" --model "$tmp/whiten.cfg"
expect "bad precision" 2 "--precision fp16: expected fp32 or bf16" -- "$parcnn" train --precision fp16
expect "bf16 on the reference kernels" 2 "--precision bf16 runs on the oneDNN kernels" -- "$parcnn" train --precision bf16 --kernels ref
expect "bad conv algorithm" 2 "--conv-algo fft: expected auto, direct or winograd" -- "$parcnn" train --conv-algo fft
expect "predict: bad conv algorithm" 2 "--conv-algo x: expected auto, direct or winograd" -- "$parcnn" predict --weights x --conv-algo x 1
expect "eval: bad precision" 2 "--precision half: expected fp32 or bf16" -- "$parcnn" eval --weights x --precision half
expect "unknown model" 2 "unknown model 'resnet9000'" -- "$parcnn" train "${small[@]}" --model resnet9000
expect "unknown dataset" 2 "unknown dataset 'imagenet'" -- "$parcnn" train "${small[@]}" --data imagenet
expect "missing dataset folder" 1 "/nonexistent" -- "$parcnn" train "${small[@]}" --data idx:/nonexistent

printf '[conv] filters=8 size=3 colour=blue\n[gap]\n[dense] units=classes\n' > "$tmp/badkey.cfg"
expect "model file with an unknown key" 2 "badkey.cfg:1: \[conv\] has no key 'colour'" -- "$parcnn" train "${small[@]}" --model "$tmp/badkey.cfg"
printf '[conv] filters=8 size=3\n[pool]\n' > "$tmp/badlayer.cfg"
expect "model file with an unknown layer" 2 "badlayer.cfg:2: unknown layer type \[pool\]" -- "$parcnn" train "${small[@]}" --model "$tmp/badlayer.cfg"
printf '[conv] filters=8 size=3\n[gap]\n' > "$tmp/noclasses.cfg"
expect "model file not ending in the classes" 2 "noclasses.cfg: the last layer must output the 10 class scores" -- "$parcnn" train "${small[@]}" --model "$tmp/noclasses.cfg"
expect "missing model file" 1 "nothere.cfg: cannot open: No such file" -- "$parcnn" train "${small[@]}" --model "$tmp/nothere.cfg"

# corrupt IDX: a truncated image file in an idx:DIR dataset
mkdir -p "$tmp/idx"
src=/usr/share/datasets/fashion-mnist
for f in train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    gzip -dc "$src/$f.gz" > "$tmp/idx/$f"
done
gzip -dc "$src/train-images-idx3-ubyte.gz" | head -c 100000 > "$tmp/idx/train-images-idx3-ubyte"
expect "truncated IDX file" 1 "train-images-idx3-ubyte.*truncated" -- "$parcnn" train "${small[@]}" --data "idx:$tmp/idx"
printf 'garbage!' > "$tmp/idx/train-images-idx3-ubyte"
expect "IDX file with a wrong magic number" 1 "train-images-idx3-ubyte.*magic" -- "$parcnn" train "${small[@]}" --data "idx:$tmp/idx"

# a good run, then things that must not damage it
"$parcnn" train "${small[@]}" --out "$tmp/good" > /dev/null 2>&1 || { echo "FAIL could not make a good run"; failed=$((failed + 1)); }
good_sum=$(sha256sum "$tmp/good/checkpoint.safetensors" "$tmp/good/model.safetensors")
expect "fresh run into a used --out" 2 "already holds a training run" -- "$parcnn" train "${small[@]}" --out "$tmp/good"
expect "resume with other settings" 2 "checkpoint.safetensors: was written with other settings" -- "$parcnn" train "${small[@]}" --lr 0.01 --resume --out "$tmp/good"
expect "resume adding --ema" 2 "was written with other settings: ema: the checkpoint has none, this run has 0.999" -- "$parcnn" train "${small[@]}" --ema 0.999 --resume --out "$tmp/good"
# a full disk: the file-size limit makes every write of the next run fail
expect "full disk during checkpoint write" 1 "checkpoint.safetensors" -- bash -c "trap '' XFSZ; ulimit -f 64; exec \"\$0\" \"\$@\"" "$parcnn" train "${small[@]}" --epochs 2 --resume --out "$tmp/good"
[ "$(sha256sum "$tmp/good/checkpoint.safetensors" "$tmp/good/model.safetensors")" = "$good_sum" ] \
    && { passed=$((passed + 1)); echo "ok   the good checkpoint and model are intact"; } \
    || { failed=$((failed + 1)); echo "FAIL the good checkpoint or model changed"; }
ls "$tmp/good" | grep -q '\.tmp\.' && { failed=$((failed + 1)); echo "FAIL temporary left behind"; } || { passed=$((passed + 1)); echo "ok   no temporary left behind"; }

# corrupt weights files for eval
head -c 1000 "$tmp/good/model.safetensors" > "$tmp/trunc.safetensors"
expect "truncated safetensors" 1 "trunc.safetensors" -- "$parcnn" eval --weights "$tmp/trunc.safetensors"
printf '\x10\x00\x00\x00\x00\x00\x00\x00{"a": nonsense }' > "$tmp/json.safetensors"
expect "safetensors with a bad header" 1 "json.safetensors" -- "$parcnn" eval --weights "$tmp/json.safetensors"
expect "missing weights" 1 "missing.safetensors" -- "$parcnn" eval --weights "$tmp/missing.safetensors"
expect "eval without --weights" 2 "--weights FILE is required" -- "$parcnn" eval
# ensembles: members must share input, normalization and classes; a fresh ensemble checks
# every member's folder before it trains anything
"$parcnn" train --limit 512 --eval-limit 64 --epochs 1 --batch 64 --no-progress --out "$tmp/other" > /dev/null 2>&1
expect "ensemble of models normalized differently" 2 "other/model.safetensors: not a member of one ensemble with" -- \
    "$parcnn" eval --weights "$tmp/good/model.safetensors,$tmp/other/model.safetensors"
expect "ensemble with an empty file name" 2 "--weights a,,b: an empty file name" -- "$parcnn" eval --weights a,,b
mkdir -p "$tmp/ens/member-2" && cp "$tmp/good/checkpoint.safetensors" "$tmp/ens/member-2/"
expect "fresh ensemble into a used member folder" 2 "member-2 already holds a training run" -- \
    "$parcnn" train "${small[@]}" --ensemble 2 --out "$tmp/ens"
[ ! -e "$tmp/ens/member-1" ] && { passed=$((passed + 1)); echo "ok   ... and trains no member"; } \
    || { failed=$((failed + 1)); echo "FAIL member 1 trained before the check"; }
expect "eval with a bad --tta" 2 "--tta: bad item 'translate=x'" -- "$parcnn" eval --weights "$tmp/good/model.safetensors" --tta flip,translate=x
expect "predict with a test-time shift larger than the images" 2 "--tta translate=28: must be smaller than the 28x28 images" -- "$parcnn" predict --weights "$tmp/good/model.safetensors" --tta translate=28 0
expect "predict index out of range" 2 "sample index 99999 out of range" -- "$parcnn" predict --weights "$tmp/good/model.safetensors" 99999

# bench gemm: a small product gives a positive rate; a bad flag is one usage line, exit 2
"$parcnn" bench gemm --size 256 --reps 3 > "$tmp/gemm.out" 2> "$tmp/gemm.err"
rc=$?
gflops=$(sed -n 's|^best \([0-9.]*\) GFLOP/s .*|\1|p' "$tmp/gemm.out")
if [ $rc = 0 ] && awk -v g="${gflops:-0}" 'BEGIN {exit !(g > 0)}'; then
    passed=$((passed + 1)); echo "ok   bench gemm --size 256: $gflops GFLOP/s"
else
    failed=$((failed + 1)); echo "FAIL bench gemm --size 256: exit $rc, output:"; cat "$tmp/gemm.out" "$tmp/gemm.err"
fi
gemm_bad() {  # NAME PATTERN ARGS...
    local name=$1 pattern=$2; shift 2
    expect "bench gemm $name" 2 "$pattern" -- "$parcnn" bench gemm "$@"
    [ "$(wc -l < "$tmp/err")" = 1 ] || { failed=$((failed + 1)); echo "FAIL bench gemm $name: not one stderr line"; }
}
gemm_bad "--size too small" "^parcnn bench gemm: --size 8: expected an integer in \[16, 16384\]$" --size 8
gemm_bad "--size not a number" "^parcnn bench gemm: --size abc: expected an integer" --size abc
gemm_bad "--threads 0" "^parcnn bench gemm: --threads 0: expected an integer" --threads 0
gemm_bad "--dtype fp16" "^parcnn bench gemm: --dtype fp16: expected f32 or bf16 \(see 'parcnn bench gemm --help'\)$" --dtype fp16
gemm_bad "unknown option" "^parcnn bench gemm: unknown or incomplete option '--bogus' \(see 'parcnn bench gemm --help'\)$" --bogus
gemm_bad "missing value" "^parcnn bench gemm: unknown or incomplete option '--size' \(see 'parcnn bench gemm --help'\)$" --size
gemm_bad "stray argument" "^parcnn bench gemm: unexpected argument '4096'$" 4096

# bench conv: a small layer gives both algorithms' rows; bad flags are one line, exit 2
"$parcnn" bench conv --batch 2 --channels 16 --filters 16 --size 8 --copies 1 --reps 2 > "$tmp/conv.out" 2>&1
rc=$?
if [ $rc = 0 ] && grep -q '^direct ' "$tmp/conv.out" && grep -q '^winograd ' "$tmp/conv.out"; then
    passed=$((passed + 1)); echo "ok   bench conv: direct and winograd rows"
else
    failed=$((failed + 1)); echo "FAIL bench conv: exit $rc, output:"; cat "$tmp/conv.out"
fi
expect "bench conv --kernel 4" 2 "^parcnn bench conv: --kernel 4: expected 3 or 5 \(see 'parcnn bench conv --help'\)$" -- "$parcnn" bench conv --kernel 4
expect "bench conv channels not a multiple of the block" 2 "must be multiples of the activation block" -- "$parcnn" bench conv --channels 12
finish
