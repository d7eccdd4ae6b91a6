/*
 * matmul.cuh: every matmul of the model through cuBLASLt: bf16 inputs, fp32
 * accumulation, bf16 or fp32 outputs (llmc/gpt_cpu.h matmul_forward/backward is
 * the reference; dev/cuda/matmul.cu checks and times these calls).
 *
 * Every projection is out = inp @ weight^T with weight (OC, C) row-major, as
 * PyTorch stores nn.Linear weights. cuBLASLt is column-major, and a row-major
 * (R, K) buffer is the column-major (K, R) matrix, so each product is computed
 * transposed (llm.c's mapping):
 *   forward  out^T (OC, N)     = (W stored as (C, OC))^T (OC, C) @ inp^T (C, N)
 *   dinp^T   (C, N)            = W (C, OC) @ dout^T (OC, N)
 *   dweight^T (C, OC)          = inp^T (C, N) @ (dout^T (OC, N))^T
 * "accumulate" sets beta = 1: D = A B + D. That is the fused epilogue this model
 * can use (there are no biases and no GELU): the fp32 weight gradients accumulate
 * across micro-steps and lm_head chunks inside the matmul, and in the parallel
 * block the MLP branch is added onto the attention branch, and the ln1 gradient of
 * the MLP onto that of attention, without extra passes.
 *
 * The handle and the workspace belong to the program (a MatmulContext it creates
 * and passes in), never to a global. Results are deterministic for a given GPU,
 * shape, alignment and workspace size: the heuristic picks the same algorithm
 * each time, and no algorithm here uses atomics (split-K reductions in cuBLASLt
 * run through the workspace in a fixed order).
 *
 * defines: cublasCheck, MatmulContext, matmul_context_init, matmul_context_free,
 *          matmul_cublaslt, matmul_forward, matmul_backward_dinp,
 *          matmul_backward_dweight, matmul_backward, MATMUL_WORKSPACE_BYTES
 */
#ifndef LLMC_MATMUL_CUH
#define LLMC_MATMUL_CUH

#include <cublasLt.h>
#include <stdint.h>
#include "cuda_common.cuh"

// cublasCheck: names the failing call, file and line, then exits 1
#define cublasCheck(expr)                                                                           \
    do {                                                                                            \
        cublasStatus_t cublas_check_st_ = (expr);                                                   \
        if (cublas_check_st_ != CUBLAS_STATUS_SUCCESS) {                                            \
            fprintf(stderr, "[cuBLAS ERROR] %s:%d in %s: %s\n  -> status %d (%s)\n", __FILE__, __LINE__, \
                    __func__, #expr, (int)cublas_check_st_, cublasLtGetStatusString(cublas_check_st_)); \
            exit(1);                                                                                \
        }                                                                                           \
    } while (0)

// 32 MiB: what cuBLAS recommends for Hopper; fixed, so the algorithm choice is fixed
#define MATMUL_WORKSPACE_BYTES ((size_t)32 << 20)

typedef struct {
    cublasLtHandle_t handle;
    void* workspace;        // device, workspace_size bytes
    size_t workspace_size;
} MatmulContext;

static void matmul_context_init(MatmulContext* ctx, size_t workspace_bytes) {
    cublasCheck(cublasLtCreate(&ctx->handle));
    ctx->workspace_size = workspace_bytes;
    cudaCheck(cudaMalloc(&ctx->workspace, workspace_bytes));
}

static void matmul_context_free(MatmulContext* ctx) {
    cudaCheck(cudaFree(ctx->workspace));
    cublasCheck(cublasLtDestroy(ctx->handle));
    ctx->workspace = NULL;
}

// the largest power of two (<= 256) dividing the address: the alignment cuBLASLt may assume
static uint32_t ptr_alignment(const void* p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && (a % al) != 0) { al >>= 1; }
    return al;
}

// matmul_cublaslt: column-major D (m, n) = op(A) (m, k) @ op(B) (k, n) [+ D when accumulate].
// A, B bf16; D bf16 (d_fp32 = 0) or fp32 (d_fp32 = 1); lda, ldb, ldd leading dimensions of
// the stored matrices: A is stored (k, m) when trans_a else (m, k); B (n, k) when trans_b else (k, n).
static void matmul_cublaslt(MatmulContext* ctx, void* d, int d_fp32, const bf16* a, const bf16* b, int m, int n,
                            int k, int trans_a, int trans_b, int lda, int ldb, int ldd, int accumulate,
                            cudaStream_t stream) {
    if (m == 0 || n == 0) { return; }
    cublasLtMatmulDesc_t desc;
    cublasCheck(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
    cublasLtMatrixLayout_t la, lb, ld;
    cudaDataType_t dt = d_fp32 ? CUDA_R_32F : CUDA_R_16BF;
    cublasCheck(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, trans_a ? k : m, trans_a ? m : k, lda));
    cublasCheck(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, trans_b ? n : k, trans_b ? k : n, ldb));
    cublasCheck(cublasLtMatrixLayoutCreate(&ld, dt, m, n, ldd));
    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &ctx->workspace_size, sizeof(ctx->workspace_size)));
    uint32_t al_a = ptr_alignment(a), al_b = ptr_alignment(b), al_d = ptr_alignment(d);
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof(al_d)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof(al_d)));
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasCheck(cublasLtMatmulAlgoGetHeuristic(ctx->handle, desc, la, lb, ld, ld, pref, 1, &heur, &found));
    if (found == 0) {
        fprintf(stderr, "[cuBLAS ERROR] %s:%d: no cuBLASLt algorithm for m %d n %d k %d (trans %d %d, ld %d %d %d, "
                "%s output, alignment %u %u %u)\n", __FILE__, __LINE__, m, n, k, trans_a, trans_b, lda, ldb, ldd,
                d_fp32 ? "fp32" : "bf16", al_a, al_b, al_d);
        exit(1);
    }
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    cublasCheck(cublasLtMatmul(ctx->handle, desc, &alpha, a, la, b, lb, &beta, d, ld, d, ld, &heur.algo,
                               ctx->workspace, ctx->workspace_size, stream));
    cublasCheck(cublasLtMatmulPreferenceDestroy(pref));
    cublasCheck(cublasLtMatrixLayoutDestroy(la));
    cublasCheck(cublasLtMatrixLayoutDestroy(lb));
    cublasCheck(cublasLtMatrixLayoutDestroy(ld));
    cublasCheck(cublasLtMatmulDescDestroy(desc));
}

// out (N, OC) bf16 (+)= inp (N, C) @ weight^T, weight (OC, C)
static void matmul_forward(MatmulContext* ctx, bf16* out, const bf16* inp, const bf16* weight, int N, int C, int OC,
                           int accumulate, cudaStream_t stream) {
    matmul_cublaslt(ctx, out, 0, weight, inp, OC, N, C, 1, 0, C, C, OC, accumulate, stream);
}

// dinp (N, C) bf16 (+)= dout (N, OC) @ weight (OC, C)
static void matmul_backward_dinp(MatmulContext* ctx, bf16* dinp, const bf16* dout, const bf16* weight, int N, int C,
                                 int OC, int accumulate, cudaStream_t stream) {
    matmul_cublaslt(ctx, dinp, 0, weight, dout, C, N, OC, 0, 0, C, OC, C, accumulate, stream);
}

// dweight (OC, C) fp32 += dout^T (OC, N) @ inp (N, C)  (always accumulates)
static void matmul_backward_dweight(MatmulContext* ctx, float* dweight, const bf16* dout, const bf16* inp, int N,
                                    int C, int OC, cudaStream_t stream) {
    matmul_cublaslt(ctx, dweight, 1, inp, dout, C, OC, N, 0, 1, C, OC, C, 1, stream);
}

// both: the CPU layer's argument order (dinp, dweight, dout, inp, weight, sizes), plus
// whether dinp accumulates
static void matmul_backward(MatmulContext* ctx, bf16* dinp, float* dweight, const bf16* dout, const bf16* inp,
                            const bf16* weight, int N, int C, int OC, int accumulate_dinp, cudaStream_t stream) {
    matmul_backward_dinp(ctx, dinp, dout, weight, N, C, OC, accumulate_dinp, stream);
    matmul_backward_dweight(ctx, dweight, dout, inp, N, C, OC, stream);
}

#endif  // LLMC_MATMUL_CUH
