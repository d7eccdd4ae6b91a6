/*
emu/ptx.h: C++ bodies of the inline PTX the project uses, as warp collectives
(included by emu/cuda_emu.h). Each llmc helper that wraps an asm statement has
one `#ifdef LLMC_EMU` that calls the function of the same instruction here.

Fragment layouts are those of the PTX ISA (version 8.x):
  - mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: section 9.7.14.5.8,
    "Matrix Fragments for mma.m16n8k16 with floating point type", with
    groupID = lane >> 2 and t = lane % 4:
      A (16x16, four .b32 of two bf16): a0,a1 (row g, cols 2t, 2t+1),
        a2,a3 (row g+8, same cols), a4,a5 (row g, cols 2t+8, 2t+9), a6,a7 (row g+8);
        register i holds elements 2i (low half) and 2i+1 (high half);
      B (16x8, two .b32): b0,b1 (rows k = 2t, 2t+1, col g), b2,b3 (rows 2t+8, 2t+9);
      C, D (16x8 f32): c0,c1 (row g, cols 2t, 2t+1), c2,c3 (row g+8).
    D = A B + C with an fp32 sum over k in increasing order (the tensor core's own
    order and rounding of the partial sums are not modelled).
  - ldmatrix.sync.aligned.m8n8{.x1,.x2,.x4}{,.trans}.shared.b16: section 9.7.14.5.15,
    "Warp-level matrix load instruction: ldmatrix": lanes 8j .. 8j+7 give the
    addresses of rows 0..7 of matrix j (16 contiguous bytes, 16-byte aligned);
    register j of lane l gets row l/4, elements 2(l%4), 2(l%4)+1 of matrix j, or
    with .trans of its transpose: (row 2(l%4), col l/4) and (row 2(l%4)+1, col l/4).
  - cp.async.{ca,cg}.shared.global, commit_group, wait_group: section 9.7.9.25;
    emu::cp_async in emu.cpp (the write lands at the wait).
*/
#ifndef LLMC_EMU_PTX_H
#define LLMC_EMU_PTX_H

namespace emu {

static inline float bf16_lo(uint32_t r) { return __uint_as_float(r << 16); }
static inline float bf16_hi(uint32_t r) { return __uint_as_float(r & 0xffff0000u); }

struct MmaIn {
    uint32_t a[4];
    uint32_t b[2];
    float c[4];
};
static inline void combine_mma_m16n8k16(unsigned, const CollSlot* ins, CollSlot* outs) {
    float A[16][16], B[16][8], C[16][8];
    for (int lane = 0; lane < 32; lane++) {
        const MmaIn* in = (const MmaIn*)ins[lane];
        int g = lane >> 2, t = lane & 3;
        for (int i = 0; i < 4; i++) {
            int row = g + ((i & 1) ? 8 : 0), col = 2 * t + ((i & 2) ? 8 : 0);
            A[row][col] = bf16_lo(in->a[i]);
            A[row][col + 1] = bf16_hi(in->a[i]);
        }
        for (int i = 0; i < 2; i++) {
            int k = 2 * t + (i ? 8 : 0);
            B[k][g] = bf16_lo(in->b[i]);
            B[k + 1][g] = bf16_hi(in->b[i]);
        }
        for (int i = 0; i < 4; i++) { C[g + (i >= 2 ? 8 : 0)][2 * t + (i & 1)] = in->c[i]; }
    }
    for (int lane = 0; lane < 32; lane++) {
        int g = lane >> 2, t = lane & 3;
        float d[4];
        for (int i = 0; i < 4; i++) {
            int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
            float acc = C[row][col];
            for (int k = 0; k < 16; k++) { acc += A[row][k] * B[k][col]; }
            d[i] = acc;
        }
        memcpy(outs[lane], d, sizeof(d));
    }
}
// c (16x8 fp32) += a (16x16 bf16) @ b (16x8 bf16), one warp
static inline void mma_m16n8k16_bf16(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    MmaIn in;
    memcpy(in.a, a, sizeof(in.a));
    in.b[0] = b0;
    in.b[1] = b1;
    memcpy(in.c, c, sizeof(in.c));
    warp_collective(0xffffffffu, "mma.sync.m16n8k16", &in, sizeof(in), c, 4 * sizeof(float), combine_mma_m16n8k16);
}

struct LdsmIn {
    const uint16_t* row;
    int nmat;
    int trans;
};
static inline void combine_ldmatrix(unsigned, const CollSlot* ins, CollSlot* outs) {
    const LdsmIn* in0 = (const LdsmIn*)ins[0];
    int nmat = in0->nmat, trans = in0->trans;
    for (int lane = 0; lane < 32; lane++) {
        uint32_t r[4] = {0, 0, 0, 0};
        int q = lane >> 2, t = lane & 3;
        for (int j = 0; j < nmat; j++) {
            uint16_t lo, hi;
            if (!trans) {
                const uint16_t* row = ((const LdsmIn*)ins[8 * j + q])->row;
                lo = row[2 * t];
                hi = row[2 * t + 1];
            } else {
                lo = ((const LdsmIn*)ins[8 * j + 2 * t])->row[q];
                hi = ((const LdsmIn*)ins[8 * j + 2 * t + 1])->row[q];
            }
            r[j] = (uint32_t)lo | ((uint32_t)hi << 16);
        }
        memcpy(outs[lane], r, sizeof(r));
    }
}
// nmat (1, 2, 4) 8x8 b16 matrices from shared memory; lane l gives the address of row
// l % 8 of matrix l / 8 (lanes past 8 nmat give none, but must still take part)
static inline void ldmatrix(uint32_t* r, const void* p, int nmat, int trans) {
    static const char* names[2][5] = {{"", "ldmatrix.x1", "ldmatrix.x2", "", "ldmatrix.x4"},
                                      {"", "ldmatrix.x1.trans", "ldmatrix.x2.trans", "", "ldmatrix.x4.trans"}};
    int lane = t_regs->lane;
    if (lane < 8 * nmat) {
        if ((uintptr_t)p % 16) { kernel_error("%s: row address %p is not 16-byte aligned", names[trans][nmat], p); }
        if (is_device_range(p, 16)) { kernel_error("%s: row address %p is global memory, not shared", names[trans][nmat], p); }
    }
    LdsmIn in = {(const uint16_t*)p, nmat, trans};
    warp_collective(0xffffffffu, names[trans][nmat], &in, sizeof(in), r, nmat * sizeof(uint32_t), combine_ldmatrix);
}

}  // namespace emu

#endif  // LLMC_EMU_PTX_H
