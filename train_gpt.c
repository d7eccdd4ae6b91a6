/*
 * train_gpt.c: the fp32 CPU reference trainer, in plain C with OpenMP.
 * The model of SPEC.md (RMSNorm, QK-norm, RoPE, grouped-query causal attention,
 * SwiGLU, a soft-capped head, cross-entropy + z-loss), its full backward, AdamW
 * with global-norm clipping, learning-rate schedules, gradient accumulation,
 * validation, sampling, checkpoints and exact resume. Everything else in the
 * project (the GPU trainer, the inference program) is checked against this.
 *
 *   make train_gpt
 *   OMP_NUM_THREADS=2 ./train_gpt -e d2 -b 8 -t 128 -x 100   (see --help)
 *
 * The model itself (every layer's forward and backward, AdamW) is in
 * llmc/gpt_cpu.h, shared with the CPU sampler; this file is the training
 * program around it: flags, data, the step loop, evaluation, sampling,
 * checkpoints and resume.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "llmc/checkpoint.h"
#include "llmc/config.h"
#include "llmc/dataloader.h"
#include "llmc/gpt_cpu.h"
#include "llmc/logger.h"
#include "llmc/rand.h"
#include "llmc/sampler.h"
#include "llmc/schedule.h"
#include "llmc/tokenizer.h"
#include "llmc/train_args.h"
#include "llmc/utils.h"

// ----------------------------------------------------------------------------
// the training program

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define ADAM_BETA1 0.9f
#define ADAM_BETA2 0.95f
#define ADAM_EPS 1e-8f

// evaluate: mean loss over n batches of the loader from its start (n < 0: all)
static float evaluate(GPT* model, DataLoader* loader, int n, float zloss) {
    dataloader_reset(loader);
    size_t steps = dataloader_steps_per_epoch(loader);
    if (n < 0 || (size_t)n > steps) { n = (int)steps; }
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        dataloader_next_batch(loader);
        gpt_forward(model, loader->inputs, loader->targets, (int)loader->B, (int)loader->T, zloss);
        sum += model->mean_loss;
    }
    return (float)(sum / n);
}

// sample_and_print: continues the EOT token for gen_tokens tokens (B = 1)
static void sample_and_print(GPT* model, Sampler* sampler, const Tokenizer* tok, int gen_tokens, int max_T) {
    int V = model->config.vocab_size, Vp = model->config.padded_vocab_size;
    int eot = tok != NULL ? (int)tok->eot_token : V - 1;
    if (eot >= V) { eot = V - 1; }
    int n = gen_tokens + 1 < max_T ? gen_tokens + 1 : max_T;
    int* tokens = (int*)mallocCheck((size_t)n * sizeof(int));
    tokens[0] = eot;
    printf("generating:\n---\n");
    for (int t = 1; t < n; t++) {
        gpt_forward(model, tokens, NULL, 1, t, 0.0f);
        int next = sampler_sample(sampler, model->acts.logits + (size_t)(t - 1) * Vp);
        tokens[t] = next;
        if (tok != NULL) {
            tokenizer_print(tok, (uint32_t)next, stdout);
        } else {
            printf("%d ", next);
        }
        fflush(stdout);
    }
    printf("\n---\n");
    free(tokens);
}

// save_checkpoint: the state file first, the model file last (its presence marks
// a complete checkpoint), then old checkpoints beyond the keep count are removed
static void save_checkpoint(const GPT* model, const char* dir, int step, const TrainState* st, int keep) {
    char path[1200];
    state_path(path, sizeof(path), dir, step, st->rank);
    state_write(path, st, model->params_memory, model->m_memory, model->v_memory);
    checkpoint_path(path, sizeof(path), dir, step);
    checkpoint_write(path, &model->config, model->params_memory, model->layout.num_parameters, DTYPE_FP32);
    printf("wrote checkpoint %s\n", path);
    if (keep > 0) { remove_old_checkpoints(dir, keep, st->rank); }
}

#ifndef TESTING
int main(int argc, char** argv) {
    TrainArgs args;
    train_args_defaults(&args);
    if (train_args_parse(&args, argc, argv)) {
        train_args_usage(argv[0]);
        return 0;
    }
    const int rank = 0, world = 1;  // the CPU reference runs one process

    if (!is_preset_name(args.model) && access(args.model, F_OK) != 0) {
        die("flag -e: '%s' is neither a preset (d2, d6, d12, d24, d36, 1b) nor an existing checkpoint file", args.model);
    }
    if (args.output_dir != NULL) { make_dir(args.output_dir); }

    // the model: from a preset, a checkpoint file, or the newest checkpoint of -o when resuming
    GPT model;
    int resume_step = -1;
    if (args.resume) { resume_step = latest_checkpoint_step(args.output_dir); }
    if (resume_step >= 0) {
        char path[1200];
        checkpoint_path(path, sizeof(path), args.output_dir, resume_step);
        gpt_init_from_checkpoint(&model, path);
        GPTConfig want;
        if (is_preset_name(args.model)) {
            train_args_model_config(&args, &want);
        } else {
            int dt;
            FILE* fp = checkpoint_read_config(args.model, &want, &dt);
            fclose(fp);
        }
        if (!config_equal(&want, &model.config)) {
            die("checkpoint '%s' does not match the model asked for with -e %s\n"
                "---> HINT: resume with the same model flags, or use another -o", path, args.model);
        }
        printf("resuming from %s\n", path);
    } else if (is_preset_name(args.model)) {
        GPTConfig cfg;
        train_args_model_config(&args, &cfg);
        gpt_init_random(&model, &cfg, args.seed);
    } else {
        gpt_init_from_checkpoint(&model, args.model);
    }
    const GPTConfig* c = &model.config;
    if (args.T > c->max_seq_len) {
        die("flag -t: T = %d is larger than the model's max_seq_len %d", args.T, c->max_seq_len);
    }
    config_print(c, stdout);
    printf("parameters: %zu | FLOPs per token: %.3e | threads: %d\n", model.layout.num_parameters,
           model_flops_per_token(c, args.T),
#ifdef _OPENMP
           omp_get_max_threads()
#else
           1
#endif
    );

    // data
    DataLoader val_loader;
    int have_val = 0;
    if (args.val_every > 0 || args.max_steps == 0) {
        dataloader_init(&val_loader, args.val_pattern, args.B, args.T, rank, world, c->vocab_size, 0, 0);
        have_val = 1;
    }
    if (args.max_steps == 0) {  // evaluation only
        float vl = evaluate(&model, &val_loader, args.val_batches, args.zloss);
        printf("val loss %.6f\n", vl);
        dataloader_free(&val_loader);
        gpt_free(&model);
        return 0;
    }
    DataLoader loader;
    dataloader_init(&loader, args.train_pattern, args.B, args.T, rank, world, c->vocab_size, args.shuffle, args.seed);
    long long tokens_per_micro = (long long)args.B * args.T * world;
    long long total_batch = args.total_batch < 0 ? tokens_per_micro : args.total_batch;
    if (total_batch < tokens_per_micro || total_batch % tokens_per_micro != 0) {
        die("flag -d: total batch %lld is not a positive multiple of B*T*processes = %lld", total_batch,
            tokens_per_micro);
    }
    int grad_accum = (int)(total_batch / tokens_per_micro);
    int max_steps = args.max_steps;
    if (max_steps < 0) {
        max_steps = (int)(dataloader_steps_per_epoch(&loader) / grad_accum);
        if (max_steps < 1) { die("one epoch of '%s' is less than one optimizer step", args.train_pattern); }
    }
    if (args.warmup > max_steps) { die("flag -u: warmup %d is longer than the run (%d steps)", args.warmup, max_steps); }
    printf("batch: B %d | T %d | grad accum %d | tokens per step %lld | steps %d\n", args.B, args.T, grad_accum,
           total_batch, max_steps);
    LRSchedule sched = {args.lr_kind, args.lr, args.warmup, max_steps, args.final_frac, args.wsd_frac};

    Tokenizer tokenizer;
    int have_tok = 0;
    if (args.sample_every > 0) {
        if (access(args.tokenizer, F_OK) == 0) {
            tokenizer_init(&tokenizer, args.tokenizer);
            have_tok = 1;
        } else {
            printf("note: tokenizer '%s' not found, samples print token ids\n", args.tokenizer);
        }
    }
    Sampler sampler;
    sampler_init(&sampler, c->vocab_size, args.temperature, args.top_k, args.top_p, args.seed ^ 0x5A5A5A5AULL);
    uint64_t rng = args.seed;  // the trainer's own RNG: checkpointed

    int start_step = 0;
    if (resume_step >= 0) {
        char path[1200];
        state_path(path, sizeof(path), args.output_dir, resume_step, rank);
        TrainState st;
        FILE* fp = state_read_header(path, &st);
        if (st.num_parameters != model.layout.num_parameters || st.config_hash != config_hash(c) ||
            st.shard_offset != 0 || st.shard_size != model.layout.num_parameters) {
            die("training state '%s' does not belong to the model checkpoint beside it", path);
        }
        if (st.world_size != world || st.B != args.B || st.T != args.T || st.grad_accum != grad_accum ||
            st.shuffle != args.shuffle || st.data_seed != args.seed) {
            die("training state '%s' was written with world %d, B %d, T %d, grad accum %d, shuffle %d, seed %llu; "
                "this run has %d, %d, %d, %d, %d, %llu\n---> HINT: resume with the same -b -t -d -sh -rs",
                path, st.world_size, st.B, st.T, st.grad_accum, st.shuffle, (unsigned long long)st.data_seed, world,
                args.B, args.T, grad_accum, args.shuffle, (unsigned long long)args.seed);
        }
        model.m_memory = (float*)mallocCheck(st.shard_size * sizeof(float));
        model.v_memory = (float*)mallocCheck(st.shard_size * sizeof(float));
        state_read_body(fp, path, &st, model.params_memory, model.m_memory, model.v_memory);
        fclose(fp);
        rng = st.rng;
        dataloader_seek(&loader, st.data_epoch, st.data_shard, st.data_sample);
        start_step = st.step;
        if (start_step > max_steps) { die("checkpoint step %d is past the run's last step %d", start_step, max_steps); }
    }
    gpt_zero_grad(&model);
    if (model.m_memory == NULL) {
        model.m_memory = (float*)callocCheck(model.layout.num_parameters, sizeof(float));
        model.v_memory = (float*)callocCheck(model.layout.num_parameters, sizeof(float));
    }

    Logger logger;
    logger_init(&logger, args.metrics, rank, resume_step >= 0);
    double total_ms = 0.0;
    int timed_steps = 0;
    for (int step = start_step; step <= max_steps; step++) {
        int last = step == max_steps;
        if (have_val && (last || (args.val_every > 0 && step % args.val_every == 0))) {
            float vl = evaluate(&model, &val_loader, args.val_batches, args.zloss);
            logger_val(&logger, step, vl);
        }
        if (args.sample_every > 0 && (last || step % args.sample_every == 0) && step > 0) {
            sampler.rng = rng_next_u64(&rng);
            sample_and_print(&model, &sampler, have_tok ? &tokenizer : NULL, args.gen_tokens, c->max_seq_len);
        }
        if (args.output_dir != NULL && step > start_step &&
            (last || (args.ckpt_every > 0 && step % args.ckpt_every == 0))) {
            TrainState st = {step, world, rank, rng, loader.epoch, loader.shard_index, loader.sample_index, 0,
                             model.layout.num_parameters, model.layout.num_parameters, config_hash(c),
                             args.B, args.T, grad_accum, args.shuffle, args.seed};
            save_checkpoint(&model, args.output_dir, step, &st, args.ckpt_keep);
        }
        if (last) { break; }

        double t0 = now_s();
        gpt_zero_grad(&model);
        double loss_sum = 0.0;
        for (int micro = 0; micro < grad_accum; micro++) {
            if (!args.overfit || (step == start_step && micro == 0)) { dataloader_next_batch(&loader); }
            gpt_forward(&model, loader.inputs, loader.targets, args.B, args.T, args.zloss);
            loss_sum += model.mean_loss;
            gpt_backward(&model, args.B, args.T, args.zloss, 1.0f / grad_accum);
        }
        float loss = (float)(loss_sum / grad_accum);
        float norm = gpt_grad_norm(&model);
        float lr = lr_at(&sched, step);
        int skipped = 0;
        if (!isfinite(loss) || !isfinite(norm)) {
            if (args.nonfinite_fatal) { die("step %d: non-finite loss %f or gradient norm %f (-nf 1)", step, loss, norm); }
            fprintf(stderr, "warning: step %d: non-finite loss %f or gradient norm %f; the update is skipped\n", step,
                    loss, norm);
            skipped = 1;
        } else {
            float scale = (args.grad_clip > 0.0f && norm > args.grad_clip) ? args.grad_clip / norm : 1.0f;
            gpt_update(&model, lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, args.weight_decay, scale, step + 1);
        }
        double ms = (now_s() - t0) * 1000.0;
        if (step > start_step) { total_ms += ms; timed_steps++; }
        logger_step(&logger, step + 1, max_steps, loss, norm, lr, ms, total_batch / (ms / 1000.0), -1.0, skipped);
    }
    if (timed_steps > 0) {
        printf("mean step time %.1f ms | %.0f tokens/s\n", total_ms / timed_steps,
               total_batch / (total_ms / timed_steps / 1000.0));
    }
    logger_free(&logger);
    sampler_free(&sampler);
    if (have_tok) { tokenizer_free(&tokenizer); }
    if (have_val) { dataloader_free(&val_loader); }
    dataloader_free(&loader);
    gpt_free(&model);
    return 0;
}
#endif
