#!/usr/bin/env bash
# gpu_check.sh: the one command to run when a GPU is lent (a loan is minutes long).
# In order, each phase with a time limit, stopping at the first failure with its
# output:
#   1. build for sm_90 (H100 / H200): the GPU programs, the CPU ones they are checked against
#   2. make test-gpu: every dev/cuda check, test_gpt.cu, test_infer_gpu, and
#      test_mpi_gpu.sh (2 ranks on the one GPU with -cb mpi)
#   3. training speed, ours next to ../shared/bench/peer_torch.py train, in the same run:
#      d12 at B=16 T=1024 and 1b at B=8 (scripts/bench_train.sh: tokens/s, MFU, peak memory)
#   4. decode speed at batch 1, ours next to peer_torch.py infer: d12 and 1b
#      (scripts/bench_infer.sh: ms/token, tokens/s)
# Everything goes to a results file (-o, default gpu_check_results.txt, or $OUT/ when
# the device tool gives one): date, commit, device, each phase's time and last lines,
# the benchmark tables. Whole script within 9 minutes on an H100.
#
# --smoke: the same phases and scripts on the CPU backend (build-emu/, docs/emu.md) at
# tiny shapes, without the peer and without nvcc, so that make test runs this script
# and it cannot rot. Its numbers are not speeds. Ends with "N passed, M failed".
#   usage: bash scripts/gpu_check.sh [--smoke] [-o results.txt]
set -u
cd "$(dirname "$0")/.."
SMOKE=0
RESULTS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        -o) [ $# -ge 2 ] || { echo "error: -o needs a file" >&2; exit 1; }; RESULTS=$2; shift ;;
        -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "error: unknown argument '$1' (see --help)" >&2; exit 1 ;;
    esac
    shift
done
if [ -z "$RESULTS" ]; then
    if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then RESULTS=$OUT/gpu_check_results.txt; else RESULTS=gpu_check_results.txt; fi
fi
LOG=$(mktemp -d /tmp/gpu_check.XXXXXX)
trap 'rm -rf "$LOG"' EXIT
[ $SMOKE = 1 ] && [ "$RESULTS" = gpu_check_results.txt ] && RESULTS=$LOG/results.txt  # smoke: nothing left behind
: > "$RESULTS" || { echo "error: cannot write '$RESULTS'" >&2; exit 1; }
pass=0
fail=0
t_all=$SECONDS

say() { echo "$*" | tee -a "$RESULTS"; }
# phase <name> <limit s> <command...>: runs it with a time limit; on failure prints its
# last lines and stops the script (the results file says where)
phase() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    say "== $name (limit ${limit} s)"
    timeout --kill-after=10 "$limit" "$@" > "$LOG/phase.txt" 2>&1
    local rc=$?
    local dt=$((SECONDS - t0))
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1))
        tail -n "${TAIL:-12}" "$LOG/phase.txt" | tee -a "$RESULTS"
        say "ok   $name ($dt s)"
    else
        fail=$((fail + 1))
        tail -n 40 "$LOG/phase.txt" | tee -a "$RESULTS"
        [ $rc -eq 124 ] && say "FAIL $name: over its ${limit} s limit" || say "FAIL $name: exit $rc after $dt s"
        say "stopped at the first failure; results in $RESULTS"
        echo "$pass passed, $fail failed"
        exit 1
    fi
}

say "gpu_check $(date -u '+%Y-%m-%d %H:%M UTC') | commit $(git rev-parse --short HEAD 2> /dev/null || echo unknown)$(git diff --quiet 2> /dev/null || echo ' (uncommitted changes)')"
if [ $SMOKE = 1 ]; then
    say "mode: smoke, on the CPU backend (build-emu/): no GPU, no peer; no number here is a speed"
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
    phase "build (CPU backend)" 600 make -s emu-build train_gpt infer_cpu gen_shard
    # 2: the script's test phase with one small case of each kind the real run has
    # 2: make test-gpu needs a GPU; make test runs all of it on the backend (test/test_emu.sh)
    TAIL=3 phase "tests: the backend's own unit tests" 120 build-emu/test_emu
    TAIL=6 phase "training benchmark path (bench_train.sh, smoke config)" 300 \
        env CONFIGS=smoke STEPS=3 NO_PEER=1 TRAIN_BIN=build-emu/train_gpt_cuda bash scripts/bench_train.sh
    TAIL=6 phase "decode benchmark path (bench_infer.sh, d2, batch 1)" 300 \
        env NO_PEER=1 GEN=4 BATCHES=1 PREFILL=0 MODELS="$LOG" INFER_BIN=build-emu/infer \
        TEST_INFER_BIN=build-emu/test_infer_gpu bash scripts/bench_infer.sh d2
else
    command -v nvidia-smi > /dev/null && nvidia-smi -L > "$LOG/gpus.txt" 2>&1 ||
        { say "FAIL no GPU: nvidia-smi -L does not list one (--smoke runs on the CPU backend)"; echo "0 passed, 1 failed"; exit 1; }
    say "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)"
    say "cuda: $(nvcc --version 2> /dev/null | tail -n 1)"
    # the GPU machine has no network: the GPT-2 tokenizer (data/gpt2) and the peer
    # (shared/bench/peer_torch.py, or ../shared/) must come with the checkout
    [ -f data/gpt2/tokenizer.bin ] || bash data/get_tokenizer.sh > /dev/null 2>&1 ||
        { say "FAIL data/gpt2/tokenizer.bin is missing and cannot be fetched here: bring data/gpt2 along"; echo "0 passed, 1 failed"; exit 1; }
    command -v mpirun > /dev/null || say "note: no mpirun here: test_mpi_gpu.sh will report itself skipped (0 passed)"
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
    J=-j$(nproc 2> /dev/null || echo 4)
    phase "build for sm_90" 240 make $J GPU_ARCH=sm_90 train_gpt_cuda test_gpt_cuda infer test_infer_gpu \
        train_gpt infer_cpu gen_shard
    TAIL=30 phase "make test-gpu (dev/cuda checks, test_gpt.cu, test_infer_gpu, test_mpi_gpu -cb mpi)" 240 \
        make -s test-gpu GPU_ARCH=sm_90
    TAIL=8 phase "training: ours vs peer_torch.py train (d12 B=16, 1b B=8, T=1024)" 150 \
        env CONFIGS="d12 1b" bash scripts/bench_train.sh
    TAIL=12 phase "decode at batch 1: ours vs peer_torch.py infer (d12, 1b)" 120 \
        env BATCHES=1 PREFILL=0 bash scripts/bench_infer.sh d12 1b
fi
say "gpu_check: $pass phases passed in $((SECONDS - t_all)) s; results in $RESULTS"
echo "$pass passed, $fail failed"
