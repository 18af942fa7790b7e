/* lmd-dns-update: one src/dns/ update, sent on a libevent loop, for the lab
 * suites (test_wide_dns.lua).  Not installed.
 *
 *   lmd-dns-update SERVER KEYFILE ZONE INSTANCE HOST PORT
 *                  [--withdraw | --sweep] [--txt K=V]... [--addr IP]... [--ttl S]
 *                  [--timeout S] [--print]
 *
 * --sweep: the compare-and-delete of a stale service (lmd_dns_sweep_build):
 * the --txt items are the TXT it must still have, in order; HOST "-"
 * leaves the addresses alone.
 *
 * Prints one line "rc=N rcode=NAME tsig=NAME tcp=0|1 ms=N text=..." and
 * exits 0 when the server applied the update, 1 when it did not, 2 on
 * wrong use or a refused key file (the error on stderr). */
#include "dns/dns.h"

#include "base/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct outcome {
    bool done;
    lmd_dns_result res;
    char text[512];
    struct event_base *base;
};

static void on_done(const lmd_dns_result *res, void *arg)
{
    struct outcome *o = arg;
    o->done = true;
    o->res = *res;
    snprintf(o->text, sizeof o->text, "%s", res->text);
    o->res.text = o->text;
    event_base_loopbreak(o->base);
}

static int usage(void)
{
    fprintf(stderr, "usage: lmd-dns-update SERVER KEYFILE ZONE INSTANCE HOST PORT [--withdraw | --sweep] "
                    "[--txt K=V]... [--addr IP]... [--ttl S] [--timeout S] [--print]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 7)
        return usage();
    const char *server = argv[1], *keyfile = argv[2];
    lmd_dns_service svc = {.zone = argv[3], .instance = argv[4], .type = "_lmserv._tcp", .host = argv[5],
                           .port = (uint16_t)atoi(argv[6]), .ttl = 60};
    lmd_txt txt = {0};
    const char *addrs[16];
    int mode = LMD_DNS_PUBLISH;
    double timeout = 5;
    bool print = false;
    for (int i = 7; i < argc; i++) {
        bool more = i + 1 < argc;
        if (strcmp(argv[i], "--withdraw") == 0) {
            mode = LMD_DNS_WITHDRAW;
        } else if (strcmp(argv[i], "--sweep") == 0) {
            mode = 0;
        } else if (strcmp(argv[i], "--print") == 0) {
            print = true;
        } else if (strcmp(argv[i], "--txt") == 0 && more) {
            char why[256];
            if (lmd_txt_parse_arg(&txt, argv[++i], why, sizeof why) != 0) {
                fprintf(stderr, "lmd-dns-update: %s\n", why);
                return 2;
            }
        } else if (strcmp(argv[i], "--addr") == 0 && more && svc.n_addrs < 16) {
            addrs[svc.n_addrs++] = argv[++i];
        } else if (strcmp(argv[i], "--ttl") == 0 && more) {
            svc.ttl = (uint32_t)atoi(argv[++i]);
        } else if (strcmp(argv[i], "--timeout") == 0 && more) {
            timeout = atof(argv[++i]);
        } else {
            return usage();
        }
    }
    svc.addrs = addrs;
    svc.txt = &txt;
    if (strcmp(svc.host, "-") == 0)
        svc.host = NULL;
    lmd_err err = {0};
    lmd_dns_key *key = NULL;
    lmd_dns_msg *msg = NULL;
    if (lmd_dns_key_load(keyfile, &key, &err) != 0 ||
        (mode ? lmd_dns_update_build(&svc, mode, key, &msg, &err) : lmd_dns_sweep_build(&svc, key, &msg, &err)) != 0) {
        fprintf(stderr, "lmd-dns-update: %s\n", lmd_err_text(&err));
        lmd_dns_key_free(key);
        lmd_txt_free(&txt);
        return 2;
    }
    if (print) {
        char *s = lmd_dns_msg_text(msg);
        fputs(s ? s : "", stdout);
        free(s);
    }
    struct outcome o = {.base = event_base_new()};
    double t0 = lmd_now_mono();
    if (!o.base || lmd_dns_send(o.base, server, 0, msg, key, timeout, on_done, &o, NULL, &err) != 0) {
        fprintf(stderr, "lmd-dns-update: %s\n", o.base ? lmd_err_text(&err) : "libevent");
        if (o.base)
            event_base_free(o.base);
        lmd_dns_key_free(key);
        lmd_txt_free(&txt);
        return 2;
    }
    /* the request is in flight on the loop, not sent yet: this runs it */
    event_base_dispatch(o.base);
    if (!o.done) {
        fprintf(stderr, "lmd-dns-update: the loop ended without an answer\n");
        return 2;
    }
    printf("rc=%d rcode=%s tsig=%s tcp=%d ms=%d text=%s\n", o.res.rc,
           o.res.rcode < 0 ? "none" : lmd_dns_rcode_name(o.res.rcode),
           o.res.tsig_error ? lmd_dns_rcode_name(o.res.tsig_error) : "none", o.res.tcp ? 1 : 0,
           (int)((lmd_now_mono() - t0) * 1000), o.res.text);
    event_base_free(o.base);
    lmd_dns_key_free(key);
    lmd_txt_free(&txt);
    return o.res.rc == 0 ? 0 : 1;
}
