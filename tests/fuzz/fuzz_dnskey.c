/* TSIG key files (src/dns/key.c) and the update signed with what they
 * give: the input is a key file's text (a NUL ends it, as when read).
 *
 * Checks: a refusal always says why and names the file; an accepted key
 * has a name that is a DNS name and is the one the file gives, one of the
 * allowed algorithms, and signs an update that ldns builds and packs (the
 * message says UPDATE, and its TSIG record, read back by ldns, is under the
 * key's name, with the key's algorithm and a MAC of that algorithm's
 * length). */
#include "dns/dns.h"
#include "fuzz.h"

#include <ldns/ldns.h>
#include <strings.h>

static const struct {
    const char *name;
    size_t mac;
} ALGS[] = {{"hmac-sha1", 20}, {"hmac-sha256", 32}, {"hmac-sha512", 64}};

/* "name." for name (a DNS name is compared with its final dot) */
static bool same_dname(const char *got, const char *want)
{
    size_t n = strlen(want);
    if (n && want[n - 1] == '.')
        n--;
    return got && strlen(got) == n + 1 && strncasecmp(got, want, n) == 0 && got[n] == '.';
}

FUZZ_INIT_SILENCED()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    lmd_dns_key *k = NULL;
    lmd_err err = {0};
    int rc = lmd_dns_key_parse(text, "fuzz.key", &k, &err);
    if (rc != 0) {
        FUZZ_CHECK(k == NULL);
        FUZZ_CHECK(rc < 0);
        FUZZ_CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        FUZZ_CHECK(strstr(err.msg, "fuzz.key") != NULL); /* says which file */
        free(text);
        return 0;
    }
    FUZZ_CHECK(k != NULL);
    const char *name = lmd_dns_key_name(k), *alg = lmd_dns_key_algorithm(k);
    FUZZ_CHECK(name[0] != '\0');
    FUZZ_CHECK(strstr(text, name) != NULL); /* the file's own name, not another */
    ldns_rdf *dn = ldns_dname_new_frm_str(name);
    FUZZ_CHECK(dn != NULL); /* a DNS name */
    ldns_rdf_deep_free(dn);
    size_t mac = 0;
    for (size_t i = 0; i < sizeof ALGS / sizeof *ALGS; i++)
        if (strcmp(alg, ALGS[i].name) == 0)
            mac = ALGS[i].mac;
    FUZZ_CHECK(mac != 0);
    const char *addrs[] = {"10.0.0.1", "2001:db8::1"};
    lmd_dns_service svc = {.zone = "sd.example.org", .instance = "h1", .type = "_lmserv._tcp",
                           .host = "h1.sd.example.org", .port = 8000, .addrs = addrs, .n_addrs = 2, .ttl = 60};
    lmd_dns_msg *m = NULL;
    rc = lmd_dns_update_build(&svc, LMD_DNS_PUBLISH, k, &m, &err);
    /* every key accepted signs (ldns leaks when signing fails: key.c
     * refuses what it cannot sign) */
    FUZZ_CHECK(rc == 0);
    if (rc == 0) {
        size_t len = 0;
        const uint8_t *w = lmd_dns_msg_wire(m, &len);
        FUZZ_CHECK(w != NULL && len > 12);
        FUZZ_CHECK(((w[2] >> 3) & 0x0f) == 5); /* opcode UPDATE */
        /* signed with this key: the TSIG record names it and its algorithm */
        ldns_pkt *p = NULL;
        FUZZ_CHECK(ldns_wire2pkt(&p, w, len) == LDNS_STATUS_OK && p != NULL);
        ldns_rr *tsig = ldns_pkt_tsig(p);
        FUZZ_CHECK(tsig != NULL && ldns_rr_rd_count(tsig) >= 4);
        char *owner = ldns_rdf2str(ldns_rr_owner(tsig));
        char *talg = ldns_rdf2str(ldns_rr_rdf(tsig, 0));
        FUZZ_CHECK(same_dname(owner, name));
        FUZZ_CHECK(same_dname(talg, alg));
        FUZZ_CHECK(ldns_rdf_size(ldns_rr_rdf(tsig, 3)) == 2 + mac); /* MAC size, MAC */
        free(owner);
        free(talg);
        ldns_pkt_free(p);
    } else {
        FUZZ_CHECK(m == NULL && err.msg[0] != '\0');
    }
    lmd_dns_msg_free(m);
    lmd_dns_key_free(k);
    free(text);
    return 0;
}
