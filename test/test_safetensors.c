/*
 * test_safetensors.c: the JSON parser (llmc/json.h) and the safetensors reader
 * and writer (llmc/safetensors.h). Valid documents parse to the right values;
 * a writer -> reader round trip keeps names, shapes, order and values; and
 * every kind of hostile file (truncated, huge header length, bad JSON, not an
 * object, offsets past the end, overlapping, holes, trailing bytes, shape vs
 * offsets, bad dtype, duplicate names, ...) makes st_open print exactly one
 * line, "error: safetensors file '<path>': ...", and exit 1 (each case runs in
 * a forked child, so a crash shows up as a signal, and under the ASan build
 * as a report).
 *
 *   gcc -O3 -std=gnu11 -I. test/test_safetensors.c -o test_safetensors -lm && ./test_safetensors
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "llmc/json.h"
#include "llmc/safetensors.h"
#include "test/test.h"

static char g_dir[256];

static void write_file(const char* path, const void* data, size_t n) {
    FILE* fp = fopenCheck(path, "wb");
    fwriteCheck(data, 1, n, fp, path);
    fcloseCheck(fp, path);
}

// make_st: a file of an 8-byte length (hlen_override when nonzero), the header text, then `data` bytes of zeros
static void make_st(const char* path, const char* header, uint64_t hlen_override, size_t data) {
    size_t h = strlen(header);
    size_t n = 8 + h + data;
    unsigned char* b = (unsigned char*)callocCheck(n, 1);
    uint64_t len = hlen_override ? hlen_override : h;
    for (int i = 0; i < 8; i++) { b[i] = (unsigned char)(len >> (8 * i)); }
    memcpy(b + 8, header, h);
    write_file(path, b, n);
    free(b);
}

// open_in_child: runs st_open (and reads every tensor) on path in a child;
// returns its exit status (or 128 + signal) and stderr in err
static int open_in_child(const char* path, char* err, size_t errcap) {
    int pfd[2];
    if (pipe(pfd) != 0) { die("pipe failed"); }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], 2);
        SafeTensors st;
        st_open(&st, path);
        for (int i = 0; i < st.n; i++) {
            float* buf = (float*)mallocCheck((size_t)st.tensors[i].numel * sizeof(float));
            st_read_f32(&st, &st.tensors[i], buf);
            free(buf);
        }
        st_close(&st);
        _exit(0);
    }
    close(pfd[1]);
    size_t n = 0;
    ssize_t k;
    while ((k = read(pfd[0], err + n, errcap - 1 - n)) > 0) { n += (size_t)k; }
    err[n] = '\0';
    close(pfd[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// expect_reject: the file must give exit 1 and one "error:" line naming it that contains `what`
static void expect_reject(const char* desc, const char* path, const char* what) {
    char err[4096];
    int rc = open_in_child(path, err, sizeof(err));
    int lines = 0;
    for (char* p = err; *p; p++) { lines += *p == '\n'; }
    int good = rc == 1 && lines == 1 && strncmp(err, "error: ", 7) == 0 && strstr(err, path) != NULL &&
               strstr(err, what) != NULL;
    char* nl = strchr(err, '\n');
    if (nl != NULL) { *nl = '\0'; }
    CHECK(good, "%-34s -> exit %d, %d line(s): %s", desc, rc, lines, err);
}

static void hostile(const char* name, const char* header, uint64_t hlen, size_t data, const char* what) {
    char path[400];
    snprintf(path, sizeof(path), "%s/%s.safetensors", g_dir, name);
    make_st(path, header, hlen, data);
    expect_reject(name, path, what);
}

static void test_json(void) {
    Json j;
    const char* doc = "{\"a\": [1, -2.5e3, true, false, null], \"s\": \"x\\u00e9\\ud83d\\ude00\\n\\\"\", \"e\": {}, \"f\": 1e-05}";
    int rc = json_parse(&j, doc, strlen(doc));
    CHECK(rc == 0, "json: a valid document parses");
    if (rc == 0) {
        int a = json_get(&j, 0, "a"), s = json_get(&j, 0, "s"), f = json_get(&j, 0, "f");
        int a1 = j.nodes[a].child, a2 = j.nodes[a1].next;
        CHECK(j.nodes[a].nchild == 5 && json_is_int(&j, a1, 1, 1) && j.nodes[a2].num == -2500.0,
              "json: array of 5 with 1 and -2.5e3");
        CHECK(strcmp(json_str(&j, s), "x\xc3\xa9\xf0\x9f\x98\x80\n\"") == 0, "json: escapes, \\u and a surrogate pair decode to UTF-8");
        CHECK(json_float(&j, f) == 1e-05f, "json: 1e-05 reads as the float32 1e-5");
        CHECK(json_get(&j, 0, "missing") == -1, "json: a missing key is -1");
    }
    json_free(&j);
    static const char* const bad[] = {
        "", "{", "{\"a\":}", "{\"a\":1,}", "[1,2,]", "{'a':1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}",
        "{\"a\":-}", "{\"a\":1e}", "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":1e999}", "{\"a\":\"\\x\"}",
        "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\x01\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\xaf\"}",
        "{\"a\":1} x", "{\"a\":1}{}", "{\"a\":1,\"a\":2}", "{\"a\" 1}", "{1:2}", "tru", "nul", "{\"a\":\"abc",
        "{\"a\":[1 2]}", "/* c */ {}",
    };
    int nbad = (int)(sizeof(bad) / sizeof(bad[0])), rejected = 0;
    for (int i = 0; i < nbad; i++) {
        Json b;
        if (json_parse(&b, bad[i], strlen(bad[i])) != 0 && b.err[0] != '\0') { rejected++; }
        else { printf("     accepted: %s\n", bad[i]); }
        json_free(&b);
    }
    CHECK(rejected == nbad, "json: %d of %d malformed documents rejected with a reason", rejected, nbad);
    // nesting: 64 levels parse, 1000 are rejected without recursing that deep
    char deep[2100];
    int n = 0;
    for (int i = 0; i < 1000; i++) { deep[n++] = '['; }
    for (int i = 0; i < 1000; i++) { deep[n++] = ']'; }
    Json d;
    int deep_rc = json_parse(&d, deep, (size_t)n);  // (CHECK evaluates its condition twice)
    CHECK(deep_rc != 0 && strstr(d.err, "nesting") != NULL, "json: 1000 nested arrays rejected: %s", d.err);
    json_free(&d);
    n = 0;
    for (int i = 0; i < 60; i++) { deep[n++] = '['; }
    for (int i = 0; i < 60; i++) { deep[n++] = ']'; }
    deep_rc = json_parse(&d, deep, (size_t)n);
    CHECK(deep_rc == 0, "json: 60 nested arrays parse");
    json_free(&d);
    // jbuf_float: shortest text that reads back exactly
    float vals[] = {1e-5f, 1e-6f, 10000.0f, 500000.0f, 0.1f, 3.14159274f, 1e-12f};
    int exact = 1;
    for (int i = 0; i < 7; i++) {
        JsonBuf b = {0};
        jbuf_float(&b, vals[i]);
        if (strtof(b.s, NULL) != vals[i]) { exact = 0; }
        jbuf_free(&b);
    }
    CHECK(exact, "jbuf_float: 7 floats print and read back bit-exactly");
}

static void test_roundtrip(void) {
    char path[400];
    snprintf(path, sizeof(path), "%s/ok.safetensors", g_dir);
    float a[6] = {1.0f, -2.0f, 3.5f, 1e-3f, 0.0f, -0.0f}, b[4] = {0.1f, 0.2f, 0.3f, 65504.0f}, e[1] = {0};
    StWriteTensor t[3] = {
        {"z.first \"quoted\"", ST_F32, 2, {2, 3}, a},
        {"a.second", ST_BF16, 1, {4}, b},
        {"empty", ST_F32, 2, {0, 5}, e},
    };
    const char* meta[2] = {"format", "pt"};
    st_write(path, t, 3, meta, 1);
    SafeTensors st;
    st_open(&st, path);
    CHECK(st.n == 3 && st.data_start % 8 == 0, "writer: 3 tensors, data starts at %llu (a multiple of 8)",
          (unsigned long long)st.data_start);
    const StTensor* x = st_find(&st, "z.first \"quoted\"");
    const StTensor* y = st_find(&st, "a.second");
    const StTensor* z = st_find(&st, "empty");
    CHECK(x && y && z && x->begin == 0 && y->begin == 24 && x->ndim == 2 && x->shape[1] == 3 && y->dtype == ST_BF16 &&
              z->numel == 0 && z->ndim == 2,
          "writer: names (with quotes), given order, shapes and dtypes kept");
    if (x && y) {
        float ra[6], rb[4];
        st_read_f32(&st, x, ra);
        st_read_f32(&st, y, rb);
        int same = memcmp(ra, a, sizeof(a)) == 0;
        for (int i = 0; i < 4; i++) { same &= rb[i] == bf16_to_f32(f32_to_bf16_rne(b[i])); }
        CHECK(same, "writer/reader: F32 values bit-exact, BF16 values rounded to nearest even");
    }
    st_close(&st);
    CHECK(f16_to_f32(0x3C00) == 1.0f && f16_to_f32(0xC000) == -2.0f && f16_to_f32(0x7BFF) == 65504.0f &&
              f16_to_f32(0x0001) == 5.9604645e-08f && isinf(f16_to_f32(0x7C00)) && isnan(f16_to_f32(0x7E00)),
          "f16_to_f32: 1, -2, max, smallest subnormal, inf, NaN");
    char p2[400];
    snprintf(p2, sizeof(p2), "%s/ok2.safetensors", g_dir);
    make_st(p2, "{\"__metadata__\":{\"k\":\"v\"},\"b\":{\"data_offsets\":[8,12],\"shape\":[],\"dtype\":\"F32\"},"
                "\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}  ", 0, 12);
    char err[2048];
    int rc2 = open_in_child(p2, err, sizeof(err));
    CHECK(rc2 == 0, "reader: keys in any order, a scalar, F16, __metadata__ accepted %s", err);
}

static void test_hostile(void) {
    char path[400];
    snprintf(path, sizeof(path), "%s/empty.safetensors", g_dir);
    write_file(path, "", 0);
    expect_reject("empty file", path, "truncated");
    snprintf(path, sizeof(path), "%s/short.safetensors", g_dir);
    write_file(path, "\x10\x00\x00", 3);
    expect_reject("3-byte file", path, "truncated");
    snprintf(path, sizeof(path), "%s/missing.safetensors", g_dir);
    expect_reject("missing file", path, "cannot open");
    const char* T1 = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    hostile("header_len_huge", T1, 0xFFFFFFFFFFFFFFF0ULL, 8, "past the end");
    hostile("header_len_past_end", T1, 1000, 8, "past the end");
    hostile("header_truncated_data", T1, 0, 4, "past the end of the data");
    hostile("trailing_bytes", T1, 0, 12, "after the last tensor");
    hostile("not_an_object", "[1,2]", 0, 0, "not a JSON object");
    hostile("bad_json", "{\"w\":{\"dtype\":\"F32\",", 0, 0, "invalid JSON");
    hostile("bad_json_trailing_comma", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", 0, 8, "invalid JSON");
    hostile("entry_not_object", "{\"w\":5}", 0, 0, "not an object");
    hostile("duplicate_names", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                               "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8, "duplicate key");
    hostile("dtype_i64", "{\"w\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 0, 8, "dtype 'I64'");
    hostile("dtype_unknown", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4, "dtype 'Q4'");
    hostile("dtype_number", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4, "dtype is not a string");
    hostile("missing_shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 0, 4, "lacks 'shape'");
    hostile("extra_field", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 0, 4, "unknown field");
    hostile("shape_negative", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 0, 4, "shape entry");
    hostile("shape_fraction", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 0, 4, "shape entry");
    hostile("shape_too_many_dims", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 0, 4, "dimensions");
    hostile("shape_vs_offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8, "shape x dtype");
    hostile("shape_overflow", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,1024],\"data_offsets\":[0,0]}}", 0, 0, "shape x dtype");
    hostile("bf16_size_mismatch", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8, "shape x dtype");
    hostile("offsets_past_end", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, 8, "past the end of the data");
    hostile("offsets_huge", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9007199254740000,9007199254740004]}}", 0, 8, "past the end");
    hostile("offsets_reversed", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 0, 8, "end 4 < begin 8");
    hostile("offsets_three", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 0, 8, "two numbers");
    hostile("offsets_strings", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", 0, 4, "non-negative integers");
    hostile("overlapping", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 0, 12, "overlap");
    hostile("same_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8, "overlap");
    hostile("hole", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 0, 12, "hole");
    hostile("metadata_not_object", "{\"__metadata__\":[1]}", 0, 0, "__metadata__ is not an object");
    hostile("metadata_number", "{\"__metadata__\":{\"a\":1}}", 0, 0, "is not a string");
    hostile("empty_name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4, "empty name");
    hostile("nul_in_name", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4, "NUL");
    hostile("invalid_utf8_name", "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4, "UTF-8");
    hostile("header_starts_with_space", " {}", 0, 0, "not a JSON object");
    char deep[3000] = "{\"a\":";
    for (int i = 0; i < 900; i++) { strcat(deep, "["); }
    hostile("deep_nesting", deep, 0, 0, "nesting");
    // a header length over the 100 MB limit inside a (sparse) file that long
    snprintf(path, sizeof(path), "%s/header_over_limit.safetensors", g_dir);
    make_st(path, "{}", (100u << 20) + 1, 0);
    if (truncate(path, (off_t)(100u << 20) + 64) == 0) { expect_reject("header_over_limit", path, "100 MB"); }
    remove(path);
}

int main(void) {
    snprintf(g_dir, sizeof(g_dir), "/tmp/llmc_st_XXXXXX");
    if (mkdtemp(g_dir) == NULL) { die("mkdtemp failed"); }
    test_json();
    test_roundtrip();
    test_hostile();
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) { printf("warning: could not remove %s\n", g_dir); }
    return test_summary();
}
