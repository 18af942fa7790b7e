/* Signed reads (src/dns/tsig.c, send.c): a query signed with the key is
 * answered by a server on a loopback UDP socket of this test; an answer
 * the key did not sign (unsigned, any rcode; signed by another secret) is
 * dropped and counted, the request waits on for the signed one, and
 * without one it times out (rcode -1: the forged rcode is not reported). */
#include "dns/internal.h"

#include "base/util.h"
#include "../check.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SECRET "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="
#define OTHER "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItb3Q="
static const char KEY[] = "key \"read-key\" { algorithm hmac-sha256; secret \"" SECRET "\"; };";

/* What the server sends to each query, in order. */
enum reply { R_END, R_UNSIGNED_REFUSED, R_UNSIGNED_SOA, R_OTHER_KEY_SOA, R_SIGNED_SOA, R_SIGNED_NXDOMAIN };

struct server {
    int fd;
    uint16_t port;
    const enum reply *plan;
    int queries;
};

struct done {
    bool called;
    int rc, rcode;
    bool verified;
    unsigned dropped;
    uint32_t serial;
};

static void reply(struct server *s, const ldns_pkt *q, enum reply what, const struct sockaddr_in *to)
{
    ldns_pkt *p = ldns_pkt_new();
    ldns_pkt_set_id(p, ldns_pkt_id(q));
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_aa(p, true);
    ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(q), 0)));
    if (what == R_UNSIGNED_REFUSED)
        ldns_pkt_set_rcode(p, LDNS_RCODE_REFUSED);
    if (what == R_SIGNED_NXDOMAIN)
        ldns_pkt_set_rcode(p, LDNS_RCODE_NXDOMAIN);
    if (what == R_UNSIGNED_SOA || what == R_OTHER_KEY_SOA || what == R_SIGNED_SOA) {
        ldns_rr *rr = NULL;
        const char *text = what == R_SIGNED_SOA ? "sd.test. 60 IN SOA ns.sd.test. hm.sd.test. 7 60 30 3600 30"
                                                : "sd.test. 60 IN SOA ns.sd.test. hm.sd.test. 6 60 30 3600 30";
        CHECK(ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL) == LDNS_STATUS_OK, "soa");
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    }
    ldns_rr *qt = ldns_pkt_tsig(q);
    if (qt && (what == R_SIGNED_SOA || what == R_SIGNED_NXDOMAIN || what == R_OTHER_KEY_SOA))
        CHECK(ldns_pkt_tsig_sign_next(p, "read-key", what == R_OTHER_KEY_SOA ? OTHER : SECRET, 300, "hmac-sha256.",
                                      ldns_rr_rdf(qt, 3), 0) == LDNS_STATUS_OK,
              "sign");
    uint8_t *w = NULL;
    size_t len = 0;
    CHECK(ldns_pkt2wire(&w, p, &len) == LDNS_STATUS_OK, "wire");
    CHECK(sendto(s->fd, w, len, 0, (const struct sockaddr *)to, sizeof *to) == (ssize_t)len, "sendto");
    free(w);
    ldns_pkt_free(p);
}

static void on_query(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct server *s = arg;
    uint8_t buf[4096];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    ldns_pkt *q = NULL;
    if (n <= 0 || ldns_wire2pkt(&q, buf, (size_t)n) != LDNS_STATUS_OK)
        return;
    s->queries++;
    /* every reply of the plan to each query (a retry gets them again) */
    for (const enum reply *r = s->plan; *r != R_END; r++)
        reply(s, q, *r, &from);
    ldns_pkt_free(q);
}

static void on_done(const lmd_dns_result *res, void *arg)
{
    struct done *d = arg;
    d->called = true;
    d->rc = res->rc;
    d->rcode = res->rcode;
    d->verified = res->verified;
    d->dropped = res->dropped;
    lmd_dns_rr *rrs = NULL;
    size_t n = 0;
    lmd_err err = {0};
    if (res->answer && lmd_dns_answer_parse(res->answer, res->answer_len, LMD_DNS_T_SOA, &rrs, &n, &err) == 0 && n)
        d->serial = rrs[0].serial;
    lmd_dns_rrs_free(rrs, n);
}

/* One signed SOA query against a server following plan. */
static struct done run(const enum reply *plan, bool sign, double timeout, struct server *s)
{
    struct event_base *base = event_base_new();
    memset(s, 0, sizeof *s);
    s->plan = plan;
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(bind(s->fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s->fd, (struct sockaddr *)&a, &al) == 0,
          "bind");
    s->port = ntohs(a.sin_port);
    struct event *ev = event_new(base, s->fd, EV_READ | EV_PERSIST, on_query, s);
    event_add(ev, NULL);
    lmd_dns_key *key = NULL;
    lmd_err err = {0};
    CHECK(lmd_dns_key_parse(KEY, "t", &key, &err) == 0, "%s", err.msg);
    lmd_dns_msg *m = NULL;
    CHECK(lmd_dns_query_build(NULL, "sd.test", LMD_DNS_T_SOA, &m, &err) == 0, "%s", err.msg);
    if (sign)
        CHECK(lmd_dns_query_sign(m, key, &err) == 0, "%s", err.msg);
    struct done d = {0};
    CHECK(lmd_dns_send(base, "127.0.0.1", s->port, m, sign ? key : NULL, timeout, on_done, &d, NULL, &err) == 0,
          "%s", err.msg);
    double end = lmd_now_mono() + timeout + 2;
    while (!d.called && lmd_now_mono() < end)
        event_base_loop(base, EVLOOP_ONCE);
    CHECK(d.called, "the callback ran");
    event_free(ev);
    close(s->fd);
    lmd_dns_key_free(key);
    event_base_free(base);
    return d;
}

int main(void)
{
    struct server s;
    struct done d;

    /* a forged REFUSED first, then the server's signed answer: the forgery
     * is dropped and counted, the signed SOA taken */
    d = run((const enum reply[]){R_UNSIGNED_REFUSED, R_SIGNED_SOA, R_END}, true, 3, &s);
    CHECK(d.rc == 0 && d.verified && d.rcode == 0 && d.serial == 7, "rc %d verified %d rcode %d serial %u", d.rc,
          d.verified, d.rcode, d.serial);
    CHECK(d.dropped == 1, "dropped %u", d.dropped);

    /* a stale SOA unsigned, and one signed by another secret, before the
     * real one: both dropped */
    d = run((const enum reply[]){R_UNSIGNED_SOA, R_OTHER_KEY_SOA, R_SIGNED_SOA, R_END}, true, 3, &s);
    CHECK(d.rc == 0 && d.verified && d.serial == 7, "rc %d serial %u", d.rc, d.serial);
    CHECK(d.dropped == 2, "dropped %u", d.dropped);

    /* nothing signed ever comes: a timeout, never the forged rcode, no answer */
    double t0 = lmd_now_mono();
    d = run((const enum reply[]){R_UNSIGNED_REFUSED, R_END}, true, 1.5, &s);
    CHECK(d.rc == LMD_ETIMEDOUT && d.rcode == -1 && !d.verified && d.serial == 0, "rc %d rcode %d", d.rc, d.rcode);
    CHECK(d.dropped >= 2 && s.queries >= 2, "dropped %u of %d queries (the query is sent again meanwhile)",
          d.dropped, s.queries);
    CHECK(lmd_now_mono() - t0 >= 1.4, "waited for the timeout");
    d = run((const enum reply[]){R_UNSIGNED_SOA, R_END}, true, 1.2, &s);
    CHECK(d.rc == LMD_ETIMEDOUT && d.serial == 0, "a stale unsigned SOA is not an answer: rc %d", d.rc);

    /* a signed error is the server's own: believed */
    d = run((const enum reply[]){R_SIGNED_NXDOMAIN, R_END}, true, 3, &s);
    CHECK(d.rc != 0 && d.rcode == 3 && d.verified && d.dropped == 0, "rc %d rcode %d", d.rc, d.rcode);

    /* a plain query (no key) takes the first answer, as before */
    d = run((const enum reply[]){R_UNSIGNED_SOA, R_END}, false, 3, &s);
    CHECK(d.rc == 0 && d.serial == 6 && d.dropped == 0, "rc %d serial %u", d.rc, d.serial);

    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
