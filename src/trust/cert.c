/* Fleet certificates: a host key signed by a fleet key for a period of
 * time (see trust.h for the bytes). */
#include "trust/internal.h"
#include "base/file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CERT_CONTEXT "lmdisc-cert-v2"
/* host_pk, not_before, not_after, fleet_id, serial, names_len */
#define CERT_FIXED (LMD_TRUST_KEY_BYTES + 4 + 4 + LMD_TRUST_ID_BYTES + 8 + 1)
#define CERT_V1_BYTES 112

_Static_assert(CERT_FIXED + LMD_TRUST_SIG_BYTES == LMD_TRUST_CERT_MIN, "certificate layout");
_Static_assert(sodium_base64_ENCODED_LEN(LMD_TRUST_CERT_BYTES, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) ==
                   LMD_TRUST_CERT_COMPACT_MAX + 1,
               "compact certificate length");
_Static_assert(sizeof LMD_TRUST_TXT_CERT "=" - 1 + LMD_TRUST_CERT_COMPACT_MAX <= LMD_TXT_ITEM_MAX,
               "lmd-cert fits in one TXT item");
_Static_assert(sodium_base64_ENCODED_LEN(CERT_V1_BYTES, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) ==
                   LMD_TRUST_CERT_V1_COMPACT + 1,
               "version 1 compact length");

const char *lmd_trust_status_name(enum lmd_trust_status s)
{
    switch (s) {
    case LMD_TRUST_OK: return "trusted";
    case LMD_TRUST_UNSIGNED: return "unsigned";
    case LMD_TRUST_MALFORMED: return "malformed signature";
    case LMD_TRUST_UNKNOWN_FLEET: return "unknown fleet";
    case LMD_TRUST_BAD_CERT: return "bad certificate";
    case LMD_TRUST_CERT_NOT_YET_VALID: return "certificate not yet valid";
    case LMD_TRUST_CERT_EXPIRED: return "certificate expired";
    case LMD_TRUST_SIG_EXPIRED: return "signature expired";
    case LMD_TRUST_SIG_TOO_FAR: return "signature expires too far ahead";
    case LMD_TRUST_BAD_SIGNATURE: return "bad signature";
    case LMD_TRUST_ADDRESS_NOT_SIGNED: return "address not signed";
    case LMD_TRUST_OLD_CERT: return "old certificate";
    case LMD_TRUST_REVOKED: return "revoked";
    case LMD_TRUST_NAME_NOT_COVERED: return "name not covered";
    case LMD_TRUST_SUPERSEDED: return "superseded";
    case LMD_TRUST_ERROR: return "error";
    }
    return "unknown status";
}

enum lmd_trust_status lmd_trust_fail(lmd_trust_result *res, enum lmd_trust_status status, const char *fmt, ...)
{
    if (!res)
        return status;
    res->status = status;
    int n = snprintf(res->reason, sizeof res->reason, "%s: ", lmd_trust_status_name(status));
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof res->reason)
        vsnprintf(res->reason + n, sizeof res->reason - (size_t)n, fmt, ap);
    va_end(ap);
    return status;
}

const char *lmd_trust_time_str(int64_t t, char buf[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(buf, 32, "@%lld", (long long)t);
    return buf;
}

/* What the fleet key signs: the context, then every byte but the
 * signature; its length. */
static size_t cert_message(const lmd_trust_cert *c, unsigned char msg[sizeof CERT_CONTEXT - 1 + LMD_TRUST_CERT_BYTES])
{
    unsigned char *p = msg;
    memcpy(p, CERT_CONTEXT, sizeof CERT_CONTEXT - 1);
    p += sizeof CERT_CONTEXT - 1;
    memcpy(p, c->host_pk, LMD_TRUST_KEY_BYTES);
    lmd_trust_put32(p + 32, c->not_before);
    lmd_trust_put32(p + 36, c->not_after);
    memcpy(p + 40, c->fleet_id, LMD_TRUST_ID_BYTES);
    lmd_trust_put32(p + 48, (uint32_t)(c->serial >> 32));
    lmd_trust_put32(p + 52, (uint32_t)c->serial);
    p[56] = c->names_len;
    memcpy(p + CERT_FIXED, c->names, c->names_len);
    return sizeof CERT_CONTEXT - 1 + CERT_FIXED + c->names_len;
}

size_t lmd_trust_cert_bytes(const lmd_trust_cert *c, unsigned char out[LMD_TRUST_CERT_BYTES])
{
    unsigned char msg[sizeof CERT_CONTEXT - 1 + LMD_TRUST_CERT_BYTES];
    size_t n = cert_message(c, msg) - (sizeof CERT_CONTEXT - 1);
    memcpy(out, msg + sizeof CERT_CONTEXT - 1, n);
    memcpy(out + n, c->sig, LMD_TRUST_SIG_BYTES);
    return n + LMD_TRUST_SIG_BYTES;
}

/* 0, or LMD_EINVAL with why: the layout, and names that are a list of
 * patterns filling names_len exactly. */
static int cert_from_bytes(const unsigned char *b, size_t n, lmd_trust_cert *c, char *why, size_t whylen)
{
    memset(c, 0, sizeof *c);
    if (n < LMD_TRUST_CERT_MIN || n > LMD_TRUST_CERT_BYTES || b[56] != n - LMD_TRUST_CERT_MIN)
        return lmd_errbuf(why, whylen, LMD_EINVAL, "the certificate is %zu bytes, which does not fit its layout", n);
    memcpy(c->host_pk, b, LMD_TRUST_KEY_BYTES);
    c->not_before = lmd_trust_get32(b + 32);
    c->not_after = lmd_trust_get32(b + 36);
    memcpy(c->fleet_id, b + 40, LMD_TRUST_ID_BYTES);
    c->serial = (uint64_t)lmd_trust_get32(b + 48) << 32 | lmd_trust_get32(b + 52);
    c->names_len = b[56];
    memcpy(c->names, b + CERT_FIXED, c->names_len);
    memcpy(c->sig, b + CERT_FIXED + c->names_len, LMD_TRUST_SIG_BYTES);
    for (size_t o = 0; o < c->names_len;) {
        size_t l = c->names[o];
        if (l == 0 || o + 1 + l > c->names_len)
            return lmd_errbuf(why, whylen, LMD_EINVAL, "the certificate's list of names is malformed");
        o += 1 + l;
    }
    return 0;
}

/* ---- Names ------------------------------------------------------------------ */

int lmd_trust_name_check(const char *pattern, lmd_err *err)
{
    size_t n = pattern ? strlen(pattern) : 0;
    if (n == 0)
        return lmd_err_set(err, LMD_EINVAL, "an empty name: give a pattern like 'gpu1' or 'gpu1-*'");
    if (n > LMD_TRUST_CERT_NAMES_MAX - 1)
        return lmd_err_set(err, LMD_EINVAL, "the name '%.40s...' is %zu bytes; at most %d fit in a certificate",
                           pattern, n, LMD_TRUST_CERT_NAMES_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)pattern[i] < 0x20 || pattern[i] == 0x7f)
            return lmd_err_set(err, LMD_EINVAL, "the name pattern holds a control character (byte %zu)", i);
    return 0;
}

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c; }

/* One UTF-8 character's length at s (at least 1, within n). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t l = 1;
    while (l < n && (s[l] & 0xc0) == 0x80)
        l++;
    return l;
}

/* Glob match, ASCII case-insensitive: '*' any run of bytes, '?' one
 * character.  Iterative with one backtrack point (the last '*'), so a
 * pattern full of stars costs O(n * m) at worst, never more. */
static bool glob(const unsigned char *p, size_t pn, const unsigned char *s, size_t sn)
{
    size_t pi = 0, si = 0, star = (size_t)-1, mark = 0;
    while (si < sn) {
        if (pi < pn && p[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < pn && p[pi] == '?') {
            pi++;
            si += utf8_len(s + si, sn - si);
        } else if (pi < pn && lower(p[pi]) == lower(s[si])) {
            pi++;
            si++;
        } else if (star != (size_t)-1) {
            pi = star + 1;
            si = mark + utf8_len(s + mark, sn - mark);
            mark = si;
        } else {
            return false;
        }
    }
    while (pi < pn && p[pi] == '*')
        pi++;
    return pi == pn;
}

/* The length of name without avahi's rename suffix " #N" (N: 2 and up,
 * no leading zero), or its whole length. */
static size_t base_len(const char *name, size_t n)
{
    size_t i = n;
    while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9')
        i--;
    if (i == n || i < 3 || name[i - 1] != '#' || name[i - 2] != ' ' || name[i] == '0')
        return n;
    return i - 2;
}

bool lmd_trust_cert_covers(const lmd_trust_cert *c, const char *name)
{
    if (!name)
        return false;
    size_t n = strlen(name), b = base_len(name, n);
    for (size_t o = 0; o + 1 <= c->names_len && c->names[o] && o + 1 + c->names[o] <= c->names_len;
         o += 1 + c->names[o]) {
        const unsigned char *pat = c->names + o + 1;
        if (glob(pat, c->names[o], (const unsigned char *)name, n) ||
            (b < n && glob(pat, c->names[o], (const unsigned char *)name, b)))
            return true;
    }
    return false;
}

bool lmd_trust_cert_name(const lmd_trust_cert *c, size_t i, char *buf, size_t len)
{
    size_t o = 0;
    for (; o < c->names_len && i > 0; i--)
        o += 1 + c->names[o];
    if (o >= c->names_len || !c->names[o] || o + 1 + c->names[o] > c->names_len)
        return false;
    snprintf(buf, len, "%.*s", (int)c->names[o], (const char *)c->names + o + 1);
    return true;
}

void lmd_trust_cert_names_str(const lmd_trust_cert *c, char *buf, size_t len)
{
    char one[LMD_TRUST_CERT_NAMES_MAX + 1];
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; lmd_trust_cert_name(c, i, one, sizeof one) && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s'%s'", i ? ", " : "", one);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (!buf[0])
        snprintf(buf, len, "no name");
}

/* ---- Serials ------------------------------------------------------------------ */

void lmd_trust_serial_hex(uint64_t serial, char hex[LMD_TRUST_ID_HEX])
{
    snprintf(hex, LMD_TRUST_ID_HEX, "%016llx", (unsigned long long)serial);
}

int lmd_trust_serial_parse(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 16)
        return LMD_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int d = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
                : s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 10 : -1;
        if (d < 0)
            return LMD_EINVAL;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* ---- Issuing and reading ------------------------------------------------------------ */

int lmd_trust_cert_issue(const lmd_trust_secret *fleet, const lmd_trust_pubkey *host, uint32_t not_before,
                         uint32_t not_after, uint64_t serial, const char *const *names, size_t n_names,
                         lmd_trust_cert *out, lmd_err *err)
{
    char a[32], b[32];
    if (not_after <= not_before)
        return lmd_err_set(err, LMD_EINVAL, "the certificate would end (%s) before it begins (%s)",
                           lmd_trust_time_str(not_after, a), lmd_trust_time_str(not_before, b));
    if (n_names == 0)
        return lmd_err_set(err, LMD_EINVAL, "a certificate names what the host may announce: give at least one "
                                            "--name (a pattern like 'gpu1-*'; '*' for any name)");
    int rc = lmd_trust_sodium(err);
    if (rc)
        return rc;
    memset(out, 0, sizeof *out);
    size_t used = 0;
    for (size_t i = 0; i < n_names; i++) {
        if ((rc = lmd_trust_name_check(names[i], err)) != 0)
            return rc;
        size_t l = strlen(names[i]);
        if (used + 1 + l > LMD_TRUST_CERT_NAMES_MAX) {
            size_t total = used;
            for (size_t j = i; j < n_names; j++)
                total += 1 + strlen(names[j]);
            return lmd_err_set(err, LMD_EINVAL, "the names take %zu bytes (each costs its length and one); at most "
                               "%d fit in the certificate's TXT item: use fewer or wider patterns", total,
                               LMD_TRUST_CERT_NAMES_MAX);
        }
        out->names[used] = (unsigned char)l;
        memcpy(out->names + used + 1, names[i], l);
        used += 1 + l;
    }
    out->names_len = (uint8_t)used;
    memcpy(out->host_pk, host->pk, LMD_TRUST_KEY_BYTES);
    out->not_before = not_before;
    out->not_after = not_after;
    memcpy(out->fleet_id, fleet->pk, LMD_TRUST_ID_BYTES);
    out->serial = serial;
    unsigned char msg[sizeof CERT_CONTEXT - 1 + LMD_TRUST_CERT_BYTES];
    size_t len = cert_message(out, msg);
    crypto_sign_detached(out->sig, NULL, msg, len, fleet->sk);
    return 0;
}

void lmd_trust_cert_compact(const lmd_trust_cert *c, char out[LMD_TRUST_CERT_COMPACT_MAX + 1])
{
    unsigned char b[LMD_TRUST_CERT_BYTES];
    size_t n = lmd_trust_cert_bytes(c, b);
    sodium_bin2base64(out, LMD_TRUST_CERT_COMPACT_MAX + 1, b, n, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
}

#define V1_HINT "a version 1 certificate names no instance (lmdisc before certificates carried names): certify " \
                "the host again with --name"

int lmd_trust_cert_parse_compact(const void *s, size_t len, lmd_trust_cert *out, char *why, size_t whylen)
{
    if (sodium_init() < 0)
        return lmd_errbuf(why, whylen, LMD_EIO, "libsodium could not initialise");
    unsigned char b[LMD_TRUST_CERT_BYTES];
    size_t n = 0;
    const char *end = NULL;
    memset(out, 0, sizeof *out);
    if (len == LMD_TRUST_CERT_V1_COMPACT)
        return lmd_errbuf(why, whylen, LMD_EINVAL, V1_HINT);
    if (len > LMD_TRUST_CERT_COMPACT_MAX)
        return lmd_errbuf(why, whylen, LMD_EINVAL, "the certificate is %zu characters; at most %d", len,
                          LMD_TRUST_CERT_COMPACT_MAX);
    if (sodium_base642bin(b, sizeof b, s, len, NULL, &n, &end, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0 ||
        end != (const char *)s + len)
        return lmd_errbuf(why, whylen, LMD_EINVAL, "the certificate is not valid base64 (without '=' padding)");
    return cert_from_bytes(b, n, out, why, whylen);
}

int lmd_trust_replace_file(const char *path, mode_t mode, const char *text, size_t len, lmd_err *err)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 8);
    if (!tmp)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    /* A new file renamed over the old: an agent reading it while it is
     * replaced sees the old one or the new one, never half. */
    snprintf(tmp, pl + 8, "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    int rc = 0;
    if (fd < 0) {
        rc = lmd_err_set(err, LMD_EIO, "cannot write %s: %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    if (fchmod(fd, mode) != 0 || lmd_trust_write_all(fd, text, len) != 0 || fsync(fd) != 0)
        rc = lmd_err_set(err, LMD_EIO, "cannot write %s: %s", path, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = lmd_err_set(err, LMD_EIO, "cannot write %s: %s", path, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = lmd_err_set(err, LMD_EIO, "cannot write %s: %s", path, strerror(errno));
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

int lmd_trust_cert_write(const char *path, const lmd_trust_cert *c, lmd_err *err)
{
    char text[sizeof LMD_TRUST_CERT_TYPE + LMD_TRUST_CERT_COMPACT_MAX + 2];
    char compact[LMD_TRUST_CERT_COMPACT_MAX + 1];
    lmd_trust_cert_compact(c, compact);
    int len = snprintf(text, sizeof text, "%s %s\n", LMD_TRUST_CERT_TYPE, compact);
    return lmd_trust_replace_file(path, 0644, text, (size_t)len, err);
}

int lmd_trust_cert_load(const char *path, lmd_trust_cert *out, lmd_err *err)
{
    char buf[LMD_TRUST_FILE_MAX], why[160];
    size_t len;
    int rc = lmd_trust_sodium(err);
    if (rc == 0)
        rc = lmd_read_small_file(path, buf, sizeof buf, &len, NULL, err);
    if (rc)
        return rc;
    if (len > sizeof LMD_TRUST_CERT_V1_TYPE && !memcmp(buf, LMD_TRUST_CERT_V1_TYPE " ", sizeof LMD_TRUST_CERT_V1_TYPE))
        return lmd_err_set(err, LMD_EINVAL, "%s: %s", path, V1_HINT);
    if (len && buf[len - 1] == '\n')
        len--;
    size_t tl = strlen(LMD_TRUST_CERT_TYPE);
    if (len <= tl || memcmp(buf, LMD_TRUST_CERT_TYPE " ", tl + 1) != 0 || memchr(buf, '\n', len)) {
        /* the usual messages for a key given by mistake or a wrong line */
        unsigned char dummy[1];
        rc = lmd_trust_parse_typed(buf, len, path, LMD_TRUST_CERT_TYPE, "certificate",
                                   sodium_base64_VARIANT_ORIGINAL_NO_PADDING, dummy, sizeof dummy, err);
        return rc ? rc : lmd_err_set(err, LMD_EINVAL, "%s: not a certificate", path);
    }
    rc = lmd_trust_cert_parse_compact(buf + tl + 1, len - tl - 1, out, why, sizeof why);
    return rc ? lmd_err_set(err, rc, "%s: %s", path, why) : 0;
}

int lmd_trust_cert_check(const lmd_trust_fleet *f, const lmd_trust_cert *c, int64_t now, lmd_trust_result *res)
{
    return lmd_trust_cert_check_with(NULL, f, c, now, res);
}

int lmd_trust_cert_check_with(lmd_trust_verifier *v, const lmd_trust_fleet *f, const lmd_trust_cert *c, int64_t now,
                              lmd_trust_result *res)
{
    char t1[32], t2[32];
    memset(res, 0, sizeof *res);
    lmd_trust_id_hex(c->host_pk, res->host_id);
    lmd_trust_id_hex(c->fleet_id, res->fleet_id);
    res->not_after = c->not_after;
    if (sodium_init() < 0) {
        lmd_trust_fail(res, LMD_TRUST_ERROR, "libsodium could not initialise");
        return LMD_EIO;
    }
    unsigned char msg[sizeof CERT_CONTEXT - 1 + LMD_TRUST_CERT_BYTES];
    size_t len = cert_message(c, msg);
    bool known = false, good = false;
    /* Ids could collide (8 bytes); trying every match costs nothing. */
    for (size_t i = 0; f && i < f->n && !good; i++) {
        if (memcmp(f->keys[i].pk, c->fleet_id, LMD_TRUST_ID_BYTES) != 0)
            continue;
        known = true;
        good = lmd_trust_sig_ok(v, c->sig, msg, len, f->keys[i].pk);
    }
    if (!known)
        lmd_trust_fail(res, LMD_TRUST_UNKNOWN_FLEET,
                       "host key %s is certified by fleet key %s, which is not one of the %zu trusted", res->host_id,
                       res->fleet_id, f ? f->n : 0);
    else if (!good)
        lmd_trust_fail(res, LMD_TRUST_BAD_CERT,
                       "the fleet signature of the certificate for host key %s does not verify (altered or corrupt)",
                       res->host_id);
    else if (now < (int64_t)c->not_before) {
        lmd_trust_fail(res, LMD_TRUST_CERT_NOT_YET_VALID, "host key %s is certified from %s; it is %s",
                       res->host_id, lmd_trust_time_str(c->not_before, t1), lmd_trust_time_str(now, t2));
        res->valid_until = c->not_before; /* the clock alone turns it */
    }
    else if (now >= (int64_t)c->not_after)
        lmd_trust_fail(res, LMD_TRUST_CERT_EXPIRED, "the certificate of host key %s ended %s; renew it with lmdisc "
                       "certify", res->host_id, lmd_trust_time_str(c->not_after, t1));
    else {
        res->status = LMD_TRUST_OK;
        if (!v) /* a verdict says its own (formatting times costs) */
            snprintf(res->reason, sizeof res->reason, "host key %s certified by fleet key %s from %s until %s",
                     res->host_id, res->fleet_id, lmd_trust_time_str(c->not_before, t1),
                     lmd_trust_time_str(c->not_after, t2));
        return 0;
    }
    return LMD_EINVAL;
}
