/* Sending a signed message on a libevent loop, never blocking (see dns.h):
 * UDP with retries, TCP when the message is too big for UDP or the answer
 * comes back truncated.  One event at a time per request: the socket's
 * (read or write, with the attempt's timeout). */
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

#define UDP_MAX 512          /* no EDNS on updates: bigger messages go over TCP */
#define UDP_FIRST_WAIT 1.0   /* then 2, 4... s, within the request's timeout */

enum state { S_UDP, S_TCP_CONNECT, S_TCP_WRITE, S_TCP_READ };

struct lmd_dns_req {
    struct event_base *base;
    struct event *ev;
    struct event *start; /* the first step runs from the loop, not from lmd_dns_send */
    int fd;
    enum state state;
    struct sockaddr_storage addr;
    socklen_t alen;
    char server[INET6_ADDRSTRLEN];
    lmd_dns_msg *msg;
    char key_name[256], key_secret[256];
    double deadline, timeout;
    unsigned udp_tries;
    uint8_t *out;        /* TCP: length prefix + message */
    size_t out_len, out_done;
    uint8_t *in;         /* TCP: the answer (length prefix first) */
    size_t in_len, in_done;
    lmd_dns_done_cb cb;
    void *arg;
    bool plain;          /* a query without TSIG */
    bool verified;       /* the answer is signed by the key (or plain was asked for) */
    const uint8_t *ans;  /* the answer being reported (finish) */
    size_t ans_len;
};

static void on_event(evutil_socket_t fd, short what, void *arg);

static void req_free(lmd_dns_req *r)
{
    if (r->ev)
        event_free(r->ev);
    if (r->start)
        event_free(r->start);
    if (r->fd >= 0)
        close(r->fd);
    lmd_dns_msg_free(r->msg);
    memset(r->key_secret, 0, sizeof r->key_secret);
    free(r->out);
    free(r->in);
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
                          .answer = r->ans, .answer_len = r->ans_len, .verified = r->verified};
    lmd_dns_done_cb cb = r->cb;
    void *arg = r->arg;
    uint8_t *keep = r->in; /* a TCP answer lives in r->in: freed after the callback */
    r->in = NULL;
    req_free(r);
    cb(&res, arg);
    free(keep);
}

/* Wait for `what` on the socket, at most until the attempt's end. */
static int arm(lmd_dns_req *r, short what, double wait)
{
    double left = r->deadline - lmd_now_mono();
    if (wait > left)
        wait = left;
    if (r->ev)
        event_free(r->ev);
    r->ev = event_new(r->base, r->fd, what, on_event, r);
    struct timeval tv = lmd_tv(wait);
    return r->ev && event_add(r->ev, &tv) == 0 ? 0 : -1;
}

static int open_socket(lmd_dns_req *r, int type)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = socket(r->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0)
        return -1;
    if (connect(r->fd, (struct sockaddr *)&r->addr, r->alen) != 0 && errno != EINPROGRESS)
        return -1;
    return 0;
}

static void udp_send(lmd_dns_req *r)
{
    r->udp_tries++;
    if (r->fd < 0 && open_socket(r, SOCK_DGRAM) != 0) {
        finish(r, LMD_EIO, -1, 0, "cannot reach %s: %s", r->server, strerror(errno));
        return;
    }
    /* a refused port (ICMP) shows as an error here or at the next recv */
    if (send(r->fd, r->msg->wire, r->msg->len, 0) < 0 && errno != EAGAIN && errno != ECONNREFUSED) {
        finish(r, LMD_EIO, -1, 0, "sending to %s: %s", r->server, strerror(errno));
        return;
    }
    if (arm(r, EV_READ | EV_TIMEOUT, lmd_backoff(r->udp_tries, UDP_FIRST_WAIT, 8.0)) != 0)
        finish(r, LMD_ENOMEM, -1, 0, "cannot wait for the answer (libevent)");
}

static void tcp_start(lmd_dns_req *r)
{
    r->state = S_TCP_CONNECT;
    free(r->out);
    r->out_len = r->msg->len + 2;
    r->out = malloc(r->out_len);
    if (!r->out) {
        finish(r, LMD_ENOMEM, -1, 0, "out of memory");
        return;
    }
    r->out[0] = (uint8_t)(r->msg->len >> 8); /* RFC 1035 4.2.2: two-byte length, then the message */
    r->out[1] = (uint8_t)(r->msg->len & 0xff);
    memcpy(r->out + 2, r->msg->wire, r->msg->len);
    r->out_done = 0;
    if (open_socket(r, SOCK_STREAM) != 0) {
        finish(r, LMD_EIO, -1, 0, "cannot connect to %s over TCP: %s", r->server, strerror(errno));
        return;
    }
    if (arm(r, EV_WRITE | EV_TIMEOUT, r->timeout) != 0)
        finish(r, LMD_ENOMEM, -1, 0, "cannot wait for the connection (libevent)");
}

/* An answer: is it ours, signed by our key, and what does it say? */
static void answer(lmd_dns_req *r, const uint8_t *wire, size_t len)
{
    ldns_pkt *pkt = NULL;
    if (ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK || !pkt || ldns_pkt_id(pkt) != r->msg->id ||
        !ldns_pkt_qr(pkt)) {
        ldns_pkt_free(pkt);
        if (r->state == S_UDP) { /* not ours (or garbage): keep waiting */
            if (arm(r, EV_READ | EV_TIMEOUT, r->deadline - lmd_now_mono()) != 0)
                finish(r, LMD_ENOMEM, -1, 0, "cannot wait for the answer (libevent)");
        } else {
            finish(r, LMD_EIO, -1, 0, "%s sent an answer that is not one to this update", r->server);
        }
        return;
    }
    if (r->state == S_UDP && ldns_pkt_tc(pkt)) {
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
            finish(r, 0, rcode, 0, "answered by %s (%s)", r->server, via);
        else
            finish(r, LMD_EIO, rcode, 0, "%s by %s", lmd_dns_rcode_name(rcode), r->server);
        return;
    }
    ldns_rr *tsig = ldns_pkt_tsig(pkt);
    int tsig_error = tsig && ldns_rr_rd_count(tsig) > 5 ? ldns_rdf2native_int16(ldns_rr_rdf(tsig, 5)) : 0;
    bool signed_ok = tsig && tsig_error == 0 &&
                     ldns_pkt_tsig_verify(pkt, wire, len, r->key_name, r->key_secret, r->msg->mac);
    ldns_pkt_free(pkt);
    r->verified = signed_ok;
    r->ans = wire; /* a transfer's caller reads it */
    r->ans_len = len;
    if (rcode == LDNS_RCODE_NOERROR && signed_ok)
        finish(r, 0, rcode, 0, "applied by %s (%s)", r->server, via);
    else if (rcode == LDNS_RCODE_NOERROR)
        finish(r, LMD_EIO, rcode, tsig_error, "%s answered NOERROR without a valid signature by key %s: not trusted",
               r->server, r->key_name);
    else if (tsig_error)
        finish(r, LMD_EIO, rcode, tsig_error, "%s by %s (TSIG error %s with key %s)", lmd_dns_rcode_name(rcode),
               r->server, lmd_dns_rcode_name(tsig_error), r->key_name);
    else
        finish(r, LMD_EIO, rcode, 0, "%s by %s%s", lmd_dns_rcode_name(rcode), r->server,
               signed_ok ? "" : " (answer not signed)");
}

static void tcp_io(lmd_dns_req *r)
{
    if (r->state == S_TCP_CONNECT) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
            finish(r, LMD_EIO, -1, 0, "cannot connect to %s over TCP: %s", r->server, strerror(soerr ? soerr : errno));
            return;
        }
        r->state = S_TCP_WRITE;
    }
    if (r->state == S_TCP_WRITE) {
        ssize_t w = send(r->fd, r->out + r->out_done, r->out_len - r->out_done, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            finish(r, LMD_EIO, -1, 0, "sending to %s over TCP: %s", r->server, strerror(errno));
            return;
        }
        r->out_done += w > 0 ? (size_t)w : 0;
        if (r->out_done < r->out_len) {
            if (arm(r, EV_WRITE | EV_TIMEOUT, r->timeout) != 0)
                finish(r, LMD_ENOMEM, -1, 0, "libevent");
            return;
        }
        r->state = S_TCP_READ;
        r->in_len = 2;
        r->in_done = 0;
        r->in = malloc(2 + 65535);
        if (!r->in) {
            finish(r, LMD_ENOMEM, -1, 0, "out of memory");
            return;
        }
        if (arm(r, EV_READ | EV_TIMEOUT, r->timeout) != 0)
            finish(r, LMD_ENOMEM, -1, 0, "libevent");
        return;
    }
    ssize_t n = recv(r->fd, r->in + r->in_done, r->in_len - r->in_done, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        finish(r, LMD_EIO, -1, 0, "%s closed the TCP connection before answering%s%s", r->server, n ? ": " : "",
               n ? strerror(errno) : "");
        return;
    }
    r->in_done += n > 0 ? (size_t)n : 0;
    if (r->in_done == 2 && r->in_len == 2)
        r->in_len = 2 + ((size_t)r->in[0] << 8 | r->in[1]);
    if (r->in_done < r->in_len || r->in_len == 2) {
        if (arm(r, EV_READ | EV_TIMEOUT, r->timeout) != 0)
            finish(r, LMD_ENOMEM, -1, 0, "libevent");
        return;
    }
    answer(r, r->in + 2, r->in_len - 2);
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    lmd_dns_req *r = arg;
    bool out_of_time = lmd_now_mono() >= r->deadline - 0.001;
    if (what & EV_TIMEOUT) {
        if (r->state == S_UDP && !out_of_time) {
            udp_send(r); /* again: UDP may have lost it */
            return;
        }
        finish(r, LMD_ETIMEDOUT, -1, 0, "no answer from %s within %g s (%s)", r->server, r->timeout,
               r->state == S_UDP ? "UDP" : "TCP");
        return;
    }
    if (r->state != S_UDP) {
        tcp_io(r);
        return;
    }
    uint8_t buf[65535];
    ssize_t n = recv(r->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (arm(r, EV_READ | EV_TIMEOUT, r->deadline - lmd_now_mono()) != 0)
            finish(r, LMD_ENOMEM, -1, 0, "libevent");
        return;
    }
    if (n < 0 && errno == ECONNREFUSED) {
        finish(r, LMD_EIO, -1, 0, "no DNS server at %s (connection refused)", r->server);
        return;
    }
    if (n < 0) {
        finish(r, LMD_EIO, -1, 0, "%s: %s", r->server, strerror(errno));
        return;
    }
    answer(r, buf, (size_t)n);
}

static void on_start(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_dns_req *r = arg;
    if (r->msg->len > UDP_MAX || r->msg->tcp_only)
        tcp_start(r);
    else
        udp_send(r);
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

int lmd_dns_send(struct event_base *base, const char *server, uint16_t port, lmd_dns_msg *msg,
                 const lmd_dns_key *key, double timeout_s, lmd_dns_done_cb cb, void *arg, lmd_dns_req **out,
                 lmd_err *err)
{
    if (out)
        *out = NULL;
    lmd_dns_req *r = calloc(1, sizeof *r);
    if (!r) {
        lmd_dns_msg_free(msg);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    r->fd = -1;
    r->msg = msg;
    r->base = base;
    r->cb = cb;
    r->arg = arg;
    r->timeout = timeout_s > 0 ? timeout_s : 5.0;
    r->deadline = lmd_now_mono() + r->timeout;
    port = port ? port : 53;
    int rc = lmd_dns_server_addr(server, port, &r->addr, &r->alen, err);
    snprintf(r->server, sizeof r->server, "%s", server ? server : "");
    r->plain = key == NULL;
    if (!rc && key && (snprintf(r->key_name, sizeof r->key_name, "%s", key->name) >= (int)sizeof r->key_name ||
                snprintf(r->key_secret, sizeof r->key_secret, "%s", key->secret) >= (int)sizeof r->key_secret))
        rc = lmd_err_set(err, LMD_EINVAL, "TSIG key %s: name or secret too long", key->name);
    if (!rc) {
        r->start = evtimer_new(base, on_start, r);
        struct timeval now = {0, 0};
        if (!r->start || evtimer_add(r->start, &now) != 0)
            rc = lmd_err_set(err, LMD_ENOMEM, "cannot schedule the update (libevent)");
    }
    if (rc) {
        req_free(r);
        return rc;
    }
    if (out)
        *out = r;
    return 0;
}
