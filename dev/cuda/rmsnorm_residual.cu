/*
Kernels for the fused residual add + RMSNorm forward, and the RMSNorm backward.

forward:  residual (N, C) = x + branch            (bf16; the new residual stream)
          out (N, C)      = rmsnorm(residual) * w  (bf16), rstd (N,) fp32 saved
backward: dinp (N, C) += rstd * (g - xhat * mean(g * xhat)),  g = dout * w, xhat = inp * rstd
          dweight (C,) += sum over rows of dout * xhat        (fp32, deterministic)
The math is llmc/gpt_cpu.h's rmsnorm_forward / rmsnorm_backward (N = B*T rows).

The normalisation reads the residual *after* rounding to bf16, as the backward
(which only sees the stored bf16 residual) must; the CPU reference does the same.

Deterministic dweight: each block writes per-column partial sums of its own fixed
range of rows to a scratch buffer (RMSNORM_PARTIAL_BLOCKS, C); a second kernel
adds them per column in block order. No atomics, so the bits only depend on the
launch configuration (block size), never on scheduling.

Compile and run:
    make -C dev/cuda rmsnorm_residual && ./dev/cuda/bin/rmsnorm_residual [fwd_version] [bwd_version]
(no arguments: every version; a version of 0 skips that pass)

versions: forward 1 (warp per row, scalar), 2 (warp per row, 128-bit loads, row cached in smem); backward 1 (warp per row + column pass, scalar), 2 (as 1 with 128-bit loads)
*/
#include "common.h"
// the CPU reference is the project's own fp32 model code
#include "../../llmc/gpt_cpu.h"


#define RMSNORM_PARTIAL_BLOCKS 512  // fixed, so dweight's summation order is fixed too

// ----------------------------------------------------------------------------
// CPU reference (fp32 math of llmc/gpt_cpu.h)

// residual (N, C) = round_bf16(x + branch); out (N, C), rstd (N,) = rmsnorm of that
static void rmsnorm_residual_forward_cpu(float* residual, float* out, float* rstd, const float* x, const float* branch,
                                         const float* weight, int N, int C, float eps) {
    for (int i = 0; i < N; i++) {
        const float* a = x + (size_t)i * C;
        const float* b = branch + (size_t)i * C;
        float* r = residual + (size_t)i * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) {
            r[c] = round_bf16(a[c] + b[c]);
            ss += (double)r[c] * r[c];
        }
        float s = (float)(1.0 / sqrt(ss / C + eps));
        float* o = out + (size_t)i * C;
        for (int c = 0; c < C; c++) { o[c] = r[c] * s * weight[c]; }
        rstd[i] = s;
    }
}

// dinp (N, C) += ..., dweight (C,) += ...

// ----------------------------------------------------------------------------
// GPU kernels

// version 1: one warp per row, lanes stride the row one element at a time.
// The second pass re-reads the residual this same thread just wrote (L1/L2 hit).
static __global__ void rmsnorm_residual_forward_kernel1(bf16* residual, bf16* out, float* rstd, const bf16* x,
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
static __global__ void rmsnorm_residual_forward_kernel2(bf16* residual, bf16* out, float* rstd, const bf16* x,
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
static __global__ void rmsnorm_backward_kernel1(bf16* dinp, float* partial, const bf16* dout, const bf16* inp,
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
static __global__ void __launch_bounds__(1024) rmsnorm_backward_kernel2(bf16* dinp, float* partial, const bf16* dout, const bf16* inp,
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
static __global__ void rmsnorm_dweight_reduce_kernel(float* dweight, const float* partial, int num_blocks, int C) {
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
    rmsnorm_residual_forward_kernel1<<<grid, block_size, 0, stream>>>(residual, out, rstd, x, branch, weight, N, C,
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
    rmsnorm_residual_forward_kernel2<<<grid, block_size, smem, stream>>>(residual, out, rstd, x, branch, weight, N, C,
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
    rmsnorm_backward_kernel1<<<grid, block_size, 0, stream>>>(dinp, scratch, dout, inp, weight, rstd, N, C, rpb);
    cudaCheck(cudaGetLastError());
    rmsnorm_dweight_reduce_kernel<<<ceil_div(C, 256), 256, 0, stream>>>(dweight, scratch, grid, C);
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
    rmsnorm_backward_kernel2<<<grid, block_size, 0, stream>>>(dinp, scratch, dout, inp, weight, rstd, N, C, rpb);
    cudaCheck(cudaGetLastError());
    rmsnorm_dweight_reduce_kernel<<<ceil_div(C, 256), 256, 0, stream>>>(dweight, scratch, grid, C);
    cudaCheck(cudaGetLastError());
}

static void rmsnorm_residual_forward(int version, bf16* residual, bf16* out, float* rstd, const bf16* x,
                                     const bf16* branch, const bf16* weight, int N, int C, float eps, int block_size,
                                     cudaStream_t stream) {
    switch (version) {
        case 1: rmsnorm_residual_forward1(residual, out, rstd, x, branch, weight, N, C, eps, block_size, stream); break;
        case 2: rmsnorm_residual_forward2(residual, out, rstd, x, branch, weight, N, C, eps, block_size, stream); break;
        default: fprintf(stderr, "unknown forward version %d\n", version); exit(1);
    }
}

static void rmsnorm_backward(int version, bf16* dinp, float* dweight, float* scratch, const bf16* dout,
                             const bf16* inp, const bf16* weight, const float* rstd, int N, int C, int block_size,
                             cudaStream_t stream) {
    switch (version) {
        case 1: rmsnorm_backward1(dinp, dweight, scratch, dout, inp, weight, rstd, N, C, block_size, stream); break;
        case 2: rmsnorm_backward2(dinp, dweight, scratch, dout, inp, weight, rstd, N, C, block_size, stream); break;
        default: fprintf(stderr, "unknown backward version %d\n", version); exit(1);
    }
}

// ----------------------------------------------------------------------------
// test driver

static const float EPS = 1e-5f;

// one shape: check the forward version at every block size; returns 1 when all pass
static int check_forward(int version, int N, int C, HostRng* rng) {
    size_t NC = (size_t)N * C;
    float* x = random_f32(rng, NC, 1.0f, 0.0f, 1);
    float* branch = random_f32(rng, NC, 0.5f, 0.0f, 1);
    float* w = random_f32(rng, C, 0.1f, 1.0f, 1);
    float* residual = (float*)mallocCheckHost(NC * sizeof(float), "residual");
    float* out = (float*)mallocCheckHost(NC * sizeof(float), "out");
    float* rstd = (float*)mallocCheckHost(N * sizeof(float), "rstd");
    rmsnorm_residual_forward_cpu(residual, out, rstd, x, branch, w, N, C, EPS);

    bf16 *d_x = device_bf16_from(x, NC), *d_branch = device_bf16_from(branch, NC), *d_w = device_bf16_from(w, C);
    bf16 *d_residual, *d_out;
    float* d_rstd;
    cudaCheck(cudaMalloc(&d_residual, NC * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_out, NC * sizeof(bf16)));
    cudaCheck(cudaMalloc(&d_rstd, N * sizeof(float)));
    int ok = 1;
    for (int b = 0; b < NUM_BLOCK_SIZES; b++) {
        printf("  forward%d N=%d C=%d block_size=%d\n", version, N, C, BLOCK_SIZES[b]);
        cudaCheck(cudaMemset(d_out, 0, NC * sizeof(bf16)));
        rmsnorm_residual_forward(version, d_residual, d_out, d_rstd, d_x, d_branch, d_w, N, C, EPS, BLOCK_SIZES[b], 0);
        // residual: the same bf16 sum both sides, so it must match exactly
        ok &= validate_result(d_residual, residual, "residual", NC, 0.0f, 0.0f);
        ok &= validate_result(d_out, out, "out", NC, 1e-2f, 1e-2f);
        ok &= validate_result(d_rstd, rstd, "rstd", N, 1e-6f, 1e-5f);
    }
    cudaCheck(cudaFree(d_x));
    cudaCheck(cudaFree(d_branch));
    cudaCheck(cudaFree(d_w));
    cudaCheck(cudaFree(d_residual));
    cudaCheck(cudaFree(d_out));
    cudaCheck(cudaFree(d_rstd));
    free(x); free(branch); free(w); free(residual); free(out); free(rstd);
    return ok;
}

static int check_backward(int version, int N, int C, HostRng* rng) {
    size_t NC = (size_t)N * C;
    float* inp = random_f32(rng, NC, 1.0f, 0.0f, 1);
    float* dout = random_f32(rng, NC, 1.0f, 0.0f, 1);
    float* w = random_f32(rng, C, 0.1f, 1.0f, 1);
    float* dinp0 = random_f32(rng, NC, 0.5f, 0.0f, 1);  // += target: starts non-zero
    float* dw0 = random_f32(rng, C, 1.0f, 0.0f, 0);
    float* rstd = (float*)mallocCheckHost(N * sizeof(float), "rstd");
    for (int i = 0; i < N; i++) {  // the rstd a forward pass would have saved
        double ss = 0.0;
        for (int c = 0; c < C; c++) { ss += (double)inp[(size_t)i * C + c] * inp[(size_t)i * C + c]; }
        rstd[i] = (float)(1.0 / sqrt(ss / C + EPS));
    }
    float* dinp = (float*)mallocCheckHost(NC * sizeof(float), "dinp");
    float* dw = (float*)mallocCheckHost(C * sizeof(float), "dw");
    memcpy(dinp, dinp0, NC * sizeof(float));
    memcpy(dw, dw0, C * sizeof(float));
    rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);

    bf16 *d_inp = device_bf16_from(inp, NC), *d_dout = device_bf16_from(dout, NC), *d_w = device_bf16_from(w, C);
    bf16* d_dinp = device_bf16_from(dinp0, NC);
    float *d_dw = device_f32_from(dw0, C), *d_rstd = device_f32_from(rstd, N), *d_scratch;
    cudaCheck(cudaMalloc(&d_scratch, (size_t)RMSNORM_PARTIAL_BLOCKS * C * sizeof(float)));
    bf16* h_dinp0 = (bf16*)mallocCheckHost(NC * sizeof(bf16), "dinp0");
    to_bf16_host(h_dinp0, dinp0, NC);
    int ok = 1;
    for (int b = 0; b < NUM_BLOCK_SIZES; b++) {
        printf("  backward%d N=%d C=%d block_size=%d\n", version, N, C, BLOCK_SIZES[b]);
        cudaCheck(cudaMemcpy(d_dinp, h_dinp0, NC * sizeof(bf16), cudaMemcpyHostToDevice));
        cudaCheck(cudaMemcpy(d_dw, dw0, C * sizeof(float), cudaMemcpyHostToDevice));
        rmsnorm_backward(version, d_dinp, d_dw, d_scratch, d_dout, d_inp, d_w, d_rstd, N, C, BLOCK_SIZES[b], 0);
        ok &= validate_result(d_dinp, dinp, "dinp", NC, 1e-2f, 1e-2f);
        ok &= validate_result(d_dw, dw, "dweight", C, 1e-3f, 1e-3f);
    }
    cudaCheck(cudaFree(d_inp));
    cudaCheck(cudaFree(d_dout));
    cudaCheck(cudaFree(d_w));
    cudaCheck(cudaFree(d_dinp));
    cudaCheck(cudaFree(d_dw));
    cudaCheck(cudaFree(d_rstd));
    cudaCheck(cudaFree(d_scratch));
    free(inp); free(dout); free(w); free(dinp0); free(dw0); free(rstd); free(dinp); free(dw); free(h_dinp0);
    return ok;
}

// time both passes at a training-sized shape (no CPU check: checked above)
static void bench(int fwd_version, int bwd_version, int N, int C, HostRng* rng) {
    size_t NC = (size_t)N * C;
    float* h = random_f32(rng, NC, 1.0f, 0.0f, 1);
    float* hw = random_f32(rng, C, 0.1f, 1.0f, 1);
    bf16 *a = device_bf16_from(h, NC), *b = device_bf16_from(h, NC), *w = device_bf16_from(hw, C);
    bf16 *res, *out;
    float *rstd, *dw, *scratch;
    cudaCheck(cudaMalloc(&res, NC * sizeof(bf16)));
    cudaCheck(cudaMalloc(&out, NC * sizeof(bf16)));
    cudaCheck(cudaMalloc(&rstd, N * sizeof(float)));
    cudaCheck(cudaMalloc(&dw, C * sizeof(float)));
    cudaCheck(cudaMalloc(&scratch, (size_t)RMSNORM_PARTIAL_BLOCKS * C * sizeof(float)));
    cudaCheck(cudaMemset(dw, 0, C * sizeof(float)));
    rmsnorm_residual_forward1(res, out, rstd, a, b, w, N, C, EPS, 256, 0);  // a valid rstd for the backward
    for (int bi = 0; bi < NUM_BLOCK_SIZES; bi++) {
        int bs = BLOCK_SIZES[bi];
        if (fwd_version) {
            float ms = benchmark_kernel(BENCH_REPEATS, [&]() {
                rmsnorm_residual_forward(fwd_version, res, out, rstd, a, b, w, N, C, EPS, bs, 0);
            });
            double bytes = 4.0 * NC * sizeof(bf16) + C * sizeof(bf16) + N * sizeof(float);  // x, branch in; res, out
            printf("  forward%d  N=%d C=%-5d block_size %4d | time %.4f ms | bandwidth %.1f GB/s\n", fwd_version, N,
                   C, bs, ms, bytes / ms / 1e6);
        }
        if (bwd_version) {
            // dinp = out is read and written; dout = b, inp = res
            float ms = benchmark_kernel(BENCH_REPEATS, [&]() {
                rmsnorm_backward(bwd_version, out, dw, scratch, b, res, w, rstd, N, C, bs, 0);
            });
            double bytes = 4.0 * NC * sizeof(bf16) + N * sizeof(float) + 2.0 * RMSNORM_PARTIAL_BLOCKS * C * 4;
            printf("  backward%d N=%d C=%-5d block_size %4d | time %.4f ms | bandwidth %.1f GB/s\n", bwd_version, N,
                   C, bs, ms, bytes / ms / 1e6);
        }
    }
    cudaCheck(cudaFree(a)); cudaCheck(cudaFree(b)); cudaCheck(cudaFree(w)); cudaCheck(cudaFree(res));
    cudaCheck(cudaFree(out)); cudaCheck(cudaFree(rstd)); cudaCheck(cudaFree(dw)); cudaCheck(cudaFree(scratch));
    free(h); free(hw);
}

int main(int argc, char** argv) {
    int fwd_versions[2] = {1, 2}, bwd_versions[2] = {1, 2};
    int nf = 2, nb = 2;
    if (argc > 1) { fwd_versions[0] = atoi(argv[1]); nf = fwd_versions[0] ? 1 : 0; }
    if (argc > 2) { bwd_versions[0] = atoi(argv[2]); nb = bwd_versions[0] ? 1 : 0; }
    cudaCheck(cudaSetDevice(0));
    HostRng rng;
    rng_init(&rng, 1337);

    const int Cs[] = {256, 768, 2048};
    const int Ns[] = {1, 37, 1000};  // not multiples of any block's rows per block
    int all_ok = 1;
    for (int ci = 0; ci < 3; ci++) {
        for (int ni = 0; ni < 3; ni++) {
            for (int v = 0; v < nf; v++) { all_ok &= check_forward(fwd_versions[v], Ns[ni], Cs[ci], &rng); }
            for (int v = 0; v < nb; v++) { all_ok &= check_backward(bwd_versions[v], Ns[ni], Cs[ci], &rng); }
        }
    }
    if (!all_ok) {
        printf("rmsnorm_residual: some checks FAILED\n");
        return 1;
    }
    printf("rmsnorm_residual: all checks passed\n");

    const int N = 16 * 1024;  // B=16, T=1024
    for (int ci = 0; ci < 3; ci++) {
        for (int v = 0; v < (nf > nb ? nf : nb); v++) {
            bench(v < nf ? fwd_versions[v] : 0, v < nb ? bwd_versions[v] : 0, N, Cs[ci], &rng);
        }
    }
    return 0;
}
