/*
emu/cuda_emu.h: the CUDA code of the project, run on the CPU.

The emulated build compiles the same .cu sources with the host C++ compiler:
    g++ -x c++ -include emu/cuda_emu.h -DLLMC_EMU ... file.cu emu/emu.cpp emu/cublaslt.cpp
This header (included first, before any source line) gives the CUDA language
(qualifiers, threadIdx & co, __syncthreads, warp collectives, atomics, device
intrinsics) and the launch form that llmc/cuda_common.cuh's cuda_launch() expands
to. emu/emu.cpp implements the runtime API (memory, streams, events, graphs,
device properties, launches) with the toolkit's own cuda_runtime.h declarations,
and emu/cublaslt.cpp the cuBLASLt calls. No libcudart, no driver.

How a launch runs (docs/emu.md has the whole story):
  - every CUDA thread is a fiber (its own stack, our own context switch) of the
    OS thread that runs its block; one block per OS thread at a time, the blocks
    of a grid spread over the OpenMP threads;
  - a thread runs until it reaches a barrier or a warp collective (shuffle,
    ballot, __syncwarp, ldmatrix, mma), then the next ready thread of the block
    runs; EMU_ORDER=forward|reverse|random:SEED picks that order (race finder);
  - __shared__ variables are thread_local: one copy per OS thread, i.e. per
    running block; extern __shared__ arrays are per-OS-thread buffers of the
    H100's opt-in maximum (emu/gen_dyn_smem.sh defines them);
  - device memory is host malloc (ASan sees overruns as memcheck would), kept in
    a registry so that kernel pointer arguments and copies are checked;
  - EMU_POISON=1 fills fresh device and shared memory with NaN bytes (0xff);
  - EMU_STREAMS=random:SEED queues stream work (a launch keeps its arguments by
    value, as KernelBodyT does) and runs it at the synchronizing calls in a seeded
    random order between streams (events and stream order kept); serial, the
    default, runs it at the call.
It models semantics, never speed.
*/
#ifndef LLMC_CUDA_EMU_H
#define LLMC_CUDA_EMU_H

#ifndef LLMC_EMU
#define LLMC_EMU 1
#endif

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

// ----------------------------------------------------------------------------
// the language: qualifiers

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
// block-scope thread_local: one copy per OS thread, and an OS thread runs one block at a time
#define __shared__ thread_local

namespace emu {

// ----------------------------------------------------------------------------
// the running thread (a fiber) and its block; set by the scheduler

struct Fiber;
struct Block;
struct ThreadRegs {
    uint3 tidx;
    int lane;
    int warp;
    int lin;
};
struct BlockRegs {
    uint3 bidx;
    dim3 bdim;
    dim3 gdim;
};
extern thread_local ThreadRegs* t_regs;
extern thread_local BlockRegs* t_bregs;

// an error inside a kernel: prints the kernel, block, thread and the message, then exits 1
[[noreturn]] void kernel_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// __syncthreads: every live thread of the block waits here; the call site is checked
void syncthreads(const char* file, int line);
int syncthreads_count(int pred, const char* file, int line);

// One warp collective: every lane of mask deposits `in` (at most 64 bytes) and, once the
// last lane of the mask has arrived, combine(mask, ins, outs) computes every lane's `out`
// (ins/outs: 32 slots of 64 bytes, indexed by lane). A lane outside its own mask, lanes
// that disagree on the mask or on the operation, or a mask lane that never arrives
// (exited, or waiting elsewhere) is a kernel error.
typedef unsigned char CollSlot[64];
typedef void (*CombineFn)(unsigned mask, const CollSlot* ins, CollSlot* outs);
void warp_collective(unsigned mask, const char* what, const void* in, size_t in_bytes, void* out, size_t out_bytes,
                     CombineFn combine);

// cp.async: `bytes` bytes to shared memory, of which `src_bytes` are read from src (the rest
// zero-filled); the destination reads as poison (0xff bytes) from the issue on, and the data
// lands at the cp_async_wait() that covers its group, not before
void cp_async(void* dst, const void* src, int bytes, int src_bytes);
void cp_async_commit();
void cp_async_wait(int n);

// ----------------------------------------------------------------------------
// launches

// what a launch needs to know of its kernel: its body for one thread, with the arguments
struct KernelBody {
    virtual void run() = 0;
    virtual ~KernelBody() {}
};
// checks the configuration (sets the launch error like the runtime) and enqueues the grid on
// the stream; takes ownership of body
void launch(const void* func, const char* name, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
            KernelBody* body, const char* file, int line);
// a kernel's pointer argument must be null, device memory or pinned host memory
void check_kernel_pointer(const char* name, int index, const void* p, const char* file, int line);

template <class F, class Tup>
struct KernelBodyT : KernelBody {
    F func;
    Tup args;
    KernelBodyT(F f, Tup&& a) : func(f), args(std::move(a)) {}
    void run() override {
        Tup copy = args;  // every thread gets its own parameters, as on the GPU
        std::apply(func, copy);
    }
};

template <class... P>
struct Launch {
    void (*func)(P...);
    const char* name;
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    const char* file;
    int line;

    template <size_t I = 0, class Tup>
    void check_pointers(const Tup& t) {
        if constexpr (I < std::tuple_size<Tup>::value) {
            typedef typename std::tuple_element<I, Tup>::type E;
            if constexpr (std::is_pointer<E>::value) {
                check_kernel_pointer(name, (int)I, (const void*)std::get<I>(t), file, line);
            }
            check_pointers<I + 1>(t);
        }
    }
    template <class... A>
    void operator()(A&&... a) {
        typedef std::tuple<typename std::decay<P>::type...> Tup;
        Tup t(std::forward<A>(a)...);
        check_pointers(t);
        launch((const void*)func, name, grid, block, smem, stream, new KernelBodyT<void (*)(P...), Tup>(func, std::move(t)),
               file, line);
    }
};
template <class... P>
Launch<P...> make_launch(void (*f)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, const char* name,
                         const char* file, int line) {
    return Launch<P...>{f, name, grid, block, smem, stream, file, line};
}

// host-side views: is [p, p + n) inside a device (or pinned host) allocation?
bool is_device_range(const void* p, size_t n);

}  // namespace emu

// ----------------------------------------------------------------------------
// built-in variables

#define threadIdx (::emu::t_regs->tidx)
#define blockIdx (::emu::t_bregs->bidx)
#define blockDim (::emu::t_bregs->bdim)
#define gridDim (::emu::t_bregs->gdim)
static constexpr int warpSize = 32;

// ----------------------------------------------------------------------------
// synchronisation and warp collectives

#define __syncthreads() ::emu::syncthreads(__FILE__, __LINE__)
#define __syncthreads_count(p) ::emu::syncthreads_count((p), __FILE__, __LINE__)

namespace emu {
inline void combine_none(unsigned, const CollSlot*, CollSlot*) {}
// shuffles: in = {value (16 bytes), src lane or offset, width, mode}
struct ShflIn {
    unsigned char v[16];
    int arg;
    int width;
    int mode;  // 0 idx, 1 xor, 2 up, 3 down
};
inline void combine_shfl(unsigned mask, const CollSlot* ins, CollSlot* outs) {
    for (int lane = 0; lane < 32; lane++) {
        if (!((mask >> lane) & 1u)) { continue; }
        const ShflIn* me = (const ShflIn*)ins[lane];
        int w = me->width, base = lane & ~(w - 1), src = lane;
        switch (me->mode) {
            case 0: src = base + (me->arg & (w - 1)); break;
            // xor may read an earlier group, never a later one (PTX shfl.bfly: j <= maxLane; the
            // programming guide's "access elements from earlier groups of threads")
            case 1: src = lane ^ me->arg; if (src < 0 || src >= base + w) { src = lane; } break;
            case 2: src = lane - me->arg; if (src < base) { src = lane; } break;
            default: src = lane + me->arg; if (src >= base + w) { src = lane; } break;
        }
        if (src < 0 || src > 31) { src = lane; }  // a delta beyond the warp (or negative as an int)
        if (!((mask >> src) & 1u)) {
            kernel_error("shuffle: lane %d reads lane %d, which is not in the mask 0x%08x", lane, src, mask);
        }
        memcpy(outs[lane], ((const ShflIn*)ins[src])->v, 16);
    }
}
template <class T>
inline T shfl(unsigned mask, T v, int arg, int width, int mode, const char* what) {
    static_assert(sizeof(T) <= 16, "shuffle of a type over 16 bytes");
    if (width <= 0 || width > 32 || (width & (width - 1))) { kernel_error("%s: width %d is not a power of 2 <= 32", what, width); }
    ShflIn in;
    memset(&in, 0, sizeof(in));
    memcpy(in.v, &v, sizeof(T));
    in.arg = arg;
    in.width = width;
    in.mode = mode;
    unsigned char out[16];
    warp_collective(mask, what, &in, sizeof(in), out, sizeof(out), combine_shfl);
    T r;
    memcpy(&r, out, sizeof(T));
    return r;
}
inline void combine_ballot(unsigned mask, const CollSlot* ins, CollSlot* outs) {
    unsigned b = 0;
    for (int lane = 0; lane < 32; lane++) {
        if (((mask >> lane) & 1u) && *(const int*)ins[lane]) { b |= 1u << lane; }
    }
    for (int lane = 0; lane < 32; lane++) { memcpy(outs[lane], &b, 4); }
}
inline unsigned ballot(unsigned mask, int pred, const char* what) {
    int p = pred != 0;
    unsigned b;
    warp_collective(mask, what, &p, sizeof(p), &b, sizeof(b), combine_ballot);
    return b;
}
}  // namespace emu

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    return ::emu::shfl(mask, v, src, width, 0, "__shfl_sync");
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    return ::emu::shfl(mask, v, lane_mask, width, 1, "__shfl_xor_sync");
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return ::emu::shfl(mask, v, (int)delta, width, 2, "__shfl_up_sync");
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return ::emu::shfl(mask, v, (int)delta, width, 3, "__shfl_down_sync");
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return ::emu::ballot(mask, pred, "__ballot_sync"); }
inline int __any_sync(unsigned mask, int pred) { return (::emu::ballot(mask, pred, "__any_sync") & mask) != 0; }
inline int __all_sync(unsigned mask, int pred) {
    return (::emu::ballot(mask, pred, "__all_sync") & mask) == mask;
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    ::emu::warp_collective(mask, "__syncwarp", nullptr, 0, nullptr, 0, ::emu::combine_none);
}
inline unsigned __activemask() { return 0xffffffffu; }

// ----------------------------------------------------------------------------
// atomics (blocks run on several OS threads: these are real atomics)

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <class T>
inline typename std::enable_if<std::is_integral<T>::value, T>::type atomicAdd(T* p, T v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
inline float atomicAdd(float* p, float v) {
    float old, sum;
    __atomic_load(p, &old, __ATOMIC_SEQ_CST);
    do { sum = old + v; } while (!__atomic_compare_exchange(p, &old, &sum, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    return old;
}
template <class T>
inline T atomicMax(T* p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
    return old;
}
template <class T>
inline T atomicMin(T* p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (old > v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
    return old;
}
template <class T>
inline T atomicCAS(T* p, T compare, T v) {
    __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;
}
template <class T>
inline T atomicExch(T* p, T v) {
    return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}

// ----------------------------------------------------------------------------
// device intrinsics: loads with cache hints are plain loads; fast math maps to the float functions

template <class T>
inline T __ldcg(const T* p) { return *p; }
template <class T>
inline T __ldcs(const T* p) { return *p; }
template <class T>
inline T __ldg(const T* p) { return *p; }
template <class T>
inline void __stcs(T* p, T v) { *p = v; }
template <class T>
inline void __stcg(T* p, T v) { *p = v; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
inline int __float_as_int(float f) { int u; memcpy(&u, &f, 4); return u; }
// address-space conversions: only the asm paths read them (never taken here)
inline size_t __cvta_generic_to_shared(const void* p) { return (size_t)(uint32_t)(uintptr_t)p; }
inline size_t __cvta_generic_to_global(const void* p) { return (size_t)(uintptr_t)p; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
// rsqrtf: the GPU's is approximate (2 ulp); 1/sqrtf is within that
#define rsqrtf(x) (1.0f / sqrtf(x))

// the inline PTX helpers' bodies
// ----------------------------------------------------------------------------
// device min/max (CUDA's overloads for every arithmetic type, mixed types by the usual
// conversions) and the kernel-pointer forms of the runtime's function calls, which
// cuda_runtime.h gives only to nvcc

template <class A, class B, class = typename std::enable_if<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>::type>
__device__ inline typename std::common_type<A, B>::type min(A a, B b) {
    typedef typename std::common_type<A, B>::type R;
    return (R)a < (R)b ? (R)a : (R)b;
}
template <class A, class B, class = typename std::enable_if<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>::type>
__device__ inline typename std::common_type<A, B>::type max(A a, B b) {
    typedef typename std::common_type<A, B>::type R;
    return (R)a > (R)b ? (R)a : (R)b;
}
template <class... P>
inline cudaError_t cudaFuncSetAttribute(void (*f)(P...), enum cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute((const void*)f, attr, value);
}
template <class... P>
inline cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes* a, void (*f)(P...)) {
    return cudaFuncGetAttributes(a, (const void*)f);
}
template <class... P>
inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* n, void (*f)(P...), int block_size, size_t dyn) {
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(n, (const void*)f, block_size, dyn);
}

#include "ptx.h"

#endif  // LLMC_CUDA_EMU_H
