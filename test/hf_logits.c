/*
 * hf_logits.c: the logits of our CPU forward (llmc/gpt_cpu.h) for one sequence,
 * for test/test_hf.sh to compare against test/hf_forward.py's independent
 * numpy forward of the exported Hugging Face folder.
 *
 *   ./hf_logits model.bin out.f32 tok0 tok1 ...
 * writes T x V float32 (little-endian, row-major; the padded vocab rows dropped)
 */
#include <stdio.h>
#include <stdlib.h>
#include "llmc/gpt_cpu.h"
#include "llmc/utils.h"

int main(int argc, char** argv) {
    if (argc < 4) { die("usage: %s model.bin out.f32 tok0 [tok1 ...]", argv[0]); }
    GPT model;
    gpt_init_from_checkpoint(&model, argv[1]);
    const GPTConfig* c = &model.config;
    int T = argc - 3, V = c->vocab_size, Vp = c->padded_vocab_size;
    if (T > c->max_seq_len) { die("%d tokens is more than max_seq_len %d", T, c->max_seq_len); }
    int* tokens = (int*)mallocCheck((size_t)T * sizeof(int));
    for (int i = 0; i < T; i++) { tokens[i] = parse_int(argv[3 + i], "token", 0, V - 1); }
    gpt_forward(&model, tokens, NULL, 1, T, 0.0f);
    FILE* fp = fopenCheck(argv[2], "wb");
    for (int t = 0; t < T; t++) { fwriteCheck(model.acts.logits + (size_t)t * Vp, sizeof(float), (size_t)V, fp, argv[2]); }
    fcloseCheck(fp, argv[2]);
    free(tokens);
    gpt_free(&model);
    return 0;
}
