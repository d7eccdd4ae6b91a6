/*
 * adamw.cuh: the optimizer on the GPU: the global gradient norm (deterministic),
 * AdamW on fp32 master weights and fp32 m, v with the clipping factor applied to
 * the gradients, and the bf16 copy of the weights the forward reads, written with
 * stochastic rounding seeded per step (llmc/gpt_cpu.h adamw_update and
 * gpt_grad_norm are the reference; dev/cuda/adamw.cu checks and times AdamW).
 *
 *   g = grads * grad_scale;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr * ((m / bc1) / (sqrt(v / bc2) + eps) + wd * p),  bc = 1 - beta^t
 *   params_bf16 = stochastic_round(p, hash(seed, index))
 *
 * The rounding bits come from a counter-based hash of (seed, element index), so
 * params_to_bf16_sr() can rebuild exactly the copy an AdamW call with the same
 * seed wrote: that is how a resumed run gets back bit-identical bf16 weights.
 *
 * defines: hash32, sr_random, sr_bf16_bits, AdamWArgs, adamw_step, adamw_kernel1/2,
 *          adamw_args, adamw1/2 (with a block size), adamw_update (model level),
 *          adamw_update_at, params_to_bf16_sr_at (a ZeRO-1 shard's part of a tensor),
 *          GRAD_NORM_BLOCKS, grad_norm_squared_kernel1, grad_norm_finish_kernel,
 *          global_norm_squared, params_to_bf16_sr_kernel, params_to_bf16_sr,
 *          params_to_bf16_rne_kernel, params_to_bf16_rne
 */
#ifndef LLMC_ADAMW_CUH
#define LLMC_ADAMW_CUH

#include <math.h>
#include <string.h>
#include "cuda_common.cuh"

#define ADAMW_BLOCK_SIZE 512

// ----------------------------------------------------------------------------
// stochastic rounding, shared by host (checks) and device

// "lowbias32" integer hash (Chris Wellons' hash-prospector): good avalanche, 5 ops
__host__ __device__ inline uint32_t hash32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}
// random bits for element idx under seed (idx may exceed 2^32: the high half is folded in)
__host__ __device__ inline uint32_t sr_random(uint32_t seed, size_t idx) {
    return hash32((uint32_t)idx ^ hash32(seed ^ hash32((uint32_t)((uint64_t)idx >> 32) + 0x9e3779b9u)));
}
// the bf16 bit pattern of x rounded stochastically with random bits r (see the top)
__host__ __device__ inline uint16_t sr_bf16_bits(float x, uint32_t r) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) {  // inf / NaN: round to nearest even, NaN stays NaN
        if (u & 0x007fffffu) { return 0x7fc0; }
        return (uint16_t)(u >> 16);
    }
    return (uint16_t)((u + (r & 0xffffu)) >> 16);
}

// ----------------------------------------------------------------------------
// GPU kernels

struct AdamWArgs {
    float lr, beta1, beta2, bc1, bc2, eps, wd, grad_scale;
    uint32_t seed;
    size_t idx0;  // the rounding index of element 0 (a ZeRO-1 shard starts inside a tensor)
};

// one element: updates m, v, returns the new master weight
__device__ __forceinline__ float adamw_step(float p, float* m, float* v, float g, const AdamWArgs& a) {
    float gi = g * a.grad_scale;
    float mi = a.beta1 * *m + (1.0f - a.beta1) * gi;
    float vi = a.beta2 * *v + (1.0f - a.beta2) * gi * gi;
    *m = mi;
    *v = vi;
    float mhat = mi / a.bc1, vhat = vi / a.bc2;  // IEEE division and sqrt: no fast math
    return p - a.lr * (mhat / (sqrtf(vhat) + a.eps) + a.wd * p);
}

// version 1: one thread per parameter
__global__ void adamw_kernel1(float* params, bf16* params_bf16, float* m, float* v, const float* grads,
                                     size_t n, AdamWArgs a) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) { return; }
    float mi = m[i], vi = v[i];
    float p = adamw_step(params[i], &mi, &vi, grads[i], a);
    params[i] = p;
    m[i] = mi;
    v[i] = vi;
    __nv_bfloat16_raw raw;
    raw.x = sr_bf16_bits(p, sr_random(a.seed, a.idx0 + i));
    params_bf16[i] = bf16(raw);
}

// version 2: one thread per 4 parameters, 128-bit loads/stores of the fp32 arrays,
// one 64-bit store of the 4 bf16 (needs n % 4 == 0 and 16-byte aligned pointers)
__global__ void adamw_kernel2(float* params, bf16* params_bf16, float* m, float* v, const float* grads,
                                     size_t n, AdamWArgs a) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i >= n) { return; }
    f128 p = load128(params + i), mm = load128(m + i), vv = load128(v + i);
    f128 g = load128cs(grads + i);  // read once
    uint16_t out[4];
    for (int k = 0; k < 4; k++) {
        p[k] = adamw_step(p[k], &mm[k], &vv[k], g[k], a);
        out[k] = sr_bf16_bits(p[k], sr_random(a.seed, a.idx0 + i + k));
    }
    store128(params + i, p);
    store128(m + i, mm);
    store128(v + i, vv);
    uint2 packed = make_uint2((uint32_t)out[0] | ((uint32_t)out[1] << 16), (uint32_t)out[2] | ((uint32_t)out[3] << 16));
    *reinterpret_cast<uint2*>(params_bf16 + i) = packed;
}

// ----------------------------------------------------------------------------
// launchers (t is the 1-based optimizer step; the bias corrections are computed
// on the host with the CPU reference's powf so both sides divide by the same floats)

static AdamWArgs adamw_args(float lr, float beta1, float beta2, float eps, float wd, float grad_scale, int t,
                            uint32_t seed) {
    AdamWArgs a;
    a.lr = lr;
    a.beta1 = beta1;
    a.beta2 = beta2;
    a.bc1 = 1.0f - powf(beta1, (float)t);
    a.bc2 = 1.0f - powf(beta2, (float)t);
    a.eps = eps;
    a.wd = wd;
    a.grad_scale = grad_scale;
    a.seed = seed;
    a.idx0 = 0;
    return a;
}

static void adamw1(float* params, bf16* params_bf16, float* m, float* v, const float* grads, size_t n, float lr,
                   float beta1, float beta2, float eps, float wd, float grad_scale, int t, uint32_t seed,
                   int block_size, cudaStream_t stream) {
    AdamWArgs a = adamw_args(lr, beta1, beta2, eps, wd, grad_scale, t, seed);
    cuda_launch(adamw_kernel1, ceil_div(n, block_size), block_size, 0, stream)(params, params_bf16, m, v, grads, n, a);
    cudaCheck(cudaGetLastError());
}

static void adamw2(float* params, bf16* params_bf16, float* m, float* v, const float* grads, size_t n, float lr,
                   float beta1, float beta2, float eps, float wd, float grad_scale, int t, uint32_t seed,
                   int block_size, cudaStream_t stream) {
    bool aligned = is_aligned16(params) && is_aligned16(params_bf16) && is_aligned16(m) && is_aligned16(v) &&
                   is_aligned16(grads);
    if (n % 4 != 0 || !aligned) {
        adamw1(params, params_bf16, m, v, grads, n, lr, beta1, beta2, eps, wd, grad_scale, t, seed, block_size, stream);
        return;
    }
    AdamWArgs a = adamw_args(lr, beta1, beta2, eps, wd, grad_scale, t, seed);
    cuda_launch(adamw_kernel2, ceil_div(n / 4, block_size), block_size, 0, stream)(params, params_bf16, m, v, grads, n, a);
    cudaCheck(cudaGetLastError());
}

// ----------------------------------------------------------------------------
// model-level AdamW: one tensor (n,), t the 1-based step, seed this step's rounding seed

static void adamw_update(float* params, bf16* params_bf16, float* m, float* v, const float* grads, size_t n, float lr,
                         float beta1, float beta2, float eps, float wd, float grad_scale, int t, uint32_t seed,
                         cudaStream_t stream) {
    if (n == 0) { return; }
    adamw2(params, params_bf16, m, v, grads, n, lr, beta1, beta2, eps, wd, grad_scale, t, seed, ADAMW_BLOCK_SIZE,
           stream);
}

// adamw_update_at: the same on elements [idx0, idx0 + n) of a tensor (a ZeRO-1
// shard's part of it; the pointers point at element idx0): the rounding bits are
// those of the whole tensor's update, so the bf16 weights do not depend on how
// the tensor is split over ranks. Version 1 only when idx0 breaks the alignment.
static void adamw_update_at(float* params, bf16* params_bf16, float* m, float* v, const float* grads, size_t n,
                            size_t idx0, float lr, float beta1, float beta2, float eps, float wd, float grad_scale,
                            int t, uint32_t seed, cudaStream_t stream) {
    if (n == 0) { return; }
    AdamWArgs a = adamw_args(lr, beta1, beta2, eps, wd, grad_scale, t, seed);
    a.idx0 = idx0;
    bool aligned = is_aligned16(params) && is_aligned16(params_bf16) && is_aligned16(m) && is_aligned16(v) &&
                   is_aligned16(grads);
    if (n % 4 == 0 && aligned) {
        cuda_launch(adamw_kernel2, ceil_div(n / 4, ADAMW_BLOCK_SIZE), ADAMW_BLOCK_SIZE, 0, stream)(params, params_bf16, m, v,
                                                                                           grads, n, a);
    } else {
        cuda_launch(adamw_kernel1, ceil_div(n, ADAMW_BLOCK_SIZE), ADAMW_BLOCK_SIZE, 0, stream)(params, params_bf16, m, v,
                                                                                       grads, n, a);
    }
    cudaCheck(cudaGetLastError());
}

// ----------------------------------------------------------------------------
// the global gradient norm: sum of squares in a fixed order. GRAD_NORM_BLOCKS is
// fixed (not the SM count) so the result is the same bits on any GPU.

#define GRAD_NORM_BLOCKS 512
#define GRAD_NORM_THREADS 512

// partial (GRAD_NORM_BLOCKS,) = per-block sums of g^2 over a grid-stride range of g (n,)
__global__ void grad_norm_squared_kernel1(float* partial, const float* g, size_t n) {
    __shared__ float warp_sums[GRAD_NORM_THREADS / 32];
    float s = 0.0f;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        s += g[i] * g[i];
    }
    s = warp_reduce_sum(s);
    if (threadIdx.x % 32 == 0) { warp_sums[threadIdx.x / 32] = s; }
    __syncthreads();
    if (threadIdx.x == 0) {
        float t = 0.0f;
        for (int w = 0; w < (int)(blockDim.x / 32); w++) { t += warp_sums[w]; }
        partial[blockIdx.x] = t;
    }
}

// out (1,) = sum of partial (num,) in index order, accumulated in double
__global__ void grad_norm_finish_kernel(float* out, const float* partial, int num) {
    if (threadIdx.x == 0 && blockIdx.x == 0) {
        double s = 0.0;
        for (int i = 0; i < num; i++) { s += partial[i]; }
        out[0] = (float)s;
    }
}

// out (1,) device float = sum of g^2 over g (n,); scratch: GRAD_NORM_BLOCKS floats
static void global_norm_squared(float* out, float* scratch, const float* g, size_t n, cudaStream_t stream) {
    cuda_launch(grad_norm_squared_kernel1, GRAD_NORM_BLOCKS, GRAD_NORM_THREADS, 0, stream)(scratch, g, n);
    cudaCheck(cudaGetLastError());
    cuda_launch(grad_norm_finish_kernel, 1, 32, 0, stream)(out, scratch, GRAD_NORM_BLOCKS);
    cudaCheck(cudaGetLastError());
}

// ----------------------------------------------------------------------------
// the bf16 copy of fp32 weights: stochastic (as an AdamW call with `seed` writes it)
// or round-to-nearest-even (a model loaded from a file, before any step)

__global__ void params_to_bf16_sr_kernel(bf16* out, const float* p, size_t n, uint32_t seed, size_t idx0) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) { return; }
    __nv_bfloat16_raw raw;
    raw.x = sr_bf16_bits(p[i], sr_random(seed, idx0 + i));
    out[i] = bf16(raw);
}

__global__ void params_to_bf16_rne_kernel(bf16* out, const float* p, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) { return; }
    out[i] = __float2bfloat16_rn(p[i]);
}

static void params_to_bf16_sr(bf16* out, const float* p, size_t n, uint32_t seed, cudaStream_t stream) {
    if (n == 0) { return; }
    cuda_launch(params_to_bf16_sr_kernel, ceil_div(n, 256), 256, 0, stream)(out, p, n, seed, 0);
    cudaCheck(cudaGetLastError());
}

// params_to_bf16_sr_at: elements [idx0, idx0 + n) of a tensor, rounded as
// adamw_update_at with the same seed and idx0 rounds them
static void params_to_bf16_sr_at(bf16* out, const float* p, size_t n, size_t idx0, uint32_t seed,
                                 cudaStream_t stream) {
    if (n == 0) { return; }
    cuda_launch(params_to_bf16_sr_kernel, ceil_div(n, 256), 256, 0, stream)(out, p, n, seed, idx0);
    cudaCheck(cudaGetLastError());
}

static void params_to_bf16_rne(bf16* out, const float* p, size_t n, cudaStream_t stream) {
    if (n == 0) { return; }
    cuda_launch(params_to_bf16_rne_kernel, ceil_div(n, 256), 256, 0, stream)(out, p, n);
    cudaCheck(cudaGetLastError());
}

#endif  // LLMC_ADAMW_CUH
