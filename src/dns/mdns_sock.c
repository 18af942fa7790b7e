/* Sockets for our own one-shot mDNS query (see dns.h and mdns_sock.h).
 * Beside avahi-daemon's: SO_REUSEADDR (and SO_REUSEPORT, as avahi sets
 * both) on port 5353, bound to the group address, so only datagrams sent
 * to the group reach us and unicast ones stay avahi's. */
#include "dns/mdns_sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MDNS_PORT 5353
#define MAX_IFS 64
#define MAX_LOCAL 256
#define RCVBUF (4 << 20)
#define READS_PER_WAKE 256
/* and at most this long a wake-up, whatever a datagram costs to read: the
 * caller's bound (lmd_discover_nodes' --timeout, a libevent loopexit) is
 * looked at only between callbacks */
#define BUSY_PER_WAKE 0.02

struct sock {
    int fd, family, ifindex; /* ifindex: IPv6's (one socket per interface) */
    struct event *ev;
    lmd_msock *s;
};

struct lmd_msock {
    lmd_msock_cb cb;
    void *arg;
    struct sock socks[MAX_IFS + 1];
    unsigned n;
    int if4[MAX_IFS];
    unsigned n4;
    struct sockaddr_storage local[MAX_LOCAL]; /* this host's addresses (LMD_NODE_LOCAL) */
    unsigned n_local;
    unsigned dropped, hops_refused;
    uint8_t buf[9000]; /* RFC 6762 section 17: at most 9,000 bytes */
};

static bool is_local(const lmd_msock *s, const struct sockaddr_storage *a)
{
    for (unsigned i = 0; i < s->n_local; i++) {
        const struct sockaddr_storage *l = &s->local[i];
        if (l->ss_family != a->ss_family)
            continue;
        if (a->ss_family == AF_INET &&
            ((const struct sockaddr_in *)l)->sin_addr.s_addr == ((const struct sockaddr_in *)a)->sin_addr.s_addr)
            return true;
        if (a->ss_family == AF_INET6 && !memcmp(&((const struct sockaddr_in6 *)l)->sin6_addr,
                                                &((const struct sockaddr_in6 *)a)->sin6_addr, 16))
            return true;
    }
    return false;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct sock *k = arg;
    lmd_msock *s = k->s;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < READS_PER_WAKE; i++) {
        if (i && (i & 7) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if ((double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9 > BUSY_PER_WAKE)
                return; /* the rest wakes us again, after the loop's timers */
        }
        struct sockaddr_storage src;
        char ctl[256];
        struct iovec iov = {s->buf, sizeof s->buf};
        struct msghdr mh = {.msg_name = &src, .msg_namelen = sizeof src, .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = ctl, .msg_controllen = sizeof ctl};
        ssize_t n = recvmsg(fd, &mh, 0);
        if (n < 0)
            return; /* EAGAIN, or an error: the next datagram wakes us */
        if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
            continue;
        int ifindex = k->ifindex, hops = -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                struct in_pktinfo pi;
                memcpy(&pi, CMSG_DATA(c), sizeof pi);
                ifindex = pi.ipi_ifindex;
            } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
                struct in6_pktinfo pi;
                memcpy(&pi, CMSG_DATA(c), sizeof pi);
                ifindex = (int)pi.ipi6_ifindex;
            } else if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
                       (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) {
                int h;
                memcpy(&h, CMSG_DATA(c), sizeof h);
                hops = h;
            } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
                uint32_t d;
                memcpy(&d, CMSG_DATA(c), sizeof d);
                s->dropped = d;
            }
        }
        uint16_t port = src.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&src)->sin_port)
                                                 : ntohs(((struct sockaddr_in6 *)&src)->sin6_port);
        /* RFC 6762 section 11: responses come from port 5353 */
        if (port != MDNS_PORT || ifindex <= 0 || src.ss_family != k->family)
            continue;
        /* RFC 6762 section 11: mDNS is sent with a hop limit of 255, so a
         * datagram that arrives with less was routed here from off the
         * link; one without the ancillary datum (never on Linux) is taken */
        if (hops >= 0 && hops != 255) {
            s->hops_refused++;
            continue;
        }
        char text[INET6_ADDRSTRLEN];
        if (!inet_ntop(src.ss_family,
                       src.ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)&src)->sin_addr
                                                : (const void *)&((struct sockaddr_in6 *)&src)->sin6_addr,
                       text, sizeof text))
            continue;
        /* from this host: over IPv4 only.  Linux drops an IPv4 datagram
         * from the wire whose source is one of its own addresses (a martian,
         * accept_local 0), not an IPv6 one: any host on the link could make
         * its services "local" (published on this host) with our IPv6
         * address as the source (tests/lab/attack3_local.lua).  A service
         * of this host is local by its IPv4 instance (peers merge flags). */
        s->cb(s->buf, (size_t)n, ifindex, k->family == AF_INET6 ? 6 : 4, k->family == AF_INET && is_local(s, &src),
              text, s->arg);
    }
}

static int sock_new(lmd_msock *s, int family, int ifindex)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1, ttl = 255, buf = RCVBUF;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    bool ok;
    if (family == AF_INET) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(MDNS_PORT)};
        inet_pton(AF_INET, "224.0.0.251", &a.sin_addr);
        ok = !bind(fd, (struct sockaddr *)&a, sizeof a) &&
             !setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) &&
             !setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof one) &&
             !setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) &&
             !setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) &&
             !setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof one);
        unsigned joined = 0;
        for (unsigned i = 0; ok && i < s->n4; i++) {
            struct ip_mreqn mr = {.imr_ifindex = s->if4[i]};
            mr.imr_multiaddr = a.sin_addr;
            if (!setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr) || errno == EADDRINUSE)
                joined++;
        }
        ok = ok && joined;
    } else {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(MDNS_PORT),
                                 .sin6_scope_id = (uint32_t)ifindex};
        inet_pton(AF_INET6, "ff02::fb", &a.sin6_addr);
        struct ipv6_mreq mr = {.ipv6mr_interface = (unsigned)ifindex};
        mr.ipv6mr_multiaddr = a.sin6_addr;
        ok = !setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) &&
             !bind(fd, (struct sockaddr *)&a, sizeof a) &&
             !setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) &&
             !setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one) &&
             !setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &ttl, sizeof ttl) &&
             !setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl) &&
             !setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &one, sizeof one) &&
             !setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) &&
             (!setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof mr) || errno == EADDRINUSE);
    }
    if (!ok) {
        close(fd);
        return -1;
    }
    struct sock *k = &s->socks[s->n];
    *k = (struct sock){.fd = fd, .family = family, .ifindex = ifindex, .s = s};
    s->n++;
    return 0;
}

static void add_if(int *list, unsigned *n, int idx)
{
    for (unsigned i = 0; i < *n; i++)
        if (list[i] == idx)
            return;
    if (*n < MAX_IFS)
        list[(*n)++] = idx;
}

int lmd_msock_open(struct event_base *base, lmd_msock_cb cb, void *arg, lmd_msock **out, lmd_err *err)
{
    *out = NULL;
    lmd_msock *s = calloc(1, sizeof *s);
    if (!s)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    s->cb = cb;
    s->arg = arg;
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0) {
        free(s);
        return lmd_err_set(err, LMD_EIO, "cannot list the network interfaces: %s", strerror(errno));
    }
    int if6[MAX_IFS];
    unsigned n6 = 0;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
            continue;
        if (s->n_local < MAX_LOCAL)
            memcpy(&s->local[s->n_local++], i->ifa_addr,
                   i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
        unsigned want = IFF_UP | IFF_MULTICAST;
        if ((i->ifa_flags & want) != want || (i->ifa_flags & IFF_LOOPBACK))
            continue;
        int idx = (int)if_nametoindex(i->ifa_name);
        if (idx > 0)
            add_if(i->ifa_addr->sa_family == AF_INET ? s->if4 : if6, i->ifa_addr->sa_family == AF_INET ? &s->n4 : &n6,
                   idx);
    }
    freeifaddrs(ifs);
    if (s->n4)
        (void)sock_new(s, AF_INET, 0);
    for (unsigned i = 0; i < n6; i++)
        (void)sock_new(s, AF_INET6, if6[i]);
    for (unsigned i = 0; i < s->n; i++) {
        struct sock *k = &s->socks[i];
        if (!(k->ev = event_new(base, k->fd, EV_READ | EV_PERSIST, on_read, k)) || event_add(k->ev, NULL) != 0) {
            lmd_msock_close(s);
            return lmd_err_set(err, LMD_ENOMEM, "out of memory");
        }
    }
    if (!s->n) {
        int e = errno;
        unsigned n4 = s->n4; /* (s is freed below) */
        lmd_msock_close(s);
        return lmd_err_set(err, LMD_EIO, "no mDNS socket could be opened (%u IPv4, %u IPv6 multicast interfaces): %s",
                           n4, n6, (n4 || n6) ? strerror(e) : "none");
    }
    *out = s;
    return 0;
}

unsigned lmd_msock_send(lmd_msock *s, const uint8_t *wire, size_t len)
{
    unsigned sent = 0;
    for (unsigned i = 0; i < s->n; i++) {
        struct sock *k = &s->socks[i];
        if (k->family == AF_INET6) {
            struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(MDNS_PORT),
                                     .sin6_scope_id = (uint32_t)k->ifindex};
            inet_pton(AF_INET6, "ff02::fb", &a.sin6_addr);
            sent += sendto(k->fd, wire, len, 0, (struct sockaddr *)&a, sizeof a) == (ssize_t)len;
            continue;
        }
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(MDNS_PORT)};
        inet_pton(AF_INET, "224.0.0.251", &a.sin_addr);
        for (unsigned j = 0; j < s->n4; j++) {
            struct ip_mreqn mr = {.imr_ifindex = s->if4[j]};
            if (!setsockopt(k->fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof mr))
                sent += sendto(k->fd, wire, len, 0, (struct sockaddr *)&a, sizeof a) == (ssize_t)len;
        }
    }
    return sent;
}

unsigned lmd_msock_count(const lmd_msock *s) { return s->n; }

bool lmd_msock_has(const lmd_msock *s, int ifindex, int proto)
{
    for (unsigned i = 0; i < s->n; i++) {
        const struct sock *k = &s->socks[i];
        if (proto == 6 && k->family == AF_INET6 && k->ifindex == ifindex)
            return true;
        for (unsigned j = 0; proto == 4 && k->family == AF_INET && j < s->n4; j++)
            if (s->if4[j] == ifindex)
                return true;
    }
    return false;
}
unsigned lmd_msock_dropped(const lmd_msock *s) { return s->dropped; }
unsigned lmd_msock_hops_refused(const lmd_msock *s) { return s->hops_refused; }

void lmd_msock_close(lmd_msock *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->n; i++) {
        if (s->socks[i].ev)
            event_free(s->socks[i].ev);
        close(s->socks[i].fd);
    }
    free(s);
}
