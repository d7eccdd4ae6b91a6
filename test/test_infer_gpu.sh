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
TRAIN=${TRAIN:-./train_gpt}
GEN=${GEN:-./gen_shard}
pass=0; fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
W=$(mktemp -d /tmp/llmc_infgpu_XXXXXX)
trap 'rm -rf "$W"' EXIT
expect_fail() {
    local desc=$1 pat=$2; shift 2
    "$@" > "$W/out.txt" 2> "$W/err.txt"; local rc=$?
    local first; first=$(grep -m1 '^error: ' "$W/err.txt")
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && echo "$first" | grep -q '^error: ' && echo "$first" | grep -qE -e "$pat"; then
        ok "$desc -> $first"
    else
        bad "$desc -> exit $rc: $(head -c 300 "$W/err.txt")"
    fi
}
bash data/get_tokenizer.sh > /dev/null || { echo "0 passed, 1 failed"; exit 1; }
TK=data/gpt2/tokenizer.bin
$GEN "$W/t_000.bin" 3000 50257 5 > /dev/null
$TRAIN -e d2 -ms 64 -b 1 -t 32 -x 2 -v 0 -i "$W/t_*.bin" -o "$W/m" > /dev/null 2>&1 || bad "training the test model failed"
M="$W/m/model_00000002.bin"
$TRAIN -e d2 -ms 64 -te 0 -pb 1 -b 1 -t 32 -x 2 -v 0 -i "$W/t_*.bin" -o "$W/u" > /dev/null 2>&1 || bad "training the untied model failed"
$GEN "$W/s_000.bin" 3000 512 5 > /dev/null
$TRAIN -e d2 -vs 512 -ms 64 -b 1 -t 32 -x 1 -v 0 -i "$W/s_*.bin" -o "$W/s" > /dev/null 2>&1

# the numerical checks (see test/test_infer_gpu.cu for the list)
for name in m u; do
    model="$W/$name/model_00000002.bin"
    if $CHK "$model" > "$W/chk_$name.txt" 2>&1; then
        ok "test_infer_gpu ($name): $(tail -1 "$W/chk_$name.txt")"
    else
        bad "test_infer_gpu ($name): $(grep -E 'FAIL|error' "$W/chk_$name.txt" | head -5)"
    fi
    sed 's/^/     /' "$W/chk_$name.txt" | grep -v "passed"
done

# as a user runs it
$INF -e "$M" -tk $TK -p "Hello world" -g 12 -st 0 -q 1 > "$W/g1.txt" 2>&1
$INF -e "$M" -tk $TK -p "Hello world" -g 12 -st 0 -q 1 -gr 0 > "$W/g2.txt" 2>&1
[ -s "$W/g1.txt" ] && cmp -s "$W/g1.txt" "$W/g2.txt" && ok "greedy text with and without the CUDA graph" || bad "graph/no-graph text differs or empty"
$CPU -e "$M" -tk $TK -p "Hello world" -g 12 -st 0 -q 1 > "$W/c1.txt" 2>&1
if cmp -s "$W/g1.txt" "$W/c1.txt"; then
    ok "greedy GPU text = infer_cpu text (12 tokens)"
else
    # allowed only where test_infer_gpu found the parting at a near tie (bf16 vs fp32 activations)
    grep -q "near tie: yes" "$W/chk_m.txt" && ok "greedy GPU and CPU text part at a near tie (see test_infer_gpu)" \
        || bad "greedy GPU text differs from infer_cpu: '$(head -c 100 "$W/g1.txt")' vs '$(head -c 100 "$W/c1.txt")'"
fi
$INF -e "$M" -tk $TK -p "Hello" -g 20 -rs 5 -sk 40 -sp 0.9 -q 1 > "$W/a1.txt" 2>&1
$INF -e "$M" -tk $TK -p "Hello" -g 20 -rs 5 -sk 40 -sp 0.9 -q 1 > "$W/a2.txt" 2>&1
$INF -e "$M" -tk $TK -p "Hello" -g 20 -rs 6 -sk 40 -sp 0.9 -q 1 > "$W/a3.txt" 2>&1
cmp -s "$W/a1.txt" "$W/a2.txt" && ok "the same seed gives the same text" || bad "same seed, different text"
cmp -s "$W/a1.txt" "$W/a3.txt" && bad "another seed gives the same text" || ok "another seed gives other text"
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
printf 'from stdin\n' | $INF -e "$M" -tk $TK -it 1 -g 4 -st 0 > /dev/null 2> "$W/it.err"
grep -q "prompt tokens 3 " "$W/it.err" && ok "interactive mode reads standard input" || bad "interactive: $(cat "$W/it.err")"
long=$(printf 'word %.0s' $(seq 1 80))
$INF -e "$M" -tk $TK -p "$long" -g 8 -tr 1 -q 1 > /dev/null 2>&1 && ok "-tr 1 keeps the end of a too-long prompt" || bad "-tr 1 failed"

expect_fail "prompt longer than max_seq_len - g" "prompt has [0-9]+ tokens" $INF -e "$M" -tk $TK -p "$long" -g 8
expect_fail "empty prompt" "empty prompt" $INF -e "$M" -tk $TK -p "" -g 8
expect_fail "invalid UTF-8 prompt" "not valid UTF-8" $INF -e "$M" -tk $TK -p $'ab\xffcd' -g 8
expect_fail "tokenizer does not match the model" "vocab" $INF -e "$W/s/model_00000001.bin" -tk $TK -p "x"
head -c 3000 "$M" > "$W/trunc.bin"
expect_fail "truncated checkpoint" "trunc.bin.*truncated" $INF -e "$W/trunc.bin" -tk $TK -p "x"
{ head -c 4 "$M"; printf '\x09\x00\x00\x00'; tail -c +9 "$M"; } > "$W/v9.bin"
expect_fail "unknown checkpoint version" "v9.bin.*version" $INF -e "$W/v9.bin" -tk $TK -p "x"
expect_fail "missing tokenizer" "nope.bin" $INF -e "$M" -tk "$W/nope.bin" -p "x"
expect_fail "no model given" "-e" $INF -p "x"
expect_fail "two prompt sources" "exactly one" $INF -e "$M" -p "x" -pf "$W/p.txt"
expect_fail "bad top-p" "-sp" $INF -e "$M" -p "x" -sp 0
expect_fail "bad batch" "-b" $INF -e "$M" -p "x" -b 0
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
