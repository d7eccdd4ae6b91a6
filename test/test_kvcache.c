/*
 * test_kvcache.c: sampling with the KV cache computes the same logits as the
 * full-sequence forward: a prompt prefilled in one pass, then one token at a
 * time, against gpt_forward over the whole sequence, at every position, for
 * each model option (GQA/MQA, qk_norm, tied, soft-cap, parallel block).
 * Greedy continuation from the cache equals greedy from full recomputation.
 *
 *   make test_kvcache && ./test_kvcache
 *
 * Tolerance: max abs logit difference <= 1e-4 (the two paths sum in different
 * orders only through the matmul blocking, in fp32).
 */
#include "llmc/gpt_cpu.h"
#include "llmc/sampler.h"
#include "test.h"

static void check_config(const char* name, GPTConfig cfg) {
    GPT m;
    gpt_init_random(&m, &cfg, 11);
    for (size_t i = 0; i < m.layout.num_parameters; i++) { m.params_memory[i] *= 5.0f; }  // sharper distributions
    int T = 24, P = 9, V = cfg.vocab_size, Vp = cfg.padded_vocab_size;
    int tokens[64];
    uint64_t rng = 3;
    for (int i = 0; i < T; i++) { tokens[i] = (int)rng_below(&rng, V); }
    gpt_forward(&m, tokens, NULL, 1, T, 0.0f);
    float* full = (float*)mallocCheck((size_t)T * Vp * sizeof(float));
    memcpy(full, m.acts.logits, (size_t)T * Vp * sizeof(float));
    KVCache kv;
    kvcache_init(&kv, &cfg, 1, cfg.max_seq_len, T);
    float* out = (float*)mallocCheck((size_t)T * Vp * sizeof(float));
    gpt_forward_cached(&m, &kv, tokens, 1, P, 0, out, 1);  // prefill, all positions
    double worst = 0.0;
    for (size_t i = 0; i < (size_t)P * Vp; i++) { worst = fmax(worst, fabs(out[i] - full[i])); }
    for (int t = P; t < T; t++) {  // then one token at a time
        gpt_forward_cached(&m, &kv, tokens + t, 1, 1, t, out, 0);
        for (int j = 0; j < Vp; j++) { worst = fmax(worst, fabs(out[j] - full[(size_t)t * Vp + j])); }
    }
    CHECK(worst <= 1e-4, "%s: cached vs full logits, max abs diff %.2e over %d positions (tol 1e-4)", name, worst, T);
    // greedy: 10 tokens from the cache vs full recomputation each step
    int seq_a[64], seq_b[64];
    memcpy(seq_a, tokens, P * sizeof(int));
    memcpy(seq_b, tokens, P * sizeof(int));
    KVCache kv2;
    kvcache_init(&kv2, &cfg, 1, cfg.max_seq_len, T);
    gpt_forward_cached(&m, &kv2, seq_a, 1, P, 0, out, 0);
    for (int t = P; t < P + 10; t++) {
        seq_a[t] = sampler_argmax(out, V);
        gpt_forward_cached(&m, &kv2, seq_a + t, 1, 1, t, out, 0);
        gpt_forward(&m, seq_b, NULL, 1, t, 0.0f);
        seq_b[t] = sampler_argmax(m.acts.logits + (size_t)(t - 1) * Vp, V);
    }
    CHECK(memcmp(seq_a, seq_b, (P + 10) * sizeof(int)) == 0, "%s: greedy continuation from the cache equals full recompute", name);
    kvcache_free(&kv);
    kvcache_free(&kv2);
    free(full);
    free(out);
    gpt_free(&m);
}

static GPTConfig small(int NH, int NKV, int qk, int tied, int par, float cap) {
    GPTConfig c;
    config_defaults(&c);
    c.max_seq_len = 40; c.vocab_size = 300; c.padded_vocab_size = 384; c.n_layer = 2; c.n_embd = 64;
    c.n_head = NH; c.n_kv_head = NKV; c.ffn_dim = ffn_dim_for(64); c.qk_norm = qk; c.tied_embeddings = tied;
    c.parallel_block = par; c.logit_softcap = cap;
    return c;
}

int main(void) {
    check_config("GQA qk_norm tied cap30", small(4, 2, 1, 1, 0, 30.0f));
    check_config("MQA untied parallel nocap", small(4, 1, 0, 0, 1, 0.0f));
    check_config("MHA qk_norm parallel cap5", small(2, 2, 1, 1, 1, 5.0f));
    return test_summary();
}
