/*
 * sampler.h: turns a row of logits into a token: temperature, top-k, top-p
 * (nucleus), seeded. Only the first V logits are candidates (padded entries are
 * never a prediction). temperature 0 means greedy (argmax, lowest id on ties).
 *
 * defines: Sampler, sampler_init, sampler_free, sampler_sample, sampler_validate
 */
#ifndef LLMC_SAMPLER_H
#define LLMC_SAMPLER_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include "rand.h"
#include "utils.h"

typedef struct {
    int vocab_size;     // V: candidates are ids 0..V-1
    float temperature;  // 0 = greedy
    int top_k;          // 0 = no top-k cut
    float top_p;        // 1 = no nucleus cut
    uint64_t rng;       // the sampler's own RNG state
    float* probs;       // (V,) scratch
    int* index;         // (V,) scratch
    int* tmp;           // (V,) scratch for the sort
} Sampler;

// sampler_validate: NULL when the settings are usable, else the reason
static inline const char* sampler_validate(float temperature, int top_k, float top_p) {
    if (!(temperature >= 0.0f) || !isfinite(temperature)) return "temperature must be >= 0";
    if (top_k < 0) return "top-k must be >= 0 (0 disables it)";
    if (!(top_p > 0.0f && top_p <= 1.0f)) return "top-p must be in (0, 1]";
    return NULL;
}

static inline void sampler_init(Sampler* s, int vocab_size, float temperature, int top_k, float top_p, uint64_t seed) {
    const char* bad = sampler_validate(temperature, top_k, top_p);
    if (bad != NULL) { die("sampler: %s", bad); }
    s->vocab_size = vocab_size;
    s->temperature = temperature;
    s->top_k = top_k;
    s->top_p = top_p;
    s->rng = seed;
    s->probs = (float*)mallocCheck((size_t)vocab_size * sizeof(float));
    s->index = (int*)mallocCheck((size_t)vocab_size * sizeof(int));
    s->tmp = (int*)mallocCheck((size_t)vocab_size * sizeof(int));
}

static inline void sampler_free(Sampler* s) {
    free(s->probs);
    free(s->index);
    free(s->tmp);
}

static inline int sampler_argmax(const float* logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) {
        if (logits[i] > logits[best]) { best = i; }
    }
    return best;
}

// probs[index[...]] descending; ties by lower id first so the order is deterministic
// a stable bottom-up merge sort of index[] by probs[] descending (qsort has no
// context pointer in C99 and is not stable); n log n is small next to a forward pass
static inline void sampler_sort_desc(const float* probs, int* index, int* tmp, int n) {
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n;
            int hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi) { tmp[k++] = (probs[index[j]] > probs[index[i]]) ? index[j++] : index[i++]; }
            while (i < mid) tmp[k++] = index[i++];
            while (j < hi) tmp[k++] = index[j++];
        }
        for (int i = 0; i < n; i++) index[i] = tmp[i];
    }
}

// sampler_sample: logits (Vp,) of which the first V count; returns a token id in [0, V)
static inline int sampler_sample(Sampler* s, const float* logits) {
    int V = s->vocab_size;
    if (s->temperature == 0.0f) { return sampler_argmax(logits, V); }
    // softmax at temperature, in double for the sum
    float maxv = logits[sampler_argmax(logits, V)];
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        s->probs[i] = expf((logits[i] - maxv) / s->temperature);
        sum += s->probs[i];
    }
    for (int i = 0; i < V; i++) { s->probs[i] = (float)(s->probs[i] / sum); }
    int n = V;
    if (s->top_k > 0 || s->top_p < 1.0f) {
        for (int i = 0; i < V; i++) { s->index[i] = i; }
        sampler_sort_desc(s->probs, s->index, s->tmp, V);
        if (s->top_k > 0 && s->top_k < n) { n = s->top_k; }
        if (s->top_p < 1.0f) {
            double cum = 0.0;
            for (int i = 0; i < n; i++) {
                cum += s->probs[s->index[i]];
                if (cum >= s->top_p) { n = i + 1; break; }
            }
        }
        double mass = 0.0;
        for (int i = 0; i < n; i++) { mass += s->probs[s->index[i]]; }
        double r = rng_uniform(&s->rng) * mass;
        double cdf = 0.0;
        for (int i = 0; i < n; i++) {
            cdf += s->probs[s->index[i]];
            if (r < cdf) { return s->index[i]; }
        }
        return s->index[n - 1];  // rounding: r landed past the last cdf step
    }
    double r = rng_uniform(&s->rng);
    double cdf = 0.0;
    for (int i = 0; i < V; i++) {
        cdf += s->probs[i];
        if (r < cdf) { return i; }
    }
    return sampler_argmax(s->probs, V);
}

#endif // LLMC_SAMPLER_H
