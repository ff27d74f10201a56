#!/usr/bin/env bash
# Kill and resume: a training run is killed with SIGKILL at KILLS random moments (every
# process of it at once, as a power cut would), resumed with --resume each time, then run to
# its end; its model.safetensors, checkpoint.safetensors and metrics.jsonl (times aside) must
# be those of an uninterrupted run in one process. MODES: "process" (one process, 2 workers)
# and "ranks" (2 MPI ranks x 1 worker). Prints a table of the kills; exit status 0 when
# every mode ends with identical bytes.
# usage: bench/kill-resume.sh   (env: PARCNN, KILLS=10, MODES="process ranks", SEED=1,
#        MODEL=simple-cnn, LIMIT=1024, EPOCHS=2, EVERY=1 (--checkpoint-every),
#        MAX_DELAY=3 (seconds after training starts), OUT=a temporary folder)
set -u -o pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench_name=kill-resume
. "$here/lib.sh"
bench_usage "$0" "$@"
PARCNN=${PARCNN:-$(dirname "$here")/build/parcnn}
KILLS=${KILLS:-10} MODES=${MODES:-process ranks} SEED=${SEED:-1} MODEL=${MODEL:-simple-cnn}
LIMIT=${LIMIT:-1024} EPOCHS=${EPOCHS:-2} EVERY=${EVERY:-1} MAX_DELAY=${MAX_DELAY:-3}
bench_need_numbers KILLS SEED LIMIT EPOCHS EVERY
bench_need_executable PARCNN
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
if [ -n "${OUT:-}" ]; then work=$OUT; mkdir -p "$work"; else work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi
common=(--model "$MODEL" --limit "$LIMIT" --eval-limit 64 --batch 64 --epochs "$EPOCHS" --no-progress)

# untimed METRICS: metrics.jsonl without the timings
untimed() { python3 -c '
import json, sys
keys = ("epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "lr")
for l in open(sys.argv[1]): print({k: json.loads(l)[k] for k in keys})' "$1"; }
# step_of CHECKPOINT: the step the checkpoint holds ("-" when there is none)
step_of() { python3 -c '
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
print(json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])["__metadata__"]["step"])' "$1" 2>/dev/null || echo -; }
finished() { [ -e "$1/model.safetensors" ] && grep -q "\"epoch\": $EPOCHS," "$1/metrics.jsonl" 2>/dev/null; }
# start MODE DIR LOG: a run (resumed when DIR holds a checkpoint) in the background, $job its PID
start() {
    local resume=() cmd=("$PARCNN" train "${common[@]}" --checkpoint-every "$EVERY" --out "$2")
    [ -e "$2/checkpoint.safetensors" ] && resume=(--resume)
    if [ "$1" = ranks ]; then
        mpirun --oversubscribe --bind-to none -np 2 "${cmd[@]}" --workers 1 "${resume[@]}" > "$3" 2>&1 &
    else
        "${cmd[@]}" --workers 2 "${resume[@]}" > "$3" 2>&1 &
    fi
    job=$!
}
# descendants PID: PID's children, theirs, ...
descendants() { local c; for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done; }

"$PARCNN" train "${common[@]}" --workers 1 --out "$work/whole" > "$work/whole.log" 2>&1 \
    || { echo "$bench_name: the uninterrupted run failed:" >&2; cat "$work/whole.log" >&2; exit 1; }
total=$(step_of "$work/whole/checkpoint.safetensors")
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
echo "run: $MODEL, --limit $LIMIT, --batch 64, $EPOCHS epochs ($total steps), --checkpoint-every $EVERY; seed $SEED"
printf "%-8s %5s %9s %6s %16s\n" mode kill "delay s" exit "checkpoint step"
status=0 n=0
for mode in $MODES; do
    dir=$work/$mode
    rm -rf "$dir"
    kills=0
    for k in $(seq "$KILLS"); do
        finished "$dir" && break
        start "$mode" "$dir" "$work/$mode-$k.log"
        # the delay counts from the start of training (the table's header line), so that
        # start-up time does not eat it; correctness never depends on it
        for i in $(seq 600); do grep -q "^epoch " "$work/$mode-$k.log" 2>/dev/null && break; kill -0 $job 2>/dev/null || break; sleep 0.05; done
        delay=$(awk -v s="$((SEED * 1000 + n))" -v m="$MAX_DELAY" 'BEGIN {srand(s); printf "%.2f", m * rand()}')
        n=$((n + 1))
        sleep "$delay"
        kill -KILL $(descendants $job) $job 2>/dev/null
        wait $job 2>/dev/null
        rc=$?
        kills=$((kills + 1))
        printf "%-8s %5d %9s %6s %16s\n" "$mode" "$k" "$delay" "$rc" "$(step_of "$dir/checkpoint.safetensors") of $total"
    done
    until finished "$dir"; do
        start "$mode" "$dir" "$work/$mode-end.log"
        wait $job || { echo "$bench_name: $mode: the final resume failed:" >&2; cat "$work/$mode-end.log" >&2; status=1; break; }
    done
    if cmp -s "$work/whole/model.safetensors" "$dir/model.safetensors" \
        && cmp -s "$work/whole/checkpoint.safetensors" "$dir/checkpoint.safetensors" \
        && [ "$(untimed "$work/whole/metrics.jsonl")" = "$(untimed "$dir/metrics.jsonl")" ]; then
        echo "$mode: killed $kills times, resumed each time: model, checkpoint and metrics identical to the uninterrupted run"
    else
        echo "$mode: killed $kills times: DIFFERENT from the uninterrupted run"
        status=1
    fi
done
exit $status
