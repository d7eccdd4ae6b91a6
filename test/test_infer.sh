#!/usr/bin/env bash
# test_infer.sh: the CPU sampler as a user runs it, on a small model trained
# here for a few steps: greedy output is reproducible, the same seed gives the
# same text, the summary line is printed, prompt files work, and bad input
# (empty or invalid-UTF-8 prompt, a prompt too long for the model, a tokenizer
# that does not match the model, a broken checkpoint) is a one-line error.
#   usage: bash test/test_infer.sh ./infer_cpu      (after make train_gpt gen_shard)
set -u
INF=${1:-./infer_cpu}
. test/lib.sh
make_workdir inf
make_infer_models

$INF -e "$M" -tk $TK -p "Hello world" -g 12 -st 0 -q 1 > "$W/g1.txt" 2>&1
$INF -e "$M" -tk $TK -p "Hello world" -g 12 -st 0 -q 1 > "$W/g2.txt" 2>&1
[ -s "$W/g1.txt" ] && cmp -s "$W/g1.txt" "$W/g2.txt" && ok "greedy output is reproducible" || bad "greedy differs or empty"
check_infer_seeds
$INF -e "$M" -tk $TK -p "Hi there" -g 8 > "$W/s.txt" 2> "$W/s.err"
grep -q "^prompt tokens 2 | generated [0-9]* | prefill" "$W/s.err" && grep -q "^model .*KV cache" "$W/s.err" \
    && ok "memory and summary lines: $(tail -1 "$W/s.err")" || bad "summary: $(cat "$W/s.err")"
printf 'first prompt\n\nsecond prompt\n' > "$W/p.txt"
$INF -e "$M" -tk $TK -pf "$W/p.txt" -g 4 -st 0 > "$W/pf.txt" 2> "$W/pf.err"
grep -q "^prompt tokens 4 " "$W/pf.err" && ok "a prompt file runs each non-empty line" || bad "prompt file: $(cat "$W/pf.err")"
check_infer_input_modes
check_infer_bad_input
finish
