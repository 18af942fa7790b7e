/* One error convention for the whole code base.
 *
 * Functions return 0 or a negative LMD_E* code (include/lmdisc.h).  Where a
 * caller needs more than the code (a constructor that reads a file, binds a
 * socket...), it passes an lmd_err that the failing function fills with one
 * line saying what was wrong and how to fix it.
 *
 * Constructors all look alike:
 *     int lmd_thing_new(<inputs>, lmd_thing **out, lmd_err *err);
 * 0 and *out set, or a negative code, *out NULL and err (if not NULL) filled. */
#ifndef LMD_ERROR_H
#define LMD_ERROR_H

#include "lmdisc.h"

#include <stddef.h>

typedef struct lmd_err {
    int code;
    char msg[1024];
} lmd_err;

/* Fill err (may be NULL) with code and a message; returns code. */
int lmd_err_set(lmd_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The message, or lmd_strerror(code) when none was given. */
const char *lmd_err_text(const lmd_err *err);
/* Format into a plain buffer (may be NULL); returns code.  For the public
 * API's (char *err, size_t errlen) pairs. */
int lmd_errbuf(char *buf, size_t len, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
