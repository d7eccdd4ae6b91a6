/*
 * bench_tokenizer.c: encode speed of llmc/tokenizer.h on one core, in MB/s of
 * input text, over the documents of a JSONL file (default: the prepared
 * nlp-corpus, data/cache/docs.jsonl) or any text file; best of 3 passes.
 *
 *   make bench_tokenizer && ./bench_tokenizer [file] [tokenizer.bin]
 */
#include <time.h>
#include "llmc/tokenizer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
    const char* path = argc > 1 ? argv[1] : "data/cache/docs.jsonl";
    const char* tk = argc > 2 ? argv[2] : "data/gpt2/tokenizer.bin";
    Tokenizer t;
    tokenizer_init(&t, tk);
    FILE* fp = fopenCheck(path, "rb");
    long long n = file_size(fp, path);
    char* text = (char*)mallocCheck((size_t)n + 1);
    freadCheck(text, 1, (size_t)n, fp, path);
    fclose(fp);
    uint32_t* ids = NULL;
    size_t cap = 0, count = 0;
    double best = 1e30;
    for (int pass = 0; pass < 3; pass++) {
        double t0 = now_s();
        count = tokenizer_encode(&t, text, (size_t)n, 0, &ids, &cap);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    printf("%s: %.2f MB -> %zu tokens (%.2f bytes/token) in %.3f s: %.1f MB/s, %.2f M tokens/s (one core)\n", path,
           n / 1e6, count, (double)n / count, best, n / 1e6 / best, count / 1e6 / best);
    free(ids);
    free(text);
    tokenizer_free(&t);
    return 0;
}
