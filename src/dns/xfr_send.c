/* Zone transfers over TCP on a libevent loop (see dns.h): the request
 * written and every message of the answer read by the TCP client (tcp.c)
 * and handed to the reader (xfr.c) until it says complete or refuses; one
 * deadline for the whole transfer. */
#include "dns/internal.h"

#include "base/loop.h"
#include "base/util.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lmd_dns_xfr_req {
    lmd_dns_call c;         /* the server, the request, the deadline; the TCP exchange */
    char what[1100];        /* "AXFR of sd.lab from 10.0.0.53" */
    lmd_dns_xfr_reader *rd;
    lmd_dns_xfr_cb cb;
    void *arg;
};

static void req_free(lmd_dns_xfr_req *r)
{
    lmd_dns_call_free(&r->c);
    lmd_dns_xfr_reader_free(r->rd);
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
                              .messages = msgs, .bytes = bytes, .too_big = lmd_dns_xfr_reader_too_big(r->rd),
                              .forged = lmd_dns_xfr_reader_forged(r->rd)};
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

/* One answer message, read whole. */
static void message(const uint8_t *wire, size_t len, void *arg)
{
    lmd_dns_xfr_req *r = arg;
    lmd_err err = {0};
    int rcode = 0, tsig_error = 0;
    int rc = lmd_dns_xfr_reader_add(r->rd, wire, len, &rcode, &tsig_error, &err);
    if (rc < 0) {
        finish(r, rc, rcode, tsig_error, NULL, "%s", lmd_err_text(&err));
        return;
    }
    if (rc == 0)
        return; /* the next message at the next wake-up */
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

/* The exchange ended before the reader had the whole answer. */
static void failed(const lmd_dns_tcp_end *e, void *arg)
{
    lmd_dns_xfr_req *r = arg;
    const char *why = strerror(e->sys);
    if (e->rc == LMD_ETIMEDOUT)
        finish(r, LMD_ETIMEDOUT, -1, 0, NULL, "no complete answer within %g s (%zu messages read%s)", r->c.timeout,
               nmsg(r), e->step <= LMD_DNS_TCP_CONNECT ? ", not connected" : "");
    else if (e->rc == LMD_ENOMEM)
        finish(r, LMD_ENOMEM, -1, 0, NULL, "cannot wait for the %s (libevent)",
               e->step <= LMD_DNS_TCP_CONNECT ? "connection" : "answer");
    else if (e->rc == LMD_EINVAL)
        finish(r, LMD_EINVAL, -1, 0, NULL, "the request is too big for TCP (%zu bytes)", r->c.msg->len);
    else if (e->step == LMD_DNS_TCP_SOCKET)
        finish(r, LMD_EIO, -1, 0, NULL, "cannot open a TCP socket: %s", why);
    else if (e->step == LMD_DNS_TCP_CONNECT)
        finish(r, LMD_EIO, -1, 0, NULL, "cannot connect over TCP: %s", why);
    else if (e->step == LMD_DNS_TCP_WRITE)
        finish(r, LMD_EIO, -1, 0, NULL, "sending the request: %s", why);
    else if (e->sys)
        finish(r, LMD_EIO, -1, 0, NULL, "reading after %zu messages: %s", nmsg(r), why);
    else if (nmsg(r) == 0 && e->partial == 0)
        finish(r, LMD_EIO, -1, 0, NULL, "the server closed the connection before answering");
    else
        finish(r, LMD_EIO, -1, 0, NULL, "the server closed the connection mid-transfer, after %zu complete messages%s",
               nmsg(r), e->partial ? " and part of the next" : "");
}

static void on_start(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_dns_xfr_req *r = arg;
    lmd_dns_tcp_end e;
    if (lmd_dns_call_tcp(&r->c, message, failed, r, &e) != 0)
        failed(&e, r);
}

int lmd_dns_xfr_send(struct event_base *base, const char *server, uint16_t port, lmd_dns_msg *msg,
                     const lmd_dns_key *key, double timeout_s, lmd_dns_xfr_cb cb, void *arg, lmd_dns_xfr_req **out,
                     lmd_err *err)
{
    lmd_dns_xfr_req *r = calloc(1, sizeof *r);
    int rc = lmd_dns_call_init(r ? &r->c : NULL, base, server, port, msg, timeout_s, 30.0, on_start, r, err);
    if (!rc) {
        r->cb = cb;
        r->arg = arg;
        rc = lmd_dns_xfr_reader_new(msg, key, &r->rd, err);
    }
    if (!rc)
        snprintf(r->what, sizeof r->what, "%s of %s from %s", msg->xfr_type == LDNS_RR_TYPE_IXFR ? "IXFR" : "AXFR",
                 lmd_dns_xfr_reader_zone(r->rd), server);
    if (rc && r)
        req_free(r);
    if (out)
        *out = rc ? NULL : r;
    return rc;
}
