/*
 * swiglu.cuh: the SwiGLU activation of the MLP on the GPU, bf16 in and out, fp32
 * math (llmc/gpt_cpu.h swiglu_forward/backward is the reference; dev/cuda/swiglu.cu
 * checks and times these kernels).
 *
 *   forward:  out (N, F) = silu(gate) * up,   fch (N, 2F) = [gate | up] per row
 *   backward: dfch (N, 2F) += [dgate | dup]   (ACCUMULATES, like the CPU layer)
 *
 * N = B*T rows, F = ffn_dim. Kernel 2 (8 elements per thread, 128-bit) is the
 * production one; it falls back to kernel 1 when F % 8 != 0 or a pointer is not
 * 16-byte aligned.
 *
 * defines: swiglu_forward_kernel1/2, swiglu_backward_kernel1/2, swiglu_forward1/2,
 *          swiglu_backward1/2 (with a block size), swiglu_forward, swiglu_backward
 *          (the model-level calls: outputs, inputs, sizes, stream)
 */
#ifndef LLMC_SWIGLU_CUH
#define LLMC_SWIGLU_CUH

#include "cuda_common.cuh"

#define SWIGLU_BLOCK_SIZE 256

// ----------------------------------------------------------------------------
// GPU kernels (expf, not __expf: the build has no fast math)

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

// version 1: one thread per output element (N * F threads)
__global__ void swiglu_forward_kernel1(bf16* out, const bf16* fch, int N, int F) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)N * F) { return; }
    size_t i = idx / F, j = idx % F;
    const bf16* row = fch + i * 2 * F;
    float g = __bfloat162float(row[j]), u = __bfloat162float(row[F + j]);
    out[idx] = __float2bfloat16(g * sigmoidf_(g) * u);
}

// version 2: one thread per 8 neighbouring outputs. F % 8 == 0 keeps every pack
// inside one row and, with 16-byte aligned bases, every pack 16-byte aligned.
__global__ void swiglu_forward_kernel2(bf16* out, const bf16* fch, int N, int F) {
    size_t idx = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (idx >= (size_t)N * F) { return; }
    size_t i = idx / F, j = idx % F;
    const bf16* row = fch + i * 2 * F;
    x128 g = load128cs(row + j), u = load128cs(row + F + j);  // read once
    x128 o;
    for (int k = 0; k < 8; k++) {
        float gf = __bfloat162float(g[k]);
        o[k] = __float2bfloat16(gf * sigmoidf_(gf) * __bfloat162float(u[k]));
    }
    store128(out + idx, o);
}

__global__ void swiglu_backward_kernel1(bf16* dfch, const bf16* dout, const bf16* fch, int N, int F) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)N * F) { return; }
    size_t i = idx / F, j = idx % F;
    size_t gi = i * 2 * F + j, ui = gi + F;
    float g = __bfloat162float(fch[gi]), u = __bfloat162float(fch[ui]), d = __bfloat162float(dout[idx]);
    float sig = sigmoidf_(g);
    dfch[ui] = __float2bfloat16(__bfloat162float(dfch[ui]) + d * g * sig);
    dfch[gi] = __float2bfloat16(__bfloat162float(dfch[gi]) + d * u * sig * (1.0f + g * (1.0f - sig)));
}

__global__ void swiglu_backward_kernel2(bf16* dfch, const bf16* dout, const bf16* fch, int N, int F) {
    size_t idx = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (idx >= (size_t)N * F) { return; }
    size_t i = idx / F, j = idx % F;
    size_t gi = i * 2 * F + j, ui = gi + F;
    x128 g = load128cs(fch + gi), u = load128cs(fch + ui), d = load128cs(dout + idx);
    x128 dg = load128(dfch + gi), du = load128(dfch + ui);
    for (int k = 0; k < 8; k++) {
        float gf = __bfloat162float(g[k]), uf = __bfloat162float(u[k]), df = __bfloat162float(d[k]);
        float sig = sigmoidf_(gf);
        du[k] = __float2bfloat16(__bfloat162float(du[k]) + df * gf * sig);
        dg[k] = __float2bfloat16(__bfloat162float(dg[k]) + df * uf * sig * (1.0f + gf * (1.0f - sig)));
    }
    store128(dfch + gi, dg);
    store128(dfch + ui, du);
}

// ----------------------------------------------------------------------------
// launchers

static void swiglu_forward1(bf16* out, const bf16* fch, int N, int F, int block_size, cudaStream_t stream) {
    cuda_launch(swiglu_forward_kernel1, ceil_div((size_t)N * F, block_size), block_size, 0, stream)(out, fch, N, F);
    cudaCheck(cudaGetLastError());
}

static void swiglu_forward2(bf16* out, const bf16* fch, int N, int F, int block_size, cudaStream_t stream) {
    if (F % 8 != 0 || !is_aligned16(out) || !is_aligned16(fch)) {
        swiglu_forward1(out, fch, N, F, block_size, stream);
        return;
    }
    cuda_launch(swiglu_forward_kernel2, ceil_div((size_t)N * F / 8, block_size), block_size, 0, stream)(out, fch, N, F);
    cudaCheck(cudaGetLastError());
}

static void swiglu_backward1(bf16* dfch, const bf16* dout, const bf16* fch, int N, int F, int block_size,
                             cudaStream_t stream) {
    cuda_launch(swiglu_backward_kernel1, ceil_div((size_t)N * F, block_size), block_size, 0, stream)(dfch, dout, fch, N, F);
    cudaCheck(cudaGetLastError());
}

static void swiglu_backward2(bf16* dfch, const bf16* dout, const bf16* fch, int N, int F, int block_size,
                             cudaStream_t stream) {
    if (F % 8 != 0 || !is_aligned16(dfch) || !is_aligned16(dout) || !is_aligned16(fch)) {
        swiglu_backward1(dfch, dout, fch, N, F, block_size, stream);
        return;
    }
    cuda_launch(swiglu_backward_kernel2, ceil_div((size_t)N * F / 8, block_size), block_size, 0, stream)(dfch, dout, fch, N,
                                                                                                 F);
    cudaCheck(cudaGetLastError());
}

// ----------------------------------------------------------------------------
// model-level calls

// out (N, F) = silu(fch[:, :F]) * fch[:, F:]
static void swiglu_forward(bf16* out, const bf16* fch, int N, int F, cudaStream_t stream) {
    swiglu_forward2(out, fch, N, F, SWIGLU_BLOCK_SIZE, stream);
}

// dfch (N, 2F) += gradient from dout (N, F)
static void swiglu_backward(bf16* dfch, const bf16* dout, const bf16* fch, int N, int F, cudaStream_t stream) {
    swiglu_backward2(dfch, dout, fch, N, F, SWIGLU_BLOCK_SIZE, stream);
}

#endif  // LLMC_SWIGLU_CUH
