/*
 * config.h: the model's configuration (SPEC section 1), the presets behind
 * `-e dN`, the parameter tensors' shapes and order (SPEC section 3), and the
 * model checkpoint's header. Shared unchanged by train_gpt.c, train_gpt.cu and
 * infer.
 *
 * defines: GPTConfig, NUM_PARAMETER_TENSORS, PARAM_NAMES, ParamLayout,
 *          ffn_dim_for, config_finalize, config_validate, config_from_preset,
 *          is_preset_name, param_layout_init, param_is_decayed,
 *          config_to_header, config_from_header, config_print, config_hash,
 *          model_flops_per_token
 */
#ifndef LLMC_CONFIG_H
#define LLMC_CONFIG_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "utils.h"

typedef struct {
    int max_seq_len;        // longest sequence trained/sampled, e.g. 1024
    int vocab_size;         // V, e.g. 50257
    int padded_vocab_size;  // Vp: V rounded up to a multiple of 128
    int n_layer;            // L
    int n_embd;             // C
    int n_head;             // NH
    int n_kv_head;          // NKV, NH % NKV == 0 (GQA; 1 = MQA)
    int ffn_dim;            // F, SwiGLU hidden width
    float rope_theta;       // RoPE base
    float norm_eps;         // every RMSNorm
    float logit_softcap;    // 0 disables; z = cap * tanh(z / cap)
    int qk_norm;            // RMSNorm over each head's q and k
    int tied_embeddings;    // lm_head reuses wte
    int parallel_block;     // x + attn(n(x)) + mlp(n(x)); ln2 unused
} GPTConfig;

// ffn_dim = 128 * ceil((8C/3) / 128), computed in integers: ceil(8C / 384)
static inline int ffn_dim_for(int C) { return 128 * ((8 * C + 383) / 384); }

static inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

// the defaults of SPEC's table, for the fields a preset does not set
static inline void config_defaults(GPTConfig* c) {
    memset(c, 0, sizeof(*c));
    c->max_seq_len = 1024;
    c->vocab_size = 50257;
    c->padded_vocab_size = 50304;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->logit_softcap = 30.0f;
    c->qk_norm = 1;
    c->tied_embeddings = 1;
    c->parallel_block = 0;
}

typedef struct {
    const char* name;
    int n_layer, n_embd, n_head, n_kv_head;
} Preset;

static const Preset PRESETS[] = {
    {"d2", 2, 256, 4, 2},     // the test model: hd 64 so the GPU kernels run it too
    {"d6", 6, 384, 6, 2},
    {"d12", 12, 768, 12, 4},
    {"d24", 24, 1024, 16, 4},
    {"d36", 36, 1280, 20, 4},
    {"1b", 16, 2048, 16, 4},  // hd 128
};
#define NUM_PRESETS ((int)(sizeof(PRESETS) / sizeof(PRESETS[0])))

static inline int is_preset_name(const char* s) {
    for (int i = 0; i < NUM_PRESETS; i++) {
        if (strcmp(s, PRESETS[i].name) == 0) { return 1; }
    }
    return 0;
}

// config_validate: every config that reaches the model passes here; returns
// NULL when fine, else a reason (the caller names the file or flag it came from)
static inline const char* config_validate(const GPTConfig* c) {
    if (c->n_layer < 1 || c->n_layer > 1024) return "n_layer must be in [1, 1024]";
    if (c->n_embd < 2 || c->n_embd > 65536) return "n_embd must be in [2, 65536]";
    if (c->n_head < 1 || c->n_head > c->n_embd) return "n_head must be in [1, n_embd]";
    if (c->n_embd % c->n_head != 0) return "n_embd must be a multiple of n_head";
    if ((c->n_embd / c->n_head) % 2 != 0) return "head dim n_embd / n_head must be even (RoPE pairs)";
    if (c->n_kv_head < 1 || c->n_kv_head > c->n_head) return "n_kv_head must be in [1, n_head]";
    if (c->n_head % c->n_kv_head != 0) return "n_head must be a multiple of n_kv_head";
    if (c->ffn_dim < 1 || c->ffn_dim > 1 << 20) return "ffn_dim must be in [1, 2^20]";
    if (c->vocab_size < 1 || c->vocab_size > (1 << 30)) return "vocab_size must be in [1, 2^30]";
    if (c->padded_vocab_size < c->vocab_size || c->padded_vocab_size > (1 << 30))
        return "padded_vocab_size must be >= vocab_size";
    if (c->max_seq_len < 1 || c->max_seq_len > (1 << 20)) return "max_seq_len must be in [1, 2^20]";
    if (!(c->rope_theta > 0.0f) || !isfinite(c->rope_theta)) return "rope_theta must be > 0";
    if (!(c->norm_eps > 0.0f) || !(c->norm_eps < 1.0f)) return "norm_eps must be in (0, 1)";
    if (!(c->logit_softcap >= 0.0f) || !isfinite(c->logit_softcap)) return "logit_softcap must be >= 0";
    if (c->qk_norm != 0 && c->qk_norm != 1) return "qk_norm must be 0 or 1";
    if (c->tied_embeddings != 0 && c->tied_embeddings != 1) return "tied_embeddings must be 0 or 1";
    if (c->parallel_block != 0 && c->parallel_block != 1) return "parallel_block must be 0 or 1";
    return NULL;
}

// config_from_preset: fills c from a preset name with SPEC's defaults for the
// rest; vocab_size V (0 = GPT-2's 50257) sets padded_vocab_size to V rounded up to 128
static inline void config_from_preset(GPTConfig* c, const char* name, int vocab_size, int max_seq_len) {
    config_defaults(c);
    const Preset* p = NULL;
    for (int i = 0; i < NUM_PRESETS; i++) {
        if (strcmp(name, PRESETS[i].name) == 0) { p = &PRESETS[i]; }
    }
    if (p == NULL) {
        die("unknown model preset '%s'\n---> HINT: presets are d2, d6, d12, d24, d36, 1b, or give a checkpoint path", name);
    }
    c->n_layer = p->n_layer;
    c->n_embd = p->n_embd;
    c->n_head = p->n_head;
    c->n_kv_head = p->n_kv_head;
    c->ffn_dim = ffn_dim_for(p->n_embd);
    if (vocab_size > 0) { c->vocab_size = vocab_size; }
    c->padded_vocab_size = round_up(c->vocab_size, 128);
    if (max_seq_len > 0) { c->max_seq_len = max_seq_len; }
}

// ----------------------------------------------------------------------------
// parameter tensors, in the checkpoint's order

enum {
    P_WTE, P_LN1, P_QKV, P_QNORM, P_KNORM, P_ATTNPROJ, P_LN2, P_FC, P_FCPROJ, P_LNF, P_LMW,
    NUM_PARAMETER_TENSORS
};
static const char* const PARAM_NAMES[NUM_PARAMETER_TENSORS] = {
    "wte", "ln1_w", "qkv_w", "q_norm_w", "k_norm_w", "attn_proj_w",
    "ln2_w", "fc_w", "fc_proj_w", "lnf_w", "lm_w"};

typedef struct {
    size_t sizes[NUM_PARAMETER_TENSORS];    // elements per tensor (0 for lm_w when tied)
    size_t offsets[NUM_PARAMETER_TENSORS];  // element offset of each tensor in the flat buffer
    size_t rows[NUM_PARAMETER_TENSORS];     // leading dims (incl. L) and the last dim, for
    size_t cols[NUM_PARAMETER_TENSORS];     // decay decisions and printing
    size_t num_parameters;
} ParamLayout;

static inline void param_layout_init(ParamLayout* pl, const GPTConfig* c) {
    size_t L = c->n_layer, C = c->n_embd, Vp = c->padded_vocab_size, F = c->ffn_dim;
    size_t hd = C / c->n_head, NH = c->n_head, NKV = c->n_kv_head;
    size_t r[NUM_PARAMETER_TENSORS] = {Vp, L, L * (NH + 2 * NKV) * hd, L, L, L * C, L, L * 2 * F, L * C, 1,
                                       c->tied_embeddings ? 0 : Vp};
    size_t k[NUM_PARAMETER_TENSORS] = {C, C, C, hd, hd, NH * hd, C, C, F, C, C};
    size_t off = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        pl->rows[i] = r[i];
        pl->cols[i] = k[i];
        pl->sizes[i] = r[i] * k[i];
        pl->offsets[i] = off;
        off += pl->sizes[i];
    }
    pl->num_parameters = off;
}

// weight decay applies to the 2-D matrices only: not to norm weights and not
// to the embedding (wte, also when it doubles as the tied lm_head)
static inline int param_is_decayed(int tensor) {
    return tensor == P_QKV || tensor == P_ATTNPROJ || tensor == P_FC || tensor == P_FCPROJ || tensor == P_LMW;
}

// ----------------------------------------------------------------------------
// the model checkpoint header (256 int32)

#define CHECKPOINT_MAGIC 20261122
#define CHECKPOINT_VERSION 1
#define HEADER_INTS 256
enum { DTYPE_FP32 = 0, DTYPE_BF16 = 1 };

static inline int32_t f32_bits(float f) { int32_t i; memcpy(&i, &f, 4); return i; }
static inline float bits_f32(int32_t i) { float f; memcpy(&f, &i, 4); return f; }

// writes the config into header words [first .. first+13], SPEC's order
static inline void config_to_words(const GPTConfig* c, int32_t* w) {
    w[0] = c->max_seq_len; w[1] = c->vocab_size; w[2] = c->padded_vocab_size; w[3] = c->n_layer;
    w[4] = c->n_embd; w[5] = c->n_head; w[6] = c->n_kv_head; w[7] = c->ffn_dim;
    w[8] = f32_bits(c->rope_theta); w[9] = f32_bits(c->norm_eps); w[10] = f32_bits(c->logit_softcap);
    w[11] = c->qk_norm; w[12] = c->tied_embeddings; w[13] = c->parallel_block;
}

static inline void config_from_words(GPTConfig* c, const int32_t* w) {
    c->max_seq_len = w[0]; c->vocab_size = w[1]; c->padded_vocab_size = w[2]; c->n_layer = w[3];
    c->n_embd = w[4]; c->n_head = w[5]; c->n_kv_head = w[6]; c->ffn_dim = w[7];
    c->rope_theta = bits_f32(w[8]); c->norm_eps = bits_f32(w[9]); c->logit_softcap = bits_f32(w[10]);
    c->qk_norm = w[11]; c->tied_embeddings = w[12]; c->parallel_block = w[13];
}

static inline void config_to_header(const GPTConfig* c, int dtype, int32_t header[HEADER_INTS]) {
    memset(header, 0, HEADER_INTS * sizeof(int32_t));
    header[0] = CHECKPOINT_MAGIC;
    header[1] = CHECKPOINT_VERSION;
    header[2] = dtype;
    config_to_words(c, header + 3);
}

// config_from_header: validates a checkpoint header; dies naming `path` on any problem
static inline void config_from_header(GPTConfig* c, int* dtype, const int32_t header[HEADER_INTS], const char* path) {
    if (header[0] != CHECKPOINT_MAGIC) {
        die("'%s' is not a model checkpoint (magic %d, expected %d)", path, header[0], CHECKPOINT_MAGIC);
    }
    if (header[1] != CHECKPOINT_VERSION) {
        die("'%s': unsupported checkpoint version %d (this build reads version %d)", path, header[1],
            CHECKPOINT_VERSION);
    }
    if (header[2] != DTYPE_FP32 && header[2] != DTYPE_BF16) {
        die("'%s': unknown dtype %d in checkpoint header", path, header[2]);
    }
    *dtype = header[2];
    config_from_words(c, header + 3);
    const char* bad = config_validate(c);
    if (bad != NULL) { die("'%s': invalid config in checkpoint header: %s", path, bad); }
}

// config_hash: FNV-1a over the config words, to compare configs across files and ranks
static inline uint64_t hash_bytes(uint64_t h, const void* data, size_t n) {
    const unsigned char* p = (const unsigned char*)data;
    for (size_t i = 0; i < n; i++) { h = (h ^ p[i]) * 1099511628211ULL; }
    return h;
}
static inline uint64_t config_hash(const GPTConfig* c) {
    int32_t w[14];
    config_to_words(c, w);
    return hash_bytes(1469598103934665603ULL, w, sizeof(w));
}

static inline int config_equal(const GPTConfig* a, const GPTConfig* b) {
    int32_t wa[14], wb[14];
    config_to_words(a, wa);
    config_to_words(b, wb);
    return memcmp(wa, wb, sizeof(wa)) == 0;
}

static inline void config_print(const GPTConfig* c, FILE* fp) {
    fprintf(fp, "config: max_seq_len %d | vocab %d (padded %d) | L %d | C %d | NH %d | NKV %d | hd %d | F %d\n",
            c->max_seq_len, c->vocab_size, c->padded_vocab_size, c->n_layer, c->n_embd, c->n_head, c->n_kv_head,
            c->n_embd / c->n_head, c->ffn_dim);
    fprintf(fp, "config: rope_theta %g | norm_eps %g | softcap %g | qk_norm %d | tied %d | parallel_block %d\n",
            c->rope_theta, c->norm_eps, c->logit_softcap, c->qk_norm, c->tied_embeddings, c->parallel_block);
}

// SPEC's FLOP count per trained token at sequence length T:
// 6 * (matmul parameters, lm_head once) + 6 * L * NH * hd * T
static inline double model_flops_per_token(const GPTConfig* c, int T) {
    double L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    double matmul = L * ((NH + 2 * NKV) * hd * C + C * NH * hd + 2 * F * C + C * F) + (double)c->padded_vocab_size * C;
    return 6.0 * matmul + 6.0 * L * NH * hd * T;
}

#endif // LLMC_CONFIG_H
