/*
Kernels for the SwiGLU activation of the MLP (llmc/gpt_cpu.h swiglu_forward/backward).

forward:  out (N, F) = silu(gate) * up,      fch (N, 2F) = [gate | up] per row
backward: dfch (N, 2F) += [dgate | dup],     dup = dout * silu(gate),
          dgate = dout * up * sig * (1 + gate * (1 - sig)),  sig = sigmoid(gate)
N = B*T rows, F = ffn_dim. bf16 in and out, fp32 math. dfch is accumulated (+=)
like the CPU reference; a caller that owns dfch fresh can zero it first.

Compile and run:
    make -C dev/cuda swiglu && ./dev/cuda/bin/swiglu [version]
(no argument: every version)

versions: 1 (one thread per element, scalar), 2 (one thread per 8 elements, 128-bit loads/stores; falls back to 1 when F % 8 != 0 or unaligned)
*/
#include "common.h"
// the CPU reference is the project's own fp32 model code
#include "../../llmc/gpt_cpu.h"
// the GPU kernels are the production ones of llmc/swiglu.cuh (the trainer runs the same code)
#include "../../llmc/swiglu.cuh"

// ----------------------------------------------------------------------------
// CPU reference (fp32)

static void swiglu_forward(int version, bf16* out, const bf16* fch, int N, int F, int block_size,
                           cudaStream_t stream) {
    switch (version) {
        case 1: swiglu_forward1(out, fch, N, F, block_size, stream); break;
        case 2: swiglu_forward2(out, fch, N, F, block_size, stream); break;
        default: fprintf(stderr, "unknown version %d\n", version); exit(1);
    }
}

static void swiglu_backward(int version, bf16* dfch, const bf16* dout, const bf16* fch, int N, int F, int block_size,
                            cudaStream_t stream) {
    switch (version) {
        case 1: swiglu_backward1(dfch, dout, fch, N, F, block_size, stream); break;
        case 2: swiglu_backward2(dfch, dout, fch, N, F, block_size, stream); break;
        default: fprintf(stderr, "unknown version %d\n", version); exit(1);
    }
}

// ----------------------------------------------------------------------------
// test driver

static int check(int version, int N, int F, HostRng* rng) {
    size_t NF = (size_t)N * F;
    float* fch = random_f32(rng, 2 * NF, 2.0f, 0.0f, 1);
    float* dout = random_f32(rng, NF, 1.0f, 0.0f, 1);
    float* dfch0 = random_f32(rng, 2 * NF, 0.5f, 0.0f, 1);  // += target: starts non-zero
    float* out = (float*)mallocCheckHost(NF * sizeof(float), "out");
    float* dfch = (float*)mallocCheckHost(2 * NF * sizeof(float), "dfch");
    memcpy(dfch, dfch0, 2 * NF * sizeof(float));
    swiglu_forward(out, fch, N, F);
    swiglu_backward(dfch, dout, fch, N, F);

    bf16 *d_fch = device_bf16_from(fch, 2 * NF), *d_dout = device_bf16_from(dout, NF);
    bf16* d_dfch = device_bf16_from(dfch0, 2 * NF);
    bf16* d_out;
    cudaCheck(cudaMalloc(&d_out, NF * sizeof(bf16)));
    bf16* h_dfch0 = (bf16*)mallocCheckHost(2 * NF * sizeof(bf16), "dfch0");
    to_bf16_host(h_dfch0, dfch0, 2 * NF);
    int ok = 1;
    for (int b = 0; b < NUM_BLOCK_SIZES; b++) {
        printf("  version %d N=%d F=%d block_size=%d\n", version, N, F, BLOCK_SIZES[b]);
        cudaCheck(cudaMemset(d_out, 0, NF * sizeof(bf16)));
        swiglu_forward(version, d_out, d_fch, N, F, BLOCK_SIZES[b], 0);
        ok &= validate_result(d_out, out, "out", NF, 1e-3f, 1e-2f);
        cudaCheck(cudaMemcpy(d_dfch, h_dfch0, 2 * NF * sizeof(bf16), cudaMemcpyHostToDevice));
        swiglu_backward(version, d_dfch, d_dout, d_fch, N, F, BLOCK_SIZES[b], 0);
        ok &= validate_result(d_dfch, dfch, "dfch", 2 * NF, 1e-2f, 1e-2f);
    }
    cudaCheck(cudaFree(d_fch));
    cudaCheck(cudaFree(d_dout));
    cudaCheck(cudaFree(d_dfch));
    cudaCheck(cudaFree(d_out));
    free(fch); free(dout); free(dfch0); free(out); free(dfch); free(h_dfch0);
    return ok;
}

static void bench(int version, int N, int F, HostRng* rng) {
    size_t NF = (size_t)N * F;
    float* h = random_f32(rng, 2 * NF, 1.0f, 0.0f, 1);
    bf16 *fch = device_bf16_from(h, 2 * NF), *dfch = device_bf16_from(h, 2 * NF), *out;
    cudaCheck(cudaMalloc(&out, NF * sizeof(bf16)));
    cudaCheck(cudaMemset(out, 0, NF * sizeof(bf16)));
    for (int bi = 0; bi < NUM_BLOCK_SIZES; bi++) {
        int bs = BLOCK_SIZES[bi];
        float ms = benchmark_kernel(BENCH_REPEATS, [&]() { swiglu_forward(version, out, fch, N, F, bs, 0); });
        double bytes = 3.0 * NF * sizeof(bf16);  // fch in (2F), out (F)
        printf("  forward%d  N=%d F=%-5d block_size %4d | time %.4f ms | bandwidth %.1f GB/s\n", version, N, F, bs,
               ms, bytes / ms / 1e6);
        // dout = out (any bf16 values serve for timing)
        ms = benchmark_kernel(BENCH_REPEATS, [&]() { swiglu_backward(version, dfch, out, fch, N, F, bs, 0); });
        bytes = 7.0 * NF * sizeof(bf16);  // fch (2F), dout (F), dfch read + write (4F)
        printf("  backward%d N=%d F=%-5d block_size %4d | time %.4f ms | bandwidth %.1f GB/s\n", version, N, F, bs,
               ms, bytes / ms / 1e6);
    }
    cudaCheck(cudaFree(fch));
    cudaCheck(cudaFree(dfch));
    cudaCheck(cudaFree(out));
    free(h);
}

int main(int argc, char** argv) {
    int versions[2] = {1, 2}, nv = 2;
    if (argc > 1) { versions[0] = atoi(argv[1]); nv = 1; }
    cudaCheck(cudaSetDevice(0));
    HostRng rng;
    rng_init(&rng, 1337);

    // (N, F): F = 2048 (d12), 5504 (1b), 1001 (not a multiple of 8: version 2 falls
    // back to 1); N and N * F not multiples of the block sizes
    const int shapes[][2] = {{1, 2048}, {37, 1001}, {333, 2048}, {1000, 5504}, {7, 24}};
    int all_ok = 1;
    for (int s = 0; s < (int)(sizeof(shapes) / sizeof(shapes[0])); s++) {
        if (small_only() && shapes[s][0] * shapes[s][1] > 1000000) { continue; }  // large (1b's F)
        for (int v = 0; v < nv; v++) { all_ok &= check(versions[v], shapes[s][0], shapes[s][1], &rng); }
    }
    if (!all_ok) {
        printf("swiglu: some checks FAILED\n");
        return 1;
    }
    printf("swiglu: all checks passed\n");
    if (!bench_wanted()) { return 0; }

    const int N = 16 * 1024;  // B=16, T=1024
    for (int v = 0; v < nv; v++) {
        bench(versions[v], N, 2048, &rng);
        bench(versions[v], N, 5504, &rng);
    }
    return 0;
}
