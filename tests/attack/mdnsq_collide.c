/* attack3: the one-shot scan's tables (src/dns/mdns_query.c) are hashed
 * with a fixed, public function (FNV-1a of the lower-cased name, the
 * interface and the protocol, mod 1024).  A responder that picks host
 * names all in one bucket makes every lookup walk one chain of up to
 * LMD_MDNSQ_MAX entries, and report_whole() looks up the host of every
 * instance not yet whole after each datagram that changed anything.
 * Measured offline (lmd_mdnsq_feed, no socket): the time one datagram
 * costs once the tables are full, colliding names against plain ones.
 * Before the fix (main dc91ae7), on this 2-core machine at load ~3.7:
 *   spread    : 8192 hosts, 8000 instances: setup 0.70 s, 0.0024 s a datagram
 *   one bucket: 8192 hosts, 8000 instances: setup 94.44 s, 0.8564 s a datagram
 *   ratio 358x; 256 such datagrams (one socket wake-up) take 219.2 s
 * i.e. a responder on the LAN held `lmdisc discover --timeout 5` for
 * minutes (the loopexit is looked at only between callbacks).  After it
 * (the hash keyed with a random seed per query; a wake-up of the sockets
 * at most 20 ms) the "one bucket" names spread like any others: ratio 1x.
 * Not registered in tests/tests.cmake (it times; build by hand):
 *   gcc -std=gnu11 -O2 -Isrc -Iinclude -Ibuild/... tests/attack/mdnsq_collide.c \
 *       build/CMakeFiles/lmdisc_{dns,core}.dir/src/.../*.o -lldns -levent ...
 *   usage: mdnsq_collide [hosts] [instances]  (default 8192 8000) */
#include "base/util.h"
#include "dns/mdnsq.h"

#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static unsigned hash(const char *s, int ifindex, int proto)
{
    unsigned h = 2166136261u ^ (unsigned)ifindex * 31u ^ (unsigned)proto;
    for (; *s; s++)
        h = (h ^ (unsigned char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s)) * 16777619u;
    return h % 1024;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static ldns_pkt *pkt_new(void)
{
    ldns_pkt *p = ldns_pkt_new();
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_aa(p, true);
    return p;
}

static void add(ldns_pkt *p, const char *text)
{
    ldns_rr *rr = NULL;
    if (ldns_rr_new_frm_str(&rr, text, 120, NULL, NULL) != LDNS_STATUS_OK) {
        fprintf(stderr, "bad rr %s\n", text);
        exit(2);
    }
    ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
}

static void feed(lmd_mdnsq *q, ldns_pkt *p)
{
    uint8_t *w = NULL;
    size_t len = 0;
    if (ldns_pkt2wire(&w, p, &len) != LDNS_STATUS_OK)
        exit(2);
    lmd_mdnsq_feed(q, w, len, 2, 4, false);
    free(w);
    ldns_pkt_free(p);
}

/* hosts names: n names (all in one bucket when collide), the first
 * n_addr of them given an A, the rest SRV targets with none */
static double run(unsigned n_hosts, unsigned n_inst, bool collide, unsigned *probe_packets)
{
    lmd_mdnsq *q = NULL;
    lmd_err e = {0};
    if (lmd_mdnsq_new(NULL, "_lmserv._tcp", NULL, NULL, &q, &e) != 0) {
        fprintf(stderr, "mdnsq_new: %s\n", lmd_err_text(&e));
        exit(2);
    }
    char (*names)[32] = calloc(n_hosts + n_inst, sizeof *names);
    unsigned k = 0, bucket = hash("h0.local", 2, 4);
    for (unsigned c = 0; k < n_hosts + n_inst; c++) {
        char nm[32];
        snprintf(nm, sizeof nm, "h%u.local", c);
        if (!collide || hash(nm, 2, 4) == bucket)
            memcpy(names[k++], nm, sizeof nm);
    }
    char rr[400];
    /* the hosts with an address */
    for (unsigned i = 0; i < n_hosts; i += 100) {
        ldns_pkt *p = pkt_new();
        for (unsigned j = i; j < i + 100 && j < n_hosts; j++) {
            snprintf(rr, sizeof rr, "%s 120 IN A 10.%u.%u.%u", names[j], j >> 16, (j >> 8) & 255, j & 255);
            add(p, rr);
        }
        feed(q, p);
    }
    /* the instances, each pointing at a host name with no address: never whole */
    double t0 = now();
    for (unsigned i = 0; i < n_inst; i += 30) {
        ldns_pkt *p = pkt_new();
        for (unsigned j = i; j < i + 30 && j < n_inst; j++) {
            snprintf(rr, sizeof rr, "_lmserv._tcp.local. 120 IN PTR i%u._lmserv._tcp.local.", j);
            add(p, rr);
            snprintf(rr, sizeof rr, "i%u._lmserv._tcp.local. 120 IN SRV 0 0 %u %s.", j, 1000 + j % 1000, names[n_hosts + j]);
            add(p, rr);
            snprintf(rr, sizeof rr, "i%u._lmserv._tcp.local. 120 IN TXT \"id=%u\"", j, j);
            add(p, rr);
        }
        feed(q, p);
    }
    double setup = now() - t0;
    /* then one record a datagram that changes something: an SRV's port moved */
    t0 = now();
    unsigned n = 0;
    while (n < 64 && now() - t0 < 5) {
        ldns_pkt *p = pkt_new();
        snprintf(rr, sizeof rr, "i0._lmserv._tcp.local. 120 IN SRV 0 0 %u %s.", 2000 + n, names[n_hosts]);
        add(p, rr);
        feed(q, p);
        n++;
    }
    double per = (now() - t0) / n;
    lmd_mdnsq_stats st;
    lmd_mdnsq_stats_get(q, &st);
    printf("%s: %u hosts, %u instances (%u not whole, %u dropped): setup %.2f s, %.4f s a datagram (%u timed)\n",
           collide ? "one bucket" : "spread    ", n_hosts, n_inst, st.incomplete, st.dropped, setup, per, n);
    *probe_packets = n;
    lmd_mdnsq_free(q);
    free(names);
    return per;
}

int main(int argc, char **argv)
{
    unsigned h = argc > 1 ? (unsigned)atoi(argv[1]) : 8192, i = argc > 2 ? (unsigned)atoi(argv[2]) : 8000, n;
    double plain = run(h, i, false, &n), bad = run(h, i, true, &n);
    printf("ratio %.0fx; 256 such datagrams (one socket wake-up, READS_PER_WAKE) take %.1f s\n", bad / plain,
           256 * bad);
    return 0;
}
