/*
 * gen_corpus.c: writes the fuzzers' seed inputs, small valid files made by the
 * project's own writers, into DIR/shard, DIR/checkpoint and DIR/state. The
 * output is deterministic, so rerunning it changes nothing.
 *
 *   cc -O1 -std=gnu11 -I. test/fuzz/gen_corpus.c -o fuzz-build/gen_corpus -lm
 *   fuzz-build/gen_corpus test/fuzz/corpus        (run_fuzz.sh does both)
 */
#include <stdlib.h>
#include "llmc/checkpoint.h"
#include "llmc/rand.h"
#include "llmc/shard.h"

static char g_root[512];

static void out_path(char* out, size_t n, const char* target, const char* name) {
    snprintf(out, n, "%s/%s/%s", g_root, target, name);
}

static void seed_shard(const char* name, size_t ntok, uint32_t max_id, int layout_vocab) {
    uint32_t* tok = (uint32_t*)mallocCheck(ntok * sizeof(uint32_t));
    uint64_t rng = ntok * 31 + max_id;
    for (size_t i = 0; i < ntok; i++) { tok[i] = (uint32_t)rng_below(&rng, max_id); }
    char path[700];
    out_path(path, sizeof(path), "shard", name);
    shard_write(path, tok, ntok, layout_vocab);
    free(tok);
}

static void seed_checkpoint(const char* name, int L, int C, int NH, int NKV, int F, int V, int Vp, int tied,
                            int qk_norm, int parallel, int dtype) {
    GPTConfig c;
    memset(&c, 0, sizeof(c));
    c.max_seq_len = 16;
    c.vocab_size = V;
    c.padded_vocab_size = Vp;
    c.n_layer = L;
    c.n_embd = C;
    c.n_head = NH;
    c.n_kv_head = NKV;
    c.ffn_dim = F;
    c.rope_theta = 10000.0f;
    c.norm_eps = 1e-5f;
    c.logit_softcap = 30.0f;
    c.qk_norm = qk_norm;
    c.tied_embeddings = tied;
    c.parallel_block = parallel;
    const char* bad = config_validate(&c);
    if (bad != NULL) { die("seed %s: %s", name, bad); }
    ParamLayout pl;
    param_layout_init(&pl, &c);
    float* p = (float*)mallocCheck(pl.num_parameters * sizeof(float));
    uint64_t rng = 5;
    rng_fill_normal(p, pl.num_parameters, 0.02f, &rng);
    char path[700];
    out_path(path, sizeof(path), "checkpoint", name);
    checkpoint_write(path, &c, p, pl.num_parameters, dtype);
    free(p);
}

static void seed_state(const char* name, uint64_t num_parameters, uint64_t offset, uint64_t size, int world, int rank) {
    TrainState s;
    memset(&s, 0, sizeof(s));
    s.step = 42;
    s.world_size = world;
    s.rank = rank;
    s.rng = 0x0123456789ABCDEFULL;
    s.data_epoch = 1;
    s.data_shard = 2;
    s.data_sample = 3;
    s.shard_offset = offset;
    s.shard_size = size;
    s.num_parameters = num_parameters;
    s.config_hash = 0xFEDCBA9876543210ULL;
    s.B = 4;
    s.T = 64;
    s.grad_accum = 2;
    s.shuffle = 1;
    s.data_seed = 1337;
    float* body = (float*)callocCheck(size + 1, sizeof(float));
    for (uint64_t i = 0; i < size; i++) { body[i] = 0.001f * (float)i; }
    char path[700];
    out_path(path, sizeof(path), "state", name);
    state_write(path, &s, body, body, body);
    free(body);
}

int main(int argc, char** argv) {
    if (argc != 2) { die("usage: %s DIR", argv[0]); }
    snprintf(g_root, sizeof(g_root), "%s", argv[1]);
    const char* targets[] = {"shard", "checkpoint", "state"};
    for (int i = 0; i < 3; i++) {
        char d[700];
        snprintf(d, sizeof(d), "%s/%s", g_root, targets[i]);
        make_dir(d);
    }
    // shards: both layouts, sizes around the settings' batch needs (2, 13, 33 and 13 tokens)
    seed_shard("u16_2.bin", 2, 300, 50257);
    seed_shard("u16_14.bin", 14, 300, 50257);
    seed_shard("u16_40.bin", 40, 300, 50257);
    seed_shard("u16_100_wide.bin", 100, 65536, 65536);
    seed_shard("u32_13.bin", 13, 300, 100000);
    seed_shard("u32_40_wide.bin", 40, 1 << 20, 1 << 20);
    // checkpoints: the smallest model, and small ones in each variant and dtype
    seed_checkpoint("tiny_fp32.bin", 1, 2, 1, 1, 1, 1, 1, 1, 1, 0, DTYPE_FP32);
    seed_checkpoint("small_fp32.bin", 2, 8, 2, 1, 8, 10, 16, 1, 1, 0, DTYPE_FP32);
    seed_checkpoint("small_bf16.bin", 2, 8, 2, 1, 8, 10, 16, 1, 1, 0, DTYPE_BF16);
    seed_checkpoint("untied_fp32.bin", 1, 8, 4, 2, 16, 5, 8, 0, 0, 1, DTYPE_FP32);
    seed_checkpoint("untied_bf16.bin", 1, 8, 4, 4, 16, 5, 8, 0, 1, 1, DTYPE_BF16);
    // training states: empty body, a single rank, a middle shard of four
    seed_state("empty.bin", 0, 0, 0, 1, 0);
    seed_state("rank0.bin", 37, 0, 37, 1, 0);
    seed_state("zero1_rank2.bin", 400, 200, 100, 4, 2);
    // regression: found by fuzz_state; offset + size wrapped past 2^64 and passed the check
    seed_state("regress_offset_wrap.bin", 37, UINT64_MAX - 9, 37, 1, 0);
    return 0;
}
