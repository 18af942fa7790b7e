/* libsodium, loaded when trust is first used (src/trust only; see
 * sodium.c).  An agent without `trust` and the library's users that never
 * sign or verify do not map it.  Every libsodium function src/trust uses is
 * reached through lmd_sodium(), which loads the library on first use.
 * Include this header, never <sodium.h> alone: a name missing from the
 * list below fails the link (libsodium is not linked). */
#ifndef LMD_TRUST_SODIUM_H
#define LMD_TRUST_SODIUM_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>

#define LMD_SODIUM_SYMBOLS(X) \
    X(crypto_generichash_final) \
    X(crypto_generichash_init) \
    X(crypto_generichash_update) \
    X(crypto_sign_detached) \
    X(crypto_sign_ed25519_sk_to_seed) \
    X(crypto_sign_keypair) \
    X(crypto_sign_seed_keypair) \
    X(crypto_sign_verify_detached) \
    X(randombytes_buf) \
    X(sodium_base642bin) \
    X(sodium_bin2base64) \
    X(sodium_bin2hex) \
    X(sodium_free) \
    X(sodium_hex2bin) \
    X(sodium_init) \
    X(sodium_malloc) \
    X(sodium_memcmp) \
    X(sodium_memzero) \
    X(sodium_mprotect_readonly) \
    /* end */

struct lmd_sodium_api {
#define LMD_SODIUM_MEMBER(f) __typeof__(f) *f;
    LMD_SODIUM_SYMBOLS(LMD_SODIUM_MEMBER)
#undef LMD_SODIUM_MEMBER
};

/* The loaded library; the first call loads it, and if it cannot be
 * loaded says so (install Debian's libsodium23) and exits: signing or
 * verifying was asked for, and none of it can work. */
const struct lmd_sodium_api *lmd_sodium(void);
/* Whether libsodium can be loaded (loads it); with the reason if not. */
bool lmd_sodium_available(char *why, size_t len);

#ifndef LMD_SODIUM_NO_REDIRECT /* sodium.c: the names themselves */
#define crypto_generichash_final (*lmd_sodium()->crypto_generichash_final)
#define crypto_generichash_init (*lmd_sodium()->crypto_generichash_init)
#define crypto_generichash_update (*lmd_sodium()->crypto_generichash_update)
#define crypto_sign_detached (*lmd_sodium()->crypto_sign_detached)
#define crypto_sign_ed25519_sk_to_seed (*lmd_sodium()->crypto_sign_ed25519_sk_to_seed)
#define crypto_sign_keypair (*lmd_sodium()->crypto_sign_keypair)
#define crypto_sign_seed_keypair (*lmd_sodium()->crypto_sign_seed_keypair)
#define crypto_sign_verify_detached (*lmd_sodium()->crypto_sign_verify_detached)
#define randombytes_buf (*lmd_sodium()->randombytes_buf)
#define sodium_base642bin (*lmd_sodium()->sodium_base642bin)
#define sodium_bin2base64 (*lmd_sodium()->sodium_bin2base64)
#define sodium_bin2hex (*lmd_sodium()->sodium_bin2hex)
#define sodium_free (*lmd_sodium()->sodium_free)
#define sodium_hex2bin (*lmd_sodium()->sodium_hex2bin)
#define sodium_init (*lmd_sodium()->sodium_init)
#define sodium_malloc (*lmd_sodium()->sodium_malloc)
#define sodium_memcmp (*lmd_sodium()->sodium_memcmp)
#define sodium_memzero (*lmd_sodium()->sodium_memzero)
#define sodium_mprotect_readonly (*lmd_sodium()->sodium_mprotect_readonly)
#endif

#endif
