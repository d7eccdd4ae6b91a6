/*
 * gpt_cpu.h: the model of SPEC.md in fp32 C with OpenMP: every layer's forward
 * and backward, the GPT struct (parameters, gradients, AdamW state,
 * activations), the full-sequence forward/backward used for training, and the
 * KV-cache forward used for sampling. train_gpt.c (training) and infer.c (CPU
 * sampling) both build on it; the GPU programs are checked against it.
 *
 * Layers come in _forward/_backward pairs with the same argument order:
 * outputs, inputs, weights, sizes. Backward functions ACCUMULATE (+=) into their
 * gradient outputs; the caller zeroes them. Shapes use the model's letters:
 * B batch, T time, C channels, NH query heads, NKV key/value heads, hd head dim,
 * F SwiGLU width, V vocab, Vp padded vocab, L layers, QKV = (NH + 2 NKV) hd.
 *
 * defines: gemm, matmul_forward/backward, encoder_forward/backward,
 *          rmsnorm_forward/backward, residual_forward, rope_init,
 *          qknorm_rope_forward/backward, attention_forward/backward,
 *          swiglu_forward/backward, classifier_forward/backward,
 *          ParameterTensors, Activations, GradActs, GPT, gpt_init_random,
 *          gpt_init_from_checkpoint, gpt_forward, gpt_zero_grad, gpt_backward,
 *          gpt_grad_norm, gpt_grad_sumsq_range, adamw_update, gpt_update, gpt_update_range,
 *          gpt_free, KVCache, kvcache_init, kvcache_free, gpt_forward_cached
 */
#ifndef LLMC_GPT_CPU_H
#define LLMC_GPT_CPU_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "checkpoint.h"
#include "config.h"
#include "hf_import.h"
#include "rand.h"
#include "utils.h"

// ----------------------------------------------------------------------------
// matmul: every projection in the model is out = inp @ weight^T with weight
// (OC, C) as PyTorch stores nn.Linear weights. All three products (forward,
// dinp, dweight) go through one blocked kernel. B is copied ("packed") block by
// block into a small contiguous buffer that stays in the L2 cache while every
// row tile of A passes over it, and the innermost loop runs along a packed row,
// so the compiler vectorizes it without reassociating sums: each output element
// is one sequential sum over k (starting from c when accumulating), whatever the
// blocking and the thread count, so results do not depend on either.

#define GEMM_MR 12   // rows of C per tile (12 x 32 fp32 accumulators fill 24 AVX-512 registers)
#define GEMM_NR 32   // columns of C per tile
#define GEMM_KC 256  // depth of a packed block of B
#define GEMM_NC 512  // columns of a packed block of B (KC x NC floats = 512 KB, fits L2)

// gemm: c (M, N) (+)= sum_k A(m, k) * B(k, n), with A(m, k) = a[m*a_rs + k*a_cs] and
// B(k, n) = b[k*b_rs + n*b_cs]; c row-major with row stride ldc
static void gemm(float* c, const float* a, const float* b, int M, int N, int K, size_t a_rs, size_t a_cs,
                 size_t b_rs, size_t b_cs, size_t ldc, int accumulate) {
    // packed block: GEMM_NC / GEMM_NR panels, each (GEMM_KC, GEMM_NR), zero past N
    float* bp = (float*)aligned_alloc(64, (size_t)GEMM_KC * GEMM_NC * sizeof(float));
    if (bp == NULL) { die("out of memory: gemm packing buffer of %zu bytes", (size_t)GEMM_KC * GEMM_NC * sizeof(float)); }
    int mtiles = (M + GEMM_MR - 1) / GEMM_MR;
#pragma omp parallel
    for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
        int kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
        for (int n0 = 0; n0 < N; n0 += GEMM_NC) {
            int nc = N - n0 < GEMM_NC ? N - n0 : GEMM_NC;
            int npanels = (nc + GEMM_NR - 1) / GEMM_NR;
            // pack B(k0.., n0..) walking memory in its contiguous direction
            if (b_cs == 1) {
#pragma omp for schedule(static)
                for (int k = 0; k < kc; k++) {
                    const float* brow = b + (size_t)(k0 + k) * b_rs + n0;
                    for (int n = 0; n < npanels * GEMM_NR; n++) {
                        bp[((size_t)(n / GEMM_NR) * GEMM_KC + k) * GEMM_NR + n % GEMM_NR] = n < nc ? brow[n] : 0.0f;
                    }
                }
            } else {
#pragma omp for schedule(static)
                for (int n = 0; n < npanels * GEMM_NR; n++) {
                    float* dst = bp + (size_t)(n / GEMM_NR) * GEMM_KC * GEMM_NR + n % GEMM_NR;
                    const float* bcol = b + (size_t)(n0 + n) * b_cs + (size_t)k0 * b_rs;
                    for (int k = 0; k < kc; k++) { dst[(size_t)k * GEMM_NR] = n < nc ? bcol[(size_t)k * b_rs] : 0.0f; }
                }
            }
            // (implicit barrier: the block is packed)
#pragma omp for collapse(2) schedule(static)
            for (int mt = 0; mt < mtiles; mt++) {
                for (int pn = 0; pn < npanels; pn++) {
                    int m0 = mt * GEMM_MR, j0 = n0 + pn * GEMM_NR;
                    int mr = M - m0 < GEMM_MR ? M - m0 : GEMM_MR;
                    int nr = N - j0 < GEMM_NR ? N - j0 : GEMM_NR;
                    const float* panel = bp + (size_t)pn * GEMM_KC * GEMM_NR;
                    int load_c = accumulate || k0 > 0;
                    float acc[GEMM_MR][GEMM_NR];
                    for (int r = 0; r < GEMM_MR; r++) {
                        for (int j = 0; j < GEMM_NR; j++) {
                            acc[r][j] = (load_c && r < mr && j < nr) ? c[(size_t)(m0 + r) * ldc + j0 + j] : 0.0f;
                        }
                    }
                    const float* arow = a + (size_t)m0 * a_rs + (size_t)k0 * a_cs;
                    if (mr == GEMM_MR) {
                        // the full tile: constant bounds, vectorized along j
                        for (int k = 0; k < kc; k++) {
                            const float* brow = panel + (size_t)k * GEMM_NR;
                            for (int r = 0; r < GEMM_MR; r++) {
                                float av = arow[(size_t)r * a_rs + (size_t)k * a_cs];
                                for (int j = 0; j < GEMM_NR; j++) { acc[r][j] += av * brow[j]; }
                            }
                        }
                    } else {
                        for (int k = 0; k < kc; k++) {
                            const float* brow = panel + (size_t)k * GEMM_NR;
                            for (int r = 0; r < mr; r++) {
                                float av = arow[(size_t)r * a_rs + (size_t)k * a_cs];
                                for (int j = 0; j < GEMM_NR; j++) { acc[r][j] += av * brow[j]; }
                            }
                        }
                    }
                    for (int r = 0; r < mr; r++) {
                        float* crow = c + (size_t)(m0 + r) * ldc + j0;
                        for (int j = 0; j < nr; j++) { crow[j] = acc[r][j]; }
                    }
                }
            }
            // (implicit barrier: the block is consumed before the next is packed)
        }
    }
    free(bp);
}

// matmul_forward: out (N, OC) = inp (N, C) @ weight^T, weight (OC, C)
static void matmul_forward(float* out, const float* inp, const float* weight, int N, int C, int OC) {
    gemm(out, inp, weight, N, OC, C, C, 1, 1, C, OC, 0);
}

// matmul_backward: dinp (N, C) += dout (N, OC) @ weight; dweight (OC, C) += dout^T @ inp
static void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                            int N, int C, int OC) {
    gemm(dinp, dout, weight, N, C, OC, OC, 1, C, 1, C, 1);
    gemm(dweight, dout, inp, OC, C, N, 1, OC, C, 1, C, 1);
}

// ----------------------------------------------------------------------------
// the layers

// encoder_forward: out (B*T, C) = wte[tokens]
static void encoder_forward(float* out, const int* tokens, const float* wte, int BT, int C) {
    for (int i = 0; i < BT; i++) { memcpy(out + (size_t)i * C, wte + (size_t)tokens[i] * C, C * sizeof(float)); }
}

// encoder_backward: dwte (Vp, C) += scatter of dout (B*T, C); in token order, deterministic
static void encoder_backward(float* dwte, const float* dout, const int* tokens, int BT, int C) {
    for (int i = 0; i < BT; i++) {
        float* row = dwte + (size_t)tokens[i] * C;
        const float* d = dout + (size_t)i * C;
        for (int c = 0; c < C; c++) { row[c] += d[c]; }
    }
}

// rmsnorm_forward: out (N, C) = inp / sqrt(mean(inp^2) + eps) * weight; rstd (N,) saved
static void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float* x = inp + (size_t)i * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) { ss += (double)x[c] * x[c]; }
        float r = (float)(1.0 / sqrt(ss / C + eps));
        float* o = out + (size_t)i * C;
        for (int c = 0; c < C; c++) { o[c] = x[c] * r * weight[c]; }
        rstd[i] = r;
    }
}

// rmsnorm_backward: dinp (N, C) += ..., dweight (C,) += ...
//   with xhat = x * rstd and g = dout * w:  dx = rstd * (g - xhat * mean(g * xhat))
// dweight is a sum over all N rows, so it is reduced serially per column block
// after the parallel dinp pass (keeps the order fixed).
static void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                             const float* rstd, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float* x = inp + (size_t)i * C;
        const float* d = dout + (size_t)i * C;
        float r = rstd[i];
        double dot = 0.0;
        for (int c = 0; c < C; c++) { dot += (double)d[c] * weight[c] * x[c] * r; }
        float mean = (float)(dot / C);
        float* dx = dinp + (size_t)i * C;
        for (int c = 0; c < C; c++) {
            float xhat = x[c] * r;
            dx[c] += r * (d[c] * weight[c] - xhat * mean);
        }
    }
    for (int i = 0; i < N; i++) {
        const float* x = inp + (size_t)i * C;
        const float* d = dout + (size_t)i * C;
        float r = rstd[i];
        for (int c = 0; c < C; c++) { dweight[c] += d[c] * x[c] * r; }
    }
}

// residual_forward: out (N,) = a + b
static void residual_forward(float* out, const float* a, const float* b, size_t N) {
    for (size_t i = 0; i < N; i++) { out[i] = a[i] + b[i]; }
}

// rope_init: cos, sin (max_seq_len, hd/2): angle = pos * theta^(-2i/hd)
static void rope_init(float* cosv, float* sinv, int max_seq_len, int hd, float theta) {
    int half = hd / 2;
    for (int p = 0; p < max_seq_len; p++) {
        for (int i = 0; i < half; i++) {
            double freq = pow((double)theta, -2.0 * i / hd);
            double ang = p * freq;
            cosv[p * half + i] = (float)cos(ang);
            sinv[p * half + i] = (float)sin(ang);
        }
    }
}

// qknorm_rope_forward: from the raw projections qkv (B, T, QKV) makes
//   q (B, T, NH, hd) and k (B, T, NKV, hd): RMSNorm per head (when qk_norm, weights
//   qw, kw (hd,) shared by heads; rstd (B, T, NH + NKV) saved), then RoPE rotate-half
//   (pair i with i + hd/2) at positions pos0..pos0+T-1 (pos0 > 0 when decoding
//   after a KV cache)
static void qknorm_rope_forward(float* q, float* k, float* rstd, const float* qkv, const float* qw, const float* kw,
                                const float* cosv, const float* sinv, int B, int T, int pos0, int NH, int NKV, int hd,
                                int qk_norm, float eps) {
    int QKV = (NH + 2 * NKV) * hd, half = hd / 2, NHK = NH + NKV;
#pragma omp parallel for collapse(2) schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        for (int h = 0; h < NHK; h++) {
            int t = pos0 + bt % T;
            const float* src = qkv + (size_t)bt * QKV + (size_t)h * hd;  // q heads then k heads
            float* dst = h < NH ? q + ((size_t)bt * NH + h) * hd : k + ((size_t)bt * NKV + (h - NH)) * hd;
            const float* w = h < NH ? qw : kw;
            float n[512];  // hd <= 512 (checked at build)
            float r = 1.0f;
            if (qk_norm) {
                double ss = 0.0;
                for (int i = 0; i < hd; i++) { ss += (double)src[i] * src[i]; }
                r = (float)(1.0 / sqrt(ss / hd + eps));
                for (int i = 0; i < hd; i++) { n[i] = src[i] * r * w[i]; }
            } else {
                for (int i = 0; i < hd; i++) { n[i] = src[i]; }
            }
            rstd[(size_t)bt * NHK + h] = r;
            const float* cs = cosv + (size_t)t * half;
            const float* sn = sinv + (size_t)t * half;
            for (int i = 0; i < half; i++) {
                float x1 = n[i], x2 = n[i + half];
                dst[i] = x1 * cs[i] - x2 * sn[i];
                dst[i + half] = x2 * cs[i] + x1 * sn[i];
            }
        }
    }
}

// qknorm_rope_backward: dqkv (B, T, QKV) q and k parts += ..., dqw, dkw (hd,) += ...
// from dq (B, T, NH, hd), dk (B, T, NKV, hd). RoPE is a rotation: its backward
// rotates by the negative angle.
static void qknorm_rope_backward(float* dqkv, float* dqw, float* dkw, const float* dq, const float* dk,
                                 const float* qkv, const float* qw, const float* kw, const float* rstd,
                                 const float* cosv, const float* sinv, int B, int T, int NH, int NKV, int hd,
                                 int qk_norm) {
    int QKV = (NH + 2 * NKV) * hd, half = hd / 2, NHK = NH + NKV;
    // pass 1 (parallel): dn = rope^T(dout), then the RMSNorm backward into dqkv
#pragma omp parallel for collapse(2) schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        for (int h = 0; h < NHK; h++) {
            int t = bt % T;
            const float* d = h < NH ? dq + ((size_t)bt * NH + h) * hd : dk + ((size_t)bt * NKV + (h - NH)) * hd;
            const float* src = qkv + (size_t)bt * QKV + (size_t)h * hd;
            float* dsrc = dqkv + (size_t)bt * QKV + (size_t)h * hd;
            const float* w = h < NH ? qw : kw;
            const float* cs = cosv + (size_t)t * half;
            const float* sn = sinv + (size_t)t * half;
            float dn[512];
            for (int i = 0; i < half; i++) {
                float d1 = d[i], d2 = d[i + half];
                dn[i] = d1 * cs[i] + d2 * sn[i];
                dn[i + half] = d2 * cs[i] - d1 * sn[i];
            }
            if (qk_norm) {
                float r = rstd[(size_t)bt * NHK + h];
                double dot = 0.0;
                for (int i = 0; i < hd; i++) { dot += (double)dn[i] * w[i] * src[i] * r; }
                float mean = (float)(dot / hd);
                for (int i = 0; i < hd; i++) { dsrc[i] += r * (dn[i] * w[i] - src[i] * r * mean); }
            } else {
                for (int i = 0; i < hd; i++) { dsrc[i] += dn[i]; }
            }
        }
    }
    if (!qk_norm) { return; }
    // pass 2 (serial, fixed order): the norm weights' gradients
    float dn[512];
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        for (int h = 0; h < NHK; h++) {
            const float* d = h < NH ? dq + ((size_t)bt * NH + h) * hd : dk + ((size_t)bt * NKV + (h - NH)) * hd;
            const float* src = qkv + (size_t)bt * QKV + (size_t)h * hd;
            const float* cs = cosv + (size_t)t * half;
            const float* sn = sinv + (size_t)t * half;
            float r = rstd[(size_t)bt * NHK + h];
            float* dw = h < NH ? dqw : dkw;
            for (int i = 0; i < half; i++) {
                float d1 = d[i], d2 = d[i + half];
                dn[i] = d1 * cs[i] + d2 * sn[i];
                dn[i + half] = d2 * cs[i] - d1 * sn[i];
            }
            for (int i = 0; i < hd; i++) { dw[i] += dn[i] * src[i] * r; }
        }
    }
}

// attention_forward: y (B, T, NH, hd) = softmax(q k^T / sqrt(hd) + causal) v
//   q (B, T, NH, hd), k (B, T, NKV, hd), v read from qkv (B, T, QKV) at offset
//   (NH + NKV) hd; query head h reads kv head h / (NH / NKV).
//   att (B, NH, T, T) keeps the probabilities for the backward (row t uses 0..t).
static void attention_forward(float* y, float* att, const float* q, const float* k, const float* qkv, int B, int T,
                              int NH, int NKV, int hd) {
    int QKV = (NH + 2 * NKV) * hd, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                int g = h / group;
                const float* qt = q + (((size_t)b * T + t) * NH + h) * hd;
                float* a = att + (((size_t)b * NH + h) * T + t) * T;
                float maxv = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* kt = k + (((size_t)b * T + t2) * NKV + g) * hd;
                    float s = 0.0f;
                    for (int i = 0; i < hd; i++) { s += qt[i] * kt[i]; }
                    s *= scale;
                    a[t2] = s;
                    if (s > maxv) { maxv = s; }
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    a[t2] = expf(a[t2] - maxv);
                    sum += a[t2];
                }
                float inv = 1.0f / sum;
                for (int t2 = 0; t2 <= t; t2++) { a[t2] *= inv; }
                for (int t2 = t + 1; t2 < T; t2++) { a[t2] = 0.0f; }
                float* yt = y + (((size_t)b * T + t) * NH + h) * hd;
                for (int i = 0; i < hd; i++) { yt[i] = 0.0f; }
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* vt = qkv + ((size_t)b * T + t2) * QKV + (size_t)(NH + NKV) * hd + (size_t)g * hd;
                    for (int i = 0; i < hd; i++) { yt[i] += a[t2] * vt[i]; }
                }
            }
        }
    }
}

// attention_backward: dq (B, T, NH, hd), dk (B, T, NKV, hd), and the v part of
// dqkv (B, T, QKV) += ..., from dy (B, T, NH, hd). datt (T,) scratch per thread.
// dk and dv sum over the query heads of a group and over t, so the parallel loop
// runs over (b, kv head) and everything inside it is serial: fixed order.
static void attention_backward(float* dq, float* dk, float* dqkv, const float* dy, const float* att, const float* q,
                               const float* k, const float* qkv, float* datt_scratch, int B, int T, int NH, int NKV,
                               int hd) {
    int QKV = (NH + 2 * NKV) * hd, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int g = 0; g < NKV; g++) {
            float* datt = datt_scratch + ((size_t)b * NKV + g) * T;
            for (int h = g * group; h < (g + 1) * group; h++) {
                for (int t = 0; t < T; t++) {
                    const float* a = att + (((size_t)b * NH + h) * T + t) * T;
                    const float* dyt = dy + (((size_t)b * T + t) * NH + h) * hd;
                    // dp = dy . v; dv += p dy
                    float dot = 0.0f;
                    for (int t2 = 0; t2 <= t; t2++) {
                        const float* vt = qkv + ((size_t)b * T + t2) * QKV + (size_t)(NH + NKV) * hd + (size_t)g * hd;
                        float* dvt = dqkv + ((size_t)b * T + t2) * QKV + (size_t)(NH + NKV) * hd + (size_t)g * hd;
                        float dp = 0.0f;
                        for (int i = 0; i < hd; i++) {
                            dp += dyt[i] * vt[i];
                            dvt[i] += a[t2] * dyt[i];
                        }
                        datt[t2] = dp;
                        dot += dp * a[t2];
                    }
                    // softmax backward: ds = p (dp - sum p dp); then the scores' inputs
                    const float* qt = q + (((size_t)b * T + t) * NH + h) * hd;
                    float* dqt = dq + (((size_t)b * T + t) * NH + h) * hd;
                    for (int t2 = 0; t2 <= t; t2++) {
                        float ds = a[t2] * (datt[t2] - dot) * scale;
                        const float* kt = k + (((size_t)b * T + t2) * NKV + g) * hd;
                        float* dkt = dk + (((size_t)b * T + t2) * NKV + g) * hd;
                        for (int i = 0; i < hd; i++) {
                            dqt[i] += ds * kt[i];
                            dkt[i] += ds * qt[i];
                        }
                    }
                }
            }
        }
    }
}

// swiglu_forward: out (N, F) = silu(gate) * up, with fch (N, 2F) = [gate | up]
static void swiglu_forward(float* out, const float* fch, int N, int F) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float* g = fch + (size_t)i * 2 * F;
        const float* u = g + F;
        float* o = out + (size_t)i * F;
        for (int j = 0; j < F; j++) { o[j] = g[j] / (1.0f + expf(-g[j])) * u[j]; }
    }
}

// swiglu_backward: dfch (N, 2F) += ..., from dout (N, F)
static void swiglu_backward(float* dfch, const float* dout, const float* fch, int N, int F) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float* g = fch + (size_t)i * 2 * F;
        const float* u = g + F;
        const float* d = dout + (size_t)i * F;
        float* dg = dfch + (size_t)i * 2 * F;
        float* du = dg + F;
        for (int j = 0; j < F; j++) {
            float sig = 1.0f / (1.0f + expf(-g[j]));
            float silu = g[j] * sig;
            du[j] += d[j] * silu;
            dg[j] += d[j] * u[j] * sig * (1.0f + g[j] * (1.0f - sig));
        }
    }
}

// expf_fast: e^x, clamped to [-87, 88] (e^-87 ~ 1.6e-38 stands in for 0), as
// branch-free arithmetic that the compiler vectorizes (the libm call would not
// be): x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^7
// (truncation < 6e-9), then 2^n put in the exponent bits. Relative error about
// 1e-7 (test_misc checks it against exp over the whole range).
static inline float expf_fast(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float round_magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    float n = (x * 1.44269504f + round_magic) - round_magic;
    float r = x - n * 0.693145751953125f;   // ln2 split in a high part exact in float...
    r = r - n * 1.42860677e-06f;            // ...and the rest
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
              r * (1.0f / 720 + r * (1.0f / 5040)))))));
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

// tanhf_fast: tanh(x), vectorizable: the odd Taylor series to x^17 below 0.55
// (relative error < 5e-9 there), else (1 - e) / (1 + e) with e = e^(-2|x|)
// (no cancellation once e <= e^-1.1). Error about 1e-7 relative.
static inline float tanhf_fast(float x) {
    float ax = fabsf(x), x2 = x * x;
    float small = x * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315 + x2 * (62.0f / 2835 +
                  x2 * (-1382.0f / 155925 + x2 * (21844.0f / 6081075 + x2 * (-929569.0f / 638512875 +
                  x2 * (6404582.0f / 10854718875)))))))));
    float e = expf_fast(-2.0f * ax);
    float big = copysignf((1.0f - e) / (1.0f + e), x);
    return ax < 0.55f ? small : big;
}

// classifier_forward: logits (N, Vp) in place: soft-cap; then per row the
// logsumexp over the first V entries, lse (N,), and when targets is non-NULL
// losses (N,) = lse - z[target] + zloss * lse^2. Entries >= V take no mass.
// The exponentials are summed in CLS_LANES double lanes (vectorized, fixed order).
#define CLS_LANES 16
static void classifier_forward(float* logits, float* lse, float* losses, const int* targets, int N, int V, int Vp,
                               float softcap, float zloss) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        float* z = logits + (size_t)i * Vp;
        if (softcap > 0.0f) {
            float inv = 1.0f / softcap;
            for (int j = 0; j < Vp; j++) { z[j] = softcap * tanhf_fast(z[j] * inv); }
        }
        // max and sum of exponentials in CLS_LANES independent lanes (vectorized)
        float lmax[CLS_LANES];
        for (int l = 0; l < CLS_LANES; l++) { lmax[l] = -INFINITY; }
        int j = 0;
        for (; j + CLS_LANES <= V; j += CLS_LANES) {
            for (int l = 0; l < CLS_LANES; l++) { lmax[l] = fmaxf(lmax[l], z[j + l]); }
        }
        float maxv = -INFINITY;
        for (; j < V; j++) { maxv = fmaxf(maxv, z[j]); }
        for (int l = 0; l < CLS_LANES; l++) { maxv = fmaxf(maxv, lmax[l]); }
        double lanes[CLS_LANES] = {0};
        for (j = 0; j + CLS_LANES <= V; j += CLS_LANES) {
            float e[CLS_LANES];
            for (int l = 0; l < CLS_LANES; l++) { e[l] = expf_fast(z[j + l] - maxv); }
            for (int l = 0; l < CLS_LANES; l++) { lanes[l] += (double)e[l]; }
        }
        for (; j < V; j++) { lanes[j % CLS_LANES] += (double)expf_fast(z[j] - maxv); }
        double sum = 0.0;
        for (int l = 0; l < CLS_LANES; l++) { sum += lanes[l]; }
        float l = maxv + (float)log(sum);
        lse[i] = l;
        if (targets != NULL) { losses[i] = l - z[targets[i]] + zloss * l * l; }
    }
}

// classifier_backward: logits (N, Vp) becomes, in place, the gradient of
// scale * sum(losses) with respect to the pre-cap logits:
//   dz_j = scale * (p_j (1 + 2 zloss lse) - [j == target]),  p = softmax(z[:V])
//   d(pre-cap) = dz * (1 - (z / cap)^2)   (tanh' from the capped value)
static void classifier_backward(float* logits, const float* lse, const int* targets, int N, int V, int Vp,
                                float softcap, float zloss, float scale) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        float* z = logits + (size_t)i * Vp;
        float l = lse[i];
        float zf = scale * (1.0f + 2.0f * zloss * l);
        float inv = softcap > 0.0f ? 1.0f / softcap : 0.0f;  // 0: no cap, tanh' = 1
        int t = targets[i];
        float tzt = z[t] * inv;
        for (int j = 0; j < V; j++) {
            float tz = z[j] * inv;
            z[j] = expf_fast(z[j] - l) * zf * (1.0f - tz * tz);
        }
        for (int j = V; j < Vp; j++) { z[j] = 0.0f; }
        z[t] -= scale * (1.0f - tzt * tzt);
    }
}

// ----------------------------------------------------------------------------
// the model

typedef struct {
    float* wte;       // (Vp, C)
    float* ln1_w;     // (L, C)
    float* qkv_w;     // (L, QKV, C)
    float* q_norm_w;  // (L, hd)
    float* k_norm_w;  // (L, hd)
    float* attn_proj_w; // (L, C, NH*hd)
    float* ln2_w;     // (L, C)
    float* fc_w;      // (L, 2F, C)
    float* fc_proj_w; // (L, C, F)
    float* lnf_w;     // (C,)
    float* lm_w;      // (Vp, C): wte when tied
} ParameterTensors;

static void point_parameters(ParameterTensors* p, float* mem, const ParamLayout* pl, int tied) {
    float** ptrs[NUM_PARAMETER_TENSORS] = {&p->wte, &p->ln1_w, &p->qkv_w, &p->q_norm_w, &p->k_norm_w,
                                           &p->attn_proj_w, &p->ln2_w, &p->fc_w, &p->fc_proj_w, &p->lnf_w,
                                           &p->lm_w};
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { *ptrs[i] = mem + pl->offsets[i]; }
    if (tied) { p->lm_w = p->wte; }
}

// what the forward keeps for the backward, per layer where it has an L
typedef struct {
    float* encoded;  // (B, T, C) the layer-0 input
    float* ln1;      // (L, B, T, C)
    float* ln1_rstd; // (L, B, T)
    float* qkv;      // (L, B, T, QKV) raw projections
    float* qk_rstd;  // (L, B, T, NH + NKV)
    float* q;        // (L, B, T, NH, hd) normed + roped
    float* k;        // (L, B, T, NKV, hd) normed + roped
    float* att;      // (L, B, NH, T, T) probabilities
    float* atty;     // (L, B, T, NH*hd)
    float* res_mid;  // (L, B, T, C) after attention (sequential block)
    float* ln2;      // (L, B, T, C)
    float* ln2_rstd; // (L, B, T)
    float* fch;      // (L, B, T, 2F) [gate | up]
    float* swiglu;   // (L, B, T, F)
    float* res_out;  // (L, B, T, C) layer outputs
    float* lnf;      // (B, T, C)
    float* lnf_rstd; // (B, T)
    float* logits;   // (B, T, Vp) capped logits; the backward overwrites with their gradient
    float* lse;      // (B, T)
    float* losses;   // (B, T)
    float* branch;   // (B, T, C) scratch: a branch's output before the residual add
} Activations;
#define NUM_ACTIVATION_TENSORS 21

// one layer's activation gradients at a time, plus the residual stream's
typedef struct {
    float* dres;     // (B, T, C) gradient of the residual stream
    float* dres2;    // (B, T, C) second stream buffer (the mid-layer point)
    float* dln;      // (B, T, C)
    float* dqkv;     // (B, T, QKV)
    float* dq;       // (B, T, NH, hd)
    float* dk;       // (B, T, NKV, hd)
    float* datty;    // (B, T, NH*hd)
    float* dfch;     // (B, T, 2F)
    float* dswiglu;  // (B, T, F)
    float* datt;     // (B, NKV, T) attention-backward scratch
} GradActs;
#define NUM_GRAD_ACT_TENSORS 10

typedef struct {
    GPTConfig config;
    ParamLayout layout;
    ParameterTensors params;
    float* params_memory;  // (num_parameters,) fp32: on the CPU these are the master weights
    ParameterTensors grads;
    float* grads_memory;
    float* m_memory;       // AdamW first moment
    float* v_memory;       // AdamW second moment
    Activations acts;
    float* acts_memory;
    GradActs gacts;
    float* gacts_memory;
    int batch_size, seq_len;  // what the activations were sized for
    float* rope_cos;       // (max_seq_len, hd/2)
    float* rope_sin;
    int* inputs;           // (B, T) copy of the last forward's inputs
    int* targets;          // (B, T) or unused
    float mean_loss;       // of the last forward with targets, else -1
} GPT;

static void gpt_init_common(GPT* model) {
    GPTConfig* c = &model->config;
    int hd = c->n_embd / c->n_head;
    if (hd > 512) { die("head dim %d is larger than this build supports (512)", hd); }
    param_layout_init(&model->layout, c);
    model->params_memory = (float*)callocCheck(model->layout.num_parameters, sizeof(float));
    point_parameters(&model->params, model->params_memory, &model->layout, c->tied_embeddings);
    model->grads_memory = NULL;
    model->m_memory = NULL;
    model->v_memory = NULL;
    model->acts_memory = NULL;
    model->gacts_memory = NULL;
    model->inputs = NULL;
    model->targets = NULL;
    model->batch_size = 0;
    model->seq_len = 0;
    model->mean_loss = -1.0f;
    model->rope_cos = (float*)mallocCheck((size_t)c->max_seq_len * (hd / 2) * sizeof(float));
    model->rope_sin = (float*)mallocCheck((size_t)c->max_seq_len * (hd / 2) * sizeof(float));
    rope_init(model->rope_cos, model->rope_sin, c->max_seq_len, hd, c->rope_theta);
}

// gpt_init_random: SPEC's init: matrices N(0, 0.02), the two output projections
// N(0, 0.02 / sqrt(2L)), norm weights 1, padded vocab rows 0
static void gpt_init_random(GPT* model, const GPTConfig* config, uint64_t seed) {
    model->config = *config;
    gpt_init_common(model);
    const ParamLayout* pl = &model->layout;
    const GPTConfig* c = &model->config;
    uint64_t rng = seed;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        float* p = model->params_memory + pl->offsets[i];
        size_t n = pl->sizes[i];
        if (n == 0) { continue; }
        if (i == P_LN1 || i == P_QNORM || i == P_KNORM || i == P_LN2 || i == P_LNF) {
            for (size_t j = 0; j < n; j++) { p[j] = 1.0f; }
        } else {
            float std = (i == P_ATTNPROJ || i == P_FCPROJ) ? 0.02f / sqrtf(2.0f * c->n_layer) : 0.02f;
            rng_fill_normal(p, n, std, &rng);
        }
        if (i == P_WTE || i == P_LMW) {  // padded rows are never a prediction: keep them zero
            memset(p + (size_t)c->vocab_size * c->n_embd, 0,
                   (size_t)(c->padded_vocab_size - c->vocab_size) * c->n_embd * sizeof(float));
        }
    }
}

// gpt_init_from_checkpoint: fp32 or bf16 model file, or a Hugging Face folder
// (llmc/hf_import.h)
static void gpt_init_from_checkpoint(GPT* model, const char* path) {
    if (hf_is_folder(path)) {
        hf_read_config(path, &model->config);
        gpt_init_common(model);
        hf_read_params(path, &model->config, model->params_memory);
        return;
    }
    int dtype;
    FILE* fp = checkpoint_read_config(path, &model->config, &dtype);
    gpt_init_common(model);
    checkpoint_read_params(fp, path, dtype, model->params_memory, model->layout.num_parameters);
    fcloseCheck(fp, path);
}

static size_t gpt_alloc_tensors(float*** ptrs, size_t* sizes, int n, float** memory) {
    size_t total = 0;
    for (int i = 0; i < n; i++) { total += sizes[i]; }
    *memory = (float*)callocCheck(total, sizeof(float));
    float* p = *memory;
    for (int i = 0; i < n; i++) {
        *ptrs[i] = p;
        p += sizes[i];
    }
    return total;
}

// gpt_alloc_activations: sized for (B, T); later calls may use any B' <= B, T' <= T
static void gpt_alloc_activations(GPT* model, int B, int T) {
    const GPTConfig* c = &model->config;
    size_t L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    size_t Vp = c->padded_vocab_size, QKV = (NH + 2 * NKV) * hd, BT = (size_t)B * T;
    Activations* a = &model->acts;
    float** ap[NUM_ACTIVATION_TENSORS] = {&a->encoded, &a->ln1, &a->ln1_rstd, &a->qkv, &a->qk_rstd, &a->q, &a->k,
                                          &a->att, &a->atty, &a->res_mid, &a->ln2, &a->ln2_rstd, &a->fch, &a->swiglu,
                                          &a->res_out, &a->lnf, &a->lnf_rstd, &a->logits, &a->lse, &a->losses,
                                          &a->branch};
    size_t as[NUM_ACTIVATION_TENSORS] = {BT * C, L * BT * C, L * BT, L * BT * QKV, L * BT * (NH + NKV),
                                         L * BT * NH * hd, L * BT * NKV * hd, L * B * NH * T * T, L * BT * NH * hd,
                                         L * BT * C, L * BT * C, L * BT, L * BT * 2 * F, L * BT * F, L * BT * C,
                                         BT * C, BT, BT * Vp, BT, BT, BT * C};
    gpt_alloc_tensors(ap, as, NUM_ACTIVATION_TENSORS, &model->acts_memory);
    GradActs* g = &model->gacts;
    float** gp[NUM_GRAD_ACT_TENSORS] = {&g->dres, &g->dres2, &g->dln, &g->dqkv, &g->dq, &g->dk, &g->datty,
                                        &g->dfch, &g->dswiglu, &g->datt};
    size_t gs[NUM_GRAD_ACT_TENSORS] = {BT * C, BT * C, BT * C, BT * QKV, BT * NH * hd, BT * NKV * hd,
                                       BT * NH * hd, BT * 2 * F, BT * F, (size_t)B * NKV * T};
    gpt_alloc_tensors(gp, gs, NUM_GRAD_ACT_TENSORS, &model->gacts_memory);
    model->inputs = (int*)mallocCheck(BT * sizeof(int));
    model->targets = (int*)mallocCheck(BT * sizeof(int));
    model->batch_size = B;
    model->seq_len = T;
}

// LayerActs: layer l's slices of the activations, shapes as in Activations
typedef struct {
    const float* x;  // (B, T, C) the layer's input
    float *ln1, *ln1_rstd, *qkv, *qk_rstd, *q, *k, *att, *atty, *res_mid, *ln2, *ln2_rstd, *fch, *sw, *out;
} LayerActs;

static LayerActs layer_acts(const Activations* a, int l, int B, int T, const GPTConfig* c) {
    size_t BT = (size_t)B * T, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    size_t QKV = (NH + 2 * NKV) * hd;
    LayerActs la;
    la.x = l == 0 ? a->encoded : a->res_out + (size_t)(l - 1) * BT * C;
    la.ln1 = a->ln1 + l * BT * C;
    la.ln1_rstd = a->ln1_rstd + l * BT;
    la.qkv = a->qkv + l * BT * QKV;
    la.qk_rstd = a->qk_rstd + l * BT * (NH + NKV);
    la.q = a->q + l * BT * NH * hd;
    la.k = a->k + l * BT * NKV * hd;
    la.att = a->att + l * (size_t)B * NH * T * T;
    la.atty = a->atty + l * BT * NH * hd;
    la.res_mid = a->res_mid + l * BT * C;
    la.ln2 = a->ln2 + l * BT * C;
    la.ln2_rstd = a->ln2_rstd + l * BT;
    la.fch = a->fch + l * BT * 2 * F;
    la.sw = a->swiglu + l * BT * F;
    la.out = a->res_out + l * BT * C;
    return la;
}

// gpt_forward: inputs, targets (B, T) token ids (targets may be NULL: logits only).
// Sets model->mean_loss (or -1) and leaves the logits in model->acts.logits (B, T, Vp).
static void gpt_forward(GPT* model, const int* inputs, const int* targets, int B, int T, float zloss) {
    const GPTConfig* c = &model->config;
    int L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    int V = c->vocab_size, Vp = c->padded_vocab_size, QKV = (NH + 2 * NKV) * hd, BT = B * T;
    if (T > c->max_seq_len) { die("sequence length %d is longer than the model's max_seq_len %d", T, c->max_seq_len); }
    for (int i = 0; i < BT; i++) {
        if (inputs[i] < 0 || inputs[i] >= V || (targets != NULL && (targets[i] < 0 || targets[i] >= V))) {
            die("token id out of range [0, %d) at position %d", V, i);
        }
    }
    if (model->acts_memory == NULL) { gpt_alloc_activations(model, B, T); }
    if (B > model->batch_size || T > model->seq_len) {
        die("forward with B %d T %d exceeds the allocation B %d T %d", B, T, model->batch_size, model->seq_len);
    }
    memcpy(model->inputs, inputs, BT * sizeof(int));
    if (targets != NULL) { memcpy(model->targets, targets, BT * sizeof(int)); }
    ParameterTensors p = model->params;
    Activations a = model->acts;
    encoder_forward(a.encoded, inputs, p.wte, BT, C);
    for (int l = 0; l < L; l++) {
        LayerActs la = layer_acts(&a, l, B, T, c);
        rmsnorm_forward(la.ln1, la.ln1_rstd, la.x, p.ln1_w + (size_t)l * C, BT, C, c->norm_eps);
        matmul_forward(la.qkv, la.ln1, p.qkv_w + (size_t)l * QKV * C, BT, C, QKV);
        qknorm_rope_forward(la.q, la.k, la.qk_rstd, la.qkv, p.q_norm_w + (size_t)l * hd, p.k_norm_w + (size_t)l * hd,
                            model->rope_cos, model->rope_sin, B, T, 0, NH, NKV, hd, c->qk_norm, c->norm_eps);
        attention_forward(la.atty, la.att, la.q, la.k, la.qkv, B, T, NH, NKV, hd);
        matmul_forward(a.branch, la.atty, p.attn_proj_w + (size_t)l * C * NH * hd, BT, NH * hd, C);
        residual_forward(la.res_mid, la.x, a.branch, (size_t)BT * C);
        // the MLP reads ln2(res_mid), or ln1(x) in a parallel block
        const float* mlp_in = la.ln1;
        if (!c->parallel_block) {
            rmsnorm_forward(la.ln2, la.ln2_rstd, la.res_mid, p.ln2_w + (size_t)l * C, BT, C, c->norm_eps);
            mlp_in = la.ln2;
        }
        matmul_forward(la.fch, mlp_in, p.fc_w + (size_t)l * 2 * F * C, BT, C, 2 * F);
        swiglu_forward(la.sw, la.fch, BT, F);
        matmul_forward(a.branch, la.sw, p.fc_proj_w + (size_t)l * C * F, BT, F, C);
        residual_forward(la.out, la.res_mid, a.branch, (size_t)BT * C);
    }
    const float* xL = a.res_out + (size_t)(L - 1) * BT * C;
    rmsnorm_forward(a.lnf, a.lnf_rstd, xL, p.lnf_w, BT, C, c->norm_eps);
    matmul_forward(a.logits, a.lnf, p.lm_w, BT, C, Vp);
    classifier_forward(a.logits, a.lse, a.losses, targets, BT, V, Vp, c->logit_softcap, zloss);
    if (targets != NULL) {
        double sum = 0.0;
        for (int i = 0; i < BT; i++) { sum += a.losses[i]; }
        model->mean_loss = (float)(sum / BT);
    } else {
        model->mean_loss = -1.0f;
    }
}

static void gpt_zero_grad(GPT* model) {
    if (model->grads_memory == NULL) {
        model->grads_memory = (float*)callocCheck(model->layout.num_parameters, sizeof(float));
        point_parameters(&model->grads, model->grads_memory, &model->layout, model->config.tied_embeddings);
    }
    memset(model->grads_memory, 0, model->layout.num_parameters * sizeof(float));
}

// gpt_backward: adds to the parameter gradients the gradient of
// loss_scale * mean(losses) of the last forward (loss_scale = 1 / grad_accum
// steps for accumulation). Destroys acts.logits.
static void gpt_backward(GPT* model, int B, int T, float zloss, float loss_scale) {
    if (model->mean_loss < 0.0f) { die("gpt_backward: the forward had no targets"); }
    if (model->grads_memory == NULL) { gpt_zero_grad(model); }
    const GPTConfig* c = &model->config;
    int L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    int V = c->vocab_size, Vp = c->padded_vocab_size, QKV = (NH + 2 * NKV) * hd, BT = B * T;
    ParameterTensors p = model->params, g = model->grads;
    Activations a = model->acts;
    GradActs d = model->gacts;
    classifier_backward(a.logits, a.lse, model->targets, BT, V, Vp, c->logit_softcap, zloss, loss_scale / BT);
    memset(d.dln, 0, (size_t)BT * C * sizeof(float));
    matmul_backward(d.dln, g.lm_w, a.logits, a.lnf, p.lm_w, BT, C, Vp);
    const float* xL = a.res_out + (size_t)(L - 1) * BT * C;
    memset(d.dres, 0, (size_t)BT * C * sizeof(float));
    rmsnorm_backward(d.dres, g.lnf_w, d.dln, xL, p.lnf_w, a.lnf_rstd, BT, C);
    for (int l = L - 1; l >= 0; l--) {
        LayerActs la = layer_acts(&a, l, B, T, c);
        // d.dres holds d(out). out = res_mid + mlp(...): d(res_mid) = d(out) + (through ln2 when sequential)
        memset(d.dswiglu, 0, (size_t)BT * F * sizeof(float));
        matmul_backward(d.dswiglu, g.fc_proj_w + (size_t)l * C * F, d.dres, la.sw, p.fc_proj_w + (size_t)l * C * F, BT, F, C);
        memset(d.dfch, 0, (size_t)BT * 2 * F * sizeof(float));
        swiglu_backward(d.dfch, d.dswiglu, la.fch, BT, F);
        // d.dln collects the gradient of the normed input(s): ln2 (sequential) or ln1 (parallel)
        memset(d.dln, 0, (size_t)BT * C * sizeof(float));
        const float* mlp_in = c->parallel_block ? la.ln1 : la.ln2;
        matmul_backward(d.dln, g.fc_w + (size_t)l * 2 * F * C, d.dfch, mlp_in, p.fc_w + (size_t)l * 2 * F * C, BT, C, 2 * F);
        float* dmid = d.dres;  // d(res_mid) = d(out), plus the ln2 path when sequential
        if (!c->parallel_block) {
            rmsnorm_backward(dmid, g.ln2_w + (size_t)l * C, d.dln, la.res_mid, p.ln2_w + (size_t)l * C, la.ln2_rstd, BT, C);
            memset(d.dln, 0, (size_t)BT * C * sizeof(float));
        }
        // res_mid = x + attn_proj(atty): d(x) = d(res_mid) + the attention path
        memset(d.datty, 0, (size_t)BT * NH * hd * sizeof(float));
        matmul_backward(d.datty, g.attn_proj_w + (size_t)l * C * NH * hd, dmid, la.atty,
                        p.attn_proj_w + (size_t)l * C * NH * hd, BT, NH * hd, C);
        memset(d.dq, 0, (size_t)BT * NH * hd * sizeof(float));
        memset(d.dk, 0, (size_t)BT * NKV * hd * sizeof(float));
        memset(d.dqkv, 0, (size_t)BT * QKV * sizeof(float));
        attention_backward(d.dq, d.dk, d.dqkv, d.datty, la.att, la.q, la.k, la.qkv, d.datt, B, T, NH, NKV, hd);
        qknorm_rope_backward(d.dqkv, g.q_norm_w + (size_t)l * hd, g.k_norm_w + (size_t)l * hd, d.dq, d.dk, la.qkv,
                             p.q_norm_w + (size_t)l * hd, p.k_norm_w + (size_t)l * hd, la.qk_rstd, model->rope_cos,
                             model->rope_sin, B, T, NH, NKV, hd, c->qk_norm);
        matmul_backward(d.dln, g.qkv_w + (size_t)l * QKV * C, d.dqkv, la.ln1, p.qkv_w + (size_t)l * QKV * C, BT, C, QKV);
        rmsnorm_backward(dmid, g.ln1_w + (size_t)l * C, d.dln, la.x, p.ln1_w + (size_t)l * C, la.ln1_rstd, BT, C);
        // dmid (== d.dres) now holds d(x): the next layer down reads it as its d(out)
    }
    encoder_backward(g.wte, d.dres, model->inputs, BT, C);
}

// gpt_grad_sumsq_range: sum of squared gradients over the flat range [start, end)
// (a ZeRO-1 shard; the data-parallel trainer all-reduces the shards' sums),
// summed in double in fixed chunks so the result does not depend on the thread count
static double gpt_grad_sumsq_range(const GPT* model, size_t start, size_t end) {
    size_t n = end - start;
    const float* g = model->grads_memory + start;
    enum { CHUNKS = 64 };
    double partial[CHUNKS];
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < CHUNKS; ch++) {
        size_t lo = n * ch / CHUNKS, hi = n * (ch + 1) / CHUNKS;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) { s += (double)g[i] * g[i]; }
        partial[ch] = s;
    }
    double total = 0.0;
    for (int ch = 0; ch < CHUNKS; ch++) { total += partial[ch]; }
    return total;
}

// gpt_grad_norm: global L2 norm of all gradients (one process)
static float gpt_grad_norm(const GPT* model) {
    return (float)sqrt(gpt_grad_sumsq_range(model, 0, model->layout.num_parameters));
}

// adamw_update: one tensor's AdamW step t (1-based): p (n,), m, v (n,) updated in
// place from gradients g (n,) scaled by grad_scale (the clipping factor); wd is
// this tensor's weight decay (0 for norm weights and the embedding)
static void adamw_update(float* p, float* m, float* v, const float* g, size_t n, float lr, float beta1, float beta2,
                         float eps, float wd, float grad_scale, int t) {
    float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
    }
}

// gpt_update_range: AdamW on the flat parameter range [start, end) only (this
// rank's ZeRO-1 shard); m, v hold end - start floats, m[0] belongs to parameter
// start. A tensor cut by the range is updated in its part; weight decay is per tensor.
static void gpt_update_range(GPT* model, size_t start, size_t end, float* m, float* v, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float grad_scale, int t) {
    for (int ti = 0; ti < NUM_PARAMETER_TENSORS; ti++) {
        size_t lo = model->layout.offsets[ti], hi = lo + model->layout.sizes[ti];
        if (lo < start) { lo = start; }
        if (hi > end) { hi = end; }
        if (lo >= hi) { continue; }
        float wd = param_is_decayed(ti) ? weight_decay : 0.0f;
        adamw_update(model->params_memory + lo, m + (lo - start), v + (lo - start), model->grads_memory + lo, hi - lo,
                     lr, beta1, beta2, eps, wd, grad_scale, t);
    }
}

// gpt_update: AdamW at optimizer step t (1-based), gradients scaled by grad_scale
// (the clipping factor); weight decay on the matrices only (param_is_decayed)
static void gpt_update(GPT* model, float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                       int t) {
    size_t n = model->layout.num_parameters;
    if (model->m_memory == NULL) {
        model->m_memory = (float*)callocCheck(n, sizeof(float));
        model->v_memory = (float*)callocCheck(n, sizeof(float));
    }
    gpt_update_range(model, 0, n, model->m_memory, model->v_memory, lr, beta1, beta2, eps, weight_decay, grad_scale, t);
}

static void gpt_free(GPT* model) {
    free(model->params_memory);
    free(model->grads_memory);
    free(model->m_memory);
    free(model->v_memory);
    free(model->acts_memory);
    free(model->gacts_memory);
    free(model->inputs);
    free(model->targets);
    free(model->rope_cos);
    free(model->rope_sin);
}

// ----------------------------------------------------------------------------
// sampling with a KV cache: the same layers, run on Tn new tokens at positions
// pos0..pos0+Tn-1, reading the keys and values of earlier positions from the
// cache. Only the NKV key/value heads are cached.

typedef struct {
    int B, max_T;         // batch rows and positions the cache holds
    float* k;             // (L, B, max_T, NKV, hd)
    float* v;             // (L, B, max_T, NKV, hd)
    int chunk;            // most new tokens per call (the scratch below is sized for B * chunk)
    float* x;             // (B, chunk, C) residual stream
    float* h;             // (B, chunk, C) normed input
    float* rstd;          // (B, chunk)
    float* qkv;           // (B, chunk, QKV)
    float* qk_rstd;       // (B, chunk, NH + NKV)
    float* q;             // (B, chunk, NH, hd)
    float* knew;          // (B, chunk, NKV, hd)
    float* y;             // (B, chunk, NH*hd)
    float* branch;        // (B, chunk, C)
    float* fch;           // (B, chunk, 2F)
    float* sw;            // (B, chunk, F)
    float* scores;        // (B, NH, max_T) softmax scratch
} KVCache;

static void kvcache_init(KVCache* kv, const GPTConfig* c, int B, int max_T, int chunk) {
    size_t L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    size_t QKV = (NH + 2 * NKV) * hd, Bc = (size_t)B * chunk;
    if (max_T > c->max_seq_len) { die("KV cache of %d positions exceeds max_seq_len %d", max_T, c->max_seq_len); }
    kv->B = B;
    kv->max_T = max_T;
    kv->chunk = chunk;
    kv->k = (float*)callocCheck(L * B * max_T * NKV * hd, sizeof(float));
    kv->v = (float*)callocCheck(L * B * max_T * NKV * hd, sizeof(float));
    kv->x = (float*)mallocCheck(Bc * C * sizeof(float));
    kv->h = (float*)mallocCheck(Bc * C * sizeof(float));
    kv->rstd = (float*)mallocCheck(Bc * sizeof(float));
    kv->qkv = (float*)mallocCheck(Bc * QKV * sizeof(float));
    kv->qk_rstd = (float*)mallocCheck(Bc * (NH + NKV) * sizeof(float));
    kv->q = (float*)mallocCheck(Bc * NH * hd * sizeof(float));
    kv->knew = (float*)mallocCheck(Bc * NKV * hd * sizeof(float));
    kv->y = (float*)mallocCheck(Bc * NH * hd * sizeof(float));
    kv->branch = (float*)mallocCheck(Bc * C * sizeof(float));
    kv->fch = (float*)mallocCheck(Bc * 2 * F * sizeof(float));
    kv->sw = (float*)mallocCheck(Bc * F * sizeof(float));
    kv->scores = (float*)mallocCheck((size_t)B * NH * max_T * sizeof(float));
}

static void kvcache_free(KVCache* kv) {
    free(kv->k); free(kv->v); free(kv->x); free(kv->h); free(kv->rstd); free(kv->qkv); free(kv->qk_rstd);
    free(kv->q); free(kv->knew); free(kv->y); free(kv->branch); free(kv->fch); free(kv->sw); free(kv->scores);
}

// attention_forward_cached: y (B, Tn, NH, hd) for queries q (B, Tn, NH, hd) at
// positions pos0.., over the cached keys/values kc, vc (B, max_T, NKV, hd) of
// positions 0..pos0+t (causal)
static void attention_forward_cached(float* y, float* scores, const float* q, const float* kc, const float* vc,
                                     int B, int Tn, int pos0, int max_T, int NH, int NKV, int hd) {
    int group = NH / NKV;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            int g = h / group;
            float* a = scores + ((size_t)b * NH + h) * max_T;
            for (int t = 0; t < Tn; t++) {
                int n = pos0 + t + 1;  // keys 0..pos0+t
                const float* qt = q + (((size_t)b * Tn + t) * NH + h) * hd;
                float maxv = -INFINITY;
                for (int t2 = 0; t2 < n; t2++) {
                    const float* kt = kc + (((size_t)b * max_T + t2) * NKV + g) * hd;
                    float s = 0.0f;
                    for (int i = 0; i < hd; i++) { s += qt[i] * kt[i]; }
                    a[t2] = s * scale;
                    if (a[t2] > maxv) { maxv = a[t2]; }
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 < n; t2++) { a[t2] = expf(a[t2] - maxv); sum += a[t2]; }
                float inv = 1.0f / sum;
                float* yt = y + (((size_t)b * Tn + t) * NH + h) * hd;
                for (int i = 0; i < hd; i++) { yt[i] = 0.0f; }
                for (int t2 = 0; t2 < n; t2++) {
                    const float* vt = vc + (((size_t)b * max_T + t2) * NKV + g) * hd;
                    float p = a[t2] * inv;
                    for (int i = 0; i < hd; i++) { yt[i] += p * vt[i]; }
                }
            }
        }
    }
}

// gpt_forward_cached: runs tokens (B, Tn) at positions pos0..pos0+Tn-1, appends
// their keys/values to the cache, and writes logits: (B, Tn, Vp) when
// all_positions, else only each row's last position, (B, Vp). Soft-cap applied.
static void gpt_forward_cached(GPT* model, KVCache* kv, const int* tokens, int B, int Tn, int pos0, float* logits,
                               int all_positions) {
    const GPTConfig* c = &model->config;
    int L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    int V = c->vocab_size, Vp = c->padded_vocab_size, QKV = (NH + 2 * NKV) * hd, BT = B * Tn, maxT = kv->max_T;
    if (B != kv->B || Tn < 1 || Tn > kv->chunk || pos0 < 0 || pos0 + Tn > maxT) {
        die("gpt_forward_cached: B %d, %d new tokens at position %d do not fit the cache (B %d, chunk %d, %d positions)",
            B, Tn, pos0, kv->B, kv->chunk, maxT);
    }
    for (int i = 0; i < BT; i++) {
        if (tokens[i] < 0 || tokens[i] >= V) { die("token id %d out of range [0, %d)", tokens[i], V); }
    }
    ParameterTensors p = model->params;
    encoder_forward(kv->x, tokens, p.wte, BT, C);
    for (int l = 0; l < L; l++) {
        float* kc = kv->k + (size_t)l * B * maxT * NKV * hd;
        float* vc = kv->v + (size_t)l * B * maxT * NKV * hd;
        rmsnorm_forward(kv->h, kv->rstd, kv->x, p.ln1_w + (size_t)l * C, BT, C, c->norm_eps);
        matmul_forward(kv->qkv, kv->h, p.qkv_w + (size_t)l * QKV * C, BT, C, QKV);
        qknorm_rope_forward(kv->q, kv->knew, kv->qk_rstd, kv->qkv, p.q_norm_w + (size_t)l * hd,
                            p.k_norm_w + (size_t)l * hd, model->rope_cos, model->rope_sin, B, Tn, pos0, NH, NKV, hd,
                            c->qk_norm, c->norm_eps);
        for (int b = 0; b < B; b++) {  // append this chunk's keys and values
            for (int t = 0; t < Tn; t++) {
                size_t dst = ((size_t)b * maxT + pos0 + t) * NKV * hd;
                size_t src = ((size_t)b * Tn + t);
                memcpy(kc + dst, kv->knew + src * NKV * hd, (size_t)NKV * hd * sizeof(float));
                memcpy(vc + dst, kv->qkv + src * QKV + (size_t)(NH + NKV) * hd, (size_t)NKV * hd * sizeof(float));
            }
        }
        attention_forward_cached(kv->y, kv->scores, kv->q, kc, vc, B, Tn, pos0, maxT, NH, NKV, hd);
        matmul_forward(kv->branch, kv->y, p.attn_proj_w + (size_t)l * C * NH * hd, BT, NH * hd, C);
        // parallel block: the MLP reads h = ln1(x) before x changes; sequential: ln2(x + attn)
        if (!c->parallel_block) {
            residual_forward(kv->x, kv->x, kv->branch, (size_t)BT * C);
            rmsnorm_forward(kv->h, kv->rstd, kv->x, p.ln2_w + (size_t)l * C, BT, C, c->norm_eps);
        }
        matmul_forward(kv->fch, kv->h, p.fc_w + (size_t)l * 2 * F * C, BT, C, 2 * F);
        swiglu_forward(kv->sw, kv->fch, BT, F);
        if (c->parallel_block) { residual_forward(kv->x, kv->x, kv->branch, (size_t)BT * C); }
        matmul_forward(kv->branch, kv->sw, p.fc_proj_w + (size_t)l * C * F, BT, F, C);
        residual_forward(kv->x, kv->x, kv->branch, (size_t)BT * C);
    }
    // the head, over all positions or each row's last
    int rows = all_positions ? BT : B;
    for (int r = 0; r < rows; r++) {
        int src = all_positions ? r : r * Tn + Tn - 1;
        memcpy(kv->branch + (size_t)r * C, kv->x + (size_t)src * C, C * sizeof(float));
    }
    rmsnorm_forward(kv->h, kv->rstd, kv->branch, p.lnf_w, rows, C, c->norm_eps);
    matmul_forward(logits, kv->h, p.lm_w, rows, C, Vp);
    if (c->logit_softcap > 0.0f) {
        float cap = c->logit_softcap;
        for (size_t i = 0; i < (size_t)rows * Vp; i++) { logits[i] = cap * tanhf(logits[i] / cap); }
    }
}

#endif // LLMC_GPT_CPU_H
