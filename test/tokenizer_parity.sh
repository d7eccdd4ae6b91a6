#!/usr/bin/env bash
# tokenizer_parity.sh: our C tokenizer against gpt-3-encoder's own Encoder.js,
# run with node on a broad set of strings plus the README and the docs (see
# test/tokenizer_parity.js). Fetches gpt-3-encoder with npm when missing.
#   usage: bash test/tokenizer_parity.sh ./test_tokenizer_parity
set -euo pipefail
BIN=${1:-./test_tokenizer_parity}
command -v node > /dev/null || { echo "error: node is not installed -- apt-get install nodejs npm"; echo "0 passed, 1 failed"; exit 1; }
bash data/get_tokenizer.sh > /dev/null
. test/lib.sh
make_workdir parity
node test/tokenizer_parity.js data/cache/gpt-3-encoder "$W/cases.bin" "$W/classes.bin" README.md docs/*.md train_gpt.c
"$BIN" data/gpt2/tokenizer.bin "$W/cases.bin" "$W/classes.bin" "$(node -p process.versions.unicode)"
