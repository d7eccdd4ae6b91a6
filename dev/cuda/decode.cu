/*
Kernels of one decode step of infer.cu (llmc/decode.cuh), each checked against a CPU
reference and timed at model-sized shapes:

  matvec:           out (B, OC) = epilogue(rmsnorm(in) @ w^T), B <= 8 rows, bf16 weights.
                    Reference: llmc/gpt_cpu.h rmsnorm_forward + matmul_forward (+ swiglu_forward,
                    residual add, soft-cap) on the same bf16-rounded weights.
  attention_decode: QK-norm + RoPE of the new token, cache append, split-K attention over the
                    bf16 cache. Reference: gpt_cpu.h qknorm_rope_forward + attention_forward_cached
                    on the same bf16 cache contents. Run twice per shape: the merge counters must
                    reset themselves (a CUDA graph replays the step).
  sample:           greedy = sampler_argmax of llmc/sampler.h (ties: lowest id); top-k / top-p
                    draws stay inside the CPU's kept set; draw frequencies over a small vocabulary
                    match the softmax within 5 sigma; the next embedding row, pos and gen.

The timings flush L2 before each call (benchmark_kernel) and report the bytes a call must read
from HBM (weights, or the cache) per second.

Compile and run:
    make -C dev/cuda decode && ./dev/cuda/bin/decode

versions: matvec 1 (warp per row, 128-bit streaming weight loads, input rows staged in smem with the RMSNorm folded in, grid-stride over resident blocks); attention_decode 1 (block per (chunk, kv head, row), last block merges); sample 1 (block per row, bisection on float bits for top-k/top-p, block prefix sum)
*/
#include "common.h"
// the CPU references are the project's own model and sampler
#include "../../llmc/gpt_cpu.h"
#include "../../llmc/sampler.h"
#include "../../llmc/decode.cuh"

static int g_num_sms = 0;

// ----------------------------------------------------------------------------
// matvec

static const char* MODE_NAMES[] = {"store", "accum", "swiglu", "softcap"};

// CPU: out (B, OC) from in (B, K), w (rows, K) with rows = 2 OC for swiglu
static void matvec_cpu(float* out, const float* in, const float* w, const float* nw, const float* extra, int B,
                       int OC, int K, int mode, float eps, float cap) {
    int rows = mode == MV_SWIGLU ? 2 * OC : OC;
    float* h = (float*)mallocCheckHost((size_t)B * K * sizeof(float), "h");
    float* rstd = (float*)mallocCheckHost(B * sizeof(float), "rstd");
    float* r = (float*)mallocCheckHost((size_t)B * rows * sizeof(float), "r");
    if (nw != NULL) {
        rmsnorm_forward(h, rstd, in, nw, B, K, eps);
    } else {
        memcpy(h, in, (size_t)B * K * sizeof(float));
    }
    matmul_forward(r, h, w, B, K, rows);
    if (mode == MV_SWIGLU) {
        swiglu_forward(out, r, B, OC);
    } else {
        for (size_t i = 0; i < (size_t)B * OC; i++) {
            if (mode == MV_STORE) out[i] = r[i];
            else if (mode == MV_ACCUM) out[i] += r[i] + (extra != NULL ? extra[i] : 0.0f);
            else out[i] = cap > 0.0f ? cap * tanhf(r[i] / cap) : r[i];
        }
    }
    free(h); free(rstd); free(r);
}

static int check_matvec(int B, int OC, int K, int mode, int use_norm, HostRng* rng) {
    int rows = mode == MV_SWIGLU ? 2 * OC : OC;
    size_t BO = (size_t)B * OC;
    float* in = random_f32(rng, (size_t)B * K, 1.0f, 0.0f, 0);
    float* w = random_f32(rng, (size_t)rows * K, 0.02f, 0.0f, 1);
    float* nw = random_f32(rng, K, 0.1f, 1.0f, 1);
    float* extra = random_f32(rng, BO, 0.5f, 0.0f, 0);
    float* out0 = random_f32(rng, BO, 1.0f, 0.0f, 0);  // the residual the ACCUM mode adds onto
    float* ref = (float*)mallocCheckHost(BO * sizeof(float), "ref");
    memcpy(ref, out0, BO * sizeof(float));
    const float* ex = mode == MV_ACCUM ? extra : NULL;
    matvec_cpu(ref, in, w, use_norm ? nw : NULL, ex, B, OC, K, mode, 1e-5f, 30.0f);
    float *d_in = device_f32_from(in, (size_t)B * K), *d_out = device_f32_from(out0, BO);
    float* d_extra = device_f32_from(extra, BO);
    bf16 *d_w = device_bf16_from(w, (size_t)rows * K), *d_nw = device_bf16_from(nw, K);
    printf("  matvec B=%d OC=%d K=%d %s%s\n", B, OC, K, MODE_NAMES[mode], use_norm ? " +rmsnorm" : "");
    matvec_forward(d_out, d_in, d_w, use_norm ? d_nw : NULL, mode == MV_ACCUM ? d_extra : NULL, B, OC, K, mode,
                   1e-5f, 30.0f, g_num_sms, 0);
    int ok = validate_result(d_out, ref, "out", BO, 1e-3f, 1e-3f);
    cudaCheck(cudaFree(d_in)); cudaCheck(cudaFree(d_out)); cudaCheck(cudaFree(d_extra));
    cudaCheck(cudaFree(d_w)); cudaCheck(cudaFree(d_nw));
    free(in); free(w); free(nw); free(extra); free(out0); free(ref);
    return ok;
}

static void bench_matvec(const char* what, int B, int OC, int K, int mode, HostRng* rng) {
    int rows = mode == MV_SWIGLU ? 2 * OC : OC;
    float* in = random_f32(rng, (size_t)B * K, 1.0f, 0.0f, 0);
    float* w = random_f32(rng, (size_t)rows * K, 0.02f, 0.0f, 1);
    float* nw = random_f32(rng, K, 0.1f, 1.0f, 1);
    float *d_in = device_f32_from(in, (size_t)B * K), *d_out;
    bf16 *d_w = device_bf16_from(w, (size_t)rows * K), *d_nw = device_bf16_from(nw, K);
    cudaCheck(cudaMalloc(&d_out, (size_t)B * OC * sizeof(float)));
    cudaCheck(cudaMemset(d_out, 0, (size_t)B * OC * sizeof(float)));
    const bf16* norm = mode == MV_ACCUM ? NULL : d_nw;
    float ms = benchmark_kernel(BENCH_REPEATS, [&]() {
        matvec_forward(d_out, d_in, d_w, norm, NULL, B, OC, K, mode, 1e-5f, 30.0f, g_num_sms, 0);
    });
    double bytes = (double)rows * K * sizeof(bf16);
    printf("  matvec %-22s B=%d OC=%-6d K=%-5d %-7s | %.4f ms | weights %.1f GB/s\n", what, B, OC, K, MODE_NAMES[mode],
           ms, bytes / ms / 1e6);
    cudaCheck(cudaFree(d_in)); cudaCheck(cudaFree(d_out)); cudaCheck(cudaFree(d_w)); cudaCheck(cudaFree(d_nw));
    free(in); free(w); free(nw);
}

// ----------------------------------------------------------------------------
// attention over the cache

typedef struct {
    int B, max_T, NH, NKV, hd, qk_norm;
} AttnShape;

// builds a random bf16 cache and qkv, positions pos (B,) (row b sees keys 0..pos[b]), and
// the CPU reference y (B, NH hd) plus the expected new cache entries
static int check_attention(AttnShape sh, const int* pos, HostRng* rng) {
    int B = sh.B, max_T = sh.max_T, NH = sh.NH, NKV = sh.NKV, hd = sh.hd, half = hd / 2;
    int QKV = (NH + 2 * NKV) * hd, chunk = attention_decode_chunk(max_T), S = ceil_div((size_t)max_T, chunk);
    float eps = 1e-5f;
    size_t cache_n = (size_t)B * max_T * NKV * hd;
    float* kc = random_f32(rng, cache_n, 1.0f, 0.0f, 1);
    float* vc = random_f32(rng, cache_n, 1.0f, 0.0f, 1);
    float* qkv = random_f32(rng, (size_t)B * QKV, 1.0f, 0.0f, 0);
    float* qw = random_f32(rng, hd, 0.1f, 1.0f, 1);
    float* kw = random_f32(rng, hd, 0.1f, 1.0f, 1);
    float* cs = (float*)mallocCheckHost((size_t)max_T * half * sizeof(float), "cos");
    float* sn = (float*)mallocCheckHost((size_t)max_T * half * sizeof(float), "sin");
    rope_init(cs, sn, max_T, hd, 10000.0f);
    // device copies first: the CPU reference then overwrites the new entries in its own copy
    bf16 *d_kc = device_bf16_from(kc, cache_n), *d_vc = device_bf16_from(vc, cache_n);
    bf16 *d_qw = device_bf16_from(qw, hd), *d_kw = device_bf16_from(kw, hd);
    float *d_qkv = device_f32_from(qkv, (size_t)B * QKV), *d_cs = device_f32_from(cs, (size_t)max_T * half);
    float* d_sn = device_f32_from(sn, (size_t)max_T * half);
    int* d_pos;
    cudaCheck(cudaMalloc(&d_pos, B * sizeof(int)));
    cudaCheck(cudaMemcpy(d_pos, pos, B * sizeof(int), cudaMemcpyHostToDevice));
    float *d_y, *d_acc, *d_ml;
    int* d_cnt;
    cudaCheck(cudaMalloc(&d_y, (size_t)B * NH * hd * sizeof(float)));
    cudaCheck(cudaMalloc(&d_acc, (size_t)B * NH * S * hd * sizeof(float)));
    cudaCheck(cudaMalloc(&d_ml, (size_t)B * NH * S * 2 * sizeof(float)));
    cudaCheck(cudaMalloc(&d_cnt, B * NKV * sizeof(int)));
    cudaCheck(cudaMemset(d_cnt, 0, B * NKV * sizeof(int)));

    // CPU reference, row by row (each row has its own position)
    float* y = (float*)mallocCheckHost((size_t)B * NH * hd * sizeof(float), "y");
    float* q = (float*)mallocCheckHost((size_t)NH * hd * sizeof(float), "q");
    float* kn = (float*)mallocCheckHost((size_t)NKV * hd * sizeof(float), "kn");
    float* rstd = (float*)mallocCheckHost((NH + NKV) * sizeof(float), "rstd");
    float* scores = (float*)mallocCheckHost((size_t)NH * max_T * sizeof(float), "scores");
    for (int b = 0; b < B; b++) {
        const float* row = qkv + (size_t)b * QKV;
        qknorm_rope_forward(q, kn, rstd, row, qw, kw, cs, sn, 1, 1, pos[b], NH, NKV, hd, sh.qk_norm, eps);
        float* kcb = kc + (size_t)b * max_T * NKV * hd;
        float* vcb = vc + (size_t)b * max_T * NKV * hd;
        for (int i = 0; i < NKV * hd; i++) {  // the cache holds bf16
            kcb[(size_t)pos[b] * NKV * hd + i] = round_bf16(kn[i]);
            vcb[(size_t)pos[b] * NKV * hd + i] = round_bf16(row[(size_t)(NH + NKV) * hd + i]);
        }
        attention_forward_cached(y + (size_t)b * NH * hd, scores, q, kcb, vcb, 1, 1, pos[b], max_T, NH, NKV, hd);
    }
    int ok = 1;
    for (int rep = 0; rep < 2; rep++) {  // the second run needs the counters the first one reset
        printf("  attention_decode B=%d max_T=%d NH=%d NKV=%d hd=%d qk_norm=%d pos[0]=%d chunk=%d run %d\n", B, max_T,
               NH, NKV, hd, sh.qk_norm, pos[0], chunk, rep + 1);
        cudaCheck(cudaMemset(d_y, 0, (size_t)B * NH * hd * sizeof(float)));
        attention_decode_forward(d_y, d_acc, d_ml, d_cnt, d_kc, d_vc, d_qkv, d_qw, d_kw, d_cs, d_sn, d_pos, B, max_T,
                                 NH, NKV, hd, chunk, sh.qk_norm, eps, 0);
        ok &= validate_result(d_y, y, "y", (size_t)B * NH * hd, 2e-3f, 1e-2f);
    }
    // the new keys may differ by one bf16 step where fp32 rounding differs: 1e-2 relative
    ok &= validate_result(d_kc, kc, "kcache", cache_n, 1e-2f, 1e-2f);
    ok &= validate_result(d_vc, vc, "vcache", cache_n, 0.0f, 0.0f);
    cudaCheck(cudaFree(d_kc)); cudaCheck(cudaFree(d_vc)); cudaCheck(cudaFree(d_qw)); cudaCheck(cudaFree(d_kw));
    cudaCheck(cudaFree(d_qkv)); cudaCheck(cudaFree(d_cs)); cudaCheck(cudaFree(d_sn)); cudaCheck(cudaFree(d_pos));
    cudaCheck(cudaFree(d_y)); cudaCheck(cudaFree(d_acc)); cudaCheck(cudaFree(d_ml)); cudaCheck(cudaFree(d_cnt));
    free(kc); free(vc); free(qkv); free(qw); free(kw); free(cs); free(sn); free(y); free(q); free(kn); free(rstd);
    free(scores);
    return ok;
}

static void bench_attention(int B, int max_T, int NH, int NKV, int hd, int p, HostRng* rng) {
    int QKV = (NH + 2 * NKV) * hd, half = hd / 2, chunk = attention_decode_chunk(max_T);
    int S = ceil_div((size_t)max_T, chunk);
    size_t cache_n = (size_t)B * max_T * NKV * hd;
    float* kc = random_f32(rng, cache_n, 1.0f, 0.0f, 1);
    float* qkv = random_f32(rng, (size_t)B * QKV, 1.0f, 0.0f, 0);
    float* ones = random_f32(rng, (size_t)max_T * half, 0.0f, 1.0f, 1);
    bf16 *d_kc = device_bf16_from(kc, cache_n), *d_vc = device_bf16_from(kc, cache_n);
    bf16* d_w = device_bf16_from(ones, hd);
    float *d_qkv = device_f32_from(qkv, (size_t)B * QKV), *d_cs = device_f32_from(ones, (size_t)max_T * half);
    int* pos = (int*)mallocCheckHost(B * sizeof(int), "pos");
    for (int b = 0; b < B; b++) { pos[b] = p; }
    int *d_pos, *d_cnt;
    float *d_y, *d_acc, *d_ml;
    cudaCheck(cudaMalloc(&d_pos, B * sizeof(int)));
    cudaCheck(cudaMemcpy(d_pos, pos, B * sizeof(int), cudaMemcpyHostToDevice));
    cudaCheck(cudaMalloc(&d_y, (size_t)B * NH * hd * sizeof(float)));
    cudaCheck(cudaMalloc(&d_acc, (size_t)B * NH * S * hd * sizeof(float)));
    cudaCheck(cudaMalloc(&d_ml, (size_t)B * NH * S * 2 * sizeof(float)));
    cudaCheck(cudaMalloc(&d_cnt, B * NKV * sizeof(int)));
    cudaCheck(cudaMemset(d_cnt, 0, B * NKV * sizeof(int)));
    float ms = benchmark_kernel(BENCH_REPEATS, [&]() {
        attention_decode_forward(d_y, d_acc, d_ml, d_cnt, d_kc, d_vc, d_qkv, d_w, d_w, d_cs, d_cs, d_pos, B, max_T,
                                 NH, NKV, hd, chunk, 1, 1e-5f, 0);
    });
    double bytes = 2.0 * B * (p + 1) * NKV * hd * sizeof(bf16);
    printf("  attention_decode B=%d NH=%d NKV=%d hd=%d keys=%-5d | %.4f ms | cache %.1f GB/s\n", B, NH, NKV, hd, p + 1,
           ms, bytes / ms / 1e6);
    cudaCheck(cudaFree(d_kc)); cudaCheck(cudaFree(d_vc)); cudaCheck(cudaFree(d_w)); cudaCheck(cudaFree(d_qkv));
    cudaCheck(cudaFree(d_cs)); cudaCheck(cudaFree(d_pos)); cudaCheck(cudaFree(d_y)); cudaCheck(cudaFree(d_acc));
    cudaCheck(cudaFree(d_ml)); cudaCheck(cudaFree(d_cnt));
    free(kc); free(qkv); free(ones); free(pos);
}

// ----------------------------------------------------------------------------
// sampling

typedef struct {
    int *out, *gen, *pos;
    float *x, *probs, *logits;
    uint64_t* rng;
    bf16* wte;
} SampleBufs;

static SampleBufs sample_bufs(int B, int Vp, int C, int steps, const float* wte, uint64_t seed) {
    SampleBufs s;
    cudaCheck(cudaMalloc(&s.out, (size_t)steps * B * sizeof(int)));
    cudaCheck(cudaMalloc(&s.gen, B * sizeof(int)));
    cudaCheck(cudaMalloc(&s.pos, B * sizeof(int)));
    cudaCheck(cudaMemset(s.gen, 0, B * sizeof(int)));
    cudaCheck(cudaMemset(s.pos, 0, B * sizeof(int)));
    cudaCheck(cudaMalloc(&s.x, (size_t)B * C * sizeof(float)));
    cudaCheck(cudaMalloc(&s.probs, (size_t)B * Vp * sizeof(float)));
    cudaCheck(cudaMalloc(&s.logits, (size_t)B * Vp * sizeof(float)));
    cudaCheck(cudaMalloc(&s.rng, B * sizeof(uint64_t)));
    uint64_t* r = (uint64_t*)mallocCheckHost(B * sizeof(uint64_t), "rng");
    for (int b = 0; b < B; b++) { r[b] = seed + b; }
    cudaCheck(cudaMemcpy(s.rng, r, B * sizeof(uint64_t), cudaMemcpyHostToDevice));
    free(r);
    s.wte = device_bf16_from(wte, (size_t)Vp * C);
    return s;
}

static void sample_bufs_free(SampleBufs* s) {
    cudaCheck(cudaFree(s->out)); cudaCheck(cudaFree(s->gen)); cudaCheck(cudaFree(s->pos)); cudaCheck(cudaFree(s->x));
    cudaCheck(cudaFree(s->probs)); cudaCheck(cudaFree(s->logits)); cudaCheck(cudaFree(s->rng));
    cudaCheck(cudaFree(s->wte));
}

// the CPU sampler's kept set (sorted by probability) for top-k / top-p: is id in it?
static int in_kept_set(const float* logits, int V, float temperature, int top_k, float top_p, int id) {
    Sampler s;
    sampler_init(&s, V, temperature, top_k, top_p, 1);
    float maxv = logits[sampler_argmax(logits, V)];
    double sum = 0.0;
    for (int i = 0; i < V; i++) { s.probs[i] = expf((logits[i] - maxv) / temperature); sum += s.probs[i]; }
    for (int i = 0; i < V; i++) { s.probs[i] = (float)(s.probs[i] / sum); s.index[i] = i; }
    sampler_sort_desc(s.probs, s.index, s.tmp, V);
    int n = V;
    if (top_k > 0 && top_k < n) { n = top_k; }
    if (top_p < 1.0f) {
        double cum = 0.0;
        for (int i = 0; i < n; i++) { cum += s.probs[s.index[i]]; if (cum >= top_p) { n = i + 1; break; } }
    }
    float tail = s.probs[s.index[n - 1]];  // ties with the last kept value count as kept (see decode.cuh)
    int kept = s.probs[id] >= tail;
    sampler_free(&s);
    return kept;
}

static int check_sample(int B, int V, int Vp, int C, HostRng* rng) {
    int ok = 1;
    float* logits = random_f32(rng, (size_t)B * Vp, 3.0f, 0.0f, 0);
    for (int b = 0; b < B; b++) {  // a tie for the max: the lower id must win
        logits[(size_t)b * Vp + V / 3] = 20.0f;
        logits[(size_t)b * Vp + V / 2] = 20.0f;
        for (int i = V; i < Vp; i++) { logits[(size_t)b * Vp + i] = 100.0f; }  // padding is never a candidate
    }
    float* wte = random_f32(rng, (size_t)Vp * C, 1.0f, 0.0f, 1);
    SampleBufs s = sample_bufs(B, Vp, C, 64, wte, 42);
    cudaCheck(cudaMemcpy(s.logits, logits, (size_t)B * Vp * sizeof(float), cudaMemcpyHostToDevice));
    printf("  sample greedy B=%d V=%d\n", B, V);
    sample_forward(s.out, s.gen, s.pos, s.x, s.rng, s.probs, s.logits, s.wte, B, V, Vp, C, 0.0f, 0, 1.0f, 0);
    int* tok = (int*)mallocCheckHost(64 * B * sizeof(int), "tok");
    cudaCheck(cudaMemcpy(tok, s.out, B * sizeof(int), cudaMemcpyDeviceToHost));
    float* xrow = (float*)mallocCheckHost((size_t)B * C * sizeof(float), "x");
    for (int b = 0; b < B; b++) {
        int want = sampler_argmax(logits + (size_t)b * Vp, V);
        if (tok[b] != want) { printf("    greedy row %d: gpu %d cpu %d FAIL\n", b, tok[b], want); ok = 0; }
        memcpy(xrow + (size_t)b * C, wte + (size_t)tok[b] * C, C * sizeof(float));
    }
    ok &= validate_result(s.x, xrow, "x=wte[tok]", (size_t)B * C, 0.0f, 0.0f);
    // top-k / top-p draws: 20 steps each, always inside the CPU's kept set
    const float temps[3] = {1.0f, 0.7f, 1.3f};
    const int ks[3] = {5, 0, 40};
    const float ps[3] = {1.0f, 0.5f, 0.9f};
    for (int c = 0; c < 3; c++) {
        printf("  sample T=%.1f top_k=%d top_p=%.2f B=%d V=%d: 20 draws per row\n", temps[c], ks[c], ps[c], B, V);
        cudaCheck(cudaMemset(s.gen, 0, B * sizeof(int)));
        for (int i = 0; i < 20; i++) {
            sample_forward(s.out, s.gen, s.pos, s.x, s.rng, s.probs, s.logits, s.wte, B, V, Vp, C, temps[c], ks[c],
                           ps[c], 0);
        }
        cudaCheck(cudaMemcpy(tok, s.out, 20 * B * sizeof(int), cudaMemcpyDeviceToHost));
        int bad = 0;
        for (int i = 0; i < 20 * B; i++) {
            int b = i % B;
            if (tok[i] < 0 || tok[i] >= V || !in_kept_set(logits + (size_t)b * Vp, V, temps[c], ks[c], ps[c], tok[i])) {
                bad++;
            }
        }
        printf("    %d of %d draws outside the kept set %s\n", bad, 20 * B, bad ? "FAIL" : "ok");
        ok &= bad == 0;
    }
    int h_pos[64], h_gen[64];
    cudaCheck(cudaMemcpy(h_pos, s.pos, B * sizeof(int), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(h_gen, s.gen, B * sizeof(int), cudaMemcpyDeviceToHost));
    if (h_pos[0] != 61 || h_gen[0] != 20) {
        printf("    pos %d (want 61) gen %d (want 20) FAIL\n", h_pos[0], h_gen[0]);
        ok = 0;
    }
    sample_bufs_free(&s);
    free(logits); free(wte); free(tok); free(xrow);
    return ok;
}

// draw frequencies over a small vocabulary against the softmax, one row, many draws
static int check_sample_distribution(HostRng* rng) {
    const int V = 12, Vp = 128, C = 8, N = 4000;
    float* logits = random_f32(rng, Vp, 1.0f, 0.0f, 0);
    float* wte = random_f32(rng, (size_t)Vp * C, 1.0f, 0.0f, 1);
    SampleBufs s = sample_bufs(1, Vp, C, N, wte, 7);
    cudaCheck(cudaMemcpy(s.logits, logits, Vp * sizeof(float), cudaMemcpyHostToDevice));
    for (int i = 0; i < N; i++) { sample_forward(s.out, s.gen, s.pos, s.x, s.rng, s.probs, s.logits, s.wte, 1, V, Vp, C, 1.0f, 0, 1.0f, 0); }
    int* tok = (int*)mallocCheckHost(N * sizeof(int), "tok");
    cudaCheck(cudaMemcpy(tok, s.out, N * sizeof(int), cudaMemcpyDeviceToHost));
    int count[12] = {0};
    for (int i = 0; i < N; i++) { if (tok[i] >= 0 && tok[i] < V) count[tok[i]]++; else count[0] = -N; }
    double maxv = -1e30, sum = 0.0;
    for (int i = 0; i < V; i++) { maxv = logits[i] > maxv ? logits[i] : maxv; }
    for (int i = 0; i < V; i++) { sum += exp(logits[i] - maxv); }
    int ok = 1;
    double worst = 0.0;
    for (int i = 0; i < V; i++) {
        double p = exp(logits[i] - maxv) / sum, sd = sqrt(N * p * (1 - p)) + 1e-9;
        double z = fabs(count[i] - N * p) / sd;
        worst = z > worst ? z : worst;
        if (z > 5.0) { ok = 0; }
    }
    printf("  sample distribution V=%d, %d draws: worst deviation %.2f sigma %s\n", V, N, worst, ok ? "ok" : "FAIL");
    sample_bufs_free(&s);
    free(logits); free(wte); free(tok);
    return ok;
}

static void bench_sample(int V, int Vp, float temperature, int top_k, float top_p, HostRng* rng) {
    int C = 768;
    float* logits = random_f32(rng, Vp, 3.0f, 0.0f, 0);
    float* wte = random_f32(rng, (size_t)Vp * C, 1.0f, 0.0f, 1);
    SampleBufs s = sample_bufs(1, Vp, C, 1 << 12, wte, 3);
    cudaCheck(cudaMemcpy(s.logits, logits, Vp * sizeof(float), cudaMemcpyHostToDevice));
    float ms = benchmark_kernel(BENCH_REPEATS, [&]() {
        cudaCheck(cudaMemsetAsync(s.gen, 0, sizeof(int), 0));
        sample_forward(s.out, s.gen, s.pos, s.x, s.rng, s.probs, s.logits, s.wte, 1, V, Vp, C, temperature, top_k,
                       top_p, 0);
    });
    printf("  sample V=%d T=%.1f top_k=%d top_p=%.2f | %.4f ms | logits %.1f GB/s\n", V, temperature, top_k, top_p, ms,
           V * 4.0 / ms / 1e6);
    sample_bufs_free(&s);
    free(logits); free(wte);
}

int main(void) {
    cudaCheck(cudaSetDevice(0));
    int optin;
    cudaCheck(cudaDeviceGetAttribute(&g_num_sms, cudaDevAttrMultiProcessorCount, 0));
    cudaCheck(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
    matvec_setup((size_t)optin);
    HostRng rng;
    rng_init(&rng, 1337);
    int ok = 1;

    const int Bs[] = {1, 3, 8, 11};  // 11: two launches (8 + 3)
    for (int bi = 0; bi < 4; bi++) {
        int B = Bs[bi];
        ok &= check_matvec(B, 320, 256, MV_STORE, 1, &rng);     // d2 qkv
        ok &= check_matvec(B, 256, 256, MV_ACCUM, 0, &rng);     // d2 attn proj, with the parallel block's extra
        ok &= check_matvec(B, 768, 256, MV_SWIGLU, 1, &rng);    // d2 fc
        ok &= check_matvec(B, 1280, 768, MV_STORE, 1, &rng);    // d12 qkv
        ok &= check_matvec(B, 768, 2048, MV_ACCUM, 0, &rng);    // d12 fc proj
        ok &= check_matvec(B, 1000, 136, MV_SOFTCAP, 1, &rng);  // a head with K not a multiple of 256
    }
    if (!small_only()) { ok &= check_matvec(2, 5504, 2048, MV_SWIGLU, 1, &rng); }  // 1b fc (large)

    const AttnShape shapes[] = {{1, 64, 4, 2, 64, 1}, {3, 256, 12, 4, 64, 1}, {2, 1024, 16, 4, 128, 1},
                                {2, 200, 16, 1, 128, 0}, {1, 2048, 20, 4, 64, 1}};
    for (int si = 0; si < 5; si++) {
        AttnShape sh = shapes[si];
        if (small_only() && sh.max_T >= 1024) { continue; }  // large
        int pos[3];
        const int firsts[3] = {0, 31, sh.max_T - 1};  // one key, a chunk boundary, a full cache
        for (int f = 0; f < 3; f++) {
            for (int b = 0; b < sh.B; b++) { pos[b] = (firsts[f] + 37 * b) % sh.max_T; }
            ok &= check_attention(sh, pos, &rng);
        }
    }

    if (!small_only()) { ok &= check_sample(3, 50257, 50304, 64, &rng); }  // large
    ok &= check_sample(2, 512, 512, 256, &rng);
    ok &= check_sample_distribution(&rng);
    if (!ok) {
        printf("decode: some checks FAILED\n");
        return 1;
    }
    printf("decode: all checks passed\n");
    if (!bench_wanted()) { return 0; }

    // timings at the shapes of a batch-1 decode step
    bench_matvec("d12 qkv", 1, 1280, 768, MV_STORE, &rng);
    bench_matvec("d12 attn proj", 1, 768, 768, MV_ACCUM, &rng);
    bench_matvec("d12 fc (swiglu)", 1, 2048, 768, MV_SWIGLU, &rng);
    bench_matvec("d12 fc proj", 1, 768, 2048, MV_ACCUM, &rng);
    bench_matvec("d12 lm_head", 1, 50304, 768, MV_SOFTCAP, &rng);
    bench_matvec("1b qkv", 1, 3072, 2048, MV_STORE, &rng);
    bench_matvec("1b fc (swiglu)", 1, 5504, 2048, MV_SWIGLU, &rng);
    bench_matvec("1b fc proj", 1, 2048, 5504, MV_ACCUM, &rng);
    bench_matvec("1b lm_head", 1, 50304, 2048, MV_SOFTCAP, &rng);
    bench_matvec("1b fc (swiglu)", 8, 5504, 2048, MV_SWIGLU, &rng);
    bench_attention(1, 1024, 12, 4, 64, 271, &rng);
    bench_attention(1, 1024, 16, 4, 128, 1023, &rng);
    bench_attention(8, 1024, 16, 4, 128, 1023, &rng);
    bench_sample(50257, 50304, 0.0f, 0, 1.0f, &rng);
    bench_sample(50257, 50304, 1.0f, 0, 1.0f, &rng);
    bench_sample(50257, 50304, 0.8f, 40, 0.9f, &rng);
    return 0;
}
