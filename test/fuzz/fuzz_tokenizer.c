/*
 * fuzz_tokenizer.c: libFuzzer target for the tokenizer.json loader
 * (tokenizer_init_json in llmc/tokenizer.h, and through it llmc/json.h).
 * Oracles for an accepted file: every id has its bytes, each byte has a one-byte
 * token, BOS and EOT are in range, and encoding a fixed text and the input's
 * own first bytes gives ids in range that decode back to those bytes, with
 * special tokens allowed and not; die() on bad input is fine (it longjmps back
 * here, and tokenizer_free releases what the loader held).
 *
 *   test/fuzz/run_fuzz.sh tokenizer         (builds into fuzz-build/ and runs)
 *   fuzz-build/fuzz_tokenizer CRASH_FILE    (replays one input)
 * Seeds: test/fuzz/corpus/tokenizer/ (GPT-2's pattern, Llama 3's, Qwen 2's with NFC).
 */
#include "fuzz_common.h"
#include "llmc/tokenizer.h"

static Tokenizer g_t;           // static: it must survive the longjmp of a die()
static uint32_t* g_ids = NULL;
static char g_path[320];

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc;
    (void)argv;
    fuzz_init("fuzz_tokenizer");
    snprintf(g_path, sizeof(g_path), "%s.json", fuzz_input_path);
    return 0;
}

static unsigned char* g_norm = NULL;

// check_roundtrip: decode(encode(s)) == s, or NFC(s) for a tokenizer with that normalizer
// (special tokens are not normalized, so s avoids them there)
static void check_roundtrip(const char* s0, size_t n0, int special) {
    size_t cap = 0, m = 0;
    size_t k = tokenizer_encode(&g_t, s0, n0, special, &g_ids, &cap);
    const char* s = s0;
    size_t n = n0;
    if (g_t.nfc) {
        for (int a = 0; a < g_t.num_added; a++) {  // added tokens are not normalized: no simple oracle
            if (memmem(s0, n0, g_t.added[a].bytes, g_t.added[a].len) != NULL) { free(g_ids); g_ids = NULL; return; }
        }
        n = tok_nfc((const unsigned char*)s0, n0, &g_norm);
        s = (const char*)g_norm;
    }
    for (size_t i = 0; i < k; i++) {
        FUZZ_ASSERT(g_ids[i] < g_t.vocab_size, "id out of range");
        size_t len;
        const unsigned char* b = tokenizer_decode(&g_t, g_ids[i], &len);
        FUZZ_ASSERT(m + len <= n && memcmp(s + m, b, len) == 0, "decode(encode(s)) != s");
        m += len;
    }
    FUZZ_ASSERT(m == n, "decode(encode(s)) is short");
    free(g_ids);
    g_ids = NULL;
    free(g_norm);
    g_norm = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz_write_input(data, size);
    rename(fuzz_input_path, g_path);  // the loader wants a .json name
    memset(&g_t, 0, sizeof(g_t));
    jmp_buf jb;
    if (setjmp(jb) == 0) {
        llmc_die_jmp = &jb;
        tokenizer_init_json(&g_t, g_path);
        FUZZ_ASSERT(g_t.vocab_size > 0 && g_t.can_encode && g_t.load == NULL, "loaded state");
        FUZZ_ASSERT(g_t.eot_token < g_t.vocab_size, "EOT out of range");
        FUZZ_ASSERT(g_t.bos_token == UINT32_MAX || g_t.bos_token < g_t.vocab_size, "BOS out of range");
        for (uint32_t i = 0; i < g_t.vocab_size; i++) { FUZZ_ASSERT(g_t.token_bytes[i] != NULL, "an id without bytes"); }
        for (int b = 0; b < 256; b++) {
            uint32_t id = g_t.byte_token[b];
            FUZZ_ASSERT(id < g_t.vocab_size && g_t.token_len[id] == 1 && g_t.token_bytes[id][0] == b, "byte token");
        }
        static const char text[] = "Hello, world! It's 2026: 12345 <|endoftext|>\r\n\n  caf\xc3\xa9 \xff\xfe x";
        check_roundtrip(text, sizeof(text) - 1, 0);
        check_roundtrip(text, sizeof(text) - 1, 1);
        check_roundtrip((const char*)data, size < 256 ? size : 256, 1);
    }
    llmc_die_jmp = NULL;
    free(g_ids);
    g_ids = NULL;
    free(g_norm);
    g_norm = NULL;
    fuzz_close_all();
    tokenizer_free(&g_t);
    unlink(g_path);
    return 0;
}
