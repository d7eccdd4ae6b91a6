/*
 * encoder.cuh: the token embedding on the GPU: the lookup, and its deterministic
 * backward (llmc/gpt_cpu.h encoder_forward/backward is the reference;
 * dev/cuda/encoder.cu checks and times these kernels).
 *
 *   forward:  out (B*T, C) bf16 = wte[tokens] (wte (Vp, C) bf16)
 *   backward: dwte (Vp, C) fp32 += the rows of dout (B*T, C) bf16, scattered by token
 *
 * The backward without atomics: the host (which has the tokens anyway, from the
 * data loader) sorts the positions by token with a stable counting sort into
 * buckets, one per distinct token; one GPU block per bucket then sums its rows in
 * position order in fp32 and adds the sum to the token's row of dwte. Same bits
 * on every run, on every launch configuration.
 *
 * defines: encoder_forward_kernel1/2, encoder_forward, EncoderBuckets,
 *          encoder_buckets_ints, encoder_buckets_work_ints, encoder_buckets_build,
 *          encoder_backward_kernel1,
 *          encoder_backward
 */
#ifndef LLMC_ENCODER_CUH
#define LLMC_ENCODER_CUH

#include <stdlib.h>
#include <string.h>
#include "cuda_common.cuh"

#define ENCODER_BLOCK_SIZE 256

// ----------------------------------------------------------------------------
// forward

// version 1: one thread per element
__global__ void encoder_forward_kernel1(bf16* out, const int* tokens, const bf16* wte, int BT, int C) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)BT * C) { return; }
    size_t i = idx / C, c = idx % C;
    out[idx] = wte[(size_t)tokens[i] * C + c];
}

// version 2: one thread per 8 channels, 128-bit (C % 8 == 0, 16-byte aligned bases)
__global__ void encoder_forward_kernel2(bf16* out, const int* tokens, const bf16* wte, int BT, int C) {
    size_t idx = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (idx >= (size_t)BT * C) { return; }
    size_t i = idx / C, c = idx % C;
    store128(out + idx, load128(wte + (size_t)tokens[i] * C + c));
}

static void encoder_forward1(bf16* out, const int* tokens, const bf16* wte, int BT, int C, int block_size,
                             cudaStream_t stream) {
    cuda_launch(encoder_forward_kernel1, ceil_div((size_t)BT * C, block_size), block_size, 0, stream)(out, tokens, wte, BT, C);
    cudaCheck(cudaGetLastError());
}

static void encoder_forward2(bf16* out, const int* tokens, const bf16* wte, int BT, int C, int block_size,
                             cudaStream_t stream) {
    if (C % 8 != 0 || !is_aligned16(out) || !is_aligned16(wte)) {
        encoder_forward1(out, tokens, wte, BT, C, block_size, stream);
        return;
    }
    cuda_launch(encoder_forward_kernel2, ceil_div((size_t)BT * C / 8, block_size), block_size, 0, stream)(out, tokens, wte, BT, C);
    cudaCheck(cudaGetLastError());
}

// out (BT, C) = wte[tokens]; tokens (BT,) on the device, already checked < V
static void encoder_forward(bf16* out, const int* tokens, const bf16* wte, int BT, int C, cudaStream_t stream) {
    encoder_forward2(out, tokens, wte, BT, C, ENCODER_BLOCK_SIZE, stream);
}

// ----------------------------------------------------------------------------
// backward

// the buckets, as one int array of encoder_buckets_ints(BT) entries:
//   [0]                     number of buckets nb
//   [1 .. 1+nb]             bucket_token (nb,)
//   [1+BT .. 1+BT+nb]       bucket_start (nb + 1,) into order
//   [2+2BT .. 2+3BT)        order (BT,): positions sorted by (token, position)
static size_t encoder_buckets_ints(int BT) { return 3 * (size_t)BT + 2; }

// host scratch encoder_buckets_build needs: a count per vocabulary row, a cursor per bucket
static size_t encoder_buckets_work_ints(int Vp, int BT) { return (size_t)Vp + BT + 1; }

// encoder_buckets_build: fills buckets (encoder_buckets_ints(BT) ints, host) from
// tokens (BT,) host in [0, Vp) by a stable counting sort. work: encoder_buckets_work_ints
// ints of host scratch whose first Vp entries are zero on entry, and are left zero.
static void encoder_buckets_build(int* buckets, int* work, const int* tokens, int BT, int Vp) {
    int* bucket_token = buckets + 1;
    int* bucket_start = buckets + 1 + BT;
    int* order = buckets + 2 + 2 * (size_t)BT;
    int* counts = work;        // (Vp,)
    int* cursor = work + Vp;   // (nb,)
    for (int i = 0; i < BT; i++) { counts[tokens[i]]++; }
    // buckets in order of first appearance; starts by a running sum; counts[t] becomes -(bucket + 1)
    int nb = 0, pos = 0;
    for (int i = 0; i < BT; i++) {
        int t = tokens[i];
        if (counts[t] > 0) {
            bucket_token[nb] = t;
            bucket_start[nb] = pos;
            cursor[nb] = pos;
            pos += counts[t];
            counts[t] = -(nb + 1);
            nb++;
        }
    }
    bucket_start[nb] = pos;
    buckets[0] = nb;
    for (int i = 0; i < BT; i++) { order[cursor[-counts[tokens[i]] - 1]++] = i; }  // stable: i ascending
    for (int b = 0; b < nb; b++) { counts[bucket_token[b]] = 0; }
}

// one block per bucket: dwte[token] (C,) += sum over the bucket's positions, in order, of dout rows
__global__ void encoder_backward_kernel1(float* dwte, const int* buckets, const bf16* dout, int BT, int C) {
    const int b = blockIdx.x;
    const int token = buckets[1 + b];
    const int start = buckets[1 + BT + b], end = buckets[1 + BT + b + 1];
    const int* order = buckets + 2 + 2 * (size_t)BT;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = 0.0f;
        for (int j = start; j < end; j++) { acc += __bfloat162float(dout[(size_t)order[j] * C + c]); }
        dwte[(size_t)token * C + c] += acc;
    }
}

// dwte (Vp, C) fp32 += scatter of dout (BT, C). buckets_host: built by encoder_buckets_build;
// buckets_dev: encoder_buckets_ints(BT) ints of device memory. nb = buckets_host[0].
static void encoder_backward(float* dwte, int* buckets_dev, const int* buckets_host, const bf16* dout, int BT, int C,
                             cudaStream_t stream) {
    int nb = buckets_host[0];
    if (nb == 0) { return; }
    // pageable source: the call returns once the data is staged, so the host array is free again
    cudaCheck(cudaMemcpyAsync(buckets_dev, buckets_host, encoder_buckets_ints(BT) * sizeof(int),
                              cudaMemcpyHostToDevice, stream));
    int block = C < ENCODER_BLOCK_SIZE ? ((C + 31) / 32) * 32 : ENCODER_BLOCK_SIZE;
    cuda_launch(encoder_backward_kernel1, nb, block, 0, stream)(dwte, buckets_dev, dout, BT, C);
    cudaCheck(cudaGetLastError());
}

#endif  // LLMC_ENCODER_CUH
