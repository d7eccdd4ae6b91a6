/*
 * rand.h: the project's one random number generator: a 64-bit state advanced by
 * splitmix64 (fast, full period 2^64, passes BigCrush, and its whole state is one
 * uint64 that checkpoints store). Used for weight init, shuffling, sampling and
 * the GPU's stochastic rounding seeds.
 *
 * defines: rng_next_u64, rng_next_u32, rng_uniform, rng_normal, rng_fill_normal,
 *          rng_shuffle_u64
 */
#ifndef LLMC_RAND_H
#define LLMC_RAND_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

static inline uint64_t rng_next_u64(uint64_t* state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint32_t rng_next_u32(uint64_t* state) { return (uint32_t)(rng_next_u64(state) >> 32); }

// uniform in [0, 1) with 24 random bits
static inline float rng_uniform(uint64_t* state) { return (rng_next_u64(state) >> 40) * (1.0f / 16777216.0f); }

// standard normal by Box-Muller, one draw per call (the second is discarded to
// keep the state a single word)
static inline double rng_normal(uint64_t* state) {
    double u1 = ((rng_next_u64(state) >> 11) + 1.0) * (1.0 / 9007199254740993.0);  // (0, 1]
    double u2 = (rng_next_u64(state) >> 11) * (1.0 / 9007199254740992.0);          // [0, 1)
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static inline void rng_fill_normal(float* out, size_t n, float std, uint64_t* state) {
    for (size_t i = 0; i < n; i++) { out[i] = (float)(std * rng_normal(state)); }
}

// uniform integer in [0, n) without modulo bias: reject draws below 2^64 mod n
static inline uint64_t rng_below(uint64_t* state, uint64_t n) {
    if (n <= 1) return 0;
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t r = rng_next_u64(state);
        if (r >= threshold) return r % n;
    }
}

// Fisher-Yates shuffle of a[0..n)
static inline void rng_shuffle_u64(uint64_t* a, size_t n, uint64_t* state) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(state, i);
        uint64_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

#endif // LLMC_RAND_H
