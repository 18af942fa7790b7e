/* Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c): silencing the
 * code under test, invariant checks, and reading structured values from the
 * fuzzer's bytes. */
#ifndef LMD_FUZZ_H
#define LMD_FUZZ_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The code under test prints usage errors, help and log lines: all of it
 * goes to /dev/null.  stdout by dup2 (nothing of libFuzzer's goes there);
 * stderr as a stdio stream only: file descriptor 2 stays the terminal's, as
 * libFuzzer (its "Done N runs" line, the statistics), the sanitizers' reports
 * and fuzz_fail() write there directly or through a FILE opened before this
 * runs. */
static inline void fuzz_silence(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    fflush(stdout);
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        close(fd);
    }
    FILE *null = fopen("/dev/null", "w");
    if (null)
        stderr = null;
}

/* The LLVMFuzzerInitialize of a harness that needs nothing but silence. */
#define FUZZ_INIT_SILENCED()                                                                                         \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                                                                \
    {                                                                                                                \
        (void)argc;                                                                                                  \
        (void)argv;                                                                                                  \
        fuzz_silence();                                                                                              \
        return 0;                                                                                                    \
    }

/* An invariant did not hold: say which, on the real stderr, and abort()
 * (libFuzzer saves the input as a crash). */
static inline void fuzz_fail(const char *file, int line, const char *what)
{
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "\n==lmdisc-fuzz== %s:%d: invariant violated: %s\n", file, line, what);
    if (n > 0)
        (void)!write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    abort();
}
#define FUZZ_CHECK(cond)                                                                                       \
    do {                                                                                                       \
        if (!(cond))                                                                                           \
            fuzz_fail(__FILE__, __LINE__, #cond);                                                              \
    } while (0)

/* Known bugs whose fix lies outside the files of the harnesses (listed in
 * tests/fuzz/README.md): while fuzzing they are tolerated, so that the
 * fuzzer goes on looking for new ones; with LMD_FUZZ_STRICT set (the
 * fuzz_NAME_regressions tests set it) they fail like any invariant. */
static inline bool fuzz_tolerate_known(const char *id)
{
    (void)id;
    static int strict = -1;
    if (strict < 0)
        strict = getenv("LMD_FUZZ_STRICT") != NULL;
    return !strict;
}

/* Structured values from the input, front to back; reading past the end
 * gives zeros and empty strings. */
struct fuzz_in {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
    uint16_t hi = fuzz_u8(in);
    return (uint16_t)(hi << 8 | fuzz_u8(in));
}

/* Up to max bytes (the count is the next byte, or two when max > 255,
 * modulo max + 1); *len is how
 * many were available.  Points into the input. */
static inline const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t max, size_t *len)
{
    size_t want = max > 255 ? fuzz_u16(in) % (max + 1) : fuzz_u8(in) % (max + 1);
    if (want > in->n)
        want = in->n;
    const uint8_t *p = in->p;
    in->p += want;
    in->n -= want;
    *len = want;
    return p;
}

/* Independent of src/base/util.c on purpose: strict UTF-8 (no overlong
 * forms, surrogates or code points past U+10FFFF); NUL counts as invalid
 * when nul_ok is false. */
static inline bool fuzz_utf8_valid(const uint8_t *s, size_t len, bool nul_ok)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0 && !nul_ok)
                return false;
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            n = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n;
    }
    return true;
}

#endif
