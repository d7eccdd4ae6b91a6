/*
decode.cuh: the kernels of one decode step of infer.cu: a few tokens (one per batch row,
B <= MATVEC_MAX_B per matvec launch) run against the bf16 KV cache. At batch 1 a decode
step reads every weight once and does little arithmetic, so each kernel here is built to
stream weights at HBM bandwidth with as few launches as possible (a step is replayed as a
CUDA graph; see infer.cu):

  matvec_forward            out (B, OC) = in (B, K) @ w^T, bf16 weights, fp32 activations;
                            RMSNorm of the input fused in front, and one of four epilogues:
                            store, residual add, SwiGLU (gate and up rows in one pass), soft-cap
  attention_decode_forward  QK-norm + RoPE of the new token, append its key/value to the cache,
                            split-K (flash-decoding) attention over the cache with GQA; the last
                            block of each (row, kv head) combines the splits
  sample_forward            on-device sampling from the logits: greedy, temperature, top-k,
                            top-p, seeded per row; then the next step's embedding row and position

Positions live in device memory (pos (B,) int), so a captured step can be replayed as
the sequence grows. Prefill (many tokens) uses the shared kernels of the trainer instead.

The matching harness with CPU references and timings: dev/cuda/decode.cu (versions:
matvec 1, attention_decode 1, sample 1).

defines: MATVEC_MAX_B, MATVEC_THREADS, MV_STORE, MV_ACCUM, MV_SWIGLU, MV_SOFTCAP,
         matvec_forward_kernel1, matvec_forward, matvec_setup, attention_decode_kernel1,
         attention_decode_forward, attention_decode_chunk, sample_kernel1, sample_forward,
         decode_rng_uniform, bf16_to_f32_forward
*/
#ifndef LLMC_DECODE_CUH
#define LLMC_DECODE_CUH

#include <math.h>
#include <stdint.h>
#include "cuda_common.cuh"

#define MATVEC_MAX_B 8      // batch rows per matvec launch (the input rows are staged in shared memory)
#define MATVEC_THREADS 256  // 8 warps; a warp owns one output row (two for SwiGLU) at a time
#define ATTN_DECODE_THREADS 128
#define SAMPLE_THREADS 1024

enum { MV_STORE = 0, MV_ACCUM = 1, MV_SWIGLU = 2, MV_SOFTCAP = 3 };

__device__ __forceinline__ float decode_warp_max(float v) {
    for (int off = 16; off > 0; off >>= 1) { v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off)); }
    return v;
}

// ----------------------------------------------------------------------------
// matvec: the projections of a decode step.
//   out (B, OC) fp32 = epilogue(rstd[b] * sum_k (in[b,k] * nw[k]) * w[o,k])
//   in (B, K) fp32, w (OC, K) bf16 (or (2 OC, K) for MV_SWIGLU: rows 0..OC-1 gate, OC..2OC-1 up),
//   nw (K,) bf16 RMSNorm weight or NULL (then rstd = 1 and nw = 1), extra (B, OC) or NULL.
//   MV_STORE   out = v                      MV_ACCUM  out += v (+ extra)    (the residual add)
//   MV_SWIGLU  out = silu(v_gate) * v_up    MV_SOFTCAP out = cap tanh(v / cap) (cap > 0)
// Each block stages the B input rows (times nw) in shared memory, (B, K) fp32, and their
// RMSNorm scale; then each warp walks its output rows with 128-bit streaming loads (8 bf16
// per lane, 256 columns per warp per step), fp32 accumulators for all B rows, so each weight
// row is read once for the whole batch. The grid is the number of blocks that fit on the
// GPU at once (grid-stride over rows), so the staging cost is paid once per resident block.
// Needs K % 8 == 0 and 16-byte aligned w rows and in rows (checked by matvec_forward).
template <int B>
static __global__ void __launch_bounds__(MATVEC_THREADS)
    matvec_forward_kernel1(float* out, const float* inp, const bf16* weight, const bf16* norm_w, const float* extra,
                           int OC, int K, int mode, float eps, float cap) {
    extern __shared__ __align__(16) float s_in[];  // (B, K)
    __shared__ float s_part[MATVEC_THREADS / 32][B];
    __shared__ float s_rstd[B];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    int K4 = K / 4;
    float ss[B];
#pragma unroll
    for (int b = 0; b < B; b++) {
        ss[b] = 0.0f;
        for (int i = threadIdx.x; i < K4; i += blockDim.x) {
            float4 v = *reinterpret_cast<const float4*>(inp + (size_t)b * K + 4 * i);
            ss[b] += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
            if (norm_w != NULL) {
                v.x *= __bfloat162float(norm_w[4 * i]);
                v.y *= __bfloat162float(norm_w[4 * i + 1]);
                v.z *= __bfloat162float(norm_w[4 * i + 2]);
                v.w *= __bfloat162float(norm_w[4 * i + 3]);
            }
            *reinterpret_cast<float4*>(s_in + (size_t)b * K + 4 * i) = v;
        }
    }
    if (norm_w != NULL) {
#pragma unroll
        for (int b = 0; b < B; b++) {
            float s = warp_reduce_sum(ss[b]);
            if (lane == 0) { s_part[warp][b] = s; }
        }
    }
    __syncthreads();
    if (threadIdx.x < B) {
        float r = 1.0f;
        if (norm_w != NULL) {
            float s = 0.0f;
            for (int w = 0; w < nwarps; w++) { s += s_part[w][threadIdx.x]; }
            r = 1.0f / sqrtf(s / K + eps);
        }
        s_rstd[threadIdx.x] = r;
    }
    __syncthreads();

    int swiglu = mode == MV_SWIGLU;
    int total_warps = gridDim.x * nwarps;
    for (int o = blockIdx.x * nwarps + warp; o < OC; o += total_warps) {  // o is warp-uniform
        const bf16* w0 = weight + (size_t)o * K;
        const bf16* w1 = weight + (size_t)(o + OC) * K;  // the up row (SwiGLU only)
        float acc0[B], acc1[B];
#pragma unroll
        for (int b = 0; b < B; b++) { acc0[b] = 0.0f; acc1[b] = 0.0f; }
#pragma unroll 2
        for (int k = lane * 8; k < K; k += 32 * 8) {
            x128 wa = load128cs(w0 + k);  // weights are read once per step: stream past L1
            x128 wu;
            if (swiglu) { wu = load128cs(w1 + k); }
            float fa[8], fu[8];
#pragma unroll
            for (int j = 0; j < 8; j++) {
                fa[j] = __bfloat162float(wa[j]);
                fu[j] = swiglu ? __bfloat162float(wu[j]) : 0.0f;
            }
#pragma unroll
            for (int b = 0; b < B; b++) {
                const float* s = s_in + (size_t)b * K + k;
                float4 a0 = *reinterpret_cast<const float4*>(s);
                float4 a1 = *reinterpret_cast<const float4*>(s + 4);
                acc0[b] += fa[0] * a0.x + fa[1] * a0.y + fa[2] * a0.z + fa[3] * a0.w + fa[4] * a1.x + fa[5] * a1.y +
                           fa[6] * a1.z + fa[7] * a1.w;
                if (swiglu) {
                    acc1[b] += fu[0] * a0.x + fu[1] * a0.y + fu[2] * a0.z + fu[3] * a0.w + fu[4] * a1.x +
                               fu[5] * a1.y + fu[6] * a1.z + fu[7] * a1.w;
                }
            }
        }
#pragma unroll
        for (int b = 0; b < B; b++) {
            float v = warp_reduce_sum(acc0[b]) * s_rstd[b];
            float u = swiglu ? warp_reduce_sum(acc1[b]) * s_rstd[b] : 0.0f;
            if (lane == b) {  // lane b writes batch row b: B stores in parallel
                size_t i = (size_t)b * OC + o;
                if (mode == MV_STORE) {
                    out[i] = v;
                } else if (mode == MV_ACCUM) {
                    out[i] += v + (extra != NULL ? extra[i] : 0.0f);
                } else if (mode == MV_SWIGLU) {
                    out[i] = v / (1.0f + expf(-v)) * u;
                } else {
                    out[i] = cap > 0.0f ? cap * tanhf(v / cap) : v;
                }
            }
        }
    }
}

// matvec_setup: lets every instantiation use up to max_smem bytes of shared memory in all
// (the (B, K) fp32 staging can exceed the default 48 KB); call once before launching with
// max_smem = the device's sharedMemPerBlockOptin. The dynamic limit set is max_smem less the
// kernel's static shared bytes (s_rstd): the runtime refuses a dynamic limit that, with the
// static bytes, exceeds the opt-in maximum.
template <int B>
static void matvec_setup_one(size_t max_smem) {
    cudaFuncAttributes fa;
    cudaCheck(cudaFuncGetAttributes(&fa, matvec_forward_kernel1<B>));
    int dyn = (int)(max_smem > fa.sharedSizeBytes ? max_smem - fa.sharedSizeBytes : 0);
    cudaCheck(cudaFuncSetAttribute(matvec_forward_kernel1<B>, cudaFuncAttributeMaxDynamicSharedMemorySize, dyn));
}
static void matvec_setup(size_t max_smem) {
    matvec_setup_one<1>(max_smem);
    matvec_setup_one<2>(max_smem);
    matvec_setup_one<3>(max_smem);
    matvec_setup_one<4>(max_smem);
    matvec_setup_one<5>(max_smem);
    matvec_setup_one<6>(max_smem);
    matvec_setup_one<7>(max_smem);
    matvec_setup_one<8>(max_smem);
}

template <int B>
static void matvec_launch(float* out, const float* inp, const bf16* weight, const bf16* norm_w, const float* extra,
                          int OC, int K, int mode, float eps, float cap, int num_sms, cudaStream_t stream) {
    size_t smem = (size_t)B * K * sizeof(float);
    int per_sm = 0;
    cudaCheck(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, matvec_forward_kernel1<B>, MATVEC_THREADS, smem));
    if (per_sm < 1) {
        fprintf(stderr, "matvec_forward: %d rows of K = %d (%zu bytes of shared memory) do not fit one block\n", B, K,
                smem);
        exit(1);
    }
    int needed = ceil_div((size_t)OC, MATVEC_THREADS / 32);
    int grid = per_sm * num_sms < needed ? per_sm * num_sms : needed;
    cuda_launch(matvec_forward_kernel1<B>, grid, MATVEC_THREADS, smem, stream)(out, inp, weight, norm_w, extra, OC, K, mode,
                                                                      eps, cap);
    cudaCheck(cudaGetLastError());
}

// matvec_forward: any batch B >= 1, in launches of up to MATVEC_MAX_B rows (beyond that each
// launch re-reads the weights: large batches are the prefill path's kind of work).
// out (B, OC), in (B, K), extra (B, OC) or NULL; w and nw as for the kernel.
static void matvec_forward(float* out, const float* inp, const bf16* weight, const bf16* norm_w, const float* extra,
                           int B, int OC, int K, int mode, float eps, float cap, int num_sms, cudaStream_t stream) {
    if (K % 8 != 0 || !is_aligned16(weight) || !is_aligned16(inp)) {
        fprintf(stderr, "matvec_forward: K = %d must be a multiple of 8 and the pointers 16-byte aligned\n", K);
        exit(1);
    }
    for (int b0 = 0; b0 < B; b0 += MATVEC_MAX_B) {
        int nb = B - b0 < MATVEC_MAX_B ? B - b0 : MATVEC_MAX_B;
        float* o = out + (size_t)b0 * OC;
        const float* in = inp + (size_t)b0 * K;
        const float* ex = extra != NULL ? extra + (size_t)b0 * OC : NULL;
        switch (nb) {
            case 1: matvec_launch<1>(o, in, weight, norm_w, ex, OC, K, mode, eps, cap, num_sms, stream); break;
            case 2: matvec_launch<2>(o, in, weight, norm_w, ex, OC, K, mode, eps, cap, num_sms, stream); break;
            case 3: matvec_launch<3>(o, in, weight, norm_w, ex, OC, K, mode, eps, cap, num_sms, stream); break;
            case 4: matvec_launch<4>(o, in, weight, norm_w, ex, OC, K, mode, eps, cap, num_sms, stream); break;
            case 5: matvec_launch<5>(o, in, weight, norm_w, ex, OC, K, mode, eps, cap, num_sms, stream); break;
            case 6: matvec_launch<6>(o, in, weight, norm_w, ex, OC, K, mode, eps, cap, num_sms, stream); break;
            case 7: matvec_launch<7>(o, in, weight, norm_w, ex, OC, K, mode, eps, cap, num_sms, stream); break;
            default: matvec_launch<8>(o, in, weight, norm_w, ex, OC, K, mode, eps, cap, num_sms, stream); break;
        }
    }
}

// ----------------------------------------------------------------------------
// attention over the KV cache for one new token per row (flash-decoding).
//   y (B, NH * hd) fp32 = softmax(q k^T / sqrt(hd)) v over cache positions 0..pos[b]
//   qkv (B, QKV) fp32: the raw projections of the token at position pos[b] (q heads, k heads, v heads)
//   kcache, vcache (B, max_T, NKV, hd) bf16: this layer's cache; entry pos[b] is written here
//   qw, kw (hd,) bf16 QK-norm weights (used when qk_norm), cosv, sinv (max_seq_len, hd/2) RoPE tables
//   part_acc (B, NH, S, hd), part_ml (B, NH, S, 2) fp32 scratch, counters (B, NKV) int, zero at start
// grid (S, NKV, B): block (s, g, b) handles positions [s chunk, (s+1) chunk) of row b for the
// `group` = NH / NKV query heads that read kv head g, so each key and value is loaded once for
// the whole group. Blocks past the row's length exit at once. The block whose chunk holds
// pos[b] also normalises and rotates the new key and writes it and the value into the cache
// (before reading them: same block, ordered by __syncthreads). Each block writes its
// unnormalised partial output, running max and sum; the last block of (b, g) to finish
// (an atomic counter, reset by that block so the step can be replayed) merges them in split
// order, so the result does not depend on which block finishes last.
static __global__ void __launch_bounds__(ATTN_DECODE_THREADS)
    attention_decode_kernel1(float* y, float* part_acc, float* part_ml, int* counters, bf16* kcache, bf16* vcache,
                             const float* qkv, const bf16* qw, const bf16* kw, const float* cosv, const float* sinv,
                             const int* pos, int max_T, int NH, int NKV, int hd, int chunk, int qk_norm, float eps) {
    extern __shared__ __align__(16) float smem[];
    __shared__ int s_last;
    int s = blockIdx.x, g = blockIdx.y, b = blockIdx.z, S = gridDim.x;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    int group = NH / NKV, half = hd / 2, QKV = (NH + 2 * NKV) * hd;
    float* q_s = smem;                      // (group, hd) normalised, rotated, pre-scaled queries
    float* sc = q_s + (size_t)group * hd;   // (group, chunk) scores, then exp(score - max)
    float* s_m = sc + (size_t)group * chunk;  // (group,) chunk max
    float* s_l = s_m + group;                 // (group,) chunk sum of exp
    int p = pos[b];
    int n = p + 1;  // keys 0..p
    int active = (n + chunk - 1) / chunk;
    if (s >= active) { return; }  // the whole block leaves; it takes no part in the merge count
    int t0 = s * chunk, t1 = t0 + chunk < n ? t0 + chunk : n;
    const float* row = qkv + (size_t)b * QKV;
    float scale = 1.0f / sqrtf((float)hd);

    // 1. the group's queries (and, in the last chunk, the new key and value) at position p
    int ntasks = group + (s == active - 1 ? 1 : 0);
    for (int j = warp; j < ntasks; j += nwarps) {
        int is_q = j < group;
        const float* src = row + (size_t)(is_q ? g * group + j : NH + g) * hd;
        const bf16* w = is_q ? qw : kw;
        float r = 1.0f;
        if (qk_norm) {
            float ss = 0.0f;
            for (int i = lane; i < hd; i += 32) { ss += src[i] * src[i]; }
            ss = warp_reduce_sum(ss);
            r = 1.0f / sqrtf(ss / hd + eps);
        }
        const float* cs = cosv + (size_t)p * half;
        const float* sn = sinv + (size_t)p * half;
        size_t kv_at = (((size_t)b * max_T + p) * NKV + g) * hd;
        for (int i = lane; i < half; i += 32) {
            float x1 = src[i] * r, x2 = src[i + half] * r;
            if (qk_norm) {
                x1 *= __bfloat162float(w[i]);
                x2 *= __bfloat162float(w[i + half]);
            }
            float o1 = x1 * cs[i] - x2 * sn[i], o2 = x2 * cs[i] + x1 * sn[i];
            if (is_q) {
                q_s[j * hd + i] = o1 * scale;
                q_s[j * hd + i + half] = o2 * scale;
            } else {
                kcache[kv_at + i] = __float2bfloat16(o1);
                kcache[kv_at + i + half] = __float2bfloat16(o2);
            }
        }
        if (!is_q) {
            const float* vsrc = row + (size_t)(NH + NKV + g) * hd;
            for (int i = lane; i < hd; i += 32) { vcache[kv_at + i] = __float2bfloat16(vsrc[i]); }
        }
    }
    __syncthreads();  // q_s ready; the new key/value visible to the whole block

    // 2. scores: a warp per position, lanes over pairs of head dims
    for (int t = t0 + warp; t < t1; t += nwarps) {
        const __nv_bfloat162* kr = reinterpret_cast<const __nv_bfloat162*>(kcache + (((size_t)b * max_T + t) * NKV + g) * hd);
        for (int j = 0; j < group; j++) {
            float d = 0.0f;
            for (int i2 = lane; i2 < half; i2 += 32) {
                float2 kk = __bfloat1622float2(kr[i2]);
                d += q_s[j * hd + 2 * i2] * kk.x + q_s[j * hd + 2 * i2 + 1] * kk.y;
            }
            d = warp_reduce_sum(d);
            if (lane == 0) { sc[j * chunk + (t - t0)] = d; }
        }
    }
    __syncthreads();

    // 3. per head: the chunk's max and sum of exp
    int len = t1 - t0;
    for (int j = warp; j < group; j += nwarps) {
        float m = -INFINITY;
        for (int t = lane; t < len; t += 32) { m = fmaxf(m, sc[j * chunk + t]); }
        m = decode_warp_max(m);
        float l = 0.0f;
        for (int t = lane; t < len; t += 32) {
            float e = expf(sc[j * chunk + t] - m);
            sc[j * chunk + t] = e;
            l += e;
        }
        l = warp_reduce_sum(l);
        if (lane == 0) { s_m[j] = m; s_l[j] = l; }
    }
    __syncthreads();

    // 4. the unnormalised partial output of this chunk: threads over (head, dim), coalesced v reads
    for (int idx = threadIdx.x; idx < group * hd; idx += blockDim.x) {
        int j = idx / hd, d = idx % hd;
        const bf16* vcol = vcache + (((size_t)b * max_T + t0) * NKV + g) * hd + d;
        float a = 0.0f;
        for (int t = 0; t < len; t++) { a += sc[j * chunk + t] * __bfloat162float(vcol[(size_t)t * NKV * hd]); }
        size_t pi = ((size_t)b * NH + g * group + j) * S + s;
        part_acc[pi * hd + d] = a;
        if (d == 0) {
            part_ml[pi * 2] = s_m[j];
            part_ml[pi * 2 + 1] = s_l[j];
        }
    }

    // 5. the last block of (b, g) merges the chunks
    __threadfence();  // this block's partials are visible device-wide before it is counted
    __syncthreads();
    if (threadIdx.x == 0) {
        int done = atomicAdd(&counters[b * NKV + g], 1);
        s_last = done == active - 1;
    }
    __syncthreads();
    if (!s_last) { return; }
    __threadfence();
    for (int idx = threadIdx.x; idx < group * hd; idx += blockDim.x) {
        int j = idx / hd, d = idx % hd;
        size_t base = ((size_t)b * NH + g * group + j) * S;
        float M = -INFINITY;
        for (int s2 = 0; s2 < active; s2++) { M = fmaxf(M, __ldcg(part_ml + (base + s2) * 2)); }
        float L = 0.0f, o = 0.0f;
        for (int s2 = 0; s2 < active; s2++) {
            float f = expf(__ldcg(part_ml + (base + s2) * 2) - M);
            L += f * __ldcg(part_ml + (base + s2) * 2 + 1);
            o += f * __ldcg(part_acc + (base + s2) * hd + d);
        }
        y[(size_t)b * NH * hd + (size_t)(g * group + j) * hd + d] = o / L;
    }
    if (threadIdx.x == 0) { counters[b * NKV + g] = 0; }  // ready for the next step
}

// attention_decode_chunk: positions per block for a cache of max_T positions: at least 32,
// and at most 64 chunks per row (so the grid stays small for long caches)
static inline int attention_decode_chunk(int max_T) {
    int c = ceil_div((size_t)max_T, 64);
    c = ceil_div((size_t)c, 32) * 32;
    return c < 32 ? 32 : c;
}

static inline size_t attention_decode_smem(int NH, int NKV, int hd, int chunk) {
    int group = NH / NKV;
    return ((size_t)group * hd + (size_t)group * chunk + 2 * (size_t)group) * sizeof(float);
}

// part_acc: at least B * NH * S * hd floats, part_ml B * NH * S * 2, counters B * NKV (zeroed once),
// S = ceil(max_T / chunk)
static void attention_decode_forward(float* y, float* part_acc, float* part_ml, int* counters, bf16* kcache,
                                     bf16* vcache, const float* qkv, const bf16* qw, const bf16* kw,
                                     const float* cosv, const float* sinv, const int* pos, int B, int max_T, int NH,
                                     int NKV, int hd, int chunk, int qk_norm, float eps, cudaStream_t stream) {
    int S = ceil_div((size_t)max_T, chunk);
    size_t smem = attention_decode_smem(NH, NKV, hd, chunk);
    if (hd % 2 != 0 || NH % NKV != 0 || smem > 48 * 1024) {
        fprintf(stderr, "attention_decode_forward: unsupported shape NH %d NKV %d hd %d chunk %d\n", NH, NKV, hd, chunk);
        exit(1);
    }
    dim3 grid(S, NKV, B);
    cuda_launch(attention_decode_kernel1, grid, ATTN_DECODE_THREADS, smem, stream)(y, part_acc, part_ml, counters, kcache,
                                                                         vcache, qkv, qw, kw, cosv, sinv, pos, max_T,
                                                                         NH, NKV, hd, chunk, qk_norm, eps);
    cudaCheck(cudaGetLastError());
}

// ----------------------------------------------------------------------------
// sampling on the device

// the project's RNG (llmc/rand.h: splitmix64, 24-bit uniforms), the same sequence on the device
__device__ __forceinline__ float decode_rng_uniform(uint64_t* state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z = z ^ (z >> 31);
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

// block-wide reductions over SAMPLE_THREADS threads. buf: 32 words of shared memory. Every
// thread adds the per-warp results in the same order, so all get the same bits.
__device__ float sample_block_sum(float v, float* buf) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = warp_reduce_sum(v);
    __syncthreads();  // buf is free (an earlier call's readers are done)
    if (lane == 0) { buf[warp] = v; }
    __syncthreads();
    float r = 0.0f;
    for (int w = 0; w < nw; w++) { r += buf[w]; }
    return r;
}

__device__ int sample_block_count(int v, int* buf) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    for (int off = 16; off > 0; off >>= 1) { v += __shfl_xor_sync(0xffffffffu, v, off); }
    __syncthreads();
    if (lane == 0) { buf[warp] = v; }
    __syncthreads();
    int r = 0;
    for (int w = 0; w < nw; w++) { r += buf[w]; }
    return r;
}

__device__ int sample_block_max_int(int v, int* buf) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    for (int off = 16; off > 0; off >>= 1) { v = max(v, __shfl_xor_sync(0xffffffffu, v, off)); }
    __syncthreads();
    if (lane == 0) { buf[warp] = v; }
    __syncthreads();
    int r = buf[0];
    for (int w = 1; w < nw; w++) { r = max(r, buf[w]); }
    return r;
}

// (value, index) argmax, lowest index on ties (as llmc/sampler.h's sampler_argmax)
__device__ int sample_block_argmax(float v, int i, float* vbuf, int* ibuf) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    for (int off = 16; off > 0; off >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, v, off);
        int i2 = __shfl_xor_sync(0xffffffffu, i, off);
        if (v2 > v || (v2 == v && i2 < i)) { v = v2; i = i2; }
    }
    __syncthreads();
    if (lane == 0) { vbuf[warp] = v; ibuf[warp] = i; }
    __syncthreads();
    float bv = vbuf[0];
    int bi = ibuf[0];
    for (int w = 1; w < nw; w++) {
        if (vbuf[w] > bv || (vbuf[w] == bv && ibuf[w] < bi)) { bv = vbuf[w]; bi = ibuf[w]; }
    }
    return bi;
}

// sample_kernel1: one block per batch row b.
//   logits (B, Vp) fp32 (entries >= V are never candidates), probs (B, Vp) fp32 scratch,
//   rng (B,) per-row RNG states, wte (Vp, C) bf16.
//   temperature 0: argmax (lowest id on ties). Otherwise p_i = exp((z_i - max) / temperature);
//   top-k keeps the p_i >= the k-th largest value, top-p then keeps the p_i >= the largest
//   threshold whose kept mass is >= top_p of the total (both found by bisection on the float
//   bits of p, 31 block-wide passes each; values tied with the threshold are all kept); a
//   uniform draw picks among the kept ids in id order (a block-wide prefix sum).
// Writes the token to out_tokens[gen[b] * B + b] (out_tokens (steps, B)), then gen[b] += 1,
// pos[b] += 1, and x[b] (B, C) fp32 = wte[token]: the next step's input.
static __global__ void __launch_bounds__(SAMPLE_THREADS)
    sample_kernel1(int* out_tokens, int* gen, int* pos, float* x, uint64_t* rng, float* probs, const float* logits,
                   const bf16* wte, int V, int Vp, int C, float temperature, int top_k, float top_p) {
    __shared__ float fbuf[32];
    __shared__ int ibuf[32];
    __shared__ int s_tok;
    __shared__ float s_r;
    int b = blockIdx.x, B = gridDim.x, tid = threadIdx.x, nt = blockDim.x;
    const float* z = logits + (size_t)b * Vp;
    float* pr = probs + (size_t)b * Vp;
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = tid; i < V; i += nt) {
        if (z[i] > bv || (z[i] == bv && i < bi)) { bv = z[i]; bi = i; }
    }
    int best = sample_block_argmax(bv, bi, fbuf, ibuf);
    if (best == 0x7fffffff) { best = 0; }  // every logit NaN: no candidate beats another
    int tok = best;
    if (temperature > 0.0f) {
        float maxv = z[best];
        for (int i = tid; i < V; i += nt) { pr[i] = expf((z[i] - maxv) / temperature); }
        __syncthreads();  // pr visible to the whole block
        unsigned int tau = 0u;  // the float bits of the smallest kept p (0: keep all)
        if (top_k > 0 && top_k < V) {
            unsigned int lo = 0u, hi = 0x3f800001u;  // count(p >= lo) >= k holds; count(p >= hi) = 0
            while (hi - lo > 1) {
                unsigned int mid = lo + (hi - lo) / 2;
                float t = __uint_as_float(mid);
                int c = 0;
                for (int i = tid; i < V; i += nt) { c += pr[i] >= t; }
                if (sample_block_count(c, ibuf) >= top_k) { lo = mid; } else { hi = mid; }
            }
            tau = lo;
        }
        if (top_p < 1.0f) {
            float tot = 0.0f;
            for (int i = tid; i < V; i += nt) { tot += pr[i]; }
            float target = top_p * sample_block_sum(tot, fbuf);
            unsigned int lo = tau, hi = 0x3f800001u;  // the kept mass falls as the threshold rises
            float m = 0.0f, t = __uint_as_float(lo);
            for (int i = tid; i < V; i += nt) { m += pr[i] >= t ? pr[i] : 0.0f; }
            if (sample_block_sum(m, fbuf) >= target) {  // else the top-k set is already short of top_p
                while (hi - lo > 1) {
                    unsigned int mid = lo + (hi - lo) / 2;
                    float tm = __uint_as_float(mid);
                    float mm = 0.0f;
                    for (int i = tid; i < V; i += nt) { mm += pr[i] >= tm ? pr[i] : 0.0f; }
                    if (sample_block_sum(mm, fbuf) >= target) { lo = mid; } else { hi = mid; }
                }
                tau = lo;
            }
        }
        // prefix sum of the kept mass over contiguous per-thread ranges, in id order
        float t = __uint_as_float(tau);
        int per = (V + nt - 1) / nt;
        int i0 = tid * per < V ? tid * per : V, i1 = i0 + per < V ? i0 + per : V;
        float part = 0.0f;
        int last = -1;
        for (int i = i0; i < i1; i++) {
            if (pr[i] >= t) { part += pr[i]; last = i; }
        }
        // thread t's range is [excl_t, incl_t); incl_t and excl_{t+1} come from the same float
        // operations, so the ranges tile [0, total) exactly and at most one holds the draw
        int lane = tid % 32, warp = tid / 32, nw = nt / 32;
        float incl_w = part;
        for (int off = 1; off < 32; off <<= 1) {
            float u = __shfl_up_sync(0xffffffffu, incl_w, off);
            if (lane >= off) { incl_w += u; }
        }
        float excl_w = __shfl_up_sync(0xffffffffu, incl_w, 1);
        if (lane == 0) { excl_w = 0.0f; }
        __syncthreads();
        if (lane == 31) { fbuf[warp] = incl_w; }
        if (tid == 0) { s_tok = -1; }
        __syncthreads();
        float before = 0.0f, total = 0.0f;
        for (int w = 0; w < nw; w++) {
            if (w < warp) { before += fbuf[w]; }
            total += fbuf[w];
        }
        float incl = incl_w + before, excl = excl_w + before;
        if (tid == 0) { s_r = decode_rng_uniform(&rng[b]) * total; }
        __syncthreads();
        float r = s_r;
        if (part > 0.0f && r >= excl && r < incl) {  // at most one thread's range holds r
            float c = excl;
            int pick = last;
            for (int i = i0; i < i1; i++) {
                if (pr[i] >= t) {
                    c += pr[i];
                    if (r < c) { pick = i; break; }
                }
            }
            s_tok = pick;
        }
        __syncthreads();  // s_tok settled
        tok = s_tok;
        if (tok < 0) {  // rounding put r past every range (uniform branch): take the last kept id
            int lastmax = sample_block_max_int(last, ibuf);
            tok = lastmax >= 0 ? lastmax : best;
        }
    }
    if (tid == 0) {
        int gi = gen[b];
        out_tokens[(size_t)gi * B + b] = tok;
        gen[b] = gi + 1;
        pos[b] = pos[b] + 1;
    }
    const bf16* e = wte + (size_t)tok * C;
    for (int c = tid; c < C; c += nt) { x[(size_t)b * C + c] = __bfloat162float(e[c]); }
}

// sample_forward: B rows; out_tokens (steps, B), gen, pos (B,) int, x (B, C), rng (B,), probs (B, Vp)
static void sample_forward(int* out_tokens, int* gen, int* pos, float* x, uint64_t* rng, float* probs,
                           const float* logits, const bf16* wte, int B, int V, int Vp, int C, float temperature,
                           int top_k, float top_p, cudaStream_t stream) {
    cuda_launch(sample_kernel1, B, SAMPLE_THREADS, 0, stream)(out_tokens, gen, pos, x, rng, probs, logits, wte, V, Vp, C,
                                                     temperature, top_k, top_p);
    cudaCheck(cudaGetLastError());
}

// ----------------------------------------------------------------------------
// bf16_to_f32: out (N,) fp32 = inp (N,) bf16 (the prefill's last residual row -> the decode input)
static __global__ void bf16_to_f32_kernel(float* out, const bf16* inp, size_t N) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) { out[i] = __bfloat162float(inp[i]); }
}

static void bf16_to_f32_forward(float* out, const bf16* inp, size_t N, cudaStream_t stream) {
    if (N == 0) { return; }
    cuda_launch(bf16_to_f32_kernel, ceil_div(N, 256), 256, 0, stream)(out, inp, N);
    cudaCheck(cudaGetLastError());
}

#endif  // LLMC_DECODE_CUH
