/* NOTIFY received (src/dns/notify.c): only a NOTIFY signed by the agent's
 * key, over these bytes and of now, is OK (with its zone and serial) and
 * gets an answer, itself signed with the request's MAC; unsigned, another
 * key's, another secret's, a changed one, a query: never answered.  (A
 * NOTIFY signed outside its fudge of now is refused too, in_time(); not
 * tested here: ldns signs with the clock's time only.)  And a NOTIFY the
 * agent sends (lmd_dns_notify_build): what the receiving side takes. */
#include "dns/internal.h"

#include "../check.h"

#include <stdlib.h>
#include <string.h>

#define SECRET "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="
#define OTHER "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItb3Q="

/* a NOTIFY for sd.test (or a query), with the SOA at serial 42 in the
 * answer when soa, signed by NAME/SECRET when name; *len its size */
static uint8_t *notify(bool is_notify, bool soa, const char *name, const char *secret, uint16_t fudge, size_t *len,
                       ldns_rdf **mac)
{
    ldns_rr *q = NULL, *rr = NULL;
    ldns_pkt *p = ldns_pkt_new();
    CHECK(ldns_rr_new_question_frm_str(&q, "sd.test. IN SOA", NULL, NULL) == LDNS_STATUS_OK, "question");
    ldns_pkt_set_id(p, 4242);
    ldns_pkt_set_aa(p, true);
    ldns_pkt_set_opcode(p, is_notify ? LDNS_PACKET_NOTIFY : LDNS_PACKET_QUERY);
    ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, q);
    if (soa) {
        CHECK(ldns_rr_new_frm_str(&rr, "sd.test. 60 IN SOA ns.sd.test. hm.sd.test. 42 60 30 3600 30", 0, NULL, NULL) ==
                  LDNS_STATUS_OK, "soa");
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    }
    if (name) {
        CHECK(ldns_pkt_tsig_sign(p, name, secret, fudge, "hmac-sha256.", NULL) == LDNS_STATUS_OK, "sign");
        if (mac)
            *mac = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(p), 3));
    }
    uint8_t *wire = NULL;
    CHECK(ldns_pkt2wire(&wire, p, len) == LDNS_STATUS_OK, "wire");
    ldns_pkt_free(p);
    return wire;
}

static enum lmd_dns_notify_result read1(const lmd_dns_key *key, uint8_t *wire, size_t len, lmd_dns_notify_info *info,
                                        uint8_t **ans, size_t *ans_len)
{
    enum lmd_dns_notify_result r = lmd_dns_notify_read(wire, len, key, info, ans, ans_len);
    free(wire);
    return r;
}

int main(void)
{
    lmd_dns_key *key = NULL;
    lmd_err err = {0};
    CHECK(lmd_dns_key_parse("key \"h2-key\" { algorithm hmac-sha256; secret \"" SECRET "\"; };", "test", &key, &err) ==
              0, "key: %s", lmd_err_text(&err));
    lmd_dns_notify_info info;
    uint8_t *ans = NULL;
    size_t len = 0, ans_len = 0;
    ldns_rdf *mac = NULL;

    /* signed by our key: OK, zone and serial, a signed answer to it */
    uint8_t *w = notify(true, true, "h2-key", SECRET, 300, &len, &mac);
    CHECK(read1(key, w, len, &info, &ans, &ans_len) == LMD_DNS_NOTIFY_OK, "signed");
    CHECK(!strcmp(info.zone, "sd.test") && info.have_serial && info.serial == 42, "zone %s serial %u", info.zone,
          info.serial);
    ldns_pkt *a = NULL;
    CHECK(ans && ldns_wire2pkt(&a, ans, ans_len) == LDNS_STATUS_OK, "answer parses");
    if (a) {
        CHECK(ldns_pkt_qr(a) && ldns_pkt_get_opcode(a) == LDNS_PACKET_NOTIFY && ldns_pkt_id(a) == 4242 &&
                  ldns_pkt_get_rcode(a) == LDNS_RCODE_NOERROR, "answer header");
        CHECK(ldns_pkt_tsig_verify(a, ans, ans_len, "h2-key", SECRET, mac), "the answer's signature covers our MAC");
        ldns_pkt_free(a);
    }
    free(ans);
    ldns_rdf_deep_free(mac);

    /* without the SOA: OK, no serial */
    w = notify(true, false, "h2-key", SECRET, 300, &len, NULL);
    CHECK(read1(key, w, len, &info, &ans, &ans_len) == LMD_DNS_NOTIFY_OK && !info.have_serial && ans, "no serial");
    free(ans);

    /* unsigned; another key's name; our name with another secret: no answer */
    w = notify(true, true, NULL, NULL, 300, &len, NULL);
    CHECK(read1(key, w, len, &info, &ans, &ans_len) == LMD_DNS_NOTIFY_UNSIGNED && !ans, "unsigned");
    w = notify(true, true, "h3-key", SECRET, 300, &len, NULL);
    CHECK(read1(key, w, len, &info, &ans, &ans_len) == LMD_DNS_NOTIFY_BADSIG && !ans, "another key name");
    w = notify(true, true, "h2-key", OTHER, 300, &len, NULL);
    CHECK(read1(key, w, len, &info, &ans, &ans_len) == LMD_DNS_NOTIFY_BADSIG && !ans, "another secret");

    /* a byte changed after signing (the serial: 42 -> 43) */
    w = notify(true, true, "h2-key", SECRET, 300, &len, NULL);
    uint8_t *at = NULL;
    for (size_t i = 0; i + 4 <= len && !at; i++)
        if (w[i] == 0 && w[i + 1] == 0 && w[i + 2] == 0 && w[i + 3] == 42)
            at = &w[i + 3];
    CHECK(at != NULL, "serial in the wire");
    if (at)
        *at = 43;
    CHECK(read1(key, w, len, &info, &ans, &ans_len) == LMD_DNS_NOTIFY_BADSIG && !ans, "changed");

    /* a query, signed: not a NOTIFY; garbage: malformed */
    w = notify(false, true, "h2-key", SECRET, 300, &len, NULL);
    CHECK(read1(key, w, len, &info, &ans, &ans_len) == LMD_DNS_NOTIFY_INVALID && !ans, "a query");
    uint8_t junk[5] = {1, 2, 3, 4, 5};
    CHECK(lmd_dns_notify_read(junk, sizeof junk, key, &info, &ans, &ans_len) == LMD_DNS_NOTIFY_INVALID && !ans, "junk");

    /* one the agent sends (wide_area.also_notify): a NOTIFY for the zone,
     * AA set, no SOA, signed by its key; what the receiving side takes,
     * and its signed answer verifies against the request's MAC (what
     * lmd_dns_send checks); the receiving side with another key: BADSIG */
    lmd_dns_msg *m = NULL;
    CHECK(lmd_dns_notify_build("sd.test", key, &m, &err) == 0 && m, "build: %s", lmd_err_text(&err));
    if (m) {
        size_t mlen = 0;
        const uint8_t *mw = lmd_dns_msg_wire(m, &mlen);
        ldns_pkt *q = NULL;
        CHECK(ldns_wire2pkt(&q, mw, mlen) == LDNS_STATUS_OK && !ldns_pkt_qr(q) && ldns_pkt_aa(q) &&
                  ldns_pkt_get_opcode(q) == LDNS_PACKET_NOTIFY && ldns_pkt_ancount(q) == 0 && ldns_pkt_id(q) == m->id,
              "a NOTIFY header, no SOA");
        ldns_pkt_free(q);
        CHECK(lmd_dns_notify_read(mw, mlen, key, &info, &ans, &ans_len) == LMD_DNS_NOTIFY_OK &&
                  !strcmp(info.zone, "sd.test") && !info.have_serial, "taken: zone %s", info.zone);
        CHECK(ans && ldns_wire2pkt(&a, ans, ans_len) == LDNS_STATUS_OK, "its answer parses");
        if (a) {
            CHECK(ldns_pkt_tsig_verify(a, ans, ans_len, "h2-key", SECRET, m->mac), "the answer verifies for the sender");
            ldns_pkt_free(a);
        }
        free(ans);
        lmd_dns_key *other = NULL;
        CHECK(lmd_dns_key_parse("key \"h3-key\" { algorithm hmac-sha256; secret \"" OTHER "\"; };", "test", &other,
                                &err) == 0, "other key");
        CHECK(lmd_dns_notify_read(mw, mlen, other, &info, &ans, &ans_len) == LMD_DNS_NOTIFY_BADSIG && !ans,
              "another host's key: not taken");
        lmd_dns_key_free(other);
        lmd_dns_msg_free(m);
    }
    CHECK(lmd_dns_notify_build("sd.test", NULL, &m, &err) != 0 && !m, "never unsigned");

    lmd_dns_key_free(key);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
