/*
 * make_shards.c: turns text into token shards (SPEC section 3, llm.c's layout)
 * with the GPT-2 tokenizer or any other (-tk: ours, or a Hugging Face tokenizer.json
 * or its folder). Every document is preceded by the EOT token, or by BOS where the
 * tokenizer puts one first (Llama 3's <|begin_of_text|>, as llm.c's Llama 3 shards).
 * Vocabularies over 65536 tokens get uint32 shards (magic 20240801). The
 * first documents go to a validation shard, the rest to training shards.
 *
 *   make make_shards
 *   ./make_shards -o data/mine/mine a.txt b.txt ...      (one document per file)
 *   ./make_shards -o data/mine/mine --jsonl docs.jsonl   (a "text" field per line)
 *   ./make_shards -o data/mine/mine --lines docs.txt     (one document per line)
 *   ./make_shards --stats "data/mine/mine_train_*.bin"   (unigram entropy)
 *   ./make_shards --text -o data/mine/mine --jsonl docs.jsonl  (the split as text,
 *       <prefix>_val.txt and <prefix>_train.txt, one document per paragraph: the
 *       input of train_tokenizer, so that a tokenizer never sees the validation text)
 * Output: <prefix>_val_000000.bin, <prefix>_train_000001.bin, ...
 * Flags: -tk tokenizer (default data/gpt2/tokenizer.bin; e.g. data/llama3/ from
 * `bash data/get_tokenizer.sh llama3`), -v validation
 * documents (default 1% of the documents, at least 1), -s tokens per shard
 * (default 100M). Every shard is written atomically (temp name, rename).
 */
#include <glob.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llmc/dataloader.h"
#include "llmc/json.h"
#include "llmc/shard.h"
#include "llmc/tokenizer.h"
#include "llmc/utils.h"

typedef struct {
    char** docs;
    size_t* lens;
    size_t n, cap;
} DocList;

static void docs_add(DocList* d, char* text, size_t len) {
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 1024;
        d->docs = (char**)reallocCheck(d->docs, d->cap * sizeof(char*));
        d->lens = (size_t*)reallocCheck(d->lens, d->cap * sizeof(size_t));
    }
    d->docs[d->n] = text;
    d->lens[d->n] = len;
    d->n++;
}

static char* read_file(const char* path, size_t* len) {
    FILE* fp = fopenCheck(path, "rb");
    long long n = file_size(fp, path);
    char* buf = (char*)mallocCheck((size_t)n + 1);
    if (n > 0) { freadCheck(buf, 1, (size_t)n, fp, path); }
    fclose(fp);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

// check_text: text input must not be binary: no NUL bytes, and at most 1% of
// its bytes outside valid UTF-8
static void check_text(const char* what, const char* s, size_t n) {
    if (memchr(s, '\0', n) != NULL) { die("'%s' looks binary (it contains NUL bytes); give text files", what); }
    size_t bad = 0, i = 0;
    while (i < n) {
        uint32_t cp;
        int k = utf8_next((const unsigned char*)s + i, n - i, &cp);
        if (cp == UINT32_MAX) bad++;
        i += k;
    }
    if (bad * 100 > n) { die("'%s' looks binary (%zu of %zu bytes are not UTF-8); give text files", what, bad, n); }
}

// json_text_field: the decoded top-level "text" string of one JSON line, parsed
// by llmc/json.h's strict parser (a key named "text" deeper in the object, or a
// value "text", is not it); NULL when the object has none. Malformed JSON, a
// "text" that is not a string or that holds a NUL character is a one-line error.
static char* json_text_field(const char* line, size_t n, size_t* out_len, const char* path, size_t lineno) {
    Json j;
    if (json_parse(&j, line, n) != 0) { die("'%s' line %zu: %s", path, lineno, j.err); }
    if (j.nodes[0].type != JSON_OBJECT) { die("'%s' line %zu: not a JSON object", path, lineno); }
    const int t = json_get(&j, 0, "text");
    char* out = NULL;
    if (t >= 0) {
        if (j.nodes[t].type != JSON_STRING) { die("'%s' line %zu: \"text\" is not a string", path, lineno); }
        const size_t len = j.nodes[t].str_len;
        if (memchr(json_str(&j, t), '\0', len) != NULL) {
            die("'%s' line %zu: a NUL character (\\u0000) in the text", path, lineno);
        }
        out = (char*)mallocCheck(len + 1);
        memcpy(out, json_str(&j, t), len + 1);
        *out_len = len;
    }
    json_free(&j);
    return out;
}

// read_lines: each non-empty line is a document (jsonl: its "text" field)
static void read_lines(DocList* d, const char* path, int jsonl) {
    size_t len;
    char* buf = read_file(path, &len);
    check_text(path, buf, len);
    size_t start = 0, lineno = 0;
    while (start < len) {
        char* nl = (char*)memchr(buf + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - buf) : len;
        lineno++;
        size_t n = end - start;
        if (n > 0 && buf[start + n - 1] == '\r') n--;
        if (n > 0) {
            if (jsonl) {
                size_t tl;
                char* t = json_text_field(buf + start, n, &tl, path, lineno);
                if (t == NULL) { die("'%s' line %zu has no \"text\" field", path, lineno); }
                if (tl > 0) docs_add(d, t, tl); else free(t);
            } else {
                char* t = (char*)mallocCheck(n + 1);
                memcpy(t, buf + start, n);
                t[n] = '\0';
                docs_add(d, t, n);
            }
        }
        start = end + 1;
    }
    free(buf);
}

// write_shards: tokens in shards of at most shard_size tokens
static void flush_shard(const char* prefix, const char* split, int* index, uint32_t* toks, size_t n, int vocab,
                        size_t* total_shards) {
    char path[1200];
    if ((size_t)snprintf(path, sizeof(path), "%s_%s_%06d.bin", prefix, split, *index) >= sizeof(path)) {
        die("output prefix too long");
    }
    shard_write(path, toks, n, vocab);
    printf("wrote %s (%zu tokens)\n", path, n);
    (*index)++;
    (*total_shards)++;
}

// write_text_split (--text): <prefix>_val.txt holds documents [0, nval), <prefix>_train.txt
// the rest, each document followed by a blank line; both written atomically
static void write_text_split(const char* prefix, DocList* d, size_t nval) {
    const char* split[2] = {"val", "train"};
    for (int s = 0; s < 2; s++) {
        char path[1200];
        if ((size_t)snprintf(path, sizeof(path), "%s_%s.txt", prefix, split[s]) >= sizeof(path)) {
            die("output prefix too long");
        }
        AtomicFile af;
        atomic_file_open(&af, path);
        size_t lo = s == 0 ? 0 : nval, hi = s == 0 ? nval : d->n, bytes = 0;
        for (size_t i = lo; i < hi; i++) {
            fwriteCheck(d->docs[i], 1, d->lens[i], af.fp, af.tmp);
            fwriteCheck("\n\n", 1, 2, af.fp, af.tmp);
            bytes += d->lens[i] + 2;
            free(d->docs[i]);
        }
        atomic_file_commit(&af);
        printf("wrote %s (%zu documents, %zu bytes)\n", path, hi - lo, bytes);
    }
    free(d->docs);
    free(d->lens);
}

// stats: unigram entropy of the tokens in shards matching a glob
static void print_stats(const char* pattern) {
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc == 0) { die("no shards match '%s'", pattern); }
    size_t cap = 1 << 17;
    uint64_t* count = (uint64_t*)callocCheck(cap, sizeof(uint64_t));
    uint64_t total = 0;
    for (size_t s = 0; s < g.gl_pathc; s++) {
        size_t ntok;
        int tb;
        FILE* fp = shard_read_header(g.gl_pathv[s], &ntok, &tb);
        unsigned char buf[1 << 16];
        size_t left = ntok;
        while (left > 0) {
            size_t k = left < sizeof(buf) / 4 ? left : sizeof(buf) / 4;
            freadCheck(buf, tb, k, fp, g.gl_pathv[s]);
            for (size_t i = 0; i < k; i++) {
                uint32_t t = 0;
                memcpy(&t, buf + i * tb, tb);
                if (t >= cap) { die("token %u too large for --stats", t); }
                count[t]++;
            }
            left -= k;
            total += k;
        }
        fclose(fp);
    }
    double h = 0.0;
    size_t distinct = 0;
    for (size_t i = 0; i < cap; i++) {
        if (count[i]) { double p = (double)count[i] / total; h -= p * log(p); distinct++; }
    }
    printf("tokens %llu | distinct %zu\n", (unsigned long long)total, distinct);
    printf("unigram entropy: %.4f nats/token (%.4f bits/token)\n", h, h / log(2.0));
    printf("a model that only learned token frequencies would have loss %.4f\n", h);
    free(count);
    globfree(&g);
}

int main(int argc, char** argv) {
    const char* prefix = NULL;
    const char* tok_path = "data/gpt2/tokenizer.bin";
    const char* jsonl = NULL;
    const char* lines = NULL;
    long long val_docs = -1;
    long long shard_size = 100000000;
    int text_only = 0;
    DocList d = {0};
    char** files = (char**)mallocCheck(argc * sizeof(char*));
    int nfiles = 0;
    for (int i = 1; i < argc; i++) {
        const char* f = argv[i];
        if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0) {
            printf("usage: %s -o <prefix> [-tk tok.bin] [-v val_docs] [-s shard_tokens] (files... | --jsonl F | --lines F)\n"
                   "       %s --text -o <prefix> [-v val_docs] (files... | --jsonl F | --lines F)   (the split as text)\n"
                   "       %s --stats '<glob of shards>'\n", argv[0], argv[0], argv[0]);
            return 0;
        }
        if (strcmp(f, "--stats") == 0) {
            if (i + 1 >= argc) die("--stats needs a glob");
            print_stats(argv[i + 1]);
            free(files);
            return 0;
        }
        if (strcmp(f, "--text") == 0) { text_only = 1; continue; }
        if (f[0] == '-') {
            if (i + 1 >= argc) { die("flag %s needs a value (see --help)", f); }
            const char* v = argv[++i];
            if (strcmp(f, "-o") == 0) prefix = v;
            else if (strcmp(f, "-tk") == 0) tok_path = v;
            else if (strcmp(f, "--jsonl") == 0) jsonl = v;
            else if (strcmp(f, "--lines") == 0) lines = v;
            else if (strcmp(f, "-v") == 0) val_docs = parse_long(v, f, 0, 1LL << 40);
            else if (strcmp(f, "-s") == 0) shard_size = parse_long(v, f, 1, 0x7fffffffLL);
            else die("unknown flag %s (see --help)", f);
        } else {
            files[nfiles++] = argv[i];
        }
    }
    if (prefix == NULL) { die("flag -o <prefix> is required (see --help)"); }
    {  // the prefix's directory is created when missing
        char dir[1024];
        snprintf(dir, sizeof(dir), "%s", prefix);
        char* slash = strrchr(dir, '/');
        if (slash != NULL && slash != dir) { *slash = '\0'; make_dir(dir); }
    }
    if ((jsonl != NULL) + (lines != NULL) + (nfiles > 0) != 1) { die("give input files, or --jsonl FILE, or --lines FILE"); }
    Tokenizer tok;
    if (!text_only) {
        tokenizer_init(&tok, tok_path);
        if (!tok.can_encode) { die("tokenizer '%s' has no merges: it cannot encode", tok_path); }
        printf("tokenizer: %s (%u tokens, %s shards, documents start with token %u)\n", tok_path, tok.vocab_size,
               tok.vocab_size <= 65536 ? "uint16" : "uint32", tokenizer_doc_token(&tok));
    }
    if (jsonl) read_lines(&d, jsonl, 1);
    if (lines) read_lines(&d, lines, 0);
    for (int i = 0; i < nfiles; i++) {
        size_t len;
        char* t = read_file(files[i], &len);
        if (len == 0) { die("'%s' is empty", files[i]); }
        check_text(files[i], t, len);
        docs_add(&d, t, len);
    }
    if (d.n == 0) { die("the input holds no documents"); }
    if (val_docs < 0) { val_docs = d.n / 100 > 0 ? (long long)(d.n / 100) : 1; }
    if ((size_t)val_docs >= d.n) { die("flag -v: %lld validation documents leave none for training (%zu documents)", val_docs, d.n); }
    if (text_only) {
        write_text_split(prefix, &d, (size_t)val_docs);
        free(files);
        return 0;
    }

    uint32_t* buf = (uint32_t*)mallocCheck(((size_t)shard_size + 1) * sizeof(uint32_t));
    size_t nbuf = 0, total_tokens = 0, val_tokens = 0, shards = 0, bytes = 0;
    uint32_t* ids = NULL;
    size_t cap = 0;
    int val_index = 0, train_index = 1;
    for (size_t i = 0; i < d.n; i++) {
        int is_val = i < (size_t)val_docs;
        size_t n = tokenizer_encode(&tok, d.docs[i], d.lens[i], 0, &ids, &cap);
        bytes += d.lens[i];
        // EOT (or BOS) before each document; a document may span shards
        const uint32_t doc_token = tokenizer_doc_token(&tok);
        size_t k = 0;
        for (long long j = -1; j < (long long)n; j++) {
            buf[nbuf++] = j < 0 ? doc_token : ids[j];
            if (nbuf == (size_t)shard_size) {
                flush_shard(prefix, is_val ? "val" : "train", is_val ? &val_index : &train_index, buf, nbuf, tok.vocab_size, &shards);
                nbuf = 0;
            }
            k++;
        }
        total_tokens += k;
        if (is_val) val_tokens += k;
        if ((is_val && i + 1 == (size_t)val_docs) || i + 1 == d.n) {
            if (nbuf > 0) {
                flush_shard(prefix, is_val ? "val" : "train", is_val ? &val_index : &train_index, buf, nbuf, tok.vocab_size, &shards);
                nbuf = 0;
            }
        }
        if ((i + 1) % 10000 == 0) {
            fprintf(stderr, "\rdocuments %zu/%zu | tokens %zu", i + 1, d.n, total_tokens);
        }
        free(d.docs[i]);
    }
    fprintf(stderr, "\n");
    printf("documents %zu (validation %lld) | bytes %zu | tokens %zu (validation %zu, train %zu) | shards %zu\n", d.n,
           val_docs, bytes, total_tokens, val_tokens, total_tokens - val_tokens, shards);
    free(ids);
    free(buf);
    free(d.docs);
    free(d.lens);
    free(files);
    tokenizer_free(&tok);
    return 0;
}
