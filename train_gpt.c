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
 * checkpoints and resume.
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

// evaluate: mean loss over n batches of the loader from its start (n < 0: all),
// averaged over the ranks (each read its own slice of every batch)
static float evaluate(GPT* model, DataLoader* loader, int n, float zloss, const Comm* comm) {
    dataloader_reset(loader);
    size_t steps = dataloader_steps_per_epoch(loader);
    if (n < 0 || (size_t)n > steps) { n = (int)steps; }
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        dataloader_next_batch(loader);
        gpt_forward(model, loader->inputs, loader->targets, (int)loader->B, (int)loader->T, zloss);
        sum += model->mean_loss;
    }
    double mean = sum / n;
    comm_allreduce_f64(comm, &mean, 1, COMM_SUM);
    return (float)(mean / comm->world);
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

// remove_old_checkpoints_all: keeps the newest `keep` checkpoints of dir. Rank 0
// lists them and tells the others which to drop (they list nothing themselves, so
// they cannot see a half-removed directory); the model files go first (a
// checkpoint without one no longer counts as complete), then every rank's state
static void remove_old_checkpoints_all(const char* dir, int keep, const Comm* comm) {
    if (comm->world == 1) {
        remove_old_checkpoints(dir, keep, 0);
        return;
    }
    int* steps = NULL;
    int n = comm->rank == 0 ? checkpoint_steps(dir, &steps) : 0;
    comm_broadcast(comm, &n, sizeof(n), 0);
    int drop = n > keep ? n - keep : 0;
    if (comm->rank != 0) { steps = (int*)mallocCheck((size_t)(drop > 0 ? drop : 1) * sizeof(int)); }
    comm_broadcast(comm, steps, (size_t)drop * sizeof(int), 0);
    char path[1200];
    for (int i = 0; i < drop && comm->rank == 0; i++) {
        checkpoint_path(path, sizeof(path), dir, steps[i]);
        remove(path);
    }
    comm_barrier(comm);
    for (int i = 0; i < drop; i++) {
        state_path(path, sizeof(path), dir, steps[i], comm->rank);
        remove(path);
    }
    free(steps);
}

// save_checkpoint: every rank writes its state file (its ZeRO-1 shard of the
// master weights, m, v); after a barrier rank 0 writes the model file last (its
// presence marks a complete checkpoint); then old checkpoints beyond the keep
// count are removed
static void save_checkpoint(const GPT* model, const char* dir, int step, const TrainState* st, int keep,
                            const Comm* comm) {
    char path[1024];  // AtomicFile's limit; 1024 also keeps gcc's -Wformat-truncation quiet
    state_path(path, sizeof(path), dir, step, st->rank);
    state_write(path, st, model->params_memory + st->shard_offset, model->m_memory, model->v_memory);
    comm_barrier(comm);
    if (comm->rank == 0) {
        checkpoint_path(path, sizeof(path), dir, step);
        checkpoint_write(path, &model->config, model->params_memory, model->layout.num_parameters, DTYPE_FP32);
        printf("wrote checkpoint %s\n", path);
    }
    if (keep > 0) { remove_old_checkpoints_all(dir, keep, comm); }
}

// what the ranks must agree on, hashed (comm_check_agree compares the hashes)
static uint64_t hash_str(uint64_t h, const char* s) {
    return s != NULL ? hash_bytes(h, s, strlen(s) + 1) : hash_bytes(h, "\xff", 1);
}
#define HASH_FIELD(h, x) ((h) = hash_bytes((h), &(x), sizeof(x)))
#define HASH_SEED 1469598103934665603ULL

// check_flags_agree: the first collective of a run, before any other, so ranks
// started with different flags stop here with one clear line instead of
// deadlocking in mismatched collectives later
static void check_flags_agree(const Comm* comm, const TrainArgs* a) {
    uint64_t h[5] = {HASH_SEED, HASH_SEED, HASH_SEED, HASH_SEED, HASH_SEED};
    HASH_FIELD(h[0], a->B); HASH_FIELD(h[0], a->T); HASH_FIELD(h[0], a->total_batch);
    HASH_FIELD(h[1], a->max_steps); HASH_FIELD(h[1], a->lr); HASH_FIELD(h[1], a->warmup);
    HASH_FIELD(h[1], a->final_frac); HASH_FIELD(h[1], a->lr_kind); HASH_FIELD(h[1], a->wsd_frac);
    HASH_FIELD(h[1], a->weight_decay); HASH_FIELD(h[1], a->grad_clip); HASH_FIELD(h[1], a->zloss);
    HASH_FIELD(h[1], a->overfit); HASH_FIELD(h[1], a->nonfinite_fatal);
    h[2] = hash_str(h[2], a->train_pattern); h[2] = hash_str(h[2], a->val_pattern);
    HASH_FIELD(h[2], a->shuffle); HASH_FIELD(h[2], a->seed);
    HASH_FIELD(h[3], a->val_every); HASH_FIELD(h[3], a->val_batches); HASH_FIELD(h[3], a->sample_every);
    HASH_FIELD(h[3], a->ckpt_every); HASH_FIELD(h[3], a->ckpt_keep); HASH_FIELD(h[3], a->resume);
    h[3] = hash_str(h[3], a->output_dir);
    h[4] = hash_str(h[4], a->model);
    HASH_FIELD(h[4], a->vocab_size); HASH_FIELD(h[4], a->max_seq_len); HASH_FIELD(h[4], a->n_kv_head);
    HASH_FIELD(h[4], a->qk_norm); HASH_FIELD(h[4], a->tied); HASH_FIELD(h[4], a->parallel_block);
    HASH_FIELD(h[4], a->softcap); HASH_FIELD(h[4], a->rope_theta);
    const char* names[5] = {"the batch flags (-b -t -d)", "the optimization flags (-x -l -u -q -k -kw -c -gc -zl -a -nf)",
                            "the data flags (-i -j -sh -rs)", "the evaluation and checkpoint flags (-v -m -s -n -nk -y -o)",
                            "the model flags (-e -vs -ms -kv -qk -te -pb -sc -rt)"};
    comm_check_agree(comm, names, h, 5);
}

// loader_hash: the shard files' names (not their directories, which may differ
// between nodes) and token counts
static uint64_t loader_hash(const DataLoader* d) {
    uint64_t h = HASH_SEED;
    HASH_FIELD(h, d->num_shards);
    for (size_t i = 0; i < d->num_shards; i++) {
        const char* path = d->glob_result.gl_pathv[i];
        const char* base = strrchr(path, '/');
        h = hash_str(h, base != NULL ? base + 1 : path);
        HASH_FIELD(h, d->shard_tokens[i]);
    }
    return h;
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
    check_flags_agree(&comm, &args);

    if (!is_preset_name(args.model) && access(args.model, F_OK) != 0) {
        die("flag -e: '%s' is neither a preset (d2, d6, d12, d24, d36, 1b) nor an existing checkpoint file", args.model);
    }
    if (args.output_dir != NULL) { make_dir(args.output_dir); }

    // the model: from a preset, a checkpoint file, or the newest checkpoint of -o
    // when resuming (rank 0 picks it, so every rank resumes the same step)
    GPT model;
    int resume_step = -1;
    if (args.resume) {
        if (rank == 0) { resume_step = latest_checkpoint_step(args.output_dir); }
        comm_broadcast(&comm, &resume_step, sizeof(resume_step), 0);
    }
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
        if (rank == 0) { printf("resuming from %s\n", path); }
    } else if (is_preset_name(args.model)) {
        GPTConfig cfg;
        train_args_model_config(&args, &cfg);
        gpt_init_random(&model, &cfg, args.seed);
    } else {
        gpt_init_from_checkpoint(&model, args.model);
    }
    const GPTConfig* c = &model.config;
    const size_t num_params = model.layout.num_parameters;
    if (args.T > c->max_seq_len) {
        die("flag -t: T = %d is larger than the model's max_seq_len %d", args.T, c->max_seq_len);
    }
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
    int have_val = 0;
    uint64_t data_hash[2] = {0, 0};
    if (args.val_every > 0 || args.max_steps == 0) {
        dataloader_init(&val_loader, args.val_pattern, args.B, args.T, rank, world, c->vocab_size, 0, 0);
        data_hash[1] = loader_hash(&val_loader);
        have_val = 1;
    }
    if (args.max_steps == 0) {  // evaluation only
        const char* names[2] = {"the model config", "the validation shards (names and sizes)"};
        uint64_t h[2] = {config_hash(c), data_hash[1]};
        comm_check_agree(&comm, names, h, 2);
        float vl = evaluate(&model, &val_loader, args.val_batches, args.zloss, &comm);
        if (rank == 0) { printf("val loss %.6f\n", vl); }
        dataloader_free(&val_loader);
        gpt_free(&model);
        comm_free(&comm);
        return 0;
    }
    DataLoader loader;
    dataloader_init(&loader, args.train_pattern, args.B, args.T, rank, world, c->vocab_size, args.shuffle, args.seed);
    data_hash[0] = loader_hash(&loader);
    {
        const char* names[3] = {"the model config", "the training shards (names and sizes)",
                                "the validation shards (names and sizes)"};
        uint64_t h[3] = {config_hash(c), data_hash[0], data_hash[1]};
        comm_check_agree(&comm, names, h, 3);
    }
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
    if (rank == 0) {
        printf("batch: B %d | T %d | processes %d | grad accum %d | tokens per step %lld | steps %d\n", args.B, args.T,
               world, grad_accum, total_batch, max_steps);
    }
    LRSchedule sched = {args.lr_kind, args.lr, args.warmup, max_steps, args.final_frac, args.wsd_frac};

    Tokenizer tokenizer;
    int have_tok = 0;
    if (args.sample_every > 0 && rank == 0) {
        if (access(args.tokenizer, F_OK) == 0) {
            tokenizer_init(&tokenizer, args.tokenizer);
            have_tok = 1;
        } else {
            printf("note: tokenizer '%s' not found, samples print token ids\n", args.tokenizer);
        }
    }
    Sampler sampler;
    sampler_init(&sampler, c->vocab_size, args.temperature, args.top_k, args.top_p, args.seed ^ 0x5A5A5A5AULL);
    uint64_t rng = args.seed;  // the trainer's own RNG: checkpointed, the same on every rank

    int start_step = 0;
    if (resume_step >= 0) {
        char path[1200];
        // rank 0's state exists whatever the process count was and says what it was
        state_path(path, sizeof(path), args.output_dir, resume_step, 0);
        TrainState st;
        FILE* fp = state_read_header(path, &st);
        fclose(fp);
        if (st.world_size != world) {
            die("checkpoint %d in '%s' was written by %d process(es); this run has %d\n"
                "---> HINT: resume with the same number of processes (mpirun -np %d); changing it on resume is "
                "not supported", resume_step, args.output_dir, st.world_size, world, st.world_size);
        }
        state_path(path, sizeof(path), args.output_dir, resume_step, rank);
        fp = state_read_header(path, &st);
        if (st.num_parameters != num_params || st.config_hash != config_hash(c) || st.rank != rank ||
            st.shard_offset != zs.start || st.shard_size != shard_len) {
            die("training state '%s' does not belong to the model checkpoint beside it", path);
        }
        if (st.world_size != world || st.B != args.B || st.T != args.T || st.grad_accum != grad_accum ||
            st.shuffle != args.shuffle || st.data_seed != args.seed) {
            die("training state '%s' was written with world %d, B %d, T %d, grad accum %d, shuffle %d, seed %llu; "
                "this run has %d, %d, %d, %d, %d, %llu\n---> HINT: resume with the same -b -t -d -sh -rs",
                path, st.world_size, st.B, st.T, st.grad_accum, st.shuffle, (unsigned long long)st.data_seed, world,
                args.B, args.T, grad_accum, args.shuffle, (unsigned long long)args.seed);
        }
        model.m_memory = (float*)mallocCheck((shard_len > 0 ? shard_len : 1) * sizeof(float));
        model.v_memory = (float*)mallocCheck((shard_len > 0 ? shard_len : 1) * sizeof(float));
        state_read_body(fp, path, &st, model.params_memory + zs.start, model.m_memory, model.v_memory);
        fclose(fp);
        // the model file holds the same fp32 weights, but the state's shards are the master copy
        comm_allgather_f32(&comm, model.params_memory, num_params);
        rng = st.rng;
        dataloader_seek(&loader, st.data_epoch, st.data_shard, st.data_sample);
        start_step = st.step;
        if (start_step > max_steps) { die("checkpoint step %d is past the run's last step %d", start_step, max_steps); }
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
        if (have_val && (last || (args.val_every > 0 && step % args.val_every == 0))) {
            float vl = evaluate(&model, &val_loader, args.val_batches, args.zloss, &comm);
            logger_val(&logger, step, vl);
        }
        if (args.sample_every > 0 && (last || step % args.sample_every == 0) && step > 0) {
            sampler.rng = rng_next_u64(&rng);  // on every rank, so the checkpointed RNG agrees
            if (rank == 0) {
                sample_and_print(&model, &sampler, have_tok ? &tokenizer : NULL, args.gen_tokens, c->max_seq_len);
            }
        }
        if (args.output_dir != NULL && step > start_step &&
            (last || (args.ckpt_every > 0 && step % args.ckpt_every == 0))) {
            TrainState st = {step, world, rank, rng, loader.epoch, loader.shard_index, loader.sample_index, zs.start,
                             shard_len, num_params, config_hash(c), args.B, args.T, grad_accum, args.shuffle,
                             args.seed};
            save_checkpoint(&model, args.output_dir, step, &st, args.ckpt_keep, &comm);
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
