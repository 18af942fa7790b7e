/* Names of this machine (names.c; DNS-SD service types and default
 * instance names are in include/lmdisc.h). */
#ifndef LMD_NAMES_H
#define LMD_NAMES_H

#include <stddef.h>

/* The name a host without one goes by. */
#define LMD_HOST_FALLBACK "localhost"

/* This machine's short host name: gethostname() up to its first dot, as
 * it is (not checked to be a DNS label).  The one fallback, for every
 * caller: when the machine has no name (gethostname fails, or the name is
 * empty or begins with a dot) buf holds LMD_HOST_FALLBACK and the result is
 * LMD_ENOTFOUND, so that a caller that must not publish a made-up name
 * (DNS) refuses while one that only shows it (mDNS, instance names) goes
 * on.  LMD_EINVAL when it does not fit in len (buf holds what fits). */
int lmd_short_hostname(char *buf, size_t len);

#endif
