/*
 * train_gpt.cu: the GPU trainer. The model of SPEC.md (RMSNorm, QK-norm, RoPE,
 * grouped-query causal attention, SwiGLU, a soft-capped head with cross-entropy +
 * z-loss) in mixed precision on one NVIDIA GPU: bf16 weights and activations,
 * fp32 accumulation, fp32 master weights and AdamW state, the bf16 weights written
 * from the master with seeded stochastic rounding. Same command line, presets,
 * files, data loader, schedules and logging as train_gpt.c, through the shared
 * llmc/ headers; the layers are the kernels of the llmc .cuh headers, every matmul goes
 * through cuBLASLt (llmc/matmul.cuh).
 *
 *   make train_gpt_cuda
 *   ./train_gpt_cuda -e d12 -b 16 -t 1024 -x 1000    (every flag: --help)
 *   ./train_gpt_cuda --plan -e d12 -b 16 -t 1024     (the memory plan; needs no GPU)
 *
 * Deterministic: every kernel sums in a fixed order (no atomics), so two runs
 * with the same flags give bit-identical losses, and a resumed run continues
 * bit-identically (the bf16 weights are rebuilt from the fp32 master with the
 * last step's rounding seed). -r 1 recomputes the normed inputs and q, k in the
 * backward instead of keeping them per layer.
 *
 * Memory: the (B, T, Vp) logits never exist. The head runs over chunks of rows:
 * one bf16 (chunk, Vp) buffer is the lm_head output, the fused classifier's
 * in-place gradient, and the input of the two lm_head backward matmuls; it
 * shares its memory with the per-layer backward buffers, which are not live at
 * the same time. The SwiGLU output is recomputed in the backward, not stored.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "llmc/checkpoint.h"
#include "llmc/config.h"
#include "llmc/dataloader.h"
#include "llmc/gpt_cpu.h"  // the SPEC init, checkpoint loading and RoPE tables (host side)
#include "llmc/logger.h"
#include "llmc/rand.h"
#include "llmc/sampler.h"
#include "llmc/schedule.h"
#include "llmc/tokenizer.h"
#include "llmc/train_args.h"
#include "llmc/utils.h"

#include "llmc/cuda_common.cuh"
#include "llmc/adamw.cuh"
#include "llmc/attention.cuh"
#include "llmc/classifier.cuh"
#include "llmc/encoder.cuh"
#include "llmc/matmul.cuh"
#include "llmc/qknorm_rope.cuh"
#include "llmc/rmsnorm.cuh"
#include "llmc/swiglu.cuh"

#define ADAM_BETA1 0.9f
#define ADAM_BETA2 0.95f
#define ADAM_EPS 1e-8f

// ----------------------------------------------------------------------------
// device memory: planned in groups before anything is allocated, so the plan can
// be printed (and checked against the free memory) first. Each group is one
// cudaMalloc carved into 256-byte aligned tensors.

#define MAX_CARVES 48

typedef struct {
    const char* name;
    void** ptrs[MAX_CARVES];
    size_t offsets[MAX_CARVES];
    int n;
    size_t total;  // bytes
    void* base;
} MemGroup;

static void group_init(MemGroup* g, const char* name) {
    memset(g, 0, sizeof(*g));
    g->name = name;
}

// adds a tensor of `bytes` at the group's end (ptr set when the group is allocated)
static void group_add(MemGroup* g, void* ptr, size_t bytes) {
    if (g->n == MAX_CARVES) { die("internal: too many tensors in memory group %s", g->name); }
    g->ptrs[g->n] = (void**)ptr;
    g->offsets[g->n] = g->total;
    g->n++;
    g->total += (bytes + 255) / 256 * 256;
}

// adds a tensor that starts at the group's base, overlapping the others (a union)
static void group_add_aliased(MemGroup* g, void* ptr, size_t bytes) {
    if (g->n == MAX_CARVES) { die("internal: too many tensors in memory group %s", g->name); }
    g->ptrs[g->n] = (void**)ptr;
    g->offsets[g->n] = 0;
    g->n++;
    size_t b = (bytes + 255) / 256 * 256;
    if (b > g->total) { g->total = b; }
}

// device_malloc: cudaMalloc with a clear message, never a crash, when memory runs out
static void device_malloc(void** ptr, size_t bytes, const char* what) {
    cudaError_t err = cudaMalloc(ptr, bytes);
    if (err == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();  // clear the sticky-free error state
        size_t free_b = 0, total_b = 0;
        cudaCheck(cudaMemGetInfo(&free_b, &total_b));
        die("out of GPU memory: %s asks for %zu bytes (%.2f GiB); %.2f GiB free of %.2f GiB\n"
            "---> HINT: lower -b (use -d to keep the total batch), or recompute activations with -r 1",
            what, bytes, bytes / 1073741824.0, free_b / 1073741824.0, total_b / 1073741824.0);
    }
    cudaCheck(err);
}

static void group_alloc(MemGroup* g) {
    if (g->total == 0) { return; }
    device_malloc(&g->base, g->total, g->name);
    for (int i = 0; i < g->n; i++) { *g->ptrs[i] = (char*)g->base + g->offsets[i]; }
}

// ----------------------------------------------------------------------------
// the model on the GPU

// what the forward keeps for the backward. (L, ...) tensors hold every layer; with
// recompute the ones marked [r] hold one layer and are rebuilt in the backward.
typedef struct {
    int* inputs;      // (B, T) token ids
    int* targets;     // (B, T)
    bf16* encoded;    // (B, T, C) layer 0's input
    bf16* ln1;        // (L, B, T, C) [r]
    float* ln1_rstd;  // (L, B, T)
    bf16* qkv;        // (L, B, T, QKV) raw projections; v is read from here
    float* qk_rstd;   // (L, B, T, NH + NKV)
    bf16* q;          // (L, B, T, NH, hd) normed + roped [r]
    bf16* k;          // (L, B, T, NKV, hd) [r]
    bf16* atty;       // (L, B, T, NH * hd) attention output
    float* lse;       // (L, B, NH, T) attention softmax statistics
    bf16* res_mid;    // (L, B, T, C) after attention (sequential block only)
    bf16* ln2;        // (L, B, T, C) [r] (sequential block only)
    float* ln2_rstd;  // (L, B, T)
    bf16* fch;        // (L, B, T, 2F) [gate | up]
    bf16* res_out;    // (L, B, T, C) layer outputs; res_out[l] is layer l+1's input
    bf16* lnf;        // (B, T, C)
    float* lnf_rstd;  // (B, T)
    float* losses;    // (B, T)
} ActsGPU;

// working buffers: sw and branch live through the forward; dres and dln through
// the backward; the rest is one union (the head's logits chunk, or one layer's
// backward buffers)
typedef struct {
    bf16* sw;          // (B, T, F) SwiGLU output (forward, and recomputed in the backward)
    bf16* branch;      // (B, T, C) a branch's output before the residual add
    bf16* dres;        // (B, T, C) gradient of the residual stream
    bf16* dln;         // (B, T, C) gradient of a normed input (dlnf in the head)
    bf16* logits;      // (chunk, Vp) [union] lm_head output, then its gradient in place
    bf16* dsw;         // (B, T, F) [union]
    bf16* dfch;        // (B, T, 2F) [union]
    bf16* datty;       // (B, T, NH * hd) [union]
    bf16* dq;          // (B, T, NH, hd) [union]
    bf16* dk;          // (B, T, NKV, hd) [union]
    bf16* dqkv;        // (B, T, QKV) [union]
    void* att_scratch; // attention_backward_scratch_bytes [union]
    float* red;        // reduction partials: max(rmsnorm, qk-norm, grad norm)
    float* norm2;      // (1,) squared gradient norm
    int* buckets;      // encoder_buckets_ints(B*T) encoder backward buckets
    float* rope_cos;   // (max_seq_len, hd/2)
    float* rope_sin;
} WorkGPU;

typedef struct {
    size_t params, master, grads, optimizer, acts, work, workspace, total;
} MemPlan;

typedef struct {
    GPTConfig config;
    ParamLayout layout;
    int B, T;            // what the activations are sized for
    int recompute;
    int chunk;           // rows per lm_head chunk
    bf16* params;        // (num_parameters,) the bf16 weights the forward reads
    float* master;       // (num_parameters,) fp32 master weights
    float* grads;        // (num_parameters,) fp32
    float* m;            // AdamW moments (num_parameters,)
    float* v;
    ActsGPU acts;
    WorkGPU work;
    MemGroup groups[6];  // params+master, grads, optimizer, acts, work, misc
    MemPlan plan;
    MatmulContext mm;    // the cuBLASLt handle and workspace
    cudaStream_t stream;
    int* buckets_host;   // encoder_buckets_ints(B*T)
    int* buckets_work;   // encoder_buckets_work_ints(Vp, B*T)
    float* losses_host;  // (B*T)
    float mean_loss;     // of the last forward with targets, else -1
} GPTCuda;

// parameter tensor t (lm_w is wte when tied) in the bf16 copy / in the fp32 gradients
static bf16* param_ptr(const GPTCuda* m, int t) {
    if (t == P_LMW && m->config.tied_embeddings) { t = P_WTE; }
    return m->params + m->layout.offsets[t];
}
static float* grad_ptr(const GPTCuda* m, int t) {
    if (t == P_LMW && m->config.tied_embeddings) { t = P_WTE; }
    return m->grads + m->layout.offsets[t];
}

// gpt_plan: fills the memory groups (sizes only) for (B, T); allocates nothing
static void gpt_plan(GPTCuda* m, const GPTConfig* c, int B, int T, int recompute) {
    m->config = *c;
    param_layout_init(&m->layout, c);
    m->B = B;
    m->T = T;
    m->recompute = recompute;
    size_t L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    size_t Vp = c->padded_vocab_size, QKV = (NH + 2 * NKV) * hd, BT = (size_t)B * T, n = m->layout.num_parameters;
    size_t Lr = recompute ? 1 : L;  // layers kept of the recomputable tensors
    int seq = !c->parallel_block;
    const size_t H = sizeof(bf16), Fl = sizeof(float);
    MemGroup* g = m->groups;
    group_init(&g[0], "parameters (bf16 copy)");
    group_add(&g[0], &m->params, n * H);
    group_init(&g[1], "master weights (fp32)");
    group_add(&g[1], &m->master, n * Fl);
    group_init(&g[2], "gradients (fp32)");
    group_add(&g[2], &m->grads, n * Fl);
    group_init(&g[3], "optimizer state (fp32 m, v)");
    group_add(&g[3], &m->m, n * Fl);
    group_add(&g[3], &m->v, n * Fl);
    ActsGPU* a = &m->acts;
    group_init(&g[4], "activations");
    group_add(&g[4], &a->inputs, BT * sizeof(int));
    group_add(&g[4], &a->targets, BT * sizeof(int));
    group_add(&g[4], &a->encoded, BT * C * H);
    group_add(&g[4], &a->ln1, Lr * BT * C * H);
    group_add(&g[4], &a->ln1_rstd, L * BT * Fl);
    group_add(&g[4], &a->qkv, L * BT * QKV * H);
    group_add(&g[4], &a->qk_rstd, L * BT * (NH + NKV) * Fl);
    group_add(&g[4], &a->q, Lr * BT * NH * hd * H);
    group_add(&g[4], &a->k, Lr * BT * NKV * hd * H);
    group_add(&g[4], &a->atty, L * BT * NH * hd * H);
    group_add(&g[4], &a->lse, L * BT * NH * Fl);
    a->res_mid = NULL;
    a->ln2 = NULL;
    if (seq) {
        group_add(&g[4], &a->res_mid, L * BT * C * H);
        group_add(&g[4], &a->ln2, Lr * BT * C * H);
    }
    group_add(&g[4], &a->ln2_rstd, L * BT * Fl);
    group_add(&g[4], &a->fch, L * BT * 2 * F * H);
    group_add(&g[4], &a->res_out, L * BT * C * H);
    group_add(&g[4], &a->lnf, BT * C * H);
    group_add(&g[4], &a->lnf_rstd, BT * Fl);
    group_add(&g[4], &a->losses, BT * Fl);
    // the union: one layer's backward buffers, or the logits chunk
    WorkGPU* w = &m->work;
    group_init(&g[5], "work buffers");
    group_add(&g[5], &w->dsw, BT * F * H);
    group_add(&g[5], &w->dfch, BT * 2 * F * H);
    group_add(&g[5], &w->datty, BT * NH * hd * H);
    group_add(&g[5], &w->dq, BT * NH * hd * H);
    group_add(&g[5], &w->dk, BT * NKV * hd * H);
    group_add(&g[5], &w->dqkv, BT * QKV * H);
    group_add(&g[5], &w->att_scratch, attention_backward_scratch_bytes(B, T, (int)NH, (int)NKV, (int)hd));
    // the chunk fills what the layer buffers take anyway, between 128 and all B*T rows
    size_t chunk = g[5].total / (Vp * H);
    chunk = chunk < 128 ? 128 : chunk / 128 * 128;
    if (chunk > BT) { chunk = BT; }
    m->chunk = (int)chunk;
    group_add_aliased(&g[5], &w->logits, chunk * Vp * H);
    group_add(&g[5], &w->sw, BT * F * H);
    group_add(&g[5], &w->branch, BT * C * H);
    group_add(&g[5], &w->dres, BT * C * H);
    group_add(&g[5], &w->dln, BT * C * H);
    size_t red = rmsnorm_scratch_floats((int)C);
    if (qknorm_rope_scratch_floats((int)hd) > red) { red = qknorm_rope_scratch_floats((int)hd); }
    if (GRAD_NORM_BLOCKS > red) { red = GRAD_NORM_BLOCKS; }
    group_add(&g[5], &w->red, red * Fl);
    group_add(&g[5], &w->norm2, Fl);
    group_add(&g[5], &w->buckets, encoder_buckets_ints((int)BT) * sizeof(int));
    group_add(&g[5], &w->rope_cos, (size_t)c->max_seq_len * (hd / 2) * Fl);
    group_add(&g[5], &w->rope_sin, (size_t)c->max_seq_len * (hd / 2) * Fl);
    MemPlan* p = &m->plan;
    p->params = g[0].total;
    p->master = g[1].total;
    p->grads = g[2].total;
    p->optimizer = g[3].total;
    p->acts = g[4].total;
    p->work = g[5].total;
    p->workspace = MATMUL_WORKSPACE_BYTES;
    p->total = p->params + p->master + p->grads + p->optimizer + p->acts + p->work + p->workspace;
}

static void gpt_print_plan(const GPTCuda* m, FILE* fp) {
    const MemPlan* p = &m->plan;
    const double G = 1073741824.0;
    fprintf(fp, "memory plan (B %d, T %d%s, lm_head chunk %d rows):\n", m->B, m->T,
            m->recompute ? ", recompute" : "", m->chunk);
    fprintf(fp, "  parameters (bf16)     %8.3f GiB\n", p->params / G);
    fprintf(fp, "  master weights (fp32) %8.3f GiB\n", p->master / G);
    fprintf(fp, "  gradients (fp32)      %8.3f GiB\n", p->grads / G);
    fprintf(fp, "  optimizer (fp32 m, v) %8.3f GiB\n", p->optimizer / G);
    fprintf(fp, "  activations           %8.3f GiB\n", p->acts / G);
    fprintf(fp, "  work buffers          %8.3f GiB  (logits chunk %.3f GiB shares it)\n", p->work / G,
            (double)m->chunk * m->config.padded_vocab_size * sizeof(bf16) / G);
    fprintf(fp, "  cuBLASLt workspace    %8.3f GiB\n", p->workspace / G);
    fprintf(fp, "  total                 %8.3f GiB  (plus the CUDA context)\n", p->total / G);
}

// gpt_alloc: allocates the plan (after checking it fits), the cuBLASLt context, the
// RoPE tables and the host buffers
static void gpt_alloc(GPTCuda* m) {
    size_t free_b = 0, total_b = 0;
    cudaCheck(cudaMemGetInfo(&free_b, &total_b));
    if (m->plan.total > free_b) {
        die("out of GPU memory: the plan needs %.2f GiB, the GPU has %.2f GiB free of %.2f GiB\n"
            "---> HINT: lower -b (use -d to keep the total batch), or recompute activations with -r 1",
            m->plan.total / 1073741824.0, free_b / 1073741824.0, total_b / 1073741824.0);
    }
    for (int i = 0; i < 6; i++) { group_alloc(&m->groups[i]); }
    cudaCheck(cudaStreamCreate(&m->stream));
    matmul_context_init(&m->mm, MATMUL_WORKSPACE_BYTES);
    const GPTConfig* c = &m->config;
    int hd = c->n_embd / c->n_head;
    size_t nrope = (size_t)c->max_seq_len * (hd / 2);
    float* cosv = (float*)mallocCheck(nrope * sizeof(float));
    float* sinv = (float*)mallocCheck(nrope * sizeof(float));
    rope_init(cosv, sinv, c->max_seq_len, hd, c->rope_theta);  // the CPU model's tables, bit for bit
    cudaCheck(cudaMemcpy(m->work.rope_cos, cosv, nrope * sizeof(float), cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(m->work.rope_sin, sinv, nrope * sizeof(float), cudaMemcpyHostToDevice));
    free(cosv);
    free(sinv);
    size_t BT = (size_t)m->B * m->T;
    m->buckets_host = (int*)mallocCheck(encoder_buckets_ints((int)BT) * sizeof(int));
    m->buckets_work = (int*)callocCheck(encoder_buckets_work_ints(c->padded_vocab_size, (int)BT), sizeof(int));
    m->losses_host = (float*)mallocCheck(BT * sizeof(float));
    m->mean_loss = -1.0f;
    cudaCheck(cudaMemset(m->m, 0, m->layout.num_parameters * sizeof(float)));
    cudaCheck(cudaMemset(m->v, 0, m->layout.num_parameters * sizeof(float)));
    cudaCheck(cudaMemset(m->grads, 0, m->layout.num_parameters * sizeof(float)));
}

static void gpt_free_cuda(GPTCuda* m) {
    matmul_context_free(&m->mm);
    for (int i = 0; i < 6; i++) {
        if (m->groups[i].base != NULL) { cudaCheck(cudaFree(m->groups[i].base)); }
    }
    cudaCheck(cudaStreamDestroy(m->stream));
    free(m->buckets_host);
    free(m->buckets_work);
    free(m->losses_host);
}

// the rounding seed of optimizer step `step` (0-based) for tensor t: a function of
// the run's seed and the step only, so a resumed run can rebuild the bf16 copy
static uint32_t sr_seed(uint64_t run_seed, int step, int t) {
    uint64_t s = run_seed ^ (0xD1B54A32D192ED03ULL * (uint64_t)(step + 1));
    return hash32(rng_next_u32(&s) + (uint32_t)t * 0x9E3779B9u);
}

// gpt_upload_master: master (num_parameters,) host fp32 -> the GPU's master and its
// bf16 copy: round to nearest (after_step < 0: a fresh or loaded model) or the
// stochastic rounding optimizer step after_step wrote (a resumed run)
static void gpt_upload_master(GPTCuda* m, const float* master, int after_step, uint64_t run_seed) {
    size_t n = m->layout.num_parameters;
    cudaCheck(cudaMemcpy(m->master, master, n * sizeof(float), cudaMemcpyHostToDevice));
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        size_t off = m->layout.offsets[t], sz = m->layout.sizes[t];
        if (after_step < 0) {
            params_to_bf16_rne(m->params + off, m->master + off, sz, m->stream);
        } else {
            params_to_bf16_sr(m->params + off, m->master + off, sz, sr_seed(run_seed, after_step, t), m->stream);
        }
    }
    cudaCheck(cudaStreamSynchronize(m->stream));
}

// ----------------------------------------------------------------------------
// forward and backward

// per-layer slices of the activations, shapes as in ActsGPU
typedef struct {
    const bf16* x;  // (B, T, C) the layer's input
    bf16 *ln1, *qkv, *q, *k, *atty, *res_mid, *ln2, *fch, *out;
    float *ln1_rstd, *qk_rstd, *lse, *ln2_rstd;
} LayerGPU;

static LayerGPU layer_gpu(const GPTCuda* m, int l) {
    const GPTConfig* c = &m->config;
    size_t BT = (size_t)m->B * m->T, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    size_t QKV = (NH + 2 * NKV) * hd, lr = m->recompute ? 0 : (size_t)l;
    const ActsGPU* a = &m->acts;
    LayerGPU y;
    y.x = l == 0 ? a->encoded : a->res_out + (size_t)(l - 1) * BT * C;
    y.ln1 = a->ln1 + lr * BT * C;
    y.ln1_rstd = a->ln1_rstd + (size_t)l * BT;
    y.qkv = a->qkv + (size_t)l * BT * QKV;
    y.qk_rstd = a->qk_rstd + (size_t)l * BT * (NH + NKV);
    y.q = a->q + lr * BT * NH * hd;
    y.k = a->k + lr * BT * NKV * hd;
    y.atty = a->atty + (size_t)l * BT * NH * hd;
    y.lse = a->lse + (size_t)l * BT * NH;
    y.res_mid = a->res_mid != NULL ? a->res_mid + (size_t)l * BT * C : NULL;
    y.ln2 = a->ln2 != NULL ? a->ln2 + lr * BT * C : NULL;
    y.ln2_rstd = a->ln2_rstd + (size_t)l * BT;
    y.fch = a->fch + (size_t)l * BT * 2 * F;
    y.out = a->res_out + (size_t)l * BT * C;
    return y;
}

// gpt_head: the lm_head and the fused classifier over chunks of rows. losses (B*T)
// always; when train, also dln (B, T, C) = dlnf and the lm_head weight gradient
// (+=), for the loss scaled by loss_scale / (B*T)
static void gpt_head(GPTCuda* m, int B, int T, float zloss, float loss_scale, int train) {
    const GPTConfig* c = &m->config;
    int C = c->n_embd, V = c->vocab_size, Vp = c->padded_vocab_size, BT = B * T;
    bf16* lm_w = param_ptr(m, P_LMW);
    for (int r0 = 0; r0 < BT; r0 += m->chunk) {
        int rows = BT - r0 < m->chunk ? BT - r0 : m->chunk;
        const bf16* lnf = m->acts.lnf + (size_t)r0 * C;
        matmul_forward(&m->mm, m->work.logits, lnf, lm_w, rows, C, Vp, 0, m->stream);
        fused_classifier(m->work.logits, m->acts.losses + r0, m->acts.targets + r0, rows, V, Vp, c->logit_softcap,
                         zloss, loss_scale / (float)BT, m->stream);
        if (train) {
            matmul_backward(&m->mm, m->work.dln + (size_t)r0 * C, grad_ptr(m, P_LMW), m->work.logits, lnf, lm_w, rows,
                            C, Vp, 0, m->stream);
        }
    }
}

// gpt_logits: the soft-capped logits (rows, Vp) of rows row0.. of the last forward,
// as fp32 on the host (sampling and tests). Uses the logits chunk buffer.
static void gpt_logits(GPTCuda* m, int row0, int rows, float* out) {
    const GPTConfig* c = &m->config;
    int C = c->n_embd, Vp = c->padded_vocab_size;
    uint16_t* tmp = (uint16_t*)mallocCheck((size_t)m->chunk * Vp * sizeof(uint16_t));
    for (int r = 0; r < rows; r += m->chunk) {
        int n = rows - r < m->chunk ? rows - r : m->chunk;
        matmul_forward(&m->mm, m->work.logits, m->acts.lnf + (size_t)(row0 + r) * C, param_ptr(m, P_LMW), n, C, Vp, 0,
                       m->stream);
        cudaCheck(cudaMemcpyAsync(tmp, m->work.logits, (size_t)n * Vp * sizeof(bf16), cudaMemcpyDeviceToHost,
                                  m->stream));
        cudaCheck(cudaStreamSynchronize(m->stream));
        for (size_t i = 0; i < (size_t)n * Vp; i++) {
            float z = bf16_to_f32(tmp[i]);
            out[(size_t)r * Vp + i] = c->logit_softcap > 0.0f ? c->logit_softcap * tanhf(z / c->logit_softcap) : z;
        }
    }
    free(tmp);
}

// gpt_forward: inputs, targets (B, T) host token ids, already checked against V by
// the data loader (targets NULL: no loss). B, T at most the allocation's.
// With targets: sets m->mean_loss; when train, also runs the head's backward
// (dlnf into work.dln, the lm_head gradient) for gpt_backward to continue.
static void gpt_forward(GPTCuda* m, const int* inputs, const int* targets, int B, int T, float zloss, float loss_scale,
                        int train) {
    const GPTConfig* c = &m->config;
    int L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    int QKV = (NH + 2 * NKV) * hd, BT = B * T;
    if (T > c->max_seq_len) { die("sequence length %d is longer than the model's max_seq_len %d", T, c->max_seq_len); }
    if ((size_t)B * T > (size_t)m->B * m->T || T > m->T) {
        die("forward with B %d T %d exceeds the allocation B %d T %d", B, T, m->B, m->T);
    }
    for (int i = 0; i < BT; i++) {  // the loader checks its tokens; sampling passes its own
        if (inputs[i] < 0 || inputs[i] >= c->vocab_size || (targets != NULL && (targets[i] < 0 || targets[i] >= c->vocab_size))) {
            die("token id out of range [0, %d) at position %d", c->vocab_size, i);
        }
    }
    cudaStream_t st = m->stream;
    ActsGPU* a = &m->acts;
    WorkGPU* w = &m->work;
    cudaCheck(cudaMemcpyAsync(a->inputs, inputs, (size_t)BT * sizeof(int), cudaMemcpyHostToDevice, st));
    if (targets != NULL) {
        cudaCheck(cudaMemcpyAsync(a->targets, targets, (size_t)BT * sizeof(int), cudaMemcpyHostToDevice, st));
    }
    if (train) { encoder_buckets_build(m->buckets_host, m->buckets_work, inputs, BT, c->padded_vocab_size); }
    // the layer slices are laid out for the allocation's B*T; a smaller forward uses
    // the front of each slice (every kernel below is told the actual B, T)
    encoder_forward(a->encoded, a->inputs, param_ptr(m, P_WTE), BT, C, st);
    rmsnorm_forward(layer_gpu(m, 0).ln1, layer_gpu(m, 0).ln1_rstd, a->encoded, param_ptr(m, P_LN1), BT, C, c->norm_eps, st);
    for (int l = 0; l < L; l++) {
        LayerGPU y = layer_gpu(m, l);
        const bf16* qkv_w = param_ptr(m, P_QKV) + (size_t)l * QKV * C;
        matmul_forward(&m->mm, y.qkv, y.ln1, qkv_w, BT, C, QKV, 0, st);
        qknorm_rope_forward(y.q, y.k, y.qk_rstd, y.qkv, param_ptr(m, P_QNORM) + (size_t)l * hd,
                            param_ptr(m, P_KNORM) + (size_t)l * hd, w->rope_cos, w->rope_sin, B, T, 0, NH, NKV, hd,
                            c->qk_norm, c->norm_eps, st);
        attention_forward(y.atty, y.lse, y.q, y.k, y.qkv + (size_t)(NH + NKV) * hd, QKV, B, T, NH, NKV, hd, st);
        matmul_forward(&m->mm, w->branch, y.atty, param_ptr(m, P_ATTNPROJ) + (size_t)l * C * NH * hd, BT, NH * hd, C,
                       0, st);
        const bf16* mlp_in = y.ln1;
        const bf16* resid = y.x;
        if (!c->parallel_block) {
            rmsnorm_residual_forward(y.res_mid, y.ln2, y.ln2_rstd, y.x, w->branch, param_ptr(m, P_LN2) + (size_t)l * C,
                                     BT, C, c->norm_eps, st);
            mlp_in = y.ln2;
            resid = y.res_mid;
        }
        matmul_forward(&m->mm, y.fch, mlp_in, param_ptr(m, P_FC) + (size_t)l * 2 * F * C, BT, C, 2 * F, 0, st);
        swiglu_forward(w->sw, y.fch, BT, F, st);
        // parallel block: the MLP branch is added onto the attention branch inside the matmul
        matmul_forward(&m->mm, w->branch, w->sw, param_ptr(m, P_FCPROJ) + (size_t)l * C * F, BT, F, C,
                       c->parallel_block, st);
        // the residual add, fused with the next norm: layer l+1's ln1, or lnf
        if (l + 1 < L) {
            LayerGPU nx = layer_gpu(m, l + 1);
            rmsnorm_residual_forward(y.out, nx.ln1, nx.ln1_rstd, resid, w->branch,
                                     param_ptr(m, P_LN1) + (size_t)(l + 1) * C, BT, C, c->norm_eps, st);
        } else {
            rmsnorm_residual_forward(y.out, a->lnf, a->lnf_rstd, resid, w->branch, param_ptr(m, P_LNF), BT, C,
                                     c->norm_eps, st);
        }
    }
    m->mean_loss = -1.0f;
    if (targets == NULL) { return; }
    gpt_head(m, B, T, zloss, loss_scale, train);
    cudaCheck(cudaMemcpyAsync(m->losses_host, a->losses, (size_t)BT * sizeof(float), cudaMemcpyDeviceToHost, st));
    cudaCheck(cudaStreamSynchronize(st));
    double sum = 0.0;  // in position order: deterministic
    for (int i = 0; i < BT; i++) { sum += m->losses_host[i]; }
    m->mean_loss = (float)(sum / BT);
}

// gpt_backward: after gpt_forward(..., train = 1): adds the gradient of
// loss_scale * mean(losses) to m->grads (fp32, +=; the caller zeroes them per step)
static void gpt_backward(GPTCuda* m, int B, int T) {
    const GPTConfig* c = &m->config;
    int L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    int QKV = (NH + 2 * NKV) * hd, BT = B * T;
    cudaStream_t st = m->stream;
    ActsGPU* a = &m->acts;
    WorkGPU* w = &m->work;
    const int par = c->parallel_block;
    // the head left dlnf in w->dln; through lnf into the residual stream's gradient
    cudaCheck(cudaMemsetAsync(w->dres, 0, (size_t)BT * C * sizeof(bf16), st));
    rmsnorm_backward(w->dres, grad_ptr(m, P_LNF), w->red, w->dln, layer_gpu(m, L - 1).out, param_ptr(m, P_LNF),
                     a->lnf_rstd, BT, C, st);
    for (int l = L - 1; l >= 0; l--) {
        LayerGPU y = layer_gpu(m, l);
        const bf16* ln1_w = param_ptr(m, P_LN1) + (size_t)l * C;
        const bf16* ln2_w = param_ptr(m, P_LN2) + (size_t)l * C;
        const bf16* qnw = param_ptr(m, P_QNORM) + (size_t)l * hd;
        const bf16* knw = param_ptr(m, P_KNORM) + (size_t)l * hd;
        if (m->recompute) {  // the same kernels on the same inputs: the same bits as the forward's
            rmsnorm_apply(y.ln1, y.x, ln1_w, y.ln1_rstd, BT, C, st);
            if (!par) { rmsnorm_apply(y.ln2, y.res_mid, ln2_w, y.ln2_rstd, BT, C, st); }
            qknorm_rope_forward(y.q, y.k, y.qk_rstd, y.qkv, qnw, knw, w->rope_cos, w->rope_sin, B, T, 0, NH, NKV, hd,
                                c->qk_norm, c->norm_eps, st);
        }
        const bf16* mlp_in = par ? y.ln1 : y.ln2;
        // w->dres holds d(out). MLP: out = resid + fc_proj(swiglu(fc(mlp_in)))
        swiglu_forward(w->sw, y.fch, BT, F, st);
        matmul_backward(&m->mm, w->dsw, grad_ptr(m, P_FCPROJ) + (size_t)l * C * F, w->dres, w->sw,
                        param_ptr(m, P_FCPROJ) + (size_t)l * C * F, BT, F, C, 0, st);
        cudaCheck(cudaMemsetAsync(w->dfch, 0, (size_t)BT * 2 * F * sizeof(bf16), st));
        swiglu_backward(w->dfch, w->dsw, y.fch, BT, F, st);
        matmul_backward(&m->mm, w->dln, grad_ptr(m, P_FC) + (size_t)l * 2 * F * C, w->dfch, mlp_in,
                        param_ptr(m, P_FC) + (size_t)l * 2 * F * C, BT, C, 2 * F, 0, st);
        if (!par) {
            // res_mid feeds ln2 and the residual: d(res_mid) = d(out) + ln2's backward
            rmsnorm_backward(w->dres, grad_ptr(m, P_LN2) + (size_t)l * C, w->red, w->dln, y.res_mid, ln2_w,
                             y.ln2_rstd, BT, C, st);
        }
        // attention: res_mid = x + attn_proj(atty) (parallel: out = x + attn + mlp, dres = d(out))
        matmul_backward(&m->mm, w->datty, grad_ptr(m, P_ATTNPROJ) + (size_t)l * C * NH * hd, w->dres, y.atty,
                        param_ptr(m, P_ATTNPROJ) + (size_t)l * C * NH * hd, BT, NH * hd, C, 0, st);
        // the q and k parts of dqkv are accumulated (+=) by the QK-norm backward: zero them;
        // the attention backward overwrites the v part
        cudaCheck(cudaMemsetAsync(w->dqkv, 0, (size_t)BT * QKV * sizeof(bf16), st));
        attention_backward(w->dq, w->dk, w->dqkv + (size_t)(NH + NKV) * hd, w->att_scratch, w->datty, y.atty, y.lse,
                           y.q, y.k, y.qkv + (size_t)(NH + NKV) * hd, QKV, B, T, NH, NKV, hd, st);
        qknorm_rope_backward(w->dqkv, grad_ptr(m, P_QNORM) + (size_t)l * hd, grad_ptr(m, P_KNORM) + (size_t)l * hd,
                             w->red, w->dq, w->dk, y.qkv, qnw, knw, y.qk_rstd, w->rope_cos, w->rope_sin, B, T, NH, NKV,
                             hd, c->qk_norm, st);
        // parallel block: ln1 feeds both branches, so d(ln1) adds onto the MLP's in w->dln
        matmul_backward(&m->mm, w->dln, grad_ptr(m, P_QKV) + (size_t)l * QKV * C, w->dqkv, y.ln1,
                        param_ptr(m, P_QKV) + (size_t)l * QKV * C, BT, C, QKV, par, st);
        rmsnorm_backward(w->dres, grad_ptr(m, P_LN1) + (size_t)l * C, w->red, w->dln, y.x, ln1_w, y.ln1_rstd, BT, C,
                         st);
        // w->dres now holds d(x): the layer below reads it as its d(out)
    }
    encoder_backward(grad_ptr(m, P_WTE), w->buckets, m->buckets_host, w->dres, BT, C, st);
}

static void gpt_zero_grad_cuda(GPTCuda* m) {
    cudaCheck(cudaMemsetAsync(m->grads, 0, m->layout.num_parameters * sizeof(float), m->stream));
}

// the global L2 norm of the gradients (synchronizes)
static float gpt_grad_norm_cuda(GPTCuda* m) {
    global_norm_squared(m->work.norm2, m->work.red, m->grads, m->layout.num_parameters, m->stream);
    float n2 = 0.0f;
    cudaCheck(cudaMemcpyAsync(&n2, m->work.norm2, sizeof(float), cudaMemcpyDeviceToHost, m->stream));
    cudaCheck(cudaStreamSynchronize(m->stream));
    return sqrtf(n2);
}

// AdamW at 0-based optimizer step `step` (bias correction t = step + 1), gradients
// scaled by grad_scale; weight decay on the matrices only (param_is_decayed)
static void gpt_update_cuda(GPTCuda* m, float lr, float weight_decay, float grad_scale, int step, uint64_t run_seed) {
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        size_t off = m->layout.offsets[t], sz = m->layout.sizes[t];
        float wd = param_is_decayed(t) ? weight_decay : 0.0f;
        adamw_update(m->master + off, m->params + off, m->m + off, m->v + off, m->grads + off, sz, lr, ADAM_BETA1,
                     ADAM_BETA2, ADAM_EPS, wd, grad_scale, step + 1, sr_seed(run_seed, step, t), m->stream);
    }
}

// a skipped step still "writes" its bf16 copy, so that after any step s the copy is
// the rounding of the master with step s's seeds (what a resume rebuilds)
static void gpt_skip_update_cuda(GPTCuda* m, int step, uint64_t run_seed) {
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        size_t off = m->layout.offsets[t], sz = m->layout.sizes[t];
        params_to_bf16_sr(m->params + off, m->master + off, sz, sr_seed(run_seed, step, t), m->stream);
    }
}

// ----------------------------------------------------------------------------
// the training program

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// the device's peak dense bf16 tensor rate (FLOP/s) for MFU; 0 when unknown
static double device_peak_bf16(const cudaDeviceProp* p) {
    const char* n = p->name;
    if (strstr(n, "H100") != NULL) { return strstr(n, "PCIe") != NULL ? 756e12 : 989e12; }
    if (strstr(n, "H200") != NULL || strstr(n, "GH200") != NULL) { return 989e12; }
    if (strstr(n, "A100") != NULL) { return 312e12; }
    if (strstr(n, "A10") != NULL) { return 125e12; }
    if (strstr(n, "L4") != NULL) { return 121e12; }
    if (strstr(n, "4090") != NULL) { return 165e12; }
    return 0.0;
}

// one optimizer step: grad_accum micro-steps of (B, T) from the loader, the norm, the
// update (or its skip). Returns the mean loss; *norm_out, *skipped_out set.
typedef struct {
    int B, T, grad_accum, overfit, nonfinite_fatal;
    float zloss, grad_clip, weight_decay;
    uint64_t run_seed;
} StepArgs;

static float train_step(GPTCuda* m, DataLoader* loader, const StepArgs* sa, int step, int load_first, float lr,
                        float* norm_out, int* skipped_out) {
    gpt_zero_grad_cuda(m);
    double loss_sum = 0.0;
    for (int micro = 0; micro < sa->grad_accum; micro++) {
        if (!sa->overfit || (load_first && micro == 0)) { dataloader_next_batch(loader); }
        gpt_forward(m, loader->inputs, loader->targets, sa->B, sa->T, sa->zloss, 1.0f / sa->grad_accum, 1);
        loss_sum += m->mean_loss;
        gpt_backward(m, sa->B, sa->T);
    }
    float loss = (float)(loss_sum / sa->grad_accum);
    float norm = gpt_grad_norm_cuda(m);
    *skipped_out = 0;
    if (!isfinite(loss) || !isfinite(norm)) {
        if (sa->nonfinite_fatal) { die("step %d: non-finite loss %f or gradient norm %f (-nf 1)", step, loss, norm); }
        fprintf(stderr, "warning: step %d: non-finite loss %f or gradient norm %f; the update is skipped\n", step, loss,
                norm);
        gpt_skip_update_cuda(m, step, sa->run_seed);
        *skipped_out = 1;
    } else {
        float scale = (sa->grad_clip > 0.0f && norm > sa->grad_clip) ? sa->grad_clip / norm : 1.0f;
        gpt_update_cuda(m, lr, sa->weight_decay, scale, step, sa->run_seed);
    }
    cudaCheck(cudaStreamSynchronize(m->stream));
    *norm_out = norm;
    return loss;
}

// evaluate: mean loss over n batches of the loader from its start (n < 0: all)
static float evaluate(GPTCuda* m, DataLoader* loader, int n, float zloss) {
    dataloader_reset(loader);
    size_t steps = dataloader_steps_per_epoch(loader);
    if (n < 0 || (size_t)n > steps) { n = (int)steps; }
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        dataloader_next_batch(loader);
        gpt_forward(m, loader->inputs, loader->targets, (int)loader->B, (int)loader->T, zloss, 1.0f, 0);
        sum += m->mean_loss;
    }
    return (float)(sum / n);
}

// sample_and_print: continues the EOT token for gen_tokens tokens (B = 1), each token
// from a full forward over the tokens so far (at most the allocation's T)
static void sample_and_print(GPTCuda* m, Sampler* sampler, const Tokenizer* tok, int gen_tokens) {
    int V = m->config.vocab_size, Vp = m->config.padded_vocab_size;
    int eot = tok != NULL ? (int)tok->eot_token : V - 1;
    if (eot >= V) { eot = V - 1; }
    int n = gen_tokens + 1 < m->T ? gen_tokens + 1 : m->T;
    int* tokens = (int*)mallocCheck((size_t)n * sizeof(int));
    float* logits = (float*)mallocCheck((size_t)Vp * sizeof(float));
    tokens[0] = eot;
    printf("generating:\n---\n");
    for (int t = 1; t < n; t++) {
        gpt_forward(m, tokens, NULL, 1, t, 0.0f, 1.0f, 0);
        gpt_logits(m, t - 1, 1, logits);
        int next = sampler_sample(sampler, logits);
        tokens[t] = next;
        if (tok != NULL) {
            tokenizer_print(tok, (uint32_t)next, stdout);
        } else {
            printf("%d ", next);
        }
        fflush(stdout);
    }
    printf("\n---\n");
    free(tokens);
    free(logits);
}

// save_checkpoint: the fp32 master and AdamW moments come back to the host buffers
// of `host` (the CPU model that loaded or initialised the weights); then, as the
// CPU trainer: the state file first, the model file last, old ones removed
static void save_checkpoint(GPTCuda* m, GPT* host, const char* dir, int step, const TrainState* st, int keep) {
    size_t n = m->layout.num_parameters;
    if (host->m_memory == NULL) {
        host->m_memory = (float*)mallocCheck(n * sizeof(float));
        host->v_memory = (float*)mallocCheck(n * sizeof(float));
    }
    cudaCheck(cudaMemcpy(host->params_memory, m->master, n * sizeof(float), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(host->m_memory, m->m, n * sizeof(float), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(host->v_memory, m->v, n * sizeof(float), cudaMemcpyDeviceToHost));
    char path[1200];
    state_path(path, sizeof(path), dir, step, st->rank);
    state_write(path, st, host->params_memory, host->m_memory, host->v_memory);
    checkpoint_path(path, sizeof(path), dir, step);
    checkpoint_write(path, &m->config, host->params_memory, n, DTYPE_FP32);
    printf("wrote checkpoint %s\n", path);
    if (keep > 0) { remove_old_checkpoints(dir, keep, st->rank); }
}

// the model config the flags ask for (a preset with overrides, or a checkpoint's)
static void config_from_args(const TrainArgs* args, GPTConfig* c) {
    if (is_preset_name(args->model)) {
        train_args_model_config(args, c);
    } else {
        int dt;
        FILE* fp = checkpoint_read_config(args->model, c, &dt);
        fclose(fp);
    }
}

#ifndef TESTING
int main(int argc, char** argv) {
    // --plan: print the memory plan for the flags and exit, without touching the GPU
    int plan_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--plan") == 0) {
            plan_only = 1;
            for (int j = i; j + 1 < argc; j++) { argv[j] = argv[j + 1]; }
            argc--;
            break;
        }
    }
    TrainArgs args;
    train_args_defaults(&args);
    if (train_args_parse(&args, argc, argv)) {
        train_args_usage(argv[0]);
        printf("  --plan      print the GPU memory plan for these flags and exit (needs no GPU)\n");
        return 0;
    }
    const int rank = 0, world = 1;  // one GPU
    if (!is_preset_name(args.model) && access(args.model, F_OK) != 0) {
        die("flag -e: '%s' is neither a preset (d2, d6, d12, d24, d36, 1b) nor an existing checkpoint file", args.model);
    }
    if (plan_only) {
        GPTConfig cfg;
        config_from_args(&args, &cfg);
        if (args.T > cfg.max_seq_len) { die("flag -t: T = %d is larger than the model's max_seq_len %d", args.T, cfg.max_seq_len); }
        GPTCuda pm;
        memset(&pm, 0, sizeof(pm));
        gpt_plan(&pm, &cfg, args.B, args.T, args.recompute);
        config_print(&cfg, stdout);
        printf("parameters: %zu | FLOPs per token: %.3e\n", pm.layout.num_parameters, model_flops_per_token(&cfg, args.T));
        gpt_print_plan(&pm, stdout);
        return 0;
    }

    int dev_count = 0;
    cudaError_t derr = cudaGetDeviceCount(&dev_count);
    if (derr != cudaSuccess || dev_count == 0) {
        die("no CUDA device: %s\n---> HINT: this program needs an NVIDIA GPU and its driver; the CPU trainer is ./train_gpt",
            derr != cudaSuccess ? cudaGetErrorString(derr) : "none found");
    }
    cudaCheck(cudaSetDevice(0));
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, 0));
    if (args.output_dir != NULL) { make_dir(args.output_dir); }

    // the model on the host first: from a preset, a checkpoint file, or the newest checkpoint of -o
    GPT host;
    int resume_step = -1;
    if (args.resume) { resume_step = latest_checkpoint_step(args.output_dir); }
    if (resume_step >= 0) {
        char path[1200];
        checkpoint_path(path, sizeof(path), args.output_dir, resume_step);
        gpt_init_from_checkpoint(&host, path);
        GPTConfig want;
        config_from_args(&args, &want);
        if (!config_equal(&want, &host.config)) {
            die("checkpoint '%s' does not match the model asked for with -e %s\n"
                "---> HINT: resume with the same model flags, or use another -o", path, args.model);
        }
        printf("resuming from %s\n", path);
    } else if (is_preset_name(args.model)) {
        GPTConfig cfg;
        train_args_model_config(&args, &cfg);
        gpt_init_random(&host, &cfg, args.seed);  // SPEC's init: the same weights as ./train_gpt
    } else {
        gpt_init_from_checkpoint(&host, args.model);
    }
    const GPTConfig* c = &host.config;
    if (args.T > c->max_seq_len) { die("flag -t: T = %d is larger than the model's max_seq_len %d", args.T, c->max_seq_len); }

    GPTCuda model;
    memset(&model, 0, sizeof(model));
    gpt_plan(&model, c, args.B, args.T, args.recompute);
    config_print(c, stdout);
    double flops_tok = model_flops_per_token(c, args.T);
    double peak = device_peak_bf16(&prop);
    printf("device: %s (sm_%d%d, %.1f GiB, %d SMs) | peak bf16 %s\n", prop.name, prop.major, prop.minor,
           prop.totalGlobalMem / 1073741824.0, prop.multiProcessorCount,
           peak > 0 ? "known" : "unknown (MFU not shown)");
    printf("parameters: %zu | FLOPs per token: %.3e\n", model.layout.num_parameters, flops_tok);
    gpt_print_plan(&model, stdout);
    gpt_alloc(&model);

    // data
    DataLoader val_loader;
    int have_val = 0;
    if (args.val_every > 0 || args.max_steps == 0) {
        dataloader_init(&val_loader, args.val_pattern, args.B, args.T, rank, world, c->vocab_size, 0, 0);
        have_val = 1;
    }
    if (args.max_steps == 0) {  // evaluation only
        gpt_upload_master(&model, host.params_memory, -1, args.seed);
        float vl = evaluate(&model, &val_loader, args.val_batches, args.zloss);
        printf("val loss %.6f\n", vl);
        dataloader_free(&val_loader);
        gpt_free_cuda(&model);
        gpt_free(&host);
        return 0;
    }
    DataLoader loader;
    dataloader_init(&loader, args.train_pattern, args.B, args.T, rank, world, c->vocab_size, args.shuffle, args.seed);
    long long tokens_per_micro = (long long)args.B * args.T * world;
    long long total_batch = args.total_batch < 0 ? tokens_per_micro : args.total_batch;
    if (total_batch < tokens_per_micro || total_batch % tokens_per_micro != 0) {
        die("flag -d: total batch %lld is not a positive multiple of B*T*processes = %lld", total_batch, tokens_per_micro);
    }
    int grad_accum = (int)(total_batch / tokens_per_micro);
    int max_steps = args.max_steps;
    if (max_steps < 0) {
        max_steps = (int)(dataloader_steps_per_epoch(&loader) / grad_accum);
        if (max_steps < 1) { die("one epoch of '%s' is less than one optimizer step", args.train_pattern); }
    }
    if (args.warmup > max_steps) { die("flag -u: warmup %d is longer than the run (%d steps)", args.warmup, max_steps); }
    printf("batch: B %d | T %d | grad accum %d | tokens per step %lld | steps %d\n", args.B, args.T, grad_accum,
           total_batch, max_steps);
    LRSchedule sched = {args.lr_kind, args.lr, args.warmup, max_steps, args.final_frac, args.wsd_frac};

    Tokenizer tokenizer;
    int have_tok = 0;
    if (args.sample_every > 0) {
        if (access(args.tokenizer, F_OK) == 0) {
            tokenizer_init(&tokenizer, args.tokenizer);
            have_tok = 1;
        } else {
            printf("note: tokenizer '%s' not found, samples print token ids\n", args.tokenizer);
        }
    }
    Sampler sampler;
    sampler_init(&sampler, c->vocab_size, args.temperature, args.top_k, args.top_p, args.seed ^ 0x5A5A5A5AULL);
    uint64_t rng = args.seed;  // the trainer's own RNG (sampling seeds): checkpointed

    int start_step = 0;
    if (resume_step >= 0) {
        char path[1200];
        state_path(path, sizeof(path), args.output_dir, resume_step, rank);
        TrainState st;
        FILE* fp = state_read_header(path, &st);
        if (st.num_parameters != model.layout.num_parameters || st.config_hash != config_hash(c) ||
            st.shard_offset != 0 || st.shard_size != model.layout.num_parameters) {
            die("training state '%s' does not belong to the model checkpoint beside it", path);
        }
        if (st.world_size != world || st.B != args.B || st.T != args.T || st.grad_accum != grad_accum ||
            st.shuffle != args.shuffle || st.data_seed != args.seed) {
            die("training state '%s' was written with world %d, B %d, T %d, grad accum %d, shuffle %d, seed %llu; "
                "this run has %d, %d, %d, %d, %d, %llu\n---> HINT: resume with the same -b -t -d -sh -rs",
                path, st.world_size, st.B, st.T, st.grad_accum, st.shuffle, (unsigned long long)st.data_seed, world,
                args.B, args.T, grad_accum, args.shuffle, (unsigned long long)args.seed);
        }
        size_t n = model.layout.num_parameters;
        host.m_memory = (float*)mallocCheck(n * sizeof(float));
        host.v_memory = (float*)mallocCheck(n * sizeof(float));
        state_read_body(fp, path, &st, host.params_memory, host.m_memory, host.v_memory);
        fclose(fp);
        rng = st.rng;
        dataloader_seek(&loader, st.data_epoch, st.data_shard, st.data_sample);
        start_step = st.step;
        if (start_step > max_steps) { die("checkpoint step %d is past the run's last step %d", start_step, max_steps); }
        // the bf16 copy exactly as the uninterrupted run had it after step start_step - 1
        gpt_upload_master(&model, host.params_memory, start_step - 1, args.seed);
        cudaCheck(cudaMemcpy(model.m, host.m_memory, n * sizeof(float), cudaMemcpyHostToDevice));
        cudaCheck(cudaMemcpy(model.v, host.v_memory, n * sizeof(float), cudaMemcpyHostToDevice));
    } else {
        gpt_upload_master(&model, host.params_memory, -1, args.seed);
    }
    StepArgs sa = {args.B, args.T, grad_accum, args.overfit, args.nonfinite_fatal, args.zloss, args.grad_clip,
                   args.weight_decay, args.seed};

    Logger logger;
    logger_init(&logger, args.metrics, rank, resume_step >= 0);
    double total_ms = 0.0;
    int timed_steps = 0;
    for (int step = start_step; step <= max_steps; step++) {
        int last = step == max_steps;
        if (have_val && (last || (args.val_every > 0 && step % args.val_every == 0))) {
            float vl = evaluate(&model, &val_loader, args.val_batches, args.zloss);
            logger_val(&logger, step, vl);
        }
        if (args.sample_every > 0 && (last || step % args.sample_every == 0) && step > 0) {
            sampler.rng = rng_next_u64(&rng);
            sample_and_print(&model, &sampler, have_tok ? &tokenizer : NULL, args.gen_tokens);
        }
        if (args.output_dir != NULL && step > start_step &&
            (last || (args.ckpt_every > 0 && step % args.ckpt_every == 0))) {
            TrainState st = {step, world, rank, rng, loader.epoch, loader.shard_index, loader.sample_index, 0,
                             model.layout.num_parameters, model.layout.num_parameters, config_hash(c),
                             args.B, args.T, grad_accum, args.shuffle, args.seed};
            save_checkpoint(&model, &host, args.output_dir, step, &st, args.ckpt_keep);
        }
        if (last) { break; }

        double t0 = now_s();
        float norm;
        int skipped;
        float loss = train_step(&model, &loader, &sa, step, step == start_step, lr_at(&sched, step), &norm, &skipped);
        double ms = (now_s() - t0) * 1000.0;
        if (step > start_step) {
            total_ms += ms;
            timed_steps++;
        }
        double tok_s = total_batch / (ms / 1000.0);
        double mfu = peak > 0 ? flops_tok * tok_s / peak : -1.0;
        logger_step(&logger, step + 1, max_steps, loss, norm, lr_at(&sched, step), ms, tok_s, mfu, skipped);
    }
    if (timed_steps > 0) {
        double tok_s = total_batch / (total_ms / timed_steps / 1000.0);
        printf("mean step time %.1f ms | %.0f tokens/s", total_ms / timed_steps, tok_s);
        if (peak > 0) { printf(" | MFU %.1f%%", 100.0 * flops_tok * tok_s / peak); }
        size_t free_b = 0, total_b = 0;
        cudaCheck(cudaMemGetInfo(&free_b, &total_b));
        printf(" | GPU memory in use %.2f GiB\n", (total_b - free_b) / 1073741824.0);
    }
    logger_free(&logger);
    sampler_free(&sampler);
    if (have_tok) { tokenizer_free(&tokenizer); }
    if (have_val) { dataloader_free(&val_loader); }
    dataloader_free(&loader);
    gpt_free_cuda(&model);
    gpt_free(&host);
    return 0;
}
#endif
