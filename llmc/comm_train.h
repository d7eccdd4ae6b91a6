/*
 * comm_train.h: the multi-rank pieces of the training programs that are not
 * about any one transport: the start-up check that every rank got the same
 * flags, model and data (hashes compared with comm.h's comm_check_agree), and
 * removing old checkpoints on every rank. train_gpt.cu uses these; train_gpt.c
 * has the same functions as statics (check_flags_agree, loader_hash,
 * remove_old_checkpoints_all) and can switch to these names.
 *
 *   #include "llmc/comm_train.h"   (plain C; nvcc compiles it as C++)
 *
 * defines: hash_str, HASH_FIELD, HASH_SEED, train_check_flags_agree,
 *          dataloader_files_hash, remove_old_checkpoints_ranks
 */
#ifndef LLMC_COMM_TRAIN_H
#define LLMC_COMM_TRAIN_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "checkpoint.h"
#include "comm.h"
#include "config.h"
#include "dataloader.h"
#include "train_args.h"
#include "utils.h"

// what the ranks must agree on, hashed (FNV-1a of config.h)
static inline uint64_t hash_str(uint64_t h, const char* s) {
    return s != NULL ? hash_bytes(h, s, strlen(s) + 1) : hash_bytes(h, "\xff", 1);
}
#define HASH_FIELD(h, x) ((h) = hash_bytes((h), &(x), sizeof(x)))
#define HASH_SEED 1469598103934665603ULL

// train_check_flags_agree: the first collective of a run, so ranks started with
// different flags stop here with one clear line instead of deadlocking in
// mismatched collectives later. extra_name / extra_hash: one more group the
// program adds (the GPU trainer's -cb), or NULL.
static inline void train_check_flags_agree(const Comm* comm, const TrainArgs* a, const char* extra_name,
                                           uint64_t extra_hash) {
    uint64_t h[6] = {HASH_SEED, HASH_SEED, HASH_SEED, HASH_SEED, HASH_SEED, extra_hash};
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
    const char* names[6] = {"the batch flags (-b -t -d)",
                            "the optimization flags (-x -l -u -q -k -kw -c -gc -zl -a -nf)",
                            "the data flags (-i -j -sh -rs)",
                            "the evaluation and checkpoint flags (-v -m -s -n -nk -y -o)",
                            "the model flags (-e -vs -ms -kv -qk -te -pb -sc -rt)", extra_name};
    comm_check_agree(comm, names, h, extra_name != NULL ? 6 : 5);
}

// dataloader_files_hash: the shard files' names (not their directories, which
// may differ between nodes) and token counts
static inline uint64_t dataloader_files_hash(const DataLoader* d) {
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

// remove_old_checkpoints_ranks: keeps the newest `keep` checkpoints of dir. Rank
// 0 lists them and tells the others which to drop (they list nothing themselves,
// so they cannot see a half-removed directory); the model files go first (a
// checkpoint without one no longer counts as complete), then every rank's state.
// A collective: every rank calls it.
static inline void remove_old_checkpoints_ranks(const char* dir, int keep, const Comm* comm) {
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

#endif // LLMC_COMM_TRAIN_H
