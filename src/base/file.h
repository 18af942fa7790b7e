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

#endif
