#!/usr/bin/env bash
# run_tests.sh: runs each test command given as an argument, shows its output,
# and adds up the "N passed, M failed" line each one prints. A command that
# exits non-zero without such a line counts as one failure. The last line is the
# total, in the plain form CI reads: "N passed, M failed".
#   usage: test/run_tests.sh "./test_gpt" "./test_dataloader" ...
passed=0
failed=0
for cmd in "$@"; do
    echo "=== $cmd"
    t0=$SECONDS
    out=$(bash -c "$cmd" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    echo "=== $((SECONDS - t0)) s: $cmd"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -n "$line" ]; then
        p=$(echo "$line" | awk '{print $1}')
        f=$(echo "$line" | awk '{print $3}')
        passed=$((passed + p))
        failed=$((failed + f))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            echo "FAIL '$cmd' exited with status $rc"
            failed=$((failed + 1))
        fi
    elif [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
    else
        echo "FAIL '$cmd' exited with status $rc"
        failed=$((failed + 1))
    fi
done
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
