/*
 * test_tokenizer_parity.c: our encoder against gpt-3-encoder's Encoder.js.
 * Reads the cases written by test/tokenizer_parity.js (each string with the
 * ids Encoder.js gave it) and the class node's regex gives every code point,
 * and checks that we produce identical ids, that decode(encode(s)) == s, and
 * that our character classes agree with node's for all 0x110000 code points.
 *
 *   bash test/tokenizer_parity.sh     (fetches gpt-3-encoder with npm if needed)
 */
#include "llmc/tokenizer.h"
#include "test.h"

int main(int argc, char** argv) {
    if (argc != 5) { die("usage: %s <tokenizer.bin> <cases.bin> <classes.bin> <node's Unicode version>", argv[0]); }
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
