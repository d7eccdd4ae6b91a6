/*
 * ref_state.h: the reader of the PyTorch reference states in test/data (written
 * by dev/reference/gpt_ref.py in float64, stored as fp32; dev/README.md has the
 * layout): a 256-int32 header (magic, version, B, T, steps, the model config, the
 * optimizer settings, the parameter count), then the parameters, the batch, the
 * logits, the loss, every gradient, and the losses and gradient norms of the
 * reference's AdamW steps. Shared by test/test_gpt.c (CPU) and test/test_gpt.cu
 * (GPU), which include it after the trainer they test.
 *
 * defines: REF_MAGIC, RefState, ref_load, ref_free
 */
#ifndef TEST_REF_STATE_H
#define TEST_REF_STATE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "../llmc/config.h"
#include "../llmc/utils.h"

#define REF_MAGIC 20261190

typedef struct {
    GPTConfig config;
    int B, T, nsteps, warmup, kind;  // the batch, the AdamW steps, the lr schedule
    float zloss, lr, final_frac, wd, clip, beta1, beta2, eps;
    size_t num_params;
    float* params;  // (num_params,) the initial weights
    int* x;         // (B, T) inputs
    int* y;         // (B, T) targets
    float* logits;  // (B, T, Vp) soft-capped
    float loss;
    float* grads;   // (num_params,) of the loss on (x, y) at params
    float* losses;  // (nsteps,) the loss before each AdamW step
    float* norms;   // (nsteps,) the gradient norm of each step
} RefState;

// ref_load: reads and validates (magic, version, length against the header) the
// reference state at path; ref_free releases it
static void ref_load(RefState* r, const char* path) {
    FILE* fp = fopenCheck(path, "rb");
    int32_t h[256];
    freadCheck(h, 4, 256, fp, path);
    if (h[0] != REF_MAGIC || h[1] != 1) { die("'%s' is not a reference state", path); }
    r->B = h[2]; r->T = h[3]; r->nsteps = h[4];
    config_from_words(&r->config, h + 5);
    r->zloss = bits_f32(h[19]); r->lr = bits_f32(h[20]); r->warmup = h[21]; r->final_frac = bits_f32(h[22]);
    r->kind = h[23]; r->wd = bits_f32(h[24]); r->clip = bits_f32(h[25]); r->beta1 = bits_f32(h[26]);
    r->beta2 = bits_f32(h[27]); r->eps = bits_f32(h[28]); r->num_params = (size_t)h[29];
    size_t BT = (size_t)r->B * r->T, Vp = r->config.padded_vocab_size;
    long long expect = 1024LL + 4LL * (2LL * r->num_params + 2LL * BT + BT * Vp + 1 + 2LL * r->nsteps);
    long long size = file_size(fp, path);
    if (size != expect) { die("reference state '%s' has %lld bytes, its header says %lld", path, size, expect); }
    r->params = (float*)mallocCheck(r->num_params * 4);
    r->x = (int*)mallocCheck(BT * 4);
    r->y = (int*)mallocCheck(BT * 4);
    r->logits = (float*)mallocCheck(BT * Vp * 4);
    r->grads = (float*)mallocCheck(r->num_params * 4);
    r->losses = (float*)mallocCheck(r->nsteps * 4);
    r->norms = (float*)mallocCheck(r->nsteps * 4);
    freadCheck(r->params, 4, r->num_params, fp, path);
    freadCheck(r->x, 4, BT, fp, path);
    freadCheck(r->y, 4, BT, fp, path);
    freadCheck(r->logits, 4, BT * Vp, fp, path);
    freadCheck(&r->loss, 4, 1, fp, path);
    freadCheck(r->grads, 4, r->num_params, fp, path);
    freadCheck(r->losses, 4, r->nsteps, fp, path);
    freadCheck(r->norms, 4, r->nsteps, fp, path);
    fclose(fp);
}

static void ref_free(RefState* r) {
    free(r->params); free(r->x); free(r->y); free(r->logits); free(r->grads); free(r->losses); free(r->norms);
}

#endif // TEST_REF_STATE_H
