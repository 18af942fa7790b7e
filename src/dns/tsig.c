/* Signing a read (a query) with the agent's TSIG key (see dns.h): its
 * answer is then believed only when the same key signed it (send.c). */
#include "dns/internal.h"

#include <stdlib.h>

int lmd_dns_query_sign(lmd_dns_msg *m, const lmd_dns_key *key, lmd_err *err)
{
    if (!m || !m->pkt || !key)
        return lmd_err_set(err, LMD_EINVAL, "nothing to sign, or no key");
    char alg[40];
    lmd_dns_key_ldns_alg(key, alg, sizeof alg);
    ldns_status st = ldns_pkt_tsig_sign(m->pkt, key->name, key->secret, 300, alg, NULL);
    ldns_rr *tsig = st == LDNS_STATUS_OK ? ldns_pkt_tsig(m->pkt) : NULL;
    ldns_rdf_deep_free(m->mac);
    m->mac = tsig ? ldns_rdf_clone(ldns_rr_rdf(tsig, 3)) : NULL;
    uint8_t *wire = NULL;
    size_t len = 0;
    if (!m->mac || ldns_pkt2wire(&wire, m->pkt, &len) != LDNS_STATUS_OK)
        return lmd_err_set(err, LMD_EINVAL, "cannot sign the query with key %s: %s", key->name,
                           st != LDNS_STATUS_OK ? ldns_get_errorstr_by_id(st) : "out of memory");
    free(m->wire);
    m->wire = wire;
    m->len = len;
    m->signed_read = true;
    return 0;
}
