/*
Kernels for the token embedding (llmc/gpt_cpu.h encoder_forward/backward), the production
ones of llmc/encoder.cuh.

forward:  out (BT, C) bf16 = wte[tokens], wte (Vp, C) bf16
backward: dwte (Vp, C) fp32 += rows of dout (BT, C) bf16 scattered by token; deterministic:
          the host sorts positions into one bucket per distinct token (stable counting sort),
          one block per bucket sums its rows in position order. No atomics.

Checks: the forward is a copy (exact); the backward against the CPU reference (which adds
row by row; the GPU adds a bucket's rows first, then onto dwte: a different fp32 order, so a
small tolerance), and bit-identical over two runs. Tokens are drawn from a few ids so that
buckets hold many rows.

Compile and run:
    make -C dev/cuda encoder && ./dev/cuda/bin/encoder

versions: forward 1 (thread per element), 2 (thread per 8 channels, 128-bit; falls back to 1 when C % 8 != 0); backward 1 (block per token bucket)
*/
#include "common.h"
// the CPU reference is the project's own fp32 model code
#include "../../llmc/gpt_cpu.h"
// the GPU kernels are the production ones of llmc/encoder.cuh
#include "../../llmc/encoder.cuh"

static void encoder_fwd(int version, bf16* out, const int* tokens, const bf16* wte, int BT, int C, int block_size) {
    switch (version) {
        case 1: encoder_forward1(out, tokens, wte, BT, C, block_size, 0); break;
        case 2: encoder_forward2(out, tokens, wte, BT, C, block_size, 0); break;
        default: fprintf(stderr, "unknown forward version %d\n", version); exit(1);
    }
}

static int* random_tokens(HostRng* rng, int BT, int distinct) {
    int* t = (int*)mallocCheckHost((size_t)BT * sizeof(int), "tokens");
    for (int i = 0; i < BT; i++) { t[i] = (int)(rng_u32(rng) % (uint32_t)distinct); }
    return t;
}

static int check(int BT, int C, int Vp, int distinct, HostRng* rng) {
    size_t nw = (size_t)Vp * C, no = (size_t)BT * C;
    float* wte = random_f32(rng, nw, 1.0f, 0.0f, 1);
    float* dout = random_f32(rng, no, 1.0f, 0.0f, 1);
    float* dwte0 = random_f32(rng, nw, 0.1f, 0.0f, 0);  // += target: starts non-zero
    int* tokens = random_tokens(rng, BT, distinct);
    float* out = (float*)mallocCheckHost(no * sizeof(float), "out");
    float* dwte = (float*)mallocCheckHost(nw * sizeof(float), "dwte");
    encoder_forward(out, tokens, wte, BT, C);
    memcpy(dwte, dwte0, nw * sizeof(float));
    encoder_backward(dwte, dout, tokens, BT, C);

    bf16 *d_wte = device_bf16_from(wte, nw), *d_dout = device_bf16_from(dout, no), *d_out;
    float* d_dwte = device_f32_from(dwte0, nw);
    int *d_tokens, *d_buckets;
    cudaCheck(cudaMalloc(&d_out, no * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_tokens, (size_t)BT * sizeof(int)));
    cudaCheck(cudaMalloc(&d_buckets, encoder_buckets_ints(BT) * sizeof(int)));
    cudaCheck(cudaMemcpy(d_tokens, tokens, (size_t)BT * sizeof(int), cudaMemcpyHostToDevice));
    int* buckets = (int*)mallocCheckHost(encoder_buckets_ints(BT) * sizeof(int), "buckets");
    int* work = (int*)calloc(encoder_buckets_work_ints(Vp, BT), sizeof(int));
    encoder_buckets_build(buckets, work, tokens, BT, Vp);
    int ok = 1;
    for (int v = 1; v <= 2; v++) {
        for (int b = 0; b < NUM_BLOCK_SIZES; b++) {
            printf("  forward%d BT=%d C=%d block_size=%d\n", v, BT, C, BLOCK_SIZES[b]);
            cudaCheck(cudaMemset(d_out, 0, no * sizeof(bf16)));
            encoder_fwd(v, d_out, d_tokens, d_wte, BT, C, BLOCK_SIZES[b]);
            ok &= validate_result(d_out, out, "out", no, 0.0f, 0.0f);
        }
    }
    printf("  backward1 BT=%d C=%d Vp=%d (%d buckets)\n", BT, C, Vp, buckets[0]);
    encoder_backward(d_dwte, d_buckets, buckets, d_dout, BT, C, 0);
    ok &= validate_result(d_dwte, dwte, "dwte", nw, 1e-5f, 1e-5f);
    // determinism: a second run from the same start gives the same bits
    float* first = (float*)mallocCheckHost(nw * sizeof(float), "first");
    float* second = (float*)mallocCheckHost(nw * sizeof(float), "second");
    cudaCheck(cudaMemcpy(first, d_dwte, nw * sizeof(float), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(d_dwte, dwte0, nw * sizeof(float), cudaMemcpyHostToDevice));
    encoder_backward(d_dwte, d_buckets, buckets, d_dout, BT, C, 0);
    cudaCheck(cudaMemcpy(second, d_dwte, nw * sizeof(float), cudaMemcpyDeviceToHost));
    int same = memcmp(first, second, nw * sizeof(float)) == 0;
    printf("    dwte       two runs bit-identical: %s\n", same ? "ok" : "FAIL");
    ok &= same;
    cudaCheck(cudaFree(d_wte)); cudaCheck(cudaFree(d_dout)); cudaCheck(cudaFree(d_out)); cudaCheck(cudaFree(d_dwte));
    cudaCheck(cudaFree(d_tokens)); cudaCheck(cudaFree(d_buckets));
    free(wte); free(dout); free(dwte0); free(tokens); free(out); free(dwte); free(buckets); free(work);
    free(first); free(second);
    return ok;
}

static void bench(int BT, int C, int Vp, HostRng* rng) {
    size_t nw = (size_t)Vp * C, no = (size_t)BT * C;
    float* h = random_f32(rng, nw, 1.0f, 0.0f, 1);
    bf16 *wte = device_bf16_from(h, nw), *dout = device_bf16_from(h, no), *out;
    float* dwte;
    int *tokens_d, *buckets_d;
    int* tokens = random_tokens(rng, BT, 50257 < Vp ? 50257 : Vp);
    cudaCheck(cudaMalloc(&out, no * sizeof(bf16)));
    cudaCheck(cudaMalloc(&dwte, nw * sizeof(float)));
    cudaCheck(cudaMemset(dwte, 0, nw * sizeof(float)));
    cudaCheck(cudaMalloc(&tokens_d, (size_t)BT * sizeof(int)));
    cudaCheck(cudaMalloc(&buckets_d, encoder_buckets_ints(BT) * sizeof(int)));
    cudaCheck(cudaMemcpy(tokens_d, tokens, (size_t)BT * sizeof(int), cudaMemcpyHostToDevice));
    int* buckets = (int*)mallocCheckHost(encoder_buckets_ints(BT) * sizeof(int), "buckets");
    int* work = (int*)calloc(encoder_buckets_work_ints(Vp, BT), sizeof(int));
    double t0 = (double)clock();
    encoder_buckets_build(buckets, work, tokens, BT, Vp);
    printf("  host bucketing BT=%d: %.3f ms\n", BT, ((double)clock() - t0) * 1000.0 / CLOCKS_PER_SEC);
    for (int v = 1; v <= 2; v++) {
        for (int bi = 0; bi < NUM_BLOCK_SIZES; bi++) {
            int bs = BLOCK_SIZES[bi];
            float ms = benchmark_kernel(BENCH_REPEATS, [&]() { encoder_fwd(v, out, tokens_d, wte, BT, C, bs); });
            double bytes = 2.0 * no * sizeof(bf16) + BT * sizeof(int);
            printf("  forward%d BT=%d C=%d block_size %4d | time %.4f ms | bandwidth %.1f GB/s\n", v, BT, C, bs, ms,
                   bytes / ms / 1e6);
        }
    }
    float ms = benchmark_kernel(BENCH_REPEATS, [&]() { encoder_backward(dwte, buckets_d, buckets, dout, BT, C, 0); });
    double bytes = no * sizeof(bf16) + 2.0 * buckets[0] * C * sizeof(float);
    printf("  backward1 BT=%d C=%d (%d buckets, incl. the bucket upload) | time %.4f ms | bandwidth %.1f GB/s\n", BT, C,
           buckets[0], ms, bytes / ms / 1e6);
    cudaCheck(cudaFree(wte)); cudaCheck(cudaFree(dout)); cudaCheck(cudaFree(out)); cudaCheck(cudaFree(dwte));
    cudaCheck(cudaFree(tokens_d)); cudaCheck(cudaFree(buckets_d));
    free(h); free(tokens); free(buckets); free(work);
}

int main(void) {
    cudaCheck(cudaSetDevice(0));
    HostRng rng;
    rng_init(&rng, 1337);
    // (BT, C, Vp, distinct tokens): C = 100 is not a multiple of 8 (forward 2 falls back)
    const int shapes[][4] = {{1, 256, 512, 500}, {37, 256, 512, 7}, {1000, 768, 1024, 50}, {64, 100, 128, 3},
                             {4096, 2048, 50304, 50257}};
    int all_ok = 1;
    for (int s = 0; s < (int)(sizeof(shapes) / sizeof(shapes[0])); s++) {
        if (small_only() && shapes[s][2] > 1024) { continue; }  // large
        all_ok &= check(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], &rng);
    }
    if (!all_ok) {
        printf("encoder: some checks FAILED\n");
        return 1;
    }
    printf("encoder: all checks passed\n");
    if (!bench_wanted()) { return 0; }
    bench(16 * 1024, 768, 50304, &rng);
    bench(8 * 1024, 2048, 50304, &rng);
    return 0;
}
