/*
 * utils.h: checked wrappers around the C library calls every program makes.
 * Each macro names the failing expression, the file and the line, prints a
 * one-line reason (plus a "---> HINT:" line where the user can fix it) and exits
 * with a non-zero status. Nothing here keeps state.
 *
 * defines: die, fopenCheck, freadCheck, fwriteCheck, fseekCheck, fcloseCheck,
 *          mallocCheck, callocCheck, reallocCheck, file_size, atomic_file_open,
 *          atomic_file_commit, make_dir, parse_int, parse_float, parse_long,
 *          llmc_die_jmp (only with -DLLMC_DIE_LONGJMP, see die)
 */
#ifndef LLMC_UTILS_H
#define LLMC_UTILS_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef LLMC_DIE_LONGJMP
// Fuzz builds only (test/fuzz/): exit() inside a libFuzzer run counts as a crash
// ("fuzz target exited"), so with this macro die() longjmps to *llmc_die_jmp when
// the fuzz target has set it, and the next input runs. The trap: whatever the
// failing loader had opened or allocated is not freed on this path; the fuzz
// target closes and frees what it can reach (see test/fuzz/fuzz_common.h).
// Without the macro, or with llmc_die_jmp NULL, die() exits as always.
#include <setjmp.h>
static jmp_buf* llmc_die_jmp = NULL;
#endif

// die: print "error: <message>" (one line) and exit(1). Use for every user-facing error.
static void die(const char* fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stdout);
#ifdef LLMC_DIE_LONGJMP
    if (llmc_die_jmp != NULL) { longjmp(*llmc_die_jmp, 1); }
#endif
    exit(1);
}

// ----------------------------------------------------------------------------
// files

static inline FILE* fopen_check(const char* path, const char* mode, const char* file, int line) {
    FILE* fp = fopen(path, mode);
    if (fp == NULL) {
        die("cannot open '%s' (mode %s): %s [%s:%d]", path, mode, strerror(errno), file, line);
    }
    return fp;
}
#define fopenCheck(path, mode) fopen_check(path, mode, __FILE__, __LINE__)

// freadCheck: a short read means the file is truncated, which is the usual cause
static inline void fread_check(void* ptr, size_t size, size_t nmemb, FILE* fp, const char* what,
                               const char* file, int line) {
    size_t got = fread(ptr, size, nmemb, fp);
    if (got != nmemb) {
        if (feof(fp)) {
            die("'%s' is truncated: expected %zu elements of %zu bytes, read %zu [%s:%d]", what, nmemb, size,
                got, file, line);
        }
        die("reading '%s' failed: %s [%s:%d]", what, strerror(errno), file, line);
    }
}
#define freadCheck(ptr, size, nmemb, fp, what) fread_check(ptr, size, nmemb, fp, what, __FILE__, __LINE__)

static inline void fwrite_check(const void* ptr, size_t size, size_t nmemb, FILE* fp, const char* what,
                                const char* file, int line) {
    if (fwrite(ptr, size, nmemb, fp) != nmemb) {
        die("writing '%s' failed: %s [%s:%d]\n---> HINT: is the disk full?", what, strerror(errno), file, line);
    }
}
#define fwriteCheck(ptr, size, nmemb, fp, what) fwrite_check(ptr, size, nmemb, fp, what, __FILE__, __LINE__)

static inline void fseek_check(FILE* fp, long long off, int whence, const char* what, const char* file, int line) {
    if (fseeko(fp, (off_t)off, whence) != 0) {
        die("seek in '%s' failed: %s [%s:%d]", what, strerror(errno), file, line);
    }
}
#define fseekCheck(fp, off, whence, what) fseek_check(fp, off, whence, what, __FILE__, __LINE__)

static inline void fclose_check(FILE* fp, const char* what, const char* file, int line) {
    if (fclose(fp) != 0) {
        die("closing '%s' failed: %s [%s:%d]", what, strerror(errno), file, line);
    }
}
#define fcloseCheck(fp, what) fclose_check(fp, what, __FILE__, __LINE__)

// file_size: size in bytes of an open file (the read position is restored)
static inline long long file_size(FILE* fp, const char* what) {
    long long cur = (long long)ftello(fp);
    fseekCheck(fp, 0, SEEK_END, what);
    long long n = (long long)ftello(fp);
    fseekCheck(fp, cur, SEEK_SET, what);
    if (n < 0) { die("cannot tell the size of '%s'", what); }
    return n;
}

// Atomic writes: write to "<path>.tmp.<pid>", then atomic_file_commit flushes,
// fsyncs and renames it over <path>. A kill at any moment leaves either the old
// file or the new one, never a half-written file under the final name.
typedef struct {
    FILE* fp;
    char path[1024];
    char tmp[1100];
} AtomicFile;

static inline void atomic_file_open(AtomicFile* af, const char* path) {
    if (strlen(path) >= sizeof(af->path)) { die("path too long: '%s'", path); }
    snprintf(af->path, sizeof(af->path), "%s", path);
    snprintf(af->tmp, sizeof(af->tmp), "%s.tmp.%d", path, (int)getpid());
    af->fp = fopenCheck(af->tmp, "wb");
}

static inline void atomic_file_commit(AtomicFile* af) {
    if (fflush(af->fp) != 0) { die("flushing '%s' failed: %s", af->tmp, strerror(errno)); }
    if (fsync(fileno(af->fp)) != 0) { die("fsync of '%s' failed: %s", af->tmp, strerror(errno)); }
    fcloseCheck(af->fp, af->tmp);
    af->fp = NULL;
    if (rename(af->tmp, af->path) != 0) {
        die("renaming '%s' to '%s' failed: %s", af->tmp, af->path, strerror(errno));
    }
}

// make_dir: mkdir -p: creates path and its missing parents; an existing directory is fine
static inline void make_dir(const char* path) {
    char buf[1024];
    if (strlen(path) >= sizeof(buf)) { die("path too long: '%s'", path); }
    snprintf(buf, sizeof(buf), "%s", path);
    for (char* p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') { continue; }
        char saved = *p;
        *p = '\0';
        struct stat st;
        if (stat(buf, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) { die("'%s' exists and is not a directory", buf); }
        } else if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            die("cannot create directory '%s': %s", buf, strerror(errno));
        }
        *p = saved;
        if (saved == '\0') { break; }
    }
}

// ----------------------------------------------------------------------------
// memory

static inline void* malloc_check(size_t size, const char* file, int line) {
    void* p = malloc(size > 0 ? size : 1);
    if (p == NULL) { die("out of host memory: malloc of %zu bytes failed [%s:%d]", size, file, line); }
    return p;
}
#define mallocCheck(size) malloc_check(size, __FILE__, __LINE__)

static inline void* calloc_check(size_t n, size_t size, const char* file, int line) {
    void* p = calloc(n > 0 ? n : 1, size > 0 ? size : 1);
    if (p == NULL) { die("out of host memory: calloc of %zu x %zu bytes failed [%s:%d]", n, size, file, line); }
    return p;
}
#define callocCheck(n, size) calloc_check(n, size, __FILE__, __LINE__)

static inline void* realloc_check(void* ptr, size_t size, const char* file, int line) {
    void* p = realloc(ptr, size > 0 ? size : 1);
    if (p == NULL) { die("out of host memory: realloc to %zu bytes failed [%s:%d]", size, file, line); }
    return p;
}
#define reallocCheck(ptr, size) realloc_check(ptr, size, __FILE__, __LINE__)

// ----------------------------------------------------------------------------
// strict number parsing for flags: the whole string must be a number in range

static inline long long parse_long(const char* s, const char* flag, long long lo, long long hi) {
    char* end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0) { die("flag %s: '%s' is not an integer", flag, s); }
    if (v < lo || v > hi) { die("flag %s: %lld is out of range [%lld, %lld]", flag, v, lo, hi); }
    return v;
}

static inline int parse_int(const char* s, const char* flag, int lo, int hi) {
    return (int)parse_long(s, flag, lo, hi);
}

static inline float parse_float(const char* s, const char* flag, float lo, float hi) {
    char* end = NULL;
    errno = 0;
    float v = strtof(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v != v) { die("flag %s: '%s' is not a number", flag, s); }
    if (v < lo || v > hi) { die("flag %s: %g is out of range [%g, %g]", flag, v, lo, hi); }
    return v;
}

#endif // LLMC_UTILS_H
