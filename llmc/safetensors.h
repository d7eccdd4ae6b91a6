/*
 * safetensors.h: a strict reader and an atomic writer of the safetensors format
 * (Hugging Face's tensor file): an 8-byte little-endian header length N, N bytes
 * of JSON, then the tensor data. The JSON is an object: each member a tensor
 * {"dtype": "F32", "shape": [r, c], "data_offsets": [begin, end]} (offsets into
 * the data, which starts at byte 8 + N), plus an optional "__metadata__" object
 * of strings.
 *
 * The reader checks everything against the file size before any tensor is
 * used: N not beyond the file (and at most 100 MB), the header valid JSON and an
 * object, every entry with exactly those three fields, dtype BF16, F16 or F32,
 * shape non-negative integers, end >= begin, shape x dtype size == end - begin,
 * and the tensors, sorted by offset, covering the data exactly: no overlap, no
 * hole, nothing past the end, no trailing bytes (as the format requires).
 * Names are unique (the JSON parser rejects duplicate keys). Any problem is a
 * one-line "error: safetensors file '<path>': <problem>" and exit 1 (die).
 * Everything the reader allocates hangs off the SafeTensors struct as soon as
 * it exists, so st_close frees it also after a die() that longjmps (fuzzing).
 *
 * The writer (st_write) writes tensors in the given order, converting fp32 to
 * the dtype asked for, pads the header with spaces so the data starts at a
 * multiple of 8, and writes atomically (temp file, fsync, rename).
 *
 * defines: ST_F32, ST_F16, ST_BF16, StTensor, SafeTensors, st_open, st_close,
 *          st_find, st_read_f32, st_dtype_name, st_dtype_size, StWriteTensor,
 *          st_write, f16_to_f32
 */
#ifndef LLMC_SAFETENSORS_H
#define LLMC_SAFETENSORS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "checkpoint.h"
#include "json.h"
#include "utils.h"

enum { ST_F32, ST_F16, ST_BF16 };
#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u << 20)  // the safetensors library's own limit

static inline const char* st_dtype_name(int d) { return d == ST_F32 ? "F32" : d == ST_F16 ? "F16" : "BF16"; }
static inline size_t st_dtype_size(int d) { return d == ST_F32 ? 4 : 2; }

typedef struct {
    const char* name;          // points into the parsed header's strings
    int dtype;                 // ST_*
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end;       // byte offsets in the data section
} StTensor;

typedef struct {
    const char* path;
    FILE* fp;
    long long file_size;
    uint64_t data_start;       // 8 + header length
    char* header;              // (header length,) the JSON text
    Json json;
    StTensor* tensors;         // (n,) sorted by data offset
    int n;
} SafeTensors;

// f16_to_f32: IEEE half to float, exactly (subnormals, inf, NaN included)
static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1F, m = h & 0x3FF, u;
    if (e == 0x1F) { u = sign | 0x7F800000u | (m << 13); }
    else if (e != 0) { u = sign | ((e + 112) << 23) | (m << 13); }
    else if (m == 0) { u = sign; }
    else {  // subnormal: normalise
        int sh = 0;
        while ((m & 0x400) == 0) { m <<= 1; sh++; }
        u = sign | ((uint32_t)(113 - sh) << 23) | ((m & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void st_die(const SafeTensors* st, const char* fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void st_die(const SafeTensors* st, const char* fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    die("safetensors file '%s': %s", st->path, msg);
}

static inline int st_tensor_cmp(const void* a, const void* b) {
    const StTensor* x = (const StTensor*)a;
    const StTensor* y = (const StTensor*)b;
    if (x->begin != y->begin) { return x->begin < y->begin ? -1 : 1; }
    return x->end < y->end ? -1 : x->end > y->end;
}

static inline void st_close(SafeTensors* st) {
    if (st->fp != NULL) { fclose(st->fp); }
    st->fp = NULL;
    free(st->header);
    st->header = NULL;
    json_free(&st->json);
    free(st->tensors);
    st->tensors = NULL;
    st->n = 0;
}

// st_parse_entry: one tensor's {"dtype", "shape", "data_offsets"} into t
static inline void st_parse_entry(SafeTensors* st, int node, StTensor* t, uint64_t data_size) {
    const Json* j = &st->json;
    const char* name = json_key(j, node);
    if (j->nodes[node].key_len == 0) { st_die(st, "a tensor has an empty name"); }
    if (strlen(name) != j->nodes[node].key_len) { st_die(st, "a tensor name contains a NUL character"); }
    if (j->nodes[node].type != JSON_OBJECT) {
        st_die(st, "tensor '%.100s' is %s, not an object", name, json_type_name(j->nodes[node].type));
    }
    for (int c = j->nodes[node].child; c >= 0; c = j->nodes[c].next) {
        const char* k = json_key(j, c);
        if (strcmp(k, "dtype") != 0 && strcmp(k, "shape") != 0 && strcmp(k, "data_offsets") != 0) {
            st_die(st, "tensor '%.100s' has an unknown field '%.60s'", name, k);
        }
    }
    int dt = json_get(j, node, "dtype"), sh = json_get(j, node, "shape"), off = json_get(j, node, "data_offsets");
    if (dt < 0 || sh < 0 || off < 0) {
        st_die(st, "tensor '%.100s' lacks '%s'", name, dt < 0 ? "dtype" : sh < 0 ? "shape" : "data_offsets");
    }
    if (j->nodes[dt].type != JSON_STRING) { st_die(st, "tensor '%.100s': dtype is not a string", name); }
    const char* d = json_str(j, dt);
    if (strcmp(d, "F32") == 0) { t->dtype = ST_F32; }
    else if (strcmp(d, "F16") == 0) { t->dtype = ST_F16; }
    else if (strcmp(d, "BF16") == 0) { t->dtype = ST_BF16; }
    else { st_die(st, "tensor '%.100s' has dtype '%.20s': supported are F32, F16, BF16", name, d); }
    if (j->nodes[sh].type != JSON_ARRAY) { st_die(st, "tensor '%.100s': shape is not an array", name); }
    if (j->nodes[sh].nchild > ST_MAX_DIMS) { st_die(st, "tensor '%.100s' has %d dimensions (at most %d)", name, j->nodes[sh].nchild, ST_MAX_DIMS); }
    t->ndim = 0;
    t->numel = 1;
    int overflow = 0;
    for (int c = j->nodes[sh].child; c >= 0; c = j->nodes[c].next) {
        if (!json_is_int(j, c, 0, 9007199254740992.0)) {
            st_die(st, "tensor '%.100s': a shape entry is not a non-negative integer", name);
        }
        uint64_t dim = (uint64_t)j->nodes[c].num;
        t->shape[t->ndim++] = (int64_t)dim;
        // product capped at the data size: anything larger cannot match the offsets anyway
        if (dim != 0 && t->numel > data_size / dim) { overflow = 1; }
        t->numel = overflow && dim != 0 ? 1 : t->numel * dim;  // keeps 0 when a dim is 0
    }
    if (j->nodes[off].type != JSON_ARRAY || j->nodes[off].nchild != 2) {
        st_die(st, "tensor '%.100s': data_offsets is not an array of two numbers", name);
    }
    int b = j->nodes[off].child, e = j->nodes[b].next;
    if (!json_is_int(j, b, 0, 9007199254740992.0) || !json_is_int(j, e, 0, 9007199254740992.0)) {
        st_die(st, "tensor '%.100s': data_offsets are not non-negative integers", name);
    }
    t->begin = (uint64_t)j->nodes[b].num;
    t->end = (uint64_t)j->nodes[e].num;
    if (t->end < t->begin) { st_die(st, "tensor '%.100s': data_offsets end %llu < begin %llu", name, (unsigned long long)t->end, (unsigned long long)t->begin); }
    if (t->end > data_size) {
        st_die(st, "tensor '%.100s': data_offsets [%llu, %llu] run past the end of the data (%llu bytes)", name,
               (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)data_size);
    }
    if (t->numel == 0) { overflow = 0; }  // a zero dimension anywhere: an empty tensor
    if (overflow || t->numel * st_dtype_size(t->dtype) != t->end - t->begin) {
        st_die(st, "tensor '%.100s': shape x dtype size is not the data_offsets span of %llu bytes", name,
               (unsigned long long)(t->end - t->begin));
    }
    t->name = name;
}

// st_open: opens and validates path (see the top of the file); dies on any problem
static inline void st_open(SafeTensors* st, const char* path) {
    memset(st, 0, sizeof(*st));
    st->path = path;
    st->fp = fopen(path, "rb");
    if (st->fp == NULL) { die("cannot open safetensors file '%s': %s", path, strerror(errno)); }
    st->file_size = file_size(st->fp, path);
    if (st->file_size < 8) { st_die(st, "truncated: %lld bytes, no room for the header length", st->file_size); }
    unsigned char lb[8];
    freadCheck(lb, 1, 8, st->fp, path);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) { hlen = (hlen << 8) | lb[i]; }
    if (hlen > (uint64_t)st->file_size - 8) {
        st_die(st, "header length %llu is past the end of the file (%lld bytes)", (unsigned long long)hlen, st->file_size);
    }
    if (hlen > ST_MAX_HEADER) { st_die(st, "header length %llu is over the 100 MB limit", (unsigned long long)hlen); }
    if (hlen < 2) { st_die(st, "header of %llu bytes cannot be a JSON object", (unsigned long long)hlen); }
    st->header = (char*)mallocCheck((size_t)hlen);
    freadCheck(st->header, 1, (size_t)hlen, st->fp, path);
    st->data_start = 8 + hlen;
    uint64_t data_size = (uint64_t)st->file_size - st->data_start;
    if (st->header[0] != '{') { st_die(st, "the header is not a JSON object (it starts with byte 0x%02x)", (unsigned char)st->header[0]); }
    if (json_parse(&st->json, st->header, (size_t)hlen) != 0) { st_die(st, "header: %s", st->json.err); }
    const Json* j = &st->json;
    if (j->nodes[0].type != JSON_OBJECT) { st_die(st, "the header is not a JSON object"); }
    st->tensors = (StTensor*)callocCheck((size_t)j->nodes[0].nchild, sizeof(StTensor));
    for (int c = j->nodes[0].child; c >= 0; c = j->nodes[c].next) {
        if (strcmp(json_key(j, c), "__metadata__") == 0) {
            if (j->nodes[c].type != JSON_OBJECT) { st_die(st, "__metadata__ is not an object"); }
            for (int m = j->nodes[c].child; m >= 0; m = j->nodes[m].next) {
                if (j->nodes[m].type != JSON_STRING) { st_die(st, "__metadata__ value '%.60s' is not a string", json_key(j, m)); }
            }
            continue;
        }
        st_parse_entry(st, c, &st->tensors[st->n], data_size);
        st->n++;
    }
    qsort(st->tensors, (size_t)st->n, sizeof(StTensor), st_tensor_cmp);
    uint64_t pos = 0;
    for (int i = 0; i < st->n; i++) {
        const StTensor* t = &st->tensors[i];
        if (t->begin < pos) {
            st_die(st, "tensors '%.80s' and '%.80s' overlap", st->tensors[i - 1].name, t->name);
        }
        if (t->begin > pos) {
            st_die(st, "a hole of %llu bytes before tensor '%.100s' (the data must be fully indexed)",
                   (unsigned long long)(t->begin - pos), t->name);
        }
        pos = t->end;
    }
    if (pos != data_size) {
        st_die(st, "%llu bytes of data after the last tensor (%llu bytes indexed of %llu)",
               (unsigned long long)(data_size - pos), (unsigned long long)pos, (unsigned long long)data_size);
    }
}

// st_find: the tensor named `name`, or NULL
static inline const StTensor* st_find(const SafeTensors* st, const char* name) {
    for (int i = 0; i < st->n; i++) {
        if (strcmp(st->tensors[i].name, name) == 0) { return &st->tensors[i]; }
    }
    return NULL;
}

// st_read_f32: tensor t's data widened to fp32 into out (t->numel floats)
static inline void st_read_f32(SafeTensors* st, const StTensor* t, float* out) {
    fseekCheck(st->fp, (long long)(st->data_start + t->begin), SEEK_SET, st->path);
    if (t->dtype == ST_F32) {
        freadCheck(out, 4, (size_t)t->numel, st->fp, st->path);
        return;
    }
    uint16_t buf[4096];
    for (uint64_t i = 0; i < t->numel; i += 4096) {
        size_t k = t->numel - i < 4096 ? (size_t)(t->numel - i) : 4096;
        freadCheck(buf, 2, k, st->fp, st->path);
        for (size_t q = 0; q < k; q++) { out[i + q] = t->dtype == ST_BF16 ? bf16_to_f32(buf[q]) : f16_to_f32(buf[q]); }
    }
}

// ----------------------------------------------------------------------------
// writing

typedef struct {
    const char* name;
    int dtype;             // ST_F32 or ST_BF16 (round to nearest even)
    int ndim;
    int64_t shape[4];
    const float* data;     // numel fp32 values, row-major
} StWriteTensor;

static inline uint64_t st_numel(const StWriteTensor* t) {
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) { n *= (uint64_t)t->shape[d]; }
    return n;
}

// st_write: tensors t[0..n) in this order; metadata: NULL or {"key": "value"} pairs as
// a flat array of 2*nmeta strings
static inline void st_write(const char* path, const StWriteTensor* t, int n, const char* const* meta, int nmeta) {
    JsonBuf h;
    memset(&h, 0, sizeof(h));
    jbuf_puts(&h, "{");
    if (nmeta > 0) {
        jbuf_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i > 0) { jbuf_puts(&h, ","); }
            jbuf_string(&h, meta[2 * i], strlen(meta[2 * i]));
            jbuf_puts(&h, ":");
            jbuf_string(&h, meta[2 * i + 1], strlen(meta[2 * i + 1]));
        }
        jbuf_puts(&h, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (t[i].dtype != ST_F32 && t[i].dtype != ST_BF16) { die("st_write: '%s': only F32 and BF16 are written", t[i].name); }
        uint64_t bytes = st_numel(&t[i]) * st_dtype_size(t[i].dtype);
        if (i > 0 || nmeta > 0) { jbuf_puts(&h, ","); }
        jbuf_string(&h, t[i].name, strlen(t[i].name));
        jbuf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].ndim; d++) { jbuf_printf(&h, "%s%lld", d ? "," : "", (long long)t[i].shape[d]); }
        jbuf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    jbuf_puts(&h, "}");
    while ((8 + h.n) % 8 != 0) { jbuf_puts(&h, " "); }  // data starts 8-aligned
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) { lb[i] = (unsigned char)((uint64_t)h.n >> (8 * i)); }
    AtomicFile af;
    atomic_file_open(&af, path);
    fwriteCheck(lb, 1, 8, af.fp, path);
    fwriteCheck(h.s, 1, h.n, af.fp, path);
    for (int i = 0; i < n; i++) {
        uint64_t numel = st_numel(&t[i]);
        if (t[i].dtype == ST_F32) {
            fwriteCheck(t[i].data, 4, (size_t)numel, af.fp, path);
        } else {
            uint16_t buf[4096];
            for (uint64_t q = 0; q < numel; q += 4096) {
                size_t k = numel - q < 4096 ? (size_t)(numel - q) : 4096;
                for (size_t r = 0; r < k; r++) { buf[r] = f32_to_bf16_rne(t[i].data[q + r]); }
                fwriteCheck(buf, 2, k, af.fp, path);
            }
        }
    }
    atomic_file_commit(&af);
    jbuf_free(&h);
}

#endif // LLMC_SAFETENSORS_H
