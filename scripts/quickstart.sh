#!/usr/bin/env bash
# quickstart.sh: the README's main job, one command (make quickstart):
# installs what is missing, prepares the default corpus (npm nlp-corpus), trains
# its own byte-level BPE tokenizer on the training split (seconds) and shards the
# corpus with it, builds, trains a small model (the CPU reference, or the GPU
# trainer when a GPU and train_gpt.cu's build are present), prints the validation
# loss and bits per byte, draws the loss curves (scripts/plot.sh), then samples
# continuations of a few fixed prompts. The vocabulary and model were chosen by
# measurement: the lowest validation bits per byte in the same CPU time
# (docs/perf.md). Running it again reuses the prepared data, the tokenizer and
# the finished checkpoint.
#   usage: bash scripts/quickstart.sh        (env STEPS, THREADS, VOCAB to override)
set -euo pipefail
cd "$(dirname "$0")/.."
VOCAB=${VOCAB:-4096}
STEPS=${STEPS:-}  # default: 1800 on the CPU, 800 on the GPU (B 32 x T 512: 5 epochs of the corpus)
THREADS=${THREADS:-$(nproc)}
TOK=data/nlp_bpe$VOCAB
OUT=out/quickstart/d2_bpe$VOCAB
t_start=$(date +%s)

say() { printf '\n== %s\n' "$*"; }

# 1. tools
need=""
command -v gcc > /dev/null || need="$need build-essential"
command -v make > /dev/null || need="$need make"
command -v node > /dev/null || need="$need nodejs"
command -v npm > /dev/null || need="$need npm"
# the loss plot only: without gnuplot (and no root to install it) the job goes on without it
plot=1
if ! command -v gnuplot > /dev/null; then
    if [ "$(id -u)" -eq 0 ]; then need="$need gnuplot-nox"; else plot=0; fi
fi
if [ -n "$need" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        say "installing:$need"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need > /dev/null
    else
        echo "error: missing tools:$need -- install them with: sudo apt-get install$need" >&2
        exit 1
    fi
fi
command -v gnuplot > /dev/null || plot=0

# 2. data (idempotent: reuses what is already prepared)
say "preparing the default corpus"
bash data/prepare.sh

# 3. our own tokenizer, trained on the training split only, and the corpus in its tokens
make -s train_gpt infer_cpu make_shards train_tokenizer > /dev/null
if [ ! -f "$TOK/.complete" ]; then
    say "training a $VOCAB-token BPE tokenizer on the training text, sharding the corpus with it"
    rm -rf "$TOK"
    tmp=$(mktemp -d "$TOK.tmp.XXXXXX")
    OMP_NUM_THREADS=$THREADS ./train_tokenizer -i data/nlp/nlp_train.txt -vs "$VOCAB" -o "$tmp/tokenizer.bin"
    ./make_shards -tk "$tmp/tokenizer.bin" --jsonl data/cache/docs.jsonl -v 2000 -o "$tmp/nlp" 2> /dev/null | tail -n 1
    chmod 755 "$tmp"
    mv "$tmp" "$TOK"
    touch "$TOK/.complete"
fi
say "unigram baseline of the training tokens"
./make_shards --stats "$TOK/nlp_train_*.bin" | tail -n 3

# 4. build and train
use_gpu=0
if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1 && [ -f train_gpt.cu ]; then
    if make -s train_gpt_cuda > /dev/null 2>&1; then use_gpu=1; fi
fi
DATA=(-i "$TOK/nlp_train_*.bin" -j "$TOK/nlp_val_*.bin" -tk "$TOK/tokenizer.bin")
if [ "$use_gpu" -eq 1 ]; then
    STEPS=${STEPS:-800}
    OUT=out/quickstart/d6_bpe$VOCAB
    say "training on the GPU: d6, $STEPS steps"
    ./train_gpt_cuda -e d6 -vs "$VOCAB" "${DATA[@]}" -b 32 -t 512 \
        -x "$STEPS" -l 3e-3 -u 30 -q 0.05 -v 250 -m -1 -o "$OUT" -n "$STEPS" -y 1 -ml "$OUT/metrics.jsonl"
else
    # d2 (2 layers, 256 wide) with a 4096-token vocabulary, 16 x 128 tokens a step at
    # lr 6e-3: the lowest validation bits per byte of the configurations tried in the
    # same CPU time, GPT-2's 50257-token vocabulary among them (docs/perf.md)
    STEPS=${STEPS:-1800}
    say "training on the CPU ($THREADS threads): d2, vocabulary $VOCAB, $STEPS steps of 16 x 128 tokens"
    OMP_NUM_THREADS=$THREADS ./train_gpt -e d2 -vs "$VOCAB" "${DATA[@]}" \
        -b 16 -t 128 -x "$STEPS" -l 6e-3 -u 20 -q 0.05 -v 250 -m -1 -o "$OUT" -n "$STEPS" -y 1 -ml "$OUT/metrics.jsonl"
fi
model=$(printf '%s/model_%08d.bin' "$OUT" "$STEPS")

# 5. the loss plot
if [ "$plot" -eq 1 ]; then
    say "loss curves"
    bash scripts/plot.sh "$OUT/metrics.jsonl" "$OUT/loss.png" "make quickstart: $(basename "$OUT"), $STEPS steps"
else
    say "no loss plot: gnuplot is not installed (sudo apt-get install gnuplot-nox; then bash scripts/plot.sh $OUT/metrics.jsonl $OUT/loss.png)"
fi

# 6. samples
say "samples (temperature 0.8, top-k 40)"
OMP_NUM_THREADS=$THREADS ./infer_cpu -e "$model" -tk "$TOK/tokenizer.bin" -pf scripts/prompts.txt -g 40 -st 0.8 -sk 40 -rs 7
say "done in $(( $(date +%s) - t_start )) s; the model is $model, its tokenizer $TOK/tokenizer.bin"
