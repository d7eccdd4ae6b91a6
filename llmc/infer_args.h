/*
 * infer_args.h: what the two sampling programs share so that they take the same
 * flags and treat prompts the same way: the command line (infer.c's infer_cpu
 * and infer.cu's infer), the tokenizer/model agreement check, and a prompt's
 * checks and encoding (empty, invalid UTF-8, too long for max_seq_len - g).
 *
 * defines: InferArgs, infer_usage, infer_args_parse, infer_open_tokenizer,
 *          infer_encode_prompt, infer_now_s
 */
#ifndef LLMC_INFER_ARGS_H
#define LLMC_INFER_ARGS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include "config.h"
#include "tokenizer.h"
#include "utils.h"

typedef struct {
    const char* model;       // -e checkpoint file
    const char* tokenizer;   // -tk
    const char* prompt;      // -p
    const char* prompt_file; // -pf: one prompt per line (the GPU runs them as one batch)
    int interactive;         // -it: read prompts from standard input
    int max_new;             // -g
    float temperature;       // -st (0 = greedy)
    int top_k;               // -sk
    float top_p;             // -sp
    unsigned long long seed; // -rs
    int truncate;            // -tr: cut a too-long prompt from the left instead of failing
    int quiet;               // -q: only the generated text
    int stop_eot;            // -se: stop a row at <|endoftext|> (0: always -g tokens, for benchmarks)
    int batch;               // -b: rows per prompt (GPU only; benchmarks run one prompt as B rows)
    int graph;               // -gr: replay the decode step as a CUDA graph (GPU only)
} InferArgs;

static void infer_usage(const char* prog, int gpu) {
    printf("usage: %s -e <model.bin> [-p <text> | -pf <file> | -it 1] [flags]\n", prog);
    printf("  -e <path>   model checkpoint (required; fp32 or bf16, from either trainer) or Hugging Face folder\n");
    printf("  -tk <path>  tokenizer: ours (.bin), a tokenizer.json or its folder (default: the -e folder's\n"
           "              tokenizer.json, else data/gpt2/tokenizer.bin)\n");
    printf("  -p <text>   the prompt\n");
    printf("  -pf <path>  a file of prompts, one per line%s\n", gpu ? " (run together as one batch)" : "");
    printf("  -it <0|1>   interactive: read prompts from standard input, one per line\n");
    printf("  -g <int>    most new tokens per prompt (default 128)\n");
    printf("  -st <f>     temperature, 0 = greedy (default 1.0)\n");
    printf("  -sk <int>   top-k, 0 = off (default 0)\n");
    printf("  -sp <f>     top-p in (0, 1], 1 = off (default 1.0)\n");
    printf("  -rs <int>   random seed (default 1337)\n");
    printf("  -tr <0|1>   truncate a prompt longer than max_seq_len - g from the left (default 0: error)\n");
    printf("  -se <0|1>   stop at <|endoftext|> (default 1; 0 always makes -g tokens)\n");
    printf("  -q <0|1>    print only the text (default 0)\n");
    if (gpu) {
        printf("  -b <int>    run each prompt as this many identical rows (default 1; for benchmarks)\n");
        printf("  -gr <0|1>   replay the decode step as a CUDA graph (default 1)\n");
    }
    printf("  -h, --help  this text\n");
}

// infer_args_parse: returns 1 when help was asked for; dies on a bad flag. gpu: accept -b, -gr
static int infer_args_parse(InferArgs* a, int argc, char** argv, int gpu) {
    memset(a, 0, sizeof(*a));
    a->tokenizer = "data/gpt2/tokenizer.bin";
    int tk_given = 0;
    a->max_new = 128;
    a->temperature = 1.0f;
    a->top_p = 1.0f;
    a->seed = 1337;
    a->stop_eot = 1;
    a->batch = 1;
    a->graph = 1;
    for (int i = 1; i < argc; i++) {
        const char* f = argv[i];
        if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0) { return 1; }
        if (f[0] != '-') { die("unexpected argument '%s' (see --help)", f); }
        if (i + 1 >= argc) { die("flag %s needs a value (see --help)", f); }
        const char* v = argv[++i];
        if (strcmp(f, "-e") == 0) a->model = v;
        else if (strcmp(f, "-tk") == 0) { a->tokenizer = v; tk_given = 1; }
        else if (strcmp(f, "-p") == 0) a->prompt = v;
        else if (strcmp(f, "-pf") == 0) a->prompt_file = v;
        else if (strcmp(f, "-it") == 0) a->interactive = parse_int(v, f, 0, 1);
        else if (strcmp(f, "-g") == 0) a->max_new = parse_int(v, f, 1, 1 << 20);
        else if (strcmp(f, "-st") == 0) a->temperature = parse_float(v, f, 0.0f, 100.0f);
        else if (strcmp(f, "-sk") == 0) a->top_k = parse_int(v, f, 0, 1 << 30);
        else if (strcmp(f, "-sp") == 0) a->top_p = parse_float(v, f, 1e-6f, 1.0f);
        else if (strcmp(f, "-rs") == 0) a->seed = (unsigned long long)parse_long(v, f, 0, 1LL << 62);
        else if (strcmp(f, "-tr") == 0) a->truncate = parse_int(v, f, 0, 1);
        else if (strcmp(f, "-q") == 0) a->quiet = parse_int(v, f, 0, 1);
        else if (strcmp(f, "-se") == 0) a->stop_eot = parse_int(v, f, 0, 1);
        else if (gpu && strcmp(f, "-b") == 0) a->batch = parse_int(v, f, 1, 4096);
        else if (gpu && strcmp(f, "-gr") == 0) a->graph = parse_int(v, f, 0, 1);
        else if (!gpu && (strcmp(f, "-b") == 0 || strcmp(f, "-gr") == 0)) {
            die("flag %s is for the GPU program (infer); infer_cpu runs one row at a time", f);
        }
        else { die("unknown flag %s (see --help)", f); }
    }
    if (a->model == NULL) { die("flag -e: a model checkpoint is required (see --help)"); }
    // a Hugging Face folder brings its tokenizer.json, unless -tk says otherwise
    struct stat st;
    if (!tk_given && stat(a->model, &st) == 0 && S_ISDIR(st.st_mode)) {
        char* jp = tokenizer_json_path(a->model);
        if (access(jp, R_OK) == 0) { a->tokenizer = a->model; }
        free(jp);
    }
    int sources = (a->prompt != NULL) + (a->prompt_file != NULL) + (a->interactive != 0);
    if (sources != 1) { die("give exactly one of -p, -pf, -it 1 (see --help)"); }
    return 0;
}

// infer_open_tokenizer: loads the tokenizer and checks it against the model's config and -g
static void infer_open_tokenizer(Tokenizer* tok, const InferArgs* a, const GPTConfig* c) {
    tokenizer_init(tok, a->tokenizer);
    if (!tok->can_encode) { die("tokenizer '%s' has no merges, so it cannot encode prompts (version 2)", a->tokenizer); }
    if ((int)tok->vocab_size != c->vocab_size) {
        die("tokenizer '%s' has %u tokens but model '%s' has vocab_size %d", a->tokenizer, tok->vocab_size, a->model,
            c->vocab_size);
    }
    if (a->max_new >= c->max_seq_len) {
        die("flag -g: %d new tokens leave no room for a prompt (max_seq_len %d)", a->max_new, c->max_seq_len);
    }
}

// infer_encode_prompt: text (len bytes) -> token ids, malloc'd with room for max_new more;
// *n = the prompt's length. Dies on an empty prompt, invalid UTF-8, or a prompt longer than
// max_T - max_new (unless truncate: then the prompt's end is kept).
static int* infer_encode_prompt(const Tokenizer* tok, const char* text, size_t len, int max_T, int max_new,
                                int truncate, int* n_out) {
    if (len == 0) { die("empty prompt\n---> HINT: give some text with -p, or a non-empty line"); }
    const char* bad = utf8_first_invalid(text, len);
    if (bad != NULL) { die("the prompt is not valid UTF-8 (byte offset %zu)", (size_t)(bad - text)); }
    uint32_t* ids = NULL;
    size_t cap = 0;
    size_t n = tokenizer_encode(tok, text, len, 0, &ids, &cap);
    if (n == 0) { die("the prompt encodes to no tokens"); }
    // a tokenizer with a BOS (Llama 3's <|begin_of_text|>) puts it first, as tokenizers does
    const int bos = tok->bos_token != UINT32_MAX;
    if (bos) {
        tok_push(&ids, &cap, &n, 0);
        memmove(ids + 1, ids, (n - 1) * sizeof(uint32_t));
        ids[0] = tok->bos_token;
    }
    size_t room = (size_t)(max_T - max_new);
    size_t first = 0;
    if (n > room) {
        if (!truncate) {
            die("the prompt has %zu tokens; with -g %d new tokens it needs %zu positions, the model has %d\n"
                "---> HINT: use a shorter prompt, a smaller -g, or -tr 1 to keep the prompt's end",
                n, max_new, n + max_new, max_T);
        }
        first = n - room + bos;  // the BOS stays first
        n = room;
    }
    int* tokens = (int*)mallocCheck((n + max_new) * sizeof(int));
    if (bos) { tokens[0] = (int)tok->bos_token; }
    for (size_t i = bos; i < n; i++) { tokens[i] = (int)ids[first + i - bos]; }
    free(ids);
    *n_out = (int)n;
    return tokens;
}

static double infer_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif // LLMC_INFER_ARGS_H
