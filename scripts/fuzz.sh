#!/usr/bin/env bash
# Build the libFuzzer harnesses (tests/fuzz, clang with ASan + UBSan) and run each for
# SECONDS (default 15), starting from the seed corpus in tests/fuzz/corpus (plus the zoo's
# model files and the recipes). Fails on the first crash, leak, time-out or sanitizer
# report, leaving the input in build-fuzz/findings/. Prints the executions of each run.
# usage: scripts/fuzz.sh [SECONDS] [HARNESS...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
shift || true
mkdir -p build-fuzz
{ CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARCNN_FUZZ=ON &&
  cmake --build build-fuzz -j2; } > build-fuzz/build.log 2>&1 || { cat build-fuzz/build.log; exit 1; }
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(safetensors model recipe idx cifar image cache npy onnx)
mkdir -p build-fuzz/findings
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
total=0
for name in "${names[@]}"; do
    work=build-fuzz/corpus/$name # inputs found to add coverage, kept between runs
    mkdir -p "$work"
    seeds=(tests/fuzz/corpus/$name)
    [ $name = model ] && seeds+=(models)
    [ $name = recipe ] && seeds+=(recipes)
    log=build-fuzz/fuzz_$name.log
    if ! build-fuzz/fuzz_$name "$work" "${seeds[@]}" -max_total_time="$seconds" -timeout=10 \
            -rss_limit_mb=2048 -max_len=65536 -artifact_prefix=build-fuzz/findings/$name- \
            -print_final_stats=1 > "$log" 2>&1; then
        echo "FAIL fuzz_$name: a finding (input in build-fuzz/findings/):"
        grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -20
        exit 1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    total=$((total + execs))
    echo "ok   fuzz_$name: $execs executions in ${seconds}s, no finding"
done
echo "fuzzing: $total executions, no finding"
