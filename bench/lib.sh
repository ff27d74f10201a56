# Shell helpers of the side-by-side benchmark scripts (bench/simple-cnn.sh, bench/compare).
# Sourced, not run: `. "$here/lib.sh"` after setting bench_name (the script's name, for
# messages).

# bench_usage SCRIPT ARGS...: the scripts take no arguments; with any, print SCRIPT's top
# comment (up to the first blank line) and exit: 0 for -h/--help, 2 otherwise.
bench_usage() {
    local script=$1
    shift
    [ $# -gt 0 ] || return 0
    sed -n '2,/^$/s/^# \{0,1\}//p' "$script"
    case $1 in -h|--help) exit 0 ;; *) exit 2 ;; esac
}

# bench_need_numbers VAR...: each named variable holds a whole number, else exit 2.
bench_need_numbers() {
    local v
    for v in "$@"; do
        case ${!v} in ''|*[!0-9]*) echo "$bench_name: $v must be a number" >&2; exit 2 ;; esac
    done
}

# bench_need_executable VAR...: each named variable names an executable, else exit 1.
bench_need_executable() {
    local v
    for v in "$@"; do
        [ -x "${!v}" ] || { echo "$bench_name: $v=${!v} is not an executable" >&2; exit 1; }
    done
}

# bench_need_torch: $PYTHON imports torch; Debian's interpreter without it gets Debian's
# python3-torch from apt (as scripts/setup.sh installs the build's packages), any other
# interpreter an error.
bench_need_torch() {
    "$PYTHON" -c 'import torch' 2>/dev/null && return 0
    if [ "$PYTHON" != /usr/bin/python3 ]; then
        echo "$bench_name: PYTHON=$PYTHON cannot import torch" >&2; exit 1
    fi
    echo "$bench_name: installing python3-torch (PyTorch, the side-by-side peer)" >&2
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q python3-torch; } >&2 \
        || { echo "$bench_name: apt-get install python3-torch failed" >&2; exit 1; }
}

# bench_machine PARCNN PYTHON LOGDIR: the "== machine" block.
bench_machine() {
    echo "== machine"
    echo "cpu:    $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
    echo "nproc:  $(nproc)"
    echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start"
    echo "parcnn: $1 ($(date -r "$1" '+%F %T' 2>/dev/null))"
    echo "torch:  $("$2" -c 'import torch; print(torch.__version__)' 2>&1 | tail -n1) ($2)"
    echo "logs:   $3"
}

# bench_run LOG TIMEOUT COMMAND: run the command string (through bash -c) with its output
# in LOG, killed after TIMEOUT seconds; returns its exit status (124: timed out).
bench_run() {
    local log=$1 limit=$2 cmd=$3 rc
    timeout -k 10 "$limit" bash -c "$cmd" > "$log" 2>&1
    rc=$?
    [ "$rc" -eq 124 ] && echo "$bench_name: killed after RUN_TIMEOUT=${limit}s" >> "$log"
    return "$rc"
}

# bench_failed REP NAME RC SECONDS LOG: report a failed run with the tail of its log.
bench_failed() {
    printf 'rep %d  %-36s FAILED (exit %d) after %ds; see %s:\n' "$1" "$2" "$3" "$4" "$5"
    tail -n 5 "$5" | sed 's/^/    | /'
}

# parcnn_images_per_second LOG: images/s of parcnn train's last epoch line (training steps
# only: the data pipeline, evaluation and checkpoints are outside that clock).
parcnn_images_per_second() {
    awk '$1 ~ /^[0-9]+$/ && NF >= 8 && $8 ~ /^[0-9.]+$/ { v = $8 } END { print v }' "$1"
}

# torch_images_per_second LOG: bench/torch_train.py's images_per_second line.
torch_images_per_second() {
    sed -n 's/^images_per_second=\([0-9.][0-9.]*\)$/\1/p' "$1" | tail -n1
}

# torch_blas LOG: which BLAS a torch_train.py run had, in words.
torch_blas() {
    local blas obt
    blas=$(sed -n 's/^blas=//p' "$1" 2>/dev/null | head -n1)
    obt=$(sed -n 's/^openblas_num_threads=//p' "$1" 2>/dev/null | head -n1)
    case $blas in
        *openblas-openmp*) blas="OpenBLAS openmp, OPENBLAS_NUM_THREADS=$obt (${blas##*,})" ;;
        *openblas*) blas="OpenBLAS pthread, OPENBLAS_NUM_THREADS=$obt (${blas##*,})" ;;
        */blas/libblas.so*) blas="netlib reference BLAS ($blas)" ;;
    esac
    echo "${blas:-unknown}"
}

# median / minmax: of the numbers on stdin (space- or newline-separated); nothing if none.
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minmax() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%.0f-%.0f", lo, hi }'; }

# greater A B: succeeds when A > B (floating point); B may be empty (then A wins).
greater() { [ -z "$2" ] || awk "BEGIN { exit !($1 > $2) }"; }
