/* Signed announcements (src/trust/): sign, then verify what a peer would
 * resolve, and change one thing at a time.  No network, no files but one
 * temporary directory.  Built against the core objects:
 *
 *   add_executable(test_trust_sign tests/unit/trust/test_sign.c)
 *   target_link_libraries(test_trust_sign PRIVATE lmdisc_core)
 *   add_test(NAME unit_trust_sign COMMAND test_trust_sign)
 *   set_tests_properties(unit_trust_sign PROPERTIES LABELS unit TIMEOUT 60)
 */
#include "base/txt.h"
#include "trust/trust.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../check.h"

#define NOW ((int64_t)1700000000)
#define DAY 86400

static lmd_trust_secret *fleet_a, *fleet_b, *host_key, *other_host;
static lmd_trust_pubkey fleet_a_pub, fleet_b_pub, host_pub, other_pub;
static lmd_trust_cert cert; /* host_key by fleet_a, NOW - 1 day .. NOW + 30 days, any name */
static const char *const ANY[] = {"*"};
static uint64_t issued = (uint64_t)NOW * 1000; /* what every signature here is issued at, each later */

static int issue(const lmd_trust_secret *fleet, const lmd_trust_pubkey *host, int64_t nb, int64_t na,
                 lmd_trust_cert *out, lmd_err *err)
{
    return lmd_trust_cert_issue(fleet, host, (uint32_t)nb, (uint32_t)na, 42, ANY, 1, out, err);
}

static const char *const ADDRS[] = {"192.168.1.10", "2001:db8::10", "fe80::1234:56ff:fe78:9abc"};
#define N_ADDRS 3

/* The announcement as the agent would sign it. */
struct ann {
    char name[64], type[32], domain[32], host[64];
    uint16_t port;
    lmd_txt txt;
};

static void ann_init(struct ann *a)
{
    memset(a, 0, sizeof *a);
    strcpy(a->name, "h1:8000");
    strcpy(a->type, "_lmserv._tcp");
    strcpy(a->domain, "local");
    strcpy(a->host, "h1.local");
    a->port = 8000;
    lmd_txt_parse_arg(&a->txt, "info=gemma-2b-it Q4_0", NULL, 0);
    lmd_txt_parse_arg(&a->txt, "model=gemma", NULL, 0);
    lmd_txt_parse_arg(&a->txt, "gpu", NULL, 0);
}

static lmd_trust_announcement view(const struct ann *a)
{
    return (lmd_trust_announcement){a->name, a->type, a->domain, a->port, a->host, &a->txt};
}

static int sign(struct ann *a, const lmd_trust_secret *k, const lmd_trust_cert *c, uint32_t expiry, lmd_err *err)
{
    lmd_trust_announcement v = view(a);
    return lmd_trust_sign(k, c, &v, ADDRS, N_ADDRS, expiry, ++issued, &a->txt, err);
}

static enum lmd_trust_status verify_from(const struct ann *a, const lmd_trust_fleet *f, const char *addr, int64_t now,
                                         lmd_trust_result *res)
{
    lmd_trust_announcement v = view(a);
    const char *addrs[] = {addr};
    int rc = lmd_trust_verify(f, &v, addrs, 1, now, res);
    if ((rc == 0) != (res->status == LMD_TRUST_OK))
        return LMD_TRUST_ERROR; /* the return code and the status must agree */
    return res->status;
}

static enum lmd_trust_status verify(const struct ann *a, const lmd_trust_fleet *f, lmd_trust_result *res)
{
    return verify_from(a, f, "192.168.1.10", NOW, res);
}

/* A signed copy of the default announcement. */
static void signed_ann(struct ann *a)
{
    lmd_err err = {0};
    ann_init(a);
    int rc = sign(a, host_key, &cert, (uint32_t)(NOW + 3600), &err);
    CHECK(rc == 0, "sign: %s", lmd_err_text(&err));
}

static lmd_trust_fleet *fleet_of(const lmd_trust_pubkey *k1, const lmd_trust_pubkey *k2)
{
    lmd_trust_fleet *f;
    lmd_trust_fleet_load(NULL, 0, &f, NULL);
    if (k1)
        lmd_trust_fleet_add(f, k1);
    if (k2)
        lmd_trust_fleet_add(f, k2);
    return f;
}

static void expect(enum lmd_trust_status got, enum lmd_trust_status want, const lmd_trust_result *res,
                   const char *what)
{
    CHECK(got == want, "%s: got %s (%s), want %s", what, lmd_trust_status_name(got), res->reason,
          lmd_trust_status_name(want));
    if (want != LMD_TRUST_OK)
        CHECK(strncmp(res->reason, lmd_trust_status_name(want), strlen(lmd_trust_status_name(want))) == 0,
              "%s: the reason '%s' does not start with the status name", what, res->reason);
}

static void test_sign_then_verify(const lmd_trust_fleet *f)
{
    struct ann a;
    lmd_trust_result res;
    signed_ann(&a);
    expect(verify(&a, f, &res), LMD_TRUST_OK, &res, "signed");
    char hid[LMD_TRUST_ID_HEX], fid[LMD_TRUST_ID_HEX];
    lmd_trust_id_hex(host_pub.pk, hid);
    lmd_trust_id_hex(fleet_a_pub.pk, fid);
    CHECK(!strcmp(res.host_id, hid) && !strcmp(res.fleet_id, fid), "identity %s/%s, want %s/%s", res.host_id,
          res.fleet_id, hid, fid);
    CHECK(res.expiry == NOW + 3600 && res.valid_until == NOW + 3600, "expiry %u valid_until %u", res.expiry,
          res.valid_until);
    /* Every signed address, in any text form a resolver may give it. */
    const char *forms[] = {"192.168.1.10", "2001:db8::10", "2001:0db8:0:0::0010", "fe80::1234:56ff:fe78:9abc%eth0",
                           "::ffff:192.168.1.10"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        expect(verify_from(&a, f, forms[i], NOW, &res), LMD_TRUST_OK, &res, forms[i]);
    /* All of them at once. */
    lmd_trust_announcement v = view(&a);
    CHECK(lmd_trust_verify(f, &v, ADDRS, N_ADDRS, NOW, &res) == 0, "all addresses: %s", res.reason);
    /* The policy does not need to see our keys. */
    lmd_trust_txt_strip(&a.txt);
    CHECK(a.txt.n == 3 && !lmd_txt_get(&a.txt, "lmd-sig"), "strip left %zu items", a.txt.n);
    expect(verify(&a, f, &res), LMD_TRUST_UNSIGNED, &res, "stripped");
    lmd_txt_free(&a.txt);
}

/* Change one field after signing: the signature no longer matches. */
static void test_every_field_is_signed(const lmd_trust_fleet *f)
{
    struct ann a;
    lmd_trust_result res;
#define FIELD(what, change)                                                                                          \
    do {                                                                                                             \
        signed_ann(&a);                                                                                              \
        change;                                                                                                      \
        expect(verify(&a, f, &res), LMD_TRUST_BAD_SIGNATURE, &res, what);                                           \
        lmd_txt_free(&a.txt);                                                                                        \
    } while (0)
    FIELD("name", strcpy(a.name, "h2:8000"));
    FIELD("name suffix", strcpy(a.name, "h1:8000 #2"));
    FIELD("type", strcpy(a.type, "_lmsrv._tcp"));
    FIELD("domain", strcpy(a.domain, "example.org"));
    FIELD("port", a.port = 8001);
    FIELD("host", strcpy(a.host, "h2.local"));
    FIELD("TXT value", lmd_txt_parse_arg(&a.txt, "model=llama", NULL, 0));
    FIELD("TXT value case", lmd_txt_parse_arg(&a.txt, "model=Gemma", NULL, 0));
    FIELD("TXT value empty", lmd_txt_parse_arg(&a.txt, "model=", NULL, 0));
    FIELD("TXT bare key gets a value", lmd_txt_parse_arg(&a.txt, "gpu=", NULL, 0));
    FIELD("TXT key renamed", (lmd_txt_remove(&a.txt, "gpu"), lmd_txt_parse_arg(&a.txt, "cpu", NULL, 0)));
    FIELD("TXT key added", lmd_txt_parse_arg(&a.txt, "status=draining", NULL, 0));
    FIELD("TXT key removed", lmd_txt_remove(&a.txt, "info"));
    FIELD("TXT key removed (bare)", lmd_txt_remove(&a.txt, "gpu"));
    /* Fields inside lmd-sig: its expiry and the signed addresses. */
    lmd_trust_cert c;
    lmd_trust_sig s;
    char compact[LMD_TRUST_SIG_COMPACT_MAX + 1];
    FIELD("expiry", (lmd_trust_txt_get(&a.txt, &c, &s, NULL), s.expiry += 60, lmd_trust_sig_compact(&s, compact),
                     lmd_txt_set(&a.txt, "lmd-sig", compact, strlen(compact), true, NULL, 0)));
    FIELD("a signed address", (lmd_trust_txt_get(&a.txt, &c, &s, NULL), s.addrs[0].b[3] ^= 1,
                               lmd_trust_sig_compact(&s, compact),
                               lmd_txt_set(&a.txt, "lmd-sig", compact, strlen(compact), true, NULL, 0)));
    FIELD("an address added", (lmd_trust_txt_get(&a.txt, &c, &s, NULL), lmd_trust_ip_parse("10.9.9.9",
                               &s.addrs[s.n_addrs++]), lmd_trust_sig_compact(&s, compact),
                               lmd_txt_set(&a.txt, "lmd-sig", compact, strlen(compact), true, NULL, 0)));
    /* The certificate it was presented with is signed too: another valid
     * certificate of the same host key does not match. */
    lmd_trust_cert c2;
    issue(fleet_a, &host_pub, NOW - DAY, NOW + 60 * DAY, &c2, NULL);
    char cc[LMD_TRUST_CERT_COMPACT_MAX + 1];
    lmd_trust_cert_compact(&c2, cc);
    FIELD("another certificate", lmd_txt_set(&a.txt, "lmd-cert", cc, strlen(cc), true, NULL, 0));
#undef FIELD
}

/* What does not change the meaning does not break the signature. */
static void test_what_is_not_significant(const lmd_trust_fleet *f)
{
    struct ann a, b;
    lmd_trust_result res;
    signed_ann(&a);
    /* The same TXT in another order, keys in another case (RFC 6763 6.4),
     * DNS names in another case and with a trailing dot. */
    ann_init(&b);
    lmd_txt_free(&b.txt);
    lmd_txt_parse_arg(&b.txt, "lmd-sig=x", NULL, 0);
    lmd_txt_parse_arg(&b.txt, "GPU", NULL, 0);
    lmd_txt_parse_arg(&b.txt, "Model=gemma", NULL, 0);
    lmd_txt_parse_arg(&b.txt, "lmd-cert=x", NULL, 0);
    lmd_txt_parse_arg(&b.txt, "info=gemma-2b-it Q4_0", NULL, 0);
    lmd_txt_set(&b.txt, "lmd-cert", lmd_txt_get(&a.txt, "lmd-cert")->value,
                lmd_txt_get(&a.txt, "lmd-cert")->value_len, true, NULL, 0);
    lmd_txt_set(&b.txt, "LMD-SIG", lmd_txt_get(&a.txt, "lmd-sig")->value, lmd_txt_get(&a.txt, "lmd-sig")->value_len,
                true, NULL, 0);
    strcpy(b.host, "H1.local.");
    strcpy(b.type, "_LMSERV._tcp.");
    strcpy(b.domain, "Local.");
    expect(verify(&b, f, &res), LMD_TRUST_OK, &res, "TXT order, key case, DNS name case");
    lmd_txt_free(&b.txt);
    lmd_txt_free(&a.txt);

    /* Addresses signed in another order, in other text forms, with
     * duplicates: the same bytes. */
    ann_init(&a);
    ann_init(&b);
    const char *shuffled[] = {"fe80::1234:56ff:fe78:9abc%eth1", "192.168.1.10", "2001:db8:0::10", "192.168.1.10",
                              "::ffff:192.168.1.10"};
    lmd_trust_announcement va = view(&a), vb = view(&b);
    lmd_trust_sign(host_key, &cert, &va, ADDRS, N_ADDRS, (uint32_t)(NOW + 60), issued, &a.txt, NULL);
    lmd_trust_sign(host_key, &cert, &vb, shuffled, 5, (uint32_t)(NOW + 60), issued, &b.txt, NULL);
    CHECK(lmd_txt_equal(&a.txt, &b.txt), "address order changed lmd-sig");
    unsigned char *m1 = NULL, *m2 = NULL;
    size_t l1 = 0, l2 = 0;
    lmd_trust_cert c;
    lmd_trust_sig s1, s2;
    lmd_trust_txt_get(&a.txt, &c, &s1, NULL);
    lmd_trust_txt_get(&b.txt, &c, &s2, NULL);
    CHECK(s1.n_addrs == 3, "%zu addresses signed", s1.n_addrs);
    lmd_trust_canonical(&va, &c, &s1, &m1, &l1);
    lmd_trust_canonical(&vb, &c, &s2, &m2, &l2);
    CHECK(m1 && m2 && l1 == l2 && !memcmp(m1, m2, l1), "canonical bytes differ");
    free(m1);
    free(m2);
    lmd_txt_free(&a.txt);
    lmd_txt_free(&b.txt);
}

static void test_addresses(const lmd_trust_fleet *f)
{
    struct ann a;
    lmd_trust_result res;
    signed_ann(&a);
    expect(verify_from(&a, f, "192.168.1.11", NOW, &res), LMD_TRUST_ADDRESS_NOT_SIGNED, &res, "other IPv4");
    CHECK(strstr(res.reason, "192.168.1.11") != NULL, "reason names the address: %s", res.reason);
    expect(verify_from(&a, f, "2001:db8::11", NOW, &res), LMD_TRUST_ADDRESS_NOT_SIGNED, &res, "other IPv6");
    expect(verify_from(&a, f, "h1.local", NOW, &res), LMD_TRUST_ADDRESS_NOT_SIGNED, &res, "not an address");
    /* One unsigned address among signed ones is enough to refuse. */
    const char *mixed[] = {"192.168.1.10", "10.6.6.6"};
    lmd_trust_announcement v = view(&a);
    CHECK(lmd_trust_verify(f, &v, mixed, 2, NOW, &res) != 0 && res.status == LMD_TRUST_ADDRESS_NOT_SIGNED,
          "mixed: %s", res.reason);
    CHECK(lmd_trust_verify(f, &v, NULL, 0, NOW, &res) != 0 && res.status == LMD_TRUST_ADDRESS_NOT_SIGNED,
          "none: %s", res.reason);
    /* The filter the agent can apply first. */
    lmd_trust_cert c;
    lmd_trust_sig s;
    CHECK(lmd_trust_txt_get(&a.txt, &c, &s, NULL) == LMD_TRUST_OK, "txt_get");
    CHECK(lmd_trust_sig_has_addr(&s, "fe80::1234:56ff:fe78:9abc%wlan0") && !lmd_trust_sig_has_addr(&s, "10.6.6.6"),
          "sig_has_addr");
    lmd_txt_free(&a.txt);

    /* Signing: at least one address, all parseable, within the budget. */
    lmd_err err = {0};
    ann_init(&a);
    v = view(&a);
    CHECK(lmd_trust_sign(host_key, &cert, &v, NULL, 0, (uint32_t)NOW, ++issued, &a.txt, &err) == LMD_EINVAL,
          "no address");
    const char *bad[] = {"192.168.1.300"};
    CHECK(lmd_trust_sign(host_key, &cert, &v, bad, 1, (uint32_t)NOW, ++issued, &a.txt, &err) == LMD_EINVAL &&
              strstr(err.msg, "192.168.1.300"),
          "bad address: %s", err.msg);
    const char *many[9] = {"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4", "2001:db8::5",
                           "2001:db8::6", "10.0.0.1", "10.0.0.2", "10.0.0.3"};
    CHECK(lmd_trust_sign(host_key, &cert, &v, many, 9, (uint32_t)NOW, ++issued, &a.txt, &err) == 0,
          "6 IPv6 + 3 IPv4: %s", err.msg);
    const lmd_txt_item *it = lmd_txt_get(&a.txt, "lmd-sig");
    CHECK(it && it->value_len == LMD_TRUST_SIG_COMPACT_MAX && 8 + it->value_len == LMD_TXT_ITEM_MAX,
          "the largest lmd-sig is %zu characters", it ? it->value_len : 0);
    many[8] = "2001:db8::8";
    CHECK(lmd_trust_sign(host_key, &cert, &v, many, 9, (uint32_t)NOW, ++issued, &a.txt, &err) == LMD_EINVAL &&
              strstr(err.msg, "at most 108"),
          "7 IPv6: %s", err.msg);
    lmd_txt_free(&a.txt);
}

static void test_fleets_and_rotation(void)
{
    struct ann a;
    lmd_trust_result res;
    lmd_trust_fleet *only_a = fleet_of(&fleet_a_pub, NULL), *only_b = fleet_of(&fleet_b_pub, NULL);
    lmd_trust_fleet *both = fleet_of(&fleet_b_pub, &fleet_a_pub), *none = fleet_of(NULL, NULL);
    signed_ann(&a);
    expect(verify(&a, only_b, &res), LMD_TRUST_UNKNOWN_FLEET, &res, "other fleet");
    expect(verify(&a, none, &res), LMD_TRUST_UNKNOWN_FLEET, &res, "no fleet");
    expect(verify(&a, both, &res), LMD_TRUST_OK, &res, "old and new fleet key, signed by the old");
    lmd_txt_free(&a.txt);

    /* The same host certified by the new fleet key. */
    lmd_trust_cert cb;
    CHECK(issue(fleet_b, &host_pub, NOW - DAY, NOW + DAY, &cb, NULL) == 0, "issue");
    ann_init(&a);
    CHECK(sign(&a, host_key, &cb, (uint32_t)(NOW + 600), NULL) == 0, "sign with the new certificate");
    expect(verify(&a, both, &res), LMD_TRUST_OK, &res, "old and new fleet key, signed by the new");
    expect(verify(&a, only_b, &res), LMD_TRUST_OK, &res, "new fleet key only");
    expect(verify(&a, only_a, &res), LMD_TRUST_UNKNOWN_FLEET, &res, "old fleet key only");
    lmd_txt_free(&a.txt);

    /* A host cannot present another host's certificate. */
    lmd_err err = {0};
    ann_init(&a);
    CHECK(sign(&a, other_host, &cert, (uint32_t)(NOW + 600), &err) == LMD_EINVAL &&
              strstr(err.msg, "certificate is for host key"),
          "another host's certificate: %s", err.msg);
    /* ... nor forge one: its key signs, the certificate names another. */
    lmd_trust_cert forged = cert;
    memcpy(forged.host_pk, other_pub.pk, sizeof forged.host_pk);
    CHECK(sign(&a, other_host, &forged, (uint32_t)(NOW + 600), &err) == 0, "sign: %s", err.msg);
    expect(verify(&a, both, &res), LMD_TRUST_BAD_CERT, &res, "forged certificate");
    lmd_txt_free(&a.txt);

    /* A byte of the certificate changed in transit. */
    signed_ann(&a);
    const lmd_txt_item *it = lmd_txt_get(&a.txt, "lmd-cert");
    it->value[10] = it->value[10] == 'A' ? 'B' : 'A'; /* in the host key */
    expect(verify(&a, both, &res), LMD_TRUST_BAD_CERT, &res, "altered certificate");
    it->value[10] = it->value[10] == 'A' ? 'B' : 'A';
    it->value[60] = it->value[60] == 'A' ? 'B' : 'A'; /* in the fleet id */
    expect(verify(&a, both, &res), LMD_TRUST_UNKNOWN_FLEET, &res, "altered fleet id");
    lmd_txt_free(&a.txt);
    lmd_trust_fleet_free(only_a);
    lmd_trust_fleet_free(only_b);
    lmd_trust_fleet_free(both);
    lmd_trust_fleet_free(none);
}

static void test_times(const lmd_trust_fleet *f)
{
    struct ann a;
    lmd_trust_result res;
    signed_ann(&a); /* signature until NOW + 1 h; certificate NOW - 1 d .. NOW + 30 d */
    expect(verify_from(&a, f, ADDRS[0], NOW + 3599, &res), LMD_TRUST_OK, &res, "last second");
    expect(verify_from(&a, f, ADDRS[0], NOW + 3600, &res), LMD_TRUST_SIG_EXPIRED, &res, "signature expired");
    expect(verify_from(&a, f, ADDRS[0], NOW + 31 * DAY, &res), LMD_TRUST_CERT_EXPIRED, &res, "certificate expired");
    expect(verify_from(&a, f, ADDRS[0], NOW - 2 * DAY, &res), LMD_TRUST_CERT_NOT_YET_VALID, &res,
           "certificate not yet valid");
    lmd_txt_free(&a.txt);

    /* A signature that lasts too long is a replay waiting to happen. */
    lmd_err err = {0};
    ann_init(&a);
    CHECK(sign(&a, host_key, &cert, (uint32_t)(NOW + 2 * DAY), &err) == 0, "sign: %s", err.msg);
    expect(verify(&a, f, &res), LMD_TRUST_SIG_TOO_FAR, &res, "two days ahead");
    lmd_txt_free(&a.txt);
    ann_init(&a);
    sign(&a, host_key, &cert, (uint32_t)(NOW + LMD_TRUST_SIG_MAX_AHEAD), &err);
    expect(verify(&a, f, &res), LMD_TRUST_OK, &res, "24 h ahead");
    lmd_txt_free(&a.txt);

    /* valid_until: the earlier of the signature's and the certificate's end. */
    lmd_trust_cert shortc;
    issue(fleet_a, &host_pub, NOW - 60, NOW + 600, &shortc, NULL);
    ann_init(&a);
    sign(&a, host_key, &shortc, (uint32_t)(NOW + 3600), &err);
    expect(verify(&a, f, &res), LMD_TRUST_OK, &res, "short certificate");
    CHECK(res.valid_until == NOW + 600 && res.expiry == NOW + 3600, "valid_until %u", res.valid_until);
    lmd_txt_free(&a.txt);
    CHECK(issue(fleet_a, &host_pub, NOW, NOW, &shortc, &err) == LMD_EINVAL, "an empty period is refused");
}

static void test_unsigned_and_malformed(const lmd_trust_fleet *f)
{
    struct ann a;
    lmd_trust_result res;
    ann_init(&a);
    expect(verify(&a, f, &res), LMD_TRUST_UNSIGNED, &res, "unsigned");
    lmd_txt_free(&a.txt);
    signed_ann(&a);
    lmd_txt_remove(&a.txt, "lmd-sig");
    expect(verify(&a, f, &res), LMD_TRUST_MALFORMED, &res, "no lmd-sig");
    lmd_txt_free(&a.txt);
    signed_ann(&a);
    lmd_txt_parse_arg(&a.txt, "lmd-cert=AAAA", NULL, 0);
    expect(verify(&a, f, &res), LMD_TRUST_MALFORMED, &res, "short lmd-cert");
    lmd_txt_free(&a.txt);
    signed_ann(&a);
    lmd_txt_parse_arg(&a.txt, "lmd-sig", NULL, 0);
    expect(verify(&a, f, &res), LMD_TRUST_MALFORMED, &res, "bare lmd-sig");
    lmd_txt_free(&a.txt);
    signed_ann(&a);
    const lmd_txt_item *it = lmd_txt_get(&a.txt, "lmd-sig");
    it->value[10] = '*';
    expect(verify(&a, f, &res), LMD_TRUST_MALFORMED, &res, "lmd-sig not base64");
    lmd_txt_free(&a.txt);
    signed_ann(&a);
    it = lmd_txt_get(&a.txt, "lmd-sig");
    it->value[40] = it->value[40] == 'A' ? 'B' : 'A';
    expect(verify(&a, f, &res), LMD_TRUST_BAD_SIGNATURE, &res, "a byte of the signature");
    lmd_txt_free(&a.txt);
}

static void test_formats_and_budget(void)
{
    char cc[LMD_TRUST_CERT_COMPACT_MAX + 1];
    lmd_trust_cert back;
    char why[160];
    lmd_trust_cert_compact(&cert, cc);
    CHECK(strlen(cc) == 164 && !strpbrk(cc, "= \n"), "compact certificate (one name, '*') '%s'", cc);
    CHECK(lmd_trust_cert_parse_compact(cc, strlen(cc), &back, why, sizeof why) == 0 &&
              !memcmp(&back, &cert, sizeof back),
          "compact round trip: %s", why);
    /* lmd-sig sizes: 1 IPv4; 1 IPv4 and 2 IPv6. */
    lmd_trust_sig s = {.expiry = 1, .n_addrs = 1};
    char sc[LMD_TRUST_SIG_COMPACT_MAX + 1];
    lmd_trust_ip_parse("10.0.0.1", &s.addrs[0]);
    lmd_trust_sig_compact(&s, sc);
    CHECK(strlen(sc) == 108, "lmd-sig with 1 IPv4: %zu", strlen(sc));
    lmd_trust_ip_parse("2001:db8::1", &s.addrs[1]);
    lmd_trust_ip_parse("fe80::1", &s.addrs[2]);
    s.n_addrs = 3;
    lmd_trust_sig_compact(&s, sc);
    CHECK(strlen(sc) == 151, "lmd-sig with 1 IPv4 + 2 IPv6: %zu", strlen(sc));
    lmd_trust_sig s2;
    CHECK(lmd_trust_sig_parse_compact(sc, strlen(sc), &s2, why, sizeof why) == 0 && s2.n_addrs == 3 &&
              s2.expiry == 1 && s2.addrs[0].family == 6 && s2.addrs[2].family == 4,
          "lmd-sig round trip: %s", why);

    /* The whole record: the operator's keys get what the signature leaves. */
    struct ann a;
    lmd_err err = {0};
    ann_init(&a);
    lmd_txt_free(&a.txt);
    char big[250];
    memset(big, 'x', sizeof big);
    for (int i = 0; i < 4; i++) { /* 4 items of 1 + 3 + 236 = 960 bytes */
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        big[0] = 'a';
        lmd_txt_set(&a.txt, key, big, 236, true, NULL, 0);
    }
    size_t operator_bytes = lmd_txt_wire_size(&a.txt);
    lmd_trust_announcement v = view(&a);
    int rc = lmd_trust_sign(host_key, &cert, &v, ADDRS, N_ADDRS, (uint32_t)(NOW + 60), ++issued, &a.txt, &err);
    CHECK(rc == 0, "%zu operator bytes and a signature: %s", operator_bytes, err.msg);
    CHECK(lmd_txt_check_record(&a.txt, NULL, 0) == 0, "the signed record fits: %zu bytes",
          lmd_txt_wire_size(&a.txt));
    printf("# TXT: %zu operator bytes + %zu for lmd-cert and lmd-sig (1 IPv4, 2 IPv6) = %zu of %d\n",
           operator_bytes, lmd_txt_wire_size(&a.txt) - operator_bytes, lmd_txt_wire_size(&a.txt),
           LMD_TXT_RECORD_MAX);
    CHECK(lmd_txt_wire_size(&a.txt) - operator_bytes == 174 + 160, "signature bytes %zu",
          lmd_txt_wire_size(&a.txt) - operator_bytes);
    lmd_txt_parse_arg(&a.txt, "more=0123456789012345678901234567890123456789", NULL, 0);
    lmd_txt_parse_arg(&a.txt, "evenmore=0123456789012345678901234567890123456789", NULL, 0);
    lmd_txt_parse_arg(&a.txt, "toomuch=0123456789012345678901234567890123456789", NULL, 0);
    v = view(&a);
    rc = lmd_trust_sign(host_key, &cert, &v, ADDRS, N_ADDRS, (uint32_t)(NOW + 60), ++issued, &a.txt, &err);
    CHECK(rc == LMD_ETXT && strstr(err.msg, "1300"), "too big: %d %s", rc, err.msg);
    lmd_txt_free(&a.txt);
}

static void test_key_files(void)
{
    char dir[] = "/tmp/lmd-trust-XXXXXX", prefix[64], path[80];
    lmd_err err = {0};
    lmd_trust_pubkey pub, pub2;
    lmd_trust_secret *k = NULL;
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(prefix, sizeof prefix, "%s/h", dir);
    CHECK(lmd_trust_keygen(prefix, &pub, &err) == 0, "keygen: %s", err.msg);
    CHECK(lmd_trust_keygen(prefix, &pub, &err) != 0 && strstr(err.msg, "already exists"), "again: %s", err.msg);
    snprintf(path, sizeof path, "%s.key", prefix);
    CHECK(lmd_trust_secret_load(path, &k, &err) == 0, "load: %s", err.msg);
    lmd_trust_secret_pubkey(k, &pub2);
    CHECK(!memcmp(pub.pk, pub2.pk, sizeof pub.pk), "the secret key's public half");
    lmd_trust_secret_free(k);
    /* the service's group may read it (root:lmdisc 0640); others may not */
    chmod(path, 0640);
    CHECK(lmd_trust_secret_load(path, &k, &err) == 0, "0640: %s", err.msg);
    lmd_trust_secret_free(k);
    k = NULL;
    static const mode_t BAD[] = {0644, 0604, 0660};
    for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) {
        char want[32];
        snprintf(want, sizeof want, "mode %04o", (unsigned)BAD[i]);
        memset(&err, 0, sizeof err);
        chmod(path, BAD[i]);
        CHECK(lmd_trust_secret_load(path, &k, &err) != 0 && !k && strstr(err.msg, want) && strstr(err.msg, path) &&
                  strstr(err.msg, "chmod 600"),
              "%o: %s", (unsigned)BAD[i], err.msg);
    }
    unlink(path);
    snprintf(path, sizeof path, "%s.pub", prefix);
    CHECK(lmd_trust_pubkey_load(path, &pub2, &err) == 0 && !memcmp(pub.pk, pub2.pk, sizeof pub.pk), "pub: %s",
          err.msg);
    unlink(path);
    snprintf(path, sizeof path, "%s/h.cert", dir);
    lmd_trust_cert back;
    CHECK(lmd_trust_cert_write(path, &cert, &err) == 0 && lmd_trust_cert_load(path, &back, &err) == 0 &&
              !memcmp(&back, &cert, sizeof back),
          "certificate file: %s", err.msg);
    unlink(path);
    rmdir(dir);
}

/* No rollback against a flood of names (trust.h, row 8): a host whose
 * certificate names a pattern ('h3*', stolen) signs thousands of names of
 * its own, each judged trusted; the verifier's table of the newest
 * signature per signer and name is bounded, and what it forgets first
 * must never be another signer's newest: h1's older signed state, replayed
 * after the flood, is still superseded. */
static void test_a_flood_of_names_never_forgets_another_signers_newest(const lmd_trust_fleet *f)
{
    lmd_err err = {0};
    lmd_trust_verifier *v = NULL;
    CHECK(lmd_trust_verifier_new(&v, &err) == 0 && lmd_trust_verifier_set_fleet(v, f) == 0, "verifier: %s",
          lmd_err_text(&err));
    const char *const h3[] = {"h3*"};
    lmd_trust_cert c3;
    CHECK(lmd_trust_cert_issue(fleet_a, &other_pub, (uint32_t)(NOW - DAY), (uint32_t)(NOW + 30 * DAY), 43, h3, 1, &c3,
                               &err) == 0, "issue: %s", lmd_err_text(&err));
    const char *addrs[] = {"192.168.1.10"};
    lmd_trust_result res;
    /* h1's older state (kept by the attacker), then its newer one */
    struct ann older, newer;
    ann_init(&older);
    lmd_txt_parse_arg(&older.txt, "status=ok", NULL, 0);
    CHECK(sign(&older, host_key, &cert, (uint32_t)(NOW + 3600), &err) == 0, "sign: %s", lmd_err_text(&err));
    ann_init(&newer);
    lmd_txt_parse_arg(&newer.txt, "status=draining", NULL, 0);
    CHECK(sign(&newer, host_key, &cert, (uint32_t)(NOW + 3600), &err) == 0, "sign: %s", lmd_err_text(&err));
    lmd_trust_announcement vn = view(&newer), vo = view(&older);
    expect(lmd_trust_judge(v, &vn, addrs, 1, NOW, &res) == 0 ? LMD_TRUST_OK : res.status, LMD_TRUST_OK, &res,
           "the newer state");
    expect(lmd_trust_judge(v, &vo, addrs, 1, NOW + 1, &res) == 0 ? LMD_TRUST_OK : res.status, LMD_TRUST_SUPERSEDED,
           &res, "the older state before the flood");
    /* the flood: 5,000 names of the attacker's own, each signed longer */
    int trusted = 0;
    for (int i = 0; i < 5000; i++) {
        struct ann x;
        ann_init(&x);
        snprintf(x.name, sizeof x.name, "h3-%05d", i);
        if (sign(&x, other_host, &c3, (uint32_t)(NOW + DAY), &err) != 0)
            break;
        lmd_trust_announcement vx = view(&x);
        trusted += lmd_trust_judge(v, &vx, addrs, 1, NOW + 2, &res) == 0;
        lmd_txt_free(&x.txt);
    }
    CHECK(trusted == 5000, "the flood's names: %d of 5000 trusted", trusted);
    expect(lmd_trust_judge(v, &vo, addrs, 1, NOW + 3, &res) == 0 ? LMD_TRUST_OK : res.status, LMD_TRUST_SUPERSEDED,
           &res, "the older state replayed after a flood of another signer's names");
    expect(lmd_trust_judge(v, &vn, addrs, 1, NOW + 3, &res) == 0 ? LMD_TRUST_OK : res.status, LMD_TRUST_OK, &res,
           "the newer state after the flood");
    lmd_txt_free(&older.txt);
    lmd_txt_free(&newer.txt);
    lmd_trust_verifier_free(v);
}

/* Revocation lists compared by what they hold, not by their counts; a
 * newer list gets back what an older copy had (a revoked key stays
 * revoked). */
static void test_revocation_lists_equal_and_keep(void)
{
    lmd_trust_revoked *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    CHECK(a && b, "calloc");
    if (!a || !b)
        return;
    a->issued = b->issued = (uint64_t)NOW;
    lmd_trust_revoked_add_key(a, &host_pub);
    lmd_trust_revoked_add_key(b, &other_pub);
    CHECK(!lmd_trust_revoked_equal(a, b), "two lists with one key each, different keys, the same second: equal");
    CHECK(lmd_trust_revoked_equal(a, a) && lmd_trust_revoked_equal(NULL, NULL) && !lmd_trust_revoked_equal(a, NULL),
          "equal: itself, none");
    lmd_trust_revoked_add_serial(a, 7);
    size_t keys = 9, serials = 9;
    CHECK(lmd_trust_revoked_keep(b, a, &keys, &serials) == 0 && keys == 1 && serials == 1, "kept %zu keys, %zu serials",
          keys, serials);
    CHECK(lmd_trust_revoked_has(b, &cert), "the key the newer list lacked stays revoked");
    CHECK(lmd_trust_revoked_keep(b, a, &keys, &serials) == 0 && keys == 0 && serials == 0, "kept again: %zu, %zu",
          keys, serials);
    lmd_trust_revoked_add_key(a, &other_pub);
    CHECK(lmd_trust_revoked_equal(a, b), "the same entries in another order: not equal");
    lmd_trust_revoked_free(a);
    lmd_trust_revoked_free(b);
}

int main(void)
{
    lmd_err err = {0};
    if (lmd_trust_secret_generate(&fleet_a, &err) || lmd_trust_secret_generate(&fleet_b, &err) ||
        lmd_trust_secret_generate(&host_key, &err) || lmd_trust_secret_generate(&other_host, &err)) {
        fprintf(stderr, "generate: %s\n", lmd_err_text(&err));
        return 1;
    }
    lmd_trust_secret_pubkey(fleet_a, &fleet_a_pub);
    lmd_trust_secret_pubkey(fleet_b, &fleet_b_pub);
    lmd_trust_secret_pubkey(host_key, &host_pub);
    lmd_trust_secret_pubkey(other_host, &other_pub);
    if (issue(fleet_a, &host_pub, NOW - DAY, NOW + 30 * DAY, &cert, &err)) {
        fprintf(stderr, "issue: %s\n", lmd_err_text(&err));
        return 1;
    }
    lmd_trust_fleet *f = fleet_of(&fleet_a_pub, NULL);
    test_sign_then_verify(f);
    test_every_field_is_signed(f);
    test_what_is_not_significant(f);
    test_addresses(f);
    test_fleets_and_rotation();
    test_times(f);
    test_unsigned_and_malformed(f);
    test_formats_and_budget();
    test_key_files();
    test_a_flood_of_names_never_forgets_another_signers_newest(f);
    test_revocation_lists_equal_and_keep();
    lmd_trust_fleet_free(f);
    lmd_trust_secret_free(fleet_a);
    lmd_trust_secret_free(fleet_b);
    lmd_trust_secret_free(host_key);
    lmd_trust_secret_free(other_host);
    printf("%s: %d checks, %d failed\n", failures ? "FAILED" : "OK", checks, failures);
    return failures ? 1 : 0;
}
