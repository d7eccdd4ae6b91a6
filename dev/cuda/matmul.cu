/*
The model's matmuls through cuBLASLt (llmc/matmul.cuh), against llmc/gpt_cpu.h
matmul_forward/backward: every projection is out (N, OC) = inp (N, C) @ weight^T with weight
(OC, C) row-major, bf16 in, fp32 accumulation.

  forward:  out (N, OC) bf16 (+)= inp @ weight^T
  backward: dinp (N, C) bf16 (+)= dout @ weight;  dweight (OC, C) fp32 += dout^T @ inp

The CPU reference runs in fp32 on the same bf16-rounded inputs; the GPU rounds bf16 outputs
(2^-8 relative) and sums in another order. Checked: plain and accumulating (beta = 1)
forward, dinp, dweight accumulation onto a non-zero start, at shapes that are not multiples
of any tile and at a pointer offset that is only 2-byte aligned, and bit-identical results
over two runs. Timed in TFLOP/s at the d12 / 1b shapes (N = 16384 / 8192 rows).

Compile and run:
    make -C dev/cuda matmul && ./dev/cuda/bin/matmul

versions: 1 (cuBLASLt, heuristic algorithm, 32 MiB workspace, alignment preferences from the pointers)
*/
#include "common.h"
// the CPU reference is the project's own fp32 model code
#include "../../llmc/gpt_cpu.h"
// the production cuBLASLt calls
#include "../../llmc/matmul.cuh"

// bits of a device array (to compare two runs)
static void* host_copy(const void* d, size_t bytes) {
    void* h = mallocCheckHost(bytes, "host copy");
    cudaCheck(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
    return h;
}

// N, C, OC; offset: elements by which inp/dout start past a 256-byte boundary
static int check(MatmulContext* ctx, int N, int C, int OC, int offset, HostRng* rng) {
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float* inp = random_f32(rng, ni, 1.0f, 0.0f, 1);
    float* w = random_f32(rng, nw, 0.05f, 0.0f, 1);
    float* dout = random_f32(rng, no, 1.0f, 0.0f, 1);
    float* out0 = random_f32(rng, no, 1.0f, 0.0f, 1);     // start of the accumulating forward
    float* dinp0 = random_f32(rng, ni, 1.0f, 0.0f, 1);    // start of the accumulating dinp
    float* dw0 = random_f32(rng, nw, 0.1f, 0.0f, 0);      // dweight starts non-zero (+=)
    float* out = (float*)mallocCheckHost(no * sizeof(float), "out");
    float* out_acc = (float*)mallocCheckHost(no * sizeof(float), "out_acc");
    float* dinp = (float*)mallocCheckHost(ni * sizeof(float), "dinp");
    float* dinp_acc = (float*)mallocCheckHost(ni * sizeof(float), "dinp_acc");
    float* dw = (float*)mallocCheckHost(nw * sizeof(float), "dw");
    matmul_forward(out, inp, w, N, C, OC);
    for (size_t i = 0; i < no; i++) { out_acc[i] = out[i] + out0[i]; }
    memset(dinp, 0, ni * sizeof(float));
    memcpy(dw, dw0, nw * sizeof(float));
    matmul_backward(dinp, dw, dout, inp, w, N, C, OC);
    for (size_t i = 0; i < ni; i++) { dinp_acc[i] = dinp[i] + dinp0[i]; }

    // inp and dout at an offset of `offset` elements inside a larger allocation
    bf16 *d_inp_base, *d_dout_base;
    cudaCheck(cudaMalloc(&d_inp_base, (ni + offset) * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_dout_base, (no + offset) * sizeof(bf16)));
    bf16 *d_inp = d_inp_base + offset, *d_dout = d_dout_base + offset;
    bf16* tmp = (bf16*)mallocCheckHost((ni > no ? ni : no) * sizeof(bf16), "staging");
    to_bf16_host(tmp, inp, ni);
    cudaCheck(cudaMemcpy(d_inp, tmp, ni * sizeof(bf16), cudaMemcpyHostToDevice));
    to_bf16_host(tmp, dout, no);
    cudaCheck(cudaMemcpy(d_dout, tmp, no * sizeof(bf16), cudaMemcpyHostToDevice));
    bf16 *d_w = device_bf16_from(w, nw), *d_out = device_bf16_from(out0, no), *d_dinp = device_bf16_from(dinp0, ni);
    float* d_dw = device_f32_from(dw0, nw);
    printf("  N=%d C=%d OC=%d offset=%d\n", N, C, OC, offset);
    int ok = 1;
    // bf16 outputs of sums of C products: a bf16 ulp plus the fp32 order difference
    matmul_forward(ctx, d_out, d_inp, d_w, N, C, OC, 1, 0);
    ok &= validate_result(d_out, out_acc, "out (+=)", no, 2e-2f, 1e-2f);
    matmul_forward(ctx, d_out, d_inp, d_w, N, C, OC, 0, 0);
    ok &= validate_result(d_out, out, "out", no, 2e-2f, 1e-2f);
    matmul_backward_dinp(ctx, d_dinp, d_dout, d_w, N, C, OC, 1, 0);
    ok &= validate_result(d_dinp, dinp_acc, "dinp (+=)", ni, 2e-2f, 1e-2f);
    matmul_backward(ctx, d_dinp, d_dw, d_dout, d_inp, d_w, N, C, OC, 0, 0);
    ok &= validate_result(d_dinp, dinp, "dinp", ni, 2e-2f, 1e-2f);
    ok &= validate_result(d_dw, dw, "dweight", nw, 1e-3f, 1e-3f);
    // determinism: the same call twice from the same start
    void* first = host_copy(d_dw, nw * sizeof(float));
    cudaCheck(cudaMemcpy(d_dw, dw0, nw * sizeof(float), cudaMemcpyHostToDevice));
    matmul_backward(ctx, d_dinp, d_dw, d_dout, d_inp, d_w, N, C, OC, 0, 0);
    void* second = host_copy(d_dw, nw * sizeof(float));
    int same = memcmp(first, second, nw * sizeof(float)) == 0;
    printf("    dweight    two runs bit-identical: %s\n", same ? "ok" : "FAIL");
    ok &= same;
    cudaCheck(cudaFree(d_inp_base)); cudaCheck(cudaFree(d_dout_base)); cudaCheck(cudaFree(d_w));
    cudaCheck(cudaFree(d_out)); cudaCheck(cudaFree(d_dinp)); cudaCheck(cudaFree(d_dw));
    free(inp); free(w); free(dout); free(out0); free(dinp0); free(dw0); free(out); free(out_acc);
    free(dinp); free(dinp_acc); free(dw); free(tmp); free(first); free(second);
    return ok;
}

static void bench(MatmulContext* ctx, const char* name, int N, int C, int OC, HostRng* rng) {
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float* h = random_f32(rng, ni > nw ? ni : nw, 0.05f, 0.0f, 1);
    bf16 *inp = device_bf16_from(h, ni), *w = device_bf16_from(h, nw), *out, *dout, *dinp;
    float* dw;
    cudaCheck(cudaMalloc(&out, no * sizeof(bf16)));
    cudaCheck(cudaMalloc(&dout, no * sizeof(bf16)));
    cudaCheck(cudaMalloc(&dinp, ni * sizeof(bf16)));
    cudaCheck(cudaMalloc(&dw, nw * sizeof(float)));
    cudaCheck(cudaMemset(dout, 0, no * sizeof(bf16)));
    cudaCheck(cudaMemset(dw, 0, nw * sizeof(float)));
    double flops = 2.0 * N * C * OC;
    float ms = benchmark_kernel(20, [&]() { matmul_forward(ctx, out, inp, w, N, C, OC, 0, 0); });
    printf("  %-12s N=%-6d C=%-5d OC=%-6d forward  %.4f ms | %.1f TFLOP/s\n", name, N, C, OC, ms, flops / ms / 1e9);
    ms = benchmark_kernel(20, [&]() { matmul_backward_dinp(ctx, dinp, dout, w, N, C, OC, 0, 0); });
    printf("  %-12s N=%-6d C=%-5d OC=%-6d dinp     %.4f ms | %.1f TFLOP/s\n", name, N, C, OC, ms, flops / ms / 1e9);
    ms = benchmark_kernel(20, [&]() { matmul_backward_dweight(ctx, dw, dout, inp, N, C, OC, 0); });
    printf("  %-12s N=%-6d C=%-5d OC=%-6d dweight  %.4f ms | %.1f TFLOP/s\n", name, N, C, OC, ms, flops / ms / 1e9);
    cudaCheck(cudaFree(inp)); cudaCheck(cudaFree(w)); cudaCheck(cudaFree(out)); cudaCheck(cudaFree(dout));
    cudaCheck(cudaFree(dinp)); cudaCheck(cudaFree(dw));
    free(h);
}

int main(void) {
    cudaCheck(cudaSetDevice(0));
    MatmulContext ctx;
    matmul_context_init(&ctx, MATMUL_WORKSPACE_BYTES);
    HostRng rng;
    rng_init(&rng, 1337);
    // (N, C, OC, offset): odd sizes, the d2 test model's shapes, a 2-byte aligned start
    const int shapes[][4] = {{1, 64, 96, 0},    {37, 256, 512, 0},  {64, 256, 1536, 0}, {33, 40, 24, 0},
                             {128, 768, 1280, 0}, {64, 256, 512, 1}, {96, 768, 2048, 8}, {200, 768, 50304, 0}};
    int all_ok = 1;
    for (int s = 0; s < (int)(sizeof(shapes) / sizeof(shapes[0])); s++) {
        if (small_only() && shapes[s][2] > 2048) { continue; }  // large
        all_ok &= check(&ctx, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], &rng);
    }
    if (!all_ok) {
        printf("matmul: some checks FAILED\n");
        return 1;
    }
    printf("matmul: all checks passed\n");
    if (!bench_wanted()) { return 0; }
    // d12 at B=16 T=1024, then 1b at B=8
    bench(&ctx, "d12 qkv", 16384, 768, 1280, &rng);
    bench(&ctx, "d12 proj", 16384, 768, 768, &rng);
    bench(&ctx, "d12 fc", 16384, 768, 4096, &rng);
    bench(&ctx, "d12 fc_proj", 16384, 2048, 768, &rng);
    bench(&ctx, "d12 lm_head", 2944, 768, 50304, &rng);
    bench(&ctx, "1b qkv", 8192, 2048, 3072, &rng);
    bench(&ctx, "1b fc", 8192, 2048, 11008, &rng);
    bench(&ctx, "1b fc_proj", 8192, 5504, 2048, &rng);
    matmul_context_free(&ctx);
    return 0;
}
