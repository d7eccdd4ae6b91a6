/*
 * test.h: the tiny harness every C test uses. CHECK records one assertion;
 * each test program ends with test_summary(), which prints "N passed, M failed"
 * for that program; test/run_tests.sh adds them up into make test's last line.
 *
 * defines: CHECK, CHECK_CLOSE, test_summary, max_abs_rel_err
 */
#ifndef TEST_TEST_H
#define TEST_TEST_H

#include <math.h>
#include <stdio.h>

static int g_test_passed = 0;  // a test program owns its counters
static int g_test_failed = 0;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond) {                                                            \
            g_test_passed++;                                                   \
            printf("ok   ");                                                   \
        } else {                                                               \
            g_test_failed++;                                                   \
            printf("FAIL ");                                                   \
        }                                                                      \
        printf(__VA_ARGS__);                                                   \
        printf("%s\n", (cond) ? "" : "   [" __FILE__ ":" TEST_STR(__LINE__) "]"); \
        fflush(stdout);                                                        \
    } while (0)
#define TEST_STR2(x) #x
#define TEST_STR(x) TEST_STR2(x)

// max_abs_rel_err: max |a-b| and max |a-b| / (|b| + floor) over n elements
static inline void max_abs_rel_err(const float* a, const float* b, size_t n, float floor_, double* max_abs,
                                   double* max_rel) {
    double ma = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d != d) { d = INFINITY; }
        double r = d / (fabs((double)b[i]) + floor_);
        if (d > ma) ma = d;
        if (r > mr) mr = r;
    }
    *max_abs = ma;
    *max_rel = mr;
}

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", g_test_passed, g_test_failed);
    return g_test_failed == 0 ? 0 : 1;
}

#endif // TEST_TEST_H
