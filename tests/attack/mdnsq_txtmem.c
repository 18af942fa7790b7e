/* attack3: memory one query can be made to hold.  LMD_MDNSQ_MAX (8,192)
 * bounds the instances, not what each holds: the first TXT of each is
 * copied whole, as items.  A responder sends 8,192 instances, each with a
 * TXT of as many short items as fit a 9,000-byte datagram ("k0=" .. ),
 * never whole (no address): all are kept until the scan ends.
 * Offline (lmd_mdnsq_feed); prints the process's peak RSS.
 * Measured (attack3, load ~9): 1,800 items a TXT (8,787-byte datagrams):
 *   50 instances 28.6 MB peak RSS, 200 instances 52.9 MB: ~162 KB held an
 *   instance (~90 bytes an item), so 8,192 of them ~1.3 GB from ~72 MB of
 *   datagrams; and ~60 ms of CPU a datagram (200 items: ~1.4 ms; the cost
 *   grows with the square of the items).  Fixed (lead, 20:28): a TXT past
 *   LMD_TXT_RECORD_MAX (1,300 bytes, more than any agent publishes) is not
 *   believed (mdns_parse.c), so it is neither parsed into items nor kept;
 *   the instance is left to avahi.  After: peak RSS 21.3 / 21.9 / 21.9 MB
 *   at 50 / 200 / 400 instances (flat: the generator's own ldns text
 *   parsing), against 28.6 / 52.9 MB before.
 *   usage: mdnsq_txtmem [instances] [items]  (default 8192 1800)
 * Build by hand as tests/attack/mdnsq_collide.c says. */
#include "dns/mdnsq.h"

#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 8192, items = argc > 2 ? (unsigned)atoi(argv[2]) : 1800;
    lmd_mdnsq *q = NULL;
    lmd_err e = {0};
    if (lmd_mdnsq_new(NULL, "_lmserv._tcp", NULL, NULL, &q, &e) != 0)
        return 2;
    char *txt = malloc(items * 12 + 64);
    size_t o = 0;
    for (unsigned k = 0; k < items; k++)
        o += (size_t)sprintf(txt + o, " \"%x=\"", k);
    char *rr = malloc(items * 12 + 256);
    for (unsigned i = 0; i < n; i++) {
        ldns_pkt *p = ldns_pkt_new();
        ldns_pkt_set_qr(p, true);
        ldns_rr *r = NULL;
        sprintf(rr, "_lmserv._tcp.local. 120 IN PTR i%u._lmserv._tcp.local.", i);
        ldns_rr_new_frm_str(&r, rr, 120, NULL, NULL);
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, r);
        sprintf(rr, "i%u._lmserv._tcp.local. 120 IN TXT%s", i, txt);
        if (ldns_rr_new_frm_str(&r, rr, 120, NULL, NULL) != LDNS_STATUS_OK)
            return 3;
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, r);
        uint8_t *w = NULL;
        size_t len = 0;
        ldns_pkt2wire(&w, p, &len);
        if (i == 0)
            printf("datagram: %zu bytes\n", len);
        lmd_mdnsq_feed(q, w, len, 2, 4, false);
        free(w);
        ldns_pkt_free(p);
    }
    lmd_mdnsq_stats st;
    lmd_mdnsq_stats_get(q, &st);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%u instances held (%u dropped), %u TXT items each: peak RSS %.1f MB\n", st.incomplete, st.dropped, items,
           ru.ru_maxrss / 1024.0);
    lmd_mdnsq_free(q);
    return 0;
}
