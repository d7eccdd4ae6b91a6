/*
Kernels for the fused QK-norm + RoPE of attention (llmc/gpt_cpu.h qknorm_rope_forward/backward).

forward:  from the raw projections qkv (B, T, (NH + 2 NKV) hd) (rows: q heads, k heads, v heads)
          q (B, T, NH, hd), k (B, T, NKV, hd) = rope(rmsnorm(head) * w)   (w = q_norm_w or k_norm_w,
          (hd,) shared by heads; no norm when qk_norm == 0), rstd (B, T, NH + NKV) fp32 saved
          (1 when qk_norm == 0). RoPE rotate-half: pair (i, i + hd/2), angle = pos * theta^(-2i/hd),
          cos/sin fp32 tables (max_seq_len, hd/2) from rope_init, positions pos0 .. pos0 + T - 1.
backward: dn = rope^T(dout) (rotation by the negative angle), then
          dqkv q/k parts += rstd * (dn * w - xhat * mean(dn * w * xhat)),  xhat = src * rstd
          (just dn when qk_norm == 0), dq_norm_w / dk_norm_w (hd,) += sum of dn * xhat (fp32).
bf16 in and out, fp32 math. dqkv is accumulated (+=) like the CPU reference; its v part is
not touched.

Deterministic norm-weight gradients: each block owns a fixed contiguous range of (token, head)
rows; its warps accumulate per-lane partials in registers, add them into shared memory one
warp after another (fixed order), and the block writes partial (num_blocks, 2 hd) (q then k).
A second kernel adds the partials per column in block order. No atomics, so the bits only
depend on the launch configuration (block size), never on scheduling.

Limits: hd even and hd <= 256 (each lane keeps up to 4 rotation pairs in registers; every preset has
hd 64 or 128). The backward has __launch_bounds__(1024) so that block size 1024 can launch.

Compile and run:
    make -C dev/cuda qknorm_rope && ./dev/cuda/bin/qknorm_rope [fwd_version] [bwd_version]
(no arguments: every version; a version of 0 skips that pass)

versions: forward 1 (warp per (token, head), lane owns pairs lane + 32 j, warp-reduced sum of squares); backward 1 (same mapping, dqkv in place, norm-weight grads via per-block partials + fixed-order reduce)
*/
#include "common.h"
// the CPU reference is the project's own fp32 model code
#include "../../llmc/gpt_cpu.h"
// the GPU kernels are the production ones of llmc/qknorm_rope.cuh (the trainer runs the same code)
#include "../../llmc/qknorm_rope.cuh"

static void qknorm_rope_fwd(int version, bf16* q, bf16* k, float* rstd, const bf16* qkv, const bf16* qw,
                            const bf16* kw, const float* cosv, const float* sinv, int B, int T, int pos0, int NH,
                            int NKV, int hd, int qk_norm, float eps, int block_size, cudaStream_t stream) {
    switch (version) {
        case 1:
            qknorm_rope_forward1(q, k, rstd, qkv, qw, kw, cosv, sinv, B, T, pos0, NH, NKV, hd, qk_norm, eps,
                                 block_size, stream);
            break;
        default: fprintf(stderr, "unknown forward version %d\n", version); exit(1);
    }
}

static void qknorm_rope_bwd(int version, bf16* dqkv, float* dqw, float* dkw, float* scratch, const bf16* dq,
                            const bf16* dk, const bf16* qkv, const bf16* qw, const bf16* kw, const float* rstd,
                            const float* cosv, const float* sinv, int B, int T, int NH, int NKV, int hd, int qk_norm,
                            int block_size, cudaStream_t stream) {
    switch (version) {
        case 1:
            qknorm_rope_backward1(dqkv, dqw, dkw, scratch, dq, dk, qkv, qw, kw, rstd, cosv, sinv, B, T, NH, NKV, hd,
                                  qk_norm, block_size, stream);
            break;
        default: fprintf(stderr, "unknown backward version %d\n", version); exit(1);
    }
}

// ----------------------------------------------------------------------------
// test driver

typedef struct {
    int B, T, NH, NKV, hd, pos0;
} Shape;

static int check(int fwd_version, int bwd_version, Shape sh, int qk_norm, HostRng* rng) {
    int B = sh.B, T = sh.T, NH = sh.NH, NKV = sh.NKV, hd = sh.hd, pos0 = sh.pos0;
    int NHK = NH + NKV, half = hd / 2, max_seq = pos0 + T;
    const float eps = 1e-5f, theta = 10000.0f;
    size_t BT = (size_t)B * T;
    size_t nqkv = BT * (NH + 2 * NKV) * hd, nq = BT * NH * hd, nk = BT * NKV * hd, nr = BT * NHK;
    float* qkv = random_f32(rng, nqkv, 1.0f, 0.0f, 1);
    float* qw = random_f32(rng, hd, 0.1f, 1.0f, 1);
    float* kw = random_f32(rng, hd, 0.1f, 1.0f, 1);
    float* dq = random_f32(rng, nq, 1.0f, 0.0f, 1);
    float* dk = random_f32(rng, nk, 1.0f, 0.0f, 1);
    float* dqkv0 = random_f32(rng, nqkv, 0.5f, 0.0f, 1);  // += target: starts non-zero
    float* dqw0 = random_f32(rng, hd, 0.5f, 0.0f, 0);
    float* dkw0 = random_f32(rng, hd, 0.5f, 0.0f, 0);
    float* cosv = (float*)mallocCheckHost((size_t)max_seq * half * sizeof(float), "cos");
    float* sinv = (float*)mallocCheckHost((size_t)max_seq * half * sizeof(float), "sin");
    rope_init(cosv, sinv, max_seq, hd, theta);
    float* q = (float*)mallocCheckHost(nq * sizeof(float), "q");
    float* k = (float*)mallocCheckHost(nk * sizeof(float), "k");
    float* rstd = (float*)mallocCheckHost(nr * sizeof(float), "rstd");
    float* rstd_bwd = (float*)mallocCheckHost(nr * sizeof(float), "rstd_bwd");
    float* q0 = (float*)mallocCheckHost(nq * sizeof(float), "q0");
    float* k0 = (float*)mallocCheckHost(nk * sizeof(float), "k0");
    float* dqkv = (float*)mallocCheckHost(nqkv * sizeof(float), "dqkv");
    float* dqw = (float*)mallocCheckHost(hd * sizeof(float), "dqw");
    float* dkw = (float*)mallocCheckHost(hd * sizeof(float), "dkw");
    qknorm_rope_forward(q, k, rstd, qkv, qw, kw, cosv, sinv, B, T, pos0, NH, NKV, hd, qk_norm, eps);
    // the CPU backward reads positions 0..T-1; rstd does not depend on position
    qknorm_rope_forward(q0, k0, rstd_bwd, qkv, qw, kw, cosv, sinv, B, T, 0, NH, NKV, hd, qk_norm, eps);
    memcpy(dqkv, dqkv0, nqkv * sizeof(float));
    memcpy(dqw, dqw0, hd * sizeof(float));
    memcpy(dkw, dkw0, hd * sizeof(float));
    qknorm_rope_backward(dqkv, dqw, dkw, dq, dk, qkv, qw, kw, rstd_bwd, cosv, sinv, B, T, NH, NKV, hd, qk_norm);

    bf16 *d_qkv = device_bf16_from(qkv, nqkv), *d_qw = device_bf16_from(qw, hd), *d_kw = device_bf16_from(kw, hd);
    bf16 *d_dq = device_bf16_from(dq, nq), *d_dk = device_bf16_from(dk, nk), *d_dqkv = device_bf16_from(dqkv0, nqkv);
    float *d_cos = device_f32_from(cosv, (size_t)max_seq * half), *d_sin = device_f32_from(sinv, (size_t)max_seq * half);
    float *d_rstd_bwd = device_f32_from(rstd_bwd, nr), *d_dqw = device_f32_from(dqw0, hd),
          *d_dkw = device_f32_from(dkw0, hd);
    bf16 *d_q, *d_k;
    float *d_rstd, *d_scratch;
    cudaCheck(cudaMalloc(&d_q, nq * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_k, nk * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_rstd, nr * sizeof(float)));
    cudaCheck(cudaMalloc(&d_scratch, (size_t)QKROPE_PARTIAL_BLOCKS * 2 * hd * sizeof(float)));
    bf16* h_dqkv0 = (bf16*)mallocCheckHost(nqkv * sizeof(bf16), "dqkv0");
    to_bf16_host(h_dqkv0, dqkv0, nqkv);
    int ok = 1;
    for (int b = 0; b < NUM_BLOCK_SIZES; b++) {
        int bs = BLOCK_SIZES[b];
        printf("  B=%d T=%d NH=%d NKV=%d hd=%d pos0=%d qk_norm=%d block_size=%d\n", B, T, NH, NKV, hd, pos0,
               qk_norm, bs);
        if (fwd_version > 0) {
            cudaCheck(cudaMemset(d_q, 0, nq * sizeof(bf16)));
            cudaCheck(cudaMemset(d_k, 0, nk * sizeof(bf16)));
            cudaCheck(cudaMemset(d_rstd, 0, nr * sizeof(float)));
            qknorm_rope_fwd(fwd_version, d_q, d_k, d_rstd, d_qkv, d_qw, d_kw, d_cos, d_sin, B, T, pos0, NH, NKV, hd,
                            qk_norm, eps, bs, 0);
            // bf16 outputs of O(1): a bf16 ulp is 2^-8 relative
            ok &= validate_result(d_q, q, "q", nq, 1e-2f, 1e-2f);
            ok &= validate_result(d_k, k, "k", nk, 1e-2f, 1e-2f);
            ok &= validate_result(d_rstd, rstd, "rstd", nr, 1e-5f, 1e-4f);
        }
        if (bwd_version > 0) {
            cudaCheck(cudaMemcpy(d_dqkv, h_dqkv0, nqkv * sizeof(bf16), cudaMemcpyHostToDevice));
            cudaCheck(cudaMemcpy(d_dqw, dqw0, hd * sizeof(float), cudaMemcpyHostToDevice));
            cudaCheck(cudaMemcpy(d_dkw, dkw0, hd * sizeof(float), cudaMemcpyHostToDevice));
            qknorm_rope_bwd(bwd_version, d_dqkv, d_dqw, d_dkw, d_scratch, d_dq, d_dk, d_qkv, d_qw, d_kw, d_rstd_bwd,
                            d_cos, d_sin, B, T, NH, NKV, hd, qk_norm, bs, 0);
            // dqkv: bf16 +=, v part must be unchanged (the reference leaves it alone too)
            ok &= validate_result(d_dqkv, dqkv, "dqkv", nqkv, 1e-2f, 1e-2f);
            // fp32 sums over B*T*heads rows in a different order than the serial CPU loop
            ok &= validate_result(d_dqw, dqw, "dq_norm_w", hd, 1e-2f, 1e-3f);
            ok &= validate_result(d_dkw, dkw, "dk_norm_w", hd, 1e-2f, 1e-3f);
        }
    }
    cudaCheck(cudaFree(d_qkv));
    cudaCheck(cudaFree(d_qw));
    cudaCheck(cudaFree(d_kw));
    cudaCheck(cudaFree(d_dq));
    cudaCheck(cudaFree(d_dk));
    cudaCheck(cudaFree(d_dqkv));
    cudaCheck(cudaFree(d_cos));
    cudaCheck(cudaFree(d_sin));
    cudaCheck(cudaFree(d_rstd_bwd));
    cudaCheck(cudaFree(d_dqw));
    cudaCheck(cudaFree(d_dkw));
    cudaCheck(cudaFree(d_q));
    cudaCheck(cudaFree(d_k));
    cudaCheck(cudaFree(d_rstd));
    cudaCheck(cudaFree(d_scratch));
    free(qkv); free(qw); free(kw); free(dq); free(dk); free(dqkv0); free(dqw0); free(dkw0);
    free(cosv); free(sinv); free(q); free(k); free(rstd); free(rstd_bwd); free(q0); free(k0);
    free(dqkv); free(dqw); free(dkw); free(h_dqkv0);
    return ok;
}

static void bench(int fwd_version, int bwd_version, Shape sh, HostRng* rng) {
    int B = sh.B, T = sh.T, NH = sh.NH, NKV = sh.NKV, hd = sh.hd, half = hd / 2;
    size_t BT = (size_t)B * T;
    size_t nqkv = BT * (NH + 2 * NKV) * hd, nq = BT * NH * hd, nk = BT * NKV * hd, nr = BT * (NH + NKV);
    float* h = random_f32(rng, nqkv, 1.0f, 0.0f, 1);
    float* hw = random_f32(rng, hd, 0.1f, 1.0f, 1);
    float* cosv = (float*)mallocCheckHost((size_t)T * half * sizeof(float), "cos");
    float* sinv = (float*)mallocCheckHost((size_t)T * half * sizeof(float), "sin");
    rope_init(cosv, sinv, T, hd, 10000.0f);
    bf16 *qkv = device_bf16_from(h, nqkv), *dqkv = device_bf16_from(h, nqkv), *w = device_bf16_from(hw, hd);
    bf16 *dq = device_bf16_from(h, nq), *dk = device_bf16_from(h, nk);  // any bf16 values serve for timing
    float *d_cos = device_f32_from(cosv, (size_t)T * half), *d_sin = device_f32_from(sinv, (size_t)T * half);
    bf16 *q, *k;
    float *rstd, *dqw, *dkw, *scratch;
    cudaCheck(cudaMalloc(&q, nq * sizeof(bf16)));
    cudaCheck(cudaMalloc(&k, nk * sizeof(bf16)));
    cudaCheck(cudaMalloc(&rstd, nr * sizeof(float)));
    cudaCheck(cudaMalloc(&dqw, hd * sizeof(float)));
    cudaCheck(cudaMalloc(&dkw, hd * sizeof(float)));
    cudaCheck(cudaMalloc(&scratch, (size_t)QKROPE_PARTIAL_BLOCKS * 2 * hd * sizeof(float)));
    cudaCheck(cudaMemset(dqw, 0, hd * sizeof(float)));
    cudaCheck(cudaMemset(dkw, 0, hd * sizeof(float)));
    size_t nqk = nq + nk;  // elements of the q and k parts
    for (int bi = 0; bi < NUM_BLOCK_SIZES; bi++) {
        int bs = BLOCK_SIZES[bi];
        // make rstd valid for the backward (forward 1 always exists)
        qknorm_rope_fwd(1, q, k, rstd, qkv, w, w, d_cos, d_sin, B, T, 0, NH, NKV, hd, 1, 1e-5f, bs, 0);
        if (fwd_version > 0) {
            float ms = benchmark_kernel(BENCH_REPEATS, [&]() {
                qknorm_rope_fwd(fwd_version, q, k, rstd, qkv, w, w, d_cos, d_sin, B, T, 0, NH, NKV, hd, 1, 1e-5f, bs,
                                0);
            });
            double bytes = 2.0 * nqk * sizeof(bf16) + nr * sizeof(float);  // qkv q/k parts in, q k out, rstd out
            printf("  forward%d  B=%d T=%d NH=%d NKV=%d hd=%d block_size %4d | time %.4f ms | bandwidth %.1f GB/s\n",
                   fwd_version, B, T, NH, NKV, hd, bs, ms, bytes / ms / 1e6);
        }
        if (bwd_version > 0) {
            float ms = benchmark_kernel(BENCH_REPEATS, [&]() {
                qknorm_rope_bwd(bwd_version, dqkv, dqw, dkw, scratch, dq, dk, qkv, w, w, rstd, d_cos, d_sin, B, T, NH,
                                NKV, hd, 1, bs, 0);
            });
            // dq dk in, qkv q/k parts in, dqkv q/k parts read + write, rstd in
            double bytes = 4.0 * nqk * sizeof(bf16) + nr * sizeof(float);
            printf("  backward%d B=%d T=%d NH=%d NKV=%d hd=%d block_size %4d | time %.4f ms | bandwidth %.1f GB/s\n",
                   bwd_version, B, T, NH, NKV, hd, bs, ms, bytes / ms / 1e6);
        }
    }
    cudaCheck(cudaFree(qkv));
    cudaCheck(cudaFree(dqkv));
    cudaCheck(cudaFree(w));
    cudaCheck(cudaFree(dq));
    cudaCheck(cudaFree(dk));
    cudaCheck(cudaFree(d_cos));
    cudaCheck(cudaFree(d_sin));
    cudaCheck(cudaFree(q));
    cudaCheck(cudaFree(k));
    cudaCheck(cudaFree(rstd));
    cudaCheck(cudaFree(dqw));
    cudaCheck(cudaFree(dkw));
    cudaCheck(cudaFree(scratch));
    free(h); free(hw); free(cosv); free(sinv);
}

int main(int argc, char** argv) {
    int fwd_version = 1, bwd_version = 1;
    if (argc > 1) { fwd_version = atoi(argv[1]); }
    if (argc > 2) { bwd_version = atoi(argv[2]); }
    cudaCheck(cudaSetDevice(0));
    HostRng rng;
    rng_init(&rng, 1337);

    // hd 64 and 128; NKV 1 (MQA), 2 (GQA), NH (MHA); T not a multiple of any tile;
    // one shape decodes at pos0 > 0 (the forward only: the backward trains from position 0)
    const Shape shapes[] = {
        {2, 37, 4, 1, 64, 0},  {2, 37, 4, 2, 64, 0},    {2, 37, 4, 4, 64, 0},  {2, 37, 4, 1, 128, 0},
        {2, 37, 4, 2, 128, 0}, {2, 37, 4, 4, 128, 0},   {1, 5, 12, 4, 64, 0},  {3, 129, 8, 2, 128, 0},
        {4, 250, 12, 4, 64, 0}, {1, 19, 6, 2, 64, 23},
    };
    int all_ok = 1;
    for (int s = 0; s < (int)(sizeof(shapes) / sizeof(shapes[0])); s++) {
        for (int qk_norm = 1; qk_norm >= 0; qk_norm--) {
            all_ok &= check(fwd_version, bwd_version, shapes[s], qk_norm, &rng);
        }
    }
    if (!all_ok) {
        printf("qknorm_rope: some checks FAILED\n");
        return 1;
    }
    printf("qknorm_rope: all checks passed\n");
    if (!bench_wanted()) { return 0; }

    const Shape d12 = {16, 1024, 12, 4, 64, 0};  // d12 at B=16, T=1024
    bench(fwd_version, bwd_version, d12, &rng);
    return 0;
}
