#!/usr/bin/env bash
# test_mpi.sh: data-parallel training of the CPU trainer under mpirun, on
# synthetic shards made by ./gen_shard (docs/distributed.md):
#   - mpirun -np 1 is bit-identical to a plain run;
#   - P ranks with -b B log the same losses, gradient norms and validation
#     losses as one process with -b P*B, to a relative 1e-5 (plus 1e-6 absolute,
#     the 6 decimals of the JSONL metrics): with P = 2 without clipping, with
#     gradient accumulation and clipping active, and with P = 3 (uneven shards);
#   - a 2-rank run stopped at a checkpoint and resumed ends with bit-identical
#     losses, model file and per-rank state files; -nk with 2 ranks;
#   - resuming with another process count is refused with a one-line error;
#   - ranks started with different flags stop with a one-line error, non-zero;
#   - a rank that fails (die) or is killed with SIGKILL ends the whole job,
#     non-zero, within bounded time (SIGKILL: 30 s; mpi() caps every run at 120 s).
# Skipped (0 failed) when mpirun is missing or train_gpt was built without MPI.
#   usage: bash test/test_mpi.sh ./train_gpt     (run from the repository root)
set -u
TRAIN=${1:-./train_gpt}
. test/lib.sh

command -v mpirun > /dev/null || skip "mpirun not found (apt-get install openmpi-bin libopenmpi-dev), multi-process tests not run"
"$TRAIN" --help 2>&1 | grep -q "built with MPI" \
    || skip "$TRAIN was built without MPI (no working mpicc at build time), multi-process tests not run"
setup_mpirun

make_workdir mpi
make_tiny_shards
# -sh 0: with P ranks reading B each, sample i*P + r is the r-th B x T block of
# the single process's P*B sample i, so both see exactly the same tokens
M="-e d2 -vs 512 -ms 64 -t 32 -i $W/tr_*.bin -j $W/va_*.bin -v 3 -m 2 -l 1e-3 -u 2 -sh 0"

# 1. mpirun -np 1 is the plain program, bit for bit
"$TRAIN" $M -b 4 -x 4 -o "$W/p1" > "$W/p1.txt" 2>&1 || bad "plain run failed: $(tail -3 "$W/p1.txt")"
mpi -np 1 "$TRAIN" $M -b 4 -x 4 -o "$W/m1" > "$W/m1.txt" 2>&1 || bad "mpirun -np 1 failed: $(tail -3 "$W/m1.txt")"
if [ -n "$(losses "$W/p1.txt")" ] && diff <(losses "$W/p1.txt") <(losses "$W/m1.txt") > /dev/null &&
   cmp -s "$W/p1/model_00000004.bin" "$W/m1/model_00000004.bin"; then
    ok "mpirun -np 1: losses and model file identical to a plain run"
else
    bad "mpirun -np 1 differs from a plain run: $(diff <(losses "$W/p1.txt") <(losses "$W/m1.txt") | head -4)"
fi

# 2. two ranks x B 2 == one process x B 4: no clipping
"$TRAIN" $M -b 4 -x 6 -gc 0 -ml "$W/e1.jsonl" > "$W/e1.txt" 2>&1 || bad "1-process run failed: $(tail -3 "$W/e1.txt")"
mpi -np 2 "$TRAIN" $M -b 2 -x 6 -gc 0 -ml "$W/e2.jsonl" > "$W/e2.txt" 2>&1 || bad "2-rank run failed: $(tail -3 "$W/e2.txt")"
grep -q "processes 2" "$W/e2.txt" && ok "2-rank run reports 2 processes" || bad "2-rank run: $(grep batch "$W/e2.txt")"
compare_metrics "2 ranks x B2 vs 1 x B4, no clipping, 6 steps" "$W/e1.jsonl" "$W/e2.jsonl"

# 3. gradient accumulation (2 micro-steps) with clipping active (norms ~5 > 0.5)
"$TRAIN" $M -b 4 -x 6 -d 256 -gc 0.5 -ml "$W/g1.jsonl" > "$W/g1.txt" 2>&1 || bad "1-process accum run failed: $(tail -3 "$W/g1.txt")"
mpi -np 2 "$TRAIN" $M -b 2 -x 6 -d 256 -gc 0.5 -ml "$W/g2.jsonl" > "$W/g2.txt" 2>&1 || bad "2-rank accum run failed: $(tail -3 "$W/g2.txt")"
grep -q "grad accum 2" "$W/g2.txt" && ok "2-rank run with -d 256 accumulates 2 micro-steps" || bad "accum: $(grep batch "$W/g2.txt")"
compare_metrics "2 ranks, grad accum 2, clipping at 0.5 active" "$W/g1.jsonl" "$W/g2.jsonl" 0.5

# 4. three ranks: the parameter count does not split evenly (uneven ZeRO-1 shards)
"$TRAIN" $M -b 6 -x 5 -ml "$W/t1.jsonl" > "$W/t1.txt" 2>&1 || bad "1-process B6 run failed: $(tail -3 "$W/t1.txt")"
mpi -np 3 "$TRAIN" $M -b 2 -x 5 -ml "$W/t3.jsonl" > "$W/t3.txt" 2>&1 || bad "3-rank run failed: $(tail -3 "$W/t3.txt")"
nparams=$(sed -n 's/^parameters: \([0-9]*\).*/\1/p' "$W/t1.txt")
compare_metrics "3 ranks x B2 vs 1 x B6 ($nparams parameters, $((nparams % 3)) left over by 3)" "$W/t1.jsonl" "$W/t3.jsonl"

# 5. resume of a 2-rank run: stopped after checkpoint 4, resumed, bit-identical
check_resume_2ranks 1
mpi -np 2 "$TRAIN" $M -b 2 -x 8 -n 2 -nk 2 -o "$W/k" > /dev/null 2>&1
[ "$(ls "$W/k" | tr '\n' ' ')" = "model_00000006.bin model_00000008.bin state_00000006_00000.bin state_00000006_00001.bin state_00000008_00000.bin state_00000008_00001.bin " ] \
    && ok "-nk 2 with 2 ranks keeps the two newest checkpoints, every rank's state" || bad "-nk 2 with 2 ranks left: $(ls "$W/k" | tr '\n' ' ')"

# 6. resume with another process count: refused, one line
"$TRAIN" $M -b 2 -x 8 -n 4 -o "$W/a" -y 1 > "$W/w1.txt" 2> "$W/w1.err"
rc=$?
first=$(head -n 1 "$W/w1.err")
if [ $rc -ne 0 ] && echo "$first" | grep -q "^error: .*written by 2 process(es); this run has 1"; then
    ok "resume of a 2-rank checkpoint by 1 process refused -> exit $rc: $first"
else
    bad "resume 2 -> 1: exit $rc, $(head -c 300 "$W/w1.err")"
fi
mpi -np 2 "$TRAIN" $M -b 2 -x 8 -o "$W/p1" -y 1 > "$W/w2.txt" 2> "$W/w2.err"
rc=$?
if [ $rc -ne 0 ] && grep -q "^error: .*written by 1 process(es); this run has 2" "$W/w2.err"; then
    ok "resume of a 1-process checkpoint by 2 ranks refused -> exit $rc"
else
    bad "resume 1 -> 2: exit $rc, $(head -c 300 "$W/w2.err")"
fi

# 7. ranks started with different flags: every rank stops with one clear line
t0=$(date +%s)
mpi -np 1 "$TRAIN" $M -b 2 -x 4 : -np 1 "$TRAIN" $M -b 4 -x 4 > "$W/x.txt" 2> "$W/x.err"
rc=$?
n=$(grep -c "^error: the 2 processes disagree on the batch flags" "$W/x.err")
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$n" -ge 1 ]; then
    ok "mismatched -b across ranks -> exit $rc in $(( $(date +%s) - t0 )) s, $n rank(s) said: $(grep -m1 '^error' "$W/x.err")"
else
    bad "mismatched -b: exit $rc, $(head -c 300 "$W/x.err")"
fi
mpi -np 1 "$TRAIN" $M -b 2 -x 4 : -np 1 "$TRAIN" $M -b 2 -x 4 -kv 1 > "$W/x.txt" 2> "$W/x.err"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "^error: the 2 processes disagree on the model flags" "$W/x.err"; then
    ok "mismatched model flags across ranks -> exit $rc"
else
    bad "mismatched -kv: exit $rc, $(head -c 300 "$W/x.err")"
fi

# srun without an MPI plugin would start N copies that cannot join: refused
SLURM_PROCID=0 SLURM_STEP_NUM_TASKS=4 "$TRAIN" $M -b 2 -x 2 > "$W/s.txt" 2> "$W/s.err"
rc=$?
if [ $rc -ne 0 ] && head -n 1 "$W/s.err" | grep -q "^error: started as one of 4 tasks"; then
    ok "one of 4 srun tasks with no MPI to join -> exit $rc: $(head -n 1 "$W/s.err")"
else
    bad "srun without MPI plugin: exit $rc, $(head -c 300 "$W/s.err")"
fi

# 8. one rank stops with an error while the other waits in a collective: rank 1's
# state file is missing, rank 0 resumes and waits in the all-gather of the weights
mkdir -p "$W/r" && cp "$W/a/model_00000004.bin" "$W/a/state_00000004_00000.bin" "$W/r/"
t0=$(date +%s)
mpi -np 2 "$TRAIN" $M -b 2 -x 8 -o "$W/r" -y 1 > "$W/r.txt" 2> "$W/r.err"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "^error: cannot open .*state_00000004_00001.bin" "$W/r.err"; then
    ok "one rank fails (its state file is missing) -> the job ended with exit $rc in $(( $(date +%s) - t0 )) s"
else
    bad "one rank failing: exit $rc, $(head -c 300 "$W/r.err")"
fi

# 9. one rank killed with SIGKILL mid-run: the job must end, non-zero, within 30 s
check_killed_rank train_gpt 100 1 -np 2 "$TRAIN" $M -b 2 -x 100000 -v 0

finish
