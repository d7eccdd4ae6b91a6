/*
 * train_tokenizer.c: trains a byte-level BPE tokenizer on your text and writes
 * it as a version-3 tokenizer file (SPEC section 3, docs/tokenizer.md) that
 * llmc/tokenizer.h loads and encodes with, and train_gpt/make_shards take as -tk.
 *
 *   make train_tokenizer
 *   ./train_tokenizer -i "data/mine/part_?.txt" -vs 8192 -o data/mine/tok8k.bin
 *   OMP_NUM_THREADS=2 ./train_tokenizer -i a.txt -i b.txt -vs 4096 -o tok4k.bin
 *
 * The vocabulary: ids 0..255 are the 256 bytes, 256.. the merges in the order
 * they were learned (merge k makes id 256 + k), and the last id (vocab_size - 1)
 * is the special token <|endoftext|>, as in GPT-2's file.
 *
 * Algorithm (exact: the merges equal those of the naive "recount every pair
 * after every merge" trainer, test/test_train_tokenizer.c checks that):
 * 1. Each input file is split into pre-tokens by GPT-2's pattern, the same code
 *    the encoder uses (tok_pretoken_end in llmc/tokenizer.h); a pre-token never
 *    spans two files. Files are read in blocks, each block is cut into chunks at
 *    points where the pre-tokenization provably restarts (see safe_cut), and the
 *    OpenMP threads count words (pre-token bytes -> count) into a hash map each,
 *    merged at the end.
 * 2. BPE over the unique words. A pair's count is the sum over words of
 *    count(word) * (adjacent positions holding the pair); overlapping positions
 *    ("aaa" holds (a, a) twice) both count, as a naive recount would. Each step
 *    takes the pair with the highest count; ties go to the smallest (left id,
 *    right id), left id first. Every occurrence in every word is merged left to
 *    right without overlap ("aaa" -> "aa" "a"), exactly what tokenizer_encode
 *    does with the merge. A pair whose merged token would be longer than 255
 *    bytes is never counted or merged (the file stores one length byte).
 *    Each pair keeps the list of words it has been in; a merge touches only the
 *    words in its pair's list, takes away all their pairs' counts and adds back
 *    those of the merged word. The best pair comes from a max-heap with lazy
 *    deletion: an entry is live while its count equals the pair's count, and a
 *    pair is pushed again whenever its count changes during a merge.
 * When no pair is left before vocab_size is reached, the file holds fewer
 * merges (vocab_size = 257 + merges) and a warning says so.
 *
 * Flags: -i <glob or file> (repeatable; plain arguments are files too),
 * -vs vocab size (default 8192, 257..2097152), -o output file (required),
 * -bs read block in bytes (default 64 MiB; small values exercise the chunking).
 * Threads: OMP_NUM_THREADS. Progress goes to stderr, the summary to stdout.
 */
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "llmc/tokenizer.h"
#include "llmc/utils.h"

#define MAX_VOCAB (1 << 21)
#define MAX_TOKEN_LEN 255  // the file's one length byte
static const char EOT_TEXT[] = "<|endoftext|>";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// ----------------------------------------------------------------------------
// word counts: an open-addressing hash map, pre-token bytes -> count. The bytes
// live in the map's arena; a slot with len 0 is empty (a pre-token is never empty).

typedef struct {
    uint64_t hash;
    uint64_t head;   // the word's first 8 bytes (zero-padded): most words are compared without the arena
    uint64_t off;    // the word's bytes are arena[off .. off + len)
    uint64_t count;
    uint32_t len;
} WordSlot;

typedef struct {
    WordSlot* slots;        // (cap,)
    size_t cap, n;          // cap a power of two; n used slots
    unsigned char* arena;   // (arena_len,) all words' bytes, one after another
    size_t arena_len, arena_cap;
} WordMap;

// word_hash: 64-bit hash of s[0..n), eight bytes at a time
static inline uint64_t word_hash(const unsigned char* s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xff51afd7ed558ccdULL);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        h = (h ^ v) * 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 29;
    }
    uint64_t v = 0;
    memcpy(&v, s + i, n - i);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 32;
    return h * 0xff51afd7ed558ccdULL ^ (h >> 31);
}

static void word_map_init(WordMap* m) {
    memset(m, 0, sizeof(*m));
    m->cap = 1 << 12;
    m->slots = (WordSlot*)callocCheck(m->cap, sizeof(WordSlot));
}

static void word_map_free(WordMap* m) { free(m->slots); free(m->arena); }

static void word_map_grow(WordMap* m) {
    size_t cap = 2 * m->cap, mask = cap - 1;
    WordSlot* s = (WordSlot*)callocCheck(cap, sizeof(WordSlot));
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].len == 0) continue;
        size_t j = m->slots[i].hash & mask;
        while (s[j].len != 0) j = (j + 1) & mask;
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->cap = cap;
}

// word_map_add: count[w] += c for the word w = s[0..n) with hash h
static void word_map_add(WordMap* m, const unsigned char* s, size_t n, uint64_t h, uint64_t c) {
    if (n > UINT32_MAX) { die("a pre-token of %zu bytes is too long", n); }
    uint64_t head = 0;
    memcpy(&head, s, n < 8 ? n : 8);
    size_t mask = m->cap - 1, i = h & mask;
    while (m->slots[i].len != 0) {
        WordSlot* e = &m->slots[i];
        if (e->hash == h && e->len == n && e->head == head && (n <= 8 || memcmp(m->arena + e->off + 8, s + 8, n - 8) == 0)) {
            e->count += c;
            return;
        }
        i = (i + 1) & mask;
    }
    if (m->arena_len + n > m->arena_cap) {
        m->arena_cap = 2 * (m->arena_len + n) + (1 << 16);
        m->arena = (unsigned char*)reallocCheck(m->arena, m->arena_cap);
    }
    memcpy(m->arena + m->arena_len, s, n);
    m->slots[i] = (WordSlot){h, head, m->arena_len, c, (uint32_t)n};
    m->arena_len += n;
    if (++m->n * 2 > m->cap) word_map_grow(m);
}

// count_words: adds every pre-token of text[0..n) to m
static void count_words(WordMap* m, const unsigned char* text, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t j = tok_pretoken_end(text, n, i);
        word_map_add(m, text + i, j - i, word_hash(text + i, j - i), 1);
        i = j;
    }
}

// ascii_nonspace: c is a whole ASCII character outside JavaScript's \s
static inline int ascii_nonspace(unsigned char c) { return c < 0x80 && c != ' ' && !(c >= 0x09 && c <= 0x0D); }

// is_safe_cut: the pre-tokens of s[0..n) are those of s[0..p) followed by those of
// s[p..n) when s[p-2] is an ASCII non-space, s[p-1] a newline and s[p] an ASCII
// non-space. Why: the piece holding s[p-2] stops at the newline (no class run,
// contraction or " ?" prefix takes a newline), the newline is a lone whitespace
// run, which is a piece of its own whether or not text follows it (a longer run
// before a cut would give back its last character only when text follows), and
// tok_pretoken_end never looks behind its start.
static inline int is_safe_cut(const unsigned char* s, size_t p) {
    return p >= 2 && s[p - 1] == '\n' && ascii_nonspace(s[p - 2]) && ascii_nonspace(s[p]);
}

// next_safe_cut: the first safe cut p in [from, n), or n when there is none
static size_t next_safe_cut(const unsigned char* s, size_t n, size_t from) {
    for (size_t p = from < 2 ? 2 : from; p < n; p++) {
        if (s[p - 1] == '\n' && is_safe_cut(s, p)) return p;
    }
    return n;
}

// last_safe_cut: the last safe cut p in [from, n), or 0 when there is none (from:
// where the text was checked up to, so a long line is not rescanned at each block)
static size_t last_safe_cut(const unsigned char* s, size_t n, size_t from) {
    if (from < 2) from = 2;
    for (size_t p = n - 1; p >= from && p < n; p--) {
        if (s[p - 1] == '\n' && is_safe_cut(s, p)) return p;
    }
    return 0;
}

// count_block: the pre-tokens of s[0..n) (whole pre-tokens: n is a safe cut or a
// file's end) into maps[thread]; the block is cut into up to 4 chunks per thread
static void count_block(WordMap* maps, int nthreads, const unsigned char* s, size_t n) {
    int nchunks = n < 4096 ? 1 : 4 * nthreads;
    size_t* cut = (size_t*)mallocCheck((nchunks + 1) * sizeof(size_t));
    cut[0] = 0;
    for (int k = 1; k < nchunks; k++) {
        size_t target = (size_t)((double)n * k / nchunks);
        cut[k] = next_safe_cut(s, n, target > cut[k - 1] ? target : cut[k - 1]);
    }
    cut[nchunks] = n;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
#endif
    for (int k = 0; k < nchunks; k++) {
#ifdef _OPENMP
        int t = omp_get_thread_num();
#else
        int t = 0;
#endif
        if (cut[k + 1] > cut[k]) count_words(&maps[t], s + cut[k], cut[k + 1] - cut[k]);
    }
    free(cut);
}

// ----------------------------------------------------------------------------
// reading the input

typedef struct {
    char** paths;
    size_t n, cap;
} PathList;

static void paths_add(PathList* l, const char* p) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->paths = (char**)reallocCheck(l->paths, l->cap * sizeof(char*));
    }
    size_t len = strlen(p);
    l->paths[l->n] = (char*)mallocCheck(len + 1);
    memcpy(l->paths[l->n], p, len + 1);
    l->n++;
}

// add_input: a pattern with a wildcard is expanded (sorted, like the shell); a
// plain path is taken as is, so a missing file fails when it is opened
static void add_input(PathList* l, const char* pattern) {
    if (strpbrk(pattern, "*?[") == NULL) { paths_add(l, pattern); return; }
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) { die("no file matches '%s'", pattern); }
    if (rc != 0) { die("glob '%s' failed", pattern); }
    for (size_t i = 0; i < g.gl_pathc; i++) paths_add(l, g.gl_pathv[i]);
    globfree(&g);
}

// count_inputs: every file's words into maps[0] (the other maps are merged into
// it and freed); returns the bytes read
static uint64_t count_inputs(const PathList* in, WordMap* maps, int nthreads, size_t block) {
    uint64_t total = 0;
    size_t cap = 0;
    unsigned char* buf = NULL;
    double t0 = now_s(), last_report = t0;
    for (size_t f = 0; f < in->n; f++) {
        const char* path = in->paths[f];
        struct stat st;
        if (stat(path, &st) != 0) { die("cannot open '%s': %s", path, strerror(errno)); }
        if (!S_ISREG(st.st_mode)) { die("'%s' is not a regular file", path); }
        FILE* fp = fopenCheck(path, "rb");
        size_t have = 0;  // bytes in buf not yet counted (a tail without a safe cut)
        int eof = 0;
        uint64_t left = (uint64_t)st.st_size;  // a block is no bigger than the file (a hint: it may grow)
        while (!eof) {
            size_t want = left + 1 < block ? (size_t)left + 1 : block;
            if (cap - have < want) {
                cap = have + want;
                buf = (unsigned char*)reallocCheck(buf, cap);
            }
            size_t got = fread(buf + have, 1, want, fp);
            if (got < want) {
                if (ferror(fp)) { die("reading '%s' failed: %s", path, strerror(errno)); }
                eof = 1;
            }
            size_t checked = have;  // every cut below have was looked at before this read
            have += got;
            total += got;
            left = left > got ? left - got : 0;
            size_t upto = eof ? have : last_safe_cut(buf, have, checked);
            if (upto == 0) continue;  // no safe cut yet: read more behind it (buffer grows)
            count_block(maps, nthreads, buf, upto);
            memmove(buf, buf + upto, have - upto);
            have -= upto;
            double t = now_s();
            if (t - last_report > 2.0) {
                fprintf(stderr, "read %.1f MB | %.1f MB/s | file %zu/%zu\n", total / 1e6, total / 1e6 / (t - t0), f + 1, in->n);
                last_report = t;
            }
        }
        fclose(fp);
    }
    free(buf);
    for (int t = 1; t < nthreads; t++) {
        for (size_t i = 0; i < maps[t].cap; i++) {
            const WordSlot* e = &maps[t].slots[i];
            if (e->len != 0) word_map_add(&maps[0], maps[t].arena + e->off, e->len, e->hash, e->count);
        }
        word_map_free(&maps[t]);
    }
    return total;
}

// ----------------------------------------------------------------------------
// BPE over the unique words

typedef struct {
    int64_t count;     // sum over words of count(word) * occurrences
    int64_t old;       // count when first touched in the current merge
    uint32_t a, b;     // left id, right id
    uint32_t stamp;    // the merge that last touched it (1-based)
    uint32_t nwords, cap_words;
    uint32_t* words;   // (nwords,) words that have held the pair (may repeat or be stale)
} Pair;

typedef struct { int64_t count; uint32_t a, b; } HeapItem;

typedef struct {
    // words: symbols of word w are sym[off[w] .. off[w] + len[w])
    uint32_t* sym;
    uint64_t* off;        // (nw,)
    uint32_t* len;        // (nw,)
    uint64_t* freq;       // (nw,)
    uint32_t* stamp;      // (nw,) the merge that last visited the word
    size_t nw;
    // pairs: hash (tok_pair_key) -> index into pairs
    Pair* pairs;
    size_t npairs, pairs_cap;
    uint64_t* pkeys;      // (pcap,) 0 = empty
    uint32_t* pidx;       // (pcap,)
    size_t pcap;
    HeapItem* heap;
    size_t nheap, heap_cap;
    uint32_t* touched;    // pair indices touched by the current merge
    size_t ntouched, touched_cap;
    uint8_t* tlen;        // (vocab,) byte length of each token
} Bpe;

// heap order: higher count first, then smaller (a, b)
static inline int heap_before(HeapItem x, HeapItem y) {
    if (x.count != y.count) return x.count > y.count;
    if (x.a != y.a) return x.a < y.a;
    return x.b < y.b;
}

static void heap_push(Bpe* B, HeapItem x) {
    if (B->nheap == B->heap_cap) {
        B->heap_cap = B->heap_cap ? 2 * B->heap_cap : 1024;
        B->heap = (HeapItem*)reallocCheck(B->heap, B->heap_cap * sizeof(HeapItem));
    }
    size_t i = B->nheap++;
    while (i > 0 && heap_before(x, B->heap[(i - 1) / 2])) { B->heap[i] = B->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    B->heap[i] = x;
}

static HeapItem heap_pop(Bpe* B) {
    HeapItem top = B->heap[0], x = B->heap[--B->nheap];
    size_t i = 0, n = B->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(B->heap[c + 1], B->heap[c])) c++;
        if (!heap_before(B->heap[c], x)) break;
        B->heap[i] = B->heap[c];
        i = c;
    }
    B->heap[i] = x;
    return top;
}

// pair_find: the index of pair (a, b), created with count 0 when create is set;
// SIZE_MAX when it does not exist
static size_t pair_find(Bpe* B, uint32_t a, uint32_t b, int create) {
    uint64_t key = tok_pair_key(a, b);
    size_t mask = B->pcap - 1, i = tok_hash(key, mask);
    while (B->pkeys[i] != 0) {
        if (B->pkeys[i] == key) return B->pidx[i];
        i = (i + 1) & mask;
    }
    if (!create) return SIZE_MAX;
    if (B->npairs == B->pairs_cap) {
        B->pairs_cap = B->pairs_cap ? 2 * B->pairs_cap : 1 << 16;
        B->pairs = (Pair*)reallocCheck(B->pairs, B->pairs_cap * sizeof(Pair));
    }
    size_t idx = B->npairs++;
    B->pairs[idx] = (Pair){0, 0, a, b, 0, 0, 0, NULL};
    B->pkeys[i] = key;
    B->pidx[i] = (uint32_t)idx;
    if (B->npairs * 2 > B->pcap) {  // grow the table
        size_t cap = 2 * B->pcap, m2 = cap - 1;
        uint64_t* k2 = (uint64_t*)callocCheck(cap, sizeof(uint64_t));
        uint32_t* i2 = (uint32_t*)mallocCheck(cap * sizeof(uint32_t));
        for (size_t j = 0; j < B->pcap; j++) {
            if (B->pkeys[j] == 0) continue;
            size_t h = tok_hash(B->pkeys[j], m2);
            while (k2[h] != 0) h = (h + 1) & m2;
            k2[h] = B->pkeys[j];
            i2[h] = B->pidx[j];
        }
        free(B->pkeys); free(B->pidx);
        B->pkeys = k2; B->pidx = i2; B->pcap = cap;
    }
    return idx;
}

// pair_add: count(a, b) += d for word w in merge `stamp`; with list set, w joins
// the pair's word list. Pairs too long to merge are not tracked.
static void pair_add(Bpe* B, uint32_t a, uint32_t b, int64_t d, uint32_t w, uint32_t stamp, int list) {
    if ((int)B->tlen[a] + B->tlen[b] > MAX_TOKEN_LEN) return;
    size_t idx = pair_find(B, a, b, 1);
    Pair* p = &B->pairs[idx];
    if (p->stamp != stamp) {
        p->stamp = stamp;
        p->old = p->count;
        if (B->ntouched == B->touched_cap) {
            B->touched_cap = B->touched_cap ? 2 * B->touched_cap : 1024;
            B->touched = (uint32_t*)reallocCheck(B->touched, B->touched_cap * sizeof(uint32_t));
        }
        B->touched[B->ntouched++] = (uint32_t)idx;
    }
    p->count += d;
    if (list && (p->nwords == 0 || p->words[p->nwords - 1] != w)) {
        if (p->nwords == p->cap_words) {
            p->cap_words = p->cap_words ? 2 * p->cap_words : 2;
            p->words = (uint32_t*)reallocCheck(p->words, p->cap_words * sizeof(uint32_t));
        }
        p->words[p->nwords++] = w;
    }
}

// bpe_init: the words of map (those of two or more bytes: one byte has no pair)
// as byte-id sequences, every pair counted and pushed on the heap
static void bpe_init(Bpe* B, const WordMap* map, uint32_t vocab_size) {
    memset(B, 0, sizeof(*B));
    size_t nsym = 0;
    for (size_t i = 0; i < map->cap; i++) {
        if (map->slots[i].len >= 2) { B->nw++; nsym += map->slots[i].len; }
    }
    if (B->nw > UINT32_MAX) { die("too many distinct words (%zu)", B->nw); }
    B->sym = (uint32_t*)mallocCheck(nsym * sizeof(uint32_t));
    B->off = (uint64_t*)mallocCheck(B->nw * sizeof(uint64_t));
    B->len = (uint32_t*)mallocCheck(B->nw * sizeof(uint32_t));
    B->freq = (uint64_t*)mallocCheck(B->nw * sizeof(uint64_t));
    B->stamp = (uint32_t*)callocCheck(B->nw, sizeof(uint32_t));
    B->tlen = (uint8_t*)mallocCheck(vocab_size);
    for (uint32_t t = 0; t < vocab_size; t++) B->tlen[t] = t < 256 ? 1 : 0;
    B->pcap = 1 << 17;
    B->pkeys = (uint64_t*)callocCheck(B->pcap, sizeof(uint64_t));
    B->pidx = (uint32_t*)mallocCheck(B->pcap * sizeof(uint32_t));
    size_t w = 0, o = 0;
    for (size_t i = 0; i < map->cap; i++) {
        const WordSlot* e = &map->slots[i];
        if (e->len < 2) continue;
        B->off[w] = o;
        B->len[w] = e->len;
        B->freq[w] = e->count;
        const unsigned char* s = map->arena + e->off;
        for (uint32_t k = 0; k < e->len; k++) B->sym[o + k] = s[k];
        for (uint32_t k = 0; k + 1 < e->len; k++) pair_add(B, s[k], s[k + 1], (int64_t)e->count, (uint32_t)w, 1, 1);
        o += e->len;
        w++;
    }
    for (size_t i = 0; i < B->npairs; i++) {
        B->pairs[i].stamp = 0;
        heap_push(B, (HeapItem){B->pairs[i].count, B->pairs[i].a, B->pairs[i].b});
    }
    B->ntouched = 0;
}

// bpe_merge: merge number k (1-based stamp k + 1) of pair index pi into new id m
static void bpe_merge(Bpe* B, size_t pi, uint32_t m, uint32_t stamp) {
    uint32_t a = B->pairs[pi].a, b = B->pairs[pi].b;
    uint32_t* words = B->pairs[pi].words;  // not appended to below: new pairs all hold m
    uint32_t nwords = B->pairs[pi].nwords;
    B->tlen[m] = (uint8_t)(B->tlen[a] + B->tlen[b]);
    B->ntouched = 0;
    for (uint32_t k = 0; k < nwords; k++) {
        uint32_t w = words[k];
        if (B->stamp[w] == stamp) continue;
        B->stamp[w] = stamp;
        uint32_t* s = B->sym + B->off[w];
        uint32_t n = B->len[w];
        uint32_t i = 0;
        while (i + 1 < n && !(s[i] == a && s[i + 1] == b)) i++;
        if (i + 1 >= n) continue;  // a stale entry: the word no longer holds the pair
        // The pairs that change: an old pair goes away when one of its two symbols
        // is in a merged occurrence, and every new pair that holds m is added; the
        // other pairs are the same in the old and the new word.
        int64_t f = (int64_t)B->freq[w];
        uint32_t o = 0;
        int prev_merged = 0;  // the symbol just before position j was part of an occurrence
        for (uint32_t j = 0; j < n;) {
            if (j + 1 < n && s[j] == a && s[j + 1] == b) {
                if (j > 0 && !prev_merged) pair_add(B, s[j - 1], a, -f, w, stamp, 0);
                pair_add(B, a, b, -f, w, stamp, 0);
                if (j + 2 < n) pair_add(B, b, s[j + 2], -f, w, stamp, 0);
                s[o++] = m;
                j += 2;
                prev_merged = 1;
            } else {
                s[o++] = s[j++];
                prev_merged = 0;
            }
        }
        B->len[w] = n = o;
        for (uint32_t j = 0; j + 1 < n; j++) {
            if (s[j] == m || s[j + 1] == m) pair_add(B, s[j], s[j + 1], f, w, stamp, 1);
        }
    }
    for (size_t t = 0; t < B->ntouched; t++) {
        Pair* p = &B->pairs[B->touched[t]];
        if (p->count != p->old && p->count > 0) heap_push(B, (HeapItem){p->count, p->a, p->b});
    }
    Pair* p = &B->pairs[pi];
    free(p->words);
    p->words = NULL;
    p->nwords = p->cap_words = 0;
}

// bpe_train: up to max_merges merges into merges (max_merges, 3) = (left, right,
// new id); returns how many were made (fewer when the pairs run out)
static uint32_t bpe_train(Bpe* B, uint32_t max_merges, uint32_t* merges, int verbose) {
    double t0 = now_s(), last = t0;
    uint32_t k = 0;
    while (k < max_merges) {
        size_t pi = SIZE_MAX;
        while (B->nheap > 0) {
            HeapItem top = heap_pop(B);
            size_t idx = pair_find(B, top.a, top.b, 0);
            if (idx != SIZE_MAX && top.count > 0 && B->pairs[idx].count == top.count) { pi = idx; break; }
        }
        if (pi == SIZE_MAX) break;  // no pair left
        uint32_t m = 256 + k;
        merges[3 * k] = B->pairs[pi].a;
        merges[3 * k + 1] = B->pairs[pi].b;
        merges[3 * k + 2] = m;
        bpe_merge(B, pi, m, k + 2);  // stamps: 1 was bpe_init's
        k++;
        double t = now_s();
        if (verbose && (t - last > 2.0 || k == max_merges)) {
            fprintf(stderr, "merges %u/%u | %.1f s\n", k, max_merges, t - t0);
            last = t;
        }
    }
    return k;
}

static void bpe_free(Bpe* B) {
    for (size_t i = 0; i < B->npairs; i++) free(B->pairs[i].words);
    free(B->pairs); free(B->pkeys); free(B->pidx); free(B->heap); free(B->touched);
    free(B->sym); free(B->off); free(B->len); free(B->freq); free(B->stamp); free(B->tlen);
}

// ----------------------------------------------------------------------------

typedef struct {
    PathList inputs;
    const char* output;   // -o
    long long vocab_size; // -vs
    long long block;      // -bs
} Args;

static void usage(const char* prog) {
    printf("usage: %s -i <glob or file> [-i ...] [files...] -o <tokenizer.bin> [-vs <int>] [-bs <int>]\n", prog);
    printf("  -i <glob>   input text files (quote the glob; repeatable; plain arguments are files too)\n");
    printf("  -o <path>   the tokenizer file to write (version 3, docs/tokenizer.md)\n");
    printf("  -vs <int>   vocabulary size: 256 bytes + merges + <|endoftext|> (default 8192, 257..%d)\n", MAX_VOCAB);
    printf("  -bs <int>   bytes read per block (default 67108864)\n");
    printf("threads: OMP_NUM_THREADS\n");
}

static void parse_args(Args* a, int argc, char** argv) {
    memset(a, 0, sizeof(*a));
    a->vocab_size = 8192;
    a->block = 64LL << 20;
    for (int i = 1; i < argc; i++) {
        const char* f = argv[i];
        if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0) { usage(argv[0]); exit(0); }
        if (f[0] != '-' || f[1] == '\0') { add_input(&a->inputs, f); continue; }
        if (i + 1 >= argc) { die("flag %s needs a value (see -h)", f); }
        const char* v = argv[++i];
        if (strcmp(f, "-i") == 0) add_input(&a->inputs, v);
        else if (strcmp(f, "-o") == 0) a->output = v;
        else if (strcmp(f, "-vs") == 0) a->vocab_size = parse_long(v, f, 257, MAX_VOCAB);
        else if (strcmp(f, "-bs") == 0) a->block = parse_long(v, f, 16, 1LL << 34);
        else die("unknown flag %s (see -h)", f);
    }
    if (a->output == NULL) { die("flag -o <tokenizer.bin> is required (see -h)"); }
    if (a->inputs.n == 0) { die("no input: give -i <glob> or files (see -h)"); }
    // fail before the work, not after: the output's directory must be writable
    char dir[1024];
    if (snprintf(dir, sizeof(dir), "%s", a->output) >= (int)sizeof(dir)) { die("output path too long"); }
    char* slash = strrchr(dir, '/');
    if (slash == NULL) snprintf(dir, sizeof(dir), ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) { die("cannot write '%s': directory '%s' does not exist", a->output, dir); }
    if (access(dir, W_OK) != 0) { die("cannot write '%s': directory '%s' is not writable", a->output, dir); }
    if (stat(a->output, &st) == 0 && S_ISDIR(st.st_mode)) { die("cannot write '%s': it is a directory", a->output); }
}

#ifndef TESTING
int main(int argc, char** argv) {
    Args args;
    parse_args(&args, argc, argv);
#ifdef _OPENMP
    int nthreads = omp_get_max_threads();
#else
    int nthreads = 1;
#endif
    double t0 = now_s();
    WordMap* maps = (WordMap*)mallocCheck(nthreads * sizeof(WordMap));
    for (int t = 0; t < nthreads; t++) word_map_init(&maps[t]);
    uint64_t bytes = count_inputs(&args.inputs, maps, nthreads, (size_t)args.block);
    if (bytes == 0) { die("the input is empty (%zu files, 0 bytes)", args.inputs.n); }
    double t1 = now_s();
    uint64_t words = 0;
    for (size_t i = 0; i < maps[0].cap; i++) words += maps[0].slots[i].count;
    fprintf(stderr, "read %.1f MB in %zu files | %.1f MB/s | %llu words, %zu distinct | %.2f s\n", bytes / 1e6,
            args.inputs.n, bytes / 1e6 / (t1 - t0), (unsigned long long)words, maps[0].n, t1 - t0);

    uint32_t vs = (uint32_t)args.vocab_size, max_merges = vs - 257;
    Bpe B;
    bpe_init(&B, &maps[0], vs);
    uint32_t* merges = (uint32_t*)mallocCheck(3 * (size_t)(max_merges + 1) * sizeof(uint32_t));
    uint32_t nm = bpe_train(&B, max_merges, merges, 1);
    double t2 = now_s();
    if (nm < max_merges) {
        fprintf(stderr, "warning: the corpus has no pair left after %u merges: the vocabulary has %u tokens, not %u\n",
                nm, 257 + nm, vs);
        vs = 257 + nm;
    }
    // the tokens: 256 bytes, the merges, EOT last
    unsigned char** tb = (unsigned char**)mallocCheck(vs * sizeof(unsigned char*));
    uint8_t* tl = (uint8_t*)mallocCheck(vs);
    for (uint32_t t = 0; t < 256; t++) { tb[t] = (unsigned char*)mallocCheck(1); tb[t][0] = (unsigned char)t; tl[t] = 1; }
    for (uint32_t k = 0; k < nm; k++) {
        uint32_t a = merges[3 * k], b = merges[3 * k + 1], m = 256 + k;
        tl[m] = (uint8_t)(tl[a] + tl[b]);
        tb[m] = (unsigned char*)mallocCheck(tl[m]);
        memcpy(tb[m], tb[a], tl[a]);
        memcpy(tb[m] + tl[a], tb[b], tl[b]);
    }
    tl[vs - 1] = (uint8_t)(sizeof(EOT_TEXT) - 1);
    tb[vs - 1] = (unsigned char*)mallocCheck(tl[vs - 1]);
    memcpy(tb[vs - 1], EOT_TEXT, tl[vs - 1]);
    tokenizer_write(args.output, vs, vs - 1, tb, tl, merges, nm);
    double t3 = now_s();
    printf("bytes %llu | words %llu (%zu distinct) | merges %u | vocab %u (EOT %u) | count %.2f s, merge %.2f s, "
           "total %.2f s (%.1f MB/s) | threads %d | wrote %s\n",
           (unsigned long long)bytes, (unsigned long long)words, maps[0].n, nm, vs, vs - 1, t1 - t0, t2 - t1, t3 - t0,
           bytes / 1e6 / (t3 - t0), nthreads, args.output);
    for (uint32_t t = 0; t < vs; t++) free(tb[t]);
    free(tb); free(tl); free(merges);
    bpe_free(&B);
    word_map_free(&maps[0]);
    free(maps);
    for (size_t i = 0; i < args.inputs.n; i++) free(args.inputs.paths[i]);
    free(args.inputs.paths);
    return 0;
}
#endif
