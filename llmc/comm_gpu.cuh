/*
 * comm_gpu.cuh: the GPU side of data-parallel training (docs/distributed.md):
 * the ZeRO-1 collectives of train_gpt.cu on device buffers, over one of two
 * backends chosen with -cb:
 *
 *   nccl  (the default when built with NCCL, -DUSE_NCCL): ncclReduceScatter of
 *         the fp32 gradients and ncclAllGather of the bf16 weights, in place, on
 *         the model's stream. One process per GPU (NCCL refuses two ranks on one
 *         GPU). The communicator is set up through MPI (rank 0 makes the
 *         ncclUniqueId, MPI_Bcast) or, in a job started without MPI, through
 *         llmc/comm.h's rendezvous (LLMC_RENDEZVOUS=file:/path or tcp:host:port
 *         with RANK / WORLD_SIZE / LOCAL_RANK); then the host collectives of
 *         comm.h (loss, norm, flag checks, barriers) also go through NCCL.
 *   mpi   host-staged: the buffers are copied to pinned host memory, reduced or
 *         gathered with comm.h's MPI collectives, and copied back. Slower, but
 *         it needs no NCCL and lets several ranks share one GPU (tests).
 *
 *   mpirun -np 8 ./train_gpt_cuda -e d12 ...                 (NCCL through MPI)
 *   mpirun -np 2 ./train_gpt_cuda -cb mpi -e d2 ...          (host-staged)
 *   RANK=0 WORLD_SIZE=2 LLMC_RENDEZVOUS=file:/shared/id ./train_gpt_cuda ...
 *
 * Shards are comm.h's: a flat buffer of n elements, padded on the device to
 * shard * world so NCCL's equal-count collectives work in place; rank r owns
 * elements [r * shard, (r + 1) * shard) of the padded buffer, of which
 * [start, end) are real (ZeroShard).
 *
 * Faults. NCCL runs non-blocking: every NCCL call and every wait on the stream
 * polls ncclCommGetAsyncError, so a failed or broken communicator (a peer that
 * died, a network error) stops this rank: ncclCommAbort, one line on stderr,
 * then MPI_Abort (under MPI, ending every rank) or exit(1). A wait that lasts
 * longer than LLMC_COMM_TIMEOUT seconds (default 1800, 0: no limit) is treated
 * the same way: a peer that hangs or vanished without NCCL noticing ends the
 * job in bounded time instead of never. The MPI backend fails as comm.h does.
 *
 * defines: ncclCheck (with USE_NCCL), GpuCommBackend, GpuComm, gpu_comm_backend_parse,
 *          gpu_comm_backend_name, gpu_comm_init, gpu_comm_free, gpu_comm_wait,
 *          gpu_comm_reduce_scatter_sum, gpu_comm_can_overlap, gpu_comm_reduce_to_owners,
 *          gpu_comm_allgather_bf16, gpu_comm_allgather_f32,
 *          scale_f32_kernel, scale_f32
 */
#ifndef LLMC_COMM_GPU_CUH
#define LLMC_COMM_GPU_CUH

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "comm.h"
#include "cuda_common.cuh"
#ifdef USE_NCCL
#include <nccl.h>
#endif

typedef enum { GPU_COMM_NONE = 0, GPU_COMM_NCCL = 1, GPU_COMM_MPI = 2 } GpuCommBackend;

#define GPU_COMM_SCRATCH_BYTES 65536  // device staging of the host collectives over NCCL

typedef struct {
    Comm* host;              // the job's ranks; its hooks point here when there is no MPI
    GpuCommBackend backend;  // NONE: one process, nothing to communicate
    cudaStream_t stream;     // the host collectives over NCCL run on it (the ZeRO-1 ones on the caller's)
    double timeout_s;        // a wait longer than this is a failure (0: none)
#ifdef USE_NCCL
    ncclComm_t nccl;
    void* scratch;           // (GPU_COMM_SCRATCH_BYTES,) device
    const char* rendezvous;  // LLMC_RENDEZVOUS when the job has no MPI, else NULL
#endif
    void* pinned;            // host staging of the MPI backend (padded + shard floats, grown on use)
    size_t pinned_bytes;
} GpuComm;

static const char* gpu_comm_backend_name(GpuCommBackend b) {
    return b == GPU_COMM_NCCL ? "nccl" : b == GPU_COMM_MPI ? "mpi (host-staged)" : "none (one process)";
}

// gpu_comm_backend_parse: the -cb flag's value
static GpuCommBackend gpu_comm_backend_parse(const char* s) {
    if (strcmp(s, "nccl") == 0) {
#ifdef USE_NCCL
        return GPU_COMM_NCCL;
#else
        die("flag -cb: this build has no NCCL (nccl.h and libnccl were not found at build time)\n"
            "---> HINT: use -cb mpi, or install NCCL and rebuild: make clean && make train_gpt_cuda");
#endif
    }
    if (strcmp(s, "mpi") == 0) { return GPU_COMM_MPI; }
    die("flag -cb: '%s' is not a communication backend (nccl or mpi)", s);
}

// gpu_comm_fail: the job cannot go on; ends this rank (and under MPI every rank)
static void gpu_comm_fail(GpuComm* g, const char* what, const char* why, const char* file, int line) {
    fprintf(stderr, "error: rank %d: %s failed: %s [%s:%d]\n", g->host->rank, what, why, file, line);
    fflush(stderr);
#ifdef USE_NCCL
    if (g->backend == GPU_COMM_NCCL && g->nccl != NULL) { ncclCommAbort(g->nccl); }  // frees a rank stuck in a kernel
#endif
#ifdef USE_MPI
    if (g->host->mpi) { MPI_Abort(MPI_COMM_WORLD, 1); }
#endif
    exit(1);
}

#ifdef USE_NCCL
// ncclCheck: for calls outside a communicator (ncclGetUniqueId)
static void nccl_check(ncclResult_t r, const char* expr, const char* file, int line) {
    if (r == ncclSuccess) { return; }
    fprintf(stderr, "error: %s failed: %s [%s:%d]\n", expr, ncclGetErrorString(r), file, line);
    fflush(stderr);
    exit(1);
}
#define ncclCheck(expr) nccl_check((expr), #expr, __FILE__, __LINE__)

// nccl_settle: after a call on the non-blocking communicator, waits (polling)
// until it is no longer in progress; an error or the timeout ends the job
static void nccl_settle(GpuComm* g, ncclResult_t r, const char* expr, const char* file, int line) {
    double t0 = comm_now_s();
    while (r == ncclSuccess || r == ncclInProgress) {
        ncclResult_t state = ncclSuccess;
        ncclResult_t q = ncclCommGetAsyncError(g->nccl, &state);
        if (q != ncclSuccess) { r = q; break; }
        if (state == ncclSuccess) { return; }
        if (state != ncclInProgress) { r = state; break; }
        if (g->timeout_s > 0 && comm_now_s() - t0 > g->timeout_s) {
            gpu_comm_fail(g, expr, "still in progress after LLMC_COMM_TIMEOUT seconds (a rank is gone?)", file, line);
        }
        sched_yield();
    }
    gpu_comm_fail(g, expr, ncclGetErrorString(r), file, line);
}
#define ncclCall(g, expr) nccl_settle((g), (expr), #expr, __FILE__, __LINE__)
#endif

// gpu_comm_wait: waits for g's stream, polling NCCL's error state and the clock
// (a plain cudaStreamSynchronize would wait forever behind a dead peer)
static void gpu_comm_wait_at(GpuComm* g, cudaStream_t stream, const char* what, const char* file, int line) {
    double t0 = comm_now_s();
    for (unsigned long it = 0;; it++) {
        cudaError_t q = cudaStreamQuery(stream);
        if (q == cudaSuccess) { return; }
        if (q != cudaErrorNotReady) { gpu_comm_fail(g, what, cudaGetErrorString(q), file, line); }
#ifdef USE_NCCL
        if (g->backend == GPU_COMM_NCCL) {
            ncclResult_t state = ncclSuccess;
            ncclResult_t r = ncclCommGetAsyncError(g->nccl, &state);
            if (r != ncclSuccess) { gpu_comm_fail(g, what, ncclGetErrorString(r), file, line); }
            if (state != ncclSuccess && state != ncclInProgress) {
                gpu_comm_fail(g, what, ncclGetErrorString(state), file, line);
            }
        }
#endif
        if ((it & 1023) == 0 && g->timeout_s > 0 && comm_now_s() - t0 > g->timeout_s) {
            gpu_comm_fail(g, what, "not done after LLMC_COMM_TIMEOUT seconds (a rank is gone?)", file, line);
        }
        sched_yield();
    }
}
#define gpu_comm_wait(g, stream, what) gpu_comm_wait_at((g), (stream), (what), __FILE__, __LINE__)

// ----------------------------------------------------------------------------
// the host collectives of comm.h over NCCL, for jobs without MPI (CommHooks)

#ifdef USE_NCCL
static ncclRedOp_t nccl_op(CommOp op) { return op == COMM_SUM ? ncclSum : op == COMM_MAX ? ncclMax : ncclMin; }

// x (n,) of type dt, elem bytes each, all-reduced through the device scratch
static void nccl_host_allreduce(GpuComm* g, void* x, int n, size_t elem, ncclDataType_t dt, CommOp op) {
    const size_t per = GPU_COMM_SCRATCH_BYTES / elem;
    for (size_t off = 0; off < (size_t)n; off += per) {
        size_t k = (size_t)n - off < per ? (size_t)n - off : per;
        char* h = (char*)x + off * elem;
        cudaCheck(cudaMemcpyAsync(g->scratch, h, k * elem, cudaMemcpyHostToDevice, g->stream));
        ncclCall(g, ncclAllReduce(g->scratch, g->scratch, k, dt, nccl_op(op), g->nccl, g->stream));
        cudaCheck(cudaMemcpyAsync(h, g->scratch, k * elem, cudaMemcpyDeviceToHost, g->stream));
        gpu_comm_wait(g, g->stream, "ncclAllReduce (host values)");
    }
}
static void nccl_hook_allreduce_f64(void* ctx, double* x, int n, CommOp op) {
    nccl_host_allreduce((GpuComm*)ctx, x, n, sizeof(double), ncclFloat64, op);
}
static void nccl_hook_allreduce_u64(void* ctx, uint64_t* x, int n, CommOp op) {
    nccl_host_allreduce((GpuComm*)ctx, x, n, sizeof(uint64_t), ncclUint64, op);
}
static void nccl_hook_broadcast(void* ctx, void* buf, size_t bytes, int root) {
    GpuComm* g = (GpuComm*)ctx;
    for (size_t off = 0; off < bytes; off += GPU_COMM_SCRATCH_BYTES) {
        size_t k = bytes - off < GPU_COMM_SCRATCH_BYTES ? bytes - off : GPU_COMM_SCRATCH_BYTES;
        char* h = (char*)buf + off;
        cudaCheck(cudaMemcpyAsync(g->scratch, h, k, cudaMemcpyHostToDevice, g->stream));
        ncclCall(g, ncclBroadcast(g->scratch, g->scratch, k, ncclUint8, root, g->nccl, g->stream));
        cudaCheck(cudaMemcpyAsync(h, g->scratch, k, cudaMemcpyDeviceToHost, g->stream));
        gpu_comm_wait(g, g->stream, "ncclBroadcast (host bytes)");
    }
}
static void nccl_hook_barrier(void* ctx) {
    double one = 1.0;
    nccl_hook_allreduce_f64(ctx, &one, 1, COMM_SUM);
}
static const CommHooks NCCL_HOST_HOOKS = {nccl_hook_allreduce_f64, nccl_hook_allreduce_u64, nccl_hook_broadcast,
                                          nccl_hook_barrier};
#endif

// ----------------------------------------------------------------------------
// setup

// gpu_comm_init: the backend for the job described by host (comm_init or
// comm_init_env ran; the device is already chosen). A job of one process that
// no launcher started gets GPU_COMM_NONE whatever `want` says. With NCCL this is
// a collective (every rank joins the communicator).
static void gpu_comm_init(GpuComm* g, Comm* host, GpuCommBackend want) {
    memset(g, 0, sizeof(*g));
    g->host = host;
    g->timeout_s = env_int("LLMC_COMM_TIMEOUT", 1800, 0, 1 << 30);
    const char* rdv = getenv("LLMC_RENDEZVOUS");
    g->backend = host->mpi || rdv != NULL ? want : GPU_COMM_NONE;
    if (g->backend == GPU_COMM_MPI && !host->mpi) {
        die("-cb mpi needs an MPI launch (mpirun / srun --mpi=pmix); a job started with LLMC_RENDEZVOUS "
            "communicates through NCCL only\n---> HINT: drop -cb mpi, or start the job with mpirun");
    }
#ifdef USE_NCCL
    if (g->backend == GPU_COMM_NCCL) {
        cudaCheck(cudaStreamCreate(&g->stream));
        ncclUniqueId id;
        memset(&id, 0, sizeof(id));
        if (host->rank == 0) { ncclCheck(ncclGetUniqueId(&id)); }
        double rdv_timeout = env_int("LLMC_RENDEZVOUS_TIMEOUT", 300, 1, 1 << 30);
        if (host->mpi) {
            comm_broadcast(host, &id, sizeof(id), 0);
        } else {
            g->rendezvous = rdv;
            rendezvous(rdv, &id, sizeof(id), host->rank, host->world, rdv_timeout);
        }
        ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
        cfg.blocking = 0;  // every call returns at once; nccl_settle polls with a timeout
        ncclResult_t r = ncclCommInitRankConfig(&g->nccl, host->world, id, host->rank, &cfg);
        if (r != ncclSuccess && r != ncclInProgress) {
            die("rank %d: ncclCommInitRankConfig failed: %s\n---> HINT: NCCL takes one process per GPU; to run "
                "several ranks on one GPU use -cb mpi", host->rank, ncclGetErrorString(r));
        }
        double saved = g->timeout_s;
        g->timeout_s = rdv_timeout;  // joining waits for the slowest rank to start
        ncclCall(g, r);
        g->timeout_s = saved;
        cudaCheck(cudaMalloc(&g->scratch, GPU_COMM_SCRATCH_BYTES));
        if (!host->mpi) {
            host->hooks = &NCCL_HOST_HOOKS;  // comm.h's host collectives now use this communicator
            host->hooks_ctx = g;
            comm_barrier(host);             // every rank has joined: the rendezvous is done with
            rendezvous_done(rdv, host->rank);
        }
    }
#endif
}

static void gpu_comm_free(GpuComm* g) {
#ifdef USE_NCCL
    if (g->backend == GPU_COMM_NCCL) {
        gpu_comm_wait(g, g->stream, "the last collectives");
        if (g->host->hooks_ctx == g) { g->host->hooks = NULL; g->host->hooks_ctx = NULL; }
        ncclCall(g, ncclCommFinalize(g->nccl));
        ncclCommDestroy(g->nccl);
        cudaCheck(cudaFree(g->scratch));
        cudaCheck(cudaStreamDestroy(g->stream));
    }
#endif
    if (g->pinned != NULL) { cudaCheck(cudaFreeHost(g->pinned)); }
    memset(g, 0, sizeof(*g));
}

// ----------------------------------------------------------------------------
// the ZeRO-1 collectives, ordered on the caller's stream. buf is padded to
// z->padded elements on the device.

// the pinned staging buffer of the MPI backend, at least bytes
static void* gpu_comm_staging(GpuComm* g, size_t bytes) {
    if (bytes > g->pinned_bytes) {
        if (g->pinned != NULL) { cudaCheck(cudaFreeHost(g->pinned)); }
        cudaCheck(cudaMallocHost(&g->pinned, bytes));
        g->pinned_bytes = bytes;
    }
    return g->pinned;
}

// gpu_comm_reduce_scatter_sum: buf (padded,) fp32 on every rank; afterwards
// buf[rank * shard, (rank + 1) * shard) holds the sum over ranks of that range
// (the rest of buf is left as it was: NCCL in place, or not touched)
static void gpu_comm_reduce_scatter_sum(GpuComm* g, float* buf, const ZeroShard* z, cudaStream_t stream) {
    if (g->backend == GPU_COMM_NONE || g->host->world == 1) { return; }
#ifdef USE_NCCL
    if (g->backend == GPU_COMM_NCCL) {
        size_t own = (size_t)g->host->rank * z->shard;
        ncclCall(g, ncclReduceScatter(buf, buf + own, z->shard, ncclFloat32, ncclSum, g->nccl, stream));
        return;
    }
#endif
    // host-staged: send (n,) | recv (end - start,) in the pinned buffer
    float* send = (float*)gpu_comm_staging(g, (z->padded + z->shard) * sizeof(float));
    float* recv = send + z->padded;
    cudaCheck(cudaMemcpyAsync(send, buf, z->n * sizeof(float), cudaMemcpyDeviceToHost, stream));
    gpu_comm_wait(g, stream, "gradients to the host");
    comm_reduce_scatter_sum_f32(g->host, send, recv, z->n);
    cudaCheck(cudaMemcpyAsync(buf + z->start, recv, (z->end - z->start) * sizeof(float), cudaMemcpyHostToDevice,
                              stream));
    gpu_comm_wait(g, stream, "gradient shard to the device");  // recv is reused by the next call
}

// gpu_comm_can_overlap: whether gradients can be reduced range by range on a
// stream of their own during the backward (gpu_comm_reduce_to_owners): NCCL
// only; the host-staged backend reduces after the backward
static int gpu_comm_can_overlap(const GpuComm* g) {
    return g != NULL && g->backend == GPU_COMM_NCCL && g->host->world > 1;
}

// gpu_comm_reduce_to_owners: buf (padded,) fp32 on every rank; afterwards the
// part of buf[lo, hi) inside a rank's shard [r * shard, (r + 1) * shard) holds,
// on that rank r, the sum over ranks (one in-place ncclReduce per owner, in a
// group). The same sums as gpu_comm_reduce_scatter_sum's over that range; the
// parts other ranks own are left as they were. NCCL only (gpu_comm_can_overlap).
static void gpu_comm_reduce_to_owners(GpuComm* g, float* buf, size_t lo, size_t hi, const ZeroShard* z,
                                      cudaStream_t stream) {
    if (hi <= lo) { return; }
#ifdef USE_NCCL
    if (gpu_comm_can_overlap(g)) {
        const size_t sh = z->shard;
        ncclCall(g, ncclGroupStart());
        for (size_t r = lo / sh; r < (size_t)g->host->world && r * sh < hi; r++) {
            size_t a = lo > r * sh ? lo : r * sh, b = hi < (r + 1) * sh ? hi : (r + 1) * sh;
            if (b > a) { ncclCall(g, ncclReduce(buf + a, buf + a, b - a, ncclFloat32, ncclSum, (int)r, g->nccl, stream)); }
        }
        ncclCall(g, ncclGroupEnd());
        return;
    }
#endif
    (void)g; (void)buf; (void)z; (void)stream;
    fprintf(stderr, "error: gpu_comm_reduce_to_owners needs the NCCL backend [%s:%d]\n", __FILE__, __LINE__);
    exit(1);
}

// gpu_comm_allgather_bf16: buf (padded,) bf16; every rank's shard goes to every rank
static void gpu_comm_allgather_bf16(GpuComm* g, bf16* buf, const ZeroShard* z, cudaStream_t stream) {
    if (g->backend == GPU_COMM_NONE || g->host->world == 1) { return; }
#ifdef USE_NCCL
    if (g->backend == GPU_COMM_NCCL) {
        size_t own = (size_t)g->host->rank * z->shard;
        ncclCall(g, ncclAllGather(buf + own, buf, z->shard, ncclBfloat16, g->nccl, stream));
        return;
    }
#endif
    uint16_t* h = (uint16_t*)gpu_comm_staging(g, (z->padded + z->shard) * sizeof(float));  // (n,) bf16 bits
    cudaCheck(cudaMemcpyAsync(h + z->start, buf + z->start, (z->end - z->start) * sizeof(bf16), cudaMemcpyDeviceToHost,
                              stream));
    gpu_comm_wait(g, stream, "weight shard to the host");
    comm_allgather_elems(g->host, h, z->n, sizeof(uint16_t));
    cudaCheck(cudaMemcpyAsync(buf, h, z->n * sizeof(bf16), cudaMemcpyHostToDevice, stream));
    gpu_comm_wait(g, stream, "weights to the device");
}

// gpu_comm_allgather_f32: buf (padded,) fp32 (checkpoints gather the master weights)
static void gpu_comm_allgather_f32(GpuComm* g, float* buf, const ZeroShard* z, cudaStream_t stream) {
    if (g->backend == GPU_COMM_NONE || g->host->world == 1) { return; }
#ifdef USE_NCCL
    if (g->backend == GPU_COMM_NCCL) {
        size_t own = (size_t)g->host->rank * z->shard;
        ncclCall(g, ncclAllGather(buf + own, buf, z->shard, ncclFloat32, g->nccl, stream));
        return;
    }
#endif
    float* h = (float*)gpu_comm_staging(g, (z->padded + z->shard) * sizeof(float));
    cudaCheck(cudaMemcpyAsync(h + z->start, buf + z->start, (z->end - z->start) * sizeof(float), cudaMemcpyDeviceToHost,
                              stream));
    gpu_comm_wait(g, stream, "master shard to the host");
    comm_allgather_f32(g->host, h, z->n);
    cudaCheck(cudaMemcpyAsync(buf, h, z->n * sizeof(float), cudaMemcpyHostToDevice, stream));
    gpu_comm_wait(g, stream, "master weights to the device");
}

// x (n,) *= s: the summed gradient shard becomes the mean over ranks
__global__ void scale_f32_kernel(float* x, size_t n, float s) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { x[i] *= s; }
}

static void scale_f32(float* x, size_t n, float s, cudaStream_t stream) {
    if (n == 0) { return; }
    cuda_launch(scale_f32_kernel, ceil_div(n, 256), 256, 0, stream)(x, n, s);
    cudaCheck(cudaGetLastError());
}

#endif  // LLMC_COMM_GPU_CUH
