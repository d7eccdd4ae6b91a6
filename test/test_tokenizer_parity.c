/*
 * test_tokenizer_parity.c: our encoder against independent references.
 * - ours (.bin) against gpt-3-encoder's Encoder.js: reads the cases written by
 *   test/tokenizer_parity.js (each string with the ids Encoder.js gave it) and the
 *   class node's regex gives every code point, and checks that we produce
 *   identical ids, that decode(encode(s)) == s, and that our character classes
 *   agree with node's for all 0x110000 code points.
 * - a tokenizer.json (--json) against @huggingface/tokenizers and the vocabulary's
 *   own encoder: reads the cases of test/tokenizer_json_parity.mjs.
 *
 *   bash test/tokenizer_parity.sh     (fetches the npm packages if needed)
 */
#include "llmc/tokenizer.h"
#include "test.h"

static uint32_t* read_ids(FILE* fp, const char* path, uint32_t* n) {
    freadCheck(n, 4, 1, fp, path);
    if (*n == 0xffffffffu) return NULL;
    uint32_t* ids = (uint32_t*)mallocCheck(((size_t)*n + 1) * 4);
    freadCheck(ids, 4, *n, fp, path);
    return ids;
}

// same_ids: 1 when ours == want, else prints where they part
static int same_ids(const uint32_t* ours, size_t n, const uint32_t* want, uint32_t nw, const char* who, const char* s,
                    uint32_t blen) {
    if (n == nw && memcmp(ours, want, n * 4) == 0) return 1;
    size_t k = 0;
    while (k < n && k < nw && ours[k] == want[k]) k++;
    printf("     mismatch with %s (%u bytes) at token %zu: ours %u, theirs %u; text: %.60s\n", who, blen, k,
           k < n ? ours[k] : 0, k < nw ? want[k] : 0, s);
    return 0;
}

static int round_trips_raw(const Tokenizer* t, const uint32_t* ids, size_t n, const char* s, size_t blen);

// round_trips: decode(ids) == s (for an NFC tokenizer: == NFC(s))
static int round_trips(const Tokenizer* t, const uint32_t* ids, size_t n, const char* s0, size_t blen) {
    unsigned char* norm = NULL;
    const char* s = s0;
    if (t->nfc) { blen = tok_nfc((const unsigned char*)s0, blen, &norm); s = (const char*)norm; }
    int ok = round_trips_raw(t, ids, n, s, blen);
    free(norm);
    return ok;
}

static int round_trips_raw(const Tokenizer* t, const uint32_t* ids, size_t n, const char* s, size_t blen) {
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        size_t len;
        const unsigned char* b = tokenizer_decode(t, ids[k], &len);
        if (m + len > blen || memcmp(s + m, b, len) != 0) return 0;
        m += len;
    }
    return m == blen;
}

// json_mode: cases.bin = u32 ref_special, u32 has_ref, then per case u32 length, the
// bytes, u32 n + ids of @huggingface/tokenizers, and (has_ref) u32 n + ids of the
// second reference (n = 0xffffffff: none for this string)
static int json_mode(const char* tok_path, const char* cases, const char* name, const char* ref_name) {
    Tokenizer t;
    tokenizer_init(&t, tok_path);
    FILE* fp = fopenCheck(cases, "rb");
    long long size = file_size(fp, cases);
    uint32_t ref_special, has_ref;
    freadCheck(&ref_special, 4, 1, fp, cases);
    freadCheck(&has_ref, 4, 1, fp, cases);
    int ncase = 0, nref = 0, bad_hf = 0, bad_ref = 0, bad_rt = 0;
    size_t bytes = 0;
    uint32_t* ids = NULL;
    size_t cap = 0;
    while (ftello(fp) < size) {
        uint32_t blen, nh, nr = 0;
        freadCheck(&blen, 4, 1, fp, cases);
        char* s = (char*)mallocCheck(blen + 1);
        freadCheck(s, 1, blen, fp, cases);
        s[blen] = '\0';
        uint32_t* hf = read_ids(fp, cases, &nh);
        uint32_t* ref = has_ref ? read_ids(fp, cases, &nr) : NULL;
        ncase++;
        bytes += blen;
        size_t n = tokenizer_encode(&t, s, blen, 1, &ids, &cap);
        bad_hf += !same_ids(ids, n, hf, nh, "@huggingface/tokenizers", s, blen);
        bad_rt += !round_trips(&t, ids, n, s, blen);
        if (ref != NULL) {
            nref++;
            if (!ref_special) n = tokenizer_encode(&t, s, blen, 0, &ids, &cap);
            bad_ref += !same_ids(ids, n, ref, nr, ref_name, s, blen);
        }
        free(s); free(hf); free(ref);
    }
    fclose(fp);
    CHECK(bad_hf == 0, "%s: token ids identical to @huggingface/tokenizers on %d strings, %.2f MB (%d differ)", name, ncase,
          bytes / 1e6, bad_hf);
    if (has_ref) {
        CHECK(bad_ref == 0, "%s: token ids identical to %s on %d strings (%d differ)", name, ref_name, nref, bad_ref);
    }
    CHECK(bad_rt == 0, "%s: decode(encode(s)) == s on %d strings (%d differ)", name, ncase, bad_rt);
    free(ids);
    tokenizer_free(&t);
    return test_summary();
}

int main(int argc, char** argv) {
    if (argc == 6 && strcmp(argv[1], "--json") == 0) { return json_mode(argv[2], argv[3], argv[4], argv[5]); }
    if (argc != 5) {
        die("usage: %s <tokenizer.bin> <cases.bin> <classes.bin> <node's Unicode version>\n"
            "       %s --json <tokenizer.json|dir> <cases.bin> <name> <second reference's name>", argv[0], argv[0]);
    }
    Tokenizer t;
    tokenizer_init(&t, argv[1]);
    // character classes
    FILE* fc = fopenCheck(argv[3], "rb");
    unsigned char* cls = (unsigned char*)mallocCheck(0x110000);
    freadCheck(cls, 1, 0x110000, fc, argv[3]);
    fclose(fc);
    int bad = 0;
    uint32_t first_bad = 0;
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        if (tok_class(cp) != cls[cp]) { if (!bad) first_bad = cp; bad++; }
    }
    if (strcmp(argv[4], UNICODE_TABLES_VERSION) == 0) {
        CHECK(bad == 0, "character classes agree with node's regex for every code point (%d differ, first U+%04X)", bad,
              first_bad);
    } else {
        // another node, another Unicode: newly assigned code points may differ
        printf("note: the tables are Unicode %s, this node has %s: %d code points classed differently (first U+%04X); "
               "the token-id comparison below still holds for the test strings\n",
               UNICODE_TABLES_VERSION, argv[4], bad, first_bad);
    }
    free(cls);
    // cases
    FILE* fp = fopenCheck(argv[2], "rb");
    long long size = file_size(fp, argv[2]);
    int ncase = 0, nfail = 0, nrt = 0;
    uint32_t* ids = NULL;
    size_t cap = 0;
    while (ftello(fp) < size) {
        uint32_t blen, nids;
        freadCheck(&blen, 4, 1, fp, argv[2]);
        char* s = (char*)mallocCheck(blen + 1);
        freadCheck(s, 1, blen, fp, argv[2]);
        freadCheck(&nids, 4, 1, fp, argv[2]);
        uint32_t* want = (uint32_t*)mallocCheck((nids + 1) * 4);
        freadCheck(want, 4, nids, fp, argv[2]);
        size_t n = tokenizer_encode(&t, s, blen, 0, &ids, &cap);
        ncase++;
        if (n != nids || memcmp(ids, want, n * 4) != 0) {
            nfail++;
            size_t k = 0;
            while (k < n && k < nids && ids[k] == want[k]) k++;
            printf("     mismatch in case %d (%u bytes) at token %zu: ours %u, Encoder.js %u; text: %.60s\n", ncase, blen, k,
                   k < n ? ids[k] : 0, k < nids ? want[k] : 0, s);
        }
        // round trip
        size_t m = 0;
        int same = 1;
        for (size_t k = 0; k < n && same; k++) {
            size_t len;
            const unsigned char* b = tokenizer_decode(&t, ids[k], &len);
            same = m + len <= blen && memcmp(s + m, b, len) == 0;
            m += len;
        }
        if (!(same && m == blen)) nrt++;
        free(s);
        free(want);
    }
    fclose(fp);
    CHECK(nfail == 0, "token ids identical to Encoder.js on %d strings (%d differ)", ncase, nfail);
    CHECK(nrt == 0, "decode(encode(s)) == s on %d strings (%d differ)", ncase, nrt);
    free(ids);
    tokenizer_free(&t);
    return test_summary();
}
