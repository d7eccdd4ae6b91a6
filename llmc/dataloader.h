/*
 * dataloader.h: reads batches of (B, T) inputs and targets from token shards
 * (SPEC section 3: uint16 shards, magic 20240520 v1, and uint32 shards, magic
 * 20240801 v7, both llm.c's). A glob pattern names the shards. A "sample" is
 * B*T+1 consecutive tokens starting at a multiple of B*T in a shard; targets are
 * the inputs shifted by one. With P processes, rank r reads sample i*P + r of
 * each step i, so the ranks read disjoint samples; the tail of a shard that does
 * not fill one sample for every rank is skipped, as in llm.c. Shuffling (seeded,
 * reseeded per epoch) permutes the shard order and the sample order within each
 * shard, the same permutation on every rank.
 *
 * The position (epoch, shard index, sample index) is what a checkpoint stores;
 * dataloader_seek restores it exactly.
 *
 * defines: DataLoader, dataloader_init, dataloader_next_batch, dataloader_reset,
 *          dataloader_seek, dataloader_free, shard_read_header
 */
#ifndef LLMC_DATALOADER_H
#define LLMC_DATALOADER_H

#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rand.h"
#include "shard.h"
#include "utils.h"

typedef struct {
    // settings
    int process_rank;
    int num_processes;
    size_t B, T;
    int vocab_size;       // every token read is checked against it
    int shuffle;          // 0: shards and samples in order
    uint64_t seed;        // shuffling seed (the same on every rank)
    // shards
    glob_t glob_result;
    size_t num_shards;
    size_t* shard_tokens;   // (num_shards,) tokens in each shard
    int* shard_tok_bytes;   // (num_shards,) 2 (uint16) or 4 (uint32)
    uint64_t* shard_order;  // (num_shards,) this epoch's shard order
    // position
    size_t epoch;
    size_t shard_index;     // index into shard_order
    size_t sample_index;    // this step's first sample in the current shard (rank 0's)
    // the current shard
    FILE* fp;
    size_t cur_shard;          // which shard fp is
    size_t num_samples;        // samples in the current shard
    uint64_t* sample_order;    // (num_samples,) permutation of the current shard's samples
    size_t sample_order_cap;
    // buffers
    unsigned char* raw;   // (B*T+1) * 4 bytes, as read
    int* inputs;          // (B, T)
    int* targets;         // (B, T)
} DataLoader;

// shard_read_header: opens a shard, checks its header against its size, returns
// the open file positioned at the tokens, the token count and bytes per token
static inline FILE* shard_read_header(const char* path, size_t* ntok, int* tok_bytes) {
    FILE* fp = fopenCheck(path, "rb");
    int32_t header[SHARD_HEADER_INTS];
    long long size = file_size(fp, path);
    if (size < (long long)sizeof(header)) {
        die("token shard '%s' is truncated: %lld bytes, smaller than its %zu-byte header", path, size, sizeof(header));
    }
    freadCheck(header, sizeof(int32_t), SHARD_HEADER_INTS, fp, path);
    if (header[0] == SHARD_MAGIC_U16 && header[1] == SHARD_VERSION_U16) {
        *tok_bytes = 2;
    } else if (header[0] == SHARD_MAGIC_U32 && header[1] == SHARD_VERSION_U32) {
        *tok_bytes = 4;
    } else if (header[0] == SHARD_MAGIC_U16 || header[0] == SHARD_MAGIC_U32) {
        die("token shard '%s': unsupported version %d for magic %d", path, header[1], header[0]);
    } else {
        die("'%s' is not a token shard (magic %d; expected %d or %d)\n---> HINT: shards are made by ./make_shards or llm.c's scripts",
            path, header[0], SHARD_MAGIC_U16, SHARD_MAGIC_U32);
    }
    if (header[2] < 0) { die("token shard '%s': negative token count %d", path, header[2]); }
    *ntok = (size_t)(uint32_t)header[2];
    long long expect = (long long)sizeof(header) + (long long)*ntok * *tok_bytes;
    if (size != expect) {
        die("token shard '%s' %s: header says %zu tokens (%lld bytes), file has %lld bytes", path,
            size < expect ? "is truncated" : "has trailing bytes", *ntok, expect, size);
    }
    return fp;
}

static inline void dataloader_load_shard(DataLoader* d) {
    size_t shard = d->shard_order[d->shard_index];
    if (d->fp != NULL && d->cur_shard == shard) { return; }
    if (d->fp != NULL) { fclose(d->fp); }
    const char* path = d->glob_result.gl_pathv[shard];
    size_t ntok;
    int tb;
    d->fp = shard_read_header(path, &ntok, &tb);
    if (ntok != d->shard_tokens[shard] || tb != d->shard_tok_bytes[shard]) {
        die("token shard '%s' changed while training", path);
    }
    d->cur_shard = shard;
    d->num_samples = (ntok - 1) / (d->B * d->T);
    if (d->num_samples > d->sample_order_cap) {
        d->sample_order = (uint64_t*)reallocCheck(d->sample_order, d->num_samples * sizeof(uint64_t));
        d->sample_order_cap = d->num_samples;
    }
    for (size_t i = 0; i < d->num_samples; i++) { d->sample_order[i] = i; }
    if (d->shuffle) {
        // seeded by (seed, epoch, shard) so a resumed run rebuilds the same order
        uint64_t s = d->seed ^ (0x9E3779B97F4A7C15ULL * (d->epoch + 1)) ^ (0xD1B54A32D192ED03ULL * (shard + 1));
        rng_shuffle_u64(d->sample_order, d->num_samples, &s);
    }
}

static inline void dataloader_order_shards(DataLoader* d) {
    for (size_t i = 0; i < d->num_shards; i++) { d->shard_order[i] = i; }
    if (d->shuffle) {
        uint64_t s = d->seed ^ (0x9E3779B97F4A7C15ULL * (d->epoch + 1));
        rng_shuffle_u64(d->shard_order, d->num_shards, &s);
    }
}

// dataloader_seek: puts the loader at (epoch, shard_index, sample_index)
static inline void dataloader_seek(DataLoader* d, size_t epoch, size_t shard_index, size_t sample_index) {
    if (shard_index >= d->num_shards) { die("data position: shard index %zu out of range (%zu shards)", shard_index, d->num_shards); }
    d->epoch = epoch;
    dataloader_order_shards(d);
    d->shard_index = shard_index;
    if (d->fp != NULL) { fclose(d->fp); d->fp = NULL; }
    dataloader_load_shard(d);
    if (sample_index + d->num_processes > d->num_samples) {
        die("data position: sample %zu is past the end of shard '%s'", sample_index,
            d->glob_result.gl_pathv[d->cur_shard]);
    }
    d->sample_index = sample_index;
}

static inline void dataloader_reset(DataLoader* d) { dataloader_seek(d, 0, 0, 0); }

// dataloader_init: pattern is a glob of shard files. Every shard is checked up
// front (header, size, at least one sample per process) so a bad file fails at
// start, not hours in.
static inline void dataloader_init(DataLoader* d, const char* pattern, size_t B, size_t T, int process_rank,
                                   int num_processes, int vocab_size, int shuffle, uint64_t seed) {
    memset(d, 0, sizeof(*d));
    if (B < 1 || T < 1) { die("data loader: B and T must be >= 1"); }
    if (num_processes < 1 || process_rank < 0 || process_rank >= num_processes) { die("data loader: bad rank"); }
    d->process_rank = process_rank;
    d->num_processes = num_processes;
    d->B = B;
    d->T = T;
    d->vocab_size = vocab_size;
    d->shuffle = shuffle;
    d->seed = seed;
    int rc = glob(pattern, 0, NULL, &d->glob_result);
    if (rc != 0 || d->glob_result.gl_pathc == 0) {
        die("no token shards match '%s'\n---> HINT: prepare data first, e.g. data/prepare.sh", pattern);
    }
    d->num_shards = d->glob_result.gl_pathc;
    d->shard_tokens = (size_t*)mallocCheck(d->num_shards * sizeof(size_t));
    d->shard_tok_bytes = (int*)mallocCheck(d->num_shards * sizeof(int));
    d->shard_order = (uint64_t*)mallocCheck(d->num_shards * sizeof(uint64_t));
    size_t need = (size_t)num_processes * B * T + 1;
    for (size_t i = 0; i < d->num_shards; i++) {
        const char* path = d->glob_result.gl_pathv[i];
        FILE* fp = shard_read_header(path, &d->shard_tokens[i], &d->shard_tok_bytes[i]);
        fclose(fp);
        if (d->shard_tokens[i] < need) {
            die("token shard '%s' has %zu tokens, fewer than one batch needs (%d process(es) x B %zu x T %zu + 1 = %zu)\n"
                "---> HINT: use a smaller -b or -t, or a larger shard",
                path, d->shard_tokens[i], num_processes, B, T, need);
        }
    }
    d->raw = (unsigned char*)mallocCheck((B * T + 1) * 4);
    d->inputs = (int*)mallocCheck(B * T * sizeof(int));
    d->targets = (int*)mallocCheck(B * T * sizeof(int));
    dataloader_reset(d);
}

// dataloader_next_batch: fills d->inputs and d->targets (B, T) with this rank's
// slice of the next step, then advances the position by one step
static inline void dataloader_next_batch(DataLoader* d) {
    size_t BT = d->B * d->T;
    size_t sample = d->sample_order[d->sample_index + d->process_rank];
    const char* path = d->glob_result.gl_pathv[d->cur_shard];
    int tb = d->shard_tok_bytes[d->cur_shard];
    long long offset = (long long)(SHARD_HEADER_INTS * sizeof(int32_t) + sample * BT * tb);
    fseekCheck(d->fp, offset, SEEK_SET, path);
    freadCheck(d->raw, tb, BT + 1, d->fp, path);
    for (size_t i = 0; i <= BT; i++) {
        uint32_t tok;
        if (tb == 2) {
            uint16_t t16;
            memcpy(&t16, d->raw + 2 * i, 2);
            tok = t16;
        } else {
            memcpy(&tok, d->raw + 4 * i, 4);
        }
        if (tok >= (uint32_t)d->vocab_size) {
            die("token shard '%s': token %u at position %zu is out of range for vocab size %d\n"
                "---> HINT: the data was tokenized with a different vocabulary than the model's",
                path, tok, sample * BT + i, d->vocab_size);
        }
        if (i < BT) { d->inputs[i] = (int)tok; }
        if (i > 0) { d->targets[i - 1] = (int)tok; }
    }
    // advance: the next step's samples, else the next shard, else the next epoch
    d->sample_index += d->num_processes;
    if (d->sample_index + d->num_processes > d->num_samples) {
        d->sample_index = 0;
        d->shard_index++;
        if (d->shard_index >= d->num_shards) {
            d->shard_index = 0;
            d->epoch++;
            dataloader_order_shards(d);
        }
        dataloader_load_shard(d);
    }
}

// steps in one epoch: the sum over shards of floor(samples / processes)
static inline size_t dataloader_steps_per_epoch(const DataLoader* d) {
    size_t n = 0;
    for (size_t i = 0; i < d->num_shards; i++) {
        n += ((d->shard_tokens[i] - 1) / (d->B * d->T)) / d->num_processes;
    }
    return n;
}

static inline void dataloader_free(DataLoader* d) {
    if (d->fp != NULL) { fclose(d->fp); }
    globfree(&d->glob_result);
    free(d->shard_tokens);
    free(d->shard_tok_bytes);
    free(d->shard_order);
    free(d->sample_order);
    free(d->raw);
    free(d->inputs);
    free(d->targets);
}

#endif // LLMC_DATALOADER_H
