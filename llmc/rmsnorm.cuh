/*
 * rmsnorm.cuh: RMSNorm on the GPU, alone and fused with the residual add that
 * precedes it, and its backward (llmc/gpt_cpu.h rmsnorm_forward/backward and
 * residual_forward are the reference; dev/cuda/rmsnorm_residual.cu checks and
 * times these kernels).
 *
 *   rmsnorm_forward:          out (N, C) = inp * rstd * weight, rstd (N,) fp32 saved
 *   rmsnorm_residual_forward: residual (N, C) = x + branch (bf16), then out, rstd as
 *                             above of that rounded residual (what the backward sees)
 *   rmsnorm_apply:            out (N, C) = inp * rstd * weight with a saved rstd (recompute)
 *   rmsnorm_backward:         dinp (N, C) += ... (bf16, ACCUMULATES: the residual
 *                             stream's gradient), dweight (C,) += ... (fp32)
 *
 * dweight is deterministic: each block writes its rows' per-column partial sums
 * to scratch (RMSNORM_PARTIAL_BLOCKS, C) fp32 and a second kernel adds them in
 * block order; no atomics. Production versions: forward kernel 2 (128-bit, row in
 * shared memory), backward kernel 2, each falling back to 1 when C % 8 != 0 or a
 * pointer is not 16-byte aligned; the plain forward is rmsnorm_forward_kernel1.
 *
 * defines: RMSNORM_PARTIAL_BLOCKS, rmsnorm_forward_kernel1,
 *          rmsnorm_residual_forward_kernel1/2, rmsnorm_backward_kernel1/2,
 *          rmsnorm_dweight_reduce_kernel, rmsnorm_residual_forward1/2,
 *          rmsnorm_backward1/2 (with a block size), rmsnorm_scratch_floats,
 *          rmsnorm_apply_kernel1, rmsnorm_forward1, rmsnorm_apply1, rmsnorm_forward,
 *          rmsnorm_residual_forward, rmsnorm_apply, rmsnorm_backward (model level)
 */
#ifndef LLMC_RMSNORM_CUH
#define LLMC_RMSNORM_CUH

#include "cuda_common.cuh"

#define RMSNORM_BLOCK_SIZE 256

#define RMSNORM_PARTIAL_BLOCKS 512  // fixed, so dweight's summation order is fixed too

// ----------------------------------------------------------------------------
// GPU kernels

// version 1: one warp per row, lanes stride the row one element at a time.
// The second pass re-reads the residual this same thread just wrote (L1/L2 hit).
__global__ void rmsnorm_residual_forward_kernel1(bf16* residual, bf16* out, float* rstd, const bf16* x,
                                                        const bf16* branch, const bf16* weight, int N, int C,
                                                        float eps) {
    int lane = threadIdx.x % 32;
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) { return; }  // whole warps leave together: row is warp-uniform
    size_t base = (size_t)row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) {
        bf16 r = __float2bfloat16(__bfloat162float(x[base + c]) + __bfloat162float(branch[base + c]));
        residual[base + c] = r;
        float rf = __bfloat162float(r);
        ss += rf * rf;
    }
    ss = warp_reduce_sum(ss);
    float s = 1.0f / sqrtf(ss / C + eps);
    if (lane == 0) { rstd[row] = s; }
    for (int c = lane; c < C; c += 32) {
        out[base + c] = __float2bfloat16(__bfloat162float(residual[base + c]) * s * __bfloat162float(weight[c]));
    }
}

// version 2: one warp per row with 128-bit loads/stores (needs C % 8 == 0 and 16-byte
// aligned pointers). The rounded residual row is kept in shared memory, (warps, C)
// bf16, so the normalise pass does not touch global memory again.
__global__ void rmsnorm_residual_forward_kernel2(bf16* residual, bf16* out, float* rstd, const bf16* x,
                                                        const bf16* branch, const bf16* weight, int N, int C,
                                                        float eps) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    bf16* srow = reinterpret_cast<bf16*>(smem_raw) + (size_t)warp * C;
    int row = blockIdx.x * (blockDim.x / 32) + warp;
    if (row >= N) { return; }
    size_t base = (size_t)row * C;
    float ss = 0.0f;
    for (int c = lane * 8; c < C; c += 32 * 8) {
        x128 a = load128cs(x + base + c);  // read once: stream past L1
        x128 b = load128cs(branch + base + c);
        x128 r;
        for (int k = 0; k < 8; k++) {
            r[k] = __float2bfloat16(__bfloat162float(a[k]) + __bfloat162float(b[k]));
            float rf = __bfloat162float(r[k]);
            ss += rf * rf;
        }
        store128(residual + base + c, r);
        store128(srow + c, r);
    }
    ss = warp_reduce_sum(ss);
    float s = 1.0f / sqrtf(ss / C + eps);
    if (lane == 0) { rstd[row] = s; }
    // each lane reads back only the smem chunks it wrote itself: no sync needed
    for (int c = lane * 8; c < C; c += 32 * 8) {
        x128 r = load128(srow + c);
        x128 w = load128(weight + c);
        x128 o;
        for (int k = 0; k < 8; k++) {
            o[k] = __float2bfloat16(__bfloat162float(r[k]) * s * __bfloat162float(w[k]));
        }
        store128(out + base + c, o);
    }
}

// backward version 1. Block b owns rows [b * rows_per_block, (b+1) * rows_per_block).
// Row pass: one warp per row computes dinp (+=). Column pass: thread t sums
// dout * inp * rstd down its block's rows for columns t, t + blockDim.x, ... in row
// order and writes partial (gridDim.x, C). Both passes only read dout/inp/rstd, so
// they need no __syncthreads between them.
__global__ void rmsnorm_backward_kernel1(bf16* dinp, float* partial, const bf16* dout, const bf16* inp,
                                                const bf16* weight, const float* rstd, int N, int C,
                                                int rows_per_block) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    int row0 = blockIdx.x * rows_per_block;
    int row1 = min(N, row0 + rows_per_block);
    for (int row = row0 + warp; row < row1; row += warps) {
        size_t base = (size_t)row * C;
        float r = rstd[row];
        float dot = 0.0f;
        for (int c = lane; c < C; c += 32) {
            dot += __bfloat162float(dout[base + c]) * __bfloat162float(weight[c]) * __bfloat162float(inp[base + c]) * r;
        }
        float mean = warp_reduce_sum(dot) / C;
        for (int c = lane; c < C; c += 32) {
            float xhat = __bfloat162float(inp[base + c]) * r;
            float g = __bfloat162float(dout[base + c]) * __bfloat162float(weight[c]);
            dinp[base + c] = __float2bfloat16(__bfloat162float(dinp[base + c]) + r * (g - xhat * mean));
        }
    }
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = 0.0f;
        for (int row = row0; row < row1; row++) {
            size_t i = (size_t)row * C + c;
            acc += __bfloat162float(dout[i]) * __bfloat162float(inp[i]) * rstd[row];
        }
        partial[(size_t)blockIdx.x * C + c] = acc;
    }
}

// backward version 2: version 1 with 128-bit loads in both passes (C % 8 == 0, aligned);
// in the column pass each thread owns 8 neighbouring columns. __launch_bounds__: left
// alone ptxas gives it 70 registers, and 70 * 1024 threads exceeds the 64K registers of
// an SM, so a 1024-thread launch would fail with "too many resources requested".
__global__ void __launch_bounds__(1024) rmsnorm_backward_kernel2(bf16* dinp, float* partial, const bf16* dout, const bf16* inp,
                                                const bf16* weight, const float* rstd, int N, int C,
                                                int rows_per_block) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    int row0 = blockIdx.x * rows_per_block;
    int row1 = min(N, row0 + rows_per_block);
    for (int row = row0 + warp; row < row1; row += warps) {
        size_t base = (size_t)row * C;
        float r = rstd[row];
        float dot = 0.0f;
        for (int c = lane * 8; c < C; c += 32 * 8) {
            x128 d = load128(dout + base + c), x = load128(inp + base + c), w = load128(weight + c);
            for (int k = 0; k < 8; k++) {
                dot += __bfloat162float(d[k]) * __bfloat162float(w[k]) * __bfloat162float(x[k]) * r;
            }
        }
        float mean = warp_reduce_sum(dot) / C;
        for (int c = lane * 8; c < C; c += 32 * 8) {
            x128 d = load128(dout + base + c), x = load128(inp + base + c), w = load128(weight + c);
            x128 dx = load128(dinp + base + c);
            for (int k = 0; k < 8; k++) {
                float xhat = __bfloat162float(x[k]) * r;
                float g = __bfloat162float(d[k]) * __bfloat162float(w[k]);
                dx[k] = __float2bfloat16(__bfloat162float(dx[k]) + r * (g - xhat * mean));
            }
            store128(dinp + base + c, dx);
        }
    }
    for (int c = threadIdx.x * 8; c < C; c += blockDim.x * 8) {
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int row = row0; row < row1; row++) {
            size_t i = (size_t)row * C + c;
            x128 d = load128(dout + i), x = load128(inp + i);
            float r = rstd[row];
            for (int k = 0; k < 8; k++) { acc[k] += __bfloat162float(d[k]) * __bfloat162float(x[k]) * r; }
        }
        f128 lo, hi;
        for (int k = 0; k < 4; k++) {
            lo[k] = acc[k];
            hi[k] = acc[k + 4];
        }
        store128(partial + (size_t)blockIdx.x * C + c, lo);
        store128(partial + (size_t)blockIdx.x * C + c + 4, hi);
    }
}

// dweight (C,) += sum over b of partial (num_blocks, C), in block order
__global__ void rmsnorm_dweight_reduce_kernel(float* dweight, const float* partial, int num_blocks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) { return; }
    float acc = 0.0f;
    for (int b = 0; b < num_blocks; b++) { acc += partial[(size_t)b * C + c]; }
    dweight[c] += acc;
}

// ----------------------------------------------------------------------------
// launchers

static void rmsnorm_residual_forward1(bf16* residual, bf16* out, float* rstd, const bf16* x, const bf16* branch,
                                      const bf16* weight, int N, int C, float eps, int block_size,
                                      cudaStream_t stream) {
    int grid = ceil_div(N, block_size / 32);
    cuda_launch(rmsnorm_residual_forward_kernel1, grid, block_size, 0, stream)(residual, out, rstd, x, branch, weight, N, C,
                                                                      eps);
    cudaCheck(cudaGetLastError());
}

// falls back to version 1 when C or the pointers do not allow 128-bit access, or the
// row cache would not fit in shared memory
static void rmsnorm_residual_forward2(bf16* residual, bf16* out, float* rstd, const bf16* x, const bf16* branch,
                                      const bf16* weight, int N, int C, float eps, int block_size,
                                      cudaStream_t stream) {
    size_t smem = (size_t)(block_size / 32) * C * sizeof(bf16);
    int dev = 0, max_smem = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    bool aligned = is_aligned16(residual) && is_aligned16(out) && is_aligned16(x) && is_aligned16(branch) &&
                   is_aligned16(weight);
    if (C % 8 != 0 || !aligned || smem > (size_t)max_smem) {
        rmsnorm_residual_forward1(residual, out, rstd, x, branch, weight, N, C, eps, block_size, stream);
        return;
    }
    if (smem > 48 * 1024) {
        cudaCheck(cudaFuncSetAttribute(rmsnorm_residual_forward_kernel2, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)smem));
    }
    int grid = ceil_div(N, block_size / 32);
    cuda_launch(rmsnorm_residual_forward_kernel2, grid, block_size, smem, stream)(residual, out, rstd, x, branch, weight, N, C,
                                                                         eps);
    cudaCheck(cudaGetLastError());
}

// scratch: (RMSNORM_PARTIAL_BLOCKS, C) floats, fully overwritten for the blocks used
static int rmsnorm_backward_blocks(int N, int block_size, int* rows_per_block) {
    int rpb = ceil_div(N, RMSNORM_PARTIAL_BLOCKS);
    int warps = block_size / 32;
    if (rpb < warps) { rpb = warps; }  // at least one row per warp
    *rows_per_block = rpb;
    return ceil_div(N, rpb);
}

static void rmsnorm_backward1(bf16* dinp, float* dweight, float* scratch, const bf16* dout, const bf16* inp,
                              const bf16* weight, const float* rstd, int N, int C, int block_size,
                              cudaStream_t stream) {
    int rpb;
    int grid = rmsnorm_backward_blocks(N, block_size, &rpb);
    cuda_launch(rmsnorm_backward_kernel1, grid, block_size, 0, stream)(dinp, scratch, dout, inp, weight, rstd, N, C, rpb);
    cudaCheck(cudaGetLastError());
    cuda_launch(rmsnorm_dweight_reduce_kernel, ceil_div(C, 256), 256, 0, stream)(dweight, scratch, grid, C);
    cudaCheck(cudaGetLastError());
}

static void rmsnorm_backward2(bf16* dinp, float* dweight, float* scratch, const bf16* dout, const bf16* inp,
                              const bf16* weight, const float* rstd, int N, int C, int block_size,
                              cudaStream_t stream) {
    bool aligned = is_aligned16(dinp) && is_aligned16(scratch) && is_aligned16(dout) && is_aligned16(inp) &&
                   is_aligned16(weight);
    if (C % 8 != 0 || !aligned) {
        rmsnorm_backward1(dinp, dweight, scratch, dout, inp, weight, rstd, N, C, block_size, stream);
        return;
    }
    int rpb;
    int grid = rmsnorm_backward_blocks(N, block_size, &rpb);
    cuda_launch(rmsnorm_backward_kernel2, grid, block_size, 0, stream)(dinp, scratch, dout, inp, weight, rstd, N, C, rpb);
    cudaCheck(cudaGetLastError());
    cuda_launch(rmsnorm_dweight_reduce_kernel, ceil_div(C, 256), 256, 0, stream)(dweight, scratch, grid, C);
    cudaCheck(cudaGetLastError());
}

// plain forward, version 1: one warp per row. inp (N, C) -> out (N, C), rstd (N,)
__global__ void rmsnorm_forward_kernel1(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int N, int C,
                                        float eps) {
    int lane = threadIdx.x % 32;
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) { return; }  // warp-uniform
    const bf16* x = inp + (size_t)row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float v = __bfloat162float(x[c]);
        ss += v * v;
    }
    ss = warp_reduce_sum(ss);
    float s = 1.0f / sqrtf(ss / C + eps);
    if (lane == 0) { rstd[row] = s; }
    bf16* o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) { o[c] = __float2bfloat16(__bfloat162float(x[c]) * s * __bfloat162float(weight[c])); }
}

static void rmsnorm_forward1(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int N, int C, float eps,
                             int block_size, cudaStream_t stream) {
    cuda_launch(rmsnorm_forward_kernel1, ceil_div(N, block_size / 32), block_size, 0, stream)(out, rstd, inp, weight, N, C, eps);
    cudaCheck(cudaGetLastError());
}

// apply with a saved rstd, version 1: out (N, C) = inp * rstd * weight, one warp per row.
// The same products in the same order as the forward kernels, so the recompute path
// (train_gpt.cu -r 1) rebuilds the forward's bits exactly.
__global__ void rmsnorm_apply_kernel1(bf16* out, const bf16* inp, const bf16* weight, const float* rstd, int N, int C) {
    int lane = threadIdx.x % 32;
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) { return; }
    const bf16* x = inp + (size_t)row * C;
    bf16* o = out + (size_t)row * C;
    float s = rstd[row];
    for (int c = lane; c < C; c += 32) { o[c] = __float2bfloat16(__bfloat162float(x[c]) * s * __bfloat162float(weight[c])); }
}

static void rmsnorm_apply1(bf16* out, const bf16* inp, const bf16* weight, const float* rstd, int N, int C,
                           int block_size, cudaStream_t stream) {
    cuda_launch(rmsnorm_apply_kernel1, ceil_div(N, block_size / 32), block_size, 0, stream)(out, inp, weight, rstd, N, C);
    cudaCheck(cudaGetLastError());
}

// ----------------------------------------------------------------------------
// model-level calls

// floats of scratch rmsnorm_backward needs for a row length C
static size_t rmsnorm_scratch_floats(int C) { return (size_t)RMSNORM_PARTIAL_BLOCKS * C; }

// out (N, C), rstd (N,) = rmsnorm(inp) * weight
static void rmsnorm_forward(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int N, int C, float eps,
                            cudaStream_t stream) {
    rmsnorm_forward1(out, rstd, inp, weight, N, C, eps, RMSNORM_BLOCK_SIZE, stream);
}

// residual (N, C) = x + branch; out (N, C), rstd (N,) = rmsnorm(residual) * weight.
// residual must not alias x or branch.
static void rmsnorm_residual_forward(bf16* residual, bf16* out, float* rstd, const bf16* x, const bf16* branch,
                                     const bf16* weight, int N, int C, float eps, cudaStream_t stream) {
    rmsnorm_residual_forward2(residual, out, rstd, x, branch, weight, N, C, eps, RMSNORM_BLOCK_SIZE, stream);
}

// out (N, C) = inp * rstd * weight with rstd (N,) saved by a forward
static void rmsnorm_apply(bf16* out, const bf16* inp, const bf16* weight, const float* rstd, int N, int C,
                          cudaStream_t stream) {
    rmsnorm_apply1(out, inp, weight, rstd, N, C, RMSNORM_BLOCK_SIZE, stream);
}

// dinp (N, C) += ..., dweight (C,) += ...; scratch: rmsnorm_scratch_floats(C) floats
static void rmsnorm_backward(bf16* dinp, float* dweight, float* scratch, const bf16* dout, const bf16* inp,
                             const bf16* weight, const float* rstd, int N, int C, cudaStream_t stream) {
    rmsnorm_backward2(dinp, dweight, scratch, dout, inp, weight, rstd, N, C, RMSNORM_BLOCK_SIZE, stream);
}

#endif  // LLMC_RMSNORM_CUH
