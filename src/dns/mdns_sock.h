/* The sockets of a one-shot mDNS query (mdns_sock.c; private to src/dns). */
#ifndef LMD_DNS_MDNS_SOCK_H
#define LMD_DNS_MDNS_SOCK_H

#include "base/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;

/* One datagram from port 5353 to the mDNS group with a hop limit of 255
 * (RFC 6762 section 11: sent on the link, not routed): the interface it
 * came in on, 4 or 6, whether its source is one of this host's addresses,
 * and that source (text, as inet_ntop writes it). */
typedef void (*lmd_msock_cb)(const uint8_t *wire, size_t len, int ifindex, int proto, bool local, const char *src,
                             void *arg);

typedef struct lmd_msock lmd_msock;

/* Sockets on 224.0.0.251:5353 (one, every interface's membership) and
 * [ff02::fb%IF]:5353 (one per interface) for every interface that is up,
 * multicast and not loopback.  LMD_EIO (err says why) when none opens. */
int lmd_msock_open(struct event_base *base, lmd_msock_cb cb, void *arg, lmd_msock **out, lmd_err *err);
/* Send one query on every interface and family; how many went out. */
unsigned lmd_msock_send(lmd_msock *s, const uint8_t *wire, size_t len);
unsigned lmd_msock_count(const lmd_msock *s);
/* Whether the query went out on that interface over that protocol (4/6). */
bool lmd_msock_has(const lmd_msock *s, int ifindex, int proto);
/* Datagrams the kernel dropped for want of buffer room (SO_RXQ_OVFL). */
unsigned lmd_msock_dropped(const lmd_msock *s);
/* Datagrams refused for their hop limit (not 255: not from the link). */
unsigned lmd_msock_hops_refused(const lmd_msock *s);
void lmd_msock_close(lmd_msock *s);

#endif
