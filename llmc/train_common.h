/*
 * train_common.h: the host side of the training program that train_gpt.c (CPU)
 * and train_gpt.cu (GPU) share, so that the two read alike and cannot drift:
 * the model to start from (a preset, a checkpoint file, or the newest checkpoint
 * of -o when resuming), the batch plan, when the step loop evaluates, samples and
 * saves, the sampling loop, and the checkpoint save and resume flows with their
 * checks and error messages. The step loop itself is llmc/train_loop.h.
 *
 * What differs between the trainers stays with them: a forward (ForwardLossFn),
 * the logits of one position (NextLogitsFn) and the barrier between the state
 * files and the model file are passed in as function pointers with a context;
 * the collectives here are comm.h's (host memory, any process count); others
 * (the mean of a loss over ranks, removing old checkpoints on every rank) are
 * the caller's, before or after the call. Plain C; nvcc compiles it as
 * C++ for train_gpt.cu.
 *
 *   #include "llmc/train_common.h"   (after the headers it names below)
 *
 * defines: now_s, train_check_model_arg, train_args_config, train_check_seq_len,
 *          train_resume_step, train_init_model, train_open_val, train_check_data_agree,
 *          BatchPlan, train_batch_plan, train_print_batch, train_open_train,
 *          train_schedule, train_sampler_init,
 *          train_due, ForwardLossFn, NextLogitsFn, sample_and_print,
 *          train_state_of_run, train_state_at, BarrierFn, train_write_checkpoint,
 *          train_resume_state
 */
#ifndef LLMC_TRAIN_COMMON_H
#define LLMC_TRAIN_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "checkpoint.h"
#include "comm.h"
#include "comm_train.h"
#include "config.h"
#include "dataloader.h"
#include "gpt_cpu.h"
#include "sampler.h"
#include "schedule.h"
#include "tokenizer.h"
#include "train_args.h"
#include "utils.h"

// seconds on a monotonic clock (step timing)
static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// ----------------------------------------------------------------------------
// the model to start from

// train_check_model_arg: -e must name a preset, an existing checkpoint file or a
// Hugging Face folder (config.json + safetensors, llmc/hf_import.h)
static inline void train_check_model_arg(const TrainArgs* args) {
    if (!is_preset_name(args->model) && access(args->model, F_OK) != 0) {
        die("flag -e: '%s' is neither a preset (d2, d6, d12, d24, d36, 1b) nor an existing checkpoint file or "
            "Hugging Face folder", args->model);
    }
}

// train_args_config: the model config the flags ask for (a preset with its
// overrides, or the config of the checkpoint file or Hugging Face folder -e names)
static inline void train_args_config(const TrainArgs* args, GPTConfig* c) {
    if (is_preset_name(args->model)) {
        train_args_model_config(args, c);
    } else if (hf_is_folder(args->model)) {
        hf_read_config(args->model, c);
    } else {
        int dt;
        FILE* fp = checkpoint_read_config(args->model, c, &dt);
        fclose(fp);
    }
}

// train_check_seq_len: -t must fit the model's positions (RoPE tables, masks)
static inline void train_check_seq_len(const TrainArgs* args, const GPTConfig* c) {
    if (args->T > c->max_seq_len) {
        die("flag -t: T = %d is larger than the model's max_seq_len %d", args->T, c->max_seq_len);
    }
}

// train_resume_step: the checkpoint step a run resumes from, -1 for none: the
// newest of -o with -y 1. Rank 0 picks it, so every rank resumes the same step.
static inline int train_resume_step(const TrainArgs* args, const Comm* comm) {
    int step = -1;
    if (args->resume) {
        if (comm->rank == 0) { step = latest_checkpoint_step(args->output_dir); }
        comm_broadcast(comm, &step, sizeof(step), 0);
    }
    return step;
}

// train_init_model: the fp32 host model a run starts from: checkpoint resume_step
// of -o (resume_step >= 0; its config must be the one the flags ask for, or the
// resumed run would silently train another model), else SPEC's init of a preset
// (the same weights on every trainer), else the checkpoint file -e names
static inline void train_init_model(GPT* model, const TrainArgs* args, int resume_step, int rank) {
    if (resume_step >= 0) {
        char path[1200];
        checkpoint_path(path, sizeof(path), args->output_dir, resume_step);
        gpt_init_from_checkpoint(model, path);
        GPTConfig want;
        train_args_config(args, &want);
        if (!config_equal(&want, &model->config)) {
            die("checkpoint '%s' does not match the model asked for with -e %s\n"
                "---> HINT: resume with the same model flags, or use another -o", path, args->model);
        }
        if (rank == 0) { printf("resuming from %s\n", path); }
    } else if (is_preset_name(args->model)) {
        GPTConfig cfg;
        train_args_model_config(args, &cfg);
        gpt_init_random(model, &cfg, args->seed);
    } else {
        gpt_init_from_checkpoint(model, args->model);
    }
}

// ----------------------------------------------------------------------------
// data, the batch plan and the step loop's events

// train_open_val: the validation loader (rank r reads sample i*world + r of every
// batch i), when the run evaluates (-v > 0, or -x 0: evaluation only); returns
// whether it was opened
static inline int train_open_val(DataLoader* val, const TrainArgs* args, int rank, int world, const GPTConfig* c) {
    if (args->val_every <= 0 && args->max_steps != 0) { return 0; }
    dataloader_init(val, args->val_pattern, args->B, args->T, rank, world, c->vocab_size, 0, 0);
    return 1;
}

// train_check_data_agree: every rank must have the same model and the same shard
// files: data_hash[0] the training shards' (with_train), [1] the validation
// shards' (dataloader_files_hash, 0 without them). Stops every rank with one
// line naming what differs.
static inline void train_check_data_agree(const Comm* comm, const GPTConfig* c, const uint64_t data_hash[2],
                                          int with_train) {
    if (with_train) {
        const char* names[3] = {"the model config", "the training shards (names and sizes)",
                                "the validation shards (names and sizes)"};
        uint64_t h[3] = {config_hash(c), data_hash[0], data_hash[1]};
        comm_check_agree(comm, names, h, 3);
    } else {
        const char* names[2] = {"the model config", "the validation shards (names and sizes)"};
        uint64_t h[2] = {config_hash(c), data_hash[1]};
        comm_check_agree(comm, names, h, 2);
    }
}

typedef struct {
    long long total_batch;  // tokens per optimizer step, over all processes
    int grad_accum;         // micro-steps per optimizer step
    int max_steps;          // optimizer steps of the run
} BatchPlan;

// train_batch_plan: -d, -x and -u checked against B*T*world and the training
// data (-x -1: one epoch of `loader`)
static inline BatchPlan train_batch_plan(const TrainArgs* args, int world, const DataLoader* loader) {
    BatchPlan p;
    long long tokens_per_micro = (long long)args->B * args->T * world;
    p.total_batch = args->total_batch < 0 ? tokens_per_micro : args->total_batch;
    if (p.total_batch < tokens_per_micro || p.total_batch % tokens_per_micro != 0) {
        die("flag -d: total batch %lld is not a positive multiple of B*T*processes = %lld", p.total_batch,
            tokens_per_micro);
    }
    p.grad_accum = (int)(p.total_batch / tokens_per_micro);
    p.max_steps = args->max_steps;
    if (p.max_steps < 0) {
        p.max_steps = (int)(dataloader_steps_per_epoch(loader) / p.grad_accum);
        if (p.max_steps < 1) { die("one epoch of '%s' is less than one optimizer step", args->train_pattern); }
    }
    if (args->warmup > p.max_steps) {
        die("flag -u: warmup %d is longer than the run (%d steps)", args->warmup, p.max_steps);
    }
    return p;
}

// train_print_batch: the batch line of the run's header (rank 0)
static inline void train_print_batch(const TrainArgs* args, int world, const BatchPlan* p, int rank) {
    if (rank != 0) { return; }
    printf("batch: B %d | T %d | processes %d | grad accum %d | tokens per step %lld | steps %d\n", args->B, args->T,
           world, p->grad_accum, p->total_batch, p->max_steps);
}

// train_open_train: the training loader (shuffled with -sh, seeded with -rs),
// the ranks' agreement on the model and the shard files (data_hash[1]: the
// validation shards', from before), and the batch plan, printed
static inline BatchPlan train_open_train(DataLoader* loader, const TrainArgs* args, const Comm* comm,
                                         const GPTConfig* c, uint64_t data_hash[2]) {
    dataloader_init(loader, args->train_pattern, args->B, args->T, comm->rank, comm->world, c->vocab_size,
                    args->shuffle, args->seed);
    data_hash[0] = dataloader_files_hash(loader);
    train_check_data_agree(comm, c, data_hash, 1);
    BatchPlan plan = train_batch_plan(args, comm->world, loader);
    train_print_batch(args, comm->world, &plan, comm->rank);
    return plan;
}

// train_schedule: the learning-rate schedule of the flags over max_steps
static inline LRSchedule train_schedule(const TrainArgs* args, int max_steps) {
    LRSchedule sched = {args->lr_kind, args->lr, args->warmup, max_steps, args->final_frac, args->wsd_frac};
    return sched;
}

// train_sampler_init: the sampler of the periodic samples, seeded from -rs
// apart from the trainer's own RNG
static inline void train_sampler_init(Sampler* sampler, const GPTConfig* c, const TrainArgs* args) {
    sampler_init(sampler, c->vocab_size, args->temperature, args->top_k, args->top_p, args->seed ^ 0x5A5A5A5AULL);
}

// train_due: whether an event with period `every` (<= 0: never, but for the
// last step) falls on `step`
static inline int train_due(int every, int step, int last) {
    return last || (every > 0 && step % every == 0);
}

// ----------------------------------------------------------------------------
// validation and sampling

// a forward of (B, T) tokens with targets; returns the mean loss
typedef float (*ForwardLossFn)(void* model, const int* inputs, const int* targets, int B, int T, float zloss);

// a forward of tokens[0..t) (B = 1) that returns the logits (Vp,) of position
// t - 1: a pointer into the model's own buffers, or `scratch` (Vp,) filled
typedef const float* (*NextLogitsFn)(void* model, const int* tokens, int t, float* scratch);

// sample_and_print: continues the token that starts a document (tokenizer_doc_token:
// EOT, or BOS where the tokenizer has one, as make_shards put them) for gen_tokens
// tokens (at most max_T positions in all), each from a full forward over the tokens
// so far, printed as text (tok != NULL) or as token ids
static inline void sample_and_print(Sampler* sampler, const Tokenizer* tok, int gen_tokens, int max_T, int V, int Vp,
                                    NextLogitsFn next_logits, void* model) {
    int eot = tok != NULL ? (int)tokenizer_doc_token(tok) : V - 1;
    if (eot >= V) { eot = V - 1; }
    int n = gen_tokens + 1 < max_T ? gen_tokens + 1 : max_T;
    int* tokens = (int*)mallocCheck((size_t)n * sizeof(int));
    float* scratch = (float*)mallocCheck((size_t)Vp * sizeof(float));
    tokens[0] = eot;
    printf("generating:\n---\n");
    for (int t = 1; t < n; t++) {
        int next = sampler_sample(sampler, next_logits(model, tokens, t, scratch));
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
    free(scratch);
}

// ----------------------------------------------------------------------------
// checkpoints: save and resume

// train_state_of_run: what a training state must agree on with the run that
// resumes it (this rank's shard, the model, the batch geometry, the data order);
// step, rng and the data position are set by train_state_at
static inline TrainState train_state_of_run(const TrainArgs* args, int world, int rank, size_t shard_offset,
                                            size_t shard_size, size_t num_params, const GPTConfig* c,
                                            int grad_accum) {
    TrainState s;
    memset(&s, 0, sizeof(s));
    s.world_size = world;
    s.rank = rank;
    s.shard_offset = shard_offset;
    s.shard_size = shard_size;
    s.num_parameters = num_params;
    s.config_hash = config_hash(c);
    s.B = args->B;
    s.T = args->T;
    s.grad_accum = grad_accum;
    s.shuffle = args->shuffle;
    s.data_seed = args->seed;
    return s;
}

// train_state_at: the run's state after `step` optimizer steps
static inline TrainState train_state_at(const TrainState* run, int step, uint64_t rng, const DataLoader* loader) {
    TrainState s = *run;
    s.step = step;
    s.rng = rng;
    s.data_epoch = loader->epoch;
    s.data_shard = loader->shard_index;
    s.data_sample = loader->sample_index;
    return s;
}

// waits until every rank got here (NULL: one process, nothing to wait for)
typedef void (*BarrierFn)(const void* ctx);

// train_write_checkpoint: every rank writes its state file (master_shard, m, v:
// st->shard_size floats each, its ZeRO-1 shard); after the barrier rank 0 writes
// the model file (params: all st->num_parameters) last, as its presence marks
// checkpoint st->step complete. Removing old checkpoints is the caller's.
static inline void train_write_checkpoint(const char* dir, const TrainState* st, const float* master_shard,
                                          const float* m, const float* v, const GPTConfig* c, const float* params,
                                          BarrierFn barrier, const void* ctx) {
    char path[1024];  // AtomicFile's limit; 1024 also keeps gcc's -Wformat-truncation quiet
    state_path(path, sizeof(path), dir, st->step, st->rank);
    state_write(path, st, master_shard, m, v);
    if (barrier != NULL) { barrier(ctx); }
    if (st->rank == 0) {
        checkpoint_path(path, sizeof(path), dir, st->step);
        checkpoint_write(path, c, params, st->num_parameters, DTYPE_FP32);
        printf("wrote checkpoint %s\n", path);
    }
}

// train_resume_state: reads this rank's training state of checkpoint `step` in
// dir into master_shard, m, v (run->shard_size floats each) after checking that
// it was written by a run like `run` (train_state_of_run), and seeks the loader
// to its data position. Returns the state (its step and rng continue the run).
static inline TrainState train_resume_state(const char* dir, int step, const TrainState* run, float* master_shard,
                                            float* m, float* v, DataLoader* loader, int max_steps) {
    char path[1200];
    // rank 0's state exists whatever the process count was and says what it was
    state_path(path, sizeof(path), dir, step, 0);
    TrainState st;
    FILE* fp = state_read_header(path, &st);
    fclose(fp);
    if (st.world_size != run->world_size) {
        die("checkpoint %d in '%s' was written by %d process(es); this run has %d\n"
            "---> HINT: resume with the same number of processes (mpirun -np %d); changing it on resume is "
            "not supported", step, dir, st.world_size, run->world_size, st.world_size);
    }
    state_path(path, sizeof(path), dir, step, run->rank);
    fp = state_read_header(path, &st);
    if (st.num_parameters != run->num_parameters || st.config_hash != run->config_hash || st.rank != run->rank ||
        st.shard_offset != run->shard_offset || st.shard_size != run->shard_size) {
        die("training state '%s' does not belong to the model checkpoint beside it", path);
    }
    if (st.world_size != run->world_size || st.B != run->B || st.T != run->T || st.grad_accum != run->grad_accum ||
        st.shuffle != run->shuffle || st.data_seed != run->data_seed) {
        die("training state '%s' was written with world %d, B %d, T %d, grad accum %d, shuffle %d, seed %llu; "
            "this run has %d, %d, %d, %d, %d, %llu\n---> HINT: resume with the same -b -t -d -sh -rs",
            path, st.world_size, st.B, st.T, st.grad_accum, st.shuffle, (unsigned long long)st.data_seed,
            run->world_size, run->B, run->T, run->grad_accum, run->shuffle, (unsigned long long)run->data_seed);
    }
    state_read_body(fp, path, &st, master_shard, m, v);
    fclose(fp);
    dataloader_seek(loader, st.data_epoch, st.data_shard, st.data_sample);
    if (st.step > max_steps) { die("checkpoint step %d is past the run's last step %d", st.step, max_steps); }
    return st;
}

#endif // LLMC_TRAIN_COMMON_H
