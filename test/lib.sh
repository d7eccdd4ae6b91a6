#!/usr/bin/env bash
# lib.sh: what the shell tests share, sourced by each (`. test/lib.sh` from the
# repository root, after `set -u`): the pass/fail counters and their summary
# line, a temporary work directory removed on exit, the one-line-error check,
# the synthetic shards and small models the tests train on, and the checks that
# the CPU and GPU samplers (infer_cpu, infer) must both pass.
#   defines: pass, fail, ok, bad, finish, skip, make_workdir, need_tokenizer, expect_fail,
#            make_tiny_shards, losses, compare_metrics, make_infer_models,
#            check_infer_seeds, check_infer_input_modes, check_infer_bad_input,
#            and for the MPI tests setup_mpirun, MPIRUN, mpi, rank_pids,
#            check_resume_2ranks, check_killed_rank
# Uses: TRAIN (the CPU trainer, default ./train_gpt), GEN (default ./gen_shard),
# and, where a function says so, INF, M, TK, W and MPI_TIMEOUT.
TRAIN=${TRAIN:-./train_gpt}
GEN=${GEN:-./gen_shard}
pass=0
fail=0
ok()  { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

# finish: the summary line run_tests.sh adds up; the last command of a test, so
# that the script's exit status says whether anything failed
finish() {
    echo "$pass passed, $fail failed"
    [ $fail -eq 0 ]
}

# skip <reason>: the test cannot run here: says why, reports nothing run, exits 0
skip() { echo "skip: $1"; echo "0 passed, 0 failed"; exit 0; }

# make_workdir <name>: W, a fresh directory under /tmp, removed when the test exits
make_workdir() {
    W=$(mktemp -d "/tmp/llmc_$1_XXXXXX")
    trap 'rm -rf "$W"' EXIT
}

# need_tokenizer: the GPT-2 tokenizer in TK (fetched once into data/), or stop
# with one failure when it cannot be had
need_tokenizer() {
    bash data/get_tokenizer.sh > /dev/null || { echo "0 passed, 1 failed"; exit 1; }
    TK=data/gpt2/tokenizer.bin
}

# expect_fail <description> <regex> <command...>: the command must exit non-zero
# (not by a signal) with an "error: " line that matches the regex: the first
# such line of stderr, or with EXPECT_FIRST_LINE=1 stderr's first line itself
# (programs that print nothing else to stderr before failing)
expect_fail() {
    local desc=$1 pat=$2
    shift 2
    "$@" > "$W/out.txt" 2> "$W/err.txt"
    local rc=$?
    local first
    if [ "${EXPECT_FIRST_LINE:-0}" = 1 ]; then
        first=$(head -n 1 "$W/err.txt")
    else
        first=$(grep -m1 '^error: ' "$W/err.txt")
    fi
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && echo "$first" | grep -q '^error: ' && echo "$first" | grep -qE -e "$pat"; then
        ok "$desc -> exit $rc: $first"
    else
        bad "$desc -> exit $rc, stderr: $(head -c 300 "$W/err.txt")"
    fi
}

# make_tiny_shards: $W/tr_000.bin (40000 tokens) and $W/va_000.bin (4000), vocab 512
make_tiny_shards() {
    $GEN "$W/tr_000.bin" 40000 512 1 > /dev/null && $GEN "$W/va_000.bin" 4000 512 2 > /dev/null \
        || { echo "gen_shard failed"; exit 1; }
}

# losses <log>: the step lines of a training log without the timing columns
losses() { grep -E '^step +[0-9]+/[0-9]+ \| loss' "$1" | sed 's/ | [0-9.]* ms.*//'; }

# compare_metrics <desc> <one.jsonl> <many.jsonl> [min norm]: every loss,
# grad_norm and val_loss equal to rel 1e-5 + 1e-6; with a min norm, every norm
# must exceed it (clipping was active)
compare_metrics() {
    local desc=$1 a=$2 b=$3 minnorm=${4:-0}
    local res
    res=$(paste -d' ' <(tr -d '{}"' < "$a" | tr ',:' '  ') <(tr -d '{}"' < "$b" | tr ',:' '  ') | awk -v mn="$minnorm" '
        { n = NF / 2; if (NF % 2 != 0 || n < 2) { bad = 1; next }
          for (i = 1; i <= n; i += 2) {
              if ($i != $(i + n)) { bad = 1; next }
              if ($i == "loss" || $i == "grad_norm" || $i == "val_loss") {
                  x = $(i + 1); y = $(i + 1 + n); d = x - y; if (d < 0) d = -d
                  m = (x < 0 ? -x : x); if ((y < 0 ? -y : y) > m) m = (y < 0 ? -y : y)
                  r = d / (m > 0 ? m : 1); if (r > maxrel) maxrel = r
                  if (d > 1e-5 * m + 1e-6) bad = 1
                  cnt++
                  if ($i == "grad_norm" && x <= mn) low = 1
              } } }
        END { printf "%d values compared, max rel diff %.2e%s%s\n", cnt, maxrel, bad ? " MISMATCH" : "",
              low ? " NORM NOT ABOVE CLIP" : "" }')
    if [ "$(wc -l < "$a")" -eq "$(wc -l < "$b")" ] && [ "$(wc -l < "$a")" -gt 4 ] &&
       ! echo "$res" | grep -qE 'MISMATCH|NORM NOT'; then
        ok "$desc: $res (tolerance rel 1e-5 + 1e-6)"
    else
        bad "$desc: $res; $(wc -l < "$a") vs $(wc -l < "$b") lines"
    fi
}

# make_infer_models [untied]: the sampler tests' models, trained here for a few
# steps on random tokens: M ($W/m, the GPT-2 vocab, T 32), with `untied` also
# $W/u (untied head, parallel block), and $W/s (vocab 512, which the GPT-2
# tokenizer does not fit); sets TK
make_infer_models() {
    need_tokenizer
    $GEN "$W/t_000.bin" 3000 50257 5 > /dev/null
    $TRAIN -e d2 -ms 64 -b 1 -t 32 -x 2 -v 0 -i "$W/t_*.bin" -o "$W/m" > /dev/null 2>&1 || bad "training the test model failed"
    M="$W/m/model_00000002.bin"
    if [ "${1:-}" = untied ]; then
        $TRAIN -e d2 -ms 64 -te 0 -pb 1 -b 1 -t 32 -x 2 -v 0 -i "$W/t_*.bin" -o "$W/u" > /dev/null 2>&1 \
            || bad "training the untied model failed"
    fi
    $GEN "$W/s_000.bin" 3000 512 5 > /dev/null
    $TRAIN -e d2 -vs 512 -ms 64 -b 1 -t 32 -x 1 -v 0 -i "$W/s_*.bin" -o "$W/s" > /dev/null 2>&1
}

# check_infer_seeds [sampling flags...]: $INF on $M with the same seed twice gives
# the same text, with another seed other text
check_infer_seeds() {
    $INF -e "$M" -tk $TK -p "Hello" -g 20 -rs 5 "$@" -q 1 > "$W/a1.txt" 2>&1
    $INF -e "$M" -tk $TK -p "Hello" -g 20 -rs 5 "$@" -q 1 > "$W/a2.txt" 2>&1
    $INF -e "$M" -tk $TK -p "Hello" -g 20 -rs 6 "$@" -q 1 > "$W/a3.txt" 2>&1
    cmp -s "$W/a1.txt" "$W/a2.txt" && ok "the same seed gives the same text" || bad "same seed, different text"
    cmp -s "$W/a1.txt" "$W/a3.txt" && bad "another seed gives the same text" || ok "another seed gives other text"
}

# check_infer_input_modes: $INF reads standard input with -it 1, and -tr 1 keeps
# the end of a prompt too long for the model (sets `long`, that prompt)
check_infer_input_modes() {
    printf 'from stdin\n' | $INF -e "$M" -tk $TK -it 1 -g 4 -st 0 > /dev/null 2> "$W/it.err"
    grep -q "prompt tokens 3 " "$W/it.err" && ok "interactive mode reads standard input" || bad "interactive: $(cat "$W/it.err")"
    long=$(printf 'word %.0s' $(seq 1 80))
    $INF -e "$M" -tk $TK -p "$long" -g 8 -tr 1 -q 1 > /dev/null 2>&1 && ok "-tr 1 keeps the end of a too-long prompt" || bad "-tr 1 failed"
}

# check_infer_bad_input: every kind of bad input to $INF is a one-line error
# (after check_infer_input_modes; needs the prompt file $W/p.txt)
check_infer_bad_input() {
    expect_fail "prompt longer than max_seq_len - g" "prompt has [0-9]+ tokens" $INF -e "$M" -tk $TK -p "$long" -g 8
    expect_fail "empty prompt" "empty prompt" $INF -e "$M" -tk $TK -p "" -g 8
    expect_fail "invalid UTF-8 prompt" "not valid UTF-8" $INF -e "$M" -tk $TK -p $'ab\xffcd' -g 8
    expect_fail "tokenizer does not match the model" "vocab" $INF -e "$W/s/model_00000001.bin" -tk $TK -p "x"
    head -c 3000 "$M" > "$W/trunc.bin"
    expect_fail "truncated checkpoint" "trunc.bin.*truncated" $INF -e "$W/trunc.bin" -tk $TK -p "x"
    { head -c 4 "$M"; printf '\x09\x00\x00\x00'; tail -c +9 "$M"; } > "$W/v9.bin"
    expect_fail "unknown checkpoint version" "v9.bin.*version" $INF -e "$W/v9.bin" -tk $TK -p "x"
    expect_fail "missing tokenizer" "nope.bin" $INF -e "$M" -tk "$W/nope.bin" -p "x"
    expect_fail "no model given" "-e" $INF -p "x"
    expect_fail "two prompt sources" "exactly one" $INF -e "$M" -p "x" -pf "$W/p.txt"
    expect_fail "bad top-p" "-sp" $INF -e "$M" -p "x" -sp 0
}

# setup_mpirun: MPIRUN, the launcher as an array. Open MPI in a container: allow
# root, allow more ranks than cores (CI has 2), shared memory between the ranks,
# no network but loopback. Each rank one thread (OMP_NUM_THREADS=1).
setup_mpirun() {
    MPIRUN=(mpirun)
    if mpirun --version 2>&1 | grep -q "Open MPI"; then
        MPIRUN+=(--oversubscribe)
        if [ "$(id -u)" -eq 0 ]; then MPIRUN+=(--allow-run-as-root); fi
        export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
        export OMPI_MCA_btl_tcp_if_include=${OMPI_MCA_btl_tcp_if_include:-lo}
        export OMPI_MCA_oob_tcp_if_include=${OMPI_MCA_oob_tcp_if_include:-lo}
    fi
    export OMP_NUM_THREADS=1
}

# mpi <mpirun arguments...>: $MPIRUN capped at MPI_TIMEOUT seconds (default 120;
# exit 124 when the cap ends it)
mpi() { timeout "${MPI_TIMEOUT:-120}" "${MPIRUN[@]}" "$@"; }

# rank_pids <pid> <name>: the pids whose parent is <pid> (mpirun) and whose
# command line names <name> (the trainer), one a line
rank_pids() {
    local f pid ppid
    for f in /proc/[0-9]*/stat; do
        pid=${f#/proc/}; pid=${pid%/stat}
        ppid=$(awk '{sub(/^.*\) /, ""); print $2}' "$f" 2> /dev/null)
        if [ "$ppid" = "$1" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null | grep -q "$2"; then echo "$pid"; fi
    done
}

# check_resume_2ranks <check tmp 0|1> [flags...]: a 2-rank run of $TRAIN $M with
# the flags, checkpoints every 4 steps to step 8 in $W/a, must leave one state
# file per rank, each smaller than the 1-process state file in $W/p1 (with 1,
# and no temp files); resumed from step 4 in $W/b it must log bit-identical
# losses and end with identical model and state files
check_resume_2ranks() {
    local tmpcheck=$1
    shift
    mpi -np 2 "$TRAIN" "$@" $M -b 2 -x 8 -n 4 -o "$W/a" > "$W/a.txt" 2>&1 || bad "2-rank run A failed: $(tail -3 "$W/a.txt")"
    [ -f "$W/a/state_00000004_00000.bin" ] && [ -f "$W/a/state_00000004_00001.bin" ] && [ -f "$W/a/model_00000008.bin" ] &&
        [ "$(stat -c %s "$W/a/state_00000004_00000.bin")" -lt "$(stat -c %s "$W/p1/state_00000004_00000.bin")" ] \
        && ok "2-rank checkpoint: one state file per rank, each holding half the optimizer state" \
        || bad "2-rank checkpoint files: $(ls "$W/a" | tr '\n' ' ')"
    if [ "$tmpcheck" = 1 ]; then
        ls "$W/a" | grep -q tmp && bad "temp files left behind" || ok "no temp files left behind"
    fi
    # the run stopped after checkpoint 4 is run A's directory without its step-8 files
    mkdir -p "$W/b" && cp "$W/a/model_00000004.bin" "$W/a/state_00000004_0000"[01].bin "$W/b/"
    mpi -np 2 "$TRAIN" "$@" $M -b 2 -x 8 -n 4 -o "$W/b" -y 1 > "$W/b.txt" 2>&1 || bad "2-rank resume failed: $(tail -3 "$W/b.txt")"
    if [ "$(losses "$W/b.txt" | wc -l)" -eq 4 ] && diff <(losses "$W/a.txt" | tail -n 4) <(losses "$W/b.txt") > /dev/null; then
        ok "2-rank resume from step 4: steps 5-8 bit-identical"
    else
        bad "2-rank resumed losses differ: $(diff <(losses "$W/a.txt" | tail -n 4) <(losses "$W/b.txt") | head -4)"
    fi
    cmp -s "$W/a/model_00000008.bin" "$W/b/model_00000008.bin" && cmp -s "$W/a/state_00000008_00000.bin" "$W/b/state_00000008_00000.bin" &&
        cmp -s "$W/a/state_00000008_00001.bin" "$W/b/state_00000008_00001.bin" \
        && ok "2-rank resume: final model file and both state files identical" || bad "2-rank resume: final files differ"
}

# check_killed_rank <name> <start tries> <check gone 0|1> <mpirun arguments...>:
# starts $MPIRUN with the arguments (2 ranks of the program <name>, logging to
# $W/kill.txt), waits up to <start tries> x 0.2 s for step 3, kills one rank with
# SIGKILL; mpirun must then end within 30 s, non-zero (with 1, and within 5 s
# more no rank may be left running; a zombie counts as gone)
check_killed_rank() {
    local name=$1 tries=$2 gone=$3
    shift 3
    local mpid pids victim t0 rc dt alive p st
    "${MPIRUN[@]}" "$@" > "$W/kill.txt" 2>&1 &
    mpid=$!
    for _ in $(seq 1 "$tries"); do grep -q '^step *3/' "$W/kill.txt" && break; sleep 0.2; done
    pids=$(rank_pids $mpid "$name")
    victim=$(echo "$pids" | tail -n 1)
    if [ "$(echo "$pids" | wc -w)" -ne 2 ]; then
        bad "killed rank: expected 2 rank processes under mpirun $mpid, found '$pids'"
        kill -9 $mpid $pids 2> /dev/null
        wait $mpid 2> /dev/null
        return
    fi
    t0=$(date +%s)
    kill -9 "$victim"
    for _ in $(seq 1 300); do kill -0 $mpid 2> /dev/null || break; sleep 0.1; done
    if kill -0 $mpid 2> /dev/null; then
        bad "killed rank $victim: mpirun still running after 30 s"
        kill -9 $mpid $pids 2> /dev/null
        wait $mpid 2> /dev/null
        return
    fi
    wait $mpid
    rc=$?
    dt=$(( $(date +%s) - t0 ))
    if [ "$gone" != 1 ]; then
        [ $rc -ne 0 ] && ok "one rank killed -> the job ended with exit $rc after $dt s" || bad "one rank killed -> exit $rc"
        return
    fi
    # mpirun may return while its killed ranks are still being torn down: give them 5 s
    # (a zombie, state Z, counts as gone: in a container nobody may reap it)
    for _ in $(seq 1 50); do
        alive=""
        for p in $pids; do
            st=$(awk '{sub(/^.*\) /, ""); print $1}' "/proc/$p/stat" 2> /dev/null)
            [ -n "$st" ] && [ "$st" != "Z" ] && alive="$alive $p"
        done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    if [ $rc -ne 0 ] && [ -z "$alive" ]; then
        ok "one rank killed -> the job ended with exit $rc after ${dt} s, no rank left running"
    else
        bad "one rank killed -> exit $rc, still alive:$alive"
    fi
}
