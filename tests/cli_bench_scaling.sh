#!/usr/bin/env bash
# parcnn bench scaling takes every train flag and sweeps models and batches: on a small
# generated image folder, two model files x two batches x 1, 2 workers with augmentation,
# SGD and a cosine schedule: a row per (model, batch, workers) in the table and
# scaling.csv, the same test metrics in every row of a (model, batch), equal to `parcnn
# train` with those flags, and to a 2-rank child's (where mpirun exists); a recipe; bad
# values are usage errors.
# usage: cli_bench_scaling.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
make_images="$(dirname "$parcnn")/make_images"
. "$(dirname "$0")/lib.sh"
py=/usr/bin/python3
# as tests/cli_mpi.sh: loopback only (and no leak checks under AddressSanitizer for the runs
# that start mpirun: Open MPI's components leak at exit)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader,tcp \
    OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo

"$make_images" "$tmp/img" 12 4 > /dev/null || bad "make_images"
printf '[conv] filters=8 size=3\n[relu]\n[maxpool] size=2\n[dense] units=classes\n' > "$tmp/a.cfg"
printf '[conv] filters=4 size=3\n[batchnorm]\n[relu]\n[gap]\n[dense] units=classes\n' > "$tmp/b.cfg"
flags=(--data "folder:$tmp/img" --image-size 8 --shard-size 8 --augment flip,crop=1 --optimizer sgd
       --lr 0.05 --momentum 0.8 --schedule cosine)
(cd "$tmp" && "$parcnn" bench scaling "${flags[@]}" --models a.cfg,b.cfg --batches 32,64 --workers 1,2 \
    --repeat 1 --no-threads-run --out "$tmp/bench") > "$tmp/bench.log" 2> "$tmp/bench.err" \
    || bad "bench scaling: $(tail -3 "$tmp/bench.err")"
$py - "$tmp/bench/scaling.csv" "$tmp/bench.log" 8 <<'PY' \
    && ok "a row per model x batch x workers; each (model, batch) the same test metrics" || bad "rows"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == int(sys.argv[3]), len(rows)
groups = {}
for r in rows:
    groups.setdefault((r["model"], r["batch"]), set()).add((r["test_accuracy"], r["test_loss"]))
assert sorted(groups) == [(m, b) for m in ("a.cfg", "b.cfg") for b in ("32", "64")], sorted(groups)
assert all(len(v) == 1 for v in groups.values()), groups
table = [l.split() for l in open(sys.argv[2]) if l.startswith(("a.cfg", "b.cfg"))]
assert len(table) == len(rows) and all(t[:5] == [r["model"], r["batch"], r["ranks"], r["workers"],
                                                 r["threads"]] for t, r in zip(table, rows)), table
PY
grep -q "<svg" "$tmp/bench/scaling.svg" && grep -q "b.cfg, batch 64, 1 rank(s)" "$tmp/bench/scaling.svg" \
    && ok "scaling.svg: a line per model and batch" || bad "scaling.svg"

# every run writes its files, so flags that need an output folder work in the bench too
(cd "$tmp" && "$parcnn" bench scaling "${flags[@]}" --models a.cfg --batches 32 --workers 1,2 --repeat 1 \
    --no-threads-run --keep best --out "$tmp/keep") > "$tmp/keep.log" 2>&1 \
    && [ -f "$tmp/keep/runs/a-b32-r1-w1/model-best.safetensors" ] && [ -f "$tmp/keep/runs/a-b32-r1-w2/metrics.jsonl" ] \
    && cmp -s "$tmp/keep/runs/a-b32-r1-w1/model.safetensors" "$tmp/keep/runs/a-b32-r1-w2/model.safetensors" \
    && ok "--keep best: each run's folder in OUT/runs/, 1 and 2 workers the same model bytes" \
    || bad "--keep best in bench scaling: $(tail -3 "$tmp/keep.log")"

# a 2-rank child gets the same train flags
if command -v mpirun > /dev/null; then
    (cd "$tmp" && ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        "$parcnn" bench scaling "${flags[@]}" --models b.cfg --batches 64 --workers 1 --ranks 1,2 \
        --repeat 1 --no-threads-run --out "$tmp/mpi") > "$tmp/mpi.log" 2> "$tmp/mpi.err" \
        || bad "bench scaling --ranks 1,2: $(tail -3 "$tmp/mpi.err")"
    one=$(awk -F, '$3 == 1 {print $10 "," $11}' "$tmp/mpi/scaling.csv")
    two=$(awk -F, '$3 == 2 {print $10 "," $11}' "$tmp/mpi/scaling.csv")
    [ -n "$two" ] && [ "$one" = "$two" ] && [ -f "$tmp/mpi/runs/b-b64-r2-w1/metrics.jsonl" ] \
        && ok "2 MPI ranks (parcnn train under mpirun): $two as in-process" || bad "2 ranks '$two' != 1 rank '$one'"
else
    echo "skipped: 2 MPI ranks (mpirun not found)"
fi

# the flags reached the runs: the row equals `parcnn train` with them
(cd "$tmp" && "$parcnn" train "${flags[@]}" --model b.cfg --batch 64 --epochs 1 --workers 2 --no-progress) \
    > "$tmp/train.log" 2>&1 || bad "train: $(tail -3 "$tmp/train.log")"
want=$(sed -n 's/^final: test accuracy \([0-9.]*\), test loss \([0-9.]*\),.*/\1,\2/p' "$tmp/train.log")
got=$(awk -F, '$1 == "b.cfg" && $2 == 64 && $3 == 1 && $4 == 1 {print $10 "," $11}' "$tmp/bench/scaling.csv")
[ -n "$want" ] && [ "$want" = "$got" ] && ok "b.cfg, batch 64: $got = parcnn train with the same flags" \
    || bad "bench row '$got' != train '$want'"

# a recipe's flags, then the command line's
"$parcnn" bench scaling --recipe fmnist --limit 512 --eval-limit 128 --epochs 1 --peak-epoch 0.5 --workers 1 --repeat 1 \
    --no-threads-run --out "$tmp/recipe" > "$tmp/recipe.log" 2>&1 || bad "bench --recipe: $(tail -3 "$tmp/recipe.log")"
"$parcnn" train --recipe fmnist --limit 512 --eval-limit 128 --epochs 1 --peak-epoch 0.5 --no-progress > "$tmp/rtrain.log" 2>&1 \
    || bad "train --recipe: $(tail -3 "$tmp/rtrain.log")"
want=$(sed -n 's/^final: test accuracy \([0-9.]*\), test loss \([0-9.]*\),.*/\1,\2/p' "$tmp/rtrain.log")
got=$(awk -F, '$1 == "whitenet-s" && $2 == 512 {print $10 "," $11}' "$tmp/recipe/scaling.csv")
grep -q "^parcnn: recipe fmnist: --data fashion-mnist --model whitenet-s" "$tmp/recipe.log" && [ -n "$want" ] \
    && [ "$want" = "$got" ] && ok "--recipe fmnist: whitenet-s, batch 512, $got as train --recipe fmnist" \
    || bad "recipe row '$got' != train '$want'"

# bad values: one line, exit 2
expect() { # expect WHAT PATTERN -- ARGS...
    local what=$1 pattern=$2; shift 3
    "$parcnn" bench scaling "$@" --out "$tmp/bad" > "$tmp/bad.log" 2>&1; local rc=$?
    if [ $rc = 2 ] && grep -q -- "$pattern" "$tmp/bad.log" && [ "$(wc -l < "$tmp/bad.log")" = 1 ]; then ok "$what"
    else bad "$what: exit $rc: $(cat "$tmp/bad.log")"; fi
}
expect "--batches 0" "--batches 0: expected a list like" -- --batches 0
expect "--batches 48 with shards of 32" "--batches: 48 is not a multiple of --shard-size 32" -- --batches 64,48
expect "a batch the workers do not divide" "batch 32 makes 1 shard(s) of 32, which 1 rank(s) x 2 worker(s) do not divide" -- --batches 32 --workers 2
expect "--models ," "--models ,: expected a list" -- --models ,
expect "a bad train flag" "--lr abc: expected" -- --lr abc
expect "--resume" "unknown or incomplete option '--resume'" -- --resume
expect "--threads" "unknown or incomplete option '--threads'" -- --threads 2
expect "a stray argument" "unexpected argument 'extra'" -- --repeat 1 extra

finish
