#!/usr/bin/env bash
# tokenizer_parity.sh: our C tokenizer against independent JavaScript references
# run with node (fetched with npm when missing):
# - ours (data/gpt2/tokenizer.bin) against gpt-3-encoder's own Encoder.js on a
#   broad set of strings plus the README and the docs (test/tokenizer_parity.js);
# - tokenizer.json files (GPT-2's, Llama 3's, and Llama 3's vocabulary with Qwen 2's
#   one-digit pattern) against @huggingface/tokenizers and, for the first two, the
#   vocabulary's own encoder (gpt-3-encoder, llama3-tokenizer-js), on the hard cases
#   of test/tokenizer_cases.js, the docs and MB megabytes of nlp-corpus
#   (test/tokenizer_json_parity.mjs).
#   usage: bash test/tokenizer_parity.sh ./test_tokenizer_parity      (MB=2 by default)
set -euo pipefail
BIN=${1:-./test_tokenizer_parity}
MB=${MB:-2}
command -v node > /dev/null || { echo "error: node is not installed -- apt-get install nodejs npm"; echo "0 passed, 1 failed"; exit 1; }
bash data/get_tokenizer.sh > /dev/null
bash data/get_tokenizer.sh llama3 > /dev/null
hf=$(bash data/fetch_npm.sh @huggingface/tokenizers@0.2.0)
l3=$(bash data/fetch_npm.sh llama3-tokenizer-js@1.2.0)
corpus=$(bash data/fetch_npm.sh nlp-corpus@4.4.0)
. test/lib.sh
make_workdir parity
# part <command...>: runs one comparison, shows it, adds its "N passed, M failed" to the total
P=0; F=0
part() {
    local out rc line
    out=$("$@" 2>&1); rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -n "$line" ]; then P=$((P + $(echo "$line" | awk '{print $1}'))); F=$((F + $(echo "$line" | awk '{print $3}'))); fi
    if [ $rc -ne 0 ] && { [ -z "$line" ] || [ "$(echo "$line" | awk '{print $3}')" -eq 0 ]; }; then echo "FAIL: $* (status $rc)"; F=$((F + 1)); fi
}
set +e
node test/tokenizer_parity.js data/cache/gpt-3-encoder "$W/cases.bin" "$W/classes.bin" README.md docs/*.md train_gpt.c
part "$BIN" data/gpt2/tokenizer.bin "$W/cases.bin" "$W/classes.bin" "$(node -p process.versions.unicode)"
# the three references side by side (one core each), then our encoder on each
for k in gpt2 llama3 qwen2; do
    case $k in
        gpt2) dir=data/gpt2; ref=data/cache/gpt-3-encoder ;;
        llama3) dir=data/llama3; ref=$l3 ;;
        qwen2) dir=data/llama3; ref=- ;;
    esac
    { node test/tokenizer_json_parity.mjs "$hf" $k $dir "$ref" "$corpus" "$MB" "$W/$k" README.md docs/*.md > "$W/$k.log" 2>&1
      echo $? > "$W/$k.rc"; } &
done
wait
for k in gpt2 llama3 qwen2; do part bash -c "cat '$W/$k.log'; exit \$(cat '$W/$k.rc')"; done
part "$BIN" --json data/gpt2/tokenizer.json "$W/gpt2/cases.bin" "GPT-2 tokenizer.json" gpt-3-encoder
part "$BIN" --json data/llama3 "$W/llama3/cases.bin" "Llama 3 tokenizer.json" llama3-tokenizer-js
part "$BIN" --json "$W/qwen2/tokenizer.json" "$W/qwen2/cases.bin" "Qwen 2 pattern + NFC" none
echo "$P passed, $F failed"
[ $F -eq 0 ]
