#!/usr/bin/env bash
# bench_train.sh: SPEC's training yardstick in one command on the GPU machine: our
# GPU trainer (train_gpt_cuda) and the PyTorch peer (../shared/bench/peer_torch.py
# train: torch.compile, SDPA flash attention, fused AdamW) on the same
# configurations, d12 at B=16 T=1024 and 1b at B=8 T=1024 (bf16, AdamW, clipping,
# z-loss and soft-cap on), then a side-by-side table of tokens/s, MFU and peak GPU
# memory. Tokens/s is the median of steps 10..30 for ours (SPEC), the peer's own
# timing over its measured steps for the peer.
#   usage: bash scripts/bench_train.sh            (env: CONFIGS="d12 1b", PEER=path, PYTHON=python3,
#                                                  STEPS=31, NO_PEER=1 to run ours only,
#                                                  TRAIN_BIN=path: that trainer, no build)
# CONFIGS=smoke (scripts/gpu_check.sh --smoke, on the CPU backend): d2 at vocab 512,
# B=2 T=64, so the script's own paths run in CI; its numbers are not speeds.
# MFU: SPEC's FLOPs per token against the device's peak dense bf16 rate (989 TFLOP/s on
# an H100 SXM; the peer divides by 989 always). Peak memory: ours is the GPU memory in
# use at the end of the run (all our buffers are allocated up front; includes the CUDA
# context), the peer's is torch.cuda.max_memory_allocated (excludes its context).
set -euo pipefail
cd "$(dirname "$0")/.."
PEER=${PEER:-../shared/bench/peer_torch.py}
[ -f "$PEER" ] || PEER=shared/bench/peer_torch.py  # the GPU machine carries shared/ inside the checkout
PYTHON=${PYTHON:-python3}
STEPS=${STEPS:-31}
CONFIGS=${CONFIGS:-"d12 1b"}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

TRAIN_BIN=${TRAIN_BIN:-}
if [ -z "$TRAIN_BIN" ]; then make -s train_gpt_cuda gen_shard > /dev/null; TRAIN_BIN=./train_gpt_cuda; else make -s gen_shard > /dev/null; fi
# random-looking tokens (the peer trains on random tokens too: this measures speed)
if [ "$CONFIGS" = smoke ]; then
    ./gen_shard "$WORK/bench_train.bin" 20000 512 7 > /dev/null
else
    ./gen_shard "$WORK/bench_train.bin" 4000000 50257 7 > /dev/null
fi

declare -A RES
for cfg in $CONFIGS; do
    T=1024 EXTRA="" E=$cfg
    case "$cfg" in
        d12) B=16 ;;
        1b) B=8 ;;
        smoke) B=2 T=64 E=d2 EXTRA="-vs 512 -ms 64" ;;
        *) echo "error: unknown config '$cfg' (d12, 1b)" >&2; exit 1 ;;
    esac
    echo "== ours: $cfg B=$B T=$T, $STEPS steps"
    log="$WORK/ours_$cfg.log"
    "$TRAIN_BIN" -e "$E" $EXTRA -b "$B" -t "$T" -x "$STEPS" -v 0 -s 0 -u 0 -l 3e-4 -sh 0 \
        -i "$WORK/bench_train.bin" -j "$WORK/bench_train.bin" | tee "$log" | grep -v "^step" || true
    # step lines: "step N/M | loss | norm | lr | ms | X tok/s | MFU Y% | ETA"
    lo=10 hi=30
    [ "$cfg" = smoke ] && lo=2 hi=$STEPS
    tps=$(awk -F'|' -v lo=$lo -v hi=$hi '/^step +[0-9]+\// { split($1, a, "[ /]+"); s = a[2];
          if (s >= lo && s <= hi) { gsub(/[^0-9.]/, "", $6); print $6 } }' "$log" | sort -n |
          awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2];
               else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    mfu=$(awk -F'|' -v lo=$lo -v hi=$hi '/^step +[0-9]+\// { split($1, a, "[ /]+"); s = a[2];
          if (s >= lo && s <= hi && $7 ~ /MFU/) { gsub(/[^0-9.]/, "", $7); print $7 } }' "$log" | sort -n |
          awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else print v[int((NR + 1) / 2)] "%" }')
    mem=$(sed -n 's/.*GPU memory in use \([0-9.]*\) GiB.*/\1/p' "$log" | tail -n 1)
    RES["ours,$cfg"]="${tps:-n/a} ${mfu:-n/a} ${mem:-n/a}"
    if [ "${NO_PEER:-0}" != "1" ]; then
        echo "== peer: $cfg B=$B T=$T"
        line=$($PYTHON "$PEER" train --config "$cfg" --batch "$B" --seq "$T" --steps 20 --warmup 10 | tail -n 1)
        echo "$line"
        ptps=$(echo "$line" | $PYTHON -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')
        pmfu=$(echo "$line" | $PYTHON -c 'import json,sys; print("%.1f%%" % (100 * json.load(sys.stdin)["mfu_vs_989"]))')
        pmem=$(echo "$line" | $PYTHON -c 'import json,sys; print(json.load(sys.stdin)["peak_mem_GiB"])')
        RES["peer,$cfg"]="$ptps $pmfu $pmem"
    fi
done

echo
printf '%-6s %-6s %4s %14s %8s %14s\n' config who B "tokens/s" MFU "peak GiB"
for cfg in $CONFIGS; do
    case "$cfg" in d12) B=16 ;; 1b) B=8 ;; smoke) B=2 ;; esac
    for who in ours peer; do
        [ -n "${RES[$who,$cfg]:-}" ] || continue
        read -r a b c <<< "${RES[$who,$cfg]}"
        printf '%-6s %-6s %4s %14s %8s %14s\n' "$cfg" "$who" "$B" "$a" "$b" "$c"
    done
done
