/* A one-shot mDNS browse of our own (src/dns/mdns_*.c): what
 * lmd_discover_nodes uses beside avahi (see below).  No ldns type here. */
#ifndef LMD_DNS_MDNSQ_H
#define LMD_DNS_MDNSQ_H

#include "dns/dns.h"

struct event_base;

/* Issue 22.
 * avahi's D-Bus API has no cache-only lookup: a one-shot scan through it
 * opens one resolver per instance, and avahi-daemon's resolvers re-query
 * for ~10 s with 500 services although every record came in the first
 * second, as additional records of the PTR answers (RFC 6763 section 12).
 * So lmd_discover_nodes asks once itself: one QM query for TYPE.local PTR
 * (RFC 6762 section 5.2: from port 5353, answered by multicast, so
 * avahi-daemon's cache gets the answers too) on every multicast interface,
 * over IPv4 and IPv6, on sockets bound to the mDNS groups with
 * SO_REUSEADDR / SO_REUSEPORT beside avahi-daemon's (bound to the group
 * address, not the wildcard: no unicast datagram meant for avahi is taken).
 * An instance whose PTR, SRV, TXT and an address of its family have
 * arrived over one interface and protocol is reported whole; whole over
 * one protocol, it is not awaited over the other (its records are
 * reported if they come while the scan runs: mdns_query.c); avahi's
 * browser goes on beside it for anything this misses. */

/* What the answers are read against: TYPE.DOMAIN's PTR, SRV and TXT
 * (instance: one label under TYPE.DOMAIN), A and AAAA of names in DOMAIN
 * (mdns_parse.c; for the fuzz harness too). */
typedef struct lmd_dns_mscope lmd_dns_mscope;
int lmd_dns_mscope_new(const char *type, const char *domain, lmd_dns_mscope **out, lmd_err *err);
void lmd_dns_mscope_free(lmd_dns_mscope *s);
/* One mDNS response: each record of any section that is believed goes to
 * cb (valid during the call): class IN (the cache-flush bit masked), PTR
 * at TYPE.DOMAIN to one label under it, SRV and TXT at one label under
 * TYPE.DOMAIN (an SRV's target in DOMAIN), A and AAAA (4 / 16 bytes) of a
 * name in DOMAIN; ttl 0 is a goodbye.  Everything else is skipped and
 * counted in *skipped (may be NULL).  LMD_EINVAL: not a response (QR 0,
 * an opcode or rcode other than 0) or not DNS. */
typedef void (*lmd_dns_mrr_cb)(const lmd_dns_rr *rr, void *arg);
int lmd_dns_mdns_parse(const lmd_dns_mscope *s, const uint8_t *wire, size_t len, lmd_dns_mrr_cb cb, void *arg,
                       unsigned *skipped, lmd_err *err);

struct lmd_instance;
typedef struct lmd_mdnsq lmd_mdnsq;
typedef struct lmd_mdnsq_callbacks {
    /* an instance whole from the wire (once per interface and protocol) */
    void (*found)(void *ud, const struct lmd_instance *in);
    /* a goodbye (PTR with TTL 0) for one found */
    void (*gone)(void *ud, const struct lmd_instance *in);
    /* the first answers are in: the responders' delays are over and
     * nothing new came for a quiet period; what is still awaited may be
     * handed to another source now (lmd_mdnsq_cover) */
    void (*quiet)(void *ud);
    /* the answers are in: quiet, and nothing awaited that no other source
     * covers, or the bound (lmd_mdnsq_settled) */
    void (*settled)(void *ud);
} lmd_mdnsq_callbacks;
/* Start: sockets, the query sent at once (type: "_lmserv._tcp"; domain
 * "local").  LMD_EUNAVAIL without libldns, LMD_EIO when no socket could be
 * opened or no query sent (err says why): the caller goes on without. */
int lmd_mdnsq_new(struct event_base *base, const char *type, const lmd_mdnsq_callbacks *cb, void *ud,
                  lmd_mdnsq **out, lmd_err *err);
/* base NULL: offline, no socket nor query nor timer (tests, the fuzz
 * harness): datagrams are given with lmd_mdnsq_feed, and the answers
 * settled with lmd_mdnsq_settle_now.  proto 4 or 6. */
void lmd_mdnsq_feed(lmd_mdnsq *q, const uint8_t *wire, size_t len, int ifindex, int proto, bool local);
void lmd_mdnsq_settle_now(lmd_mdnsq *q);
/* Another source resolves that instance (avahi, the gate of lmd_discover_
 * nodes): it is not awaited here any more. */
void lmd_mdnsq_cover(lmd_mdnsq *q, int ifindex, int proto, const char *name);
/* Another source knows that instance (avahi's browser: the gate of
 * lmd_discover_nodes holds it meanwhile): awaited until the bound if it is
 * not whole, and asked for by name once the first answers are in
 * (mdns_ask.c).  Nothing when settled or when no query of ours went out
 * on that interface and protocol. */
void lmd_mdnsq_want(lmd_mdnsq *q, int ifindex, int proto, const char *name);
/* Whether an instance (ifindex, proto 4/6, name) was found whole. */
bool lmd_mdnsq_found(const lmd_mdnsq *q, int ifindex, int proto, const char *name);
/* Whether it was found whole over either protocol on that interface: the
 * peer is complete (the other family's address is merged if it comes). */
bool lmd_mdnsq_whole(const lmd_mdnsq *q, int ifindex, const char *name);
bool lmd_mdnsq_settled(const lmd_mdnsq *q);
typedef struct lmd_mdnsq_stats {
    unsigned packets, records, skipped, refused; /* read; believed; skipped; packets refused */
    unsigned found, incomplete, dropped;         /* instances whole; known, not whole; records past the
                                                  * cap and datagrams the kernel dropped */
    unsigned sockets;
    unsigned expected;                           /* instances awaited (known, whole over neither
                                                  * protocol) at the last look; settled: left to avahi */
    unsigned requeries;                          /* the query sent again while some were awaited */
    unsigned wanted, asks;                       /* instances the other source knows (lmd_mdnsq_want);
                                                  * ask packets sent for instances by name */
    double sent, last_new;                       /* lmd_now_mono() of the query, of the last new record */
} lmd_mdnsq_stats;
void lmd_mdnsq_stats_get(const lmd_mdnsq *q, lmd_mdnsq_stats *st);
void lmd_mdnsq_free(lmd_mdnsq *q);
/* Instances one query follows at most (a flood's excess is left to avahi). */
#define LMD_MDNSQ_MAX 8192

#endif
