/*
emu/nccl.cpp: NCCL's collectives (the calls of llmc/comm_gpu.cuh, declared in
emu/include/nccl.h) between the processes of an mpirun job, each process with its
own emulated device, carried over MPI.

What is modelled:
  - a communicator of nranks ranks made from one ncclUniqueId: every rank must pass
    the same id and nranks and a distinct rank; the NCCL rank order is the order of
    the communicator (an MPI_Comm_split of MPI_COMM_WORLD keyed by it), so a job
    may number its ranks differently from MPI;
  - one process per device, as NCCL: two ranks on the same host and the same device
    (cudaSetDevice, with EMU_DEVICES devices per process) fail at init with
    ncclInvalidUsage and NCCL's "Duplicate GPU detected" message;
  - AllReduce, Reduce, ReduceScatter, AllGather, Broadcast, in place or not, on the
    integer, fp16, bf16, fp32 and fp64 types, with sum, prod, max, min and avg.
    Reductions combine the ranks' values in rank order 0, 1, ..., n-1 (in fp32 for
    the 16-bit float types, rounded once to the type at the end), so every rank gets
    the same bits and a run is reproducible; NCCL's ring order is not modelled;
  - stream order: a collective is an operation of its stream (or of the graph being
    captured), like a kernel; the emulated streams run work at the call, so the call
    returns when the collective is done (never ncclInProgress);
  - faults: an MPI failure (a peer that died: MPI_ERRORS_RETURN on the
    communicator) becomes the communicator's asynchronous error, ncclRemoteError, as
    NCCL reports a broken peer; ncclCommAbort drops the communicator without
    talking to the others. (Under Open MPI, mpirun usually ends the whole job first.)
  - device pointers: a buffer outside device memory is an error (NCCL would fault).
Without MPI (a job started without mpirun) only a communicator of one rank can be
made; more ranks is ncclInvalidUsage with a line saying so.
*/
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vector>

extern "C" int emu_check_device_range(const void* p, size_t bytes, const char* what);
extern "C" int emu_stream_enqueue(void* stream, void (*fn)(void*), void* arg, void (*free_arg)(void*));

struct ncclComm {
    unsigned magic;
    int rank, nranks, device;
    MPI_Comm mpi;            // MPI_COMM_NULL for a communicator of one rank
    ncclResult_t async;      // the first failure of an operation (ncclSuccess while healthy)
    int aborted;
    char last_error[256];
};
#define EMU_NCCL_MAGIC 0x4e43434cu

static void nccl_warn(ncclComm* c, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static void nccl_warn(ncclComm* c, const char* fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c) { snprintf(c->last_error, sizeof(c->last_error), "%s", msg); }
    fprintf(stderr, "emu: NCCL WARN %s\n", msg);
}

static bool live(ncclComm* c) { return c != nullptr && c->magic == EMU_NCCL_MAGIC && !c->aborted; }

// ----------------------------------------------------------------------------
// element types and reductions

static size_t type_bytes(ncclDataType_t t) {
    switch (t) {
        case ncclInt8: case ncclUint8: return 1;
        case ncclFloat16: case ncclBfloat16: return 2;
        case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
        case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
        default: return 0;
    }
}

template <typename T> static T combine(T a, T b, ncclRedOp_t op) {
    switch (op) {
        case ncclProd: return a * b;
        case ncclMax: return a > b ? a : b;
        case ncclMin: return a < b ? a : b;
        default: return a + b;  // sum and avg
    }
}

// out (n,) = op over r = 0..k-1 of in[r] (each (n,)), in rank order
template <typename T> static void reduce_plain(void* out, const char* in, size_t stride, int k, size_t n, ncclRedOp_t op) {
    T* o = (T*)out;
    for (size_t i = 0; i < n; i++) {
        T acc = ((const T*)in)[i];
        for (int r = 1; r < k; r++) { acc = combine(acc, ((const T*)(in + r * stride))[i], op); }
        if (op == ncclAvg) { acc = (T)(acc / (T)k); }
        o[i] = acc;
    }
}
// the 16-bit float types: combined in fp32, rounded to the type once
template <typename T, float (*to_f)(T), T (*from_f)(float)>
static void reduce_half(void* out, const char* in, size_t stride, int k, size_t n, ncclRedOp_t op) {
    T* o = (T*)out;
    for (size_t i = 0; i < n; i++) {
        float acc = to_f(((const T*)in)[i]);
        for (int r = 1; r < k; r++) { acc = combine(acc, to_f(((const T*)(in + r * stride))[i]), op); }
        if (op == ncclAvg) { acc /= (float)k; }
        o[i] = from_f(acc);
    }
}
static float bf16_to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
static __nv_bfloat16 f_to_bf16(float x) { return __float2bfloat16(x); }
static float f16_to_f(__half x) { return __half2float(x); }
static __half f_to_f16(float x) { return __float2half(x); }

static void reduce(void* out, const char* in, size_t stride, int k, size_t n, ncclDataType_t t, ncclRedOp_t op) {
    switch (t) {
        case ncclInt8: reduce_plain<int8_t>(out, in, stride, k, n, op); break;
        case ncclUint8: reduce_plain<uint8_t>(out, in, stride, k, n, op); break;
        case ncclInt32: reduce_plain<int32_t>(out, in, stride, k, n, op); break;
        case ncclUint32: reduce_plain<uint32_t>(out, in, stride, k, n, op); break;
        case ncclInt64: reduce_plain<int64_t>(out, in, stride, k, n, op); break;
        case ncclUint64: reduce_plain<uint64_t>(out, in, stride, k, n, op); break;
        case ncclFloat32: reduce_plain<float>(out, in, stride, k, n, op); break;
        case ncclFloat64: reduce_plain<double>(out, in, stride, k, n, op); break;
        case ncclBfloat16: reduce_half<__nv_bfloat16, bf16_to_f, f_to_bf16>(out, in, stride, k, n, op); break;
        case ncclFloat16: reduce_half<__half, f16_to_f, f_to_f16>(out, in, stride, k, n, op); break;
        default: break;  // refused at the call
    }
}

// ----------------------------------------------------------------------------
// setup

extern "C" {

ncclResult_t ncclGetVersion(int* version) {
    if (!version) { return ncclInvalidArgument; }
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t r) {
    switch (r) {
        case ncclSuccess: return "no error";
        case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
        case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
        case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
        case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
        case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
        case ncclRemoteError: return "remote process exited or there was a network error";
        case ncclInProgress: return "NCCL operation in progress";
        default: return "unknown result code";
    }
}

const char* ncclGetLastError(ncclComm_t comm) { return comm && comm->magic == EMU_NCCL_MAGIC ? comm->last_error : ""; }

// the id only has to be the same on every rank and differ between jobs
ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
    if (!id) { return ncclInvalidArgument; }
    memset(id, 0, sizeof(*id));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t words[3] = {0x656d752d6e63636cull, (uint64_t)getpid(), (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec};
    memcpy(id->internal, words, sizeof(words));
    gethostname(id->internal + sizeof(words), 64);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t* out, int nranks, ncclUniqueId id, int rank, ncclConfig_t* config) {
    (void)config;  // blocking or not: every call below completes before it returns
    if (!out) { return ncclInvalidArgument; }
    *out = nullptr;
    if (nranks < 1 || rank < 0 || rank >= nranks) {
        nccl_warn(nullptr, "ncclCommInitRank: rank %d of %d is out of range", rank, nranks);
        return ncclInvalidArgument;
    }
    int dev = 0;
    cudaGetDevice(&dev);
    ncclComm* c = (ncclComm*)calloc(1, sizeof(ncclComm));
    c->magic = EMU_NCCL_MAGIC;
    c->rank = rank;
    c->nranks = nranks;
    c->device = dev;
    c->mpi = MPI_COMM_NULL;
    int mpi_up = 0, mpi_down = 0;
    MPI_Initialized(&mpi_up);
    if (mpi_up) { MPI_Finalized(&mpi_down); }
    if (nranks == 1) {
        *out = c;
        return ncclSuccess;
    }
    if (!mpi_up || mpi_down) {
        nccl_warn(nullptr, "the emulated NCCL carries its collectives over MPI: a communicator of %d ranks needs a "
                  "job started with mpirun", nranks);
        free(c);
        return ncclInvalidUsage;
    }
    int world = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (world != nranks) {
        nccl_warn(nullptr, "the emulated NCCL makes communicators of the whole MPI job: nranks %d, but the job has "
                  "%d processes", nranks, world);
        free(c);
        return ncclInvalidUsage;
    }
    MPI_Comm_split(MPI_COMM_WORLD, 0, rank, &c->mpi);
    MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
    // every rank: the same id and nranks, a distinct rank, a distinct (host, device)
    struct Peer {
        ncclUniqueId id;
        int rank, nranks, device;
        char host[64];
    } me;
    memset(&me, 0, sizeof(me));
    me.id = id;
    me.rank = rank;
    me.nranks = nranks;
    me.device = dev;
    gethostname(me.host, sizeof(me.host) - 1);
    std::vector<Peer> all(nranks);
    if (MPI_Allgather(&me, (int)sizeof(Peer), MPI_BYTE, all.data(), (int)sizeof(Peer), MPI_BYTE, c->mpi) !=
        MPI_SUCCESS) {
        nccl_warn(nullptr, "ncclCommInitRank: the ranks could not exchange their addresses");
        free(c);
        return ncclRemoteError;
    }
    ncclResult_t r = ncclSuccess;
    for (int i = 0; i < nranks && r == ncclSuccess; i++) {
        if (memcmp(&all[i].id, &id, sizeof(id)) != 0 || all[i].nranks != nranks || all[i].rank != i) {
            nccl_warn(nullptr, "ncclCommInitRank: rank %d was given another unique id, rank count or rank", i);
            r = ncclInvalidArgument;
        }
        for (int j = 0; j < i && r == ncclSuccess; j++) {
            if (all[i].device == all[j].device && strcmp(all[i].host, all[j].host) == 0) {
                nccl_warn(nullptr, "Duplicate GPU detected : rank %d and rank %d both on CUDA device %d (host %s)",
                          j, i, all[i].device, all[i].host);
                r = ncclInvalidUsage;
            }
        }
    }
    if (r != ncclSuccess) {
        MPI_Comm_free(&c->mpi);
        free(c);
        return r;
    }
    *out = c;
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
    return ncclCommInitRankConfig(comm, nranks, id, rank, nullptr);
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* err) {
    if (!comm || comm->magic != EMU_NCCL_MAGIC || !err) { return ncclInvalidArgument; }
    *err = comm->async;
    return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
    if (!live(comm) || !count) { return ncclInvalidArgument; }
    *count = comm->nranks;
    return ncclSuccess;
}
ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int* device) {
    if (!live(comm) || !device) { return ncclInvalidArgument; }
    *device = comm->device;
    return ncclSuccess;
}
ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
    if (!live(comm) || !rank) { return ncclInvalidArgument; }
    *rank = comm->rank;
    return ncclSuccess;
}

// every operation has run by now (the streams run at the call): a barrier, so that
// no rank tears down while a peer still expects it
ncclResult_t ncclCommFinalize(ncclComm_t comm) {
    if (!live(comm)) { return ncclInvalidArgument; }
    if (comm->async != ncclSuccess) { return comm->async; }
    if (comm->mpi != MPI_COMM_NULL && MPI_Barrier(comm->mpi) != MPI_SUCCESS) {
        comm->async = ncclRemoteError;
        return ncclRemoteError;
    }
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (!comm || comm->magic != EMU_NCCL_MAGIC) { return ncclInvalidArgument; }
    if (comm->mpi != MPI_COMM_NULL && !comm->aborted && comm->async == ncclSuccess) { MPI_Comm_free(&comm->mpi); }
    comm->magic = 0;
    free(comm);
    return ncclSuccess;
}

// no word to the peers (they may be gone): the MPI communicator is left as it is
ncclResult_t ncclCommAbort(ncclComm_t comm) {
    if (!comm || comm->magic != EMU_NCCL_MAGIC) { return ncclInvalidArgument; }
    comm->aborted = 1;
    comm->magic = 0;
    free(comm);
    return ncclSuccess;
}

ncclResult_t ncclGroupStart(void) { return ncclSuccess; }  // each call completes at once: nothing to group
ncclResult_t ncclGroupEnd(void) { return ncclSuccess; }

}  // extern "C"

// ----------------------------------------------------------------------------
// the collectives: checked at the call, run as an operation of the stream

enum Kind { ALL_REDUCE, REDUCE, REDUCE_SCATTER, ALL_GATHER, BROADCAST };
struct Op {
    Kind kind;
    ncclComm* comm;
    const char* send;
    char* recv;
    size_t count;  // elements: per rank for ReduceScatter / AllGather, the whole buffer otherwise
    ncclDataType_t type;
    ncclRedOp_t op;
    int root;
};

static bool mpi_ok(Op* o, int rc, const char* what) {
    if (rc == MPI_SUCCESS) { return true; }
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    nccl_warn(o->comm, "%s: rank %d: the transport failed (%s): a peer is gone?", what, o->comm->rank, msg);
    o->comm->async = ncclRemoteError;
    return false;
}

static void run_op(void* arg) {
    Op* o = (Op*)arg;
    ncclComm* c = o->comm;
    if (!live(c) || c->async != ncclSuccess) { return; }  // a broken communicator does nothing more
    const size_t eb = type_bytes(o->type);
    const size_t bytes = o->count * eb;
    const int n = c->nranks;
    // counts below are in elements of eb bytes (the size checks keep them in int); a
    // communicator of one rank needs no MPI (the job may have none)
    MPI_Datatype elem = MPI_DATATYPE_NULL;
    if (n > 1) {
        MPI_Type_contiguous((int)eb, MPI_BYTE, &elem);
        MPI_Type_commit(&elem);
    }
    switch (o->kind) {
        case ALL_REDUCE: {  // every rank's buffer, then the same rank-order reduction everywhere
            std::vector<char> all(bytes * n);
            if (n == 1) {
                memcpy(all.data(), o->send, bytes);
            } else if (!mpi_ok(o, MPI_Allgather(o->send, (int)o->count, elem, all.data(), (int)o->count, elem, c->mpi),
                               "ncclAllReduce")) {
                break;
            }
            reduce(o->recv, all.data(), bytes, n, o->count, o->type, o->op);
            break;
        }
        case REDUCE: {  // the root gathers every rank's buffer and reduces them in rank order
            std::vector<char> all(c->rank == o->root ? bytes * n : 0);
            if (n == 1) {
                memcpy(all.data(), o->send, bytes);
            } else if (!mpi_ok(o, MPI_Gather(o->send, (int)o->count, elem, all.data(), (int)o->count, elem, o->root,
                                             c->mpi), "ncclReduce")) {
                break;
            }
            if (c->rank == o->root) { reduce(o->recv, all.data(), bytes, n, o->count, o->type, o->op); }
            break;
        }
        case REDUCE_SCATTER: {  // rank r gets chunk r of every rank, and reduces them in rank order
            std::vector<char> mine(bytes * n);
            if (n == 1) {
                memcpy(mine.data(), o->send, bytes);
            } else if (!mpi_ok(o, MPI_Alltoall(o->send, (int)o->count, elem, mine.data(), (int)o->count, elem, c->mpi),
                               "ncclReduceScatter")) {
                break;
            }
            reduce(o->recv, mine.data(), bytes, n, o->count, o->type, o->op);
            break;
        }
        case ALL_GATHER: {
            char* slot = o->recv + (size_t)c->rank * bytes;
            if (slot != o->send) { memmove(slot, o->send, bytes); }
            if (n > 1) {
                mpi_ok(o, MPI_Allgather(MPI_IN_PLACE, 0, elem, o->recv, (int)o->count, elem, c->mpi), "ncclAllGather");
            }
            break;
        }
        case BROADCAST: {
            if (c->rank == o->root && o->recv != o->send) { memmove(o->recv, o->send, bytes); }
            if (n > 1) { mpi_ok(o, MPI_Bcast(o->recv, (int)o->count, elem, o->root, c->mpi), "ncclBroadcast"); }
            break;
        }
    }
    if (n > 1) { MPI_Type_free(&elem); }
}

static ncclResult_t submit(const char* what, Kind kind, const void* send, void* recv, size_t count,
                           ncclDataType_t type, ncclRedOp_t op, int root, ncclComm_t comm, cudaStream_t stream) {
    if (!live(comm)) {
        nccl_warn(nullptr, "%s: the communicator is not valid (destroyed or aborted?)", what);
        return ncclInvalidArgument;
    }
    if (comm->async != ncclSuccess) { return comm->async; }
    const size_t eb = type_bytes(type);
    if (eb == 0) {
        nccl_warn(comm, "%s: data type %d is not supported", what, (int)type);
        return ncclInvalidArgument;
    }
    if ((int)op < 0 || op >= ncclNumOps) {
        nccl_warn(comm, "%s: reduction op %d is not supported", what, (int)op);
        return ncclInvalidArgument;
    }
    if (root < 0 || root >= comm->nranks) {
        nccl_warn(comm, "%s: root %d is not a rank of %d", what, root, comm->nranks);
        return ncclInvalidArgument;
    }
    if (count > (size_t)INT32_MAX) {
        nccl_warn(comm, "%s: %zu elements: the emulation carries at most 2^31 - 1 per rank", what, count);
        return ncclInvalidArgument;
    }
    if (count == 0) { return ncclSuccess; }
    const size_t n = (size_t)comm->nranks;
    size_t send_elems = kind == REDUCE_SCATTER ? count * n : count;
    size_t recv_elems = kind == ALL_GATHER ? count * n : count;
    bool send_used = kind != BROADCAST || comm->rank == root;
    bool recv_used = kind != REDUCE || comm->rank == root;  // ncclReduce writes the root's only
    if ((send_used && emu_check_device_range(send, send_elems * eb, what) != 0) ||
        (recv_used && emu_check_device_range(recv, recv_elems * eb, what) != 0)) {
        nccl_warn(comm, "%s: a buffer is not device memory", what);
        return ncclInvalidArgument;
    }
    Op* o = (Op*)malloc(sizeof(Op));
    *o = Op{kind, comm, (const char*)send, (char*)recv, count, type, op, root};
    if (emu_stream_enqueue((void*)stream, run_op, o, free) != 0) {
        nccl_warn(comm, "%s: the stream is not valid", what);
        return ncclUnhandledCudaError;
    }
    return comm->async;
}

extern "C" {

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
    return submit("ncclAllReduce", ALL_REDUCE, sendbuff, recvbuff, count, datatype, op, 0, comm, stream);
}
ncclResult_t ncclReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                        int root, ncclComm_t comm, cudaStream_t stream) {
    return submit("ncclReduce", REDUCE, sendbuff, recvbuff, count, datatype, op, root, comm, stream);
}
ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, ncclDataType_t datatype,
                               ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
    return submit("ncclReduceScatter", REDUCE_SCATTER, sendbuff, recvbuff, recvcount, datatype, op, 0, comm, stream);
}
ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype,
                           ncclComm_t comm, cudaStream_t stream) {
    return submit("ncclAllGather", ALL_GATHER, sendbuff, recvbuff, sendcount, datatype, ncclSum, 0, comm, stream);
}
ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream) {
    return submit("ncclBroadcast", BROADCAST, sendbuff, recvbuff, count, datatype, ncclSum, root, comm, stream);
}

}  // extern "C"
