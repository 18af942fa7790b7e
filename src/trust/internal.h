/* Shared by the .c files of src/trust/: the only files that see libsodium. */
#ifndef LMD_TRUST_INTERNAL_H
#define LMD_TRUST_INTERNAL_H

#include "trust/trust.h"

#include "trust/sodium.h"
#include <sys/types.h>

struct lmd_trust_secret {
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk[crypto_sign_SECRETKEYBYTES]; /* seed || pk, as libsodium wants it */
};

/* Files we read are one line of a few hundred bytes at most. */
#define LMD_TRUST_FILE_MAX 4096

/* sodium_init(): idempotent and thread-safe, so every entry point that
 * needs it just calls this. */
int lmd_trust_sodium(lmd_err *err);

/* write() until done; 0, or LMD_EIO with errno set. */
int lmd_trust_write_all(int fd, const void *data, size_t len);
/* Create path with exactly mode (O_EXCL|O_NOFOLLOW: never overwrite, never
 * follow a link) and write text; removed again on failure. */
int lmd_trust_create_file(const char *path, mode_t mode, const char *text, size_t len, lmd_err *err);

/* Parse "TYPE BASE64" with an optional trailing newline into exactly
 * outlen bytes.  what names the source in messages; variant is a
 * sodium_base64_VARIANT_*.  The message never quotes the base64 (it may
 * be a secret). */
int lmd_trust_parse_typed(const char *text, size_t len, const char *what, const char *type, const char *kind,
                          int variant, unsigned char *out, size_t outlen, lmd_err *err);

static inline void lmd_trust_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline uint32_t lmd_trust_get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The certificate check (lmd_trust_cert_check) with v's cache (v may be
 * NULL: none). */
int lmd_trust_cert_check_with(lmd_trust_verifier *v, const lmd_trust_fleet *f, const lmd_trust_cert *c, int64_t now,
                              lmd_trust_result *res);
/* Whether sig is pk's Ed25519 signature of msg: from v's cache when it
 * verified the same bytes before (v may be NULL: always verified). */
bool lmd_trust_sig_ok(lmd_trust_verifier *v, const unsigned char sig[LMD_TRUST_SIG_BYTES], const unsigned char *msg,
                      size_t len, const unsigned char pk[LMD_TRUST_KEY_BYTES]);
/* Write text to path atomically (a temporary file renamed over it), mode. */
int lmd_trust_replace_file(const char *path, mode_t mode, const char *text, size_t len, lmd_err *err);

/* Fill res (may be NULL) with status and a reason "<status name>: ...";
 * returns status. */
enum lmd_trust_status lmd_trust_fail(lmd_trust_result *res, enum lmd_trust_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
