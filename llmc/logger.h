/*
 * logger.h: one line per training step on stdout (step, loss, grad norm, lr,
 * ms, tokens/s, ETA, and MFU on the GPU), one per evaluation (cross-entropy,
 * bits per byte), a summary line at the end, and an optional JSONL metrics file
 * with one object per event ({"step":..,"loss":..,"tokens":..} and
 * {"step":..,"val_loss":..,"val_bpb":..,"tokens":..}).
 *
 * defines: Logger, logger_init, logger_step, logger_val, logger_summary, logger_free
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

// one optimizer step. with_z: the loss includes the z-loss term (shown as "loss+z").
// ms: this step; tokens_per_s, mfu (< 0: not shown) and eta_s: from the smoothed
// step time (train_loop.h); tokens: seen so far
static inline void logger_step(Logger* lg, int step, int total_steps, float loss, int with_z, float grad_norm,
                               float lr, double ms, double tokens_per_s, double mfu, double eta_s, long long tokens,
                               int skipped) {
    if (!lg->active) { return; }
    if (eta_s < 0) { eta_s = 0; }
    printf("step %5d/%d | %s %.6f | norm %.4f | lr %.2e | %.1f ms | %.0f tok/s", step, total_steps,
           with_z ? "loss+z" : "loss", loss, grad_norm, lr, ms, tokens_per_s);
    if (mfu >= 0) { printf(" | MFU %.1f%%", 100.0 * mfu); }
    printf(" | ETA %dm%02ds%s\n", (int)(eta_s / 60), (int)fmod(eta_s, 60.0), skipped ? " | SKIPPED (non-finite)" : "");
    fflush(stdout);
    if (lg->jsonl != NULL) {
        fprintf(lg->jsonl,
                "{\"step\":%d,\"loss\":%.6f,\"zloss_in_loss\":%s,\"grad_norm\":%.6f,\"lr\":%.6e,\"ms\":%.3f,"
                "\"tok_per_s\":%.1f,\"tokens\":%lld%s}\n",
                step, loss, with_z ? "true" : "false", grad_norm, lr, ms, tokens_per_s, tokens,
                skipped ? ",\"skipped\":true" : "");
        fflush(lg->jsonl);
    }
}

// an evaluation at `step`: plain cross-entropy and bits per byte (bpb < 0: unknown)
static inline void logger_val(Logger* lg, int step, float val_loss, double bpb, long long tokens) {
    if (!lg->active) { return; }
    if (bpb >= 0) {
        printf("step %5d | val loss %.6f | val bpb %.4f\n", step, val_loss, bpb);
    } else {
        printf("step %5d | val loss %.6f\n", step, val_loss);
    }
    fflush(stdout);
    if (lg->jsonl != NULL) {
        fprintf(lg->jsonl, "{\"step\":%d,\"val_loss\":%.6f", step, val_loss);
        if (bpb >= 0) { fprintf(lg->jsonl, ",\"val_bpb\":%.6f", bpb); }
        fprintf(lg->jsonl, ",\"tokens\":%lld}\n", tokens);
        fflush(lg->jsonl);
    }
}

// the run's last line: steps, wall time, tokens, the last validation (val_loss < 0: none)
static inline void logger_summary(Logger* lg, int steps, double seconds, long long tokens, float val_loss,
                                  double bpb) {
    if (!lg->active) { return; }
    printf("done: %d steps in %dm%02ds | %lld tokens", steps, (int)(seconds / 60), (int)fmod(seconds, 60.0), tokens);
    if (val_loss >= 0) { printf(" | val loss %.6f", val_loss); }
    if (bpb >= 0) { printf(" | val bpb %.4f", bpb); }
    printf("\n");
    fflush(stdout);
}

static inline void logger_free(Logger* lg) {
    if (lg->jsonl != NULL) { fclose(lg->jsonl); }
}

#endif // LLMC_LOGGER_H
