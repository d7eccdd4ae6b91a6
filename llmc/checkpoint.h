/*
 * checkpoint.h: the model checkpoint (SPEC section 3: a 256-int32 header with
 * the config, then every parameter tensor in order, fp32 or bf16) and the
 * training state (step, data position, RNG, fp32 master weights and AdamW m, v
 * of this rank's shard). Both are written atomically: temp file, fsync, rename.
 * A run writes the state files first and the model file last, so the model file
 * of step N existing means the whole checkpoint N is complete.
 *
 * defines: checkpoint_write, checkpoint_read, checkpoint_read_config, TrainState,
 *          state_write, state_read, checkpoint_path, state_path,
 *          checkpoint_steps, latest_checkpoint_step, remove_old_checkpoints,
 *          bf16_to_f32, f32_to_bf16_rne
 */
#ifndef LLMC_CHECKPOINT_H
#define LLMC_CHECKPOINT_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "config.h"
#include "utils.h"

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// round to nearest even; NaN stays NaN
static inline uint16_t f32_to_bf16_rne(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) { return (uint16_t)((u >> 16) | 0x40); }
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

// checkpoint_write: params is the flat fp32 buffer in SPEC's order
static inline void checkpoint_write(const char* path, const GPTConfig* c, const float* params, size_t n, int dtype) {
    int32_t header[HEADER_INTS];
    config_to_header(c, dtype, header);
    AtomicFile af;
    atomic_file_open(&af, path);
    fwriteCheck(header, sizeof(int32_t), HEADER_INTS, af.fp, path);
    if (dtype == DTYPE_FP32) {
        fwriteCheck(params, sizeof(float), n, af.fp, path);
    } else {
        uint16_t buf[4096];
        for (size_t i = 0; i < n; i += 4096) {
            size_t k = n - i < 4096 ? n - i : 4096;
            for (size_t j = 0; j < k; j++) { buf[j] = f32_to_bf16_rne(params[i + j]); }
            fwriteCheck(buf, sizeof(uint16_t), k, af.fp, path);
        }
    }
    atomic_file_commit(&af);
}

// checkpoint_read_config: reads and validates the header and the file length;
// returns the open file positioned at the parameters
static inline FILE* checkpoint_read_config(const char* path, GPTConfig* c, int* dtype) {
    FILE* fp = fopenCheck(path, "rb");
    long long size = file_size(fp, path);
    if (size < HEADER_INTS * 4) {
        die("model checkpoint '%s' is truncated: %lld bytes, smaller than its header", path, size);
    }
    int32_t header[HEADER_INTS];
    freadCheck(header, sizeof(int32_t), HEADER_INTS, fp, path);
    config_from_header(c, dtype, header, path);
    ParamLayout pl;
    param_layout_init(&pl, c);
    long long expect = HEADER_INTS * 4LL + (long long)pl.num_parameters * (*dtype == DTYPE_FP32 ? 4 : 2);
    if (size != expect) {
        die("model checkpoint '%s' %s: its config needs %lld bytes, the file has %lld", path,
            size < expect ? "is truncated" : "has trailing bytes", expect, size);
    }
    return fp;
}

// checkpoint_read: reads the parameters (n = num_parameters of the config) as fp32
static inline void checkpoint_read_params(FILE* fp, const char* path, int dtype, float* params, size_t n) {
    if (dtype == DTYPE_FP32) {
        freadCheck(params, sizeof(float), n, fp, path);
    } else {
        uint16_t buf[4096];
        for (size_t i = 0; i < n; i += 4096) {
            size_t k = n - i < 4096 ? n - i : 4096;
            freadCheck(buf, sizeof(uint16_t), k, fp, path);
            for (size_t j = 0; j < k; j++) { params[i + j] = bf16_to_f32(buf[j]); }
        }
    }
}

// ----------------------------------------------------------------------------
// training state

#define STATE_MAGIC 20261123
#define STATE_VERSION 1

typedef struct {
    int step;                 // optimizer steps done
    int world_size, rank;
    uint64_t rng;             // the trainer's RNG state (sampling, stochastic rounding)
    uint64_t data_epoch, data_shard, data_sample;  // the train loader's position
    uint64_t shard_offset;    // this rank's first parameter (ZeRO-1 shard)
    uint64_t shard_size;      // parameters in this rank's shard
    uint64_t num_parameters;  // of the whole model
    uint64_t config_hash;     // of the model config
    int B, T, grad_accum;     // the batch geometry the data position refers to
    int shuffle;              // the loader's shuffling and its seed
    uint64_t data_seed;
} TrainState;

static inline void put_u64(int32_t* w, uint64_t v) { w[0] = (int32_t)(uint32_t)v; w[1] = (int32_t)(uint32_t)(v >> 32); }
static inline uint64_t get_u64(const int32_t* w) { return (uint64_t)(uint32_t)w[0] | ((uint64_t)(uint32_t)w[1] << 32); }

// header layout, words: 0 magic, 1 version, 2 step, 3 world size, 4 rank,
// 5-6 rng, 7-8 epoch, 9-10 shard, 11-12 sample, 13-14 shard offset,
// 15-16 shard size, 17-18 num parameters, 19-20 config hash, 21 B, 22 T,
// 23 grad accum, 24 shuffle, 25-26 data seed
static inline void state_write(const char* path, const TrainState* s, const float* master, const float* m,
                               const float* v) {
    int32_t h[HEADER_INTS];
    memset(h, 0, sizeof(h));
    h[0] = STATE_MAGIC; h[1] = STATE_VERSION; h[2] = s->step; h[3] = s->world_size; h[4] = s->rank;
    put_u64(h + 5, s->rng); put_u64(h + 7, s->data_epoch); put_u64(h + 9, s->data_shard);
    put_u64(h + 11, s->data_sample); put_u64(h + 13, s->shard_offset); put_u64(h + 15, s->shard_size);
    put_u64(h + 17, s->num_parameters); put_u64(h + 19, s->config_hash);
    h[21] = s->B; h[22] = s->T; h[23] = s->grad_accum; h[24] = s->shuffle; put_u64(h + 25, s->data_seed);
    AtomicFile af;
    atomic_file_open(&af, path);
    fwriteCheck(h, sizeof(int32_t), HEADER_INTS, af.fp, path);
    fwriteCheck(master, sizeof(float), s->shard_size, af.fp, path);
    fwriteCheck(m, sizeof(float), s->shard_size, af.fp, path);
    fwriteCheck(v, sizeof(float), s->shard_size, af.fp, path);
    atomic_file_commit(&af);
}

// state_read_header: validates magic, version and length; leaves fp at the body
static inline FILE* state_read_header(const char* path, TrainState* s) {
    FILE* fp = fopenCheck(path, "rb");
    long long size = file_size(fp, path);
    if (size < HEADER_INTS * 4) { die("training state '%s' is truncated: %lld bytes", path, size); }
    int32_t h[HEADER_INTS];
    freadCheck(h, sizeof(int32_t), HEADER_INTS, fp, path);
    if (h[0] != STATE_MAGIC) { die("'%s' is not a training state file (magic %d, expected %d)", path, h[0], STATE_MAGIC); }
    if (h[1] != STATE_VERSION) { die("training state '%s': unsupported version %d", path, h[1]); }
    s->step = h[2]; s->world_size = h[3]; s->rank = h[4];
    s->rng = get_u64(h + 5); s->data_epoch = get_u64(h + 7); s->data_shard = get_u64(h + 9);
    s->data_sample = get_u64(h + 11); s->shard_offset = get_u64(h + 13); s->shard_size = get_u64(h + 15);
    s->num_parameters = get_u64(h + 17); s->config_hash = get_u64(h + 19);
    s->B = h[21]; s->T = h[22]; s->grad_accum = h[23]; s->shuffle = h[24]; s->data_seed = get_u64(h + 25);
    // the shard must lie inside the model; written as two comparisons because
    // shard_offset + shard_size can wrap around 2^64 and pass a single one
    if (s->step < 0 || s->world_size < 1 || s->rank < 0 || s->rank >= s->world_size ||
        s->shard_offset > s->num_parameters || s->shard_size > s->num_parameters - s->shard_offset ||
        s->shard_size > ((uint64_t)1 << 40)) {
        die("training state '%s' has an inconsistent header", path);
    }
    long long expect = HEADER_INTS * 4LL + 3LL * 4LL * (long long)s->shard_size;
    if (size != expect) {
        die("training state '%s' %s: expected %lld bytes, the file has %lld", path,
            size < expect ? "is truncated" : "has trailing bytes", expect, size);
    }
    return fp;
}

// state_read: reads the header into s and the body into master, m, v (each
// s->shard_size floats, which the caller checked against its own expectation)
static inline void state_read_body(FILE* fp, const char* path, const TrainState* s, float* master, float* m, float* v) {
    freadCheck(master, sizeof(float), s->shard_size, fp, path);
    freadCheck(m, sizeof(float), s->shard_size, fp, path);
    freadCheck(v, sizeof(float), s->shard_size, fp, path);
}

// ----------------------------------------------------------------------------
// checkpoint naming in the output directory: model_%08d.bin, state_%08d_%05d.bin

static inline void checkpoint_path(char* out, size_t n, const char* dir, int step) {
    if ((size_t)snprintf(out, n, "%s/model_%08d.bin", dir, step) >= n) { die("output path too long: '%s'", dir); }
}

static inline void state_path(char* out, size_t n, const char* dir, int step, int rank) {
    if ((size_t)snprintf(out, n, "%s/state_%08d_%05d.bin", dir, step, rank) >= n) { die("output path too long: '%s'", dir); }
}

// checkpoint_steps: the steps with a model file in dir, ascending; returns the count (*steps malloc'd)
static inline int checkpoint_steps(const char* dir, int** steps) {
    *steps = NULL;
    DIR* d = opendir(dir);
    if (d == NULL) { return 0; }
    int n = 0, cap = 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        int step;
        char tail[8];
        if (sscanf(e->d_name, "model_%8d.bi%1s", &step, tail) == 2 && strlen(e->d_name) == 18 && tail[0] == 'n' &&
            e->d_name[6] >= '0' && e->d_name[6] <= '9') {
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                *steps = (int*)reallocCheck(*steps, (size_t)cap * sizeof(int));
            }
            int i = n++;  // insertion keeps the list sorted
            while (i > 0 && (*steps)[i - 1] > step) { (*steps)[i] = (*steps)[i - 1]; i--; }
            (*steps)[i] = step;
        }
    }
    closedir(d);
    return n;
}

// latest_checkpoint_step: the highest step with a model file in dir, or -1
static inline int latest_checkpoint_step(const char* dir) {
    int* steps;
    int n = checkpoint_steps(dir, &steps);
    int best = n > 0 ? steps[n - 1] : -1;
    free(steps);
    return best;
}

// remove_old_checkpoints: keeps the newest `keep` checkpoints of dir; for the
// older ones removes the model file first (so the pair no longer counts as
// complete), then this rank's state file
static inline void remove_old_checkpoints(const char* dir, int keep, int rank) {
    int* steps;
    int n = checkpoint_steps(dir, &steps);
    for (int i = 0; i + keep < n; i++) {
        char path[1200];
        checkpoint_path(path, sizeof(path), dir, steps[i]);
        remove(path);
        state_path(path, sizeof(path), dir, steps[i], rank);
        remove(path);
    }
    free(steps);
}

#endif // LLMC_CHECKPOINT_H
