#!/usr/bin/env bash
# test_cli.sh: the trainer as a user runs it, on synthetic shards made by
# ./gen_shard: help, an evaluation-only run, bit-exact resume (a run stopped at
# a checkpoint and a run killed at a random moment both resume and end with the
# same losses and the same model file as an uninterrupted run), and every kind
# of bad input (each must exit non-zero with an "error:" line that names the
# file or flag).
#   usage: bash test/test_cli.sh ./train_gpt     (run from the repository root)
set -u
TRAIN=${1:-./train_gpt}
. test/lib.sh
make_workdir cli
EXPECT_FIRST_LINE=1  # the trainer prints nothing to stderr before its one error line

# a tiny model and data: vocab 512, T 32
make_tiny_shards
M="-e d2 -vs 512 -ms 64 -b 2 -t 32 -i $W/tr_*.bin -j $W/va_*.bin -v 4 -m 2 -l 1e-3 -u 2"

"$TRAIN" --help > "$W/help.txt" 2>&1 && grep -q -- "-zl" "$W/help.txt" && ok "--help prints the usage" || bad "--help"

# 1. an uninterrupted run of 8 steps with checkpoints at 4 and 8
"$TRAIN" $M -x 8 -n 4 -o "$W/a" > "$W/a.txt" 2>&1 || bad "run A failed: $(tail -3 "$W/a.txt")"
losses "$W/a.txt" > "$W/a_losses.txt"
[ "$(wc -l < "$W/a_losses.txt")" -eq 8 ] && ok "run A logged 8 steps" || bad "run A logged $(wc -l < "$W/a_losses.txt") steps"
first=$(head -n1 "$W/a_losses.txt" | sed 's/.*loss[+z]* \([0-9.]*\).*/\1/')
last=$(tail -n1 "$W/a_losses.txt" | sed 's/.*loss[+z]* \([0-9.]*\).*/\1/')
awk -v f="$first" -v l="$last" 'BEGIN{exit !(l < f)}' && ok "loss falls: $first -> $last" || bad "loss did not fall: $first -> $last"
[ -f "$W/a/model_00000004.bin" ] && [ -f "$W/a/state_00000004_00000.bin" ] && [ -f "$W/a/model_00000008.bin" ] \
    && ok "checkpoints written at steps 4 and 8" || bad "checkpoint files missing: $(ls "$W/a")"
ls "$W/a" | grep -q tmp && bad "temp files left behind" || ok "no temp files left behind"

# 2. the same run stopped after checkpoint 4 (its step-8 files removed), then resumed
"$TRAIN" $M -x 8 -n 4 -o "$W/b" > /dev/null 2>&1
rm -f "$W/b/model_00000008.bin" "$W/b/state_00000008_00000.bin"
"$TRAIN" $M -x 8 -n 4 -o "$W/b" -y 1 > "$W/b.txt" 2>&1 || bad "resume failed: $(tail -3 "$W/b.txt")"
losses "$W/b.txt" > "$W/b_losses.txt"
if [ "$(wc -l < "$W/b_losses.txt")" -eq 4 ] && diff <(tail -n 4 "$W/a_losses.txt") "$W/b_losses.txt" > /dev/null; then
    ok "resume from step 4: steps 5-8 bit-identical to the uninterrupted run"
else
    bad "resumed losses differ: $(diff <(tail -n 4 "$W/a_losses.txt") "$W/b_losses.txt" | head -5)"
fi
cmp -s "$W/a/model_00000008.bin" "$W/b/model_00000008.bin" && ok "resumed final model file identical" || bad "resumed final model differs"

# 3. killed with SIGKILL at a random moment (checkpoint every step), then resumed until done
mkdir -p "$W/c"
"$TRAIN" $M -x 8 -n 1 -o "$W/c" > /dev/null 2>&1 &
pid=$!
sleep 0.$((RANDOM % 9 + 1))
kill -9 $pid 2> /dev/null
wait $pid 2> /dev/null
"$TRAIN" $M -x 8 -n 1 -o "$W/c" -y 1 > "$W/c.txt" 2>&1 || bad "resume after kill failed: $(tail -3 "$W/c.txt")"
cmp -s "$W/a/model_00000008.bin" "$W/c/model_00000008.bin" && ok "killed at a random moment, resumed: final model identical" \
    || bad "killed + resumed final model differs"

# checkpoints to keep: -nk 2 with a checkpoint every 2 steps leaves steps 6 and 8
"$TRAIN" $M -x 8 -n 2 -nk 2 -o "$W/k" > /dev/null 2>&1
[ "$(ls "$W/k" | tr '\n' ' ')" = "model_00000006.bin model_00000008.bin state_00000006_00000.bin state_00000008_00000.bin " ] \
    && ok "-nk 2 keeps the two newest checkpoints" || bad "-nk 2 left: $(ls "$W/k" | tr '\n' ' ')"

# 4. evaluation only
"$TRAIN" -e "$W/a/model_00000008.bin" -x 0 -b 2 -t 32 -j "$W/va_*.bin" -m 2 > "$W/e.txt" 2>&1
grep -qE '^val loss [0-9]+\.[0-9]+$' "$W/e.txt" && ok "evaluation-only run: $(grep '^val loss' "$W/e.txt")" || bad "eval-only: $(tail -2 "$W/e.txt")"
# with a tokenizer of the model's 512 tokens (trained here) it adds bits per byte;
# the cross-entropy is the same number (bpb only adds the byte count)
TOKTRAIN=${TOKTRAIN:-$(dirname "$TRAIN")/train_tokenizer}
if [ -x "$TOKTRAIN" ]; then
    { seq 1 30000; printf 'the quick brown fox jumps over the lazy dog. %.0s' $(seq 50); } > "$W/tok.txt"
    "$TOKTRAIN" -i "$W/tok.txt" -vs 512 -o "$W/tok512.bin" > /dev/null 2>&1 || bad "train_tokenizer -vs 512 failed"
    "$TRAIN" -e "$W/a/model_00000008.bin" -x 0 -b 2 -t 32 -j "$W/va_*.bin" -m 2 -tk "$W/tok512.bin" > "$W/eb.txt" 2>&1
    ce1=$(sed -n 's/^val loss \([0-9.]*\).*/\1/p' "$W/e.txt"); ce2=$(sed -n 's/^val loss \([0-9.]*\) | val bpb [0-9.]*$/\1/p' "$W/eb.txt")
    [ -n "$ce2" ] && [ "$ce1" = "$ce2" ] && ok "-x 0 with a 512-token tokenizer: $(grep '^val loss' "$W/eb.txt")" \
        || bad "-x 0 with a tokenizer: $(tail -2 "$W/eb.txt") (without: $ce1)"
    "$TRAIN" $M -x 4 -v 2 -tk "$W/tok512.bin" -ml "$W/m.jsonl" > "$W/mb.txt" 2>&1 || bad "run with -ml failed: $(tail -2 "$W/mb.txt")"
    nv=$(grep -c '"val_loss":[0-9.]*,"val_bpb":[0-9.]*,"tokens":[0-9]*}' "$W/m.jsonl"); nt=$(grep -c '"loss":.*"tokens":[0-9]*}' "$W/m.jsonl")
    [ "$nv" -eq 3 ] && [ "$nt" -eq 4 ] && grep -q '^done: 4 steps in .* | 256 tokens | val loss [0-9.]* | val bpb [0-9.]*$' "$W/mb.txt" \
        && ok "JSONL has val_bpb and tokens ($nv val, $nt step lines); the summary: $(grep '^done:' "$W/mb.txt")" \
        || bad "metrics: $nv val lines, $nt step lines with tokens; $(grep '^done' "$W/mb.txt")"
else
    bad "no train_tokenizer beside $TRAIN (TOKTRAIN=...)"
fi

# 5. bad input
expect_fail "missing shards" "no token shards match" "$TRAIN" $M -i "$W/nope_*.bin" -x 3
head -c 1000 "$W/tr_000.bin" > "$W/trunc_000.bin"
expect_fail "truncated shard" "trunc_000.bin.*truncated" "$TRAIN" $M -i "$W/trunc_*.bin" -x 3
head -c 100 "$W/tr_000.bin" > "$W/tiny_000.bin"
expect_fail "shard shorter than its header" "tiny_000.bin.*truncated" "$TRAIN" $M -i "$W/tiny_*.bin" -x 3
{ printf '\x01\x02\x03\x04'; tail -c +5 "$W/tr_000.bin"; } > "$W/magic_000.bin"
expect_fail "wrong shard magic" "magic_000.bin.*not a token shard" "$TRAIN" $M -i "$W/magic_*.bin" -x 3
{ head -c 4 "$W/tr_000.bin"; printf '\x09\x00\x00\x00'; tail -c +9 "$W/tr_000.bin"; } > "$W/ver_000.bin"
expect_fail "wrong shard version" "ver_000.bin.*version" "$TRAIN" $M -i "$W/ver_*.bin" -x 3
$GEN "$W/big_000.bin" 40000 1000 3 > /dev/null
expect_fail "token id >= vocab size" "big_000.bin.*out of range" "$TRAIN" $M -i "$W/big_*.bin" -x 3
expect_fail "batch larger than the shard" "fewer than one batch" "$TRAIN" $M -j "$W/va_*.bin" -b 64 -t 64 -ms 64 -x 3
expect_fail "T > max_seq_len" "-t.*max_seq_len" "$TRAIN" $M -t 128 -x 3
expect_fail "resume with another model" "does not match" "$TRAIN" $M -x 8 -n 4 -o "$W/a" -y 1 -kv 4
expect_fail "resume with another batch" "written with" "$TRAIN" $M -x 8 -n 4 -o "$W/a" -y 1 -b 1
expect_fail "missing checkpoint" "nope.bin" "$TRAIN" -e "$W/nope.bin" -x 0 -j "$W/va_*.bin"
head -c 5000 "$W/a/model_00000008.bin" > "$W/trunc_model.bin"
expect_fail "truncated checkpoint" "trunc_model.bin.*truncated" "$TRAIN" -e "$W/trunc_model.bin" -x 0 -j "$W/va_*.bin"
cp "$W/tr_000.bin" "$W/notamodel.bin"
expect_fail "checkpoint with wrong magic" "notamodel.bin.*not a model checkpoint" "$TRAIN" -e "$W/notamodel.bin" -x 0 -j "$W/va_*.bin"
{ head -c 4 "$W/a/model_00000008.bin"; printf '\x07\x00\x00\x00'; tail -c +9 "$W/a/model_00000008.bin"; } > "$W/v7model.bin"
expect_fail "checkpoint with unknown version" "v7model.bin.*version" "$TRAIN" -e "$W/v7model.bin" -x 0 -j "$W/va_*.bin"
mkdir -p "$W/d" && cp "$W/a/model_00000004.bin" "$W/d/" && head -c 3000 "$W/a/state_00000004_00000.bin" > "$W/d/state_00000004_00000.bin"
expect_fail "truncated training state" "state_00000004_00000.bin.*truncated" "$TRAIN" $M -x 8 -o "$W/d" -y 1
rm -f "$W/d/state_00000004_00000.bin"
expect_fail "missing training state" "state_00000004_00000.bin" "$TRAIN" $M -x 8 -o "$W/d" -y 1
expect_fail "unknown preset" "-e.*neither a preset" "$TRAIN" -e d7 -x 3
expect_fail "flag -b 0" "-b" "$TRAIN" -b 0
expect_fail "flag -l not a number" "-l" "$TRAIN" -l abc
expect_fail "flag -k unknown schedule" "-k" "$TRAIN" -k sawtooth
expect_fail "unknown flag" "-zz" "$TRAIN" -zz 1
expect_fail "flag without value" "-b" "$TRAIN" -b
expect_fail "flag -sp out of range" "-sp" "$TRAIN" -sp 1.5
expect_fail "flag -d not a multiple of B*T" "-d" "$TRAIN" $M -d 100 -x 3
expect_fail "resume without -o" "-y" "$TRAIN" -y 1
expect_fail "bad model config (NKV does not divide NH)" "n_kv_head|multiple" "$TRAIN" $M -kv 3 -x 3

finish
