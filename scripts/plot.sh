#!/usr/bin/env bash
# plot.sh: draws a training run's JSONL metrics (train_gpt -ml run.jsonl) as a PNG:
#   top:    training loss (raw and smoothed) and validation loss against steps,
#           the learning rate on the right-hand axis
#   bottom: the same losses against tokens seen, validation bits per byte on the
#           right-hand axis when the log has it
# A resumed run appends to its log; a step logged twice keeps its last line.
# Needs gnuplot (Debian: apt-get install gnuplot-nox). PLOT_KEEP=dir keeps the
# tables it plotted (train.dat: step tokens loss smoothed lr; val.dat: step
# tokens val_loss val_bpb) and the gnuplot script in dir.
#   usage: bash scripts/plot.sh run.jsonl out.png [title]
set -euo pipefail
die() { echo "error: $*" >&2; exit 1; }
[ $# -ge 2 ] && [ $# -le 3 ] || die "usage: scripts/plot.sh run.jsonl out.png [title]"
in=$1
out=$2
title=${3:-$(basename "$in")}
command -v gnuplot > /dev/null || die "gnuplot is not installed -- install it with: apt-get install gnuplot-nox"
[ -f "$in" ] || die "'$in' not found"
[ -r "$in" ] || die "'$in' is not readable"
case "$out" in *.png) ;; *) die "the output '$out' must end in .png" ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# JSONL -> two tables: train.dat (step tokens loss smoothed lr) and val.dat
# (step tokens val_loss val_bpb); the last line of a step wins, rows in step order
awk -v tdat="$tmp/train.dat" -v vdat="$tmp/val.dat" -v meta="$tmp/meta" '
function num(key,   m) {  # the number after "key": on this line, or "" when absent
    if (match($0, "\"" key "\":[-+0-9.eE]+")) { m = substr($0, RSTART, RLENGTH); sub(/^[^:]*:/, "", m); return m }
    return ""
}
/^[ \t]*$/ { next }
{
    s = num("step")
    if (s == "" || s !~ /^[0-9]+$/) { bad++; next }
    s += 0
    if ($0 ~ /"val_loss":/) {
        vl[s] = num("val_loss"); vb[s] = num("val_bpb"); vt[s] = num("tokens"); isv[s] = 1
        if (vb[s] != "") hasbpb = 1
    } else if ($0 ~ /"loss":/) {
        tl[s] = num("loss"); tr[s] = num("lr"); tt[s] = num("tokens"); ist[s] = 1
        if ($0 ~ /"zloss_in_loss":true/) withz = 1
        if ($0 ~ /"skipped":true/) sk[s] = 1; else delete sk[s]
    } else { bad++ }
    if (s > maxs) maxs = s
}
END {
    nt = 0; nv = 0; ema = ""
    for (s = 0; s <= maxs; s++) {
        if (ist[s] && !sk[s]) {
            ema = (ema == "") ? tl[s] : 0.9 * ema + 0.1 * tl[s]
            printf "%d %s %s %.6f %s\n", s, (tt[s] == "" ? "NaN" : tt[s]), tl[s], ema, (tr[s] == "" ? "NaN" : tr[s]) > tdat
            nt++
        }
        if (isv[s]) {
            printf "%d %s %s %s\n", s, (vt[s] == "" ? "NaN" : vt[s]), vl[s], (vb[s] == "" ? "NaN" : vb[s]) > vdat
            nv++
        }
    }
    printf "%d %d %d %d %d\n", nt, nv, withz + 0, hasbpb + 0, bad + 0 > meta
}' "$in"
read -r nt nv withz hasbpb nbad < "$tmp/meta"
[ "$nt" -gt 0 ] || die "'$in' has no training steps (is it a train_gpt -ml log?)"
[ "$nbad" -eq 0 ] || echo "note: $nbad lines of '$in' are not step or validation records; skipped" >&2
[ -f "$tmp/val.dat" ] || : > "$tmp/val.dat"
tlabel="train loss"
[ "$withz" -eq 1 ] && tlabel="train loss+z"

# gnuplot: two panels, 1200 x 900
{
    echo "set terminal pngcairo size 1200,900 font ',11' noenhanced"
    echo "set output '$tmp/plot.png'"
    echo "set multiplot layout 2,1 title \"$(printf '%s' "$title" | tr -d '"\\')\""
    echo "set grid; set key top right opaque box; set ylabel 'loss (nats)'"
    echo "set xlabel 'step'; set y2label 'learning rate'; set y2tics; set ytics nomirror; set format y2 '%.0e'"
    printf "plot '%s' using 1:3 with lines lc rgb '#b0c4de' title '%s', " "$tmp/train.dat" "$tlabel"
    printf "'' using 1:4 with lines lw 2 lc rgb '#1f4e9c' title '%s (smoothed)'" "$tlabel"
    [ "$nv" -gt 0 ] && printf ", '%s' using 1:3 with linespoints lw 2 pt 7 lc rgb '#d62728' title 'val loss'" "$tmp/val.dat"
    printf ", '%s' using 1:5 axes x1y2 with lines dt 2 lc rgb '#2ca02c' title 'lr'\n" "$tmp/train.dat"
    echo "set xlabel 'tokens'; set format x '%.1s%c'; unset y2label; unset y2tics; set ytics mirror"
    if [ "$hasbpb" -eq 1 ]; then echo "set y2label 'val bits per byte'; set y2tics; set ytics nomirror; set format y2 '%.2f'"; fi
    printf "plot '%s' using 2:4 with lines lw 2 lc rgb '#1f4e9c' title '%s (smoothed)'" "$tmp/train.dat" "$tlabel"
    [ "$nv" -gt 0 ] && printf ", '%s' using 2:3 with linespoints lw 2 pt 7 lc rgb '#d62728' title 'val loss'" "$tmp/val.dat"
    [ "$hasbpb" -eq 1 ] && printf ", '%s' using 2:4 axes x1y2 with linespoints dt 3 pt 5 lc rgb '#9467bd' title 'val bpb'" "$tmp/val.dat"
    echo
    echo "unset multiplot"
} > "$tmp/plot.gp"
gnuplot "$tmp/plot.gp" 2> "$tmp/gp.err" || die "gnuplot failed: $(head -n 3 "$tmp/gp.err")"
[ -s "$tmp/plot.png" ] || die "gnuplot wrote no image"
if [ -n "${PLOT_KEEP:-}" ]; then mkdir -p "$PLOT_KEEP" && cp "$tmp/train.dat" "$tmp/val.dat" "$tmp/plot.gp" "$PLOT_KEEP/"; fi
mkdir -p "$(dirname "$out")"
mv -f "$tmp/plot.png" "$out.tmp.$$" && mv -f "$out.tmp.$$" "$out"
echo "plot: $out ($nt training steps, $nv validations)"
