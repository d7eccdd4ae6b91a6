/*
 * qknorm_rope.cuh: the fused QK-norm + RoPE of attention on the GPU, bf16 in and
 * out, fp32 math (llmc/gpt_cpu.h qknorm_rope_forward/backward is the reference;
 * dev/cuda/qknorm_rope.cu checks and times these kernels).
 *
 *   forward:  qkv (B, T, (NH + 2 NKV) hd) rows q heads, k heads, v heads ->
 *             q (B, T, NH, hd), k (B, T, NKV, hd) = rope(rmsnorm(head) * w) (no norm
 *             when qk_norm == 0), rstd (B, T, NH + NKV) fp32 (1 without the norm).
 *             Positions pos0 .. pos0 + T - 1 (pos0 > 0 when decoding after a KV cache);
 *             cos, sin (max_seq_len, hd/2) fp32 from gpt_cpu.h's rope_init.
 *   backward: dqkv q/k parts (B, T, ...) += ... (ACCUMULATES; the v part untouched),
 *             dqw, dkw (hd,) += ... fp32, deterministic (per-block partials in
 *             scratch, QKROPE_PARTIAL_BLOCKS * 2 hd floats, added in block order).
 *
 * Limits: hd even, hd <= 256 (exits with a message otherwise).
 *
 * defines: QKROPE_MAXJ, QKROPE_MAX_HD, QKROPE_PARTIAL_BLOCKS, qknorm_rope_forward_kernel1,
 *          qknorm_rope_backward_kernel1, qknorm_dweight_reduce_kernel, qknorm_rope_forward1,
 *          qknorm_rope_backward1 (with a block size), qknorm_rope_scratch_floats,
 *          qknorm_rope_forward, qknorm_rope_backward (model level)
 */
#ifndef LLMC_QKNORM_ROPE_CUH
#define LLMC_QKNORM_ROPE_CUH

#include "cuda_common.cuh"

#define QKROPE_BLOCK_SIZE 256

#define QKROPE_MAXJ 4                 // pairs per lane: hd / 2 <= 32 * QKROPE_MAXJ (hd <= 256)
#define QKROPE_MAX_HD (64 * QKROPE_MAXJ)
#define QKROPE_PARTIAL_BLOCKS 512     // fixed, so the norm-weight grads' summation order is fixed too

// ----------------------------------------------------------------------------
// GPU kernels

// forward version 1: one warp per (token, head) row; row = bt * (NH + NKV) + h.
// Lane l owns pairs i = l + 32 j (i < hd/2): coalesced loads of both halves.
__global__ void qknorm_rope_forward_kernel1(bf16* q, bf16* k, float* rstd, const bf16* qkv, const bf16* qw,
                                                   const bf16* kw, const float* cosv, const float* sinv, int B, int T,
                                                   int pos0, int NH, int NKV, int hd, int qk_norm, float eps) {
    int NHK = NH + NKV, half = hd / 2, QKV = (NH + 2 * NKV) * hd;
    int lane = threadIdx.x % 32;
    size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (row >= (size_t)B * T * NHK) { return; }  // whole warps leave together
    size_t bt = row / NHK;
    int h = (int)(row % NHK);
    int t = pos0 + (int)(bt % T);
    const bf16* src = qkv + bt * QKV + (size_t)h * hd;
    bf16* dst = h < NH ? q + (bt * NH + h) * hd : k + (bt * NKV + (h - NH)) * hd;
    const bf16* w = h < NH ? qw : kw;

    float x1[QKROPE_MAXJ], x2[QKROPE_MAXJ];
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < QKROPE_MAXJ; j++) {
        int i = lane + 32 * j;
        x1[j] = 0.0f;
        x2[j] = 0.0f;
        if (i < half) {
            x1[j] = __bfloat162float(src[i]);
            x2[j] = __bfloat162float(src[i + half]);
            ss += x1[j] * x1[j] + x2[j] * x2[j];
        }
    }
    float r = 1.0f;
    if (qk_norm) {
        ss = warp_reduce_sum(ss);
        r = 1.0f / sqrtf(ss / hd + eps);
    }
    if (lane == 0) { rstd[row] = r; }
    const float* cs = cosv + (size_t)t * half;
    const float* sn = sinv + (size_t)t * half;
#pragma unroll
    for (int j = 0; j < QKROPE_MAXJ; j++) {
        int i = lane + 32 * j;
        if (i < half) {
            float n1 = x1[j], n2 = x2[j];
            if (qk_norm) {
                n1 = n1 * r * __bfloat162float(w[i]);
                n2 = n2 * r * __bfloat162float(w[i + half]);
            }
            float c = cs[i], s = sn[i];
            dst[i] = __float2bfloat16(n1 * c - n2 * s);
            dst[i + half] = __float2bfloat16(n2 * c + n1 * s);
        }
    }
}

// backward version 1. Block b owns rows [b * rows_per_block, (b+1) * rows_per_block) of the
// (B*T*(NH+NKV)) (token, head) rows; warp w of the block takes rows row0 + w, row0 + w + warps, ...
// Each warp computes its rows' dqkv (+=) and, when qk_norm, keeps per-lane sums of dn * xhat for
// q heads and k heads apart; the warps then add these into shared memory in warp order and the
// block writes partial (gridDim.x, 2 hd). Dynamic shared memory: 2 hd floats.
__global__ void __launch_bounds__(1024) qknorm_rope_backward_kernel1(bf16* dqkv, float* partial, const bf16* dq, const bf16* dk,
                                                    const bf16* qkv, const bf16* qw, const bf16* kw,
                                                    const float* rstd, const float* cosv, const float* sinv, int B,
                                                    int T, int NH, int NKV, int hd, int qk_norm,
                                                    int rows_per_block) {
    extern __shared__ float s_dw[];  // (2 hd): q then k
    int NHK = NH + NKV, half = hd / 2, QKV = (NH + 2 * NKV) * hd;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    size_t nrows = (size_t)B * T * NHK;
    size_t row0 = (size_t)blockIdx.x * rows_per_block;
    size_t row1 = row0 + rows_per_block < nrows ? row0 + rows_per_block : nrows;

    float aq1[QKROPE_MAXJ], aq2[QKROPE_MAXJ], ak1[QKROPE_MAXJ], ak2[QKROPE_MAXJ];
#pragma unroll
    for (int j = 0; j < QKROPE_MAXJ; j++) { aq1[j] = aq2[j] = ak1[j] = ak2[j] = 0.0f; }

    for (size_t row = row0 + warp; row < row1; row += warps) {
        size_t bt = row / NHK;
        int h = (int)(row % NHK);
        int t = (int)(bt % T);
        int isq = h < NH;
        const bf16* d = isq ? dq + (bt * NH + h) * hd : dk + (bt * NKV + (h - NH)) * hd;
        const bf16* src = qkv + bt * QKV + (size_t)h * hd;
        bf16* dsrc = dqkv + bt * QKV + (size_t)h * hd;
        const bf16* w = isq ? qw : kw;
        const float* cs = cosv + (size_t)t * half;
        const float* sn = sinv + (size_t)t * half;

        float dn1[QKROPE_MAXJ], dn2[QKROPE_MAXJ];
#pragma unroll
        for (int j = 0; j < QKROPE_MAXJ; j++) {
            int i = lane + 32 * j;
            dn1[j] = 0.0f;
            dn2[j] = 0.0f;
            if (i < half) {
                float d1 = __bfloat162float(d[i]), d2 = __bfloat162float(d[i + half]);
                float c = cs[i], s = sn[i];
                dn1[j] = d1 * c + d2 * s;
                dn2[j] = d2 * c - d1 * s;
            }
        }
        if (qk_norm) {
            float r = rstd[row];
            float x1[QKROPE_MAXJ], x2[QKROPE_MAXJ];
            float dot = 0.0f;
#pragma unroll
            for (int j = 0; j < QKROPE_MAXJ; j++) {
                int i = lane + 32 * j;
                x1[j] = 0.0f;
                x2[j] = 0.0f;
                if (i < half) {
                    x1[j] = __bfloat162float(src[i]) * r;  // xhat
                    x2[j] = __bfloat162float(src[i + half]) * r;
                    dot += dn1[j] * __bfloat162float(w[i]) * x1[j] + dn2[j] * __bfloat162float(w[i + half]) * x2[j];
                }
            }
            float mean = warp_reduce_sum(dot) / hd;
#pragma unroll
            for (int j = 0; j < QKROPE_MAXJ; j++) {
                int i = lane + 32 * j;
                if (i < half) {
                    float g1 = dn1[j] * __bfloat162float(w[i]), g2 = dn2[j] * __bfloat162float(w[i + half]);
                    dsrc[i] = __float2bfloat16(__bfloat162float(dsrc[i]) + r * (g1 - x1[j] * mean));
                    dsrc[i + half] = __float2bfloat16(__bfloat162float(dsrc[i + half]) + r * (g2 - x2[j] * mean));
                    if (isq) {
                        aq1[j] += dn1[j] * x1[j];
                        aq2[j] += dn2[j] * x2[j];
                    } else {
                        ak1[j] += dn1[j] * x1[j];
                        ak2[j] += dn2[j] * x2[j];
                    }
                }
            }
        } else {
#pragma unroll
            for (int j = 0; j < QKROPE_MAXJ; j++) {
                int i = lane + 32 * j;
                if (i < half) {
                    dsrc[i] = __float2bfloat16(__bfloat162float(dsrc[i]) + dn1[j]);
                    dsrc[i + half] = __float2bfloat16(__bfloat162float(dsrc[i + half]) + dn2[j]);
                }
            }
        }
    }
    if (!qk_norm) { return; }  // uniform over the block: no partials needed
    // warps add their sums into shared memory one after another (fixed order)
    for (int w = 0; w < warps; w++) {
        if (warp == w) {
#pragma unroll
            for (int j = 0; j < QKROPE_MAXJ; j++) {
                int i = lane + 32 * j;
                if (i < half) {
                    if (w == 0) {
                        s_dw[i] = aq1[j];
                        s_dw[i + half] = aq2[j];
                        s_dw[hd + i] = ak1[j];
                        s_dw[hd + i + half] = ak2[j];
                    } else {
                        s_dw[i] += aq1[j];
                        s_dw[i + half] += aq2[j];
                        s_dw[hd + i] += ak1[j];
                        s_dw[hd + i + half] += ak2[j];
                    }
                }
            }
        }
        __syncthreads();
    }
    for (int c = threadIdx.x; c < 2 * hd; c += blockDim.x) { partial[(size_t)blockIdx.x * 2 * hd + c] = s_dw[c]; }
}

// dqw (hd,) += sum over b of partial[b, 0:hd], dkw (hd,) += sum over b of partial[b, hd:2hd], in block order
__global__ void qknorm_dweight_reduce_kernel(float* dqw, float* dkw, const float* partial, int num_blocks,
                                                    int hd) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= 2 * hd) { return; }
    float acc = 0.0f;
    for (int b = 0; b < num_blocks; b++) { acc += partial[(size_t)b * 2 * hd + c]; }
    if (c < hd) {
        dqw[c] += acc;
    } else {
        dkw[c - hd] += acc;
    }
}

// ----------------------------------------------------------------------------
// launchers

static void qknorm_rope_check_shape(int hd, int block_size) {
    if (hd % 2 != 0 || hd > QKROPE_MAX_HD || hd <= 0) {
        fprintf(stderr, "qknorm_rope: hd %d must be even and <= %d\n", hd, QKROPE_MAX_HD);
        exit(1);
    }
    if (block_size % 32 != 0) {
        fprintf(stderr, "qknorm_rope: block size %d must be a multiple of 32\n", block_size);
        exit(1);
    }
}

static void qknorm_rope_forward1(bf16* q, bf16* k, float* rstd, const bf16* qkv, const bf16* qw, const bf16* kw,
                                 const float* cosv, const float* sinv, int B, int T, int pos0, int NH, int NKV,
                                 int hd, int qk_norm, float eps, int block_size, cudaStream_t stream) {
    qknorm_rope_check_shape(hd, block_size);
    size_t threads = (size_t)B * T * (NH + NKV) * 32;
    cuda_launch(qknorm_rope_forward_kernel1, ceil_div(threads, block_size), block_size, 0, stream)(
        q, k, rstd, qkv, qw, kw, cosv, sinv, B, T, pos0, NH, NKV, hd, qk_norm, eps);
    cudaCheck(cudaGetLastError());
}

static int qknorm_rope_backward_blocks(size_t nrows, int block_size, int* rows_per_block) {
    int rpb = ceil_div(nrows, QKROPE_PARTIAL_BLOCKS);
    int warps = block_size / 32;
    if (rpb < warps) { rpb = warps; }  // at least one row per warp
    *rows_per_block = rpb;
    return ceil_div(nrows, rpb);
}

// scratch: at least QKROPE_PARTIAL_BLOCKS * 2 * hd floats
static void qknorm_rope_backward1(bf16* dqkv, float* dqw, float* dkw, float* scratch, const bf16* dq, const bf16* dk,
                                  const bf16* qkv, const bf16* qw, const bf16* kw, const float* rstd,
                                  const float* cosv, const float* sinv, int B, int T, int NH, int NKV, int hd,
                                  int qk_norm, int block_size, cudaStream_t stream) {
    qknorm_rope_check_shape(hd, block_size);
    size_t nrows = (size_t)B * T * (NH + NKV);
    int rpb;
    int grid = qknorm_rope_backward_blocks(nrows, block_size, &rpb);
    size_t smem = 2 * (size_t)hd * sizeof(float);
    cuda_launch(qknorm_rope_backward_kernel1, grid, block_size, smem, stream)(dqkv, scratch, dq, dk, qkv, qw, kw, rstd, cosv,
                                                                     sinv, B, T, NH, NKV, hd, qk_norm, rpb);
    cudaCheck(cudaGetLastError());
    if (qk_norm) {
        cuda_launch(qknorm_dweight_reduce_kernel, ceil_div(2 * (size_t)hd, 256), 256, 0, stream)(dqw, dkw, scratch, grid, hd);
        cudaCheck(cudaGetLastError());
    }
}

// ----------------------------------------------------------------------------
// model-level calls

static size_t qknorm_rope_scratch_floats(int hd) { return (size_t)QKROPE_PARTIAL_BLOCKS * 2 * hd; }

static void qknorm_rope_forward(bf16* q, bf16* k, float* rstd, const bf16* qkv, const bf16* qw, const bf16* kw,
                                const float* cosv, const float* sinv, int B, int T, int pos0, int NH, int NKV, int hd,
                                int qk_norm, float eps, cudaStream_t stream) {
    qknorm_rope_forward1(q, k, rstd, qkv, qw, kw, cosv, sinv, B, T, pos0, NH, NKV, hd, qk_norm, eps,
                         QKROPE_BLOCK_SIZE, stream);
}

// scratch: qknorm_rope_scratch_floats(hd) floats. Training runs from position 0.
static void qknorm_rope_backward(bf16* dqkv, float* dqw, float* dkw, float* scratch, const bf16* dq, const bf16* dk,
                                 const bf16* qkv, const bf16* qw, const bf16* kw, const float* rstd,
                                 const float* cosv, const float* sinv, int B, int T, int NH, int NKV, int hd,
                                 int qk_norm, cudaStream_t stream) {
    qknorm_rope_backward1(dqkv, dqw, dkw, scratch, dq, dk, qkv, qw, kw, rstd, cosv, sinv, B, T, NH, NKV, hd, qk_norm,
                          QKROPE_BLOCK_SIZE, stream);
}

#endif  // LLMC_QKNORM_ROPE_CUH
