/* A passive mDNS listener of our own (src/dns/mdns_wire.c): the agent reads
 * the answers itself while its avahi path is behind.  No ldns type here. */
#ifndef LMD_DNS_MDNSW_H
#define LMD_DNS_MDNSW_H

#include "base/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct lmd_instance;

/* Issue 22, the flood join.  A flood of services swamps avahi-daemon (every
 * open lookup on the LAN costs every daemon CPU, and avahi's simple poll
 * answers no D-Bus call until it has caught up): a real peer's resolver
 * waited 20-28 s for its creation.  Its records were on the wire all along.
 * While the agent's avahi path is behind (src/mdns/behind.c) the agent
 * opens this listener: the sockets of the one-shot scan (mdns_sock.c: the
 * mDNS groups beside avahi-daemon's, hop limit 255, from port 5353), no
 * query, and it assembles the instances of one service type from what
 * arrives (announcements, other hosts' answers), each per interface and
 * protocol: PTR, SRV, TXT (at most LMD_TXT_RECORD_MAX bytes) and an address,
 * the SRV target's A / AAAA if the wire carried one, else the source of the
 * datagram that carried the SRV (an announcement carries no address record:
 * avahi announces its host's addresses once, when it starts).  Whole, an
 * instance is reported once (found); it stays "held" until the caller says
 * another source has it (lmd_mwire_confirm) or it goes: a goodbye (its PTR
 * with TTL 0) or its records' TTL (capped at LMD_MWIRE_TTL_MAX) run out
 * (gone).  The table holds at most LMD_MWIRE_MAX instances and as many
 * host names: past that, new ones are not read (counted in dropped) and
 * are left to avahi. */
#define LMD_MWIRE_MAX 4096
#define LMD_MWIRE_TTL_MAX 120

typedef struct lmd_mwire lmd_mwire;
struct lmd_mwire_callbacks {
    /* an instance whole from the wire (flags: LMD_NODE_LOCAL at most, never
     * LMD_NODE_OWN) */
    void (*found)(void *ud, const struct lmd_instance *in);
    /* a held one is gone: its goodbye (goodbye true), or its TTL ran out */
    void (*gone)(void *ud, const struct lmd_instance *in, bool goodbye);
};
/* Open the sockets (type: "_lmserv._tcp", in "local").  LMD_EUNAVAIL
 * without libldns, LMD_EIO when no socket opens (err says why).  base NULL:
 * offline (no socket nor timer: lmd_mwire_feed and lmd_mwire_tick). */
int lmd_mwire_new(struct event_base *base, const char *type, const struct lmd_mwire_callbacks *cb, void *ud,
                  lmd_mwire **out, lmd_err *err);
/* One datagram, as the sockets pass them (tests); src: the source address. */
void lmd_mwire_feed(lmd_mwire *w, const uint8_t *wire, size_t len, int ifindex, int proto, bool local,
                    const char *src, double now);
/* Expire what is due at now (the timer does it online). */
void lmd_mwire_tick(lmd_mwire *w, double now);
/* Another source (avahi) holds that instance now: it is not held here
 * any more (no gone for it); if its records come again it is found again. */
void lmd_mwire_confirm(lmd_mwire *w, int ifindex, int proto, const char *name);
/* Each instance held now (reported, not confirmed nor gone), as found saw
 * it (fn must not call back into w): the caller refreshes what it listed
 * from the wire, so that a peer
 * avahi has not confirmed yet lives while its records do. */
void lmd_mwire_each_held(lmd_mwire *w, void (*fn)(void *ud, const struct lmd_instance *in), void *ud);
/* Forget an instance without a callback (avahi reported it removed). */
void lmd_mwire_forget(lmd_mwire *w, int ifindex, int proto, const char *name);
typedef struct lmd_mwire_stats {
    unsigned packets, records, skipped, refused; /* read; believed; skipped; not a response */
    unsigned found, held, entries;               /* reported in all; held now; instances and hosts kept */
    unsigned dropped;                            /* records of a new instance or host past the cap, and
                                                  * datagrams the kernel dropped */
    unsigned hops_refused;                       /* datagrams with a hop limit other than 255 */
    unsigned sockets;
} lmd_mwire_stats;
void lmd_mwire_stats_get(const lmd_mwire *w, lmd_mwire_stats *st);
void lmd_mwire_free(lmd_mwire *w);

#endif
