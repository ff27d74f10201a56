#!/usr/bin/env bash
# Synchronization strategies (docs/strategies.md): --sync local-sgd=K and fusion give the
# same bytes however their replicas are spread over workers and MPI ranks, resume exactly
# on another layout, really differ from allreduce, communicate less, count their traffic
# in metrics.jsonl; fusion rates and saves every replica, the ensemble and the average;
# --sync ps gives allreduce's bytes (staleness 0), the same bytes every run (staleness N),
# converges (async), stops and resumes only at epochs' ends (staleness N), and every rank
# stops when a server or worker rank is killed (also of local SGD and fusion); bench strategies
# prints the table; bad combinations are usage errors.
# usage: cli_strategies.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
. "$(dirname "$0")/lib.sh"
same() { cmp -s "$1" "$2"; }
have_mpi=0
if command -v mpirun > /dev/null; then
    have_mpi=1
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" # see cli_mpi.sh
    export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
fi
mpi() { local np=$1; shift; mpirun --oversubscribe --bind-to none -np "$np" "$@"; }
run() { # run NAME ARGS...: train into $tmp/NAME, log in $tmp/NAME.log
    local name=$1; shift
    "$parcnn" train "${common[@]}" "$@" --out "$tmp/$name" > "$tmp/$name.log" 2>&1 \
        || { bad "$name failed:"; cat "$tmp/$name.log"; }
}
# minixception has batch norm (per-replica running statistics); 768 images, batch 96
# = 12 shards of 8: 8 steps per epoch, averages after steps 4, 8 (epoch end), 12, 16
common=(--model minixception --limit 768 --eval-limit 128 --epochs 2 --batch 96 --shard-size 8
        --no-progress)
lsgd=(--sync local-sgd=4 --replicas 2)

run l2w1 "${lsgd[@]}" --workers 1
run l2w2 "${lsgd[@]}" --workers 2
same "$tmp/l2w1/model.safetensors" "$tmp/l2w2/model.safetensors" \
    && ok "local-sgd R=2: 1 and 2 workers give identical model bytes" || bad "local-sgd R=2: 1 vs 2 workers differ"
grep -q "local-sgd=4: 2 replicas of 6 shard(s)" "$tmp/l2w1.log" && ok "start-up line names the strategy" \
    || bad "start-up line"
run allreduce --workers 2
same "$tmp/allreduce/model.safetensors" "$tmp/l2w1/model.safetensors" \
    && bad "local-sgd gave allreduce's bytes" || ok "local-sgd differs from allreduce"
acc() { grep '^final' "$1" | awk '{print $4}' | tr -d ,; }
awk -v a="$(acc "$tmp/l2w1.log")" -v b="$(acc "$tmp/allreduce.log")" 'BEGIN { exit !(a > 0.3 && b - a < 0.1) }' \
    && ok "local-sgd trains (accuracy $(acc "$tmp/l2w1.log") vs allreduce $(acc "$tmp/allreduce.log"))" \
    || bad "local-sgd accuracy $(acc "$tmp/l2w1.log") vs allreduce $(acc "$tmp/allreduce.log")"

# 4 replicas on 1, 2 and 4 workers; the optimizer state averaged too
run l4w1 --sync local-sgd=4 --replicas 4 --workers 1
run l4w4 --sync local-sgd=4 --replicas 4 --workers 4
same "$tmp/l4w1/model.safetensors" "$tmp/l4w4/model.safetensors" \
    && ok "local-sgd R=4: 1 and 4 workers identical" || bad "local-sgd R=4: 1 vs 4 workers differ"
same "$tmp/l4w1/model.safetensors" "$tmp/l2w1/model.safetensors" && bad "R=4 gave R=2's bytes" || ok "R=4 differs from R=2"
run avg1 "${lsgd[@]}" --average-opt-state --workers 1
run avg2 "${lsgd[@]}" --average-opt-state --workers 2
same "$tmp/avg1/model.safetensors" "$tmp/avg2/model.safetensors" \
    && ok "--average-opt-state: 1 and 2 workers identical" || bad "--average-opt-state: 1 vs 2 workers differ"
same "$tmp/avg1/model.safetensors" "$tmp/l2w1/model.safetensors" \
    && bad "--average-opt-state changed nothing" || ok "--average-opt-state changes the run"

# resume between two averages (after step 7, and 14 in the second epoch) and at an epoch's
# end (step 8), each time on another layout
run res1 "${lsgd[@]}" --workers 2 --max-steps 7
"$parcnn" train "${common[@]}" "${lsgd[@]}" --workers 1 --max-steps 8 --resume --out "$tmp/res1" > /dev/null 2>&1
"$parcnn" train "${common[@]}" "${lsgd[@]}" --workers 2 --max-steps 14 --resume --out "$tmp/res1" > /dev/null 2>&1
"$parcnn" train "${common[@]}" "${lsgd[@]}" --workers 1 --resume --out "$tmp/res1" > "$tmp/res1b.log" 2>&1 \
    || { bad "resume failed:"; cat "$tmp/res1b.log"; }
same "$tmp/res1/model.safetensors" "$tmp/l2w1/model.safetensors" && same "$tmp/res1/checkpoint.safetensors" "$tmp/l2w1/checkpoint.safetensors" \
    && ok "stopped after steps 7, 8 (an epoch's end) and 14, resumed on 1, 2, then 1 worker: identical model and checkpoint" \
    || bad "resumed run differs"

# --sync fusion: each replica trains on its own half of the data for the whole run; at the
# end each replica, their ensemble and their weight average (statistics averaged, then
# recomputed) are rated, the recalibrated average is saved
fusion=(--sync fusion --replicas 2 --bn-recalibrate 192)
run fu1 "${fusion[@]}" --workers 1
run fu2 "${fusion[@]}" --workers 2
for f in model replica-1 replica-2; do
    same "$tmp/fu1/$f.safetensors" "$tmp/fu2/$f.safetensors" \
        && ok "fusion: $f.safetensors identical on 1 and 2 workers" || bad "fusion: $f differs between 1 and 2 workers"
done
same "$tmp/fu1/replica-1.safetensors" "$tmp/fu1/replica-2.safetensors" && bad "fusion: the replicas are identical" \
    || ok "fusion: the replicas differ (different data)"
same "$tmp/fu1/model.safetensors" "$tmp/l2w1/model.safetensors" && bad "fusion gave local-sgd's bytes" \
    || ok "fusion differs from local-sgd"
fusion_json=$(python3 -c '
import json, sys
f = json.load(open(sys.argv[1])); e = json.load(open(sys.argv[2]))
scores = [r["test_accuracy"] for r in f["replicas"]] + [f[k]["test_accuracy"] for k in ("ensemble", "average", "average_recalibrated")]
assert len(f["replicas"]) == 2 and f["average_recalibrated"]["images"] == 192 and f["saved"] == "average_recalibrated"
assert e["fusion"] == f and abs(e["accuracy"] - f["average_recalibrated"]["test_accuracy"]) < 1e-12
assert min(scores) > 0.25, scores
print(" ".join("%.4f" % x for x in scores))' "$tmp/fu1/fusion.json" "$tmp/fu1/eval.json" 2>&1) \
    && ok "fusion.json and eval.json: replicas, ensemble, average, recalibrated ($fusion_json), the saved model's" \
    || bad "fusion JSON: $fusion_json"
grep -q "^fusion: ensemble of the 2 replicas" "$tmp/fu1.log" && grep -q "^fusion: replica 2 of 2 alone" "$tmp/fu1.log" \
    && grep -q "^fusion: weight average, batch-norm statistics recomputed on 192" "$tmp/fu1.log" \
    && ok "fusion: every model's line on the console" || bad "fusion console: $(grep fusion "$tmp/fu1.log")"
run fures "${fusion[@]}" --workers 2 --max-steps 5
"$parcnn" train "${common[@]}" "${fusion[@]}" --workers 1 --resume --out "$tmp/fures" > "$tmp/fures.log" 2>&1 \
    || { bad "fusion resume failed:"; cat "$tmp/fures.log"; }
same "$tmp/fures/model.safetensors" "$tmp/fu1/model.safetensors" \
    && ok "fusion: stopped after step 5 on 2 workers, resumed on 1: identical" || bad "fusion resume differs"

if [ $have_mpi = 1 ]; then
    mpi 2 "$parcnn" train "${common[@]}" "${fusion[@]}" --workers 1 --out "$tmp/fur2" > "$tmp/fur2.log" 2>&1 \
        || { bad "fusion on 2 ranks failed:"; cat "$tmp/fur2.log"; }
    for f in model replica-1 replica-2; do
        same "$tmp/fur2/$f.safetensors" "$tmp/fu1/$f.safetensors" \
            && ok "fusion: $f.safetensors identical on 2 ranks x 1 worker" || bad "fusion: $f differs on 2 ranks"
    done
    cmp -s <(grep '^fusion' "$tmp/fu1.log") <(grep '^fusion' "$tmp/fur2.log") \
        && ok "fusion: the same results on 2 ranks" || bad "fusion results differ on 2 ranks"
    mpi 2 "$parcnn" train "${common[@]}" "${fusion[@]}" --workers 1 --max-steps 8 --out "$tmp/fures2" > /dev/null 2>&1
    "$parcnn" train "${common[@]}" "${fusion[@]}" --workers 2 --resume --out "$tmp/fures2" > "$tmp/fures2.log" 2>&1 \
        || { bad "fusion resume of a 2-rank run failed:"; cat "$tmp/fures2.log"; }
    same "$tmp/fures2/model.safetensors" "$tmp/fu1/model.safetensors" && same "$tmp/fures2/replica-2.safetensors" "$tmp/fu1/replica-2.safetensors" \
        && ok "fusion: stopped at epoch 1's end on 2 ranks x 1 worker, resumed on 1 rank x 2 workers: identical" \
        || bad "fusion 2-rank resume differs"
    mpi 2 "$parcnn" train "${common[@]}" "${lsgd[@]}" --workers 1 --out "$tmp/l2r2" > "$tmp/l2r2.log" 2>&1 \
        || { bad "2 ranks failed:"; cat "$tmp/l2r2.log"; }
    same "$tmp/l2r2/model.safetensors" "$tmp/l2w1/model.safetensors" \
        && ok "local-sgd R=2: 2 ranks x 1 worker identical to 1 worker" || bad "local-sgd: 2 ranks differ"
    mpi 2 "$parcnn" train "${common[@]}" --workers 1 --out "$tmp/ar2" > "$tmp/ar2.log" 2>&1 \
        || { bad "2 ranks allreduce failed:"; cat "$tmp/ar2.log"; }
    mpi 2 "$parcnn" train "${common[@]}" --sync local-sgd=4 --replicas 4 --workers 2 --max-steps 7 \
        --out "$tmp/l4r2" > /dev/null 2>&1
    "$parcnn" train "${common[@]}" --sync local-sgd=4 --replicas 4 --workers 1 --resume --out "$tmp/l4r2" \
        > "$tmp/l4r2.log" 2>&1 || { bad "resume of a 2-rank run failed:"; cat "$tmp/l4r2.log"; }
    same "$tmp/l4r2/model.safetensors" "$tmp/l4w1/model.safetensors" \
        && ok "R=4 on 2 ranks x 2 workers, resumed on 1 worker: identical" || bad "R=4 2-rank resume differs"
    # traffic: 8 steps per epoch; allreduce exchanges gradients and parameters every
    # step, local-sgd=4 parameters and statistics twice (and 16 bytes a shard per step)
    bytes() { sed -n "$2p" "$1" | grep -o '"comm_bytes": [0-9]*' | awk '{print $2}'; }
    lb=$(bytes "$tmp/l2r2/metrics.jsonl" 1) ab=$(bytes "$tmp/ar2/metrics.jsonl" 1)
    awk -v l="$lb" -v a="$ab" 'BEGIN { exit !(l > 0 && 2.5 * l < a) }' \
        && ok "metrics.jsonl: local-sgd=4 sent $lb bytes in epoch 1, allreduce $ab" \
        || bad "traffic: local-sgd $lb bytes, allreduce $ab"
    grep -q '"comm_messages": [1-9]' "$tmp/ar2/metrics.jsonl" && ok "messages counted" || bad "no comm_messages"
    fb=$(bytes "$tmp/fur2/metrics.jsonl" 1)
    awk -v f="$fb" -v a="$ab" 'BEGIN { exit !(f > 0 && 1000 * f < a) }' \
        && ok "fusion trains without exchanging weights: $fb bytes in epoch 1 (the shards' losses), allreduce $ab" \
        || bad "fusion sent $fb bytes in epoch 1"

    # --sync ps: 1 server + 2 worker ranks computes allreduce's 2-rank bytes (also with 2
    # servers, and resumed as a plain allreduce run); --staleness 2 the same bytes every run;
    # --async converges
    mpi 3 "$parcnn" train "${common[@]}" --sync ps --workers 1 --out "$tmp/ps3" > "$tmp/ps3.log" 2>&1 \
        || { bad "ps on 3 ranks failed:"; cat "$tmp/ps3.log"; }
    same "$tmp/ps3/model.safetensors" "$tmp/ar2/model.safetensors" && same "$tmp/ps3/checkpoint.safetensors" "$tmp/ar2/checkpoint.safetensors" \
        && ok "ps --staleness 0, 1 server + 2 workers: allreduce's 2-rank model and checkpoint bytes" || bad "ps differs from allreduce"
    mpi 4 "$parcnn" train "${common[@]}" --sync ps --servers 2 --workers 1 --max-steps 5 --out "$tmp/ps4" > "$tmp/ps4.log" 2>&1 \
        || { bad "ps with 2 servers failed:"; cat "$tmp/ps4.log"; }
    "$parcnn" train "${common[@]}" --workers 2 --resume --out "$tmp/ps4" > "$tmp/ps4b.log" 2>&1 || { bad "resume of ps failed:"; cat "$tmp/ps4b.log"; }
    same "$tmp/ps4/model.safetensors" "$tmp/ar2/model.safetensors" \
        && ok "ps with 2 servers stopped after step 5, resumed as allreduce on 1 process: identical" || bad "ps 2 servers + resume differs"
    for i in 1 2; do
        mpi 3 "$parcnn" train "${common[@]}" --sync ps --staleness 2 --workers 1 --out "$tmp/st$i" > "$tmp/st$i.log" 2>&1 \
            || { bad "ps --staleness 2 failed:"; cat "$tmp/st$i.log"; }
    done
    same "$tmp/st1/model.safetensors" "$tmp/st2/model.safetensors" && ! same "$tmp/st1/model.safetensors" "$tmp/ar2/model.safetensors" \
        && ok "ps --staleness 2: the same bytes on every run, not allreduce's" || bad "ps --staleness 2 not reproducible or no different"
    mpi 3 "$parcnn" train "${common[@]}" --sync ps --async --workers 1 --out "$tmp/async" > "$tmp/async.log" 2>&1 \
        || { bad "ps --async failed:"; cat "$tmp/async.log"; }
    awk -v a="$(acc "$tmp/async.log")" 'BEGIN { exit !(a > 0.3) }' && grep -q "asynchronous (NOT reproducible)" "$tmp/async.log" \
        && ok "ps --async trains (accuracy $(acc "$tmp/async.log")), says it is not reproducible" || bad "ps --async: $(tail -3 "$tmp/async.log")"
    # --staleness 2 stops only at an epoch's end: SIGTERM inside epoch 2 keeps epoch 1's
    # checkpoint (step 8), which resumes on another layout (2 workers a rank) to the
    # uninterrupted run's bytes; --max-steps inside an epoch is refused, and so is a
    # checkpoint inside an epoch (step 8 rewritten to 7, its checksum recomputed)
    stale=(--sync ps --staleness 2)
    mpi 3 "$parcnn" train "${common[@]}" "${stale[@]}" --workers 1 --out "$tmp/stterm" > "$tmp/stterm.log" 2>&1 &
    launcher=$!
    for i in $(seq 600); do [ -s "$tmp/stterm/checkpoint.safetensors" ] && break; sleep 0.05; done
    rank0=$(for p in $(pgrep -f "$tmp/stterm"); do tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=0 && echo $p; done | head -1)
    [ -n "$rank0" ] && kill -TERM "$rank0"
    wait $launcher
    at=$(sed -n 's/.*interrupted by SIGTERM at step \([0-9]*\).*/\1/p' "$tmp/stterm.log")
    if [ -n "$at" ] && [ $((at % 8)) != 0 ]; then
        grep -q "at step $at: --staleness 2 checkpoints only at an epoch's end: .*stterm/checkpoint.safetensors holds step 8; to continue from there, run the same command with --resume$" "$tmp/stterm.log" \
            && ok "ps --staleness 2: SIGTERM at step $at keeps the checkpoint of step 8 (epoch 1's end), saying so" \
            || { bad "ps --staleness 2, SIGTERM at step $at:"; cat "$tmp/stterm.log"; }
    else
        echo "note: the SIGTERM came at an epoch's end (step ${at:-none}): the inside-epoch case did not run"
    fi
    cp "$tmp/stterm/checkpoint.safetensors" "$tmp/st-mid.safetensors"
    mpi 3 "$parcnn" train "${common[@]}" "${stale[@]}" --workers 2 --resume --out "$tmp/stterm" > "$tmp/stterm2.log" 2>&1 \
        || { bad "resume of ps --staleness 2 failed:"; cat "$tmp/stterm2.log"; }
    same "$tmp/stterm/model.safetensors" "$tmp/st1/model.safetensors" && same "$tmp/stterm/checkpoint.safetensors" "$tmp/st1/checkpoint.safetensors" \
        && ok "ps --staleness 2: resumed from step $(sed -n 's/.*resuming from .* at step //p' "$tmp/stterm2.log") on 2 workers a rank: the uninterrupted run's model and checkpoint bytes" \
        || bad "ps --staleness 2 resumed differs from the uninterrupted run"
    mpi 3 "$parcnn" train "${common[@]}" "${stale[@]}" --max-steps 5 > "$tmp/u.out" 2> "$tmp/u.err"
    rc=$?
    [ $rc = 2 ] && grep -q -- "--max-steps 5 with --staleness 2: a run with stale weights stops only at an epoch's end (a multiple of the 8 steps per epoch)" "$tmp/u.err" \
        && ok "usage error: --max-steps inside an epoch with --staleness" || bad "--max-steps with --staleness: exit $rc: $(cat "$tmp/u.err")"
    mkdir -p "$tmp/stmid"
    python3 - "$tmp/st-mid.safetensors" "$tmp/stmid/checkpoint.safetensors" <<'PY'
import re, struct, sys, zlib
raw = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
head = raw[8:8 + n].decode()
assert head.count('"step":"8"') == 1, "no step 8 in the checkpoint"
raw[8:8 + n] = head.replace('"step":"8"', '"step":"7"').encode()
at = raw.index(b'"crc32":"') + 9
raw[at:at + 8] = b"00000000"
raw[at:at + 8] = ("%08x" % zlib.crc32(raw)).encode()
open(sys.argv[2], "wb").write(raw)
PY
    mpi 3 "$parcnn" train "${common[@]}" "${stale[@]}" --resume --out "$tmp/stmid" > "$tmp/u.out" 2> "$tmp/u.err"
    rc=$?
    [ $rc = 2 ] && grep -q -- "--resume: .*stmid/checkpoint.safetensors is at step 7, inside epoch 1 (8 steps each); --sync ps --staleness 2 resumes only from an epoch's end" "$tmp/u.err" \
        && ok "--resume of --staleness 2 from inside an epoch: refused, naming the checkpoint and its step" \
        || bad "--resume inside an epoch with --staleness: exit $rc: $(cat "$tmp/u.err")"

    # a killed rank: every other rank exits within 30 s, mpirun naming the dead one (a
    # parameter server, a worker rank; a rank of local SGD and of fusion)
    long=(--model simple-cnn --limit 3200 --eval-limit 100 --epochs 3 --batch 64 --shard-size 16 --no-progress)
    kill_rank() { # kill_rank NAME RANKS RANK ARGS...: kill -9 RANK of a RANKS-rank run once it trains
        local name=$1 np=$2 victim=$3 pid="" start elapsed launcher rc; shift 3
        mpi "$np" "$parcnn" train "${long[@]}" "$@" --workers 1 --out "$tmp/$name" > "$tmp/$name.log" 2>&1 &
        launcher=$!
        for i in $(seq 300); do grep -q "^epoch " "$tmp/$name.log" 2>/dev/null && break; sleep 0.1; done
        sleep 1
        pid=$(for p in $(pgrep -f "$tmp/$name"); do tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=$victim && echo $p; done | head -1)
        start=$(date +%s)
        [ -n "$pid" ] && kill -9 "$pid"
        wait $launcher; rc=$?
        elapsed=$(( $(date +%s) - start ))
        [ -n "$pid" ] && [ $rc != 0 ] && [ $elapsed -le 30 ] && grep -q "process rank $victim .* exited on signal 9" "$tmp/$name.log" \
            && ! pgrep -f "$tmp/$name" > /dev/null \
            && ok "$name: killing rank $victim stops every rank in ${elapsed}s, naming rank $victim" \
            || { bad "$name: rank $victim killed (exit $rc, ${elapsed}s):"; tail -5 "$tmp/$name.log"; }
    }
    kill_rank ps-server 3 2 --sync ps
    kill_rank ps-worker 3 1 --sync ps --staleness 2
    kill_rank local-sgd 2 1 --sync local-sgd=4 --replicas 2
    kill_rank fusion 2 1 --sync fusion --replicas 2
    mpi 2 "$parcnn" train "${common[@]}" --max-steps 1 --sync ps --servers 2 > "$tmp/u.out" 2> "$tmp/u.err"
    rc=$?
    [ $rc = 2 ] && grep -q -- "--servers 2 must be fewer than the 2 ranks" "$tmp/u.err" \
        && ok "usage error: --servers >= ranks" || bad "--servers >= ranks: exit $rc: $(cat "$tmp/u.err")"

    # the papers' table: sequential, allreduce and local-sgd on 2 ranks
    "$parcnn" bench strategies --out "$tmp/bench" --strategies allreduce,local-sgd=4,ps,fusion --bn-recalibrate 192 \
        "${common[@]}" --epochs 1 > "$tmp/bench.log" 2>&1 || { bad "bench strategies failed:"; cat "$tmp/bench.log"; }
    csv=$tmp/bench/strategies.csv
    [ "$(wc -l < "$csv")" = 10 ] && head -1 "$csv" | grep -q '^strategy,replicas,ranks,workers,test_accuracy' \
        && ok "bench strategies: CSV with 5 runs and fusion's 4 fused models" || bad "bench strategies CSV: $(cat "$csv")"
    field() { grep "^$1," "$csv" | cut -d, -f"$2"; }
    [ "$(field sequential 5)" = "$(field allreduce 5)" ] && [ "$(field sequential 5)" = "$(field ps 5)" ] \
        && [ "$(field ps 11)" = 1 ] && [ "$(field sequential 9)" = 0 ] \
        && [ "$(field fusion 5)" = "$(field fusion/average+bn 5)" ] && [ -n "$(field fusion/ensemble 5)" ] \
        && awk -v a="$(field allreduce 9)" -v l="$(field local-sgd=4 9)" 'BEGIN { exit !(l > 0 && l < a) }' \
        && ok "bench strategies: allreduce on 2 ranks and ps (+1 server) = sequential's accuracy; local-sgd fewer bytes; fusion's rows" \
        || bad "bench strategies rows: $(cat "$csv")"
    # the SVG's legend: one entry per CSV row, each in its own colour, the fused models
    # marked as points at the run's end
    svg=$tmp/bench/strategies.svg
    legend=$(grep -o 'fill="#[0-9a-f]*">[^<]* ([0-9]* x [0-9]*): [0-9.]*' "$svg")
    named=0
    for name in $(tail -n +2 "$csv" | cut -d, -f1); do grep -qF ">$name (" <<< "$legend" && named=$((named + 1)); done
    [ "$named" = 9 ] && [ "$(cut -d'"' -f2 <<< "$legend" | sort -u | wc -l)" = 9 ] \
        && [ "$(grep -c '>fusion/.* (at the end)<' "$svg")" = 4 ] \
        && ok "bench strategies: the SVG's legend names every row in its own colour" || bad "bench strategies SVG: $legend"
    grep -q '^local-sgd=4 .* 2 x 1 ' "$tmp/bench.log" && ok "bench strategies prints the table" || bad "table: $(cat "$tmp/bench.log")"
fi
"$parcnn" bench strategies --sync allreduce > /dev/null 2> "$tmp/u.err"
[ $? = 2 ] && grep -q -- "--sync: the benchmark sets it" "$tmp/u.err" && ok "bench strategies: --sync is its own" \
    || bad "bench strategies --sync: $(cat "$tmp/u.err")"
grep -q '"comm_bytes": 0, "comm_messages": 0' "$tmp/l2w1/metrics.jsonl" \
    && ok "one process: no bytes between ranks" || bad "one process counted traffic"

# bad input: one line naming the flag, exit status 2
usage() { # usage NAME PATTERN ARGS...
    local name=$1 pattern=$2; shift 2
    "$parcnn" train "${common[@]}" --max-steps 1 "$@" > "$tmp/u.out" 2> "$tmp/u.err"
    local rc=$?
    if [ $rc = 2 ] && grep -q -- "$pattern" "$tmp/u.err"; then ok "usage error: $name"
    else bad "usage error $name: exit $rc: $(cat "$tmp/u.err")"; fi
}
usage "replicas not divisible by workers" "--replicas 3 is not divisible by 1 rank(s) x --workers 2" \
    --sync local-sgd=4 --replicas 3 --workers 2
usage "replicas not dividing the shards" "--replicas 8 must divide the 12 shards" --sync local-sgd=4 --replicas 8
usage "local-sgd=0" "--sync local-sgd=0" --sync local-sgd=0
usage "local-sgd without --replicas" "--sync local-sgd=4 needs --replicas" --sync local-sgd=4
usage "unknown strategy" "--sync gossip: expected" --sync gossip
usage "--replicas with allreduce" "--replicas 2: only --sync local-sgd" --replicas 2
usage "--average-opt-state with allreduce" "--average-opt-state: only" --average-opt-state
usage "--ema with local-sgd" "--ema with --sync local-sgd" --sync local-sgd=2 --replicas 2 --ema 0.99
usage "fusion without --replicas" "--sync fusion needs --replicas" --sync fusion
usage "fusion: replicas not divisible by workers" "--replicas 3 is not divisible by 1 rank(s) x --workers 2" \
    --sync fusion --replicas 3 --workers 2
usage "--bn-recalibrate without --init or fusion" "--bn-recalibrate 64: only with --init" --bn-recalibrate 64
usage "fusion with a balanced sampler" "--sampler with --sync fusion" --sync fusion --replicas 2 --sampler balanced
usage "fusion with --ensemble" "--ensemble 2 with --sync fusion" --sync fusion --replicas 2 --ensemble 2
usage "--sync ps without MPI" "--sync ps needs MPI" --sync ps
usage "--staleness with allreduce" "--staleness with --sync allreduce" --staleness 2
usage "--servers with local-sgd" "--servers with --sync local-sgd=4" --sync local-sgd=4 --replicas 2 --servers 1
usage "--staleness with --async" "--staleness with --async" --sync ps --async --staleness 1
usage "--checkpoint-every with --staleness" "--checkpoint-every with --staleness 2" --sync ps --staleness 2 --checkpoint-every 3
usage "--checkpoint-minutes with --staleness" "--checkpoint-minutes with --staleness 2" --sync ps --staleness 2 --checkpoint-minutes 5
usage "fusion with --average-opt-state" "--average-opt-state: --sync fusion" --sync fusion --replicas 2 --average-opt-state
if [ $have_mpi = 1 ]; then
    mpi 2 "$parcnn" train "${common[@]}" --max-steps 1 --sync local-sgd=4 --replicas 3 > "$tmp/u.out" 2> "$tmp/u.err"
    rc=$?
    [ $rc = 2 ] && grep -q -- "--replicas 3 is not divisible by 2 rank(s)" "$tmp/u.err" \
        && ok "usage error: replicas not divisible by the ranks" || bad "replicas vs ranks: exit $rc: $(cat "$tmp/u.err")"
fi
finish
