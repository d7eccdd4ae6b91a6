#!/usr/bin/env bash
# test_plot.sh: scripts/plot.sh on a real training log (train_gpt -ml): a PNG of
# the right size; the plotted tables hold exactly the log's steps, losses,
# learning rates and validations, the smoothed curve is the documented moving
# average; a step logged twice (a resumed run) keeps its last line; bad input is
# a one-line error that writes no image. Skips when gnuplot is missing.
#   usage: bash test/test_plot.sh ./train_gpt
set -u
TRAIN=${1:-./train_gpt}
. test/lib.sh
command -v gnuplot > /dev/null || skip "gnuplot is not installed (apt-get install gnuplot-nox)"
make_workdir plot
make_tiny_shards
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} $TRAIN -e d2 -vs 512 -ms 64 -b 2 -t 32 -x 8 -v 4 -m 2 -l 3e-3 -u 2 \
    -i "$W/tr_*.bin" -j "$W/va_*.bin" -ml "$W/run.jsonl" > "$W/train.log" 2>&1 || { bad "training: $(tail -2 "$W/train.log")"; finish; exit 1; }
PLOT_KEEP="$W/keep" bash scripts/plot.sh "$W/run.jsonl" "$W/sub/loss.png" "tiny run" > "$W/out.txt" 2>&1
rc=$?
nval=$(grep -c '"val_loss"' "$W/run.jsonl")
[ $rc -eq 0 ] && grep -q "^plot: $W/sub/loss.png (8 training steps, $nval validations)$" "$W/out.txt" \
    && ok "plot.sh: $(cat "$W/out.txt")" || bad "plot.sh rc $rc: $(cat "$W/out.txt")"
# the PNG: signature, IHDR 1200 x 900, more than a blank canvas
sig=$(head -c 8 "$W/sub/loss.png" | od -An -tx1 | tr -d ' \n')
wh=$(od -An -tu1 -j16 -N8 "$W/sub/loss.png" | awk '{print $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8}')
size=$(stat -c %s "$W/sub/loss.png")
[ "$sig" = 89504e470d0a1a0a ] && [ "$wh" = "1200 900" ] && [ "$size" -gt 20000 ] \
    && ok "a 1200 x 900 PNG of $size bytes" || bad "png: signature $sig, size $wh, $size bytes"
# the tables against the log, read independently: loss and lr per step, the
# moving average m = 0.9 m + 0.1 loss from the first loss, validation rows
res=$(awk 'FNR == 1 { f++ }
    f == 1 && /"loss":/ && !/val_loss/ { match($0, /"step":[0-9]+/); s = substr($0, RSTART + 7, RLENGTH - 7)
        match($0, /"loss":[-0-9.e+]+/); l = substr($0, RSTART + 7, RLENGTH - 7)
        match($0, /"lr":[-0-9.e+]+/); r = substr($0, RSTART + 5, RLENGTH - 5)
        m = (n++ == 0) ? l : 0.9 * m + 0.1 * l; want[s] = l " " r " " m; next }
    f == 1 && /val_loss/ { match($0, /"step":[0-9]+/); vs[substr($0, RSTART + 7, RLENGTH - 7)] = 1; nv++; next }
    f == 2 { got++; split(want[$1], w, " "); if (!($1 in want) || $3 != w[1] || $5 != w[2] || ($4 - w[3])^2 > 1e-10) bad++ }
    f == 3 { gv++; if (!($1 in vs)) bad++ }
    END { print (got == n && gv == nv && n == 8 && !bad) ? "same" : "differ " got "/" n " " gv "/" nv " " bad + 0 }' \
    "$W/run.jsonl" "$W/keep/train.dat" "$W/keep/val.dat")
[ "$res" = same ] && ok "the tables hold the log's 8 steps (loss, lr, moving average) and $nval validations" || bad "tables: $res"
grep -q "train loss+z" "$W/keep/plot.gp" && ok "the loss is labelled loss+z (z-loss on)" || bad "no loss+z label"
# a resumed run's log: step 5 logged again with another loss; the last line wins, nothing doubles
{ cat "$W/run.jsonl"; grep '^{"step":5,"loss"' "$W/run.jsonl" | sed 's/"loss":[0-9.]*/"loss":1.250000/'; } > "$W/resumed.jsonl"
PLOT_KEEP="$W/keep2" bash scripts/plot.sh "$W/resumed.jsonl" "$W/r.png" > "$W/out.txt" 2>&1 &&
    grep -q "(8 training steps" "$W/out.txt" && [ "$(awk '$1 == 5 {print $3}' "$W/keep2/train.dat")" = 1.250000 ] \
    && ok "a step logged twice keeps its last line" || bad "resumed log: $(cat "$W/out.txt")"
# bad input: one line on stderr, non-zero, no image
plot_fails() {
    local desc=$1 pat=$2
    shift 2
    rm -f "$W/bad.png"
    bash scripts/plot.sh "$@" > /dev/null 2> "$W/err.txt"; local rc=$?
    if [ $rc -ne 0 ] && [ "$(wc -l < "$W/err.txt")" -eq 1 ] && grep -qE "^error: .*$pat" "$W/err.txt" && [ ! -e "$W/bad.png" ]; then
        ok "$desc: $(cat "$W/err.txt")"
    else
        bad "$desc: rc $rc: $(head -3 "$W/err.txt")"
    fi
}
plot_fails "missing log" "none.jsonl.*not found" "$W/none.jsonl" "$W/bad.png"
: > "$W/empty.jsonl"
plot_fails "empty log" "no training steps" "$W/empty.jsonl" "$W/bad.png"
grep val_loss "$W/run.jsonl" > "$W/valonly.jsonl"
plot_fails "validations only" "no training steps" "$W/valonly.jsonl" "$W/bad.png"
plot_fails "not .png" "must end in .png" "$W/run.jsonl" "$W/bad.jpg"
plot_fails "no arguments" "usage" 
finish
