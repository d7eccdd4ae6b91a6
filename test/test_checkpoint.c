/*
 * test_checkpoint.c: the model checkpoint and the training state (llmc/checkpoint.h,
 * SPEC section 3).
 *   - fp32 model round trip is bit-exact (NaN, inf, -0 and denormals included)
 *   - bf16 round trip: every value comes back as bf16_to_f32(f32_to_bf16_rne(x)),
 *     within the bf16 rounding bound |x - y| <= 2^-8 |x| (normal x)
 *   - f32_to_bf16_rne rounds to nearest, ties to even, on hand-picked bit patterns
 *     (halfway up/down, denormals, FLT_MAX -> inf, signs) and agrees with an
 *     independent reference (nearest of the two neighbours, computed in double)
 *     on 2^20 random patterns and every tie/near-tie pattern; NaN stays NaN
 *   - the header, word by word: [0] 20261122, [1] 1, [2] dtype, [3..16] the config
 *     in SPEC's order (floats as bit patterns), [17..255] zero; file length
 *   - training state: every header field and the body (master, m, v) round trip
 *   - bad files die (exit status 1): wrong magic, truncated, trailing bytes, bad config
 *   - latest_checkpoint_step: highest complete model file; temp files of an
 *     interrupted write, state files and other names are ignored
 *   - an interrupted atomic write (open + write, then the process dies without
 *     commit) leaves the previous file byte-for-byte intact
 * Files go to a mkdtemp directory that is removed at the end.
 *
 *   make test_checkpoint && ./test_checkpoint
 */
#include <dirent.h>
#include <float.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "llmc/checkpoint.h"
#include "llmc/rand.h"
#include "test.h"

static char g_dir[256];  // the test's temp directory (owned by main)

static void path_in_dir(char* out, size_t n, const char* name) { snprintf(out, n, "%s/%s", g_dir, name); }

static int f32_bits_equal(float a, float b) { return f32_bits(a) == f32_bits(b); }

// reads a whole file; returns its bytes (caller frees) and size
static unsigned char* slurp(const char* path, long long* size) {
    FILE* fp = fopenCheck(path, "rb");
    *size = file_size(fp, path);
    unsigned char* buf = (unsigned char*)mallocCheck((size_t)*size);
    freadCheck(buf, 1, (size_t)*size, fp, path);
    fclose(fp);
    return buf;
}

static void write_bytes(const char* path, const void* data, size_t n) {
    FILE* fp = fopenCheck(path, "wb");
    fwriteCheck(data, 1, n, fp, path);
    fcloseCheck(fp, path);
}

// runs fn(arg) in a child process with stderr silenced; returns 1 when the child
// exited with status 1, i.e. die() rejected the input
static int dies(void (*fn)(const char*), const char* arg) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen("/dev/null", "w", stderr) == NULL) { _exit(2); }
        fn(arg);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 1;
}

// a small config whose every field differs from SPEC's default, so a field
// written to the wrong header word cannot go unnoticed
static void test_config(GPTConfig* c, int tied) {
    memset(c, 0, sizeof(*c));
    c->max_seq_len = 96;
    c->vocab_size = 100;
    c->padded_vocab_size = 128;
    c->n_layer = 2;
    c->n_embd = 16;
    c->n_head = 4;
    c->n_kv_head = 2;
    c->ffn_dim = 48;
    c->rope_theta = 500000.0f;
    c->norm_eps = 1e-6f;
    c->logit_softcap = 15.0f;
    c->qk_norm = 0;
    c->tied_embeddings = tied;
    c->parallel_block = 1;
}

// random normal params plus a few special values at the front
static float* make_params(size_t n, uint64_t seed) {
    float* p = (float*)mallocCheck(n * sizeof(float));
    uint64_t rng = seed;
    rng_fill_normal(p, n, 0.5f, &rng);
    const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, FLT_MIN, FLT_MIN / 8, -FLT_MIN / 1024, FLT_MAX, -FLT_MAX,
                             INFINITY, -INFINITY, NAN, 3.0e38f, 1.00390625f, 1.01171875f};
    size_t ns = sizeof(special) / sizeof(special[0]);
    for (size_t i = 0; i < ns && i < n; i++) { p[i] = special[i]; }
    return p;
}

// ----------------------------------------------------------------------------
// bf16 rounding

static int bf16_is_nan(uint16_t h) { return (h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0; }

// the value bf16 bits h stand for, in double; exponent 255 with mantissa 0 is
// taken as 2^128 (not inf) so that "nearest neighbour" also decides overflow,
// which is what IEEE round-to-nearest does
static double bf16_value_unbounded(uint16_t h) {
    int sign = h >> 15, e = (h >> 7) & 0xff, m = h & 0x7f;
    double v = e == 0 ? ldexp((double)m, -133) : ldexp(1.0 + m / 128.0, e - 127);
    return sign ? -v : v;
}

// reference round-to-nearest-even: the two bf16 neighbours of x (truncate, and
// one step further from zero) and pick the nearer, the even one on a tie
static uint16_t bf16_reference(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t lo = (uint16_t)(u >> 16);
    if ((u & 0xffffu) == 0) { return lo; }
    uint16_t hi = (uint16_t)(lo + 1);
    double x = (double)f;
    double dlo = fabs(x - bf16_value_unbounded(lo)), dhi = fabs(x - bf16_value_unbounded(hi));
    if (dlo < dhi) return lo;
    if (dhi < dlo) return hi;
    return (lo & 1) ? hi : lo;
}

static uint16_t rne_bits(uint32_t u) { return f32_to_bf16_rne(bits_f32((int32_t)u)); }

static void test_bf16_rounding(void) {
    struct { uint32_t in; uint16_t out; const char* what; } cases[] = {
        {0x3f800000u, 0x3f80, "1.0 is exact"},
        {0x3f808000u, 0x3f80, "tie between 0x3f80 (even) and 0x3f81 rounds down to even"},
        {0x3f818000u, 0x3f82, "tie between 0x3f81 (odd) and 0x3f82 rounds up to even"},
        {0x3f808001u, 0x3f81, "just above the tie rounds up"},
        {0x3f807fffu, 0x3f80, "just below the tie rounds down"},
        {0xbf818000u, 0xbf82, "negative tie rounds to even (away from zero here)"},
        {0xbf808000u, 0xbf80, "negative tie rounds to even (toward zero here)"},
        {0x3fffffffu, 0x4000, "carry into the exponent (1.99999988 -> 2.0)"},
        {0x00018000u, 0x0002, "denormal tie rounds to even (up)"},
        {0x00008000u, 0x0000, "smallest denormal tie rounds to even zero"},
        {0x80000000u, 0x8000, "-0 keeps its sign"},
        {0x7f7fffffu, 0x7f80, "FLT_MAX rounds to inf (past bf16 max + half ulp)"},
        {0x7f7f7fffu, 0x7f7f, "just below bf16 max + half ulp stays finite"},
        {0x7f800000u, 0x7f80, "+inf stays +inf"},
        {0xff800000u, 0xff80, "-inf stays -inf"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint16_t got = rne_bits(cases[i].in);
        CHECK(got == cases[i].out, "bf16 rne 0x%08x -> 0x%04x (want 0x%04x): %s", cases[i].in, got, cases[i].out,
              cases[i].what);
    }
    // NaNs: quiet, signalling with the payload only in the low 16 bits (plain
    // rounding would turn it into inf), all ones (plain rounding would wrap to +0)
    uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7f80ffffu, 0xffffffffu, 0x7fffffffu};
    int nan_ok = 1;
    for (size_t i = 0; i < sizeof(nans) / sizeof(nans[0]); i++) {
        uint16_t h = rne_bits(nans[i]);
        nan_ok &= bf16_is_nan(h) && (h >> 15) == (nans[i] >> 31) && isnan(bf16_to_f32(h));
    }
    CHECK(nan_ok, "bf16 rne: %zu NaN patterns stay NaN with their sign", sizeof(nans) / sizeof(nans[0]));

    // against the reference: random patterns, and every tie/near-tie pattern
    uint64_t rng = 12345;
    long mismatches = 0, checked = 0;
    for (int i = 0; i < (1 << 20); i++) {
        uint32_t u = rng_next_u32(&rng);
        if ((u & 0x7fffffffu) > 0x7f800000u) { continue; }  // NaN: checked above
        mismatches += rne_bits(u) != bf16_reference(bits_f32((int32_t)u));
        checked++;
    }
    const uint32_t lows[] = {0x7fff, 0x8000, 0x8001, 0x0001, 0xffff};
    for (uint32_t hi = 0; hi < 0x10000; hi++) {
        for (size_t k = 0; k < sizeof(lows) / sizeof(lows[0]); k++) {
            uint32_t u = (hi << 16) | lows[k];
            if ((u & 0x7fffffffu) > 0x7f800000u) { continue; }
            mismatches += rne_bits(u) != bf16_reference(bits_f32((int32_t)u));
            checked++;
        }
    }
    CHECK(mismatches == 0, "bf16 rne agrees with the reference on %ld patterns (%ld mismatches)", checked, mismatches);
    // bf16 -> f32 is exact: every non-NaN bf16 survives f32 and back
    int back_ok = 1;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if (bf16_is_nan((uint16_t)h)) { continue; }
        back_ok &= f32_to_bf16_rne(bf16_to_f32((uint16_t)h)) == h;
    }
    CHECK(back_ok, "every non-NaN bf16 pattern survives bf16 -> f32 -> bf16");
}

// ----------------------------------------------------------------------------
// model checkpoint

static void check_header_words(const char* path, const GPTConfig* c, int dtype, size_t n) {
    long long size;
    unsigned char* bytes = slurp(path, &size);
    long long expect = HEADER_INTS * 4LL + (long long)n * (dtype == DTYPE_FP32 ? 4 : 2);
    CHECK(size == expect, "%s checkpoint is %lld bytes (want 1024 + %zu x %d = %lld)", dtype ? "bf16" : "fp32", size,
          n, dtype == DTYPE_FP32 ? 4 : 2, expect);
    int32_t w[HEADER_INTS];
    memcpy(w, bytes, sizeof(w));
    // SPEC section 3, written out here rather than taken from config.h
    int32_t want[17] = {20261122, 1, dtype, c->max_seq_len, c->vocab_size, c->padded_vocab_size, c->n_layer,
                        c->n_embd, c->n_head, c->n_kv_head, c->ffn_dim, 0, 0, 0, c->qk_norm, c->tied_embeddings,
                        c->parallel_block};
    memcpy(&want[11], &c->rope_theta, 4);
    memcpy(&want[12], &c->norm_eps, 4);
    memcpy(&want[13], &c->logit_softcap, 4);
    static const char* names[17] = {"magic", "version", "dtype", "max_seq_len", "vocab_size", "padded_vocab_size",
                                    "n_layer", "n_embd", "n_head", "n_kv_head", "ffn_dim", "rope_theta",
                                    "norm_eps", "logit_softcap", "qk_norm", "tied_embeddings", "parallel_block"};
    int bad = -1;
    for (int i = 0; i < 17; i++) {
        if (w[i] != want[i] && bad < 0) { bad = i; }
    }
    CHECK(bad < 0, "%s header words [0..16] are magic, version, dtype and the config in SPEC order%s%s",
          dtype ? "bf16" : "fp32", bad < 0 ? "" : "; first wrong: ", bad < 0 ? "" : names[bad]);
    int rest_zero = 1;
    for (int i = 17; i < HEADER_INTS; i++) { rest_zero &= w[i] == 0; }
    CHECK(rest_zero, "%s header words [17..255] are zero", dtype ? "bf16" : "fp32");
    free(bytes);
}

static void test_model_roundtrip(int tied) {
    GPTConfig c;
    test_config(&c, tied);
    CHECK(config_validate(&c) == NULL, "test config (tied %d) is valid", tied);
    ParamLayout pl;
    param_layout_init(&pl, &c);
    size_t n = pl.num_parameters;
    float* params = make_params(n, 42 + tied);
    float* back = (float*)mallocCheck(n * sizeof(float));
    char path[512];

    // fp32: bit-exact
    path_in_dir(path, sizeof(path), "model_fp32.bin");
    checkpoint_write(path, &c, params, n, DTYPE_FP32);
    check_header_words(path, &c, DTYPE_FP32, n);
    GPTConfig rc;
    int dtype = -1;
    FILE* fp = checkpoint_read_config(path, &rc, &dtype);
    CHECK(dtype == DTYPE_FP32 && config_equal(&rc, &c), "fp32 (tied %d): config and dtype read back", tied);
    for (size_t i = 0; i < n; i++) { back[i] = -12345.0f; }
    checkpoint_read_params(fp, path, dtype, back, n);
    CHECK(fgetc(fp) == EOF, "fp32 (tied %d): the parameters end the file", tied);
    fclose(fp);
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) { diff += !f32_bits_equal(params[i], back[i]); }
    CHECK(diff == 0, "fp32 (tied %d): %zu parameters round trip bit-exactly (%zu differ)", tied, n, diff);

    // bf16: exactly the rounded values, within half a bf16 ulp
    path_in_dir(path, sizeof(path), "model_bf16.bin");
    checkpoint_write(path, &c, params, n, DTYPE_BF16);
    check_header_words(path, &c, DTYPE_BF16, n);
    fp = checkpoint_read_config(path, &rc, &dtype);
    CHECK(dtype == DTYPE_BF16 && config_equal(&rc, &c), "bf16 (tied %d): config and dtype read back", tied);
    checkpoint_read_params(fp, path, dtype, back, n);
    fclose(fp);
    size_t not_rounded = 0;
    double max_rel = 0.0;
    for (size_t i = 0; i < n; i++) {
        float want = bf16_to_f32(f32_to_bf16_rne(params[i]));
        if (isnan(params[i])) {
            not_rounded += !isnan(back[i]);
            continue;
        }
        not_rounded += !f32_bits_equal(want, back[i]);
        if (isfinite(back[i]) && fabsf(params[i]) >= FLT_MIN) {
            double rel = fabs((double)back[i] - params[i]) / fabs((double)params[i]);
            if (rel > max_rel) max_rel = rel;
        }
    }
    CHECK(not_rounded == 0, "bf16 (tied %d): every value reads back as its bf16 rounding (%zu differ)", tied,
          not_rounded);
    CHECK(max_rel <= 1.0 / 256.0, "bf16 (tied %d): max relative error %.3g <= 2^-8", tied, max_rel);
    free(params);
    free(back);
}

static void read_checkpoint_or_die(const char* path) {
    GPTConfig c;
    int dtype;
    FILE* fp = checkpoint_read_config(path, &c, &dtype);
    fclose(fp);
}

static void test_model_rejects(void) {
    GPTConfig c;
    test_config(&c, 1);
    ParamLayout pl;
    param_layout_init(&pl, &c);
    float* params = make_params(pl.num_parameters, 7);
    char good[512], bad[512];
    path_in_dir(good, sizeof(good), "model_good.bin");
    path_in_dir(bad, sizeof(bad), "model_bad.bin");
    checkpoint_write(good, &c, params, pl.num_parameters, DTYPE_FP32);
    long long size;
    unsigned char* bytes = slurp(good, &size);
    int32_t w;

    CHECK(!dies(read_checkpoint_or_die, good), "a good checkpoint loads");
    write_bytes(bad, bytes, (size_t)size - 4);
    CHECK(dies(read_checkpoint_or_die, bad), "a truncated checkpoint is rejected");
    unsigned char* longer = (unsigned char*)callocCheck((size_t)size + 2, 1);
    memcpy(longer, bytes, (size_t)size);
    write_bytes(bad, longer, (size_t)size + 2);
    CHECK(dies(read_checkpoint_or_die, bad), "a checkpoint with trailing bytes is rejected");
    free(longer);
    write_bytes(bad, bytes, 100);
    CHECK(dies(read_checkpoint_or_die, bad), "a file shorter than the header is rejected");
    struct { int word; int32_t value; const char* what; } edits[] = {
        {0, 20240520, "wrong magic"}, {1, 2, "unknown version"}, {2, 2, "unknown dtype"},
        {8, 5, "n_head 5 does not divide n_embd 16"}, {9, 3, "n_head 4 not a multiple of n_kv_head 3"},
        {4, 200, "vocab 200 > padded vocab 128"}, {14, 2, "qk_norm not 0/1"},
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        memcpy(&w, bytes + 4 * edits[i].word, 4);
        memcpy(bytes + 4 * edits[i].word, &edits[i].value, 4);
        write_bytes(bad, bytes, (size_t)size);
        CHECK(dies(read_checkpoint_or_die, bad), "checkpoint with %s (word %d) is rejected", edits[i].what,
              edits[i].word);
        memcpy(bytes + 4 * edits[i].word, &w, 4);
    }
    // rope_theta NaN (word 11)
    int32_t nan_bits = 0x7fc00000;
    memcpy(&w, bytes + 44, 4);
    memcpy(bytes + 44, &nan_bits, 4);
    write_bytes(bad, bytes, (size_t)size);
    CHECK(dies(read_checkpoint_or_die, bad), "checkpoint with a NaN rope_theta is rejected");
    free(bytes);
    free(params);
    CHECK(dies(read_checkpoint_or_die, "/nonexistent/model_00000001.bin"), "a missing checkpoint is reported");
}

// ----------------------------------------------------------------------------
// training state

static void test_state_roundtrip(void) {
    TrainState s;
    memset(&s, 0, sizeof(s));
    s.step = 123456;
    s.world_size = 8;
    s.rank = 5;
    s.rng = 0xDEADBEEFCAFEBABEULL;
    s.data_epoch = 0x100000003ULL;
    s.data_shard = 77;
    s.data_sample = 0xFFFFFFFF00000001ULL;
    s.num_parameters = 10007;
    s.shard_offset = 5000;
    s.shard_size = 1001;
    s.config_hash = 0x8000000000000001ULL;
    s.B = 16;
    s.T = 1024;
    s.grad_accum = 3;
    s.shuffle = 1;
    s.data_seed = 0xFEDCBA9876543210ULL;
    size_t n = s.shard_size;
    float* master = make_params(n, 1);
    float* m = make_params(n, 2);
    float* v = make_params(n, 3);
    char path[512];
    state_path(path, sizeof(path), g_dir, s.step, s.rank);
    state_write(path, &s, master, m, v);

    long long size;
    unsigned char* bytes = slurp(path, &size);
    CHECK(size == 1024 + 3LL * 4 * (long long)n, "state file is 1024 + 3 x 4 x %zu bytes (%lld)", n, size);
    int32_t h[HEADER_INTS];
    memcpy(h, bytes, sizeof(h));
    CHECK(h[0] == STATE_MAGIC && h[1] == STATE_VERSION && h[2] == s.step && h[3] == s.world_size && h[4] == s.rank,
          "state header words [0..4]: magic, version, step, world size, rank");
    CHECK((uint32_t)h[5] == 0xCAFEBABEu && (uint32_t)h[6] == 0xDEADBEEFu, "state header words [5..6]: RNG, low word first");
    int rest_zero = 1;
    for (int i = 27; i < HEADER_INTS; i++) { rest_zero &= h[i] == 0; }
    CHECK(rest_zero, "state header words [27..255] are zero");
    free(bytes);

    TrainState r;
    memset(&r, 0x5a, sizeof(r));
    FILE* fp = state_read_header(path, &r);
    int fields_ok[17] = {r.step == s.step, r.world_size == s.world_size, r.rank == s.rank, r.rng == s.rng,
                         r.data_epoch == s.data_epoch, r.data_shard == s.data_shard, r.data_sample == s.data_sample,
                         r.shard_offset == s.shard_offset, r.shard_size == s.shard_size,
                         r.num_parameters == s.num_parameters, r.config_hash == s.config_hash, r.B == s.B,
                         r.T == s.T, r.grad_accum == s.grad_accum, r.shuffle == s.shuffle,
                         r.data_seed == s.data_seed, 1};
    static const char* names[16] = {"step", "world_size", "rank", "rng", "data_epoch", "data_shard", "data_sample",
                                    "shard_offset", "shard_size", "num_parameters", "config_hash", "B", "T",
                                    "grad_accum", "shuffle", "data_seed"};
    for (int i = 0; i < 16; i++) { CHECK(fields_ok[i], "state field %s round trips", names[i]); }
    float* rm = (float*)mallocCheck(n * sizeof(float));
    float* rmm = (float*)mallocCheck(n * sizeof(float));
    float* rv = (float*)mallocCheck(n * sizeof(float));
    state_read_body(fp, path, &r, rm, rmm, rv);
    CHECK(fgetc(fp) == EOF, "state body ends the file");
    fclose(fp);
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) {
        diff += !f32_bits_equal(rm[i], master[i]) + !f32_bits_equal(rmm[i], m[i]) + !f32_bits_equal(rv[i], v[i]);
    }
    CHECK(diff == 0, "state body: master, m, v (%zu floats each) round trip bit-exactly (%zu differ)", n, diff);
    free(master);
    free(m);
    free(v);
    free(rm);
    free(rmm);
    free(rv);
}

static void read_state_or_die(const char* path) {
    TrainState s;
    FILE* fp = state_read_header(path, &s);
    fclose(fp);
}

static void test_state_rejects(void) {
    TrainState s;
    memset(&s, 0, sizeof(s));
    s.step = 10;
    s.world_size = 2;
    s.rank = 1;
    s.num_parameters = 100;
    s.shard_offset = 50;
    s.shard_size = 50;
    float body[50] = {0};
    char good[512], bad[512];
    path_in_dir(good, sizeof(good), "state_good.bin");
    path_in_dir(bad, sizeof(bad), "state_bad.bin");
    state_write(good, &s, body, body, body);
    long long size;
    unsigned char* bytes = slurp(good, &size);
    CHECK(!dies(read_state_or_die, good), "a good state file loads");
    write_bytes(bad, bytes, (size_t)size - 1);
    CHECK(dies(read_state_or_die, bad), "a truncated state file is rejected");
    struct { int word; int32_t value; const char* what; } edits[] = {
        {0, CHECKPOINT_MAGIC, "a model checkpoint's magic"}, {1, 9, "unknown version"}, {2, -1, "negative step"},
        {3, 0, "world size 0"}, {4, 2, "rank >= world size"}, {13, 51, "shard past the model's end"},
        {15, 40, "a body size the file does not have"},
        // shard_offset 2^64 - 50: offset + size wraps around to 0
        {14, -1, "a shard offset whose sum with the size overflows"},
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        int32_t w;
        memcpy(&w, bytes + 4 * edits[i].word, 4);
        memcpy(bytes + 4 * edits[i].word, &edits[i].value, 4);
        if (edits[i].word == 14) {  // low word too: offset = 0xFFFFFFFFFFFFFFCE
            int32_t lo = -50;
            memcpy(bytes + 4 * 13, &lo, 4);
        }
        write_bytes(bad, bytes, (size_t)size);
        CHECK(dies(read_state_or_die, bad), "state with %s is rejected", edits[i].what);
        memcpy(bytes + 4 * edits[i].word, &w, 4);
        if (edits[i].word == 14) {
            int32_t lo = 50;
            memcpy(bytes + 4 * 13, &lo, 4);
        }
    }
    free(bytes);
}

// ----------------------------------------------------------------------------
// naming, latest checkpoint, interrupted writes

static void touch(const char* name) {
    char path[512];
    path_in_dir(path, sizeof(path), name);
    write_bytes(path, "x", 1);
}

static void test_latest(void) {
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/latest", g_dir);
    make_dir(sub);
    CHECK(latest_checkpoint_step(sub) == -1, "latest_checkpoint_step of an empty directory is -1");
    CHECK(latest_checkpoint_step("/nonexistent/dir") == -1, "latest_checkpoint_step of a missing directory is -1");

    char path[1024];
    checkpoint_path(path, sizeof(path), "out", 42);
    CHECK(strcmp(path, "out/model_00000042.bin") == 0, "checkpoint_path: '%s'", path);
    state_path(path, sizeof(path), "out", 42, 3);
    CHECK(strcmp(path, "out/state_00000042_00003.bin") == 0, "state_path: '%s'", path);

    const char* names[] = {
        "latest/model_00000005.bin", "latest/model_00000100.bin", "latest/model_00000020.bin",
        "latest/model_00000300.bin.tmp.4242",  // an interrupted atomic write of step 300
        "latest/state_00000400_00000.bin",     // state written, model not yet: incomplete
        "latest/model_00000500.bin.bak", "latest/model_00000600.binx", "latest/model_0000700.bin",
        "latest/xmodel_00000800.bin", "latest/model_00000900.BIN",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) { touch(names[i]); }
    int got = latest_checkpoint_step(sub);
    CHECK(got == 100, "latest_checkpoint_step picks step 100 of {5, 100, 20}, ignoring temp, state and other names "
          "(got %d)", got);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        path_in_dir(path, sizeof(path), names[i]);
        unlink(path);
    }
    rmdir(sub);
}

static void test_interrupted_write(void) {
    GPTConfig c;
    test_config(&c, 1);
    ParamLayout pl;
    param_layout_init(&pl, &c);
    float* params = make_params(pl.num_parameters, 99);
    char path[512];
    path_in_dir(path, sizeof(path), "model_00000007.bin");
    checkpoint_write(path, &c, params, pl.num_parameters, DTYPE_FP32);
    long long size0;
    unsigned char* before = slurp(path, &size0);

    // a child starts rewriting the same file and dies mid-write, without commit
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        AtomicFile af;
        atomic_file_open(&af, path);
        static unsigned char junk[100000];
        memset(junk, 0xAB, sizeof(junk));
        fwrite(junk, 1, sizeof(junk), af.fp);
        fflush(af.fp);
        _exit(0);  // killed before atomic_file_commit
    }
    int status;
    waitpid(pid, &status, 0);
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)pid);
    CHECK(access(tmp, F_OK) == 0, "the interrupted write left its temp file '%s'", strrchr(tmp, '/') + 1);
    long long size1;
    unsigned char* after = slurp(path, &size1);
    CHECK(size1 == size0 && memcmp(before, after, (size_t)size0) == 0,
          "after an interrupted write the previous checkpoint is byte-for-byte intact");
    GPTConfig rc;
    int dtype;
    FILE* fp = checkpoint_read_config(path, &rc, &dtype);
    fclose(fp);
    CHECK(config_equal(&rc, &c), "and it still loads");
    CHECK(latest_checkpoint_step(g_dir) == 7, "latest_checkpoint_step ignores the temp file (%d)",
          latest_checkpoint_step(g_dir));
    unlink(tmp);

    // the same in-process: open + write without commit, then a completed write
    AtomicFile af;
    atomic_file_open(&af, path);
    fwriteCheck(before, 1, 2000, af.fp, af.tmp);
    fflush(af.fp);
    unsigned char* mid = slurp(path, &size1);
    CHECK(size1 == size0 && memcmp(before, mid, (size_t)size0) == 0, "an uncommitted write is invisible under the final name");
    free(mid);
    fclose(af.fp);
    unlink(af.tmp);
    params[0] = 1234.5f;
    checkpoint_write(path, &c, params, pl.num_parameters, DTYPE_FP32);
    fp = checkpoint_read_config(path, &rc, &dtype);
    float first;
    checkpoint_read_params(fp, path, dtype, &first, 1);
    fclose(fp);
    CHECK(first == 1234.5f, "a committed rewrite replaces the file");
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    CHECK(access(tmp, F_OK) != 0, "a committed write leaves no temp file");
    free(before);
    free(after);
    free(params);
}

static void remove_dir(const char* dir) {
    DIR* d = opendir(dir);
    if (d == NULL) { return; }
    struct dirent* e;
    char path[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) { continue; }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int main(void) {
    const char* tmpdir = getenv("TMPDIR");
    snprintf(g_dir, sizeof(g_dir), "%s/test_checkpoint_XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (mkdtemp(g_dir) == NULL) { die("mkdtemp '%s' failed: %s", g_dir, strerror(errno)); }
    test_bf16_rounding();
    test_model_roundtrip(1);
    test_model_roundtrip(0);
    test_model_rejects();
    test_state_roundtrip();
    test_state_rejects();
    test_latest();
    test_interrupted_write();
    remove_dir(g_dir);
    CHECK(access(g_dir, F_OK) != 0, "temp directory removed");
    return test_summary();
}
