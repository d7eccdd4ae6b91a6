/*
 * test_misc.c: the small pure pieces: learning-rate schedules (llmc/schedule.h),
 * the sampler (llmc/sampler.h), the RNG (llmc/rand.h) and the config helpers
 * (llmc/config.h). Every expected value is computed here independently, in
 * double, from SPEC's or the header comment's closed form, not by calling the
 * code under test.
 *   - lr_at for cosine, linear, wsd, constant: warmup (s+1)/warmup*max, the end
 *     value max*final_frac, the cosine and linear midpoints, WSD's stable phase
 *     then linear decay over the last wsd_decay_frac of the post-warmup steps.
 *     Tolerance: |lr - ref| <= 1e-6 * max_lr (lr_at works in float).
 *   - sampler: temperature 0 is argmax with ties to the lowest id; top-k 1 and a
 *     tiny top-p equal greedy; ids are always < V even when the padded logits
 *     past V are huge; the same seed repeats the sequence; empirical frequencies
 *     of 200k draws (temperature 0.7; top-k 3; top-p 0.8; both) match the exact
 *     renormalized probabilities within 0.01 absolute (about 9 standard errors).
 *   - rng: rng_below is uniform (chi-square over 7 bins, and the classic modulo
 *     bias case n = 3 * 2^62 within 0.005); rng_shuffle_u64 is a permutation and
 *     all 6 orders of 3 items are equally likely (within 0.01).
 *   - config: ffn_dim_for (2048 for C=768, 5504 for C=2048, the formula for
 *     every even C up to 4096), the presets' sizes, param_layout_init's counts
 *     and offsets, config_validate's rejections, model_flops_per_token for d12
 *     at T=1024 against SPEC's formula worked out by hand.
 *   - expf_fast and tanhf_fast (the classifier's vectorizable exp and tanh)
 *     against libm's double exp and tanh on 4M points spanning their range:
 *     relative error <= 4e-7 (a few float ulps).
 *
 *   - the training loop's pieces (llmc/train_loop.h): the median of the last 16
 *     step times (a slow step leaves it unchanged; even counts average the middle
 *     two), train_due_count against counting train_due step by step, and
 *     train_eval's cross-entropy and bits per byte against a fake forward that
 *     tallies the batches it was given (mean of the batch losses; nats / ln 2 /
 *     bytes of the targets it saw; a table without bytes gives no bpb).
 *
 *   make test_misc && ./test_misc
 */
#include <stdlib.h>
#include "llmc/config.h"
#include "llmc/gpt_cpu.h"
#include "llmc/rand.h"
#include "llmc/sampler.h"
#include "llmc/schedule.h"
#include "llmc/train_loop.h"
#include "test.h"

// ----------------------------------------------------------------------------
// learning-rate schedules

// the reference, in double, straight from the closed forms
static double ref_lr(int kind, double max_lr, int warmup, int total, double final_frac, double wsd_frac, int s) {
    double min_lr = max_lr * final_frac;
    if (s < warmup) { return (s + 1.0) / warmup * max_lr; }
    if (kind == LR_CONSTANT) { return max_lr; }
    if (s >= total) { return min_lr; }
    double post = total - warmup;  // steps after warmup
    if (kind == LR_WSD) {
        double decay = ceil(wsd_frac * post - 1e-9);  // the last wsd_frac of them, whole steps
        double start = total - decay;
        if (s < start) { return max_lr; }
        return max_lr - (s - start) / decay * (max_lr - min_lr);
    }
    double x = (s - warmup) / post;  // 0 -> 1 over the decay
    if (kind == LR_LINEAR) { return max_lr - x * (max_lr - min_lr); }
    return min_lr + 0.5 * (1.0 + cos(M_PI * x)) * (max_lr - min_lr);
}

static void test_schedules(void) {
    const double max_lr = 6e-4, frac = 0.1, wsd_frac = 0.2;
    const int warmup = 10, total = 110;  // 100 post-warmup steps; WSD decays over the last 20
    const double tol = 1e-6 * max_lr;
    for (int kind = 0; kind < 4; kind++) {
        LRSchedule s = {kind, (float)max_lr, warmup, total, (float)frac, (float)wsd_frac};
        const char* name = LR_KIND_NAMES[kind];
        CHECK(lr_schedule_kind_from_name(name) == kind, "schedule name '%s' maps to its kind", name);
        double max_err = 0.0;
        for (int step = 0; step <= total + 5; step++) {
            double e = fabs(lr_at(&s, step) - ref_lr(kind, max_lr, warmup, total, frac, wsd_frac, step));
            if (e > max_err) max_err = e;
        }
        CHECK(max_err <= tol, "%s: lr_at matches the double reference at steps 0..%d (max abs err %.2e, tol %.2e)",
              name, total + 5, max_err, tol);
        // the named points, by hand
        CHECK(fabs(lr_at(&s, 0) - max_lr / warmup) <= tol && fabs(lr_at(&s, 4) - 5.0 / warmup * max_lr) <= tol &&
                  fabs(lr_at(&s, warmup - 1) - max_lr) <= tol,
              "%s: warmup is (s+1)/warmup * max (steps 0, 4, %d)", name, warmup - 1);
        double end = kind == LR_CONSTANT ? max_lr : max_lr * frac;
        CHECK(fabs(lr_at(&s, total) - end) <= tol && fabs(lr_at(&s, total + 100) - end) <= tol,
              "%s: at and past the last step the lr is %s (%.3g)", name,
              kind == LR_CONSTANT ? "max" : "max * final_frac", end);
    }
    double mid = max_lr * (1.0 + frac) / 2.0;
    LRSchedule cos_s = {LR_COSINE, (float)max_lr, warmup, total, (float)frac, 0.0f};
    CHECK(fabs(lr_at(&cos_s, warmup + 50) - mid) <= tol, "cosine: halfway through the decay the lr is (max + min) / 2");
    CHECK(fabs(lr_at(&cos_s, warmup + 25) - (max_lr * frac + (max_lr - max_lr * frac) * (0.5 + 0.5 * sqrt(0.5)))) <= tol,
          "cosine: a quarter through, min + (max - min) * (1 + cos(pi/4)) / 2");
    LRSchedule lin_s = {LR_LINEAR, (float)max_lr, warmup, total, (float)frac, 0.0f};
    CHECK(fabs(lr_at(&lin_s, warmup + 50) - mid) <= tol, "linear: halfway through the decay the lr is (max + min) / 2");
    LRSchedule wsd_s = {LR_WSD, (float)max_lr, warmup, total, (float)frac, (float)wsd_frac};
    int stable_ok = 1;
    for (int step = warmup; step < 90; step++) { stable_ok &= fabs(lr_at(&wsd_s, step) - max_lr) <= tol; }
    CHECK(stable_ok, "wsd: stable at max from step %d to 89", warmup);
    CHECK(fabs(lr_at(&wsd_s, 100) - mid) <= tol && fabs(lr_at(&wsd_s, 95) - (max_lr - 0.25 * (max_lr - max_lr * frac))) <= tol,
          "wsd: decays linearly from step 90 (midpoint at 100, a quarter at 95)");
    // a fraction that does not divide the steps: 0.25 of 10 post-warmup steps is 2.5 -> 3 decay steps
    LRSchedule wsd2 = {LR_WSD, 1.0f, 2, 12, 0.0f, 0.25f};
    CHECK(lr_at(&wsd2, 8) == 1.0f && fabs(lr_at(&wsd2, 9) - 1.0) <= 1e-6 && fabs(lr_at(&wsd2, 10) - 2.0 / 3.0) <= 1e-6 &&
              fabs(lr_at(&wsd2, 11) - 1.0 / 3.0) <= 1e-6 && lr_at(&wsd2, 12) == 0.0f,
          "wsd: 2.5 decay steps round up to 3 (1, 2/3, 1/3, then 0)");
    // no warmup: step 0 is already the peak
    LRSchedule now = {LR_COSINE, 1.0f, 0, 100, 0.0f, 0.0f};
    CHECK(lr_at(&now, 0) == 1.0f, "cosine without warmup starts at max");
    CHECK(lr_schedule_kind_from_name("cosin") == -1, "an unknown schedule name is -1");
}

// ----------------------------------------------------------------------------
// sampler

static int ref_argmax(const float* x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) {
        if (x[i] > x[best]) best = i;
    }
    return best;
}

static void test_sampler_greedy(void) {
    const int V = 6, Vp = 128;
    float logits[128];
    for (int i = 0; i < Vp; i++) { logits[i] = 1e30f; }  // padded entries: huge, never candidates
    float row[6] = {1.0f, 5.0f, 3.0f, 5.0f, 5.0f, 2.0f};
    memcpy(logits, row, sizeof(row));
    Sampler s;
    sampler_init(&s, V, 0.0f, 0, 1.0f, 1);
    CHECK(sampler_sample(&s, logits) == 1, "temperature 0: argmax, ties to the lowest id (1 of {1, 3, 4})");
    sampler_free(&s);

    // top-k 1 and a tiny top-p equal greedy at temperature 1, on random rows with ties
    uint64_t rng = 7;
    int k1_ok = 1, p_ok = 1;
    Sampler sk, sp;
    sampler_init(&sk, V, 1.0f, 1, 1.0f, 11);
    sampler_init(&sp, V, 1.0f, 0, 1e-6f, 12);
    for (int r = 0; r < 2000; r++) {
        for (int i = 0; i < V; i++) { logits[i] = (float)rng_below(&rng, 4); }  // many ties
        int want = ref_argmax(logits, V);
        k1_ok &= sampler_sample(&sk, logits) == want;
        p_ok &= sampler_sample(&sp, logits) == want;
    }
    CHECK(k1_ok, "top-k 1 equals greedy (2000 rows with ties)");
    CHECK(p_ok, "top-p 1e-6 equals greedy (2000 rows with ties)");
    sampler_free(&sk);
    sampler_free(&sp);

    // ids never reach V, whatever the settings, with huge logits past V
    const float temps[] = {0.0f, 0.5f, 1.0f, 5.0f};
    const int ks[] = {0, 1, 3, 1000};
    const float ps[] = {1.0f, 0.9f, 0.1f};
    int in_range = 1;
    for (int a = 0; a < 4; a++) {
        for (int b = 0; b < 4; b++) {
            for (int c = 0; c < 3; c++) {
                Sampler x;
                sampler_init(&x, V, temps[a], ks[b], ps[c], 100 + a * 16 + b * 4 + c);
                for (int r = 0; r < 200; r++) {
                    for (int i = 0; i < V; i++) { logits[i] = (float)rng_normal(&rng); }
                    int id = sampler_sample(&x, logits);
                    in_range &= id >= 0 && id < V;
                }
                sampler_free(&x);
            }
        }
    }
    CHECK(in_range, "sampled ids are always in [0, V) with logits 1e30 past V (48 settings x 200 draws)");
}

static void test_sampler_seed(void) {
    const int V = 50;
    float logits[50];
    uint64_t rng = 3;
    for (int i = 0; i < V; i++) { logits[i] = (float)rng_normal(&rng); }
    Sampler a, b, c;
    sampler_init(&a, V, 1.0f, 10, 0.95f, 1234);
    sampler_init(&b, V, 1.0f, 10, 0.95f, 1234);
    sampler_init(&c, V, 1.0f, 10, 0.95f, 1235);
    int same = 1, differ = 0;
    for (int i = 0; i < 1000; i++) {
        int x = sampler_sample(&a, logits), y = sampler_sample(&b, logits), z = sampler_sample(&c, logits);
        same &= x == y;
        differ += x != z;
    }
    CHECK(same, "the same seed gives the same 1000 ids");
    CHECK(differ > 100, "another seed gives another sequence (%d of 1000 differ)", differ);
    sampler_free(&a);
    sampler_free(&b);
    sampler_free(&c);
    CHECK(sampler_validate(0.0f, 0, 1.0f) == NULL && sampler_validate(-0.1f, 0, 1.0f) != NULL &&
              sampler_validate(NAN, 0, 1.0f) != NULL && sampler_validate(1.0f, -1, 1.0f) != NULL &&
              sampler_validate(1.0f, 0, 0.0f) != NULL && sampler_validate(1.0f, 0, 1.5f) != NULL,
          "sampler_validate accepts greedy and rejects temperature < 0 or NaN, top-k < 0, top-p outside (0, 1]");
}

// draws n ids and compares the frequencies to the exact distribution computed
// here: softmax(logits / temp), keep the top_k most likely, then the smallest
// prefix reaching top_p, renormalize
static void check_distribution(float temp, int top_k, float top_p, const char* what) {
    enum { V = 8, VP = 16, N = 200000 };
    const float row[V] = {1.5f, 1.1f, 0.8f, 0.6f, 0.0f, -0.5f, -1.0f, 1.0f};
    float logits[VP];
    for (int i = 0; i < VP; i++) { logits[i] = i < V ? row[i] : 1e30f; }
    double p[V], sum = 0.0;
    for (int i = 0; i < V; i++) { sum += p[i] = exp(row[i] / (double)temp); }
    int order[V];  // ids by probability, descending (the row has no ties)
    for (int i = 0; i < V; i++) { p[i] /= sum; order[i] = i; }
    for (int i = 0; i < V; i++) {
        for (int j = i + 1; j < V; j++) {
            if (p[order[j]] > p[order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
        }
    }
    int keep = top_k > 0 && top_k < V ? top_k : V;
    double cum = 0.0, margin = 1.0;
    for (int i = 0; i < keep && top_p < 1.0f; i++) {
        cum += p[order[i]];
        margin = fmin(margin, fabs(cum - top_p));
        if (cum >= top_p) { keep = i + 1; break; }
    }
    double want[V] = {0}, mass = 0.0;
    for (int i = 0; i < keep; i++) { mass += p[order[i]]; }
    for (int i = 0; i < keep; i++) { want[order[i]] = p[order[i]] / mass; }

    Sampler s;
    sampler_init(&s, V, temp, top_k, top_p, 20240601);
    long count[V] = {0};
    int out_of_range = 0;
    for (int i = 0; i < N; i++) {
        int id = sampler_sample(&s, logits);
        if (id < 0 || id >= V) { out_of_range++; continue; }
        count[id]++;
    }
    sampler_free(&s);
    double max_dev = 0.0;
    int outside = 0;
    for (int i = 0; i < V; i++) {
        double f = (double)count[i] / N;
        max_dev = fmax(max_dev, fabs(f - want[i]));
        outside += want[i] == 0.0 && count[i] > 0;
    }
    CHECK(margin > 0.01, "%s: the top-p cut is unambiguous (prefix sums are %.3f or more from top-p)", what, margin);
    CHECK(out_of_range == 0 && outside == 0, "%s: only the %d kept ids are drawn", what, keep);
    CHECK(max_dev < 0.01, "%s: %d draws match the renormalized probabilities (max abs dev %.4f < 0.01)", what, N,
          max_dev);
}

// ----------------------------------------------------------------------------
// rng

static void test_rng(void) {
    uint64_t st = 99;
    const int bins = 7, n = 700000;
    long count[7] = {0};
    for (int i = 0; i < n; i++) { count[rng_below(&st, bins)]++; }
    double chi2 = 0.0, e = (double)n / bins;
    for (int i = 0; i < bins; i++) { chi2 += (count[i] - e) * (count[i] - e) / e; }
    // 6 degrees of freedom: P(chi2 > 22.46) = 0.001
    CHECK(chi2 < 22.46, "rng_below(7): chi-square %.2f < 22.46 (6 dof, p = 0.001) over %d draws", chi2, n);
    // n = 3 * 2^62: plain r % n would put half the draws below 2^62; uniform puts a third
    uint64_t big = 3ULL << 62;
    long below = 0, too_big = 0;
    const int m = 300000;
    for (int i = 0; i < m; i++) {
        uint64_t r = rng_below(&st, big);
        below += r < (1ULL << 62);
        too_big += r >= big;
    }
    double frac = (double)below / m;
    CHECK(too_big == 0 && fabs(frac - 1.0 / 3.0) < 0.005, "rng_below(3 * 2^62): %.4f of draws below 2^62 (want 1/3 +- 0.005, "
          "modulo bias would give 1/2)", frac);
    CHECK(rng_below(&st, 1) == 0 && rng_below(&st, 0) == 0, "rng_below(1) and rng_below(0) are 0");

    enum { P = 1000 };
    uint64_t a[P];
    for (int i = 0; i < P; i++) { a[i] = i; }
    rng_shuffle_u64(a, P, &st);
    int seen[P] = {0}, is_perm = 1, moved = 0;
    for (int i = 0; i < P; i++) {
        if (a[i] >= P || seen[a[i]]) { is_perm = 0; break; }
        seen[a[i]] = 1;
        moved += a[i] != (uint64_t)i;
    }
    CHECK(is_perm && moved > P / 2, "rng_shuffle_u64 of 1000 items is a permutation (%d moved)", moved);
    long perms[6] = {0};
    const int shuffles = 60000;
    for (int i = 0; i < shuffles; i++) {
        uint64_t b[3] = {0, 1, 2};
        rng_shuffle_u64(b, 3, &st);
        perms[b[0] * 2 + (b[1] > b[2] ? 1 : 0)]++;  // first item and the order of the other two
    }
    double max_dev = 0.0;
    for (int i = 0; i < 6; i++) { max_dev = fmax(max_dev, fabs((double)perms[i] / shuffles - 1.0 / 6.0)); }
    CHECK(max_dev < 0.01, "rng_shuffle_u64 of 3 items: each of the 6 orders has frequency 1/6 +- 0.01 (max dev %.4f)",
          max_dev);
    uint64_t one = 5;
    rng_shuffle_u64(&one, 1, &st);
    rng_shuffle_u64(NULL, 0, &st);
    CHECK(one == 5, "shuffles of 1 and 0 items are no-ops");
    int u_ok = 1;
    for (int i = 0; i < 100000; i++) {
        float u = rng_uniform(&st);
        u_ok &= u >= 0.0f && u < 1.0f;
    }
    CHECK(u_ok, "rng_uniform stays in [0, 1)");
}

// ----------------------------------------------------------------------------
// config

static void test_config(void) {
    CHECK(ffn_dim_for(768) == 2048, "ffn_dim_for(768) = %d (want 2048)", ffn_dim_for(768));
    CHECK(ffn_dim_for(2048) == 5504, "ffn_dim_for(2048) = %d (want 5504)", ffn_dim_for(2048));
    int formula_ok = 1;
    for (int C = 2; C <= 4096; C += 2) { formula_ok &= ffn_dim_for(C) == (int)(128 * ceil((8.0 * C / 3.0) / 128.0)); }
    CHECK(formula_ok, "ffn_dim_for(C) = 128 * ceil((8C/3) / 128) for every even C up to 4096");

    // SPEC section 1's presets
    struct { const char* name; int L, C, NH, NKV, F, hd; } want[] = {
        {"d2", 2, 256, 4, 2, 768, 64},        {"d6", 6, 384, 6, 2, 1024, 64},     {"d12", 12, 768, 12, 4, 2048, 64},
        {"d24", 24, 1024, 16, 4, 2816, 64},   {"d36", 36, 1280, 20, 4, 3456, 64}, {"1b", 16, 2048, 16, 4, 5504, 128},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        GPTConfig c;
        config_from_preset(&c, want[i].name, 0, 0);
        CHECK(is_preset_name(want[i].name) && c.n_layer == want[i].L && c.n_embd == want[i].C &&
                  c.n_head == want[i].NH && c.n_kv_head == want[i].NKV && c.ffn_dim == want[i].F &&
                  c.n_embd / c.n_head == want[i].hd && config_validate(&c) == NULL,
              "preset %s: L%d C%d NH%d NKV%d F%d hd %d, valid", want[i].name, want[i].L, want[i].C, want[i].NH,
              want[i].NKV, want[i].F, want[i].hd);
        CHECK(c.max_seq_len == 1024 && c.vocab_size == 50257 && c.padded_vocab_size == 50304 &&
                  c.rope_theta == 10000.0f && c.norm_eps == 1e-5f && c.logit_softcap == 30.0f && c.qk_norm == 1 &&
                  c.tied_embeddings == 1 && c.parallel_block == 0,
              "preset %s: SPEC's defaults for the other fields", want[i].name);
    }
    CHECK(!is_preset_name("d3") && !is_preset_name(""), "d3 and '' are not presets");
    GPTConfig c;
    config_from_preset(&c, "d2", 1000, 64);
    CHECK(c.vocab_size == 1000 && c.padded_vocab_size == 1024 && c.max_seq_len == 64,
          "config_from_preset with V=1000, T=64: padded vocab 1024, max_seq_len 64");
    config_from_preset(&c, "d2", 256, 0);
    CHECK(c.padded_vocab_size == 256, "a vocab that is a multiple of 128 is not padded further (%d)", c.padded_vocab_size);

    // param_layout_init for d12, every tensor by hand (L 12, C 768, NH 12, NKV 4, hd 64, F 2048, Vp 50304)
    config_from_preset(&c, "d12", 0, 0);
    ParamLayout pl;
    param_layout_init(&pl, &c);
    const size_t sizes[NUM_PARAMETER_TENSORS] = {
        50304UL * 768,            // wte (Vp, C)
        12UL * 768,               // ln1_w (L, C)
        12UL * (12 + 8) * 64 * 768, // qkv_w (L, (NH + 2 NKV) hd, C)
        12UL * 64, 12UL * 64,     // q_norm_w, k_norm_w (L, hd)
        12UL * 768 * 768,         // attn_proj_w (L, C, NH hd)
        12UL * 768,               // ln2_w (L, C)
        12UL * 4096 * 768,        // fc_w (L, 2F, C)
        12UL * 768 * 2048,        // fc_proj_w (L, C, F)
        768,                      // lnf_w (C)
        0,                        // lm_w: tied
    };
    int sizes_ok = 1, offsets_ok = 1;
    size_t off = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        sizes_ok &= pl.sizes[i] == sizes[i] && pl.rows[i] * pl.cols[i] == sizes[i];
        offsets_ok &= pl.offsets[i] == off;
        off += sizes[i];
    }
    CHECK(sizes_ok, "d12 tied: every tensor has SPEC's size");
    CHECK(offsets_ok && pl.num_parameters == 114151680UL, "d12 tied: tensors are contiguous in SPEC's order, %zu "
          "parameters (want 114151680)", pl.num_parameters);
    c.tied_embeddings = 0;
    param_layout_init(&pl, &c);
    CHECK(pl.sizes[P_LMW] == 50304UL * 768 && pl.offsets[P_LMW] == 114151680UL &&
              pl.num_parameters == 114151680UL + 50304UL * 768,
          "d12 untied: lm_w (Vp, C) comes last, %zu parameters", pl.num_parameters);
    CHECK(param_is_decayed(P_QKV) && param_is_decayed(P_ATTNPROJ) && param_is_decayed(P_FC) &&
              param_is_decayed(P_FCPROJ) && param_is_decayed(P_LMW) && !param_is_decayed(P_WTE) &&
              !param_is_decayed(P_LN1) && !param_is_decayed(P_LN2) && !param_is_decayed(P_LNF) &&
              !param_is_decayed(P_QNORM) && !param_is_decayed(P_KNORM),
          "weight decay on the 2-D matrices only (not norms, not the embedding)");

    // config_validate
    GPTConfig good;
    config_from_preset(&good, "d12", 0, 0);
    CHECK(config_validate(&good) == NULL, "d12 is valid");
    c = good; c.n_head = 12; c.n_kv_head = 5;
    CHECK(config_validate(&c) != NULL, "rejected: NH 12 %% NKV 5 != 0");
    c = good; c.n_head = 6; c.n_kv_head = 4;
    CHECK(config_validate(&c) != NULL, "rejected: NH 6 %% NKV 4 != 0");
    c = good; c.n_embd = 12; c.n_head = 4; c.n_kv_head = 2;
    CHECK(config_validate(&c) != NULL, "rejected: odd head dim (C 12 / NH 4 = 3)");
    c = good; c.n_embd = 770;
    CHECK(config_validate(&c) != NULL, "rejected: C 770 not a multiple of NH 12");
    c = good; c.vocab_size = 50305;
    CHECK(config_validate(&c) != NULL, "rejected: vocab 50305 > padded 50304");
    c = good; c.n_kv_head = 0;
    CHECK(config_validate(&c) != NULL, "rejected: NKV 0");
    c = good; c.n_kv_head = 24;
    CHECK(config_validate(&c) != NULL, "rejected: NKV > NH");
    c = good; c.norm_eps = 0.0f;
    CHECK(config_validate(&c) != NULL, "rejected: norm_eps 0");
    c = good; c.rope_theta = NAN;
    CHECK(config_validate(&c) != NULL, "rejected: rope_theta NaN");
    c = good; c.logit_softcap = -1.0f;
    CHECK(config_validate(&c) != NULL, "rejected: negative soft-cap");
    c = good; c.logit_softcap = 0.0f; c.n_kv_head = 1; c.qk_norm = 0;
    CHECK(config_validate(&c) == NULL, "accepted: soft-cap off, MQA, no qk-norm");

    // SPEC section 4: 6 * (matmul parameters, lm_head once) + 6 * L * NH * hd * T, d12 at T = 1024
    //   per layer: qkv 20*64*768 = 983040, attn_proj 768*768 = 589824, fc 2*2048*768 = 3145728,
    //              fc_proj 768*2048 = 1572864; sum 6291456; x 12 layers = 75497472
    //   lm_head 50304*768 = 38633472; matmul total 114130944; x 6 = 684785664
    //   attention 6 * 12 * 12 * 64 * 1024 = 56623104; total 741408768
    double flops = model_flops_per_token(&good, 1024);
    CHECK(flops == 741408768.0, "model_flops_per_token(d12, T=1024) = %.0f (want 741408768)", flops);
}

static void test_fast_math(void) {
    double worst_exp = 0.0, worst_tanh = 0.0;
    float at_exp = 0.0f, at_tanh = 0.0f;
    const int n = 1 << 22;
    for (int i = 0; i <= n; i++) {
        float x = -87.0f + (88.0f + 87.0f) * (float)i / n;
        double e = exp((double)x), err = fabs((double)expf_fast(x) - e) / e;
        if (err > worst_exp) { worst_exp = err; at_exp = x; }
        float y = -12.0f + 24.0f * (float)i / n;
        double t = tanh((double)y);
        double terr = t == 0.0 ? fabs((double)tanhf_fast(y)) : fabs((double)tanhf_fast(y) - t) / fabs(t);
        if (terr > worst_tanh) { worst_tanh = terr; at_tanh = y; }
    }
    CHECK(worst_exp <= 4e-7, "expf_fast over [-87, 88]: worst relative error %.2e at x = %g (tol 4e-7)", worst_exp,
          at_exp);
    CHECK(worst_tanh <= 4e-7, "tanhf_fast over [-12, 12]: worst relative error %.2e at x = %g (tol 4e-7)", worst_tanh,
          at_tanh);
    CHECK(expf_fast(-1000.0f) < 1e-37f && expf_fast(-1000.0f) >= 0.0f && tanhf_fast(50.0f) == 1.0f &&
              tanhf_fast(-50.0f) == -1.0f && tanhf_fast(0.0f) == 0.0f,
          "expf_fast / tanhf_fast saturate: e^-1000 -> %g, tanh(+-50) -> %g %g", expf_fast(-1000.0f),
          tanhf_fast(50.0f), tanhf_fast(-50.0f));
}


// ----------------------------------------------------------------------------
// the training loop's pieces

typedef struct {
    const int* bytes;  // (V,) per token
    double nats, nbytes, mean_sum;
    int calls;
} FakeEval;

// a loss that depends on the batch: 1 + (sum of targets mod 7) / 10
static float fake_forward(void* ctx, const int* inputs, const int* targets, int B, int T, float zloss) {
    (void)inputs;
    FakeEval* f = (FakeEval*)ctx;
    if (zloss != 0.0f) { f->calls = -1000; }  // evaluation is plain cross-entropy: the caller checks calls
    long sum = 0;
    for (int i = 0; i < B * T; i++) { sum += targets[i]; f->nbytes += f->bytes[targets[i]]; }
    float loss = 1.0f + (float)(sum % 7) / 10.0f;
    f->nats += (double)loss * B * T;
    f->mean_sum += loss;
    f->calls++;
    return loss;
}

static void test_train_loop_pieces(void) {
    StepTimes st;
    memset(&st, 0, sizeof(st));
    for (int i = 0; i < 15; i++) { step_times_add(&st, 100.0 + i); }
    step_times_add(&st, 5000.0);  // one slow step among 16
    CHECK(step_times_median(&st) == 107.5, "step times: 15 of 100..114 and one of 5000 -> median %.1f (107.5)", step_times_median(&st));
    for (int i = 0; i < 16; i++) { step_times_add(&st, 50.0); }  // the window forgets
    CHECK(step_times_median(&st) == 50.0, "step times: 16 more of 50 -> median %.1f (the window is 16)", step_times_median(&st));
    memset(&st, 0, sizeof(st));
    step_times_add(&st, 3.0);
    CHECK(step_times_median(&st) == 3.0, "step times: one of 3 -> median %.1f", step_times_median(&st));
    int due_ok = 1;
    for (int every = 0; every <= 7; every++) {
        for (int from = 0; from < 30; from++) {
            for (int to = from; to < 40; to++) {
                int n = 0;
                for (int s = from + 1; s <= to; s++) { n += train_due(every, s, 0); }
                if (n != train_due_count(every, from, to)) { due_ok = 0; }
            }
        }
    }
    CHECK(due_ok, "train_due_count(every 0..7, from, to) equals counting train_due over (from, to]");

    // train_eval over a shard of known tokens
    char dir[] = "/tmp/llmc_misc_XXXXXX";
    if (mkdtemp(dir) == NULL) { CHECK(0, "mkdtemp"); return; }
    char path[256];
    snprintf(path, sizeof(path), "%s/val_000000.bin", dir);
    const int V = 50, N = 1000;
    int header[256] = {0};
    header[0] = 20240520; header[1] = 1; header[2] = N;
    uint16_t tok[1000];
    for (int i = 0; i < N; i++) { tok[i] = (uint16_t)((i * 37 + 11) % V); }
    FILE* fp = fopen(path, "wb");
    if (fp == NULL) { CHECK(0, "cannot write %s", path); return; }
    fwrite(header, sizeof(int), 256, fp);
    fwrite(tok, sizeof(uint16_t), N, fp);
    fclose(fp);
    int bytes[50];
    for (int i = 0; i < V; i++) { bytes[i] = (i % 5 == 0) ? 0 : 1 + i % 4; }
    char pat[300];
    snprintf(pat, sizeof(pat), "%s/val_*.bin", dir);
    DataLoader val;
    dataloader_init(&val, pat, 2, 8, 0, 1, V, 0, 0);
    Comm comm;
    memset(&comm, 0, sizeof(comm));
    comm.world = 1;
    FakeEval fe = {bytes, 0, 0, 0, 0};
    TrainOps ops;
    memset(&ops, 0, sizeof(ops));
    ops.model = &fe;
    ops.forward_loss = fake_forward;
    double bpb = 0;
    float ce = train_eval(&ops, &val, 5, bytes, &comm, &bpb);
    CHECK(fe.calls == 5, "train_eval ran %d batches (5), all with zloss 0", fe.calls);
    CHECK(fabs(ce - fe.mean_sum / 5) <= 1e-6, "train_eval cross-entropy %.7f = the mean of the batch losses %.7f", ce,
          fe.mean_sum / 5);
    double want = fe.nats / log(2.0) / fe.nbytes;
    CHECK(fe.nbytes > 0 && fabs(bpb - want) <= 1e-9 * want, "bits per byte %.9f = nats / ln 2 / %.0f bytes = %.9f", bpb,
          fe.nbytes, want);
    // again: the loader starts over (the same batches), and without a byte table no bpb
    FakeEval fe2 = {bytes, 0, 0, 0, 0};
    ops.model = &fe2;
    float ce2 = train_eval(&ops, &val, -1, NULL, &comm, &bpb);
    CHECK(fe2.calls == (int)dataloader_steps_per_epoch(&val), "n = -1 evaluates the whole set: %d batches", fe2.calls);
    CHECK(fe2.calls > 0 && fabs(ce2 - fe2.mean_sum / fe2.calls) <= 1e-6, "its cross-entropy %.7f", ce2);
    CHECK(bpb < 0, "no byte table -> no bits per byte (%g)", bpb);
    dataloader_free(&val);
    remove(path);
    rmdir(dir);
}

int main(void) {
    test_train_loop_pieces();
    test_schedules();
    test_sampler_greedy();
    test_sampler_seed();
    check_distribution(0.7f, 0, 1.0f, "temperature 0.7");
    check_distribution(0.7f, 3, 1.0f, "temperature 0.7, top-k 3");
    check_distribution(0.7f, 0, 0.8f, "temperature 0.7, top-p 0.8");
    check_distribution(0.7f, 3, 0.8f, "temperature 0.7, top-k 3 and top-p 0.8");
    check_distribution(1.0f, 0, 1.0f, "temperature 1");
    test_rng();
    test_config();
    test_fast_math();
    return test_summary();
}
