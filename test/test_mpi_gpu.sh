#!/usr/bin/env bash
# test_mpi_gpu.sh: data-parallel training of the GPU trainer (train_gpt_cuda), on
# synthetic shards made by ./gen_shard (docs/distributed.md), on a GPU or on the
# CPU backend (a build-emu/ trainer, docs/emu.md: every process its own emulated
# device, EMU_DEVICES of them, NCCL carried over MPI by emu/nccl.cpp):
#   - mpirun -np 1 (NCCL when built with it) is bit-identical to a plain run, and
#     so is a job of one rank started without MPI (RANK / WORLD_SIZE and a
#     rendezvous file: the NCCL setup path of clusters without MPI);
#   - 2 ranks with -b B, with the host-staged backend (-cb mpi, ranks may share a
#     GPU) and with NCCL (-cb nccl, one GPU each: on the backend, or on a machine
#     with 2 GPUs), log the same losses, gradient norms and validation losses as one
#     process with -b 2B, -sh 0, within bf16 tolerances: losses rel 1e-2, gradient
#     norms rel 5e-2 (plus 1e-3 absolute); so do 3 ranks (a parameter count that
#     does not split evenly) against one process with -b 3B; the two backends give
#     identical losses on the backend (both reduce in rank order). Not bit-equal to
#     one process: with a different B the matmuls sum the weight gradients over
#     other row blocks, and the stochastically rounded bf16 weights amplify the
#     last-bit differences a little each step;
#   - the 2-rank GPU run against the fp32 CPU trainer's 2-rank run (./train_gpt
#     over MPI) on the same data: the same tolerances;
#   - a 2-rank run stopped at a checkpoint and resumed ends with bit-identical
#     losses, model file and per-rank state files (each half the optimizer state),
#     with each backend;
#   - overlap (-ov 1, the default with NCCL: each layer's gradients reduced on a
#     communication stream during the backward) against -ov 0 (one reduce-scatter
#     after it): bit-identical losses and model files, with gradient accumulation,
#     2 and 3 ranks; in EMU_STREAMS=random mode a missing event wait shows here;
#   - resuming with another process count is refused with comm.h's one line;
#   - ranks started with different flags (-b, -cb or -ov) stop with a one-line error;
#   - NCCL with two ranks on one GPU fails with an error, in bounded time;
#   - one rank killed with SIGKILL ends the job, non-zero, within 30 s (each backend).
# Skipped (0 failed) without mpirun, when train_gpt_cuda was built without MPI, or
# (a GPU build) without a GPU.
#   usage: bash test/test_mpi_gpu.sh ./train_gpt_cuda     (from the repository root)
#          bash test/test_mpi_gpu.sh build-emu/train_gpt_cuda
set -u
TRAIN=${1:-./train_gpt_cuda}
CPU_TRAIN=${CPU_TRAIN:-./train_gpt}
. test/lib.sh

command -v mpirun > /dev/null || skip "mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"
"$TRAIN" --help 2>&1 | grep -q "built with MPI" || skip "$TRAIN was built without MPI"
HAVE_NCCL=0
"$TRAIN" --help 2>&1 | grep -q "default nccl" && HAVE_NCCL=1
if "$TRAIN" --help 2>&1 | grep -q "CPU backend"; then
    EMU=1
    export EMU_DEVICES=3  # one emulated device per rank, up to 3 ranks; the duplicate-GPU case sets 1
    # every case with the streams' ready work run in a seeded random order (docs/emu.md),
    # so a missing event wait between the model and the communication streams shows
    export EMU_STREAMS=${EMU_STREAMS:-random:7}
    echo "note: EMU_STREAMS=$EMU_STREAMS"
    NGPU=3
else
    EMU=0
    command -v nvidia-smi > /dev/null && nvidia-smi -L 2> /dev/null | grep -q GPU || skip "no GPU (nvidia-smi -L)"
    NGPU=$(nvidia-smi -L | grep -c GPU)
fi
# NCCL_RANKS: how many ranks NCCL can take here (one per GPU)
NCCL_RANKS=0
[ $HAVE_NCCL -eq 1 ] && NCCL_RANKS=$NGPU

setup_mpirun
MPI_TIMEOUT=180

make_workdir mpi_gpu
make_tiny_shards
# d2 (hd 64: the GPU kernels run it); -sh 0 so that P ranks x B see the tokens of 1 x P*B
M="-e d2 -vs 512 -ms 64 -t 32 -i $W/tr_*.bin -j $W/va_*.bin -v 3 -m 2 -l 1e-3 -u 2 -sh 0"

# compare_metrics <desc> <one.jsonl> <many.jsonl>: loss and val_loss to rel 1e-2,
# grad_norm to rel 5e-2, each plus 1e-3 absolute
compare_metrics() {
    local desc=$1 a=$2 b=$3
    local res
    res=$(paste -d' ' <(tr -d '{}"' < "$a" | tr ',:' '  ') <(tr -d '{}"' < "$b" | tr ',:' '  ') | awk '
        { n = NF / 2; if (NF % 2 != 0 || n < 2) { bad = 1; next }
          for (i = 1; i <= n; i += 2) {
              if ($i != $(i + n)) { bad = 1; next }
              if ($i == "loss" || $i == "grad_norm" || $i == "val_loss") {
                  tol = ($i == "grad_norm") ? 5e-2 : 1e-2
                  x = $(i + 1); y = $(i + 1 + n); d = x - y; if (d < 0) d = -d
                  m = (x < 0 ? -x : x); if ((y < 0 ? -y : y) > m) m = (y < 0 ? -y : y)
                  r = d / (m > 0 ? m : 1); if (r > maxrel[$i]) maxrel[$i] = r
                  if (d > tol * m + 1e-3) bad = 1
                  cnt++
              } } }
        END { printf "%d values, max rel diff loss %.2e grad_norm %.2e val_loss %.2e%s\n", cnt, maxrel["loss"],
              maxrel["grad_norm"], maxrel["val_loss"], bad ? " MISMATCH" : "" }')
    if [ "$(wc -l < "$a")" -eq "$(wc -l < "$b")" ] && [ "$(wc -l < "$a")" -gt 4 ] && ! echo "$res" | grep -q MISMATCH; then
        ok "$desc: $res"
    else
        bad "$desc: $res; $(wc -l < "$a") vs $(wc -l < "$b") lines"
    fi
}

# 1. mpirun -np 1 with the default backend, and a one-rank job without MPI, are the plain program, bit for bit
"$TRAIN" $M -b 4 -x 4 -o "$W/p1" > "$W/p1.txt" 2>&1 || bad "plain run failed: $(tail -3 "$W/p1.txt")"
mpi -np 1 "$TRAIN" $M -b 4 -x 4 -o "$W/m1" > "$W/m1.txt" 2>&1 || bad "mpirun -np 1 failed: $(tail -3 "$W/m1.txt")"
backend=$(sed -n 's/.*communication: \([a-z]*\).*/\1/p' "$W/m1.txt")
if [ -n "$(losses "$W/p1.txt")" ] && diff <(losses "$W/p1.txt") <(losses "$W/m1.txt") > /dev/null &&
   cmp -s "$W/p1/model_00000004.bin" "$W/m1/model_00000004.bin" &&
   cmp -s "$W/p1/state_00000004_00000.bin" "$W/m1/state_00000004_00000.bin"; then
    ok "mpirun -np 1 ($backend): losses, model and state files identical to a plain run"
else
    bad "mpirun -np 1 ($backend) differs from a plain run: $(diff <(losses "$W/p1.txt") <(losses "$W/m1.txt") | head -4)"
fi
if [ $HAVE_NCCL -eq 1 ]; then
    RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 LLMC_RENDEZVOUS="file:$W/nccl_id" timeout 180 "$TRAIN" $M -b 4 -x 4 -o "$W/r1" \
        > "$W/r1.txt" 2>&1 || bad "one-rank job with a rendezvous file failed: $(tail -3 "$W/r1.txt")"
    if grep -q "communication: nccl" "$W/r1.txt" && diff <(losses "$W/p1.txt") <(losses "$W/r1.txt") > /dev/null &&
       cmp -s "$W/p1/model_00000004.bin" "$W/r1/model_00000004.bin" && [ ! -e "$W/nccl_id" ]; then
        ok "RANK/WORLD_SIZE + LLMC_RENDEZVOUS=file: (NCCL, world 1): identical to a plain run, rendezvous file removed"
    else
        bad "rendezvous-file job differs: $(grep -m1 communication "$W/r1.txt"); $(diff <(losses "$W/p1.txt") <(losses "$W/r1.txt") | head -3)"
    fi
fi

# 2. two ranks x B 2 vs one process x B 4; with gradient accumulation and
#    clipping too; with each backend that can run here
"$TRAIN" $M -b 4 -x 6 -gc 0 -ml "$W/e1.jsonl" > "$W/e1.txt" 2>&1 || bad "1-process run failed: $(tail -3 "$W/e1.txt")"
"$TRAIN" $M -b 4 -x 6 -d 256 -gc 0.5 -ml "$W/g1.jsonl" > "$W/g1.txt" 2>&1 || bad "1-process accum run failed: $(tail -3 "$W/g1.txt")"
BACKENDS="mpi"
[ $NCCL_RANKS -ge 2 ] && BACKENDS="mpi nccl"
for cb in $BACKENDS; do
    mpi -np 2 "$TRAIN" -cb $cb $M -b 2 -x 6 -gc 0 -ml "$W/e2$cb.jsonl" > "$W/e2$cb.txt" 2>&1 || bad "2-rank run (-cb $cb) failed: $(tail -3 "$W/e2$cb.txt")"
    grep -q "processes 2" "$W/e2$cb.txt" && grep -q "communication: $cb" "$W/e2$cb.txt" && ok "2-rank run reports 2 processes, -cb $cb" ||
        bad "2-rank run (-cb $cb): $(grep -m1 batch "$W/e2$cb.txt"); $(grep -m1 communication "$W/e2$cb.txt")"
    compare_metrics "2 ranks x B2 (-cb $cb) vs 1 x B4, no clipping, 6 steps" "$W/e1.jsonl" "$W/e2$cb.jsonl"
    mpi -np 2 "$TRAIN" -cb $cb $M -b 2 -x 6 -d 256 -gc 0.5 -ml "$W/g2$cb.jsonl" > "$W/g2$cb.txt" 2>&1 || bad "2-rank accum run (-cb $cb) failed: $(tail -3 "$W/g2$cb.txt")"
    compare_metrics "2 ranks (-cb $cb), grad accum 2, clipping at 0.5" "$W/g1.jsonl" "$W/g2$cb.jsonl"
done
if [ $EMU -eq 1 ] && [ $NCCL_RANKS -ge 2 ]; then
    # both backends sum in rank order on the backend (comm.h's reduce-scatter, emu/nccl.cpp)
    if diff <(losses "$W/e2mpi.txt") <(losses "$W/e2nccl.txt") > /dev/null && [ -n "$(losses "$W/e2mpi.txt")" ]; then
        ok "-cb nccl and -cb mpi: identical losses and norms (2 ranks, 6 steps)"
    else
        bad "-cb nccl and -cb mpi differ: $(diff <(losses "$W/e2mpi.txt") <(losses "$W/e2nccl.txt") | head -4)"
    fi
fi
# three ranks: the parameters do not split evenly over 3 (ZeRO-1 padding)
cb3=mpi
[ $NCCL_RANKS -ge 3 ] && cb3=nccl
"$TRAIN" $M -b 6 -x 6 -gc 0.5 -ml "$W/t1.jsonl" > "$W/t1.txt" 2>&1 || bad "1-process B6 run failed: $(tail -3 "$W/t1.txt")"
mpi -np 3 "$TRAIN" -cb $cb3 $M -b 2 -x 6 -gc 0.5 -ml "$W/t3.jsonl" > "$W/t3.txt" 2>&1 || bad "3-rank run failed: $(tail -3 "$W/t3.txt")"
compare_metrics "3 ranks x B2 (-cb $cb3) vs 1 x B6, clipping at 0.5" "$W/t1.jsonl" "$W/t3.jsonl"
# overlap on (the default) and off: the same sums in the same order, so the same bits
if [ $NCCL_RANKS -ge 2 ]; then
    grep -q "communication: nccl, overlapped with the backward" "$W/e2nccl.txt" && ok "-cb nccl overlaps the reduction by default" ||
        bad "no overlap reported: $(grep -m1 communication "$W/e2nccl.txt")"
    grep -q "communication: mpi.*(-ov 1 needs nccl" "$W/e2mpi.txt" && ok "-cb mpi says it reduces after the backward" ||
        bad "-cb mpi: $(grep -m1 communication "$W/e2mpi.txt")"
    for ov in 1 0; do
        mpi -np 2 "$TRAIN" -cb nccl -ov $ov $M -b 2 -x 4 -d 256 -gc 0.5 -o "$W/ov$ov" > "$W/ov$ov.txt" 2>&1 ||
            bad "2-rank -ov $ov run failed: $(tail -3 "$W/ov$ov.txt")"
    done
    if [ -n "$(losses "$W/ov1.txt")" ] && diff <(losses "$W/ov1.txt") <(losses "$W/ov0.txt") > /dev/null &&
       cmp -s "$W/ov1/model_00000004.bin" "$W/ov0/model_00000004.bin" &&
       grep -q "overlapped with the backward" "$W/ov1.txt" && ! grep -q "overlapped" "$W/ov0.txt"; then
        ok "2 ranks, grad accum 2: -ov 1 and -ov 0 give identical losses, norms and model files ($EMU_STREAMS)"
    else
        bad "-ov 1 vs -ov 0 (2 ranks) differ: $(diff <(losses "$W/ov1.txt") <(losses "$W/ov0.txt") | head -4)"
    fi
fi
if [ "$cb3" = nccl ]; then
    mpi -np 3 "$TRAIN" -cb nccl -ov 0 $M -b 2 -x 6 -gc 0.5 > "$W/t3o.txt" 2>&1 || bad "3-rank -ov 0 run failed: $(tail -3 "$W/t3o.txt")"
    if [ -n "$(losses "$W/t3.txt")" ] && diff <(losses "$W/t3.txt") <(losses "$W/t3o.txt") > /dev/null; then
        ok "3 ranks (uneven shards): -ov 1 and -ov 0 give identical losses and norms"
    else
        bad "-ov 1 vs -ov 0 (3 ranks) differ: $(diff <(losses "$W/t3.txt") <(losses "$W/t3o.txt") | head -4)"
    fi
fi
# the fp32 CPU trainer over MPI, same data and flags: the GPU trainer's numbers within bf16 tolerances
if "$CPU_TRAIN" --help 2>&1 | grep -q "built with MPI"; then
    mpi -np 2 "$CPU_TRAIN" $M -b 2 -x 6 -gc 0 -ml "$W/c2.jsonl" > "$W/c2.txt" 2>&1 || bad "CPU 2-rank run failed: $(tail -3 "$W/c2.txt")"
    compare_metrics "2 GPU ranks (-cb mpi) vs 2 CPU ranks (train_gpt, fp32)" "$W/c2.jsonl" "$W/e2mpi.jsonl"
fi

# 3. resume of a 2-rank run: stopped after checkpoint 4, resumed, bit-identical (each backend)
for cb in $BACKENDS; do
    rm -rf "$W/a" "$W/b"
    check_resume_2ranks 0 -cb $cb
done

# 4. resume with another process count: refused, one line
"$TRAIN" $M -b 2 -x 8 -n 4 -o "$W/a" -y 1 > "$W/w1.txt" 2> "$W/w1.err"
rc=$?
if [ $rc -ne 0 ] && head -n 1 "$W/w1.err" | grep -q "^error: .*written by 2 process(es); this run has 1"; then
    ok "resume of a 2-rank checkpoint by 1 process refused -> exit $rc: $(head -n 1 "$W/w1.err")"
else
    bad "resume 2 -> 1: exit $rc, $(head -c 300 "$W/w1.err")"
fi

# 5. ranks started with different flags: one clear line, non-zero, no hang
mpi -np 1 "$TRAIN" -cb mpi $M -b 2 -x 4 : -np 1 "$TRAIN" -cb mpi $M -b 4 -x 4 > "$W/x.txt" 2> "$W/x.err"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "^error: the 2 processes disagree on the batch flags" "$W/x.err"; then
    ok "mismatched -b across ranks -> exit $rc: $(grep -m1 '^error' "$W/x.err")"
else
    bad "mismatched -b: exit $rc, $(head -c 300 "$W/x.err")"
fi
if [ $HAVE_NCCL -eq 1 ]; then
    mpi -np 1 "$TRAIN" -cb mpi $M -b 2 -x 4 : -np 1 "$TRAIN" -cb nccl $M -b 2 -x 4 > "$W/x.txt" 2> "$W/x.err"
    rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "^error: the 2 processes disagree on the communication flags" "$W/x.err"; then
        ok "mismatched -cb across ranks -> exit $rc"
    else
        bad "mismatched -cb: exit $rc, $(head -c 300 "$W/x.err")"
    fi
    mpi -np 1 "$TRAIN" -cb nccl -ov 0 $M -b 2 -x 4 : -np 1 "$TRAIN" -cb nccl $M -b 2 -x 4 > "$W/x.txt" 2> "$W/x.err"
    rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "^error: the 2 processes disagree on the communication flags" "$W/x.err"; then
        ok "mismatched -ov across ranks -> exit $rc"
    else
        bad "mismatched -ov: exit $rc, $(head -c 300 "$W/x.err")"
    fi
    # 6. NCCL takes one process per GPU: two ranks on one GPU must fail, not hang
    #    (on the backend: one emulated device per process)
    if [ $NGPU -eq 1 ] || [ $EMU -eq 1 ]; then
        t0=$(date +%s)
        EMU_DEVICES=1 LLMC_COMM_TIMEOUT=60 LLMC_RENDEZVOUS_TIMEOUT=60 mpi -np 2 "$TRAIN" -cb nccl $M -b 2 -x 4 > "$W/n.txt" 2> "$W/n.err"
        rc=$?
        if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "^error" "$W/n.err"; then
            ok "-cb nccl with 2 ranks on 1 GPU -> exit $rc in $(( $(date +%s) - t0 )) s: $(grep -m1 '^error' "$W/n.err")"
        else
            bad "-cb nccl with 2 ranks on 1 GPU: exit $rc, $(head -c 300 "$W/n.err")"
        fi
    fi
fi

# 7. one rank killed with SIGKILL mid-run: the job ends, non-zero, within 30 s
for cb in $BACKENDS; do
    check_killed_rank train_gpt_cuda 300 0 -np 2 "$TRAIN" -cb $cb $M -b 2 -x 100000 -v 0
done

finish
