/* What src/lib needs to keep the public ABI (include/lmdisc.h, "ABI
 * rules"): option structs read whatever layout the caller was built with. */
#ifndef LMD_LIB_ABI_H
#define LMD_LIB_ABI_H

#include "lmdisc.h"

#include <stddef.h>

/* Copy the caller's option struct src (its size field says how many bytes;
 * 0: first bytes, the first layout) into dst, which has known bytes (sizeof
 * this library's struct): the fields src does not cover are zeroed.
 * LMD_EINVAL when size is below the first layout, or when src goes past
 * known with bytes that are not zero (fields this library does not know).
 * A NULL src gives a zeroed dst. */
int lmd_lib_opts_read(void *dst, size_t known, size_t first, const void *src);

/* Where the first layout of each option struct ends (its last field):
 * what a caller with size 0 has. */
#define LMD_LIB_DISCOVER_OPTS_FIRST (offsetof(lmd_discover_opts, complete) + sizeof(bool))
#define LMD_LIB_ANNOUNCE_OPTS_FIRST (offsetof(lmd_announce_opts, txt) + sizeof(const lmd_txt *))

#endif
