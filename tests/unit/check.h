/* The C unit tests' one assertion: CHECK(cond, fmt, ...) counts, and on
 * failure prints where, the condition and the message; main() ends with
 * CHECK_SUMMARY() (exit status 1 when any failed). */
#ifndef LMD_TEST_CHECK_H
#define LMD_TEST_CHECK_H

#include <stdio.h>

static int failures, checks;

#define CHECK(cond, ...)                                                                                             \
    do {                                                                                                             \
        checks++;                                                                                                    \
        if (!(cond)) {                                                                                               \
            failures++;                                                                                              \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);                                       \
            fprintf(stderr, __VA_ARGS__);                                                                            \
            fputc('\n', stderr);                                                                                     \
        }                                                                                                            \
    } while (0)

#endif
