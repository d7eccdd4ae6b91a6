/*
 * json.h: a small strict JSON (RFC 8259) parser and a few writing helpers, enough
 * for safetensors headers and Hugging Face's config.json / index.json files.
 *
 * json_parse builds a tree of nodes in one growable array (children linked by
 * index) and every decoded string in one growable buffer. It never exits: on
 * malformed input it returns -1 and j->err says what and at which byte, so the
 * caller can name its file in a one-line error. Rejected: trailing commas,
 * comments, single quotes, leading zeros, NaN/Infinity, numbers that overflow a
 * double, raw control characters and invalid UTF-8 in strings, bad escapes and
 * lone surrogates, duplicate keys in an object, nesting deeper than 64, and
 * anything but whitespace after the value.
 *
 * defines: Json, JsonNode, JSON_NULL .. JSON_OBJECT, json_parse, json_free,
 *          json_get, json_str, json_type_name, json_is_int, json_float,
 *          json_write_string, JsonBuf, jbuf_puts, jbuf_printf, jbuf_string,
 *          jbuf_float, jbuf_free
 */
#ifndef LLMC_JSON_H
#define LLMC_JSON_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "utils.h"

enum { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

typedef struct {
    int type;
    int child;         // first child (array element or object value), -1 if none
    int next;          // next sibling, -1 if last
    int nchild;        // number of children
    size_t key;        // object members: offset of the key in Json.strs, else SIZE_MAX
    size_t key_len;
    size_t str;        // strings: offset in Json.strs (NUL-terminated), length str_len
    size_t str_len;
    double num;        // numbers
    size_t text, text_len;  // numbers: the literal's span in the input (for strtof)
} JsonNode;

typedef struct {
    JsonNode* nodes;   // (n,) node 0 is the root
    int n, cap;
    char* strs;        // decoded strings, each followed by a NUL
    size_t slen, scap;
    const char* text;  // the input (not owned; valid while parsing and for json_float)
    size_t len, pos;
    char err[200];
} Json;

static inline void json_free(Json* j) {
    free(j->nodes);
    free(j->strs);
    j->nodes = NULL;
    j->strs = NULL;
    j->n = j->cap = 0;
    j->slen = j->scap = 0;
}

static inline int json_fail(Json* j, const char* what) {
    if (j->err[0] == '\0') { snprintf(j->err, sizeof(j->err), "invalid JSON at byte %zu: %s", j->pos, what); }
    return -1;
}

static inline int json_new_node(Json* j, int type) {
    if (j->n == j->cap) {
        if (j->cap > (1 << 26)) { return json_fail(j, "too many values"); }
        int cap = j->cap ? 2 * j->cap : 64;
        JsonNode* p = (JsonNode*)realloc(j->nodes, (size_t)cap * sizeof(JsonNode));
        if (p == NULL) { return json_fail(j, "out of memory"); }
        j->nodes = p;
        j->cap = cap;
    }
    JsonNode* nd = &j->nodes[j->n];
    memset(nd, 0, sizeof(*nd));
    nd->type = type;
    nd->child = nd->next = -1;
    nd->key = SIZE_MAX;
    return j->n++;
}

static inline int json_put(Json* j, const char* s, size_t n) {
    if (j->slen + n + 1 > j->scap) {
        size_t cap = j->scap ? j->scap : 256;
        while (cap < j->slen + n + 1) { cap *= 2; }
        char* p = (char*)realloc(j->strs, cap);
        if (p == NULL) { return json_fail(j, "out of memory"); }
        j->strs = p;
        j->scap = cap;
    }
    memcpy(j->strs + j->slen, s, n);
    j->slen += n;
    return 0;
}

static inline void json_ws(Json* j) {
    while (j->pos < j->len) {
        char c = j->text[j->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') { break; }
        j->pos++;
    }
}

static inline int json_hex4(Json* j, uint32_t* out) {
    if (j->len - j->pos < 4) { return json_fail(j, "truncated \\u escape"); }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = j->text[j->pos + i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) { return json_fail(j, "bad hex digit in \\u escape"); }
        v = v * 16 + (uint32_t)d;
    }
    j->pos += 4;
    *out = v;
    return 0;
}

static inline int json_put_utf8(Json* j, uint32_t cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) { b[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { b[0] = (char)(0xC0 | (cp >> 6)); b[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12)); b[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); b[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18)); b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); b[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    return json_put(j, b, n);
}

// json_utf8_len: length of the valid UTF-8 sequence at s[0..n), 0 if invalid
static inline size_t json_utf8_len(const unsigned char* s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) { return 1; }
    if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; min = 0x10000; }
    else { return 0; }
    if (len > n) { return 0; }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { return 0; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { return 0; }
    return len;
}

// json_string: parses a string at j->pos (at the opening quote) into strs; *off, *n its place
static inline int json_string(Json* j, size_t* off, size_t* n) {
    j->pos++;  // the quote
    size_t start = j->slen;
    for (;;) {
        if (j->pos >= j->len) { return json_fail(j, "unterminated string"); }
        unsigned char c = (unsigned char)j->text[j->pos];
        if (c == '"') { j->pos++; break; }
        if (c < 0x20) { return json_fail(j, "control character in string"); }
        if (c == '\\') {
            j->pos++;
            if (j->pos >= j->len) { return json_fail(j, "unterminated escape"); }
            char e = j->text[j->pos++];
            char out;
            switch (e) {
                case '"': out = '"'; break;
                case '\\': out = '\\'; break;
                case '/': out = '/'; break;
                case 'b': out = '\b'; break;
                case 'f': out = '\f'; break;
                case 'n': out = '\n'; break;
                case 'r': out = '\r'; break;
                case 't': out = '\t'; break;
                case 'u': {
                    uint32_t cp;
                    if (json_hex4(j, &cp) != 0) { return -1; }
                    if (cp >= 0xDC00 && cp <= 0xDFFF) { return json_fail(j, "lone low surrogate"); }
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        uint32_t lo;
                        if (j->len - j->pos < 2 || j->text[j->pos] != '\\' || j->text[j->pos + 1] != 'u') {
                            return json_fail(j, "lone high surrogate");
                        }
                        j->pos += 2;
                        if (json_hex4(j, &lo) != 0) { return -1; }
                        if (lo < 0xDC00 || lo > 0xDFFF) { return json_fail(j, "bad surrogate pair"); }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    if (json_put_utf8(j, cp) != 0) { return -1; }
                    continue;
                }
                default: j->pos--; return json_fail(j, "bad escape");
            }
            if (json_put(j, &out, 1) != 0) { return -1; }
            continue;
        }
        size_t k = json_utf8_len((const unsigned char*)j->text + j->pos, j->len - j->pos);
        if (k == 0) { return json_fail(j, "invalid UTF-8 in string"); }
        if (json_put(j, j->text + j->pos, k) != 0) { return -1; }
        j->pos += k;
    }
    *off = start;
    *n = j->slen - start;
    return json_put(j, "", 1);  // the NUL terminator (not counted in *n)
}

static inline int json_number(Json* j, int node) {
    size_t s = j->pos, p = j->pos;
    const char* t = j->text;
    if (p < j->len && t[p] == '-') { p++; }
    if (p >= j->len || !(t[p] >= '0' && t[p] <= '9')) { j->pos = p; return json_fail(j, "bad number"); }
    if (t[p] == '0') { p++; }
    else { while (p < j->len && t[p] >= '0' && t[p] <= '9') { p++; } }
    if (p < j->len && t[p] == '.') {
        p++;
        if (p >= j->len || !(t[p] >= '0' && t[p] <= '9')) { j->pos = p; return json_fail(j, "digit expected after '.'"); }
        while (p < j->len && t[p] >= '0' && t[p] <= '9') { p++; }
    }
    if (p < j->len && (t[p] == 'e' || t[p] == 'E')) {
        p++;
        if (p < j->len && (t[p] == '+' || t[p] == '-')) { p++; }
        if (p >= j->len || !(t[p] >= '0' && t[p] <= '9')) { j->pos = p; return json_fail(j, "digit expected in exponent"); }
        while (p < j->len && t[p] >= '0' && t[p] <= '9') { p++; }
    }
    if (p - s > 64) { return json_fail(j, "number literal too long"); }
    char buf[72];
    memcpy(buf, t + s, p - s);
    buf[p - s] = '\0';
    double v = strtod(buf, NULL);
    if (!isfinite(v)) { return json_fail(j, "number out of range"); }
    j->nodes[node].num = v;
    j->nodes[node].text = s;
    j->nodes[node].text_len = p - s;
    j->pos = p;
    return 0;
}

typedef struct { const char* s; size_t n; } JsonKeyRef;

static inline int json_keyref_cmp(const void* a, const void* b) {
    const JsonKeyRef* x = (const JsonKeyRef*)a;
    const JsonKeyRef* y = (const JsonKeyRef*)b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, m);
    if (c != 0) { return c; }
    return x->n < y->n ? -1 : x->n > y->n;
}

static inline int json_value(Json* j, int depth);

// json_check_dup_keys: an object whose keys repeat is rejected (readers disagree on which wins)
static inline int json_check_dup_keys(Json* j, int obj) {
    int n = j->nodes[obj].nchild;
    if (n < 2) { return 0; }
    JsonKeyRef* k = (JsonKeyRef*)malloc((size_t)n * sizeof(JsonKeyRef));
    if (k == NULL) { return json_fail(j, "out of memory"); }
    int i = 0;
    for (int c = j->nodes[obj].child; c >= 0; c = j->nodes[c].next) {
        k[i].s = j->strs + j->nodes[c].key;
        k[i].n = j->nodes[c].key_len;
        i++;
    }
    qsort(k, (size_t)n, sizeof(JsonKeyRef), json_keyref_cmp);
    for (i = 1; i < n; i++) {
        if (json_keyref_cmp(&k[i - 1], &k[i]) == 0) {
            snprintf(j->err, sizeof(j->err), "invalid JSON: duplicate key '%.80s'", k[i].s);
            free(k);
            return -1;
        }
    }
    free(k);
    return 0;
}

// json_value: parses one value at j->pos; returns its node index or -1
static inline int json_value(Json* j, int depth) {
    if (depth > 64) { return json_fail(j, "nesting deeper than 64"); }
    json_ws(j);
    if (j->pos >= j->len) { return json_fail(j, "value expected, input ends"); }
    char c = j->text[j->pos];
    if (c == '{' || c == '[') {
        int is_obj = c == '{';
        int node = json_new_node(j, is_obj ? JSON_OBJECT : JSON_ARRAY);
        if (node < 0) { return -1; }
        j->pos++;
        json_ws(j);
        char close = is_obj ? '}' : ']';
        if (j->pos < j->len && j->text[j->pos] == close) { j->pos++; return node; }
        int last = -1;
        for (;;) {
            size_t koff = SIZE_MAX, klen = 0;
            if (is_obj) {
                json_ws(j);
                if (j->pos >= j->len || j->text[j->pos] != '"') { return json_fail(j, "string key expected"); }
                if (json_string(j, &koff, &klen) != 0) { return -1; }
                json_ws(j);
                if (j->pos >= j->len || j->text[j->pos] != ':') { return json_fail(j, "':' expected"); }
                j->pos++;
            }
            int v = json_value(j, depth + 1);
            if (v < 0) { return -1; }
            j->nodes[v].key = koff;
            j->nodes[v].key_len = klen;
            if (last < 0) { j->nodes[node].child = v; } else { j->nodes[last].next = v; }
            last = v;
            j->nodes[node].nchild++;
            json_ws(j);
            if (j->pos >= j->len) { return json_fail(j, is_obj ? "unterminated object" : "unterminated array"); }
            char d = j->text[j->pos];
            if (d == ',') { j->pos++; continue; }
            if (d == close) { j->pos++; break; }
            return json_fail(j, is_obj ? "',' or '}' expected" : "',' or ']' expected");
        }
        if (is_obj && json_check_dup_keys(j, node) != 0) { return -1; }
        return node;
    }
    if (c == '"') {
        int node = json_new_node(j, JSON_STRING);
        if (node < 0) { return -1; }
        size_t off, n;
        if (json_string(j, &off, &n) != 0) { return -1; }
        j->nodes[node].str = off;
        j->nodes[node].str_len = n;
        return node;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        int node = json_new_node(j, JSON_NUMBER);
        if (node < 0 || json_number(j, node) != 0) { return -1; }
        return node;
    }
    static const char* const words[3] = {"null", "false", "true"};
    static const int types[3] = {JSON_NULL, JSON_FALSE, JSON_TRUE};
    for (int w = 0; w < 3; w++) {
        size_t n = strlen(words[w]);
        if (j->len - j->pos >= n && memcmp(j->text + j->pos, words[w], n) == 0) {
            j->pos += n;
            return json_new_node(j, types[w]);
        }
    }
    return json_fail(j, "unexpected character");
}

// json_parse: 0 and the tree (root node 0), or -1 with j->err; call json_free either way
static inline int json_parse(Json* j, const char* text, size_t len) {
    memset(j, 0, sizeof(*j));
    j->text = text;
    j->len = len;
    if (json_value(j, 0) < 0) { return -1; }
    json_ws(j);
    if (j->pos != j->len) { return json_fail(j, "trailing characters after the value"); }
    return 0;
}

// json_get: the member `key` of object node obj, or -1
static inline int json_get(const Json* j, int obj, const char* key) {
    if (obj < 0 || j->nodes[obj].type != JSON_OBJECT) { return -1; }
    size_t n = strlen(key);
    for (int c = j->nodes[obj].child; c >= 0; c = j->nodes[c].next) {
        if (j->nodes[c].key_len == n && memcmp(j->strs + j->nodes[c].key, key, n) == 0) { return c; }
    }
    return -1;
}

static inline const char* json_str(const Json* j, int node) { return j->strs + j->nodes[node].str; }
static inline const char* json_key(const Json* j, int node) { return j->strs + j->nodes[node].key; }

static inline const char* json_type_name(int type) {
    static const char* const names[] = {"null", "false", "true", "a number", "a string", "an array", "an object"};
    return type >= 0 && type <= JSON_OBJECT ? names[type] : "?";
}

// json_is_int: a number node holding an integer in [lo, hi] (and no more than 2^53)
static inline int json_is_int(const Json* j, int node, double lo, double hi) {
    if (node < 0 || j->nodes[node].type != JSON_NUMBER) { return 0; }
    double v = j->nodes[node].num;
    return v == floor(v) && v >= lo && v <= hi && fabs(v) <= 9007199254740992.0;
}

// json_float: a number node's literal read as float32 directly (not via double,
// which could round twice); needs j->text still valid
static inline float json_float(const Json* j, int node) {
    char buf[72];
    size_t n = j->nodes[node].text_len;
    memcpy(buf, j->text + j->nodes[node].text, n);
    buf[n] = '\0';
    return strtof(buf, NULL);
}

// ----------------------------------------------------------------------------
// writing: a growable text buffer

typedef struct {
    char* s;
    size_t n, cap;
} JsonBuf;

static inline void jbuf_put(JsonBuf* b, const char* s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1) { cap *= 2; }
        b->s = (char*)reallocCheck(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static inline void jbuf_puts(JsonBuf* b, const char* s) { jbuf_put(b, s, strlen(s)); }

static void jbuf_printf(JsonBuf* b, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static void jbuf_printf(JsonBuf* b, const char* fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) { die("jbuf_printf: formatted text too long"); }
    jbuf_put(b, tmp, (size_t)n);
}

// jbuf_string: s[0..n) as a JSON string literal: quotes, backslashes and control
// characters escaped, other bytes (UTF-8) as they are
static inline void jbuf_string(JsonBuf* b, const char* s, size_t n) {
    jbuf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') { jbuf_put(b, "\\\"", 2); }
        else if (c == '\\') { jbuf_put(b, "\\\\", 2); }
        else if (c == '\n') { jbuf_put(b, "\\n", 2); }
        else if (c == '\t') { jbuf_put(b, "\\t", 2); }
        else if (c == '\r') { jbuf_put(b, "\\r", 2); }
        else if (c < 0x20 || c == 0x7F) { jbuf_printf(b, "\\u%04x", c); }
        else { jbuf_put(b, (const char*)&c, 1); }
    }
    jbuf_put(b, "\"", 1);
}

// jbuf_float: the shortest decimal that reads back (strtof) as exactly f
static inline void jbuf_float(JsonBuf* b, float f) {
    char tmp[64];
    if (f == floorf(f) && fabsf(f) < 1e9f) {  // integral values read better as 10000.0 than 1e+04
        snprintf(tmp, sizeof(tmp), "%.1f", (double)f);
        jbuf_puts(b, tmp);
        return;
    }
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, (double)f);
        if (strtof(tmp, NULL) == f) { break; }
    }
    // JSON needs a digit before an exponent and no bare "inf"; keep it a float literal
    if (strchr(tmp, '.') == NULL && strchr(tmp, 'e') == NULL) { strcat(tmp, ".0"); }
    jbuf_puts(b, tmp);
}

static inline void jbuf_free(JsonBuf* b) {
    free(b->s);
    b->s = NULL;
    b->n = b->cap = 0;
}

#endif // LLMC_JSON_H
