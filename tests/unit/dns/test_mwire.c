/* The passive mDNS listener's assembly (src/dns/mdns_wire.c), offline:
 * datagrams made with ldns and fed as the sockets would pass them. */
#include "dns/mdnsw.h"

#include "base/instance.h"
#include "base/txt.h"
#include "lmdisc.h"

#include <ldns/ldns.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"

struct seen {
    int found, gone, goodbyes;
    char name[64], addr[80], host[128];
    unsigned flags;
    uint16_t port;
};

static void on_found(void *ud, const struct lmd_instance *in)
{
    struct seen *s = ud;
    s->found++;
    snprintf(s->name, sizeof s->name, "%s", in->name);
    snprintf(s->addr, sizeof s->addr, "%s", in->addr->addr);
    snprintf(s->host, sizeof s->host, "%s", in->host);
    s->flags = in->flags;
    s->port = in->port;
}

static void on_gone(void *ud, const struct lmd_instance *in, bool goodbye)
{
    (void)in;
    struct seen *s = ud;
    s->gone++;
    s->goodbyes += goodbye;
}

/* One response of the records given as text (NULL-terminated). */
static void feed(lmd_mwire *w, const char **rrs, int proto, bool local, const char *src, double now)
{
    ldns_pkt *p = ldns_pkt_new();
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_aa(p, true);
    for (; *rrs; rrs++) {
        ldns_rr *r = NULL;
        if (ldns_rr_new_frm_str(&r, *rrs, 120, NULL, NULL) != LDNS_STATUS_OK) {
            fprintf(stderr, "bad record in the test: %s\n", *rrs);
            exit(2);
        }
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, r);
    }
    uint8_t *wire = NULL;
    size_t len = 0;
    ldns_pkt2wire(&wire, p, &len);
    lmd_mwire_feed(w, wire, len, 2, proto, local, src, now);
    free(wire);
    ldns_pkt_free(p);
}

#define T "_lmserv._tcp.local."

static lmd_mwire *fresh(struct seen *s)
{
    static const struct lmd_mwire_callbacks cb = {on_found, on_gone};
    memset(s, 0, sizeof *s);
    lmd_mwire *w = NULL;
    lmd_err e = {0};
    int rc = lmd_mwire_new(NULL, "_lmserv._tcp", &cb, s, &w, &e);
    CHECK(rc == 0 && w, "lmd_mwire_new: %s", e.msg);
    if (!w)
        exit(1);
    return w;
}

/* An announcement (PTR, SRV, TXT, no address record): whole with the
 * datagram's source; found once; a repeat changes nothing; a goodbye
 * ends it (gone, goodbye); never OWN */
static void test_announcement(void)
{
    struct seen s;
    lmd_mwire *w = fresh(&s);
    const char *ann[] = {T " 4500 IN PTR peer." T, "peer." T " 120 IN SRV 0 0 8002 h2.local.",
                         "peer." T " 4500 IN TXT \"info=x\"", NULL};
    feed(w, ann, 4, false, "10.0.0.2", 1);
    CHECK(s.found == 1, "found %d", s.found);
    CHECK(!strcmp(s.name, "peer") && !strcmp(s.addr, "10.0.0.2") && s.port == 8002, "%s %s %u", s.name, s.addr,
          s.port);
    CHECK(!(s.flags & LMD_NODE_OWN), "flags %u", s.flags);
    feed(w, ann, 4, false, "10.0.0.2", 2);
    CHECK(s.found == 1, "found again: %d", s.found);
    lmd_mwire_stats st;
    lmd_mwire_stats_get(w, &st);
    CHECK(st.held == 1, "held %u", st.held);
    const char *bye[] = {T " 0 IN PTR peer." T, NULL};
    feed(w, bye, 4, false, "10.0.0.2", 3);
    CHECK(s.gone == 1 && s.goodbyes == 1, "gone %d goodbyes %d", s.gone, s.goodbyes);
    lmd_mwire_stats_get(w, &st);
    CHECK(st.held == 0, "held %u", st.held);
    lmd_mwire_free(w);
}

/* The target's address from the wire wins over the source; IPv6 link-local
 * gets the interface; parts across datagrams; a local IPv4 source marks
 * LOCAL only */
static void test_address_and_parts(void)
{
    struct seen s;
    lmd_mwire *w = fresh(&s);
    const char *a[] = {"h3.local. 120 IN A 10.0.0.33", T " 4500 IN PTR p3." T, NULL};
    const char *b[] = {"p3." T " 120 IN SRV 0 0 9 h3.local.", NULL};
    const char *c[] = {"p3." T " 4500 IN TXT \"a=b\"", NULL};
    feed(w, a, 4, true, "10.0.0.3", 1);
    feed(w, b, 4, true, "10.0.0.3", 1);
    CHECK(s.found == 0, "found before its TXT");
    feed(w, c, 4, true, "10.0.0.3", 1);
    CHECK(s.found == 1 && !strcmp(s.addr, "10.0.0.33"), "found %d at %s", s.found, s.addr);
    CHECK(s.flags == LMD_NODE_LOCAL, "flags %u", s.flags);
    const char *v6[] = {T " 4500 IN PTR p6." T, "p6." T " 120 IN SRV 0 0 9 h6.local.", "p6." T " 4500 IN TXT \"a=b\"",
                        NULL};
    feed(w, v6, 6, false, "fe80::1", 1);
    CHECK(s.found == 2 && !strncmp(s.addr, "fe80::1%", 8), "found %d at %s", s.found, s.addr);
    lmd_mwire_free(w);
}

/* Confirmed by avahi: not held, no gone; its TTL: gone (expired); a TXT
 * over the cap is not believed (never whole) */
static void test_confirm_expire_txtcap(void)
{
    struct seen s;
    lmd_mwire *w = fresh(&s);
    const char *a[] = {T " 4500 IN PTR a." T, "a." T " 120 IN SRV 0 0 9 ha.local.", "a." T " 4500 IN TXT \"x=1\"",
                       NULL};
    const char *b[] = {T " 4500 IN PTR b." T, "b." T " 60 IN SRV 0 0 9 hb.local.", "b." T " 60 IN TXT \"x=1\"",
                       NULL};
    feed(w, a, 4, false, "10.0.0.4", 10);
    feed(w, b, 4, false, "10.0.0.5", 10);
    CHECK(s.found == 2, "found %d", s.found);
    lmd_mwire_confirm(w, 2, 4, "a");
    lmd_mwire_tick(w, 10 + 61); /* b's records were for 60 s; a's capped at 120 */
    CHECK(s.gone == 1 && s.goodbyes == 0, "gone %d goodbyes %d", s.gone, s.goodbyes);
    lmd_mwire_tick(w, 10 + 200);
    CHECK(s.gone == 1, "a confirmed one went: %d", s.gone);
    /* 1,512 bytes of TXT: past LMD_TXT_RECORD_MAX */
    char big[1700] = "big." T " 120 IN TXT";
    for (int i = 0; i < 7; i++) {
        strcat(big, " \"");
        size_t n = strlen(big);
        memset(big + n, 'x', 215);
        big[n + 215] = '\0';
        strcat(big, "\"");
    }
    const char *c[] = {T " 120 IN PTR big." T, "big." T " 120 IN SRV 0 0 9 hb.local.", big, NULL};
    feed(w, c, 4, false, "10.0.0.6", 300);
    CHECK(s.found == 2, "an instance with a TXT over the cap was found");
    lmd_mwire_free(w);
}

/* The table is bounded: past LMD_MWIRE_MAX instances, new ones are dropped
 * (counted), the ones held stay */
static void test_cap(void)
{
    struct seen s;
    lmd_mwire *w = fresh(&s);
    char ptr[128], srv[128], txt[128];
    for (int i = 0; i < LMD_MWIRE_MAX + 100; i++) {
        snprintf(ptr, sizeof ptr, T " 120 IN PTR f%d." T, i);
        snprintf(srv, sizeof srv, "f%d." T " 120 IN SRV 0 0 9 fh.local.", i);
        snprintf(txt, sizeof txt, "f%d." T " 120 IN TXT \"x=1\"", i);
        const char *r[] = {ptr, srv, txt, NULL};
        feed(w, r, 4, false, "10.0.0.7", 1);
    }
    lmd_mwire_stats st;
    lmd_mwire_stats_get(w, &st);
    CHECK(s.found == LMD_MWIRE_MAX && st.held == LMD_MWIRE_MAX, "found %d held %u", s.found, st.held);
    CHECK(st.dropped >= 100, "dropped %u", st.dropped);
    lmd_mwire_free(w);
}


/* A forged address record for a real peer's host, planted before its
 * announcement, does not outlive the host's own (cache-flush) address
 * records: the newest answer for a host's address wins, as in a cache
 * (RFC 6762 section 10.2), not the first one seen */
static void test_planted_address(void)
{
    struct seen s;
    lmd_mwire *w = fresh(&s);
    const char *plant[] = {"h2.local. 120 IN A 10.0.0.66", "h2.local. 120 IN AAAA fd00::66", NULL};
    feed(w, plant, 4, false, "10.0.0.66", 1);
    /* the real host defends its name: its own address records */
    const char *defend[] = {"h2.local. 120 IN A 10.0.0.2", NULL};
    feed(w, defend, 4, false, "10.0.0.2", 2);
    const char *ann[] = {T " 4500 IN PTR real." T, "real." T " 120 IN SRV 0 0 8002 h2.local.",
                         "real." T " 4500 IN TXT \"info=x\"", NULL};
    feed(w, ann, 4, false, "10.0.0.2", 3);
    CHECK(s.found == 1 && !strcmp(s.addr, "10.0.0.2"), "found %d at %s (the planted address)", s.found, s.addr);
    /* the same in one datagram: the announcement's own address record */
    const char *plant2[] = {"h4.local. 120 IN A 10.0.0.66", NULL};
    feed(w, plant2, 4, false, "10.0.0.66", 4);
    const char *ann2[] = {T " 4500 IN PTR four." T, "four." T " 120 IN SRV 0 0 8002 h4.local.",
                          "four." T " 4500 IN TXT \"info=x\"", "h4.local. 120 IN A 10.0.0.4", NULL};
    feed(w, ann2, 4, false, "10.0.0.4", 5);
    CHECK(s.found == 2 && !strcmp(s.addr, "10.0.0.4"), "found %d at %s (the planted address)", s.found, s.addr);
    lmd_mwire_free(w);
}

int main(void)
{
    test_announcement();
    test_address_and_parts();
    test_confirm_expire_txtcap();
    test_cap();
    test_planted_address();
    printf("%d checks, %d failed\n", checks, failures);
    return failures != 0;
}
