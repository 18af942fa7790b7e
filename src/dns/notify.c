/* A NOTIFY (RFC 1996) received by the agent (wide_area.notify): believed
 * only when the agent's own key signed it, and answered signed; and one
 * the agent sends (wide_area.also_notify), signed with its key; see dns.h. */
#include "dns/internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* TSIG's time signed (48 bits) and fudge: the message is of now */
static bool in_time(const ldns_rr *tsig)
{
    const ldns_rdf *t = ldns_rr_rdf(tsig, 1), *f = ldns_rr_rdf(tsig, 2);
    if (!t || !f || ldns_rdf_size(t) != 6)
        return false;
    const uint8_t *d = ldns_rdf_data(t);
    uint64_t signed_at = 0;
    for (int i = 0; i < 6; i++)
        signed_at = signed_at << 8 | d[i];
    uint64_t now = (uint64_t)time(NULL), fudge = ldns_rdf2native_int16(f);
    return signed_at + fudge >= now && signed_at <= now + fudge;
}

/* The signed acknowledgement: same id and question, QR and AA set, the
 * request's MAC in the signature (RFC 8945 5.3). */
static int reply(const ldns_pkt *req, const ldns_rr *q, const ldns_rr *tsig, const lmd_dns_key *key, uint8_t **out,
                 size_t *out_len)
{
    ldns_pkt *r = ldns_pkt_new();
    ldns_rr *qc = q ? ldns_rr_clone(q) : NULL;
    if (!r || !qc) {
        ldns_rr_free(qc);
        ldns_pkt_free(r);
        return LMD_ENOMEM;
    }
    ldns_pkt_set_id(r, ldns_pkt_id(req));
    ldns_pkt_set_qr(r, true);
    ldns_pkt_set_aa(r, true);
    ldns_pkt_set_opcode(r, LDNS_PACKET_NOTIFY);
    ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION, qc);
    char alg[40];
    lmd_dns_key_ldns_alg(key, alg, sizeof alg);
    int rc = ldns_pkt_tsig_sign(r, key->name, key->secret, 300, alg, ldns_rr_rdf(tsig, 3)) == LDNS_STATUS_OK &&
                     ldns_pkt2wire(out, r, out_len) == LDNS_STATUS_OK
                 ? 0
                 : LMD_ENOMEM;
    ldns_pkt_free(r);
    return rc;
}

enum lmd_dns_notify_result lmd_dns_notify_read(const uint8_t *wire, size_t len, const lmd_dns_key *key,
                                               lmd_dns_notify_info *info, uint8_t **out, size_t *out_len)
{
    memset(info, 0, sizeof *info);
    *out = NULL;
    *out_len = 0;
    ldns_pkt *pkt = NULL;
    if (ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK || !pkt)
        return LMD_DNS_NOTIFY_INVALID;
    enum lmd_dns_notify_result res = LMD_DNS_NOTIFY_INVALID;
    const ldns_rr_list *ql = ldns_pkt_question(pkt);
    const ldns_rr *q = ql && ldns_rr_list_rr_count(ql) == 1 ? ldns_rr_list_rr(ql, 0) : NULL;
    ldns_rr *tsig = ldns_pkt_tsig(pkt);
    if (ldns_pkt_qr(pkt) || ldns_pkt_get_opcode(pkt) != LDNS_PACKET_NOTIFY || !q ||
        ldns_rr_get_type(q) != LDNS_RR_TYPE_SOA)
        goto done;
    lmd_dns_name_text(ldns_rr_owner(q), info->zone, sizeof info->zone);
    char tkey[256] = "";
    if (tsig)
        lmd_dns_name_text(ldns_rr_owner(tsig), tkey, sizeof tkey);
    if (!tsig) {
        res = LMD_DNS_NOTIFY_UNSIGNED;
        goto done;
    }
    /* signed by this key, over these bytes, now (not a replay from hours ago) */
    if (strcasecmp(tkey, key->name) != 0 || !ldns_pkt_tsig_verify(pkt, (uint8_t *)wire, len, key->name, key->secret,
                                                                   NULL) || !in_time(tsig)) {
        res = LMD_DNS_NOTIFY_BADSIG;
        goto done;
    }
    /* the zone's new SOA, if the sender gave it (RFC 1996 3.7) */
    const ldns_rr_list *an = ldns_pkt_answer(pkt);
    for (size_t i = 0; an && i < ldns_rr_list_rr_count(an); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(an, i);
        if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA && ldns_rr_rd_count(rr) >= 3 &&
            ldns_rdf_size(ldns_rr_rdf(rr, 2)) == 4) {
            info->serial = ldns_rdf2native_int32(ldns_rr_rdf(rr, 2));
            info->have_serial = true;
        }
    }
    res = reply(pkt, q, tsig, key, out, out_len) == 0 ? LMD_DNS_NOTIFY_OK : LMD_DNS_NOTIFY_INVALID;
done:
    ldns_pkt_free(pkt);
    return res;
}

int lmd_dns_notify_build(const char *zone, const lmd_dns_key *key, lmd_dns_msg **out, lmd_err *err)
{
    *out = NULL;
    if (!key)
        return lmd_err_set(err, LMD_EINVAL, "a NOTIFY is sent signed: no key");
    lmd_dns_msg *m = NULL;
    int rc = lmd_dns_query_build(NULL, zone, LMD_DNS_T_SOA, &m, err);
    if (rc != 0)
        return rc;
    /* RFC 1996 3.7: opcode NOTIFY, AA set, the zone's SOA asked; no SOA
     * in the answer section (the secondary asks its primary for it) */
    ldns_pkt_set_opcode(m->pkt, LDNS_PACKET_NOTIFY);
    ldns_pkt_set_aa(m->pkt, true);
    if ((rc = lmd_dns_query_sign(m, key, err)) != 0) { /* writes the wire again, from the packet */
        lmd_dns_msg_free(m);
        return rc;
    }
    *out = m;
    return 0;
}
