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

#define CERT_CONTEXT "lmdisc-cert-v1"
#define CERT_BODY (LMD_TRUST_KEY_BYTES + 4 + 4 + LMD_TRUST_ID_BYTES)

_Static_assert(CERT_BODY + LMD_TRUST_SIG_BYTES == LMD_TRUST_CERT_BYTES, "certificate layout");
/* the body's offsets as written below: host key, not_before at 32, not_after at 36, fleet id at 40 */
_Static_assert(LMD_TRUST_KEY_BYTES == 32 && CERT_BODY == 40 + LMD_TRUST_ID_BYTES, "certificate body offsets");
_Static_assert(sodium_base64_ENCODED_LEN(LMD_TRUST_CERT_BYTES, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) ==
                   LMD_TRUST_CERT_COMPACT + 1,
               "compact certificate length");

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

/* What the fleet key signs: the context, then the body. */
static void cert_message(const lmd_trust_cert *c, unsigned char msg[sizeof CERT_CONTEXT - 1 + CERT_BODY])
{
    unsigned char *p = msg;
    memcpy(p, CERT_CONTEXT, sizeof CERT_CONTEXT - 1);
    p += sizeof CERT_CONTEXT - 1;
    memcpy(p, c->host_pk, LMD_TRUST_KEY_BYTES);
    lmd_trust_put32(p + 32, c->not_before);
    lmd_trust_put32(p + 36, c->not_after);
    memcpy(p + 40, c->fleet_id, LMD_TRUST_ID_BYTES);
}

void lmd_trust_cert_bytes(const lmd_trust_cert *c, unsigned char out[LMD_TRUST_CERT_BYTES])
{
    unsigned char msg[sizeof CERT_CONTEXT - 1 + CERT_BODY];
    cert_message(c, msg);
    memcpy(out, msg + sizeof CERT_CONTEXT - 1, CERT_BODY);
    memcpy(out + CERT_BODY, c->sig, LMD_TRUST_SIG_BYTES);
}

static void cert_from_bytes(const unsigned char b[LMD_TRUST_CERT_BYTES], lmd_trust_cert *c)
{
    memcpy(c->host_pk, b, LMD_TRUST_KEY_BYTES);
    c->not_before = lmd_trust_get32(b + 32);
    c->not_after = lmd_trust_get32(b + 36);
    memcpy(c->fleet_id, b + 40, LMD_TRUST_ID_BYTES);
    memcpy(c->sig, b + CERT_BODY, LMD_TRUST_SIG_BYTES);
}

int lmd_trust_cert_issue(const lmd_trust_secret *fleet, const lmd_trust_pubkey *host, uint32_t not_before,
                         uint32_t not_after, lmd_trust_cert *out, lmd_err *err)
{
    char a[32], b[32];
    if (not_after <= not_before)
        return lmd_err_set(err, LMD_EINVAL, "the certificate would end (%s) before it begins (%s)",
                           lmd_trust_time_str(not_after, a), lmd_trust_time_str(not_before, b));
    int rc = lmd_trust_sodium(err);
    if (rc)
        return rc;
    memset(out, 0, sizeof *out);
    memcpy(out->host_pk, host->pk, LMD_TRUST_KEY_BYTES);
    out->not_before = not_before;
    out->not_after = not_after;
    memcpy(out->fleet_id, fleet->pk, LMD_TRUST_ID_BYTES);
    unsigned char msg[sizeof CERT_CONTEXT - 1 + CERT_BODY];
    cert_message(out, msg);
    crypto_sign_detached(out->sig, NULL, msg, sizeof msg, fleet->sk);
    return 0;
}

void lmd_trust_cert_compact(const lmd_trust_cert *c, char out[LMD_TRUST_CERT_COMPACT + 1])
{
    unsigned char b[LMD_TRUST_CERT_BYTES];
    lmd_trust_cert_bytes(c, b);
    sodium_bin2base64(out, LMD_TRUST_CERT_COMPACT + 1, b, sizeof b, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
}

int lmd_trust_cert_parse_compact(const void *s, size_t len, lmd_trust_cert *out, char *why, size_t whylen)
{
    if (sodium_init() < 0)
        return lmd_errbuf(why, whylen, LMD_EIO, "libsodium could not initialise");
    unsigned char b[LMD_TRUST_CERT_BYTES];
    size_t n = 0;
    const char *end = NULL;
    if (len != LMD_TRUST_CERT_COMPACT)
        return lmd_errbuf(why, whylen, LMD_EINVAL, "the certificate is %zu characters; the compact form is %d", len,
                          LMD_TRUST_CERT_COMPACT);
    if (sodium_base642bin(b, sizeof b, s, len, NULL, &n, &end, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0 ||
        end != (const char *)s + len || n != sizeof b)
        return lmd_errbuf(why, whylen, LMD_EINVAL, "the certificate is not valid base64 (without '=' padding)");
    cert_from_bytes(b, out);
    return 0;
}

int lmd_trust_cert_write(const char *path, const lmd_trust_cert *c, lmd_err *err)
{
    char text[sizeof LMD_TRUST_CERT_TYPE + LMD_TRUST_CERT_COMPACT + 2];
    char compact[LMD_TRUST_CERT_COMPACT + 1];
    lmd_trust_cert_compact(c, compact);
    int len = snprintf(text, sizeof text, "%s %s\n", LMD_TRUST_CERT_TYPE, compact);
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 8);
    if (!tmp)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    /* A new file renamed over the old: an agent reading the certificate
     * while it is renewed sees the old one or the new one, never half. */
    snprintf(tmp, pl + 8, "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    int rc = 0;
    if (fd < 0) {
        rc = lmd_err_set(err, LMD_EIO, "cannot write %s: %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    if (fchmod(fd, 0644) != 0 || lmd_trust_write_all(fd, text, (size_t)len) != 0 || fsync(fd) != 0)
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

int lmd_trust_cert_load(const char *path, lmd_trust_cert *out, lmd_err *err)
{
    char buf[LMD_TRUST_FILE_MAX];
    unsigned char b[LMD_TRUST_CERT_BYTES];
    size_t len;
    int rc = lmd_trust_sodium(err);
    if (rc == 0)
        rc = lmd_read_small_file(path, buf, sizeof buf, &len, NULL, err);
    if (rc == 0)
        rc = lmd_trust_parse_typed(buf, len, path, LMD_TRUST_CERT_TYPE, "certificate",
                                   sodium_base64_VARIANT_ORIGINAL_NO_PADDING, b, sizeof b, err);
    if (rc == 0)
        cert_from_bytes(b, out);
    return rc;
}

int lmd_trust_cert_check(const lmd_trust_fleet *f, const lmd_trust_cert *c, int64_t now, lmd_trust_result *res)
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
    unsigned char msg[sizeof CERT_CONTEXT - 1 + CERT_BODY];
    cert_message(c, msg);
    bool known = false, good = false;
    /* Ids could collide (8 bytes); trying every match costs nothing. */
    for (size_t i = 0; f && i < f->n && !good; i++) {
        if (memcmp(f->keys[i].pk, c->fleet_id, LMD_TRUST_ID_BYTES) != 0)
            continue;
        known = true;
        good = crypto_sign_verify_detached(c->sig, msg, sizeof msg, f->keys[i].pk) == 0;
    }
    if (!known)
        lmd_trust_fail(res, LMD_TRUST_UNKNOWN_FLEET,
                       "host key %s is certified by fleet key %s, which is not one of the %zu trusted", res->host_id,
                       res->fleet_id, f ? f->n : 0);
    else if (!good)
        lmd_trust_fail(res, LMD_TRUST_BAD_CERT,
                       "the fleet signature of the certificate for host key %s does not verify (altered or corrupt)",
                       res->host_id);
    else if (now < (int64_t)c->not_before)
        lmd_trust_fail(res, LMD_TRUST_CERT_NOT_YET_VALID, "host key %s is certified from %s; it is %s",
                       res->host_id, lmd_trust_time_str(c->not_before, t1), lmd_trust_time_str(now, t2));
    else if (now >= (int64_t)c->not_after)
        lmd_trust_fail(res, LMD_TRUST_CERT_EXPIRED, "the certificate of host key %s ended %s; renew it with lmdisc "
                       "certify", res->host_id, lmd_trust_time_str(c->not_after, t1));
    else {
        res->status = LMD_TRUST_OK;
        snprintf(res->reason, sizeof res->reason, "host key %s certified by fleet key %s from %s until %s",
                 res->host_id, res->fleet_id, lmd_trust_time_str(c->not_before, t1),
                 lmd_trust_time_str(c->not_after, t2));
        return 0;
    }
    return LMD_EINVAL;
}
