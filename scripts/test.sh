#!/usr/bin/env bash
# Build and run every test: the Release build, then the whole suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer, then each parser's fuzzer for 10 s
# (scripts/fuzz.sh). This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --asan
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "== tests (Release)"
(cd build && ctest --output-on-failure)
echo "== tests (AddressSanitizer + UBSan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp
(cd build-asan && ctest --output-on-failure)
echo "== fuzzing (libFuzzer, ASan + UBSan: every parser for 10 s)"
bash scripts/fuzz.sh 10
