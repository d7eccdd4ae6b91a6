/*
 * comm.h: the communication layer of data-parallel training, on host memory
 * over MPI, and the ZeRO-1 shard arithmetic. Shared by train_gpt.c and (for its
 * host-staged MPI backend and the shard bookkeeping) train_gpt.cu.
 *
 *   mpirun -np 2 ./train_gpt ...      (docs/distributed.md: hostfiles, Slurm)
 *
 * Built with -DUSE_MPI (the Makefile sets it when mpicc and mpi.h work), the
 * program joins MPI when a launcher started it (mpirun, mpiexec, srun with
 * PMI/PMIx: detected from their environment variables) and otherwise runs as
 * one process without touching MPI at all, so `./train_gpt` alone behaves as it
 * always did. Without USE_MPI every call below is the single-process identity
 * and the file needs no MPI headers. Either way, a process that a launcher
 * started as one of N but that cannot join the others (no MPI in the build,
 * srun without --mpi=pmix) stops with an error instead of training alone.
 *
 * Failure rules. MPI_COMM_WORLD gets MPI_ERRORS_RETURN, and every call goes
 * through mpiCheck, which prints the failing call, MPI's reason, file and line,
 * then MPI_Abort()s the whole job, so a failed collective never hangs. A rank
 * that exits through die() (exit(1) without MPI_Finalize) or is killed makes
 * the launcher end the job: Open MPI's mpirun kills the other ranks when one
 * exits non-zero or before MPI_Finalize; under Slurm use srun --kill-on-bad-exit=1
 * (test/test_mpi.sh checks that a job with one rank killed ends non-zero).
 *
 * ZeRO-1 shards: a flat buffer of n floats is split into `world` equal shards
 * of ceil(n / world) elements (as if padded to a multiple of world, which is
 * what NCCL's equal-count reduce-scatter needs); rank r owns [start, end) =
 * [r * shard, min((r + 1) * shard, n)), the last ranks' shards may be shorter
 * (or empty for a tiny n). The host collectives here take unpadded buffers.
 *
 * defines: Comm, comm_init, comm_free, comm_barrier, comm_allreduce_f64,
 *          comm_allreduce_u64, comm_reduce_scatter_sum_f32, comm_allgather_f32, comm_broadcast,
 *          comm_check_agree, launcher_tasks, ZeroShard, zero_shard_init, zero_shard_range,
 *          COMM_SUM, COMM_MAX, COMM_MIN, mpiCheck (with USE_MPI)
 */
#ifndef LLMC_COMM_H
#define LLMC_COMM_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "utils.h"
#ifdef USE_MPI
#include <mpi.h>
#endif

// ----------------------------------------------------------------------------
// ZeRO-1 shard bookkeeping (plain C: no MPI needed, the GPU trainer uses it too)

typedef struct {
    size_t n;           // elements of the whole flat buffer
    size_t padded;      // n rounded up to a multiple of world (shard * world)
    size_t shard;       // elements per shard: padded / world
    size_t start, end;  // this rank's range [start, end) of the n real elements (end - start <= shard)
} ZeroShard;

// zero_shard_range: rank r's [start, end) of n elements split over world ranks
static inline void zero_shard_range(size_t n, int world, int r, size_t* start, size_t* end) {
    size_t shard = (n + (size_t)world - 1) / (size_t)world;
    size_t s = (size_t)r * shard;
    *start = s < n ? s : n;
    *end = s + shard < n ? s + shard : n;
}

static inline void zero_shard_init(ZeroShard* z, size_t n, int world, int rank) {
    if (world < 1 || rank < 0 || rank >= world) { die("zero_shard_init: rank %d of world %d", rank, world); }
    z->n = n;
    z->shard = (n + (size_t)world - 1) / (size_t)world;
    z->padded = z->shard * (size_t)world;
    zero_shard_range(n, world, rank, &z->start, &z->end);
}

// ----------------------------------------------------------------------------
// the communicator

typedef struct {
    int rank, world;              // in the job (MPI_COMM_WORLD)
    int local_rank, local_world;  // among the ranks on this node (picks the GPU)
    int mpi;                      // 1: MPI was initialised here and must be finalised
} Comm;

typedef enum { COMM_SUM = 0, COMM_MAX = 1, COMM_MIN = 2 } CommOp;

#ifdef USE_MPI
static inline void mpi_check(int err, const char* expr, const char* file, int line) {
    if (err == MPI_SUCCESS) { return; }
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, msg, &len) != MPI_SUCCESS) { snprintf(msg, sizeof(msg), "MPI error %d", err); }
    int rank = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    fprintf(stderr, "error: rank %d: %s failed: %s [%s:%d]\n", rank, expr, msg, file, line);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);  // ends every rank: nobody waits forever in the next collective
    exit(1);
}
#define mpiCheck(expr) mpi_check((expr), #expr, __FILE__, __LINE__)

static inline MPI_Op comm_mpi_op(CommOp op) { return op == COMM_SUM ? MPI_SUM : op == COMM_MAX ? MPI_MAX : MPI_MIN; }

// launched_by_mpi: whether a launcher (Open MPI, MPICH/Hydra, Slurm PMI, PMIx) started us
static inline int launched_by_mpi(void) {
    const char* vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        if (getenv(vars[i]) != NULL) { return 1; }
    }
    return 0;
}
#endif

// launcher_tasks: how many copies a launcher says it started (1 when none did).
// Used to refuse running N independent copies that would each train alone and
// overwrite each other's checkpoints.
static inline int launcher_tasks(void) {
    const char* vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"};
    int most = 1;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char* v = getenv(vars[i]);
        if (v == NULL || (i == 2 && getenv("SLURM_PROCID") == NULL)) { continue; }
        int k = atoi(v);
        if (k > most) { most = k; }
    }
    return most;
}

static inline void comm_init(Comm* c, int* argc, char*** argv) {
    c->rank = 0; c->world = 1; c->local_rank = 0; c->local_world = 1; c->mpi = 0;
    int tasks = launcher_tasks();
#ifdef USE_MPI
    if (!launched_by_mpi()) {
        if (tasks > 1) {
            die("started as one of %d tasks, but with no MPI process manager to join them\n"
                "---> HINT: under Slurm use srun --mpi=pmix (or --mpi=pmi2); see docs/distributed.md", tasks);
        }
        return;
    }
    int err = MPI_Init(argc, argv);
    if (err != MPI_SUCCESS) { fprintf(stderr, "error: MPI_Init failed (code %d)\n", err); exit(1); }
    c->mpi = 1;
    mpiCheck(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    mpiCheck(MPI_Comm_rank(MPI_COMM_WORLD, &c->rank));
    mpiCheck(MPI_Comm_size(MPI_COMM_WORLD, &c->world));
    MPI_Comm local;
    mpiCheck(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local));
    mpiCheck(MPI_Comm_rank(local, &c->local_rank));
    mpiCheck(MPI_Comm_size(local, &c->local_world));
    mpiCheck(MPI_Comm_free(&local));
#else
    (void)argc; (void)argv;
    if (tasks > 1) {
        die("started as one of %d processes, but this program was built without MPI\n"
            "---> HINT: install MPI (openmpi-bin libopenmpi-dev) and rebuild: make clean && make train_gpt", tasks);
    }
#endif
}

// comm_free: every rank calls it on its way out of a successful run
static inline void comm_free(Comm* c) {
#ifdef USE_MPI
    if (c->mpi) { mpiCheck(MPI_Finalize()); c->mpi = 0; }
#else
    (void)c;
#endif
}

static inline void comm_barrier(const Comm* c) {
#ifdef USE_MPI
    if (c->world > 1) { mpiCheck(MPI_Barrier(MPI_COMM_WORLD)); }
#else
    (void)c;
#endif
}

// comm_allreduce_f64: x (n,) becomes the sum / max / min over ranks, in place
static inline void comm_allreduce_f64(const Comm* c, double* x, int n, CommOp op) {
#ifdef USE_MPI
    if (c->world > 1) { mpiCheck(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, comm_mpi_op(op), MPI_COMM_WORLD)); }
#else
    (void)c; (void)x; (void)n; (void)op;
#endif
}

static inline void comm_allreduce_u64(const Comm* c, uint64_t* x, int n, CommOp op) {
#ifdef USE_MPI
    if (c->world > 1) { mpiCheck(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_UINT64_T, comm_mpi_op(op), MPI_COMM_WORLD)); }
#else
    (void)c; (void)x; (void)n; (void)op;
#endif
}

#ifdef USE_MPI
// the per-rank element counts of the shards of n; MPI counts are int
static inline int* comm_shard_counts(const Comm* c, size_t n) {
    int* counts = (int*)mallocCheck((size_t)c->world * sizeof(int));
    for (int r = 0; r < c->world; r++) {
        size_t s, e;
        zero_shard_range(n, c->world, r, &s, &e);
        if (e - s > (size_t)INT_MAX) {
            die("a ZeRO-1 shard of %zu floats is more than MPI's int count allows\n"
                "---> HINT: use more processes", e - s);
        }
        counts[r] = (int)(e - s);
    }
    return counts;
}
#endif

// comm_reduce_scatter_sum_f32: send (n,) from every rank; recv (this rank's
// end - start) gets the sum over ranks of send[start, end). send and recv must
// not overlap. One process: a copy.
static inline void comm_reduce_scatter_sum_f32(const Comm* c, const float* send, float* recv, size_t n) {
    if (c->world == 1) {
        if (recv != send) { memcpy(recv, send, n * sizeof(float)); }
        return;
    }
#ifdef USE_MPI
    int* counts = comm_shard_counts(c, n);
    mpiCheck(MPI_Reduce_scatter(send, recv, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    free(counts);
#endif
}

// comm_allgather_f32: buf (n,) on every rank; rank r's shard [start, end) is
// sent to every other rank, in place
static inline void comm_allgather_f32(const Comm* c, float* buf, size_t n) {
#ifdef USE_MPI
    if (c->world == 1) { return; }
    int* counts = comm_shard_counts(c, n);
    int* displs = (int*)mallocCheck((size_t)c->world * sizeof(int));
    for (int r = 0; r < c->world; r++) {
        size_t s, e;
        zero_shard_range(n, c->world, r, &s, &e);
        if (s > (size_t)INT_MAX) { die("a buffer of %zu floats is more than MPI's int displacements allow", n); }
        displs[r] = (int)s;
    }
    mpiCheck(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT, MPI_COMM_WORLD));
    free(counts);
    free(displs);
#else
    (void)c; (void)buf; (void)n;
#endif
}

// comm_broadcast: bytes of buf from root to every rank (in chunks: MPI counts are int)
static inline void comm_broadcast(const Comm* c, void* buf, size_t bytes, int root) {
#ifdef USE_MPI
    if (c->world == 1) { return; }
    const size_t CHUNK = (size_t)1 << 30;
    for (size_t off = 0; off < bytes; off += CHUNK) {
        size_t k = bytes - off < CHUNK ? bytes - off : CHUNK;
        mpiCheck(MPI_Bcast((char*)buf + off, (int)k, MPI_BYTE, root, MPI_COMM_WORLD));
    }
#else
    (void)c; (void)buf; (void)bytes; (void)root;
#endif
}

// comm_check_agree: every rank passes the same n items, each a name and the
// hash of what it must agree on (flags, config, data). The min and max of each
// hash over the ranks differ exactly when some rank disagrees; then every rank
// prints the same one-line error and exits 1. A collective: all ranks call it.
static inline void comm_check_agree(const Comm* c, const char* const* names, const uint64_t* hashes, int n) {
    if (c->world == 1) { return; }
    uint64_t* lo = (uint64_t*)mallocCheck((size_t)n * 2 * sizeof(uint64_t));
    uint64_t* hi = lo + n;
    memcpy(lo, hashes, (size_t)n * sizeof(uint64_t));
    memcpy(hi, hashes, (size_t)n * sizeof(uint64_t));
    comm_allreduce_u64(c, lo, n, COMM_MIN);
    comm_allreduce_u64(c, hi, n, COMM_MAX);
    for (int i = 0; i < n; i++) {
        if (lo[i] != hi[i]) {
            // die()'s format, written with one call so the ranks' lines do not interleave
            char msg[1024];
            snprintf(msg, sizeof(msg),
                     "error: the %d processes disagree on %s (rank %d's hash %016llx, min %016llx, max %016llx)\n"
                     "---> HINT: every rank must be started with the same flags, model and data\n",
                     c->world, names[i], c->rank, (unsigned long long)hashes[i], (unsigned long long)lo[i],
                     (unsigned long long)hi[i]);
            fflush(stdout);
            fputs(msg, stderr);
            fflush(stderr);
            exit(1);
        }
    }
    free(lo);
}

#endif // LLMC_COMM_H
