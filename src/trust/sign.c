/* Announcement signatures: the canonical bytes, signing, verifying, and
 * the two TXT keys that carry them (see trust.h). */
#include "base/txt.h"
#include "trust/internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ANNOUNCE_CONTEXT "lmdisc-announce-v2"
/* lmd-sig without addresses: expiry, issued, the IPv6 count, the signature. */
#define SIG_FIXED (4 + 8 + 1 + LMD_TRUST_SIG_BYTES)

_Static_assert(sodium_base64_ENCODED_LEN(SIG_FIXED + LMD_TRUST_SIG_ADDR_BYTES,
                                         sodium_base64_VARIANT_ORIGINAL_NO_PADDING) ==
                   LMD_TRUST_SIG_COMPACT_MAX + 1,
               "lmd-sig length");
_Static_assert(sizeof LMD_TRUST_TXT_SIG "=" - 1 + LMD_TRUST_SIG_COMPACT_MAX <= LMD_TXT_ITEM_MAX,
               "lmd-sig fits in one TXT item");
_Static_assert(LMD_TRUST_SIG_ADDRS_MAX * 4 >= LMD_TRUST_SIG_ADDR_BYTES, "room for the most addresses");

/* ---- Addresses ------------------------------------------------------------ */

static size_t ip_len(const lmd_trust_ip *ip)
{
    return ip->family == 6 ? 16 : 4;
}

int lmd_trust_ip_parse(const char *s, lmd_trust_ip *out)
{
    char buf[INET6_ADDRSTRLEN];
    memset(out, 0, sizeof *out);
    if (!s)
        return LMD_EINVAL;
    /* The scope ("%eth0") is the receiver's interface, not part of what
     * the sender announced. */
    size_t n = strcspn(s, "%");
    if (n >= sizeof buf)
        return LMD_EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    struct in6_addr a6;
    if (inet_pton(AF_INET, buf, out->b) == 1) {
        out->family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, &a6) != 1)
        return LMD_EINVAL;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
        out->family = 4;
        memcpy(out->b, a6.s6_addr + 12, 4);
    } else {
        out->family = 6;
        memcpy(out->b, a6.s6_addr, 16);
    }
    return 0;
}

static int ip_cmp(const void *x, const void *y)
{
    const lmd_trust_ip *a = x, *b = y;
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    return memcmp(a->b, b->b, sizeof a->b); /* unused bytes are zero */
}

bool lmd_trust_sig_has_addr(const lmd_trust_sig *s, const char *addr)
{
    lmd_trust_ip ip;
    if (lmd_trust_ip_parse(addr, &ip) != 0)
        return false;
    for (size_t i = 0; i < s->n_addrs; i++)
        if (ip_cmp(&ip, &s->addrs[i]) == 0)
            return true;
    return false;
}

/* ---- lmd-sig -------------------------------------------------------------- */

int lmd_trust_sig_compact(const lmd_trust_sig *s, char out[LMD_TRUST_SIG_COMPACT_MAX + 1])
{
    unsigned char b[SIG_FIXED + LMD_TRUST_SIG_ADDR_BYTES];
    size_t n6 = 0, bytes = 0;
    if (s->n_addrs > LMD_TRUST_SIG_ADDRS_MAX)
        return LMD_EINVAL;
    for (size_t i = 0; i < s->n_addrs; i++) {
        n6 += s->addrs[i].family == 6;
        bytes += ip_len(&s->addrs[i]);
    }
    if (bytes > LMD_TRUST_SIG_ADDR_BYTES)
        return LMD_EINVAL;
    lmd_trust_put32(b, s->expiry);
    lmd_trust_put32(b + 4, (uint32_t)(s->issued >> 32));
    lmd_trust_put32(b + 8, (uint32_t)s->issued);
    b[12] = (unsigned char)n6;
    size_t o = 13;
    for (int fam = 6; fam >= 4; fam -= 2) /* IPv6 first: the count says where IPv4 begins */
        for (size_t i = 0; i < s->n_addrs; i++)
            if (s->addrs[i].family == fam) {
                memcpy(b + o, s->addrs[i].b, ip_len(&s->addrs[i]));
                o += ip_len(&s->addrs[i]);
            }
    memcpy(b + o, s->sig, LMD_TRUST_SIG_BYTES);
    o += LMD_TRUST_SIG_BYTES;
    sodium_bin2base64(out, LMD_TRUST_SIG_COMPACT_MAX + 1, b, o, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    return 0;
}

int lmd_trust_sig_parse_compact(const void *s, size_t len, lmd_trust_sig *out, char *why, size_t whylen)
{
    if (sodium_init() < 0)
        return lmd_errbuf(why, whylen, LMD_EIO, "libsodium could not initialise");
    unsigned char b[SIG_FIXED + LMD_TRUST_SIG_ADDR_BYTES];
    size_t n = 0;
    const char *end = NULL;
    memset(out, 0, sizeof *out);
    if (len > LMD_TRUST_SIG_COMPACT_MAX)
        return lmd_errbuf(why, whylen, LMD_EINVAL, "lmd-sig is %zu characters; at most %d", len,
                          LMD_TRUST_SIG_COMPACT_MAX);
    if (sodium_base642bin(b, sizeof b, s, len, NULL, &n, &end, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0 ||
        end != (const char *)s + len)
        return lmd_errbuf(why, whylen, LMD_EINVAL, "lmd-sig is not valid base64 (without '=' padding)");
    size_t n6 = n >= SIG_FIXED ? b[12] : 0;
    if (n < SIG_FIXED || n - SIG_FIXED < 16 * n6 || (n - SIG_FIXED - 16 * n6) % 4 != 0)
        return lmd_errbuf(why, whylen, LMD_EINVAL, "lmd-sig is %zu bytes, which does not fit its layout", n);
    size_t n4 = (n - SIG_FIXED - 16 * n6) / 4;
    out->expiry = lmd_trust_get32(b);
    out->issued = (uint64_t)lmd_trust_get32(b + 4) << 32 | lmd_trust_get32(b + 8);
    const unsigned char *p = b + 13;
    for (size_t i = 0; i < n6 + n4; i++) {
        lmd_trust_ip *ip = &out->addrs[out->n_addrs++];
        ip->family = i < n6 ? 6 : 4;
        memcpy(ip->b, p, ip_len(ip));
        p += ip_len(ip);
    }
    memcpy(out->sig, p, LMD_TRUST_SIG_BYTES);
    return 0;
}

/* ---- The TXT keys ------------------------------------------------------------ */

bool lmd_trust_txt_is_ours(const char *key)
{
    return key && (!strcasecmp(key, LMD_TRUST_TXT_CERT) || !strcasecmp(key, LMD_TRUST_TXT_SIG));
}

void lmd_trust_txt_strip(lmd_txt *t)
{
    lmd_txt_remove(t, LMD_TRUST_TXT_CERT);
    lmd_txt_remove(t, LMD_TRUST_TXT_SIG);
}

int lmd_trust_txt_put(lmd_txt *t, const lmd_trust_cert *cert, const lmd_trust_sig *sig, lmd_err *err)
{
    char c[LMD_TRUST_CERT_COMPACT_MAX + 1], s[LMD_TRUST_SIG_COMPACT_MAX + 1];
    lmd_trust_cert_compact(cert, c);
    if (lmd_trust_sig_compact(sig, s) != 0)
        return lmd_err_set(err, LMD_EINVAL, "the signed addresses take more than the %d bytes lmd-sig has",
                           LMD_TRUST_SIG_ADDR_BYTES);
    char why[256] = "";
    int rc = lmd_txt_set(t, LMD_TRUST_TXT_CERT, c, strlen(c), true, why, sizeof why);
    if (rc == 0)
        rc = lmd_txt_set(t, LMD_TRUST_TXT_SIG, s, strlen(s), true, why, sizeof why);
    if (rc) {
        lmd_trust_txt_strip(t); /* never one without the other */
        return lmd_err_set(err, rc, "%s", *why ? why : lmd_strerror(rc));
    }
    return 0;
}

enum lmd_trust_status lmd_trust_txt_get(const lmd_txt *t, lmd_trust_cert *cert, lmd_trust_sig *sig,
                                        lmd_trust_result *res)
{
    const lmd_txt_item *c = lmd_txt_get(t, LMD_TRUST_TXT_CERT), *s = lmd_txt_get(t, LMD_TRUST_TXT_SIG);
    char why[160];
    if (!c && !s)
        return lmd_trust_fail(res, LMD_TRUST_UNSIGNED, "no %s and %s TXT keys", LMD_TRUST_TXT_CERT,
                              LMD_TRUST_TXT_SIG);
    if (!c || !s)
        return lmd_trust_fail(res, LMD_TRUST_MALFORMED, "%s without %s", c ? LMD_TRUST_TXT_CERT : LMD_TRUST_TXT_SIG,
                              c ? LMD_TRUST_TXT_SIG : LMD_TRUST_TXT_CERT);
    int crc = c->has_value ? lmd_trust_cert_parse_compact(c->value, c->value_len, cert, why, sizeof why) : LMD_EINVAL;
    if (crc && c->value_len == LMD_TRUST_CERT_V1_COMPACT)
        return lmd_trust_fail(res, LMD_TRUST_OLD_CERT, "%s", why);
    if (crc)
        return lmd_trust_fail(res, LMD_TRUST_MALFORMED, "%s: %s", LMD_TRUST_TXT_CERT,
                              c->has_value ? why : "no value");
    if (res) {
        lmd_trust_id_hex(cert->host_pk, res->host_id);
        lmd_trust_id_hex(cert->fleet_id, res->fleet_id);
        res->not_after = cert->not_after;
    }
    if (!s->has_value || lmd_trust_sig_parse_compact(s->value, s->value_len, sig, why, sizeof why) != 0)
        return lmd_trust_fail(res, LMD_TRUST_MALFORMED, "%s: %s", LMD_TRUST_TXT_SIG, s->has_value ? why : "no value");
    if (res)
        res->status = LMD_TRUST_OK;
    return LMD_TRUST_OK;
}

/* ---- The canonical bytes ---------------------------------------------------- */

struct buf {
    unsigned char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct buf *b, const void *d, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void put_u32(struct buf *b, uint32_t v)
{
    unsigned char x[4];
    lmd_trust_put32(x, v);
    put(b, x, 4);
}

static void put_str(struct buf *b, const void *s, size_t n)
{
    put_u32(b, (uint32_t)n);
    put(b, s, n);
}

static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* A DNS name: ASCII case folded (and, for a domain name, one trailing dot
 * dropped), the way DNS compares names. */
static void put_name(struct buf *b, const char *s, bool drop_dot)
{
    size_t n = strlen(s);
    if (drop_dot && n && s[n - 1] == '.')
        n--;
    put_u32(b, (uint32_t)n);
    size_t start = b->len;
    put(b, s, n);
    for (size_t i = 0; !b->oom && i < n; i++)
        b->p[start + i] = ascii_lower(b->p[start + i]);
}

/* Locale-free: RFC 6763 keys are ASCII. */
static int key_cmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = ascii_lower((unsigned char)*a), y = ascii_lower((unsigned char)*b);
        if (x != y || !x)
            return x < y ? -1 : x > y;
    }
}

static int item_cmp(const void *x, const void *y)
{
    const lmd_txt_item *a = *(const lmd_txt_item *const *)x, *b = *(const lmd_txt_item *const *)y;
    return key_cmp(a->key, b->key);
}

int lmd_trust_canonical(const lmd_trust_announcement *a, const lmd_trust_cert *cert, const lmd_trust_sig *sig,
                        unsigned char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!a->name || !a->type || !a->domain || !a->host || sig->n_addrs > LMD_TRUST_SIG_ADDRS_MAX)
        return LMD_EINVAL;
    size_t ntxt = a->txt ? a->txt->n : 0, n = 0;
    const lmd_txt_item **items = malloc((ntxt ? ntxt : 1) * sizeof *items);
    if (!items)
        return LMD_ENOMEM;
    for (size_t i = 0; i < ntxt; i++)
        if (!lmd_trust_txt_is_ours(a->txt->items[i].key))
            items[n++] = &a->txt->items[i];
    qsort(items, n, sizeof *items, item_cmp);
    for (size_t i = 1; i < n; i++)
        if (key_cmp(items[i - 1]->key, items[i]->key) == 0) {
            free(items); /* an lmd_txt never has these; a hand-made one might */
            return LMD_ETXT;
        }
    lmd_trust_ip addrs[LMD_TRUST_SIG_ADDRS_MAX];
    size_t naddr = 0;
    memcpy(addrs, sig->addrs, sig->n_addrs * sizeof *addrs);
    qsort(addrs, sig->n_addrs, sizeof *addrs, ip_cmp);
    for (size_t i = 0; i < sig->n_addrs; i++)
        if (naddr == 0 || ip_cmp(&addrs[naddr - 1], &addrs[i]) != 0)
            addrs[naddr++] = addrs[i];

    struct buf b = {0};
    unsigned char cb[LMD_TRUST_CERT_BYTES], port[2] = {(unsigned char)(a->port >> 8), (unsigned char)a->port};
    put_str(&b, ANNOUNCE_CONTEXT, sizeof ANNOUNCE_CONTEXT - 1);
    put_str(&b, cb, lmd_trust_cert_bytes(cert, cb));
    put_u32(&b, sig->expiry);
    put_u32(&b, (uint32_t)(sig->issued >> 32));
    put_u32(&b, (uint32_t)sig->issued);
    put_name(&b, a->name, false);
    put_name(&b, a->type, true);
    put_name(&b, a->domain, true);
    put(&b, port, 2);
    put_name(&b, a->host, true);
    put_u32(&b, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        size_t klen = strlen(items[i]->key), start;
        put_u32(&b, (uint32_t)klen);
        start = b.len;
        put(&b, items[i]->key, klen);
        for (size_t j = 0; !b.oom && j < klen; j++)
            b.p[start + j] = ascii_lower(b.p[start + j]);
        unsigned char hv = items[i]->has_value ? 1 : 0;
        put(&b, &hv, 1);
        put_str(&b, items[i]->value, items[i]->has_value ? items[i]->value_len : 0);
    }
    put_u32(&b, (uint32_t)naddr);
    for (size_t i = 0; i < naddr; i++) {
        put(&b, &addrs[i].family, 1);
        put(&b, addrs[i].b, ip_len(&addrs[i]));
    }
    free(items);
    if (b.oom) {
        free(b.p);
        return LMD_ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

/* ---- Signing ------------------------------------------------------------------- */

int lmd_trust_sign(const lmd_trust_secret *host_key, const lmd_trust_cert *cert, const lmd_trust_announcement *a,
                   const char *const *addrs, size_t n_addrs, uint32_t expiry, uint64_t issued, lmd_txt *out,
                   lmd_err *err)
{
    char h1[LMD_TRUST_ID_HEX], h2[LMD_TRUST_ID_HEX];
    int rc = lmd_trust_sodium(err);
    if (rc)
        return rc;
    if (sodium_memcmp(cert->host_pk, host_key->pk, LMD_TRUST_KEY_BYTES) != 0) {
        lmd_trust_id_hex(cert->host_pk, h1);
        lmd_trust_id_hex(host_key->pk, h2);
        return lmd_err_set(err, LMD_EINVAL, "the certificate is for host key %s, not for this host's key %s: "
                           "certify this host's .pub", h1, h2);
    }
    if (!lmd_trust_cert_covers(cert, a->name)) {
        char names[200];
        lmd_trust_cert_names_str(cert, names, sizeof names);
        return lmd_err_set(err, LMD_EPERM, "this host's certificate names %s, not \"%.63s\": peers would not trust "
                           "it; announce a name it covers, or certify the host again with --name for this one",
                           names, a->name ? a->name : "(null)");
    }
    if (n_addrs == 0)
        return lmd_err_set(err, LMD_EINVAL, "no address to sign: peers accept an announcement only from an "
                           "address it signs");
    lmd_trust_sig s = {.expiry = expiry, .issued = issued};
    size_t bytes = 0, n4 = 0, n6 = 0;
    for (size_t i = 0; i < n_addrs; i++) {
        lmd_trust_ip ip;
        if (lmd_trust_ip_parse(addrs[i], &ip) != 0)
            return lmd_err_set(err, LMD_EINVAL, "cannot sign address '%.64s': not an IPv4 or IPv6 address",
                               addrs[i] ? addrs[i] : "(null)");
        bool dup = false;
        for (size_t j = 0; j < s.n_addrs && !dup; j++)
            dup = ip_cmp(&ip, &s.addrs[j]) == 0;
        if (dup)
            continue;
        n4 += ip.family == 4;
        n6 += ip.family == 6;
        bytes += ip_len(&ip);
        if (bytes <= LMD_TRUST_SIG_ADDR_BYTES)
            s.addrs[s.n_addrs++] = ip;
    }
    if (bytes > LMD_TRUST_SIG_ADDR_BYTES)
        return lmd_err_set(err, LMD_EINVAL,
                           "%zu IPv4 and %zu IPv6 addresses take %zu bytes; at most %d fit in %s (e.g. 7 IPv6 and "
                           "1 IPv4): sign only the addresses avahi announces",
                           n4, n6, bytes, LMD_TRUST_SIG_ADDR_BYTES, LMD_TRUST_TXT_SIG);
    qsort(s.addrs, s.n_addrs, sizeof s.addrs[0], ip_cmp);

    /* The record as it will be announced must still fit in one packet. */
    size_t wire = 0;
    for (size_t i = 0; a->txt && i < a->txt->n; i++) {
        const lmd_txt_item *it = &a->txt->items[i];
        if (!lmd_trust_txt_is_ours(it->key))
            wire += 1 + strlen(it->key) + (it->has_value ? 1 + it->value_len : 0);
    }
    size_t sig_len = sodium_base64_ENCODED_LEN(SIG_FIXED + bytes, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) - 1;
    unsigned char cb[LMD_TRUST_CERT_BYTES];
    size_t cert_len = sodium_base64_ENCODED_LEN(lmd_trust_cert_bytes(cert, cb), sodium_base64_VARIANT_ORIGINAL_NO_PADDING) - 1;
    size_t ours = (1 + strlen(LMD_TRUST_TXT_CERT "=") + cert_len) + (1 + strlen(LMD_TRUST_TXT_SIG "=") + sig_len);
    if (wire + ours > LMD_TXT_RECORD_MAX)
        return lmd_err_set(err, LMD_ETXT,
                           "the TXT record would be %zu bytes with its signature (%zu of them); at most %d fit in "
                           "one mDNS packet: shorten or drop some keys",
                           wire + ours, ours, LMD_TXT_RECORD_MAX);

    unsigned char *msg;
    size_t len;
    rc = lmd_trust_canonical(a, cert, &s, &msg, &len);
    if (rc)
        return lmd_err_set(err, rc, "%s", rc == LMD_ETXT ? "two TXT keys differ only in case; RFC 6763 says "
                                                           "keys are case-insensitive: drop one"
                                          : rc == LMD_EINVAL ? "the announcement lacks a name, type, domain or host"
                                                             : "out of memory");
    crypto_sign_detached(s.sig, NULL, msg, len, host_key->sk);
    free(msg);
    return lmd_trust_txt_put(out, cert, &s, err);
}

