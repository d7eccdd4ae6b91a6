/*
 * test_train_tokenizer.c: train_tokenizer against a deliberately naive BPE
 * trainer written here (recount every pair over every word after every merge,
 * same tie rule: highest count, then smallest (left id, right id); pairs whose
 * token would pass 255 bytes are not counted). On several small corpora (random
 * words from a small alphabet, real text from the repository, whitespace /
 * digit / punctuation edge cases, invalid UTF-8, a long repeated word, several
 * files) it checks that:
 *   - the merge list in the written file equals the naive trainer's, merge for merge;
 *   - the file loads in llmc/tokenizer.h (vocab, EOT last, 256 byte tokens first),
 *     encoding the corpus gives exactly the naive trainer's final segmentation
 *     of its words, and decoding gives back every byte;
 *   - 1 or 2 threads and tiny read blocks (-bs) give the same file;
 * and that bad input (missing file, bad -vs, empty corpus, unwritable output...)
 * gives exactly one "error:" line on stderr, a non-zero exit and no file.
 *
 *   make train_tokenizer test_train_tokenizer && ./test_train_tokenizer ./train_tokenizer
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "llmc/rand.h"
#include "llmc/tokenizer.h"
#include "test.h"

static const char* g_bin;   // the train_tokenizer binary
static char g_dir[64];      // the work directory

// ----------------------------------------------------------------------------
// the naive trainer

typedef struct {
    const unsigned char* bytes;  // the word in its corpus (not owned)
    size_t nbytes;
    uint32_t* sym;               // (n,) its current symbols
    size_t n;
    uint64_t count;
} NWord;

typedef struct { uint32_t a, b; uint64_t f; } NPair;

static int cmp_word(const void* x, const void* y) {
    const NWord* p = (const NWord*)x;
    const NWord* q = (const NWord*)y;
    size_t n = p->nbytes < q->nbytes ? p->nbytes : q->nbytes;
    int c = memcmp(p->bytes, q->bytes, n);
    if (c != 0) return c;
    return p->nbytes < q->nbytes ? -1 : p->nbytes > q->nbytes;
}

static int cmp_pair(const void* x, const void* y) {
    const NPair* p = (const NPair*)x;
    const NPair* q = (const NPair*)y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    if (p->b != q->b) return p->b < q->b ? -1 : 1;
    return 0;
}

// naive_words: the distinct pre-tokens of texts[0..nt) (each text on its own)
// with their counts; *occ (*nocc,) the index of every pre-token in text order
static NWord* naive_words(const unsigned char** texts, const size_t* lens, int nt, size_t* nw, size_t** occ, size_t* nocc) {
    size_t cap = 1024, n = 0;
    NWord* all = (NWord*)mallocCheck(cap * sizeof(NWord));
    for (int t = 0; t < nt; t++) {
        size_t i = 0;
        while (i < lens[t]) {
            size_t j = tok_pretoken_end(texts[t], lens[t], i);
            if (n == cap) { cap *= 2; all = (NWord*)reallocCheck(all, cap * sizeof(NWord)); }
            all[n++] = (NWord){texts[t] + i, j - i, NULL, 0, 1};
            i = j;
        }
    }
    NWord* sorted = (NWord*)mallocCheck((n ? n : 1) * sizeof(NWord));
    memcpy(sorted, all, n * sizeof(NWord));
    qsort(sorted, n, sizeof(NWord), cmp_word);
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u > 0 && cmp_word(&sorted[u - 1], &sorted[i]) == 0) { sorted[u - 1].count++; continue; }
        sorted[u++] = sorted[i];
    }
    *occ = (size_t*)mallocCheck((n ? n : 1) * sizeof(size_t));
    for (size_t i = 0; i < n; i++) {  // binary search back to the distinct word
        size_t lo = 0, hi = u;
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (cmp_word(&sorted[mid], &all[i]) <= 0) lo = mid; else hi = mid;
        }
        (*occ)[i] = lo;
    }
    *nocc = n;
    for (size_t i = 0; i < u; i++) {
        sorted[i].sym = (uint32_t*)mallocCheck((sorted[i].nbytes ? sorted[i].nbytes : 1) * sizeof(uint32_t));
        for (size_t k = 0; k < sorted[i].nbytes; k++) sorted[i].sym[k] = sorted[i].bytes[k];
        sorted[i].n = sorted[i].nbytes;
    }
    free(all);
    *nw = u;
    return sorted;
}

// naive_train: up to max_merges merges (left, right) into merges (max_merges, 2);
// every step counts every pair of every word from scratch
static uint32_t naive_train(NWord* w, size_t nw, uint32_t max_merges, uint32_t* merges) {
    uint32_t* tlen = (uint32_t*)mallocCheck((256 + max_merges) * sizeof(uint32_t));
    for (int t = 0; t < 256; t++) tlen[t] = 1;
    size_t npos = 0;
    for (size_t i = 0; i < nw; i++) npos += w[i].n;
    NPair* p = (NPair*)mallocCheck((npos ? npos : 1) * sizeof(NPair));
    uint32_t k = 0;
    for (; k < max_merges; k++) {
        size_t np = 0;
        for (size_t i = 0; i < nw; i++) {
            for (size_t j = 0; j + 1 < w[i].n; j++) {
                uint32_t a = w[i].sym[j], b = w[i].sym[j + 1];
                if (tlen[a] + tlen[b] <= 255) p[np++] = (NPair){a, b, w[i].count};
            }
        }
        if (np == 0) break;
        qsort(p, np, sizeof(NPair), cmp_pair);  // ascending (a, b): the first maximum is the tie winner
        uint64_t best = 0;
        uint32_t ba = 0, bb = 0;
        for (size_t i = 0; i < np;) {
            size_t j = i;
            uint64_t f = 0;
            while (j < np && p[j].a == p[i].a && p[j].b == p[i].b) f += p[j++].f;
            if (f > best) { best = f; ba = p[i].a; bb = p[i].b; }
            i = j;
        }
        uint32_t m = 256 + k;
        merges[2 * k] = ba;
        merges[2 * k + 1] = bb;
        tlen[m] = tlen[ba] + tlen[bb];
        for (size_t i = 0; i < nw; i++) {  // left to right, no overlap
            size_t o = 0;
            for (size_t j = 0; j < w[i].n;) {
                if (j + 1 < w[i].n && w[i].sym[j] == ba && w[i].sym[j + 1] == bb) { w[i].sym[o++] = m; j += 2; }
                else { w[i].sym[o++] = w[i].sym[j++]; }
            }
            w[i].n = o;
        }
    }
    free(p);
    free(tlen);
    return k;
}

// ----------------------------------------------------------------------------
// running the binary and reading its file

static void write_file(const char* path, const void* data, size_t n) {
    FILE* fp = fopenCheck(path, "wb");
    if (n > 0) fwriteCheck(data, 1, n, fp, path);
    fcloseCheck(fp, path);
}

static unsigned char* read_all(const char* path, size_t* n) {
    FILE* fp = fopenCheck(path, "rb");
    long long sz = file_size(fp, path);
    unsigned char* b = (unsigned char*)mallocCheck((size_t)sz + 1);
    if (sz > 0) freadCheck(b, 1, (size_t)sz, fp, path);
    fclose(fp);
    *n = (size_t)sz;
    return b;
}

// run: runs "<env> <bin> <args>" with stdout and stderr to files in g_dir; the exit status
static int run(const char* env, const char* args) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s %s %s > %s/out.txt 2> %s/err.txt", env, g_bin, args, g_dir, g_dir);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

// file_merges: the (left, right) merges of a version-3 file in rank order, read
// byte by byte here (not through tokenizer.h), into *merges; returns how many,
// or -1 when the file is not laid out as docs/tokenizer.md says
static long file_merges(const char* path, uint32_t** merges, uint32_t* vocab, uint32_t* eot) {
    size_t n;
    unsigned char* b = read_all(path, &n);
    long res = -1;
    int32_t h[256];
    if (n >= sizeof(h)) {
        memcpy(h, b, sizeof(h));
        size_t o = sizeof(h);
        int okf = h[0] == 20240328 && h[1] == 3 && h[2] >= 257;
        for (int32_t t = 0; okf && t < h[2]; t++) {
            if (o >= n) { okf = 0; break; }
            o += 1 + b[o];
        }
        okf = okf && o <= n && n - o == (size_t)h[4] * 12;
        if (okf) {
            *vocab = (uint32_t)h[2];
            *eot = (uint32_t)h[3];
            *merges = (uint32_t*)mallocCheck(((size_t)h[4] + 1) * 2 * sizeof(uint32_t));
            for (int32_t k = 0; k < h[4] && okf; k++) {
                int32_t m[3];
                memcpy(m, b + o + 12 * (size_t)k, 12);
                (*merges)[2 * k] = (uint32_t)m[0];
                (*merges)[2 * k + 1] = (uint32_t)m[1];
                okf = m[2] == 256 + k;
            }
            res = okf ? h[4] : -1;
        }
    }
    free(b);
    return res;
}

// check_corpus: trains on the files (vocab vs, the given env and extra flags),
// and checks the file against the naive trainer and the encoder (see the top)
static void check_corpus(const char* name, const char** files, int nf, uint32_t vs, const char* env, const char* extra) {
    unsigned char* texts[8];
    size_t lens[8];
    char args[2048];
    int o = snprintf(args, sizeof(args), "-vs %u -o %s/tok.bin %s", vs, g_dir, extra);
    for (int i = 0; i < nf; i++) {
        texts[i] = read_all(files[i], &lens[i]);
        o += snprintf(args + o, sizeof(args) - o, " -i %s", files[i]);
    }
    char tok[128];
    snprintf(tok, sizeof(tok), "%s/tok.bin", g_dir);
    unlink(tok);
    int rc = run(env, args);
    size_t nw, *occ, nocc;
    NWord* w = naive_words((const unsigned char**)texts, lens, nf, &nw, &occ, &nocc);
    uint32_t* ref = (uint32_t*)mallocCheck(2 * (size_t)(vs - 257 + 1) * sizeof(uint32_t));
    uint32_t nref = naive_train(w, nw, vs - 257, ref);
    uint32_t* got = NULL;
    uint32_t fvocab = 0, feot = 0;
    long ngot = rc == 0 ? file_merges(tok, &got, &fvocab, &feot) : -1;
    size_t first_diff = 0;
    if (ngot >= 0) {
        while (first_diff < nref && first_diff < (size_t)ngot && got[2 * first_diff] == ref[2 * first_diff] &&
               got[2 * first_diff + 1] == ref[2 * first_diff + 1]) first_diff++;
    }
    CHECK(rc == 0 && ngot == (long)nref && first_diff == nref,
          "%s: %ld merges equal the naive trainer's %u (first difference at %zu; %zu distinct words; rc %d)", name, ngot,
          nref, first_diff, nw, rc);
    CHECK(ngot >= 0 && fvocab == 257 + nref && feot == fvocab - 1, "%s: vocab %u = 257 + merges, EOT %u is the last id",
          name, fvocab, feot);
    if (ngot < 0) goto done;
    {
        Tokenizer t;
        tokenizer_init(&t, tok);
        int bytes_first = t.can_encode;
        for (uint32_t i = 0; i < 256; i++) bytes_first &= t.token_len[i] == 1 && t.token_bytes[i][0] == i;
        bytes_first &= t.token_len[t.eot_token] == 13 && memcmp(t.token_bytes[t.eot_token], "<|endoftext|>", 13) == 0;
        CHECK(bytes_first, "%s: loads in tokenizer.h: ids 0..255 are the bytes, the last is <|endoftext|>", name);
        // encode each file; the ids must be the naive words' final symbols in corpus order
        size_t wi = 0, mismatch = 0, total = 0, ref_total = 0;
        int round = 1;
        for (int f = 0; f < nf; f++) {
            uint32_t* ids = NULL;
            size_t cap = 0;
            size_t n = tokenizer_encode(&t, (const char*)texts[f], lens[f], 0, &ids, &cap);
            size_t k = 0, pos = 0;
            // the pre-tokens of this file are the next ones in occ
            size_t i = 0;
            while (i < lens[f]) {
                size_t j = tok_pretoken_end(texts[f], lens[f], i);
                const NWord* nwd = &w[occ[wi++]];
                for (size_t s = 0; s < nwd->n; s++, k++) {
                    if (k >= n || ids[k] != nwd->sym[s]) mismatch++;
                }
                ref_total += nwd->n;
                i = j;
            }
            total += n;
            for (size_t q = 0; q < n && round; q++) {  // decode
                size_t len;
                const unsigned char* b = tokenizer_decode(&t, ids[q], &len);
                round = pos + len <= lens[f] && memcmp(texts[f] + pos, b, len) == 0;
                pos += len;
            }
            round = round && pos == lens[f];
            free(ids);
        }
        CHECK(mismatch == 0 && total == ref_total, "%s: encoding gives the trainer's segmentation (%zu tokens, %zu expected, %zu differ)",
              name, total, ref_total, mismatch);
        CHECK(round, "%s: decode(encode(corpus)) gives back every byte", name);
        tokenizer_free(&t);
    }
done:
    for (size_t i = 0; i < nw; i++) free(w[i].sym);
    free(w); free(occ); free(ref); free(got);
    for (int i = 0; i < nf; i++) free(texts[i]);
}

// gen: n random pieces, each drawn from the alphabet of strings alpha[0..na)
static unsigned char* gen(uint64_t* rng, const char** alpha, int na, size_t n, size_t* len) {
    size_t cap = 1024, o = 0;
    unsigned char* b = (unsigned char*)mallocCheck(cap);
    for (size_t i = 0; i < n; i++) {
        const char* s = alpha[rng_next_u32(rng) % na];
        size_t k = strlen(s);
        if (o + k >= cap) { cap = 2 * (o + k); b = (unsigned char*)reallocCheck(b, cap); }
        memcpy(b + o, s, k);
        o += k;
    }
    *len = o;
    return b;
}

static void gen_file(const char* name, uint64_t* rng, const char** alpha, int na, size_t n, char* path) {
    size_t len;
    unsigned char* b = gen(rng, alpha, na, n, &len);
    sprintf(path, "%s/%s", g_dir, name);
    write_file(path, b, len);
    free(b);
}

// expect_error: the command fails with exactly one line on stderr, "error: ...",
// matching `want`, and writes no tokenizer file
static void expect_error(const char* what, const char* args, const char* want) {
    char out[128];
    snprintf(out, sizeof(out), "%s/bad.bin", g_dir);
    unlink(out);
    int rc = run("", args);
    char path[128];
    snprintf(path, sizeof(path), "%s/err.txt", g_dir);
    size_t n;
    unsigned char* e = read_all(path, &n);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += e[i] == '\n';
    e[n] = '\0';
    char* nl = strchr((char*)e, '\n');
    if (nl) *nl = '\0';
    int ok = rc != 0 && rc < 128 && lines == 1 && strncmp((char*)e, "error: ", 7) == 0 && strstr((char*)e, want) != NULL &&
             access(out, F_OK) != 0;
    CHECK(ok, "%s -> exit %d, %d line(s): %s", what, rc, lines, (char*)e);
    free(e);
}

int main(int argc, char** argv) {
    g_bin = argc > 1 ? argv[1] : "./train_tokenizer";
    if (access(g_bin, X_OK) != 0) { printf("FAIL no binary '%s' (make train_tokenizer)\n0 passed, 1 failed\n", g_bin); return 1; }
    snprintf(g_dir, sizeof(g_dir), "/tmp/llmc_tt_XXXXXX");
    if (mkdtemp(g_dir) == NULL) { die("mkdtemp failed"); }
    uint64_t rng = 1234;
    char p1[128], p2[128], p3[128], p4[128], p5[128], p6[128];

    // random words from a small alphabet, with repeats: many ties, long chains like "aaaa"
    const char* abc[] = {"a", "a", "b", "c", " ", " ", "\n", "aa", "ab"};
    gen_file("abc.txt", &rng, abc, 9, 12000, p1);
    check_corpus("random abc words", (const char*[]){p1}, 1, 700, "OMP_NUM_THREADS=2", "");
    // the same with 1 thread and tiny read blocks: cuts inside the text must not change anything
    check_corpus("random abc words, 1 thread, -bs 100", (const char*[]){p1}, 1, 700, "OMP_NUM_THREADS=1", "-bs 100");
    check_corpus("random abc words, 2 threads, -bs 777", (const char*[]){p1}, 1, 700, "OMP_NUM_THREADS=2", "-bs 777");

    // real text: the repository's own docs (runs to exhaustion is not needed: 1500 merges)
    check_corpus("real text (docs/tokenizer.md, README.md)", (const char*[]){"docs/tokenizer.md", "README.md"}, 2, 1757,
                 "OMP_NUM_THREADS=2", "-bs 3000");

    // whitespace, digits, punctuation, contractions, a non-ASCII space and letter, CRLF
    const char* ws[] = {" ", "  ", "\t", "\n", "\n\n", "\r\n", "1", "23", "456", ".", "!!", "?", "'s", "'re", "'ll", "'",
                        "x", "Y", "\xc2\xa0", "\xc3\xa9", "-", "  \n", "\u3000", "\xe2\x80\x82"};
    gen_file("ws.txt", &rng, ws, 24, 8000, p2);
    check_corpus("whitespace/digit/punctuation edge cases", (const char*[]){p2}, 1, 1200, "OMP_NUM_THREADS=2", "-bs 500");

    // invalid UTF-8: stray continuation bytes, truncated sequences, 0xFF, overlong forms
    const char* inv[] = {"\x80", "\xff", "\xc3", "\xe2\x82", "\xc0\xaf", "a", " ", "\n", "\xed\xa0\x80", "\xf0\x9f", "z"};
    gen_file("inv.txt", &rng, inv, 11, 8000, p3);
    check_corpus("invalid UTF-8", (const char*[]){p3}, 1, 900, "OMP_NUM_THREADS=2", "");

    // a 300-byte word repeated: tokens stop at 255 bytes; the pairs run out before the vocab
    {
        unsigned char b[3100];
        size_t o = 0;
        for (int r = 0; r < 10; r++) { memset(b + o, 'x', 300); o += 300; b[o++] = '\n'; }
        snprintf(p4, sizeof(p4), "%s/long.txt", g_dir);
        write_file(p4, b, o);
        check_corpus("a 300-byte word: no token over 255 bytes, pairs run out", (const char*[]){p4}, 1, 2000,
                     "OMP_NUM_THREADS=2", "");
    }

    // several files and a glob: no pre-token spans two files ("ab  " then "cd")
    snprintf(p5, sizeof(p5), "%s/multi_1.txt", g_dir);
    snprintf(p6, sizeof(p6), "%s/multi_2.txt", g_dir);
    write_file(p5, "ab ab ab  ", 10);
    write_file(p6, "cd cd abcd", 10);
    check_corpus("two files", (const char*[]){p5, p6}, 2, 300, "OMP_NUM_THREADS=2", "");
    {
        char a1[512], a2[512];
        snprintf(a1, sizeof(a1), "-vs 300 -o %s/g.bin -i '%s/multi_?.txt'", g_dir, g_dir);
        snprintf(a2, sizeof(a2), "-vs 300 -o %s/f.bin %s %s", g_dir, p5, p6);
        int r1 = run("", a1), r2 = run("", a2);
        char g[128], f[128];
        snprintf(g, sizeof(g), "%s/g.bin", g_dir);
        snprintf(f, sizeof(f), "%s/f.bin", g_dir);
        size_t ng = 0, nf = 0;
        unsigned char* bg = r1 == 0 ? read_all(g, &ng) : NULL;
        unsigned char* bf = r2 == 0 ? read_all(f, &nf) : NULL;
        CHECK(bg && bf && ng == nf && memcmp(bg, bf, ng) == 0, "a glob gives the same file as the files listed (rc %d, %d)", r1, r2);
        free(bg); free(bf);
    }

    // bad input: one error line, non-zero exit, no file
    char a[1024];
    snprintf(a, sizeof(a), "-vs 300 -o %s/bad.bin -i %s/missing.txt", g_dir, g_dir);
    expect_error("missing file", a, "missing.txt");
    snprintf(a, sizeof(a), "-vs 300 -o %s/bad.bin -i '%s/nothing_*.txt'", g_dir, g_dir);
    expect_error("glob with no match", a, "no file matches");
    snprintf(a, sizeof(a), "-vs 256 -o %s/bad.bin -i %s", g_dir, p1);
    expect_error("-vs 256", a, "-vs");
    snprintf(a, sizeof(a), "-vs 99999999999 -o %s/bad.bin -i %s", g_dir, p1);
    expect_error("-vs absurdly large", a, "out of range");
    snprintf(a, sizeof(a), "-vs 12x -o %s/bad.bin -i %s", g_dir, p1);
    expect_error("-vs not a number", a, "not an integer");
    char empty[128];
    snprintf(empty, sizeof(empty), "%s/empty.txt", g_dir);
    write_file(empty, "", 0);
    snprintf(a, sizeof(a), "-vs 300 -o %s/bad.bin -i %s", g_dir, empty);
    expect_error("empty corpus", a, "empty");
    snprintf(a, sizeof(a), "-vs 300 -o %s/no_such_dir/bad.bin -i %s", g_dir, p1);
    expect_error("unwritable output (no directory)", a, "no_such_dir");
    snprintf(a, sizeof(a), "-vs 300 -o %s -i %s", g_dir, p1);
    expect_error("output is a directory", a, "directory");
    snprintf(a, sizeof(a), "-vs 300 -o %s/bad.bin -i %s", g_dir, g_dir);
    expect_error("input is a directory", a, "not a regular file");
    snprintf(a, sizeof(a), "-vs 300 -i %s", p1);
    expect_error("no -o", a, "-o");
    snprintf(a, sizeof(a), "-vs 300 -o %s/bad.bin -zz 1 -i %s", g_dir, p1);
    expect_error("unknown flag", a, "unknown flag -zz");
    snprintf(a, sizeof(a), "-o %s/bad.bin", g_dir);
    expect_error("no input", a, "no input");

    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (system(cmd) != 0) { printf("(could not remove %s)\n", g_dir); }
    return test_summary();
}
