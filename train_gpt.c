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
 * program around it: flags, the model, data and resume set-up, and the model
 * operations (TrainOps) of the training loop in llmc/train_loop.h, which
 * train_gpt.cu calls too (schedule, gradient accumulation, evaluation,
 * sampling, logging, checkpoints, non-finite steps). The set-up both trainers do
 * the same way (the start model, batch plan, checkpoint save and resume checks)
 * is in llmc/train_common.h, the multi-rank checks in llmc/comm_train.h.
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
#include "llmc/train_loop.h"
#include "llmc/utils.h"

// ----------------------------------------------------------------------------
// the training program

#define ADAM_BETA1 0.9f
#define ADAM_BETA2 0.95f
#define ADAM_EPS 1e-8f

// ----------------------------------------------------------------------------
// the model operations of the shared training loop (llmc/train_loop.h)

typedef struct {
    GPT* model;
    const Comm* comm;
    ZeroShard zs;          // this rank's ZeRO-1 shard of the flat parameters
    float* gshard;         // (shard,) the reduce-scatter's output (world > 1)
    float weight_decay;
} CpuTrainer;

static void zero_grad_cpu(void* ctx) { gpt_zero_grad(((CpuTrainer*)ctx)->model); }

static float forward_backward_cpu(void* ctx, const int* inputs, const int* targets, int B, int T, float zloss,
                                  float loss_scale, int last) {
    (void)last;  // the gradients are reduced once, after the last micro-batch
    GPT* m = ((CpuTrainer*)ctx)->model;
    gpt_forward(m, inputs, targets, B, T, zloss);
    gpt_backward(m, B, T, zloss, loss_scale);
    return m->mean_loss;
}

// this rank's shard of the summed gradients, averaged; returns its sum of squares
static double reduce_grads_cpu(void* ctx) {
    CpuTrainer* tr = (CpuTrainer*)ctx;
    GPT* m = tr->model;
    const int world = tr->comm->world;
    if (world > 1) {
        comm_reduce_scatter_sum_f32(tr->comm, m->grads_memory, tr->gshard, m->layout.num_parameters);
        float inv_world = 1.0f / world;
        float* g = m->grads_memory + tr->zs.start;
        for (size_t i = 0; i < tr->zs.end - tr->zs.start; i++) { g[i] = tr->gshard[i] * inv_world; }
    }
    return gpt_grad_sumsq_range(m, tr->zs.start, tr->zs.end);
}

static void update_cpu(void* ctx, float lr, float grad_scale, int step) {
    CpuTrainer* tr = (CpuTrainer*)ctx;
    GPT* m = tr->model;
    gpt_update_range(m, tr->zs.start, tr->zs.end, m->m_memory, m->v_memory, lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS,
                     tr->weight_decay, grad_scale, step + 1);
    comm_allgather_f32(tr->comm, m->params_memory, m->layout.num_parameters);
}

// evaluation: the mean loss of one batch
static float forward_loss_cpu(void* ctx, const int* inputs, const int* targets, int B, int T, float zloss) {
    GPT* m = ((CpuTrainer*)ctx)->model;
    gpt_forward(m, inputs, targets, B, T, zloss);
    return m->mean_loss;
}

static const float* next_logits_cpu(void* ctx, const int* tokens, int t, float* scratch) {
    (void)scratch;  // the CPU model keeps every position's logits
    GPT* m = ((CpuTrainer*)ctx)->model;
    gpt_forward(m, tokens, NULL, 1, t, 0.0f);
    return m->acts.logits + (size_t)(t - 1) * m->config.padded_vocab_size;
}

static void barrier_comm(const void* comm) { comm_barrier((const Comm*)comm); }

// save_checkpoint: every rank's state file (its ZeRO-1 shard of the master
// weights, m, v), the model file last (train_write_checkpoint), then old
// checkpoints beyond the keep count are removed on every rank
static void save_checkpoint_cpu(void* ctx, const char* dir, const TrainState* st, int keep, const Comm* comm) {
    const GPT* model = ((CpuTrainer*)ctx)->model;
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
    CpuTrainer tr = {&model, &comm, {0}, NULL, args.weight_decay};
    zero_shard_init(&tr.zs, num_params, world, rank);
    const size_t shard_len = tr.zs.end - tr.zs.start;
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
        if (world > 1) { printf("ZeRO-1: AdamW state sharded, %zu parameters per process\n", tr.zs.shard); }
    }
    TrainOps ops;
    memset(&ops, 0, sizeof(ops));
    ops.model = &tr;
    ops.zero_grad = zero_grad_cpu;
    ops.forward_backward = forward_backward_cpu;
    ops.reduce_grads = reduce_grads_cpu;
    ops.update = update_cpu;
    ops.forward_loss = forward_loss_cpu;
    ops.next_logits = next_logits_cpu;
    ops.sample_T = c->max_seq_len;
    ops.save = save_checkpoint_cpu;
    ops.flops_per_token = model_flops_per_token(c, args.T);

    // data: rank r reads sample i*world + r of every micro-step i
    DataLoader val_loader;
    const int have_val = train_open_val(&val_loader, &args, rank, world, c);
    uint64_t data_hash[2] = {0, have_val ? dataloader_files_hash(&val_loader) : 0};
    if (args.max_steps == 0) {  // evaluation only
        train_check_data_agree(&comm, c, data_hash, 0);
        train_evaluate_only(&ops, &args, &comm, c, &val_loader);
        dataloader_free(&val_loader);
        gpt_free(&model);
        comm_free(&comm);
        return 0;
    }
    DataLoader loader;
    const BatchPlan plan = train_open_train(&loader, &args, &comm, c, data_hash);
    uint64_t rng = args.seed;  // the trainer's own RNG: checkpointed, the same on every rank

    const TrainState run = train_state_of_run(&args, world, rank, tr.zs.start, shard_len, num_params, c,
                                              plan.grad_accum);
    int start_step = 0;
    if (resume_step >= 0) {
        model.m_memory = (float*)mallocCheck((shard_len > 0 ? shard_len : 1) * sizeof(float));
        model.v_memory = (float*)mallocCheck((shard_len > 0 ? shard_len : 1) * sizeof(float));
        TrainState st = train_resume_state(args.output_dir, resume_step, &run, model.params_memory + tr.zs.start,
                                           model.m_memory, model.v_memory, &loader, plan.max_steps);
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
    tr.gshard = world > 1 ? (float*)mallocCheck((shard_len > 0 ? shard_len : 1) * sizeof(float)) : NULL;

    train_loop(&ops, &args, &comm, c, &loader, have_val ? &val_loader : NULL, &plan, &run, start_step, rng,
               resume_step >= 0);

    free(tr.gshard);
    if (have_val) { dataloader_free(&val_loader); }
    dataloader_free(&loader);
    gpt_free(&model);
    comm_free(&comm);
    return 0;
}
#endif
