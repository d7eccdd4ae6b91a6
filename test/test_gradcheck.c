/*
 * test_gradcheck.c: an independent check of the CPU backward by finite
 * differences, on tiny models covering every option (tied/untied, qk_norm on
 * and off, soft-cap on and off, sequential and parallel blocks, MHA/GQA/MQA).
 * For each parameter tensor it draws a random direction u over that tensor and
 * compares the directional derivative g.u with the central difference
 * (loss(p + h u) - loss(p - h u)) / 2h, and it checks the 4 largest gradient
 * entries of each tensor one by one the same way.
 *
 *   make test_gradcheck && ./test_gradcheck
 *
 * The difference quotient is Richardson-extrapolated, (4 D(h/2) - D(h)) / 3,
 * with h = 1e-2, which cancels the h^2 term; what is left is fp32 rounding of
 * the loss (about 1e-7 * loss / h). Tolerance: |fd - analytic| <= 1e-2 *
 * |analytic| + 1e-4. A wrong gradient is off by far more; the precise
 * comparison is test_gpt's, against PyTorch in float64.
 */
#define TESTING
#include "../train_gpt.c"
#include "test.h"

static float loss_at(GPT* m, const int* x, const int* y, int B, int T, float zl) {
    gpt_forward(m, x, y, B, T, zl);
    return m->mean_loss;
}

// richardson: (4 D(h/2) - D(h)) / 3 with D(h) the central difference along u
static double richardson(GPT* m, float* p, const float* p0, const float* u, size_t n, float h, const int* x,
                         const int* y, int B, int T, float zl) {
    double d[2];
    for (int r = 0; r < 2; r++) {
        float hh = r == 0 ? h : h / 2;
        for (size_t i = 0; i < n; i++) p[i] = p0[i] + hh * u[i];
        double lp = loss_at(m, x, y, B, T, zl);
        for (size_t i = 0; i < n; i++) p[i] = p0[i] - hh * u[i];
        double lm = loss_at(m, x, y, B, T, zl);
        d[r] = (lp - lm) / (2.0 * hh);
    }
    memcpy(p, p0, n * sizeof(float));
    return (4.0 * d[1] - d[0]) / 3.0;
}

static void gradcheck(const char* name, GPTConfig cfg, int B, int T) {
    printf("--- %s\n", name);
    const char* bad = config_validate(&cfg);
    if (bad) { die("%s: %s", name, bad); }
    GPT m;
    gpt_init_random(&m, &cfg, 42);
    uint64_t rng = 7;
    // larger init than 0.02 so every path carries a gradient well above the noise
    for (size_t i = 0; i < m.layout.num_parameters; i++) { m.params_memory[i] *= 10.0f; }
    for (int t = P_LN1; t <= P_LNF; t++) {
        if (t == P_LN1 || t == P_QNORM || t == P_KNORM || t == P_LN2 || t == P_LNF) {
            float* p = m.params_memory + m.layout.offsets[t];
            for (size_t i = 0; i < m.layout.sizes[t]; i++) { p[i] = 1.0f + 0.3f * (float)rng_normal(&rng); }
        }
    }
    int BT = B * T, V = cfg.vocab_size;
    int* x = (int*)mallocCheck(BT * sizeof(int));
    int* y = (int*)mallocCheck(BT * sizeof(int));
    for (int i = 0; i < BT; i++) { x[i] = (int)rng_below(&rng, V); y[i] = (int)rng_below(&rng, V); }
    float zl = 1e-2f;  // a large z-loss so its gradient term is visible
    gpt_forward(&m, x, y, B, T, zl);
    gpt_zero_grad(&m);
    gpt_backward(&m, B, T, zl, 1.0f);
    float* g = (float*)mallocCheck(m.layout.num_parameters * sizeof(float));
    memcpy(g, m.grads_memory, m.layout.num_parameters * sizeof(float));
    const float h = 1e-2f;
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        size_t off = m.layout.offsets[t], n = m.layout.sizes[t];
        if (n == 0) { continue; }
        float* p = m.params_memory + off;
        float* u = (float*)mallocCheck(n * sizeof(float));
        float* p0 = (float*)mallocCheck(n * sizeof(float));
        memcpy(p0, p, n * sizeof(float));
        double gu = 0.0, unorm = 0.0;
        for (size_t i = 0; i < n; i++) { u[i] = (float)rng_normal(&rng); unorm += (double)u[i] * u[i]; }
        unorm = sqrt(unorm);
        for (size_t i = 0; i < n; i++) { u[i] = (float)(u[i] / unorm); gu += (double)g[off + i] * u[i]; }
        double fd = richardson(&m, p, p0, u, n, h, x, y, B, T, zl);
        double tol = 1e-2 * fabs(gu) + 1e-4;
        CHECK(fabs(fd - gu) <= tol, "%-12s direction: analytic %+.6e fd %+.6e (err %.1e, tol %.1e)", PARAM_NAMES[t], gu,
              fd, fabs(fd - gu), tol);
        // the 4 largest entries one by one: u becomes a unit vector at each
        double worst_ratio = 0.0, worst = 0.0;
        char* done = (char*)callocCheck(n, 1);
        memset(u, 0, n * sizeof(float));
        for (int k = 0; k < 4 && (size_t)k < n; k++) {
            size_t best = 0;
            float bv = -1.0f;
            for (size_t i = 0; i < n; i++) {
                if (fabsf(g[off + i]) > bv && !done[i]) { bv = fabsf(g[off + i]); best = i; }
            }
            done[best] = 1;
            u[best] = 1.0f;
            double fd1 = richardson(&m, p, p0, u, n, h, x, y, B, T, zl), an = g[off + best];
            u[best] = 0.0f;
            double ratio = fabs(fd1 - an) / (1e-2 * fabs(an) + 1e-4);
            if (ratio > worst_ratio) { worst_ratio = ratio; worst = fabs(fd1 - an); }
        }
        CHECK(worst_ratio <= 1.0, "%-12s top-4 entries: worst err %.1e (%.2f of tol)", PARAM_NAMES[t], worst, worst_ratio);
        free(done);
        free(u);
        free(p0);
    }
    free(g);
    free(x);
    free(y);
    gpt_free(&m);
}

static GPTConfig tiny(int NH, int NKV, int qk, int tied, int par, float cap) {
    GPTConfig c;
    config_defaults(&c);
    c.max_seq_len = 16;
    c.vocab_size = 37;
    c.padded_vocab_size = 128;
    c.n_layer = 2;
    c.n_embd = 16;
    c.n_head = NH;
    c.n_kv_head = NKV;
    c.ffn_dim = 24;
    c.qk_norm = qk;
    c.tied_embeddings = tied;
    c.parallel_block = par;
    c.logit_softcap = cap;
    return c;
}

int main(void) {
    gradcheck("GQA, qk_norm, tied, soft-cap 5, sequential", tiny(4, 2, 1, 1, 0, 5.0f), 2, 7);
    gradcheck("MQA, no qk_norm, untied, no cap, parallel", tiny(4, 1, 0, 0, 1, 0.0f), 2, 6);
    gradcheck("MHA, qk_norm, untied, cap 30, parallel", tiny(2, 2, 1, 0, 1, 30.0f), 3, 5);
    return test_summary();
}
