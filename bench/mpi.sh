#!/usr/bin/env bash
# Multi-process scaling on this machine: simple-cnn (batch 128, Fashion-MNIST) trained by
# 1 rank, by 2 MPI ranks in deterministic mode (exchanging through shared memory, and
# with --exchange messages as across machines) and in fast reduce mode, and by 1 rank
# with 2 workers; median images/s of the last epoch over REPS interleaved runs.
# With BASELINE=path-to-another-parcnn, that binary's 2 ranks x 1 worker and 1 rank x 2
# workers run interleaved with the others (an A/B of two builds in one run).
# usage: bench/mpi.sh   (env: PARCNN, MODEL=simple-cnn, LIMIT=12800, REPS=3, BASELINE)
set -u -o pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PARCNN=${PARCNN:-$(dirname "$here")/build/parcnn}
MODEL=${MODEL:-simple-cnn} LIMIT=${LIMIT:-12800} REPS=${REPS:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common="--model $MODEL --limit $LIMIT --eval-limit 100 --epochs 2 --batch 128 --no-progress"
configs=(
  "1 rank x 1 worker|$PARCNN train $common --workers 1"
  "2 ranks x 1 worker, deterministic|mpirun --oversubscribe --bind-to none -np 2 $PARCNN train $common --workers 1"
  "2 ranks x 1 worker, --exchange messages|mpirun --oversubscribe --bind-to none -np 2 $PARCNN train $common --workers 1 --exchange messages"
  "2 ranks x 1 worker, --reduce fast|mpirun --oversubscribe --bind-to none -np 2 $PARCNN train $common --workers 1 --reduce fast"
  "1 rank x 2 workers|$PARCNN train $common --workers 2"
)
BASELINE=${BASELINE:-}
if [ -n "$BASELINE" ]; then
    configs+=("baseline: 2 ranks x 1 worker|mpirun --oversubscribe --bind-to none -np 2 $BASELINE train $common --workers 1"
              "baseline: 1 rank x 2 workers|$BASELINE train $common --workers 2")
fi
declare -A results
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; model $MODEL, --limit $LIMIT, median of $REPS"
echo "start:$(uptime | sed 's/.*,  *load/ load/')"
for rep in $(seq "$REPS"); do
    for c in "${configs[@]}"; do
        name=${c%%|*} cmd=${c#*|}
        ips=$($cmd 2>/dev/null | awk '/^ +2 / {print $8}')
        [ -n "$ips" ] || { echo "FAILED: $cmd" >&2; exit 1; }
        results[$name]+="$ips "
        echo "  run $rep: $name: $ips images/s" >&2
    done
done
echo "end:$(uptime | sed 's/.*,  *load/ load/')"
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
base=$(echo "${results[1 rank x 1 worker]}" | median)
det=$(echo "${results[2 ranks x 1 worker, deterministic]}" | median)
fast=$(echo "${results[2 ranks x 1 worker, --reduce fast]}" | median)
printf "%-36s %10s %8s\n" configuration images/s speedup
for c in "${configs[@]}"; do
    name=${c%%|*}; m=$(echo "${results[$name]}" | median)
    printf "%-36s %10s %8.2f\n" "$name" "$m" "$(echo "$m / $base" | bc -l)"
done
workers=$(echo "${results[1 rank x 2 workers]}" | median)
printf "deterministic / fast = %.3f\n" "$(echo "$det / $fast" | bc -l)"
msgs=$(echo "${results[2 ranks x 1 worker, --exchange messages]}" | median)
printf "2 ranks x 1 worker (deterministic) / 1 rank x 2 workers = %.3f\n" "$(echo "$det / $workers" | bc -l)"
printf "2 ranks x 1 worker (--exchange messages) / 1 rank x 2 workers = %.3f\n" "$(echo "$msgs / $workers" | bc -l)"
if [ -n "$BASELINE" ]; then
    bdet=$(echo "${results[baseline: 2 ranks x 1 worker]}" | median)
    bworkers=$(echo "${results[baseline: 1 rank x 2 workers]}" | median)
    printf "baseline: 2 ranks x 1 worker / 1 rank x 2 workers = %.3f\n" "$(echo "$bdet / $bworkers" | bc -l)"
fi
