/* The lmdisc command line: argument parsing and the one-shot commands.
 * Usage errors exit 2 with one line saying what was wrong and how to fix it;
 * runtime failures exit 1. */
#include "cli.h"
#include "json.h"
#include "log.h"
#include "mdns.h"
#include "util.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int lmd_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lmdisc%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'lmdisc %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
    va_end(ap);
    return LMD_EXIT_USAGE;
}

int lmd_parse_port(const char *s, uint16_t *port)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 65535)
        return LMD_EINVAL;
    *port = (uint16_t)v;
    return 0;
}

int lmd_parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v <= 0 || v > 86400)
        return LMD_EINVAL;
    *out = v;
    return 0;
}

/* ---- announce -------------------------------------------------------- */

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
    "      --ttl SECONDS  TTL of the records (default: avahi's, 120 s SRV, 75 min\n"
    "                     TXT); with a short TTL every mDNS cache drops this service\n"
    "                     about SECONDS after the host vanishes without a goodbye\n"
    "  -h, --help         show this help\n"
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

int lmd_cmd_announce(int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'}, {"type", required_argument, NULL, 't'},
        {"txt", required_argument, NULL, 'x'},  {"help", no_argument, NULL, 'h'},
        {"ttl", required_argument, NULL, 'T'},  {NULL, 0, NULL, 0},
    };
    const char *name = NULL, *type = LMD_DEFAULT_TYPE;
    unsigned ttl = 0;
    lmd_txt txt = {0};
    char err[320];
    int c, rc = LMD_EXIT_USAGE;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:t:x:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': name = optarg; break;
        case 't': type = optarg; break;
        case 'T': {
            double v;
            if (lmd_parse_seconds(optarg, &v) != 0 || v < 1 || v != (double)(unsigned)v) {
                lmd_usage_error("announce", "--ttl '%.40s' must be a whole number of seconds from 1 to 86400", optarg);
                goto out;
            }
            ttl = (unsigned)v;
            break;
        }
        case 'x':
            if (lmd_txt_parse_arg(&txt, optarg, err, sizeof err) != 0) {
                lmd_usage_error("announce", "--txt %.60s: %s", optarg, err);
                goto out;
            }
            if (lmd_streq(txt.items[txt.n - 1].key, "info")) {
                lmd_usage_error("announce", "give info as the INFO argument, not as --txt info=...");
                goto out;
            }
            break;
        case 'h': fputs(announce_help, stdout); rc = 0; goto out;
        default:
            lmd_usage_error("announce", "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    int npos = argc - optind;
    if (npos < 1 || npos > 2) {
        lmd_usage_error("announce", npos < 1 ? "missing PORT" : "too many arguments ('%s')",
                        npos > 2 ? argv[optind + 2] : "");
        goto out;
    }
    uint16_t port;
    if (lmd_parse_port(argv[optind], &port) != 0) {
        lmd_usage_error("announce", "port '%.40s' is not a number from 1 to 65535", argv[optind]);
        goto out;
    }
    if (npos == 2 &&
        lmd_txt_set(&txt, "info", argv[optind + 1], strlen(argv[optind + 1]), true, err, sizeof err) != 0) {
        lmd_usage_error("announce", "INFO: %s", err);
        goto out;
    }
    if (!lmd_service_type_valid(type, err, sizeof err)) {
        lmd_usage_error("announce", "%s", err);
        goto out;
    }
    char defname[128];
    if (!name) {
        lmd_default_name(port, defname, sizeof defname);
        name = defname;
    }
    if (!*name || strlen(name) > 63) {
        lmd_usage_error("announce", "--name must be 1 to 63 bytes (a DNS label)");
        goto out;
    }
    struct announce_run r = {.rc = 0};
    struct event *sigint = NULL, *sigterm = NULL;
    lmd_mdns *m = NULL;
    int e = 0;
    rc = LMD_EXIT_FAIL;
    if (!(r.base = event_base_new()))
        goto out;
    sigint = evsignal_new(r.base, SIGINT, announce_signal, &r);
    sigterm = evsignal_new(r.base, SIGTERM, announce_signal, &r);
    if (!sigint || !sigterm || evsignal_add(sigint, NULL) || evsignal_add(sigterm, NULL))
        goto done;
    if (!(m = lmd_mdns_new(r.base, announce_state, &r, &e))) {
        fprintf(stderr, "lmdisc announce: %s\n", lmd_strerror(e));
        goto done;
    }
    struct lmd_pub_config cfg = {.name = name, .type = type, .port = port, .txt = &txt, .ttl = ttl};
    if (!(r.pub = lmd_pub_new(m, &cfg, announce_event, &r, &e))) {
        fprintf(stderr, "lmdisc announce: %s\n", lmd_strerror(e));
        goto done;
    }
    event_base_dispatch(r.base);
    rc = r.rc;
done:
    lmd_pub_free(r.pub); /* goodbye */
    lmd_mdns_free(m);
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    event_base_free(r.base);
out:
    lmd_txt_free(&txt);
    return rc;
}

/* ---- discover -------------------------------------------------------- */

static const char discover_help[] =
    "Usage: lmdisc discover [options]\n"
    "Scan the LAN once and print every service found: one line per service,\n"
    "merged across interfaces and IPv4/IPv6.  Returns as soon as the network has\n"
    "answered; the timeout is only the upper bound.\n"
    "\n"
    "  -T, --timeout SECONDS  give up after this long (default 5)\n"
    "  -j, --json             print one JSON document\n"
    "  -t, --type TYPE        service type (default: _lmserv._tcp)\n"
    "  -N, --no-agent         ask the network even when an agent runs here\n"
    "  -h, --help             show this help\n"
    "\n"
    "When an lmdisc agent runs on this host and browses TYPE, its registry answers\n"
    "at once (\"source\": \"agent\"); otherwise the network does (\"source\": \"network\").\n"
    "\n"
    "JSON: {\"type\", \"source\", \"complete\", \"elapsed\", \"nodes\": [{name, type, domain, host, port,\n"
    "info, addresses: [{address, family, interface}], txt: {key: value}, txt_base64,\n"
    "local, self}]}.  Strings are UTF-8 with invalid bytes as U+FFFD; a TXT value\n"
    "that is not UTF-8 is also given exactly in txt_base64; a bare key is true.\n";

/* One line per service, from the JSON nodes (the same for an answer from
 * the network and from a running agent). */
static void print_table(json_t *nodes)
{
    enum { W = 4 };
    size_t n = json_array_size(nodes);
    char (*cells)[W][512] = calloc(n + 1, sizeof *cells);
    size_t width[W] = {0};
    if (!cells)
        return;
    snprintf(cells[0][0], 512, "NAME");
    snprintf(cells[0][1], 512, "HOST:PORT");
    snprintf(cells[0][2], 512, "ADDRESSES");
    snprintf(cells[0][3], 512, "INFO");
    size_t i;
    json_t *node;
    json_array_foreach(nodes, i, node) {
        char host[256], addrs[512] = "";
        const char *info = json_string_value(json_object_get(node, "info"));
        lmd_escape_str(json_string_value(json_object_get(node, "name")), cells[i + 1][0], 512);
        snprintf(cells[i + 1][1], 512, "%s:%lld",
                 lmd_escape_str(json_string_value(json_object_get(node, "host")), host, sizeof host),
                 (long long)json_integer_value(json_object_get(node, "port")));
        size_t k;
        json_t *a;
        json_array_foreach(json_object_get(node, "addresses"), k, a) {
            size_t used = strlen(addrs);
            snprintf(addrs + used, sizeof addrs - used, "%s%s", k ? "," : "",
                     json_string_value(json_object_get(a, "address")));
        }
        snprintf(cells[i + 1][2], 512, "%s", addrs);
        if (info)
            lmd_escape_str(info, cells[i + 1][3], 512);
        else
            snprintf(cells[i + 1][3], 512, "-");
    }
    for (size_t r = 0; r <= n; r++)
        for (int c = 0; c < W; c++)
            if (strlen(cells[r][c]) > width[c])
                width[c] = strlen(cells[r][c]);
    for (size_t r = 0; r <= n; r++)
        printf("%-*s  %-*s  %-*s  %s\n", (int)width[0], cells[r][0], (int)width[1], cells[r][1],
               (int)width[2], cells[r][2], cells[r][3]);
    free(cells);
}

int lmd_cmd_discover(int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 'T'}, {"json", no_argument, NULL, 'j'},
        {"type", required_argument, NULL, 't'},    {"help", no_argument, NULL, 'h'},
        {"no-agent", no_argument, NULL, 'N'},      {NULL, 0, NULL, 0},
    };
    double timeout = 5;
    bool json = false, no_agent = false;
    const char *type = LMD_DEFAULT_TYPE;
    char err[320];
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "T:jt:hN", opts, NULL)) != -1) {
        switch (c) {
        case 'T':
            if (lmd_parse_seconds(optarg, &timeout) != 0)
                return lmd_usage_error("discover",
                                       "--timeout '%.40s' is not a number of seconds (0 < s <= 86400)",
                                       optarg);
            break;
        case 'j': json = true; break;
        case 't': type = optarg; break;
        case 'N': no_agent = true; break;
        case 'h': fputs(discover_help, stdout); return 0;
        default: return lmd_usage_error("discover", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return lmd_usage_error("discover", "unexpected argument '%s'", argv[optind]);
    if (!lmd_service_type_valid(type, err, sizeof err))
        return lmd_usage_error("discover", "%s", err);

    double t0 = lmd_now_mono();
    json_t *doc = no_agent ? NULL : lmd_client_services(type);
    const char *source = "agent";
    if (!doc) {
        source = "network";
        lmd_discover_opts o = {.type = type};
        lmd_node_list l;
        int rc = lmd_discover_nodes(timeout, &o, &l);
        if (rc != 0) {
            if (rc == LMD_ENODAEMON)
                fprintf(stderr, "lmdisc discover: avahi-daemon is not running (or the system D-Bus is not); "
                                "start it (e.g. 'systemctl start avahi-daemon') and try again\n");
            else
                fprintf(stderr, "lmdisc discover: %s\n", lmd_strerror(rc));
            return LMD_EXIT_FAIL;
        }
        if (!o.complete)
            fprintf(stderr, "lmdisc discover: the network had not answered fully after %.1f s; the list "
                            "may be incomplete\n", timeout);
        doc = json_pack("{s:s,s:b,s:o}", "type", type, "complete", o.complete, "nodes", lmd_json_node_list(&l));
        lmd_node_list_free(&l);
        if (!doc)
            return LMD_EXIT_FAIL;
    }
    json_object_set_new(doc, "source", json_string(source));
    json_object_set_new(doc, "elapsed", json_real(lmd_now_mono() - t0));
    json_t *nodes = json_object_get(doc, "nodes");
    int rc = 0;
    if (json) {
        char *s = lmd_json_dump(doc, true);
        if (s)
            puts(s);
        else
            rc = LMD_EXIT_FAIL;
        free(s);
    } else if (json_array_size(nodes)) {
        print_table(nodes);
    } else {
        fprintf(stderr, "lmdisc discover: no %s services found\n", type);
    }
    json_decref(doc);
    return rc;
}
