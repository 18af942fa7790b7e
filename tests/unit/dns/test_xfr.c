/* src/dns/xfr.c: zone transfer requests and the reader of their answers
 * (no network).  The answers are message sequences built here with ldns,
 * signed as a server signs them (RFC 8945 5.3.1: the first message's MAC
 * covers the request's MAC, each next one the previous MAC), then fed to
 * the reader message by message. */
#include "dns/dns.h"
#include "dns/internal.h"

#include <ldns/ldns.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"

#define SECRET "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg="
#define OTHER "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
static const char KEY[] = "key \"xfr-key\" { algorithm hmac-sha256; secret \"" SECRET "\"; };";

#define SOA(n) "sd.test. 60 IN SOA ns.sd.test. hm.sd.test. " #n " 60 30 3600 30"
#define PTR1 "_lmserv._tcp.sd.test. 60 IN PTR a._lmserv._tcp.sd.test."
#define SRV1 "a._lmserv._tcp.sd.test. 60 IN SRV 0 0 8001 a.sd.test."
#define SRV2 "a._lmserv._tcp.sd.test. 60 IN SRV 0 0 8002 a.sd.test."
#define TXT1 "a._lmserv._tcp.sd.test. 60 IN TXT \"model=gemma\" \"port=8001\""
#define A1 "a.sd.test. 60 IN A 10.0.0.1"
#define A2 "a.sd.test. 60 IN A 10.0.0.2"
#define AAAA1 "a.sd.test. 60 IN AAAA 2001:db8::1"
#define NS1 "sd.test. 60 IN NS ns.sd.test."

/* A server's side of one transfer: the request it answers, its MAC chain. */
struct server {
    ldns_pkt *req;
    ldns_rdf *mac;  /* what the next message's MAC covers */
    int n;          /* messages sent */
    const char *secret;
    bool tsig;
};

static void server_init(struct server *s, const lmd_dns_msg *req)
{
    size_t len;
    const uint8_t *w = lmd_dns_msg_wire(req, &len);
    memset(s, 0, sizeof *s);
    CHECK(ldns_wire2pkt(&s->req, w, len) == LDNS_STATUS_OK, "request parses");
    ldns_rr *t = ldns_pkt_tsig(s->req);
    s->mac = t ? ldns_rdf_clone(ldns_rr_rdf(t, 3)) : NULL;
    s->secret = SECRET;
    s->tsig = t != NULL;
}

static void server_done(struct server *s)
{
    ldns_pkt_free(s->req);
    ldns_rdf_deep_free(s->mac);
}

/* One answer message of the records (zone-file lines, NULL-terminated). */
static uint8_t *server_msgv(struct server *s, size_t *len, va_list ap)
{
    ldns_pkt *p = ldns_pkt_new();
    ldns_pkt_set_id(p, ldns_pkt_id(s->req));
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_aa(p, true);
    if (s->n == 0)
        ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(s->req), 0)));
    for (const char *line; (line = va_arg(ap, const char *));) {
        ldns_rr *rr = NULL;
        CHECK(ldns_rr_new_frm_str(&rr, line, 0, NULL, NULL) == LDNS_STATUS_OK, "%s", line);
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    }
    if (s->tsig) {
        CHECK(ldns_pkt_tsig_sign_next(p, "xfr-key", s->secret, 300, "hmac-sha256.", s->mac, s->n > 0) ==
                  LDNS_STATUS_OK,
              "sign");
        ldns_rdf_deep_free(s->mac);
        s->mac = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(p), 3));
    }
    uint8_t *w = NULL;
    CHECK(ldns_pkt2wire(&w, p, len) == LDNS_STATUS_OK, "pkt2wire");
    ldns_pkt_free(p);
    s->n++;
    return w;
}

static uint8_t *server_msg(struct server *s, size_t *len, ...)
{
    va_list ap;
    va_start(ap, len);
    uint8_t *w = server_msgv(s, len, ap);
    va_end(ap);
    return w;
}

struct run {
    lmd_dns_key *key;
    lmd_dns_msg *req;
    lmd_dns_xfr_reader *rd;
    struct server srv;
    lmd_err err;
    int rc;   /* of the last message fed */
    int rcode, tsig_error;
};

static void run_start(struct run *r, bool ixfr, uint32_t serial, bool sign)
{
    memset(r, 0, sizeof *r);
    lmd_err err = {0};
    CHECK(lmd_dns_key_parse(KEY, "t", &r->key, &err) == 0, "%s", err.msg);
    CHECK(lmd_dns_xfr_build("sd.test", sign ? r->key : NULL, serial, ixfr, &r->req, &err) == 0, "%s", err.msg);
    CHECK(lmd_dns_xfr_reader_new(r->req, sign ? r->key : NULL, &r->rd, &err) == 0, "%s", err.msg);
    server_init(&r->srv, r->req);
}

static int feed(struct run *r, uint8_t *w, size_t len)
{
    memset(&r->err, 0, sizeof r->err);
    r->rc = lmd_dns_xfr_reader_add(r->rd, w, len, &r->rcode, &r->tsig_error, &r->err);
    free(w);
    return r->rc;
}

static int msg(struct run *r, ...)
{
    va_list ap;
    va_start(ap, r);
    size_t len = 0;
    uint8_t *w = server_msgv(&r->srv, &len, ap);
    va_end(ap);
    return feed(r, w, len);
}

#define MSG(r, ...) msg((r), __VA_ARGS__, (const char *)NULL)

static void run_end(struct run *r)
{
    server_done(&r->srv);
    lmd_dns_xfr_reader_free(r->rd);
    lmd_dns_msg_free(r->req);
    lmd_dns_key_free(r->key);
}

static void test_request(void)
{
    lmd_dns_key *k = NULL;
    lmd_err err = {0};
    lmd_dns_key_parse(KEY, "t", &k, &err);
    lmd_dns_msg *m = NULL;
    CHECK(lmd_dns_xfr_build("sd.test", k, 41, true, &m, &err) == 0, "%s", err.msg);
    char *t = lmd_dns_msg_text(m);
    CHECK(t && strstr(t, "IXFR") && strstr(t, "SOA") && strstr(t, " 41 ") && strstr(t, "TSIG"), "%s", t);
    free(t);
    size_t len;
    const uint8_t *w = lmd_dns_msg_wire(m, &len);
    ldns_pkt *p = NULL;
    CHECK(ldns_wire2pkt(&p, w, len) == LDNS_STATUS_OK, "parses");
    CHECK(ldns_pkt_nscount(p) == 1 && ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_authority(p), 0)) == LDNS_RR_TYPE_SOA,
          "our SOA in the authority section");
    CHECK(ldns_pkt_tsig_verify(p, w, len, "xfr-key", SECRET, NULL), "signed");
    ldns_pkt_free(p);
    lmd_dns_msg_free(m);
    CHECK(lmd_dns_xfr_build("sd.test", k, 0, false, &m, &err) == 0, "%s", err.msg);
    t = lmd_dns_msg_text(m);
    CHECK(t && strstr(t, "AXFR") && !strstr(t, "AUTHORITY SECTION:\nsd.test"), "%s", t);
    free(t);
    lmd_dns_msg_free(m);
    CHECK(lmd_dns_xfr_build("bad..name", k, 0, false, &m, &err) == LMD_EINVAL && !m, "%s", err.msg);
    /* a request of another kind has no transfer reader */
    lmd_dns_msg *q = NULL;
    lmd_dns_query_build(NULL, "sd.test", LMD_DNS_T_SOA, &q, &err);
    lmd_dns_xfr_reader *rd = NULL;
    CHECK(lmd_dns_xfr_reader_new(q, k, &rd, &err) == LMD_EINVAL && !rd && strstr(err.msg, "not a transfer"), "%s",
          err.msg);
    lmd_dns_msg_free(q);
    lmd_dns_key_free(k);
}

static void test_axfr_several_messages(void)
{
    struct run r;
    run_start(&r, false, 0, true);
    CHECK(MSG(&r, SOA(5), PTR1, SRV1) == 0, "%s", r.err.msg);
    CHECK(MSG(&r, TXT1, A1, NS1) == 0, "%s", r.err.msg);
    CHECK(lmd_dns_xfr_reader_take(r.rd) == NULL, "not complete yet");
    CHECK(MSG(&r, AAAA1, SOA(5)) == 1, "%d %s", r.rc, r.err.msg);
    lmd_dns_xfr *x = lmd_dns_xfr_reader_take(r.rd);
    CHECK(x && x->kind == LMD_DNS_XFR_FULL && x->serial == 5, "kind %d", x ? x->kind : -1);
    if (x) {
        CHECK(x->messages == 3 && x->records == 8 && x->n_rrs == 5 && x->bytes > 100, "%zu %zu %zu", x->messages,
              x->records, x->n_rrs);
        CHECK(x->n_rrs == 5 && x->rrs[0].type == LMD_DNS_T_PTR && strcmp(x->rrs[0].label, "a") == 0 &&
                  x->rrs[1].type == LMD_DNS_T_SRV && x->rrs[1].port == 8001 && x->rrs[2].txt.n == 2 &&
                  strcmp(x->rrs[3].addr, "10.0.0.1") == 0 && strcmp(x->rrs[4].addr, "2001:db8::1") == 0,
              "records");
    }
    CHECK(lmd_dns_xfr_reader_take(r.rd) == NULL, "taken once");
    lmd_dns_xfr_free(x);
    run_end(&r);

    /* a zone of its SOA alone; and an unsigned transfer read without a key */
    run_start(&r, false, 0, false);
    CHECK(MSG(&r, SOA(9), SOA(9)) == 1, "%s", r.err.msg);
    x = lmd_dns_xfr_reader_take(r.rd);
    CHECK(x && x->kind == LMD_DNS_XFR_FULL && x->n_rrs == 0 && x->serial == 9, "soa only");
    lmd_dns_xfr_free(x);
    run_end(&r);
}

static void test_ixfr(void)
{
    struct run r;
    /* two steps, 5 -> 6 -> 7, over two messages */
    run_start(&r, true, 5, true);
    CHECK(MSG(&r, SOA(7), SOA(5), SRV1, SOA(6), SRV2) == 0, "%s", r.err.msg);
    CHECK(MSG(&r, SOA(6), A1, SOA(7), A2, AAAA1, SOA(7)) == 1, "%d %s", r.rc, r.err.msg);
    lmd_dns_xfr *x = lmd_dns_xfr_reader_take(r.rd);
    CHECK(x && x->kind == LMD_DNS_XFR_DIFF && x->serial == 7 && x->n_diffs == 2, "kind %d", x ? x->kind : -1);
    if (x && x->n_diffs == 2) {
        lmd_dns_xfr_diff *d = x->diffs;
        CHECK(d[0].from == 5 && d[0].to == 6 && d[0].n_deleted == 1 && d[0].deleted[0].port == 8001 &&
                  d[0].n_added == 1 && d[0].added[0].port == 8002,
              "step 1");
        CHECK(d[1].from == 6 && d[1].to == 7 && d[1].n_deleted == 1 && strcmp(d[1].deleted[0].addr, "10.0.0.1") == 0 &&
                  d[1].n_added == 2 && strcmp(d[1].added[0].addr, "10.0.0.2") == 0,
              "step 2");
        CHECK(x->messages == 2 && x->records == 11 && x->n_rrs == 0, "%zu %zu", x->messages, x->records);
    }
    lmd_dns_xfr_free(x);
    run_end(&r);

    /* up to date: our serial back, alone */
    run_start(&r, true, 5, true);
    CHECK(MSG(&r, SOA(5)) == 1, "%s", r.err.msg);
    x = lmd_dns_xfr_reader_take(r.rd);
    CHECK(x && x->kind == LMD_DNS_XFR_UPTODATE && x->serial == 5 && x->messages == 1, "uptodate");
    lmd_dns_xfr_free(x);
    run_end(&r);

    /* the server has no history: the whole zone, AXFR-style */
    run_start(&r, true, 5, true);
    CHECK(MSG(&r, SOA(8), PTR1, SRV2) == 0, "%s", r.err.msg);
    CHECK(MSG(&r, SOA(8)) == 1, "%s", r.err.msg);
    x = lmd_dns_xfr_reader_take(r.rd);
    CHECK(x && x->kind == LMD_DNS_XFR_FULL && x->serial == 8 && x->n_rrs == 2 && x->n_diffs == 0, "fallback");
    lmd_dns_xfr_free(x);
    run_end(&r);

    /* a newer SOA alone in the first message: the rest follows */
    run_start(&r, true, 5, true);
    CHECK(MSG(&r, SOA(6)) == 0, "%s", r.err.msg);
    CHECK(MSG(&r, SOA(5), SOA(6), A1, SOA(6)) == 1, "%s", r.err.msg);
    x = lmd_dns_xfr_reader_take(r.rd);
    CHECK(x && x->kind == LMD_DNS_XFR_DIFF && x->n_diffs == 1 && x->diffs[0].n_deleted == 0 &&
              x->diffs[0].n_added == 1,
          "split");
    lmd_dns_xfr_free(x);
    run_end(&r);
}

/* Each refused: which message, what was wrong. */
static void expect_refused(struct run *r, const char *why)
{
    CHECK(r->rc < 0 && strstr(r->err.msg, why), "want '%s', got rc %d '%s'", why, r->rc, r->err.msg);
    CHECK(lmd_dns_xfr_reader_take(r->rd) == NULL, "nothing to take");
    lmd_err err = {0};
    uint8_t junk[12] = {0};
    CHECK(lmd_dns_xfr_reader_add(r->rd, junk, sizeof junk, NULL, NULL, &err) < 0, "stays refused");
}

static void test_refused(void)
{
    struct run r;
    size_t _len;
    lmd_err err;

    run_start(&r, false, 0, true);
    feed(&r, (uint8_t *)strdup("garbage, not DNS"), 16);
    expect_refused(&r, "message 1: does not parse");
    run_end(&r);

    run_start(&r, false, 0, true);
    CHECK(MSG(&r, PTR1, SOA(5)) < 0, "no SOA first");
    expect_refused(&r, "message 1: the answer does not begin with the SOA of sd.test");
    run_end(&r);

    run_start(&r, false, 0, true);
    MSG(&r, SOA(5), PTR1);
    MSG(&r, SRV1, SOA(6));
    expect_refused(&r, "message 2: the closing SOA has serial 6, the transfer began with 5");
    run_end(&r);

    /* a later message unsigned */
    run_start(&r, false, 0, true);
    MSG(&r, SOA(5), PTR1);
    r.srv.tsig = false;
    MSG(&r, SRV1, SOA(5));
    expect_refused(&r, "message 2: not signed (key xfr-key): not trusted");
    run_end(&r);

    /* a later message signed with another secret; then a right signature
     * that does not chain (the MAC of a message that was not received) */
    run_start(&r, false, 0, true);
    MSG(&r, SOA(5), PTR1);
    r.srv.secret = OTHER;
    MSG(&r, SRV1, SOA(5));
    expect_refused(&r, "message 2: wrong TSIG signature (key xfr-key): not trusted");
    run_end(&r);
    run_start(&r, false, 0, true);
    MSG(&r, SOA(5), PTR1);
    free(server_msg(&r.srv, &_len, SRV1, (const char *)NULL)); /* lost */
    MSG(&r, A1, SOA(5));
    expect_refused(&r, "message 2: wrong TSIG signature");
    run_end(&r);

    /* the first message unsigned while we signed */
    run_start(&r, false, 0, true);
    r.srv.tsig = false;
    MSG(&r, SOA(5), PTR1, SOA(5));
    expect_refused(&r, "message 1: not signed");
    run_end(&r);

    run_start(&r, false, 0, true);
    MSG(&r, SOA(5), "other.test. 60 IN A 10.9.9.9", SOA(5));
    expect_refused(&r, "message 1: other.test is not in zone sd.test");
    run_end(&r);

    run_start(&r, false, 0, true);
    MSG(&r, SOA(5), A1, SOA(5), A2);
    expect_refused(&r, "message 1: records after the closing SOA");
    run_end(&r);

    run_start(&r, false, 0, true);
    CHECK(MSG(&r, SOA(5), A1, SOA(5)) == 1, "%s", r.err.msg);
    MSG(&r, A2);
    expect_refused(&r, "message 2: a message after the closing SOA");
    run_end(&r);

    /* IXFR: steps that do not chain, a first step not from our serial,
     * a serial older than ours */
    run_start(&r, true, 5, true);
    MSG(&r, SOA(7), SOA(5), SOA(6), SOA(4), SOA(7), SOA(7));
    expect_refused(&r, "message 1: a difference from serial 4 follows one that ended at 6");
    run_end(&r);
    run_start(&r, true, 5, true);
    MSG(&r, SOA(7), SOA(3), SOA(7), SOA(7));
    expect_refused(&r, "message 1: the first difference is from serial 3, not ours (5)");
    run_end(&r);
    run_start(&r, true, 5, true);
    MSG(&r, SOA(4));
    expect_refused(&r, "message 1: the zone's serial 4 is older than ours (5)");
    run_end(&r);

    /* refused by the server: the rcode and the TSIG error */
    run_start(&r, false, 0, true);
    {
        ldns_pkt *p = ldns_pkt_new();
        ldns_pkt_set_id(p, ldns_pkt_id(r.srv.req));
        ldns_pkt_set_qr(p, true);
        ldns_pkt_set_rcode(p, LDNS_RCODE_NOTAUTH);
        ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(r.srv.req), 0)));
        ldns_rr *t = ldns_rr_clone(ldns_pkt_tsig(r.srv.req));
        ldns_rdf_deep_free(ldns_rr_set_rdf(t, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, 16), 5));
        ldns_pkt_set_tsig(p, t);
        uint8_t *w = NULL;
        ldns_pkt2wire(&w, p, &_len);
        ldns_pkt_free(p);
        feed(&r, w, _len);
    }
    /* an error with an empty MAC is what anyone could send: its rcode is
     * not believed (a server's own BADSIG answer is unsigned too) */
    CHECK(r.rcode == 0 && r.tsig_error == 0, "not believed: %d %d", r.rcode, r.tsig_error);
    CHECK(lmd_dns_xfr_reader_forged(r.rd), "counted as not signed");
    expect_refused(&r, "message 1: NOTAUTH, TSIG error BADSIG without a valid signature by key xfr-key: not trusted");
    run_end(&r);

    /* every rcode unsigned: not believed, the reader says forged */
    static const int rcodes[] = {LDNS_RCODE_FORMERR, LDNS_RCODE_SERVFAIL, LDNS_RCODE_NXDOMAIN, LDNS_RCODE_NOTIMPL,
                                 LDNS_RCODE_REFUSED, LDNS_RCODE_YXDOMAIN, LDNS_RCODE_YXRRSET, LDNS_RCODE_NXRRSET,
                                 LDNS_RCODE_NOTAUTH, LDNS_RCODE_NOTZONE};
    for (size_t i = 0; i < sizeof rcodes / sizeof rcodes[0]; i++) {
        for (int signed_ = 0; signed_ <= 1; signed_++) {
            run_start(&r, false, 0, true);
            ldns_pkt *p = ldns_pkt_new();
            ldns_pkt_set_id(p, ldns_pkt_id(r.srv.req));
            ldns_pkt_set_qr(p, true);
            ldns_pkt_set_rcode(p, (uint8_t)rcodes[i]);
            ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION,
                             ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(r.srv.req), 0)));
            if (signed_)
                CHECK(ldns_pkt_tsig_sign_next(p, "xfr-key", SECRET, 300, "hmac-sha256.", r.srv.mac, 0) ==
                          LDNS_STATUS_OK, "sign");
            uint8_t *w = NULL;
            ldns_pkt2wire(&w, p, &_len);
            ldns_pkt_free(p);
            feed(&r, w, _len);
            CHECK(r.rc < 0, "rcode %d refused", rcodes[i]);
            CHECK(lmd_dns_xfr_reader_forged(r.rd) == !signed_, "rcode %d signed %d: forged %d", rcodes[i], signed_,
                  lmd_dns_xfr_reader_forged(r.rd));
            CHECK(r.rcode == (signed_ ? rcodes[i] : 0), "rcode %d signed %d: believed %d", rcodes[i], signed_,
                  r.rcode);
            run_end(&r);
        }
    }

    /* an answer to another request */
    run_start(&r, false, 0, false);
    ldns_pkt_set_id(r.srv.req, (uint16_t)(ldns_pkt_id(r.srv.req) + 1));
    MSG(&r, SOA(5), SOA(5));
    expect_refused(&r, "not an answer to this transfer");
    CHECK(!lmd_dns_xfr_reader_too_big(r.rd), "not a limit: not too big");
    CHECK(!lmd_dns_xfr_reader_forged(r.rd), "unsigned transfer: not said forged");
    run_end(&r);
    /* signed: an answer to another request (or another question: a whole
     * genuine transfer replayed) is not the server's, whoever sent it */
    run_start(&r, false, 0, true);
    ldns_pkt_set_id(r.srv.req, (uint16_t)(ldns_pkt_id(r.srv.req) + 1));
    MSG(&r, SOA(5), SOA(5));
    expect_refused(&r, "not an answer to this transfer");
    CHECK(lmd_dns_xfr_reader_forged(r.rd), "signed transfer, another id: counted as forged");
    run_end(&r);

    /* the bounds */
    run_start(&r, false, 0, true);
    lmd_dns_xfr_reader_limits(r.rd, 0, 2, 0);
    MSG(&r, SOA(5));
    MSG(&r, A1);
    MSG(&r, SOA(5));
    expect_refused(&r, "message 3: more than 2 messages");
    CHECK(lmd_dns_xfr_reader_too_big(r.rd), "a limit: too big");
    run_end(&r);
    run_start(&r, false, 0, true);
    lmd_dns_xfr_reader_limits(r.rd, 0, 0, 2);
    MSG(&r, SOA(5), A1, A2, AAAA1, SOA(5));
    expect_refused(&r, "message 1: more than 2 records");
    CHECK(lmd_dns_xfr_reader_too_big(r.rd), "a limit: too big");
    run_end(&r);
    run_start(&r, false, 0, true);
    lmd_dns_xfr_reader_limits(r.rd, 300, 0, 0);
    MSG(&r, SOA(5), A1);
    MSG(&r, A2, AAAA1, TXT1);
    expect_refused(&r, "message 2: more than 300 bytes");
    CHECK(lmd_dns_xfr_reader_too_big(r.rd), "a limit: too big");
    run_end(&r);

    /* truncated sequence: never complete, nothing to take */
    run_start(&r, true, 5, true);
    CHECK(MSG(&r, SOA(7), SOA(5), SRV1, SOA(7)) == 0, "%s", r.err.msg);
    CHECK(lmd_dns_xfr_reader_take(r.rd) == NULL, "incomplete");
    run_end(&r);
    (void)err;
}

/* The sending side's refusals that need no network. */
static void test_send_refuses(void)
{
    lmd_err err = {0};
    lmd_dns_msg *m = NULL;
    lmd_dns_xfr_req *req = (lmd_dns_xfr_req *)1;
    lmd_dns_xfr_build("sd.test", NULL, 0, false, &m, &err);
    CHECK(lmd_dns_xfr_send(NULL, "not-an-address", 0, m, NULL, 1, NULL, NULL, &req, &err) == LMD_EINVAL &&
              req == NULL && strstr(err.msg, "not an IPv4 or IPv6 address"),
          "%s", err.msg);
}

int main(void)
{
    test_request();
    test_axfr_several_messages();
    test_ixfr();
    test_refused();
    test_send_refuses();
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
