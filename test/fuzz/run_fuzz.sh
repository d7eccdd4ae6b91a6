#!/usr/bin/env bash
# run_fuzz.sh: builds the file-loader fuzz targets (libFuzzer with AddressSanitizer
# and UBSan, die() turned into a longjmp by -DLLMC_DIE_LONGJMP) into fuzz-build/
# and runs each for FUZZ_SECONDS seconds. Exits non-zero when a build fails or a
# target finds anything: a crash, a sanitizer report, a leak, an oracle failure,
# an input slower than 10 s or one needing over 2 GB. The input that did it is
# saved as fuzz-build/artifacts/<target>-crash-... (replay: fuzz-build/fuzz_<target> FILE).
#
#   test/fuzz/run_fuzz.sh [target ...]      targets: shard checkpoint state safetensors tokenizer (default: all)
#   FUZZ_SECONDS=60   seconds per target
#   FUZZ_CC=clang     a clang with the libFuzzer runtime
#                     (Debian/Ubuntu: apt-get install -y clang libclang-rt-14-dev)
#
# Seeds: fuzz-build/gen_corpus writes small valid files into test/fuzz/corpus/<target>/
# (deterministic); new inputs libFuzzer finds go to fuzz-build/corpus/<target>/ and
# are kept between runs. Leak detection is on: fuzz_common.h closes the files a
# dying loader left open, and the targets free what the loaders allocated.
set -u
cd "$(dirname "$0")/../.." || exit 2

CC=${FUZZ_CC:-clang}
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${*:-shard checkpoint state safetensors tokenizer}
# -O1 -g: readable reports; -fno-sanitize-recover: UB aborts, so libFuzzer sees it
FLAGS="-O1 -g -std=gnu11 -Wall -Wextra -Wno-unused-function -I. -DLLMC_DIE_LONGJMP \
 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

mkdir -p fuzz-build/artifacts
if ! echo 'int LLVMFuzzerTestOneInput(const char* d, unsigned long n) { (void)d; (void)n; return 0; }' |
    "$CC" -fsanitize=fuzzer,address -x c - -o fuzz-build/probe 2>/dev/null; then
    echo "error: '$CC' cannot build libFuzzer targets"
    echo "---> HINT: apt-get install -y clang libclang-rt-14-dev, or set FUZZ_CC"
    exit 2
fi
rm -f fuzz-build/probe

"$CC" -O1 -std=gnu11 -Wall -Wextra -Wno-unused-function -I. test/fuzz/gen_corpus.c -o fuzz-build/gen_corpus -lm ||
    exit 2
fuzz-build/gen_corpus test/fuzz/corpus || exit 2

# the targets' temp files (inputs written out as files): in memory where possible,
# removed on exit also when a target crashed
tmp_base=/tmp
[ -w /dev/shm ] && tmp_base=/dev/shm
FUZZ_TMPDIR=$(mktemp -d "$tmp_base/llmc_fuzz.XXXXXX") || exit 2
export FUZZ_TMPDIR
trap 'rm -rf "$FUZZ_TMPDIR"' EXIT

failed=0
for t in $TARGETS; do
    case $t in
        shard) max_len=4096 ;;
        checkpoint) max_len=16384 ;;
        state) max_len=8192 ;;
        safetensors) max_len=8192 ;;
        tokenizer) max_len=8192 ;;
        *) echo "error: unknown fuzz target '$t' (shard, checkpoint, state, safetensors, tokenizer)"; exit 2 ;;
    esac
    echo "=== fuzz_$t: building"
    # shellcheck disable=SC2086
    "$CC" $FLAGS "test/fuzz/fuzz_$t.c" -o "fuzz-build/fuzz_$t" -lm || { failed=$((failed + 1)); continue; }
    mkdir -p "fuzz-build/corpus/$t"
    echo "=== fuzz_$t: running ${SECONDS_EACH} s"
    # -close_fd_mask=2: die() prints one line per rejected input; sanitizer and
    # oracle reports still reach the log through libFuzzer's copy of stderr
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
        "fuzz-build/fuzz_$t" "fuzz-build/corpus/$t" "test/fuzz/corpus/$t" \
        -max_total_time="$SECONDS_EACH" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -close_fd_mask=2 -print_final_stats=1 -artifact_prefix="fuzz-build/artifacts/$t-" \
        > "fuzz-build/fuzz_$t.log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz-build/fuzz_$t.log" | grep -o '[0-9]*$' | tail -n 1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "fuzz-build/fuzz_$t.log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz_$t: ok, ${execs:-?} inputs in ${SECONDS_EACH} s (${cov:-no stats})"
    else
        echo "FAIL fuzz_$t: exit status $rc after ${execs:-?} inputs; the end of fuzz-build/fuzz_$t.log:"
        tail -n 40 "fuzz-build/fuzz_$t.log"
        ls fuzz-build/artifacts/"$t"-* 2>/dev/null
        failed=$((failed + 1))
    fi
done
if [ "$failed" -ne 0 ]; then
    echo "fuzz: $failed target(s) failed"
    exit 1
fi
echo "fuzz: every target ran ${SECONDS_EACH} s without a finding"
