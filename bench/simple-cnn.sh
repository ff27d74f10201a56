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
PARCNN=${PARCNN:-$repo/build/parcnn}
PYTHON=${PYTHON:-/usr/bin/python3}
STEPS=${STEPS:-50}
WARMUP=${WARMUP:-10}
REPS=${REPS:-3}
TORCH_BLAS=${TORCH_BLAS:-auto}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
BATCH=128

if [ $# -gt 0 ]; then
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    case $1 in -h|--help) exit 0 ;; *) exit 2 ;; esac
fi
for v in STEPS WARMUP REPS RUN_TIMEOUT; do
    case ${!v} in ''|*[!0-9]*) echo "simple-cnn.sh: $v must be a number" >&2; exit 2 ;; esac
done
if [ "$STEPS" -lt 1 ] || [ "$REPS" -lt 1 ]; then
    echo "simple-cnn.sh: STEPS and REPS must be at least 1" >&2; exit 2
fi
[ -x "$PARCNN" ] || { echo "simple-cnn.sh: PARCNN=$PARCNN is not an executable" >&2; exit 1; }
[ -x "$PYTHON" ] || { echo "simple-cnn.sh: PYTHON=$PYTHON is not an executable" >&2; exit 1; }
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

echo "== machine"
echo "cpu:    $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
echo "nproc:  $(nproc)"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start"
echo "parcnn: $PARCNN ($(date -r "$PARCNN" '+%F %T' 2>/dev/null))"
echo "torch:  $("$PYTHON" -c 'import torch; print(torch.__version__)' 2>&1 | tail -n1) ($PYTHON)"
echo "logs:   $LOGDIR"
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
        timeout -k 10 "$RUN_TIMEOUT" bash -c "${cmds[i]}" >"$log" 2>&1
        rc=$?
        [ "$rc" -eq 124 ] && echo "simple-cnn.sh: killed after RUN_TIMEOUT=${RUN_TIMEOUT}s" >>"$log"
        if [[ ${names[i]} == parcnn* ]]; then
            ips=$(awk '$1 ~ /^[0-9]+$/ && NF >= 8 && $8 ~ /^[0-9.]+$/ { v = $8 } END { print v }' "$log")
        else
            ips=$(sed -n 's/^images_per_second=\([0-9.][0-9.]*\)$/\1/p' "$log" | tail -n1)
        fi
        if [ "$rc" -ne 0 ] || [ -z "$ips" ]; then
            failed=1
            printf 'rep %d  %-36s FAILED (exit %d) after %ds; see %s:\n' "$r" "${names[i]}" \
                "$rc" $((SECONDS - t0)) "$log"
            tail -n 5 "$log" | sed 's/^/    | /'
            continue
        fi
        results[i]="${results[i]} $ips"
        printf 'rep %d  %-36s %8.1f images/s  (%ds)\n' "$r" "${names[i]}" "$ips" $((SECONDS - t0))
    done
done
echo "total time: $((SECONDS - start)) s; load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((i = 3; i < n; i++)); do
    log=$(find "$LOGDIR" -name "run*-cfg$i.log" | sort | head -n1)
    blas=$(sed -n 's/^blas=//p' "$log" 2>/dev/null | head -n1)
    obt=$(sed -n 's/^openblas_num_threads=//p' "$log" 2>/dev/null | head -n1)
    case $blas in
        *openblas-openmp*) blas="OpenBLAS openmp, OPENBLAS_NUM_THREADS=$obt (${blas##*,})" ;;
        *openblas*) blas="OpenBLAS pthread, OPENBLAS_NUM_THREADS=$obt (${blas##*,})" ;;
        */blas/libblas.so*) blas="netlib reference BLAS ($blas)" ;;
    esac
    echo "BLAS of ${names[i]}: ${blas:-unknown}"
done
echo

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minmax() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%.0f-%.0f", lo, hi }'; }

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
        if [ -z "$best_p" ] || awk "BEGIN { exit !($med > $best_p) }"; then best_p=$med best_p_name=${names[i]}; fi
    else
        if [ -z "$best_t" ] || awk "BEGIN { exit !($med > $best_t) }"; then best_t=$med best_t_name=${names[i]}; fi
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
