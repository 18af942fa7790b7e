/* Zone transfers over TCP on a libevent loop (see dns.h): the request
 * written, then every message of the answer read (two-byte length, then
 * the message, RFC 1035 4.2.2) and handed to the reader (xfr.c) until it
 * says complete or refuses; one deadline for the whole transfer. */
#include "dns/internal.h"

#include "base/loop.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { X_CONNECT, X_WRITE, X_READ };

struct lmd_dns_xfr_req {
    struct event_base *base;
    struct event *ev;       /* the socket's */
    struct event *start;    /* the first step runs from the loop */
    struct event *deadline; /* the whole transfer's end */
    int fd;
    int state;
    struct sockaddr_storage addr;
    socklen_t alen;
    char server[INET6_ADDRSTRLEN];
    char what[1100];        /* "AXFR of sd.lab from 10.0.0.53" */
    lmd_dns_msg *msg;
    lmd_dns_xfr_reader *rd;
    double timeout;
    uint8_t *out;           /* length prefix + request */
    size_t out_len, out_done;
    uint8_t *in;            /* length prefix + one answer message */
    size_t in_len, in_done;
    lmd_dns_xfr_cb cb;
    void *arg;
};

static void req_free(lmd_dns_xfr_req *r)
{
    if (r->ev)
        event_free(r->ev);
    if (r->start)
        event_free(r->start);
    if (r->deadline)
        event_free(r->deadline);
    if (r->fd >= 0)
        close(r->fd);
    lmd_dns_msg_free(r->msg);
    lmd_dns_xfr_reader_free(r->rd);
    free(r->out);
    free(r->in);
    free(r);
}

void lmd_dns_xfr_cancel(lmd_dns_xfr_req *r)
{
    if (r)
        req_free(r);
}

static void finish(lmd_dns_xfr_req *r, int rc, int rcode, int tsig_error, lmd_dns_xfr *x, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void finish(lmd_dns_xfr_req *r, int rc, int rcode, int tsig_error, lmd_dns_xfr *x, const char *fmt, ...)
{
    char detail[1100], text[2300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(text, sizeof text, "%s: %s", r->what, detail);
    size_t msgs, bytes;
    lmd_dns_xfr_reader_counts(r->rd, &msgs, &bytes);
    lmd_dns_xfr_result res = {.rc = rc, .rcode = rcode, .tsig_error = tsig_error, .text = text, .xfr = x,
                              .messages = msgs, .bytes = bytes, .too_big = lmd_dns_xfr_reader_too_big(r->rd)};
    lmd_dns_xfr_cb cb = r->cb;
    void *arg = r->arg;
    req_free(r);
    cb(&res, arg);
}

static size_t nmsg(const lmd_dns_xfr_req *r)
{
    size_t m, b;
    lmd_dns_xfr_reader_counts(r->rd, &m, &b);
    return m;
}

static void fail_sys(lmd_dns_xfr_req *r, const char *doing)
{
    finish(r, LMD_EIO, -1, 0, NULL, "%s: %s", doing, strerror(errno));
}

static void on_io(evutil_socket_t fd, short what, void *arg);

static int watch(lmd_dns_xfr_req *r, short what)
{
    if (r->ev)
        event_free(r->ev);
    r->ev = event_new(r->base, r->fd, what | EV_PERSIST, on_io, r);
    return r->ev && event_add(r->ev, NULL) == 0 ? 0 : -1;
}

/* A complete answer message is in r->in. */
static void message(lmd_dns_xfr_req *r)
{
    lmd_err err = {0};
    int rcode = 0, tsig_error = 0;
    int rc = lmd_dns_xfr_reader_add(r->rd, r->in + 2, r->in_len - 2, &rcode, &tsig_error, &err);
    if (rc < 0) {
        finish(r, rc, rcode, tsig_error, NULL, "%s",
               lmd_err_text(&err));
        return;
    }
    r->in_len = 2;
    r->in_done = 0;
    if (rc == 0)
        return;
    lmd_dns_xfr *x = lmd_dns_xfr_reader_take(r->rd);
    char how[160];
    snprintf(how, sizeof how, "in %zu message%s (%zu bytes)", x->messages, x->messages == 1 ? "" : "s", x->bytes);
    if (x->kind == LMD_DNS_XFR_UPTODATE) {
        finish(r, 0, 0, 0, x, "up to date (serial %u)", x->serial);
    } else if (x->kind == LMD_DNS_XFR_FULL) {
        finish(r, 0, 0, 0, x, "the whole zone, serial %u, %zu records (%zu kept) %s", x->serial, x->records,
               x->n_rrs, how);
    } else {
        size_t del = 0, add = 0;
        for (size_t i = 0; i < x->n_diffs; i++) {
            del += x->diffs[i].n_deleted;
            add += x->diffs[i].n_added;
        }
        finish(r, 0, 0, 0, x, "%zu change%s from serial %u to %u, %zu records deleted, %zu added %s", x->n_diffs,
               x->n_diffs == 1 ? "" : "s", x->diffs[0].from, x->serial, del, add, how);
    }
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_dns_xfr_req *r = arg;
    if (r->state == X_CONNECT) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
            errno = soerr ? soerr : errno;
            fail_sys(r, "cannot connect over TCP");
            return;
        }
        r->state = X_WRITE;
    }
    if (r->state == X_WRITE) {
        ssize_t w = send(r->fd, r->out + r->out_done, r->out_len - r->out_done, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            fail_sys(r, "sending the request");
            return;
        }
        r->out_done += w > 0 ? (size_t)w : 0;
        if (r->out_done < r->out_len)
            return;
        r->state = X_READ;
        r->in_len = 2;
        r->in_done = 0;
        if (watch(r, EV_READ) != 0)
            finish(r, LMD_ENOMEM, -1, 0, NULL, "cannot wait for the answer (libevent)");
        return;
    }
    /* a bounded number of reads per wake-up: other events get their turn */
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(r->fd, r->in + r->in_done, r->in_len - r->in_done, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n < 0) {
            finish(r, LMD_EIO, -1, 0, NULL, "reading after %zu messages: %s", nmsg(r), strerror(errno));
            return;
        }
        if (n == 0) {
            if (nmsg(r) == 0 && r->in_done == 0)
                finish(r, LMD_EIO, -1, 0, NULL, "the server closed the connection before answering");
            else
                finish(r, LMD_EIO, -1, 0, NULL,
                       "the server closed the connection mid-transfer, after %zu complete messages%s",
                       nmsg(r), r->in_done ? " and part of the next" : "");
            return;
        }
        r->in_done += (size_t)n;
        if (r->in_len == 2 && r->in_done == 2) {
            r->in_len = 2 + ((size_t)r->in[0] << 8 | r->in[1]); /* RFC 1035 4.2.2 */
            if (r->in_len > 2)
                continue;
        }
        if (r->in_done == r->in_len) {
            message(r);
            return; /* r may be gone; the next message at the next wake-up */
        }
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_dns_xfr_req *r = arg;
    finish(r, LMD_ETIMEDOUT, -1, 0, NULL, "no complete answer within %g s (%zu messages read%s)", r->timeout,
           nmsg(r), r->state == X_CONNECT ? ", not connected" : "");
}

static void on_start(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_dns_xfr_req *r = arg;
    r->fd = socket(r->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0) {
        fail_sys(r, "cannot open a TCP socket");
        return;
    }
    if (connect(r->fd, (struct sockaddr *)&r->addr, r->alen) != 0 && errno != EINPROGRESS) {
        fail_sys(r, "cannot connect over TCP");
        return;
    }
    r->state = X_CONNECT;
    if (watch(r, EV_WRITE) != 0)
        finish(r, LMD_ENOMEM, -1, 0, NULL, "cannot wait for the connection (libevent)");
}

int lmd_dns_xfr_send(struct event_base *base, const char *server, uint16_t port, lmd_dns_msg *msg,
                     const lmd_dns_key *key, double timeout_s, lmd_dns_xfr_cb cb, void *arg, lmd_dns_xfr_req **out,
                     lmd_err *err)
{
    if (out)
        *out = NULL;
    lmd_dns_xfr_req *r = calloc(1, sizeof *r);
    if (!r) {
        lmd_dns_msg_free(msg);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    r->fd = -1;
    r->msg = msg;
    r->base = base;
    r->cb = cb;
    r->arg = arg;
    r->timeout = timeout_s > 0 ? timeout_s : 30.0;
    port = port ? port : 53;
    int rc = lmd_dns_xfr_reader_new(msg, key, &r->rd, err);
    if (!rc)
        rc = lmd_dns_server_addr(server, port, &r->addr, &r->alen, err);
    if (!rc) {
        snprintf(r->server, sizeof r->server, "%s", server);
        snprintf(r->what, sizeof r->what, "%s of %s from %s", msg->xfr_type == LDNS_RR_TYPE_IXFR ? "IXFR" : "AXFR",
                 lmd_dns_xfr_reader_zone(r->rd), server);
        r->out_len = msg->len + 2;
        r->out = malloc(r->out_len);
        r->in = malloc(2 + 65535);
        if (!r->out || !r->in)
            rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    if (!rc) {
        r->out[0] = (uint8_t)(msg->len >> 8);
        r->out[1] = (uint8_t)(msg->len & 0xff);
        memcpy(r->out + 2, msg->wire, msg->len);
        r->start = evtimer_new(base, on_start, r);
        r->deadline = evtimer_new(base, on_deadline, r);
        struct timeval now = {0, 0}, tv = lmd_tv(r->timeout);
        if (!r->start || !r->deadline || evtimer_add(r->start, &now) != 0 || evtimer_add(r->deadline, &tv) != 0)
            rc = lmd_err_set(err, LMD_ENOMEM, "cannot schedule the transfer (libevent)");
    }
    if (rc) {
        req_free(r);
        return rc;
    }
    if (out)
        *out = r;
    return 0;
}
