/*
Kernels for the AdamW update (llmc/gpt_cpu.h gpt_update), mixed precision:
fp32 master weights params (n,), fp32 state m, v (n,), fp32 gradients grads (n,)
scaled by grad_scale (the global-norm clipping factor), weight decay wd given per
call (0 for norm weights and embeddings, the decay for 2-D matrices), and the bf16
copy params_bf16 (n,) that the forward pass reads, written with stochastic rounding:

  g = grads * grad_scale;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
  p -= lr * ((m / bc1) / (sqrt(v / bc2) + eps) + wd * p),  bc = 1 - beta^t
  params_bf16 = stochastic_round(p, hash(seed, index))

Stochastic rounding: a bf16 is the top 16 bits of a float. Adding a uniform random
16-bit integer r to the float's bit pattern and truncating rounds the magnitude up
(away from zero) exactly when r >= 65536 - (low 16 bits), i.e. with probability
low16 / 65536: the distance to the lower neighbour over the bf16 spacing. So the
result is always one of the two neighbouring bf16 values, and its expectation is p
(unbiased), which keeps tiny updates from vanishing in the bf16 copy. r comes from
a counter-based hash of (seed, element index): no RNG state, the same bits for the
same (seed, index) on any launch configuration, reproducible on the host. Inf/NaN
take the round-to-nearest path; a finite p within one bf16 step of the bf16 maximum
may round to inf (never met by weights).

nvcc contracts a*b+c into fused multiply-adds, the host compiler does not, so the
fp32 results may differ from the CPU reference by an ulp or so: checked to 1e-6
relative. The bf16 copy is checked exactly against the host rounding of the GPU's
own master value, and for being one of the master's two bf16 neighbours.

Compile and run:
    make -C dev/cuda adamw && ./dev/cuda/bin/adamw [version]
(no argument: every version)

versions: 1 (one thread per parameter), 2 (one thread per 4 parameters, 128-bit fp32 loads; falls back to 1 when n % 4 != 0 or unaligned)
*/
#include "common.h"
// the CPU reference is the project's own fp32 model code
#include "../../llmc/gpt_cpu.h"
// the GPU kernels are the production ones of llmc/adamw.cuh (the trainer runs the same code)
#include "../../llmc/adamw.cuh"

// CPU reference: adamw_update of llmc/gpt_cpu.h (the loop gpt_update runs per tensor)

static void adamw(int version, float* params, bf16* params_bf16, float* m, float* v, const float* grads, size_t n,
                  float lr, float beta1, float beta2, float eps, float wd, float grad_scale, int t, uint32_t seed,
                  int block_size, cudaStream_t stream) {
    switch (version) {
        case 1: adamw1(params, params_bf16, m, v, grads, n, lr, beta1, beta2, eps, wd, grad_scale, t, seed, block_size, stream); break;
        case 2: adamw2(params, params_bf16, m, v, grads, n, lr, beta1, beta2, eps, wd, grad_scale, t, seed, block_size, stream); break;
        default: fprintf(stderr, "unknown version %d\n", version); exit(1);
    }
}

// ----------------------------------------------------------------------------
// test driver

static const float LR = 6e-4f, BETA1 = 0.9f, BETA2 = 0.95f, EPS = 1e-8f;
static const float GRAD_SCALE = 0.73f;  // a clipping factor < 1
static const int STEP = 3;              // t > 1 with non-zero state: exercises the bias corrections

// the bf16 copy: exactly the host's stochastic rounding of the GPU master value, and one of
// its two bf16 neighbours. Also prints the observed round-up rate against the expected one.
static int check_bf16_copy(const bf16* d_bf16, const float* d_params, size_t n, uint32_t seed) {
    uint16_t* hb = (uint16_t*)mallocCheckHost(n * sizeof(uint16_t), "bf16 copy");
    float* hp = (float*)mallocCheckHost(n * sizeof(float), "params");
    cudaCheck(cudaMemcpy(hb, d_bf16, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(hp, d_params, n * sizeof(float), cudaMemcpyDeviceToHost));
    size_t bad_exact = 0, bad_neighbour = 0, ups = 0;
    double expected_ups = 0.0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &hp[i], 4);
        uint32_t lo = u & 0xffff0000u, frac = u & 0xffffu;
        uint32_t got = (uint32_t)hb[i] << 16;
        if (hb[i] != sr_bf16_bits(hp[i], sr_random(seed, i))) {
            if (bad_exact < 5) { printf("    bf16 copy mismatch at %zu: master %.9g bf16 bits 0x%04x\n", i, hp[i], hb[i]); }
            bad_exact++;
        }
        if (!(got == lo || (frac != 0 && got == lo + 0x10000u))) { bad_neighbour++; }
        ups += (got != lo);
        expected_ups += frac / 65536.0;
    }
    printf("    bf16 copy  n=%-9zu %zu not the hashed rounding, %zu not a neighbour; rounded up %zu times, "
           "expected %.1f %s\n",
           n, bad_exact, bad_neighbour, ups, expected_ups, (bad_exact || bad_neighbour) ? "FAIL" : "ok");
    free(hb);
    free(hp);
    return bad_exact == 0 && bad_neighbour == 0;
}

static int check(int version, size_t n, float wd, HostRng* rng) {
    float* p0 = random_f32(rng, n, 0.02f, 0.0f, 0);
    float* g = random_f32(rng, n, 0.01f, 0.0f, 0);
    float* m0 = random_f32(rng, n, 0.001f, 0.0f, 0);
    float* v0 = random_f32(rng, n, 1e-5f, 0.0f, 0);
    for (size_t i = 0; i < n; i++) { v0[i] = v0[i] * v0[i] * 1e5f; }  // v >= 0, about 1e-5
    float* p = (float*)mallocCheckHost(n * sizeof(float), "p");
    float* m = (float*)mallocCheckHost(n * sizeof(float), "m");
    float* v = (float*)mallocCheckHost(n * sizeof(float), "v");
    memcpy(p, p0, n * sizeof(float));
    memcpy(m, m0, n * sizeof(float));
    memcpy(v, v0, n * sizeof(float));
    adamw_update(p, m, v, g, n, LR, BETA1, BETA2, EPS, wd, GRAD_SCALE, STEP);

    float *d_p = device_f32_from(p0, n), *d_m = device_f32_from(m0, n), *d_v = device_f32_from(v0, n);
    float* d_g = device_f32_from(g, n);
    bf16* d_pb;
    cudaCheck(cudaMalloc(&d_pb, n * sizeof(bf16)));
    int ok = 1;
    for (int b = 0; b < NUM_BLOCK_SIZES; b++) {
        uint32_t seed = 42u + (uint32_t)b;
        printf("  version %d n=%zu wd=%g block_size=%d\n", version, n, wd, BLOCK_SIZES[b]);
        cudaCheck(cudaMemcpy(d_p, p0, n * sizeof(float), cudaMemcpyHostToDevice));
        cudaCheck(cudaMemcpy(d_m, m0, n * sizeof(float), cudaMemcpyHostToDevice));
        cudaCheck(cudaMemcpy(d_v, v0, n * sizeof(float), cudaMemcpyHostToDevice));
        adamw(version, d_p, d_pb, d_m, d_v, d_g, n, LR, BETA1, BETA2, EPS, wd, GRAD_SCALE, STEP, seed, BLOCK_SIZES[b],
              0);
        // atol: an ulp or two of each array's typical magnitude (FMA contraction, see the top)
        ok &= validate_result(d_p, p, "params", n, 1e-9f, 1e-6f);
        ok &= validate_result(d_m, m, "m", n, 1e-9f, 1e-6f);
        ok &= validate_result(d_v, v, "v", n, 1e-13f, 1e-6f);
        ok &= check_bf16_copy(d_pb, d_p, n, seed);
    }
    cudaCheck(cudaFree(d_p));
    cudaCheck(cudaFree(d_m));
    cudaCheck(cudaFree(d_v));
    cudaCheck(cudaFree(d_g));
    cudaCheck(cudaFree(d_pb));
    free(p0); free(g); free(m0); free(v0); free(p); free(m); free(v);
    return ok;
}

static void bench(int version, size_t n, HostRng* rng) {
    float* h = random_f32(rng, n, 0.02f, 0.0f, 0);
    float *p = device_f32_from(h, n), *g = device_f32_from(h, n), *m, *v;
    bf16* pb;
    cudaCheck(cudaMalloc(&m, n * sizeof(float)));
    cudaCheck(cudaMalloc(&v, n * sizeof(float)));
    cudaCheck(cudaMalloc(&pb, n * sizeof(bf16)));
    cudaCheck(cudaMemset(m, 0, n * sizeof(float)));
    cudaCheck(cudaMemset(v, 0, n * sizeof(float)));
    for (int bi = 0; bi < NUM_BLOCK_SIZES; bi++) {
        int bs = BLOCK_SIZES[bi];
        float ms = benchmark_kernel(BENCH_REPEATS, [&]() {
            adamw(version, p, pb, m, v, g, n, LR, BETA1, BETA2, EPS, 0.1f, 1.0f, STEP, 7u, bs, 0);
        });
        double bytes = (double)n * (4 * 4 + 3 * 4 + 2);  // read p, m, v, g; write p, m, v; write bf16
        printf("  version %d n=%zu block_size %4d | time %.4f ms | bandwidth %.1f GB/s\n", version, n, bs, ms,
               bytes / ms / 1e6);
    }
    cudaCheck(cudaFree(p)); cudaCheck(cudaFree(g)); cudaCheck(cudaFree(m)); cudaCheck(cudaFree(v));
    cudaCheck(cudaFree(pb));
    free(h);
}

int main(int argc, char** argv) {
    int versions[2] = {1, 2}, nv = 2;
    if (argc > 1) { versions[0] = atoi(argv[1]); nv = 1; }
    cudaCheck(cudaSetDevice(0));
    HostRng rng;
    rng_init(&rng, 1337);

    // 1001 and the last size are not multiples of 4 (version 2 falls back to 1);
    // none are multiples of the block sizes
    const size_t sizes[] = {1, 37, 1000, 1001, (1u << 20) + 36, (size_t)3 * 768 * 768 + 5};
    const float wds[] = {0.0f, 0.1f};  // not decayed / decayed
    int all_ok = 1;
    for (int s = 0; s < (int)(sizeof(sizes) / sizeof(sizes[0])); s++) {
        if (small_only() && sizes[s] > 10000000 / 8) { continue; }  // large (1001 is the small non-multiple of 4)
        for (int w = 0; w < 2; w++) {
            for (int vi = 0; vi < nv; vi++) { all_ok &= check(versions[vi], sizes[s], wds[w], &rng); }
        }
    }
    if (!all_ok) {
        printf("adamw: some checks FAILED\n");
        return 1;
    }
    printf("adamw: all checks passed\n");
    if (!bench_wanted()) { return 0; }

    const size_t n = (size_t)124 * 1000 * 1000;  // about d12's parameter count
    for (int vi = 0; vi < nv; vi++) { bench(versions[vi], n, &rng); }
    return 0;
}
