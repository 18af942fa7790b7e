/* Sending a signed message on a libevent loop, never blocking (see dns.h):
 * UDP with retries, TCP (tcp.c) when the message is too big for UDP or the
 * answer comes back truncated.  Over UDP one event at a time per request:
 * the socket's (read, with the attempt's timeout). */
#include "dns/internal.h"

#include "base/loop.h"
#include "base/util.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define UDP_MAX 512          /* no EDNS on updates: bigger messages go over TCP */
#define UDP_FIRST_WAIT 1.0   /* then 2, 4... s, within the request's timeout */

enum state { S_UDP, S_TCP };

struct lmd_dns_req {
    lmd_dns_call c;      /* the server, the message, the deadline; the TCP exchange */
    struct event *ev;    /* UDP: the socket's */
    int fd;              /* UDP */
    enum state state;
    char key_name[256], key_secret[256];
    unsigned udp_tries;
    double attempt_end;  /* UDP: when this attempt's wait ends (then send again) */
    lmd_dns_done_cb cb;
    void *arg;
    bool plain;          /* a query without TSIG */
    bool verified;       /* the answer is signed by the key (or plain was asked for) */
    const uint8_t *ans;  /* the answer being reported (finish) */
    size_t ans_len;
    unsigned dropped;    /* a signed read: answers dropped unsigned or badly signed */
    char dropped_what[64]; /* the last one's rcode ("REFUSED, TSIG error BADKEY"), for the failure's text */
};

static void on_event(evutil_socket_t fd, short what, void *arg);

static void req_free(lmd_dns_req *r)
{
    lmd_event_free(r->ev);
    if (r->fd >= 0)
        close(r->fd);
    lmd_dns_call_free(&r->c);
    memset(r->key_secret, 0, sizeof r->key_secret);
    free(r);
}

void lmd_dns_req_cancel(lmd_dns_req *r)
{
    if (r)
        req_free(r);
}

static void finish(lmd_dns_req *r, int rc, int rcode, int tsig_error, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void finish(lmd_dns_req *r, int rc, int rcode, int tsig_error, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    lmd_dns_result res = {.rc = rc, .rcode = rcode, .tsig_error = tsig_error, .tcp = r->state != S_UDP, .text = text,
                          .answer = r->ans, .answer_len = r->ans_len, .verified = r->verified,
                          .dropped = r->dropped};
    lmd_dns_done_cb cb = r->cb;
    void *arg = r->arg;
    lmd_dns_tcp *keep = r->c.tcp; /* a TCP answer lives in the exchange: freed after the callback */
    r->c.tcp = NULL;
    req_free(r);
    cb(&res, arg);
    lmd_dns_tcp_free(keep);
}

/* Wait for `what` on the socket, at most until the attempt's end. */
static int arm(lmd_dns_req *r, short what, double wait)
{
    double left = r->c.deadline - lmd_now_mono();
    if (wait > left)
        wait = left;
    if (wait < 0)
        wait = 0;
    lmd_event_free(r->ev);
    r->ev = event_new(r->c.base, r->fd, what, on_event, r);
    struct timeval tv = lmd_tv(wait);
    return r->ev && event_add(r->ev, &tv) == 0 ? 0 : LMD_ENOMEM;
}

static int udp_open(lmd_dns_req *r)
{
    r->fd = socket(r->c.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0)
        return LMD_EIO;
    if (connect(r->fd, (struct sockaddr *)&r->c.addr, r->c.alen) != 0 && errno != EINPROGRESS)
        return LMD_EIO;
    return 0;
}

static void udp_send(lmd_dns_req *r)
{
    r->udp_tries++;
    if (r->fd < 0 && udp_open(r) != 0) {
        finish(r, LMD_EIO, -1, 0, "cannot reach %s: %s", r->c.server, strerror(errno));
        return;
    }
    /* a refused port (ICMP) shows as an error here or at the next recv */
    if (send(r->fd, r->c.msg->wire, r->c.msg->len, 0) < 0 && errno != EAGAIN && errno != ECONNREFUSED) {
        finish(r, LMD_EIO, -1, 0, "sending to %s: %s", r->c.server, strerror(errno));
        return;
    }
    double wait = lmd_backoff(r->udp_tries, UDP_FIRST_WAIT, 8.0);
    r->attempt_end = lmd_now_mono() + wait;
    if (arm(r, EV_READ | EV_TIMEOUT, wait) != 0)
        finish(r, LMD_ENOMEM, -1, 0, "cannot wait for the answer (libevent)");
}

static void answer(lmd_dns_req *r, const uint8_t *wire, size_t len);

static void tcp_answer(const uint8_t *wire, size_t len, void *arg)
{
    answer(arg, wire, len);
}

/* The TCP exchange ended without an answer. */
static void tcp_failed(const lmd_dns_tcp_end *e, void *arg)
{
    lmd_dns_req *r = arg;
    const char *why = strerror(e->sys);
    if (e->rc == LMD_ETIMEDOUT)
        finish(r, LMD_ETIMEDOUT, -1, 0, "no answer from %s within %g s (TCP)", r->c.server, r->c.timeout);
    else if (e->rc == LMD_ENOMEM)
        finish(r, LMD_ENOMEM, -1, 0, "cannot wait for the %s (libevent)",
               e->step <= LMD_DNS_TCP_CONNECT ? "connection" : "answer");
    else if (e->rc == LMD_EINVAL)
        finish(r, LMD_EINVAL, -1, 0, "the message is too big for TCP (%zu bytes)", r->c.msg->len);
    else if (e->step <= LMD_DNS_TCP_CONNECT)
        finish(r, LMD_EIO, -1, 0, "cannot connect to %s over TCP: %s", r->c.server, why);
    else if (e->step == LMD_DNS_TCP_WRITE)
        finish(r, LMD_EIO, -1, 0, "sending to %s over TCP: %s", r->c.server, why);
    else
        finish(r, LMD_EIO, -1, 0, "%s closed the TCP connection before answering%s%s", r->c.server, e->sys ? ": " : "",
               e->sys ? why : "");
}

static void tcp_start(lmd_dns_req *r)
{
    r->state = S_TCP;
    lmd_event_free(r->ev); /* UDP's, if it was tried */
    r->ev = NULL;
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    lmd_dns_tcp_end e;
    if (lmd_dns_call_tcp(&r->c, tcp_answer, tcp_failed, r, &e) != 0)
        tcp_failed(&e, r);
}

/* An answer: is it ours, signed by our key, and what does it say? */
static void answer(lmd_dns_req *r, const uint8_t *wire, size_t len)
{
    ldns_pkt *pkt = NULL;
    if (ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK || !pkt || ldns_pkt_id(pkt) != r->c.msg->id ||
        !ldns_pkt_qr(pkt)) {
        ldns_pkt_free(pkt);
        if (r->state == S_UDP) { /* not ours (or garbage): keep waiting */
            if (arm(r, EV_READ | EV_TIMEOUT, r->attempt_end - lmd_now_mono()) != 0)
                finish(r, LMD_ENOMEM, -1, 0, "cannot wait for the answer (libevent)");
        } else {
            finish(r, LMD_EIO, -1, 0, "%s sent an answer that is not one to this update", r->c.server);
        }
        return;
    }
    bool tc = r->state == S_UDP && ldns_pkt_tc(pkt);
    if (tc && r->plain) {
        ldns_pkt_free(pkt);
        tcp_start(r);
        return;
    }
    int rcode = ldns_pkt_get_rcode(pkt);
    const char *via = r->state == S_UDP ? "UDP" : "TCP";
    if (r->plain) {
        r->verified = true;
        ldns_pkt_free(pkt);
        r->ans = wire;
        r->ans_len = len;
        if (rcode == LDNS_RCODE_NOERROR || rcode == LDNS_RCODE_NXDOMAIN)
            finish(r, 0, rcode, 0, "answered by %s (%s)", r->c.server, via);
        else
            finish(r, LMD_EIO, rcode, 0, "%s by %s", lmd_dns_rcode_name(rcode), r->c.server);
        return;
    }
    ldns_rr *tsig = ldns_pkt_tsig(pkt);
    int tsig_error = tsig && ldns_rr_rd_count(tsig) > 5 ? ldns_rdf2native_int16(ldns_rr_rdf(tsig, 5)) : 0;
    bool signed_ok = tsig && tsig_error == 0 &&
                     ldns_pkt_tsig_verify(pkt, wire, len, r->key_name, r->key_secret, r->c.msg->mac);
    ldns_pkt_free(pkt);
    if (tc && (signed_ok || !r->c.msg->signed_read)) {
        tcp_start(r); /* an update's TC is followed as it comes (the update is signed, its answer checked over TCP) */
        return;
    }
    if (!signed_ok && r->c.msg->signed_read) {
        /* a read: whoever answers in the server's place could have sent
         * it; nothing in it is believed, the rcode neither (a real BADKEY
         * or BADSIG comes unsigned too: the timeout then says so), nor a
         * TC bit (a server signs its truncated answers, RFC 8945 5.3) */
        r->dropped++;
        snprintf(r->dropped_what, sizeof r->dropped_what, "%s%s%s%s", lmd_dns_rcode_name(rcode), tc ? ", truncated" : "",
                 tsig_error ? ", TSIG error " : "", tsig_error ? lmd_dns_rcode_name(tsig_error) : "");
        if (r->state == S_UDP) {
            if (arm(r, EV_READ | EV_TIMEOUT, r->attempt_end - lmd_now_mono()) != 0)
                finish(r, LMD_ENOMEM, -1, 0, "cannot wait for the answer (libevent)");
        } else {
            finish(r, LMD_EIO, -1, 0, "%s answered (%s) over TCP without a valid signature by key %s: not trusted",
                   r->c.server, r->dropped_what, r->key_name);
        }
        return;
    }
    r->verified = signed_ok;
    r->ans = wire; /* a transfer's caller reads it */
    r->ans_len = len;
    if (rcode == LDNS_RCODE_NOERROR && signed_ok)
        finish(r, 0, rcode, 0, "applied by %s (%s)", r->c.server, via);
    else if (rcode == LDNS_RCODE_NOERROR)
        finish(r, LMD_EIO, rcode, tsig_error, "%s answered NOERROR without a valid signature by key %s: not trusted",
               r->c.server, r->key_name);
    else if (tsig_error)
        finish(r, LMD_EIO, rcode, tsig_error, "%s by %s (TSIG error %s with key %s)", lmd_dns_rcode_name(rcode),
               r->c.server, lmd_dns_rcode_name(tsig_error), r->key_name);
    else
        finish(r, LMD_EIO, rcode, 0, "%s by %s%s", lmd_dns_rcode_name(rcode), r->c.server,
               signed_ok ? "" : " (answer not signed)");
}

/* The UDP socket's event (TCP is tcp.c's). */
static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    lmd_dns_req *r = arg;
    bool out_of_time = lmd_now_mono() >= r->c.deadline - 0.001;
    if (what & EV_TIMEOUT) {
        if (!out_of_time) {
            udp_send(r); /* again: UDP may have lost it */
            return;
        }
        if (r->dropped)
            finish(r, LMD_ETIMEDOUT, -1, 0, "no answer signed by key %s from %s within %g s (%u dropped, the last "
                   "%s, not signed by it: not trusted)", r->key_name, r->c.server, r->c.timeout, r->dropped,
                   r->dropped_what);
        else
            finish(r, LMD_ETIMEDOUT, -1, 0, "no answer from %s within %g s (UDP)", r->c.server, r->c.timeout);
        return;
    }
    uint8_t buf[65535];
    ssize_t n = recv(r->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (arm(r, EV_READ | EV_TIMEOUT, r->attempt_end - lmd_now_mono()) != 0)
            finish(r, LMD_ENOMEM, -1, 0, "libevent");
        return;
    }
    if (n < 0 && errno == ECONNREFUSED) {
        finish(r, LMD_EIO, -1, 0, "no DNS server at %s (connection refused)", r->c.server);
        return;
    }
    if (n < 0) {
        finish(r, LMD_EIO, -1, 0, "%s: %s", r->c.server, strerror(errno));
        return;
    }
    answer(r, buf, (size_t)n);
}

static void on_start(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_dns_req *r = arg;
    if (r->c.msg->len > UDP_MAX || r->c.msg->tcp_only)
        tcp_start(r);
    else
        udp_send(r);
}

int lmd_dns_send(struct event_base *base, const char *server, uint16_t port, lmd_dns_msg *msg,
                 const lmd_dns_key *key, double timeout_s, lmd_dns_done_cb cb, void *arg, lmd_dns_req **out,
                 lmd_err *err)
{
    lmd_dns_req *r = calloc(1, sizeof *r);
    int rc = lmd_dns_call_init(r ? &r->c : NULL, base, server, port, msg, timeout_s, 5.0, on_start, r, err);
    if (r) {
        r->fd = -1;
        r->cb = cb;
        r->arg = arg;
        r->plain = key == NULL;
    }
    if (!rc && key && (snprintf(r->key_name, sizeof r->key_name, "%s", key->name) >= (int)sizeof r->key_name ||
                snprintf(r->key_secret, sizeof r->key_secret, "%s", key->secret) >= (int)sizeof r->key_secret))
        rc = lmd_err_set(err, LMD_EINVAL, "TSIG key %s: name or secret too long", key->name);
    if (rc && r)
        req_free(r);
    if (out)
        *out = rc ? NULL : r;
    return rc;
}
