/* Wide-area DNS-SD publishing, the set of services (publish.c sends each
 * one's updates): the configured announce { } and the services registered
 * through the API; a clean stop withdraws them all within a bound; a
 * reload that moves to another domain or name retires the old set, which
 * withdraws in the background what the new one will not publish; what
 * the rest of the agent reads of it. */
#include "wide/publish.h"
#include "base/json.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* HOST.DOMAIN of a configuration: wide_area.host, else this machine's
 * short host name. */
static int host_of(const struct lmd_config *cfg, char *out, size_t len, lmd_err *err)
{
    char short_host[256] = "";
    if (cfg->wide_area.host)
        snprintf(short_host, sizeof short_host, "%s", cfg->wide_area.host);
    else if (lmd_dns_short_host(short_host, sizeof short_host) != 0)
        return lmd_err_set(err, LMD_EINVAL,
                           "wide_area: this machine's host name is not a DNS label; set wide_area { host = \"...\" }");
    const char *d = cfg->wide_area.domain;
    size_t dl = strlen(d);
    snprintf(out, len, "%s.%.*s", short_host, (int)(dl && d[dl - 1] == '.' ? dl - 1 : dl), d);
    return 0;
}

static void wide_free(lmd_wide_set *w)
{
    while (w->pubs) {
        struct lmd_wpub *p = w->pubs;
        w->pubs = p->next;
        lmd_wp_free(p);
    }
    lmd_wp_live_free_all(w);
    lmd_wp_shard_free(w);
    lmd_wt_free(w);
    lmd_dns_key_free(w->key);
    free(w->domain);
    free(w->server);
    free(w->type);
    free(w);
}

static int set_start(lmd_wide *wd, lmd_err *err)
{
    const struct lmd_config *cfg = wd->cfg;
    lmd_wide_set *w = calloc(1, sizeof *w);
    if (!w)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    w->wd = wd;
    w->lease = cfg->wide_area.lease;
    w->domain = lmd_strdup(cfg->wide_area.domain);
    w->server = lmd_strdup(wd->server);
    w->type = lmd_strdup(lmd_wide_type(cfg));
    lmd_err kerr = {0};
    int rc = !w->domain || !w->server || !w->type ? lmd_err_set(err, LMD_ENOMEM, "out of memory") : 0;
    if (rc == 0 && (rc = lmd_dns_key_load(cfg->wide_area.key, &w->key, &kerr)) != 0)
        lmd_err_set(err, rc, "wide_area.key: %s", lmd_err_text(&kerr));
    if (rc == 0)
        rc = host_of(cfg, w->host, sizeof w->host, err);
    if (rc == 0 && lmd_wt_start(w, cfg) != 0)
        rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
    if (rc == 0) {
        size_t dl = strlen(w->domain);
        snprintf(w->live_zone, sizeof w->live_zone, "%s.%.*s", LMD_DNS_LIVE_LABEL,
                 (int)(dl && w->domain[dl - 1] == '.' ? dl - 1 : dl), w->domain);
        snprintf(w->host_label, sizeof w->host_label, "%.*s", (int)strcspn(w->host, "."), w->host);
    }
    char name[128];
    lmd_config_name(cfg, name, sizeof name);
    if (rc == 0 && cfg->announce.given && !(w->pubs = lmd_wp_new(w, name)))
        rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
    if (rc) {
        wide_free(w);
        return rc;
    }
    wd->set = w;
    char e[160];
    if (cfg->announce.given)
        lmd_info("wide-area: publishing \"%s\" in %s through %s with key %s (lease %u s)",
                 lmd_escape(name, strlen(name), e, sizeof e), w->domain, w->server, lmd_dns_key_name(w->key), w->lease);
    else if (!wd->host.registered(wd->host.ud, NULL)) /* the key signs transfers */
        lmd_info("wide-area: no announce { }: nothing to publish in %s but services registered through the API",
                 w->domain);
    wd->host.registered(wd->host.ud, wd); /* those registered before (a reload, a server found late) */
    lmd_wp_shard_start(w); /* then lmd_wide_sync */
    return 0;
}

int lmd_wide_start(lmd_wide *wd, lmd_err *err)
{
    int rc = set_start(wd, err);
    return rc ? rc : lmd_wide_browse_start(wd, err);
}

/* ---- registered services -------------------------------------------------- */

/* gone: also one withdrawn whose withdraw is still under way */
static struct lmd_wpub *find_registered(const lmd_wide_set *w, const char *name, bool gone)
{
    for (struct lmd_wpub *p = w->pubs; p; p = p->next)
        if (p->registered && (gone || !p->gone) && !strcmp(p->name, name))
            return p;
    return NULL;
}

void lmd_wide_service(lmd_wide *wd, const char *name, uint16_t port, const lmd_txt *txt)
{
    lmd_wide_set *w = wd ? wd->set : NULL;
    if (!w || w->stopping)
        return;
    /* registered again while its withdraw is under way: the same one, so
     * the publish goes after the withdraw (one update per name at a time) */
    struct lmd_wpub *p = find_registered(w, name, true);
    lmd_txt copy;
    if (lmd_txt_copy(&copy, txt) != 0 || (!p && !(p = lmd_wp_new(w, name)))) {
        if (!p)
            lmd_txt_free(&copy);
        lmd_error("wide-area: out of memory: \"%s\" is not published in %s", name, w->domain);
        return;
    }
    if (!p->registered) { /* new: after the configured one */
        p->registered = true;
        struct lmd_wpub **pp = &w->pubs;
        while (*pp)
            pp = &(*pp)->next;
        *pp = p;
    }
    lmd_txt_free(&p->txt);
    p->txt = copy;
    p->port = port;
    p->gone = false;
    lmd_wp_sync(p, false);
}

void lmd_wide_service_gone(lmd_wide *wd, const char *name)
{
    struct lmd_wpub *p = wd && wd->set ? find_registered(wd->set, name, false) : NULL;
    if (!p || wd->set->stopping)
        return;
    p->gone = true;
    bool unsure = p->fails > 0; /* a failed publish may have been applied */
    p->fails = 0;
    lmd_wp_sync(p, unsure); /* withdraws, or frees what was never sent */
}

json_t *lmd_wide_service_json(const lmd_wide *wd, const char *name)
{
    if (!wd || !wd->set)
        return NULL;
    const struct lmd_wpub *p = find_registered(wd->set, name, false);
    const char *state = !p ? "not published" : p->published ? "published" : p->fails ? "failing" : "publishing";
    json_t *j = json_pack("{s:s,s:s}", "domain", wd->set->domain, "state", state);
    if (j && p && p->why[0])
        json_object_set_new(j, "error", lmd_json_str(p->why));
    return j;
}

/* ---- stopping and retiring --------------------------------------------- */

static void stop_bound(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Withdraw the services of w that may be in the zone (keep: those not to
 * withdraw, or NULL), with the host's addresses when with_host.  Nothing
 * more is sent for w after this.  Returns the updates sent. */
static size_t withdraw_all(lmd_wide_set *w, bool (*keep)(const struct lmd_wpub *, const void *), const void *ctx,
                           bool with_host)
{
    w->stopping = true;
    size_t sent = 0;
    for (struct lmd_wpub *p = w->pubs; p; p = p->next) {
        event_del(p->timer);
        bool maybe_there = p->published || (p->req && p->req_mode == LMD_DNS_PUBLISH) || p->fails > 0;
        lmd_dns_req_cancel(p->req);
        p->req = NULL;
        if (!maybe_there || (keep && keep(p, ctx)))
            continue;
        lmd_wp_send(p, LMD_DNS_WITHDRAW, with_host);
        sent += p->req != NULL;
    }
    return sent;
}

static bool any_req(const lmd_wide_set *w)
{
    for (const struct lmd_wpub *p = w->pubs; p; p = p->next)
        if (p->req)
            return true;
    return lmd_wt_busy(w); /* a NOTIFY of the last withdraw (tell.c) */
}

/* A retired one with no update left in flight is freed. */
void lmd_wp_retired_check(lmd_wide_set *w)
{
    lmd_wide *wd = w->wd;
    if (wd->set == w || any_req(w))
        return;
    for (lmd_wide_set **pp = &wd->retired; *pp; pp = &(*pp)->next_retired)
        if (*pp == w) {
            *pp = w->next_retired;
            wide_free(w);
            return;
        }
}

struct retire_ctx {
    const struct lmd_config *cfg;
    char name[128];
    bool same_domain;
};

static bool same_domain(const char *x, const char *y)
{
    size_t lx = strlen(x), ly = strlen(y);
    lx -= lx && x[lx - 1] == '.';
    ly -= ly && y[ly - 1] == '.';
    return lx == ly && strncasecmp(x, y, lx) == 0;
}

/* Kept: the new configuration publishes the same name in the same domain
 * (its first update replaces the records). */
static bool still_published(const struct lmd_wpub *p, const void *arg)
{
    const struct retire_ctx *c = arg;
    if (!c->same_domain)
        return false;
    /* a registered service stays registered across a reload, unless it was
     * withdrawn (its withdraw was under way) */
    return p->registered ? !p->gone : c->cfg->announce.given && !strcmp(c->name, p->name);
}

/* A reload replaces the publisher: the old one withdraws, in the
 * background, what the new configuration (wd->cfg by now) will not
 * publish. */
static void retire(lmd_wide *wd)
{
    lmd_wide_set *w = wd->set;
    if (!w)
        return;
    wd->set = NULL;
    const struct lmd_config *cfg = wd->cfg;
    struct retire_ctx c = {.cfg = cfg};
    lmd_config_name(cfg, c.name, sizeof c.name);
    /* the same domain and service type: the same names */
    c.same_domain = cfg->wide_area.given && same_domain(cfg->wide_area.domain, w->domain) &&
                    !strcasecmp(lmd_wide_type(cfg), w->type);
    char host[256] = "";
    lmd_err err = {0};
    bool same_host = c.same_domain && host_of(cfg, host, sizeof host, &err) == 0 && !strcasecmp(host, w->host) &&
                     (cfg->announce.given || wd->host.registered(wd->host.ud, NULL));
    w->next_retired = wd->retired;
    wd->retired = w;
    size_t n = withdraw_all(w, still_published, &c, !same_host);
    if (n)
        lmd_info("wide-area: reload: withdrawing %zu service(s) the new configuration does not publish in %s", n,
                 w->domain);
    lmd_wp_retired_check(w);
}

void lmd_wide_stop(lmd_wide *wd, double bound)
{
    if (!wd)
        return;
    lmd_wide_set *w = wd->set;
    if ((!w || w->stopping) && !wd->retired)
        return;
    if (w && !w->stopping && withdraw_all(w, NULL, NULL, true) == 0 && !wd->retired)
        return;
    /* turn the loop until every answer or the bound (the guard's own
     * flag: libevent's clock may fire it a hair before ours) */
    bool expired = false;
    struct event *guard = evtimer_new(wd->base, stop_bound, &expired);
    if (!guard || lmd_timer_in(guard, bound) != 0) {
        lmd_warn("wide-area: cannot time the withdraw (out of memory): our records stay in the zone");
        if (guard)
            event_free(guard);
        return;
    }
    while (((wd->set && any_req(wd->set)) || wd->retired) && !expired)
        if (event_base_loop(wd->base, EVLOOP_ONCE) != 0)
            break;
    event_free(guard);
    if (wd->set && any_req(wd->set))
        lmd_warn("wide-area: no answer to the withdraw within %g s: our records stay in %s", bound, wd->set->domain);
}

static void sets_free(lmd_wide *wd)
{
    if (wd->set)
        wide_free(wd->set);
    wd->set = NULL;
    while (wd->retired) {
        lmd_wide_set *w = wd->retired;
        wd->retired = w->next_retired;
        wide_free(w);
    }
}

/* ---- the whole: life and reload ------------------------------------------ */

/* Publishing and browsing, at once with a server, else once it is found. */
static int begin(lmd_wide *wd, lmd_err *err)
{
    if (!wd->cfg->wide_area.given)
        return 0;
    return wd->server ? lmd_wide_start(wd, err) : lmd_wide_find_start(wd, err);
}

/* wide_area.server, or NULL to find it */
static int take_server(lmd_wide *wd, const char *server)
{
    char *s = server ? lmd_strdup(server) : NULL;
    if (server && !s)
        return LMD_ENOMEM;
    free(wd->server);
    wd->server = s;
    wd->server_found = false;
    return 0;
}

int lmd_wide_check(const struct lmd_config *cfg, lmd_err *err)
{
    if (!cfg->wide_area.given)
        return 0;
    const char *const keys[][2] = {{"wide_area.key", cfg->wide_area.key},
                                   {"wide_area.sweep_key", cfg->wide_area.sweep_key}};
    for (size_t i = 0; i < LMD_ARRAY_LEN(keys); i++) {
        lmd_dns_key *k = NULL;
        lmd_err kerr = {0};
        if (keys[i][1] && lmd_dns_key_load(keys[i][1], &k, &kerr) != 0)
            return lmd_err_set(err, kerr.code, "%s: %s", keys[i][0], lmd_err_text(&kerr));
        lmd_dns_key_free(k);
    }
    char host[300];
    return host_of(cfg, host, sizeof host, err);
}

int lmd_wide_new(struct event_base *base, const struct lmd_config *cfg, lmd_peers *reg,
                 const struct lmd_wide_host *host, lmd_wide **out, lmd_err *err)
{
    *out = NULL;
    lmd_wide *wd = calloc(1, sizeof *wd);
    if (!wd)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    *wd = (lmd_wide){.base = base, .cfg = cfg, .reg = reg, .host = *host};
    int rc = take_server(wd, cfg->wide_area.given ? cfg->wide_area.server : NULL);
    if (rc != 0)
        rc = lmd_err_set(err, rc, "out of memory");
    if (rc == 0)
        rc = begin(wd, err);
    if (rc != 0) {
        lmd_wide_free(wd);
        return rc;
    }
    *out = wd;
    return 0;
}

int lmd_wide_reload(lmd_wide *wd, const struct lmd_config *old, lmd_err *err)
{
    const struct lmd_config *nc = wd->cfg;
    /* a new wide_area { } or announcement: published afresh; what the old
     * one published under another name or domain is withdrawn */
    if (lmd_config_section_equal(old, nc, "wide_area", NULL) &&
        lmd_config_section_equal(old, nc, "announce", (const char *const[]){"info", NULL})) {
        lmd_wide_sync(wd);
        return 0;
    }
    retire(wd);
    lmd_wide_browse_free(wd);
    lmd_wide_find_free(wd);
    /* no server configured: still the one found for the same domain */
    bool keep = wd->server_found && nc->wide_area.given && !nc->wide_area.server && old->wide_area.given &&
                lmd_streq(nc->wide_area.domain, old->wide_area.domain);
    if (!keep && take_server(wd, nc->wide_area.given ? nc->wide_area.server : NULL) != 0)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    return begin(wd, err);
}

void lmd_wide_free(lmd_wide *wd)
{
    if (!wd)
        return;
    lmd_wide_find_free(wd);
    sets_free(wd);
    lmd_wide_browse_free(wd);
    free(wd->server);
    free(wd);
}

/* ---- what others read of it ------------------------------------------- */

void lmd_wide_metrics(const lmd_wide *wd, struct lmd_metrics *out)
{
    out->wide_area = wd && wd->cfg->wide_area.given;
    if (!wd)
        return;
    const lmd_wide_set *w = wd->set;
    lmd_wide_browse_metrics(wd, out);
    if (!w)
        return;
    memcpy(out->dns_updates, w->counts, sizeof w->counts);
    out->dns_published = lmd_wp_config(w) && lmd_wp_config(w)->published;
    out->dns_services_published = out->dns_services_failing = 0;
    for (const struct lmd_wpub *p = w->pubs; p; p = p->next)
        if (!p->gone) {
            out->dns_services_published += p->published;
            out->dns_services_failing += p->fails > 0;
        }
    out->dns_tell_on = wd->cfg->wide_ntell > 0;
    memcpy(out->dns_tell, w->tell_counts, sizeof w->tell_counts);
    out->dns_update_seconds = w->last_seconds;
    out->dns_update_bytes = w->last_bytes;
}

const char *lmd_wide_name(const lmd_wide *wd)
{
    const struct lmd_wpub *p = wd && wd->set ? lmd_wp_config(wd->set) : NULL;
    return p && p->name[0] ? p->name : NULL;
}

bool lmd_wide_owns(const lmd_wide *wd, const char *name)
{
    for (const struct lmd_wpub *p = wd && wd->set ? wd->set->pubs : NULL; p; p = p->next)
        if (!strcmp(p->name, name))
            return true;
    return false;
}

bool lmd_wide_published(const lmd_wide *wd)
{
    const struct lmd_wpub *p = wd && wd->set ? lmd_wp_config(wd->set) : NULL;
    return p && p->published;
}

const char *lmd_wide_host_name(const lmd_wide *wd)
{
    return wd && wd->set ? wd->set->host : NULL;
}

const lmd_dns_key *lmd_wide_key(const lmd_wide *wd)
{
    return wd->set ? wd->set->key : NULL;
}
