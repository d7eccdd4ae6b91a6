#!/usr/bin/env bash
# test_make_shards.sh: make_shards on small inputs: files, --lines and --jsonl
# give the right documents and an EOT before each; the shards load in the
# trainer's reader; --text writes the split as text; empty and binary input and
# malformed JSON lines are one-line errors that leave no shard behind.
#   usage: bash test/test_make_shards.sh ./make_shards
set -u
MS=${1:-./make_shards}
. test/lib.sh
make_workdir ms
need_tokenizer
printf 'Hello world' > "$W/a.txt"; printf 'Second document.\n' > "$W/b.txt"; printf 'Third one' > "$W/c.txt"
"$MS" -o "$W/f" -v 1 "$W/a.txt" "$W/b.txt" "$W/c.txt" > "$W/out.txt" 2>&1 && ok "three files -> shards" || bad "files: $(cat "$W/out.txt")"
grep -q "documents 3 (validation 1)" "$W/out.txt" && ok "summary counts 3 documents, 1 for validation" || bad "summary: $(tail -1 "$W/out.txt")"
# val shard = EOT 15496 995 ("Hello world"): header 1024 bytes + 3 uint16
[ "$(stat -c %s "$W/f_val_000000.bin")" -eq $((1024 + 6)) ] && ok "validation shard holds EOT + 2 tokens" || bad "val shard size $(stat -c %s "$W/f_val_000000.bin")"
od -An -tu2 -j1024 "$W/f_val_000000.bin" | tr -s ' ' | grep -q "50256 15496 995" && ok "tokens are EOT 15496 995" || bad "tokens: $(od -An -tu2 -j1024 "$W/f_val_000000.bin")"
printf 'line one\nline two\n\nline three\n' > "$W/lines.txt"
"$MS" -o "$W/l" -v 1 --lines "$W/lines.txt" 2>&1 | grep -q "documents 3" && ok "--lines: one document per non-empty line" || bad "--lines"
printf '{"text": "caf\\u00e9 \\"q\\"\\n", "id": 1}\n{"id": 2, "text": "two"}\n' > "$W/d.jsonl"
"$MS" -o "$W/j" -v 1 --jsonl "$W/d.jsonl" 2>&1 | grep -q "documents 2" && ok "--jsonl: the text field of each line" || bad "--jsonl"
# ms_fails <desc> <regex> <out prefix> <make_shards args...>: non-zero, an "error: " line
# matching the regex, and no file under the output prefix
ms_fails() {
    local desc=$1 pat=$2 prefix=$3
    shift 3
    "$MS" -o "$prefix" "$@" > /dev/null 2> "$W/err.txt"; local rc=$?
    if [ $rc -ne 0 ] && grep -q "^error: .*$pat" "$W/err.txt" && ! ls "$prefix"_* > /dev/null 2>&1; then
        ok "$desc: $(head -1 "$W/err.txt")"
    else
        bad "$desc: rc $rc: $(cat "$W/err.txt")"
    fi
}
: > "$W/empty.txt"
ms_fails "empty input" "empty.txt.*empty" "$W/e" "$W/empty.txt"
head -c 4000 /bin/ls > "$W/bin.dat"
ms_fails "binary input" "bin.dat.*binary" "$W/x" "$W/bin.dat" "$W/a.txt"
ms_fails "plain text as jsonl" "lines.txt' line 1: invalid JSON" "$W/y" --jsonl "$W/lines.txt"
printf '{"id": 1, "meta": {"text": "nested"}}\n' > "$W/nt.jsonl"
ms_fails "jsonl without a text field" "line 1 has no \"text\" field" "$W/nt" --jsonl "$W/nt.jsonl"
printf '{"type": "text", "meta": {"text": "nested"}, "text": "the real one"}\n{"text": "b"}\n' > "$W/k.jsonl"
"$MS" -o "$W/k" -v 1 --jsonl "$W/k.jsonl" > /dev/null 2>&1 && od -An -tu2 -j1024 "$W/k_val_000000.bin" | tr -s ' ' | grep -q "^ 50256 1169 1103 530$" \
    && ok "--jsonl takes the top-level text key, not a value or a nested key" || bad "jsonl key: $(od -An -tu2 -j1024 "$W/k_val_000000.bin")"
# malformed lines: llmc/json.h's strict parser names the line and the fault
printf '{"text": "bad \\u00zz"}\n' > "$W/u.jsonl"
ms_fails "a bad \\u escape" "u.jsonl' line 1: invalid JSON at byte [0-9]*: bad hex digit in .u escape" "$W/u" --jsonl "$W/u.jsonl"
printf '{"text": "ok"}\n{"text": "lone \\ud800 surrogate"}\n' > "$W/s.jsonl"
ms_fails "a lone surrogate" "s.jsonl' line 2: .*lone high surrogate" "$W/s" --jsonl "$W/s.jsonl"
printf '{"text": "a", "text": "b"}\n' > "$W/dk.jsonl"
ms_fails "a duplicate text key" "line 1: .*duplicate" "$W/dk" --jsonl "$W/dk.jsonl"
printf '{"text": "nul \\u0000 here"}\n' > "$W/nul.jsonl"
ms_fails "\\u0000 in the text" "line 1: a NUL character" "$W/nul" --jsonl "$W/nul.jsonl"
printf '{"text": 5}\n' > "$W/num.jsonl"
ms_fails "a text that is a number" "line 1: \"text\" is not a string" "$W/num" --jsonl "$W/num.jsonl"
# --text: the same split as text, each document followed by a blank line; no tokenizer read
"$MS" --text -o "$W/tx/s" -v 1 -tk "$W/none.bin" --jsonl "$W/d.jsonl" > "$W/out.txt" 2>&1 &&
    [ "$(cat "$W/tx/s_val.txt"; echo .)" = "$(printf 'caf\xc3\xa9 "q"\n\n\n.')" ] &&
    [ "$(cat "$W/tx/s_train.txt"; echo .)" = "$(printf 'two\n\n.')" ] && ! ls "$W"/tx/*.bin > /dev/null 2>&1 &&
    grep -q "s_train.txt (1 documents, 5 bytes)" "$W/out.txt" \
    && ok "--text: <prefix>_val.txt and <prefix>_train.txt hold the split's documents, no shards" || bad "--text: $(cat "$W/out.txt")"
ms_fails "--text with no training documents" "flag -v: 3 validation documents leave none" "$W/tx/f" --text -v 3 "$W/a.txt" "$W/b.txt" "$W/c.txt"
# tokenizer files: missing, truncated, wrong magic, wrong version
expect_tok() {
    "$MS" -o "$W/t" -tk "$2" "$W/a.txt" 2> "$W/err.txt"; local rc=$?
    [ $rc -ne 0 ] && grep -qE "^error: .*$3" "$W/err.txt" && ok "tokenizer $1: $(head -1 "$W/err.txt")" || bad "tokenizer $1 rc $rc: $(cat "$W/err.txt")"
}
TKF=$TK
expect_tok "missing" "$W/none.bin" "none.bin"
head -c 5000 $TKF > "$W/tt.bin"; expect_tok "truncated" "$W/tt.bin" "tt.bin.*truncated"
cp "$W/a.txt" "$W/tm.bin"; expect_tok "too short" "$W/tm.bin" "tm.bin.*truncated"
{ printf '\x01\x00\x00\x00'; tail -c +5 $TKF; } > "$W/tg.bin"; expect_tok "wrong magic" "$W/tg.bin" "tg.bin.*not a tokenizer"
{ head -c 4 $TKF; printf '\x09\x00\x00\x00'; tail -c +9 $TKF; } > "$W/tv.bin"; expect_tok "wrong version" "$W/tv.bin" "tv.bin.*version 9"
{ cat $TKF; printf 'xx'; } > "$W/tx.bin"; expect_tok "trailing bytes" "$W/tx.bin" "tx.bin.*trailing"
# Hugging Face tokenizer.json: GPT-2's gives the shards ours gives; Llama 3's (128256
# tokens) gives uint32 shards whose documents start with <|begin_of_text|>
bash data/get_tokenizer.sh llama3 > /dev/null || bad "get_tokenizer.sh llama3 failed"
"$MS" -o "$W/hj" -v 1 -tk data/gpt2/tokenizer.json --jsonl "$W/d.jsonl" > /dev/null 2>&1 && "$MS" -o "$W/hb" -v 1 --jsonl "$W/d.jsonl" > /dev/null 2>&1 &&
    cmp -s "$W/hj_val_000000.bin" "$W/hb_val_000000.bin" && cmp -s "$W/hj_train_000001.bin" "$W/hb_train_000001.bin" \
    && ok "-tk data/gpt2/tokenizer.json: the same shards as tokenizer.bin" || bad "GPT-2 tokenizer.json shards differ"
printf 'Hello world!' > "$W/hw.txt"
"$MS" -o "$W/l3" -v 1 -tk data/llama3 "$W/hw.txt" "$W/b.txt" > "$W/out.txt" 2>&1 || bad "llama3 shards: $(cat "$W/out.txt")"
# llama3-tokenizer-js's README: "Hello world!" -> 128000 9906 1917 0 (BOS first)
[ "$(od -An -tu4 -N8 "$W/l3_val_000000.bin" | tr -s ' ')" = " 20240801 7" ] && [ "$(stat -c %s "$W/l3_val_000000.bin")" -eq $((1024 + 16)) ] &&
    [ "$(od -An -tu4 -j1024 "$W/l3_val_000000.bin" | tr -s ' ')" = " 128000 9906 1917 0" ] && grep -q "128256 tokens, uint32 shards, documents start with token 128000" "$W/out.txt" \
    && ok "-tk data/llama3: uint32 shard (magic 20240801) holding 128000 9906 1917 0" || bad "llama3 shard: $(od -An -tu4 "$W/l3_val_000000.bin" | head -3) $(cat "$W/out.txt")"
TG=./train_gpt  # the optimized build: the reader is what is tested here, not the trainer under ASan
if [ -x "$TG" ]; then
    "$TG" -e d2 -i "$W/l3_train_*.bin" -j "$W/l3_val_*.bin" -tk data/llama3 -vs 128256 -b 1 -t 2 -x 2 -v 1 -m 1 -s 0 > "$W/tr.txt" 2>&1 &&
        grep -q "^step *2/2" "$W/tr.txt" && ok "train_gpt trains on them (-vs 128256): $(grep '^val loss' "$W/tr.txt" | head -1)" || bad "training on uint32 shards: $(tail -3 "$W/tr.txt")"
fi
# bad tokenizer.json files: one-line errors naming the fault
TJ=data/gpt2/tokenizer.json
head -c 100000 $TJ > "$W/tj_trunc.json"; expect_tok "json truncated" "$W/tj_trunc.json" "tj_trunc.json.*invalid JSON|tj_trunc.json.*end"
sed 's/"type": "BPE"/"type": "WordPiece"/' $TJ > "$W/tj_wp.json"; expect_tok "json WordPiece" "$W/tj_wp.json" "model type \"WordPiece\" is not supported"
sed 's/"normalizer": null/"normalizer": {"type": "NFKC"}/' $TJ > "$W/tj_nfc.json"; expect_tok "json NFKC" "$W/tj_nfc.json" "normalizer \"NFKC\" is not supported \\(NFC is\\)"
sed 's/"Regex": "(?i:/"Regex": "(?x:/' data/llama3/tokenizer.json > "$W/tj_re.json"; expect_tok "json unknown pattern" "$W/tj_re.json" "Split pattern .* is not one we implement"
sed 's/^   "h e",$/   "h zzq",/' $TJ > "$W/tj_m.json"; expect_tok "json merge of an unknown token" "$W/tj_m.json" "merge 2: \"zzq\" is not in the vocab"
sed 's/"Ġt": 256,/"Ġt": 70000,/' $TJ > "$W/tj_gap.json"; expect_tok "json id gap" "$W/tj_gap.json" "id 256 has no token"
sed '0,/"add_prefix_space": false/s//"add_prefix_space": true/' $TJ > "$W/tj_ap.json"
expect_tok "json add_prefix_space" "$W/tj_ap.json" "add_prefix_space is true"
sed 's/"rstrip": false/"rstrip": true/' $TJ > "$W/tj_rs.json"; expect_tok "json rstrip" "$W/tj_rs.json" "sets rstrip, which is not supported"
finish
