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
 * Jobs without MPI (the GPU trainer with NCCL only): comm_init_env takes the
 * rank from RANK / WORLD_SIZE / LOCAL_RANK, rendezvous() shares NCCL's id through
 * a file or a TCP socket (LLMC_RENDEZVOUS), and the host collectives below go
 * through the CommHooks the transport installs in the Comm.
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
 *          COMM_SUM, COMM_MAX, COMM_MIN, mpiCheck (with USE_MPI), CommHooks, comm_allgather_elems,
 *          comm_init_env, rendezvous, rendezvous_done, rendezvous_file, rendezvous_tcp, env_int
 */
#ifndef LLMC_COMM_H
#define LLMC_COMM_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "utils.h"
#ifdef USE_MPI
// C programs only: no C++ bindings when nvcc compiles this (they warn, and warnings are errors)
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
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

typedef enum { COMM_SUM = 0, COMM_MAX = 1, COMM_MIN = 2 } CommOp;

// CommHooks: the host collectives over another transport, for a job that has no
// MPI (the GPU trainer started from RANK / WORLD_SIZE with its own rendezvous
// routes them through NCCL, llmc/comm_gpu.cuh). ctx is the transport's state.
typedef struct {
    void (*allreduce_f64)(void* ctx, double* x, int n, CommOp op);
    void (*allreduce_u64)(void* ctx, uint64_t* x, int n, CommOp op);
    void (*broadcast)(void* ctx, void* buf, size_t bytes, int root);
    void (*barrier)(void* ctx);
} CommHooks;

typedef struct {
    int rank, world;              // in the job (MPI_COMM_WORLD)
    int local_rank, local_world;  // among the ranks on this node (picks the GPU)
    int mpi;                      // 1: MPI was initialised here and must be finalised
    const CommHooks* hooks;       // non-NULL: the host collectives go through these (no MPI)
    void* hooks_ctx;
} Comm;

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
    c->hooks = NULL; c->hooks_ctx = NULL;
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
    if (c->hooks != NULL) { c->hooks->barrier(c->hooks_ctx); return; }
#ifdef USE_MPI
    if (c->world > 1) { mpiCheck(MPI_Barrier(MPI_COMM_WORLD)); }
#else
    (void)c;
#endif
}

// comm_allreduce_f64: x (n,) becomes the sum / max / min over ranks, in place
static inline void comm_allreduce_f64(const Comm* c, double* x, int n, CommOp op) {
    if (c->hooks != NULL) { c->hooks->allreduce_f64(c->hooks_ctx, x, n, op); return; }
#ifdef USE_MPI
    if (c->world > 1) { mpiCheck(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, comm_mpi_op(op), MPI_COMM_WORLD)); }
#else
    (void)c; (void)x; (void)n; (void)op;
#endif
}

static inline void comm_allreduce_u64(const Comm* c, uint64_t* x, int n, CommOp op) {
    if (c->hooks != NULL) { c->hooks->allreduce_u64(c->hooks_ctx, x, n, op); return; }
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
    if (c->hooks != NULL) { c->hooks->broadcast(c->hooks_ctx, buf, bytes, root); return; }
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

// comm_allgather_elems: buf (n elements of elem_bytes each, e.g. 2 for bf16) on
// every rank; rank r's shard [start, end) of the n is sent to every other rank,
// in place (host memory, MPI). One process, or no MPI: nothing to do.
static inline void comm_allgather_elems(const Comm* c, void* buf, size_t n, size_t elem_bytes) {
#ifdef USE_MPI
    if (c->world == 1) { return; }
    if (!c->mpi) { die("internal: comm_allgather_elems needs MPI (world %d)", c->world); }
    int* counts = comm_shard_counts(c, n);
    int* displs = (int*)mallocCheck((size_t)c->world * sizeof(int));
    for (int r = 0; r < c->world; r++) {
        size_t s, e;
        zero_shard_range(n, c->world, r, &s, &e);
        if (s > (size_t)INT_MAX) { die("a buffer of %zu elements is more than MPI's int displacements allow", n); }
        displs[r] = (int)s;
    }
    MPI_Datatype elem;
    mpiCheck(MPI_Type_contiguous((int)elem_bytes, MPI_BYTE, &elem));
    mpiCheck(MPI_Type_commit(&elem));
    mpiCheck(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, elem, MPI_COMM_WORLD));
    mpiCheck(MPI_Type_free(&elem));
    free(counts);
    free(displs);
#else
    (void)buf; (void)n; (void)elem_bytes;
    if (c->world > 1) { die("internal: comm_allgather_elems needs MPI (world %d)", c->world); }
#endif
}

// ----------------------------------------------------------------------------
// jobs started without MPI (torchrun-style launchers, a hand-written ssh loop,
// Slurm without an MPI plugin): the rank comes from the environment, and the
// few bytes every rank must share before a transport exists (NCCL's unique id)
// travel through a rendezvous, a file on a shared file system or a TCP socket
// that rank 0 serves. Only the GPU trainer has such a transport (NCCL).

static inline int env_int(const char* name, int fallback, int lo, int hi) {
    const char* v = getenv(name);
    if (v == NULL || v[0] == '\0') { return fallback; }
    return parse_int(v, name, lo, hi);
}

// comm_init_env: rank, world, local rank from RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE (torchrun's names; LOCAL_RANK defaults to RANK, which is right
// for one node). No MPI is touched: the caller sets up its transport and hooks.
static inline void comm_init_env(Comm* c) {
    c->mpi = 0;
    c->hooks = NULL;
    c->hooks_ctx = NULL;
    if (getenv("WORLD_SIZE") == NULL || getenv("RANK") == NULL) {
        die("LLMC_RENDEZVOUS is set, so the job is started without MPI, but RANK and WORLD_SIZE are not both set\n"
            "---> HINT: export RANK, WORLD_SIZE (and LOCAL_RANK) for every process; see docs/distributed.md");
    }
    c->world = env_int("WORLD_SIZE", 1, 1, 1 << 20);
    c->rank = env_int("RANK", 0, 0, c->world - 1);
    c->local_rank = env_int("LOCAL_RANK", c->rank, 0, 1 << 20);
    c->local_world = env_int("LOCAL_WORLD_SIZE", c->world, 1, 1 << 20);
}

static inline double comm_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define RENDEZVOUS_MAGIC 0x6c6c6d63u  // "llmc"

// the 16 bytes ahead of the payload in a rendezvous file or stream
typedef struct {
    uint32_t magic, world;
    uint64_t bytes;
} RendezvousHeader;

// rendezvous_file: rank 0 publishes data (bytes) at path, atomically (temp file,
// fsync, rename: a reader never sees half a file); every other rank polls every
// 50 ms for up to timeout_s and reads it. A file already there when rank 0
// starts is refused (it is another job's: every job needs a fresh path), and a
// file with another world size or length is refused by the readers. Rank 0
// removes the file with rendezvous_file_done once every rank has used it.
static inline void rendezvous_file(const char* path, void* data, size_t bytes, int rank, int world, double timeout_s) {
    RendezvousHeader h = {RENDEZVOUS_MAGIC, (uint32_t)world, (uint64_t)bytes};
    if (rank == 0) {
        if (access(path, F_OK) == 0) {
            die("rendezvous file '%s' already exists (left by another job?)\n"
                "---> HINT: remove it, or give each job its own path, e.g. with the job id in the name", path);
        }
        AtomicFile af;
        atomic_file_open(&af, path);
        fwriteCheck(&h, sizeof(h), 1, af.fp, path);
        fwriteCheck(data, 1, bytes, af.fp, path);
        atomic_file_commit(&af);
        return;
    }
    double t0 = comm_now_s();
    for (;;) {
        FILE* fp = fopen(path, "rb");
        if (fp != NULL) {
            RendezvousHeader got;
            int ok = fread(&got, sizeof(got), 1, fp) == 1 && fread(data, 1, bytes, fp) == bytes;
            fclose(fp);
            if (!ok || got.magic != RENDEZVOUS_MAGIC || got.world != h.world || got.bytes != h.bytes) {
                die("rank %d: rendezvous file '%s' is not this job's (world %u, %llu bytes; this job has %d, %zu)\n"
                    "---> HINT: every rank must get the same WORLD_SIZE and a fresh LLMC_RENDEZVOUS path", rank, path,
                    got.world, (unsigned long long)got.bytes, world, bytes);
            }
            return;
        }
        if (comm_now_s() - t0 > timeout_s) {
            die("rank %d: no rendezvous file '%s' after %.0f s (rank 0 never wrote it)\n"
                "---> HINT: the path must be on a file system every node shares; is rank 0 running?", rank, path,
                timeout_s);
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static inline void rendezvous_file_done(const char* path, int rank) {
    if (rank == 0) { remove(path); }
}

// full-length send / receive on a socket; 0 on success
static inline int sock_send_all(int fd, const void* buf, size_t n) {
    const char* p = (const char*)buf;
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) { return -1; }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}
static inline int sock_recv_all(int fd, void* buf, size_t n) {
    char* p = (char*)buf;
    while (n > 0) {
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0) { return -1; }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

// rendezvous_tcp: rank 0 listens on the port of addr ("host:port"; every
// interface) and sends data (bytes) to world - 1 connections; every other rank
// connects to host:port (retrying every 100 ms: rank 0 may start later) and
// receives it. Both sides give up after timeout_s.
static inline void rendezvous_tcp(const char* addr, void* data, size_t bytes, int rank, int world, double timeout_s) {
    char host[256];
    const char* colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= sizeof(host) || colon[1] == '\0') {
        die("rendezvous address '%s' is not host:port", addr);
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    const char* port = colon + 1;
    parse_int(port, "the rendezvous port", 1, 65535);
    RendezvousHeader h = {RENDEZVOUS_MAGIC, (uint32_t)world, (uint64_t)bytes};
    double t0 = comm_now_s();
    if (rank == 0) {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_INET6;  // a dual-stack socket takes IPv4 too
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE;
        int fd = -1;
        if (getaddrinfo(NULL, port, &hints, &res) == 0) {
            fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
            int one = 1, zero = 0;
            if (fd >= 0) {
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
                if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, world) != 0) { close(fd); fd = -1; }
            }
            freeaddrinfo(res);
        }
        if (fd < 0) { die("rank 0: cannot listen on port %s for the rendezvous: %s", port, strerror(errno)); }
        for (int served = 0; served < world - 1;) {
            struct pollfd pfd = {fd, POLLIN, 0};
            int left_ms = (int)((timeout_s - (comm_now_s() - t0)) * 1000.0);
            if (left_ms <= 0 || poll(&pfd, 1, left_ms) <= 0) {
                die("rank 0: only %d of %d ranks came to the rendezvous on port %s within %.0f s", served + 1, world,
                    port, timeout_s);
            }
            int cfd = accept(fd, NULL, NULL);
            if (cfd < 0) { continue; }
            if (sock_send_all(cfd, &h, sizeof(h)) == 0 && sock_send_all(cfd, data, bytes) == 0) { served++; }
            close(cfd);
        }
        close(fd);
        return;
    }
    for (;;) {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int got_data = 0;
        if (getaddrinfo(host, port, &hints, &res) == 0) {
            for (struct addrinfo* ai = res; ai != NULL && !got_data; ai = ai->ai_next) {
                int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
                if (fd < 0) { continue; }
                if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                    RendezvousHeader got;
                    if (sock_recv_all(fd, &got, sizeof(got)) == 0) {
                        if (got.magic != RENDEZVOUS_MAGIC || got.world != h.world || got.bytes != h.bytes) {
                            die("rank %d: the rendezvous at %s is not this job's (world %u; this job has %d)", rank,
                                addr, got.world, world);
                        }
                        got_data = sock_recv_all(fd, data, bytes) == 0;
                    }
                }
                close(fd);
            }
            freeaddrinfo(res);
        }
        if (got_data) { return; }
        if (comm_now_s() - t0 > timeout_s) {
            die("rank %d: no rendezvous at %s within %.0f s\n---> HINT: is rank 0 running on that host, and the port "
                "open between the nodes?", rank, addr, timeout_s);
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

// rendezvous: shares data (bytes) from rank 0 with every rank as spec says,
// "file:/path" or "tcp:host:port" (the value of LLMC_RENDEZVOUS)
static inline void rendezvous(const char* spec, void* data, size_t bytes, int rank, int world, double timeout_s) {
    if (strncmp(spec, "file:", 5) == 0) {
        rendezvous_file(spec + 5, data, bytes, rank, world, timeout_s);
    } else if (strncmp(spec, "tcp:", 4) == 0) {
        rendezvous_tcp(spec + 4, data, bytes, rank, world, timeout_s);
    } else {
        die("LLMC_RENDEZVOUS='%s': expected file:/path/on/shared/fs or tcp:host:port", spec);
    }
}

// rendezvous_done: called by every rank once all have joined (removes rank 0's file)
static inline void rendezvous_done(const char* spec, int rank) {
    if (strncmp(spec, "file:", 5) == 0) { rendezvous_file_done(spec + 5, rank); }
}

#endif // LLMC_COMM_H
