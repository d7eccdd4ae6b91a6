#!/usr/bin/env bash
# bench_infer.sh: decode speed of ./infer next to the PyTorch peer (torch.compile with CUDA
# graphs, static KV cache), in one run on the same GPU. SPEC's yardstick: batch 1, a 16-token
# prompt, 256 new tokens, greedy, bf16 weights; also batch 64, and our prefill of a 1024-token
# prompt. Models are random-init bf16 checkpoints of the presets (speed does not depend on the
# values; -se 0 makes every run generate all 256 tokens).
#   usage: bash scripts/bench_infer.sh [d12 1b ...]      (on the GPU machine; default: d12 1b)
#   env:   PEER=path/to/peer_torch.py (default ../shared/bench/peer_torch.py, else shared/bench/...)
#          PYTHON=python3, GEN=256, MODELS=dir for the models (default /tmp/llmc_bench; not $OUT, which the GPU machine uses for results),
#          BATCHES="1 64", NO_PEER=1 (ours only), PREFILL=0 (no 1024-token prefill),
#          INFER_BIN / TEST_INFER_BIN: those programs, no build (gpu_check.sh --smoke)
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
GEN=${GEN:-256}
MODELS=${MODELS:-/tmp/llmc_bench}
PEER=${PEER:-../shared/bench/peer_torch.py}
[ -f "$PEER" ] || PEER=shared/bench/peer_torch.py
configs=${*:-d12 1b}
INFER_BIN=${INFER_BIN:-}
TEST_INFER_BIN=${TEST_INFER_BIN:-./test_infer_gpu}
if [ -z "$INFER_BIN" ]; then make infer test_infer_gpu > /dev/null || { echo "build failed"; exit 1; }; INFER_BIN=./infer; fi
BATCHES=${BATCHES:-1 64}
bash data/get_tokenizer.sh > /dev/null || { echo "no tokenizer"; exit 1; }
mkdir -p "$MODELS"
# "the" + n-1 times " the": n GPT-2 tokens
prompt_of() { local s="the"; for ((i = 1; i < $1; i++)); do s="$s the"; done; echo "$s"; }
P16=$(prompt_of 16)
P1024=$(prompt_of 1024)
ours() {  # prints our summary line
    "$INFER_BIN" -tk data/gpt2/tokenizer.bin -st 0 -se 0 "$@" 2>&1 > /dev/null | grep '^prompt tokens'
}
field() { echo "$1" | sed -n "s#.*[|a-z] \([0-9.]*\) $2.*#\1#p"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2> /dev/null || true
echo "config | batch | ours ms/token | ours tokens/s | ours weight GB/s | peer ms/token | peer tokens/s | peer weight GB/s"
for cfg in $configs; do
    M="$MODELS/$cfg.bin"
    [ -f "$M" ] || "$TEST_INFER_BIN" --make-model "$cfg" "$M" 2048 > /dev/null || { echo "$cfg: could not write the model"; continue; }
    for B in $BATCHES; do
        "$INFER_BIN" -e "$M" -p "$P16" -g 8 -b "$B" -st 0 -se 0 -q 1 > /dev/null 2>&1  # warm-up (cuBLASLt heuristics, graph)
        line=$(ours -e "$M" -p "$P16" -g "$GEN" -b "$B")
        case "$line" in "prompt tokens $((16 * B)) "*) ;; *) echo "warning: the prompt is not 16 tokens: $line" ;; esac
        peer=""
        [ "${NO_PEER:-0}" = 1 ] || peer=$($PYTHON "$PEER" infer --config "$cfg" --prompt 16 --gen "$GEN" --batch "$B" 2> /dev/null | tail -1)
        pms=$(echo "$peer" | sed -n 's/.*"ms_per_token": \([0-9.]*\).*/\1/p')
        ptps=$(echo "$peer" | sed -n 's/.*"tokens_per_s": \([0-9.]*\).*/\1/p')
        pbw=$(echo "$peer" | sed -n 's/.*"weight_GB_per_s": \([0-9.]*\).*/\1/p')
        echo "$cfg | $B | $(field "$line" ms/token) | $(field "$line" tokens/s) | $(field "$line" GB/s) | ${pms:-n/a} | ${ptps:-n/a} | ${pbw:-n/a}"
        echo "  ours: $line"
        echo "  peer: ${peer:-did not run}"
    done
    [ "${PREFILL:-1}" = 1 ] || continue
    "$INFER_BIN" -e "$M" -p "$P1024" -g 1 -st 0 -q 1 > /dev/null 2>&1  # warm-up at this length
    line=$(ours -e "$M" -p "$P1024" -g 1)
    echo "$cfg | prefill of a 1024-token prompt: $(echo "$line" | sed -n 's/.*prefill \([0-9.]*\) ms.*/\1/p') ms  ($line)"
done
