/*
 * logger.h: one line per training step on stdout (step, loss, grad norm, lr,
 * ms, tokens/s, ETA, and MFU on the GPU), and an optional JSONL metrics file
 * with one object per event ({"step":..,"loss":..} and {"step":..,"val_loss":..}).
 *
 * defines: Logger, logger_init, logger_step, logger_val, logger_free
 */
#ifndef LLMC_LOGGER_H
#define LLMC_LOGGER_H

#include <math.h>
#include <stdio.h>
#include "utils.h"

typedef struct {
    FILE* jsonl;  // NULL when no metrics file was asked for
    int active;   // only rank 0 logs
} Logger;

static inline void logger_init(Logger* lg, const char* jsonl_path, int rank, int resuming) {
    lg->active = (rank == 0);
    lg->jsonl = NULL;
    if (lg->active && jsonl_path != NULL && jsonl_path[0] != '\0') {
        lg->jsonl = fopenCheck(jsonl_path, resuming ? "a" : "w");
    }
}

// mfu < 0: not shown (the CPU has no peak to compare with)
static inline void logger_step(Logger* lg, int step, int total_steps, float loss, float grad_norm, float lr,
                               double ms, double tokens_per_s, double mfu, int skipped) {
    if (!lg->active) { return; }
    double eta_s = (total_steps - step) * ms / 1000.0;
    printf("step %5d/%d | loss %.6f | norm %.4f | lr %.2e | %.1f ms | %.0f tok/s", step, total_steps, loss,
           grad_norm, lr, ms, tokens_per_s);
    if (mfu >= 0) { printf(" | MFU %.1f%%", 100.0 * mfu); }
    printf(" | ETA %dm%02ds%s\n", (int)(eta_s / 60), (int)fmod(eta_s, 60.0), skipped ? " | SKIPPED (non-finite)" : "");
    fflush(stdout);
    if (lg->jsonl != NULL) {
        fprintf(lg->jsonl, "{\"step\":%d,\"loss\":%.6f,\"grad_norm\":%.6f,\"lr\":%.6e,\"ms\":%.3f,\"tok_per_s\":%.1f%s}\n",
                step, loss, grad_norm, lr, ms, tokens_per_s, skipped ? ",\"skipped\":true" : "");
        fflush(lg->jsonl);
    }
}

static inline void logger_val(Logger* lg, int step, float val_loss) {
    if (!lg->active) { return; }
    printf("step %5d | val loss %.6f\n", step, val_loss);
    fflush(stdout);
    if (lg->jsonl != NULL) {
        fprintf(lg->jsonl, "{\"step\":%d,\"val_loss\":%.6f}\n", step, val_loss);
        fflush(lg->jsonl);
    }
}

static inline void logger_free(Logger* lg) {
    if (lg->jsonl != NULL) { fclose(lg->jsonl); }
}

#endif // LLMC_LOGGER_H
