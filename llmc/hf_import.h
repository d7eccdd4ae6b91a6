/*
 * hf_import.h: a Hugging Face transformers folder read as our model: config.json
 * into a GPTConfig, and the tensors of model.safetensors (or the shards that
 * model.safetensors.index.json names; BF16, F16 or F32) into our flat fp32
 * parameters. Used by import_hf (folder -> checkpoint file) and by `-e hf_dir/`
 * of train_gpt, train_gpt_cuda, infer_cpu and infer (llmc/model_file.h).
 *
 * Supported: LlamaForCausalLM and Qwen3ForCausalLM without biases, without
 * rope_scaling and without a sliding window, with head_dim = hidden_size /
 * num_attention_heads (our model has no separate head_dim). Anything else is a
 * one-line error naming the field or tensor: another architecture,
 * attention_bias or mlp_bias true, rope_scaling set, a sliding window in use, an
 * unknown or missing tensor, a tensor whose shape differs from the config's.
 * docs/interop.md has the names.
 *
 * The inverse of export_hf: q/k/v_proj stack into our qkv_w rows, gate_proj and
 * up_proj into fc_w rows [0, F) and [F, 2F); the vocabulary is padded to a
 * multiple of 128 with zero rows; q_norm_w/k_norm_w are 1 for Llama (unused
 * there); logit_softcap 0, parallel_block 0.
 *
 * defines: hf_read_config, hf_read_params, hf_is_folder
 */
#ifndef LLMC_HF_IMPORT_H
#define LLMC_HF_IMPORT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config.h"
#include "json.h"
#include "safetensors.h"
#include "utils.h"

#define HF_MAX_SHARDS 256

// read_text: a whole (small) file, NUL-terminated
static char* hf_read_text(const char* path, size_t* len) {
    FILE* fp = fopenCheck(path, "rb");
    long long n = file_size(fp, path);
    if (n > (64LL << 20)) { die("'%s' is %lld bytes: too large for a JSON file here", path, n); }
    char* s = (char*)mallocCheck((size_t)n + 1);
    if (n > 0) { freadCheck(s, 1, (size_t)n, fp, path); }
    s[n] = '\0';
    fcloseCheck(fp, path);
    *len = (size_t)n;
    return s;
}

typedef struct {
    const char* path;
    Json j;
    char* text;
} JsonFile;

static void json_file_load(JsonFile* f, const char* path) {
    size_t n;
    f->path = path;
    f->text = hf_read_text(path, &n);
    if (json_parse(&f->j, f->text, n) != 0) { die("'%s': %s", path, f->j.err); }
    if (f->j.nodes[0].type != JSON_OBJECT) { die("'%s': not a JSON object", path); }
}

// config fields: each accessor names the file and the field in its error
static int cfg_node(const JsonFile* f, int obj, const char* key, int required) {
    int n = json_get(&f->j, obj, key);
    if (n < 0 && required) { die("'%s': missing field '%s'", f->path, key); }
    return n;
}

static int cfg_int(const JsonFile* f, const char* key, int required, int dflt, int lo, int hi) {
    int n = cfg_node(f, 0, key, required);
    if (n < 0 || f->j.nodes[n].type == JSON_NULL) {
        if (required) { die("'%s': field '%s' is null", f->path, key); }
        return dflt;
    }
    if (!json_is_int(&f->j, n, lo, hi)) { die("'%s': field '%s' must be an integer in [%d, %d]", f->path, key, lo, hi); }
    return (int)f->j.nodes[n].num;
}

static float cfg_float(const JsonFile* f, int obj, const char* key, int required, float dflt) {
    int n = cfg_node(f, obj, key, required);
    if (n < 0) { return dflt; }
    if (f->j.nodes[n].type != JSON_NUMBER) { die("'%s': field '%s' must be a number", f->path, key); }
    return json_float(&f->j, n);
}

static int cfg_bool(const JsonFile* f, const char* key, int dflt) {
    int n = cfg_node(f, 0, key, 0);
    if (n < 0) { return dflt; }
    int t = f->j.nodes[n].type;
    if (t != JSON_TRUE && t != JSON_FALSE) { die("'%s': field '%s' must be true or false", f->path, key); }
    return t == JSON_TRUE;
}

static int cfg_is_null_or_absent(const JsonFile* f, const char* key) {
    int n = json_get(&f->j, 0, key);
    return n < 0 || f->j.nodes[n].type == JSON_NULL;
}

static void hf_read_config(const char* dir, GPTConfig* c) {
    if (strlen(dir) > 900) { die("path too long: '%.100s...'", dir); }
    char path[1200];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    JsonFile f;
    json_file_load(&f, path);
    int arch = cfg_node(&f, 0, "architectures", 1);
    if (f.j.nodes[arch].type != JSON_ARRAY || f.j.nodes[arch].nchild != 1 ||
        f.j.nodes[f.j.nodes[arch].child].type != JSON_STRING) {
        die("'%s': 'architectures' must be an array of one string", path);
    }
    const char* a = json_str(&f.j, f.j.nodes[arch].child);
    int qwen3;
    if (strcmp(a, "LlamaForCausalLM") == 0) { qwen3 = 0; }
    else if (strcmp(a, "Qwen3ForCausalLM") == 0) { qwen3 = 1; }
    else { die("'%s': architecture '%.80s' is not supported (LlamaForCausalLM, Qwen3ForCausalLM)", path, a); }
    int mt = json_get(&f.j, 0, "model_type");
    if (mt >= 0 && (f.j.nodes[mt].type != JSON_STRING || strcmp(json_str(&f.j, mt), qwen3 ? "qwen3" : "llama") != 0)) {
        die("'%s': model_type does not match architecture %s", path, a);
    }
    if (cfg_bool(&f, "attention_bias", 0)) { die("'%s': attention_bias true is not supported (our model has no biases)", path); }
    if (cfg_bool(&f, "mlp_bias", 0)) { die("'%s': mlp_bias true is not supported (our model has no biases)", path); }
    if (!cfg_is_null_or_absent(&f, "rope_scaling")) { die("'%s': rope_scaling is set: only plain RoPE is supported", path); }
    if (qwen3 ? cfg_bool(&f, "use_sliding_window", 0) : !cfg_is_null_or_absent(&f, "sliding_window")) {
        die("'%s': sliding_window attention is in use: not supported", path);
    }
    int act = json_get(&f.j, 0, "hidden_act");
    if (act >= 0 && (f.j.nodes[act].type != JSON_STRING || strcmp(json_str(&f.j, act), "silu") != 0)) {
        die("'%s': hidden_act must be \"silu\" (SwiGLU)", path);
    }
    config_defaults(c);
    c->vocab_size = cfg_int(&f, "vocab_size", 1, 0, 1, 1 << 30);
    c->padded_vocab_size = round_up(c->vocab_size, 128);
    c->n_embd = cfg_int(&f, "hidden_size", 1, 0, 2, 65536);
    c->ffn_dim = cfg_int(&f, "intermediate_size", 1, 0, 1, 1 << 20);
    c->n_layer = cfg_int(&f, "num_hidden_layers", 1, 0, 1, 1024);
    c->n_head = cfg_int(&f, "num_attention_heads", 1, 0, 1, 65536);
    c->n_kv_head = cfg_int(&f, "num_key_value_heads", 0, c->n_head, 1, 65536);
    c->max_seq_len = cfg_int(&f, "max_position_embeddings", 1, 0, 1, 1 << 20);
    if (c->n_embd % c->n_head != 0) { die("'%s': hidden_size is not a multiple of num_attention_heads", path); }
    int hd = cfg_int(&f, "head_dim", 0, c->n_embd / c->n_head, 1, 65536);
    if (hd != c->n_embd / c->n_head) {
        die("'%s': head_dim %d != hidden_size / num_attention_heads = %d: not supported", path, hd, c->n_embd / c->n_head);
    }
    c->norm_eps = cfg_float(&f, 0, "rms_norm_eps", 0, 1e-6f);
    // rope_theta at the top level, or (newer transformers) inside rope_parameters
    int rp = json_get(&f.j, 0, "rope_parameters");
    if (rp >= 0 && f.j.nodes[rp].type != JSON_NULL) {
        if (f.j.nodes[rp].type != JSON_OBJECT) { die("'%s': rope_parameters is not an object", path); }
        int rt = json_get(&f.j, rp, "rope_type");
        if (rt >= 0 && (f.j.nodes[rt].type != JSON_STRING || strcmp(json_str(&f.j, rt), "default") != 0)) {
            die("'%s': rope_parameters.rope_type is not \"default\": only plain RoPE is supported", path);
        }
        c->rope_theta = cfg_float(&f, rp, "rope_theta", 0, 10000.0f);
    } else {
        c->rope_theta = cfg_float(&f, 0, "rope_theta", 0, 10000.0f);
    }
    c->logit_softcap = 0.0f;
    c->qk_norm = qwen3;
    c->tied_embeddings = cfg_bool(&f, "tie_word_embeddings", 0);  // transformers' default for both
    c->parallel_block = 0;
    const char* bad = config_validate(c);
    if (bad != NULL) { die("'%s': unsupported config: %s", path, bad); }
    if (hd > 512) { die("'%s': head_dim %d is larger than this build supports (512)", path, hd); }
    json_free(&f.j);
    free(f.text);
}

// ----------------------------------------------------------------------------
// the tensors

typedef struct {
    char name[128];
    int64_t rows, cols;  // cols 0: a vector of `rows`
    float* dst;
    int found;
} HfWant;

typedef struct {
    char path[1200];
    SafeTensors st;
    char* used;  // (st.n,) 1 when the tensor was imported
} HfShard;

static int hf_shard_for(HfShard* shards, int nshards, const char* path) {
    for (int i = 0; i < nshards; i++) {
        if (strcmp(shards[i].path, path) == 0) { return i; }
    }
    return -1;
}

// hf_read_params: the tensors of the folder `dir` (model.safetensors or the shards
// of model.safetensors.index.json) into params (num_parameters of cfg, our layout),
// every name, shape and dtype checked; cfg from hf_read_config
static void hf_read_params(const char* dir, const GPTConfig* cfg, float* params) {
    const GPTConfig c = *cfg;
    ParamLayout pl;
    param_layout_init(&pl, &c);
    memset(params, 0, pl.num_parameters * sizeof(float));
    float* p[NUM_PARAMETER_TENSORS];
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { p[i] = params + pl.offsets[i]; }
    if (c.tied_embeddings) { p[P_LMW] = NULL; }
    int64_t L = c.n_layer, C = c.n_embd, NH = c.n_head, NKV = c.n_kv_head, hd = C / NH, F = c.ffn_dim, V = c.vocab_size;
    int64_t QKV = (NH + 2 * NKV) * hd;

    // every tensor the config implies, with its place in our buffer
    int nwant = 0, capw = 3 + (int)L * 11;
    HfWant* w = (HfWant*)callocCheck((size_t)capw, sizeof(HfWant));
#define WANT(dst_, r, cl, ...)                                          \
    do {                                                                \
        snprintf(w[nwant].name, sizeof(w[nwant].name), __VA_ARGS__);    \
        w[nwant].rows = r; w[nwant].cols = cl; w[nwant].dst = dst_;     \
        nwant++;                                                        \
    } while (0)
    WANT(p[P_WTE], V, C, "model.embed_tokens.weight");
    for (int64_t l = 0; l < L; l++) {
        float* qkv = p[P_QKV] + l * QKV * C;
        float* fc = p[P_FC] + l * 2 * F * C;
        long long ll = (long long)l;
        WANT(p[P_LN1] + l * C, C, 0, "model.layers.%lld.input_layernorm.weight", ll);
        WANT(qkv, NH * hd, C, "model.layers.%lld.self_attn.q_proj.weight", ll);
        WANT(qkv + NH * hd * C, NKV * hd, C, "model.layers.%lld.self_attn.k_proj.weight", ll);
        WANT(qkv + (NH + NKV) * hd * C, NKV * hd, C, "model.layers.%lld.self_attn.v_proj.weight", ll);
        WANT(p[P_ATTNPROJ] + l * C * NH * hd, C, NH * hd, "model.layers.%lld.self_attn.o_proj.weight", ll);
        if (c.qk_norm) {
            WANT(p[P_QNORM] + l * hd, hd, 0, "model.layers.%lld.self_attn.q_norm.weight", ll);
            WANT(p[P_KNORM] + l * hd, hd, 0, "model.layers.%lld.self_attn.k_norm.weight", ll);
        } else {  // unused by a Llama model: SPEC's init value
            for (int64_t i = 0; i < hd; i++) { p[P_QNORM][l * hd + i] = 1.0f; p[P_KNORM][l * hd + i] = 1.0f; }
        }
        WANT(p[P_LN2] + l * C, C, 0, "model.layers.%lld.post_attention_layernorm.weight", ll);
        WANT(fc, F, C, "model.layers.%lld.mlp.gate_proj.weight", ll);
        WANT(fc + F * C, F, C, "model.layers.%lld.mlp.up_proj.weight", ll);
        WANT(p[P_FCPROJ] + l * C * F, C, F, "model.layers.%lld.mlp.down_proj.weight", ll);
    }
    WANT(p[P_LNF], C, 0, "model.norm.weight");
    if (!c.tied_embeddings) { WANT(p[P_LMW], V, C, "lm_head.weight"); }
#undef WANT

    // the files: one model.safetensors, or the shards of the index
    HfShard* shards = (HfShard*)callocCheck(HF_MAX_SHARDS, sizeof(HfShard));
    int nshards = 0;
    char path[1200];
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    JsonFile idx;
    int have_index = access(path, F_OK) == 0;
    int* want_shard = (int*)mallocCheck((size_t)nwant * sizeof(int));  // from the index: the file of each tensor
    for (int i = 0; i < nwant; i++) { want_shard[i] = -1; }
    char index_path[1200];
    snprintf(index_path, sizeof(index_path), "%s", path);
    if (have_index) {
        json_file_load(&idx, index_path);
        int wm = json_get(&idx.j, 0, "weight_map");
        if (wm < 0 || idx.j.nodes[wm].type != JSON_OBJECT) { die("'%s': no 'weight_map' object", index_path); }
        for (int e = idx.j.nodes[wm].child; e >= 0; e = idx.j.nodes[e].next) {
            const char* name = json_key(&idx.j, e);
            if (idx.j.nodes[e].type != JSON_STRING) { die("'%s': weight_map entry '%.100s' is not a file name", index_path, name); }
            const char* file = json_str(&idx.j, e);
            if (file[0] == '\0' || strchr(file, '/') != NULL || strcmp(file, "..") == 0 || strlen(file) > 200) {
                die("'%s': weight_map file '%.100s' is not a plain file name in the folder", index_path, file);
            }
            snprintf(path, sizeof(path), "%s/%s", dir, file);
            int s = hf_shard_for(shards, nshards, path);
            if (s < 0) {
                if (nshards == HF_MAX_SHARDS) { die("'%s': more than %d shard files", index_path, HF_MAX_SHARDS); }
                s = nshards++;
                snprintf(shards[s].path, sizeof(shards[s].path), "%s", path);
            }
            int k = -1;
            if (c.tied_embeddings && strcmp(name, "lm_head.weight") == 0) { continue; }  // checked below
            for (int i = 0; i < nwant; i++) {
                if (strcmp(w[i].name, name) == 0) { k = i; }
            }
            if (k < 0) { die("'%s': unknown tensor '%.100s' for %s", index_path, name, c.qk_norm ? "Qwen3ForCausalLM" : "LlamaForCausalLM"); }
            want_shard[k] = s;
        }
    } else {
        snprintf(shards[0].path, sizeof(shards[0].path), "%s/model.safetensors", dir);
        nshards = 1;
    }
    for (int s = 0; s < nshards; s++) {
        st_open(&shards[s].st, shards[s].path);
        shards[s].used = (char*)callocCheck((size_t)shards[s].st.n + 1, 1);
    }
    for (int i = 0; i < nwant; i++) {
        const StTensor* t = NULL;
        int s = -1;
        if (have_index) {
            if (want_shard[i] < 0) { die("'%s': tensor '%s' is missing from the weight_map", index_path, w[i].name); }
            s = want_shard[i];
            t = st_find(&shards[s].st, w[i].name);
            if (t == NULL) { die("'%s': tensor '%s' is missing (the index says it is there)", shards[s].path, w[i].name); }
        } else {
            s = 0;
            t = st_find(&shards[0].st, w[i].name);
            if (t == NULL) { die("'%s': tensor '%s' is missing", shards[0].path, w[i].name); }
        }
        int ok = w[i].cols == 0 ? (t->ndim == 1 && t->shape[0] == w[i].rows)
                                : (t->ndim == 2 && t->shape[0] == w[i].rows && t->shape[1] == w[i].cols);
        if (!ok) {
            char got[200] = "";
            size_t n = 0;
            for (int d = 0; d < t->ndim && n < 150; d++) { n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%lld", d ? ", " : "", (long long)t->shape[d]); }
            if (w[i].cols == 0) {
                die("'%s': tensor '%s' has shape [%s], the config needs [%lld]", shards[s].path, w[i].name, got, (long long)w[i].rows);
            }
            die("'%s': tensor '%s' has shape [%s], the config needs [%lld, %lld]", shards[s].path, w[i].name, got,
                (long long)w[i].rows, (long long)w[i].cols);
        }
        st_read_f32(&shards[s].st, t, w[i].dst);
        shards[s].used[t - shards[s].st.tensors] = 1;
        w[i].found = 1;
    }
    // a tied model may store lm_head.weight as a copy of the embedding: allowed when identical
    for (int s = 0; s < nshards; s++) {
        for (int k = 0; k < shards[s].st.n; k++) {
            if (shards[s].used[k]) { continue; }
            const StTensor* t = &shards[s].st.tensors[k];
            if (c.tied_embeddings && strcmp(t->name, "lm_head.weight") == 0 && t->ndim == 2 && t->shape[0] == V &&
                t->shape[1] == C) {
                float* tmp = (float*)mallocCheck((size_t)(V * C) * sizeof(float));
                st_read_f32(&shards[s].st, t, tmp);
                if (memcmp(tmp, p[P_WTE], (size_t)(V * C) * sizeof(float)) != 0) {
                    die("'%s': tie_word_embeddings is true but lm_head.weight differs from model.embed_tokens.weight", shards[s].path);
                }
                free(tmp);
                continue;
            }
            die("'%s': unknown tensor '%.100s' for %s", shards[s].path, t->name, c.qk_norm ? "Qwen3ForCausalLM" : "LlamaForCausalLM");
        }
    }
    for (int s = 0; s < nshards; s++) {
        st_close(&shards[s].st);
        free(shards[s].used);
    }
    if (have_index) {
        json_free(&idx.j);
        free(idx.text);
    }
    free(shards);
    free(want_shard);
    free(w);
}

// hf_is_folder: path is a directory with a config.json (a Hugging Face model folder)
static int hf_is_folder(const char* path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) { return 0; }
    char p[1200];
    snprintf(p, sizeof(p), "%s/config.json", path);
    return access(p, F_OK) == 0;
}

#endif // LLMC_HF_IMPORT_H
