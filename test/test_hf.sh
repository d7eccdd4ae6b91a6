#!/usr/bin/env bash
# test_hf.sh: Hugging Face interop (export_hf, import_hf; docs/interop.md),
# checked against test/hf_forward.py, a numpy reader and forward of
# LlamaForCausalLM / Qwen3ForCausalLM that shares nothing with our C code:
#   - tiny models trained here (tied + qk_norm + MQA -> Qwen3; untied, no qk_norm,
#     GQA -> Llama): our CPU forward's logits (test/hf_logits) equal the numpy
#     forward of the export to rel 1e-4, fp32 and bf16 exports
#   - negative controls: gate/up swapped, k/v swapped, interleaved RoPE rows:
#     the comparison must fail, so it can see those mistakes
#   - export -> import gives a bit-identical checkpoint (fp32)
#   - the folder straight as -e: the same logits as its import; train_gpt -e folder
#     trains bit-identically to -e the import, and the fine-tuned model exports
#     (numpy forward again); a quickstart-shaped model (its own BPE tokenizer, soft-cap)
#     exports with -lossy
#   - folders of random weights written by numpy (F32, BF16, F16, sharded,
#     tied/untied) import, and our forward gives numpy's logits
#   - tokenizer.json against our tokenizer file (counts, byte map, tokens, merges)
#   - what is refused: soft-cap, parallel block (and -lossy's report), bad
#     configs and tensors, a truncated safetensors file: one "error:" line, exit 1
# The numpy side runs as two batches (numpy loads once per batch). Skips
# (0 passed, 0 failed) when numpy is missing.
#   usage: bash test/test_hf.sh ./export_hf ./import_hf ./hf_logits   (from the repository root)
set -u
EXPORT=${1:-./export_hf}
IMPORT=${2:-./import_hf}
LOGITS=${3:-./hf_logits}
. test/lib.sh
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
$PY -c "import numpy" 2> /dev/null || skip "numpy is not installed for $PY (apt-get install -y python3-numpy)"
make_workdir hf
# the models here are tiny: one thread each is faster than two spinning OpenMP threads
# on a shared 2-core machine (0.05 s instead of 0.35 s a forward)
export OMP_NUM_THREADS=1
HF="$PY test/hf_forward.py"
TOKS="5 17 300 2 511 42 99 7 8 9 10 200 201 202 0 1 33 34 35 36 480 481 3 3"
RTOKS="3 1 4 1 5 9 2 6 5 3 5 8 9 7 9 299 0 1 2 100 200 250"

# run_ok <description> <command...>: passes when the command succeeds (its last output line shown)
run_ok() {
    local desc=$1
    shift
    if "$@" > "$W/run.txt" 2>&1; then ok "$desc: $(tail -n 1 "$W/run.txt")"; else bad "$desc: $(tail -n 3 "$W/run.txt")"; fi
}
# py_batch <file>: runs the numpy commands of <file>, one ok/FAIL line each, into the counts
py_batch() {
    $HF batch "$1" > "$W/batch.txt" 2>&1
    local rc=$? line n=0
    while IFS= read -r line; do
        case $line in
            "ok   "*) ok "${line#ok   }"; n=$((n + 1)) ;;
            "FAIL "*) bad "${line#FAIL }"; n=$((n + 1)) ;;
            *) echo "$line" ;;
        esac
    done < "$W/batch.txt"
    [ $rc -eq 0 ] || [ $n -gt 0 ] || bad "numpy batch $1 failed: $(tail -3 "$W/batch.txt")"
}
# logits <model.bin> <out.f32> <tokens>: our forward's logits
logits() {
    local m=$1 o=$2
    shift 2
    $LOGITS "$m" "$o" "$@" > "$W/lg.txt" 2>&1 || bad "hf_logits $m: $(cat "$W/lg.txt")"
}

# 1. tiny trained models: vocab 512, T 64, soft-cap off (transformers has none)
$GEN "$W/t_000.bin" 4000 512 3 > /dev/null || { echo "gen_shard failed"; exit 1; }
TR="-e d2 -vs 512 -ms 64 -b 1 -t 32 -x 2 -l 1e-2 -v 0 -i $W/t_*.bin"
$TRAIN $TR -kv 1 -sc 0 -o "$W/q" > "$W/q.log" 2>&1 || bad "training the qk_norm model failed: $(tail -2 "$W/q.log")"
$TRAIN $TR -qk 0 -te 0 -sc 0 -o "$W/u" > "$W/u.log" 2>&1 || bad "training the untied model failed: $(tail -2 "$W/u.log")"
$TRAIN $TR -x 1 -o "$W/s" > /dev/null 2>&1 || bad "training the soft-capped model failed"
$TRAIN $TR -x 1 -pb 1 -sc 0 -o "$W/p" > /dev/null 2>&1 || bad "training the parallel-block model failed"
Q="$W/q/model_00000002.bin" U="$W/u/model_00000002.bin"

run_ok "export tied qk_norm MQA model (fp32)" $EXPORT "$Q" "$W/hq"
run_ok "export untied GQA model without qk_norm (fp32)" $EXPORT "$U" "$W/hu"
run_ok "export bf16" $EXPORT "$U" "$W/hb" -dtype bf16
grep -q '"Qwen3ForCausalLM"' "$W/hq/config.json" && grep -q '"tie_word_embeddings": true' "$W/hq/config.json" &&
    grep -q '"LlamaForCausalLM"' "$W/hu/config.json" && grep -q '"num_key_value_heads": 2' "$W/hu/config.json" &&
    grep -q '"rms_norm_eps": 1e-05' "$W/hu/config.json" && grep -q '"rope_theta": 10000.0' "$W/hu/config.json" &&
    grep -q '"vocab_size": 512' "$W/hu/config.json" && [ -f "$W/hu/generation_config.json" ] \
    && ok "config.json: architectures, tying, heads, eps, theta, vocab" || bad "config.json: $(cat "$W/hu/config.json")"
grep -q '"dtype":"BF16"' "$W/hb/model.safetensors" && [ "$(stat -c %s "$W/hb/model.safetensors")" -lt "$(stat -c %s "$W/hu/model.safetensors")" ] \
    && ok "bf16 export: BF16 tensors, half the size" || bad "bf16 export is not BF16"

# 2. export -> import round trip, bit-identical
run_ok "import the Qwen3 export" $IMPORT "$W/hq" "$W/q_back.bin"
cmp -s "$Q" "$W/q_back.bin" && ok "tied Qwen3: export -> import gives a bit-identical checkpoint" || bad "tied Qwen3: round trip differs"
run_ok "import the Llama export" $IMPORT "$W/hu" "$W/u_back.bin"
cmp -s "$U" "$W/u_back.bin" && ok "untied Llama: export -> import gives a bit-identical checkpoint" || bad "untied Llama: round trip differs"
run_ok "import the bf16 export" $IMPORT "$W/hb" "$W/b_back.bin"

# 3. numpy batch 1: random folders, mutated copies (negative controls), edited copies (import errors)
RSPEC=("llama 11 --untied --shards 3 --kv 1" "qwen3 12 --dtype BF16" "qwen3 13 --dtype F16 --shards 2 --untied"
       "llama 14 --kv 4 --dtype BF16")
# each import error case: <description> <regex> <edit json>, applied to a copy of r2 (qwen3, tied)
CASES=(
  "unknown architecture" "architecture 'MistralForCausalLM'" '{"config": {"architectures": ["MistralForCausalLM"]}}'
  "attention_bias true" "attention_bias" '{"config": {"attention_bias": true}}'
  "rope_scaling set" "rope_scaling" '{"config": {"rope_scaling": {"rope_type": "linear", "factor": 2.0}}}'
  "sliding window in use" "sliding_window" '{"config": {"use_sliding_window": true}}'
  "head_dim != hidden / heads" "head_dim" '{"config": {"head_dim": 32}}'
  "missing config field" "missing field 'hidden_size'" '{"config": {"hidden_size": null}}'
  "config field of the wrong type" "num_hidden_layers" '{"config": {"num_hidden_layers": "2"}}'
  "shape vs config" "gate_proj.weight' has shape \\[96, 64\\], the config needs \\[128, 64\\]" '{"config": {"intermediate_size": 128}}'
  "missing tensor" "model.layers.1.self_attn.k_norm.weight' is missing" '{"drop": ["model.layers.1.self_attn.k_norm.weight"]}'
  "unknown tensor (a bias)" "unknown tensor 'model.layers.0.self_attn.q_proj.bias'" '{"add": {"model.layers.0.self_attn.q_proj.bias": [64]}}'
  "unsupported dtype" "dtype 'I64'" '{"dtype": {"model.norm.weight": "I64"}}'
  "tied model with a different lm_head" "lm_head.weight differs" '{"add": {"lm_head.weight": [300, 64]}}'
)
HAVE_TK=0
bash data/get_tokenizer.sh > /dev/null 2>&1 && HAVE_TK=1
{
    for i in 1 2 3 4; do echo "random $W/r$i ${RSPEC[i - 1]}"; done
    [ $HAVE_TK = 1 ] && echo "random $W/r50k qwen3 15 --vocab 50257"  # GPT-2's vocabulary, cheaper than training
    for kind in gate_up kv rope; do echo "mutate $W/hq $W/m_$kind $kind"; done
    printf "edit %s %s '{}'" "$W/r2" "$W/base"
    for ((k = 0; k < ${#CASES[@]}; k += 3)); do printf " %s '%s'" "$W/e$k" "${CASES[k + 2]}"; done
    echo
} > "$W/batch1.txt"
py_batch "$W/batch1.txt"

# 4. our side: imports of the numpy folders, logits of every model
logits "$Q" "$W/lq.f32" $TOKS
logits "$U" "$W/lu.f32" $TOKS
logits "$W/b_back.bin" "$W/lb.f32" $TOKS
for i in 1 2 3 4; do
    run_ok "import numpy folder (${RSPEC[i - 1]})" $IMPORT "$W/r$i" "$W/r$i.bin"
    logits "$W/r$i.bin" "$W/lr$i.f32" $RTOKS
done
if [ $HAVE_TK = 1 ]; then
    TK=data/gpt2/tokenizer.bin
    $IMPORT "$W/r50k" "$W/g.bin" > /dev/null || bad "importing the 50257-token model failed"
    run_ok "export with -tok" $EXPORT "$W/g.bin" "$W/hg" -tok $TK -dtype bf16
    grep -q '"eos_token_id": 50256' "$W/hg/config.json" && grep -q '"bos_token_id": 50256' "$W/hg/generation_config.json" \
        && ok "bos/eos = the EOT id 50256" || bad "bos/eos ids: $(cat "$W/hg/generation_config.json")"
    expect_fail "tokenizer vocab != model vocab" "50257 tokens.*vocab_size is 512" $EXPORT "$Q" "$W/x" -tok $TK
else
    echo "note: no GPT-2 tokenizer (data/get_tokenizer.sh failed): tokenizer.json checks skipped"
fi

# 4b. -e hf_dir/ straight into the programs (the loaders read the folder as import_hf does)
logits "$W/hu" "$W/lu_dir.f32" $TOKS
cmp -s "$W/lu.f32" "$W/lu_dir.f32" && ok "the folder as -e: the logits of its imported checkpoint, bit for bit" \
    || bad "the folder as -e gives other logits than its import"
# fine-tuning an imported model: train_gpt -e hf_dir/ trains exactly as from the imported
# file, and the fine-tuned checkpoint exports (its numpy forward is compared in batch 2)
FT="-b 1 -t 32 -x 2 -l 1e-3 -v 0 -s 0 -i $W/t_*.bin"
$TRAIN -e "$W/hu" $FT -o "$W/ft" > "$W/ft.log" 2>&1 || bad "fine-tuning -e folder failed: $(tail -2 "$W/ft.log")"
$TRAIN -e "$W/u_back.bin" $FT -o "$W/ft2" > "$W/ft2.log" 2>&1 || bad "fine-tuning the import failed: $(tail -2 "$W/ft2.log")"
if [ "$(losses "$W/ft.log" | wc -l)" -eq 2 ] && diff <(losses "$W/ft.log") <(losses "$W/ft2.log") > /dev/null &&
   cmp -s "$W/ft/model_00000002.bin" "$W/ft2/model_00000002.bin"; then
    ok "train_gpt -e folder: 2 steps bit-identical to -e the imported checkpoint (losses, model file)"
else
    bad "fine-tuning from the folder differs: $(diff <(losses "$W/ft.log") <(losses "$W/ft2.log") | head -3)"
fi
run_ok "export the fine-tuned model" $EXPORT "$W/ft/model_00000002.bin" "$W/hft"
logits "$W/ft/model_00000002.bin" "$W/lft.f32" $TOKS
# the quickstart's kind of model (d2, its own BPE tokenizer from train_tokenizer, soft-cap
# on): exports with -lossy and its tokenizer, whose tokenizer.json numpy checks in batch 2
QTK=""
TT=$(dirname "$EXPORT")/train_tokenizer
if [ -x "$TT" ] && cat README.md docs/*.md llmc/*.h > "$W/qs_text.txt" &&
   OMP_NUM_THREADS=1 "$TT" -i "$W/qs_text.txt" -vs 1024 -o "$W/qs_tok.bin" > "$W/qs_tt.txt" 2>&1; then
    QTK="$W/qs_tok.bin"
    QV=$(sed -n 's/.*| vocab \([0-9]*\) (EOT.*/\1/p' "$W/qs_tt.txt")
    $GEN "$W/g_000.bin" 2000 "$QV" 5 > /dev/null || bad "gen_shard $QV failed"
    $TRAIN -e d2 -vs "$QV" -ms 64 -b 1 -t 32 -x 1 -v 0 -s 0 -i "$W/g_*.bin" -o "$W/qs" > "$W/qs.log" 2>&1 || bad "d2 at $QV tokens: $(tail -2 "$W/qs.log")"
    if $EXPORT "$W/qs/model_00000001.bin" "$W/hqs" -lossy -j "$W/g_*.bin" -tok "$QTK" > "$W/qs_e.txt" 2>&1 &&
       grep -qE "on 4 validation sequences: max \|logit difference\| [0-9.e-]+, loss difference [-+][0-9.]+$" "$W/qs_e.txt" &&
       [ -f "$W/hqs/tokenizer.json" ] && [ -f "$W/hqs/model.safetensors" ]; then
        ok "quickstart-shaped model (d2, a $QV-token tokenizer of train_tokenizer, soft-cap on) exports with -lossy: $(grep 'lossy' "$W/qs_e.txt" | head -n 1)"
    else
        bad "quickstart-shaped export: $(tail -3 "$W/qs_e.txt")"
    fi
else
    bad "train_tokenizer ($TT) for the quickstart-shaped model: $(tail -2 "$W/qs_tt.txt" 2> /dev/null)"
fi

# the exported tokenizer.json read back by our C loader: make_shards gives the shards of the
# tokenizer file it came from; infer -e folder/ takes the folder's tokenizer.json by itself
MS=$(dirname "$EXPORT")/make_shards
INF=$(dirname "$EXPORT")/infer_cpu
cat README.md docs/*.md > "$W/sh_text.txt"
for pair in "$W/hqs $QTK" "$W/hg ${TK:-}"; do
    set -- $pair
    [ -n "${2:-}" ] && [ -x "$MS" ] || continue
    "$MS" -o "$W/sj" -v 1 -tk "$1" "$W/sh_text.txt" "$W/qs_text.txt" > /dev/null 2>&1 &&
        "$MS" -o "$W/sb" -v 1 -tk "$2" "$W/sh_text.txt" "$W/qs_text.txt" > /dev/null 2>&1 &&
        cmp -s "$W/sj_val_000000.bin" "$W/sb_val_000000.bin" && cmp -s "$W/sj_train_000001.bin" "$W/sb_train_000001.bin" \
        && ok "exported $(basename "$1")/tokenizer.json tokenizes $(stat -c %s "$W/sh_text.txt") bytes as its $(basename "$2") does (make_shards)" \
        || bad "exported $(basename "$1")/tokenizer.json tokenizes otherwise than $2"
done
if [ -n "$QTK" ]; then
    # -tok a tokenizer.json: copied as it is, with the tokenizer_config.json beside it
    $EXPORT "$W/qs/model_00000001.bin" "$W/hqs2" -lossy -tok "$W/hqs/tokenizer.json" > "$W/qs_e2.txt" 2>&1 &&
        cmp -s "$W/hqs/tokenizer.json" "$W/hqs2/tokenizer.json" && cmp -s "$W/hqs/tokenizer_config.json" "$W/hqs2/tokenizer_config.json" \
        && ok "export -tok folder/tokenizer.json: the tokenizer.json and tokenizer_config.json copied byte for byte" \
        || bad "export -tok tokenizer.json: $(tail -2 "$W/qs_e2.txt")"
    $TRAIN -e "$W/hqs" -x 0 -b 1 -t 32 -m 2 -i "$W/g_*.bin" -j "$W/g_*.bin" > "$W/bpb_dir.txt" 2>&1 &&
        $TRAIN -e "$W/hqs" -tk "$QTK" -x 0 -b 1 -t 32 -m 2 -i "$W/g_*.bin" -j "$W/g_*.bin" > "$W/bpb_tk.txt" 2>&1 &&
        grep -q "val bpb" "$W/bpb_dir.txt" && [ "$(grep 'val bpb' "$W/bpb_dir.txt")" = "$(grep 'val bpb' "$W/bpb_tk.txt")" ] \
        && ok "train_gpt -e folder/ uses the folder's tokenizer.json: $(grep -m1 'val bpb' "$W/bpb_dir.txt" | sed 's/.*| //'), as with -tk" \
        || bad "train_gpt -e folder/ tokenizer: $(grep -E 'bpb|note' "$W/bpb_dir.txt" | head -2)"
fi
if [ -n "$QTK" ] && [ -x "$INF" ]; then
    "$INF" -e "$W/hqs" -p "The tokenizer" -g 12 -q 1 > "$W/inf_dir.txt" 2>&1 &&
        "$INF" -e "$W/hqs" -tk "$QTK" -p "The tokenizer" -g 12 -q 1 > "$W/inf_tk.txt" 2>&1 &&
        cmp -s "$W/inf_dir.txt" "$W/inf_tk.txt" && [ -s "$W/inf_dir.txt" ] \
        && ok "infer_cpu -e folder/ uses the folder's tokenizer.json: the text of -tk its source file" \
        || bad "infer -e folder/ tokenizer: $(head -c 300 "$W/inf_dir.txt") vs $(head -c 300 "$W/inf_tk.txt")"
fi

# 5. numpy batch 2: every comparison; the mutated copies must fail theirs
{
    echo "compare $W/hq $W/lq.f32 $TOKS"
    echo "compare $W/hu $W/lu.f32 $TOKS"
    echo "compare $W/hb $W/lb.f32 $TOKS"
    echo "compare $W/hft $W/lft.f32 $TOKS"
    for kind in gate_up kv rope; do echo "!compare $W/m_$kind $W/lq.f32 $TOKS"; done
    for i in 1 2 3 4; do echo "compare $W/r$i $W/lr$i.f32 $RTOKS"; done
    [ $HAVE_TK = 1 ] && echo "tokenizer $W/hg $TK"
    [ -n "$QTK" ] && echo "tokenizer $W/hqs $QTK"
} > "$W/batch2.txt"
py_batch "$W/batch2.txt"

# 6. what export refuses
expect_fail "export: soft-capped model" "logit_softcap" $EXPORT "$W/s/model_00000001.bin" "$W/x"
expect_fail "export: parallel block" "parallel_block" $EXPORT "$W/p/model_00000001.bin" "$W/x"
if $EXPORT "$W/s/model_00000001.bin" "$W/hs" -lossy > "$W/lossy.txt" 2>&1 && grep -q "max |logit difference|" "$W/lossy.txt"; then
    ok "-lossy: $(grep 'lossy' "$W/lossy.txt")"
else
    bad "-lossy: $(cat "$W/lossy.txt")"
fi
$EXPORT "$W/p/model_00000001.bin" "$W/hp" -lossy > "$W/lossy.txt" 2>&1 && grep -q "parallel_block dropped" "$W/lossy.txt" \
    && ok "-lossy parallel block: $(grep 'lossy' "$W/lossy.txt")" || bad "-lossy parallel block: $(cat "$W/lossy.txt")"
expect_fail "export: bad -dtype" "-dtype" $EXPORT "$Q" "$W/x" -dtype fp8
head -c 5000 "$Q" > "$W/trunc.bin"
expect_fail "export: truncated checkpoint" "trunc.bin.*truncated" $EXPORT "$W/trunc.bin" "$W/x"

# 7. what import refuses: every case exactly one error line, exit 1
EXPECT_FIRST_LINE=1
run_ok "an edited copy with no edits still imports" $IMPORT "$W/base" "$W/x.bin"
for ((k = 0; k < ${#CASES[@]}; k += 3)); do
    expect_fail "import: ${CASES[k]}" "${CASES[k + 1]}" $IMPORT "$W/e$k" "$W/x.bin"
    [ "$(grep -c '^error: ' "$W/err.txt")" -eq 1 ] || bad "import: ${CASES[k]}: more than one error line"
done
R=$W/r1  # llama, untied, 3 shards
rm -rf "$W/e" && cp -r "$W/base" "$W/e" && printf '{"architectures": ["LlamaForCausalLM"],' > "$W/e/config.json"
expect_fail "import: malformed config.json" "config.json': invalid JSON" $IMPORT "$W/e" "$W/x.bin"
rm -rf "$W/e" && cp -r "$W/base" "$W/e" && truncate -s -100 "$W/e/model.safetensors"
expect_fail "import: truncated model.safetensors" "model.safetensors': .*past the end" $IMPORT "$W/e" "$W/x.bin"
rm -rf "$W/e" && cp -r "$W/base" "$W/e" && rm "$W/e/model.safetensors"
expect_fail "import: no model.safetensors" "cannot open safetensors file" $IMPORT "$W/e" "$W/x.bin"
rm -rf "$W/e" && cp -r "$R" "$W/e" && sed -i 's/"model-00001-of-00003.safetensors"/"..\/evil.safetensors"/' "$W/e/model.safetensors.index.json"
expect_fail "import: index names a file outside the folder" "not a plain file name" $IMPORT "$W/e" "$W/x.bin"
rm -rf "$W/e" && cp -r "$R" "$W/e" && rm "$W/e/model-00002-of-00003.safetensors"
expect_fail "import: index names a missing shard" "model-00002-of-00003.safetensors" $IMPORT "$W/e" "$W/x.bin"
rm -rf "$W/e" && cp -r "$R" "$W/e" && sed -i 's/"model.norm.weight"/"model.norm.weight.x"/' "$W/e/model.safetensors.index.json"
expect_fail "import: index with an unknown name" "unknown tensor 'model.norm.weight.x'" $IMPORT "$W/e" "$W/x.bin"
expect_fail "import: no folder" "config.json" $IMPORT "$W/nope" "$W/x.bin"
finish
