/* Signed announcements and fleet trust (the only home of libsodium).
 *
 * The model is an SSH certificate authority for a fleet of hosts:
 *
 *   - The fleet key (Ed25519) stays offline with the operator.  Its public
 *     half is what agents trust; they take a list of them, so that a new
 *     fleet key can be rolled out before the old one is dropped.
 *   - Every host has a key of its own.  `lmdisc certify` signs the host's
 *     public key with the fleet key for a period of time: the certificate.
 *   - The agent announces its certificate and, over the announcement, a
 *     signature by the host key that expires within hours (TXT keys lmd-cert
 *     and lmd-sig).  A peer accepts the announcement when the certificate
 *     chains to a fleet key it trusts and is valid now, the signature
 *     covers exactly what it resolved, has not expired, and the address it
 *     resolved is one the host signed.
 *
 * There is no revocation: a stolen host key is good until its certificate
 * ends, a copied announcement until its signature expires (and only from a
 * signed address).  Keep certificates short enough for that.
 *
 * Everything here is synchronous and touches no network.  Times are Unix
 * seconds; on the wire they are unsigned 32-bit (good until 2106).
 *
 * ---- Files (text, one line each, then a newline) -------------------------
 *
 *   PREFIX.key   "lmdisc-ed25519-secret-v1 " base64(32-byte Ed25519 seed)
 *                mode 0600 (or 0640 with the service's group, root:lmdisc);
 *                refused when others may read it or its group write it
 *   PREFIX.pub   "lmdisc-ed25519-public-v1 " base64(32-byte public key)
 *   HOST.cert    "lmdisc-cert-v1 " compact certificate (below)
 *
 * Key files use standard base64 with padding; the compact forms, which go
 * into TXT records where every byte counts, use it without padding
 * (sodium_base64_VARIANT_ORIGINAL_NO_PADDING: A-Z a-z 0-9 + /, no '=').
 *
 * A key's id is the hex of its public key's first 8 bytes (16 characters).
 *
 * ---- The certificate (112 bytes; compact: 150 base64 characters) ---------
 *
 *   host_pk[32] || u32be not_before || u32be not_after || fleet_id[8] || sig[64]
 *
 * sig is the fleet key's Ed25519 signature over
 *   "lmdisc-cert-v1" (14 bytes, no NUL) || the first 48 bytes above.
 * Valid while not_before <= now < not_after.  fleet_id (the signing fleet
 * key's first 8 bytes) lets a verifier pick the key and say "unknown fleet"
 * rather than "bad signature" when the fleet is not one it trusts.
 *
 * ---- The announcement signature (lmd-sig) ----------------------------------
 *
 *   u32be expiry || u8 n6 || n6 IPv6 addresses (16 bytes each)
 *                || IPv4 addresses (4 bytes each, as many as remain) || sig[64]
 *
 * The addresses travel with the signature because a peer cannot learn them
 * otherwise: avahi publishes each interface's addresses on that interface
 * only and resolves one address per interface and protocol, so no peer
 * sees the whole list the host signed.  At most LMD_TRUST_SIG_ADDR_BYTES
 * (116) bytes of addresses fit in one TXT item: 7 IPv6 and 1 IPv4, or 29
 * IPv4.
 *
 * sig is the host key's Ed25519 signature over the canonical bytes, where
 * str(x) = u32be(length of x) || x:
 *
 *   str("lmdisc-announce-v1")
 *   || the 112 certificate bytes (the certificate it is presented with)
 *   || u32be expiry
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
 * ---- TXT budget ----------------------------------------------------------
 *
 *   lmd-cert=<150>   159 bytes, 160 with its length byte
 *   lmd-sig=<98..247>  106..255 bytes, 107..256 with its length byte:
 *                    1 IPv4: 107;  1 IPv4 + 2 IPv6: 149;  at most: 256
 *
 * Together 267 bytes on the wire for a host with one IPv4 address, 309 with
 * an IPv4 and two IPv6 addresses, 416 at most.  The whole TXT record must
 * stay within LMD_TXT_RECORD_MAX (1300, base/txt.h), which leaves the
 * operator's keys about 1000 bytes (884 in the worst case);
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
#define LMD_TRUST_CERT_TYPE "lmdisc-cert-v1"

#define LMD_TRUST_KEY_BYTES 32       /* an Ed25519 public key, and a seed */
#define LMD_TRUST_ID_BYTES 8         /* a key's id: its public key's first bytes */
#define LMD_TRUST_ID_HEX 17          /* 16 hex digits and a NUL */
#define LMD_TRUST_SIG_BYTES 64
#define LMD_TRUST_CERT_BYTES 112
#define LMD_TRUST_CERT_COMPACT 150   /* characters, without the NUL */
#define LMD_TRUST_SIG_ADDR_BYTES 116 /* what fits in lmd-sig (one TXT item) */
#define LMD_TRUST_SIG_ADDRS_MAX 29   /* 116 / 4 */
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
    unsigned char sig[LMD_TRUST_SIG_BYTES];
} lmd_trust_cert;

typedef struct lmd_trust_ip {
    uint8_t family;                  /* 4 or 6 */
    unsigned char b[16];             /* 4 or 16 bytes used, network order */
} lmd_trust_ip;

/* What lmd-sig carries. */
typedef struct lmd_trust_sig {
    uint32_t expiry;
    size_t n_addrs;
    lmd_trust_ip addrs[LMD_TRUST_SIG_ADDRS_MAX];
    unsigned char sig[LMD_TRUST_SIG_BYTES];
} lmd_trust_sig;

/* The trusted fleet public keys (a list: rotation). */
typedef struct lmd_trust_fleet {
    size_t n;
    lmd_trust_pubkey *keys;
} lmd_trust_fleet;

/* What is signed besides the addresses: the service as DNS-SD resolves it. */
typedef struct lmd_trust_announcement {
    const char *name;                /* instance name, e.g. "h1:8000" */
    const char *type;                /* e.g. "_lmserv._tcp" */
    const char *domain;              /* e.g. "local" */
    uint16_t port;
    const char *host;                /* SRV target, e.g. "h1.local" */
    const lmd_txt *txt;              /* lmd-cert and lmd-sig are skipped */
} lmd_trust_announcement;

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
    /* Set on success: the signature's expiry, and when trust lapses
     * (the earlier of expiry and not_after): verify again by then. */
    uint32_t expiry;
    uint32_t valid_until;
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

/* Write PREFIX.key (0600) and PREFIX.pub (0644) for a new key; neither
 * may exist (O_EXCL|O_NOFOLLOW: no overwriting, no following a link). */
int lmd_trust_keygen(const char *prefix, lmd_trust_pubkey *pub, lmd_err *err);

/* The .pub files given (n may be 0: an empty list for lmd_trust_fleet_add). */
int lmd_trust_fleet_load(const char *const *paths, size_t n, lmd_trust_fleet **out, lmd_err *err);
int lmd_trust_fleet_add(lmd_trust_fleet *f, const lmd_trust_pubkey *k);
void lmd_trust_fleet_free(lmd_trust_fleet *f);

/* ---- Certificates (cert.c) --------------------------------------------- */

int lmd_trust_cert_issue(const lmd_trust_secret *fleet, const lmd_trust_pubkey *host, uint32_t not_before,
                         uint32_t not_after, lmd_trust_cert *out, lmd_err *err);
/* The compact form: LMD_TRUST_CERT_COMPACT characters and a NUL. */
void lmd_trust_cert_compact(const lmd_trust_cert *c, char out[LMD_TRUST_CERT_COMPACT + 1]);
/* Decodes only; lmd_trust_cert_check says whether to believe it. */
int lmd_trust_cert_parse_compact(const void *s, size_t len, lmd_trust_cert *out, char *why, size_t whylen);
/* Atomically (a temporary file renamed over path), mode 0644. */
int lmd_trust_cert_write(const char *path, const lmd_trust_cert *c, lmd_err *err);
int lmd_trust_cert_load(const char *path, lmd_trust_cert *out, lmd_err *err);
/* Chains to a key of f and valid at now: 0, or LMD_EINVAL with res saying
 * why (res is filled either way). */
int lmd_trust_cert_check(const lmd_trust_fleet *f, const lmd_trust_cert *c, int64_t now, lmd_trust_result *res);
/* "2024-05-01 10:00:00 UTC" */
const char *lmd_trust_time_str(int64_t t, char buf[32]);

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

/* Sign a as announced from addrs until expiry and set lmd-cert and lmd-sig
 * in out (which may be the lmd_txt a->txt points to: it is read first).
 * The certificate must be host_key's.  Fails (out untouched) when the
 * addresses do not fit in lmd-sig or the record would exceed
 * LMD_TXT_RECORD_MAX.  Checks no clock: the caller picks expiry, at most
 * LMD_TRUST_SIG_MAX_AHEAD from now, and signs again well before it. */
int lmd_trust_sign(const lmd_trust_secret *host_key, const lmd_trust_cert *cert, const lmd_trust_announcement *a,
                   const char *const *addrs, size_t n_addrs, uint32_t expiry, lmd_txt *out, lmd_err *err);

/* Verify a (its txt with lmd-cert and lmd-sig) as resolved from
 * peer_addrs, at now.  Every one of peer_addrs must be signed, so that a
 * forged address record cannot ride on a genuine signature: pass the
 * addresses you will use (lmd_trust_txt_get and lmd_trust_sig_has_addr
 * can filter them first).  Returns 0 only when res->status is
 * LMD_TRUST_OK; otherwise LMD_EINVAL (LMD_ENOMEM: out of memory) and
 * res->status and res->reason say why.  res is always filled. */
int lmd_trust_verify(const lmd_trust_fleet *fleet, const lmd_trust_announcement *a,
                     const char *const *peer_addrs, size_t n_peer, int64_t now, lmd_trust_result *res);

/* ---- The TXT keys --------------------------------------------------------- */

int lmd_trust_txt_put(lmd_txt *t, const lmd_trust_cert *cert, const lmd_trust_sig *sig, lmd_err *err);
/* Decode both keys: LMD_TRUST_OK, UNSIGNED or MALFORMED (res says why;
 * res may be NULL). */
enum lmd_trust_status lmd_trust_txt_get(const lmd_txt *t, lmd_trust_cert *cert, lmd_trust_sig *sig,
                                        lmd_trust_result *res);
/* Remove both keys (e.g. before showing a peer's TXT to the policy). */
void lmd_trust_txt_strip(lmd_txt *t);
/* Is this one of the two keys (any case)? */
bool lmd_trust_txt_is_ours(const char *key);

#endif
