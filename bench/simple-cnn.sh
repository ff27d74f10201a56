#!/usr/bin/env bash
# simple-cnn training throughput, parcnn vs PyTorch, side by side in one run.
#
# Model simple-cnn, Fashion-MNIST 1x28x28, 10 classes, global batch 128, Adam lr 1e-3.
# Configurations (each measured REPS times, interleaved; the median is reported):
#   parcnn  --workers 2 --threads 1   |  --workers 1 --threads 2  |  --workers 1 --threads 1
#   PyTorch --threads 2  |  --threads 1  |  DDP gloo 2 processes x 1 thread (64 per process)
# parcnn's figure is the images/s column of its LAST epoch line (training steps only; the
# first epoch is the warm-up).  PyTorch's is bench/torch_train.py's images_per_second
# (WARMUP untimed steps, then STEPS timed ones).  Both time forward, backward and the
# optimizer step on data already in memory.
#
# usage: bench/simple-cnn.sh            (no arguments; knobs are environment variables)
#   PARCNN=path      parcnn binary (default /work/main/build/parcnn, i.e. <repo>/build/parcnn)
#   PYTHON=path      python with torch (default /usr/bin/python3, Debian's python3-torch)
#   STEPS=n          timed steps per measurement (default 50): parcnn runs 2 epochs of
#                    --limit 128*STEPS images, PyTorch runs WARMUP + STEPS steps
#                    (STEPS=200 gives the full-size parcnn command --limit 25600)
#   WARMUP=n         PyTorch untimed warm-up steps (default 10)
#   REPS=n           repetitions of each configuration (default 3)
#   TORCH_BLAS=auto|openblas|system   BLAS behind torch's dense layers (default auto =
#                    Debian's OpenBLAS unpacked into a scratch dir, see torch_train.py;
#                    system = this machine's libblas.so.3, netlib's reference BLAS, ~5x
#                    slower on simple-cnn)
#   LOGDIR=dir       keep every run's output here (default: a fresh mktemp -d)
#   RUN_TIMEOUT=s    kill a single run after this many seconds; it counts as failed
#                    (default 300)
# Exit status: 0 if every run succeeded and gave a number, 1 otherwise (2 on bad usage).
# With the defaults the whole run takes about 4-5 minutes on an idle 2-core machine.

set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
bench_name=simple-cnn.sh
. "$here/lib.sh"
PARCNN=${PARCNN:-$repo/build/parcnn}
PYTHON=${PYTHON:-/usr/bin/python3}
STEPS=${STEPS:-50}
WARMUP=${WARMUP:-10}
REPS=${REPS:-3}
TORCH_BLAS=${TORCH_BLAS:-auto}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
BATCH=128

bench_usage "${BASH_SOURCE[0]}" "$@"
bench_need_numbers STEPS WARMUP REPS RUN_TIMEOUT
if [ "$STEPS" -lt 1 ] || [ "$REPS" -lt 1 ]; then
    echo "simple-cnn.sh: STEPS and REPS must be at least 1" >&2; exit 2
fi
bench_need_executable PARCNN PYTHON
bench_need_torch
LOGDIR=${LOGDIR:-$(mktemp -d "${TMPDIR:-/tmp}/parcnn-bench.XXXXXX")}
mkdir -p "$LOGDIR" || exit 1

limit=$((STEPS * BATCH))
parcnn_cmd() {  # workers threads
    echo "$(printf %q "$PARCNN") train --data fashion-mnist --model simple-cnn --batch $BATCH" \
         "--workers $1 --threads $2 --limit $limit --eval-limit 100 --epochs 2 --no-progress"
}
torch_cmd() {   # mode-arguments...
    echo "$(printf %q "$PYTHON") $(printf %q "$here/torch_train.py") --model simple-cnn --batch $BATCH --lr 1e-3" \
         "--steps $STEPS --warmup $WARMUP --blas $TORCH_BLAS $*"
}

# name | command (names starting with "parcnn" are parcnn, the rest PyTorch)
names=(
    "parcnn workers=2 threads=1"
    "parcnn workers=1 threads=2"
    "parcnn workers=1 threads=1"
    "pytorch threads=2"
    "pytorch threads=1"
    "pytorch ddp procs=2 (1 thread each)"
)
cmds=(
    "$(parcnn_cmd 2 1)"
    "$(parcnn_cmd 1 2)"
    "$(parcnn_cmd 1 1)"
    "$(torch_cmd --mode threads --threads 2)"
    "$(torch_cmd --mode threads --threads 1)"
    "$(torch_cmd --mode ddp --procs 2)"
)
n=${#names[@]}

bench_machine "$PARCNN" "$PYTHON" "$LOGDIR"
echo
echo "== commands (each run $REPS times, interleaved)"
for ((i = 0; i < n; i++)); do printf '%-36s %s\n' "${names[i]}" "${cmds[i]}"; done
echo

# results[i] = space-separated images/s of configuration i
declare -a results
for ((i = 0; i < n; i++)); do results[i]=""; done
failed=0
start=$SECONDS
echo "== runs"
for ((r = 1; r <= REPS; r++)); do
    for ((i = 0; i < n; i++)); do
        log="$LOGDIR/run$r-cfg$i.log"
        t0=$SECONDS
        bench_run "$log" "$RUN_TIMEOUT" "${cmds[i]}"
        rc=$?
        if [[ ${names[i]} == parcnn* ]]; then
            ips=$(parcnn_images_per_second "$log")
        else
            ips=$(torch_images_per_second "$log")
        fi
        if [ "$rc" -ne 0 ] || [ -z "$ips" ]; then
            failed=1
            bench_failed "$r" "${names[i]}" "$rc" $((SECONDS - t0)) "$log"
            continue
        fi
        results[i]="${results[i]} $ips"
        printf 'rep %d  %-36s %8.1f images/s  (%ds)\n' "$r" "${names[i]}" "$ips" $((SECONDS - t0))
    done
done
echo "total time: $((SECONDS - start)) s; load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((i = 3; i < n; i++)); do
    log=$(find "$LOGDIR" -name "run*-cfg$i.log" | sort | head -n1)
    echo "BLAS of ${names[i]}: $(torch_blas "$log")"
done
echo

echo "== simple-cnn, batch $BATCH, Fashion-MNIST, Adam 1e-3: training images/s (median of $REPS)"
printf '%-36s %10s %12s %5s\n' "configuration" "images/s" "range" "runs"
best_p="" best_p_name="" best_t="" best_t_name=""
for ((i = 0; i < n; i++)); do
    med=$(echo "${results[i]}" | median)
    runs=$(echo "${results[i]}" | wc -w)
    if [ -z "$med" ]; then
        printf '%-36s %10s %12s %5d\n' "${names[i]}" "FAILED" "-" "$runs"
        continue
    fi
    printf '%-36s %10.1f %12s %5d\n' "${names[i]}" "$med" "$(echo "${results[i]}" | minmax)" "$runs"
    if [[ ${names[i]} == parcnn* ]]; then
        if greater "$med" "$best_p"; then best_p=$med best_p_name=${names[i]}; fi
    else
        if greater "$med" "$best_t"; then best_t=$med best_t_name=${names[i]}; fi
    fi
done
echo
if [ -n "$best_p" ] && [ -n "$best_t" ]; then
    printf 'parcnn best:  %10.1f images/s  (%s)\n' "$best_p" "$best_p_name"
    printf 'pytorch best: %10.1f images/s  (%s)\n' "$best_t" "$best_t_name"
    printf 'ratio parcnn-best / pytorch-best = %.2f\n' "$(awk "BEGIN { print $best_p / $best_t }")"
else
    echo "ratio: n/a (a side has no successful run)"
fi
if [ "$failed" -ne 0 ]; then
    echo "simple-cnn.sh: some runs FAILED (logs in $LOGDIR)" >&2
    exit 1
fi
exit 0
