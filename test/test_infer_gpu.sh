#!/usr/bin/env bash
# test_infer_gpu.sh: the GPU sampler (infer) on a GPU, on small models trained here for a few
# steps: ./test_infer_gpu checks logits and tokens against the CPU model (sequential, untied +
# parallel block), then infer is run as a user runs it: greedy GPU text = infer_cpu's text for
# a fixed number of tokens (or the run says where a near tie parted them), the same seed gives
# the same text, prompt files run as one batch, and every kind of bad input is a one-line error.
#   usage: bash test/test_infer_gpu.sh ./infer ./test_infer_gpu ./infer_cpu
#          (after make infer test_infer_gpu infer_cpu train_gpt gen_shard; needs a GPU)
set -u
INF=${1:-./infer}
CHK=${2:-./test_infer_gpu}
CPU=${3:-./infer_cpu}
. test/lib.sh
make_workdir infgpu
make_infer_models untied

# the numerical checks (see test/test_infer_gpu.cu for the list) on the tied sequential model
# and the untied parallel-block one. INFER_CHECK_SMALL=1 (test/test_emu.sh: emulated, each
# run over a 50k-vocabulary head costs about a minute) uses their vocab-512 twins instead
NUMERIC="m/model_00000002.bin u/model_00000002.bin"
if [ "${INFER_CHECK_SMALL:-0}" = 1 ]; then
    $TRAIN -e d2 -vs 512 -ms 64 -te 0 -pb 1 -b 1 -t 32 -x 2 -v 0 -i "$W/s_*.bin" -o "$W/su" > /dev/null 2>&1 \
        || bad "training the small untied model failed"
    NUMERIC="s/model_00000001.bin su/model_00000002.bin"
fi
for rel in $NUMERIC; do
    model="$W/$rel" name=${rel%%/*}
    if $CHK "$model" > "$W/chk_$name.txt" 2>&1; then
        ok "test_infer_gpu ($name): $(tail -1 "$W/chk_$name.txt")"
    else
        bad "test_infer_gpu ($name): $(grep -E 'FAIL|error' "$W/chk_$name.txt" | head -5)"
    fi
    sed 's/^/     /' "$W/chk_$name.txt" | grep -v "passed"
done

# as a user runs it
$INF -e "$M" -tk $TK -p "Hello world" -g 32 -st 0 -q 1 > "$W/g1.txt" 2>&1
$INF -e "$M" -tk $TK -p "Hello world" -g 32 -st 0 -q 1 -gr 0 > "$W/g2.txt" 2>&1
[ -s "$W/g1.txt" ] && cmp -s "$W/g1.txt" "$W/g2.txt" && ok "greedy text with and without the CUDA graph" || bad "graph/no-graph text differs or empty"
$CPU -e "$M" -tk $TK -p "Hello world" -g 32 -st 0 -q 1 > "$W/c1.txt" 2>&1
if cmp -s "$W/g1.txt" "$W/c1.txt"; then
    ok "greedy GPU text = infer_cpu text (32 tokens)"
else
    # allowed only where test_infer_gpu found the parting at a near tie (bf16 vs fp32 activations)
    grep -q "near tie: yes" "$W/chk_m.txt" && ok "greedy GPU and CPU text part at a near tie (see test_infer_gpu)" \
        || bad "greedy GPU text differs from infer_cpu: '$(head -c 100 "$W/g1.txt")' vs '$(head -c 100 "$W/c1.txt")'"
fi
check_infer_seeds -sk 40 -sp 0.9
$INF -e "$M" -tk $TK -p "Hi there" -g 8 > "$W/s.txt" 2> "$W/s.err"
grep -q "^prompt tokens 2 | generated [0-9]* | prefill" "$W/s.err" && grep -q "^model .*bf16.*KV cache" "$W/s.err" \
    && ok "memory and summary lines: $(tail -1 "$W/s.err")" || bad "summary: $(cat "$W/s.err")"
printf 'first prompt\n\nsecond prompt here\n' > "$W/p.txt"
$INF -e "$M" -tk $TK -pf "$W/p.txt" -g 4 -st 0 -se 0 > "$W/pf.txt" 2> "$W/pf.err"
grep -q "^prompt tokens 5 | generated 8 " "$W/pf.err" && [ "$(grep -c . "$W/pf.txt")" -ge 2 ] \
    && ok "a prompt file runs as one batch" || bad "prompt file: $(cat "$W/pf.err")"
$INF -e "$M" -tk $TK -p "Hello world" -g 6 -st 0 -se 0 -b 3 -q 1 > "$W/b3.txt" 2>/dev/null
$INF -e "$M" -tk $TK -p "Hello world" -g 6 -st 0 -se 0 -q 1 > "$W/b1.txt" 2>/dev/null
cat "$W/b1.txt" "$W/b1.txt" "$W/b1.txt" > "$W/b1x3.txt"
[ -s "$W/b1.txt" ] && cmp -s "$W/b3.txt" "$W/b1x3.txt" \
    && ok "-b 3: three identical rows, each equal to batch 1" || bad "-b 3 rows differ: $(cat "$W/b3.txt")"
check_infer_input_modes
check_infer_bad_input
expect_fail "bad batch" "-b" $INF -e "$M" -p "x" -b 0
finish
