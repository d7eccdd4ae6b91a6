/*
 * train_args.h: the trainers' command line, shared by train_gpt.c and
 * train_gpt.cu so the two read the same flags the same way. llm.c's letters
 * keep llm.c's meaning; the new ones are two letters. Every value is parsed
 * strictly: an unknown flag, a missing value or an impossible number is a
 * one-line error and a non-zero exit, never a silent clamp.
 *
 * defines: TrainArgs, train_args_defaults, train_args_parse, train_args_usage
 */
#ifndef LLMC_TRAIN_ARGS_H
#define LLMC_TRAIN_ARGS_H

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config.h"
#include "sampler.h"
#include "schedule.h"
#include "utils.h"

typedef struct {
    const char* train_pattern;  // -i
    const char* val_pattern;    // -j
    const char* model;          // -e: preset name (d2, d6, ...) or checkpoint path
    const char* output_dir;     // -o: checkpoints go here (NULL: none)
    const char* tokenizer;      // -tk
    const char* metrics;        // -ml: JSONL metrics file
    int B, T;                   // -b, -t
    long long total_batch;      // -d: tokens per optimizer step (-1: B*T*processes)
    int max_steps;              // -x: -1 one epoch, 0 evaluate only
    float lr;                   // -l
    int warmup;                 // -u
    float final_frac;           // -q
    int lr_kind;                // -k
    float wsd_frac;             // -kw
    float weight_decay;         // -c
    float grad_clip;            // -gc (0 disables)
    float zloss;                // -zl
    int val_every, val_batches; // -v, -m (-1: the whole validation set)
    int sample_every, gen_tokens; // -s, -g
    float temperature; int top_k; float top_p; // -st, -sk, -sp for those samples
    int ckpt_every, ckpt_keep;  // -n, -nk
    int resume;                 // -y
    unsigned long long seed;    // -rs
    int shuffle;                // -sh
    int overfit;                // -a: train on the first batch only
    int recompute;              // -r (GPU): recompute activations in the backward
    int nonfinite_fatal;        // -nf: a non-finite loss or norm stops the run
    // model settings for a run from a preset (ignored with a checkpoint)
    int vocab_size, max_seq_len, n_kv_head, qk_norm, tied, parallel_block; // -vs -ms -kv -qk -te -pb (-1: preset's)
    float softcap, rope_theta;  // -sc, -rt (<0: preset's)
} TrainArgs;

static inline void train_args_defaults(TrainArgs* a) {
    memset(a, 0, sizeof(*a));
    a->train_pattern = "data/nlp/nlp_train_*.bin";
    a->val_pattern = "data/nlp/nlp_val_*.bin";
    a->model = "d6";
    a->output_dir = NULL;
    a->tokenizer = "data/gpt2/tokenizer.bin";
    a->metrics = NULL;
    a->B = 4;
    a->T = 256;
    a->total_batch = -1;
    a->max_steps = -1;
    a->lr = 3e-4f;
    a->warmup = 0;
    a->final_frac = 0.1f;
    a->lr_kind = LR_COSINE;
    a->wsd_frac = 0.2f;
    a->weight_decay = 0.1f;
    a->grad_clip = 1.0f;
    a->zloss = 1e-4f;
    a->val_every = 20;
    a->val_batches = 20;
    a->sample_every = 0;
    a->gen_tokens = 64;
    a->temperature = 1.0f;
    a->top_k = 0;
    a->top_p = 1.0f;
    a->ckpt_every = 0;
    a->ckpt_keep = 0;
    a->resume = 0;
    a->seed = 1337;
    a->shuffle = 1;
    a->overfit = 0;
    a->recompute = 0;
    a->nonfinite_fatal = 0;
    a->vocab_size = -1; a->max_seq_len = -1; a->n_kv_head = -1; a->qk_norm = -1; a->tied = -1; a->parallel_block = -1;
    a->softcap = -1.0f; a->rope_theta = -1.0f;
}

static inline void train_args_usage(const char* prog) {
    printf("usage: %s [flags]\n", prog);
    printf("data\n");
    printf("  -i <glob>   train token shards (default data/nlp/nlp_train_*.bin)\n");
    printf("  -j <glob>   validation token shards (default data/nlp/nlp_val_*.bin)\n");
    printf("  -sh <0|1>   shuffle the training shards and samples (default 1)\n");
    printf("model\n");
    printf("  -e <str>    preset d2|d6|d12|d24|d36|1b, a model checkpoint file, or a Hugging Face folder (default d6)\n");
    printf("  -vs <int>   vocab size for a preset (default 50257, GPT-2)\n");
    printf("  -ms <int>   max_seq_len for a preset (default 1024)\n");
    printf("  -kv <int>   n_kv_head override for a preset\n");
    printf("  -qk <0|1>   qk_norm (preset default 1)    -te <0|1> tied embeddings (default 1)\n");
    printf("  -pb <0|1>   parallel block (default 0)    -sc <f>  logit soft-cap, 0 disables (default 30)\n");
    printf("  -rt <f>     RoPE theta (default 10000)\n");
    printf("optimization\n");
    printf("  -b <int>    micro-batch size B per process (default 4)\n");
    printf("  -t <int>    sequence length T (default 256)\n");
    printf("  -d <int>    total batch size in tokens; a multiple of B*T*processes (default B*T*processes)\n");
    printf("  -x <int>    optimizer steps; -1 = one epoch, 0 = evaluate the model and exit (default -1)\n");
    printf("  -l <f>      peak learning rate (default 3e-4)\n");
    printf("  -u <int>    warmup steps (default 0)\n");
    printf("  -q <f>      final learning rate as a fraction of the peak (default 0.1)\n");
    printf("  -k <str>    decay: cosine|linear|wsd|constant (default cosine)\n");
    printf("  -kw <f>     wsd: fraction of the steps spent decaying (default 0.2)\n");
    printf("  -c <f>      weight decay on matrices (default 0.1)\n");
    printf("  -gc <f>     clip the global gradient norm at this value, 0 disables (default 1.0)\n");
    printf("  -zl <f>     z-loss coefficient (default 1e-4)\n");
    printf("  -a <0|1>    overfit a single batch, for debugging (default 0)\n");
    printf("  -r <0|1>    recompute activations in the backward, GPU only (default 0)\n");
    printf("  -nf <0|1>   a non-finite loss or gradient norm stops the run instead of skipping the step (default 0)\n");
    printf("  -rs <int>   random seed: init, shuffling, sampling (default 1337)\n");
    printf("evaluation, sampling, checkpoints, logs\n");
    printf("  -v <int>    validation loss every N steps, 0 = never (default 20)\n");
    printf("  -m <int>    validation batches, -1 = the whole validation set (default 20)\n");
    printf("  -s <int>    sample from the model every N steps, 0 = never (default 0)\n");
    printf("  -g <int>    tokens to generate per sample (default 64)\n");
    printf("  -st <f> -sk <int> -sp <f>  sampling temperature, top-k, top-p (default 1, 0, 1)\n");
    printf("  -tk <path>  tokenizer for samples and bits per byte: ours (.bin), a tokenizer.json or its folder\n"
           "              (default: the -e folder's tokenizer.json, else data/gpt2/tokenizer.bin)\n");
    printf("  -o <dir>    output directory for checkpoints (default: none)\n");
    printf("  -n <int>    checkpoint every N steps, 0 = only at the end (default 0)\n");
    printf("  -nk <int>   keep only the newest N checkpoints, 0 = keep all (default 0)\n");
    printf("  -y <0|1>    resume from the newest checkpoint in -o (default 0)\n");
    printf("  -ml <path>  JSONL metrics file (default: none)\n");
    printf("  -h, --help  this text\n");
}

// train_args_parse: argv pairs "-flag value"; returns 0, or 1 when help was asked
static inline int train_args_parse(TrainArgs* a, int argc, char** argv) {
    int tk_given = 0;
    for (int i = 1; i < argc; i++) {
        const char* f = argv[i];
        if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0) { return 1; }
        if (f[0] != '-' || strlen(f) < 2) { die("unexpected argument '%s' (see --help)", f); }
        if (i + 1 >= argc) { die("flag %s needs a value (see --help)", f); }
        const char* v = argv[++i];
        const int IMAX = 2147483647;
        if (strcmp(f, "-i") == 0) a->train_pattern = v;
        else if (strcmp(f, "-j") == 0) a->val_pattern = v;
        else if (strcmp(f, "-e") == 0) a->model = v;
        else if (strcmp(f, "-o") == 0) a->output_dir = v;
        else if (strcmp(f, "-tk") == 0) { a->tokenizer = v; tk_given = 1; }
        else if (strcmp(f, "-ml") == 0) a->metrics = v;
        else if (strcmp(f, "-b") == 0) a->B = parse_int(v, f, 1, 1 << 20);
        else if (strcmp(f, "-t") == 0) a->T = parse_int(v, f, 1, 1 << 20);
        else if (strcmp(f, "-d") == 0) a->total_batch = parse_long(v, f, -1, 1LL << 40);
        else if (strcmp(f, "-x") == 0) a->max_steps = parse_int(v, f, -1, IMAX);
        else if (strcmp(f, "-l") == 0) a->lr = parse_float(v, f, 0.0f, 10.0f);
        else if (strcmp(f, "-u") == 0) a->warmup = parse_int(v, f, 0, IMAX);
        else if (strcmp(f, "-q") == 0) a->final_frac = parse_float(v, f, 0.0f, 1.0f);
        else if (strcmp(f, "-k") == 0) {
            a->lr_kind = lr_schedule_kind_from_name(v);
            if (a->lr_kind < 0) { die("flag -k: unknown schedule '%s' (cosine, linear, wsd, constant)", v); }
        }
        else if (strcmp(f, "-kw") == 0) a->wsd_frac = parse_float(v, f, 0.0f, 1.0f);
        else if (strcmp(f, "-c") == 0) a->weight_decay = parse_float(v, f, 0.0f, 10.0f);
        else if (strcmp(f, "-gc") == 0) a->grad_clip = parse_float(v, f, 0.0f, 1e30f);
        else if (strcmp(f, "-zl") == 0) a->zloss = parse_float(v, f, 0.0f, 1.0f);
        else if (strcmp(f, "-v") == 0) a->val_every = parse_int(v, f, 0, IMAX);
        else if (strcmp(f, "-m") == 0) a->val_batches = parse_int(v, f, -1, IMAX);
        else if (strcmp(f, "-s") == 0) a->sample_every = parse_int(v, f, 0, IMAX);
        else if (strcmp(f, "-g") == 0) a->gen_tokens = parse_int(v, f, 1, 1 << 20);
        else if (strcmp(f, "-st") == 0) a->temperature = parse_float(v, f, 0.0f, 100.0f);
        else if (strcmp(f, "-sk") == 0) a->top_k = parse_int(v, f, 0, IMAX);
        else if (strcmp(f, "-sp") == 0) a->top_p = parse_float(v, f, 1e-6f, 1.0f);
        else if (strcmp(f, "-n") == 0) a->ckpt_every = parse_int(v, f, 0, IMAX);
        else if (strcmp(f, "-nk") == 0) a->ckpt_keep = parse_int(v, f, 0, IMAX);
        else if (strcmp(f, "-y") == 0) a->resume = parse_int(v, f, 0, 1);
        else if (strcmp(f, "-rs") == 0) a->seed = (unsigned long long)parse_long(v, f, 0, (1LL << 62));
        else if (strcmp(f, "-sh") == 0) a->shuffle = parse_int(v, f, 0, 1);
        else if (strcmp(f, "-a") == 0) a->overfit = parse_int(v, f, 0, 1);
        else if (strcmp(f, "-r") == 0) a->recompute = parse_int(v, f, 0, 1);
        else if (strcmp(f, "-nf") == 0) a->nonfinite_fatal = parse_int(v, f, 0, 1);
        else if (strcmp(f, "-vs") == 0) a->vocab_size = parse_int(v, f, 1, 1 << 30);
        else if (strcmp(f, "-ms") == 0) a->max_seq_len = parse_int(v, f, 1, 1 << 20);
        else if (strcmp(f, "-kv") == 0) a->n_kv_head = parse_int(v, f, 1, 1 << 16);
        else if (strcmp(f, "-qk") == 0) a->qk_norm = parse_int(v, f, 0, 1);
        else if (strcmp(f, "-te") == 0) a->tied = parse_int(v, f, 0, 1);
        else if (strcmp(f, "-pb") == 0) a->parallel_block = parse_int(v, f, 0, 1);
        else if (strcmp(f, "-sc") == 0) a->softcap = parse_float(v, f, 0.0f, 1e6f);
        else if (strcmp(f, "-rt") == 0) a->rope_theta = parse_float(v, f, 1e-3f, 1e12f);
        else { die("unknown flag %s (see --help)", f); }
    }
    const char* bad = sampler_validate(a->temperature, a->top_k, a->top_p);
    if (bad != NULL) { die("sampling flags: %s", bad); }
    if (a->resume && a->output_dir == NULL) { die("flag -y 1 needs -o <dir> to resume from"); }
    // a Hugging Face folder as -e brings its tokenizer.json, unless -tk says otherwise
    struct stat st;
    char tj[1100];
    if (!tk_given && stat(a->model, &st) == 0 && S_ISDIR(st.st_mode) &&
        snprintf(tj, sizeof(tj), "%s/tokenizer.json", a->model) < (int)sizeof(tj) && access(tj, R_OK) == 0) {
        a->tokenizer = a->model;
    }
    if (a->warmup > 0 && a->max_steps > 0 && a->warmup > a->max_steps) {
        die("flag -u: warmup %d is longer than the run (-x %d)", a->warmup, a->max_steps);
    }
    return 0;
}

// train_args_model_config: the config of a run from a preset, with the overrides
static inline void train_args_model_config(const TrainArgs* a, GPTConfig* c) {
    config_from_preset(c, a->model, a->vocab_size, a->max_seq_len);
    if (a->n_kv_head > 0) c->n_kv_head = a->n_kv_head;
    if (a->qk_norm >= 0) c->qk_norm = a->qk_norm;
    if (a->tied >= 0) c->tied_embeddings = a->tied;
    if (a->parallel_block >= 0) c->parallel_block = a->parallel_block;
    if (a->softcap >= 0) c->logit_softcap = a->softcap;
    if (a->rope_theta > 0) c->rope_theta = a->rope_theta;
    const char* bad = config_validate(c);
    if (bad != NULL) { die("model flags: %s", bad); }
}

#endif // LLMC_TRAIN_ARGS_H
