/*
common.h: shared helpers for the kernel development harnesses in dev/cuda/.
Not a harness itself; every harness (.cu) in dev/cuda includes it. Build the harnesses with
    make -C dev/cuda all          (binaries land in dev/cuda/bin/)

brings llmc/cuda_common.cuh (cudaCheck, bf16, ceil_div, is_aligned16, warp_reduce_sum,
Packed128 / x128 / f128, load128, load128cs, store128) and defines for the harnesses:
         BLOCK_SIZES, NUM_BLOCK_SIZES, BENCH_REPEATS, bench_wanted,
         HostRng (rng_init, rng_u32, rng_uniform, rng_normal), random_f32, mallocCheckHost,
         bf16_from_bits, bits_from_bf16, bf16_from_float, float_from_bf16, round_bf16,
         to_bf16_host, to_float_host, device_bf16_from, device_f32_from,
         validate_result, benchmark_kernel
*/
#ifndef DEV_CUDA_COMMON_H
#define DEV_CUDA_COMMON_H

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../llmc/cuda_common.cuh"

// the block sizes every harness checks each version at
static const int BLOCK_SIZES[] = {32, 64, 128, 256, 512, 1024};
static const int NUM_BLOCK_SIZES = (int)(sizeof(BLOCK_SIZES) / sizeof(BLOCK_SIZES[0]));
#define BENCH_REPEATS 100

// the timings after the checks run unless DEV_CUDA_CHECK_ONLY=1 (make test-emu sets it:
// an emulated run times nothing real, and the benchmark shapes are large)
static inline int bench_wanted(void) {
    const char* e = getenv("DEV_CUDA_CHECK_ONLY");
    return !(e && e[0] && strcmp(e, "0") != 0);
}

// DEV_CUDA_SMALL=1 skips the shapes a harness marks large (T near 1024, a 50k vocabulary,
// 4096 rows): test/test_emu.sh sets it for its second thread order, since those shapes
// cost most of an emulated run and the poisoned reverse-order run checks them anyway
static inline int small_only(void) {
    const char* e = getenv("DEV_CUDA_SMALL");
    return e && e[0] && strcmp(e, "0") != 0;
}

// ----------------------------------------------------------------------------
// deterministic host RNG (xorshift64*), so every run sees the same inputs

typedef struct {
    uint64_t state;
} HostRng;

static inline void rng_init(HostRng* r, uint64_t seed) { r->state = seed * 0x9E3779B97F4A7C15ull + 1; }
static inline uint32_t rng_u32(HostRng* r) {
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return (uint32_t)((r->state * 0x2545F4914F6CDD1Dull) >> 32);
}
// uniform in [0, 1)
static inline float rng_uniform(HostRng* r) { return (rng_u32(r) >> 8) * (1.0f / 16777216.0f); }
// standard normal (Box-Muller)
static inline float rng_normal(HostRng* r) {
    float u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-7f) { u1 = 1e-7f; }
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

// ----------------------------------------------------------------------------
// bf16 <-> float on the host (round to nearest even, NaN kept a quiet NaN)

static inline __nv_bfloat16 bf16_from_bits(uint16_t bits) {
    __nv_bfloat16_raw raw;
    raw.x = bits;
    return __nv_bfloat16(raw);
}
static inline uint16_t bits_from_bf16(__nv_bfloat16 b) {
    __nv_bfloat16_raw raw = b;
    return raw.x;
}
static inline __nv_bfloat16 bf16_from_float(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) { return bf16_from_bits(0x7fc0); }
    u += 0x7fffu + ((u >> 16) & 1u);
    return bf16_from_bits((uint16_t)(u >> 16));
}
static inline float float_from_bf16(__nv_bfloat16 b) {
    uint32_t u = (uint32_t)bits_from_bf16(b) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
// round a float to the nearest bf16 value, staying a float (for CPU references
// that must see exactly the numbers the GPU sees)
static inline float round_bf16(float f) { return float_from_bf16(bf16_from_float(f)); }

static inline void to_bf16_host(__nv_bfloat16* dst, const float* src, size_t n) {
    for (size_t i = 0; i < n; i++) { dst[i] = bf16_from_float(src[i]); }
}
static inline float to_float_host(float x) { return x; }
static inline float to_float_host(__nv_bfloat16 x) { return float_from_bf16(x); }

static inline void* mallocCheckHost(size_t n, const char* what) {
    void* p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "[host] malloc of %zu bytes for %s failed\n", n, what);
        exit(1);
    }
    return p;
}

// n floats, N(0, scale^2) + offset, rounded to bf16 when bf16_exact is set so that
// the float copy the CPU reference reads equals the bf16 copy the GPU reads
static inline float* random_f32(HostRng* r, size_t n, float scale, float offset, int bf16_exact) {
    float* x = (float*)mallocCheckHost(n * sizeof(float), "random_f32");
    for (size_t i = 0; i < n; i++) {
        float v = offset + scale * rng_normal(r);
        x[i] = bf16_exact ? round_bf16(v) : v;
    }
    return x;
}

// device copy of a host float array, as bf16
static inline __nv_bfloat16* device_bf16_from(const float* h, size_t n) {
    __nv_bfloat16* tmp = (__nv_bfloat16*)mallocCheckHost(n * sizeof(__nv_bfloat16), "bf16 staging");
    to_bf16_host(tmp, h, n);
    __nv_bfloat16* d;
    cudaCheck(cudaMalloc(&d, n * sizeof(__nv_bfloat16)));
    cudaCheck(cudaMemcpy(d, tmp, n * sizeof(__nv_bfloat16), cudaMemcpyHostToDevice));
    free(tmp);
    return d;
}
static inline float* device_f32_from(const float* h, size_t n) {
    float* d;
    cudaCheck(cudaMalloc(&d, n * sizeof(float)));
    cudaCheck(cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}

// ----------------------------------------------------------------------------
// validation: device output (float or bf16) against a CPU float reference.
// An element passes when |gpu - cpu| <= atol + rtol * |cpu|. Prints the max abs
// and max rel error (rel over elements with |cpu| > atol) and the first mismatches.

template <class D>
static inline bool validate_result(const D* d_out, const float* ref, const char* name, size_t n, float atol, float rtol) {
    D* h = (D*)mallocCheckHost(n * sizeof(D), "validate_result");
    cudaCheck(cudaDeviceSynchronize());
    cudaCheck(cudaMemcpy(h, d_out, n * sizeof(D), cudaMemcpyDeviceToHost));
    double max_abs = 0.0, max_rel = 0.0;
    size_t nbad = 0;
    for (size_t i = 0; i < n; i++) {
        float g = to_float_host(h[i]);
        double diff = fabs((double)g - (double)ref[i]);
        if (!(diff == diff) || isinf(g) != isinf(ref[i])) { diff = INFINITY; }  // NaN / inf never pass
        if (diff > max_abs) { max_abs = diff; }
        if (fabs(ref[i]) > atol && diff / fabs(ref[i]) > max_rel) { max_rel = diff / fabs(ref[i]); }
        if (!(diff <= atol + rtol * fabs((double)ref[i]))) {
            if (nbad < 5) { printf("    %s mismatch at %zu: cpu %.8g gpu %.8g\n", name, i, ref[i], g); }
            nbad++;
        }
    }
    printf("    %-10s n=%-9zu max abs err %.3e, max rel err %.3e (atol %.0e rtol %.0e) %s\n", name, n, max_abs,
           max_rel, atol, rtol, nbad ? "FAIL" : "ok");
    if (nbad) { printf("    %s: %zu of %zu elements out of tolerance\n", name, nbad, n); }
    free(h);
    return nbad == 0;
}

// ----------------------------------------------------------------------------
// benchmark: warm up, then time `repeats` calls of fn() with cudaEvents, flushing
// L2 before each one (a cudaMemset of a 64 MB buffer, bigger than H100's 50 MB L2)
// so that every timed call reads its inputs from HBM. Returns the mean ms per call.

template <class Fn>
static inline float benchmark_kernel(int repeats, Fn fn) {
    const size_t flush_bytes = (size_t)64 << 20;
    void* flush;
    cudaCheck(cudaMalloc(&flush, flush_bytes));
    cudaEvent_t start, stop;
    cudaCheck(cudaEventCreate(&start));
    cudaCheck(cudaEventCreate(&stop));
    for (int i = 0; i < 3; i++) { fn(); }  // warm-up (also first-launch costs)
    cudaCheck(cudaDeviceSynchronize());
    float total_ms = 0.0f;
    for (int i = 0; i < repeats; i++) {
        cudaCheck(cudaMemset(flush, i & 0xff, flush_bytes));
        cudaCheck(cudaEventRecord(start, 0));
        fn();
        cudaCheck(cudaEventRecord(stop, 0));
        cudaCheck(cudaEventSynchronize(stop));
        float ms = 0.0f;
        cudaCheck(cudaEventElapsedTime(&ms, start, stop));
        total_ms += ms;
    }
    cudaCheck(cudaEventDestroy(start));
    cudaCheck(cudaEventDestroy(stop));
    cudaCheck(cudaFree(flush));
    return total_ms / repeats;
}

#endif  // DEV_CUDA_COMMON_H
