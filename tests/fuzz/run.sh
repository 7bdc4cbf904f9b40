#!/bin/sh
# Fuzz every target for SECONDS each (default 60) with libFuzzer + ASan/UBSan.
#
#   tests/fuzz/run.sh 60            # what CI runs: 4 targets x 60 s
#   FUZZ_GROW=1 tests/fuzz/run.sh 600   # also keep new inputs in corpus/
#
# Builds build-fuzz (clang, -DPYEXEC_FUZZ=ON) if needed. The committed corpus
# is read, not written, unless FUZZ_GROW=1; a crash is written to
# tests/fuzz/crashes/<target>/ (commit it: ctest then replays it in every
# build) and makes the script exit non-zero. Each target's exec count and
# corpus size are printed for RELIABILITY.md.
set -eu
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
targets="http request ipc reply"

if [ ! -f "$build/CMakeCache.txt" ]; then
    CC=clang cmake -S "$root" -B "$build" -DPYEXEC_FUZZ=ON >/dev/null
fi
cmake --build "$build" -j2 --target fuzz_http fuzz_request fuzz_ipc fuzz_reply >/dev/null

scratch=$(mktemp -d /tmp/pyexec-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
failed=0
for t in $targets; do
    mkdir -p "$here/crashes/$t" "$scratch/$t"
    if [ "${FUZZ_GROW:-0}" = 1 ]; then
        dirs="$here/corpus/$t"
    else
        dirs="$scratch/$t $here/corpus/$t"
    fi
    log="$scratch/$t.log"
    # shellcheck disable=SC2086 # dirs is a list
    if "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=20000 -print_final_stats=1 -artifact_prefix="$here/crashes/$t/" \
        $dirs >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed=1
        grep -E 'check failed|ERROR|SUMMARY|runtime error' "$log" | head -20 || true
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    seeds=$(ls "$here/corpus/$t" | wc -l)
    found=$(ls "$scratch/$t" | wc -l)
    echo "fuzz_$t: $status, ${seconds}s, ${execs:-?} execs, corpus $seeds seeds (+$found new this run)"
    rmdir "$here/crashes/$t" 2>/dev/null || true
done
exit $failed
