/* Internal TXT helpers beyond the public lmd_txt_* API. */
#ifndef LMD_TXT_H
#define LMD_TXT_H

#include "base/error.h"
#include "lmdisc.h"

/* Check a key: non-empty printable ASCII without '='; LMD_ETXT and why. */
int lmd_txt_key_check(const void *key, size_t len, lmd_err *err);
/* TXT keys beginning with "lmd-" (any case: TXT keys are case-insensitive)
 * are lmdisc's own: lmd-sig and lmd-cert (trust { }), lmd-live (wide_area
 * { }), and any it adds later.  The agent writes them; clients of the API,
 * policies (set_txt), the configuration (announce.txt) and the command line
 * (--txt) may not, or a client could forge or break what a peer verifies
 * (exported to the Lua half as lmdisc.TXT_RESERVED). */
#define LMD_TXT_RESERVED "lmd-"
bool lmd_txt_key_reserved(const char *key);
/* The first reserved key of t, or NULL. */
const char *lmd_txt_reserved_key(const lmd_txt *t);
/* 0, or LMD_ETXT with err saying that key is reserved (the one wording). */
int lmd_txt_reserved_error(const char *key, lmd_err *err);
/* Add one item as received from the network ("key=value" bytes).  Returns
 * LMD_ETXT with a reason in why (may be NULL) for items RFC 6763 says to
 * ignore (empty key, duplicate key, bad key bytes); the caller logs and
 * goes on. */
int lmd_txt_add_wire_item(lmd_txt *t, const void *raw, size_t len, lmd_err *why);
/* Bytes the TXT record takes on the wire (sum of length-prefixed items). */
size_t lmd_txt_wire_size(const lmd_txt *t);

/* A whole TXT record must fit in one mDNS packet with its name and the
 * SRV and PTR records: avahi sends nothing bigger than the link's MTU (1500
 * on Ethernet) and logs "Record too large, cannot send" instead, so a peer
 * could never resolve us.  1300 bytes of TXT (RFC 6763 6.2) leaves room for
 * a 63-byte instance name over IPv6; tests/lab/test_wedges.lua checks both
 * sides of it on the wire. */
#define LMD_TXT_RECORD_MAX 1300
/* 0, or LMD_ETXT saying how big the record is and what fits.  (Still a
 * (char *, size_t) pair: its callers in src/agent and src/lua pass theirs
 * on; it takes an lmd_err when they do.) */
int lmd_txt_check_record(const lmd_txt *t, char *err, size_t errlen);

#endif
