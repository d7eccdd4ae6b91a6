/*
attention.cuh: causal multi-head attention with native GQA on the GPU, FlashAttention-2 style:
tiled, online softmax, no (T, T) matrix in memory, recomputation in the backward. bf16 in and
out, fp32 scores, softmax statistics and accumulators; the matrix products run on the tensor
cores (mma.sync m16n8k16 bf16 -> fp32, operands from shared memory through ldmatrix).
Checked against llmc/gpt_cpu.h attention_forward/backward by dev/cuda/attention.cu.

Layouts (query head h reads kv head h / (NH / NKV); K/V are never replicated per query head):
  q, out, dq, dout (B, T, NH, hd) contiguous;  k, dk (B, T, NKV, hd) contiguous;
  v, dv: head g of token (b, t) starts at v + ((size_t)b * T + t) * v_stride + g * hd, so v can be
  read in place from the qkv projection output (v_stride = (NH + 2 NKV) hd) or be contiguous
  (v_stride = NKV hd);  lse (B, NH, T) fp32, natural-log logsumexp of each row's scaled scores.

Requirements (checked, with a message): hd 64 or 128; NH % NKV == 0; every pointer 16-byte
aligned and v_stride a multiple of 8 (rows are moved 16 bytes at a time); B, NH <= 65535.
T is any value >= 1 (tiles past T are zero-filled and masked).

Kernels (numbered after the versions in dev/cuda/attention.cu), every block 4 warps, every warp
owns 16 rows of its block's tile:
  attention_forward_kernel1:              block = 64 queries of one (b, h); loops over key tiles
                                          of 64 up to the diagonal; K/V tiles double-buffered
                                          with cp.async.
  attention_backward_preprocess_kernel1:  delta (B, NH, T) = rowsum(dout * out), into the scratch.
  attention_backward_dkdv_kernel1:        block = 64 keys of one (b, kv head g); loops over every
                                          query head of the group and the query tiles (64 for
                                          hd 64, 32 for hd 128) at and after the diagonal;
                                          dK, dV in registers, written once.
  attention_backward_dq_kernel1:          block = 64 queries of one (b, h); loops over key tiles
                                          like the forward and recomputes P and dP.
dQ gets its own kernel instead of fp32 atomics from the dK/dV kernel: every output element is
summed by one thread in a fixed order, so the backward is bit-identical from run to run.

defines: attention_forward, attention_backward_scratch_bytes, attention_backward
*/
#ifndef LLMC_ATTENTION_CUH
#define LLMC_ATTENTION_CUH

#include <math.h>
#include "cuda_common.cuh"

#define ATTN_WARPS 4        // warps per block in every attention kernel
#define ATTN_ROWS_WARP 16   // rows of a tile per warp (the M of one mma)
#define ATTN_TILE 64        // = ATTN_WARPS * ATTN_ROWS_WARP: queries per forward / dQ block, keys per tile
static_assert(ATTN_TILE == ATTN_WARPS * ATTN_ROWS_WARP, "a block's tile is its warps' rows");

// queries per step of the dK/dV kernel: hd 128 keeps dK and dV (16 x 128 fp32 each per warp)
// in registers, so its score tile is halved to stay clear of spills
template <int HD>
struct AttnDkdvTile {
    static constexpr int QB = HD == 128 ? 32 : 64;
};

// ----------------------------------------------------------------------------
// device helpers: cp.async, ldmatrix, mma

#if defined(__CUDACC__) || defined(LLMC_EMU)
static __device__ __forceinline__ uint32_t attn_smem_addr(const void* p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 16 bytes global -> shared, asynchronous; valid == false writes 16 zero bytes (src is not read)
static __device__ __forceinline__ void attn_cp_async16(void* smem, const void* gmem, bool valid) {
#ifdef LLMC_EMU
    ::emu::cp_async(smem, gmem, 16, valid ? 16 : 0);
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(attn_smem_addr(smem)),
                 "l"(__cvta_generic_to_global(gmem)), "r"(valid ? 16 : 0)
                 : "memory");
#endif
}
// 4 bytes global -> shared, asynchronous; valid == false writes zeros
static __device__ __forceinline__ void attn_cp_async4(void* smem, const void* gmem, bool valid) {
#ifdef LLMC_EMU
    ::emu::cp_async(smem, gmem, 4, valid ? 4 : 0);
#else
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(attn_smem_addr(smem)),
                 "l"(__cvta_generic_to_global(gmem)), "r"(valid ? 4 : 0)
                 : "memory");
#endif
}
static __device__ __forceinline__ void attn_cp_async_commit() {
#ifdef LLMC_EMU
    ::emu::cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// wait until at most N of this thread's committed groups are still in flight
template <int N>
static __device__ __forceinline__ void attn_cp_async_wait() {
#ifdef LLMC_EMU
    ::emu::cp_async_wait(N);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// four 8x8 bf16 matrices from shared memory; lane i gives the address of row i % 8 of matrix i / 8
static __device__ __forceinline__ void attn_ldsm_x4(uint32_t* r, const bf16* p) {
#ifdef LLMC_EMU
    ::emu::ldmatrix(r, p, 4, 0);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(attn_smem_addr(p)));
#endif
}
static __device__ __forceinline__ void attn_ldsm_x4_trans(uint32_t* r, const bf16* p) {
#ifdef LLMC_EMU
    ::emu::ldmatrix(r, p, 4, 1);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(attn_smem_addr(p)));
#endif
}

// c (16x8 fp32) += a (16x16 bf16, row major) @ b (16x8 bf16, "col": b[k][n] pairs along k)
static __device__ __forceinline__ void attn_mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
#ifdef LLMC_EMU
    ::emu::mma_m16n8k16_bf16(c, a, b0, b1);
#else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// two floats as a bf16x2 register: lo in the low half (the lower column of an mma fragment)
static __device__ __forceinline__ uint32_t attn_pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

// Fragment layouts (PTX ISA, mma.m16n8k16), g = lane / 4, c = (lane % 4) * 2:
//   accumulator (16x8): [0],[1] at row g, cols c, c+1; [2],[3] at row g+8.
//   A (16x16): a0 rows 0-7 cols 0-7, a1 rows 8-15 cols 0-7, a2 rows 0-7 cols 8-15, a3 rows 8-15 cols 8-15.
//   B (16x8): b0 k 0-7, b1 k 8-15; each thread holds b[c][g], b[c+1][g].
// Shared tiles are row major with a row stride of HD + 8 bf16 (272 or 144 bytes): the 8 rows one
// ldmatrix reads fall into 8 different 16-byte bank groups, and every row stays 16-byte aligned.
//
// Per-lane element offsets of the ldmatrix row addresses inside a tile (stride lds):
//   attn_off_a: A operand from a row-major (rows, k) tile, or, with .trans, the B operand from a
//               (k, n) tile: matrix i / 8 = {rows 0-7 k 0-7, rows 8-15 k 0-7, rows 0-7 k 8-15, rows 8-15 k 8-15}
//   attn_off_b: B operand (two n-tiles) from an (n, k) tile, i.e. B^T row major:
//               {n 0-7 k 0-7, n 0-7 k 8-15, n 8-15 k 0-7, n 8-15 k 8-15} = b0, b1 of n-tile 0, b0, b1 of n-tile 1
static __device__ __forceinline__ int attn_off_a(int lane, int lds) {
    return ((lane & 7) + ((lane >> 3) & 1) * 8) * lds + (lane >> 4) * 8;
}
static __device__ __forceinline__ int attn_off_b(int lane, int lds) {
    return ((lane & 7) + (lane >> 4) * 8) * lds + ((lane >> 3) & 1) * 8;
}

// acc (16, N) += A (16, HD) @ B (N, HD)^T, one warp. sA: the warp's 16 rows; sB: N rows; both
// shared, row stride HD + 8. acc[nt] is the accumulator fragment of columns nt*8 .. nt*8+7.
template <int HD, int N>
static __device__ __forceinline__ void attn_mma_abt(float (*acc)[4], const bf16* sA, const bf16* sB, int off_a,
                                                    int off_b) {
    constexpr int LDS = HD + 8;
#pragma unroll
    for (int kc = 0; kc < HD / 16; kc++) {
        uint32_t a[4];
        attn_ldsm_x4(a, sA + kc * 16 + off_a);
#pragma unroll
        for (int np = 0; np < N / 16; np++) {
            uint32_t b[4];
            attn_ldsm_x4(b, sB + np * 16 * LDS + kc * 16 + off_b);
            attn_mma(acc[2 * np], a, b[0], b[1]);
            attn_mma(acc[2 * np + 1], a, b[2], b[3]);
        }
    }
}

// acc (16, HD) += P (16, N) @ B (N, HD), one warp. P is an fp32 accumulator (p[nt] for columns
// nt*8..), rounded to bf16 here: the accumulator layout of two n-tiles is the A layout of one
// k-chunk. sB: N rows, shared, row stride HD + 8 (read transposed by ldmatrix).
template <int HD, int N>
static __device__ __forceinline__ void attn_mma_pb(float (*acc)[4], const float (*p)[4], const bf16* sB, int off_a) {
    constexpr int LDS = HD + 8;
#pragma unroll
    for (int kc = 0; kc < N / 16; kc++) {
        uint32_t a[4];
        a[0] = attn_pack_bf16(p[2 * kc][0], p[2 * kc][1]);
        a[1] = attn_pack_bf16(p[2 * kc][2], p[2 * kc][3]);
        a[2] = attn_pack_bf16(p[2 * kc + 1][0], p[2 * kc + 1][1]);
        a[3] = attn_pack_bf16(p[2 * kc + 1][2], p[2 * kc + 1][3]);
#pragma unroll
        for (int dp = 0; dp < HD / 16; dp++) {
            uint32_t b[4];
            attn_ldsm_x4_trans(b, sB + kc * 16 * LDS + dp * 16 + off_a);
            attn_mma(acc[2 * dp], a, b[0], b[1]);
            attn_mma(acc[2 * dp + 1], a, b[2], b[3]);
        }
    }
}

// Asynchronous copy of rows [row0, row0 + ROWS) of a (T, HD) bf16 matrix whose row t starts at
// base + t * stride into a shared tile (ROWS, HD + 8). Rows >= T become zeros, so padded rows
// give finite scores (0) and never put NaN/garbage into a product. Every thread of the block calls it.
template <int ROWS, int HD>
static __device__ __forceinline__ void attn_load_tile(bf16* tile, const bf16* base, size_t stride, int row0, int T) {
    constexpr int CHUNKS = HD / 8;  // 16-byte chunks per row
    constexpr int NT = ATTN_WARPS * 32;
    static_assert((ROWS * CHUNKS) % NT == 0, "tile chunks divide evenly over the block");
#pragma unroll
    for (int i = 0; i < ROWS * CHUNKS / NT; i++) {
        int c = threadIdx.x + i * NT;
        int r = c / CHUNKS, cc = c % CHUNKS;
        int t = row0 + r;
        bool valid = t < T;
        const bf16* src = valid ? base + (size_t)t * stride + cc * 8 : base;  // base: a valid address, not read
        attn_cp_async16(tile + r * (HD + 8) + cc * 8, src, valid);
    }
}
// same for ROWS consecutive floats base[row0 ..], zeros past T
template <int ROWS>
static __device__ __forceinline__ void attn_load_vec(float* dst, const float* base, int row0, int T) {
    for (int r = threadIdx.x; r < ROWS; r += ATTN_WARPS * 32) {
        bool valid = row0 + r < T;
        attn_cp_async4(dst + r, valid ? base + row0 + r : base, valid);
    }
}

// Write a warp's (16, HD) fp32 accumulator, times mul, as bf16 rows t0 .. t0+15 of a (T, HD)
// matrix whose row t starts at base + t * stride (rows >= T skipped). Goes through the warp's own
// 16 rows of shared memory `stage` (row stride HD + 8) so that global stores are 16 bytes wide;
// the caller guarantees no other warp reads those rows any more.
template <int HD>
static __device__ __forceinline__ void attn_store_rows(bf16* base, size_t stride, int t0, int T,
                                                       const float (*acc)[4], float mul, bf16* stage) {
    constexpr int LDS = HD + 8, CHUNKS = HD / 8;
    int lane = threadIdx.x % 32;
    int r = lane / 4, c = (lane % 4) * 2;
#pragma unroll
    for (int nt = 0; nt < HD / 8; nt++) {
        *reinterpret_cast<__nv_bfloat162*>(stage + r * LDS + nt * 8 + c) =
            __floats2bfloat162_rn(acc[nt][0] * mul, acc[nt][1] * mul);
        *reinterpret_cast<__nv_bfloat162*>(stage + (r + 8) * LDS + nt * 8 + c) =
            __floats2bfloat162_rn(acc[nt][2] * mul, acc[nt][3] * mul);
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < ATTN_ROWS_WARP * CHUNKS / 32; i++) {
        int chunk = lane + 32 * i;
        int rr = chunk / CHUNKS, cc = chunk % CHUNKS;
        int t = t0 + rr;
        if (t < T) { store128(base + (size_t)t * stride + cc * 8, load128(stage + rr * LDS + cc * 8)); }
    }
}

// ----------------------------------------------------------------------------
// kernels

// attention_forward_kernel1: out (B, T, NH, hd) bf16, lse (B, NH, T) fp32 from q (B, T, NH, hd),
// k (B, T, NKV, hd), v (rows of v_stride). Grid (ceil(T / 64), NH, B), 128 threads; the largest
// (latest) query tiles start first. Warp w owns query rows q0 + 16w .. +15; its scores for one
// key tile (16 x 64) and its output (16 x HD) stay in registers. Scores are kept in the log2
// domain (scaled by scale_log2 = log2(e) / sqrt(hd)) so that the softmax uses exp2f.
// Shared: Q (64, HD+8), K and V 2 x (64, HD+8) each: 5 tiles (hd 128: 87,040 B; hd 64: 46,080 B).
template <int HD>
static __global__ void __launch_bounds__(ATTN_WARPS * 32)
    attention_forward_kernel1(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int v_stride,
                              int T, int NH, int NKV, float scale_log2) {
    constexpr int LDS = HD + 8, BR = ATTN_TILE, BC = ATTN_TILE;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    bf16* sQ = reinterpret_cast<bf16*>(attn_smem);
    bf16* sK = sQ + BR * LDS;      // 2 buffers of (BC, LDS)
    bf16* sV = sK + 2 * BC * LDS;  // 2 buffers of (BC, LDS)
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int qb = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int g = h / (NH / NKV);
    int q0 = qb * BR;
    int q_end = min(q0 + BR, T);
    int n_kt = (q_end + BC - 1) / BC;  // key tiles 0 .. n_kt-1 hold every key <= the block's last row
    size_t q_stride = (size_t)NH * HD, k_stride = (size_t)NKV * HD, v_str = (size_t)v_stride;
    const bf16* q_base = q + ((size_t)b * T * NH + h) * HD;
    const bf16* k_base = k + ((size_t)b * T * NKV + g) * HD;
    const bf16* v_base = v + (size_t)b * T * v_str + (size_t)g * HD;

    attn_load_tile<BR, HD>(sQ, q_base, q_stride, q0, T);
    attn_load_tile<BC, HD>(sK, k_base, k_stride, 0, T);
    attn_load_tile<BC, HD>(sV, v_base, v_str, 0, T);
    attn_cp_async_commit();

    int off_a = attn_off_a(lane, LDS), off_b = attn_off_b(lane, LDS);
    int wrow0 = q0 + warp * ATTN_ROWS_WARP;  // the warp's first query row
    int row[2] = {wrow0 + lane / 4, wrow0 + lane / 4 + 8};  // the two rows this thread's fragments hold
    float o[HD / 8][4];
#pragma unroll
    for (int nt = 0; nt < HD / 8; nt++) { o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.0f; }
    float m[2] = {-INFINITY, -INFINITY};  // running max (log2 domain), per row
    float l[2] = {0.0f, 0.0f};            // running sum of exp2(s - m), this thread's columns only

    for (int j = 0; j < n_kt; j++) {
        // prefetch tile j+1 into the other buffer (freed by the __syncthreads ending iteration j-1)
        if (j + 1 < n_kt) {
            int nb = (j + 1) & 1;
            attn_load_tile<BC, HD>(sK + nb * BC * LDS, k_base, k_stride, (j + 1) * BC, T);
            attn_load_tile<BC, HD>(sV + nb * BC * LDS, v_base, v_str, (j + 1) * BC, T);
            attn_cp_async_commit();
            attn_cp_async_wait<1>();
        } else {
            attn_cp_async_wait<0>();
        }
        __syncthreads();
        int k0 = j * BC;
        const bf16* sKj = sK + (j & 1) * BC * LDS;
        const bf16* sVj = sV + (j & 1) * BC * LDS;
        // a tile entirely above the diagonal for this warp (or a warp past T) adds nothing
        if (k0 <= wrow0 + ATTN_ROWS_WARP - 1 && wrow0 < T) {
            float s[BC / 8][4];
#pragma unroll
            for (int nt = 0; nt < BC / 8; nt++) { s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f; }
            attn_mma_abt<HD, BC>(s, sQ + warp * ATTN_ROWS_WARP * LDS, sKj, off_a, off_b);
            bool need_mask = k0 + BC - 1 > wrow0 || k0 + BC > T;
#pragma unroll
            for (int nt = 0; nt < BC / 8; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float x = s[nt][e] * scale_log2;
                    if (need_mask) {
                        int key = k0 + nt * 8 + (lane % 4) * 2 + (e & 1);
                        if (key > row[e >> 1] || key >= T) { x = -INFINITY; }
                    }
                    s[nt][e] = x;
                }
            }
            // online softmax: a row lives in the 4 threads of a quad
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float mx = -INFINITY;
#pragma unroll
                for (int nt = 0; nt < BC / 8; nt++) { mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1])); }
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                float m_new = fmaxf(m[r], mx);
                // a row with no visible key yet keeps m = -inf: use 0 so that exp2(-inf - 0) = 0, not NaN
                float m_use = m_new == -INFINITY ? 0.0f : m_new;
                float alpha = exp2f(m[r] - m_use);
                m[r] = m_new;
                float sum = 0.0f;
#pragma unroll
                for (int nt = 0; nt < BC / 8; nt++) {
                    s[nt][2 * r] = exp2f(s[nt][2 * r] - m_use);
                    s[nt][2 * r + 1] = exp2f(s[nt][2 * r + 1] - m_use);
                    sum += s[nt][2 * r] + s[nt][2 * r + 1];
                }
                l[r] = l[r] * alpha + sum;
#pragma unroll
                for (int nt = 0; nt < HD / 8; nt++) {
                    o[nt][2 * r] *= alpha;
                    o[nt][2 * r + 1] *= alpha;
                }
            }
            attn_mma_pb<HD, BC>(o, s, sVj, off_a);
        }
        __syncthreads();  // everyone is done with buffer j & 1 before iteration j+1 refills it
    }

    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv[r] = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        if (lane % 4 == 0 && row[r] < T) {
            // natural-log lse of the scaled scores: m is log2(e) times too large
            lse[((size_t)b * NH + h) * T + row[r]] = m[r] * 0.69314718055994531f + logf(l[r]);
        }
    }
#pragma unroll
    for (int nt = 0; nt < HD / 8; nt++) {
        o[nt][0] *= inv[0];
        o[nt][1] *= inv[0];
        o[nt][2] *= inv[1];
        o[nt][3] *= inv[1];
    }
    // only this warp ever read its 16 rows of sQ: reuse them as the output stage
    attn_store_rows<HD>(out + ((size_t)b * T * NH + h) * HD, q_stride, wrow0, T, o, 1.0f,
                        sQ + warp * ATTN_ROWS_WARP * LDS);
}

// attention_backward_preprocess_kernel1: delta (B, NH, T) = sum over hd of dout * out, fp32, from
// dout, out (B, T, NH, hd). One warp per (b, t, h) row, fixed reduction order.
template <int HD>
static __global__ void attention_backward_preprocess_kernel1(float* delta, const bf16* dout, const bf16* out, int B,
                                                             int T, int NH) {
    size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (row >= (size_t)B * T * NH) { return; }  // whole warps leave together
    const bf16* a = dout + row * HD;
    const bf16* o = out + row * HD;
    float sum = 0.0f;
#pragma unroll
    for (int i = lane * 2; i < HD; i += 64) {
        __nv_bfloat162 x = *reinterpret_cast<const __nv_bfloat162*>(a + i);
        __nv_bfloat162 y = *reinterpret_cast<const __nv_bfloat162*>(o + i);
        sum += __low2float(x) * __low2float(y) + __high2float(x) * __high2float(y);
    }
    sum = warp_reduce_sum(sum);
    if (lane == 0) {
        size_t bt = row / NH;
        int h = (int)(row % NH);
        size_t b = bt / T, t = bt % T;
        delta[(b * NH + h) * T + t] = sum;
    }
}

// attention_backward_dkdv_kernel1: dk (B, T, NKV, hd), dv (rows of v_stride) for key block
// blockIdx.x (64 keys) of kv head g = blockIdx.y, batch blockIdx.z; 128 threads, warp w owns keys
// k0 + 16w .. +15. Loops over the group's query heads and, per head, the query tiles of QB rows
// from the one holding key k0 to the end (causal: earlier queries never see these keys). Per
// step, transposed (keys as rows): S^T = K Q^T, P^T = exp2(S^T scale_log2 - lse log2(e)),
// dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - delta), dK += dS^T Q; dK is scaled by
// 1/sqrt(hd) at the end. Q, dO, lse, delta tiles are double-buffered with cp.async.
// Shared: K, V (64, HD+8); 2 x Q, 2 x dO (QB, HD+8); 2 x lse, 2 x delta (QB) fp32
// (hd 128, QB 32: 70,144 B; hd 64, QB 64: 56,320 B).
template <int HD>
static __global__ void __launch_bounds__(ATTN_WARPS * 32)
    attention_backward_dkdv_kernel1(bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* delta,
                                    const bf16* q, const bf16* k, const bf16* v, int v_stride, int T, int NH, int NKV,
                                    float scale, float scale_log2) {
    constexpr int LDS = HD + 8, KB = ATTN_TILE, QB = AttnDkdvTile<HD>::QB;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    bf16* sK = reinterpret_cast<bf16*>(attn_smem);
    bf16* sV = sK + KB * LDS;
    bf16* sQ = sV + KB * LDS;        // 2 buffers of (QB, LDS)
    bf16* sdO = sQ + 2 * QB * LDS;   // 2 buffers of (QB, LDS)
    float* sL = reinterpret_cast<float*>(sdO + 2 * QB * LDS);  // 2 buffers of (QB)
    float* sD = sL + 2 * QB;                                   // 2 buffers of (QB)
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int kb = blockIdx.x, g = blockIdx.y, b = blockIdx.z;
    int group = NH / NKV;
    int k0 = kb * KB;
    int i_start = k0 / QB;                // first query tile with a query >= k0
    int n_qt = (T + QB - 1) / QB;
    int nqi = n_qt - i_start;             // query tiles per head (>= 1: k0 < T)
    int n_it = group * nqi;
    size_t q_stride = (size_t)NH * HD, k_stride = (size_t)NKV * HD, v_str = (size_t)v_stride;
    const bf16* k_base = k + ((size_t)b * T * NKV + g) * HD;
    const bf16* v_base = v + (size_t)b * T * v_str + (size_t)g * HD;

    attn_load_tile<KB, HD>(sK, k_base, k_stride, k0, T);
    attn_load_tile<KB, HD>(sV, v_base, v_str, k0, T);
    // step it: query head g * group + it / nqi, query tile i_start + it % nqi, into buffer it & 1
    auto load_step = [&](int it) {
        int h = g * group + it / nqi;
        int q0 = (i_start + it % nqi) * QB;
        int buf = it & 1;
        size_t head_off = ((size_t)b * T * NH + h) * HD;
        const float* l_base = lse + ((size_t)b * NH + h) * T;
        const float* d_base = delta + ((size_t)b * NH + h) * T;
        attn_load_tile<QB, HD>(sQ + buf * QB * LDS, q + head_off, q_stride, q0, T);
        attn_load_tile<QB, HD>(sdO + buf * QB * LDS, dout + head_off, q_stride, q0, T);
        attn_load_vec<QB>(sL + buf * QB, l_base, q0, T);
        attn_load_vec<QB>(sD + buf * QB, d_base, q0, T);
    };
    load_step(0);
    attn_cp_async_commit();

    int off_a = attn_off_a(lane, LDS), off_b = attn_off_b(lane, LDS);
    int kw0 = k0 + warp * ATTN_ROWS_WARP;                    // the warp's first key
    int key[2] = {kw0 + lane / 4, kw0 + lane / 4 + 8};       // the two keys (rows) this thread holds
    const float log2e = 1.4426950408889634f;
    float dk_acc[HD / 8][4], dv_acc[HD / 8][4];
#pragma unroll
    for (int nt = 0; nt < HD / 8; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) { dk_acc[nt][e] = dv_acc[nt][e] = 0.0f; }
    }

    for (int it = 0; it < n_it; it++) {
        if (it + 1 < n_it) {
            load_step(it + 1);  // its buffer was released by the __syncthreads ending step it-1
            attn_cp_async_commit();
            attn_cp_async_wait<1>();
        } else {
            attn_cp_async_wait<0>();
        }
        __syncthreads();
        int buf = it & 1;
        int q0 = (i_start + it % nqi) * QB;
        const bf16* sQi = sQ + buf * QB * LDS;
        const bf16* sdOi = sdO + buf * QB * LDS;
        const float* sLi = sL + buf * QB;
        const float* sDi = sD + buf * QB;
        // skip when every query of the tile precedes every key of the warp, or the warp is past T
        if (q0 + QB - 1 >= kw0 && kw0 < T) {
            float st[QB / 8][4];
#pragma unroll
            for (int nt = 0; nt < QB / 8; nt++) { st[nt][0] = st[nt][1] = st[nt][2] = st[nt][3] = 0.0f; }
            attn_mma_abt<HD, QB>(st, sK + warp * ATTN_ROWS_WARP * LDS, sQi, off_a, off_b);
            bool need_mask = q0 < kw0 + ATTN_ROWS_WARP - 1 || q0 + QB > T;
#pragma unroll
            for (int nt = 0; nt < QB / 8; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int ql = nt * 8 + (lane % 4) * 2 + (e & 1);  // query within the tile
                    float p = exp2f(st[nt][e] * scale_log2 - sLi[ql] * log2e);
                    if (need_mask) {
                        int query = q0 + ql;
                        if (query < key[e >> 1] || query >= T) { p = 0.0f; }
                    }
                    st[nt][e] = p;
                }
            }
            attn_mma_pb<HD, QB>(dv_acc, st, sdOi, off_a);
            float dpt[QB / 8][4];
#pragma unroll
            for (int nt = 0; nt < QB / 8; nt++) { dpt[nt][0] = dpt[nt][1] = dpt[nt][2] = dpt[nt][3] = 0.0f; }
            attn_mma_abt<HD, QB>(dpt, sV + warp * ATTN_ROWS_WARP * LDS, sdOi, off_a, off_b);
#pragma unroll
            for (int nt = 0; nt < QB / 8; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int ql = nt * 8 + (lane % 4) * 2 + (e & 1);
                    st[nt][e] = st[nt][e] * (dpt[nt][e] - sDi[ql]);  // dS^T (without the 1/sqrt(hd))
                }
            }
            attn_mma_pb<HD, QB>(dk_acc, st, sQi, off_a);
        }
        __syncthreads();  // everyone is done with buffer it & 1 before step it+1 refills it
    }

    // only this warp ever read its 16 rows of sK and sV: reuse them as the output stages
    attn_store_rows<HD>(dk + ((size_t)b * T * NKV + g) * HD, k_stride, kw0, T, dk_acc, scale,
                        sK + warp * ATTN_ROWS_WARP * LDS);
    attn_store_rows<HD>(dv + (size_t)b * T * v_str + (size_t)g * HD, v_str, kw0, T, dv_acc, 1.0f,
                        sV + warp * ATTN_ROWS_WARP * LDS);
}

// attention_backward_dq_kernel1: dq (B, T, NH, hd) for query block (64 rows) of head
// h = blockIdx.y, batch blockIdx.z; grid and key-tile loop as the forward. Per key tile:
// S = Q K^T, P = exp2(S scale_log2 - lse log2(e)), dP = dO V^T, dS = P (dP - delta),
// dQ += dS K; dQ is scaled by 1/sqrt(hd) at the end. K, V tiles double-buffered with cp.async.
// Shared: Q, dO (64, HD+8); 2 x K, 2 x V (64, HD+8) (hd 128: 104,448 B; hd 64: 55,296 B).
template <int HD>
static __global__ void __launch_bounds__(ATTN_WARPS * 32)
    attention_backward_dq_kernel1(bf16* dq, const bf16* dout, const float* lse, const float* delta, const bf16* q,
                                  const bf16* k, const bf16* v, int v_stride, int T, int NH, int NKV, float scale,
                                  float scale_log2) {
    constexpr int LDS = HD + 8, BR = ATTN_TILE, BC = ATTN_TILE;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    bf16* sQ = reinterpret_cast<bf16*>(attn_smem);
    bf16* sdO = sQ + BR * LDS;
    bf16* sK = sdO + BR * LDS;     // 2 buffers of (BC, LDS)
    bf16* sV = sK + 2 * BC * LDS;  // 2 buffers of (BC, LDS)
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int qb = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int g = h / (NH / NKV);
    int q0 = qb * BR;
    int q_end = min(q0 + BR, T);
    int n_kt = (q_end + BC - 1) / BC;
    size_t q_stride = (size_t)NH * HD, k_stride = (size_t)NKV * HD, v_str = (size_t)v_stride;
    size_t head_off = ((size_t)b * T * NH + h) * HD;
    const bf16* k_base = k + ((size_t)b * T * NKV + g) * HD;
    const bf16* v_base = v + (size_t)b * T * v_str + (size_t)g * HD;

    attn_load_tile<BR, HD>(sQ, q + head_off, q_stride, q0, T);
    attn_load_tile<BR, HD>(sdO, dout + head_off, q_stride, q0, T);
    attn_load_tile<BC, HD>(sK, k_base, k_stride, 0, T);
    attn_load_tile<BC, HD>(sV, v_base, v_str, 0, T);
    attn_cp_async_commit();

    int off_a = attn_off_a(lane, LDS), off_b = attn_off_b(lane, LDS);
    int wrow0 = q0 + warp * ATTN_ROWS_WARP;
    int row[2] = {wrow0 + lane / 4, wrow0 + lane / 4 + 8};
    const float log2e = 1.4426950408889634f;
    float lse2[2], dlt[2];  // per row: lse in the log2 domain, delta
#pragma unroll
    for (int r = 0; r < 2; r++) {
        size_t idx = ((size_t)b * NH + h) * T + row[r];
        lse2[r] = row[r] < T ? lse[idx] * log2e : 0.0f;
        dlt[r] = row[r] < T ? delta[idx] : 0.0f;
    }
    float dq_acc[HD / 8][4];
#pragma unroll
    for (int nt = 0; nt < HD / 8; nt++) { dq_acc[nt][0] = dq_acc[nt][1] = dq_acc[nt][2] = dq_acc[nt][3] = 0.0f; }

    for (int j = 0; j < n_kt; j++) {
        if (j + 1 < n_kt) {
            int nb = (j + 1) & 1;
            attn_load_tile<BC, HD>(sK + nb * BC * LDS, k_base, k_stride, (j + 1) * BC, T);
            attn_load_tile<BC, HD>(sV + nb * BC * LDS, v_base, v_str, (j + 1) * BC, T);
            attn_cp_async_commit();
            attn_cp_async_wait<1>();
        } else {
            attn_cp_async_wait<0>();
        }
        __syncthreads();
        int k0 = j * BC;
        const bf16* sKj = sK + (j & 1) * BC * LDS;
        const bf16* sVj = sV + (j & 1) * BC * LDS;
        if (k0 <= wrow0 + ATTN_ROWS_WARP - 1 && wrow0 < T) {
            float s[BC / 8][4], dp[BC / 8][4];
#pragma unroll
            for (int nt = 0; nt < BC / 8; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) { s[nt][e] = dp[nt][e] = 0.0f; }
            }
            attn_mma_abt<HD, BC>(s, sQ + warp * ATTN_ROWS_WARP * LDS, sKj, off_a, off_b);
            attn_mma_abt<HD, BC>(dp, sdO + warp * ATTN_ROWS_WARP * LDS, sVj, off_a, off_b);
            bool need_mask = k0 + BC - 1 > wrow0 || k0 + BC > T || wrow0 + ATTN_ROWS_WARP > T;
#pragma unroll
            for (int nt = 0; nt < BC / 8; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int r = e >> 1;
                    float p = exp2f(s[nt][e] * scale_log2 - lse2[r]);
                    if (need_mask) {
                        int kk = k0 + nt * 8 + (lane % 4) * 2 + (e & 1);
                        if (kk > row[r] || kk >= T || row[r] >= T) { p = 0.0f; }
                    }
                    s[nt][e] = p * (dp[nt][e] - dlt[r]);  // dS (without the 1/sqrt(hd))
                }
            }
            attn_mma_pb<HD, BC>(dq_acc, s, sKj, off_a);
        }
        __syncthreads();
    }
    // only this warp ever read its 16 rows of sQ: reuse them as the output stage
    attn_store_rows<HD>(dq + head_off, q_stride, wrow0, T, dq_acc, scale, sQ + warp * ATTN_ROWS_WARP * LDS);
}
#endif  // __CUDACC__

// ----------------------------------------------------------------------------
// launchers

// shape and alignment checks shared by the forward and the backward; exits with a message
static inline void attention_check_args(const char* who, int v_stride, int B, int T, int NH, int NKV, int hd) {
    if (hd != 64 && hd != 128) {
        fprintf(stderr, "%s: head dim %d is not supported: the attention kernels are built for hd 64 and 128\n", who,
                hd);
        fprintf(stderr, "---> HINT: choose n_embd / n_head = 64 or 128\n");
        exit(1);
    }
    if (B < 1 || T < 1 || NH < 1 || NKV < 1 || NH % NKV != 0 || B > 65535 || NH > 65535) {
        fprintf(stderr, "%s: bad shape B=%d T=%d NH=%d NKV=%d (need B, T, NKV >= 1, NH %% NKV == 0, B, NH <= 65535)\n",
                who, B, T, NH, NKV);
        exit(1);
    }
    if (v_stride < NKV * hd || v_stride % 8 != 0) {
        fprintf(stderr, "%s: v_stride %d must be >= NKV * hd = %d and a multiple of 8 (16-byte rows)\n", who,
                v_stride, NKV * hd);
        exit(1);
    }
}
static inline void attention_check_aligned(const char* who, const char* name, const void* p) {
    if (!is_aligned16(p)) {
        fprintf(stderr, "%s: %s = %p is not 16-byte aligned (the kernels move 16-byte chunks)\n", who, name, p);
        exit(1);
    }
}

#if defined(__CUDACC__) || defined(LLMC_EMU)
// out (B, T, NH, HD), lse (B, NH, T); q (B, T, NH, HD), k (B, T, NKV, HD), v rows of v_stride
template <int HD>
static void attention_forward_launch(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int v_stride,
                                     int B, int T, int NH, int NKV, cudaStream_t stream) {
    size_t smem = (size_t)5 * ATTN_TILE * (HD + 8) * sizeof(bf16);  // Q, 2 K, 2 V
    cudaCheck(cudaFuncSetAttribute(attention_forward_kernel1<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   (int)smem));
    dim3 grid(ceil_div(T, ATTN_TILE), NH, B);
    float scale_log2 = 1.4426950408889634f / sqrtf((float)HD);
    cuda_launch(attention_forward_kernel1<HD>, grid, ATTN_WARPS * 32, smem, stream)(out, lse, q, k, v, v_stride, T, NH, NKV,
                                                                           scale_log2);
    cudaCheck(cudaGetLastError());
}

// dq (B, T, NH, HD), dk (B, T, NKV, HD), dv rows of v_stride; delta (B, NH, T) fp32 scratch
template <int HD>
static void attention_backward_launch(bf16* dq, bf16* dk, bf16* dv, float* delta, const bf16* dout, const bf16* out,
                                      const float* lse, const bf16* q, const bf16* k, const bf16* v, int v_stride,
                                      int B, int T, int NH, int NKV, cudaStream_t stream) {
    float scale = 1.0f / sqrtf((float)HD);
    float scale_log2 = 1.4426950408889634f * scale;
    // delta = rowsum(dout * out): one warp per row
    const int pre_block = 256;
    size_t pre_threads = (size_t)B * T * NH * 32;
    cuda_launch(attention_backward_preprocess_kernel1<HD>, ceil_div(pre_threads, pre_block), pre_block, 0, stream)(
        delta, dout, out, B, T, NH);
    cudaCheck(cudaGetLastError());

    constexpr int QB = AttnDkdvTile<HD>::QB;
    size_t smem_dkdv = (size_t)(2 * ATTN_TILE + 4 * QB) * (HD + 8) * sizeof(bf16) + 4 * QB * sizeof(float);
    cudaCheck(cudaFuncSetAttribute(attention_backward_dkdv_kernel1<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   (int)smem_dkdv));
    dim3 grid_dkdv(ceil_div(T, ATTN_TILE), NKV, B);
    cuda_launch(attention_backward_dkdv_kernel1<HD>, grid_dkdv, ATTN_WARPS * 32, smem_dkdv, stream)(
        dk, dv, dout, lse, delta, q, k, v, v_stride, T, NH, NKV, scale, scale_log2);
    cudaCheck(cudaGetLastError());

    size_t smem_dq = (size_t)6 * ATTN_TILE * (HD + 8) * sizeof(bf16);  // Q, dO, 2 K, 2 V
    cudaCheck(cudaFuncSetAttribute(attention_backward_dq_kernel1<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   (int)smem_dq));
    dim3 grid_dq(ceil_div(T, ATTN_TILE), NH, B);
    cuda_launch(attention_backward_dq_kernel1<HD>, grid_dq, ATTN_WARPS * 32, smem_dq, stream)(
        dq, dout, lse, delta, q, k, v, v_stride, T, NH, NKV, scale, scale_log2);
    cudaCheck(cudaGetLastError());
}

// ----------------------------------------------------------------------------
// the model-level calls

// attention_forward: causal softmax(q k^T / sqrt(hd)) v with GQA (query head h reads kv head h / (NH/NKV))
//   out (B, T, NH, hd) bf16; lse (B, NH, T) fp32, the natural-log logsumexp of each row's scaled
//   scores, saved for the backward; q (B, T, NH, hd) and k (B, T, NKV, hd) contiguous bf16;
//   v: bf16, head g of token (b, t) starts at v + ((size_t)b*T + t) * v_stride + g*hd
//   (v_stride = (NH + 2*NKV)*hd when v is read in place from the qkv projection output; NKV*hd when contiguous)
static inline void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int v_stride, int B,
                              int T, int NH, int NKV, int hd, cudaStream_t stream) {
    const char* who = "attention_forward";
    attention_check_args(who, v_stride, B, T, NH, NKV, hd);
    attention_check_aligned(who, "out", out);
    attention_check_aligned(who, "q", q);
    attention_check_aligned(who, "k", k);
    attention_check_aligned(who, "v", v);
    if (hd == 64) {
        attention_forward_launch<64>(out, lse, q, k, v, v_stride, B, T, NH, NKV, stream);
    } else {
        attention_forward_launch<128>(out, lse, q, k, v, v_stride, B, T, NH, NKV, stream);
    }
}

// bytes of device scratch attention_backward needs: delta (B, NH, T) fp32
static inline size_t attention_backward_scratch_bytes(int B, int T, int NH, int NKV, int hd) {
    (void)NKV;
    (void)hd;
    return (size_t)B * NH * T * sizeof(float);
}

// attention_backward: given dout (B, T, NH, hd) and the forward's out and lse, OVERWRITES
//   dq (B, T, NH, hd), dk (B, T, NKV, hd) and dv (same addressing as v, with v_stride); never
//   accumulates. scratch: attention_backward_scratch_bytes(...) bytes of device memory.
//   Deterministic: no atomics, every element summed by one thread in a fixed order.
static inline void attention_backward(bf16* dq, bf16* dk, bf16* dv, void* scratch, const bf16* dout, const bf16* out,
                               const float* lse, const bf16* q, const bf16* k, const bf16* v, int v_stride, int B,
                               int T, int NH, int NKV, int hd, cudaStream_t stream) {
    const char* who = "attention_backward";
    attention_check_args(who, v_stride, B, T, NH, NKV, hd);
    attention_check_aligned(who, "dq", dq);
    attention_check_aligned(who, "dk", dk);
    attention_check_aligned(who, "dv", dv);
    attention_check_aligned(who, "dout", dout);
    attention_check_aligned(who, "out", out);
    attention_check_aligned(who, "q", q);
    attention_check_aligned(who, "k", k);
    attention_check_aligned(who, "v", v);
    attention_check_aligned(who, "scratch", scratch);
    float* delta = (float*)scratch;
    if (hd == 64) {
        attention_backward_launch<64>(dq, dk, dv, delta, dout, out, lse, q, k, v, v_stride, B, T, NH, NKV, stream);
    } else {
        attention_backward_launch<128>(dq, dk, dv, delta, dout, out, lse, q, k, v, v_stride, B, T, NH, NKV, stream);
    }
}
#endif  // __CUDACC__

#endif  // LLMC_ATTENTION_CUH
