/* Liveness checks (see health.h): TCP connects with bufferevents, HTTP GETs
 * with evhttp, each bounded by its own timer, all on the agent's loop. */
#include "check/health.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- one probe ------------------------------------------------------------ */

typedef void (*probe_cb)(void *ud, bool ok, const char *detail);

struct probe {
    struct event_base *base;
    struct bufferevent *bev;
    struct evhttp_connection *conn;
    struct evhttp_request *req;  /* while it is pending */
    struct event *timer;
    probe_cb cb;
    void *ud;
};

static void free_conn_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evhttp_connection_free(arg);
}

static void probe_free(struct probe *p)
{
    if (p->req)
        evhttp_cancel_request(p->req);
    if (p->bev)
        bufferevent_free(p->bev);
    if (p->conn) /* never from inside its own callback: defer */
        event_base_once(p->base, -1, EV_TIMEOUT, free_conn_later, p->conn, &(struct timeval){0, 0});
    if (p->timer)
        event_free(p->timer);
    free(p);
}

static void probe_finish(struct probe *p, bool ok, const char *detail)
{
    probe_cb cb = p->cb;
    void *ud = p->ud;
    probe_free(p);
    cb(ud, ok, detail);
}

static void probe_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct probe *p = arg;
    if (p->req) /* so that evhttp never calls back into a freed probe */
        evhttp_cancel_request(p->req);
    p->req = NULL;
    probe_finish(p, false, "timed out");
}

static void tcp_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct probe *p = arg;
    if (what & BEV_EVENT_CONNECTED) {
        probe_finish(p, true, "connected");
    } else if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        char d[96];
        snprintf(d, sizeof d, "connect failed: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        probe_finish(p, false, d);
    }
}

static void http_done(struct evhttp_request *req, void *arg)
{
    struct probe *p = arg;
    p->req = NULL; /* evhttp frees it after this callback */
    int code = req ? evhttp_request_get_response_code(req) : 0;
    char d[64];
    if (code == 0)
        snprintf(d, sizeof d, "no HTTP answer");
    else
        snprintf(d, sizeof d, "HTTP %d", code);
    probe_finish(p, code >= 200 && code < 300, d);
}

static struct probe *probe_start(struct event_base *base, const struct lmd_probe_config *cfg, const char *addr,
                                 uint16_t port, probe_cb cb, void *ud)
{
    struct probe *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->base = base;
    p->cb = cb;
    p->ud = ud;
    double t = cfg->timeout;
    if (!(p->timer = evtimer_new(base, probe_timeout, p)) || lmd_timer_in(p->timer, t) != 0)
        goto fail;
    if (cfg->tcp) {
        struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM}, *ai;
        char portstr[8];
        snprintf(portstr, sizeof portstr, "%u", port);
        if (getaddrinfo(addr, portstr, &hints, &ai) != 0)
            goto fail;
        p->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        int rc = p->bev ? 0 : -1;
        if (p->bev) {
            bufferevent_setcb(p->bev, NULL, NULL, tcp_event, p);
            rc = bufferevent_socket_connect(p->bev, ai->ai_addr, (int)ai->ai_addrlen);
        }
        freeaddrinfo(ai);
        if (rc != 0)
            goto fail;
    } else {
        p->conn = evhttp_connection_base_new(base, NULL, addr, port);
        if (!p->conn)
            goto fail;
        evhttp_connection_set_timeout(p->conn, (int)ceil(t));
        evhttp_connection_set_retries(p->conn, 0);
        /* the status line is all a check needs: a peer that answers with
         * endless headers or body is refused, not buffered */
        evhttp_connection_set_max_headers_size(p->conn, 16384);
        evhttp_connection_set_max_body_size(p->conn, 65536);
        struct evhttp_request *req = evhttp_request_new(http_done, p);
        if (!req)
            goto fail;
        evhttp_add_header(evhttp_request_get_output_headers(req), "Host", addr);
        evhttp_add_header(evhttp_request_get_output_headers(req), "User-Agent", "lmdisc/" LMD_VERSION);
        if (evhttp_make_request(p->conn, req, EVHTTP_REQ_GET, cfg->path && *cfg->path ? cfg->path : "/") != 0)
            goto fail; /* evhttp frees req */
        p->req = req;
    }
    return p;
fail:
    probe_free(p);
    return NULL;
}

static void arm(struct event *ev, double secs)
{
    if (lmd_timer_in(ev, secs) != 0)
        lmd_error("cannot arm a check timer (out of memory): checks stop until the next reload");
}

/* ---- the local server ----------------------------------------------------- */

struct lmd_health {
    struct event_base *base;
    struct lmd_probe_config cfg;
    char *path;
    char host[64];
    uint16_t port;
    struct event *tick;
    struct probe *inflight;
    unsigned fails;
    int state;             /* -1 unknown, 0 down, 1 up */
    lmd_health_cb cb;
    void *ud;
};

static void health_result(void *ud, bool ok, const char *detail)
{
    lmd_health *h = ud;
    h->inflight = NULL;
    h->fails = ok ? 0 : h->fails + 1;
    int state = h->state;
    if (ok)
        state = 1;
    else if (h->fails >= h->cfg.failures || h->state < 0)
        state = 0; /* the very first check decides at once */
    if (state != h->state) {
        h->state = state;
        h->cb(h->ud, state == 1, detail);
    }
    arm(h->tick, h->cfg.interval);
}

static void health_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_health *h = arg;
    if (h->inflight)
        return;
    h->inflight = probe_start(h->base, &h->cfg, h->host, h->port, health_result, h);
    if (!h->inflight)
        health_result(h, false, "cannot start the check");
}

int lmd_health_new(struct event_base *base, const struct lmd_probe_config *cfg, const char *host, uint16_t port,
                   lmd_health_cb cb, void *ud, lmd_health **out, lmd_err *err)
{
    lmd_health *h = *out = calloc(1, sizeof *h);
    if (!h)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    h->base = base;
    h->cfg = *cfg;
    h->path = lmd_strdup(cfg->path);
    h->cfg.path = h->path;
    snprintf(h->host, sizeof h->host, "%s", strcmp(host, "localhost") ? host : "127.0.0.1");
    h->port = port;
    h->state = -1;
    h->cb = cb;
    h->ud = ud;
    if (!(h->tick = evtimer_new(base, health_tick, h))) {
        free(h->path);
        free(h);
        *out = NULL;
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    arm(h->tick, 0);
    return 0;
}

void lmd_health_free(lmd_health *h)
{
    if (!h)
        return;
    if (h->inflight)
        probe_free(h->inflight);
    event_free(h->tick);
    free(h->path);
    free(h);
}

/* ---- peers ---------------------------------------------------------------- */

struct target {
    struct target *next;       /* all targets */
    struct target *qnext;      /* waiting for a free slot */
    lmd_checks *c;
    char *name;
    char addr[4][64];          /* ranked: IPv4, global IPv6, link-local */
    unsigned n_addrs;
    unsigned good;             /* where the last round succeeded */
    unsigned tried;            /* addresses tried this round */
    uint16_t port;
    struct event *timer;
    struct probe *inflight;
    bool queued;
    bool unhealthy;
    unsigned fails;
};

struct lmd_checks {
    struct event_base *base;
    struct lmd_checks_config cfg;
    char *path;
    struct target *targets;
    struct target *qhead, *qtail;
    unsigned in_flight, peak;
    double started, failed;
    lmd_checks_cb cb;
    void *ud;
};

static double jitter(double base, double spread)
{
    /* arc4random: no process-wide seed to set or to disturb */
    return base * (1 - spread + 2 * spread * ((double)arc4random() / UINT32_MAX));
}

static void target_start(struct target *t);

static void start_queued(lmd_checks *c)
{
    while (c->qhead && c->in_flight < c->cfg.concurrency) {
        struct target *t = c->qhead;
        c->qhead = t->qnext;
        if (!c->qhead)
            c->qtail = NULL;
        t->queued = false;
        t->qnext = NULL;
        target_start(t);
    }
}

static void target_result(void *ud, bool ok, const char *detail)
{
    struct target *t = ud;
    lmd_checks *c = t->c;
    t->inflight = NULL;
    c->in_flight--;
    /* a check fails only when every address of the peer failed: a server
     * bound to one family, a peer whose other family resolved first, must
     * not read as down (the next address keeps the slot it had) */
    if (!ok && ++t->tried < t->n_addrs) {
        target_start(t);
        if (t->inflight)
            return;
    }
    if (ok)
        t->good = (t->good + t->tried) % t->n_addrs;
    t->tried = 0;
    c->failed += !ok;
    t->fails = ok ? 0 : t->fails + 1;
    arm(t->timer, jitter(c->cfg.probe.interval, 0.1));
    if (ok && t->unhealthy) {
        t->unhealthy = false;
        c->cb(c->ud, t->name, true, detail); /* may forget t */
    } else if (!ok && !t->unhealthy && t->fails >= c->cfg.probe.failures) {
        t->unhealthy = true;
        c->cb(c->ud, t->name, false, detail);
    }
    start_queued(c);
}

static void target_start(struct target *t)
{
    lmd_checks *c = t->c;
    const char *addr = t->addr[(t->good + t->tried) % t->n_addrs];
    t->inflight = probe_start(c->base, &c->cfg.probe, addr, t->port, target_result, t);
    if (t->inflight) {
        c->started++;
        c->in_flight++;
        if (c->in_flight > c->peak)
            c->peak = c->in_flight;
    } else {
        arm(t->timer, c->cfg.probe.interval);
    }
}

static void target_due(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct target *t = arg;
    lmd_checks *c = t->c;
    if (t->inflight || t->queued)
        return;
    if (c->in_flight < c->cfg.concurrency) {
        target_start(t);
        return;
    }
    t->queued = true;
    if (c->qtail)
        c->qtail->qnext = t;
    else
        c->qhead = t;
    c->qtail = t;
}

int lmd_checks_new(struct event_base *base, const struct lmd_checks_config *cfg, lmd_checks_cb cb, void *ud,
                   lmd_checks **out, lmd_err *err)
{
    lmd_checks *c = *out = calloc(1, sizeof *c);
    if (!c)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    c->base = base;
    c->cfg = *cfg;
    c->path = lmd_strdup(cfg->probe.path);
    c->cfg.probe.path = c->path;
    c->cb = cb;
    c->ud = ud;
    return 0;
}

/* Rank the peer's addresses: IPv4 first (no scope to get wrong), then
 * global IPv6, then link-local; at most 4 kept. */
static unsigned rank_addrs(const lmd_node_info *n, char out[4][64])
{
    unsigned k = 0;
    for (int r = 0; r < 3; r++)
        for (size_t i = 0; i < n->n_addrs && k < 4; i++) {
            const lmd_addr *a = &n->addrs[i];
            int ar = a->family == 4 ? 0 : strncmp(a->addr, "fe80", 4) ? 1 : 2;
            if (ar == r)
                snprintf(out[k++], 64, "%s", a->addr);
        }
    return k;
}

static struct target *find_target(lmd_checks *c, const char *name, struct target ***link)
{
    for (struct target **pp = &c->targets; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->name, name)) {
            if (link)
                *link = pp;
            return *pp;
        }
    return NULL;
}

void lmd_checks_watch(lmd_checks *c, const lmd_node_info *peer)
{
    char addrs[4][64];
    unsigned n = rank_addrs(peer, addrs);
    if (!n)
        return;
    struct target *t = find_target(c, peer->name, NULL);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t || !(t->name = lmd_strdup(peer->name)) || !(t->timer = evtimer_new(c->base, target_due, t))) {
            if (t)
                free(t->name);
            free(t);
            return;
        }
        t->c = c;
        t->next = c->targets;
        c->targets = t;
        arm(t->timer, jitter(c->cfg.probe.interval, 0.5) - c->cfg.probe.interval * 0.5);
    }
    /* a round in flight keeps its place; the next one starts from the best */
    memcpy(t->addr, addrs, sizeof addrs);
    if (!t->inflight) {
        t->good = t->good < n ? t->good : 0;
        t->tried = 0;
    }
    t->n_addrs = n;
    t->port = peer->port;
}

void lmd_checks_forget(lmd_checks *c, const char *name)
{
    struct target **link;
    struct target *t = find_target(c, name, &link);
    if (!t)
        return;
    *link = t->next;
    if (t->queued) {
        struct target **qq = &c->qhead, *prev = NULL;
        for (; *qq && *qq != t; qq = &(*qq)->qnext)
            prev = *qq;
        if (*qq)
            *qq = t->qnext;
        if (c->qtail == t)
            c->qtail = prev;
    }
    if (t->inflight) {
        probe_free(t->inflight);
        c->in_flight--;
    }
    event_free(t->timer);
    free(t->name);
    free(t);
    start_queued(c);
}

unsigned lmd_checks_peak(const lmd_checks *c) { return c->peak; }

void lmd_checks_counts(const lmd_checks *c, double *started, double *failed)
{
    *started = c->started;
    *failed = c->failed;
}

void lmd_checks_free(lmd_checks *c)
{
    if (!c)
        return;
    while (c->targets) {
        struct target *t = c->targets;
        c->targets = t->next;
        if (t->inflight)
            probe_free(t->inflight);
        event_free(t->timer);
        free(t->name);
        free(t);
    }
    free(c->path);
    free(c);
}

int lmd_parse_http_url(const char *url, char *host, size_t hostlen, uint16_t *port, char *path, size_t pathlen)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    if (!u)
        return LMD_EINVAL;
    const char *scheme = evhttp_uri_get_scheme(u), *h = evhttp_uri_get_host(u), *p = evhttp_uri_get_path(u);
    const char *q = evhttp_uri_get_query(u);
    int po = evhttp_uri_get_port(u);
    int rc = 0;
    if (!scheme || strcmp(scheme, "http") != 0 || !h || !*h)
        rc = LMD_EINVAL;
    else {
        snprintf(host, hostlen, "%s", h);
        *port = (uint16_t)(po > 0 ? po : 80);
        snprintf(path, pathlen, "%s%s%s", p && *p ? p : "/", q ? "?" : "", q ? q : "");
    }
    evhttp_uri_free(u);
    return rc;
}
