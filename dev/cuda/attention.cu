/*
Kernels for causal attention with GQA (llmc/attention.cuh), checked against llmc/gpt_cpu.h
attention_forward/backward.

forward:  out (B, T, NH, hd) = softmax(q k^T / sqrt(hd) + causal) v, query head h reads kv head
          h / (NH / NKV); lse (B, NH, T) fp32 = natural-log logsumexp of each row's scaled scores.
backward: dq (B, T, NH, hd), dk (B, T, NKV, hd), dv (v's addressing) OVERWRITTEN from dout, out, lse.
q (B, T, NH, hd), k (B, T, NKV, hd); v read either in place from qkv (B, T, (NH + 2 NKV) hd) at
offset (NH + NKV) hd (v_stride = (NH + 2 NKV) hd, as the trainer does) or contiguous
(B, T, NKV, hd) (v_stride = NKV hd). bf16 in and out, fp32 scores, statistics and accumulators.

The CPU reference reads the same bf16-rounded inputs; its backward accumulates (+=), so its
gradients start at zero, while the GPU's gradient buffers start as NaN (0xFFFF) to prove that
the backward overwrites every element. The in-place layout also checks that the q and k parts
of the dqkv buffer are left alone. Each backward runs twice and the bits must match (the
trainer promises bit-identical losses for a seed).

Tolerances (inputs ~N(0, 1)): out, dq, dk, dv atol 2e-2 rtol 2e-2 (bf16 outputs: one bf16 ulp is
2^-8 relative; P is rounded to bf16 before the P V and dS products); lse atol 2e-3 rtol 1e-3
(fp32 throughout, only the summation order and exp2 differ).

Compile and run:
    make -C dev/cuda attention && ./dev/cuda/bin/attention
Timings: d12 (B=16, T=1024, NH=12, NKV=4, hd=64) and 1b (B=8, T=1024, NH=16, NKV=4, hd=128), ms
and TFLOP/s with causal FLOPs: forward 4 B NH T^2 hd / 2, backward 2.5x that (the dQ kernel
recomputes P and dP, so the backward really does 3.5x the forward's products).

versions: 1 (forward: 4 warps x 16 query rows, 64-key tiles double-buffered, online softmax in
registers; backward: delta preprocess, dK/dV per 64-key block over the group's query heads,
separate dQ per 64-query block: no atomics, deterministic); mma.sync m16n8k16 bf16 throughout
*/
#include "common.h"
// the CPU reference is the project's own fp32 model code
#include "../../llmc/gpt_cpu.h"
#include "../../llmc/attention.cuh"

// ----------------------------------------------------------------------------
// CPU extras: lse, which the CPU forward keeps implicit in att

// lse (B, NH, T): natural-log logsumexp over t2 <= t of q.k / sqrt(hd), in double
static void cpu_attention_lse(float* lse, const float* q, const float* k, int B, int T, int NH, int NKV, int hd) {
    int group = NH / NKV;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const float* qt = q + (((size_t)b * T + t) * NH + h) * hd;
                double maxv = -INFINITY, sum = 0.0;
                for (int pass = 0; pass < 2; pass++) {
                    for (int t2 = 0; t2 <= t; t2++) {
                        const float* kt = k + (((size_t)b * T + t2) * NKV + h / group) * hd;
                        double s = 0.0;
                        for (int i = 0; i < hd; i++) { s += (double)qt[i] * kt[i]; }
                        s *= scale;
                        if (pass == 0) {
                            maxv = s > maxv ? s : maxv;
                        } else {
                            sum += exp(s - maxv);
                        }
                    }
                }
                lse[((size_t)b * NH + h) * T + t] = (float)(maxv + log(sum));
            }
        }
    }
}

// ----------------------------------------------------------------------------
// test driver

typedef struct {
    int B, T, NH, NKV, hd;
} Shape;

static const uint16_t NAN_BITS = 0xFFFF;  // a bf16 NaN: what the gradient buffers hold before the backward

// copy n bf16 from the device and return their bits
static uint16_t* host_bits(const bf16* d, size_t n) {
    uint16_t* h = (uint16_t*)mallocCheckHost(n * sizeof(uint16_t), "host_bits");
    cudaCheck(cudaMemcpy(h, d, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    return h;
}

static int check(Shape sh, HostRng* rng) {
    int B = sh.B, T = sh.T, NH = sh.NH, NKV = sh.NKV, hd = sh.hd;
    int QKV = (NH + 2 * NKV) * hd, voff = (NH + NKV) * hd;
    size_t BT = (size_t)B * T;
    size_t nq = BT * NH * hd, nk = BT * NKV * hd, nqkv = BT * QKV, nl = (size_t)B * NH * T;
    // inputs, bf16-exact so that the CPU sees the numbers the GPU sees
    float* q = random_f32(rng, nq, 1.0f, 0.0f, 1);
    float* k = random_f32(rng, nk, 1.0f, 0.0f, 1);
    float* qkv = random_f32(rng, nqkv, 1.0f, 0.0f, 1);  // the CPU reads v from here
    float* dout = random_f32(rng, nq, 1.0f, 0.0f, 1);
    float* vc = (float*)mallocCheckHost(nk * sizeof(float), "vc");  // v, contiguous (B, T, NKV, hd)
    for (size_t bt = 0; bt < BT; bt++) { memcpy(vc + bt * NKV * hd, qkv + bt * QKV + voff, NKV * hd * sizeof(float)); }

    // CPU reference
    float* y = (float*)mallocCheckHost(nq * sizeof(float), "y");
    float* att = (float*)mallocCheckHost(nl * T * sizeof(float), "att");
    float* lse = (float*)mallocCheckHost(nl * sizeof(float), "lse");
    float* dq = (float*)calloc(nq, sizeof(float));
    float* dk = (float*)calloc(nk, sizeof(float));
    float* dqkv = (float*)calloc(nqkv, sizeof(float));
    float* datt = (float*)mallocCheckHost((size_t)B * NKV * T * sizeof(float), "datt");
    float* dv = (float*)mallocCheckHost(nk * sizeof(float), "dv");
    if (!dq || !dk || !dqkv) {
        fprintf(stderr, "calloc failed\n");
        exit(1);
    }
    attention_forward(y, att, q, k, qkv, B, T, NH, NKV, hd);
    cpu_attention_lse(lse, q, k, B, T, NH, NKV, hd);
    attention_backward(dq, dk, dqkv, dout, att, q, k, qkv, datt, B, T, NH, NKV, hd);  // += into zeros
    for (size_t bt = 0; bt < BT; bt++) { memcpy(dv + bt * NKV * hd, dqkv + bt * QKV + voff, NKV * hd * sizeof(float)); }

    // GPU
    bf16 *d_q = device_bf16_from(q, nq), *d_k = device_bf16_from(k, nk), *d_qkv = device_bf16_from(qkv, nqkv);
    bf16 *d_vc = device_bf16_from(vc, nk), *d_dout = device_bf16_from(dout, nq);
    bf16 *d_out, *d_dq, *d_dk, *d_dqkv, *d_dvc, *d_dv;
    float* d_lse;
    void* d_scratch;
    cudaCheck(cudaMalloc(&d_out, nq * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_lse, nl * sizeof(float)));
    cudaCheck(cudaMalloc(&d_dq, nq * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_dk, nk * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_dqkv, nqkv * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_dvc, nk * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_dv, nk * sizeof(bf16)));  // dv gathered to (B, T, NKV, hd) for the comparison
    cudaCheck(cudaMalloc(&d_scratch, attention_backward_scratch_bytes(B, T, NH, NKV, hd)));

    int ok = 1;
    for (int inplace = 1; inplace >= 0; inplace--) {
        const bf16* v = inplace ? d_qkv + voff : d_vc;
        int v_stride = inplace ? QKV : NKV * hd;
        bf16* dvp = inplace ? d_dqkv + voff : d_dvc;
        printf("  B=%d T=%d NH=%d NKV=%d hd=%d v %s (v_stride %d)\n", B, T, NH, NKV, hd,
               inplace ? "in place in qkv" : "contiguous", v_stride);
        cudaCheck(cudaMemset(d_out, 0xFF, nq * sizeof(bf16)));
        cudaCheck(cudaMemset(d_lse, 0xFF, nl * sizeof(float)));
        attention_forward(d_out, d_lse, d_q, d_k, v, v_stride, B, T, NH, NKV, hd, 0);
        ok &= validate_result(d_out, y, "out", nq, 2e-2f, 2e-2f);
        ok &= validate_result(d_lse, lse, "lse", nl, 2e-3f, 1e-3f);

        uint16_t* first[3] = {NULL, NULL, NULL};
        for (int run = 0; run < 2; run++) {
            cudaCheck(cudaMemset(d_dq, 0xFF, nq * sizeof(bf16)));
            cudaCheck(cudaMemset(d_dk, 0xFF, nk * sizeof(bf16)));
            cudaCheck(cudaMemset(d_dqkv, 0xFF, nqkv * sizeof(bf16)));
            cudaCheck(cudaMemset(d_dvc, 0xFF, nk * sizeof(bf16)));
            attention_backward(d_dq, d_dk, dvp, d_scratch, d_dout, d_out, d_lse, d_q, d_k, v, v_stride, B, T, NH, NKV,
                               hd, 0);
            cudaCheck(cudaMemcpy2D(d_dv, (size_t)NKV * hd * sizeof(bf16), dvp, (size_t)v_stride * sizeof(bf16),
                                   (size_t)NKV * hd * sizeof(bf16), BT, cudaMemcpyDeviceToDevice));
            if (run == 0) {
                ok &= validate_result(d_dq, dq, "dq", nq, 2e-2f, 2e-2f);
                ok &= validate_result(d_dk, dk, "dk", nk, 2e-2f, 2e-2f);
                ok &= validate_result(d_dv, dv, "dv", nk, 2e-2f, 2e-2f);
                first[0] = host_bits(d_dq, nq);
                first[1] = host_bits(d_dk, nk);
                first[2] = host_bits(d_dv, nk);
                if (inplace) {
                    // the q and k parts of the dqkv buffer belong to other kernels: untouched
                    uint16_t* all = host_bits(d_dqkv, nqkv);
                    size_t touched = 0;
                    for (size_t bt = 0; bt < BT; bt++) {
                        for (int i = 0; i < voff; i++) { touched += all[bt * QKV + i] != NAN_BITS; }
                    }
                    printf("    dqkv q/k parts %s\n", touched ? "WRITTEN (FAIL)" : "untouched ok");
                    if (touched) { ok = 0; }
                    free(all);
                }
            } else {
                uint16_t* again[3] = {host_bits(d_dq, nq), host_bits(d_dk, nk), host_bits(d_dv, nk)};
                size_t n[3] = {nq, nk, nk};
                int same = 1;
                for (int i = 0; i < 3; i++) {
                    same &= memcmp(first[i], again[i], n[i] * sizeof(uint16_t)) == 0;
                    free(again[i]);
                    free(first[i]);
                }
                printf("    backward run twice: %s\n", same ? "bit-identical ok" : "DIFFERENT bits (FAIL)");
                ok &= same;
            }
        }
    }

    cudaCheck(cudaFree(d_q));
    cudaCheck(cudaFree(d_k));
    cudaCheck(cudaFree(d_qkv));
    cudaCheck(cudaFree(d_vc));
    cudaCheck(cudaFree(d_dout));
    cudaCheck(cudaFree(d_out));
    cudaCheck(cudaFree(d_lse));
    cudaCheck(cudaFree(d_dq));
    cudaCheck(cudaFree(d_dk));
    cudaCheck(cudaFree(d_dqkv));
    cudaCheck(cudaFree(d_dvc));
    cudaCheck(cudaFree(d_dv));
    cudaCheck(cudaFree(d_scratch));
    free(q); free(k); free(qkv); free(dout); free(vc); free(y); free(att); free(lse);
    free(dq); free(dk); free(dqkv); free(datt); free(dv);
    return ok;
}

// timing with v read in place from qkv, as the trainer calls it
static void bench(Shape sh, const char* name, HostRng* rng) {
    int B = sh.B, T = sh.T, NH = sh.NH, NKV = sh.NKV, hd = sh.hd;
    int QKV = (NH + 2 * NKV) * hd, voff = (NH + NKV) * hd;
    size_t BT = (size_t)B * T;
    size_t nq = BT * NH * hd, nk = BT * NKV * hd, nqkv = BT * QKV, nl = (size_t)B * NH * T;
    float* h = random_f32(rng, nqkv, 1.0f, 0.0f, 1);
    bf16 *qkv = device_bf16_from(h, nqkv), *q = device_bf16_from(h, nq), *k = device_bf16_from(h + nq, nk);
    bf16* dout = device_bf16_from(h, nq);  // any bf16 values serve for timing
    bf16 *out, *dq, *dk, *dqkv;
    float* lse;
    void* scratch;
    cudaCheck(cudaMalloc(&out, nq * sizeof(bf16)));
    cudaCheck(cudaMalloc(&lse, nl * sizeof(float)));
    cudaCheck(cudaMalloc(&dq, nq * sizeof(bf16)));
    cudaCheck(cudaMalloc(&dk, nk * sizeof(bf16)));
    cudaCheck(cudaMalloc(&dqkv, nqkv * sizeof(bf16)));
    cudaCheck(cudaMalloc(&scratch, attention_backward_scratch_bytes(B, T, NH, NKV, hd)));
    const bf16* v = qkv + voff;
    double flops_fwd = 4.0 * B * NH * (double)T * T * hd / 2.0;
    double flops_bwd = 2.5 * flops_fwd;
    float ms_fwd = benchmark_kernel(BENCH_REPEATS, [&]() {
        attention_forward(out, lse, q, k, v, QKV, B, T, NH, NKV, hd, 0);
    });
    float ms_bwd = benchmark_kernel(BENCH_REPEATS, [&]() {
        attention_backward(dq, dk, dqkv + voff, scratch, dout, out, lse, q, k, v, QKV, B, T, NH, NKV, hd, 0);
    });
    printf("  %-4s B=%d T=%d NH=%d NKV=%d hd=%d | forward %.4f ms %.1f TFLOP/s | backward %.4f ms %.1f TFLOP/s\n", name,
           B, T, NH, NKV, hd, ms_fwd, flops_fwd / ms_fwd / 1e9, ms_bwd, flops_bwd / ms_bwd / 1e9);
    cudaCheck(cudaFree(qkv));
    cudaCheck(cudaFree(q));
    cudaCheck(cudaFree(k));
    cudaCheck(cudaFree(dout));
    cudaCheck(cudaFree(out));
    cudaCheck(cudaFree(lse));
    cudaCheck(cudaFree(dq));
    cudaCheck(cudaFree(dk));
    cudaCheck(cudaFree(dqkv));
    cudaCheck(cudaFree(scratch));
    free(h);
}

int main(int argc, char** argv) {
    (void)argc;
    (void)argv;
    cudaCheck(cudaSetDevice(0));
    HostRng rng;
    rng_init(&rng, 1337);

    // hd 64 and 128; NKV 1 (MQA), 2 (GQA), NH (MHA); T = 1, below, at and across the 64-row
    // tiles and the 32-row dK/dV query step (17, 33, 65, 200, 1000) and a whole 1024; B 1..4
    // (the large T with 2 heads and B 1, T 1000 at hd 64 only: they cost T^2 each on the CPU
    // backend, and batch, head and ragged-tile indexing at hd 128 are in the small ones)
    const Shape shapes[] = {
        {1, 1, 4, 1, 64},    {2, 17, 4, 2, 64},  {3, 200, 6, 2, 64},   {1, 1000, 2, 2, 64},
        {1, 1024, 2, 1, 64}, {4, 65, 8, 8, 64},  {1, 1, 2, 2, 128},    {2, 17, 4, 1, 128},
        {2, 200, 4, 2, 128}, {1, 1024, 2, 1, 128}, {4, 33, 4, 4, 128},
    };
    int all_ok = 1;
    for (int s = 0; s < (int)(sizeof(shapes) / sizeof(shapes[0])); s++) {
        if (small_only() && shapes[s].T >= 1000) { continue; }  // large
        all_ok &= check(shapes[s], &rng);
    }
    if (!all_ok) {
        printf("attention: some checks FAILED\n");
        return 1;
    }
    printf("attention: all checks passed\n");
    if (!bench_wanted()) { return 0; }

    const Shape d12 = {16, 1024, 12, 4, 64}, b1 = {8, 1024, 16, 4, 128};
    bench(d12, "d12", &rng);
    bench(b1, "1b", &rng);
    return 0;
}
