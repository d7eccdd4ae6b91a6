#!/usr/bin/env bash
# test_make_shards.sh: make_shards on small inputs: files, --lines and --jsonl
# give the right documents and an EOT before each; the shards load in the
# trainer's reader; empty and binary input are one-line errors that leave no
# shard behind.
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
: > "$W/empty.txt"
"$MS" -o "$W/e" "$W/empty.txt" 2> "$W/err.txt"; rc=$?
[ $rc -ne 0 ] && grep -q "^error: .*empty.txt.*empty" "$W/err.txt" && ! ls "$W"/e_* > /dev/null 2>&1 && ok "empty input: $(head -1 "$W/err.txt")" || bad "empty input rc $rc: $(cat "$W/err.txt")"
head -c 4000 /bin/ls > "$W/bin.dat"
"$MS" -o "$W/x" "$W/bin.dat" "$W/a.txt" 2> "$W/err.txt"; rc=$?
[ $rc -ne 0 ] && grep -q "^error: .*bin.dat.*binary" "$W/err.txt" && ! ls "$W"/x_* > /dev/null 2>&1 && ok "binary input: $(head -1 "$W/err.txt")" || bad "binary input rc $rc: $(cat "$W/err.txt")"
"$MS" -o "$W/y" --jsonl "$W/lines.txt" 2> "$W/err.txt"; rc=$?
[ $rc -ne 0 ] && grep -q "^error: .*no \"text\" field" "$W/err.txt" && ok "jsonl without a text field: $(head -1 "$W/err.txt")" || bad "bad jsonl rc $rc"
printf '{"type": "text", "meta": {"text": "nested"}, "text": "the real one"}\n{"text": "b"}\n' > "$W/k.jsonl"
"$MS" -o "$W/k" -v 1 --jsonl "$W/k.jsonl" > /dev/null 2>&1 && od -An -tu2 -j1024 "$W/k_val_000000.bin" | tr -s ' ' | grep -q "^ 50256 1169 1103 530$" \
    && ok "--jsonl takes the top-level text key, not a value or a nested key" || bad "jsonl key: $(od -An -tu2 -j1024 "$W/k_val_000000.bin")"
printf '{"text": "bad \\u00zz"}\n' > "$W/u.jsonl"
"$MS" -o "$W/u" --jsonl "$W/u.jsonl" 2> "$W/err.txt"; rc=$?
[ $rc -ne 0 ] && grep -q "^error: .*bad .u escape" "$W/err.txt" && ok "a bad \\u escape is an error" || bad "bad escape rc $rc: $(cat "$W/err.txt")"
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
finish
