/* Plain DNS queries for browsing a DNS-SD domain, and their answers as
 * plain data (see dns.h).  ldns builds and parses. */
#include "dns/internal.h"
#include "base/txt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LABEL.NAME, the label raw bytes (an instance name), or NAME alone. */
static ldns_rdf *qname(const char *label, const char *name)
{
    ldns_rdf *base = ldns_dname_new_frm_str(name);
    if (!base || !label)
        return base;
    size_t n = strlen(label);
    ldns_rdf *d = NULL;
    if (n >= 1 && n <= 63) {
        uint8_t wire[65];
        wire[0] = (uint8_t)n;
        memcpy(wire + 1, label, n);
        wire[n + 1] = 0;
        d = ldns_dname_new_frm_data((uint16_t)(n + 2), wire);
        if (d && ldns_dname_cat(d, base) != LDNS_STATUS_OK) {
            ldns_rdf_deep_free(d);
            d = NULL;
        }
    }
    ldns_rdf_deep_free(base);
    return d;
}

int lmd_dns_query_build(const char *label, const char *name, int type, lmd_dns_msg **out, lmd_err *err)
{
    *out = NULL;
    ldns_rdf *q = qname(label, name);
    if (!q)
        return lmd_err_set(err, LMD_EINVAL, "'%s' is not a valid name to query", name ? name : "");
    ldns_pkt *pkt = ldns_pkt_query_new(q, (ldns_rr_type)type, LDNS_RR_CLASS_IN, 0); /* takes q; no RD */
    lmd_dns_msg *m = calloc(1, sizeof *m);
    if (!pkt || !m) {
        ldns_pkt_free(pkt);
        free(m);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    ldns_pkt_set_random_id(pkt);
    if (ldns_pkt2wire(&m->wire, pkt, &m->len) != LDNS_STATUS_OK) {
        ldns_pkt_free(pkt);
        free(m);
        return lmd_err_set(err, LMD_ENOMEM, "cannot write the query");
    }
    m->id = ldns_pkt_id(pkt);
    m->pkt = pkt;
    *out = m;
    return 0;
}

void lmd_dns_name_text(const ldns_rdf *d, char *buf, size_t len)
{
    char *s = d ? ldns_rdf2str(d) : NULL;
    size_t n = s ? strlen(s) : 0;
    if (n > 1 && s[n - 1] == '.')
        s[--n] = '\0';
    snprintf(buf, len, "%s", s ? s : "");
    free(s);
}

int lmd_dns_rr_fill(const ldns_rr *rr, lmd_dns_rr *o)
{
    memset(o, 0, sizeof *o);
    o->type = ldns_rr_get_type(rr);
    o->ttl = ldns_rr_ttl(rr);
    const ldns_rdf *own = ldns_rr_owner(rr);
    lmd_dns_name_text(own, o->owner, sizeof o->owner);
    if (own && ldns_rdf_size(own) > 1) {
        const uint8_t *w = ldns_rdf_data(own);
        size_t n = w[0];
        if (n + 1 < ldns_rdf_size(own) && n < sizeof o->owner_label) {
            memcpy(o->owner_label, w + 1, n);
            o->owner_label[n] = '\0';
        }
    }
    switch (o->type) {
    case LDNS_RR_TYPE_PTR: {
        const ldns_rdf *t = ldns_rr_rdf(rr, 0);
        if (!t || ldns_rdf_get_type(t) != LDNS_RDF_TYPE_DNAME)
            return LMD_EINVAL;
        const uint8_t *w = ldns_rdf_data(t);
        size_t n = w[0];
        if (n == 0 || n + 1 > ldns_rdf_size(t))
            return LMD_EINVAL;
        memcpy(o->label, w + 1, n); /* the instance: the first label, raw */
        o->label[n] = '\0';
        if (memchr(o->label, '\0', n))
            return LMD_EINVAL;
        lmd_dns_name_text(t, o->target, sizeof o->target);
        return 0;
    }
    case LDNS_RR_TYPE_SRV:
        if (ldns_rr_rd_count(rr) != 4)
            return LMD_EINVAL;
        o->port = ldns_rdf2native_int16(ldns_rr_rdf(rr, 2));
        lmd_dns_name_text(ldns_rr_rdf(rr, 3), o->target, sizeof o->target);
        return 0;
    case LDNS_RR_TYPE_TXT:
        for (size_t i = 0; i < ldns_rr_rd_count(rr); i++) {
            const ldns_rdf *s = ldns_rr_rdf(rr, i);
            const uint8_t *w = ldns_rdf_data(s);
            size_t n = ldns_rdf_size(s) ? w[0] : 0;
            if (n && n + 1 <= ldns_rdf_size(s) && lmd_txt_add_wire_item(&o->txt, w + 1, n, NULL) != 0)
                continue; /* an item that is not key[=value]: skipped, as over mDNS */
        }
        return 0;
    case LDNS_RR_TYPE_A:
    case LDNS_RR_TYPE_AAAA: {
        char *s = ldns_rdf2str(ldns_rr_rdf(rr, 0));
        snprintf(o->addr, sizeof o->addr, "%s", s ? s : "");
        free(s);
        return s ? 0 : LMD_EINVAL;
    }
    case LDNS_RR_TYPE_SOA:
        if (ldns_rr_rd_count(rr) < 3)
            return LMD_EINVAL;
        o->serial = ldns_rdf2native_int32(ldns_rr_rdf(rr, 2));
        return 0;
    default:
        return LMD_ENOTFOUND;
    }
}

int lmd_dns_answer_parse(const uint8_t *wire, size_t len, int type, lmd_dns_rr **out, size_t *n, lmd_err *err)
{
    *out = NULL;
    *n = 0;
    ldns_pkt *pkt = NULL;
    if (ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK || !pkt)
        return lmd_err_set(err, LMD_EINVAL, "the answer does not parse");
    ldns_rr_list *an = ldns_pkt_answer(pkt);
    size_t cnt = an ? ldns_rr_list_rr_count(an) : 0;
    lmd_dns_rr *rrs = calloc(cnt ? cnt : 1, sizeof *rrs);
    if (!rrs) {
        ldns_pkt_free(pkt);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < cnt; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(an, i);
        if ((type == 0 || (int)ldns_rr_get_type(rr) == type) && ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN &&
            lmd_dns_rr_fill(rr, &rrs[k]) == 0)
            k++;
        else
            lmd_txt_free(&rrs[k].txt);
    }
    ldns_pkt_free(pkt);
    *out = rrs;
    *n = k;
    return 0;
}

void lmd_dns_rrs_free(lmd_dns_rr *rrs, size_t n)
{
    for (size_t i = 0; rrs && i < n; i++)
        lmd_txt_free(&rrs[i].txt);
    free(rrs);
}
