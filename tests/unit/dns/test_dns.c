/* src/dns/: TSIG key files and the update message (no network; one
 * temporary directory).  The message is read back with ldns, as a server
 * would, and its signature verified with the key. */
#include "dns/dns.h"

#include "base/names.h"

#include <ldns/ldns.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check.h"

#define SECRET "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg="
static const char GOOD[] = "# made by tsig-keygen\n"
                           "key \"h1-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"" SECRET "\";\n};\n";

static char dir[] = "/tmp/lmdisc-test-dns.XXXXXX";

static const char *write_file(const char *name, const char *text, mode_t mode)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

static void test_key_files(void)
{
    lmd_dns_key *k = NULL;
    lmd_err err = {0};
    int rc = lmd_dns_key_load(write_file("good.key", GOOD, 0600), &k, &err);
    CHECK(rc == 0 && k, "%s", err.msg);
    if (k) {
        CHECK(strcmp(lmd_dns_key_name(k), "h1-key") == 0, "%s", lmd_dns_key_name(k));
        CHECK(strcmp(lmd_dns_key_algorithm(k), "hmac-sha256") == 0, "%s", lmd_dns_key_algorithm(k));
        lmd_dns_key_free(k);
    }
    /* the owner and its group may read it (0600, and root:lmdisc 0640 for
     * the service user, as Debian ships bind's rndc.key) */
    static const mode_t GOOD_MODES[] = {0600, 0640, 0400, 0440, 0700};
    for (size_t i = 0; i < sizeof GOOD_MODES / sizeof *GOOD_MODES; i++) {
        memset(&err, 0, sizeof err);
        rc = lmd_dns_key_load(write_file("mode.key", GOOD, GOOD_MODES[i]), &k, &err);
        CHECK(rc == 0 && k, "%o: %s", (unsigned)GOOD_MODES[i], err.msg);
        lmd_dns_key_free(k);
        k = NULL;
    }
    /* others may not read it, its group may not change it: refused,
     * saying which mode and what to do */
    static const mode_t BAD_MODES[] = {0644, 0604, 0660, 0620, 0606, 0601, 0444};
    for (size_t i = 0; i < sizeof BAD_MODES / sizeof *BAD_MODES; i++) {
        memset(&err, 0, sizeof err);
        const char *p = write_file("mode.key", GOOD, BAD_MODES[i]);
        rc = lmd_dns_key_load(p, &k, &err);
        char want[64];
        snprintf(want, sizeof want, "mode %04o lets", (unsigned)BAD_MODES[i]);
        CHECK(rc == LMD_EINVAL && !k && strstr(err.msg, want) && strstr(err.msg, "chmod 600") &&
                  strstr(err.msg, "chown root:lmdisc") && strstr(err.msg, p),
              "%o: %s", (unsigned)BAD_MODES[i], err.msg);
    }
    memset(&err, 0, sizeof err);
    CHECK(lmd_dns_key_load(dir, &k, &err) != 0 && strstr(err.msg, "not a regular file"), "%s", err.msg);
    memset(&err, 0, sizeof err);
    CHECK(lmd_dns_key_load("/nonexistent/x.key", &k, &err) == LMD_EIO && strstr(err.msg, "cannot open"), "%s",
          err.msg);

    /* what BIND accepts: other spacing, comments, unquoted names, a final dot */
    static const char *const OK[] = {
        "key h2-key { secret \"" SECRET "\"; algorithm HMAC-SHA256.; };",
        "/* c */ key \"x.example.\" {algorithm hmac-sha512;// y\nsecret \"" SECRET "\";} ; # z",
    };
    for (size_t i = 0; i < sizeof OK / sizeof *OK; i++) {
        memset(&err, 0, sizeof err);
        rc = lmd_dns_key_parse(OK[i], "t", &k, &err);
        CHECK(rc == 0, "%s: %s", OK[i], err.msg);
        lmd_dns_key_free(k);
    }
    /* and what it must refuse, each with its reason */
    static const struct {
        const char *text, *why;
    } BAD[] = {
        {"", "no key statement"},
        {"# only a comment\n", "no key statement"},
        {"key \"a\" { algorithm hmac-sha256; };", "has no secret"},
        {"key \"a\" { secret \"" SECRET "\"; };", "has no algorithm"},
        {"key \"a\" { algorithm hmac-md5; secret \"" SECRET "\"; };", "'hmac-md5' is not supported"},
        {"key \"a\" { algorithm hmac-sha224; secret \"" SECRET "\"; };", "'hmac-sha224' is not supported"},
        {"key \"a\" { algorithm hmac-sha384; secret \"" SECRET "\"; };", "'hmac-sha384' is not supported"},
        {"key \"a\" { algorithm hmac-sha256; secret \"not base64!\"; };", "not base64"},
        {"key \"a\" { algorithm hmac-sha256; secret \"" SECRET "\" };", "';' missing"},
        {"key \"a\" { algorithm hmac-sha256; secret \"" SECRET "\"; }", "';' missing after '}'"},
        {"key \"a\" { algorithm hmac-sha256; secret \"" SECRET "\"; mac x; };", "unknown clause"},
        {"options { };", "only a key statement"},
        {"key \"a\" { algorithm hmac-sha256; secret \"" SECRET "\"; };\nkey \"b\" { algorithm hmac-sha256; "
         "secret \"" SECRET "\"; };",
         ":2: several keys"},
        {"key \"a\" { algorithm hmac-sha256;\n secret \"" SECRET "; };", ":2:"},
        {"key \"\177.x\" { algorithm hmac-sha256; secret \"" SECRET "\"; };", "only letters, digits"},
        {"key \"a b\" { algorithm hmac-sha256; secret \"" SECRET "\"; };", "only letters, digits"},
        {"key \"a..b\" { algorithm hmac-sha256; secret \"" SECRET "\"; };", "not a valid key name"},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) {
        memset(&err, 0, sizeof err);
        k = NULL;
        rc = lmd_dns_key_parse(BAD[i].text, "t", &k, &err);
        CHECK(rc != 0 && !k && strstr(err.msg, BAD[i].why), "[%zu] %s: got '%s'", i, BAD[i].why, err.msg);
        lmd_dns_key_free(k);
    }
}

/* The records of the update section, as a server reads them. */
static ldns_pkt *parse(const lmd_dns_msg *m)
{
    size_t len;
    const uint8_t *w = lmd_dns_msg_wire(m, &len);
    ldns_pkt *p = NULL;
    CHECK(ldns_wire2pkt(&p, w, len) == LDNS_STATUS_OK && p, "wire2pkt");
    return p;
}

static char *rr_text(ldns_pkt *p, size_t i)
{
    ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_authority(p), i);
    char *s = rr ? ldns_rr2str(rr) : strdup("(none)");
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n'))
        s[--n] = '\0';
    for (char *c = s; *c; c++)
        if (*c == '\t')
            *c = ' ';
    return s;
}

static void expect_rrs(ldns_pkt *p, const char *const *want, size_t n)
{
    CHECK(ldns_rr_list_rr_count(ldns_pkt_authority(p)) == n, "%zu records, want %zu",
          ldns_rr_list_rr_count(ldns_pkt_authority(p)), n);
    for (size_t i = 0; i < n; i++) {
        char *s = rr_text(p, i);
        CHECK(strcmp(s, want[i]) == 0, "record %zu:\n  got  %s\n  want %s", i, s, want[i]);
        free(s);
    }
}

static void test_update(void)
{
    lmd_dns_key *k = NULL;
    lmd_err err = {0};
    lmd_dns_key_parse(GOOD, "t", &k, &err);
    lmd_txt txt = {0};
    lmd_txt_parse_arg(&txt, "info=gemma Q4_0", NULL, 0);
    lmd_txt_parse_arg(&txt, "gpu", NULL, 0);
    const char *addrs[] = {"10.77.1.1", "fd77:0:0:1::1"};
    lmd_dns_service svc = {.zone = "sd.lab", .instance = "GPU box 1.a", .type = "_lmserv._tcp", .host = "h1.sd.lab.",
                           .port = 8000, .txt = &txt, .addrs = addrs, .n_addrs = 2, .ttl = 120};
    lmd_dns_msg *m = NULL;
    int rc = lmd_dns_update_build(&svc, LMD_DNS_PUBLISH, k, &m, &err);
    CHECK(rc == 0 && m, "%s", err.msg);
    ldns_pkt *p = m ? parse(m) : NULL;
    if (p) {
        CHECK(ldns_pkt_get_opcode(p) == LDNS_PACKET_UPDATE, "opcode %d", ldns_pkt_get_opcode(p));
        CHECK(!ldns_pkt_rd(p), "RD set on an update");
        ldns_rr *zone = ldns_rr_list_rr(ldns_pkt_question(p), 0);
        char *z = zone ? ldns_rdf2str(ldns_rr_owner(zone)) : NULL;
        CHECK(ldns_pkt_qdcount(p) == 1 && zone && ldns_rr_get_type(zone) == LDNS_RR_TYPE_SOA &&
                  z && strcmp(z, "sd.lab.") == 0, "zone section %s", z ? z : "?");
        free(z);
        CHECK(ldns_pkt_ancount(p) == 0, "prerequisites: %u", ldns_pkt_ancount(p));
        /* deletes of the owner's old records first, then the new ones */
        static const char *const WANT[] = {
            "_lmserv._tcp.sd.lab. 0 NONE PTR GPU\\032box\\0321\\.a._lmserv._tcp.sd.lab.",
            "GPU\\032box\\0321\\.a._lmserv._tcp.sd.lab. 0 ANY SRV \\# 0",
            "GPU\\032box\\0321\\.a._lmserv._tcp.sd.lab. 0 ANY TXT \\# 0",
            "h1.sd.lab. 0 ANY A \\# 0",
            "h1.sd.lab. 0 ANY AAAA \\# 0",
            "_lmserv._tcp.sd.lab. 120 IN PTR GPU\\032box\\0321\\.a._lmserv._tcp.sd.lab.",
            "GPU\\032box\\0321\\.a._lmserv._tcp.sd.lab. 120 IN SRV 0 0 8000 h1.sd.lab.",
            "GPU\\032box\\0321\\.a._lmserv._tcp.sd.lab. 120 IN TXT \"info=gemma Q4_0\" \"gpu\"",
            "h1.sd.lab. 120 IN A 10.77.1.1",
            "h1.sd.lab. 120 IN AAAA fd77:0:0:1::1",
        };
        expect_rrs(p, WANT, sizeof WANT / sizeof *WANT);
        /* signed with the key: a server holding it verifies the MAC */
        size_t len;
        const uint8_t *w = lmd_dns_msg_wire(m, &len);
        ldns_rr *tsig = ldns_pkt_tsig(p);
        char *alg = tsig ? ldns_rdf2str(ldns_rr_rdf(tsig, 0)) : NULL;
        CHECK(tsig && alg && strcmp(alg, "hmac-sha256.") == 0, "TSIG algorithm %s", alg ? alg : "none");
        free(alg);
        CHECK(ldns_pkt_tsig_verify(p, w, len, "h1-key", SECRET, NULL), "TSIG does not verify with the key");
        ldns_pkt_free(p);
        p = parse(m);
        CHECK(!ldns_pkt_tsig_verify(p, w, len, "h1-key", "b3RoZXIgc2VjcmV0IG90aGVyIHNlY3JldCBvdGhlcg==", NULL),
              "TSIG verifies with another secret");
        ldns_pkt_free(p);
    }
    lmd_dns_msg_free(m);

    /* in a shard (issue 20): PTR, SRV and TXT under s3, the host's
     * addresses and the update's zone as before; a shard that is not one
     * plain label is refused */
    svc.shard = "s3";
    rc = lmd_dns_update_build(&svc, LMD_DNS_PUBLISH, k, &m, &err);
    CHECK(rc == 0 && m, "%s", err.msg);
    p = m ? parse(m) : NULL;
    if (p) {
        ldns_rr *zone = ldns_rr_list_rr(ldns_pkt_question(p), 0);
        char *z = zone ? ldns_rdf2str(ldns_rr_owner(zone)) : NULL;
        CHECK(z && strcmp(z, "sd.lab.") == 0, "sharded: zone section %s", z ? z : "?");
        free(z);
        static const char *const SWANT[] = {
            "_lmserv._tcp.s3.sd.lab. 0 NONE PTR GPU\\032box\\0321\\.a._lmserv._tcp.s3.sd.lab.",
            "GPU\\032box\\0321\\.a._lmserv._tcp.s3.sd.lab. 0 ANY SRV \\# 0",
            "GPU\\032box\\0321\\.a._lmserv._tcp.s3.sd.lab. 0 ANY TXT \\# 0",
            "h1.sd.lab. 0 ANY A \\# 0",
            "h1.sd.lab. 0 ANY AAAA \\# 0",
            "_lmserv._tcp.s3.sd.lab. 120 IN PTR GPU\\032box\\0321\\.a._lmserv._tcp.s3.sd.lab.",
            "GPU\\032box\\0321\\.a._lmserv._tcp.s3.sd.lab. 120 IN SRV 0 0 8000 h1.sd.lab.",
            "GPU\\032box\\0321\\.a._lmserv._tcp.s3.sd.lab. 120 IN TXT \"info=gemma Q4_0\" \"gpu\"",
            "h1.sd.lab. 120 IN A 10.77.1.1",
            "h1.sd.lab. 120 IN AAAA fd77:0:0:1::1",
        };
        expect_rrs(p, SWANT, sizeof SWANT / sizeof *SWANT);
        ldns_pkt_free(p);
    }
    lmd_dns_msg_free(m);
    m = NULL;
    svc.shard = "a.b";
    rc = lmd_dns_update_build(&svc, LMD_DNS_PUBLISH, k, &m, &err);
    CHECK(rc != 0 && !m && strstr(err.msg, "shard 'a.b' is not one label"), "%d %s", rc, err.msg);
    svc.shard = NULL;

    /* withdraw: the deletes alone */
    svc.txt = NULL;
    rc = lmd_dns_update_build(&svc, LMD_DNS_WITHDRAW, k, &m, &err);
    CHECK(rc == 0, "%s", err.msg);
    p = rc == 0 ? parse(m) : NULL;
    if (p)
        CHECK(ldns_rr_list_rr_count(ldns_pkt_authority(p)) == 5, "%zu records",
              ldns_rr_list_rr_count(ldns_pkt_authority(p)));
    ldns_pkt_free(p);
    lmd_dns_msg_free(m);
    /* withdraw without the host: another service of the host stays, so its
     * A/AAAA stay (PTR, SRV, TXT deletes only) */
    const char *host = svc.host;
    svc.host = NULL;
    rc = lmd_dns_update_build(&svc, LMD_DNS_WITHDRAW, k, &m, &err);
    CHECK(rc == 0, "%s", err.msg);
    p = rc == 0 ? parse(m) : NULL;
    if (p) {
        CHECK(ldns_rr_list_rr_count(ldns_pkt_authority(p)) == 3, "%zu records",
              ldns_rr_list_rr_count(ldns_pkt_authority(p)));
        for (size_t i = 0; i < ldns_rr_list_rr_count(ldns_pkt_authority(p)); i++) {
            ldns_rr_type t = ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_authority(p), i));
            CHECK(t != LDNS_RR_TYPE_A && t != LDNS_RR_TYPE_AAAA, "record %zu deletes an address", i);
        }
    }
    ldns_pkt_free(p);
    lmd_dns_msg_free(m);
    /* a publish needs the host (the SRV target) */
    rc = lmd_dns_update_build(&svc, LMD_DNS_PUBLISH, k, &m, &err);
    CHECK(rc != 0 && !m && strstr(err.msg, "not a valid host name"), "publish without a host: %d %s", rc, err.msg);
    /* a publish without TXT items (and without addresses): the TXT is one
     * empty string (RFC 6763 6.1) */
    svc.host = host;
    svc.n_addrs = 0;
    rc = lmd_dns_update_build(&svc, LMD_DNS_PUBLISH, k, &m, &err);
    CHECK(rc == 0 && m, "publish with an empty TXT: %d %s", rc, err.msg);
    p = rc == 0 ? parse(m) : NULL;
    if (p) {
        char *s = rr_text(p, 7);
        CHECK(strcmp(s, "GPU\\032box\\0321\\.a._lmserv._tcp.sd.lab. 120 IN TXT \"\"") == 0, "%s", s);
        free(s);
    }
    ldns_pkt_free(p);
    lmd_dns_msg_free(m);
    svc.n_addrs = 2;

    /* refused before anything is built */
    struct {
        lmd_dns_service s;
        const char *why;
    } bad[] = {
        {svc, "not an IPv4 or IPv6 address"},
        {svc, "instance name must be 1 to 63 bytes"},
        {svc, "is not in zone"},
        {svc, "TXT item 'big' is 299 bytes"},
    };
    const char *bad_addrs[] = {"10.77.1.1", "10.77.1.999"};
    bad[0].s.addrs = bad_addrs;
    bad[1].s.instance = "0123456789012345678901234567890123456789012345678901234567890123";
    bad[2].s.host = "h1.elsewhere.org";
    /* lmd_txt_set refuses such an item; a lmd_txt made by hand may have it */
    char value[300];
    memset(value, 'x', sizeof value - 5);
    value[sizeof value - 5] = '\0';
    lmd_txt_item big_item = {.key = (char *)"big", .value = (unsigned char *)value, .value_len = strlen(value),
                             .has_value = true};
    lmd_txt big = {.n = 1, .items = &big_item};
    bad[3].s.txt = &big;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memset(&err, 0, sizeof err);
        m = NULL;
        rc = lmd_dns_update_build(&bad[i].s, LMD_DNS_PUBLISH, k, &m, &err);
        CHECK(rc != 0 && !m && strstr(err.msg, bad[i].why), "[%zu] want '%s', got '%s'", i, bad[i].why, err.msg);
        lmd_dns_msg_free(m);
    }
    CHECK(strcmp(lmd_dns_rcode_name(5), "REFUSED") == 0, "%s", lmd_dns_rcode_name(5));
    CHECK(strcmp(lmd_dns_rcode_name(9), "NOTAUTH") == 0, "%s", lmd_dns_rcode_name(9));
    CHECK(strcmp(lmd_dns_rcode_name(17), "BADKEY") == 0, "%s", lmd_dns_rcode_name(17));
    lmd_txt_free(&txt);
    lmd_dns_key_free(k);
}

/* RFC 9664: the update-lease option in the OPT record, before the TSIG,
 * and the message still verifies; a withdraw carries none. */
static void test_lease(void)
{
    lmd_dns_key *k = NULL;
    lmd_err err = {0};
    lmd_dns_key_parse(GOOD, "t", &k, &err);
    const char *addrs[] = {"10.77.1.1"};
    lmd_dns_service svc = {.zone = "sd.lab", .instance = "h1", .type = "_lmserv._tcp", .host = "h1.sd.lab",
                           .port = 8000, .addrs = addrs, .n_addrs = 1, .ttl = 60, .lease = 900};
    for (int mode = LMD_DNS_PUBLISH; mode <= LMD_DNS_WITHDRAW; mode++) {
        lmd_dns_msg *m = NULL;
        int rc = lmd_dns_update_build(&svc, mode, k, &m, &err);
        CHECK(rc == 0, "%s", err.msg);
        ldns_pkt *p = rc == 0 ? parse(m) : NULL;
        if (!p) {
            lmd_dns_msg_free(m);
            continue;
        }
        ldns_edns_option_list *l = ldns_pkt_edns_get_option_list(p);
        ldns_edns_option *o = l && ldns_edns_option_list_get_count(l) == 1 ? ldns_edns_option_list_get_option(l, 0) : NULL;
        if (mode == LMD_DNS_PUBLISH) {
            static const uint8_t WANT[8] = {0, 0, 3, 0x84, 0, 0, 3, 0x84};
            CHECK(o && ldns_edns_get_code(o) == 2 && ldns_edns_get_size(o) == 8 &&
                      memcmp(ldns_edns_get_data(o), WANT, 8) == 0, "no update-lease option of 900 s");
            CHECK(ldns_pkt_tsig(p) != NULL, "TSIG not last");
        } else {
            CHECK(!o, "a withdraw with a lease");
        }
        size_t len;
        const uint8_t *w = lmd_dns_msg_wire(m, &len);
        CHECK(ldns_pkt_tsig_verify(p, w, len, "h1-key", SECRET, NULL), "TSIG does not verify with the lease option");
        ldns_pkt_free(p);
        lmd_dns_msg_free(m);
    }
    lmd_dns_key_free(k);
}

/* Browsing: a query for LABEL.NAME, and an answer read back as plain data
 * (the instance's raw label from the PTR, SRV port and target, TXT items,
 * addresses, the SOA serial; records of other types skipped). */
static void test_query_and_answer(void)
{
    lmd_dns_msg *m = NULL;
    lmd_err err = {0};
    int rc = lmd_dns_query_build("GPU box.1", "_lmserv._tcp.sd.lab", LMD_DNS_T_SRV, &m, &err);
    CHECK(rc == 0, "%s", err.msg);
    ldns_pkt *p = rc == 0 ? parse(m) : NULL;
    if (p) {
        char *q = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(p), 0)));
        CHECK(q && !strcmp(q, "GPU\\032box\\.1._lmserv._tcp.sd.lab."), "%s", q ? q : "?");
        CHECK(!ldns_pkt_rd(p) && ldns_pkt_get_opcode(p) == LDNS_PACKET_QUERY, "not a plain query");
        free(q);
    }
    ldns_pkt_free(p);
    lmd_dns_msg_free(m);

    static const char *const RRS[] = {
        "_lmserv._tcp.sd.lab. 30 IN PTR GPU\\032box\\.1._lmserv._tcp.sd.lab.",
        "_lmserv._tcp.sd.lab. 30 IN PTR h2._lmserv._tcp.sd.lab.",
        "x._lmserv._tcp.sd.lab. 30 IN SRV 0 0 8000 h1.sd.lab.",
        "x._lmserv._tcp.sd.lab. 30 IN TXT \"model=gemma\" \"gpu\" \"=bad\"",
        "h1.sd.lab. 30 IN A 10.77.1.1",
        "h1.sd.lab. 30 IN AAAA fd77:0:0:1::1",
        "sd.lab. 3600 IN SOA ns.sd.lab. admin.sd.lab. 42 3600 600 86400 30",
    };
    ldns_pkt *ans = ldns_pkt_new();
    ldns_pkt_set_qr(ans, true);
    for (size_t i = 0; i < sizeof RRS / sizeof *RRS; i++) {
        ldns_rr *rr = NULL;
        CHECK(ldns_rr_new_frm_str(&rr, RRS[i], 0, NULL, NULL) == LDNS_STATUS_OK, "%s", RRS[i]);
        ldns_pkt_push_rr(ans, LDNS_SECTION_ANSWER, rr);
    }
    uint8_t *wire = NULL;
    size_t len = 0;
    ldns_pkt2wire(&wire, ans, &len);
    ldns_pkt_free(ans);
    lmd_dns_rr *rrs = NULL;
    size_t n = 0;
    CHECK(lmd_dns_answer_parse(wire, len, LMD_DNS_T_PTR, &rrs, &n, &err) == 0 && n == 2, "%zu PTRs", n);
    if (n == 2) {
        CHECK(!strcmp(rrs[0].label, "GPU box.1"), "label %s", rrs[0].label);
        CHECK(!strcmp(rrs[1].label, "h2") && !strcmp(rrs[1].target, "h2._lmserv._tcp.sd.lab"), "%s %s", rrs[1].label,
              rrs[1].target);
    }
    lmd_dns_rrs_free(rrs, n);
    CHECK(lmd_dns_answer_parse(wire, len, LMD_DNS_T_SRV, &rrs, &n, &err) == 0 && n == 1 && rrs[0].port == 8000 &&
              !strcmp(rrs[0].target, "h1.sd.lab"), "SRV");
    lmd_dns_rrs_free(rrs, n);
    CHECK(lmd_dns_answer_parse(wire, len, LMD_DNS_T_TXT, &rrs, &n, &err) == 0 && n == 1 && rrs[0].txt.n == 2 &&
              lmd_txt_get(&rrs[0].txt, "model") && lmd_txt_get(&rrs[0].txt, "gpu"), "TXT");
    lmd_dns_rrs_free(rrs, n);
    CHECK(lmd_dns_answer_parse(wire, len, LMD_DNS_T_A, &rrs, &n, &err) == 0 && n == 1 &&
              !strcmp(rrs[0].addr, "10.77.1.1"), "A");
    lmd_dns_rrs_free(rrs, n);
    CHECK(lmd_dns_answer_parse(wire, len, LMD_DNS_T_AAAA, &rrs, &n, &err) == 0 && n == 1 &&
              !strcmp(rrs[0].addr, "fd77:0:0:1::1"), "AAAA");
    lmd_dns_rrs_free(rrs, n);
    CHECK(lmd_dns_answer_parse(wire, len, LMD_DNS_T_SOA, &rrs, &n, &err) == 0 && n == 1 && rrs[0].serial == 42,
          "SOA");
    lmd_dns_rrs_free(rrs, n);
    CHECK(lmd_dns_answer_parse(wire, 5, LMD_DNS_T_SOA, &rrs, &n, &err) != 0, "a truncated answer parsed");
    free(wire);
}

/* Every algorithm a key file may name signs, and the signature verifies. */
static void test_every_algorithm_signs(void)
{
    static const char *const ALGS[] = {"hmac-sha256", "hmac-sha512", "hmac-sha1"};
    const char *addrs[] = {"10.77.1.1"};
    lmd_dns_service svc = {.zone = "sd.lab", .instance = "h1", .type = "_lmserv._tcp", .host = "h1.sd.lab",
                           .port = 8000, .addrs = addrs, .n_addrs = 1, .ttl = 60};
    for (size_t i = 0; i < sizeof ALGS / sizeof *ALGS; i++) {
        char text[256];
        snprintf(text, sizeof text, "key \"k\" { algorithm %s; secret \"" SECRET "\"; };", ALGS[i]);
        lmd_dns_key *k = NULL;
        lmd_dns_msg *m = NULL;
        lmd_err err = {0};
        int rc = lmd_dns_key_parse(text, "t", &k, &err);
        if (rc == 0)
            rc = lmd_dns_update_build(&svc, LMD_DNS_PUBLISH, k, &m, &err);
        CHECK(rc == 0, "%s: %s", ALGS[i], err.msg);
        ldns_pkt *p = rc == 0 ? parse(m) : NULL;
        if (p) {
            size_t len;
            const uint8_t *w = lmd_dns_msg_wire(m, &len);
            CHECK(ldns_pkt_tsig_verify(p, w, len, "k", SECRET, NULL), "%s does not verify", ALGS[i]);
        }
        ldns_pkt_free(p);
        lmd_dns_msg_free(m);
        lmd_dns_key_free(k);
    }
}

/* An instance is one label below TYPE.ZONE: an escaped dot is part of a
 * label, so "x\._lmserv._tcp.sd.lab" is the label "x._lmserv" under
 * _tcp.sd.lab, not an instance of _lmserv._tcp. */
static void test_instance_name(void)
{
    static const struct {
        const char *name;
        bool ok;
    } cases[] = {
        {"h1._lmserv._tcp.sd.lab", true},
        {"GPU\\032box\\0321\\.a._lmserv._tcp.sd.lab", true},
        {"a\\\\._lmserv._tcp.sd.lab", true},      /* "a\\" then the separator */
        {"x\\._lmserv._tcp.sd.lab", false},       /* the separator escaped */
        {"x\\046_lmserv._tcp.sd.lab", false},     /* the same as \DDD: no separator */
        {"a.b._lmserv._tcp.sd.lab", false},
        {"a\\000b._lmserv._tcp.sd.lab", false},
        {"_lmserv._tcp.sd.lab", false},
        {"h1._other._tcp.sd.lab", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(lmd_dns_instance_name(cases[i].name, "_lmserv._tcp.sd.lab") == cases[i].ok, "%s: want %d",
              cases[i].name, cases[i].ok);
}

/* The short host name: one function (base/names.c), one fallback; what
 * DNS publishes is it when it is a label, nothing else. */
static void short_names(const char *set, const char *want, int want_rc, int want_dns)
{
    char got[256] = "", dns[64] = "";
    if (set && sethostname(set, strlen(set)) != 0) {
        CHECK(0, "sethostname(%s)", set);
        return;
    }
    int rc = lmd_short_hostname(got, sizeof got);
    CHECK(rc == want_rc && strcmp(got, want) == 0, "%s: %s (%d), want %s (%d)", set, got, rc, want, want_rc);
    rc = lmd_dns_short_host(dns, sizeof dns);
    CHECK(rc == want_dns && (rc || strcmp(dns, want) == 0), "%s for DNS: %s (%d), want %d", set, dns, rc, want_dns);
    char name[80], expect[80];
    CHECK(lmd_default_name(8080, name, sizeof name) == 0, "a default name");
    snprintf(expect, sizeof expect, "%.56s:8080", want);
    CHECK(strcmp(name, expect) == 0, "%s: default name %s, want %s", set, name, expect);
}

static void test_short_host(void)
{
    char h[256] = "", want[256];
    CHECK(gethostname(h, sizeof h - 1) == 0, "gethostname");
    snprintf(want, sizeof want, "%.*s", (int)strcspn(h, "."), h);
    if (want[0])
        short_names(NULL, want, 0, strspn(want, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") ==
                                        strlen(want) && strlen(want) <= 63 ? 0 : LMD_EINVAL);
    char tiny[2];
    CHECK(lmd_short_hostname(tiny, sizeof tiny) == LMD_EINVAL || !want[0] || strlen(want) < 2, "too small a buffer");
    /* other names, in a UTS namespace of a child (as root; else skipped) */
    pid_t pid = fork();
    if (pid == 0) {
        if (unshare(CLONE_NEWUTS) != 0)
            _exit(77);
        short_names("gpu-1.sd.example.org", "gpu-1", 0, 0);
        short_names("gpu_1", "gpu_1", 0, LMD_EINVAL);                   /* not a DNS label */
        short_names("", LMD_HOST_FALLBACK, LMD_ENOTFOUND, LMD_ENOTFOUND); /* no name */
        short_names(".x", LMD_HOST_FALLBACK, LMD_ENOTFOUND, LMD_ENOTFOUND);
        _exit(failures ? 1 : 0);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st), "the child ran");
    if (WEXITSTATUS(st) == 77)
        printf("short host names: no UTS namespace (not root): the machine's name only\n");
    else
        CHECK(WEXITSTATUS(st) == 0, "the short names of other host names (see above)");
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_key_files();
    test_update();
    test_every_algorithm_signs();
    test_lease();
    test_query_and_answer();
    test_instance_name();
    test_short_host();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
