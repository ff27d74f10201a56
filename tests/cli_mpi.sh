#!/usr/bin/env bash
# Multi-process training under Open MPI: byte-identical results for every
# (ranks, workers), uneven dataset sizes, a flag mismatch between ranks, a stalled
# rank (time-out), a killed rank, resuming on another rank count, and bench scaling
# --ranks launching its multi-rank runs under mpirun.
# usage: cli_mpi.sh PARCNN SOURCE_DIR
set -u
parcnn=$1 src=$2
if ! command -v mpirun > /dev/null; then echo "skipped: mpirun not found"; echo "0 passed, 0 failed"; exit 0; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Under AddressSanitizer: Open MPI's dlopen'ed components leak at exit, in frames LeakSanitizer
# cannot attribute to a library (so no suppression matches); leak checking stays on in every
# other test, which runs the same training code without MPI. Memory errors are still caught.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
# no shared-memory segment warnings in containers; loopback only
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
mpi() { local np=$1; shift; mpirun --oversubscribe --bind-to none -np "$np" "$@"; }
. "$(dirname "$0")/lib.sh"
trap 'pkill -9 -f "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
same() { cmp -s "$1" "$2"; }

# 1,250 images: not a multiple of the batch (13 steps per epoch, 2 images dropped)
common=(--model minixception --limit 1250 --eval-limit 300 --epochs 2 --batch 96 --shard-size 8 --no-progress)
"$parcnn" train "${common[@]}" --workers 1 --out "$tmp/r1w1" > "$tmp/r1w1.log" 2>&1 || bad "1 rank x 1 worker failed"
for rw in "1 2" "2 1" "2 2" "3 1" "4 1" "3 2"; do
    set -- $rw
    mpi "$1" "$parcnn" train "${common[@]}" --workers "$2" --out "$tmp/r$1w$2" > "$tmp/r$1w$2.log" 2>&1 \
        || { bad "$1 ranks x $2 workers failed:"; cat "$tmp/r$1w$2.log"; continue; }
    same "$tmp/r1w1/model.safetensors" "$tmp/r$1w$2/model.safetensors" \
        && ok "$1 ranks x $2 workers: model.safetensors identical to 1 x 1" \
        || bad "$1 ranks x $2 workers: model differs"
done
# --exchange messages, as between machines (point-to-point transfers during backward with
# one worker per rank, alltoallv with more; the runs above share memory): the same bytes
for rw in "2 1" "3 1" "2 2"; do
    set -- $rw
    mpi "$1" "$parcnn" train "${common[@]}" --workers "$2" --exchange messages --out "$tmp/m$1w$2" > "$tmp/m$1w$2.log" 2>&1 \
        || { bad "--exchange messages, $1 ranks x $2 workers failed:"; cat "$tmp/m$1w$2.log"; continue; }
    same "$tmp/r1w1/model.safetensors" "$tmp/m$1w$2/model.safetensors" \
        && ok "--exchange messages, $1 ranks x $2 workers: model.safetensors identical to 1 x 1" \
        || bad "--exchange messages, $1 ranks x $2 workers: model differs"
done
"$parcnn" train "${common[@]}" --exchange mail --out "$tmp/mail" > "$tmp/mail.log" 2>&1; rc=$?
[ $rc = 2 ] && [ "$(cat "$tmp/mail.log")" = "parcnn train: --exchange mail: expected auto or messages (see 'parcnn train --help')" ] \
    && ok "--exchange mail: usage error naming the flag" || { bad "--exchange mail (exit $rc):"; cat "$tmp/mail.log"; }
grep -q "2 MPI ranks x 1 worker(s)" "$tmp/r2w1.log" && ok "start-up names ranks and workers" || bad "start-up line"
[ "$(grep -c '^final:' "$tmp/r2w2.log")" = 1 ] && ok "only rank 0 prints" || bad "several ranks printed"
# test accuracy and loss identical (each test sample counted once across ranks)
for f in r2w1 r4w1; do
    [ "$(grep '^final' "$tmp/$f.log")" = "$(grep '^final' "$tmp/r1w1.log")" ] && ok "$f: final test metrics identical" || bad "$f: final metrics differ"
done

# A weight average under MPI (--ema, or --lookahead): each rank updates its chunk of the
# average (lookahead: and moves its chunk of the weights to it); the chunks are shared for
# evaluation and the files: still the bytes of one process
recipe=("${common[@]}" --schedule triangular --optimizer sgd --lr 0.05 --weight-decay 5e-4
        --no-decay-bn-bias --bias-lr-mult 4 --norm-bias-lr-mult 8 --augment flip=alt)
for avg in "--ema 0.99" "--lookahead 3"; do
    name=${avg%% *}
    "$parcnn" train "${recipe[@]}" $avg --workers 1 --out "$tmp/avg1" > "$tmp/avg1.log" 2>&1 || bad "$name on 1 process failed"
    mpi 2 "$parcnn" train "${recipe[@]}" $avg --workers 2 --out "$tmp/avg2" > "$tmp/avg2.log" 2>&1 \
        || { bad "$name on 2 ranks failed:"; cat "$tmp/avg2.log"; }
    same "$tmp/avg1/model.safetensors" "$tmp/avg2/model.safetensors" && same "$tmp/avg1/checkpoint.safetensors" "$tmp/avg2/checkpoint.safetensors" \
        && ok "$name and the recipe flags: 2 ranks x 2 workers identical to 1 x 1 (model and checkpoint)" \
        || bad "$name: 2 ranks x 2 workers differ from 1 x 1"
    rm -rf "$tmp/avg1" "$tmp/avg2"
done

# --ensemble 2 under MPI: each member trained across the ranks, the previous member kept in
# every rank's memory with its averaged weights complete, the ensemble evaluated across
# the ranks: the members and the ensemble's metrics of one process
ens=("${recipe[@]}" --epochs 1 --lookahead 3 --ensemble 2 --tta flip)
"$parcnn" train "${ens[@]}" --workers 1 --out "$tmp/ens1" > "$tmp/ens1.log" 2>&1 || bad "ensemble on 1 process failed"
mpi 2 "$parcnn" train "${ens[@]}" --workers 1 --out "$tmp/ens2" > "$tmp/ens2.log" 2>&1 \
    || { bad "ensemble on 2 ranks failed:"; cat "$tmp/ens2.log"; }
same "$tmp/ens1/member-1/model.safetensors" "$tmp/ens2/member-1/model.safetensors" \
    && same "$tmp/ens1/member-2/model.safetensors" "$tmp/ens2/member-2/model.safetensors" \
    && [ "$(grep '^final: ensemble' "$tmp/ens1.log" | cut -d';' -f1)" = "$(grep '^final: ensemble' "$tmp/ens2.log" | cut -d';' -f1)" ] \
    && grep -q '^final: ensemble' "$tmp/ens1.log" \
    && ok "--ensemble 2: 2 ranks give the members and ensemble metrics of 1 process" \
    || bad "--ensemble 2 under MPI differs from 1 process"

# --reduce fast: MPI's own allreduce; runs, and learns as well (bits may differ)
mpi 2 "$parcnn" train "${common[@]}" --workers 1 --reduce fast --out "$tmp/fast" > "$tmp/fast.log" 2>&1 \
    && grep -q "NOT bit-reproducible" "$tmp/fast.log" && ok "--reduce fast runs and says it is not reproducible" \
    || { bad "--reduce fast:"; cat "$tmp/fast.log"; }
awk -v a="$(awk '/^final/ {print $4}' "$tmp/fast.log" | tr -d ,)" -v b="$(awk '/^final/ {print $4}' "$tmp/r1w1.log" | tr -d ,)" \
    'BEGIN {d = a - b; if (d < 0) d = -d; exit !(a != "" && d < 0.05)}' \
    && ok "--reduce fast reaches the deterministic accuracy within 5 points" || bad "--reduce fast accuracy"

# flag mismatch between ranks: stops all ranks, naming the rank and the difference
mpirun --oversubscribe -np 1 "$parcnn" train "${common[@]}" --lr 0.001 : -np 1 "$parcnn" train "${common[@]}" --lr 0.002 \
    > "$tmp/mismatch.log" 2>&1
rc=$?
[ $rc != 0 ] && grep -q "rank 1 was started with other settings than rank 0: lr: rank 0 has 0.001, rank 1 has 0.002$" "$tmp/mismatch.log" \
    && ok "flag mismatch stops all ranks and names rank 1 and lr" || { bad "flag mismatch (exit $rc):"; cat "$tmp/mismatch.log"; }

# a stalled rank: the collective times out and names it
long=(--model simple-cnn --limit 3200 --eval-limit 100 --epochs 3 --batch 64 --shard-size 16 --no-progress)
mpi 2 "$parcnn" train "${long[@]}" --workers 1 --timeout 4 --out "$tmp/stall" > "$tmp/stall.log" 2>&1 &
launcher=$!
for i in $(seq 900); do [ -s "$tmp/stall/checkpoint.safetensors" ] && break; sleep 0.2; done
rank1=$(for p in $(pgrep -f "$tmp/stall"); do tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && echo $p; done | head -1)
start=$(date +%s)
[ -n "$rank1" ] && kill -STOP "$rank1"
wait $launcher; rc=$?
elapsed=$(( $(date +%s) - start ))
[ $rc != 0 ] && [ $elapsed -le 30 ] && grep -qE "step [0-9]+: .* waited more than 4 s; rank\(s\) 1 did not arrive" "$tmp/stall.log" \
    && ok "stalled rank: all stop in ${elapsed}s naming the step, operation and rank 1" || { bad "stalled rank (exit $rc, ${elapsed}s):"; tail -5 "$tmp/stall.log"; }
[ -n "$rank1" ] && kill -9 "$rank1" 2>/dev/null

# a killed rank mid-epoch: every rank exits non-zero within 30 s, the checkpoint is
# intact, and resuming on another (ranks, workers) gives the uninterrupted bytes
"$parcnn" train "${long[@]}" --workers 1 --out "$tmp/whole" > /dev/null 2>&1 || bad "uninterrupted run failed"
mpi 2 "$parcnn" train "${long[@]}" --workers 1 --out "$tmp/killed" > "$tmp/killed.log" 2>&1 &
launcher=$!
for i in $(seq 900); do grep -q '^ *1 ' "$tmp/killed.log" 2>/dev/null && break; sleep 0.2; done
sleep 1
rank1=$(for p in $(pgrep -f "$tmp/killed"); do tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && echo $p; done | head -1)
start=$(date +%s)
[ -n "$rank1" ] && kill -9 "$rank1"
wait $launcher; rc=$?
elapsed=$(( $(date +%s) - start ))
[ -n "$rank1" ] && [ $rc != 0 ] && [ $elapsed -le 30 ] && ok "killed rank: job exits non-zero in ${elapsed}s" || bad "killed rank (exit $rc, ${elapsed}s)"
pgrep -f "$tmp/killed" > /dev/null && bad "processes left behind" || ok "no rank left running"
mpi 2 "$parcnn" train "${long[@]}" --workers 2 --resume --out "$tmp/killed" > "$tmp/resumed.log" 2>&1 || { bad "resume after kill failed:"; cat "$tmp/resumed.log"; }
grep -q "resuming from" "$tmp/resumed.log" && ok "the checkpoint left by the killed run loads" || bad "no resume"
same "$tmp/whole/model.safetensors" "$tmp/killed/model.safetensors" \
    && ok "resume on 2 ranks x 2 workers after the kill = uninterrupted 1 x 1 run, byte for byte" \
    || bad "resumed model differs from the uninterrupted run"

# bench scaling --ranks: the 2-rank run is `parcnn train` under mpirun, as a child of bench;
# its test accuracy in scaling.csv equals the in-process 1-rank run's
"$parcnn" bench scaling --ranks 1,2 --workers 1 --limit 512 --eval-limit 256 --epochs 1 --repeat 1 \
    --no-threads-run --out "$tmp/bench" > "$tmp/bench.log" 2>&1 || { bad "bench scaling --ranks 1,2 failed:"; cat "$tmp/bench.log"; }
csv_col() { # csv_col COLUMN RANKS: COLUMN of the row with that many ranks
    awk -F, -v name="$1" -v ranks="$2" 'NR == 1 {for (i = 1; i <= NF; i++) col[$i] = i; next}
        $col["ranks"] == ranks {print $col[name]}' "$tmp/bench/scaling.csv" 2> /dev/null
}
acc1=$(csv_col test_accuracy 1) acc2=$(csv_col test_accuracy 2)
[ -n "$acc2" ] && ok "bench scaling --ranks 1,2: scaling.csv has a 2-rank row" || bad "bench scaling: no 2-rank row in scaling.csv"
[ -n "$acc1" ] && [ "$acc1" = "$acc2" ] && ok "bench scaling: 2-rank test accuracy $acc2 = 1-rank" \
    || bad "bench scaling: test accuracy 1 rank '${acc1}' != 2 ranks '${acc2}'"
PARCNN_MPIRUN=false "$parcnn" bench scaling --ranks 2 --workers 1 --limit 256 --eval-limit 128 --repeat 1 \
    --no-threads-run --out "$tmp/bench-fail" > "$tmp/bench-fail.log" 2>&1
rc=$?
[ $rc = 1 ] && grep -q "^parcnn bench: simple-cnn, batch 128: 2 rank(s) x 1 worker(s) x 1 thread(s): false exited with status 1" "$tmp/bench-fail.log" \
    && ok "bench scaling: a failed mpirun child names the configuration and its exit status" || { bad "failed child (exit $rc):"; cat "$tmp/bench-fail.log"; }
mpi 2 "$parcnn" bench scaling --ranks 2 --out "$tmp/bench-nested" > "$tmp/bench-nested.log" 2>&1
rc=$?
[ $rc != 0 ] && [ "$(grep -c "run it without mpirun" "$tmp/bench-nested.log")" = 1 ] \
    && ok "bench scaling --ranks under mpirun: refused, one line" || { bad "--ranks under mpirun (exit $rc):"; cat "$tmp/bench-nested.log"; }

# image folders: each rank decodes its slice of the files (memory cache) or only the
# samples of its own shards (--cache none); the model is the same bytes either way
"$(dirname "$parcnn")/make_images" "$tmp/folder" 40 10 || bad "make_images"
printf 'not a JPEG' > "$tmp/folder/train/cat/0001.jpg" # a bad file in rank 0's slice, skipped by all
img=(--data "folder:$tmp/folder" --model simple-cnn --epochs 2 --batch 32 --shard-size 8 --augment flip,crop=4 --on-bad-image skip --no-progress)
"$parcnn" train "${img[@]}" --workers 1 --out "$tmp/f1" > "$tmp/f1.log" 2>&1 || { bad "folder, 1 rank:"; cat "$tmp/f1.log"; }
for cache in memory none; do
    mpi 2 "$parcnn" train "${img[@]}" --workers 1 --cache $cache --out "$tmp/f2$cache" > "$tmp/f2$cache.log" 2>&1 \
        || { bad "folder, 2 ranks, --cache $cache:"; cat "$tmp/f2$cache.log"; continue; }
    same "$tmp/f1/model.safetensors" "$tmp/f2$cache/model.safetensors" \
        && ok "folder, 2 ranks, --cache $cache: model identical to 1 rank" || bad "folder, 2 ranks, --cache $cache: model differs"
done
grep -q "decoded in .*200 of them here, the rest on 1 other rank" "$tmp/f2memory.log" \
    && grep -q "skipped 1 bad image" "$tmp/f2none.log" \
    && ok "each rank decodes half of the 400 training images; the bad one skipped by all" || { bad "decoding not split:"; grep decoded "$tmp/f2memory.log"; }

finish
