/* lmd-trust-sign: a signed TXT record made the way an attacker who holds a
 * host's key and certificate would make it, for the lab suites
 * (test_trust_verdicts.lua).  Not installed.  Unlike the agent, it signs
 * any name (the certificate's names are the verifier's business), for any
 * validity and issue time.
 *
 *   lmd-trust-sign KEY CERT NAME HOST PORT SECONDS ISSUED_MS ADDR... -- [K=V]...
 *
 * SECONDS: the signature's validity from now; ISSUED_MS: its issue time
 * (Unix milliseconds; 0: now).  Prints "expiry UNIX" and then the TXT
 * items one a line, ready to be replayed (tests/lab/attacks.py); exits 2
 * on wrong use, 1 when a file is refused (the reason on stderr). */
#include "base/txt.h"
#include "trust/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    int dash = 0;
    for (int i = 8; i < argc && !dash; i++)
        if (!strcmp(argv[i], "--"))
            dash = i;
    if (argc < 10 || !dash) {
        fprintf(stderr, "usage: %s KEY CERT NAME HOST PORT SECONDS ISSUED_MS ADDR... -- [K=V]...\n", argv[0]);
        return 2;
    }
    lmd_err err = {0};
    lmd_trust_secret *key = NULL;
    lmd_trust_cert cert;
    if (lmd_trust_secret_load(argv[1], &key, &err) != 0 || lmd_trust_cert_load(argv[2], &cert, &err) != 0) {
        fprintf(stderr, "%s\n", lmd_err_text(&err));
        return 1;
    }
    lmd_txt txt = {0};
    for (int i = dash + 1; i < argc; i++)
        if (lmd_txt_parse_arg(&txt, argv[i], err.msg, sizeof err.msg) != 0) {
            fprintf(stderr, "%s: %s\n", argv[i], err.msg);
            return 2;
        }
    lmd_trust_announcement a = {.name = argv[3], .type = LMD_DEFAULT_TYPE, .domain = "local",
                                .port = (uint16_t)atoi(argv[5]), .host = argv[4], .txt = &txt};
    uint32_t expiry = (uint32_t)(time(NULL) + atol(argv[6]));
    uint64_t issued = strtoull(argv[7], NULL, 10);
    if (!issued) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        issued = (uint64_t)ts.tv_sec * 1000 + (uint64_t)(ts.tv_nsec / 1000000);
    }
    /* what lmd_trust_sign does, but for the certificate's names */
    lmd_trust_sig s = {.expiry = expiry, .issued = issued};
    for (int i = 8; i < dash && s.n_addrs < LMD_TRUST_SIG_ADDRS_MAX; i++)
        if (lmd_trust_ip_parse(argv[i], &s.addrs[s.n_addrs]) == 0)
            s.n_addrs++;
    unsigned char *msg;
    size_t len;
    if (lmd_trust_canonical(&a, &cert, &s, &msg, &len) != 0) {
        fprintf(stderr, "cannot build the canonical bytes\n");
        return 1;
    }
    crypto_sign_detached(s.sig, NULL, msg, len, key->sk);
    free(msg);
    if (lmd_trust_txt_put(&txt, &cert, &s, &err) != 0) {
        fprintf(stderr, "%s\n", lmd_err_text(&err));
        return 1;
    }
    printf("expiry %u\n", expiry);
    for (size_t i = 0; i < txt.n; i++)
        printf("%s%s%.*s\n", txt.items[i].key, txt.items[i].has_value ? "=" : "", (int)txt.items[i].value_len,
               txt.items[i].has_value ? (const char *)txt.items[i].value : "");
    lmd_txt_free(&txt);
    lmd_trust_secret_free(key);
    return 0;
}
