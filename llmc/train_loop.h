/*
 * train_loop.h: the training loop, written once for train_gpt.c (CPU, fp32) and
 * train_gpt.cu (GPU, bf16). The trainer sets up its model and data and calls
 * train_loop with its model operations in a TrainOps; everything else lives here:
 * the learning-rate schedule, gradient accumulation, the mean loss and gradient
 * norm over the ranks, clipping, the non-finite check (skip or stop), evaluation
 * (cross-entropy and bits per byte), periodic samples, checkpoints, the step and
 * validation lines with a smoothed ETA, and the summary line at the end.
 *
 * One optimizer step (step s, 0-based; micro-batches i = 0..grad_accum-1):
 *   zero_grad
 *   for each i: the loader's next batch (B, T); forward_backward(inputs, targets,
 *               loss_scale = 1/grad_accum, last = i == grad_accum-1)
 *   reduce_grads          this rank's ZeRO-1 shard becomes the mean over ranks;
 *                         returns the shard's sum of squares
 *   loss = mean over ranks, norm = sqrt(sum over ranks)   (one allreduce)
 *   loss or norm not finite: skip_update (or stop with -nf 1); else
 *   update(lr(s), grad_scale = min(1, clip / norm), s)
 *
 * Evaluation is plain cross-entropy (no z-loss term) over the validation batches,
 * averaged over the ranks; with a tokenizer of the model's vocabulary also bits
 * per byte: total nats / ln 2 / total UTF-8 bytes of the target tokens (EOT and
 * other special tokens count 0 bytes; their nats count), which compares models
 * with different tokenizers.
 *
 * Timing: a step's time is its optimizer step only (evaluation, sampling and
 * checkpoints are timed apart). tokens/s and the ETA use the median of the last
 * 16 step times, so one slow step does not move them; the ETA adds the remaining
 * evaluations and checkpoints at the duration of the last one of each.
 *
 *   #include "llmc/train_loop.h"   (after train_common.h and logger.h)
 *
 * defines: TrainOps, train_token_bytes, train_eval, train_evaluate_only, train_loop
 */
#ifndef LLMC_TRAIN_LOOP_H
#define LLMC_TRAIN_LOOP_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "comm.h"
#include "dataloader.h"
#include "logger.h"
#include "sampler.h"
#include "schedule.h"
#include "tokenizer.h"
#include "train_args.h"
#include "train_common.h"

// the trainer's model operations; `model` is passed back to each
typedef struct {
    void* model;
    void (*zero_grad)(void* model);
    // forward and backward of one micro-batch (B, T): adds loss_scale * d(mean loss) to
    // the gradients and returns the micro-batch's mean loss (with the z-loss term);
    // last: the step's last micro-batch (the gradients are final after it)
    float (*forward_backward)(void* model, const int* inputs, const int* targets, int B, int T, float zloss,
                              float loss_scale, int last);
    // after the last micro-batch: this rank's shard of the gradients becomes their mean
    // over the ranks; returns that shard's sum of squares
    double (*reduce_grads)(void* model);
    // AdamW at 0-based step `step` on this rank's shard (gradients times grad_scale),
    // then every rank's weights updated (all-gather)
    void (*update)(void* model, float lr, float grad_scale, int step);
    // a skipped step's bookkeeping (NULL: none)
    void (*skip_update)(void* model, int step);
    ForwardLossFn forward_loss;  // evaluation: the mean loss of one batch, no gradients
    NextLogitsFn next_logits;    // samples
    int sample_T;                // the most positions a sample may use
    // checkpoint st->step (the state files, then the model file) and old ones removed
    void (*save)(void* model, const char* dir, const TrainState* st, int keep, const Comm* comm);
    double flops_per_token, peak_flops;  // MFU when peak_flops > 0
    void (*summary_extra)(void* model);  // appends to the "mean step time" line (NULL: nothing)
} TrainOps;

// train_token_bytes: (V,) the UTF-8 byte count of each token id of a model with
// vocabulary V, from the tokenizer (EOT 0); NULL when the tokenizer's vocabulary
// is not the model's (bits per byte would be meaningless). Caller frees.
static inline int* train_token_bytes(const Tokenizer* tok, int V) {
    if ((int)tok->vocab_size != V) { return NULL; }
    int* nb = (int*)mallocCheck((size_t)V * sizeof(int));
    for (int i = 0; i < V; i++) {
        size_t len = 0;
        tokenizer_decode(tok, (uint32_t)i, &len);
        nb[i] = (uint32_t)i == tok->eot_token ? 0 : (int)len;
    }
    return nb;
}

// train_eval: plain cross-entropy over n batches of the validation loader from its
// start (n < 0 or past the end: all), averaged over the ranks (a collective); *bpb
// the bits per byte when token_bytes is given, else -1
static inline float train_eval(const TrainOps* ops, DataLoader* val, int n, const int* token_bytes,
                               const Comm* comm, double* bpb) {
    dataloader_reset(val);
    size_t steps = dataloader_steps_per_epoch(val);
    if (n < 0 || (size_t)n > steps) { n = (int)steps; }
    const int B = (int)val->B, T = (int)val->T;
    double red[3] = {0.0, 0.0, 0.0};  // sum of batch means, nats, bytes
    for (int i = 0; i < n; i++) {
        dataloader_next_batch(val);
        float loss = ops->forward_loss(ops->model, val->inputs, val->targets, B, T, 0.0f);
        red[0] += loss;
        red[1] += (double)loss * B * T;
        if (token_bytes != NULL) {
            for (int j = 0; j < B * T; j++) { red[2] += token_bytes[val->targets[j]]; }
        }
    }
    red[0] /= n;
    comm_allreduce_f64(comm, red, 3, COMM_SUM);
    *bpb = (token_bytes != NULL && red[2] > 0) ? red[1] / log(2.0) / red[2] : -1.0;
    return (float)(red[0] / comm->world);
}

// train_tokenizer_for: the tokenizer of the samples and of bits per byte, on every
// rank; returns 0 (samples print token ids, no bits per byte) when there is none
static inline int train_tokenizer_for(Tokenizer* tok, const TrainArgs* args, int rank, int needed) {
    if (!needed) { return 0; }
    if (access(args->tokenizer, F_OK) != 0) {
        if (rank == 0) { printf("note: tokenizer '%s' not found: samples print token ids, no bits per byte\n", args->tokenizer); }
        return 0;
    }
    tokenizer_init(tok, args->tokenizer);
    return 1;
}

// the bits-per-byte table of the model's vocabulary, with a note when it cannot be had
static inline int* train_bpb_table(const Tokenizer* tok, int have_tok, const GPTConfig* c, const TrainArgs* args,
                                   int rank) {
    if (!have_tok) { return NULL; }
    int* nb = train_token_bytes(tok, c->vocab_size);
    if (nb == NULL && rank == 0) {
        printf("note: tokenizer '%s' has %u tokens, the model %d: no bits per byte\n", args->tokenizer,
               tok->vocab_size, c->vocab_size);
    }
    return nb;
}

// train_evaluate_only (-x 0): prints "val loss <ce>" and, when known, " | val bpb <bpb>"
static inline void train_evaluate_only(const TrainOps* ops, const TrainArgs* args, const Comm* comm,
                                       const GPTConfig* c, DataLoader* val) {
    Tokenizer tok;
    const int have_tok = train_tokenizer_for(&tok, args, comm->rank, 1);
    int* nb = train_bpb_table(&tok, have_tok, c, args, comm->rank);
    double bpb;
    float ce = train_eval(ops, val, args->val_batches, nb, comm, &bpb);
    if (comm->rank == 0) {
        if (bpb >= 0) { printf("val loss %.6f | val bpb %.6f\n", ce, bpb); } else { printf("val loss %.6f\n", ce); }
    }
    free(nb);
    if (have_tok) { tokenizer_free(&tok); }
}

// the median of the last (up to) 16 step times in ms
#define STEP_WINDOW 16
typedef struct {
    double ms[STEP_WINDOW];
    int n, next;
} StepTimes;

static inline void step_times_add(StepTimes* s, double ms) {
    s->ms[s->next] = ms;
    s->next = (s->next + 1) % STEP_WINDOW;
    if (s->n < STEP_WINDOW) { s->n++; }
}

static inline double step_times_median(const StepTimes* s) {
    double v[STEP_WINDOW];
    memcpy(v, s->ms, sizeof(double) * (size_t)s->n);
    for (int i = 1; i < s->n; i++) {  // insertion sort of at most 16
        double x = v[i];
        int j = i - 1;
        for (; j >= 0 && v[j] > x; j--) { v[j + 1] = v[j]; }
        v[j + 1] = x;
    }
    return s->n % 2 ? v[s->n / 2] : 0.5 * (v[s->n / 2 - 1] + v[s->n / 2]);
}

// how many multiples of `every` lie in (from, to]: the periodic events still to come
static inline int train_due_count(int every, int from, int to) {
    if (every <= 0 || to <= from) { return 0; }
    return to / every - from / every;
}

// train_loop: steps start_step..plan->max_steps of the run (resuming: start_step and
// rng from the checkpoint, the loader already at its data position). val: NULL for
// none. run: train_state_of_run's state of this run.
static inline void train_loop(const TrainOps* ops, const TrainArgs* args, const Comm* comm, const GPTConfig* c,
                              DataLoader* loader, DataLoader* val, const BatchPlan* plan, const TrainState* run,
                              int start_step, uint64_t rng, int resuming) {
    const int rank = comm->rank, world = comm->world;
    const int grad_accum = plan->grad_accum, max_steps = plan->max_steps;
    const long long total_batch = plan->total_batch;
    LRSchedule sched = train_schedule(args, max_steps);
    Tokenizer tok;
    const int have_tok = train_tokenizer_for(&tok, args, rank, val != NULL || args->sample_every > 0);
    int* nb = val != NULL ? train_bpb_table(&tok, have_tok, c, args, rank) : NULL;
    Sampler sampler;
    train_sampler_init(&sampler, c, args);
    Logger logger;
    logger_init(&logger, args->metrics, rank, resuming);
    if (rank == 0 && args->zloss > 0.0f) {
        printf("note: the training loss includes the z-loss term (-zl %g); validation is plain cross-entropy\n",
               args->zloss);
    }

    StepTimes times;
    memset(&times, 0, sizeof(times));
    double total_ms = 0.0, last_val_s = 0.0, last_ckpt_s = 0.0;
    int timed_steps = 0;
    float last_ce = -1.0f;
    double last_bpb = -1.0;
    const double t_start = now_s();
    for (int step = start_step; step <= max_steps; step++) {
        const int last = step == max_steps;
        const long long tokens = (long long)step * total_batch;
        if (val != NULL && train_due(args->val_every, step, last)) {
            double t0 = now_s();
            last_ce = train_eval(ops, val, args->val_batches, nb, comm, &last_bpb);
            last_val_s = now_s() - t0;
            logger_val(&logger, step, last_ce, last_bpb, tokens);
        }
        if (args->sample_every > 0 && step > 0 && train_due(args->sample_every, step, last)) {
            sampler.rng = rng_next_u64(&rng);  // on every rank, so the checkpointed RNG agrees
            if (rank == 0) {
                sample_and_print(&sampler, have_tok ? &tok : NULL, args->gen_tokens, ops->sample_T, c->vocab_size,
                                 c->padded_vocab_size, ops->next_logits, ops->model);
            }
        }
        if (args->output_dir != NULL && step > start_step && train_due(args->ckpt_every, step, last)) {
            double t0 = now_s();
            TrainState st = train_state_at(run, step, rng, loader);
            ops->save(ops->model, args->output_dir, &st, args->ckpt_keep, comm);
            last_ckpt_s = now_s() - t0;
        }
        if (last) { break; }

        // one optimizer step
        double t0 = now_s();
        ops->zero_grad(ops->model);
        double loss_sum = 0.0;
        for (int micro = 0; micro < grad_accum; micro++) {
            if (!args->overfit || (step == start_step && micro == 0)) { dataloader_next_batch(loader); }
            loss_sum += ops->forward_backward(ops->model, loader->inputs, loader->targets, args->B, args->T,
                                              args->zloss, 1.0f / grad_accum, micro == grad_accum - 1);
        }
        // the mean loss over ranks and the global norm from every shard's sum of squares
        double red[2] = {loss_sum / grad_accum, 0.0};
        red[1] = ops->reduce_grads(ops->model);
        comm_allreduce_f64(comm, red, 2, COMM_SUM);
        const float loss = (float)(red[0] / world);
        const float norm = (float)sqrt(red[1]);
        const float lr = lr_at(&sched, step);
        int skipped = 0;
        if (!isfinite(loss) || !isfinite(norm)) {  // every rank sees the same loss and norm: all skip or none
            if (args->nonfinite_fatal) { die("step %d: non-finite loss %f or gradient norm %f (-nf 1)", step, loss, norm); }
            if (rank == 0) {
                fprintf(stderr, "warning: step %d: non-finite loss %f or gradient norm %f; the update is skipped\n",
                        step, loss, norm);
            }
            if (ops->skip_update != NULL) { ops->skip_update(ops->model, step); }
            skipped = 1;
        } else {
            float scale = (args->grad_clip > 0.0f && norm > args->grad_clip) ? args->grad_clip / norm : 1.0f;
            ops->update(ops->model, lr, scale, step);
        }
        const double ms = (now_s() - t0) * 1000.0;
        if (step > start_step) { total_ms += ms, timed_steps++; }
        step_times_add(&times, ms);
        const double med_ms = step_times_median(&times);
        const double tok_s = total_batch / (med_ms / 1000.0);
        const double mfu = ops->peak_flops > 0 ? ops->flops_per_token * tok_s / ops->peak_flops : -1.0;
        // the rest: steps at the median, evaluations and checkpoints at their last duration
        const int done = step + 1;
        double eta_s = (max_steps - done) * med_ms / 1000.0;
        if (val != NULL) { eta_s += (train_due_count(args->val_every, done - 1, max_steps - 1) + 1) * last_val_s; }
        if (args->output_dir != NULL) {
            eta_s += (train_due_count(args->ckpt_every, done - 1, max_steps - 1) + 1) * last_ckpt_s;
        }
        logger_step(&logger, done, max_steps, loss, args->zloss > 0.0f, norm, lr, ms, tok_s, mfu, eta_s,
                    (long long)done * total_batch, skipped);
    }
    if (rank == 0) {
        if (timed_steps > 0) {
            double tok_s = total_batch / (total_ms / timed_steps / 1000.0);
            printf("mean step time %.1f ms | %.0f tokens/s", total_ms / timed_steps, tok_s);
            if (ops->peak_flops > 0) { printf(" | MFU %.1f%%", 100.0 * ops->flops_per_token * tok_s / ops->peak_flops); }
            if (ops->summary_extra != NULL) { ops->summary_extra(ops->model); }
            printf("\n");
        }
        logger_summary(&logger, max_steps - start_step, now_s() - t_start, (long long)(max_steps - start_step) * total_batch,
                       last_ce, last_bpb);
    }
    logger_free(&logger);
    sampler_free(&sampler);
    free(nb);
    if (have_tok) { tokenizer_free(&tok); }
}

#endif // LLMC_TRAIN_LOOP_H
