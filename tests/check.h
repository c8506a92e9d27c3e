/* Counted assertions of the C tests (the C side of tests/harness.py).
 *   CHECK(cond, fmt, ...)   counts a check; a false cond counts a failure and prints
 *                           "FAIL file:line: cond: message" (the first 50 of them)
 *   return check_summary("test_x");   one summary line; 1 if a check failed, else 0
 * A test that cannot run here prints "SKIP: reason" and returns CHECK_SKIP (77): ctest
 * reports it as skipped. */
#pragma once
#include <stdarg.h>
#include <stdio.h>

#define CHECK_SKIP 77

static int failures = 0, checks = 0;

__attribute__((format(printf, 4, 5))) static inline void check_fail(const char *file, int line, const char *cond,
                                                                     const char *fmt, ...) {
    if (++failures > 50) return;
    fprintf(stderr, "FAIL %s:%d: %s: ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define CHECK(cond, ...)                                                                         \
    do {                                                                                         \
        checks++;                                                                                \
        if (!(cond)) check_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                         \
    } while (0)

static inline int check_summary(const char *name) {
    if (failures) {
        fprintf(stderr, "%s: %d of %d checks failed\n", name, failures, checks);
        return 1;
    }
    printf("%s: all %d checks passed\n", name, checks);
    return 0;
}
