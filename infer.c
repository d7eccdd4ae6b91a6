/*
 * infer.c: text in, text out on the CPU, with a KV cache: loads a model
 * checkpoint (fp32 or bf16, from either trainer), encodes the prompt with the
 * GPT-2 tokenizer, runs the prompt in one pass (prefill), then samples one token
 * at a time from the cache, streaming text as it comes. The model math is the
 * reference's (llmc/gpt_cpu.h), so this is also how the project samples on
 * machines without a GPU.
 *
 *   make infer_cpu
 *   ./infer_cpu -e out/model_00000200.bin -p "The meaning of life is" -g 64
 *   ./infer_cpu -e model.bin -pf prompts.txt          (one prompt per line)
 *   ./infer_cpu -e model.bin -it 1                    (prompts from standard input)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "llmc/checkpoint.h"
#include "llmc/config.h"
#include "llmc/gpt_cpu.h"
#include "llmc/sampler.h"
#include "llmc/tokenizer.h"
#include "llmc/utils.h"

typedef struct {
    const char* model;       // -e checkpoint file
    const char* tokenizer;   // -tk
    const char* prompt;      // -p
    const char* prompt_file; // -pf: one prompt per line
    int interactive;         // -it: read prompts from standard input
    int max_new;             // -g
    float temperature;       // -st (0 = greedy)
    int top_k;               // -sk
    float top_p;             // -sp
    unsigned long long seed; // -rs
    int truncate;            // -tr: cut a too-long prompt from the left instead of failing
    int quiet;               // -q: only the generated text
} InferArgs;

static void infer_usage(const char* prog) {
    printf("usage: %s -e <model.bin> [-p <text> | -pf <file> | -it 1] [flags]\n", prog);
    printf("  -e <path>   model checkpoint (required)\n");
    printf("  -tk <path>  tokenizer file (default data/gpt2/tokenizer.bin)\n");
    printf("  -p <text>   the prompt\n");
    printf("  -pf <path>  a file of prompts, one per line\n");
    printf("  -it <0|1>   interactive: read prompts from standard input, one per line\n");
    printf("  -g <int>    most new tokens per prompt (default 128); generation stops at <|endoftext|>\n");
    printf("  -st <f>     temperature, 0 = greedy (default 1.0)\n");
    printf("  -sk <int>   top-k, 0 = off (default 0)\n");
    printf("  -sp <f>     top-p in (0, 1], 1 = off (default 1.0)\n");
    printf("  -rs <int>   random seed (default 1337)\n");
    printf("  -tr <0|1>   truncate a prompt longer than max_seq_len - g from the left (default 0: error)\n");
    printf("  -q <0|1>    print only the text (default 0)\n");
    printf("  -h, --help  this text\n");
}

static int infer_args_parse(InferArgs* a, int argc, char** argv) {
    memset(a, 0, sizeof(*a));
    a->tokenizer = "data/gpt2/tokenizer.bin";
    a->max_new = 128;
    a->temperature = 1.0f;
    a->top_p = 1.0f;
    a->seed = 1337;
    for (int i = 1; i < argc; i++) {
        const char* f = argv[i];
        if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0) { return 1; }
        if (f[0] != '-') { die("unexpected argument '%s' (see --help)", f); }
        if (i + 1 >= argc) { die("flag %s needs a value (see --help)", f); }
        const char* v = argv[++i];
        if (strcmp(f, "-e") == 0) a->model = v;
        else if (strcmp(f, "-tk") == 0) a->tokenizer = v;
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
        else { die("unknown flag %s (see --help)", f); }
    }
    if (a->model == NULL) { die("flag -e: a model checkpoint is required (see --help)"); }
    int sources = (a->prompt != NULL) + (a->prompt_file != NULL) + (a->interactive != 0);
    if (sources != 1) { die("give exactly one of -p, -pf, -it 1 (see --help)"); }
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    long long prompt_tokens, new_tokens;
    double prefill_s, decode_s;
} InferStats;

// generate: one prompt (text of len bytes) from an empty cache
static void generate(GPT* model, KVCache* kv, const Tokenizer* tok, Sampler* sampler, const InferArgs* a,
                     const char* text, size_t len, float* logits, InferStats* st) {
    const GPTConfig* c = &model->config;
    if (len == 0) { die("empty prompt\n---> HINT: give some text with -p, or a non-empty line"); }
    const char* bad = utf8_first_invalid(text, len);
    if (bad != NULL) { die("the prompt is not valid UTF-8 (byte offset %zu)", (size_t)(bad - text)); }
    uint32_t* ids = NULL;
    size_t cap = 0;
    size_t n = tokenizer_encode(tok, text, len, 0, &ids, &cap);
    if (n == 0) { die("the prompt encodes to no tokens"); }
    int room = kv->max_T - a->max_new;
    if ((long long)n > room) {
        if (!a->truncate) {
            die("the prompt has %zu tokens; with -g %d new tokens it needs %zu positions, the model has %d\n"
                "---> HINT: use a shorter prompt, a smaller -g, or -tr 1 to keep the prompt's end",
                n, a->max_new, n + a->max_new, kv->max_T);
        }
        memmove(ids, ids + (n - room), room * sizeof(uint32_t));
        n = room;
    }
    int* tokens = (int*)mallocCheck((n + a->max_new) * sizeof(int));
    for (size_t i = 0; i < n; i++) { tokens[i] = (int)ids[i]; }
    free(ids);
    double t0 = now_s();
    gpt_forward_cached(model, kv, tokens, 1, (int)n, 0, logits, 0);
    double t1 = now_s();
    st->prefill_s += t1 - t0;
    st->prompt_tokens += n;
    int pos = (int)n;
    Utf8Stream out;
    utf8_stream_init(&out);
    for (int i = 0; i < a->max_new; i++) {
        int next = sampler_sample(sampler, logits);
        st->new_tokens++;
        if ((uint32_t)next == tok->eot_token) { break; }
        size_t blen;
        const unsigned char* bytes = tokenizer_decode(tok, (uint32_t)next, &blen);
        utf8_stream_write(&out, bytes, blen, stdout);
        fflush(stdout);
        tokens[pos] = next;
        if (i + 1 < a->max_new) { gpt_forward_cached(model, kv, tokens + pos, 1, 1, pos, logits, 0); }
        pos++;
    }
    utf8_stream_flush(&out, stdout);
    printf("\n");
    st->decode_s += now_s() - t1;
    free(tokens);
    (void)c;
}

#ifndef TESTING
int main(int argc, char** argv) {
    InferArgs a;
    if (infer_args_parse(&a, argc, argv)) {
        infer_usage(argv[0]);
        return 0;
    }
    GPT model;
    gpt_init_from_checkpoint(&model, a.model);
    const GPTConfig* c = &model.config;
    Tokenizer tok;
    tokenizer_init(&tok, a.tokenizer);
    if (!tok.can_encode) { die("tokenizer '%s' has no merges, so it cannot encode prompts (version 2)", a.tokenizer); }
    if ((int)tok.vocab_size != c->vocab_size) {
        die("tokenizer '%s' has %u tokens but model '%s' has vocab_size %d", a.tokenizer, tok.vocab_size, a.model,
            c->vocab_size);
    }
    if (a.max_new >= c->max_seq_len) { die("flag -g: %d new tokens leave no room for a prompt (max_seq_len %d)", a.max_new, c->max_seq_len); }
    Sampler sampler;
    sampler_init(&sampler, c->vocab_size, a.temperature, a.top_k, a.top_p, a.seed);
    KVCache kv;
    kvcache_init(&kv, c, 1, c->max_seq_len, c->max_seq_len);
    float* logits = (float*)mallocCheck((size_t)c->padded_vocab_size * sizeof(float));
    if (!a.quiet) {
        size_t hd = c->n_embd / c->n_head;
        double wmb = model.layout.num_parameters * 4.0 / 1e6;
        double kvmb = 2.0 * c->n_layer * c->max_seq_len * c->n_kv_head * hd * 4.0 / 1e6;
        fprintf(stderr, "model %s: %zu parameters | weights %.1f MB (fp32) | KV cache %.1f MB (batch 1, %d positions)\n",
                a.model, model.layout.num_parameters, wmb, kvmb, c->max_seq_len);
    }
    InferStats st = {0, 0, 0.0, 0.0};
    if (a.prompt != NULL) {
        if (!a.quiet) { printf("%s", a.prompt); }
        generate(&model, &kv, &tok, &sampler, &a, a.prompt, strlen(a.prompt), logits, &st);
    } else {
        FILE* fp = a.interactive ? stdin : fopenCheck(a.prompt_file, "rb");
        char* line = NULL;
        size_t lcap = 0;
        ssize_t got;
        int count = 0;
        if (a.interactive) { fprintf(stderr, "> "); }
        while ((got = getline(&line, &lcap, fp)) != -1) {
            while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) { line[--got] = '\0'; }
            if (got == 0 && !a.interactive) { continue; }
            if (got == 0) { fprintf(stderr, "> "); continue; }
            if (!a.quiet) { printf("%s", line); }
            generate(&model, &kv, &tok, &sampler, &a, line, (size_t)got, logits, &st);
            count++;
            if (a.interactive) { fprintf(stderr, "> "); }
        }
        free(line);
        if (!a.interactive) { fclose(fp); }
        if (count == 0 && !a.interactive) { die("'%s' holds no prompts", a.prompt_file); }
    }
    fflush(stdout);  // the text first, then the summary on stderr
    if (!a.quiet) {
        double ms_tok = st.new_tokens > 0 ? 1000.0 * st.decode_s / st.new_tokens : 0.0;
        double wbw = st.decode_s > 0 ? model.layout.num_parameters * 4.0 * st.new_tokens / st.decode_s / 1e9 : 0.0;
        fprintf(stderr, "prompt tokens %lld | generated %lld | prefill %.1f ms | %.2f ms/token | %.1f tokens/s | weight bandwidth %.1f GB/s\n",
                st.prompt_tokens, st.new_tokens, 1000.0 * st.prefill_s, ms_tok,
                ms_tok > 0 ? 1000.0 / ms_tok : 0.0, wbw);
    }
    free(logits);
    kvcache_free(&kv);
    sampler_free(&sampler);
    tokenizer_free(&tok);
    gpt_free(&model);
    return 0;
}
#endif
