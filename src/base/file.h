/* Small files a user names: keys, certificates. */
#ifndef LMD_FILE_H
#define LMD_FILE_H

#include "base/error.h"

#include <stddef.h>
#include <sys/stat.h>

/* Read a small regular file (not a FIFO, device or directory: refused
 * without blocking) into buf, NUL-terminated; at most cap - 1 bytes, a
 * bigger file is refused.  *mode (may be NULL) is its st_mode, from the
 * descriptor read (no race with a chmod). */
int lmd_read_small_file(const char *path, char *buf, size_t cap, size_t *len, mode_t *mode, lmd_err *err);

/* The rule for a secret file's mode (TSIG keys, host keys): its owner and
 * at most its group may read it, nobody else may do anything with it, and
 * the group may not write: 0600 or 0400, and 0640 or 0440 with the
 * service's group (root:lmdisc 0640, the way Debian ships bind's rndc.key
 * for the bind user).  0, or LMD_EINVAL with err naming path and what to
 * do; what says what the file is ("TSIG key"), why what reading it allows. */
int lmd_secret_mode_check(const char *path, mode_t mode, const char *what, const char *why, lmd_err *err);

#endif
