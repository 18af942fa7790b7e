/* mDNS responses to our one-shot browse (see dns.h), as plain records,
 * each checked against what was asked before anything in it is believed:
 * a hostile packet may carry any name, class, type or length. */
#include "dns/internal.h"
#include "dns/mdnsq.h"
#include "base/txt.h"

#include <stdlib.h>
#include <string.h>

struct lmd_dns_mscope {
    ldns_rdf *browse; /* TYPE.DOMAIN */
    ldns_rdf *domain; /* DOMAIN */
    size_t browse_labels;
};

int lmd_dns_mscope_new(const char *type, const char *domain, lmd_dns_mscope **out, lmd_err *err)
{
    *out = NULL;
    char name[1100];
    if (snprintf(name, sizeof name, "%s.%s", type, domain) >= (int)sizeof name)
        return lmd_err_set(err, LMD_EINVAL, "'%s.%s' is too long for a name", type, domain);
    lmd_dns_mscope *s = calloc(1, sizeof *s);
    if (!s)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    s->browse = ldns_dname_new_frm_str(name);
    s->domain = ldns_dname_new_frm_str(domain);
    if (!s->browse || !s->domain) {
        lmd_dns_mscope_free(s);
        return lmd_err_set(err, LMD_EINVAL, "'%s' is not a valid name to browse", name);
    }
    s->browse_labels = ldns_dname_label_count(s->browse);
    *out = s;
    return 0;
}

void lmd_dns_mscope_free(lmd_dns_mscope *s)
{
    if (!s)
        return;
    ldns_rdf_deep_free(s->browse);
    ldns_rdf_deep_free(s->domain);
    free(s);
}

/* A name one label under parent whose first label is 1..63 bytes without
 * a NUL (an instance name as avahi hands them over). */
static bool one_under(const ldns_rdf *d, const ldns_rdf *parent, size_t parent_labels)
{
    if (!d || ldns_rdf_get_type(d) != LDNS_RDF_TYPE_DNAME || ldns_rdf_size(d) < 2)
        return false;
    const uint8_t *w = ldns_rdf_data(d);
    size_t n = w[0];
    return n >= 1 && n <= 63 && n + 1 < ldns_rdf_size(d) && !memchr(w + 1, '\0', n) &&
           ldns_dname_label_count(d) == parent_labels + 1 && ldns_dname_is_subdomain(d, parent);
}

static bool believed(const lmd_dns_mscope *s, const ldns_rr *rr)
{
    const ldns_rdf *own = ldns_rr_owner(rr);
    const ldns_rdf *r0 = ldns_rr_rd_count(rr) ? ldns_rr_rdf(rr, 0) : NULL;
    switch (ldns_rr_get_type(rr)) {
    case LDNS_RR_TYPE_PTR:
        return own && ldns_dname_compare(own, s->browse) == 0 && one_under(r0, s->browse, s->browse_labels);
    case LDNS_RR_TYPE_SRV: {
        const ldns_rdf *t = ldns_rr_rd_count(rr) == 4 ? ldns_rr_rdf(rr, 3) : NULL;
        return one_under(own, s->browse, s->browse_labels) && t && ldns_rdf_get_type(t) == LDNS_RDF_TYPE_DNAME &&
               ldns_dname_is_subdomain(t, s->domain);
    }
    case LDNS_RR_TYPE_TXT: {
        /* no agent publishes a TXT past LMD_TXT_RECORD_MAX: a bigger one is
         * not parsed into items (thousands of one-byte items cost 160 KB and
         * 60 ms each) nor kept; the instance is left to avahi */
        size_t bytes = 0;
        for (size_t k = 0; k < ldns_rr_rd_count(rr); k++)
            bytes += ldns_rdf_size(ldns_rr_rdf(rr, k));
        return bytes <= LMD_TXT_RECORD_MAX && one_under(own, s->browse, s->browse_labels);
    }
    case LDNS_RR_TYPE_A:
    case LDNS_RR_TYPE_AAAA:
        return own && ldns_dname_is_subdomain(own, s->domain) && ldns_rr_rd_count(rr) == 1 && r0 &&
               ldns_rdf_size(r0) == (ldns_rr_get_type(rr) == LDNS_RR_TYPE_A ? 4u : 16u);
    default:
        return false;
    }
}

int lmd_dns_mdns_parse(const lmd_dns_mscope *s, const uint8_t *wire, size_t len, lmd_dns_mrr_cb cb, void *arg,
                       unsigned *skipped, lmd_err *err)
{
    unsigned skip = 0;
    ldns_pkt *pkt = NULL;
    if (ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK || !pkt)
        return lmd_err_set(err, LMD_EINVAL, "not a DNS message");
    /* RFC 6762 section 18: a response (QR), opcode 0, rcode 0; the rest is ignored */
    if (!ldns_pkt_qr(pkt) || ldns_pkt_get_opcode(pkt) != LDNS_PACKET_QUERY ||
        ldns_pkt_get_rcode(pkt) != LDNS_RCODE_NOERROR) {
        ldns_pkt_free(pkt);
        return lmd_err_set(err, LMD_EINVAL, "not an mDNS response");
    }
    ldns_rr_list *sec[3] = {ldns_pkt_answer(pkt), ldns_pkt_authority(pkt), ldns_pkt_additional(pkt)};
    lmd_dns_rr *o = calloc(1, sizeof *o);
    if (!o) {
        ldns_pkt_free(pkt);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    for (size_t k = 0; k < 3; k++) {
        size_t n = sec[k] ? ldns_rr_list_rr_count(sec[k]) : 0;
        for (size_t i = 0; i < n; i++) {
            const ldns_rr *rr = ldns_rr_list_rr(sec[k], i);
            /* the top bit of the class is mDNS's cache-flush bit (RFC 6762 section 10.2) */
            if ((ldns_rr_get_class(rr) & 0x7fff) != LDNS_RR_CLASS_IN || !believed(s, rr)) {
                skip++;
                continue;
            }
            if (lmd_dns_rr_fill(rr, o) != 0) { /* malformed rdata */
                lmd_txt_free(&o->txt);
                skip++;
                continue;
            }
            cb(o, arg);
            lmd_txt_free(&o->txt);
        }
    }
    free(o);
    ldns_pkt_free(pkt);
    if (skipped)
        *skipped += skip;
    return 0;
}
