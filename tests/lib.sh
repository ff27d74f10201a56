# Shared by the tests/cli_*.sh scripts, which source it after reading their arguments:
#     . "$(dirname "$0")/lib.sh"
# A scratch folder $tmp, removed at exit (a script that needs more at exit sets its own
# trap after this), the pass/fail counters with ok and bad, expect for bad input, and
# finish for the summary line and the exit status.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }

# expect NAME STATUS PATTERN -- COMMAND...: COMMAND exits with STATUS and its stderr is one
# line (up to $expect_lines lines, default 1) that matches the extended regex PATTERN.
expect() {
    local name=$1 want=$2 pattern=$3; shift 4
    "$@" > "$tmp/out" 2> "$tmp/err"
    local rc=$? lines
    lines=$(wc -l < "$tmp/err")
    if [ $rc = "$want" ] && grep -qE -- "$pattern" "$tmp/err" && [ "$lines" -ge 1 ] \
        && [ "$lines" -le "${expect_lines:-1}" ]; then
        ok "$name"
    else
        bad "$name: exit $rc (want $want), stderr:"; cat "$tmp/err"
    fi
}

# mpirun as the tests run it: as root, loopback only, --oversubscribe on few cores, and no
# leak checks under AddressSanitizer (Open MPI's components leak at exit).
mpirun_lo() {
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" OMPI_ALLOW_RUN_AS_ROOT=1 \
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo \
        OMPI_MCA_oob_tcp_if_include=lo mpirun --oversubscribe --bind-to none "$@"
}

# The summary line; exits with 0 when nothing failed.
finish() { echo "$passed passed, $failed failed"; [ "$failed" = 0 ]; exit; }
