/*
 * test_tokenizer.c: the C tokenizer on its own: known GPT-2 ids, the EOT
 * special token (only with allow_special), round trips of arbitrary bytes
 * including invalid UTF-8, the pre-tokenizer's whitespace and contraction
 * rules, the UTF-8 streaming printer, llm.c's version-2 file (decode only),
 * and bad files. Parity with Encoder.js on a broad set is tokenizer_parity.sh.
 *
 *   make test_tokenizer && ./test_tokenizer data/gpt2/tokenizer.bin
 */
#include <unistd.h>
#include "llmc/rand.h"
#include "llmc/tokenizer.h"
#include "test.h"

static size_t enc(const Tokenizer* t, const char* s, int special, uint32_t** ids, size_t* cap) {
    return tokenizer_encode(t, s, strlen(s), special, ids, cap);
}

static int roundtrip(const Tokenizer* t, const char* s, size_t n) {
    uint32_t* ids = NULL;
    size_t cap = 0;
    size_t k = tokenizer_encode(t, s, n, 0, &ids, &cap);
    size_t m = 0;
    int ok = 1;
    for (size_t i = 0; i < k && ok; i++) {
        size_t len;
        const unsigned char* b = tokenizer_decode(t, ids[i], &len);
        ok = m + len <= n && memcmp(s + m, b, len) == 0;
        m += len;
    }
    free(ids);
    return ok && m == n;
}

// pieces: the pre-tokens of s joined by '|'
static void pieces(const char* s, char* out) {
    size_t n = strlen(s), i = 0, o = 0;
    while (i < n) {
        size_t j = tok_pretoken_end((const unsigned char*)s, n, i);
        if (o) out[o++] = '|';
        memcpy(out + o, s + i, j - i);
        o += j - i;
        i = j;
    }
    out[o] = '\0';
}

int main(int argc, char** argv) {
    const char* path = argc > 1 ? argv[1] : "data/gpt2/tokenizer.bin";
    Tokenizer t;
    tokenizer_init(&t, path);
    CHECK(t.vocab_size == 50257 && t.eot_token == 50256 && t.can_encode, "GPT-2 vocab %u, EOT %u, can encode", t.vocab_size, t.eot_token);
    uint32_t* ids = NULL;
    size_t cap = 0;
    // ids published for GPT-2: "Hello world" = 15496 995; " the" = 262
    size_t n = enc(&t, "Hello world", 0, &ids, &cap);
    CHECK(n == 2 && ids[0] == 15496 && ids[1] == 995, "'Hello world' -> 15496 995 (got %zu ids: %u %u)", n, ids[0], n > 1 ? ids[1] : 0);
    n = enc(&t, " the", 0, &ids, &cap);
    CHECK(n == 1 && ids[0] == 262, "' the' -> 262");
    n = enc(&t, "a<|endoftext|>b", 1, &ids, &cap);
    CHECK(n == 3 && ids[1] == 50256, "'<|endoftext|>' with allow_special is EOT");
    n = enc(&t, "a<|endoftext|>b", 0, &ids, &cap);
    int has_eot = 0;
    for (size_t i = 0; i < n; i++) has_eot |= ids[i] == 50256;
    CHECK(!has_eot && n > 3, "'<|endoftext|>' without allow_special is plain text (%zu ids)", n);
    char buf[512];
    pieces("Hello  world\n\n x 's", buf);
    CHECK(strcmp(buf, "Hello| | world|\n\n| x| '|s") == 0, "pre-tokens of 'Hello  world\\n\\n x 's': %s", buf);
    pieces("I'll can't WE'RE", buf);
    CHECK(strcmp(buf, "I|'ll| can|'t| WE|'|RE") == 0, "contractions are lowercase only: %s", buf);
    pieces("abc123 \t end  ", buf);
    CHECK(strcmp(buf, "abc|123| \t| end|  ") == 0, "letters, numbers, whitespace runs: %s", buf);
    // round trips: strings, and random bytes (invalid UTF-8 included)
    const char* strs[] = {"", "x", "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x98\x80!", "\xff\xfe bad \xc3", "\xed\xa0\x80 surrogate",
                          "a\x80" "b", "\xc0\xaf overlong", "   \n\t\r\n  "};
    int ok = 1;
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) ok &= roundtrip(&t, strs[i], strlen(strs[i]));
    CHECK(ok, "decode(encode(s)) == s for strings with invalid UTF-8");
    uint64_t rng = 1;
    ok = 1;
    for (int r = 0; r < 200; r++) {
        char rb[300];
        size_t len = rng_below(&rng, sizeof(rb));
        for (size_t i = 0; i < len; i++) rb[i] = (char)rng_next_u32(&rng);
        ok &= roundtrip(&t, rb, len);
    }
    CHECK(ok, "decode(encode(s)) == s for 200 random byte strings");
    CHECK(utf8_first_invalid("ok \xc3\xa9", 5) == NULL, "utf8_first_invalid accepts valid UTF-8");
    const char* badu = "ab\xc3(";
    CHECK(utf8_first_invalid(badu, 4) == badu + 2, "utf8_first_invalid finds the bad byte");
    // the streaming printer holds back a split character
    FILE* fp = tmpfile();
    Utf8Stream u;
    utf8_stream_init(&u);
    utf8_stream_write(&u, (const unsigned char*)"a\xe6\x97", 3, fp);
    long mid = ftell(fp);
    utf8_stream_write(&u, (const unsigned char*)"\xa5" "b\x01", 3, fp);
    utf8_stream_flush(&u, fp);
    rewind(fp);
    char got[16] = {0};
    size_t gl = fread(got, 1, sizeof(got) - 1, fp);
    fclose(fp);
    CHECK(mid == 1 && gl == 5 && memcmp(got, "a\xe6\x97\xa5" "b", 5) == 0,
          "stream printer: holds a split character, drops control bytes (%ld, %zu)", mid, gl);
    // llm.c's version 2: the same tokens, no merges: decode only
    char dir[] = "/tmp/llmc_tok_XXXXXX";
    if (mkdtemp(dir) == NULL) die("mkdtemp");
    char v2[300];
    snprintf(v2, sizeof(v2), "%s/v2.bin", dir);
    FILE* out = fopenCheck(v2, "wb");
    int32_t h[256] = {20240328, 2, (int32_t)t.vocab_size, (int32_t)t.eot_token};
    fwrite(h, 4, 256, out);
    for (uint32_t i = 0; i < t.vocab_size; i++) { fputc(t.token_len[i], out); fwrite(t.token_bytes[i], 1, t.token_len[i], out); }
    fclose(out);
    Tokenizer t2;
    tokenizer_init(&t2, v2);
    size_t l1, l2;
    const unsigned char* b1 = tokenizer_decode(&t2, 15496, &l1);
    const unsigned char* b2 = tokenizer_decode(&t, 15496, &l2);
    CHECK(!t2.can_encode && l1 == l2 && memcmp(b1, b2, l1) == 0, "llm.c's version-2 file loads and decodes (no encoding)");
    tokenizer_free(&t2);
    unlink(v2);
    rmdir(dir);
    free(ids);
    tokenizer_free(&t);
    return test_summary();
}
