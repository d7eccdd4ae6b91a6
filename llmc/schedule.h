/*
 * schedule.h: the learning rate at each step: linear warmup, then cosine,
 * linear or WSD (warmup-stable-decay) decay to a final fraction of the peak,
 * or constant. Steps count from 0; warmup reaches the peak at step warmup-1.
 *
 * defines: LRSchedule, lr_schedule_kind_from_name, lr_schedule_init, lr_at
 */
#ifndef LLMC_SCHEDULE_H
#define LLMC_SCHEDULE_H

#include <math.h>
#include <string.h>

enum { LR_COSINE = 0, LR_LINEAR = 1, LR_WSD = 2, LR_CONSTANT = 3 };
static const char* const LR_KIND_NAMES[] = {"cosine", "linear", "wsd", "constant"};

typedef struct {
    int kind;              // LR_COSINE, ...
    float max_lr;          // peak learning rate
    int warmup;            // linear warmup steps
    int total_steps;       // the run's step count: decay ends here
    float final_frac;      // the lr at the end is max_lr * final_frac
    float wsd_decay_frac;  // WSD: the last fraction of the steps decays (linearly)
} LRSchedule;

// returns -1 for an unknown name
static inline int lr_schedule_kind_from_name(const char* name) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, LR_KIND_NAMES[i]) == 0) { return i; }
    }
    return -1;
}

static inline float lr_at(const LRSchedule* s, int step) {
    float min_lr = s->max_lr * s->final_frac;
    if (step < s->warmup) { return s->max_lr * (float)(step + 1) / (float)s->warmup; }
    if (s->kind == LR_CONSTANT || step >= s->total_steps) {
        return s->kind == LR_CONSTANT ? s->max_lr : min_lr;
    }
    if (s->kind == LR_WSD) {
        int decay_steps = (int)ceilf(s->wsd_decay_frac * (float)(s->total_steps - s->warmup));
        int decay_start = s->total_steps - decay_steps;
        if (step < decay_start || decay_steps <= 0) { return s->max_lr; }
        float r = (float)(step - decay_start) / (float)decay_steps;
        return s->max_lr + r * (min_lr - s->max_lr);
    }
    float decay = s->total_steps > s->warmup ? (float)(step - s->warmup) / (float)(s->total_steps - s->warmup) : 1.0f;
    if (s->kind == LR_LINEAR) { return s->max_lr + decay * (min_lr - s->max_lr); }
    float coeff = 0.5f * (1.0f + cosf((float)M_PI * decay));  // 1 -> 0
    return min_lr + coeff * (s->max_lr - min_lr);
}

#endif // LLMC_SCHEDULE_H
