/*
infer.cu: text in, text out on the GPU, with a KV cache. Loads a model checkpoint from
either trainer (fp32 or bf16; weights become bf16 on the device), encodes the prompt with
the GPT-2 tokenizer, runs the prompt in one pass (prefill: the trainer's kernels, cuBLASLt
matmuls and the tiled FlashAttention of llmc/attention.cuh), then decodes one token per row
per step from a bf16 cache of the n_kv_head heads, and streams the text.

The decode step (llmc/decode.cuh) is 5 kernels per layer plus 2 for the head and the
sampler: fused RMSNorm + matvec (qkv), QK-norm + RoPE + cache append + split-K attention,
matvec + residual add (attn proj), fused RMSNorm + matvec + SwiGLU (fc), matvec + residual
add (fc proj), RMSNorm + lm_head matvec + soft-cap, and sampling on the device, which also
writes the next step's embedding and position. Positions, RNG states and the output ring
live in device memory, so one step is captured as a CUDA graph and replayed; the host
only copies back the sampled ids, one step behind the GPU, so the GPU never waits for it.

    make infer
    ./infer -e out/model_00000200.bin -p "The meaning of life is" -g 64
    ./infer -e model.bin -pf prompts.txt -st 0      (one prompt per line, one batch)
    ./infer -e model.bin -it 1                      (prompts from standard input)
    ./infer --help

The flags are infer_cpu's (llmc/infer_args.h) plus -b (rows per prompt) and -gr (graph on/off).
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llmc/checkpoint.h"
#include "llmc/config.h"
#include "llmc/gpt_cpu.h"  // rope_init: the same RoPE tables as the CPU model
#include "llmc/infer_args.h"
#include "llmc/sampler.h"
#include "llmc/tokenizer.h"
#include "llmc/utils.h"
#include "llmc/cuda_common.cuh"
#include "llmc/attention.cuh"
#include "llmc/decode.cuh"
#include "llmc/encoder.cuh"
#include "llmc/matmul.cuh"
#include "llmc/qknorm_rope.cuh"
#include "llmc/rmsnorm.cuh"
#include "llmc/swiglu.cuh"

// ----------------------------------------------------------------------------
// the model on the device: bf16 parameters in the checkpoint's order

typedef struct {
    bf16* wte;          // (Vp, C)
    bf16* ln1_w;        // (L, C)
    bf16* qkv_w;        // (L, QKV, C)
    bf16* q_norm_w;     // (L, hd)
    bf16* k_norm_w;     // (L, hd)
    bf16* attn_proj_w;  // (L, C, NH hd)
    bf16* ln2_w;        // (L, C)
    bf16* fc_w;         // (L, 2F, C)
    bf16* fc_proj_w;    // (L, C, F)
    bf16* lnf_w;        // (C,)
    bf16* lm_w;         // (Vp, C): wte when tied
} DeviceParams;

typedef struct {
    GPTConfig config;
    ParamLayout layout;
    DeviceParams params;
    bf16* params_memory;
    float* rope_cos;  // (max_seq_len, hd/2)
    float* rope_sin;
    int num_sms;
    MatmulContext mm;
    cudaStream_t stream;
} GPUModel;

// gpu_model_check: the shapes the GPU kernels are built for (every preset passes)
static void gpu_model_check(const GPTConfig* c, const char* path) {
    int hd = c->n_embd / c->n_head;
    if (hd != 64 && hd != 128) {
        die("'%s': head dim %d; the GPU kernels support n_embd / n_head = 64 or 128 (use infer_cpu)", path, hd);
    }
    if (c->n_embd % 8 != 0 || c->ffn_dim % 8 != 0) {
        die("'%s': n_embd %d and ffn_dim %d must be multiples of 8 for the GPU kernels (use infer_cpu)", path,
            c->n_embd, c->ffn_dim);
    }
}

// gpu_model_load: reads and validates the checkpoint (header, version, length), converts
// the parameters to bf16 on the host in chunks, and copies them to the device once
static void gpu_model_load(GPUModel* m, const char* path) {
    int dtype = DTYPE_FP32;
    const int hf = hf_is_folder(path);  // a Hugging Face folder (llmc/hf_import.h)
    FILE* fp = NULL;
    if (hf) { hf_read_config(path, &m->config); } else { fp = checkpoint_read_config(path, &m->config, &dtype); }
    const GPTConfig* c = &m->config;
    gpu_model_check(c, path);
    param_layout_init(&m->layout, c);
    size_t n = m->layout.num_parameters;
    uint16_t* host = (uint16_t*)mallocCheck(n * sizeof(uint16_t));
    if (hf) {
        float* f32 = (float*)mallocCheck(n * sizeof(float));
        hf_read_params(path, c, f32);
        for (size_t i = 0; i < n; i++) { host[i] = f32_to_bf16_rne(f32[i]); }
        free(f32);
    } else if (dtype == DTYPE_BF16) {
        freadCheck(host, sizeof(uint16_t), n, fp, path);
    } else {
        const size_t CH = (size_t)1 << 20;
        float* buf = (float*)mallocCheck(CH * sizeof(float));
        for (size_t i = 0; i < n; i += CH) {
            size_t k = n - i < CH ? n - i : CH;
            freadCheck(buf, sizeof(float), k, fp, path);
            for (size_t j = 0; j < k; j++) { host[i + j] = f32_to_bf16_rne(buf[j]); }
        }
        free(buf);
    }
    if (fp != NULL) { fcloseCheck(fp, path); }
    cudaCheck(cudaMalloc(&m->params_memory, n * sizeof(bf16)));
    cudaCheck(cudaMemcpy(m->params_memory, host, n * sizeof(bf16), cudaMemcpyHostToDevice));
    free(host);
    bf16** ptrs[NUM_PARAMETER_TENSORS] = {&m->params.wte, &m->params.ln1_w, &m->params.qkv_w, &m->params.q_norm_w,
                                          &m->params.k_norm_w, &m->params.attn_proj_w, &m->params.ln2_w,
                                          &m->params.fc_w, &m->params.fc_proj_w, &m->params.lnf_w, &m->params.lm_w};
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { *ptrs[i] = m->params_memory + m->layout.offsets[i]; }
    if (c->tied_embeddings) { m->params.lm_w = m->params.wte; }
    // with C, hd and F multiples of 8 every tensor and every row starts 16-byte aligned
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        if (!is_aligned16(*ptrs[i])) { die("internal: parameter tensor %s is not 16-byte aligned", PARAM_NAMES[i]); }
    }
    int hd = c->n_embd / c->n_head, half = hd / 2;
    float* cs = (float*)mallocCheck((size_t)c->max_seq_len * half * sizeof(float));
    float* sn = (float*)mallocCheck((size_t)c->max_seq_len * half * sizeof(float));
    rope_init(cs, sn, c->max_seq_len, hd, c->rope_theta);
    cudaCheck(cudaMalloc(&m->rope_cos, (size_t)c->max_seq_len * half * sizeof(float)));
    cudaCheck(cudaMalloc(&m->rope_sin, (size_t)c->max_seq_len * half * sizeof(float)));
    cudaCheck(cudaMemcpy(m->rope_cos, cs, (size_t)c->max_seq_len * half * sizeof(float), cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(m->rope_sin, sn, (size_t)c->max_seq_len * half * sizeof(float), cudaMemcpyHostToDevice));
    free(cs);
    free(sn);
    int dev;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&m->num_sms, cudaDevAttrMultiProcessorCount, dev));
    int optin;
    cudaCheck(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    matvec_setup((size_t)optin);
    int kmax = c->n_embd > c->ffn_dim ? c->n_embd : c->ffn_dim;
    if ((size_t)MATVEC_MAX_B * kmax * sizeof(float) > (size_t)optin) {
        die("'%s': ffn_dim %d is too wide for the decode kernels' shared memory (%d bytes)", path, kmax, optin);
    }
    matmul_context_init(&m->mm, MATMUL_WORKSPACE_BYTES);
    cudaCheck(cudaStreamCreate(&m->stream));
}

static void gpu_model_free(GPUModel* m) {
    matmul_context_free(&m->mm);
    cudaCheck(cudaStreamDestroy(m->stream));
    cudaCheck(cudaFree(m->params_memory));
    cudaCheck(cudaFree(m->rope_cos));
    cudaCheck(cudaFree(m->rope_sin));
}

// ----------------------------------------------------------------------------
// the state of B rows being sampled: the KV cache, the decode activations, and the
// prefill scratch (one row's prompt at a time, up to Tp tokens)

typedef struct {
    int B, max_T, chunk, S, max_steps, Tp;
    float temperature, top_p;
    int top_k;
    bf16* kcache;      // (L, B, max_T, NKV, hd)
    bf16* vcache;      // (L, B, max_T, NKV, hd)
    float* x;          // (B, C) residual stream, fp32
    float* qkv;        // (B, QKV)
    float* y;          // (B, NH hd) attention output
    float* branch;     // (B, C) attention branch (parallel block only)
    float* sw;         // (B, F) SwiGLU output
    float* logits;     // (B, Vp)
    float* probs;      // (B, Vp) sampling scratch
    float* part_acc;   // (B, NH, S, hd) split-K partials
    float* part_ml;    // (B, NH, S, 2)
    int* counters;     // (B, NKV)
    int* pos;          // (B,) position of the token in x
    int* gen;          // (B,) tokens sampled so far
    int* out_tokens;   // (max_steps, B)
    uint64_t* rng;     // (B,)
    // prefill scratch, bf16 unless noted
    int* p_tokens;     // (Tp,)
    bf16 *p_res, *p_alt, *p_ln, *p_branch;  // (Tp, C)
    bf16* p_qkv;       // (Tp, QKV)
    bf16* p_q;         // (Tp, NH hd)
    bf16* p_atty;      // (Tp, NH hd)
    bf16* p_fch;       // (Tp, 2F)
    bf16* p_sw;        // (Tp, F)
    float* p_rstd;     // (Tp,)
    float* p_qkrstd;   // (Tp, NH + NKV)
    float* p_lse;      // (NH, Tp)
    cudaGraphExec_t graph;
    int have_graph;
} DecodeState;

static void* device_alloc(size_t bytes) {
    void* p;
    cudaCheck(cudaMalloc(&p, bytes > 0 ? bytes : 16));
    return p;
}

static size_t kv_cache_bytes(const GPTConfig* c, int B, int max_T) {
    size_t hd = c->n_embd / c->n_head;
    return 2 * (size_t)c->n_layer * B * max_T * c->n_kv_head * hd * sizeof(bf16);
}

static void decode_state_init(DecodeState* st, const GPUModel* m, int B, int max_T, int Tp, int max_steps,
                              uint64_t seed, float temperature, int top_k, float top_p) {
    const GPTConfig* c = &m->config;
    size_t L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    size_t QKV = (NH + 2 * NKV) * hd, Vp = c->padded_vocab_size;
    memset(st, 0, sizeof(*st));
    st->B = B;
    st->max_T = max_T;
    st->chunk = attention_decode_chunk(max_T);
    st->S = ceil_div((size_t)max_T, st->chunk);
    st->max_steps = max_steps;
    st->Tp = Tp;
    st->temperature = temperature;
    st->top_k = top_k;
    st->top_p = top_p;
    size_t cache = L * B * max_T * NKV * hd;
    st->kcache = (bf16*)device_alloc(cache * sizeof(bf16));
    st->vcache = (bf16*)device_alloc(cache * sizeof(bf16));
    st->x = (float*)device_alloc(B * C * sizeof(float));
    st->qkv = (float*)device_alloc(B * QKV * sizeof(float));
    st->y = (float*)device_alloc(B * NH * hd * sizeof(float));
    st->branch = (float*)device_alloc(B * C * sizeof(float));
    st->sw = (float*)device_alloc(B * F * sizeof(float));
    st->logits = (float*)device_alloc(B * Vp * sizeof(float));
    st->probs = (float*)device_alloc(B * Vp * sizeof(float));
    st->part_acc = (float*)device_alloc(B * NH * st->S * hd * sizeof(float));
    st->part_ml = (float*)device_alloc(B * NH * st->S * 2 * sizeof(float));
    st->counters = (int*)device_alloc(B * NKV * sizeof(int));
    cudaCheck(cudaMemset(st->counters, 0, B * NKV * sizeof(int)));
    st->pos = (int*)device_alloc(B * sizeof(int));
    st->gen = (int*)device_alloc(B * sizeof(int));
    st->out_tokens = (int*)device_alloc((size_t)max_steps * B * sizeof(int));
    st->rng = (uint64_t*)device_alloc(B * sizeof(uint64_t));
    uint64_t* r = (uint64_t*)mallocCheck(B * sizeof(uint64_t));
    for (int b = 0; b < B; b++) { r[b] = seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)b); }  // row 0: the seed itself
    cudaCheck(cudaMemcpy(st->rng, r, B * sizeof(uint64_t), cudaMemcpyHostToDevice));
    free(r);
    size_t T = Tp;
    st->p_tokens = (int*)device_alloc(T * sizeof(int));
    st->p_res = (bf16*)device_alloc(T * C * sizeof(bf16));
    st->p_alt = (bf16*)device_alloc(T * C * sizeof(bf16));
    st->p_ln = (bf16*)device_alloc(T * C * sizeof(bf16));
    st->p_branch = (bf16*)device_alloc(T * C * sizeof(bf16));
    st->p_qkv = (bf16*)device_alloc(T * QKV * sizeof(bf16));
    st->p_q = (bf16*)device_alloc(T * NH * hd * sizeof(bf16));
    st->p_atty = (bf16*)device_alloc(T * NH * hd * sizeof(bf16));
    st->p_fch = (bf16*)device_alloc(T * 2 * F * sizeof(bf16));
    st->p_sw = (bf16*)device_alloc(T * F * sizeof(bf16));
    st->p_rstd = (float*)device_alloc(T * sizeof(float));
    st->p_qkrstd = (float*)device_alloc(T * (NH + NKV) * sizeof(float));
    st->p_lse = (float*)device_alloc(NH * T * sizeof(float));
    st->have_graph = 0;
}

static void decode_state_free(DecodeState* st) {
    if (st->have_graph) { cudaCheck(cudaGraphExecDestroy(st->graph)); }
    void* ptrs[] = {st->kcache, st->vcache, st->x, st->qkv, st->y, st->branch, st->sw, st->logits, st->probs,
                    st->part_acc, st->part_ml, st->counters, st->pos, st->gen, st->out_tokens, st->rng,
                    st->p_tokens, st->p_res, st->p_alt, st->p_ln, st->p_branch, st->p_qkv, st->p_q, st->p_atty,
                    st->p_fch, st->p_sw, st->p_rstd, st->p_qkrstd, st->p_lse};
    for (size_t i = 0; i < sizeof(ptrs) / sizeof(ptrs[0]); i++) { cudaCheck(cudaFree(ptrs[i])); }
}

// ----------------------------------------------------------------------------
// prefill: row b's prompt tokens (T,) at positions 0..T-1 through every layer with the
// trainer's kernels; keys (normalised, rotated) and values go straight into row b's cache.
// Returns the final residual stream (T, C) bf16 (before ln_f); x[b] gets its last row.
static const bf16* prefill_row(const GPUModel* m, DecodeState* st, int b, const int* tokens, int T) {
    const GPTConfig* c = &m->config;
    const DeviceParams* p = &m->params;
    int L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    int QKV = (NH + 2 * NKV) * hd;
    float eps = c->norm_eps;
    cudaStream_t s = m->stream;
    MatmulContext* mm = (MatmulContext*)&m->mm;
    if (T < 1 || T > st->Tp || T > st->max_T) { die("internal: prefill of %d tokens (scratch %d)", T, st->Tp); }
    cudaCheck(cudaMemcpyAsync(st->p_tokens, tokens, T * sizeof(int), cudaMemcpyHostToDevice, s));
    bf16 *res = st->p_res, *alt = st->p_alt;
    encoder_forward(res, st->p_tokens, p->wte, T, C, s);
    rmsnorm_forward(st->p_ln, st->p_rstd, res, p->ln1_w, T, C, eps, s);
    for (int l = 0; l < L; l++) {
        size_t row = ((size_t)l * st->B + b) * st->max_T * NKV * hd;  // this layer's cache, row b, position 0
        bf16* kc = st->kcache + row;
        bf16* vc = st->vcache + row;
        matmul_forward(mm, st->p_qkv, st->p_ln, p->qkv_w + (size_t)l * QKV * C, T, C, QKV, 0, s);
        qknorm_rope_forward(st->p_q, kc, st->p_qkrstd, st->p_qkv, p->q_norm_w + (size_t)l * hd,
                            p->k_norm_w + (size_t)l * hd, m->rope_cos, m->rope_sin, 1, T, 0, NH, NKV, hd, c->qk_norm,
                            eps, s);
        const bf16* v = st->p_qkv + (size_t)(NH + NKV) * hd;
        cudaCheck(cudaMemcpy2DAsync(vc, (size_t)NKV * hd * sizeof(bf16), v, (size_t)QKV * sizeof(bf16),
                                    (size_t)NKV * hd * sizeof(bf16), T, cudaMemcpyDeviceToDevice, s));
        attention_forward(st->p_atty, st->p_lse, st->p_q, kc, v, QKV, 1, T, NH, NKV, hd, s);
        matmul_forward(mm, st->p_branch, st->p_atty, p->attn_proj_w + (size_t)l * C * NH * hd, T, NH * hd, C, 0, s);
        if (!c->parallel_block) {
            rmsnorm_residual_forward(alt, st->p_ln, st->p_rstd, res, st->p_branch, p->ln2_w + (size_t)l * C, T, C,
                                     eps, s);
            bf16* tmp = res; res = alt; alt = tmp;
            matmul_forward(mm, st->p_fch, st->p_ln, p->fc_w + (size_t)l * 2 * F * C, T, C, 2 * F, 0, s);
            swiglu_forward(st->p_sw, st->p_fch, T, F, s);
            matmul_forward(mm, st->p_branch, st->p_sw, p->fc_proj_w + (size_t)l * C * F, T, F, C, 0, s);
        } else {  // x + attn(n(x)) + mlp(n(x)): p_ln still holds ln1(x); the MLP adds onto the attention branch
            matmul_forward(mm, st->p_fch, st->p_ln, p->fc_w + (size_t)l * 2 * F * C, T, C, 2 * F, 0, s);
            swiglu_forward(st->p_sw, st->p_fch, T, F, s);
            matmul_forward(mm, st->p_branch, st->p_sw, p->fc_proj_w + (size_t)l * C * F, T, F, C, 1, s);
        }
        const bf16* next_w = l + 1 < L ? p->ln1_w + (size_t)(l + 1) * C : p->lnf_w;
        rmsnorm_residual_forward(alt, st->p_ln, st->p_rstd, res, st->p_branch, next_w, T, C, eps, s);
        bf16* tmp = res; res = alt; alt = tmp;
    }
    bf16_to_f32_forward(st->x + (size_t)b * C, res + (size_t)(T - 1) * C, C, s);
    return res;
}

// head: logits (B, Vp) = softcap(rmsnorm(x) * lnf_w @ lm_w^T), x (B, C) fp32
static void head_forward(const GPUModel* m, DecodeState* st) {
    const GPTConfig* c = &m->config;
    matvec_forward(st->logits, st->x, m->params.lm_w, m->params.lnf_w, NULL, st->B, c->padded_vocab_size,
                   c->n_embd, MV_SOFTCAP, c->norm_eps, c->logit_softcap, m->num_sms, m->stream);
}

static void sample_step(const GPUModel* m, DecodeState* st) {
    const GPTConfig* c = &m->config;
    sample_forward(st->out_tokens, st->gen, st->pos, st->x, st->rng, st->probs, st->logits, m->params.wte, st->B,
                   c->vocab_size, c->padded_vocab_size, c->n_embd, st->temperature, st->top_k, st->top_p, m->stream);
}

// decode_layers: the token in x (B, C) at positions pos (B,) through every layer; its keys and
// values are appended to the cache; x becomes the final residual stream
static void decode_layers(const GPUModel* m, DecodeState* st) {
    const GPTConfig* c = &m->config;
    const DeviceParams* p = &m->params;
    int L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    int QKV = (NH + 2 * NKV) * hd, B = st->B, ns = m->num_sms;
    float eps = c->norm_eps;
    cudaStream_t s = m->stream;
    for (int l = 0; l < L; l++) {
        size_t layer = (size_t)l * B * st->max_T * NKV * hd;
        const bf16* norm1 = p->ln1_w + (size_t)l * C;
        matvec_forward(st->qkv, st->x, p->qkv_w + (size_t)l * QKV * C, norm1, NULL, B, QKV, C, MV_STORE, eps, 0.0f,
                       ns, s);
        attention_decode_forward(st->y, st->part_acc, st->part_ml, st->counters, st->kcache + layer,
                                 st->vcache + layer, st->qkv, p->q_norm_w + (size_t)l * hd,
                                 p->k_norm_w + (size_t)l * hd, m->rope_cos, m->rope_sin, st->pos, B, st->max_T, NH,
                                 NKV, hd, st->chunk, c->qk_norm, eps, s);
        const bf16* proj = p->attn_proj_w + (size_t)l * C * NH * hd;
        const bf16* fc = p->fc_w + (size_t)l * 2 * F * C;
        const bf16* fcp = p->fc_proj_w + (size_t)l * C * F;
        if (!c->parallel_block) {
            matvec_forward(st->x, st->y, proj, NULL, NULL, B, C, NH * hd, MV_ACCUM, eps, 0.0f, ns, s);
            matvec_forward(st->sw, st->x, fc, p->ln2_w + (size_t)l * C, NULL, B, F, C, MV_SWIGLU, eps, 0.0f, ns, s);
            matvec_forward(st->x, st->sw, fcp, NULL, NULL, B, C, F, MV_ACCUM, eps, 0.0f, ns, s);
        } else {  // both branches read ln1(x) of the layer's input x; x += attn + mlp at the end
            matvec_forward(st->branch, st->y, proj, NULL, NULL, B, C, NH * hd, MV_STORE, eps, 0.0f, ns, s);
            matvec_forward(st->sw, st->x, fc, norm1, NULL, B, F, C, MV_SWIGLU, eps, 0.0f, ns, s);
            matvec_forward(st->x, st->sw, fcp, NULL, st->branch, B, C, F, MV_ACCUM, eps, 0.0f, ns, s);
        }
    }
}

// decode_step: one token per row: layers, head, sampling (what the CUDA graph holds)
static void decode_step(const GPUModel* m, DecodeState* st) {
    decode_layers(m, st);
    head_forward(m, st);
    sample_step(m, st);
}

static void decode_step_launch(const GPUModel* m, DecodeState* st, int use_graph) {
    if (!use_graph) {
        decode_step(m, st);
        return;
    }
    if (!st->have_graph) {
        cudaGraph_t g;
        cudaCheck(cudaStreamBeginCapture(m->stream, cudaStreamCaptureModeThreadLocal));
        decode_step(m, st);
        cudaCheck(cudaStreamEndCapture(m->stream, &g));
        cudaCheck(cudaGraphInstantiate(&st->graph, g, 0));
        cudaCheck(cudaGraphDestroy(g));
        st->have_graph = 1;
    }
    cudaCheck(cudaGraphLaunch(st->graph, m->stream));
}

// ----------------------------------------------------------------------------
// running a batch of prompts

typedef struct {
    long long prompt_tokens, new_tokens;
    long long steps;      // decode steps run (the first token of each prompt comes from the prefill)
    long long row_steps;  // steps times rows
    double prefill_s, decode_s;
} InferStats;

typedef struct {
    int** tokens;  // (n,) arrays of prompt ids
    int* lens;     // (n,)
    char** texts;  // (n,) the prompts as given (printed before the text unless -q)
    int n;
} PromptSet;

// run_batch: the prompts of ps, each as a.batch rows (B = ps->n * a.batch == st->B); text
// streams to stdout when B == 1, else each row's text is printed when the batch is done
static void run_batch(const GPUModel* m, DecodeState* st, const Tokenizer* tok, const InferArgs* a,
                      const PromptSet* ps, InferStats* stats) {
    int B = st->B, steps = a->max_new;
    cudaStream_t s = m->stream;
    cudaEvent_t t_start, t_prefill, t_end;  // GPU-side timing: prefill, then the decode steps
    cudaCheck(cudaEventCreate(&t_start));
    cudaCheck(cudaEventCreate(&t_prefill));
    cudaCheck(cudaEventCreate(&t_end));
    cudaCheck(cudaEventRecord(t_start, s));
    int* last_pos = (int*)mallocCheck(B * sizeof(int));
    for (int b = 0; b < B; b++) {
        int i = b / a->batch;
        prefill_row(m, st, b, ps->tokens[i], ps->lens[i]);
        last_pos[b] = ps->lens[i] - 1;
        stats->prompt_tokens += ps->lens[i];
    }
    cudaCheck(cudaMemcpyAsync(st->pos, last_pos, B * sizeof(int), cudaMemcpyHostToDevice, s));
    cudaCheck(cudaMemsetAsync(st->gen, 0, B * sizeof(int), s));
    head_forward(m, st);
    sample_step(m, st);  // token 0 of every row, from the prompt's last position
    cudaCheck(cudaEventRecord(t_prefill, s));
    int* h_tok;
    cudaCheck(cudaMallocHost(&h_tok, (size_t)steps * B * sizeof(int)));
    cudaEvent_t ev[2];
    cudaCheck(cudaEventCreateWithFlags(&ev[0], cudaEventDisableTiming));
    cudaCheck(cudaEventCreateWithFlags(&ev[1], cudaEventDisableTiming));
    cudaCheck(cudaMemcpyAsync(h_tok, st->out_tokens, B * sizeof(int), cudaMemcpyDeviceToHost, s));
    cudaCheck(cudaEventRecord(ev[0], s));
    int* done = (int*)callocCheck(B, sizeof(int));
    Utf8Stream* us = (Utf8Stream*)mallocCheck(B * sizeof(Utf8Stream));
    char** text = (char**)callocCheck(B, sizeof(char*));
    size_t* text_len = (size_t*)callocCheck(B, sizeof(size_t));
    FILE** outs = (FILE**)mallocCheck(B * sizeof(FILE*));
    for (int b = 0; b < B; b++) {
        utf8_stream_init(&us[b]);
        outs[b] = B == 1 ? stdout : open_memstream(&text[b], &text_len[b]);
        if (outs[b] == NULL) { die("open_memstream failed"); }
        if (B > 1 && !a->quiet) { fputs(ps->texts[b / a->batch], outs[b]); }
    }
    int launched = 0, ndone = 0;
    for (int i = 1; i <= steps; i++) {
        if (i < steps) {  // step i runs on the GPU while the host prints token i - 1
            decode_step_launch(m, st, a->graph);
            cudaCheck(cudaMemcpyAsync(h_tok + (size_t)i * B, st->out_tokens + (size_t)i * B, B * sizeof(int),
                                      cudaMemcpyDeviceToHost, s));
            cudaCheck(cudaEventRecord(ev[i % 2], s));
            launched++;
        }
        cudaCheck(cudaEventSynchronize(ev[(i - 1) % 2]));
        for (int b = 0; b < B; b++) {
            if (done[b]) { continue; }
            int id = h_tok[(size_t)(i - 1) * B + b];
            stats->new_tokens++;
            if (a->stop_eot && (uint32_t)id == tok->eot_token) {
                done[b] = 1;
                ndone++;
                continue;
            }
            size_t blen;
            const unsigned char* bytes = tokenizer_decode(tok, (uint32_t)id, &blen);
            utf8_stream_write(&us[b], bytes, blen, outs[b]);
        }
        if (B == 1) { fflush(stdout); }
        if (ndone == B) { break; }
    }
    cudaCheck(cudaEventRecord(t_end, s));
    cudaCheck(cudaStreamSynchronize(s));
    float pre_ms = 0.0f, dec_ms = 0.0f;
    cudaCheck(cudaEventElapsedTime(&pre_ms, t_start, t_prefill));
    cudaCheck(cudaEventElapsedTime(&dec_ms, t_prefill, t_end));
    stats->prefill_s += pre_ms / 1000.0;
    stats->decode_s += dec_ms / 1000.0;
    stats->steps += launched;
    stats->row_steps += (long long)launched * B;
    for (int b = 0; b < B; b++) {
        utf8_stream_flush(&us[b], outs[b]);
        if (B == 1) {
            printf("\n");
        } else {
            fclose(outs[b]);
            fwrite(text[b], 1, text_len[b], stdout);
            printf("\n");
            free(text[b]);
        }
    }
    fflush(stdout);
    cudaCheck(cudaEventDestroy(ev[0]));
    cudaCheck(cudaEventDestroy(ev[1]));
    cudaCheck(cudaEventDestroy(t_start));
    cudaCheck(cudaEventDestroy(t_prefill));
    cudaCheck(cudaEventDestroy(t_end));
    cudaCheck(cudaFreeHost(h_tok));
    free(last_pos); free(done); free(us); free(text); free(text_len); free(outs);
}

static void prompt_set_add(PromptSet* ps, const Tokenizer* tok, const InferArgs* a, const char* text, size_t len,
                           int max_T) {
    int n;
    int* ids = infer_encode_prompt(tok, text, len, max_T, a->max_new, a->truncate, &n);
    ps->tokens = (int**)reallocCheck(ps->tokens, (ps->n + 1) * sizeof(int*));
    ps->lens = (int*)reallocCheck(ps->lens, (ps->n + 1) * sizeof(int));
    ps->texts = (char**)reallocCheck(ps->texts, (ps->n + 1) * sizeof(char*));
    ps->tokens[ps->n] = ids;
    ps->lens[ps->n] = n;
    ps->texts[ps->n] = strdup(text);
    ps->n++;
}

static void prompt_set_clear(PromptSet* ps) {
    for (int i = 0; i < ps->n; i++) { free(ps->tokens[i]); free(ps->texts[i]); }
    free(ps->tokens); free(ps->lens); free(ps->texts);
    memset(ps, 0, sizeof(*ps));
}

static void print_memory(const GPUModel* m, const InferArgs* a, int B, int max_T) {
    const GPTConfig* c = &m->config;
    fprintf(stderr, "model %s: %zu parameters | weights %.1f MB (bf16) | KV cache %.1f MB (batch %d, %d positions)\n",
            a->model, m->layout.num_parameters, m->layout.num_parameters * 2.0 / 1e6, kv_cache_bytes(c, B, max_T) / 1e6,
            B, max_T);
}

#ifndef TESTING
int main(int argc, char** argv) {
    InferArgs a;
    if (infer_args_parse(&a, argc, argv, 1)) {
        infer_usage(argv[0], 1);
        return 0;
    }
    const char* bad = sampler_validate(a.temperature, a.top_k, a.top_p);
    if (bad != NULL) { die("sampling: %s", bad); }
    GPUModel m;
    gpu_model_load(&m, a.model);
    const GPTConfig* c = &m.config;
    Tokenizer tok;
    infer_open_tokenizer(&tok, &a, c);
    InferStats stats = {0, 0, 0, 0, 0.0, 0.0};
    DecodeState st;
    PromptSet ps;
    memset(&ps, 0, sizeof(ps));
    if (!a.interactive) {
        if (a.prompt != NULL) {
            prompt_set_add(&ps, &tok, &a, a.prompt, strlen(a.prompt), c->max_seq_len);
        } else {
            FILE* fp = fopenCheck(a.prompt_file, "rb");
            char* line = NULL;
            size_t lcap = 0;
            ssize_t got;
            while ((got = getline(&line, &lcap, fp)) != -1) {
                while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) { line[--got] = '\0'; }
                if (got > 0) { prompt_set_add(&ps, &tok, &a, line, (size_t)got, c->max_seq_len); }
            }
            free(line);
            fclose(fp);
            if (ps.n == 0) { die("'%s' holds no prompts", a.prompt_file); }
        }
        int longest = 0;
        for (int i = 0; i < ps.n; i++) { longest = ps.lens[i] > longest ? ps.lens[i] : longest; }
        int B = ps.n * a.batch, max_T = longest + a.max_new;  // <= max_seq_len: checked per prompt
        if (!a.quiet) { print_memory(&m, &a, B, max_T); }
        decode_state_init(&st, &m, B, max_T, longest, a.max_new, a.seed, a.temperature, a.top_k, a.top_p);
        if (B == 1 && !a.quiet) { printf("%s", ps.texts[0]); }
        run_batch(&m, &st, &tok, &a, &ps, &stats);
        prompt_set_clear(&ps);
    } else {
        int B = a.batch, max_T = c->max_seq_len;
        if (!a.quiet) { print_memory(&m, &a, B, max_T); }
        decode_state_init(&st, &m, B, max_T, max_T - a.max_new, a.max_new, a.seed, a.temperature, a.top_k, a.top_p);
        char* line = NULL;
        size_t lcap = 0;
        ssize_t got;
        fprintf(stderr, "> ");
        while ((got = getline(&line, &lcap, stdin)) != -1) {
            while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) { line[--got] = '\0'; }
            if (got > 0) {
                prompt_set_add(&ps, &tok, &a, line, (size_t)got, max_T);
                if (B == 1 && !a.quiet) { printf("%s", line); }
                run_batch(&m, &st, &tok, &a, &ps, &stats);
                prompt_set_clear(&ps);
            }
            fprintf(stderr, "> ");
        }
        free(line);
    }
    fflush(stdout);  // the text first, then the summary on stderr
    if (!a.quiet) {
        double ms_tok = stats.steps > 0 ? 1000.0 * stats.decode_s / stats.steps : 0.0;
        double wbw = stats.decode_s > 0 ? m.layout.num_parameters * 2.0 * stats.steps / stats.decode_s / 1e9 : 0.0;
        double tps = stats.decode_s > 0 ? stats.row_steps / stats.decode_s : 0.0;
        fprintf(stderr, "prompt tokens %lld | generated %lld | prefill %.1f ms | %.3f ms/token | %.1f tokens/s | weight bandwidth %.1f GB/s\n",
                stats.prompt_tokens, stats.new_tokens, 1000.0 * stats.prefill_s, ms_tok, tps, wbw);
    }
    decode_state_free(&st);
    tokenizer_free(&tok);
    gpu_model_free(&m);
    return 0;
}
#endif
