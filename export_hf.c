/*
 * export_hf.c: a model checkpoint -> a Hugging Face transformers folder
 * (model.safetensors, config.json, generation_config.json, and with -tok the
 * tokenizer as tokenizer.json + tokenizer_config.json). docs/interop.md has the
 * tensor name table and what is refused.
 *
 *   ./export_hf model_00001000.bin out_dir/ [-dtype bf16|fp32] [-lossy] [-tok tokenizer.bin]
 *
 * The architecture is LlamaForCausalLM when qk_norm is off and Qwen3ForCausalLM
 * when on. Our fused qkv_w rows (all q heads, then k heads, then v heads) split
 * into q_proj, k_proj, v_proj; fc_w rows 0..F-1 are the SwiGLU gate (gate_proj),
 * F..2F-1 the up projection (up_proj); padded vocabulary rows are dropped. Our
 * RoPE is rotate-half (pairs i, i + hd/2), the convention of transformers'
 * Llama/Qwen3 code, so q/k rows need no permutation (test/hf_forward.py checks
 * this with numbers). A soft-capped head (logit_softcap != 0) and the parallel
 * block have no transformers equivalent: refused, unless -lossy, which exports
 * without them and prints how far the logits move on a few random sequences.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "llmc/checkpoint.h"
#include "llmc/config.h"
#include "llmc/dataloader.h"
#include "llmc/gpt_cpu.h"
#include "llmc/json.h"
#include "llmc/rand.h"
#include "llmc/safetensors.h"
#include "llmc/tokenizer.h"
#include "llmc/utils.h"

typedef struct {
    const char* model_path;
    const char* out_dir;
    const char* tok_path;  // NULL: no tokenizer files
    const char* val_pattern;  // -j: -lossy measures on these token shards (NULL: random tokens)
    int dtype;             // ST_F32 or ST_BF16
    int lossy;
} ExportArgs;

static void usage(const char* prog) {
    fprintf(stderr,
            "usage: %s <model.bin> <out_dir> [-dtype bf16|fp32] [-lossy [-j val_shards]] [-tok tokenizer.bin]\n"
            "  -dtype   tensor dtype in model.safetensors (default fp32)\n"
            "  -lossy   export a model with logit_softcap != 0 or parallel_block = 1 anyway, without\n"
            "           those features, and print the largest logit change and the loss change that causes\n"
            "  -j       with -lossy: measure on 4 sequences of these token shards (default: random tokens)\n"
            "  -tok     our version-3 tokenizer file: also writes tokenizer.json and tokenizer_config.json\n",
            prog);
}

static void parse_args(ExportArgs* a, int argc, char** argv) {
    memset(a, 0, sizeof(*a));
    a->dtype = ST_F32;
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) { usage(argv[0]); exit(0); }
        if (strcmp(argv[i], "-lossy") == 0) { a->lossy = 1; continue; }
        if (strcmp(argv[i], "-dtype") == 0 || strcmp(argv[i], "-tok") == 0 || strcmp(argv[i], "-j") == 0) {
            if (i + 1 >= argc) { die("flag %s needs a value", argv[i]); }
            const char* v = argv[++i];
            if (strcmp(argv[i - 1], "-tok") == 0) { a->tok_path = v; continue; }
            if (strcmp(argv[i - 1], "-j") == 0) { a->val_pattern = v; continue; }
            if (strcmp(v, "bf16") == 0) { a->dtype = ST_BF16; }
            else if (strcmp(v, "fp32") == 0) { a->dtype = ST_F32; }
            else { die("flag -dtype: '%s' is not bf16 or fp32", v); }
            continue;
        }
        if (argv[i][0] == '-') { die("unknown flag '%s'\n---> HINT: %s --help lists the flags", argv[i], argv[0]); }
        if (npos == 0) { a->model_path = argv[i]; }
        else if (npos == 1) { a->out_dir = argv[i]; }
        else { die("unexpected argument '%s' (one model file and one output folder)", argv[i]); }
        npos++;
    }
    if (npos != 2) { usage(argv[0]); die("a model file and an output folder are needed"); }
}

// ----------------------------------------------------------------------------
// -lossy: how far do the logits and the loss move without the unsupported
// features? On 4 sequences of T (<= 64) tokens: from the shards of `val_pattern`,
// or random tokens when NULL. *loss_diff: the mean next-token loss without them
// minus with them (positive: the export predicts worse).
static float lossy_logit_diff(GPT* model, const char* val_pattern, float* loss_diff) {
    GPTConfig* c = &model->config;
    int T = c->max_seq_len < 64 ? c->max_seq_len : 64, B = 1, V = c->vocab_size, Vp = c->padded_vocab_size;
    int* tokens = (int*)mallocCheck((size_t)(T + 1) * sizeof(int));
    float* ref = (float*)mallocCheck((size_t)T * Vp * sizeof(float));
    DataLoader dl;
    if (val_pattern != NULL) { dataloader_init(&dl, val_pattern, 1, (size_t)T, 0, 1, V, 0, 0); }
    uint64_t rng = 20261207;
    float maxd = 0.0f;
    double dloss = 0.0;
    GPTConfig orig = *c;
    for (int s = 0; s < 4; s++) {
        if (val_pattern != NULL) {
            dataloader_next_batch(&dl);
            memcpy(tokens, dl.inputs, (size_t)T * sizeof(int));
            tokens[T] = dl.targets[T - 1];
        } else {
            for (int i = 0; i <= T; i++) { tokens[i] = (int)rng_below(&rng, (uint64_t)V); }
        }
        *c = orig;
        gpt_forward(model, tokens, tokens + 1, B, T, 0.0f);
        float loss_ref = model->mean_loss;
        memcpy(ref, model->acts.logits, (size_t)T * Vp * sizeof(float));
        c->logit_softcap = 0.0f;
        c->parallel_block = 0;
        gpt_forward(model, tokens, tokens + 1, B, T, 0.0f);
        dloss += (double)model->mean_loss - loss_ref;
        for (int t = 0; t < T; t++) {
            for (int v = 0; v < V; v++) {
                float d = fabsf(ref[(size_t)t * Vp + v] - model->acts.logits[(size_t)t * Vp + v]);
                if (!(d <= maxd)) { maxd = d; }
            }
        }
    }
    *c = orig;
    if (val_pattern != NULL) { dataloader_free(&dl); }
    free(tokens);
    free(ref);
    *loss_diff = (float)(dloss / 4);
    return maxd;
}

// ----------------------------------------------------------------------------
// the tensors

static void write_model(const ExportArgs* a, const GPT* model, const char* path) {
    const GPTConfig* c = &model->config;
    const ParameterTensors* p = &model->params;
    int64_t L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    int64_t V = c->vocab_size, QKV = (NH + 2 * NKV) * hd;
    int cap = 3 + (int)L * 11, n = 0;
    StWriteTensor* t = (StWriteTensor*)callocCheck((size_t)cap, sizeof(StWriteTensor));
    char** names = (char**)callocCheck((size_t)cap, sizeof(char*));
#define ADD(nm, data_, nd, d0, d1)                                    \
    do {                                                              \
        names[n] = (char*)mallocCheck(128);                           \
        snprintf(names[n], 128, "%s", nm);                            \
        t[n] = (StWriteTensor){names[n], a->dtype, nd, {d0, d1}, data_}; \
        n++;                                                          \
    } while (0)
    char nm[128];
    ADD("model.embed_tokens.weight", p->wte, 2, V, C);  // rows >= V are padding: not written
    for (int64_t l = 0; l < L; l++) {
        const float* qkv = p->qkv_w + l * QKV * C;
        const float* fc = p->fc_w + l * 2 * F * C;
#define LAYER(suffix, data_, nd, d0, d1)                                      \
    do {                                                                      \
        snprintf(nm, sizeof(nm), "model.layers.%lld.%s", (long long)l, suffix); \
        ADD(nm, data_, nd, d0, d1);                                           \
    } while (0)
        LAYER("input_layernorm.weight", p->ln1_w + l * C, 1, C, 0);
        LAYER("self_attn.q_proj.weight", qkv, 2, NH * hd, C);
        LAYER("self_attn.k_proj.weight", qkv + NH * hd * C, 2, NKV * hd, C);
        LAYER("self_attn.v_proj.weight", qkv + (NH + NKV) * hd * C, 2, NKV * hd, C);
        LAYER("self_attn.o_proj.weight", p->attn_proj_w + l * C * NH * hd, 2, C, NH * hd);
        if (c->qk_norm) {
            LAYER("self_attn.q_norm.weight", p->q_norm_w + l * hd, 1, hd, 0);
            LAYER("self_attn.k_norm.weight", p->k_norm_w + l * hd, 1, hd, 0);
        }
        LAYER("post_attention_layernorm.weight", p->ln2_w + l * C, 1, C, 0);
        LAYER("mlp.gate_proj.weight", fc, 2, F, C);
        LAYER("mlp.up_proj.weight", fc + F * C, 2, F, C);
        LAYER("mlp.down_proj.weight", p->fc_proj_w + l * C * F, 2, C, F);
#undef LAYER
    }
    ADD("model.norm.weight", p->lnf_w, 1, C, 0);
    if (!c->tied_embeddings) { ADD("lm_head.weight", p->lm_w, 2, V, C); }
#undef ADD
    static const char* const meta[2] = {"format", "pt"};
    st_write(path, t, n, meta, 1);
    for (int i = 0; i < n; i++) { free(names[i]); }
    free(names);
    free(t);
}

static void write_text(const char* path, const JsonBuf* b) {
    AtomicFile af;
    atomic_file_open(&af, path);
    fwriteCheck(b->s, 1, b->n, af.fp, path);
    atomic_file_commit(&af);
}

static void write_config(const ExportArgs* a, const GPTConfig* c, int eot, int bos_id, const char* path) {
    int qwen = c->qk_norm;
    int eos = eot >= 0 ? eot : c->vocab_size - 1;  // without a tokenizer: the last id, GPT-2's EOT position
    int bos = bos_id >= 0 ? bos_id : eos;
    JsonBuf b = {0};
    jbuf_printf(&b, "{\n  \"architectures\": [\"%s\"],\n", qwen ? "Qwen3ForCausalLM" : "LlamaForCausalLM");
    jbuf_printf(&b, "  \"model_type\": \"%s\",\n", qwen ? "qwen3" : "llama");
    jbuf_printf(&b, "  \"vocab_size\": %d,\n", c->vocab_size);
    jbuf_printf(&b, "  \"hidden_size\": %d,\n", c->n_embd);
    jbuf_printf(&b, "  \"intermediate_size\": %d,\n", c->ffn_dim);
    jbuf_printf(&b, "  \"num_hidden_layers\": %d,\n", c->n_layer);
    jbuf_printf(&b, "  \"num_attention_heads\": %d,\n", c->n_head);
    jbuf_printf(&b, "  \"num_key_value_heads\": %d,\n", c->n_kv_head);
    jbuf_printf(&b, "  \"head_dim\": %d,\n", c->n_embd / c->n_head);
    jbuf_printf(&b, "  \"max_position_embeddings\": %d,\n", c->max_seq_len);
    jbuf_puts(&b, "  \"rms_norm_eps\": ");
    jbuf_float(&b, c->norm_eps);
    jbuf_puts(&b, ",\n  \"rope_theta\": ");
    jbuf_float(&b, c->rope_theta);
    jbuf_puts(&b, ",\n  \"rope_scaling\": null,\n");
    jbuf_printf(&b, "  \"tie_word_embeddings\": %s,\n", c->tied_embeddings ? "true" : "false");
    jbuf_puts(&b, "  \"hidden_act\": \"silu\",\n  \"attention_bias\": false,\n  \"attention_dropout\": 0.0,\n");
    if (qwen) {
        jbuf_printf(&b, "  \"use_sliding_window\": false,\n  \"sliding_window\": null,\n  \"max_window_layers\": %d,\n",
                    c->n_layer);
    } else {
        jbuf_puts(&b, "  \"mlp_bias\": false,\n  \"pretraining_tp\": 1,\n");
    }
    jbuf_puts(&b, "  \"initializer_range\": 0.02,\n  \"use_cache\": true,\n");
    jbuf_printf(&b, "  \"torch_dtype\": \"%s\",\n", a->dtype == ST_BF16 ? "bfloat16" : "float32");
    jbuf_printf(&b, "  \"bos_token_id\": %d,\n  \"eos_token_id\": %d\n}\n", bos, eos);
    write_text(path, &b);
    jbuf_free(&b);
}

static void write_generation_config(int eot, int bos_id, int vocab, const char* path) {
    int id = eot >= 0 ? eot : vocab - 1, bos = bos_id >= 0 ? bos_id : id;
    JsonBuf b = {0};
    jbuf_printf(&b, "{\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n  \"pad_token_id\": %d\n}\n", bos, id, id);
    write_text(path, &b);
    jbuf_free(&b);
}

// ----------------------------------------------------------------------------
// the tokenizer: GPT-2's byte-level BPE as tokenizers' tokenizer.json

// mapped_token: token id's bytes through the byte map, as UTF-8 into out (cap >= 2*len+1)
static size_t mapped_token(const Tokenizer* t, uint32_t id, const uint32_t map[256], char* out) {
    size_t len, n = 0;
    const unsigned char* s = tokenizer_decode(t, id, &len);
    for (size_t i = 0; i < len; i++) {
        uint32_t cp = map[s[i]];
        if (cp < 0x80) { out[n++] = (char)cp; }
        else { out[n++] = (char)(0xC0 | (cp >> 6)); out[n++] = (char)(0x80 | (cp & 0x3F)); }
    }
    out[n] = '\0';
    return n;
}

static int str_ptr_cmp(const void* a, const void* b) { return strcmp(*(char* const*)a, *(char* const*)b); }

static void write_tokenizer(const Tokenizer* t, const GPTConfig* c, const char* dir) {
    uint32_t map[256];
    tok_byte_to_unicode(map);
    char** mapped = (char**)mallocCheck(t->vocab_size * sizeof(char*));
    char buf[600];
    for (uint32_t i = 0; i < t->vocab_size; i++) {
        size_t n = mapped_token(t, i, map, buf);
        mapped[i] = (char*)mallocCheck(n + 1);
        memcpy(mapped[i], buf, n + 1);
    }
    // the vocab is a JSON object: two tokens with the same bytes would collide
    char** sorted = (char**)mallocCheck(t->vocab_size * sizeof(char*));
    memcpy(sorted, mapped, t->vocab_size * sizeof(char*));
    qsort(sorted, t->vocab_size, sizeof(char*), str_ptr_cmp);
    for (uint32_t i = 1; i < t->vocab_size; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) { die("tokenizer: two tokens have the same bytes ('%s'): cannot write a vocab", sorted[i]); }
    }
    free(sorted);
    JsonBuf b = {0};
    jbuf_puts(&b, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [\n");
    jbuf_printf(&b, "    {\"id\": %u, \"content\": \"<|endoftext|>\", \"single_word\": false, \"lstrip\": false, "
                    "\"rstrip\": false, \"normalized\": true, \"special\": true}\n  ],\n", t->eot_token);
    jbuf_puts(&b, "  \"normalizer\": null,\n"
                  "  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true},\n"
                  "  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, \"use_regex\": true},\n"
                  "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n"
                  "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
                  "    \"continuing_subword_prefix\": \"\",\n    \"end_of_word_suffix\": \"\",\n    \"fuse_unk\": false,\n"
                  "    \"byte_fallback\": false,\n    \"vocab\": {");
    for (uint32_t i = 0; i < t->vocab_size; i++) {
        jbuf_puts(&b, i ? ",\n      " : "\n      ");
        jbuf_string(&b, mapped[i], strlen(mapped[i]));
        jbuf_printf(&b, ": %u", i);
    }
    jbuf_puts(&b, "\n    },\n    \"merges\": [");
    // the merges in rank order: recover them from the hash table
    uint32_t* left = (uint32_t*)mallocCheck((t->num_merges + 1) * sizeof(uint32_t));
    uint32_t* right = (uint32_t*)mallocCheck((t->num_merges + 1) * sizeof(uint32_t));
    uint8_t* have = (uint8_t*)callocCheck(t->num_merges + 1, 1);
    for (size_t i = 0; i < t->merge_cap; i++) {
        if (t->merge_keys[i] == 0) { continue; }
        uint64_t k = t->merge_keys[i] - 1;
        uint32_t r = t->merge_rank[i];
        left[r] = (uint32_t)(k >> 32);
        right[r] = (uint32_t)k;
        have[r] = 1;
        // tokenizers derives a merge's result from the two strings: it must be our merged token
        uint32_t m = t->merge_result[i];
        size_t ll = strlen(mapped[left[r]]);
        if (strncmp(mapped[m], mapped[left[r]], ll) != 0 || strcmp(mapped[m] + ll, mapped[right[r]]) != 0) {
            die("tokenizer: merge %u gives token %u, which is not the concatenation of %u and %u", r, m, left[r], right[r]);
        }
    }
    int first = 1;
    for (uint32_t r = 0; r < t->num_merges; r++) {
        if (!have[r]) { continue; }  // a repeated pair in the file: only its first rank counts
        jbuf_puts(&b, first ? "\n      " : ",\n      ");
        first = 0;
        snprintf(buf, sizeof(buf), "%s %s", mapped[left[r]], mapped[right[r]]);
        jbuf_string(&b, buf, strlen(buf));
    }
    jbuf_puts(&b, "\n    ]\n  }\n}\n");
    char path[1200];
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    write_text(path, &b);
    jbuf_free(&b);
    jbuf_puts(&b, "{\n  \"tokenizer_class\": \"GPT2Tokenizer\",\n  \"bos_token\": \"<|endoftext|>\",\n"
                  "  \"eos_token\": \"<|endoftext|>\",\n  \"unk_token\": \"<|endoftext|>\",\n"
                  "  \"add_bos_token\": false,\n  \"add_prefix_space\": false,\n"
                  "  \"clean_up_tokenization_spaces\": false,\n");
    jbuf_printf(&b, "  \"model_max_length\": %d,\n", c->max_seq_len);
    jbuf_printf(&b, "  \"added_tokens_decoder\": {\"%u\": {\"content\": \"<|endoftext|>\", \"single_word\": false, "
                    "\"lstrip\": false, \"rstrip\": false, \"normalized\": true, \"special\": true}}\n}\n", t->eot_token);
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    write_text(path, &b);
    jbuf_free(&b);
    for (uint32_t i = 0; i < t->vocab_size; i++) { free(mapped[i]); }
    free(mapped);
    free(left);
    free(right);
    free(have);
}

// copy_file: src to dst, atomically
static void copy_file(const char* src, const char* dst) {
    FILE* in = fopenCheck(src, "rb");
    AtomicFile af;
    atomic_file_open(&af, dst);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) { fwriteCheck(buf, 1, n, af.fp, af.tmp); }
    if (ferror(in)) { die("reading '%s' failed", src); }
    fclose(in);
    atomic_file_commit(&af);
}

int main(int argc, char** argv) {
    ExportArgs a;
    parse_args(&a, argc, argv);
    if (a.val_pattern != NULL && !a.lossy) { die("flag -j is for -lossy's measurement only"); }
    GPT model;
    gpt_init_from_checkpoint(&model, a.model_path);
    GPTConfig* c = &model.config;
    if (!a.lossy) {
        if (c->logit_softcap != 0.0f) {
            die("'%s': logit_softcap = %g has no transformers equivalent\n---> HINT: -lossy exports without it and "
                "prints the largest logit change", a.model_path, c->logit_softcap);
        }
        if (c->parallel_block) {
            die("'%s': parallel_block = 1 has no transformers equivalent\n---> HINT: -lossy exports a sequential "
                "block and prints the largest logit change", a.model_path);
        }
    } else if (c->logit_softcap != 0.0f || c->parallel_block) {
        float dl = 0.0f;
        float d = lossy_logit_diff(&model, a.val_pattern, &dl);
        printf("lossy export: %s%s%s dropped; on 4 %s sequences: max |logit difference| %.6g, "
               "loss difference %+.6f\n",
               c->logit_softcap != 0.0f ? "logit_softcap" : "", c->logit_softcap != 0.0f && c->parallel_block ? " and " : "",
               c->parallel_block ? "parallel_block" : "", a.val_pattern != NULL ? "validation" : "random-token", d, dl);
    }
    Tokenizer tok;
    int have_tok = 0;
    if (a.tok_path != NULL) {
        tokenizer_init(&tok, a.tok_path);
        have_tok = 1;
        if (!tok.can_encode) { die("tokenizer '%s' has no merges (version 2): tokenizer.json needs version 3", a.tok_path); }
        if (tok.vocab_size != (uint32_t)c->vocab_size) {
            die("tokenizer '%s' has %u tokens, the model's vocab_size is %d", a.tok_path, tok.vocab_size, c->vocab_size);
        }
    }
    make_dir(a.out_dir);
    char path[1200];
    if (snprintf(path, sizeof(path), "%s/model.safetensors", a.out_dir) >= (int)sizeof(path)) { die("output path too long"); }
    write_model(&a, &model, path);
    snprintf(path, sizeof(path), "%s/config.json", a.out_dir);
    const int bos = have_tok && tok.bos_token != UINT32_MAX ? (int)tok.bos_token : -1;
    write_config(&a, c, have_tok ? (int)tok.eot_token : -1, bos, path);
    snprintf(path, sizeof(path), "%s/generation_config.json", a.out_dir);
    write_generation_config(have_tok ? (int)tok.eot_token : -1, bos, c->vocab_size, path);
    if (have_tok) {
        char* jp = tokenizer_json_path(a.tok_path);
        if (jp != NULL) {  // a tokenizer.json (and the tokenizer_config.json beside it) goes as it is
            snprintf(path, sizeof(path), "%s/tokenizer.json", a.out_dir);
            copy_file(jp, path);
            char* slash = strrchr(jp, '/');
            char cfg[1200];
            snprintf(cfg, sizeof(cfg), "%.*stokenizer_config.json", slash ? (int)(slash - jp + 1) : 0, jp);
            snprintf(path, sizeof(path), "%s/tokenizer_config.json", a.out_dir);
            if (access(cfg, R_OK) == 0) { copy_file(cfg, path); }
            free(jp);
        } else {
            write_tokenizer(&tok, c, a.out_dir);
        }
        tokenizer_free(&tok);
    }
    printf("exported %s -> %s (%s, %s%s)\n", a.model_path, a.out_dir, c->qk_norm ? "Qwen3ForCausalLM" : "LlamaForCausalLM",
           a.dtype == ST_BF16 ? "bf16" : "fp32", have_tok ? ", tokenizer" : "");
    gpt_free(&model);
    return 0;
}
