/*
 * fuzz_common.h: what the libFuzzer targets in test/fuzz/ share: a per-process
 * temp directory that holds the input as a file (the loaders read paths), and
 * a record of every FILE* the loaders open. Build only with -DLLMC_DIE_LONGJMP
 * (test/fuzz/run_fuzz.sh does), so that die() longjmps back into the target.
 *
 * The trap: a loader that dies has an open FILE* (and maybe memory) that only
 * it knew about. fopen/fclose are wrapped below, before the llmc headers are
 * included, so the target can close what the loader left open: without that,
 * each rejected input leaks a FILE and the process runs out of descriptors
 * after about a thousand inputs. Memory the loaders allocate sits in structs
 * the target owns (DataLoader) or is allocated by the target itself, so the
 * targets run with leak detection on. fclose of a FILE* that is not open aborts:
 * a double close is a finding.
 *
 * defines: fuzz_init, fuzz_input_path, fuzz_write_input, fuzz_close_all,
 *          fuzz_cleaning, FUZZ_ASSERT
 */
#ifndef TEST_FUZZ_COMMON_H
#define TEST_FUZZ_COMMON_H

#ifndef LLMC_DIE_LONGJMP
#error "build the fuzz targets with -DLLMC_DIE_LONGJMP (see test/fuzz/run_fuzz.sh)"
#endif

// every system header the llmc headers use, before the fopen/fclose macros
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_MAX_FILES 64
static FILE* fuzz_files[FUZZ_MAX_FILES];  // FILE*s opened through the loaders, still open
static int fuzz_num_files = 0;
static int fuzz_cleaning = 0;             // 1 while the target frees after a die()
static char fuzz_dir[256];
static char fuzz_input_path[300];
static FILE* fuzz_report = NULL;          // a copy of stderr that run_fuzz.sh's -close_fd_mask=2 keeps

static FILE* fuzz_fopen(const char* path, const char* mode) {
    FILE* fp = fopen(path, mode);
    if (fp != NULL) {
        if (fuzz_num_files == FUZZ_MAX_FILES) {
            fprintf(fuzz_report, "fuzz: more than %d files open at once\n", FUZZ_MAX_FILES);
            fflush(fuzz_report);
            abort();
        }
        fuzz_files[fuzz_num_files++] = fp;
    }
    return fp;
}

static int fuzz_fclose(FILE* fp) {
    for (int i = 0; i < fuzz_num_files; i++) {
        if (fuzz_files[i] == fp) {
            fuzz_files[i] = fuzz_files[--fuzz_num_files];
            return fclose(fp);
        }
    }
    if (fuzz_cleaning) { return 0; }  // a pointer left dangling by the die() path
    fprintf(fuzz_report, "fuzz: fclose of a FILE* that is not open (double close)\n");
    fflush(fuzz_report);
    abort();
}

// closes whatever a die() left open
static void fuzz_close_all(void) {
    while (fuzz_num_files > 0) { fclose(fuzz_files[--fuzz_num_files]); }
}

#define fopen(path, mode) fuzz_fopen(path, mode)
#define fclose(fp) fuzz_fclose(fp)

static void fuzz_remove_dir(void) {
    unlink(fuzz_input_path);
    rmdir(fuzz_dir);
}

// fuzz_init: call from LLVMFuzzerInitialize, which runs before libFuzzer closes
// stderr for -close_fd_mask=2 (die() prints a line per rejected input; the
// oracles' messages go to the copy made here). The temp directory goes under
// $FUZZ_TMPDIR (run_fuzz.sh sets it and removes it afterwards, also after a
// crash, which skips the atexit cleanup), else /dev/shm (no disk traffic), else /tmp.
static void fuzz_init(const char* name) {
    int fd = dup(2);
    fuzz_report = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fuzz_report == NULL) { fuzz_report = stderr; }
    const char* base = getenv("FUZZ_TMPDIR");
    if (base == NULL || *base == '\0') { base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"; }
    snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/llmc_%s_XXXXXX", base, name);
    if (mkdtemp(fuzz_dir) == NULL) {
        fprintf(stderr, "fuzz: mkdtemp '%s' failed: %s\n", fuzz_dir, strerror(errno));
        exit(1);
    }
    snprintf(fuzz_input_path, sizeof(fuzz_input_path), "%s/input.bin", fuzz_dir);
    atexit(fuzz_remove_dir);
}

// writes the fuzz input to fuzz_input_path (plain POSIX calls: not tracked)
static void fuzz_write_input(const uint8_t* data, size_t size) {
    int fd = open(fuzz_input_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { fprintf(stderr, "fuzz: cannot write '%s'\n", fuzz_input_path); abort(); }
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) { fprintf(stderr, "fuzz: write failed\n"); abort(); }
        done += (size_t)n;
    }
    close(fd);
}

// an oracle: a loader accepted something it should not have
#define FUZZ_ASSERT(cond, what)                                                    \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(fuzz_report, "fuzz: loader accepted a bad input: %s [%s:%d]\n", what, \
                    __FILE__, __LINE__);                                           \
            fflush(fuzz_report);                                                   \
            abort();                                                               \
        }                                                                          \
    } while (0)

#endif // TEST_FUZZ_COMMON_H
