/*
Kernels for the fused residual add + RMSNorm forward, and the RMSNorm backward.

forward:  residual (N, C) = x + branch            (bf16; the new residual stream)
          out (N, C)      = rmsnorm(residual) * w  (bf16), rstd (N,) fp32 saved
backward: dinp (N, C) += rstd * (g - xhat * mean(g * xhat)),  g = dout * w, xhat = inp * rstd
          dweight (C,) += sum over rows of dout * xhat        (fp32, deterministic)
The math is llmc/gpt_cpu.h's rmsnorm_forward / rmsnorm_backward (N = B*T rows).

The normalisation reads the residual *after* rounding to bf16, as the backward
(which only sees the stored bf16 residual) must; the CPU reference does the same.

Deterministic dweight: each block writes per-column partial sums of its own fixed
range of rows to a scratch buffer (RMSNORM_PARTIAL_BLOCKS, C); a second kernel
adds them per column in block order. No atomics, so the bits only depend on the
launch configuration (block size), never on scheduling.

Compile and run:
    make -C dev/cuda rmsnorm_residual && ./dev/cuda/bin/rmsnorm_residual [fwd_version] [bwd_version]
(no arguments: every version; a version of 0 skips that pass)

versions: forward 1 (warp per row, scalar), 2 (warp per row, 128-bit loads, row cached in smem); backward 1 (warp per row + column pass, scalar), 2 (as 1 with 128-bit loads)
*/
#include "common.h"
// the CPU reference is the project's own fp32 model code
#include "../../llmc/gpt_cpu.h"
// the GPU kernels are the production ones of llmc/rmsnorm.cuh (the trainer runs the same code)
#include "../../llmc/rmsnorm.cuh"

// ----------------------------------------------------------------------------
// CPU reference (fp32 math of llmc/gpt_cpu.h)

// residual (N, C) = round_bf16(x + branch); out (N, C), rstd (N,) = rmsnorm of that
static void rmsnorm_residual_forward_cpu(float* residual, float* out, float* rstd, const float* x, const float* branch,
                                         const float* weight, int N, int C, float eps) {
    for (int i = 0; i < N; i++) {
        const float* a = x + (size_t)i * C;
        const float* b = branch + (size_t)i * C;
        float* r = residual + (size_t)i * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) {
            r[c] = round_bf16(a[c] + b[c]);
            ss += (double)r[c] * r[c];
        }
        float s = (float)(1.0 / sqrt(ss / C + eps));
        float* o = out + (size_t)i * C;
        for (int c = 0; c < C; c++) { o[c] = r[c] * s * weight[c]; }
        rstd[i] = s;
    }
}

// dinp (N, C) += ..., dweight (C,) += ...

static void rmsnorm_residual_forward(int version, bf16* residual, bf16* out, float* rstd, const bf16* x,
                                     const bf16* branch, const bf16* weight, int N, int C, float eps, int block_size,
                                     cudaStream_t stream) {
    switch (version) {
        case 1: rmsnorm_residual_forward1(residual, out, rstd, x, branch, weight, N, C, eps, block_size, stream); break;
        case 2: rmsnorm_residual_forward2(residual, out, rstd, x, branch, weight, N, C, eps, block_size, stream); break;
        default: fprintf(stderr, "unknown forward version %d\n", version); exit(1);
    }
}

static void rmsnorm_backward(int version, bf16* dinp, float* dweight, float* scratch, const bf16* dout,
                             const bf16* inp, const bf16* weight, const float* rstd, int N, int C, int block_size,
                             cudaStream_t stream) {
    switch (version) {
        case 1: rmsnorm_backward1(dinp, dweight, scratch, dout, inp, weight, rstd, N, C, block_size, stream); break;
        case 2: rmsnorm_backward2(dinp, dweight, scratch, dout, inp, weight, rstd, N, C, block_size, stream); break;
        default: fprintf(stderr, "unknown backward version %d\n", version); exit(1);
    }
}

// ----------------------------------------------------------------------------
// test driver

static const float EPS = 1e-5f;

// one shape: check the forward version at every block size; returns 1 when all pass
static int check_forward(int version, int N, int C, HostRng* rng) {
    size_t NC = (size_t)N * C;
    float* x = random_f32(rng, NC, 1.0f, 0.0f, 1);
    float* branch = random_f32(rng, NC, 0.5f, 0.0f, 1);
    float* w = random_f32(rng, C, 0.1f, 1.0f, 1);
    float* residual = (float*)mallocCheckHost(NC * sizeof(float), "residual");
    float* out = (float*)mallocCheckHost(NC * sizeof(float), "out");
    float* rstd = (float*)mallocCheckHost(N * sizeof(float), "rstd");
    rmsnorm_residual_forward_cpu(residual, out, rstd, x, branch, w, N, C, EPS);

    bf16 *d_x = device_bf16_from(x, NC), *d_branch = device_bf16_from(branch, NC), *d_w = device_bf16_from(w, C);
    bf16 *d_residual, *d_out;
    float* d_rstd;
    cudaCheck(cudaMalloc(&d_residual, NC * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_out, NC * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_rstd, N * sizeof(float)));
    int ok = 1;
    for (int b = 0; b < NUM_BLOCK_SIZES; b++) {
        printf("  forward%d N=%d C=%d block_size=%d\n", version, N, C, BLOCK_SIZES[b]);
        cudaCheck(cudaMemset(d_out, 0, NC * sizeof(bf16)));
        rmsnorm_residual_forward(version, d_residual, d_out, d_rstd, d_x, d_branch, d_w, N, C, EPS, BLOCK_SIZES[b], 0);
        // residual: the same bf16 sum both sides, so it must match exactly
        ok &= validate_result(d_residual, residual, "residual", NC, 0.0f, 0.0f);
        ok &= validate_result(d_out, out, "out", NC, 1e-2f, 1e-2f);
        ok &= validate_result(d_rstd, rstd, "rstd", N, 1e-6f, 1e-5f);
    }
    cudaCheck(cudaFree(d_x));
    cudaCheck(cudaFree(d_branch));
    cudaCheck(cudaFree(d_w));
    cudaCheck(cudaFree(d_residual));
    cudaCheck(cudaFree(d_out));
    cudaCheck(cudaFree(d_rstd));
    free(x); free(branch); free(w); free(residual); free(out); free(rstd);
    return ok;
}

static int check_backward(int version, int N, int C, HostRng* rng) {
    size_t NC = (size_t)N * C;
    float* inp = random_f32(rng, NC, 1.0f, 0.0f, 1);
    float* dout = random_f32(rng, NC, 1.0f, 0.0f, 1);
    float* w = random_f32(rng, C, 0.1f, 1.0f, 1);
    float* dinp0 = random_f32(rng, NC, 0.5f, 0.0f, 1);  // += target: starts non-zero
    float* dw0 = random_f32(rng, C, 1.0f, 0.0f, 0);
    float* rstd = (float*)mallocCheckHost(N * sizeof(float), "rstd");
    for (int i = 0; i < N; i++) {  // the rstd a forward pass would have saved
        double ss = 0.0;
        for (int c = 0; c < C; c++) { ss += (double)inp[(size_t)i * C + c] * inp[(size_t)i * C + c]; }
        rstd[i] = (float)(1.0 / sqrt(ss / C + EPS));
    }
    float* dinp = (float*)mallocCheckHost(NC * sizeof(float), "dinp");
    float* dw = (float*)mallocCheckHost(C * sizeof(float), "dw");
    memcpy(dinp, dinp0, NC * sizeof(float));
    memcpy(dw, dw0, C * sizeof(float));
    rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);

    bf16 *d_inp = device_bf16_from(inp, NC), *d_dout = device_bf16_from(dout, NC), *d_w = device_bf16_from(w, C);
    bf16* d_dinp = device_bf16_from(dinp0, NC);
    float *d_dw = device_f32_from(dw0, C), *d_rstd = device_f32_from(rstd, N), *d_scratch;
    cudaCheck(cudaMalloc(&d_scratch, (size_t)RMSNORM_PARTIAL_BLOCKS * C * sizeof(float)));
    bf16* h_dinp0 = (bf16*)mallocCheckHost(NC * sizeof(bf16), "dinp0");
    to_bf16_host(h_dinp0, dinp0, NC);
    int ok = 1;
    for (int b = 0; b < NUM_BLOCK_SIZES; b++) {
        printf("  backward%d N=%d C=%d block_size=%d\n", version, N, C, BLOCK_SIZES[b]);
        cudaCheck(cudaMemcpy(d_dinp, h_dinp0, NC * sizeof(bf16), cudaMemcpyHostToDevice));
        cudaCheck(cudaMemcpy(d_dw, dw0, C * sizeof(float), cudaMemcpyHostToDevice));
        rmsnorm_backward(version, d_dinp, d_dw, d_scratch, d_dout, d_inp, d_w, d_rstd, N, C, BLOCK_SIZES[b], 0);
        ok &= validate_result(d_dinp, dinp, "dinp", NC, 1e-2f, 1e-2f);
        ok &= validate_result(d_dw, dw, "dweight", C, 1e-3f, 1e-3f);
    }
    cudaCheck(cudaFree(d_inp));
    cudaCheck(cudaFree(d_dout));
    cudaCheck(cudaFree(d_w));
    cudaCheck(cudaFree(d_dinp));
    cudaCheck(cudaFree(d_dw));
    cudaCheck(cudaFree(d_rstd));
    cudaCheck(cudaFree(d_scratch));
    free(inp); free(dout); free(w); free(dinp0); free(dw0); free(rstd); free(dinp); free(dw); free(h_dinp0);
    return ok;
}

// time both passes at a training-sized shape (no CPU check: checked above)
static void bench(int fwd_version, int bwd_version, int N, int C, HostRng* rng) {
    size_t NC = (size_t)N * C;
    float* h = random_f32(rng, NC, 1.0f, 0.0f, 1);
    float* hw = random_f32(rng, C, 0.1f, 1.0f, 1);
    bf16 *a = device_bf16_from(h, NC), *b = device_bf16_from(h, NC), *w = device_bf16_from(hw, C);
    bf16 *res, *out;
    float *rstd, *dw, *scratch;
    cudaCheck(cudaMalloc(&res, NC * sizeof(bf16)));
    cudaCheck(cudaMalloc(&out, NC * sizeof(bf16)));
    cudaCheck(cudaMalloc(&rstd, N * sizeof(float)));
    cudaCheck(cudaMalloc(&dw, C * sizeof(float)));
    cudaCheck(cudaMalloc(&scratch, (size_t)RMSNORM_PARTIAL_BLOCKS * C * sizeof(float)));
    cudaCheck(cudaMemset(dw, 0, C * sizeof(float)));
    rmsnorm_residual_forward1(res, out, rstd, a, b, w, N, C, EPS, 256, 0);  // a valid rstd for the backward
    for (int bi = 0; bi < NUM_BLOCK_SIZES; bi++) {
        int bs = BLOCK_SIZES[bi];
        if (fwd_version) {
            float ms = benchmark_kernel(BENCH_REPEATS, [&]() {
                rmsnorm_residual_forward(fwd_version, res, out, rstd, a, b, w, N, C, EPS, bs, 0);
            });
            double bytes = 4.0 * NC * sizeof(bf16) + C * sizeof(bf16) + N * sizeof(float);  // x, branch in; res, out
            printf("  forward%d  N=%d C=%-5d block_size %4d | time %.4f ms | bandwidth %.1f GB/s\n", fwd_version, N,
                   C, bs, ms, bytes / ms / 1e6);
        }
        if (bwd_version) {
            // dinp = out is read and written; dout = b, inp = res
            float ms = benchmark_kernel(BENCH_REPEATS, [&]() {
                rmsnorm_backward(bwd_version, out, dw, scratch, b, res, w, rstd, N, C, bs, 0);
            });
            double bytes = 4.0 * NC * sizeof(bf16) + N * sizeof(float) + 2.0 * RMSNORM_PARTIAL_BLOCKS * C * 4;
            printf("  backward%d N=%d C=%-5d block_size %4d | time %.4f ms | bandwidth %.1f GB/s\n", bwd_version, N,
                   C, bs, ms, bytes / ms / 1e6);
        }
    }
    cudaCheck(cudaFree(a)); cudaCheck(cudaFree(b)); cudaCheck(cudaFree(w)); cudaCheck(cudaFree(res));
    cudaCheck(cudaFree(out)); cudaCheck(cudaFree(rstd)); cudaCheck(cudaFree(dw)); cudaCheck(cudaFree(scratch));
    free(h); free(hw);
}

int main(int argc, char** argv) {
    int fwd_versions[2] = {1, 2}, bwd_versions[2] = {1, 2};
    int nf = 2, nb = 2;
    if (argc > 1) { fwd_versions[0] = atoi(argv[1]); nf = fwd_versions[0] ? 1 : 0; }
    if (argc > 2) { bwd_versions[0] = atoi(argv[2]); nb = bwd_versions[0] ? 1 : 0; }
    cudaCheck(cudaSetDevice(0));
    HostRng rng;
    rng_init(&rng, 1337);

    const int Cs[] = {256, 768, 2048};
    const int Ns[] = {1, 37, 1000};  // not multiples of any block's rows per block
    int all_ok = 1;
    for (int ci = 0; ci < 3; ci++) {
        for (int ni = 0; ni < 3; ni++) {
            for (int v = 0; v < nf; v++) { all_ok &= check_forward(fwd_versions[v], Ns[ni], Cs[ci], &rng); }
            for (int v = 0; v < nb; v++) { all_ok &= check_backward(bwd_versions[v], Ns[ni], Cs[ci], &rng); }
        }
    }
    if (!all_ok) {
        printf("rmsnorm_residual: some checks FAILED\n");
        return 1;
    }
    printf("rmsnorm_residual: all checks passed\n");
    if (!bench_wanted()) { return 0; }

    const int N = 16 * 1024;  // B=16, T=1024
    for (int ci = 0; ci < 3; ci++) {
        for (int v = 0; v < (nf > nb ? nf : nb); v++) {
            bench(v < nf ? fwd_versions[v] : 0, v < nb ? bwd_versions[v] : 0, N, Cs[ci], &rng);
        }
    }
    return 0;
}
