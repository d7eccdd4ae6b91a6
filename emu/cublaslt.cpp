/*
emu/cublaslt.cpp: the cuBLASLt calls of the project (llmc/matmul.cuh), on the CPU.

What is modelled: D = alpha * op(A) @ op(B) + beta * C, column-major, with
  - A, B bf16 (CUDA_R_16BF), C == D, D bf16 or fp32, compute CUBLAS_COMPUTE_32F,
    scale type CUDA_R_32F, host-pointer alpha and beta;
  - transposes (CUBLASLT_MATMUL_DESC_TRANSA/TRANSB: N or T), leading dimensions,
    the workspace-size and minimum-alignment preferences of the heuristic query;
  - fp32 accumulation (each output element sums its k products in order, in fp32;
    the tensor cores' accumulation order is not modelled) and round-to-nearest-even
    of a bf16 output (cuda_bf16.h's host conversion);
  - stream order: the product runs as an operation of the stream (or of the graph
    being captured), like every other piece of work in emu/emu.cpp.
Anything else (an epilogue, a bias, another data type, batched layouts, pointer
mode device, an alignment the pointers do not have) is an error naming it:
CUBLAS_STATUS_NOT_SUPPORTED (or INVALID_VALUE) and a line on stderr, never a
silently wrong product.
*/
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" int emu_check_device_range(const void* p, size_t bytes, const char* what);
extern "C" int emu_stream_enqueue(void* stream, void (*fn)(void*), void* arg, void (*free_arg)(void*));

#define LT_FAIL(status, ...)                                  \
    do {                                                      \
        fprintf(stderr, "emu cuBLASLt: error: " __VA_ARGS__); \
        fprintf(stderr, "\n");                                \
        return status;                                        \
    } while (0)

namespace {

struct Context { int magic; };
struct Desc { cublasComputeType_t compute; cudaDataType_t scale; cublasOperation_t ta, tb; };
struct Layout { cudaDataType_t type; uint64_t rows, cols; int64_t ld; };
struct Pref { size_t max_ws; uint32_t align[4]; };  // A, B, C, D
static_assert(sizeof(Desc) <= sizeof(cublasLtMatmulDescOpaque_t), "Desc fits the opaque descriptor");
static_assert(sizeof(Layout) <= sizeof(cublasLtMatrixLayoutOpaque_t), "Layout fits the opaque layout");
static_assert(sizeof(Pref) <= sizeof(cublasLtMatmulPreferenceOpaque_t), "Pref fits the opaque preference");

const int kContextMagic = 0x4c54454d;  // "LTEM"

Desc* D_(cublasLtMatmulDesc_t d) { return reinterpret_cast<Desc*>(d); }
Layout* L_(cublasLtMatrixLayout_t l) { return reinterpret_cast<Layout*>(l); }
Pref* P_(cublasLtMatmulPreference_t p) { return reinterpret_cast<Pref*>(p); }

size_t elem_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }
// bytes a column-major (rows, cols, ld) matrix spans
size_t span_bytes(const Layout* l) {
    if (l->rows == 0 || l->cols == 0) { return 0; }
    return ((size_t)(l->cols - 1) * (size_t)l->ld + l->rows) * elem_size(l->type);
}
uint32_t ptr_align(const void* p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && (a % al) != 0) { al >>= 1; }
    return al;
}

// the checks shared by the heuristic query and the matmul itself
cublasStatus_t check_problem(const Desc* d, const Layout* a, const Layout* b, const Layout* c, const Layout* dl) {
    if (d->compute != CUBLAS_COMPUTE_32F) { LT_FAIL(CUBLAS_STATUS_NOT_SUPPORTED, "compute type %d (only CUBLAS_COMPUTE_32F is emulated)", (int)d->compute); }
    if (d->scale != CUDA_R_32F) { LT_FAIL(CUBLAS_STATUS_NOT_SUPPORTED, "scale type %d (only CUDA_R_32F is emulated)", (int)d->scale); }
    if (a->type != CUDA_R_16BF) { LT_FAIL(CUBLAS_STATUS_NOT_SUPPORTED, "A type %d (only CUDA_R_16BF is emulated)", (int)a->type); }
    if (b->type != CUDA_R_16BF) { LT_FAIL(CUBLAS_STATUS_NOT_SUPPORTED, "B type %d (only CUDA_R_16BF is emulated)", (int)b->type); }
    if (dl->type != CUDA_R_16BF && dl->type != CUDA_R_32F) { LT_FAIL(CUBLAS_STATUS_NOT_SUPPORTED, "D type %d (CUDA_R_16BF or CUDA_R_32F are emulated)", (int)dl->type); }
    if (memcmp(c, dl, sizeof(Layout)) != 0) { LT_FAIL(CUBLAS_STATUS_NOT_SUPPORTED, "C layout differs from D layout (only C == D is emulated)"); }
    uint64_t m = d->ta == CUBLAS_OP_N ? a->rows : a->cols, ka = d->ta == CUBLAS_OP_N ? a->cols : a->rows;
    uint64_t kb = d->tb == CUBLAS_OP_N ? b->rows : b->cols, n = d->tb == CUBLAS_OP_N ? b->cols : b->rows;
    if (ka != kb) { LT_FAIL(CUBLAS_STATUS_INVALID_VALUE, "op(A) is %llu x %llu but op(B) is %llu x %llu", (unsigned long long)m, (unsigned long long)ka, (unsigned long long)kb, (unsigned long long)n); }
    if (dl->rows != m || dl->cols != n) { LT_FAIL(CUBLAS_STATUS_INVALID_VALUE, "D is %llu x %llu, op(A) op(B) is %llu x %llu", (unsigned long long)dl->rows, (unsigned long long)dl->cols, (unsigned long long)m, (unsigned long long)n); }
    return CUBLAS_STATUS_SUCCESS;
}

struct MatmulOp {
    cublasOperation_t ta, tb;
    uint64_t m, n, k;
    int64_t lda, ldb, ldd;
    int d_fp32;
    float alpha, beta;
    const __nv_bfloat16 *A, *B;
    void* D;
};

// fp32 copies of op(A) as m rows of k and op(B) as n rows of k (column-major: op(A)(i, p) is
// A[i + p*lda] (N) or A[p + i*lda] (T)), then every output element is one dot product of k
// fp32 products summed in 8 interleaved fp32 partial sums (a fixed order: deterministic,
// and a different one from both the CPU reference's and the tensor cores')
static float dot8(const float* a, const float* b, uint64_t k) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    uint64_t p = 0;
    for (; p + 8 <= k; p += 8) {
        for (int u = 0; u < 8; u++) { s[u] += a[p + u] * b[p + u]; }
    }
    for (; p < k; p++) { s[p % 8] += a[p] * b[p]; }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}
void run_matmul(void* arg) {
    const MatmulOp* o = (const MatmulOp*)arg;
    float* a = (float*)malloc(o->m * o->k * sizeof(float) + 1);
    float* b = (float*)malloc(o->n * o->k * sizeof(float) + 1);
    if (!a || !b) {
        fprintf(stderr, "emu cuBLASLt: out of host memory for a %llu x %llu x %llu product\n", (unsigned long long)o->m,
                (unsigned long long)o->n, (unsigned long long)o->k);
        exit(1);
    }
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < (int64_t)o->m; i++) {
        for (uint64_t p = 0; p < o->k; p++) {
            a[i * o->k + p] = __bfloat162float(o->ta == CUBLAS_OP_N ? o->A[i + p * o->lda] : o->A[p + i * o->lda]);
        }
    }
    #pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < (int64_t)o->n; j++) {
        for (uint64_t p = 0; p < o->k; p++) {
            b[j * o->k + p] = __bfloat162float(o->tb == CUBLAS_OP_N ? o->B[p + j * o->ldb] : o->B[j + p * o->ldb]);
        }
    }
    #pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < (int64_t)o->n; j++) {
        for (uint64_t i = 0; i < o->m; i++) {
            float acc = dot8(a + i * o->k, b + j * o->k, o->k);
            size_t idx = i + (size_t)j * o->ldd;
            if (o->d_fp32) {
                float* d = (float*)o->D;
                d[idx] = o->alpha * acc + (o->beta != 0.0f ? o->beta * d[idx] : 0.0f);
            } else {
                __nv_bfloat16* d = (__nv_bfloat16*)o->D;
                float v = o->alpha * acc + (o->beta != 0.0f ? o->beta * __bfloat162float(d[idx]) : 0.0f);
                d[idx] = __float2bfloat16_rn(v);
            }
        }
    }
    free(a);
    free(b);
}
void free_op(void* arg) { delete (MatmulOp*)arg; }

}  // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
    if (!handle) { return CUBLAS_STATUS_INVALID_VALUE; }
    Context* c = new Context{kContextMagic};
    *handle = reinterpret_cast<cublasLtHandle_t>(c);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    Context* c = reinterpret_cast<Context*>(handle);
    if (!c || c->magic != kContextMagic) { return CUBLAS_STATUS_NOT_INITIALIZED; }
    c->magic = 0;
    delete c;
    return CUBLAS_STATUS_SUCCESS;
}
const char* cublasLtGetStatusString(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        default: return "CUBLAS_STATUS_UNKNOWN";
    }
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType_t scale) {
    if (!desc) { return CUBLAS_STATUS_INVALID_VALUE; }
    cublasLtMatmulDescOpaque_t* o = new cublasLtMatmulDescOpaque_t();
    Desc* d = reinterpret_cast<Desc*>(o);
    d->compute = compute;
    d->scale = scale;
    d->ta = d->tb = CUBLAS_OP_N;
    *desc = o;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
    Desc* d = D_(desc);
    if (!d || !buf) { return CUBLAS_STATUS_INVALID_VALUE; }
    if (attr == CUBLASLT_MATMUL_DESC_TRANSA || attr == CUBLASLT_MATMUL_DESC_TRANSB) {
        if (size != sizeof(cublasOperation_t)) { LT_FAIL(CUBLAS_STATUS_INVALID_VALUE, "TRANSA/TRANSB attribute of %zu bytes", size); }
        cublasOperation_t op;
        memcpy(&op, buf, sizeof(op));
        if (op != CUBLAS_OP_N && op != CUBLAS_OP_T) { LT_FAIL(CUBLAS_STATUS_NOT_SUPPORTED, "operation %d (only CUBLAS_OP_N and CUBLAS_OP_T are emulated)", (int)op); }
        (attr == CUBLASLT_MATMUL_DESC_TRANSA ? d->ta : d->tb) = op;
        return CUBLAS_STATUS_SUCCESS;
    }
    if (attr == CUBLASLT_MATMUL_DESC_EPILOGUE) {
        cublasLtEpilogue_t e;
        if (size != sizeof(e)) { return CUBLAS_STATUS_INVALID_VALUE; }
        memcpy(&e, buf, sizeof(e));
        if (e == CUBLASLT_EPILOGUE_DEFAULT) { return CUBLAS_STATUS_SUCCESS; }
        LT_FAIL(CUBLAS_STATUS_NOT_SUPPORTED, "CUBLASLT_MATMUL_DESC_EPILOGUE %d (only the default epilogue is emulated)", (int)e);
    }
    LT_FAIL(CUBLAS_STATUS_NOT_SUPPORTED, "matmul descriptor attribute %d is not emulated (TRANSA, TRANSB, EPILOGUE default are)", (int)attr);
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    if (!layout) { return CUBLAS_STATUS_INVALID_VALUE; }
    if (ld < (int64_t)(rows > 1 ? rows : 1)) { LT_FAIL(CUBLAS_STATUS_INVALID_VALUE, "layout ld %lld < rows %llu", (long long)ld, (unsigned long long)rows); }
    if (type != CUDA_R_16BF && type != CUDA_R_32F) { LT_FAIL(CUBLAS_STATUS_NOT_SUPPORTED, "layout data type %d (CUDA_R_16BF and CUDA_R_32F are emulated)", (int)type); }
    cublasLtMatrixLayoutOpaque_t* o = new cublasLtMatrixLayoutOpaque_t();
    Layout* l = reinterpret_cast<Layout*>(o);
    l->type = type;
    l->rows = rows;
    l->cols = cols;
    l->ld = ld;
    *layout = o;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
    if (!pref) { return CUBLAS_STATUS_INVALID_VALUE; }
    cublasLtMatmulPreferenceOpaque_t* o = new cublasLtMatmulPreferenceOpaque_t();
    Pref* p = reinterpret_cast<Pref*>(o);
    p->max_ws = 0;
    for (int i = 0; i < 4; i++) { p->align[i] = 256; }  // cuBLASLt's default: 256-byte aligned pointers
    *pref = o;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t size) {
    Pref* p = P_(pref);
    if (!p || !buf) { return CUBLAS_STATUS_INVALID_VALUE; }
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        if (size != sizeof(uint64_t)) { return CUBLAS_STATUS_INVALID_VALUE; }
        uint64_t v;
        memcpy(&v, buf, sizeof(v));
        p->max_ws = (size_t)v;
        return CUBLAS_STATUS_SUCCESS;
    }
    if (attr >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && attr <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES) {
        if (size != sizeof(uint32_t)) { return CUBLAS_STATUS_INVALID_VALUE; }
        memcpy(&p->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, sizeof(uint32_t));
        return CUBLAS_STATUS_SUCCESS;
    }
    LT_FAIL(CUBLAS_STATUS_NOT_SUPPORTED, "matmul preference attribute %d is not emulated (MAX_WORKSPACE_BYTES, MIN_ALIGNMENT_A..D_BYTES are)", (int)attr);
}

// one "algorithm": the emulated product; found only when the problem is one the emulation
// computes and the promised alignments are multiples of the element sizes (as cuBLASLt needs)
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* count) {
    Context* ctx = reinterpret_cast<Context*>(handle);
    if (!ctx || ctx->magic != kContextMagic) { return CUBLAS_STATUS_NOT_INITIALIZED; }
    if (!desc || !a || !b || !c || !d || !pref || !results || !count || requested < 1) { return CUBLAS_STATUS_INVALID_VALUE; }
    *count = 0;
    cublasStatus_t st = check_problem(D_(desc), L_(a), L_(b), L_(c), L_(d));
    if (st != CUBLAS_STATUS_SUCCESS) { return st; }
    const Pref* p = P_(pref);
    size_t es[4] = {2, 2, elem_size(L_(c)->type), elem_size(L_(d)->type)};
    for (int i = 0; i < 4; i++) {
        if (p->align[i] == 0 || p->align[i] % es[i] != 0) { return CUBLAS_STATUS_SUCCESS; }  // no algorithm
    }
    memset(&results[0], 0, sizeof(results[0]));
    results[0].algo.data[0] = 0x454d55;  // "EMU"
    results[0].algo.data[1] = (uint64_t)p->align[0] | ((uint64_t)p->align[1] << 16) | ((uint64_t)p->align[3] << 32);
    results[0].workspaceSize = 0;
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *count = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t adesc, const void* B, cublasLtMatrixLayout_t bdesc,
                              const void* beta, const void* C, cublasLtMatrixLayout_t cdesc, void* D,
                              cublasLtMatrixLayout_t ddesc, const cublasLtMatmulAlgo_t* algo, void* workspace,
                              size_t workspace_size, cudaStream_t stream) {
    Context* ctx = reinterpret_cast<Context*>(handle);
    if (!ctx || ctx->magic != kContextMagic) { return CUBLAS_STATUS_NOT_INITIALIZED; }
    if (!desc || !alpha || !beta || !adesc || !bdesc || !cdesc || !ddesc) { return CUBLAS_STATUS_INVALID_VALUE; }
    const Desc* d = D_(desc);
    const Layout *la = L_(adesc), *lb = L_(bdesc), *lc = L_(cdesc), *ld = L_(ddesc);
    cublasStatus_t st = check_problem(d, la, lb, lc, ld);
    if (st != CUBLAS_STATUS_SUCCESS) { return st; }
    if (C != D) { LT_FAIL(CUBLAS_STATUS_NOT_SUPPORTED, "C (%p) != D (%p): only in-place C == D is emulated", C, D); }
    if (algo) {
        if (algo->data[0] != 0x454d55) { LT_FAIL(CUBLAS_STATUS_INVALID_VALUE, "algo did not come from cublasLtMatmulAlgoGetHeuristic"); }
        uint32_t al[3] = {(uint32_t)(algo->data[1] & 0xffff), (uint32_t)((algo->data[1] >> 16) & 0xffff),
                          (uint32_t)((algo->data[1] >> 32) & 0xffff)};
        const void* ptrs[3] = {A, B, D};
        const char* names[3] = {"A", "B", "D"};
        for (int i = 0; i < 3; i++) {
            if (ptr_align(ptrs[i]) < al[i]) {
                LT_FAIL(CUBLAS_STATUS_INVALID_VALUE, "%s (%p) is %u-byte aligned but the algorithm was chosen for %u",
                        names[i], ptrs[i], ptr_align(ptrs[i]), al[i]);
            }
        }
    }
    if (workspace_size > 0 && emu_check_device_range(workspace, workspace_size, "cublasLtMatmul workspace")) { return CUBLAS_STATUS_INVALID_VALUE; }
    MatmulOp* op = new MatmulOp();
    op->ta = d->ta;
    op->tb = d->tb;
    op->m = ld->rows;
    op->n = ld->cols;
    op->k = d->ta == CUBLAS_OP_N ? la->cols : la->rows;
    op->lda = la->ld;
    op->ldb = lb->ld;
    op->ldd = ld->ld;
    op->d_fp32 = ld->type == CUDA_R_32F;
    memcpy(&op->alpha, alpha, sizeof(float));  // pointer mode host: read now, as cuBLASLt does
    memcpy(&op->beta, beta, sizeof(float));
    op->A = (const __nv_bfloat16*)A;
    op->B = (const __nv_bfloat16*)B;
    op->D = D;
    if ((span_bytes(la) && emu_check_device_range(A, span_bytes(la), "cublasLtMatmul A")) ||
        (span_bytes(lb) && emu_check_device_range(B, span_bytes(lb), "cublasLtMatmul B")) ||
        (span_bytes(ld) && emu_check_device_range(D, span_bytes(ld), "cublasLtMatmul D"))) {
        delete op;
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (emu_stream_enqueue((void*)stream, run_matmul, op, free_op) != 0) { return CUBLAS_STATUS_EXECUTION_FAILED; }
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
