/*
Kernels for the fused classifier head (llmc/gpt_cpu.h classifier_forward + classifier_backward
in one pass over each row).

in:  logits (BT, Vp) bf16, straight out of the lm_head matmul (before the soft-cap),
     targets (BT) int in [0, V), softcap (0 disables it), zloss, V, Vp,
     scale = 1 / (B * T * grad_accum)
out: losses (BT) fp32,  loss = lse - z[target] + zloss * lse^2,  lse = logsumexp(z[:V]),
     z = softcap * tanh(logits / softcap) (z = logits when softcap == 0);
     logits (BT, Vp) overwritten in place with the bf16 gradient of scale * sum(losses)
     with respect to the pre-cap logits:
       dz_j = scale * (p_j * (1 + 2 zloss lse) - [j == target]) * (1 - (z_j / softcap)^2),  j < V
       dz_j = 0,  j >= V  (padding logits take no probability mass)
     p = softmax(z[:V]); the tanh factor is left out when softcap == 0. All math in fp32.

One block per row. Pass 1 reads the first V logits of the row once, soft-caps them and keeps
an online (max, sum of exp) per thread, merged across the block into lse; thread 0 writes the
loss. Pass 2 reads the row again (from L2 in practice: a 50304-wide bf16 row is ~100 KB) and
writes the gradient over it. Padding entries j >= V are written as 0 without being read.

How the GPU trainer avoids fp32 (B, T, Vp) logits: it never materialises the whole logits
tensor. It runs the lm_head matmul over a chunk of rows (a few thousand positions) into one
bf16 (chunk, Vp) buffer, runs this kernel on it (loss out, gradient in place), then feeds the
same buffer as dlogits to the two lm_head backward matmuls (dlnf_out = dlogits @ lm_w,
dlm_w += dlogits^T @ lnf_out) before moving on to the next chunk, which reuses the buffer.
Logits memory is chunk * Vp * 2 bytes instead of B * T * Vp * 4 (plus a gradient copy).

Compile and run:
    make -C dev/cuda classifier && ./dev/cuda/bin/classifier [version]
(no argument: every version)

versions: 1 (one block per row, scalar bf16 loads/stores), 2 (one block per row, 128-bit loads/stores; falls back to 1 when Vp % 8 != 0 or unaligned)
*/
#include "common.h"
// the CPU reference is the project's own fp32 model code
#include "../../llmc/gpt_cpu.h"
// the GPU kernels are the production ones of llmc/classifier.cuh (the trainer runs the same code)
#include "../../llmc/classifier.cuh"

static void classifier(int version, bf16* logits, float* losses, const int* targets, int BT, int V, int Vp,
                       float softcap, float zloss, float scale, int block_size, cudaStream_t stream) {
    switch (version) {
        case 1: classifier1(logits, losses, targets, BT, V, Vp, softcap, zloss, scale, block_size, stream); break;
        case 2: classifier2(logits, losses, targets, BT, V, Vp, softcap, zloss, scale, block_size, stream); break;
        default: fprintf(stderr, "unknown version %d\n", version); exit(1);
    }
}

// ----------------------------------------------------------------------------
// test driver

// logits (BT, Vp): N(0, 8^2) for j < V (so that soft-cap 30 bends the largest ones), and
// 40 + N(0, 1) for the padding j >= V: larger than every real logit, so a kernel that gave
// padding any mass would get lse, the losses and the gradients wrong. bf16-exact.
static float* make_logits(HostRng* rng, int BT, int V, int Vp) {
    float* x = (float*)mallocCheckHost((size_t)BT * Vp * sizeof(float), "logits");
    for (int i = 0; i < BT; i++) {
        for (int j = 0; j < Vp; j++) {
            float v = j < V ? 8.0f * rng_normal(rng) : 40.0f + rng_normal(rng);
            x[(size_t)i * Vp + j] = round_bf16(v);
        }
    }
    return x;
}

static int check(int version, int BT, int V, int Vp, float softcap, float zloss, HostRng* rng) {
    const size_t n = (size_t)BT * Vp;
    const float scale = 1.0f / (float)BT;  // B*T = BT, grad_accum 1
    float* logits = make_logits(rng, BT, V, Vp);
    int* targets = (int*)mallocCheckHost(BT * sizeof(int), "targets");
    for (int i = 0; i < BT; i++) { targets[i] = (int)(rng_u32(rng) % (uint32_t)V); }
    // CPU reference on the same bf16-rounded values, as float
    float* grad = (float*)mallocCheckHost(n * sizeof(float), "grad");
    float* lse = (float*)mallocCheckHost(BT * sizeof(float), "lse");
    float* losses = (float*)mallocCheckHost(BT * sizeof(float), "losses");
    memcpy(grad, logits, n * sizeof(float));
    classifier_forward(grad, lse, losses, targets, BT, V, Vp, softcap, zloss);  // grad now holds capped z
    classifier_backward(grad, lse, targets, BT, V, Vp, softcap, zloss, scale);

    bf16* h_logits = (bf16*)mallocCheckHost(n * sizeof(bf16), "h_logits");
    to_bf16_host(h_logits, logits, n);
    bf16* d_logits;
    float* d_losses;
    int* d_targets;
    cudaCheck(cudaMalloc(&d_logits, n * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_losses, BT * sizeof(float)));
    cudaCheck(cudaMalloc(&d_targets, BT * sizeof(int)));
    cudaCheck(cudaMemcpy(d_targets, targets, BT * sizeof(int), cudaMemcpyHostToDevice));
    // gradients are ~scale * p: atol relative to scale; rtol covers bf16 output rounding
    // (at most 2^-8 relative) while still catching a dropped (1 + 2 zloss lse) factor
    const float grad_atol = 1e-6f * scale, grad_rtol = 5e-3f;
    int ok = 1;
    for (int b = 0; b < NUM_BLOCK_SIZES; b++) {
        printf("  version %d BT=%d V=%d Vp=%d softcap=%g block_size=%d\n", version, BT, V, Vp, softcap,
               BLOCK_SIZES[b]);
        cudaCheck(cudaMemcpy(d_logits, h_logits, n * sizeof(bf16), cudaMemcpyHostToDevice));
        cudaCheck(cudaMemset(d_losses, 0, BT * sizeof(float)));
        classifier(version, d_logits, d_losses, d_targets, BT, V, Vp, softcap, zloss, scale, BLOCK_SIZES[b], 0);
        // losses: fp32 math on the same inputs; the zloss term (~0.1 here) is well above this
        ok &= validate_result(d_losses, losses, "losses", BT, 1e-3f, 1e-3f);
        ok &= validate_result(d_logits, grad, "dlogits", n, grad_atol, grad_rtol);
    }
    cudaCheck(cudaFree(d_logits));
    cudaCheck(cudaFree(d_losses));
    cudaCheck(cudaFree(d_targets));
    free(logits); free(targets); free(grad); free(lse); free(losses); free(h_logits);
    return ok;
}

static void bench(int version, int BT, int V, int Vp, HostRng* rng) {
    const size_t n = (size_t)BT * Vp;
    const float softcap = 30.0f, zloss = 1e-4f, scale = 1.0f / (float)BT;
    // random rows for a 64-row tile, copied over the whole buffer
    const int tile = 64;
    float* h = make_logits(rng, tile, V, Vp);
    bf16* d_tile = device_bf16_from(h, (size_t)tile * Vp);
    bf16* d_logits;
    float* d_losses;
    int* d_targets;
    cudaCheck(cudaMalloc(&d_logits, n * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_losses, BT * sizeof(float)));
    cudaCheck(cudaMalloc(&d_targets, BT * sizeof(int)));
    for (int r = 0; r < BT; r += tile) {
        int rows = BT - r < tile ? BT - r : tile;
        cudaCheck(cudaMemcpy(d_logits + (size_t)r * Vp, d_tile, (size_t)rows * Vp * sizeof(bf16),
                             cudaMemcpyDeviceToDevice));
    }
    int* targets = (int*)mallocCheckHost(BT * sizeof(int), "targets");
    for (int i = 0; i < BT; i++) { targets[i] = (int)(rng_u32(rng) % (uint32_t)V); }
    cudaCheck(cudaMemcpy(d_targets, targets, BT * sizeof(int), cudaMemcpyHostToDevice));
    // what the kernel moves per row: pass 1 reads the V real logits (version 2: whole packs),
    // pass 2 reads them again and writes all Vp; plus the target and the loss. The pass-2 read
    // mostly hits L2, so DRAM traffic is closer to one read + one write.
    const double vread = version == 2 && Vp % 8 == 0 ? (double)((V + 7) / 8 * 8) : (double)V;
    const double bytes = (double)BT * ((2.0 * vread + Vp) * sizeof(bf16) + sizeof(int) + sizeof(float));
    for (int bi = 0; bi < NUM_BLOCK_SIZES; bi++) {
        int bs = BLOCK_SIZES[bi];
        // in place: later calls run on earlier calls' gradients (finite values, same work)
        float ms = benchmark_kernel(BENCH_REPEATS, [&]() {
            classifier(version, d_logits, d_losses, d_targets, BT, V, Vp, softcap, zloss, scale, bs, 0);
        });
        printf("  classifier%d BT=%d V=%d Vp=%d block_size %4d | time %.4f ms | bandwidth %.1f GB/s\n", version, BT,
               V, Vp, bs, ms, bytes / ms / 1e6);
    }
    cudaCheck(cudaFree(d_tile));
    cudaCheck(cudaFree(d_logits));
    cudaCheck(cudaFree(d_losses));
    cudaCheck(cudaFree(d_targets));
    free(h); free(targets);
}

int main(int argc, char** argv) {
    int versions[2] = {1, 2}, nv = 2;
    if (argc > 1) { versions[0] = atoi(argv[1]); nv = 1; }
    cudaCheck(cudaSetDevice(0));
    HostRng rng;
    rng_init(&rng, 1337);

    // (BT, V, Vp): a small vocab, GPT-2's, and one with BT not a power of two elsewhere
    const int shapes[][3] = {{4, 500, 512}, {37, 50257, 50304}, {64, 1000, 1024}};
    const float softcaps[] = {30.0f, 0.0f};
    const float zloss = 1e-4f;
    int all_ok = 1;
    for (int s = 0; s < (int)(sizeof(shapes) / sizeof(shapes[0])); s++) {
        for (int c = 0; c < 2; c++) {
            for (int v = 0; v < nv; v++) {
                all_ok &= check(versions[v], shapes[s][0], shapes[s][1], shapes[s][2], softcaps[c], zloss, &rng);
            }
        }
    }
    if (!all_ok) {
        printf("classifier: some checks FAILED\n");
        return 1;
    }
    printf("classifier: all checks passed\n");
    if (!bench_wanted()) { return 0; }

    for (int v = 0; v < nv; v++) { bench(versions[v], 8192, 50257, 50304, &rng); }
    return 0;
}
