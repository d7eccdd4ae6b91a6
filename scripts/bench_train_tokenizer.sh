#!/usr/bin/env bash
# bench_train_tokenizer.sh: ./train_tokenizer next to sentencepiece's BPE trainer
# (spm_train, Debian package `sentencepiece`), in one run on the same corpus: the
# project's default corpus (the text fields of data/cache/docs.jsonl, written by
# data/prepare.sh, one document per line), vocabulary 8192, 2 threads. Prints the
# wall time and MB/s of each (the best of REPS runs) and the bytes per token each
# tokenizer gets on the corpus, with the load average before and after.
#   usage: bash scripts/bench_train_tokenizer.sh
#   env:   REPS=3, VS=8192, THREADS=2, TT=path to train_tokenizer (default: make train_tokenizer),
#          OUT=work directory (default /tmp/llmc_bench_tt)
set -u
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
VS=${VS:-8192}
THREADS=${THREADS:-2}
OUT=${OUT:-/tmp/llmc_bench_tt}
if [ -z "${TT:-}" ]; then
    make -s train_tokenizer make_shards > /dev/null || { echo "error: build failed"; exit 1; }
    TT=./train_tokenizer
fi
command -v spm_train > /dev/null || { echo "error: spm_train not found -- install it with: apt-get install sentencepiece"; exit 1; }
[ -f data/cache/docs.jsonl ] || bash data/prepare.sh > /dev/null || { echo "error: data/prepare.sh failed"; exit 1; }
[ -x ./make_shards ] || make -s make_shards > /dev/null || { echo "error: cannot build make_shards"; exit 1; }
mkdir -p "$OUT"
C="$OUT/corpus.txt"
node -e '
const fs = require("fs");
const out = [];
for (const line of fs.readFileSync(process.argv[1], "utf8").split("\n")) {
    if (line.trim() !== "") out.push(JSON.parse(line).text.replace(/\n/g, " "));
}
fs.writeFileSync(process.argv[2], out.join("\n") + "\n");
' data/cache/docs.jsonl "$C" || { echo "error: could not write the corpus"; exit 1; }
bytes=$(stat -c %s "$C")
docs=$(wc -l < "$C")
now() { date +%s.%N; }
mbs() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%.1f", b / 1e6 / t }'; }
echo "corpus: $C, $bytes bytes, $docs documents (one per line) | vocab $VS | threads $THREADS | $(nproc) cores"
echo "load before: $(uptime | sed 's/.*load average/load average/')"
best_ours=999999; best_spm=999999
for ((r = 1; r <= REPS; r++)); do
    t0=$(now)
    OMP_NUM_THREADS=$THREADS "$TT" -i "$C" -vs "$VS" -o "$OUT/ours.bin" > "$OUT/ours.log" 2>&1 || { cat "$OUT/ours.log"; exit 1; }
    t1=$(now)
    spm_train --input="$C" --model_prefix="$OUT/spm" --vocab_size="$VS" --model_type=bpe --num_threads="$THREADS" \
        --character_coverage=1.0 --minloglevel=1 > "$OUT/spm.log" 2>&1 || { tail -5 "$OUT/spm.log"; exit 1; }
    t2=$(now)
    to=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    ts=$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')
    echo "run $r: train_tokenizer $(printf '%.2f' "$to") s ($(mbs "$to") MB/s) | spm_train $(printf '%.2f' "$ts") s ($(mbs "$ts") MB/s)"
    best_ours=$(awk -v a="$best_ours" -v b="$to" 'BEGIN { print (b < a ? b : a) }')
    best_spm=$(awk -v a="$best_spm" -v b="$ts" 'BEGIN { print (b < a ? b : a) }')
done
# bytes per token on the corpus: ours through make_shards (minus its EOT per document), spm through spm_encode
ours_tok=$(./make_shards -tk "$OUT/ours.bin" -o "$OUT/shards/c" --lines "$C" 2> /dev/null | sed -n 's/.* tokens \([0-9]*\) (.*/\1/p')
ours_tok=$((ours_tok - docs))
spm_tok=$(spm_encode --model="$OUT/spm.model" --output_format=id < "$C" | wc -w)
echo "load after: $(uptime | sed 's/.*load average/load average/')"
echo "train_tokenizer: best $(printf '%.2f' "$best_ours") s = $(mbs "$best_ours") MB/s | $(awk -v b="$bytes" -v t="$ours_tok" 'BEGIN { printf "%.2f", b / t }') bytes/token"
echo "spm_train (bpe): best $(printf '%.2f' "$best_spm") s = $(mbs "$best_spm") MB/s | $(awk -v b="$bytes" -v t="$spm_tok" 'BEGIN { printf "%.2f", b / t }') bytes/token"
echo "speed-up: $(awk -v a="$best_spm" -v b="$best_ours" 'BEGIN { printf "%.1f", a / b }')x"
