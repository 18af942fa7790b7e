/* Private to the one-shot mDNS browse (mdns_query.c: the answers read;
 * mdns_ask.c: the queries sent, what is awaited, when it has settled). */
#ifndef LMD_DNS_MDNSQ_INT_H
#define LMD_DNS_MDNSQ_INT_H

#include "dns/internal.h"
#include "dns/mdnsq.h"
#include "dns/mdns_sock.h"
#include "base/txt.h"

#include <event2/util.h>

#include <stdbool.h>

/* RFC 6762 section 6: a shared answer (our PTR) comes 20-120 ms after the
 * query reached the responder; ours carries no known answers, so no
 * responder waits the 400-500 ms of a truncated query.  Then nothing new
 * for QUIET: new is a record of a service whole over neither protocol yet
 * (the other protocol's records of a whole one are merged, and are no
 * news: a responder's late answers over one protocol, trickling in for
 * seconds under load, kept 500-service scans open to 2-3 s).
 *
 * A responder answers over IPv4 and over IPv6 separately (avahi-daemon's
 * response schedulers are per interface and protocol), and one of them may
 * come late or not at all: 500 services from 5 hosts on 2 cores at load
 * 8-12, one host's 100 instances over one protocol only in 1 run of 12,
 * 92 of 1,000 instances 0.1 s after the rest in another.  An instance
 * whole over one protocol is a complete peer, with that family's address:
 * the other family's is merged if it comes while the scan runs, and never
 * awaited (awaiting it, then handing it to avahi's resolvers, which wait
 * for the same silent responder, made one 500-service scan in four take
 * 10.5 s instead of 0.67).  What is awaited is an instance known (its PTR
 * came) and whole over neither protocol.  A responder does not multicast
 * a record again within a second (section 6: a scan right after a
 * service's announcements, or right after another scan, gets no answer
 * for it), so while any is awaited the query is sent again at REQUERY[]
 * after the first (what was answered before is not answered again within
 * the second, what was not is), up to EXPECT_MAX after it; then avahi
 * resolves what is still missing. */
#define WINDOW 0.2
#define QUIET 0.15
#define EXPECT_MAX 2.0
static const double REQUERY[] = {0.6, 1.3};
#define QUIET_MAX 0.5
#define NBUCKETS 1024

/* Intrusive doubly linked lists (an entry out of its list has a NULL
 * back pointer): an instance leaves its chain, the list of all, its host's
 * waiters and the touched list in O(1). */
#define DL_PUSH(head, x, nx, px)                                                                                       \
    do {                                                                                                               \
        (x)->nx = *(head);                                                                                             \
        if ((x)->nx)                                                                                                   \
            (x)->nx->px = &(x)->nx;                                                                                    \
        *(head) = (x);                                                                                                 \
        (x)->px = (head);                                                                                              \
    } while (0)
#define DL_UNLINK(x, nx, px)                                                                                           \
    do {                                                                                                               \
        if ((x)->px) {                                                                                                 \
            *(x)->px = (x)->nx;                                                                                        \
            if ((x)->nx)                                                                                               \
                (x)->nx->px = (x)->px;                                                                                 \
            (x)->nx = NULL;                                                                                            \
            (x)->px = NULL;                                                                                            \
        }                                                                                                              \
    } while (0)

struct mq_host;

struct mq_inst {
    struct mq_inst *next, **pnext; /* the bucket's chain */
    struct mq_inst *all, **pall;   /* every instance */
    struct mq_inst *wnext, **pwnext; /* its host's waiters: not reported, SRV in */
    struct mq_inst *tnext, **ptnext; /* touched by the datagram being read */
    struct mq_host *hx;              /* the SRV target's entry (same interface and protocol) */
    int ifindex, proto;
    char name[64];
    bool ptr, srv, txt_ok, reported, local;
    bool covered; /* the other source resolves it (lmd_mdnsq_cover): not awaited */
    bool wanted;  /* the other source knows it (lmd_mdnsq_want): awaited, asked for (mdns_ask.c) */
    unsigned char asked; /* how many asks named it */
    double ask_at;       /* lmd_now_mono() of the last */
    char *host;
    uint16_t port;
    lmd_txt txt;
};

struct mq_host {
    struct mq_host *next;
    struct mq_inst *waiters; /* instances not reported whose SRV names it: looked at again on an address */
    int ifindex, proto;
    char *name;
    char a[64], aaaa[64];
};

struct lmd_mdnsq {
    struct event_base *base;
    lmd_mdnsq_callbacks cb;
    void *ud;
    char *type;
    lmd_dns_mscope *scope;
    lmd_msock *socks;
    struct event *timer;
    struct event *ask_timer; /* the next ask (mdns_ask.c) */
    struct mq_inst *inst[NBUCKETS], *all;
    struct mq_inst *touched; /* to look at once the datagram is read: O(changed), not O(instances) */
    struct mq_host *host[NBUCKETS];
    unsigned n_inst, n_host;
    lmd_mdnsq_stats st;
    double gap_max; /* the longest silence between new answers so far */
    unsigned seed;  /* of the tables' hash (random) */
    uint8_t *query; /* as sent */
    size_t query_len;
    size_t requeries;
    ldns_rdf *browse; /* TYPE.local, the asks' names end with it */
    double bound;     /* awaited instances are given up at (mdns_ask.c) */
    double ask_last;  /* lmd_now_mono() of the last ask, 0 none */
    unsigned ask_rounds, ask_names;
    bool settled, answered, quiet;
    /* the packet being read */
    int ifindex, proto;
    bool local, changed;
    bool fresh; /* it brought a record of a service whole over neither protocol yet */
};

/* mdns_query.c */
struct mq_inst *lmd_mq_inst_at(lmd_mdnsq *q, int ifindex, int proto, const char *name, bool make);
void lmd_mq_report(lmd_mdnsq *q, struct mq_inst *i);
void lmd_mq_packet(const uint8_t *wire, size_t len, int ifindex, int proto, bool local, const char *src,
                   void *arg);
/* mdns_ask.c */
void lmd_mq_arm(lmd_mdnsq *q);
void lmd_mq_timer(evutil_socket_t fd, short what, void *arg);
void lmd_mq_ask_timer(evutil_socket_t fd, short what, void *arg);

#endif
