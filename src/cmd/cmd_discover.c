/* `lmdisc discover`: one scan, answered by the host's agent when one runs,
 * else by the network as soon as it has answered. */
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "cmd/client.h"
#include "cmd/cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

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
    "  -d, --domain DOMAIN    read the services of DOMAIN from DNS instead (wide-area\n"
    "                         DNS-SD: PTR, SRV, TXT, A/AAAA); no mDNS, no agent\n"
    "  -s, --server ADDR      with --domain: the DNS server to ask (IPv4 or IPv6\n"
    "                         address); default: the primary (SOA MNAME) of the\n"
    "                         domain's zone, found through /etc/resolv.conf\n"
    "  -k, --key FILE         with --domain: TSIG-sign the queries with this key\n"
    "                         (BIND key file; 0600, or root:lmdisc 0640); answers must be signed\n"
    "  -h, --help             show this help\n"
    "\n"
    "When an lmdisc agent runs on this host and browses TYPE, its registry answers\n"
    "at once (\"source\": \"agent\"); otherwise the network does (\"source\": \"network\").\n"
    "With --domain the DNS server answers (\"source\": \"dns\", \"domain\": DOMAIN); addresses\n"
    "have \"interface\": \"dns\".\n"
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
        const char *info = lmd_client_info(node, cells[i + 1][3], 512);
        if (info != cells[i + 1][3]) /* "-": no info */
            snprintf(cells[i + 1][3], 512, "%s", info);
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

int lmd_discover_parse(int argc, char **argv, struct lmd_discover_args *out)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 'T'}, {"json", no_argument, NULL, 'j'},
        {"type", required_argument, NULL, 't'},    {"help", no_argument, NULL, 'h'},
        {"no-agent", no_argument, NULL, 'N'},      {"domain", required_argument, NULL, 'd'},
        {"server", required_argument, NULL, 's'},  {"key", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    *out = (struct lmd_discover_args){.timeout = 5, .type = LMD_DEFAULT_TYPE};
    char err[320];
    int c;
    lmd_getopt_reset();
    while ((c = getopt_long(argc, argv, ":T:jt:hNd:s:k:", opts, NULL)) != -1) {
        switch (c) {
        case 'T':
            if (lmd_parse_seconds(optarg, &out->timeout) != 0)
                return lmd_usage_error("discover",
                                       "--timeout '%.40s' is not a number of seconds (0 < s <= 86400)",
                                       optarg);
            break;
        case 'j': out->json = true; break;
        case 't': out->type = optarg; break;
        case 'N': out->no_agent = true; break;
        case 'd': case 's': case 'k': /* --domain, --server, --key */
            if (lmd_parse_dns_option("discover", c, optarg, &out->domain, &out->server, &out->key) != 0)
                return LMD_EXIT_USAGE;
            break;
        case ':': return lmd_missing_value("discover", argc, argv);
        case 'h': fputs(discover_help, stdout); return LMD_EXIT_HELP;
        default: return lmd_usage_error("discover", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return lmd_usage_error("discover", "unexpected argument '%s'", argv[optind]);
    if (!lmd_service_type_valid(out->type, err, sizeof err))
        return lmd_usage_error("discover", "%s", err);
    if (!out->domain && (out->server || out->key))
        return lmd_usage_error("discover", "%s is for DNS: give --domain DOMAIN too",
                               out->server ? "--server" : "--key");
    return 0;
}

int lmd_cmd_discover(int argc, char **argv)
{
    struct lmd_discover_args a;
    int prc = lmd_discover_parse(argc, argv, &a); /* a owns nothing: its strings are argv's */
    if (prc)
        return lmd_exit_status(prc);
    const double timeout = a.timeout;
    const bool json = a.json;
    const char *type = a.type;

    double t0 = lmd_now_mono();
    json_t *doc = a.no_agent || a.domain ? NULL : lmd_client_services(type);
    const char *source = "agent";
    if (a.domain) {
        source = "dns";
        int code;
        if (!(doc = lmd_discover_dns(&a, &code)))
            return code;
    } else if (!doc) {
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
        fprintf(stderr, "lmdisc discover: no %s services found%s%s\n", type, a.domain ? " in " : "",
                a.domain ? a.domain : "");
    }
    json_decref(doc);
    return rc;
}
