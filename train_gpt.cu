/*
 * train_gpt.cu: the GPU trainer. The model of SPEC.md (RMSNorm, QK-norm, RoPE,
 * grouped-query causal attention, SwiGLU, a soft-capped head with cross-entropy +
 * z-loss) in mixed precision on one NVIDIA GPU: bf16 weights and activations,
 * fp32 accumulation, fp32 master weights and AdamW state, the bf16 weights written
 * from the master with seeded stochastic rounding. Same command line, presets,
 * files, data loader, schedules and logging as train_gpt.c, through the shared
 * llmc/ headers; the training loop itself is llmc/train_loop.h's, which both
 * trainers call with their model operations (TrainOps, at the end of this file);
 * the layers are the kernels of the llmc .cuh headers, every matmul goes
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
#include "llmc/comm.h"
#include "llmc/comm_train.h"
#include "llmc/config.h"
#include "llmc/dataloader.h"
#include "llmc/gpt_cpu.h"  // the SPEC init, checkpoint loading and RoPE tables (host side)
#include "llmc/logger.h"
#include "llmc/rand.h"
#include "llmc/sampler.h"
#include "llmc/schedule.h"
#include "llmc/tokenizer.h"
#include "llmc/train_args.h"
#include "llmc/train_common.h"
#include "llmc/train_loop.h"
#include "llmc/utils.h"

#include "llmc/cuda_common.cuh"
#include "llmc/adamw.cuh"
#include "llmc/attention.cuh"
#include "llmc/classifier.cuh"
#include "llmc/comm_gpu.cuh"
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
    // data parallel (ZeRO-1): the flat parameters are cut into world shards of
    // zs.shard (llmc/comm.h); this rank keeps the fp32 master and AdamW state of
    // its shard only. One GPU: world 1, the shard is everything.
    int world, rank;
    ZeroShard zs;
    GpuComm* comm;       // the collectives (NULL: one GPU, nothing to communicate)
    // overlap (-ov 1, NCCL): in the last micro-batch's backward, each layer's
    // gradients are reduced to their owners on comm_stream as soon as they are
    // final (docs/distributed.md, "Overlap")
    int overlap;               // set before gpt_alloc
    int reducing;              // this backward reduces as it goes (overlap, last micro-batch)
    int reduced_pending;       // comm_stream has reduced this step's gradients; `reduced` marks the end
    cudaStream_t comm_stream;
    cudaEvent_t* layer_ready;  // (L + 1,): layer l's gradients are final (l = L: the rest of them)
    cudaEvent_t reduced;       // recorded on comm_stream after the last reduce of the step
    bf16* params;        // (zs.padded,) the bf16 weights the forward reads (all of them)
    float* master;       // (zs.shard,) fp32 master weights of this rank's shard
    float* grads;        // (zs.padded,) fp32; after the reduce-scatter [rank * shard, +shard) is this rank's mean
    float* m;            // (zs.shard,) AdamW moments of the shard
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

// gpt_plan_sharded: fills the memory groups (sizes only) for (B, T) on rank
// `rank` of `world` (ZeRO-1 shards); allocates nothing
static void gpt_plan_sharded(GPTCuda* m, const GPTConfig* c, int B, int T, int recompute, int world, int rank) {
    m->config = *c;
    param_layout_init(&m->layout, c);
    m->world = world;
    m->rank = rank;
    zero_shard_init(&m->zs, m->layout.num_parameters, world, rank);
    const size_t npad = m->zs.padded, nshard = m->zs.shard;
    m->B = B;
    m->T = T;
    m->recompute = recompute;
    size_t L = c->n_layer, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hd = C / NH, F = c->ffn_dim;
    size_t Vp = c->padded_vocab_size, QKV = (NH + 2 * NKV) * hd, BT = (size_t)B * T;
    size_t Lr = recompute ? 1 : L;  // layers kept of the recomputable tensors
    int seq = !c->parallel_block;
    const size_t H = sizeof(bf16), Fl = sizeof(float);
    MemGroup* g = m->groups;
    group_init(&g[0], "parameters (bf16 copy)");
    group_add(&g[0], &m->params, npad * H);
    group_init(&g[1], "master weights (fp32)");
    group_add(&g[1], &m->master, nshard * Fl);
    group_init(&g[2], "gradients (fp32)");
    group_add(&g[2], &m->grads, npad * Fl);
    group_init(&g[3], "optimizer state (fp32 m, v)");
    group_add(&g[3], &m->m, nshard * Fl);
    group_add(&g[3], &m->v, nshard * Fl);
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

// gpt_plan: the plan of one GPU (world 1)
static void gpt_plan(GPTCuda* m, const GPTConfig* c, int B, int T, int recompute) {
    gpt_plan_sharded(m, c, B, T, recompute, 1, 0);
}

static void gpt_print_plan(const GPTCuda* m, FILE* fp) {
    const MemPlan* p = &m->plan;
    const double G = 1073741824.0;
    fprintf(fp, "memory plan (B %d, T %d%s, lm_head chunk %d rows):\n", m->B, m->T,
            m->recompute ? ", recompute" : "", m->chunk);
    if (m->world > 1) {
        fprintf(fp, "  ZeRO-1: master weights and optimizer state of a shard of %zu parameters (1/%d)\n", m->zs.shard,
                m->world);
    }
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
    if (m->overlap) {
        cudaCheck(cudaStreamCreateWithFlags(&m->comm_stream, cudaStreamNonBlocking));
        m->layer_ready = (cudaEvent_t*)mallocCheck((size_t)(m->config.n_layer + 1) * sizeof(cudaEvent_t));
        for (int l = 0; l <= m->config.n_layer; l++) {
            cudaCheck(cudaEventCreateWithFlags(&m->layer_ready[l], cudaEventDisableTiming));
        }
        cudaCheck(cudaEventCreateWithFlags(&m->reduced, cudaEventDisableTiming));
    }
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
    cudaCheck(cudaMemset(m->params, 0, m->zs.padded * sizeof(bf16)));  // the padding is never written
    cudaCheck(cudaMemset(m->master, 0, m->zs.shard * sizeof(float)));
    cudaCheck(cudaMemset(m->m, 0, m->zs.shard * sizeof(float)));
    cudaCheck(cudaMemset(m->v, 0, m->zs.shard * sizeof(float)));
    cudaCheck(cudaMemset(m->grads, 0, m->zs.padded * sizeof(float)));
}

static void gpt_free_cuda(GPTCuda* m) {
    matmul_context_free(&m->mm);
    for (int i = 0; i < 6; i++) {
        if (m->groups[i].base != NULL) { cudaCheck(cudaFree(m->groups[i].base)); }
    }
    cudaCheck(cudaStreamDestroy(m->stream));
    if (m->overlap) {
        for (int l = 0; l <= m->config.n_layer; l++) { cudaCheck(cudaEventDestroy(m->layer_ready[l])); }
        free(m->layer_ready);
        cudaCheck(cudaEventDestroy(m->reduced));
        cudaCheck(cudaStreamDestroy(m->comm_stream));
    }
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

// gpt_sync: waits for the model's stream; with collectives in flight, polling
// them (a dead peer ends the job instead of hanging it, llmc/comm_gpu.cuh)
static void gpt_sync(GPTCuda* m, const char* what) {
    if (m->comm != NULL) {
        gpu_comm_wait(m->comm, m->stream, what);
    } else {
        cudaCheck(cudaStreamSynchronize(m->stream));
    }
}

// shard_part: the part of parameter tensor t inside this rank's shard, [*lo, *hi)
// of the flat buffer (empty when lo == hi). One GPU: the whole tensor.
static void shard_part(const GPTCuda* m, int t, size_t* lo, size_t* hi) {
    size_t off = m->layout.offsets[t], end = off + m->layout.sizes[t];
    *lo = off > m->zs.start ? off : m->zs.start;
    *hi = end < m->zs.end ? end : m->zs.end;
    if (*hi < *lo) { *hi = *lo; }
}

// gpt_upload_master: master (num_parameters,) host fp32 -> the GPU's master and its
// bf16 copy: round to nearest (after_step < 0: a fresh or loaded model) or the
// stochastic rounding optimizer step after_step wrote (a resumed run)
static void gpt_upload_master(GPTCuda* m, const float* master, int after_step, uint64_t run_seed) {
    const ZeroShard* z = &m->zs;  // this rank's shard of master; every rank rounds its own, then all-gather
    cudaCheck(cudaMemcpy(m->master, master + z->start, (z->end - z->start) * sizeof(float), cudaMemcpyHostToDevice));
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        size_t lo, hi, off = m->layout.offsets[t];
        shard_part(m, t, &lo, &hi);
        const float* src = m->master + (lo - z->start);
        if (after_step < 0) {
            params_to_bf16_rne(m->params + lo, src, hi - lo, m->stream);
        } else {
            params_to_bf16_sr_at(m->params + lo, src, hi - lo, lo - off, sr_seed(run_seed, after_step, t), m->stream);
        }
    }
    if (m->comm != NULL) { gpu_comm_allgather_bf16(m->comm, m->params, z, m->stream); }
    gpt_sync(m, "the weights upload");
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

// gradients_ready: the backward (on m->stream) has finished writing the gradients
// of layer l (l = L: of everything else: wte, lnf, lm_w, padding); comm_stream waits
// for that and reduces them to their owners (gpu_comm_reduce_to_owners). The
// layout is per tensor with L leading, so layer l is one slice of each of the 8
// per-layer tensors. The last call records m->reduced, which the optimizer's
// stream waits for (gpt_reduce_grads).
static void gradients_ready(GPTCuda* m, int l) {
    const int L = m->config.n_layer;
    const ParamLayout* pl = &m->layout;
    cudaCheck(cudaEventRecord(m->layer_ready[l], m->stream));
    cudaCheck(cudaStreamWaitEvent(m->comm_stream, m->layer_ready[l], 0));
    if (l < L) {
        for (int t = P_LN1; t <= P_FCPROJ; t++) {
            size_t per = pl->sizes[t] / L, lo = pl->offsets[t] + (size_t)l * per;
            gpu_comm_reduce_to_owners(m->comm, m->grads, lo, lo + per, &m->zs, m->comm_stream);
        }
        return;
    }
    // the tensors without a layer index, and the padding (zeros everywhere: its sums are zeros)
    const int rest[3] = {P_WTE, P_LNF, P_LMW};
    for (int i = 0; i < 3; i++) {
        size_t lo = pl->offsets[rest[i]];
        gpu_comm_reduce_to_owners(m->comm, m->grads, lo, lo + pl->sizes[rest[i]], &m->zs, m->comm_stream);
    }
    gpu_comm_reduce_to_owners(m->comm, m->grads, pl->num_parameters, m->zs.padded, &m->zs, m->comm_stream);
    cudaCheck(cudaEventRecord(m->reduced, m->comm_stream));
    m->reduced_pending = 1;
}

// gpt_backward: after gpt_forward(..., train = 1): adds the gradient of
// loss_scale * mean(losses) to m->grads (fp32, +=; the caller zeroes them per step).
// With m->reducing, each layer's gradients are handed to comm_stream as soon as
// they are final (gradients_ready).
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
        if (m->reducing) { gradients_ready(m, l); }
    }
    encoder_backward(grad_ptr(m, P_WTE), w->buckets, m->buckets_host, w->dres, BT, C, st);
    if (m->reducing) { gradients_ready(m, L); }
}

static void gpt_zero_grad_cuda(GPTCuda* m) {
    cudaCheck(cudaMemsetAsync(m->grads, 0, m->zs.padded * sizeof(float), m->stream));
}

// gpt_reduce_grads: once per optimizer step, after the last micro-step's
// backward: this rank's shard of the gradients becomes their mean over the ranks
// (the sum, then 1/world). With overlap the sums were made on comm_stream during
// the backward (gradients_ready): m->stream waits for the last of them. Without,
// one reduce-scatter of the whole flat buffer here.
static void gpt_reduce_grads(GPTCuda* m) {
    if (m->comm == NULL || m->world == 1) { return; }
    if (m->reduced_pending) {
        cudaCheck(cudaStreamWaitEvent(m->stream, m->reduced, 0));
        m->reduced_pending = 0;
    } else {
        gpu_comm_reduce_scatter_sum(m->comm, m->grads, &m->zs, m->stream);
    }
    scale_f32(m->grads + m->zs.start, m->zs.end - m->zs.start, 1.0f / m->world, m->stream);
}

// the sum of squares of this rank's shard of the gradients (synchronizes)
static float gpt_grad_sumsq_cuda(GPTCuda* m) {
    global_norm_squared(m->work.norm2, m->work.red, m->grads + m->zs.start, m->zs.end - m->zs.start, m->stream);
    float n2 = 0.0f;
    cudaCheck(cudaMemcpyAsync(&n2, m->work.norm2, sizeof(float), cudaMemcpyDeviceToHost, m->stream));
    gpt_sync(m, "the gradient norm");
    return n2;
}

// the global L2 norm of the gradients of one GPU (synchronizes; test/test_gpt.cu)
[[maybe_unused]] static float gpt_grad_norm_cuda(GPTCuda* m) {
    return sqrtf(gpt_grad_sumsq_cuda(m));
}

// AdamW at 0-based optimizer step `step` (bias correction t = step + 1), gradients
// scaled by grad_scale; weight decay on the matrices only (param_is_decayed). On
// this rank's shard of every tensor, with the rounding bits of the whole tensor
// (adamw_update_at), then the bf16 shards are all-gathered: the weights are the
// same bits whatever the number of ranks, given the same gradients.
static void gpt_update_cuda(GPTCuda* m, float lr, float weight_decay, float grad_scale, int step, uint64_t run_seed) {
    const size_t s0 = m->zs.start;
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        size_t lo, hi, off = m->layout.offsets[t];
        shard_part(m, t, &lo, &hi);
        float wd = param_is_decayed(t) ? weight_decay : 0.0f;
        adamw_update_at(m->master + (lo - s0), m->params + lo, m->m + (lo - s0), m->v + (lo - s0), m->grads + lo,
                        hi - lo, lo - off, lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, wd, grad_scale, step + 1,
                        sr_seed(run_seed, step, t), m->stream);
    }
    if (m->comm != NULL) { gpu_comm_allgather_bf16(m->comm, m->params, &m->zs, m->stream); }
}

// a skipped step still "writes" its bf16 copy, so that after any step s the copy is
// the rounding of the master with step s's seeds (what a resume rebuilds)
static void gpt_skip_update_cuda(GPTCuda* m, int step, uint64_t run_seed) {
    const size_t s0 = m->zs.start;
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        size_t lo, hi, off = m->layout.offsets[t];
        shard_part(m, t, &lo, &hi);
        params_to_bf16_sr_at(m->params + lo, m->master + (lo - s0), hi - lo, lo - off, sr_seed(run_seed, step, t),
                             m->stream);
    }
    if (m->comm != NULL) { gpu_comm_allgather_bf16(m->comm, m->params, &m->zs, m->stream); }
}

// gpt_master_to_host: the whole fp32 master (num_parameters,) into host on every
// rank (all-gathered through the gradient buffer, free between steps), and this
// rank's shard of m, v (zs.end - zs.start each) into m_host, v_host (checkpoints)
static void gpt_master_to_host(GPTCuda* m, float* host, float* m_host, float* v_host) {
    const ZeroShard* z = &m->zs;
    size_t own = z->end - z->start;
    if (m->world == 1) {
        cudaCheck(cudaMemcpy(host, m->master, z->n * sizeof(float), cudaMemcpyDeviceToHost));
    } else {
        cudaCheck(cudaMemcpyAsync(m->grads + z->start, m->master, own * sizeof(float), cudaMemcpyDeviceToDevice,
                                  m->stream));
        gpu_comm_allgather_f32(m->comm, m->grads, z, m->stream);
        cudaCheck(cudaMemcpyAsync(host, m->grads, z->n * sizeof(float), cudaMemcpyDeviceToHost, m->stream));
        gpt_sync(m, "the master weights to the host");
    }
    cudaCheck(cudaMemcpy(m_host, m->m, own * sizeof(float), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(v_host, m->v, own * sizeof(float), cudaMemcpyDeviceToHost));
}

// ----------------------------------------------------------------------------
// the training program

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

// The optimizer step (gradient accumulation, the norm over ranks, clipping, the
// non-finite skip) is llmc/train_loop.h's train_loop; these two are its GPU
// operations (called through forward_backward_gpu / reduce_grads_gpu below).

// one micro-batch: the forward with targets and the backward, adding
// loss_scale * d(mean loss) to m->grads; last: the optimizer step's last
// micro-batch, after which the gradients are final. Returns the mean loss.
static float gpt_forward_backward(GPTCuda* m, const int* inputs, const int* targets, int B, int T, float zloss,
                                  float loss_scale, int last) {
    gpt_forward(m, inputs, targets, B, T, zloss, loss_scale, 1);
    m->reducing = m->overlap && last;
    gpt_backward(m, B, T);
    m->reducing = 0;
    return m->mean_loss;
}

// after the last micro-batch: this rank's shard of the mean gradient over the
// ranks, and that shard's sum of squares (synchronizes)
static double gpt_reduce_grads_sumsq(GPTCuda* m) {
    gpt_reduce_grads(m);
    return (double)gpt_grad_sumsq_cuda(m);
}

// the model-specific halves of train_loop.h's evaluation and sampling loops
static float forward_loss_cuda(void* model, const int* inputs, const int* targets, int B, int T, float zloss) {
    GPTCuda* m = (GPTCuda*)model;
    gpt_forward(m, inputs, targets, B, T, zloss, 1.0f, 0);
    return m->mean_loss;
}

static const float* next_logits_cuda(void* model, const int* tokens, int t, float* scratch) {
    GPTCuda* m = (GPTCuda*)model;
    gpt_forward(m, tokens, NULL, 1, t, 0.0f, 1.0f, 0);
    gpt_logits(m, t - 1, 1, scratch);
    return scratch;
}

// save_checkpoint: the fp32 master and AdamW moments come back to the host buffers
// of `host` (the CPU model that loaded or initialised the weights); then, as the
// CPU trainer (train_write_checkpoint): the state file first, the model file last,
// old ones removed
static void barrier_comm_cuda(const void* comm) { comm_barrier((const Comm*)comm); }

static void save_checkpoint(GPTCuda* m, GPT* host, const char* dir, const TrainState* st, int keep, const Comm* comm) {
    size_t n = m->layout.num_parameters;
    if (host->m_memory == NULL) {
        host->m_memory = (float*)mallocCheck(n * sizeof(float));
        host->v_memory = (float*)mallocCheck(n * sizeof(float));
    }
    // the whole master (for rank 0's model file) and this rank's shard of m, v
    gpt_master_to_host(m, host->params_memory, host->m_memory, host->v_memory);
    train_write_checkpoint(dir, st, host->params_memory + st->shard_offset, host->m_memory, host->v_memory,
                           &m->config, host->params_memory, comm->world > 1 ? barrier_comm_cuda : NULL, comm);
    if (keep > 0) { remove_old_checkpoints_ranks(dir, keep, comm); }
}

#ifndef TESTING
// ----------------------------------------------------------------------------
// the model operations of the shared training loop (llmc/train_loop.h)

typedef struct {
    GPTCuda* m;
    GPT* host;  // the host model: its buffers receive the master weights for checkpoints
    float weight_decay;
    uint64_t run_seed;
} GpuTrainer;

static void zero_grad_gpu(void* ctx) { gpt_zero_grad_cuda(((GpuTrainer*)ctx)->m); }

static float forward_backward_gpu(void* ctx, const int* inputs, const int* targets, int B, int T, float zloss,
                                  float loss_scale, int last) {
    return gpt_forward_backward(((GpuTrainer*)ctx)->m, inputs, targets, B, T, zloss, loss_scale, last);
}

static double reduce_grads_gpu(void* ctx) { return gpt_reduce_grads_sumsq(((GpuTrainer*)ctx)->m); }

static void update_gpu(void* ctx, float lr, float grad_scale, int step) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    gpt_update_cuda(tr->m, lr, tr->weight_decay, grad_scale, step, tr->run_seed);
    gpt_sync(tr->m, "the optimizer step");
}

static void skip_update_gpu(void* ctx, int step) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    gpt_skip_update_cuda(tr->m, step, tr->run_seed);
    gpt_sync(tr->m, "the optimizer step");
}

static float forward_loss_gpu(void* ctx, const int* inputs, const int* targets, int B, int T, float zloss) {
    return forward_loss_cuda(((GpuTrainer*)ctx)->m, inputs, targets, B, T, zloss);
}

static const float* next_logits_gpu(void* ctx, const int* tokens, int t, float* scratch) {
    return next_logits_cuda(((GpuTrainer*)ctx)->m, tokens, t, scratch);
}

static void save_checkpoint_gpu(void* ctx, const char* dir, const TrainState* st, int keep, const Comm* comm) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    save_checkpoint(tr->m, tr->host, dir, st, keep, comm);
}

// the end-of-run line's GPU memory in use
static void summary_gpu(void* ctx) {
    (void)ctx;
    size_t free_b = 0, total_b = 0;
    cudaCheck(cudaMemGetInfo(&free_b, &total_b));
    printf(" | GPU memory in use %.2f GiB", (total_b - free_b) / 1073741824.0);
}

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
    // -cb nccl|mpi: how the ranks of a data-parallel job communicate (llmc/comm_gpu.cuh)
#ifdef USE_NCCL
    GpuCommBackend backend = GPU_COMM_NCCL;
#else
    GpuCommBackend backend = GPU_COMM_MPI;
#endif
    // -ov 0|1: the gradient reduction overlapped with the backward (NCCL; default 1)
    int overlap = 1;
    for (int i = 1; i + 1 < argc;) {
        const int cb = strcmp(argv[i], "-cb") == 0, ov = strcmp(argv[i], "-ov") == 0;
        if (cb || ov) {
            if (cb) { backend = gpu_comm_backend_parse(argv[i + 1]); }
            if (ov) { overlap = parse_int(argv[i + 1], "-ov", 0, 1); }
            for (int j = i; j + 2 < argc; j++) { argv[j] = argv[j + 2]; }
            argc -= 2;
        } else {
            i++;
        }
    }
    // the job: MPI when a launcher started us, RANK / WORLD_SIZE with LLMC_RENDEZVOUS,
    // else one process (docs/distributed.md)
    Comm comm;
    if (getenv("LLMC_RENDEZVOUS") != NULL) {
        comm_init_env(&comm);
    } else {
        comm_init(&comm, &argc, &argv);
    }
    const int rank = comm.rank, world = comm.world;
    TrainArgs args;
    train_args_defaults(&args);
    if (train_args_parse(&args, argc, argv)) {
        if (rank == 0) {
            train_args_usage(argv[0]);
            printf("  --plan      print the GPU memory plan for these flags and exit (needs no GPU)\n");
            printf("  -cb <s>     data-parallel communication: nccl (one process per GPU) or mpi (host-staged)"
#ifdef USE_NCCL
                   "; default nccl\n");
#else
                   "; this build has no NCCL: mpi only\n");
#endif
            printf("  -ov <0|1>   reduce each layer's gradients during the backward, on a stream of their own\n"
                   "              (NCCL; mpi reduces after the backward) (default 1)\n");
#ifdef USE_MPI
            printf("processes: built with MPI; mpirun -np N %s ... trains on N data-parallel processes "
                   "(docs/distributed.md)\n", argv[0]);
#else
            printf("processes: built without MPI; multi-GPU only with NCCL and LLMC_RENDEZVOUS (docs/distributed.md)\n");
#endif
#ifdef LLMC_EMU
            printf("device: this build runs the CUDA code on the CPU backend (emu/, docs/emu.md): semantics, not speed\n");
#endif
        }
        comm_free(&comm);
        return 0;
    }
    train_check_model_arg(&args);
    if (plan_only) {
        GPTConfig cfg;
        train_args_config(&args, &cfg);
        train_check_seq_len(&args, &cfg);
        GPTCuda pm;
        memset(&pm, 0, sizeof(pm));
        gpt_plan(&pm, &cfg, args.B, args.T, args.recompute);
        config_print(&cfg, stdout);
        printf("parameters: %zu | FLOPs per token: %.3e\n", pm.layout.num_parameters, model_flops_per_token(&cfg, args.T));
        gpt_print_plan(&pm, stdout);
        comm_free(&comm);
        return 0;
    }

    int dev_count = 0;
    cudaError_t derr = cudaGetDeviceCount(&dev_count);
    if (derr != cudaSuccess || dev_count == 0) {
        die("no CUDA device: %s\n---> HINT: this program needs an NVIDIA GPU and its driver; the CPU trainer is ./train_gpt",
            derr != cudaSuccess ? cudaGetErrorString(derr) : "none found");
    }
    // one process per GPU: the local rank picks it (-cb mpi may put several ranks on one)
    const int device = comm.local_rank % dev_count;
    cudaCheck(cudaSetDevice(device));
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, device));
    // the ranks agree on the flags before any other collective. Under MPI that
    // check goes first (a rank with another -cb would otherwise wait in NCCL's
    // setup); without MPI the host collectives need the NCCL communicator first.
    GpuComm gcomm;
    uint64_t backend_hash = HASH_SEED;
    HASH_FIELD(backend_hash, backend);
    HASH_FIELD(backend_hash, overlap);  // -ov decides the sequence of collectives
    if (comm.mpi || world == 1) {
        train_check_flags_agree(&comm, &args, "the communication flags (-cb, -ov)", backend_hash);
        gpu_comm_init(&gcomm, &comm, backend);
    } else {
        gpu_comm_init(&gcomm, &comm, backend);
        train_check_flags_agree(&comm, &args, "the communication flags (-cb, -ov)", backend_hash);
    }
    if (args.output_dir != NULL) { make_dir(args.output_dir); }

    // the model on the host first: from a preset, a checkpoint file, or the newest checkpoint of -o
    // (rank 0 picks it, so every rank resumes the same step)
    GPT host;
    const int resume_step = train_resume_step(&args, &comm);
    train_init_model(&host, &args, resume_step, rank);  // a preset: the same weights as ./train_gpt
    const GPTConfig* c = &host.config;
    train_check_seq_len(&args, c);

    GPTCuda model;
    memset(&model, 0, sizeof(model));
    gpt_plan_sharded(&model, c, args.B, args.T, args.recompute, world, rank);
    model.comm = gcomm.backend != GPU_COMM_NONE ? &gcomm : NULL;
    model.overlap = overlap && gpu_comm_can_overlap(model.comm);
    double flops_tok = model_flops_per_token(c, args.T);
    double peak = device_peak_bf16(&prop);
    if (rank == 0) {
        config_print(c, stdout);
        printf("device: %s (sm_%d%d, %.1f GiB, %d SMs) | peak bf16 %s\n", prop.name, prop.major, prop.minor,
               prop.totalGlobalMem / 1073741824.0, prop.multiProcessorCount,
               peak > 0 ? "known" : "unknown (MFU not shown)");
        printf("parameters: %zu | FLOPs per token: %.3e | processes: %d | communication: %s%s\n",
               model.layout.num_parameters, flops_tok, world, gpu_comm_backend_name(gcomm.backend),
               model.overlap ? ", overlapped with the backward"
               : world > 1 && overlap ? " (-ov 1 needs nccl: reduced after the backward)" : "");
        gpt_print_plan(&model, stdout);
    }
    gpt_alloc(&model);

    GpuTrainer tr = {&model, &host, args.weight_decay, args.seed};
    TrainOps ops;
    memset(&ops, 0, sizeof(ops));
    ops.model = &tr;
    ops.zero_grad = zero_grad_gpu;
    ops.forward_backward = forward_backward_gpu;
    ops.reduce_grads = reduce_grads_gpu;
    ops.update = update_gpu;
    ops.skip_update = skip_update_gpu;
    ops.forward_loss = forward_loss_gpu;
    ops.next_logits = next_logits_gpu;
    ops.sample_T = model.T;
    ops.save = save_checkpoint_gpu;
    ops.flops_per_token = flops_tok;
    ops.peak_flops = peak;
    ops.summary_extra = summary_gpu;

    // data
    DataLoader val_loader;
    const int have_val = train_open_val(&val_loader, &args, rank, world, c);
    // what every rank must agree on: the shard files
    uint64_t data_hash[2] = {0, have_val ? dataloader_files_hash(&val_loader) : 0};
    if (args.max_steps == 0) {  // evaluation only
        train_check_data_agree(&comm, c, data_hash, 0);
        gpt_upload_master(&model, host.params_memory, -1, args.seed);
        train_evaluate_only(&ops, &args, &comm, c, &val_loader);
        dataloader_free(&val_loader);
        gpt_free_cuda(&model);
        gpt_free(&host);
        gpu_comm_free(&gcomm);
        comm_free(&comm);
        return 0;
    }
    DataLoader loader;
    const BatchPlan plan = train_open_train(&loader, &args, &comm, c, data_hash);
    uint64_t rng = args.seed;  // the trainer's own RNG (sampling seeds): checkpointed

    const size_t n = model.layout.num_parameters;
    const size_t shard_len = model.zs.end - model.zs.start;  // this rank's ZeRO-1 shard
    const TrainState run = train_state_of_run(&args, world, rank, model.zs.start, shard_len, n, c, plan.grad_accum);
    int start_step = 0;
    if (resume_step >= 0) {
        host.m_memory = (float*)mallocCheck(n * sizeof(float));
        host.v_memory = (float*)mallocCheck(n * sizeof(float));
        TrainState st = train_resume_state(args.output_dir, resume_step, &run, host.params_memory + model.zs.start,
                                           host.m_memory, host.v_memory, &loader, plan.max_steps);
        rng = st.rng;
        start_step = st.step;
        // the bf16 copy exactly as the uninterrupted run had it after step start_step - 1
        gpt_upload_master(&model, host.params_memory, start_step - 1, args.seed);
        cudaCheck(cudaMemcpy(model.m, host.m_memory, shard_len * sizeof(float), cudaMemcpyHostToDevice));
        cudaCheck(cudaMemcpy(model.v, host.v_memory, shard_len * sizeof(float), cudaMemcpyHostToDevice));
    } else {
        gpt_upload_master(&model, host.params_memory, -1, args.seed);
    }

    train_loop(&ops, &args, &comm, c, &loader, have_val ? &val_loader : NULL, &plan, &run, start_step, rng,
               resume_step >= 0);

    if (have_val) { dataloader_free(&val_loader); }
    dataloader_free(&loader);
    gpt_free_cuda(&model);
    gpt_free(&host);
    gpu_comm_free(&gcomm);
    comm_free(&comm);
    return 0;
}
#endif
