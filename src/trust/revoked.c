/* The revocation list: host keys and certificate serials a fleet key no
 * longer vouches for (see trust.h for the text it is kept in). */
#include "trust/internal.h"
#include "base/file.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A list of a few thousand entries: each line is at most ~60 bytes. */
#define REVOKED_FILE_MAX (256 * 1024)

void lmd_trust_revoked_free(lmd_trust_revoked *r)
{
    if (!r)
        return;
    free(r->keys);
    free(r->serials);
    free(r);
}

int lmd_trust_revoked_add_key(lmd_trust_revoked *r, const lmd_trust_pubkey *k)
{
    for (size_t i = 0; i < r->n_keys; i++)
        if (!memcmp(r->keys[i].pk, k->pk, sizeof k->pk))
            return 0;
    lmd_trust_pubkey *keys = realloc(r->keys, (r->n_keys + 1) * sizeof *keys);
    if (!keys)
        return LMD_ENOMEM;
    r->keys = keys;
    r->keys[r->n_keys++] = *k;
    return 0;
}

int lmd_trust_revoked_add_serial(lmd_trust_revoked *r, uint64_t serial)
{
    for (size_t i = 0; i < r->n_serials; i++)
        if (r->serials[i] == serial)
            return 0;
    uint64_t *s = realloc(r->serials, (r->n_serials + 1) * sizeof *s);
    if (!s)
        return LMD_ENOMEM;
    r->serials = s;
    r->serials[r->n_serials++] = serial;
    return 0;
}

bool lmd_trust_revoked_has(const lmd_trust_revoked *r, const lmd_trust_cert *c)
{
    if (!r)
        return false;
    for (size_t i = 0; i < r->n_keys; i++)
        if (!memcmp(r->keys[i].pk, c->host_pk, LMD_TRUST_KEY_BYTES))
            return true;
    for (size_t i = 0; i < r->n_serials; i++)
        if (r->serials[i] == c->serial)
            return true;
    return false;
}

static bool has_key(const lmd_trust_revoked *r, const lmd_trust_pubkey *k)
{
    for (size_t i = 0; i < r->n_keys; i++)
        if (!memcmp(r->keys[i].pk, k->pk, LMD_TRUST_KEY_BYTES))
            return true;
    return false;
}

static bool has_serial(const lmd_trust_revoked *r, uint64_t serial)
{
    for (size_t i = 0; i < r->n_serials; i++)
        if (r->serials[i] == serial)
            return true;
    return false;
}

bool lmd_trust_revoked_equal(const lmd_trust_revoked *a, const lmd_trust_revoked *b)
{
    if (!a || !b)
        return a == b;
    if (a->issued != b->issued || memcmp(a->fleet_id, b->fleet_id, LMD_TRUST_ID_BYTES) || a->n_keys != b->n_keys ||
        a->n_serials != b->n_serials)
        return false;
    for (size_t i = 0; i < a->n_keys; i++)
        if (!has_key(b, &a->keys[i]))
            return false;
    for (size_t i = 0; i < a->n_serials; i++)
        if (!has_serial(b, a->serials[i]))
            return false;
    return true;
}

int lmd_trust_revoked_keep(lmd_trust_revoked *newer, const lmd_trust_revoked *older, size_t *keys, size_t *serials)
{
    *keys = *serials = 0;
    for (size_t i = 0; older && i < older->n_keys; i++)
        if (!has_key(newer, &older->keys[i])) {
            if (lmd_trust_revoked_add_key(newer, &older->keys[i]) != 0)
                return LMD_ENOMEM;
            (*keys)++;
        }
    for (size_t i = 0; older && i < older->n_serials; i++)
        if (!has_serial(newer, older->serials[i])) {
            if (lmd_trust_revoked_add_serial(newer, older->serials[i]) != 0)
                return LMD_ENOMEM;
            (*serials)++;
        }
    return 0;
}

static int hex_id(const char *s, size_t n, unsigned char out[LMD_TRUST_ID_BYTES])
{
    size_t bin = 0;
    return n == 2 * LMD_TRUST_ID_BYTES &&
                   sodium_hex2bin(out, LMD_TRUST_ID_BYTES, s, n, NULL, &bin, NULL) == 0 && bin == LMD_TRUST_ID_BYTES
               ? 0
               : LMD_EINVAL;
}

/* "WORD " at the start of the line [p, p + n): the rest's length, or -1. */
static long after(const char *p, size_t n, const char *word)
{
    size_t wl = strlen(word);
    return n > wl && !memcmp(p, word, wl) && p[wl] == ' ' ? (long)(n - wl - 1) : -1;
}

int lmd_trust_revoked_parse(const char *text, size_t len, const char *what, const lmd_trust_fleet *f,
                            lmd_trust_revoked **out, lmd_err *err)
{
    *out = NULL;
    int rc = lmd_trust_sodium(err);
    if (rc)
        return rc;
    lmd_trust_revoked *r = calloc(1, sizeof *r);
    if (!r)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    const char *p = text, *end = text + len, *sig_at = NULL;
    unsigned char sig[LMD_TRUST_SIG_BYTES];
    bool have_fleet = false, have_issued = false, have_sig = false;
    rc = 0;
    for (int line = 1; rc == 0 && p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            rc = lmd_err_set(err, LMD_EINVAL, "%s: line %d does not end with a newline (a truncated file?)", what, line);
            break;
        }
        size_t n = (size_t)(nl - p);
        long rest;
        if (have_sig) {
            rc = lmd_err_set(err, LMD_EINVAL, "%s: line %d: nothing may follow the sig line", what, line);
        } else if (line == 1) {
            if (n != strlen(LMD_TRUST_REVOKED_TYPE) || memcmp(p, LMD_TRUST_REVOKED_TYPE, n))
                rc = lmd_err_set(err, LMD_EINVAL, "%s: not a revocation list: its first line is not '%s' (make one "
                                 "with lmdisc certify --revoke)", what, LMD_TRUST_REVOKED_TYPE);
        } else if ((rest = after(p, n, "fleet")) >= 0 && !have_fleet) {
            have_fleet = hex_id(nl - rest, (size_t)rest, r->fleet_id) == 0;
            if (!have_fleet)
                rc = lmd_err_set(err, LMD_EINVAL, "%s: line %d: the fleet key id is 16 hex digits", what, line);
        } else if ((rest = after(p, n, "issued")) >= 0 && !have_issued) {
            char num[24];
            char *e;
            snprintf(num, sizeof num, "%.*s", (int)(rest < 23 ? rest : 23), nl - rest);
            r->issued = strtoull(num, &e, 10);
            have_issued = rest > 0 && rest < 21 && *e == '\0' && num[0] >= '0' && num[0] <= '9';
            if (!have_issued)
                rc = lmd_err_set(err, LMD_EINVAL, "%s: line %d: issued takes Unix seconds", what, line);
        } else if ((rest = after(p, n, "key")) >= 0) {
            lmd_trust_pubkey k;
            size_t bin = 0;
            const char *e = NULL;
            if (sodium_base642bin(k.pk, sizeof k.pk, nl - rest, (size_t)rest, NULL, &bin, &e,
                                  sodium_base64_VARIANT_ORIGINAL) != 0 || e != nl || bin != sizeof k.pk)
                rc = lmd_err_set(err, LMD_EINVAL, "%s: line %d: a key line holds a base64 public key", what, line);
            else if (lmd_trust_revoked_add_key(r, &k) != 0)
                rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
        } else if ((rest = after(p, n, "serial")) >= 0) {
            char hex[18];
            uint64_t serial;
            snprintf(hex, sizeof hex, "%.*s", (int)(rest < 17 ? rest : 17), nl - rest);
            if (rest != 16 || lmd_trust_serial_parse(hex, &serial) != 0)
                rc = lmd_err_set(err, LMD_EINVAL, "%s: line %d: a serial is 16 hex digits", what, line);
            else if (lmd_trust_revoked_add_serial(r, serial) != 0)
                rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
        } else if ((rest = after(p, n, "sig")) >= 0) {
            size_t bin = 0;
            const char *e = NULL;
            sig_at = p;
            have_sig = sodium_base642bin(sig, sizeof sig, nl - rest, (size_t)rest, NULL, &bin, &e,
                                         sodium_base64_VARIANT_ORIGINAL) == 0 && e == nl && bin == sizeof sig;
            if (!have_sig)
                rc = lmd_err_set(err, LMD_EINVAL, "%s: line %d: the sig line holds a base64 signature", what, line);
        } else {
            rc = lmd_err_set(err, LMD_EINVAL, "%s: line %d: expected fleet, issued, key, serial or sig (once each but "
                             "key and serial)", what, line);
        }
        p = nl + 1;
    }
    if (rc == 0 && (!have_fleet || !have_issued || !have_sig))
        rc = lmd_err_set(err, LMD_EINVAL, "%s: no %s line: a revocation list is signed by a fleet key (lmdisc "
                         "certify --revoke)", what, !have_fleet ? "fleet" : !have_issued ? "issued" : "sig");
    if (rc == 0) {
        bool known = false, good = false;
        for (size_t i = 0; f && i < f->n && !good; i++) {
            if (memcmp(f->keys[i].pk, r->fleet_id, LMD_TRUST_ID_BYTES) != 0)
                continue;
            known = true;
            good = crypto_sign_verify_detached(sig, (const unsigned char *)text, (size_t)(sig_at - text),
                                               f->keys[i].pk) == 0;
        }
        char id[LMD_TRUST_ID_HEX];
        lmd_trust_id_hex(r->fleet_id, id);
        if (!known)
            rc = lmd_err_set(err, LMD_EINVAL, "%s: signed by fleet key %s, which is not one of the %zu trusted", what,
                             id, f ? f->n : 0);
        else if (!good)
            rc = lmd_err_set(err, LMD_EINVAL, "%s: the signature of fleet key %s does not verify (altered or "
                             "corrupt)", what, id);
    }
    if (rc) {
        lmd_trust_revoked_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int lmd_trust_revoked_load(const char *path, const lmd_trust_fleet *f, lmd_trust_revoked **out, lmd_err *err)
{
    *out = NULL;
    char *buf = malloc(REVOKED_FILE_MAX);
    size_t len;
    if (!buf)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    int rc = lmd_read_small_file(path, buf, REVOKED_FILE_MAX, &len, NULL, err);
    if (rc == 0)
        rc = lmd_trust_revoked_parse(buf, len, path, f, out, err);
    free(buf);
    return rc;
}

/* Append to a growing string; false when out of memory. */
static bool append(char **s, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static bool append(char **s, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(*s ? *s + *len : NULL, *s ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return false;
        if (*s && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return true;
        }
        size_t nc = (*cap ? *cap * 2 : 1024) + (size_t)n;
        char *ns = realloc(*s, nc);
        if (!ns)
            return false;
        *s = ns;
        *cap = nc;
    }
}

int lmd_trust_revoked_write(const char *path, const lmd_trust_secret *fleet, lmd_trust_revoked *r, lmd_err *err)
{
    int rc = lmd_trust_sodium(err);
    if (rc)
        return rc;
    memcpy(r->fleet_id, fleet->pk, LMD_TRUST_ID_BYTES);
    char id[LMD_TRUST_ID_HEX], *s = NULL;
    size_t len = 0, cap = 0;
    lmd_trust_id_hex(r->fleet_id, id);
    bool ok = append(&s, &len, &cap, "%s\nfleet %s\nissued %llu\n", LMD_TRUST_REVOKED_TYPE, id,
                     (unsigned long long)r->issued);
    for (size_t i = 0; ok && i < r->n_keys; i++) {
        char b64[sodium_base64_ENCODED_LEN(LMD_TRUST_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL)];
        sodium_bin2base64(b64, sizeof b64, r->keys[i].pk, LMD_TRUST_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL);
        ok = append(&s, &len, &cap, "key %s\n", b64);
    }
    for (size_t i = 0; ok && i < r->n_serials; i++) {
        char hex[LMD_TRUST_ID_HEX];
        lmd_trust_serial_hex(r->serials[i], hex);
        ok = append(&s, &len, &cap, "serial %s\n", hex);
    }
    if (ok) {
        unsigned char sig[LMD_TRUST_SIG_BYTES];
        char b64[sodium_base64_ENCODED_LEN(LMD_TRUST_SIG_BYTES, sodium_base64_VARIANT_ORIGINAL)];
        crypto_sign_detached(sig, NULL, (const unsigned char *)s, len, fleet->sk);
        sodium_bin2base64(b64, sizeof b64, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
        ok = append(&s, &len, &cap, "sig %s\n", b64);
    }
    rc = ok ? lmd_trust_replace_file(path, 0644, s, len, err) : lmd_err_set(err, LMD_ENOMEM, "out of memory");
    free(s);
    return rc;
}
