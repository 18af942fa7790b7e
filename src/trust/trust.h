/* Signed announcements and fleet trust (the only home of libsodium).
 *
 * The model is an SSH certificate authority for a fleet of hosts:
 *
 *   - The fleet key (Ed25519) stays offline with the operator.  Its public
 *     half is what agents trust; they take a list of them, so that a new
 *     fleet key can be rolled out before the old one is dropped.
 *   - Every host has a key of its own.  `lmdisc certify` signs the host's
 *     public key with the fleet key for a period of time, with the names
 *     the host may announce (as SSH certificates carry principals): the
 *     certificate.
 *   - The agent announces its certificate and, over the announcement, a
 *     signature by the host key that carries its issue time and expires
 *     within hours (TXT keys lmd-cert and lmd-sig).
 *   - The fleet key may also sign a revocation list (host keys and
 *     certificate serials) that agents load from a file.
 *
 * The verdict on an announcement is one function of the announcement, the
 * clock and the verifier's state (fleet keys, revocation list, the newest
 * signature seen per signer and name): lmd_trust_judge().  It checks, in
 * this order (the first that fails is the verdict):
 *
 *   1. lmd-cert and lmd-sig present and decodable         unsigned / malformed
 *      (a version 1 certificate names nothing: refused)    old certificate
 *   2. the certificate chains to a trusted fleet key       unknown fleet / bad certificate
 *   3. not_before <= now < not_after                       not yet valid / expired
 *   4. neither the host key nor the serial is revoked      revoked
 *   5. the instance name is one the certificate names      name not covered
 *   6. now < the signature's expiry <= now + 24 h + skew   signature expired / too far
 *   7. the signature covers exactly what was resolved      bad signature
 *   8. no newer signature by the same host key for the
 *      same name, type and domain is still valid           superseded
 *   9. every resolved address is one the host signed       address not signed
 *
 * A verdict holds until res->valid_until, the earliest time the clock
 * alone may change it (for a trusted one the earlier of the signature's
 * expiry and the certificate's end): judge again by then.
 * docs/guide/trust.md has the same table.
 *
 * Everything here is synchronous and touches no network.  Times are Unix
 * seconds; on the wire they are unsigned 32-bit (good until 2106), the
 * issue time is 64-bit milliseconds.
 *
 * ---- Files (text, one line each, then a newline) -------------------------
 *
 *   PREFIX.key   "lmdisc-ed25519-secret-v1 " base64(32-byte Ed25519 seed)
 *                mode 0600 (or 0640 with the service's group, root:lmdisc);
 *                refused when others may read it or its group write it
 *   PREFIX.pub   "lmdisc-ed25519-public-v1 " base64(32-byte public key)
 *   HOST.cert    "lmdisc-cert-v2 " compact certificate (below)
 *   revocations  several lines, see "The revocation list" below
 *
 * Key files use standard base64 with padding; the compact forms, which go
 * into TXT records where every byte counts, use it without padding
 * (sodium_base64_VARIANT_ORIGINAL_NO_PADDING: A-Z a-z 0-9 + /, no '=').
 *
 * A key's id is the hex of its public key's first 8 bytes (16 characters).
 *
 * ---- The certificate (121 to 184 bytes; compact: 162 to 246 characters) --
 *
 *   host_pk[32] || u32be not_before || u32be not_after || fleet_id[8]
 *               || u64be serial || u8 names_len || names[names_len] || sig[64]
 *
 * names is a list of patterns, each u8 length || bytes (1 to 62 bytes, no
 * control characters), names_len at most LMD_TRUST_CERT_NAMES_MAX (63) so
 * that lmd-cert fits in one TXT item.  A pattern matches an instance name
 * ASCII case-insensitively, '*' standing for any run of bytes and '?' for
 * one character; "*" alone matches every name.  A name "BASE #N" (N a
 * number, as avahi renames a service after a name conflict) is covered
 * when BASE is.  sig is the fleet key's Ed25519 signature over
 *   "lmdisc-cert-v2" (14 bytes, no NUL) || every byte above but sig.
 * Valid while not_before <= now < not_after.  fleet_id (the signing fleet
 * key's first 8 bytes) lets a verifier pick the key and say "unknown fleet"
 * rather than "bad signature" when the fleet is not one it trusts.  serial
 * (random unless given) names the certificate in a revocation list.
 *
 * Version 1 certificates (112 bytes, "lmdisc-cert-v1", no names and no
 * serial) are refused everywhere: loading one says to certify the host
 * again with --name, a peer presenting one is "old certificate".
 *
 * ---- The announcement signature (lmd-sig) ----------------------------------
 *
 *   u32be expiry || u64be issued || u8 n6 || n6 IPv6 addresses (16 bytes each)
 *                || IPv4 addresses (4 bytes each, as many as remain) || sig[64]
 *
 * issued is when it was signed, in Unix milliseconds: a signer never issues
 * two signatures for one name with the same value, and a verifier refuses
 * a signature older than one it has seen for the same name while that
 * one is valid (no rollback: a replayed earlier state loses to a newer).
 * The addresses travel with the signature because a peer cannot learn them
 * otherwise: avahi publishes each interface's addresses on that interface
 * only and resolves one address per interface and protocol, so no peer
 * sees the whole list the host signed.  At most LMD_TRUST_SIG_ADDR_BYTES
 * (108) bytes of addresses fit in one TXT item: 6 IPv6 and 3 IPv4, or 27
 * IPv4.
 *
 * sig is the host key's Ed25519 signature over the canonical bytes, where
 * str(x) = u32be(length of x) || x:
 *
 *   str("lmdisc-announce-v2")
 *   || str(the certificate's bytes) (the certificate it is presented with)
 *   || u32be expiry || u64be issued
 *   || str(name) || str(type) || str(domain) || u16be port || str(host)
 *   || u32be count || for each TXT item, sorted by lowercased key (bytes):
 *          str(lowercased key) || u8 (1: key=value, 0: bare key) || str(value)
 *          (the value is empty for a bare key)
 *   || u32be count || for each address, sorted and without duplicates:
 *          u8 4 || 4 bytes, or u8 6 || 16 bytes (so IPv4 sort first)
 *
 * name, type, domain and host are DNS names, which compare ASCII
 * case-insensitively: A-Z become a-z and one trailing '.' is dropped
 * (type, domain and host), so "H1.local." and "h1.local" sign alike.
 * The TXT items lmd-cert and lmd-sig (any case) are left out; every other
 * item is covered, values byte for byte.  TXT keys are case-insensitive
 * (RFC 6763 6.4) and their order carries no meaning, hence the sort.
 * Addresses are parsed (inet_pton; a "%scope" suffix is dropped, an
 * IPv4-mapped IPv6 address is its IPv4 address), so the text form does
 * not matter either.
 *
 * ---- The revocation list --------------------------------------------------
 *
 *   lmdisc-revoked-v1
 *   fleet <the signing fleet key's id, 16 hex digits>
 *   issued <Unix seconds>
 *   key <base64 host public key>            (any number of these)
 *   serial <16 hex digits>                  (any number of these)
 *   sig <base64 Ed25519 signature>
 *
 * Each line ends with a newline.  sig is the fleet key's signature over
 * every byte before the "sig " line.  An agent takes a list signed by any
 * fleet key it trusts, and refuses one issued before the list it holds.
 *
 * ---- TXT budget ----------------------------------------------------------
 *
 *   lmd-cert=<164..246>  173..255 bytes, 174..256 with its length byte
 *                    (one one-character name: 174)
 *   lmd-sig=<108..247>   116..255 bytes, 117..256 with its length byte:
 *                    1 IPv4: 117;  1 IPv4 + 2 IPv6: 160;  at most: 256
 *
 * Together 291 bytes on the wire for a host with one IPv4 address and a
 * one-name certificate, 512 at most.  The whole TXT record must stay
 * within LMD_TXT_RECORD_MAX (1300, base/txt.h), which leaves the
 * operator's keys about 1000 bytes (788 in the worst case);
 * lmd_trust_sign() refuses a record that would not fit. */
#ifndef LMD_TRUST_H
#define LMD_TRUST_H

#include "base/error.h"
#include "lmdisc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LMD_TRUST_TXT_CERT "lmd-cert"
#define LMD_TRUST_TXT_SIG "lmd-sig"

#define LMD_TRUST_SECRET_TYPE "lmdisc-ed25519-secret-v1"
#define LMD_TRUST_PUBLIC_TYPE "lmdisc-ed25519-public-v1"
#define LMD_TRUST_CERT_TYPE "lmdisc-cert-v2"
#define LMD_TRUST_CERT_V1_TYPE "lmdisc-cert-v1"
#define LMD_TRUST_REVOKED_TYPE "lmdisc-revoked-v1"

#define LMD_TRUST_KEY_BYTES 32       /* an Ed25519 public key, and a seed */
#define LMD_TRUST_ID_BYTES 8         /* a key's id: its public key's first bytes */
#define LMD_TRUST_ID_HEX 17          /* 16 hex digits and a NUL */
#define LMD_TRUST_SIG_BYTES 64
#define LMD_TRUST_CERT_NAMES_MAX 63  /* bytes of encoded name patterns in a certificate */
#define LMD_TRUST_CERT_MIN 121       /* a certificate without names */
#define LMD_TRUST_CERT_BYTES (LMD_TRUST_CERT_MIN + LMD_TRUST_CERT_NAMES_MAX)
#define LMD_TRUST_CERT_V1_COMPACT 150 /* a version 1 certificate's compact form */
#define LMD_TRUST_CERT_COMPACT_MAX 246 /* characters, without the NUL */
#define LMD_TRUST_SIG_ADDR_BYTES 108 /* what fits in lmd-sig (one TXT item) */
#define LMD_TRUST_SIG_ADDRS_MAX 27   /* 108 / 4 */
#define LMD_TRUST_SIG_COMPACT_MAX 247

/* A signature may expire at most this far ahead of the verifier's clock
 * (plus LMD_TRUST_CLOCK_SKEW): a copied announcement is good until then,
 * so a signer must not choose a long one. */
#define LMD_TRUST_SIG_MAX_AHEAD 86400
/* Hosts' clocks disagree a little: the skew allowed on the signature's
 * expiry horizon.  `lmdisc certify` back-dates not_before by as much. */
#define LMD_TRUST_CLOCK_SKEW 300

typedef struct lmd_trust_pubkey {
    unsigned char pk[LMD_TRUST_KEY_BYTES];
} lmd_trust_pubkey;

/* A secret key: opaque, in guarded memory that is zeroed when freed. */
typedef struct lmd_trust_secret lmd_trust_secret;

typedef struct lmd_trust_cert {
    unsigned char host_pk[LMD_TRUST_KEY_BYTES];
    uint32_t not_before, not_after;  /* valid while not_before <= now < not_after */
    unsigned char fleet_id[LMD_TRUST_ID_BYTES];
    uint64_t serial;
    uint8_t names_len;               /* bytes used in names */
    unsigned char names[LMD_TRUST_CERT_NAMES_MAX]; /* u8 length || pattern, ... */
    unsigned char sig[LMD_TRUST_SIG_BYTES];
} lmd_trust_cert;

typedef struct lmd_trust_ip {
    uint8_t family;                  /* 4 or 6 */
    unsigned char b[16];             /* 4 or 16 bytes used, network order */
} lmd_trust_ip;

/* What lmd-sig carries. */
typedef struct lmd_trust_sig {
    uint32_t expiry;
    uint64_t issued;                 /* Unix milliseconds */
    size_t n_addrs;
    lmd_trust_ip addrs[LMD_TRUST_SIG_ADDRS_MAX];
    unsigned char sig[LMD_TRUST_SIG_BYTES];
} lmd_trust_sig;

/* The trusted fleet public keys (a list: rotation). */
typedef struct lmd_trust_fleet {
    size_t n;
    lmd_trust_pubkey *keys;
} lmd_trust_fleet;

/* A revocation list, as signed by a fleet key. */
typedef struct lmd_trust_revoked {
    unsigned char fleet_id[LMD_TRUST_ID_BYTES];
    uint64_t issued;                 /* Unix seconds */
    size_t n_keys, n_serials;
    lmd_trust_pubkey *keys;
    uint64_t *serials;
} lmd_trust_revoked;

/* What is signed besides the addresses: the service as DNS-SD resolves it. */
typedef struct lmd_trust_announcement {
    const char *name;                /* instance name, e.g. "h1:8000" */
    const char *type;                /* e.g. "_lmserv._tcp" */
    const char *domain;              /* e.g. "local" */
    uint16_t port;
    const char *host;                /* SRV target, e.g. "h1.local" */
    const lmd_txt *txt;              /* lmd-cert and lmd-sig are skipped */
} lmd_trust_announcement;

/* In the order lmd_trust_judge checks (trust.h's head); the metrics count
 * by these (struct lmd_metrics has room for 16). */
enum lmd_trust_status {
    LMD_TRUST_OK = 0,
    LMD_TRUST_UNSIGNED,              /* neither lmd-cert nor lmd-sig */
    LMD_TRUST_MALFORMED,             /* one missing, or not decodable */
    LMD_TRUST_UNKNOWN_FLEET,         /* certified by a fleet key not in the list */
    LMD_TRUST_BAD_CERT,              /* the certificate's signature does not verify */
    LMD_TRUST_CERT_NOT_YET_VALID,
    LMD_TRUST_CERT_EXPIRED,
    LMD_TRUST_SIG_EXPIRED,
    LMD_TRUST_SIG_TOO_FAR,           /* expiry beyond LMD_TRUST_SIG_MAX_AHEAD */
    LMD_TRUST_BAD_SIGNATURE,         /* something signed was changed */
    LMD_TRUST_ADDRESS_NOT_SIGNED,
    LMD_TRUST_OLD_CERT,              /* a version 1 certificate: names nothing */
    LMD_TRUST_REVOKED,               /* host key or certificate serial revoked */
    LMD_TRUST_NAME_NOT_COVERED,      /* the certificate does not name this instance */
    LMD_TRUST_SUPERSEDED,            /* older than a signature seen for the same name, still valid */
    LMD_TRUST_ERROR,                 /* out of memory, bad argument */
};

typedef struct lmd_trust_result {
    enum lmd_trust_status status;
    char reason[256];                /* one line: "<status name>: <details>" */
    /* Set as soon as the certificate decodes (the claimed identity on a
     * failure, the signer's on success): */
    char host_id[LMD_TRUST_ID_HEX];
    char fleet_id[LMD_TRUST_ID_HEX];
    uint32_t not_after;
    /* Set on success: the signature's expiry and issue time.  valid_until,
     * set by the verdict whatever it is: the earliest time the clock alone
     * may change it (a certificate or signature that ends, one not yet
     * valid or too far ahead that becomes acceptable, a newer signature
     * that ends); 0: never.  Judge again by then. */
    uint32_t expiry;
    uint64_t issued;
    uint32_t valid_until;
    /* lmd_trust_judge: this trusted signature is now the newest seen for its
     * signer and name (a record shown under the name in another case may
     * be superseded by it: judge those again). */
    bool newest;
} lmd_trust_result;

/* "unsigned", "unknown fleet", "certificate expired", "bad signature"... */
const char *lmd_trust_status_name(enum lmd_trust_status s);

/* ---- Keys (keys.c) ------------------------------------------------------ */

int lmd_trust_secret_generate(lmd_trust_secret **out, lmd_err *err);
/* Refuses a file others may read or its group write (0600 and root:lmdisc
 * 0640 are fine: lmd_secret_mode_check), a wrong type line, bad base64 or
 * length, each with one line naming the file. */
int lmd_trust_secret_load(const char *path, lmd_trust_secret **out, lmd_err *err);
void lmd_trust_secret_free(lmd_trust_secret *k);
void lmd_trust_secret_pubkey(const lmd_trust_secret *k, lmd_trust_pubkey *out);

int lmd_trust_pubkey_load(const char *path, lmd_trust_pubkey *out, lmd_err *err);
/* The text of a .pub file (the trailing newline optional); what names the
 * source in messages. */
int lmd_trust_pubkey_parse(const char *text, size_t len, const char *what, lmd_trust_pubkey *out,
                           lmd_err *err);
/* "lmdisc-ed25519-public-v1 BASE64\n" */
int lmd_trust_pubkey_format(const lmd_trust_pubkey *k, char *buf, size_t len);
/* Hex of the first LMD_TRUST_ID_BYTES of a public key (or of a fleet_id). */
void lmd_trust_id_hex(const unsigned char *id, char hex[LMD_TRUST_ID_HEX]);

/* len random bytes (a certificate's serial). */
int lmd_trust_random(void *buf, size_t len, lmd_err *err);

/* Write PREFIX.key (0600) and PREFIX.pub (0644) for a new key; neither
 * may exist (O_EXCL|O_NOFOLLOW: no overwriting, no following a link). */
int lmd_trust_keygen(const char *prefix, lmd_trust_pubkey *pub, lmd_err *err);

/* The .pub files given (n may be 0: an empty list for lmd_trust_fleet_add). */
int lmd_trust_fleet_load(const char *const *paths, size_t n, lmd_trust_fleet **out, lmd_err *err);
int lmd_trust_fleet_add(lmd_trust_fleet *f, const lmd_trust_pubkey *k);
void lmd_trust_fleet_free(lmd_trust_fleet *f);
/* Same keys in the same order. */
bool lmd_trust_fleet_equal(const lmd_trust_fleet *a, const lmd_trust_fleet *b);

/* ---- Certificates (cert.c) --------------------------------------------- */

/* names: the patterns the host may announce (at least one; "*": any). */
int lmd_trust_cert_issue(const lmd_trust_secret *fleet, const lmd_trust_pubkey *host, uint32_t not_before,
                         uint32_t not_after, uint64_t serial, const char *const *names, size_t n_names,
                         lmd_trust_cert *out, lmd_err *err);
/* Whether pattern is one a certificate can carry: 0, or LMD_EINVAL with a
 * line saying why in err. */
int lmd_trust_name_check(const char *pattern, lmd_err *err);
/* Does the certificate name this instance (patterns, "BASE #N" renames)? */
bool lmd_trust_cert_covers(const lmd_trust_cert *c, const char *name);
/* The patterns as "'gpu1', 'gpu1-*'" (for messages). */
void lmd_trust_cert_names_str(const lmd_trust_cert *c, char *buf, size_t len);
/* The patterns, one by one: i-th into buf; false past the last. */
bool lmd_trust_cert_name(const lmd_trust_cert *c, size_t i, char *buf, size_t len);
/* The certificate's bytes (see the head of this file): its length. */
size_t lmd_trust_cert_bytes(const lmd_trust_cert *c, unsigned char out[LMD_TRUST_CERT_BYTES]);
/* The compact form: at most LMD_TRUST_CERT_COMPACT_MAX characters and a NUL. */
void lmd_trust_cert_compact(const lmd_trust_cert *c, char out[LMD_TRUST_CERT_COMPACT_MAX + 1]);
/* Decodes only; lmd_trust_cert_check says whether to believe it.
 * LMD_EINVAL for a version 1 certificate too (why says so). */
int lmd_trust_cert_parse_compact(const void *s, size_t len, lmd_trust_cert *out, char *why, size_t whylen);
/* Atomically (a temporary file renamed over path), mode 0644. */
int lmd_trust_cert_write(const char *path, const lmd_trust_cert *c, lmd_err *err);
/* A version 1 file is refused with how to replace it. */
int lmd_trust_cert_load(const char *path, lmd_trust_cert *out, lmd_err *err);
/* Chains to a key of f and valid at now: 0, or LMD_EINVAL with res saying
 * why (res is filled either way). */
int lmd_trust_cert_check(const lmd_trust_fleet *f, const lmd_trust_cert *c, int64_t now, lmd_trust_result *res);
/* "2024-05-01 10:00:00 UTC" */
const char *lmd_trust_time_str(int64_t t, char buf[32]);
/* "0123456789abcdef" */
void lmd_trust_serial_hex(uint64_t serial, char hex[LMD_TRUST_ID_HEX]);
int lmd_trust_serial_parse(const char *s, uint64_t *out);

/* ---- The revocation list (revoked.c) ------------------------------------- */

/* Parse and check text against the fleet keys f (a list signed by any of
 * them): 0, or LMD_EINVAL with one line naming what (a file) in err. */
int lmd_trust_revoked_parse(const char *text, size_t len, const char *what, const lmd_trust_fleet *f,
                            lmd_trust_revoked **out, lmd_err *err);
int lmd_trust_revoked_load(const char *path, const lmd_trust_fleet *f, lmd_trust_revoked **out, lmd_err *err);
/* Sign r with the fleet key (its fleet_id is set) and write it atomically. */
int lmd_trust_revoked_write(const char *path, const lmd_trust_secret *fleet, lmd_trust_revoked *r, lmd_err *err);
int lmd_trust_revoked_add_key(lmd_trust_revoked *r, const lmd_trust_pubkey *k);
int lmd_trust_revoked_add_serial(lmd_trust_revoked *r, uint64_t serial);
/* Is the certificate's host key or serial in the list? */
bool lmd_trust_revoked_has(const lmd_trust_revoked *r, const lmd_trust_cert *c);
/* The same list: fleet key, issue time and entries (in any order). */
bool lmd_trust_revoked_equal(const lmd_trust_revoked *a, const lmd_trust_revoked *b);
/* A revoked key stays revoked: add to newer every entry of older it lacks
 * (a list written from an older copy lost them), counting them; 0 or
 * LMD_ENOMEM. */
int lmd_trust_revoked_keep(lmd_trust_revoked *newer, const lmd_trust_revoked *older, size_t *keys, size_t *serials);
void lmd_trust_revoked_free(lmd_trust_revoked *r);

/* ---- Announcements (sign.c) --------------------------------------------- */

/* Parse an address as peers see it ("fe80::1%eth0" and "::ffff:10.0.0.1"
 * are fine); LMD_EINVAL if it is none. */
int lmd_trust_ip_parse(const char *s, lmd_trust_ip *out);
bool lmd_trust_sig_has_addr(const lmd_trust_sig *s, const char *addr);
int lmd_trust_sig_compact(const lmd_trust_sig *s, char out[LMD_TRUST_SIG_COMPACT_MAX + 1]);
int lmd_trust_sig_parse_compact(const void *s, size_t len, lmd_trust_sig *out, char *why, size_t whylen);

/* The canonical bytes above; malloc'd.  0, LMD_ETXT (two TXT keys equal
 * but for case), LMD_EINVAL (a NULL name, type, domain or host) or
 * LMD_ENOMEM. */
int lmd_trust_canonical(const lmd_trust_announcement *a, const lmd_trust_cert *cert, const lmd_trust_sig *sig,
                        unsigned char **out, size_t *len);

/* Sign a as announced from addrs until expiry, issued at issued (Unix
 * milliseconds, never twice the same for a name), and set lmd-cert and
 * lmd-sig in out (which may be the lmd_txt a->txt points to: it is read
 * first).  The certificate must be host_key's and name a->name
 * (LMD_EPERM otherwise, saying which names it covers).  Fails (out
 * untouched) when the addresses do not fit in lmd-sig or the record would
 * exceed LMD_TXT_RECORD_MAX.  Checks no clock: the caller picks expiry,
 * at most LMD_TRUST_SIG_MAX_AHEAD from now, and signs again well before
 * it. */
int lmd_trust_sign(const lmd_trust_secret *host_key, const lmd_trust_cert *cert, const lmd_trust_announcement *a,
                   const char *const *addrs, size_t n_addrs, uint32_t expiry, uint64_t issued, lmd_txt *out,
                   lmd_err *err);

/* The stateless part of the verdict: checks 1 to 7 and 9 of the head of
 * this file without a revocation list (nor the newest-seen check), every
 * signature verified.  Every one of peer_addrs must be signed, so that a
 * forged address record cannot ride on a genuine signature: pass the
 * addresses you will use (lmd_trust_txt_get and lmd_trust_sig_has_addr
 * can filter them first).  Returns 0 only when res->status is
 * LMD_TRUST_OK; otherwise LMD_EINVAL (LMD_ENOMEM: out of memory) and
 * res->status and res->reason say why.  res is always filled. */
int lmd_trust_verify(const lmd_trust_fleet *fleet, const lmd_trust_announcement *a,
                     const char *const *peer_addrs, size_t n_peer, int64_t now, lmd_trust_result *res);

/* ---- The verdict (verdict.c) ----------------------------------------------
 *
 * A verifier holds what a verdict depends on besides the announcement and
 * the clock: the fleet keys, the revocation list, and the newest signature
 * seen per host key, name, type and domain.  It verifies each distinct
 * signed record once: the signature checks are cached by the bytes they
 * cover (1,024 entries of 17 bytes), lmd-cert and lmd-sig as last decoded
 * (64 records, about 50 kB), both allocated at the first use. */
typedef struct lmd_trust_verifier lmd_trust_verifier;

struct lmd_trust_stats {
    uint64_t judged;                 /* lmd_trust_judge calls */
    uint64_t signatures;             /* Ed25519 verifications done */
    uint64_t cached;                 /* verifications answered from the cache */
};

int lmd_trust_verifier_new(lmd_trust_verifier **out, lmd_err *err);
void lmd_trust_verifier_free(lmd_trust_verifier *v);
/* The fleet keys to trust (copied); certificates are checked again. */
int lmd_trust_verifier_set_fleet(lmd_trust_verifier *v, const lmd_trust_fleet *f);
/* The revocation list (taken over; NULL: none); the one it replaces is
 * freed. */
void lmd_trust_verifier_set_revoked(lmd_trust_verifier *v, lmd_trust_revoked *r);
const lmd_trust_revoked *lmd_trust_verifier_revoked(const lmd_trust_verifier *v);
const lmd_trust_fleet *lmd_trust_verifier_fleet(const lmd_trust_verifier *v);
void lmd_trust_verifier_stats(const lmd_trust_verifier *v, struct lmd_trust_stats *out);

/* The verdict (the whole table at the head of this file) on a as resolved
 * from peer_addrs at now; a trusted one records its issue time as the
 * newest for its signer and name when it is.  Returns 0 only when
 * res->status is LMD_TRUST_OK. */
int lmd_trust_judge(lmd_trust_verifier *v, const lmd_trust_announcement *a, const char *const *peer_addrs,
                    size_t n_peer, int64_t now, lmd_trust_result *res);
/* The same for a peer as the registry shows it (its name, type, domain,
 * host, port, TXT and every address). */
int lmd_trust_judge_node(lmd_trust_verifier *v, const lmd_node_info *peer, int64_t now, lmd_trust_result *res);
/* Whether a trusted signature by this host key (its id, hex) for name was
 * seen and is still valid at now: how "NAME #2" is told to be NAME
 * renamed by avahi after a name conflict. */
bool lmd_trust_verifier_knows(const lmd_trust_verifier *v, const char *host_id, const char *name, int64_t now);

/* ---- The TXT keys --------------------------------------------------------- */

int lmd_trust_txt_put(lmd_txt *t, const lmd_trust_cert *cert, const lmd_trust_sig *sig, lmd_err *err);
/* Decode both keys: LMD_TRUST_OK, UNSIGNED, MALFORMED or OLD_CERT (res
 * says why; res may be NULL). */
enum lmd_trust_status lmd_trust_txt_get(const lmd_txt *t, lmd_trust_cert *cert, lmd_trust_sig *sig,
                                        lmd_trust_result *res);
/* Remove both keys (e.g. before showing a peer's TXT to the policy). */
void lmd_trust_txt_strip(lmd_txt *t);
/* Is this one of the two keys (any case)? */
bool lmd_trust_txt_is_ours(const char *key);

#endif
