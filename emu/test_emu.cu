/*
emu/test_emu.cu: the unit tests of the CPU backend itself (emu/cuda_emu.h, emu/ptx.h, emu/emu.cpp).

Every other emulated test checks a whole kernel of the project against the CPU model; when one
of those fails, the question is whether the kernel or the emulator is wrong. These tests pin the
emulator down piece by piece, each against its definition written out here (the PTX ISA, the
CUDA programming guide), never against emu/ code:
  1. mma.sync m16n8k16 bf16 -> fp32 (attn_mma): fragments built from PTX ISA 9.7.14.5.8, D
     checked exactly against a host matrix product (distinct small integers: exact in fp32);
  2. ldmatrix .x1/.x2/.x4, with and without .trans: every register of every lane against
     PTX ISA 9.7.14.5.15, with the rows' addresses permuted over the lanes;
  3. cp.async 16 and 4 bytes (attn_cp_async16/4), zero-fill, commit and wait_group;
  4. the warp shuffles at widths 32, 16 and 8, ballot, any, all, __syncwarp;
  5. __syncthreads (a tree reduction, __syncthreads_count), the thread and block indices of a
     3D launch, float and int atomics from many blocks (the blocks run on several OS threads);
  6. EMU_ORDER: a race shows up as a different result between orders, a synchronised kernel
     gives the same in every order;
  7. the diagnostics: a divergent barrier, a shuffle mask without the caller, launch limits
     (threads, dynamic shared memory, cudaFuncSetAttribute), a host pointer as a kernel
     argument, EMU_POISON on device, static and dynamic shared memory and under cp.async.
  8. EMU_STREAMS: a producer on one stream and a consumer on another, right with the event
     wait in every seed and wrong without it in some; stream order, the legacy default
     stream, cudaLaunchHostFunc, re-recorded events, a wait before a later record, graph
     replay, honest queries, pageable copies, deferral and the launch error at its call.
Settings the emulator reads once (EMU_ORDER, EMU_POISON) and errors that end the process are
run in a child: this program re-executes itself as `test_emu child CASE` with the environment
set and checks the child's exit status and output.

The kernels are plain CUDA: the file also compiles with nvcc (the child-process cases, which
test emulator diagnostics, only in the emulated build).

Build and run:  make build-emu/test_emu && ./build-emu/test_emu   (ends with "N passed, M failed")
*/
#include "llmc/cuda_common.cuh"
#include "llmc/attention.cuh"
#include "test/test.h"

#include <string.h>
#ifdef LLMC_EMU
#include <sys/wait.h>
#include <unistd.h>
#endif

#define FULL 0xffffffffu

// checks the launch just made and waits for it
#define LAUNCHED()                              \
    do {                                        \
        cudaCheck(cudaGetLastError());          \
        cudaCheck(cudaDeviceSynchronize());     \
    } while (0)

static void* dev_alloc(size_t n) {
    void* p = NULL;
    cudaCheck(cudaMalloc(&p, n));
    return p;
}
static void to_dev(void* d, const void* h, size_t n) { cudaCheck(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice)); }
static void to_host(void* h, const void* d, size_t n) { cudaCheck(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost)); }

// the upper half of a float's bits: exact for the small integers used here
static uint16_t bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

// ----------------------------------------------------------------------------
// 1. mma.sync m16n8k16 bf16 -> fp32

// mma_kernel: one warp; A (16x16) row major, B (16x8) as B[k][n], both bf16 bits; C, D (16x8) fp32
// row major. The fragments of PTX ISA 9.7.14.5.8, element by element, with group = lane / 4 and
// tig = lane % 4 (the lower-indexed element of a pair in the low half of its register):
//   a_i (i = 0..7): row group for i in {0,1,4,5}, else group + 8; col 2 tig + (i & 1), + 8 for i >= 4
//   b_i (i = 0..3): row 2 tig + (i & 1), + 8 for i >= 2; col group
//   c_i (i = 0..3): row group for i < 2, else group + 8; col 2 tig + (i & 1)
__global__ void mma_kernel(const uint16_t* A, const uint16_t* B, const float* C, float* D) {
    int lane = threadIdx.x, group = lane >> 2, tig = lane & 3;
    uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
    float c[4];
    for (int i = 0; i < 8; i++) {
        int row = (i < 2 || (i >= 4 && i < 6)) ? group : group + 8;
        int col = 2 * tig + (i & 1) + (i >= 4 ? 8 : 0);
        a[i / 2] |= (uint32_t)A[row * 16 + col] << (16 * (i & 1));
    }
    for (int i = 0; i < 4; i++) {
        int row = 2 * tig + (i & 1) + (i >= 2 ? 8 : 0);
        b[i / 2] |= (uint32_t)B[row * 8 + group] << (16 * (i & 1));
    }
    for (int i = 0; i < 4; i++) { c[i] = C[(i < 2 ? group : group + 8) * 8 + 2 * tig + (i & 1)]; }
    attn_mma(c, a, b[0], b[1]);
    for (int i = 0; i < 4; i++) { D[(i < 2 ? group : group + 8) * 8 + 2 * tig + (i & 1)] = c[i]; }
}

// every element distinct (multipliers coprime to the ranges), |values| <= 128: exact in bf16,
// and every sum of products exact in fp32
static float mma_a(int m, int k) { return (float)((m * 16 + k) * 37 % 256 - 128); }
static float mma_b(int k, int n) { return (float)((k * 8 + n) * 23 % 128 - 64); }
static float mma_c(int m, int n) { return (float)((m * 8 + n) * 29 % 128 - 64); }

// the host product, with the operands' indices optionally mixed up as a wrong layout would
enum { MMA_RIGHT, MMA_A_TRANSPOSED, MMA_A_HALVES_SWAPPED, MMA_B_HALVES_SWAPPED };
static void mma_reference(float* D, int how) {
    for (int m = 0; m < 16; m++) {
        for (int n = 0; n < 8; n++) {
            float acc = mma_c(m, n);
            for (int k = 0; k < 16; k++) {
                float a = how == MMA_A_TRANSPOSED ? mma_a(k, m) : mma_a(m, how == MMA_A_HALVES_SWAPPED ? k ^ 1 : k);
                acc += a * mma_b(how == MMA_B_HALVES_SWAPPED ? k ^ 1 : k, n);
            }
            D[m * 8 + n] = acc;
        }
    }
}

static void test_mma(void) {
    uint16_t hA[256], hB[128];
    float hC[128], hD[128], ref[128], wrong[128];
    for (int m = 0; m < 16; m++) {
        for (int k = 0; k < 16; k++) { hA[m * 16 + k] = bf16_bits(mma_a(m, k)); }
    }
    for (int k = 0; k < 16; k++) {
        for (int n = 0; n < 8; n++) { hB[k * 8 + n] = bf16_bits(mma_b(k, n)); }
    }
    for (int m = 0; m < 16; m++) {
        for (int n = 0; n < 8; n++) { hC[m * 8 + n] = mma_c(m, n); }
    }
    uint16_t* dA = (uint16_t*)dev_alloc(sizeof(hA));
    uint16_t* dB = (uint16_t*)dev_alloc(sizeof(hB));
    float* dC = (float*)dev_alloc(sizeof(hC));
    float* dD = (float*)dev_alloc(sizeof(hD));
    to_dev(dA, hA, sizeof(hA));
    to_dev(dB, hB, sizeof(hB));
    to_dev(dC, hC, sizeof(hC));
    cuda_launch(mma_kernel, 1, 32, 0, 0)(dA, dB, dC, dD);
    LAUNCHED();
    to_host(hD, dD, sizeof(hD));
    mma_reference(ref, MMA_RIGHT);
    int bad = 0;
    for (int i = 0; i < 128; i++) { bad += hD[i] != ref[i]; }
    CHECK(bad == 0, "mma m16n8k16: D = A B + C exactly (%d of 128 elements differ)", bad);
    // the check itself: each wrong layout would have changed D
    int caught = 1;
    for (int how = MMA_A_TRANSPOSED; how <= MMA_B_HALVES_SWAPPED; how++) {
        mma_reference(wrong, how);
        caught &= memcmp(wrong, ref, sizeof(ref)) != 0;
    }
    CHECK(caught, "mma m16n8k16: the values tell A from A^T and from swapped bf16 halves of A or B");
    cudaCheck(cudaFree(dA));
    cudaCheck(cudaFree(dB));
    cudaCheck(cudaFree(dC));
    cudaCheck(cudaFree(dD));
}

// ----------------------------------------------------------------------------
// 2. ldmatrix

// .x1 and .x2 (llmc/attention.cuh has only .x4), in the #ifdef LLMC_EMU form of its helpers
__device__ __forceinline__ void test_ldsm(uint32_t* r, const uint16_t* p, int nmat, int trans) {
#ifdef LLMC_EMU
    ::emu::ldmatrix(r, p, nmat, trans);
#else
    uint32_t a = attn_smem_addr(p);
    if (nmat == 1 && !trans) { asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a)); }
    if (nmat == 1 && trans) { asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a)); }
    if (nmat == 2 && !trans) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
    }
    if (nmat == 2 && trans) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
    }
#endif
}

static __host__ __device__ int ldsm_row_of_lane(int lane) { return (7 * lane + 3) % 32; }  // a permutation
static __host__ __device__ uint16_t ldsm_value(int row, int col) { return (uint16_t)(0x1000 + row * 8 + col); }

// ldmatrix_kernel: one warp; a shared tile of 32 rows x 8 b16 (16 bytes a row), all values
// distinct; lane l gives the address of tile row ldsm_row_of_lane(l). out (6 variants x 32 lanes
// x 4 registers): x1, x2, x4, then the same with .trans
__global__ void ldmatrix_kernel(uint32_t* out) {
    __shared__ __align__(16) uint16_t tile[32 * 8];
    int lane = threadIdx.x;
    for (int c = 0; c < 8; c++) { tile[lane * 8 + c] = ldsm_value(lane, c); }
    __syncthreads();
    const uint16_t* p = tile + ldsm_row_of_lane(lane) * 8;
    for (int trans = 0; trans < 2; trans++) {
        uint32_t r[4] = {0, 0, 0, 0};
        uint32_t* o = out + (3 * trans) * 128 + lane * 4;
        test_ldsm(r, p, 1, trans);
        o[0] = r[0];
        test_ldsm(r, p, 2, trans);
        o[128] = r[0];
        o[129] = r[1];
        if (trans) {
            attn_ldsm_x4_trans(r, (const bf16*)p);
        } else {
            attn_ldsm_x4(r, (const bf16*)p);
        }
        for (int j = 0; j < 4; j++) { o[256 + j] = r[j]; }
    }
}

// PTX ISA 9.7.14.5.15: matrix j is 8 rows of 8 b16, row r at the address of lane 8 j + r; lane l
// gets in register j the fragment elements (row l / 4, cols 2 (l % 4) and 2 (l % 4) + 1) of
// matrix j, or with .trans of its transpose; the lower column in the low half
static uint32_t ldsm_expected(int lane, int j, int trans) {
    int g = lane / 4, c = 2 * (lane % 4);
    uint16_t lo, hi;
    if (!trans) {
        lo = ldsm_value(ldsm_row_of_lane(8 * j + g), c);
        hi = ldsm_value(ldsm_row_of_lane(8 * j + g), c + 1);
    } else {
        lo = ldsm_value(ldsm_row_of_lane(8 * j + c), g);
        hi = ldsm_value(ldsm_row_of_lane(8 * j + c + 1), g);
    }
    return (uint32_t)lo | ((uint32_t)hi << 16);
}

static void test_ldmatrix(void) {
    uint32_t* d = (uint32_t*)dev_alloc(6 * 128 * sizeof(uint32_t));
    uint32_t h[6 * 128];
    cuda_launch(ldmatrix_kernel, 1, 32, 0, 0)(d);
    LAUNCHED();
    to_host(h, d, sizeof(h));
    static const int nmats[3] = {1, 2, 4};
    for (int v = 0; v < 6; v++) {
        int nmat = nmats[v % 3], trans = v / 3, bad = 0;
        for (int lane = 0; lane < 32; lane++) {
            for (int j = 0; j < nmat; j++) { bad += h[v * 128 + lane * 4 + j] != ldsm_expected(lane, j, trans); }
        }
        CHECK(bad == 0, "ldmatrix .x%d%s: every lane's registers as PTX ISA 9.7.14.5.15 (%d of %d wrong)", nmat,
              trans ? ".trans" : "", bad, 32 * nmat);
    }
    cudaCheck(cudaFree(d));
}

// ----------------------------------------------------------------------------
// 3. cp.async

// cp_async_kernel: one warp; g (320 floats), out (320 floats). Group 0: 256 floats 16 bytes at a
// time (64 chunks, chunk c zero-filled when c % 5 == 3); group 1: 64 floats 4 bytes at a time
// (element i zero-filled when i % 7 == 2); the shared tiles hold -1 before
__global__ void cp_async_kernel(const float* g, float* out) {
    __shared__ __align__(16) float t16[256];
    __shared__ __align__(16) float t4[64];
    int t = threadIdx.x;
    for (int i = t; i < 256; i += 32) { t16[i] = -1.0f; }
    for (int i = t; i < 64; i += 32) { t4[i] = -1.0f; }
    __syncthreads();
    for (int c = t; c < 64; c += 32) { attn_cp_async16(t16 + 4 * c, g + 4 * c, c % 5 != 3); }
    attn_cp_async_commit();
    for (int i = t; i < 64; i += 32) { attn_cp_async4(t4 + i, g + 256 + i, i % 7 != 2); }
    attn_cp_async_commit();
    attn_cp_async_wait<1>();  // group 0 has landed (group 1 may not have)
    __syncthreads();
    for (int i = t; i < 256; i += 32) { out[i] = t16[i]; }
    attn_cp_async_wait<0>();
    __syncthreads();
    for (int i = t; i < 64; i += 32) { out[256 + i] = t4[i]; }
}

static void test_cp_async(void) {
    float hg[320], h[320];
    for (int i = 0; i < 320; i++) { hg[i] = (float)(i + 1); }
    float* g = (float*)dev_alloc(sizeof(hg));
    float* out = (float*)dev_alloc(sizeof(h));
    to_dev(g, hg, sizeof(hg));
    cuda_launch(cp_async_kernel, 1, 32, 0, 0)(g, out);
    LAUNCHED();
    to_host(h, out, sizeof(h));
    int bad16 = 0, bad4 = 0, zeros = 0;
    for (int i = 0; i < 256; i++) {
        float want = (i / 4) % 5 == 3 ? 0.0f : hg[i];
        bad16 += h[i] != want;
        zeros += (i / 4) % 5 == 3 && h[i] == 0.0f;
    }
    for (int i = 0; i < 64; i++) {
        float want = i % 7 == 2 ? 0.0f : hg[256 + i];
        bad4 += h[256 + i] != want;
        zeros += i % 7 == 2 && h[256 + i] == 0.0f;
    }
    CHECK(bad16 == 0, "cp.async 16 bytes + commit + wait_group 1: the first group landed, zero-fill (%d wrong)", bad16);
    CHECK(bad4 == 0, "cp.async 4 bytes + wait_group 0: the second group landed, zero-fill (%d wrong)", bad4);
    CHECK(zeros == 13 * 4 + 9, "cp.async: src-size 0 writes zeros over the old contents (%d of 61)", zeros);
    cudaCheck(cudaFree(g));
    cudaCheck(cudaFree(out));
}

// ----------------------------------------------------------------------------
// 4. warp shuffles and votes

enum { SH_IDX, SH_XOR, SH_UP, SH_DOWN };
// the shuffles of shuffle_kernel, in order: {mode, argument (the same for every lane unless
// noted), width}
#define NSHFL 14
static const int shfl_cases[NSHFL][3] = {
    {SH_IDX, -1, 32}, {SH_IDX, -1, 16}, {SH_IDX, -2, 8},  // -1: lane * 3 + 1, -2: lane * 5 + 2
    {SH_XOR, 5, 32},  {SH_XOR, 19, 32}, {SH_XOR, 6, 8},   {SH_XOR, 8, 8}, {SH_XOR, 1, 16},
    {SH_UP, 3, 32},   {SH_UP, 5, 16},   {SH_UP, 1, 8},    {SH_DOWN, 3, 32}, {SH_DOWN, 5, 16}, {SH_DOWN, 2, 8},
};
#define NVOTE 6  // ballot, any (true somewhere), any (false), all (true), all (false somewhere), __syncwarp

static __host__ __device__ int shfl_value(int tid) { return 1000 * (tid / 32) + 10 * (tid % 32) + 7; }

// shuffle_kernel: 2 warps (64 threads); out (64 threads x (NSHFL + NVOTE)), fsum (64): each
// thread's results; fsum: warp_reduce_sum (llmc/cuda_common.cuh) of the float values
__global__ void shuffle_kernel(int* out, float* fsum) {
    __shared__ int s[64];
    int tid = threadIdx.x, lane = tid % 32, v = shfl_value(tid);
    int* o = out + tid * (NSHFL + NVOTE);
    o[0] = __shfl_sync(FULL, v, lane * 3 + 1);  // a source lane past the width: taken modulo the width
    o[1] = __shfl_sync(FULL, v, lane * 3 + 1, 16);
    o[2] = __shfl_sync(FULL, v, lane * 5 + 2, 8);
    o[3] = __shfl_xor_sync(FULL, v, 5);
    o[4] = __shfl_xor_sync(FULL, v, 19);
    o[5] = __shfl_xor_sync(FULL, v, 6, 8);
    o[6] = __shfl_xor_sync(FULL, v, 8, 8);  // outside the group of 8: an earlier group is read, a later is not
    o[7] = __shfl_xor_sync(FULL, v, 1, 16);
    o[8] = __shfl_up_sync(FULL, v, 3);
    o[9] = __shfl_up_sync(FULL, v, 5, 16);
    o[10] = __shfl_up_sync(FULL, v, 1, 8);
    o[11] = __shfl_down_sync(FULL, v, 3);
    o[12] = __shfl_down_sync(FULL, v, 5, 16);
    o[13] = __shfl_down_sync(FULL, v, 2, 8);
    o[14] = (int)__ballot_sync(FULL, lane % 3 == 0 || tid == 40);
    o[15] = __any_sync(FULL, tid == 40);  // true in warp 1 only
    o[16] = __any_sync(FULL, 0);
    o[17] = __all_sync(FULL, lane < 32);
    o[18] = __all_sync(FULL, tid != 5);  // false in warp 0 only
    s[tid] = v;
    __syncwarp();  // the neighbour's slot is written before it is read
    o[19] = s[tid ^ 1];
    fsum[tid] = warp_reduce_sum((float)v);
}

// the source lane by the CUDA programming guide's definition (width w, groups of w lanes): idx
// reads lane arg % w of the group; xor reads lane ^ arg unless that is in a later group; up and
// down read lane -/+ arg within the group, else the caller's own value
static int shfl_source(int lane, int mode, int arg, int w) {
    int base = lane / w * w, j;
    switch (mode) {
        case SH_IDX: return base + arg % w;
        case SH_XOR: j = lane ^ arg; return j < base + w ? j : lane;
        case SH_UP: return lane - base >= arg ? lane - arg : lane;
        default: return lane - base + arg < w ? lane + arg : lane;
    }
}

static void test_shuffles(void) {
    int n = 64 * (NSHFL + NVOTE);
    int* d = (int*)dev_alloc(n * sizeof(int));
    float* df = (float*)dev_alloc(64 * sizeof(float));
    int* h = (int*)malloc(n * sizeof(int));
    float hf[64];
    cuda_launch(shuffle_kernel, 1, 64, 0, 0)(d, df);
    LAUNCHED();
    to_host(h, d, n * sizeof(int));
    to_host(hf, df, sizeof(hf));
    for (int c = 0; c < NSHFL; c++) {
        int mode = shfl_cases[c][0], w = shfl_cases[c][2], bad = 0;
        for (int tid = 0; tid < 64; tid++) {
            int lane = tid % 32, arg = shfl_cases[c][1];
            arg = arg == -1 ? lane * 3 + 1 : (arg == -2 ? lane * 5 + 2 : arg);
            int want = shfl_value(tid - lane + shfl_source(lane, mode, arg, w));
            bad += h[tid * (NSHFL + NVOTE) + c] != want;
        }
        static const char* names[4] = {"__shfl_sync", "__shfl_xor_sync", "__shfl_up_sync", "__shfl_down_sync"};
        char arg[16];
        snprintf(arg, sizeof(arg), "%d", shfl_cases[c][1]);
        CHECK(bad == 0, "%s arg %s width %d (%d of 64 lanes wrong)", names[mode],
              shfl_cases[c][1] == -1 ? "3 lane + 1" : shfl_cases[c][1] == -2 ? "5 lane + 2" : arg, w, bad);
    }
    int bad_vote[NVOTE] = {0, 0, 0, 0, 0, 0}, bad_sum = 0;
    for (int tid = 0; tid < 64; tid++) {
        int warp = tid / 32, lane = tid % 32;
        const int* o = h + tid * (NSHFL + NVOTE) + NSHFL;
        unsigned ballot = 0;
        float sum = 0.0f;
        for (int l = 0; l < 32; l++) {
            if (l % 3 == 0 || 32 * warp + l == 40) { ballot |= 1u << l; }
            sum += (float)shfl_value(32 * warp + l);
        }
        bad_vote[0] += (unsigned)o[0] != ballot;
        bad_vote[1] += o[1] != (warp == 1);
        bad_vote[2] += o[2] != 0;
        bad_vote[3] += o[3] != 1;
        bad_vote[4] += o[4] != (warp == 1);
        bad_vote[5] += o[5] != shfl_value(32 * warp + (lane ^ 1));
        bad_sum += hf[tid] != sum;
    }
    CHECK(bad_vote[0] == 0, "__ballot_sync: bit l set where lane l's predicate holds (%d wrong)", bad_vote[0]);
    CHECK(bad_vote[1] + bad_vote[2] == 0, "__any_sync: true where some lane's predicate holds (%d wrong)",
          bad_vote[1] + bad_vote[2]);
    CHECK(bad_vote[3] + bad_vote[4] == 0, "__all_sync: true where every lane's holds (%d wrong)", bad_vote[3] + bad_vote[4]);
    CHECK(bad_vote[5] == 0, "__syncwarp: shared writes before it are seen by the warp after it (%d wrong)", bad_vote[5]);
    CHECK(bad_sum == 0, "warp_reduce_sum (float __shfl_xor_sync): every lane gets its warp's sum (%d wrong)", bad_sum);
    free(h);
    cudaCheck(cudaFree(d));
    cudaCheck(cudaFree(df));
}

// ----------------------------------------------------------------------------
// 5. __syncthreads, indices, atomics

#define RED_BLOCKS 8
// reduce_kernel: grid RED_BLOCKS, block 256; in (RED_BLOCKS x 256), sums and counts (RED_BLOCKS):
// a tree sum in shared memory, right only if every level's barrier holds; the count of threads
// with t < 10 b + 5 by __syncthreads_count
__global__ void reduce_kernel(const float* in, float* sums, int* counts) {
    __shared__ float s[256];
    int t = threadIdx.x, b = blockIdx.x;
    s[t] = in[b * 256 + t];
    __syncthreads();
    for (int stride = 128; stride > 0; stride >>= 1) {
        if (t < stride) { s[t] += s[t + stride]; }
        __syncthreads();
    }
    int n = __syncthreads_count(t < 10 * b + 5);
    if (t == 0) {
        sums[b] = s[0];
        counts[b] = n;
    }
}

// index_kernel: grid (3, 2, 2), block (8, 4, 2) (2 warps); out (12 blocks x 64 threads x 2): at the
// slot of its linear block and thread index, each thread's indices packed 4 bits each, and
// the linear index of lane 0 of its warp (the lanes of a warp are consecutive linear indices)
__global__ void index_kernel(int* out) {
    int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    int nt = blockDim.x * blockDim.y * blockDim.z;
    int* o = out + 2 * (b * nt + t);
    o[0] = threadIdx.x | threadIdx.y << 4 | threadIdx.z << 8 | blockIdx.x << 12 | blockIdx.y << 16 | blockIdx.z << 20;
    o[1] = __shfl_sync(FULL, t, 0);
}

#define AT_BLOCKS 64
#define AT_THREADS (AT_BLOCKS * 256)
// atomic_kernel: grid AT_BLOCKS, block 256; fsum (1), ctr (4), tickets (AT_THREADS), slots (64, -1 before):
//   fsum += gid % 4 (every partial sum an integer: exact in any order)
//   ctr[0]: int atomicAdd; its old values are tickets, each taken once
//   ctr[1]: atomicMax of (gid * 7919) % 10007
//   slots[gid % 64]: atomicCAS from -1, one winner per slot; ctr[2] counts the winners
//   ctr[3]: an increment by a compare-and-swap loop
__global__ void atomic_kernel(float* fsum, int* ctr, int* tickets, int* slots) {
    int gid = blockIdx.x * blockDim.x + threadIdx.x;
    atomicAdd(fsum, (float)(gid % 4));
    tickets[atomicAdd(&ctr[0], 1)] = gid;
    atomicMax(&ctr[1], (gid * 7919) % 10007);
    if (atomicCAS(&slots[gid % 64], -1, gid) == -1) { atomicAdd(&ctr[2], 1); }
    int old = 0, prev;
    while ((prev = atomicCAS(&ctr[3], old, old + 1)) != old) { old = prev; }
}

static void test_sync_and_atomics(void) {
    // the block reduction
    float hin[RED_BLOCKS * 256], hsum[RED_BLOCKS];
    int hcount[RED_BLOCKS];
    for (int i = 0; i < RED_BLOCKS * 256; i++) { hin[i] = (float)(i * 7 % 13 - 6); }
    float* din = (float*)dev_alloc(sizeof(hin));
    float* dsum = (float*)dev_alloc(sizeof(hsum));
    int* dcount = (int*)dev_alloc(sizeof(hcount));
    to_dev(din, hin, sizeof(hin));
    cuda_launch(reduce_kernel, RED_BLOCKS, 256, 0, 0)(din, dsum, dcount);
    LAUNCHED();
    to_host(hsum, dsum, sizeof(hsum));
    to_host(hcount, dcount, sizeof(hcount));
    int bad_sum = 0, bad_count = 0;
    for (int b = 0; b < RED_BLOCKS; b++) {
        float want = 0.0f;
        for (int t = 0; t < 256; t++) { want += hin[b * 256 + t]; }
        bad_sum += hsum[b] != want;
        bad_count += hcount[b] != (10 * b + 5 < 256 ? 10 * b + 5 : 256);
    }
    CHECK(bad_sum == 0, "__syncthreads: a shared-memory tree sum per block (%d of %d blocks wrong)", bad_sum, RED_BLOCKS);
    CHECK(bad_count == 0, "__syncthreads_count: the block's count of true predicates (%d wrong)", bad_count);
    cudaCheck(cudaFree(din));
    cudaCheck(cudaFree(dsum));
    cudaCheck(cudaFree(dcount));

    // the indices of a 3D launch
    int nidx = 12 * 64 * 2, bad_idx = 0;
    int* didx = (int*)dev_alloc(nidx * sizeof(int));
    int* hidx = (int*)malloc(nidx * sizeof(int));
    cuda_launch(index_kernel, dim3(3, 2, 2), dim3(8, 4, 2), 0, 0)(didx);
    LAUNCHED();
    to_host(hidx, didx, nidx * sizeof(int));
    for (int b = 0; b < 12; b++) {
        for (int t = 0; t < 64; t++) {
            int want = (t % 8) | (t / 8 % 4) << 4 | (t / 32) << 8 | (b % 3) << 12 | (b / 3 % 2) << 16 | (b / 6) << 20;
            bad_idx += hidx[2 * (b * 64 + t)] != want || hidx[2 * (b * 64 + t) + 1] != t / 32 * 32;
        }
    }
    CHECK(bad_idx == 0, "threadIdx, blockIdx, blockDim, gridDim of a 3D launch; warps of consecutive threads (%d wrong)",
          bad_idx);
    free(hidx);
    cudaCheck(cudaFree(didx));

    // atomics
    float* fsum = (float*)dev_alloc(sizeof(float));
    int* ctr = (int*)dev_alloc(4 * sizeof(int));
    int* tickets = (int*)dev_alloc(AT_THREADS * sizeof(int));
    int* slots = (int*)dev_alloc(64 * sizeof(int));
    cudaCheck(cudaMemset(fsum, 0, sizeof(float)));
    cudaCheck(cudaMemset(ctr, 0, 4 * sizeof(int)));
    cudaCheck(cudaMemset(tickets, 0xff, AT_THREADS * sizeof(int)));
    cudaCheck(cudaMemset(slots, 0xff, 64 * sizeof(int)));
    cuda_launch(atomic_kernel, AT_BLOCKS, 256, 0, 0)(fsum, ctr, tickets, slots);
    LAUNCHED();
    float hfsum;
    int hctr[4], hslots[64];
    int* ht = (int*)malloc(AT_THREADS * sizeof(int));
    char* seen = (char*)calloc(AT_THREADS, 1);
    to_host(&hfsum, fsum, sizeof(float));
    to_host(hctr, ctr, sizeof(hctr));
    to_host(ht, tickets, AT_THREADS * sizeof(int));
    to_host(hslots, slots, sizeof(hslots));
    int max = 0, bad_tickets = 0, bad_slots = 0;
    for (int g = 0; g < AT_THREADS; g++) {
        max = (g * 7919) % 10007 > max ? (g * 7919) % 10007 : max;
        if (ht[g] < 0 || ht[g] >= AT_THREADS || seen[ht[g]]) {
            bad_tickets++;
        } else {
            seen[ht[g]] = 1;
        }
    }
    for (int s = 0; s < 64; s++) { bad_slots += hslots[s] < 0 || hslots[s] % 64 != s; }
    CHECK(hfsum == 1.5f * AT_THREADS, "float atomicAdd from %d threads: %.1f (want %.1f)", AT_THREADS, hfsum,
          1.5 * AT_THREADS);
    CHECK(hctr[0] == AT_THREADS && bad_tickets == 0, "int atomicAdd: count %d, every old value taken once (%d wrong)",
          hctr[0], bad_tickets);
    CHECK(hctr[1] == max, "atomicMax: %d (want %d)", hctr[1], max);
    CHECK(hctr[2] == 64 && bad_slots == 0, "atomicCAS: one winner per slot (%d winners, %d slots wrong)", hctr[2],
          bad_slots);
    CHECK(hctr[3] == AT_THREADS, "atomicCAS loop increment: %d (want %d)", hctr[3], AT_THREADS);
    free(ht);
    free(seen);
    cudaCheck(cudaFree(fsum));
    cudaCheck(cudaFree(ctr));
    cudaCheck(cudaFree(tickets));
    cudaCheck(cudaFree(slots));
}

// ----------------------------------------------------------------------------
// 7c. launch limits (valid CUDA: the same errors on a GPU)

// fill_kernel: any grid and block; out (n): out[i] = v by a grid-stride loop
__global__ void fill_kernel(int* out, int n, int v) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) { out[i] = v; }
}

// dyn_smem_kernel: one block of 256 threads, n ints of dynamic shared memory; out (1, zero before):
// the sum of the n ints 0 .. n-1 written to shared memory, read back by other threads
__global__ void dyn_smem_kernel(int* out, int n) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    int* s = (int*)smem_raw;
    int t = threadIdx.x, nt = blockDim.x;  // (locals: g++ 12 -O1 ASan+UBSan misreports these reloaded in the loops)
    for (int i = t; i < n; i += nt) { s[i] = i; }
    __syncthreads();
    int sum = 0;
    for (int i = t; i < n; i += nt) { sum += s[n - 1 - i]; }
    atomicAdd(out, sum);
}

// one launch of dyn_smem_kernel with `bytes` of dynamic shared memory: its launch error, and the
// sum it wrote (0 if it did not run)
static cudaError_t dyn_smem_launch(int* d, size_t bytes, int* sum) {
    cudaCheck(cudaMemset(d, 0, sizeof(int)));
    cuda_launch(dyn_smem_kernel, 1, 256, bytes, 0)(d, (int)(bytes / 4));
    cudaError_t e = cudaGetLastError();
    cudaCheck(cudaDeviceSynchronize());
    to_host(sum, d, sizeof(int));
    return e;
}

static void test_launch_limits(void) {
    int* d = (int*)dev_alloc(2048 * sizeof(int));
    int h[2048];
    cudaCheck(cudaMemset(d, 0, 2048 * sizeof(int)));
    cuda_launch(fill_kernel, 1, 1025, 0, 0)(d, 2048, 7);
    cudaError_t e = cudaGetLastError();
    cudaCheck(cudaDeviceSynchronize());
    to_host(h, d, sizeof(h));
    CHECK(e == cudaErrorInvalidConfiguration && h[0] == 0, "a launch of 1025 threads: %s, nothing ran",
          cudaGetErrorName(e));
    CHECK(cudaGetLastError() == cudaSuccess, "cudaGetLastError clears the launch error");
    cuda_launch(fill_kernel, 2, 1024, 0, 0)(d, 2048, 7);
    e = cudaGetLastError();
    cudaCheck(cudaDeviceSynchronize());
    to_host(h, d, sizeof(h));
    CHECK(e == cudaSuccess && h[0] == 7 && h[2047] == 7, "a launch of 2 x 1024 threads runs: %s", cudaGetErrorName(e));

    int sum;
    int want48 = (12288 * (12288 - 1)) / 2, want64 = (16384 * (16384 - 1)) / 2;
    e = dyn_smem_launch(d, 48 * 1024, &sum);
    CHECK(e == cudaSuccess && sum == want48, "48 KB of dynamic shared memory without opting in: %s, sum %d",
          cudaGetErrorName(e), sum);
    e = dyn_smem_launch(d, 48 * 1024 + 16, &sum);
    CHECK(e != cudaSuccess && sum == 0, "48 KB + 16 bytes without cudaFuncSetAttribute fails: %s", cudaGetErrorName(e));
    e = cudaFuncSetAttribute(dyn_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024);
    CHECK(e == cudaSuccess, "cudaFuncSetAttribute(MaxDynamicSharedMemorySize, 64 KB): %s", cudaGetErrorName(e));
    e = dyn_smem_launch(d, 64 * 1024, &sum);
    CHECK(e == cudaSuccess && sum == want64, "64 KB after opting in: %s, sum %d", cudaGetErrorName(e), sum);
    e = cudaFuncSetAttribute(dyn_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024 + 1);
    cudaGetLastError();
    CHECK(e == cudaErrorInvalidValue, "cudaFuncSetAttribute(MaxDynamicSharedMemorySize, 227 KB + 1): %s",
          cudaGetErrorName(e));
    e = cudaFuncSetAttribute(dyn_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024);
    CHECK(e == cudaSuccess, "cudaFuncSetAttribute(MaxDynamicSharedMemorySize, 227 KB): %s", cudaGetErrorName(e));

    // pinned host memory is a valid kernel argument
    int* pinned = NULL;
    cudaCheck(cudaMallocHost((void**)&pinned, 64 * sizeof(int)));
    memset(pinned, 0, 64 * sizeof(int));
    cuda_launch(fill_kernel, 1, 64, 0, 0)(pinned, 64, 3);
    LAUNCHED();
    CHECK(pinned[0] == 3 && pinned[63] == 3, "a kernel writes cudaMallocHost memory");
    cudaCheck(cudaFreeHost(pinned));
    cudaCheck(cudaFree(d));
}

#ifdef LLMC_EMU
// ----------------------------------------------------------------------------
// 6. and 7.: the cases run in a child process (emulator settings, errors that end the process)

extern char** environ;

// ticket_kernel: one block of 64 threads; out (64): the threads in the order they took a ticket
// from a shared counter (a race by design: the order the scheduler ran them)
__global__ void ticket_kernel(int* out) {
    __shared__ int next;
    if (threadIdx.x == 0) { next = 0; }
    __syncthreads();
    out[atomicAdd(&next, 1)] = threadIdx.x;
}

// neighbour_kernel: one block of 64 threads; out (64): each thread writes its shared slot, then
// reads its neighbour's; without the barrier between them (synced == 0) that is a race
__global__ void neighbour_kernel(int* out, int synced) {
    __shared__ int s[64];
    int t = threadIdx.x;
    s[t] = -1;
    __syncthreads();
    s[t] = 100 + t;
    if (synced) { __syncthreads(); }
    out[t] = s[(t + 1) % 64];
}

// barrier_kernel: one block of 64 threads; out (64). mode 0: every thread reaches the barrier;
// 1: threads >= 32 return before it; 2: threads >= 32 wait at another __syncthreads
__global__ void barrier_kernel(int* out, int mode) {
    __shared__ int s[64];
    int t = threadIdx.x;
    s[t] = t;
    if (mode == 1 && t >= 32) { return; }
    if (mode == 2 && t >= 32) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[t] = s[63 - t];
}

// shfl_mask_kernel: one warp; out (32): a broadcast from lane 0, with the full mask (bad == 0)
// or, from every lane, with the mask 0x0000ffff, which leaves out lanes 16..31
__global__ void shfl_mask_kernel(int* out, int bad) {
    out[threadIdx.x] = __shfl_sync(bad ? 0x0000ffffu : FULL, (int)threadIdx.x, 0);
}

// poison_kernel: one block of 64 threads, 256 bytes of dynamic shared memory; in (64 floats, never
// written); out (3 x 64): the bits of in, of a static __shared__ array and of the dynamic shared
// memory, each read before anything wrote it. (s is written after the barrier: g++ folds the
// reads of a function-local static that nothing writes to 0, and drops the variable.)
__global__ void poison_kernel(const float* in, unsigned* out) {
    __shared__ float s[64];
    extern __shared__ __align__(16) unsigned char smem_raw[];
    int t = threadIdx.x;
    out[t] = __float_as_uint(in[t]);
    out[64 + t] = __float_as_uint(s[t]);
    out[128 + t] = ((const unsigned*)smem_raw)[t];
    __syncthreads();
    s[t] = 0.0f;
}

// cp_async_early_kernel: one warp; g (64 floats); out (4 x 32): the bits of a thread's shared
// destinations of two commit groups a and b: a before any wait, a and b after wait_group 1, b
// after wait_group 0
__global__ void cp_async_early_kernel(const float* g, unsigned* out) {
    __shared__ __align__(16) float a[32];
    __shared__ __align__(16) float b[32];
    int t = threadIdx.x;
    attn_cp_async4(a + t, g + t, true);
    attn_cp_async_commit();
    attn_cp_async4(b + t, g + 32 + t, true);
    attn_cp_async_commit();
    out[t] = __float_as_uint(a[t]);
    attn_cp_async_wait<1>();
    out[32 + t] = __float_as_uint(a[t]);
    out[64 + t] = __float_as_uint(b[t]);
    attn_cp_async_wait<0>();
    out[96 + t] = __float_as_uint(b[t]);
}

// ----------------------------------------------------------------------------
// 8. EMU_STREAMS=random:SEED: deferred stream work, run in a random order that respects only
// stream order and events. streams_child prints one line per case; test_streams runs it in
// several seeds and in serial mode.

// st_add_kernel: x[i] += v; st_copy_kernel: out[i] = 2 in[i] (one block of 32)
__global__ void st_add_kernel(int* x, int n, int v) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) { x[i] += v; }
}
__global__ void st_copy_kernel(const int* in, int* out, int n) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) { out[i] = 2 * in[i]; }
}
// host functions: the pinned word after the kernel before it, then a value for the kernel after
static void st_host_fn(void* p) {
    int* h = (int*)p;
    h[1] = h[0] + 1;  // h[0] written by the kernel before it on the stream
    h[2] = 40;        // read by the kernel after it
}
static bool st_all(const int* d, int n, int want) {
    int h[32];
    to_host(h, d, n * sizeof(int));
    for (int i = 0; i < n; i++) {
        if (h[i] != want) { return false; }
    }
    return true;
}
static void st_zero(int* d, int n) {
    cudaCheck(cudaMemset(d, 0, n * sizeof(int)));
    cudaCheck(cudaDeviceSynchronize());
}
static int streams_child(void) {
    const int N = 32;
    cudaStream_t A, B, C;
    cudaCheck(cudaStreamCreateWithFlags(&A, cudaStreamNonBlocking));
    cudaCheck(cudaStreamCreateWithFlags(&B, cudaStreamNonBlocking));
    cudaCheck(cudaStreamCreateWithFlags(&C, cudaStreamNonBlocking));
    cudaEvent_t e, f;
    cudaCheck(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    cudaCheck(cudaEventCreateWithFlags(&f, cudaEventDisableTiming));
    int* x = (int*)dev_alloc(N * sizeof(int));
    int* y = (int*)dev_alloc(N * sizeof(int));
    int* out = (int*)dev_alloc(N * sizeof(int));
    // producer on A, consumer on B, with and without the event wait
    for (int wait = 1; wait >= 0; wait--) {
        st_zero(x, N);
        st_zero(out, N);
        cuda_launch(st_add_kernel, 1, 32, 0, A)(x, N, 5);
        cudaCheck(cudaEventRecord(e, A));
        if (wait) { cudaCheck(cudaStreamWaitEvent(B, e, 0)); }
        cuda_launch(st_copy_kernel, 1, 32, 0, B)(x, out, N);
        cudaCheck(cudaGetLastError());
        cudaCheck(cudaDeviceSynchronize());
        printf("%s %s\n", wait ? "wait" : "nowait", st_all(out, N, 10) ? "right" : "wrong");
    }
    // stream order: ten adds on A between unrelated work on B
    st_zero(x, N);
    st_zero(y, N);
    for (int i = 0; i < 10; i++) {
        cuda_launch(st_add_kernel, 1, 32, 0, A)(x, N, i);
        cuda_launch(st_add_kernel, 1, 32, 0, B)(y, N, 1);
        if (i == 4) { cuda_launch(st_copy_kernel, 1, 32, 0, A)(x, x, N); }  // x = 2 (0+..+4) = 20
    }
    cudaCheck(cudaDeviceSynchronize());
    printf("order %s\n", st_all(x, N, 20 + 5 + 6 + 7 + 8 + 9) && st_all(y, N, 10) ? "right" : "wrong");
    // the legacy default stream: blocking stream D1 -> default stream -> blocking stream D2, no events
    {
        cudaStream_t D1, D2;
        cudaCheck(cudaStreamCreate(&D1));
        cudaCheck(cudaStreamCreate(&D2));
        st_zero(x, N);
        st_zero(y, N);
        st_zero(out, N);
        cuda_launch(st_add_kernel, 1, 32, 0, D1)(x, N, 3);
        cuda_launch(st_copy_kernel, 1, 32, 0, 0)(x, y, N);  // y = 6 after D1's add
        cuda_launch(st_copy_kernel, 1, 32, 0, D2)(y, out, N);  // out = 12 after the default stream's copy
        cudaCheck(cudaStreamSynchronize(D2));
        printf("legacy %s\n", st_all(out, N, 12) ? "right" : "wrong");
        cudaCheck(cudaStreamDestroy(D1));
        cudaCheck(cudaStreamDestroy(D2));
    }
    // cudaLaunchHostFunc between two kernels of a stream (pinned memory read and written on both sides)
    {
        int* h = NULL;
        cudaCheck(cudaMallocHost((void**)&h, 4 * sizeof(int)));
        h[0] = h[1] = h[2] = h[3] = 0;
        cuda_launch(st_add_kernel, 1, 32, 0, A)(h, 1, 7);    // h[0] = 7
        cudaCheck(cudaLaunchHostFunc(A, st_host_fn, h));      // h[1] = 8, h[2] = 40
        cuda_launch(st_add_kernel, 1, 32, 0, A)(h + 2, 1, 2); // h[2] = 42
        cuda_launch(st_add_kernel, 1, 32, 0, B)(h + 3, 1, 1); // elsewhere
        cudaCheck(cudaStreamSynchronize(A));
        printf("hostfn %s\n", h[0] == 7 && h[1] == 8 && h[2] == 42 ? "right" : "wrong");
        cudaCheck(cudaFreeHost(h));
    }
    // one event recorded and waited four times; then a wait placed before a later record
    {
        int* bufs = (int*)dev_alloc(4 * N * sizeof(int));
        int* outs = (int*)dev_alloc(4 * N * sizeof(int));
        cudaCheck(cudaMemset(bufs, 0, 4 * N * sizeof(int)));
        cudaCheck(cudaMemset(outs, 0, 4 * N * sizeof(int)));
        cudaCheck(cudaDeviceSynchronize());
        for (int k = 0; k < 4; k++) {
            cuda_launch(st_add_kernel, 1, 32, 0, A)(bufs + k * N, N, k + 1);
            cudaCheck(cudaEventRecord(e, A));
            cudaCheck(cudaStreamWaitEvent(B, e, 0));
            cuda_launch(st_copy_kernel, 1, 32, 0, B)(bufs + k * N, outs + k * N, N);
        }
        cudaCheck(cudaDeviceSynchronize());
        bool ok = true;
        for (int k = 0; k < 4; k++) { ok = ok && st_all(outs + k * N, N, 2 * (k + 1)); }
        printf("rerecord %s\n", ok ? "right" : "wrong");
        st_zero(x, N);
        st_zero(y, N);
        st_zero(out, N);
        cuda_launch(st_add_kernel, 1, 32, 0, A)(x, N, 1);
        cudaCheck(cudaEventRecord(f, A));
        cudaCheck(cudaStreamWaitEvent(B, f, 0));           // waits for the record above only
        cuda_launch(st_add_kernel, 1, 32, 0, A)(y, N, 4);
        cudaCheck(cudaEventRecord(f, A));                  // a later record: B's wait does not see it
        cuda_launch(st_copy_kernel, 1, 32, 0, B)(y, out, N);
        cudaCheck(cudaDeviceSynchronize());
        printf("late %s\n", st_all(out, N, 8) ? "right" : "wrong");
        cudaCheck(cudaFree(bufs));
        cudaCheck(cudaFree(outs));
    }
    // graph capture on C, replayed twice between event waits
    {
        cudaGraph_t g;
        cudaGraphExec_t ge;
        cudaCheck(cudaStreamBeginCapture(C, cudaStreamCaptureModeThreadLocal));
        for (int i = 0; i < 3; i++) { cuda_launch(st_add_kernel, 1, 32, 0, C)(x, N, 1); }
        cudaCheck(cudaStreamEndCapture(C, &g));
        cudaCheck(cudaGraphInstantiate(&ge, g, 0));
        st_zero(x, N);
        st_zero(out, N);
        cuda_launch(st_add_kernel, 1, 32, 0, A)(x, N, 10);
        cudaCheck(cudaEventRecord(e, A));
        cudaCheck(cudaStreamWaitEvent(C, e, 0));
        cudaCheck(cudaGraphLaunch(ge, C));
        cudaCheck(cudaGraphLaunch(ge, C));
        cudaCheck(cudaEventRecord(f, C));
        cudaCheck(cudaStreamWaitEvent(B, f, 0));
        cuda_launch(st_copy_kernel, 1, 32, 0, B)(x, out, N);
        cudaCheck(cudaDeviceSynchronize());
        printf("graph %s\n", st_all(out, N, 32) ? "right" : "wrong");
        cudaCheck(cudaGraphExecDestroy(ge));
        cudaCheck(cudaGraphDestroy(g));
    }
    // queries answer honestly and make progress; cudaStreamSynchronize runs every stream's work
    {
        cuda_launch(st_add_kernel, 1, 32, 0, A)(x, N, 1);
        cuda_launch(st_add_kernel, 1, 32, 0, A)(x, N, 1);
        cudaEventRecord(e, A);
        cudaError_t q0 = cudaStreamQuery(A), qe = cudaEventQuery(e);
        int polls = 0;
        while (cudaStreamQuery(A) == cudaErrorNotReady && polls < 100) { polls++; }
        cudaError_t q1 = cudaStreamQuery(A), qe1 = cudaEventQuery(e);
        printf("query first %s %s then %s %s\n", cudaGetErrorName(q0), cudaGetErrorName(qe), cudaGetErrorName(q1),
               cudaGetErrorName(qe1));
        cuda_launch(st_add_kernel, 1, 32, 0, B)(y, N, 1);
        cuda_launch(st_add_kernel, 1, 32, 0, A)(x, N, 1);
        cudaCheck(cudaStreamSynchronize(A));
        printf("streamsync other %s\n", cudaGetErrorName(cudaStreamQuery(B)));
        cudaCheck(cudaGetLastError());
    }
    // the work waits for a synchronizing call; a bad launch is still reported at its own call
    {
        int* h = NULL;
        cudaCheck(cudaMallocHost((void**)&h, sizeof(int)));
        h[0] = 0;
        cuda_launch(st_add_kernel, 1, 32, 0, A)(h, 1, 5);
        int before = h[0];
        cuda_launch(st_add_kernel, 1, 1025, 0, A)(h, 1, 1);
        cudaError_t le = cudaGetLastError();
        cudaCheck(cudaStreamSynchronize(A));
        printf("deferred before %d after %d launch %s\n", before, h[0], cudaGetErrorName(le));
        cudaCheck(cudaFreeHost(h));
    }
    // a pageable source of cudaMemcpyAsync may be reused at once; a pageable destination is filled at return
    {
        int hsrc[N], hdst[N];
        for (int i = 0; i < N; i++) { hsrc[i] = 3; }
        cudaCheck(cudaMemcpyAsync(x, hsrc, sizeof(hsrc), cudaMemcpyHostToDevice, A));
        for (int i = 0; i < N; i++) { hsrc[i] = -1; }
        cuda_launch(st_add_kernel, 1, 32, 0, A)(x, N, 1);
        cudaCheck(cudaMemcpyAsync(hdst, x, sizeof(hdst), cudaMemcpyDeviceToHost, A));
        bool ok = true;
        for (int i = 0; i < N; i++) { ok = ok && hdst[i] == 4; }
        printf("pageable %s\n", ok ? "right" : "wrong");
    }
    cudaCheck(cudaFree(x));
    cudaCheck(cudaFree(y));
    cudaCheck(cudaFree(out));
    cudaCheck(cudaEventDestroy(e));
    cudaCheck(cudaEventDestroy(f));
    cudaCheck(cudaStreamDestroy(A));
    cudaCheck(cudaStreamDestroy(B));
    cudaCheck(cudaStreamDestroy(C));
    // work left queued at exit still runs (the line comes from a host function)
    cudaCheck(cudaLaunchHostFunc(0, [](void*) { printf("exit hostfn ran\n"); }, NULL));
    return 0;
}

static void print_ints(const char* key, const int* v, int n) {
    printf("%s", key);
    for (int i = 0; i < n; i++) { printf(" %d", v[i]); }
    printf("\n");
}
// how many of n words are the poison bytes, and how many are the floats base + 1, base + 2, ...
static int count_poison(const unsigned* v, int n) {
    int c = 0;
    for (int i = 0; i < n; i++) { c += v[i] == 0xffffffffu; }
    return c;
}
static int count_data(const unsigned* v, int n, int base) {
    int c = 0;
    for (int i = 0; i < n; i++) {
        float f;
        memcpy(&f, &v[i], 4);
        c += f == (float)(base + i + 1);
    }
    return c;
}

// one case in this process; prints what the parent checks, "good done" after a control launch
static int child_main(const char* name) {
    int* d = (int*)dev_alloc(256 * sizeof(int));
    int h[64];
    if (!strcmp(name, "order")) {
        cuda_launch(ticket_kernel, 1, 64, 0, 0)(d);
        LAUNCHED();
        to_host(h, d, sizeof(h));
        print_ints("ticket", h, 64);
        for (int synced = 0; synced < 2; synced++) {
            cuda_launch(neighbour_kernel, 1, 64, 0, 0)(d, synced);
            LAUNCHED();
            to_host(h, d, sizeof(h));
            print_ints(synced ? "synced" : "race", h, 64);
        }
    } else if (!strcmp(name, "barrier_exit") || !strcmp(name, "barrier_split")) {
        cuda_launch(barrier_kernel, 1, 64, 0, 0)(d, 0);
        LAUNCHED();
        printf("good done\n");
        fflush(stdout);
        cuda_launch(barrier_kernel, 1, 64, 0, 0)(d, !strcmp(name, "barrier_exit") ? 1 : 2);
        LAUNCHED();
    } else if (!strcmp(name, "shfl_mask")) {
        cuda_launch(shfl_mask_kernel, 1, 32, 0, 0)(d, 0);
        LAUNCHED();
        printf("good done\n");
        fflush(stdout);
        cuda_launch(shfl_mask_kernel, 1, 32, 0, 0)(d, 1);
        LAUNCHED();
    } else if (!strcmp(name, "host_ptr")) {
        int* host = (int*)malloc(64 * sizeof(int));
        cuda_launch(fill_kernel, 1, 64, 0, 0)(d, 64, 1);
        LAUNCHED();
        printf("good done\n");
        fflush(stdout);
        cuda_launch(fill_kernel, 1, 64, 0, 0)(host, 64, 1);
        LAUNCHED();
        free(host);
    } else if (!strcmp(name, "poison")) {
        float* fresh = (float*)dev_alloc(64 * sizeof(float));
        unsigned* out = (unsigned*)dev_alloc(3 * 64 * sizeof(unsigned));
        unsigned ho[3 * 64];
        cuda_launch(poison_kernel, 1, 64, 256, 0)(fresh, out);
        LAUNCHED();
        to_host(ho, out, sizeof(ho));
        int nan = 0;
        for (int i = 0; i < 64; i++) {
            float f;
            memcpy(&f, &ho[i], 4);
            nan += isnan(f) != 0;
        }
        printf("global %d/64 nan %d/64 static %d/64 dynamic %d/64\n", count_poison(ho, 64), nan,
               count_poison(ho + 64, 64), count_poison(ho + 128, 64));
        cudaCheck(cudaFree(fresh));
        cudaCheck(cudaFree(out));
    } else if (!strcmp(name, "cp_async")) {
        float hg[64];
        for (int i = 0; i < 64; i++) { hg[i] = (float)(i + 1); }
        float* g = (float*)dev_alloc(sizeof(hg));
        unsigned* out = (unsigned*)dev_alloc(4 * 32 * sizeof(unsigned));
        unsigned ho[4 * 32];
        to_dev(g, hg, sizeof(hg));
        cuda_launch(cp_async_early_kernel, 1, 32, 0, 0)(g, out);
        LAUNCHED();
        to_host(ho, out, sizeof(ho));
        printf("a_before_wait poison %d/32, a_after_wait1 data %d/32, b_after_wait1 poison %d/32, b_after_wait0 data "
               "%d/32\n",
               count_poison(ho, 32), count_data(ho + 32, 32, 0), count_poison(ho + 64, 32), count_data(ho + 96, 32, 32));
        cudaCheck(cudaFree(g));
        cudaCheck(cudaFree(out));
    } else if (!strcmp(name, "streams")) {
        cudaCheck(cudaFree(d));
        return streams_child();
    } else {
        fprintf(stderr, "test_emu: no child case %s\n", name);
        return 2;
    }
    cudaCheck(cudaFree(d));
    return 0;
}

// runs this executable as `test_emu child NAME` with env (NAME=VALUE, NULL-terminated) over this
// environment less its EMU_ settings; returns the exit code (128 + signal when killed) and the
// child's stdout and stderr, merged, in out
static int run_child(const char* name, const char* const* env, char* out, size_t cap) {
    int n = 0, k = 0;
    while (environ[n]) { n++; }
    const char** envp = (const char**)malloc((n + 8) * sizeof(char*));
    for (int i = 0; i < n; i++) {
        if (strncmp(environ[i], "EMU_", 4) != 0) { envp[k++] = environ[i]; }
    }
    for (int i = 0; env[i] && i < 7; i++) { envp[k++] = env[i]; }
    envp[k] = NULL;
    int fd[2];
    if (pipe(fd) != 0) { return -1; }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        const char* argv[] = {"test_emu", "child", name, NULL};
        execve("/proc/self/exe", (char* const*)argv, (char* const*)envp);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    char sink[4096];
    for (;;) {
        ssize_t got = len + 1 < cap ? read(fd[0], out + len, cap - 1 - len) : read(fd[0], sink, sizeof(sink));
        if (got <= 0) { break; }
        if (len + 1 < cap) { len += (size_t)got; }
    }
    out[len] = 0;
    close(fd[0]);
    free(envp);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) { return -1; }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// the numbers after `key` on its line of a child's output (empty if none)
static void line_of(const char* out, const char* key, char* line, size_t n) {
    line[0] = 0;
    size_t kl = strlen(key);
    for (const char* p = out; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
        if (!strncmp(p, key, kl) && p[kl] == ' ') {
            const char* e = strchr(p, '\n');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            l = l < n - 1 ? l : n - 1;
            memcpy(line, p, l);
            line[l] = 0;
            return;
        }
    }
}

// cudaMemcpy2D / cudaMemcpy2DAsync: a (5 x 3) block of ints out of rows of 7 into rows of 4, and a pitch
// narrower than the width is refused, as the runtime refuses it.
static void test_memcpy_2d(void) {
    enum { R = 5, SW = 7, DW = 4, W = 3 };
    int hs[R * SW], hd[R * DW], want[R * DW];
    for (int i = 0; i < R * SW; i++) { hs[i] = 100 + i; }
    for (int r = 0; r < R; r++) {
        for (int c = 0; c < DW; c++) { want[r * DW + c] = c < W ? hs[r * SW + c] : -1; }
    }
    int* ds = (int*)dev_alloc(sizeof(hs));
    int* dd = (int*)dev_alloc(sizeof(hd));
    to_dev(ds, hs, sizeof(hs));
    for (int async = 0; async < 2; async++) {
        cudaCheck(cudaMemset(dd, 0xff, sizeof(hd)));
        if (async) {
            cudaCheck(cudaMemcpy2DAsync(dd, DW * sizeof(int), ds, SW * sizeof(int), W * sizeof(int), R,
                                        cudaMemcpyDeviceToDevice, 0));
            cudaCheck(cudaStreamSynchronize(0));
        } else {
            cudaCheck(cudaMemcpy2D(dd, DW * sizeof(int), ds, SW * sizeof(int), W * sizeof(int), R,
                                   cudaMemcpyDeviceToDevice));
        }
        to_host(hd, dd, sizeof(hd));
        CHECK(!memcmp(hd, want, sizeof(hd)), "%s: a pitched block lands row by row, the gaps untouched",
              async ? "cudaMemcpy2DAsync" : "cudaMemcpy2D");
    }
    cudaError_t e = cudaMemcpy2D(dd, 2 * sizeof(int), ds, SW * sizeof(int), W * sizeof(int), R,
                                 cudaMemcpyDeviceToDevice);
    CHECK(e == cudaErrorInvalidPitchValue, "cudaMemcpy2D with width > dpitch: %s", cudaGetErrorName(e));
    (void)cudaGetLastError();
    cudaCheck(cudaFree(ds));
    cudaCheck(cudaFree(dd));
}

// cp_async_war_kernel: two warps; g (128 floats); out (128 floats). Tile 0 (g[0..63]) is
// copied into one shared buffer and every thread sums all of it; then tile 1 (g[64..127])
// refills the same buffer, with the wait for it after the next barrier, as a double-buffered
// loop does. With `barrier` the refill waits for every reader; without it, the first warp to
// run refills its part while the other warp still has to read the old tile: a
// write-after-read race that no thread order alone exposes, since the copy lands after the
// next barrier. The emulation makes the destination poison from the issue on.
__global__ void cp_async_war_kernel(const float* g, float* out, int barrier) {
    __shared__ __align__(16) float a[64];
    int t = threadIdx.x;
    attn_cp_async4(a + t, g + t, true);
    attn_cp_async_commit();
    attn_cp_async_wait<0>();
    __syncthreads();
    float sum = 0.0f;
    for (int i = 0; i < 64; i++) { sum += a[(t + i) % 64]; }
    if (barrier) { __syncthreads(); }
    attn_cp_async4(a + t, g + 64 + t, true);
    attn_cp_async_commit();
    out[t] = sum;
    __syncthreads();
    attn_cp_async_wait<0>();
    __syncthreads();
    out[64 + t] = a[(t + 1) % 64];
}

static void test_cp_async_war(void) {
    float hg[128], h[128];
    for (int i = 0; i < 128; i++) { hg[i] = (float)(i + 1); }
    float* g = (float*)dev_alloc(sizeof(hg));
    float* out = (float*)dev_alloc(sizeof(h));
    to_dev(g, hg, sizeof(hg));
    int right[2] = {0, 0}, tile1[2] = {0, 0};
    for (int barrier = 0; barrier < 2; barrier++) {
        cuda_launch(cp_async_war_kernel, 1, 64, 0, 0)(g, out, barrier);
        LAUNCHED();
        to_host(h, out, sizeof(h));
        for (int t = 0; t < 64; t++) {
            right[barrier] += h[t] == 64.0f * 65.0f / 2.0f;  // exact: small integers
            tile1[barrier] += h[64 + t] == hg[64 + (t + 1) % 64];
        }
    }
    CHECK(right[1] == 64 && tile1[1] == 64, "cp.async refill after a barrier: every thread summed tile 0, then read tile 1");
    CHECK(right[0] < 64 && tile1[0] == 64,
          "cp.async refill without the barrier: %d of 64 threads read refilled (poison) words of tile 0: the "
          "write-after-read race is seen",
          64 - right[0]);
    cudaCheck(cudaFree(g));
    cudaCheck(cudaFree(out));
}

#define CHILD_OUT (1 << 16)

static void test_order(void) {
    static const char* orders[4] = {"EMU_ORDER=forward", "EMU_ORDER=reverse", "EMU_ORDER=random:7", "EMU_ORDER=random:7"};
    static char out[4][CHILD_OUT];
    char ticket[4][1024], race[4][1024], synced[4][1024];
    int rc_bad = 0;
    for (int i = 0; i < 4; i++) {
        const char* env[] = {orders[i], NULL};
        rc_bad += run_child("order", env, out[i], CHILD_OUT) != 0;
        line_of(out[i], "ticket", ticket[i], sizeof(ticket[i]));
        line_of(out[i], "race", race[i], sizeof(race[i]));
        line_of(out[i], "synced", synced[i], sizeof(synced[i]));
    }
    char fwd[1024], rev[1024], want_synced[1024];
    int p = snprintf(fwd, sizeof(fwd), "ticket"), q = snprintf(rev, sizeof(rev), "ticket");
    int r = snprintf(want_synced, sizeof(want_synced), "synced");
    for (int t = 0; t < 64; t++) {
        p += snprintf(fwd + p, sizeof(fwd) - p, " %d", t);
        q += snprintf(rev + q, sizeof(rev) - q, " %d", 63 - t);
        r += snprintf(want_synced + r, sizeof(want_synced) - r, " %d", 100 + (t + 1) % 64);
    }
    CHECK(rc_bad == 0, "EMU_ORDER children ran (forward, reverse, random:7 twice)");
    CHECK(!strcmp(ticket[0], fwd) && !strcmp(ticket[1], rev),
          "EMU_ORDER: forward runs the threads 0..63 in turn, reverse 63..0 (a shared ticket counter)");
    CHECK(strcmp(ticket[2], fwd) && strcmp(ticket[2], rev) && !strcmp(ticket[2], ticket[3]),
          "EMU_ORDER=random:7: another order, the same at every run");
    CHECK(race[0][0] && strcmp(race[0], race[1]) != 0,
          "EMU_ORDER: a missing barrier (read the neighbour's shared slot) gives different results forward and reverse");
    CHECK(!strcmp(synced[0], want_synced) && !strcmp(synced[1], want_synced) && !strcmp(synced[2], want_synced),
          "EMU_ORDER: with the barrier, the right result in every order");
}

// EMU_STREAMS: the streams child in serial mode and six seeds
static void test_streams(void) {
    static char out[CHILD_OUT];
    static const char* cases[] = {"wait", "order", "legacy", "hostfn", "rerecord", "graph"};
    const int NC = (int)(sizeof(cases) / sizeof(cases[0]));
    int rc_bad = 0, wrong[16] = {0}, nowait_wrong = 0, late_wrong = 0, query_seen = 0, sync_other = 0, pageable = 0,
        exit_ran = 0, serial_ok = 0, deferred = 0;
    char line[256];
    for (int seed = 0; seed <= 6; seed++) {
        char env0[64];
        if (seed == 0) {
            snprintf(env0, sizeof env0, "EMU_STREAMS=serial");
        } else {
            snprintf(env0, sizeof env0, "EMU_STREAMS=random:%d", seed);
        }
        const char* env[] = {env0, NULL};
        int rc = run_child("streams", env, out, CHILD_OUT);
        if (rc != 0) {
            rc_bad++;
            printf("%s: exit %d\n%s", env0, rc, out);
            continue;
        }
        for (int c = 0; c < NC; c++) {
            line_of(out, cases[c], line, sizeof line);
            wrong[c] += strcmp(line + strlen(cases[c]), " right") != 0;
        }
        line_of(out, "nowait", line, sizeof line);
        if (seed == 0) { serial_ok += !strcmp(line, "nowait right"); }
        else { nowait_wrong += !strcmp(line, "nowait wrong"); }
        line_of(out, "late", line, sizeof line);
        if (seed == 0) { serial_ok += !strcmp(line, "late right"); }
        else { late_wrong += !strcmp(line, "late wrong"); }
        line_of(out, "query", line, sizeof line);
        if (seed == 0) {
            serial_ok += !strcmp(line, "query first cudaSuccess cudaSuccess then cudaSuccess cudaSuccess");
        } else {
            query_seen += !strcmp(line, "query first cudaErrorNotReady cudaErrorNotReady then cudaSuccess cudaSuccess");
        }
        line_of(out, "streamsync", line, sizeof line);
        sync_other += !strcmp(line, "streamsync other cudaSuccess");
        line_of(out, "pageable", line, sizeof line);
        pageable += !strcmp(line, "pageable right");
        exit_ran += strstr(out, "exit hostfn ran") != NULL;
        line_of(out, "deferred", line, sizeof line);
        deferred += !strcmp(line, seed == 0 ? "deferred before 5 after 5 launch cudaErrorInvalidConfiguration"
                                           : "deferred before 0 after 5 launch cudaErrorInvalidConfiguration");
    }
    CHECK(rc_bad == 0, "EMU_STREAMS children ran (serial, random:1..6)");
    CHECK(wrong[0] == 0, "EMU_STREAMS: producer on A, event, consumer on B: right in serial and every seed");
    CHECK(nowait_wrong > 0 && serial_ok == 3,
          "EMU_STREAMS=random: without the event wait the consumer ran first in %d of 6 seeds (a missing wait caught); "
          "serial right", nowait_wrong);
    CHECK(wrong[1] == 0, "EMU_STREAMS: the order within each stream is kept (ten adds and a copy between)");
    CHECK(wrong[2] == 0, "EMU_STREAMS: the legacy default stream waits for blocking streams and they for it");
    CHECK(wrong[3] == 0, "EMU_STREAMS: cudaLaunchHostFunc runs after the kernel before it, before the one after");
    CHECK(wrong[4] == 0, "EMU_STREAMS: one event recorded and waited four times");
    CHECK(late_wrong > 0, "EMU_STREAMS: a wait covers the record before it, not a later one (stale in %d of 6 seeds)",
          late_wrong);
    CHECK(wrong[5] == 0, "EMU_STREAMS: a captured graph replayed twice between event waits");
    CHECK(query_seen == 6, "EMU_STREAMS: cudaStreamQuery / cudaEventQuery say not ready, then polling finishes the work");
    CHECK(sync_other == 7, "EMU_STREAMS: cudaStreamSynchronize runs every stream's queued work (documented)");
    CHECK(pageable == 7, "EMU_STREAMS: cudaMemcpyAsync stages a pageable source at the call, fills a pageable "
          "destination before it returns");
    CHECK(exit_ran == 7, "EMU_STREAMS: work still queued at exit runs");
    CHECK(deferred == 7, "EMU_STREAMS: a kernel's write lands at the synchronize (at the call when serial); a bad "
          "launch configuration is the error of its own call");
}

static void test_child_errors(void) {
    static char out[CHILD_OUT];
    const char* none[] = {NULL};
    int rc = run_child("barrier_exit", none, out, CHILD_OUT);
    CHECK(rc != 0 && rc < 128 && strstr(out, "good done") && strstr(out, "barrier_kernel") &&
              strstr(out, "__syncthreads") && strstr(out, "never reach"),
          "a __syncthreads that half the block skips by returning: exit %d, the kernel and the barrier named", rc);
    if (!(rc != 0 && strstr(out, "__syncthreads"))) { printf("%s", out); }
    rc = run_child("barrier_split", none, out, CHILD_OUT);
    CHECK(rc != 0 && rc < 128 && strstr(out, "good done") && strstr(out, "divergent __syncthreads"),
          "two warps at two different __syncthreads: exit %d, 'divergent __syncthreads'", rc);
    rc = run_child("shfl_mask", none, out, CHILD_OUT);
    CHECK(rc != 0 && rc < 128 && strstr(out, "good done") && strstr(out, "excludes the calling lane"),
          "a shuffle whose mask leaves out the calling lane: exit %d, 'excludes the calling lane'", rc);
    const char* reverse[] = {"EMU_ORDER=reverse", NULL};
    rc = run_child("shfl_mask", reverse, out, CHILD_OUT);
    CHECK(rc != 0 && rc < 128 && strstr(out, "good done") && strstr(out, "__shfl_sync"),
          "the same under EMU_ORDER=reverse: exit %d", rc);
    rc = run_child("host_ptr", none, out, CHILD_OUT);
    CHECK(rc != 0 && rc < 128 && strstr(out, "good done") && strstr(out, "fill_kernel") &&
              strstr(out, "not device memory"),
          "a host malloc pointer as a kernel argument: exit %d, 'not device memory'", rc);

    const char* poison[] = {"EMU_POISON=1", NULL};
    rc = run_child("poison", poison, out, CHILD_OUT);
    CHECK(rc == 0 && strstr(out, "global 64/64 nan 64/64 static 64/64 dynamic 64/64"),
          "EMU_POISON=1: fresh cudaMalloc, static and dynamic shared memory read as 0xff bytes (NaN)");
    if (rc != 0 || !strstr(out, "global 64/64")) { printf("%s", out); }
    rc = run_child("poison", none, out, CHILD_OUT);
    CHECK(rc == 0 && strstr(out, "static 0/64 dynamic 0/64"), "without EMU_POISON: shared memory is not poisoned");
    rc = run_child("cp_async", poison, out, CHILD_OUT);
    CHECK(rc == 0 && strstr(out, "a_before_wait poison 32/32, a_after_wait1 data 32/32, b_after_wait1 poison 32/32, "
                                 "b_after_wait0 data 32/32"),
          "EMU_POISON=1 cp.async: the destination reads poison until the wait_group that covers its group");
    if (rc != 0 || !strstr(out, "a_before_wait poison 32/32")) { printf("%s", out); }
}
#endif  // LLMC_EMU

int main(int argc, char** argv) {
#ifdef LLMC_EMU
    if (argc == 3 && !strcmp(argv[1], "child")) { return child_main(argv[2]); }
#else
    (void)argc;
    (void)argv;
#endif
    test_mma();
    test_ldmatrix();
    test_cp_async();
    test_shuffles();
    test_sync_and_atomics();
    test_launch_limits();
#ifdef LLMC_EMU
    test_memcpy_2d();
    test_cp_async_war();
    test_order();
    test_streams();
    test_child_errors();
#endif
    return test_summary();
}
