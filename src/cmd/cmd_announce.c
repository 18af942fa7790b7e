/* `lmdisc announce PORT [INFO]`: one service until SIGINT/SIGTERM, like
 * avahi-publish. */
#include "base/limits.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/txt.h"
#include "base/util.h"
#include "cmd/cmd.h"
#include "mdns/mdns.h"

#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define STR_(x) #x
#define STR(x) STR_(x)

static const char announce_help[] =
    "Usage: lmdisc announce PORT [INFO] [options]\n"
    "Announce one service (type _lmserv._tcp) on every interface, IPv4 and IPv6,\n"
    "until SIGINT or SIGTERM; then withdraw it (goodbye) and exit 0.\n"
    "\n"
    "  PORT               the port your server listens on (1-65535)\n"
    "  INFO               free text, sent as TXT info=INFO (e.g. \"gemma-2b-it Q4_0\")\n"
    "  -n, --name NAME    instance name (default: <hostname>:<port>); on a collision\n"
    "                     avahi's alternative name is used (\"NAME #2\")\n"
    "  -t, --type TYPE    service type (default: _lmserv._tcp)\n"
    "  -x, --txt KEY=VAL  extra TXT item; repeat for more; a bare KEY is a flag\n"
    "                     (keys beginning with " LMD_TXT_RESERVED " are lmdisc's own)\n"
    "      --ttl SECONDS  TTL of the records, 1 to " STR(LMD_RECORD_TTL_MAX) " (default: avahi's, 120 s\n"
    "                     SRV, 75 min TXT); with a short TTL every mDNS cache drops\n"
    "                     this service about SECONDS after the host vanishes without\n"
    "                     a goodbye\n"
    "  -h, --help         show this help\n"
    "\n"
    "Wide-area DNS-SD: publish in a DNS domain instead of mDNS (the mDNS options\n"
    "above but --ttl do not apply; avahi is not needed):\n"
    "  -d, --domain DOMAIN  publish PTR, SRV, TXT and this host's routable A/AAAA\n"
    "                     in DOMAIN with one TSIG-signed RFC 2136 update; refresh\n"
    "                     it every lease/2; withdraw it on SIGINT/SIGTERM\n"
    "  -k, --key FILE     the TSIG key (BIND key file; 0600, or root:lmdisc 0640) the server grants\n"
    "                     this host's names (required with --domain)\n"
    "  -s, --server ADDR  the DNS server taking the update (IPv4 or IPv6 address);\n"
    "                     default: the primary (SOA MNAME) of the domain's zone,\n"
    "                     found through /etc/resolv.conf\n"
    "  -l, --lease SECONDS  how long the records live without a refresh\n"
    "                     (60-86400, default 900)\n"
    "      --host LABEL   the SRV target is LABEL.DOMAIN (default: the short host\n"
    "                     name)\n"
    "Records: TYPE.DOMAIN PTR NAME.TYPE.DOMAIN; NAME.TYPE.DOMAIN SRV 0 0 PORT\n"
    "HOST.DOMAIN and TXT; HOST.DOMAIN A/AAAA (TTL: --ttl, default 60, at most the\n"
    "lease).  Exits 1 with one line saying why when the first update fails.\n"
    "\n"
    "If avahi-daemon is not running, lmdisc waits for it and announces once it is.\n";

struct announce_run {
    struct event_base *base;
    lmd_pub *pub;
    int rc;
};

static void announce_event(void *ud, enum lmd_pub_event ev, const char *name, const char *detail)
{
    struct announce_run *r = ud;
    char e[256];
    switch (ev) {
    case LMD_PUB_ESTABLISHED:
        printf("announced \"%s\"\n", lmd_escape_str(name, e, sizeof e));
        fflush(stdout);
        break;
    case LMD_PUB_RENAMED:
        fprintf(stderr, "lmdisc announce: name collision; now announcing as \"%s\"\n",
                lmd_escape_str(name, e, sizeof e));
        break;
    case LMD_PUB_FAILED:
        fprintf(stderr, "lmdisc announce: avahi refused the announcement: %s\n", detail);
        r->rc = LMD_EXIT_FAIL;
        event_base_loopbreak(r->base);
        break;
    }
}

static void announce_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct announce_run *r = arg;
    lmd_debug("signal %d: withdrawing", (int)sig);
    event_base_loopbreak(r->base);
}

static void announce_state(void *ud, enum lmd_mdns_state st)
{
    struct announce_run *r = ud;
    if (st == LMD_MDNS_FAILED) {
        r->rc = LMD_EXIT_FAIL;
        event_base_loopbreak(r->base);
    }
}

/* A whole number of seconds from min to max (--ttl, --lease). */
static int whole_seconds(const char *opt, const char *arg, unsigned min, unsigned max, unsigned *out)
{
    double v;
    if (lmd_parse_seconds(arg, &v) != 0 || v < min || v > max || v != (double)(unsigned)v)
        return lmd_usage_error("announce", "%s '%.40s' must be a whole number of seconds from %u to %u", opt, arg,
                               min, max);
    *out = (unsigned)v;
    return 0;
}

int lmd_announce_parse(int argc, char **argv, struct lmd_announce_args *out)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'}, {"type", required_argument, NULL, 't'},
        {"txt", required_argument, NULL, 'x'},  {"help", no_argument, NULL, 'h'},
        {"ttl", required_argument, NULL, 'T'},  {"domain", required_argument, NULL, 'd'},
        {"key", required_argument, NULL, 'k'},  {"server", required_argument, NULL, 's'},
        {"lease", required_argument, NULL, 'l'}, {"host", required_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    *out = (struct lmd_announce_args){.type = LMD_DEFAULT_TYPE, .lease = 900};
    bool lease_given = false;
    const char *name = NULL;
    char err[320] = "out of memory";
    int c;
    lmd_getopt_reset();
    while ((c = getopt_long(argc, argv, ":n:t:x:hd:k:s:l:", opts, NULL)) != -1) {
        switch (c) {
        case 'n': name = optarg; break;
        case 't': out->type = optarg; break;
        case 'T':
            /* the configuration's bound (announce { ttl }): one limit */
            if (whole_seconds("--ttl", optarg, 1, LMD_RECORD_TTL_MAX, &out->ttl) != 0)
                return LMD_EXIT_USAGE;
            break;
        case 'x':
            if (lmd_txt_parse_arg(&out->txt, optarg, err, sizeof err) != 0)
                return lmd_usage_error("announce", "--txt %.60s: %s", optarg, err);
            /* TXT keys are case-insensitive: --txt INFO=x is info too */
            if (strcasecmp(out->txt.items[out->txt.n - 1].key, "info") == 0)
                return lmd_usage_error("announce", "give info as the INFO argument, not as --txt info=...");
            if (lmd_txt_key_reserved(out->txt.items[out->txt.n - 1].key)) {
                lmd_err e = {0};
                lmd_txt_reserved_error(out->txt.items[out->txt.n - 1].key, &e);
                return lmd_usage_error("announce", "--txt %.60s: %s", optarg, lmd_err_text(&e));
            }
            break;
        case 'd': case 's': case 'k': /* --domain, --server, --key */
            if (lmd_parse_dns_option("announce", c, optarg, &out->domain, &out->server, &out->key) != 0)
                return LMD_EXIT_USAGE;
            break;
        case 'l':
            if (whole_seconds("--lease", optarg, 60, 86400, &out->lease) != 0)
                return LMD_EXIT_USAGE;
            lease_given = true;
            break;
        case 'H': {
            size_t n = strlen(optarg);
            if (n == 0 || n > 63 || strspn(optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != n)
                return lmd_usage_error("announce", "--host '%.80s' must be one DNS label (letters, digits, '-')",
                                       optarg);
            out->host = optarg;
            break;
        }
        case ':': return lmd_missing_value("announce", argc, argv);
        case 'h': fputs(announce_help, stdout); return LMD_EXIT_HELP;
        default: return lmd_usage_error("announce", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (out->domain && !out->key)
        return lmd_usage_error("announce", "--domain needs --key FILE: the TSIG key the DNS server grants this "
                                           "host's names (tsig-keygen; examples/wide-area/README.md)");
    if (!out->domain && (out->key || out->server || lease_given || out->host))
        return lmd_usage_error("announce", "%s is for DNS: give --domain DOMAIN too",
                               out->key ? "--key" : out->server ? "--server" : lease_given ? "--lease" : "--host");
    int npos = argc - optind;
    if (npos < 1 || npos > 2)
        return lmd_usage_error("announce", npos < 1 ? "missing PORT" : "too many arguments ('%s')",
                               npos > 2 ? argv[optind + 2] : "");
    if (lmd_parse_port(argv[optind], &out->port) != 0)
        return lmd_usage_error("announce", "port '%.40s' is not a number from 1 to 65535", argv[optind]);
    if (npos == 2 && lmd_txt_set(&out->txt, "info", argv[optind + 1], strlen(argv[optind + 1]), true, err,
                                 sizeof err) != 0)
        return lmd_usage_error("announce", "INFO: %s", err);
    /* every item fits, but all of them must fit in one packet too */
    if (lmd_txt_check_record(&out->txt, err, sizeof err) != 0)
        return lmd_usage_error("announce", "%s", err);
    if (!lmd_service_type_valid(out->type, err, sizeof err))
        return lmd_usage_error("announce", "%s", err);
    char defname[128];
    if (!name) {
        lmd_default_name(out->port, defname, sizeof defname);
        name = defname;
    }
    if (!*name || strlen(name) > 63)
        return lmd_usage_error("announce", "--name must be 1 to 63 bytes (a DNS label)");
    if (!(out->name = lmd_strdup(name))) {
        fputs("lmdisc announce: out of memory\n", stderr);
        return LMD_EXIT_FAIL;
    }
    return 0;
}

void lmd_announce_args_free(struct lmd_announce_args *a)
{
    free(a->name);
    a->name = NULL;
    lmd_txt_free(&a->txt);
}

int lmd_cmd_announce(int argc, char **argv)
{
    struct lmd_announce_args a;
    int rc = lmd_announce_parse(argc, argv, &a);
    if (rc) {
        lmd_announce_args_free(&a);
        return lmd_exit_status(rc);
    }
    if (a.domain) {
        rc = lmd_announce_dns(&a);
        lmd_announce_args_free(&a);
        return rc;
    }
    struct announce_run r = {.rc = 0};
    struct event *sigint = NULL, *sigterm = NULL;
    lmd_mdns *m = NULL;
    rc = LMD_EXIT_FAIL;
    if (!(r.base = event_base_new()))
        goto out;
    sigint = evsignal_new(r.base, SIGINT, announce_signal, &r);
    sigterm = evsignal_new(r.base, SIGTERM, announce_signal, &r);
    if (!sigint || !sigterm || evsignal_add(sigint, NULL) || evsignal_add(sigterm, NULL))
        goto done;
    lmd_err e = {0};
    struct lmd_pub_config cfg = {.name = a.name, .type = a.type, .port = a.port, .txt = &a.txt, .ttl = a.ttl};
    if (lmd_mdns_new(r.base, announce_state, &r, &m, &e) != 0 ||
        lmd_pub_new(m, &cfg, announce_event, &r, &r.pub, &e) != 0) {
        fprintf(stderr, "lmdisc announce: %s\n", lmd_err_text(&e));
        goto done;
    }
    event_base_dispatch(r.base);
    rc = r.rc;
done:
    lmd_pub_free(r.pub); /* goodbye */
    lmd_mdns_free(m);
    lmd_event_free(sigint);
    lmd_event_free(sigterm);
    event_base_free(r.base);
out:
    lmd_announce_args_free(&a);
    return rc;
}
