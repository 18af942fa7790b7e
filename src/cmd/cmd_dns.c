/* `lmdisc discover --domain` and `lmdisc announce --domain`: wide-area
 * DNS-SD from the command line, with src/dns/ on a libevent loop of their
 * own (no avahi).  Without --server, the domain's zone's primary (its SOA
 * MNAME, asked of the resolvers in /etc/resolv.conf) is used. */
#include "base/json.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "cmd/cmd.h"
#include "dns/dns.h"

#include <event2/event.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIND_TIMEOUT 10.0
#define UPDATE_TIMEOUT 5.0
#define WITHDRAW_BOUND 1.5 /* SIGTERM to exit: under 2 s */
#define RETRY_FIRST 1.0
#define RETRY_MAX 60.0

#define NO_SERVER "cannot find the DNS server of %s: %s; give --server ADDR"

/* A run that cannot go on: "lmdisc CMD: ..." on stderr, and its loop (if
 * there is one yet) stops. */
static void give_up(struct event_base *base, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void give_up(struct event_base *base, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lmdisc %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (base)
        event_base_loopbreak(base);
}

/* A key file's problems are the user's to fix before anything is sent. */
static int load_key(const char *cmd, const char *path, lmd_dns_key **out)
{
    lmd_err err = {0};
    if (!path)
        return 0;
    if (lmd_dns_key_load(path, out, &err) != 0)
        return lmd_usage_error(cmd, "--key %s", lmd_err_text(&err));
    return 0;
}

/* ---- discover --domain ------------------------------------------------ */

struct drun {
    struct event_base *base;
    const struct lmd_discover_args *a;
    lmd_dns_key *key;
    lmd_dns_find *find;
    lmd_dns_walk *walk;
    double deadline;
    json_t *nodes;
    bool failed;
};

static int by_name(const void *x, const void *y)
{
    const lmd_dns_found *a = *(const lmd_dns_found *const *)x, *b = *(const lmd_dns_found *const *)y;
    return strcmp(a->name, b->name);
}

static void on_walk(const lmd_dns_walk_result *res, void *arg)
{
    struct drun *r = arg;
    r->walk = NULL;
    event_base_loopbreak(r->base);
    if (res->rc != 0) {
        fprintf(stderr, "lmdisc discover: %s\n", res->text);
        r->failed = true;
        return;
    }
    if (res->skipped)
        fprintf(stderr, "lmdisc discover: %zu service%s skipped: %s SRV record points at \".\" or outside %s "
                "(the others are listed)\n", res->skipped, res->skipped == 1 ? "" : "s",
                res->skipped == 1 ? "its" : "their", r->a->domain);
    if (res->dropped)
        fprintf(stderr, "lmdisc discover: %zu answer%s not signed by the key dropped (never believed)\n",
                res->dropped, res->dropped == 1 ? "" : "s");
    const lmd_dns_found **sorted = calloc(res->n ? res->n : 1, sizeof *sorted);
    r->nodes = json_array();
    if (!sorted || !r->nodes) {
        free(sorted);
        fprintf(stderr, "lmdisc discover: out of memory\n");
        r->failed = true;
        return;
    }
    for (size_t i = 0; i < res->n; i++)
        sorted[i] = &res->found[i];
    qsort(sorted, res->n, sizeof *sorted, by_name);
    for (size_t i = 0; i < res->n; i++) {
        const lmd_dns_found *f = sorted[i];
        lmd_addr addrs[LMD_DNS_WALK_ADDRS];
        memset(addrs, 0, sizeof addrs);
        for (size_t k = 0; k < f->n_addrs; k++) {
            snprintf(addrs[k].addr, sizeof addrs[k].addr, "%s", f->addrs[k]);
            addrs[k].family = strchr(f->addrs[k], ':') ? 6 : 4;
            snprintf(addrs[k].ifname, sizeof addrs[k].ifname, "dns");
        }
        const lmd_txt_item *info = lmd_txt_get(&f->txt, "info");
        lmd_node_info n = {.name = (char *)f->name, .type = (char *)r->a->type, .domain = (char *)r->a->domain,
                           .host = (char *)f->host, .port = f->port, .n_addrs = f->n_addrs, .addrs = addrs,
                           .txt = f->txt};
        char *info_copy = NULL;
        if (info && info->has_value && (info_copy = malloc(info->value_len + 1))) {
            memcpy(info_copy, info->value, info->value_len);
            info_copy[info->value_len] = '\0';
            n.info = info_copy;
            n.info_len = info->value_len;
        } else if (info) {
            n.info = info_copy = lmd_strdup("");
        }
        json_t *o = lmd_json_node(&n);
        free(info_copy);
        if (!o || json_array_append_new(r->nodes, o) != 0) {
            fprintf(stderr, "lmdisc discover: out of memory\n");
            r->failed = true;
            break;
        }
    }
    free(sorted);
}

static void start_walk(struct drun *r, const char *server)
{
    lmd_err err = {0};
    double left = r->deadline - lmd_now_mono();
    if (lmd_dns_walk_start(r->base, server, r->a->domain, r->a->type, r->key, left > 0.1 ? left : 0.1, on_walk, r,
                           &r->walk, &err) != 0) {
        r->failed = true;
        give_up(r->base, "discover", "%s", lmd_err_text(&err));
    }
}

static void on_found_d(int rc, const char *addr, const char *mname, const char *text, void *arg)
{
    struct drun *r = arg;
    r->find = NULL;
    if (rc != 0) {
        r->failed = true;
        give_up(r->base, "discover", NO_SERVER, r->a->domain, text);
        return;
    }
    lmd_debug("%s's primary server: %s (%s)", r->a->domain, mname ? mname : "?", addr);
    start_walk(r, addr);
}

json_t *lmd_discover_dns(const struct lmd_discover_args *a, int *exit_code)
{
    struct drun r = {.a = a, .deadline = lmd_now_mono() + a->timeout};
    *exit_code = LMD_EXIT_FAIL;
    if (load_key("discover", a->key, &r.key) != 0) {
        *exit_code = LMD_EXIT_USAGE;
        return NULL;
    }
    json_t *doc = NULL;
    lmd_err err = {0};
    if (!(r.base = event_base_new())) {
        fprintf(stderr, "lmdisc discover: out of memory\n");
        goto out;
    }
    if (a->server)
        start_walk(&r, a->server);
    else if (lmd_dns_find_server(r.base, a->domain, NULL, r.key, a->timeout < FIND_TIMEOUT ? a->timeout : FIND_TIMEOUT,
                                 on_found_d, &r, &r.find, &err) != 0) {
        give_up(NULL, "discover", NO_SERVER, a->domain, lmd_err_text(&err));
        r.failed = true;
    }
    if (!r.failed)
        event_base_dispatch(r.base);
    if (!r.failed && r.nodes) {
        doc = json_pack("{s:s,s:s,s:b,s:O}", "type", a->type, "domain", a->domain, "complete", true, "nodes",
                        r.nodes);
        if (!doc)
            fprintf(stderr, "lmdisc discover: out of memory\n");
    } else if (!r.failed) {
        fprintf(stderr, "lmdisc discover: no answer from the DNS server within %g s\n", a->timeout);
    }
out:
    json_decref(r.nodes);
    lmd_dns_walk_cancel(r.walk);
    lmd_dns_find_cancel(r.find);
    lmd_dns_key_free(r.key);
    if (r.base)
        event_base_free(r.base);
    return doc;
}

/* ---- announce --domain ------------------------------------------------ */

struct arun {
    struct event_base *base;
    const struct lmd_announce_args *a;
    lmd_dns_key *key;
    char server[64];
    char zone[256];
    char host[320];
    char shard[64];           /* of a sharded domain: where it publishes ("" the domain) */
    lmd_dns_find *find;
    lmd_dns_req *req;
    int req_mode;
    struct event *timer;
    bool published, ever, stopping;
    unsigned fails;
    int rc;
};

static void on_update(const lmd_dns_result *res, void *arg);

static void service(const struct arun *r, lmd_dns_service *svc, const char *const *ap, size_t n)
{
    unsigned ttl = r->a->ttl ? r->a->ttl : 60;
    if (ttl > r->a->lease)
        ttl = r->a->lease;
    *svc = (lmd_dns_service){.zone = r->zone, .instance = r->a->name, .type = r->a->type, .host = r->host,
                             .port = r->a->port, .txt = &r->a->txt, .addrs = ap, .n_addrs = n, .ttl = ttl,
                             .lease = r->a->lease, .shard = r->shard};
}

static int send_update(struct arun *r, int mode, double timeout, lmd_err *err)
{
    char addrs[8][64];
    const char *ap[8];
    size_t n = mode == LMD_DNS_PUBLISH ? lmd_dns_routable_addrs(addrs, 8) : 0;
    for (size_t i = 0; i < n; i++)
        ap[i] = addrs[i];
    lmd_dns_service svc;
    service(r, &svc, ap, n);
    lmd_dns_msg *msg = NULL;
    int rc = lmd_dns_update_build(&svc, mode, r->key, &msg, err);
    if (rc == 0)
        rc = lmd_dns_send(r->base, r->server, 0, msg, r->key, timeout, on_update, r, &r->req, err);
    if (rc == 0) {
        r->req_mode = mode;
        if (mode == LMD_DNS_PUBLISH && n == 0 && !r->ever)
            fprintf(stderr, "lmdisc announce: this host has no routable address: %s is published without A/AAAA "
                            "records\n", r->host);
    }
    return rc;
}

static void on_update(const lmd_dns_result *res, void *arg)
{
    struct arun *r = arg;
    r->req = NULL;
    char e[160], why[1200];
    if (r->stopping) { /* the withdraw */
        if (res->rc == 0) {
            printf("withdrew \"%s\" from %s\n", lmd_escape_str(r->a->name, e, sizeof e), r->zone);
        } else {
            lmd_dns_service svc;
            service(r, &svc, NULL, 0);
            lmd_dns_update_explain(res, &svc, lmd_dns_key_name(r->key), r->a->key, why, sizeof why);
            fprintf(stderr, "lmdisc announce: could not withdraw \"%s\": %s; its records stay until they are removed\n",
                    lmd_escape_str(r->a->name, e, sizeof e), why);
            r->rc = LMD_EXIT_FAIL;
        }
        event_base_loopbreak(r->base);
        return;
    }
    if (res->rc != 0) {
        lmd_dns_service svc;
        service(r, &svc, NULL, 0);
        lmd_dns_update_explain(res, &svc, lmd_dns_key_name(r->key), r->a->key, why, sizeof why);
        if (!r->ever) { /* the first publish: nothing is there, say why and stop */
            r->rc = LMD_EXIT_FAIL;
            give_up(r->base, "announce", "%s", why);
            return;
        }
        r->fails++;
        double again = lmd_backoff(r->fails, RETRY_FIRST, RETRY_MAX);
        if (again > r->a->lease / 4.0)
            again = r->a->lease / 4.0;
        fprintf(stderr, "lmdisc announce: refreshing failed: %s; trying again in %g s\n", why, again);
        lmd_timer_in(r->timer, again);
        return;
    }
    if (!r->ever || r->fails)
        printf("%s \"%s\" in %s as %s (server %s, %s)\n", r->ever ? "published again" : "published",
               lmd_escape_str(r->a->name, e, sizeof e), r->zone, r->host, r->server, res->tcp ? "TCP" : "UDP");
    else
        lmd_debug("refreshed \"%s\" in %s", r->a->name, r->zone);
    fflush(stdout);
    r->ever = r->published = true;
    r->fails = 0;
    lmd_timer_in(r->timer, r->a->lease / 2.0);
}

static void on_refresh(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct arun *r = arg;
    lmd_err err = {0};
    if (r->req || r->stopping)
        return;
    if (send_update(r, LMD_DNS_PUBLISH, UPDATE_TIMEOUT, &err) != 0) {
        r->fails++;
        double again = lmd_backoff(r->fails, RETRY_FIRST, RETRY_MAX);
        fprintf(stderr, "lmdisc announce: cannot send the refresh: %s; trying again in %g s\n", lmd_err_text(&err),
                again);
        lmd_timer_in(r->timer, again);
    }
}

static void publish_now(struct arun *r)
{
    lmd_err err = {0};
    if (send_update(r, LMD_DNS_PUBLISH, UPDATE_TIMEOUT, &err) != 0) {
        r->rc = LMD_EXIT_FAIL;
        give_up(r->base, "announce", "%s", lmd_err_text(&err));
    }
}

/* The domain's browse list: the shard this host writes in, as the agent
 * picks it (src/wide/shardpub.c); not read: the domain itself. */
static void on_list(const lmd_dns_result *res, void *arg)
{
    struct arun *r = arg;
    r->req = NULL;
    lmd_dns_rr *rrs = NULL;
    size_t n = 0, k = 0;
    lmd_err err = {0};
    static char labels[LMD_DNS_MAX_SHARDS][64];
    if (res->rc == 0 && res->answer &&
        lmd_dns_answer_parse(res->answer, res->answer_len, LMD_DNS_T_PTR, &rrs, &n, &err) == 0) {
        for (size_t i = 0; i < n && k < LMD_DNS_MAX_SHARDS; i++)
            k += lmd_dns_shard_of(rrs[i].target, r->zone, labels[k], sizeof labels[k]);
    } else if (res->rc != 0 && res->rcode != 3) {
        fprintf(stderr, "lmdisc announce: cannot read the browse domains of %s (%s): publishing in the domain "
                        "itself\n", r->zone, res->text);
    }
    lmd_dns_rrs_free(rrs, n);
    long pick = lmd_dns_shard_pick(r->host, (const char (*)[64])labels, k);
    snprintf(r->shard, sizeof r->shard, "%s", pick >= 0 ? labels[pick] : "");
    if (pick >= 0)
        lmd_debug("%s lists %zu shards: publishing in %s.%s", r->zone, k, r->shard, r->zone);
    publish_now(r);
}

static void publish_first(struct arun *r)
{
    char list[400];
    lmd_dns_msg *m = NULL;
    lmd_err err = {0};
    snprintf(list, sizeof list, "%s.%s", LMD_DNS_BROWSE_LIST, r->zone);
    r->req_mode = 0;
    if (lmd_dns_query_build(NULL, list, LMD_DNS_T_PTR, &m, &err) != 0 || lmd_dns_query_sign(m, r->key, &err) != 0) {
        lmd_dns_msg_free(m);
        publish_now(r);
    } else if (lmd_dns_send(r->base, r->server, 0, m, r->key, 3.0, on_list, r, &r->req, &err) != 0) {
        publish_now(r);
    }
}

static void on_found_a(int rc, const char *addr, const char *mname, const char *text, void *arg)
{
    struct arun *r = arg;
    r->find = NULL;
    if (rc != 0) {
        r->rc = LMD_EXIT_FAIL;
        give_up(r->base, "announce", NO_SERVER, r->zone, text);
        return;
    }
    lmd_debug("%s's primary server: %s (%s)", r->zone, mname ? mname : "?", addr);
    snprintf(r->server, sizeof r->server, "%s", addr);
    publish_first(r);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct arun *r = arg;
    if (r->stopping)
        return;
    lmd_debug("signal %d: withdrawing", (int)sig);
    r->stopping = true;
    event_del(r->timer);
    lmd_dns_find_cancel(r->find);
    r->find = NULL;
    bool maybe_there = r->published || (r->req && r->req_mode == LMD_DNS_PUBLISH) || r->fails > 0;
    lmd_dns_req_cancel(r->req);
    r->req = NULL;
    lmd_err err = {0};
    if (!maybe_there) {
        event_base_loopbreak(r->base);
        return;
    }
    if (send_update(r, LMD_DNS_WITHDRAW, WITHDRAW_BOUND, &err) != 0) {
        r->rc = LMD_EXIT_FAIL;
        give_up(r->base, "announce", "cannot withdraw: %s; the records stay until they are removed",
                lmd_err_text(&err));
    }
}

int lmd_announce_dns(const struct lmd_announce_args *a)
{
    struct arun r = {.a = a};
    char short_host[64];
    if (load_key("announce", a->key, &r.key) != 0)
        return LMD_EXIT_USAGE;
    size_t dl = strlen(a->domain);
    if (dl && a->domain[dl - 1] == '.')
        dl--;
    snprintf(r.zone, sizeof r.zone, "%.*s", (int)dl, a->domain);
    if (a->host) {
        snprintf(short_host, sizeof short_host, "%s", a->host);
    } else if (lmd_dns_short_host(short_host, sizeof short_host) != 0) {
        lmd_dns_key_free(r.key);
        return lmd_usage_error("announce", "this machine's host name is not a DNS label: give --host LABEL");
    }
    snprintf(r.host, sizeof r.host, "%s.%s", short_host, r.zone);
    struct event *sigint = NULL, *sigterm = NULL;
    r.rc = LMD_EXIT_FAIL;
    if (!(r.base = event_base_new()) || !(r.timer = evtimer_new(r.base, on_refresh, &r)) ||
        !(sigint = evsignal_new(r.base, SIGINT, on_stop_signal, &r)) ||
        !(sigterm = evsignal_new(r.base, SIGTERM, on_stop_signal, &r)) || evsignal_add(sigint, NULL) ||
        evsignal_add(sigterm, NULL)) {
        fprintf(stderr, "lmdisc announce: out of memory\n");
        goto done;
    }
    r.rc = 0;
    lmd_err err = {0};
    if (a->server) {
        snprintf(r.server, sizeof r.server, "%s", a->server);
        publish_first(&r);
    } else if (lmd_dns_find_server(r.base, r.zone, NULL, r.key, FIND_TIMEOUT, on_found_a, &r, &r.find, &err) != 0) {
        give_up(NULL, "announce", NO_SERVER, r.zone, lmd_err_text(&err));
        r.rc = LMD_EXIT_FAIL;
        goto done;
    }
    if (r.rc == 0)
        event_base_dispatch(r.base);
done:
    lmd_dns_find_cancel(r.find);
    lmd_dns_req_cancel(r.req);
    lmd_event_free(r.timer);
    lmd_event_free(sigint);
    lmd_event_free(sigterm);
    if (r.base)
        event_base_free(r.base);
    lmd_dns_key_free(r.key);
    return r.rc;
}
