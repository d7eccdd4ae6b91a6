/*
cuda_common.cuh: what every CUDA program of the project shares: the error-check
macros (file, line and the failing call, then exit 1), bf16, 128-bit packed
loads and stores, warp reductions. Included by train_gpt.cu, infer.cu, the
kernel headers in llmc/ and the harnesses in dev/cuda/.
*/
#ifndef LLMC_CUDA_COMMON_CUH
#define LLMC_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef __nv_bfloat16 bf16;

// ----------------------------------------------------------------------------
// error checking: names the failing expression, file and line, then exits 1

#define cudaCheck(expr)                                                                          \
    do {                                                                                         \
        cudaError_t cuda_check_err_ = (expr);                                                    \
        if (cuda_check_err_ != cudaSuccess) {                                                    \
            fprintf(stderr, "[CUDA ERROR] %s:%d in %s: %s\n  -> %s\n", __FILE__, __LINE__,       \
                    __func__, #expr, cudaGetErrorString(cuda_check_err_));                       \
            if (cuda_check_err_ == cudaErrorNoDevice || cuda_check_err_ == cudaErrorInsufficientDriver) { \
                fprintf(stderr, "---> HINT: this program needs a CUDA GPU and its driver\n");    \
            }                                                                                    \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

static inline int ceil_div(size_t a, size_t b) { return (int)((a + b - 1) / b); }

// ----------------------------------------------------------------------------
// the one launch form of the project, for nvcc and for the CPU backend (emu/):
//     cuda_launch(kernel, grid, block, smem_bytes, stream)(args...);
// is kernel<<<grid, block, smem_bytes, stream>>>(args...) under nvcc. In the emulated
// build (LLMC_EMU, emu/cuda_emu.h) it checks the configuration and the pointer
// arguments and runs the grid on the CPU.
#ifdef LLMC_EMU
#define cuda_launch(kernel, grid, block, smem, stream) \
    ::emu::make_launch(kernel, grid, block, smem, stream, #kernel, __FILE__, __LINE__)
#else
#define cuda_launch(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#endif

// ----------------------------------------------------------------------------
// device helpers

#if defined(__CUDACC__) || defined(LLMC_EMU)
__device__ __forceinline__ float warp_reduce_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) { v += __shfl_xor_sync(0xffffffffu, v, off); }
    return v;
}

// 128 bits of T in one load/store (8 bf16 or 4 float). The pointer must be
// 16-byte aligned: callers check the row length and base pointers first.
template <class T>
struct alignas(16) Packed128 {
    static constexpr int size = 16 / (int)sizeof(T);
    T payload[size];
    __device__ __forceinline__ T& operator[](int i) { return payload[i]; }
    __device__ __forceinline__ const T& operator[](int i) const { return payload[i]; }
};
typedef Packed128<__nv_bfloat16> x128;
typedef Packed128<float> f128;

template <class T>
__device__ __forceinline__ Packed128<T> load128(const T* p) {
    return *reinterpret_cast<const Packed128<T>*>(p);
}
// load bypassing L1 persistence ("streaming"): for data read exactly once
template <class T>
__device__ __forceinline__ Packed128<T> load128cs(const T* p) {
    Packed128<T> r;
    *reinterpret_cast<int4*>(&r) = __ldcs(reinterpret_cast<const int4*>(p));
    return r;
}
template <class T>
__device__ __forceinline__ void store128(T* p, const Packed128<T>& v) {
    *reinterpret_cast<Packed128<T>*>(p) = v;
}
#endif

static inline int is_aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

#endif  // LLMC_CUDA_COMMON_CUH
