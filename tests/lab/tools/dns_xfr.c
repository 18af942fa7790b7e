/* lmd-dns-xfr: one src/dns/ zone transfer (AXFR, or IXFR from a serial),
 * read to its end on a libevent loop, for the lab suites
 * (test_wide_dns.lua).  Not installed.
 *
 *   lmd-dns-xfr SERVER KEYFILE ZONE [--ixfr SERIAL] [--timeout S] [--port P]
 *               [--unsigned]
 *
 * Prints one line
 *   "rc=N rcode=NAME tsig=NAME kind=full|diff|uptodate|none serial=N
 *    messages=N bytes=N records=N kept=N ms=N text=..."
 * then the records, one a line:
 *   full:  "rr TYPE OWNER DATA"
 *   diff:  "diff FROM TO", then its "del TYPE OWNER DATA" and "add ..." lines
 * DATA: PTR the target, SRV "PORT TARGET", TXT the items (k=v, space
 * separated), A / AAAA the address.  Exits 0 when the transfer completed,
 * 1 when it did not, 2 on wrong use or a refused key file. */
#include "dns/dns.h"

#include "base/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct outcome {
    bool done;
    int rc, rcode, tsig_error;
    bool forged;
    char text[2400];
    size_t messages, bytes;
    lmd_dns_xfr *xfr;
    struct event_base *base;
};

static void on_done(const lmd_dns_xfr_result *res, void *arg)
{
    struct outcome *o = arg;
    o->done = true;
    o->rc = res->rc;
    o->rcode = res->rcode;
    o->tsig_error = res->tsig_error;
    o->forged = res->forged;
    o->messages = res->messages;
    o->bytes = res->bytes;
    o->xfr = res->xfr; /* ours now */
    snprintf(o->text, sizeof o->text, "%s", res->text);
    event_base_loopbreak(o->base);
}

static const char *type_name(int t)
{
    switch (t) {
    case LMD_DNS_T_A: return "A";
    case LMD_DNS_T_AAAA: return "AAAA";
    case LMD_DNS_T_PTR: return "PTR";
    case LMD_DNS_T_SRV: return "SRV";
    case LMD_DNS_T_TXT: return "TXT";
    default: return "?";
    }
}

static void print_rr(const char *what, const lmd_dns_rr *rr)
{
    printf("%s %s %s", what, type_name(rr->type), rr->owner);
    switch (rr->type) {
    case LMD_DNS_T_PTR: printf(" %s", rr->target); break;
    case LMD_DNS_T_SRV: printf(" %u %s", rr->port, rr->target); break;
    case LMD_DNS_T_TXT:
        for (size_t i = 0; i < rr->txt.n; i++)
            printf(" %s%s%s", rr->txt.items[i].key, rr->txt.items[i].has_value ? "=" : "",
                   rr->txt.items[i].has_value ? (const char *)rr->txt.items[i].value : "");
        break;
    default: printf(" %s", rr->addr); break;
    }
    putchar('\n');
}

static int usage(void)
{
    fprintf(stderr, "usage: lmd-dns-xfr SERVER KEYFILE ZONE [--ixfr SERIAL] [--timeout S] [--port P] [--unsigned]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return usage();
    const char *server = argv[1], *keyfile = argv[2], *zone = argv[3];
    bool ixfr = false, sign = true;
    uint32_t serial = 0;
    double timeout = 30;
    uint16_t port = 0;
    for (int i = 4; i < argc; i++) {
        bool more = i + 1 < argc;
        if (strcmp(argv[i], "--ixfr") == 0 && more) {
            ixfr = true;
            serial = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--timeout") == 0 && more) {
            timeout = atof(argv[++i]);
        } else if (strcmp(argv[i], "--port") == 0 && more) {
            port = (uint16_t)atoi(argv[++i]);
        } else if (strcmp(argv[i], "--unsigned") == 0) {
            sign = false;
        } else {
            return usage();
        }
    }
    lmd_err err = {0};
    lmd_dns_key *key = NULL;
    lmd_dns_msg *msg = NULL;
    if ((sign && lmd_dns_key_load(keyfile, &key, &err) != 0) ||
        lmd_dns_xfr_build(zone, key, serial, ixfr, &msg, &err) != 0) {
        fprintf(stderr, "lmd-dns-xfr: %s\n", lmd_err_text(&err));
        lmd_dns_key_free(key);
        return 2;
    }
    struct outcome o = {.base = event_base_new()};
    double t0 = lmd_now_mono();
    if (!o.base || lmd_dns_xfr_send(o.base, server, port, msg, key, timeout, on_done, &o, NULL, &err) != 0) {
        fprintf(stderr, "lmd-dns-xfr: %s\n", o.base ? lmd_err_text(&err) : "libevent");
        if (o.base)
            event_base_free(o.base);
        lmd_dns_key_free(key);
        return 2;
    }
    event_base_dispatch(o.base);
    if (!o.done) {
        fprintf(stderr, "lmd-dns-xfr: the loop ended without an answer\n");
        return 2;
    }
    lmd_dns_xfr *x = o.xfr;
    static const char *const KIND[] = {"none", "uptodate", "full", "diff"};
    size_t kept = 0;
    if (x) {
        kept = x->n_rrs;
        for (size_t i = 0; i < x->n_diffs; i++)
            kept += x->diffs[i].n_deleted + x->diffs[i].n_added;
    }
    printf("rc=%d rcode=%s tsig=%s kind=%s serial=%u messages=%zu bytes=%zu records=%zu kept=%zu ms=%d forged=%d text=%s\n",
           o.rc, o.rcode < 0 ? "none" : lmd_dns_rcode_name(o.rcode),
           o.tsig_error ? lmd_dns_rcode_name(o.tsig_error) : "none", KIND[x && x->kind >= 1 && x->kind <= 3 ? x->kind : 0],
           x ? x->serial : 0, o.messages, o.bytes, x ? x->records : 0, kept, (int)((lmd_now_mono() - t0) * 1000),
           o.forged ? 1 : 0, o.text);
    for (size_t i = 0; x && i < x->n_rrs; i++)
        print_rr("rr", &x->rrs[i]);
    for (size_t i = 0; x && i < x->n_diffs; i++) {
        printf("diff %u %u\n", x->diffs[i].from, x->diffs[i].to);
        for (size_t j = 0; j < x->diffs[i].n_deleted; j++)
            print_rr("del", &x->diffs[i].deleted[j]);
        for (size_t j = 0; j < x->diffs[i].n_added; j++)
            print_rr("add", &x->diffs[i].added[j]);
    }
    lmd_dns_xfr_free(x);
    event_base_free(o.base);
    lmd_dns_key_free(key);
    return o.rc == 0 ? 0 : 1;
}
