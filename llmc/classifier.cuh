/*
 * classifier.cuh: the fused classifier head on the GPU: soft-cap, softmax over
 * the first V logits, cross-entropy, z-loss and the gradient of the logits, in
 * one kernel over each row (llmc/gpt_cpu.h classifier_forward + classifier_backward
 * are the reference; dev/cuda/classifier.cu checks and times it).
 *
 *   in:  logits (BT, Vp) bf16 straight out of the lm_head matmul (before the cap),
 *        targets (BT,) in [0, V)
 *   out: losses (BT,) fp32 = lse - z[target] + zloss * lse^2;
 *        logits OVERWRITTEN in place by the bf16 gradient of scale * sum(losses)
 *        with respect to the pre-cap logits (0 for the padding columns j >= V)
 *
 * The trainer calls it on chunks of rows (fused_classifier_chunk_rows) so that the
 * (B, T, Vp) logits never exist: one bf16 (chunk, Vp) buffer is the matmul output,
 * this kernel's in-place gradient, and the input of the two lm_head backward matmuls.
 *
 * defines: softcap_logit, online_add, online_merge, block_lse, dlogit,
 *          classifier_kernel1/2, classifier1/2 (with a block size), fused_classifier
 */
#ifndef LLMC_CLASSIFIER_CUH
#define LLMC_CLASSIFIER_CUH

#include "cuda_common.cuh"

#define CLASSIFIER_BLOCK_SIZE 512

// ----------------------------------------------------------------------------
// GPU kernels (expf / tanhf, not the fast intrinsics: the build has no fast math)

__device__ __forceinline__ float softcap_logit(float x, float softcap) {
    return softcap > 0.0f ? softcap * tanhf(x / softcap) : x;
}

// fold one value into a running (max m, sum s of exp(. - m))
__device__ __forceinline__ void online_add(float& m, float& s, float z) {
    if (z > m) {
        s = s * expf(m - z) + 1.0f;
        m = z;
    } else {
        s += expf(z - m);
    }
}

// merge (m2, s2) into (m, s); an empty side has m = -inf, s = 0
__device__ __forceinline__ void online_merge(float& m, float& s, float m2, float s2) {
    float mn = fmaxf(m, m2);
    if (mn == -INFINITY) { return; }
    s = s * expf(m - mn) + s2 * expf(m2 - mn);
    m = mn;
}

// logsumexp over the whole block from each thread's (m, s); every thread gets it.
// blockDim.x must be a multiple of 32 (at most 1024). Contains __syncthreads.
__device__ float block_lse(float m, float s) {
    __shared__ float sh_m[32], sh_s[32];
    __shared__ float sh_lse;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    for (int off = 16; off > 0; off >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, off), s2 = __shfl_xor_sync(0xffffffffu, s, off);
        online_merge(m, s, m2, s2);
    }
    if (lane == 0) {
        sh_m[warp] = m;
        sh_s[warp] = s;
    }
    __syncthreads();
    if (warp == 0) {
        m = lane < nwarps ? sh_m[lane] : -INFINITY;
        s = lane < nwarps ? sh_s[lane] : 0.0f;
        for (int off = 16; off > 0; off >>= 1) {
            float m2 = __shfl_xor_sync(0xffffffffu, m, off), s2 = __shfl_xor_sync(0xffffffffu, s, off);
            online_merge(m, s, m2, s2);
        }
        if (lane == 0) { sh_lse = m + logf(s); }
    }
    __syncthreads();
    return sh_lse;
}

// gradient w.r.t. the pre-cap logit from the capped logit z (j < V)
__device__ __forceinline__ float dlogit(float z, float lse, float zf, float ind, float softcap, float scale) {
    float dz = scale * (expf(z - lse) * zf - ind);
    if (softcap > 0.0f) {
        float t = z / softcap;
        dz *= 1.0f - t * t;
    }
    return dz;
}

// version 1: one block per row, one bf16 per thread per step
__global__ void classifier_kernel1(bf16* logits, float* losses, const int* targets, int V, int Vp,
                                          float softcap, float zloss, float scale) {
    bf16* row = logits + (size_t)blockIdx.x * Vp;
    const int target = targets[blockIdx.x];
    float m = -INFINITY, s = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        online_add(m, s, softcap_logit(__bfloat162float(row[j]), softcap));
    }
    // z[target] is read before block_lse's barriers, so before any thread overwrites the row
    float zt = 0.0f;
    if (threadIdx.x == 0) { zt = softcap_logit(__bfloat162float(row[target]), softcap); }
    const float lse = block_lse(m, s);
    if (threadIdx.x == 0) { losses[blockIdx.x] = lse - zt + zloss * lse * lse; }
    const float zf = 1.0f + 2.0f * zloss * lse;
    for (int j = threadIdx.x; j < Vp; j += blockDim.x) {
        float dz = 0.0f;
        if (j < V) {
            float z = softcap_logit(__bfloat162float(row[j]), softcap);
            dz = dlogit(z, lse, zf, j == target ? 1.0f : 0.0f, softcap, scale);
        }
        row[j] = __float2bfloat16(dz);
    }
}

// version 2: one block per row, 8 bf16 per thread per step (128-bit). Needs Vp % 8 == 0 and a
// 16-byte aligned base so that every pack of every row is aligned.
__global__ void classifier_kernel2(bf16* logits, float* losses, const int* targets, int V, int Vp,
                                          float softcap, float zloss, float scale) {
    bf16* row = logits + (size_t)blockIdx.x * Vp;
    const int target = targets[blockIdx.x];
    const int npack_v = (V + 7) / 8;  // packs holding at least one j < V
    const int npack = Vp / 8;
    float m = -INFINITY, s = 0.0f;
    for (int k = threadIdx.x; k < npack_v; k += blockDim.x) {
        const int j0 = k * 8;
        x128 in = load128(row + j0);  // default caching: pass 2 reads it again
        float z[8];
        float pm = -INFINITY;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            z[i] = softcap_logit(__bfloat162float(in[i]), softcap);
            if (j0 + i < V) { pm = fmaxf(pm, z[i]); }
        }
        // one rescale per pack instead of one per element
        const float mn = fmaxf(m, pm);
        s *= expf(m - mn);  // m == -inf: exp(-inf) = 0 with s = 0 (mn is finite)
        m = mn;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            if (j0 + i < V) { s += expf(z[i] - m); }
        }
    }
    float zt = 0.0f;
    if (threadIdx.x == 0) { zt = softcap_logit(__bfloat162float(row[target]), softcap); }
    const float lse = block_lse(m, s);
    if (threadIdx.x == 0) { losses[blockIdx.x] = lse - zt + zloss * lse * lse; }
    const float zf = 1.0f + 2.0f * zloss * lse;
    for (int k = threadIdx.x; k < npack; k += blockDim.x) {
        const int j0 = k * 8;
        x128 out;
        if (j0 < V) {
            x128 in = load128cs(row + j0);  // last read of this row
#pragma unroll
            for (int i = 0; i < 8; i++) {
                float dz = 0.0f;
                if (j0 + i < V) {
                    float z = softcap_logit(__bfloat162float(in[i]), softcap);
                    dz = dlogit(z, lse, zf, j0 + i == target ? 1.0f : 0.0f, softcap, scale);
                }
                out[i] = __float2bfloat16(dz);
            }
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++) { out[i] = __float2bfloat16(0.0f); }
        }
        store128(row + j0, out);
    }
}

// ----------------------------------------------------------------------------
// launchers

static void classifier1(bf16* logits, float* losses, const int* targets, int BT, int V, int Vp, float softcap,
                        float zloss, float scale, int block_size, cudaStream_t stream) {
    cuda_launch(classifier_kernel1, BT, block_size, 0, stream)(logits, losses, targets, V, Vp, softcap, zloss, scale);
    cudaCheck(cudaGetLastError());
}

static void classifier2(bf16* logits, float* losses, const int* targets, int BT, int V, int Vp, float softcap,
                        float zloss, float scale, int block_size, cudaStream_t stream) {
    if (Vp % 8 != 0 || !is_aligned16(logits)) {
        classifier1(logits, losses, targets, BT, V, Vp, softcap, zloss, scale, block_size, stream);
        return;
    }
    cuda_launch(classifier_kernel2, BT, block_size, 0, stream)(logits, losses, targets, V, Vp, softcap, zloss, scale);
    cudaCheck(cudaGetLastError());
}

// ----------------------------------------------------------------------------
// model-level call: losses (BT,), logits (BT, Vp) -> their gradient in place

static void fused_classifier(bf16* logits, float* losses, const int* targets, int BT, int V, int Vp, float softcap,
                             float zloss, float scale, cudaStream_t stream) {
    if (BT == 0) { return; }
    classifier2(logits, losses, targets, BT, V, Vp, softcap, zloss, scale, CLASSIFIER_BLOCK_SIZE, stream);
}

#endif  // LLMC_CLASSIFIER_CUH
