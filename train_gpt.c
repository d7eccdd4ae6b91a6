/*
 * train_gpt.c: the fp32 CPU reference trainer, in plain C with OpenMP.
 * The model of SPEC.md (RMSNorm, QK-norm, RoPE, grouped-query causal attention,
 * SwiGLU, a soft-capped head, cross-entropy + z-loss), its full backward, AdamW
 * with global-norm clipping, learning-rate schedules, gradient accumulation,
 * validation, sampling, checkpoints and exact resume, and data-parallel
 * training over MPI with ZeRO-1 (docs/distributed.md). Everything else in the
 * project (the GPU trainer, the inference program) is checked against this.
 *
 *   make train_gpt
 *   OMP_NUM_THREADS=2 ./train_gpt -e d2 -b 8 -t 128 -x 100   (see --help)
 *   OMP_NUM_THREADS=1 mpirun -np 2 ./train_gpt -e d2 -b 4 -t 128 -x 100
 *
 * The model itself (every layer's forward and backward, AdamW) is in
 * llmc/gpt_cpu.h, shared with the CPU sampler; this file is the training
 * program around it: flags, data, the step loop, evaluation, sampling,
 * checkpoints and resume. What of that program train_gpt.cu does the same way
 * (the start model, batch plan, evaluation and sampling loops, checkpoint save
 * and resume checks) is in llmc/train_common.h, the multi-rank checks in
 * llmc/comm_train.h.
 *
 * Data parallel (P processes, llmc/comm.h): each rank reads its own B x T slice
 * of every micro-step, gradients are summed once per optimizer step by a
 * reduce-scatter and scaled by 1/P, each rank runs AdamW on its ZeRO-1 shard of
 * the flat parameters (and holds m, v for that shard only), then the shards are
 * all-gathered. With P = 1 none of this communicates and the run is what it
 * always was.
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
#include "llmc/comm.h"
#include "llmc/comm_train.h"
#include "llmc/config.h"
#include "llmc/dataloader.h"
#include "llmc/gpt_cpu.h"
#include "llmc/logger.h"
#include "llmc/rand.h"
#include "llmc/sampler.h"
#include "llmc/schedule.h"
#include "llmc/tokenizer.h"
#include "llmc/train_args.h"
#include "llmc/train_common.h"
#include "llmc/utils.h"

// ----------------------------------------------------------------------------
// the training program

#define ADAM_BETA1 0.9f
#define ADAM_BETA2 0.95f
#define ADAM_EPS 1e-8f

// the model-specific halves of train_common.h's evaluation and sampling loops
static float forward_loss(void* model, const int* inputs, const int* targets, int B, int T, float zloss) {
    GPT* m = (GPT*)model;
    gpt_forward(m, inputs, targets, B, T, zloss);
    return m->mean_loss;
}

static const float* next_logits(void* model, const int* tokens, int t, float* scratch) {
    (void)scratch;  // the CPU model keeps every position's logits
    GPT* m = (GPT*)model;
    gpt_forward(m, tokens, NULL, 1, t, 0.0f);
    return m->acts.logits + (size_t)(t - 1) * m->config.padded_vocab_size;
}

// evaluate: mean loss over n batches of the loader from its start (n < 0: all),
// averaged over the ranks (each read its own slice of every batch)
static float evaluate(GPT* model, DataLoader* loader, int n, float zloss, const Comm* comm) {
    double mean = eval_mean_loss(loader, n, zloss, forward_loss, model);
    comm_allreduce_f64(comm, &mean, 1, COMM_SUM);
    return (float)(mean / comm->world);
}

static void barrier_comm(const void* comm) { comm_barrier((const Comm*)comm); }

// save_checkpoint: every rank's state file (its ZeRO-1 shard of the master
// weights, m, v), the model file last (train_write_checkpoint), then old
// checkpoints beyond the keep count are removed on every rank
static void save_checkpoint(const GPT* model, const char* dir, const TrainState* st, int keep, const Comm* comm) {
    train_write_checkpoint(dir, st, model->params_memory + st->shard_offset, model->m_memory, model->v_memory,
                           &model->config, model->params_memory, barrier_comm, comm);
    if (keep > 0) { remove_old_checkpoints_ranks(dir, keep, comm); }
}

#ifndef TESTING
int main(int argc, char** argv) {
    Comm comm;
    comm_init(&comm, &argc, &argv);
    const int rank = comm.rank, world = comm.world;
    TrainArgs args;
    train_args_defaults(&args);
    if (train_args_parse(&args, argc, argv)) {
        if (rank == 0) {
            train_args_usage(argv[0]);
#ifdef USE_MPI
            printf("processes: built with MPI; mpirun -np N %s ... trains on N data-parallel processes "
                   "(docs/distributed.md)\n", argv[0]);
#else
            printf("processes: built without MPI, one process only (docs/distributed.md)\n");
#endif
        }
        comm_free(&comm);
        return 0;
    }
    train_check_flags_agree(&comm, &args, NULL, 0);

    train_check_model_arg(&args);
    if (args.output_dir != NULL) { make_dir(args.output_dir); }

    // the model: from a preset, a checkpoint file, or the newest checkpoint of -o
    // when resuming (rank 0 picks it, so every rank resumes the same step)
    GPT model;
    const int resume_step = train_resume_step(&args, &comm);
    train_init_model(&model, &args, resume_step, rank);
    const GPTConfig* c = &model.config;
    const size_t num_params = model.layout.num_parameters;
    train_check_seq_len(&args, c);
    // every rank built the same weights; rank 0's copy is the one that counts
    comm_broadcast(&comm, model.params_memory, num_params * sizeof(float), 0);
    ZeroShard zs;
    zero_shard_init(&zs, num_params, world, rank);
    const size_t shard_len = zs.end - zs.start;
    if (rank == 0) {
        config_print(c, stdout);
        printf("parameters: %zu | FLOPs per token: %.3e | threads: %d | processes: %d\n", num_params,
               model_flops_per_token(c, args.T),
#ifdef _OPENMP
               omp_get_max_threads(),
#else
               1,
#endif
               world);
        if (world > 1) { printf("ZeRO-1: AdamW state sharded, %zu parameters per process\n", zs.shard); }
    }

    // data: rank r reads sample i*world + r of every micro-step i
    DataLoader val_loader;
    const int have_val = train_open_val(&val_loader, &args, rank, world, c);
    uint64_t data_hash[2] = {0, have_val ? dataloader_files_hash(&val_loader) : 0};
    if (args.max_steps == 0) {  // evaluation only
        train_check_data_agree(&comm, c, data_hash, 0);
        float vl = evaluate(&model, &val_loader, args.val_batches, args.zloss, &comm);
        if (rank == 0) { printf("val loss %.6f\n", vl); }
        dataloader_free(&val_loader);
        gpt_free(&model);
        comm_free(&comm);
        return 0;
    }
    DataLoader loader;
    const BatchPlan plan = train_open_train(&loader, &args, &comm, c, data_hash);
    const long long total_batch = plan.total_batch;
    const int grad_accum = plan.grad_accum, max_steps = plan.max_steps;
    LRSchedule sched = train_schedule(&args, max_steps);

    Tokenizer tokenizer;
    const int have_tok = train_load_tokenizer(&tokenizer, &args, rank);
    Sampler sampler;
    train_sampler_init(&sampler, c, &args);
    uint64_t rng = args.seed;  // the trainer's own RNG: checkpointed, the same on every rank

    const TrainState run = train_state_of_run(&args, world, rank, zs.start, shard_len, num_params, c, grad_accum);
    int start_step = 0;
    if (resume_step >= 0) {
        model.m_memory = (float*)mallocCheck((shard_len > 0 ? shard_len : 1) * sizeof(float));
        model.v_memory = (float*)mallocCheck((shard_len > 0 ? shard_len : 1) * sizeof(float));
        TrainState st = train_resume_state(args.output_dir, resume_step, &run, model.params_memory + zs.start,
                                           model.m_memory, model.v_memory, &loader, max_steps);
        // the model file holds the same fp32 weights, but the state's shards are the master copy
        comm_allgather_f32(&comm, model.params_memory, num_params);
        rng = st.rng;
        start_step = st.step;
    }
    gpt_zero_grad(&model);
    if (model.m_memory == NULL) {  // AdamW state for this rank's shard only
        model.m_memory = (float*)callocCheck(shard_len > 0 ? shard_len : 1, sizeof(float));
        model.v_memory = (float*)callocCheck(shard_len > 0 ? shard_len : 1, sizeof(float));
    }
    float* gshard = world > 1 ? (float*)mallocCheck((shard_len > 0 ? shard_len : 1) * sizeof(float)) : NULL;

    Logger logger;
    logger_init(&logger, args.metrics, rank, resume_step >= 0);
    double total_ms = 0.0;
    int timed_steps = 0;
    for (int step = start_step; step <= max_steps; step++) {
        int last = step == max_steps;
        if (have_val && train_due(args.val_every, step, last)) {
            float vl = evaluate(&model, &val_loader, args.val_batches, args.zloss, &comm);
            logger_val(&logger, step, vl);
        }
        if (args.sample_every > 0 && step > 0 && train_due(args.sample_every, step, last)) {
            sampler.rng = rng_next_u64(&rng);  // on every rank, so the checkpointed RNG agrees
            if (rank == 0) {
                sample_and_print(&sampler, have_tok ? &tokenizer : NULL, args.gen_tokens, c->max_seq_len,
                                 c->vocab_size, c->padded_vocab_size, next_logits, &model);
            }
        }
        if (args.output_dir != NULL && step > start_step && train_due(args.ckpt_every, step, last)) {
            TrainState st = train_state_at(&run, step, rng, &loader);
            save_checkpoint(&model, args.output_dir, &st, args.ckpt_keep, &comm);
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
        // once per optimizer step: this rank's shard of the summed gradients, averaged
        if (world > 1) {
            comm_reduce_scatter_sum_f32(&comm, model.grads_memory, gshard, num_params);
            float inv_world = 1.0f / world;
            float* g = model.grads_memory + zs.start;
            for (size_t i = 0; i < shard_len; i++) { g[i] = gshard[i] * inv_world; }
        }
        // the mean loss over ranks and the global norm from every shard's sum of squares
        double red[2] = {loss_sum / grad_accum, gpt_grad_sumsq_range(&model, zs.start, zs.end)};
        comm_allreduce_f64(&comm, red, 2, COMM_SUM);
        float loss = (float)(red[0] / world);
        float norm = (float)sqrt(red[1]);
        float lr = lr_at(&sched, step);
        int skipped = 0;
        if (!isfinite(loss) || !isfinite(norm)) {  // every rank sees the same loss and norm: all skip or none
            if (args.nonfinite_fatal) { die("step %d: non-finite loss %f or gradient norm %f (-nf 1)", step, loss, norm); }
            if (rank == 0) {
                fprintf(stderr, "warning: step %d: non-finite loss %f or gradient norm %f; the update is skipped\n",
                        step, loss, norm);
            }
            skipped = 1;
        } else {
            float scale = (args.grad_clip > 0.0f && norm > args.grad_clip) ? args.grad_clip / norm : 1.0f;
            gpt_update_range(&model, zs.start, zs.end, model.m_memory, model.v_memory, lr, ADAM_BETA1, ADAM_BETA2,
                             ADAM_EPS, args.weight_decay, scale, step + 1);
            comm_allgather_f32(&comm, model.params_memory, num_params);
        }
        double ms = (now_s() - t0) * 1000.0;
        if (step > start_step) { total_ms += ms; timed_steps++; }
        logger_step(&logger, step + 1, max_steps, loss, norm, lr, ms, total_batch / (ms / 1000.0), -1.0, skipped);
    }
    if (timed_steps > 0 && rank == 0) {
        printf("mean step time %.1f ms | %.0f tokens/s\n", total_ms / timed_steps,
               total_batch / (total_ms / timed_steps / 1000.0));
    }
    free(gshard);
    logger_free(&logger);
    sampler_free(&sampler);
    if (have_tok) { tokenizer_free(&tokenizer); }
    if (have_val) { dataloader_free(&val_loader); }
    dataloader_free(&loader);
    gpt_free(&model);
    comm_free(&comm);
    return 0;
}
#endif
