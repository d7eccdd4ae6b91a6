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
#include "llmc/infer_args.h"
#include "llmc/sampler.h"
#include "llmc/tokenizer.h"
#include "llmc/utils.h"

typedef struct {
    long long prompt_tokens, new_tokens;
    double prefill_s, decode_s;
} InferStats;

// generate: one prompt (text of len bytes) from an empty cache
static void generate(GPT* model, KVCache* kv, const Tokenizer* tok, Sampler* sampler, const InferArgs* a,
                     const char* text, size_t len, float* logits, InferStats* st) {
    int n;
    int* tokens = infer_encode_prompt(tok, text, len, kv->max_T, a->max_new, a->truncate, &n);
    double t0 = infer_now_s();
    gpt_forward_cached(model, kv, tokens, 1, n, 0, logits, 0);
    double t1 = infer_now_s();
    st->prefill_s += t1 - t0;
    st->prompt_tokens += n;
    int pos = (int)n;
    Utf8Stream out;
    utf8_stream_init(&out);
    for (int i = 0; i < a->max_new; i++) {
        int next = sampler_sample(sampler, logits);
        st->new_tokens++;
        if (a->stop_eot && (uint32_t)next == tok->eot_token) { break; }
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
    st->decode_s += infer_now_s() - t1;
    free(tokens);
}

#ifndef TESTING
int main(int argc, char** argv) {
    InferArgs a;
    if (infer_args_parse(&a, argc, argv, 0)) {
        infer_usage(argv[0], 0);
        return 0;
    }
    GPT model;
    gpt_init_from_checkpoint(&model, a.model);
    const GPTConfig* c = &model.config;
    Tokenizer tok;
    infer_open_tokenizer(&tok, &a, c);
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
