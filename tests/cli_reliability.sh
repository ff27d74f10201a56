#!/usr/bin/env bash
# Reliability: inputs that once crashed, hung or were used silently (docs/reliability.md):
# test images of another size than the training images, named pipes where files are
# read, class folders whose names are not UTF-8, corrupt caches and checkpoints,
# leftover temporaries, metrics.jsonl after a kill, --overwrite on a full disk.
# usage: cli_reliability.sh PARCNN SOURCE_DIR
set -u
parcnn=$1 src=$2
. "$(dirname "$0")/lib.sh"
# expect NAME STATUS PATTERN -- COMMAND...: exit status, an output line matching PATTERN
# (check-data reports on stdout), and done within 60 s (a hang fails, not a stuck test)
expect() {
    local name=$1 want=$2 pattern=$3; shift 4
    timeout 60 "$@" > "$tmp/out" 2> "$tmp/err"
    local rc=$?
    if [ $rc = "$want" ] && cat "$tmp/out" "$tmp/err" | grep -qE -- "$pattern"; then
        ok "$name"
    else
        bad "$name: exit $rc (want $want), stderr:"; cat "$tmp/err"
    fi
}
small=(--limit 256 --eval-limit 64 --epochs 1 --batch 64 --workers 1 --no-progress)

# images DIR CLASS... : 12 random 8x8 PNGs per class folder DIR/CLASS (class names may be
# any bytes: they are passed as hex)
images() {
    python3 - "$@" <<'PY'
import os, random, struct, sys, zlib
root = sys.argv[1].encode()
def png(path, seed):
    rnd = random.Random(seed)
    rows = b"".join(b"\0" + bytes(rnd.randrange(256) for _ in range(8 * 3)) for _ in range(8))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
for k, hexname in enumerate(sys.argv[2:]):
    d = os.path.join(root, bytes.fromhex(hexname))
    os.makedirs(d, exist_ok=True)
    for i in range(12):
        png(os.path.join(d, b"%02d.png" % i), 1000 * k + i)
PY
}
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

# --- test images of another size than the training images (IDX)
mkdir -p "$tmp/idx"
python3 - "$tmp/idx" <<'PY'
import random, struct, sys
def write(path, magic, dims, data):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + data)
rnd = random.Random(1)
for part, n, side in (("train", 256, 28), ("t10k", 64, 20)):
    write(f"{sys.argv[1]}/{part}-images-idx3-ubyte", 0x803, (n, side, side),
          bytes(rnd.randrange(256) for _ in range(n * side * side)))
    write(f"{sys.argv[1]}/{part}-labels-idx1-ubyte", 0x801, (n,), bytes(i % 10 for i in range(n)))
PY
expect "IDX test images smaller than the training images" 1 \
    "the test images are 1x20x20, the training images 1x28x28" -- \
    "$parcnn" train "${small[@]}" --data "idx:$tmp/idx"

# --- named pipes where parcnn reads a file: refused at once, never waited on
images "$tmp/fifo/train" "$(hex cat)" "$(hex dog)"
mkfifo "$tmp/fifo/train/cat/zz.png"
expect "check-data: a named pipe as an image" 1 "zz.png: not a regular file \(a named pipe\)" -- \
    "$parcnn" check-data --data "folder:$tmp/fifo"
expect "train: a named pipe as an image" 1 "zz.png: not a regular file \(a named pipe\)" -- \
    "$parcnn" train --data "folder:$tmp/fifo" --val-split 0.25 --image-size 8 --epochs 1 --batch 8 --shard-size 8 --no-progress
mkfifo "$tmp/pipe.cfg"
expect "train: a named pipe as --model" 1 "pipe.cfg: not a regular file \(a named pipe\)" -- \
    "$parcnn" train "${small[@]}" --model "$tmp/pipe.cfg"
mkdir -p "$tmp/pipe-run" && mkfifo "$tmp/pipe-run/checkpoint.safetensors"
expect "train --resume: a named pipe as the checkpoint" 1 "checkpoint.safetensors: not a regular file \(a named pipe\)" -- \
    "$parcnn" train "${small[@]}" --resume --out "$tmp/pipe-run"
expect "eval: a named pipe as --weights" 1 "checkpoint.safetensors: not a regular file \(a named pipe\)" -- \
    "$parcnn" eval --weights "$tmp/pipe-run/checkpoint.safetensors"

# --- class folders whose names are not UTF-8: the byte is stored as the text \xNN and the
# model's header stays JSON that Python reads
images "$tmp/latin1" "$(printf 'caf\xe9' | od -An -tx1 | tr -d ' \n')" "$(hex dog)"
tiny=(--val-split 0.25 --image-size 8 --epochs 1 --batch 8 --shard-size 8 --workers 1 --no-progress)
timeout 60 "$parcnn" train --data "folder:$tmp/latin1" "${tiny[@]}" --out "$tmp/latin1-run" > "$tmp/out" 2>&1 \
    || { bad "training on a Latin-1 class folder name:"; cat "$tmp/out"; }
python3 - "$tmp/latin1-run" <<'PY' && ok "Latin-1 class folder: the model's header is JSON, the class named caf\\xe9" || bad "Latin-1 class folder: header"
import json, struct, sys
for name in ("model", "checkpoint"):
    raw = open(f"{sys.argv[1]}/{name}.safetensors", "rb").read()
    head = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
    assert json.loads(head["__metadata__"]["classes"]) == ["caf\\xe9", "dog"], head["__metadata__"]["classes"]
PY

# --- a corrupt image cache is rebuilt with a warning (same model as from a good cache); a
# corrupt checkpoint is one clear error
run_cached() { timeout 60 "$parcnn" train --data "folder:$tmp/latin1" "${tiny[@]}" --cache "$tmp/cache" --overwrite --out "$tmp/cached" > "$tmp/cached.log" 2>&1; }
run_cached && cp "$tmp/cached/model.safetensors" "$tmp/cached-model" || bad "training with --cache DIR"
cache=$(ls "$tmp/cache"/*-train-*.cache | head -1)
flip() { # flip FILE: two bytes in the middle of FILE change
    python3 - "$1" <<'PY'
import sys
raw = bytearray(open(sys.argv[1], "rb").read())
for k in (0, 1):
    raw[len(raw) // 2 + k] ^= 0x5a
open(sys.argv[1], "wb").write(raw)
PY
}
flip "$cache"
run_cached
grep -q "warning: the cache file .*was corrupt (checksum or structure): decoded again and rewritten" "$tmp/cached.log" \
    && cmp -s "$tmp/cached/model.safetensors" "$tmp/cached-model" \
    && ok "corrupt cache: rebuilt with a warning, the model identical" || { bad "corrupt cache:"; cat "$tmp/cached.log"; }
run_cached
grep -q "loaded from cache" "$tmp/cached.log" && ok "the rebuilt cache loads" || { bad "rebuilt cache:"; cat "$tmp/cached.log"; }
flip "$tmp/cached/checkpoint.safetensors"
expect "corrupt checkpoint: --resume fails naming it" 1 "cached/checkpoint.safetensors: the file is corrupt: its checksum does not match" -- \
    "$parcnn" train --data "folder:$tmp/latin1" "${tiny[@]}" --epochs 2 --cache "$tmp/cache" --resume --out "$tmp/cached"

# --- leftovers and metrics.jsonl: temporaries of killed writers are removed; metrics.jsonl
# agrees with the checkpoint a run resumes from; --overwrite on a full disk keeps it
"$parcnn" train "${small[@]}" --out "$tmp/run" > /dev/null 2>&1 || bad "a 1-epoch run"
touch "$tmp/run/checkpoint.safetensors.tmp.999999999" "$tmp/run/model.safetensors.tmp.999999999"
sed -i '$d' "$tmp/run/metrics.jsonl" # as if killed between the checkpoint's rename and the metrics
timeout 60 "$parcnn" train "${small[@]}" --epochs 2 --resume --out "$tmp/run" > "$tmp/out" 2>&1 || { bad "resume:"; cat "$tmp/out"; }
ls "$tmp/run" | grep -q '\.tmp\.' && bad "temporaries of a killed run left behind: $(ls "$tmp/run")" \
    || ok "temporaries of a killed run removed on --resume"
python3 - "$tmp/run/metrics.jsonl" <<'PY' && ok "metrics.jsonl after a kill before its write: epochs 1 and 2 at steps 4 and 8" || { bad "metrics.jsonl after resume:"; cat "$tmp/run/metrics.jsonl"; }
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert [(l["epoch"], l["step"]) for l in lines] == [(1, 4), (2, 8)], lines
PY
kept=("$tmp/run"/{checkpoint.safetensors,model.safetensors,metrics.jsonl})
sums=$(sha256sum "${kept[@]}")
expect "--overwrite on a full disk" 1 "checkpoint.safetensors" -- \
    bash -c "trap '' XFSZ; ulimit -f 16; exec \"\$0\" \"\$@\"" "$parcnn" train "${small[@]}" --overwrite --out "$tmp/run"
[ "$(sha256sum "${kept[@]}")" = "$sums" ] && ok "... and the old checkpoint, model and metrics.jsonl are as they were" \
    || { bad "--overwrite on a full disk changed the old run"; ls -l "$tmp/run"; }

# --- interruptions: SIGTERM finishes the step, writes the checkpoint and exits 143 saying how
# to go on; SIGKILL at random moments with --checkpoint-every 1; each resumed (on another
# worker count) ends with the bytes and metrics of the uninterrupted run
run2=(--limit 512 --eval-limit 64 --batch 64 --no-progress --epochs 2)
"$parcnn" train "${run2[@]}" --workers 1 --out "$tmp/whole" > /dev/null 2>&1 || bad "uninterrupted run"
untimed() { python3 -c '
import json, sys
keys = ("epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "lr")
for l in open(sys.argv[1]): print({k: json.loads(l)[k] for k in keys})' "$1"; }
same_run() { # same_run DIR: model, checkpoint and metrics (without times) of the whole run
    cmp -s "$tmp/whole/model.safetensors" "$1/model.safetensors" && cmp -s "$tmp/whole/checkpoint.safetensors" "$1/checkpoint.safetensors" \
        && [ "$(untimed "$tmp/whole/metrics.jsonl")" = "$(untimed "$1/metrics.jsonl")" ]
}
"$parcnn" train "${run2[@]}" --workers 1 --checkpoint-every 1 --out "$tmp/term" > "$tmp/term.log" 2>&1 &
pid=$!
for i in $(seq 300); do [ -s "$tmp/term/checkpoint.safetensors" ] && break; sleep 0.05; done
kill -TERM $pid; wait $pid; rc=$?
[ $rc = 143 ] && grep -qE "^parcnn: interrupted by SIGTERM at step [0-9]+: checkpoint written to .*term/checkpoint.safetensors; to continue, run the same command with --resume$" "$tmp/term.log" \
    && ok "SIGTERM: the step finished, checkpoint written, exit 143 saying how to resume" || { bad "SIGTERM (exit $rc):"; tail -3 "$tmp/term.log"; }
"$parcnn" train "${run2[@]}" --workers 2 --resume --out "$tmp/term" > "$tmp/term2.log" 2>&1 || { bad "resume after SIGTERM:"; cat "$tmp/term2.log"; }
same_run "$tmp/term" && ok "SIGTERM at $(sed -n 's/.*at step \([0-9]*\):.*/step \1/p' "$tmp/term.log") then --resume on 2 workers: the uninterrupted run's bytes and metrics" \
    || bad "resume after SIGTERM differs from the uninterrupted run"
# a kill between the last checkpoint's rename and the model's write: the resumed run has no
# step left and writes the model again (the previous epoch's stayed behind)
"$parcnn" train "${run2[@]}" --workers 1 --max-steps 8 --out "$tmp/lost" > /dev/null 2>&1 || bad "a run of one epoch's steps"
cp "$tmp/whole/checkpoint.safetensors" "$tmp/lost/checkpoint.safetensors"
"$parcnn" train "${run2[@]}" --workers 2 --resume --out "$tmp/lost" > "$tmp/lost.log" 2>&1 || { bad "resume at the end:"; cat "$tmp/lost.log"; }
same_run "$tmp/lost" && ok "killed before the last model write: --resume writes the final model" \
    || bad "a resume with no step left kept the previous epoch's model"
kills=0
for attempt in $(seq 12); do
    [ -e "$tmp/kill/model.safetensors" ] && grep -q '"epoch": 2' "$tmp/kill/metrics.jsonl" 2>/dev/null && break
    resume=(); [ -e "$tmp/kill/checkpoint.safetensors" ] && resume=(--resume)
    "$parcnn" train "${run2[@]}" --workers $((attempt % 2 + 1)) --checkpoint-every 1 "${resume[@]}" --out "$tmp/kill" > "$tmp/kill.log" 2>&1 &
    pid=$!
    # the random delay counts from the start of training (a loaded machine starts slowly)
    for i in $(seq 600); do grep -q "^epoch " "$tmp/kill.log" && break; kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    sleep "$(awk -v s="$attempt" 'BEGIN {srand(s); printf "%.2f", 2.5 * rand()}')"
    kill -KILL $pid 2>/dev/null && kills=$((kills + 1))
    wait $pid 2>/dev/null
done
resume=(); [ -e "$tmp/kill/checkpoint.safetensors" ] && resume=(--resume)
[ -e "$tmp/kill/model.safetensors" ] && grep -q '"epoch": 2' "$tmp/kill/metrics.jsonl" || "$parcnn" train "${run2[@]}" "${resume[@]}" --out "$tmp/kill" > /dev/null 2>&1
same_run "$tmp/kill" && ok "killed $kills times with SIGKILL, resumed each time: the uninterrupted run's bytes and metrics" \
    || { bad "SIGKILL and resume differ from the uninterrupted run ($kills kills)"; cat "$tmp/kill/metrics.jsonl"; }

# --- --checkpoint-minutes: a fraction of a minute shorter than any step writes a checkpoint
# after every step but an epoch's last (then the epoch's own); the result is the
# uninterrupted run's; killed after a timed checkpoint, the run resumes to the same bytes
"$parcnn" train "${run2[@]}" --workers 2 --checkpoint-minutes 0.000001 --out "$tmp/minutes" > "$tmp/minutes.log" 2>&1 || bad "--checkpoint-minutes run"
[ "$(grep -c "^parcnn: checkpoint at step [0-9]* (--checkpoint-minutes 1e-06)$" "$tmp/minutes.log")" = 14 ] && same_run "$tmp/minutes" \
    && ok "--checkpoint-minutes 0.000001: a checkpoint after each of the 14 steps that end no epoch; the uninterrupted run's bytes" \
    || { bad "--checkpoint-minutes 0.000001:"; cat "$tmp/minutes.log"; }
"$parcnn" train "${small[@]}" --checkpoint-minutes 600 --out "$tmp/minutes-600" > "$tmp/out" 2>&1 && ! grep -q "checkpoint at step" "$tmp/out" \
    && ok "--checkpoint-minutes 600: no checkpoint before the epoch's end" || { bad "--checkpoint-minutes 600:"; cat "$tmp/out"; }
expect "--checkpoint-minutes 0 is refused" 2 "checkpoint-minutes" -- "$parcnn" train "${small[@]}" --checkpoint-minutes 0
"$parcnn" train "${run2[@]}" --workers 1 --checkpoint-minutes 0.000001 --out "$tmp/minutes-kill" > "$tmp/minutes.log" 2>&1 &
pid=$!
for i in $(seq 600); do grep -q "checkpoint at step 11 " "$tmp/minutes.log" && break; sleep 0.05; done
kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null
"$parcnn" train "${run2[@]}" --workers 2 --resume --out "$tmp/minutes-kill" > "$tmp/out" 2>&1 && same_run "$tmp/minutes-kill" \
    && ok "killed after the timed checkpoint at step $(grep -o 'checkpoint at step [0-9]*' "$tmp/minutes.log" | tail -1 | grep -o '[0-9]*$'), resumed on 2 workers: the uninterrupted run's bytes" \
    || { bad "resume after a timed checkpoint:"; cat "$tmp/out"; }

# --- memory limits: a run estimates what it needs before it starts and refuses a limit below
# that in one line; between the estimate and the real need an allocation fails (plans,
# oneDNN primitives and their execution, threads): one clear line, exit 1, never a signal
if ldd "$parcnn" 2>/dev/null | grep -q libasan; then
    echo "skipped memory-limit cases: AddressSanitizer reserves terabytes of address space, so no ulimit -v fits"
else
    # limited KB ARGS...: train under ulimit -v KB; $rc, stderr in $tmp/mem.log
    limited() {
        local kb=$1; shift
        timeout 120 bash -c 'ulimit -v "$0"; exec "$@"' "$kb" "$parcnn" train "$@" --no-progress \
            --overwrite --out "$tmp/mem" > "$tmp/mem.log" 2>&1
        rc=$?
    }
    # one_line: exit 1 with exactly one error line, about memory, and nothing from oneDNN,
    # libgomp or the C++ runtime
    one_line() {
        [ $rc = 1 ] && [ "$(grep -c 'error' "$tmp/mem.log")" = 1 ] \
            && grep -qE "^parcnn: error: .*(memory|needs about)" "$tmp/mem.log" \
            && ! grep -qiE "onednn|libgomp|terminate|abort" "$tmp/mem.log"
    }
    mem=(--model simple-cnn --limit 256 --eval-limit 64 --epochs 1 --batch 64)
    limited 256000 "${mem[@]}" --workers 2
    one_line && grep -qE "^parcnn: error: train: needs about [0-9]+ MB, limit is 250 MB \(ulimit -v: the address space\)" "$tmp/mem.log" \
        && ok "ulimit -v 256000, 2 workers: $(grep -o 'needs about.*MB (' "$tmp/mem.log" | tr -d '(')before starting" \
        || { bad "ulimit -v 256000 (exit $rc):"; cat "$tmp/mem.log"; }
    need=$(grep -o "needs about [0-9]*" "$tmp/mem.log" | grep -o "[0-9]*$")
    limited 200000 "${mem[@]}" --workers 1
    one_line && grep -q "needs about" "$tmp/mem.log" && ok "ulimit -v 200000, 1 worker: refused before starting" \
        || { bad "ulimit -v 200000, 1 worker (exit $rc):"; cat "$tmp/mem.log"; }
    timeout 120 bash -c 'ulimit -d 150000; exec "$0" train "$@"' "$parcnn" "${mem[@]}" --workers 2 --no-progress > "$tmp/mem.log" 2>&1
    rc=$?
    one_line && grep -q "needs about [0-9]* MB, limit is 146 MB (ulimit -d: the data segment)" "$tmp/mem.log" \
        && ok "ulimit -d 150000: refused naming the data segment" || { bad "ulimit -d (exit $rc):"; cat "$tmp/mem.log"; }
    # from the estimate up to where the run fits: each level a success or one clear line
    if [ -n "$need" ]; then
        outcomes="" signals=0 unclear=0 fitted=0
        for extra in 1 8 16 32 48 64 96 160; do
            limited $(((need + extra) * 1024)) "${mem[@]}" --workers 2
            if [ $rc = 0 ]; then outcomes="$outcomes +${extra}:ok"; fitted=1
            elif one_line; then outcomes="$outcomes +${extra}:error"
            else
                [ $rc -gt 128 ] && signals=$((signals + 1)) || unclear=$((unclear + 1))
                echo "  at the estimate + $extra MB: exit $rc"; cat "$tmp/mem.log"
            fi
        done
        [ $signals = 0 ] && [ $unclear = 0 ] && [ $fitted = 1 ] \
            && ok "limits from the estimate ($need MB) up: each a success or one clear line, never a signal ($outcomes)" \
            || bad "limits above the estimate: $signals signal deaths, $unclear unclear failures, fitted: $fitted ($outcomes)"
    fi
fi

# --- MPI start-up: every setting compared across ranks, each difference named; a rank that
# stops before the first collective brings the others down at once (not after --timeout)
if command -v mpirun > /dev/null; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" # see cli_mpi.sh
    two() { # two "RANK 0 FLAGS" "RANK 1 FLAGS": a 2-rank job, its output in $tmp/mpi.log
        start=$(date +%s.%N)
        timeout 60 mpirun --oversubscribe --bind-to none -np 1 "$parcnn" train "${small[@]}" $1 \
            : -np 1 "$parcnn" train "${small[@]}" $2 > "$tmp/mpi.log" 2>&1
        rc=$?
        elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    }
    two "--epochs 1 --out $tmp/mpi-e" "--epochs 2 --out $tmp/mpi-e"
    [ $rc != 0 ] && grep -q "rank 1 was started with other settings than rank 0: epochs: rank 0 has 1, rank 1 has 2$" "$tmp/mpi.log" \
        && [ ! -e "$tmp/mpi-e/model.safetensors" ] \
        && ok "MPI: --epochs differs between ranks: refused, named, no model written" || { bad "MPI --epochs mismatch (exit $rc):"; cat "$tmp/mpi.log"; }
    two "--lr 0.001" "--lr 0.002 --precision bf16"
    [ $rc != 0 ] && grep -q "other settings than rank 0: lr: rank 0 has 0.001, rank 1 has 0.002; precision: rank 0 has fp32, rank 1 has bf16$" "$tmp/mpi.log" \
        && ok "MPI: two differences, each as 'name: rank 0 has X, rank 1 has Y'" || { bad "MPI mismatch message (exit $rc):"; cat "$tmp/mpi.log"; }
    two "--lr 0.001" "--lr -5"
    [ $rc = 2 ] && grep -q "\-\-lr -5: expected a number" "$tmp/mpi.log" && awk -v e="$elapsed" 'BEGIN {exit !(e < 5)}' \
        && ok "MPI: a usage error on rank 1 only stops both ranks in ${elapsed}s" || { bad "MPI usage error on one rank (exit $rc, ${elapsed}s):"; cat "$tmp/mpi.log"; }
    # --checkpoint-minutes under MPI: the decision travels in the per-step allgather, and the
    # checkpoint's collectives run on both ranks at every timed step
    timeout 120 mpirun --oversubscribe --bind-to none -np 2 "$parcnn" train "${run2[@]}" --workers 1 \
        --checkpoint-minutes 0.000001 --out "$tmp/minutes-mpi" > "$tmp/mpi.log" 2>&1 \
        && [ "$(grep -c "^parcnn: checkpoint at step [0-9]* (--checkpoint-minutes 1e-06)$" "$tmp/mpi.log")" = 14 ] \
        && same_run "$tmp/minutes-mpi" \
        && ok "MPI: --checkpoint-minutes 0.000001 on 2 ranks: 14 timed checkpoints, the uninterrupted run's bytes" \
        || { bad "MPI --checkpoint-minutes:"; cat "$tmp/mpi.log"; }
    # SIGKILL to both ranks and mpirun at 3 random moments (seeded), resumed on 2 ranks
    # each time: the bytes and metrics of the uninterrupted run in one process
    # (bench/kill-resume.sh; its long version kills 10 times, one process and 2 ranks)
    KILLS=3 MODES=ranks LIMIT=512 MAX_DELAY=1.5 PARCNN=$parcnn OUT="$tmp/kill-ranks" \
        bash "$src/bench/kill-resume.sh" > "$tmp/kill-ranks.log" 2>&1 \
        && ok "MPI: $(grep -o 'killed [0-9]* times, resumed each time' "$tmp/kill-ranks.log") on 2 ranks: the uninterrupted run's bytes and metrics" \
        || { bad "MPI kill and resume:"; cat "$tmp/kill-ranks.log"; }
else
    echo "skipped MPI cases: mpirun not found"
fi

finish
