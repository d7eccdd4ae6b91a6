/*
 * test_tokenizer.c: the C tokenizer on its own: known GPT-2 ids, the EOT
 * special token (only with allow_special), round trips of arbitrary bytes
 * including invalid UTF-8, the pre-tokenizer's whitespace and contraction
 * rules, the UTF-8 streaming printer, llm.c's version-2 file (decode only),
 * and bad files; tokenizer.json: a small one written here (added tokens
 * leftmost-longest, special only with allow_special, ignore_merges, BOS/EOT
 * from the post-processor and tokenizer_config.json) and Llama 3's (known ids,
 * pieces of its pattern, round trips of invalid UTF-8). Parity with the
 * JavaScript references on a broad set is tokenizer_parity.sh.
 *
 *   make test_tokenizer && ./test_tokenizer data/gpt2/tokenizer.bin [data/llama3/tokenizer.json]
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

// pieces_of: the pre-tokens of s joined by '|' (GPT-2's pattern, or Llama 3's)
static void pieces_of(const char* s, char* out, int llama3) {
    size_t n = strlen(s), i = 0, o = 0;
    while (i < n) {
        size_t j = llama3 ? tok_pretoken_end_llama3((const unsigned char*)s, n, i, 3)
                          : tok_pretoken_end((const unsigned char*)s, n, i);
        if (o) out[o++] = '|';
        memcpy(out + o, s + i, j - i);
        o += j - i;
        i = j;
    }
    out[o] = '\0';
}

static void pieces(const char* s, char* out) { pieces_of(s, out, 0); }

// byte-level string of raw bytes (GPT-2's map) as JSON-ready UTF-8
static void mapped(const char* raw, char* out) {
    uint32_t map[256];
    tok_byte_to_unicode(map);
    size_t o = 0;
    for (const unsigned char* p = (const unsigned char*)raw; *p; p++) {
        uint32_t cp = map[*p];
        if (cp == '"' || cp == '\\') { out[o++] = '\\'; out[o++] = (char)cp; }
        else if (cp < 0x80) { out[o++] = (char)cp; }
        else { out[o++] = (char)(0xC0 | (cp >> 6)); out[o++] = (char)(0x80 | (cp & 0x3F)); }
    }
    out[o] = '\0';
}

// tiny_json: a tokenizer.json of the 256 bytes (ids 0..255), "ab" (256), "abc" (257,
// reachable by no merge: only ignore_merges gives it), merges "a b", "ab c"... see below
static void tiny_json(const char* dir, int ignore_merges, const char* eos) {
    char path[300], m[16];
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    FILE* fp = fopenCheck(path, "wb");
    fprintf(fp, "{\"version\": \"1.0\", \"added_tokens\": [\n"
                "{\"id\": 259, \"content\": \"<s>\", \"special\": true},\n"
                "{\"id\": 260, \"content\": \"<x>\", \"special\": true},\n"
                "{\"id\": 261, \"content\": \"<x><y>\", \"special\": true},\n"
                "{\"id\": 262, \"content\": \"[note]\", \"special\": false}],\n"
                "\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true},\n"
                "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]},\n"
                "\"decoder\": {\"type\": \"ByteLevel\"},\n"
                "\"model\": {\"type\": \"BPE\", \"ignore_merges\": %s, \"vocab\": {", ignore_merges ? "true" : "false");
    for (int b = 0; b < 256; b++) {
        char raw[2] = {(char)b, 0};
        if (b == 0) { fprintf(fp, "\"%s\": 0", "\\u0100"); continue; }  // byte 0 maps to U+0100
        mapped(raw, m);
        fprintf(fp, ", \"%s\": %d", m, b);
    }
    fprintf(fp, ", \"ab\": 256, \"abc\": 257, \"bc\": 258}, \"merges\": [\"a b\", [\"b\", \"c\"]]}}\n");
    fclose(fp);
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    if (eos) {
        fp = fopenCheck(path, "wb");
        fprintf(fp, "{\"eos_token\": {\"content\": \"%s\"}}\n", eos);
        fclose(fp);
    } else {
        unlink(path);
    }
}

static int ids_are(const uint32_t* ids, size_t n, const uint32_t* want, size_t nw) {
    return n == nw && memcmp(ids, want, n * sizeof(uint32_t)) == 0;
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
    // ---- tokenizer.json: a small one
    {
        char jd[] = "/tmp/llmc_tokj_XXXXXX";
        if (mkdtemp(jd) == NULL) die("mkdtemp");
        tiny_json(jd, 0, "<x>");
        Tokenizer j;
        tokenizer_init(&j, jd);
        CHECK(j.vocab_size == 263 && j.bos_token == 259 && j.eot_token == 260 && j.can_encode && j.num_added == 4,
              "tokenizer.json folder: 263 tokens, BOS 259 from the post-processor, EOT 260 from tokenizer_config.json");
        n = enc(&j, "abc", 1, &ids, &cap);
        uint32_t w1[] = {256, 'c'};
        CHECK(ids_are(ids, n, w1, 2), "merges by rank: 'abc' -> ab c (no merge makes abc)");
        n = enc(&j, "a<x><y>b<x>c[note]", 1, &ids, &cap);
        uint32_t w2[] = {'a', 261, 'b', 260, 'c', 262};
        CHECK(ids_are(ids, n, w2, 6), "added tokens: leftmost-longest (<x><y> over <x>), special and not");
        n = enc(&j, "a<x>[note]", 0, &ids, &cap);
        uint32_t w3[] = {'a', '<', 'x', '>', 262};
        CHECK(ids_are(ids, n, w3, 5), "without allow_special a special token is text; a non-special one still matches");
        size_t l0;
        const unsigned char* b0 = tokenizer_decode(&j, 0, &l0);
        CHECK(l0 == 1 && b0[0] == 0 && j.byte_token[0] == 0, "U+0100 in the vocab is byte 0");
        tokenizer_free(&j);
        tiny_json(jd, 1, "<x>");
        char jp[300];
        snprintf(jp, sizeof(jp), "%s/tokenizer.json", jd);
        tokenizer_init(&j, jp);
        n = enc(&j, "abc", 1, &ids, &cap);
        CHECK(n == 1 && ids[0] == 257, "ignore_merges: a piece in the vocab ('abc') is that token");
        tokenizer_free(&j);
        unlink(jp);
        snprintf(jp, sizeof(jp), "%s/tokenizer_config.json", jd);
        unlink(jp);
        rmdir(jd);
    }
    // ---- NFC (UAX #15's examples): composition, a singleton, Hangul, reordering, exclusions
    {
        static const char* const nfc_cases[][2] = {
            {"e\xcc\x81", "\xc3\xa9"},                               // e + U+0301 -> U+00E9
            {"\xe2\x84\xab", "\xc3\x85"},                           // U+212B ANGSTROM SIGN -> U+00C5
            {"\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "\xea\xb0\x81"},  // jamo G A G -> U+AC01
            {"a\xcc\x87\xcc\xa3", "\xe1\xba\xa1\xcc\x87"},           // a + dot above + dot below -> U+1EA1 U+0307
            {"\xcd\x84", "\xcc\x88\xcc\x81"},                       // U+0344 (excluded) -> U+0308 U+0301
            {"\xe0\xa5\x98", "\xe0\xa4\x95\xe0\xa4\xbc"},             // U+0958 (excluded) -> U+0915 U+093C
            {"\xef\xac\x81 x", "\xef\xac\x81 x"},                    // U+FB01 (compatibility only) stays
            {"\xff e\xcc\x81\xcc", "\xff \xc3\xa9\xcc"},              // invalid bytes pass through
        };
        int nfc_ok = 1;
        for (size_t c = 0; c < sizeof(nfc_cases) / sizeof(nfc_cases[0]); c++) {
            unsigned char* o;
            size_t on = tok_nfc((const unsigned char*)nfc_cases[c][0], strlen(nfc_cases[c][0]), &o);
            if (on != strlen(nfc_cases[c][1]) || memcmp(o, nfc_cases[c][1], on) != 0) {
                printf("     NFC case %zu: got %zu bytes\n", c, on);
                nfc_ok = 0;
            }
            free(o);
        }
        CHECK(nfc_ok, "tok_nfc: composition, singleton, Hangul, mark order, exclusions, compatibility, invalid bytes");
    }
    // ---- Llama 3's tokenizer.json, when built (bash data/get_tokenizer.sh llama3)
    const char* l3 = argc > 2 ? argv[2] : "data/llama3/tokenizer.json";
    if (access(l3, R_OK) == 0) {
        Tokenizer j;
        tokenizer_init(&j, l3);
        CHECK(j.vocab_size == 128256 && j.bos_token == 128000 && j.eot_token == 128001 && j.pretok == TOK_PRE_LLAMA3 &&
              j.ignore_merges, "Llama 3: 128256 tokens, BOS 128000, EOT 128001, its pattern, ignore_merges");
        // llama3-tokenizer-js's README: "Hello world!" -> 9906 1917 0
        n = enc(&j, "Hello world!", 0, &ids, &cap);
        uint32_t w[] = {9906, 1917, 0};
        CHECK(ids_are(ids, n, w, 3), "Llama 3: 'Hello world!' -> 9906 1917 0");
        n = enc(&j, "<|eot_id|>", 1, &ids, &cap);
        CHECK(n == 1 && ids[0] == 128009, "Llama 3: <|eot_id|> with allow_special -> 128009");
        char pc[256];
        pieces_of("I'M 12345 x\r\n\n  y (z!!\n\n", pc, 1);
        CHECK(strcmp(pc, "I|'M| |123|45| x|\r\n\n| | y| (|z|!!\n\n") == 0, "Llama 3 pieces of \"I'M 12345 x\\r\\n\\n  y (z!!\\n\\n\": contraction, 3 digits, CR/LF run, space, symbol");
        uint64_t rs = 7;
        int rt = 1;
        for (int it = 0; it < 300 && rt; it++) {
            char buf[64];
            size_t len = 1 + rng_next_u32(&rs) % 63;
            for (size_t k = 0; k < len; k++) { buf[k] = (char)(rng_next_u32(&rs) & 0xFF); }
            rt = roundtrip(&j, buf, len);
        }
        CHECK(rt, "Llama 3: decode(encode(s)) == s for 300 random byte strings (invalid UTF-8)");
        tokenizer_free(&j);
    } else {
        printf("note: %s is not built (bash data/get_tokenizer.sh llama3): its checks are skipped\n", l3);
    }
    free(ids);
    tokenizer_free(&t);
    return test_summary();
}
