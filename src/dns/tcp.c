/* One DNS exchange over TCP on a libevent loop (see internal.h): connect,
 * write the request, read the answer's messages, each after its two-byte
 * length (RFC 1035 4.2.2), until the owner has what it wanted, the server
 * stops, or the deadline.  send.c (an update or query too big for UDP, or
 * answered truncated) and xfr_send.c (a zone transfer, many messages) both
 * use it and say in their own words what went wrong. */
#include "dns/internal.h"

#include "base/loop.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* the most recv calls one wake-up makes: other events get their turn */
#define LMD_DNS_TCP_READS 16

struct lmd_dns_tcp {
    struct event *ev;       /* the socket's: writable (connecting, writing), then readable */
    struct event *deadline; /* the whole exchange's end */
    int fd;
    enum lmd_dns_tcp_step step;
    uint8_t *out;           /* the request after its length */
    size_t out_len, out_done;
    size_t in_len, in_done; /* the message being read: its length (prefix included), bytes read */
    size_t messages;        /* complete messages handed over */
    lmd_dns_tcp_msg_cb on_msg;
    lmd_dns_tcp_fail_cb on_fail;
    void *arg;
    uint8_t in[LMD_DNS_TCP_FRAME_MAX]; /* length prefix + one message */
};

_Static_assert(LMD_DNS_TCP_FRAME_MAX == 2 + 65535, "a TCP frame is a 16-bit length and at most that many bytes");

void lmd_dns_tcp_free(lmd_dns_tcp *t)
{
    if (!t)
        return;
    lmd_event_free(t->ev);
    lmd_event_free(t->deadline);
    if (t->fd >= 0)
        close(t->fd);
    free(t->out);
    free(t);
}

int lmd_dns_tcp_frame(const uint8_t *msg, size_t len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len > LMD_DNS_TCP_FRAME_MAX - 2)
        return LMD_EINVAL;
    uint8_t *f = malloc(len + 2);
    if (!f)
        return LMD_ENOMEM;
    f[0] = (uint8_t)(len >> 8);
    f[1] = (uint8_t)(len & 0xff);
    if (len)
        memcpy(f + 2, msg, len);
    *out = f;
    *out_len = len + 2;
    return 0;
}

/* The exchange ends: the owner hears why, and t is touched no more (the
 * owner frees it, from the callback or later). */
static void fail(lmd_dns_tcp *t, int rc, int sys)
{
    event_del(t->ev);
    event_del(t->deadline);
    lmd_dns_tcp_end end = {.rc = rc, .step = t->step, .sys = sys, .messages = t->messages, .partial = t->in_done};
    t->on_fail(&end, t->arg);
}

static void on_io(evutil_socket_t fd, short what, void *arg);

static int watch(lmd_dns_tcp *t, short what)
{
    lmd_event_free(t->ev);
    t->ev = event_new(event_get_base(t->deadline), t->fd, what | EV_PERSIST, on_io, t);
    return t->ev && event_add(t->ev, NULL) == 0 ? 0 : LMD_ENOMEM;
}

/* Read what is there of the message being read; a complete one goes to the
 * owner, the next one waits for the next wake-up. */
static void read_some(lmd_dns_tcp *t)
{
    for (int i = 0; i < LMD_DNS_TCP_READS; i++) {
        ssize_t n = recv(t->fd, t->in + t->in_done, t->in_len - t->in_done, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            fail(t, LMD_EIO, n < 0 ? errno : 0);
            return;
        }
        t->in_done += (size_t)n;
        if (t->in_len == 2 && t->in_done == 2) {
            t->in_len = 2 + ((size_t)t->in[0] << 8 | t->in[1]);
            if (t->in_len > 2)
                continue;
        }
        if (t->in_done == t->in_len) {
            size_t len = t->in_len - 2;
            t->messages++;
            t->in_len = 2;
            t->in_done = 0;
            t->on_msg(t->in + 2, len, t->arg); /* t may be gone */
            return;
        }
    }
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_dns_tcp *t = arg;
    if (t->step == LMD_DNS_TCP_CONNECT) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
            fail(t, LMD_EIO, soerr ? soerr : errno);
            return;
        }
        t->step = LMD_DNS_TCP_WRITE;
    }
    if (t->step == LMD_DNS_TCP_WRITE) {
        ssize_t w = send(t->fd, t->out + t->out_done, t->out_len - t->out_done, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            fail(t, LMD_EIO, errno);
            return;
        }
        t->out_done += w > 0 ? (size_t)w : 0;
        if (t->out_done < t->out_len)
            return;
        t->step = LMD_DNS_TCP_READ;
        t->in_len = 2;
        t->in_done = 0;
        if (watch(t, EV_READ) != 0)
            fail(t, LMD_ENOMEM, 0);
        return;
    }
    read_some(t);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fail(arg, LMD_ETIMEDOUT, 0);
}

int lmd_dns_tcp_attach(struct event_base *base, int fd, const uint8_t *msg, size_t len, double deadline,
                       lmd_dns_tcp_msg_cb on_msg, lmd_dns_tcp_fail_cb on_fail, void *arg, lmd_dns_tcp **out,
                       lmd_dns_tcp_end *end)
{
    *out = NULL;
    *end = (lmd_dns_tcp_end){.rc = LMD_ENOMEM, .step = LMD_DNS_TCP_CONNECT};
    lmd_dns_tcp *t = calloc(1, sizeof *t);
    if (!t) {
        close(fd);
        return LMD_ENOMEM;
    }
    t->fd = fd;
    t->step = LMD_DNS_TCP_CONNECT;
    t->on_msg = on_msg;
    t->on_fail = on_fail;
    t->arg = arg;
    int rc = lmd_dns_tcp_frame(msg, len, &t->out, &t->out_len);
    if (rc) {
        end->rc = rc;
        lmd_dns_tcp_free(t);
        return rc;
    }
    t->deadline = evtimer_new(base, on_deadline, t);
    if (!t->deadline || lmd_timer_at(t->deadline, deadline) != 0 || watch(t, EV_WRITE) != 0) {
        lmd_dns_tcp_free(t);
        return LMD_ENOMEM;
    }
    *out = t;
    return 0;
}

int lmd_dns_tcp_open(struct event_base *base, const struct sockaddr_storage *addr, socklen_t alen, const uint8_t *msg,
                     size_t len, double deadline, lmd_dns_tcp_msg_cb on_msg, lmd_dns_tcp_fail_cb on_fail, void *arg,
                     lmd_dns_tcp **out, lmd_dns_tcp_end *end)
{
    *out = NULL;
    *end = (lmd_dns_tcp_end){.rc = LMD_EIO, .step = LMD_DNS_TCP_SOCKET};
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        end->sys = errno;
        return LMD_EIO;
    }
    if (connect(fd, (const struct sockaddr *)addr, alen) != 0 && errno != EINPROGRESS) {
        end->step = LMD_DNS_TCP_CONNECT;
        end->sys = errno;
        close(fd);
        return LMD_EIO;
    }
    return lmd_dns_tcp_attach(base, fd, msg, len, deadline, on_msg, on_fail, arg, out, end);
}

int lmd_dns_call_init(lmd_dns_call *c, struct event_base *base, const char *server, uint16_t port, lmd_dns_msg *msg,
                      double timeout_s, double dflt, void (*first)(int fd, short what, void *arg), void *arg,
                      lmd_err *err)
{
    if (!c) {
        lmd_dns_msg_free(msg);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    c->base = base;
    c->msg = msg;
    c->timeout = timeout_s > 0 ? timeout_s : dflt;
    c->deadline = lmd_now_mono() + c->timeout;
    snprintf(c->server, sizeof c->server, "%s", server ? server : "");
    int rc = lmd_dns_server_addr(server, port ? port : 53, &c->addr, &c->alen, err);
    if (!rc && !(c->start = lmd_soon(base, first, arg)))
        rc = lmd_err_set(err, LMD_ENOMEM, "cannot schedule the request (libevent)");
    return rc;
}

int lmd_dns_call_tcp(lmd_dns_call *c, lmd_dns_tcp_msg_cb on_msg, lmd_dns_tcp_fail_cb on_fail, void *arg,
                     lmd_dns_tcp_end *end)
{
    return lmd_dns_tcp_open(c->base, &c->addr, c->alen, c->msg->wire, c->msg->len, c->deadline, on_msg, on_fail, arg,
                            &c->tcp, end);
}

void lmd_dns_call_free(lmd_dns_call *c)
{
    lmd_event_free(c->start);
    lmd_dns_tcp_free(c->tcp);
    lmd_dns_msg_free(c->msg);
}

int lmd_dns_server_addr(const char *server, uint16_t port, struct sockaddr_storage *addr, socklen_t *alen,
                        lmd_err *err)
{
    struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
    memset(addr, 0, sizeof *addr);
    if (server && inet_pton(AF_INET, server, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *alen = sizeof *a4;
    } else if (server && inet_pton(AF_INET6, server, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *alen = sizeof *a6;
    } else {
        return lmd_err_set(err, LMD_EINVAL, "DNS server '%s' is not an IPv4 or IPv6 address", server ? server : "");
    }
    return 0;
}
