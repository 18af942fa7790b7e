/* wide_area.notify: NOTIFY messages (RFC 1996) from the server the agent
 * reads from (BIND also-notify, Knot notify), so that a change is read at
 * once instead of at the next poll.  A NOTIFY is a claim anyone on the
 * network can make: only one signed by this host's key (wide_area.key) is
 * answered and acted on, and all it does is make the agent read the domain
 * from its own server (signed, verified) a little sooner.  Everything else
 * is dropped unanswered and counted, and at most RATE datagrams a second
 * are looked at (a flood costs a verified HMAC each, no reads). */
#include "wide/browse.h"

#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define RATE 20.0      /* datagrams looked at per second (and the burst) */
#define PER_WAKE 16    /* datagrams read per wake-up */

enum { N_OK, N_UNSIGNED, N_BADSIG, N_INVALID, N_LIMITED, N_RESULTS };

struct lmd_wnotify {
    lmd_wide_browse *b;
    evutil_socket_t fd;
    struct event *ev;
    double tokens, last;      /* the rate limit's bucket, refilled at RATE/s */
    double counts[N_RESULTS];
    bool said[N_RESULTS];
};

static void peer_text(const struct sockaddr_storage *sa, char *buf, size_t len)
{
    const void *a = sa->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                              : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (!inet_ntop(sa->ss_family, a, buf, (socklen_t)len))
        snprintf(buf, len, "?");
    if (!strncmp(buf, "::ffff:", 7))
        memmove(buf, buf + 7, strlen(buf + 7) + 1);
}

/* After a NOTIFY: the reader may still be behind the serial it announced
 * (a secondary transferring it): asked again every CHASE_STEP, at most
 * CHASE_TRIES times, then the poll as always. */
#define CHASE_STEP 0.02
#define CHASE_TRIES 100

double lmd_wb_next_poll(lmd_wide_browse *b)
{
    if (b->chase && !(b->have_serial && (int32_t)(b->serial - b->want_serial) >= 0)) {
        b->chase--;
        return CHASE_STEP;
    }
    b->chase = 0;
    return b->wd->cfg->wide_area.poll;
}

void lmd_wb_notified(lmd_wide_browse *b, uint32_t serial, bool have)
{
    b->want_serial = serial;
    b->chase = have ? CHASE_TRIES : 0;
    /* a read in progress: this poll finds it busy, and its end polls again */
    if (lmd_timer_in(b->timer, 0) != 0)
        lmd_error("wide-area browse: cannot arm the poll timer (out of memory)");
}

/* a drop, said once per kind and counted always */
static void drop(struct lmd_wnotify *n, int kind, const char *from, const char *why)
{
    n->counts[kind]++;
    if (n->said[kind])
        return;
    n->said[kind] = true;
    lmd_warn("wide-area notify: dropped a message from %s on UDP port %u: %s; only NOTIFYs signed by key %s are "
             "answered and acted on (counted in lmdisc_dns_notify_total, said once)",
             from, (unsigned)n->b->wd->cfg->wide_area.notify, why, lmd_dns_key_name(lmd_wide_key(n->b->wd)));
}

static bool take_token(struct lmd_wnotify *n)
{
    double now = lmd_now_mono();
    n->tokens += (now - n->last) * RATE;
    if (n->tokens > RATE)
        n->tokens = RATE;
    n->last = now;
    if (n->tokens < 1)
        return false;
    n->tokens -= 1;
    return true;
}

static void one(struct lmd_wnotify *n, const uint8_t *buf, size_t len, const struct sockaddr_storage *sa,
                socklen_t salen)
{
    char from[INET6_ADDRSTRLEN];
    peer_text(sa, from, sizeof from);
    if (!take_token(n)) {
        drop(n, N_LIMITED, from, "more than 20 a second");
        return;
    }
    const lmd_dns_key *key = lmd_wide_key(n->b->wd);
    if (!key) {
        drop(n, N_INVALID, from, "no key to check it with yet");
        return;
    }
    lmd_dns_notify_info info;
    uint8_t *ans = NULL;
    size_t ans_len = 0;
    switch (lmd_dns_notify_read(buf, len, key, &info, &ans, &ans_len)) {
    case LMD_DNS_NOTIFY_UNSIGNED:
        drop(n, N_UNSIGNED, from, "an unsigned NOTIFY");
        return;
    case LMD_DNS_NOTIFY_BADSIG:
        drop(n, N_BADSIG, from, "a NOTIFY whose signature does not verify (another key or secret, changed, or "
                                "signed more than its fudge away from now)");
        return;
    case LMD_DNS_NOTIFY_INVALID:
        drop(n, N_INVALID, from, "not a NOTIFY, or malformed");
        return;
    case LMD_DNS_NOTIFY_OK: break;
    }
    n->counts[N_OK]++;
    if (sendto(n->fd, ans, ans_len, 0, (const struct sockaddr *)sa, salen) < 0)
        lmd_debug("wide-area notify: cannot answer %s: %s", from, strerror(errno));
    free(ans);
    const char *d = n->b->wd->cfg->wide_area.domain;
    size_t dl = strlen(d);
    bool ours = strlen(info.zone) == dl - (dl && d[dl - 1] == '.') && !strncasecmp(info.zone, d, strlen(info.zone));
    char at[32] = "";
    if (info.have_serial)
        snprintf(at, sizeof at, " at serial %u", (unsigned)info.serial);
    lmd_debug("wide-area notify: NOTIFY from %s for %s%s%s", from, info.zone, at,
              ours ? ": reading it now" : " (not the browsed domain)");
    if (ours)
        lmd_wb_notified(n->b, info.serial, info.have_serial);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct lmd_wnotify *n = arg;
    uint8_t buf[4096];
    for (int i = 0; i < PER_WAKE; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        ssize_t r = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&sa, &salen);
        if (r < 0)
            return; /* EAGAIN: all read; errors of earlier sends come here too */
        one(n, buf, (size_t)r, &sa, salen);
    }
}

/* a UDP socket bound to the family's any-address: the fd, or -1 (errno) */
static int bind_any(int family, uint16_t port)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    int off = 0;
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off); /* IPv4 too, as ::ffff:a.b.c.d */
    if (family == AF_INET6 ? bind(fd, (struct sockaddr *)&a6, sizeof a6) : bind(fd, (struct sockaddr *)&a4, sizeof a4)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* [::]:port taking IPv4 too, or 0.0.0.0:port on a host without IPv6 */
static int listen_on(uint16_t port, lmd_err *err)
{
    int fd = bind_any(AF_INET6, port);
    if (fd < 0 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL))
        fd = bind_any(AF_INET, port);
    if (fd >= 0)
        return fd;
    int e = errno;
    lmd_err_set(err, LMD_EIO, "wide_area.notify: cannot listen for NOTIFY on UDP port %u: %s (%s)", (unsigned)port,
                strerror(e),
                e == EADDRINUSE ? "another program has it: pick a free port, and give the same one to the servers' "
                                  "also-notify / notify"
                : e == EACCES   ? "ports below 1024 need privileges the agent does not have: pick one above 1023"
                                : "see the system's log");
    return -1;
}

int lmd_wn_start(lmd_wide_browse *b, lmd_err *err)
{
    uint16_t port = b->wd->cfg->wide_area.notify;
    if (!port)
        return 0;
    struct lmd_wnotify *n = calloc(1, sizeof *n);
    if (!n)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    n->b = b;
    n->tokens = RATE;
    n->last = lmd_now_mono();
    if ((n->fd = listen_on(port, err)) < 0) {
        free(n);
        return LMD_EIO;
    }
    if (!(n->ev = event_new(b->wd->base, n->fd, EV_READ | EV_PERSIST, on_read, n)) || event_add(n->ev, NULL) != 0) {
        if (n->ev)
            event_free(n->ev);
        close(n->fd);
        free(n);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    b->notify = n;
    lmd_info("wide-area notify: taking NOTIFY for %s on UDP port %u (signed by key %s only)",
             b->wd->cfg->wide_area.domain, (unsigned)port, lmd_dns_key_name(lmd_wide_key(b->wd)));
    return 0;
}

void lmd_wn_free(lmd_wide_browse *b)
{
    struct lmd_wnotify *n = b->notify;
    if (!n)
        return;
    event_free(n->ev);
    close(n->fd);
    free(n);
    b->notify = NULL;
}

void lmd_wn_metrics(const lmd_wide_browse *b, struct lmd_metrics *out)
{
    const struct lmd_wnotify *n = b->notify;
    if (!n)
        return;
    out->dns_notify_on = true;
    for (int i = 0; i < N_RESULTS; i++)
        out->dns_notify[i] = n->counts[i];
}
