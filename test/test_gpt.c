/*
 * test_gpt.c: checks the CPU model against the PyTorch reference states in
 * test/data (written by dev/reference/gpt_ref.py in float64): logits, loss,
 * the gradient of every parameter tensor, and the losses of 10 AdamW steps
 * (with warmup + cosine lr, weight decay, clipping). Prints the max abs and
 * relative error per tensor. test/ref_state.h reads the reference files.
 *
 *   make test_gpt && ./test_gpt
 *
 * Tolerances (fp32 against a float64 reference):
 *   logits: max abs error <= 1e-5
 *   loss: abs error <= 1e-6
 *   gradients: per tensor, max abs error <= 1e-4 * max |reference gradient|
 *   the 10 step losses: abs error <= 2e-5; grad norms: rel error <= 2e-5
 */
#define TESTING
#include "../train_gpt.c"
#include "ref_state.h"
#include "test.h"

static void check_against(const char* path) {
    printf("--- %s\n", path);
    RefState r;
    ref_load(&r, path);
    config_print(&r.config, stdout);
    GPT model;
    model.config = r.config;
    gpt_init_common(&model);
    CHECK(model.layout.num_parameters == r.num_params, "parameter count %zu == reference %zu",
          model.layout.num_parameters, r.num_params);
    if (model.layout.num_parameters != r.num_params) { return; }
    memcpy(model.params_memory, r.params, r.num_params * 4);
    int B = r.B, T = r.T, BT = B * T, Vp = r.config.padded_vocab_size;

    gpt_forward(&model, r.x, r.y, B, T, r.zloss);
    double ma, mr;
    max_abs_rel_err(model.acts.logits, r.logits, (size_t)BT * Vp, 1e-2f, &ma, &mr);
    CHECK(ma <= 1e-5, "logits: max abs err %.3e, max rel err %.3e (tol abs 1e-5)", ma, mr);
    CHECK(fabsf(model.mean_loss - r.loss) <= 1e-6f, "loss %.7f vs reference %.7f (abs err %.2e, tol 1e-6)",
          model.mean_loss, r.loss, fabsf(model.mean_loss - r.loss));

    gpt_zero_grad(&model);
    gpt_backward(&model, B, T, r.zloss, 1.0f);
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        size_t off = model.layout.offsets[t], n = model.layout.sizes[t];
        if (n == 0) { continue; }
        float maxref = 0.0f;
        for (size_t i = 0; i < n; i++) { maxref = fmaxf(maxref, fabsf(r.grads[off + i])); }
        max_abs_rel_err(model.grads_memory + off, r.grads + off, n, 1e-3f * maxref + 1e-12f, &ma, &mr);
        double tol = 1e-4 * maxref + 1e-9;
        CHECK(ma <= tol, "grad %-12s max abs err %.3e, max rel err %.3e, max |ref| %.3e (tol %.2e)", PARAM_NAMES[t], ma,
              mr, maxref, tol);
    }

    // 10 AdamW steps on the same batch, as the reference does
    LRSchedule sched = {r.kind, r.lr, r.warmup, r.nsteps, r.final_frac, 0.2f};
    double worst_loss = 0, worst_norm = 0;
    for (int s = 0; s < r.nsteps; s++) {
        gpt_forward(&model, r.x, r.y, B, T, r.zloss);
        gpt_zero_grad(&model);
        gpt_backward(&model, B, T, r.zloss, 1.0f);
        float norm = gpt_grad_norm(&model);
        float scale = norm > r.clip ? r.clip / norm : 1.0f;
        gpt_update(&model, lr_at(&sched, s), r.beta1, r.beta2, r.eps, r.wd, scale, s + 1);
        double el = fabs(model.mean_loss - r.losses[s]), en = fabs(norm - r.norms[s]) / r.norms[s];
        printf("     step %d: loss %.6f (ref %.6f, err %.1e) | norm %.6f (ref %.6f, rel err %.1e)\n", s,
               model.mean_loss, r.losses[s], el, norm, r.norms[s], en);
        if (el > worst_loss) worst_loss = el;
        if (en > worst_norm) worst_norm = en;
    }
    CHECK(worst_loss <= 2e-5, "%d step losses: max abs err %.2e (tol 2e-5)", r.nsteps, worst_loss);
    CHECK(worst_norm <= 2e-5, "%d grad norms: max rel err %.2e (tol 2e-5)", r.nsteps, worst_norm);
    gpt_free(&model);
    ref_free(&r);
}

// gradient accumulation: two half batches with loss_scale 1/2 give the full batch's gradient
static void check_accumulation(const char* path) {
    RefState r;
    ref_load(&r, path);
    GPT model;
    model.config = r.config;
    gpt_init_common(&model);
    memcpy(model.params_memory, r.params, r.num_params * 4);
    int B = r.B, T = r.T, half = B / 2;
    gpt_zero_grad(&model);
    for (int m = 0; m < 2; m++) {
        gpt_forward(&model, r.x + m * half * T, r.y + m * half * T, half, T, r.zloss);
        gpt_backward(&model, half, T, r.zloss, 0.5f);
    }
    double ma, mr;
    max_abs_rel_err(model.grads_memory, r.grads, r.num_params, 1e-3f, &ma, &mr);
    CHECK(ma <= 1e-5, "gradient accumulation (2 x B/2) vs full-batch reference gradient: max abs err %.3e (tol 1e-5)", ma);
    gpt_free(&model);
    ref_free(&r);
}

int main(void) {
    check_against("test/data/ref_d2.bin");
    check_against("test/data/ref_variant.bin");
    check_accumulation("test/data/ref_d2.bin");
    return test_summary();
}
