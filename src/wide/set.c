/* Wide-area DNS-SD publishing, the set of services (wide.c sends each
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

static void wide_free(lmd_agent_wide *w)
{
    while (w->pubs) {
        struct wpub *p = w->pubs;
        w->pubs = p->next;
        lmd_wp_free(p);
    }
    lmd_dns_key_free(w->key);
    free(w->domain);
    free(w->server);
    free(w->type);
    free(w);
}

int lmd_agent_wide_start(lmd_agent *a, lmd_err *err)
{
    if (!a->cfg.wide_area.given)
        return 0;
    lmd_agent_wide *w = calloc(1, sizeof *w);
    if (!w)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    w->a = a;
    w->lease = a->cfg.wide_area.lease;
    w->domain = lmd_strdup(a->cfg.wide_area.domain);
    w->server = lmd_strdup(a->cfg.wide_area.server);
    w->type = lmd_strdup(a->cfg.announce.type ? a->cfg.announce.type : LMD_DEFAULT_TYPE);
    lmd_err kerr = {0};
    int rc = !w->domain || !w->server || !w->type ? lmd_err_set(err, LMD_ENOMEM, "out of memory") : 0;
    if (rc == 0 && (rc = lmd_dns_key_load(a->cfg.wide_area.key, &w->key, &kerr)) != 0)
        lmd_err_set(err, rc, "wide_area.key: %s", lmd_err_text(&kerr));
    if (rc == 0)
        rc = host_of(&a->cfg, w->host, sizeof w->host, err);
    char name[128];
    lmd_agent_config_name(&a->cfg, name, sizeof name);
    if (rc == 0 && a->cfg.announce.given && !(w->pubs = lmd_wp_new(w, name)))
        rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
    if (rc) {
        wide_free(w);
        return rc;
    }
    a->wide = w;
    char e[160];
    if (a->cfg.announce.given)
        lmd_info("wide-area: publishing \"%s\" in %s through %s with key %s (lease %u s)",
                 lmd_escape(name, strlen(name), e, sizeof e), w->domain, w->server, lmd_dns_key_name(w->key), w->lease);
    else if (!a->svcs) /* the key signs transfers */
        lmd_info("wide-area: no announce { }: nothing to publish in %s but services registered through the API",
                 w->domain);
    lmd_agent_services_to_wide(a); /* those registered before (a reload, a server found late) */
    lmd_agent_wide_sync(a);
    return 0;
}

/* ---- registered services -------------------------------------------------- */

/* gone: also one withdrawn whose withdraw is still under way */
static struct wpub *find_registered(const lmd_agent_wide *w, const char *name, bool gone)
{
    for (struct wpub *p = w->pubs; p; p = p->next)
        if (p->registered && (gone || !p->gone) && !strcmp(p->name, name))
            return p;
    return NULL;
}

void lmd_agent_wide_service(lmd_agent *a, const char *name, uint16_t port, const lmd_txt *txt)
{
    lmd_agent_wide *w = a->wide;
    if (!w || w->stopping)
        return;
    /* registered again while its withdraw is under way: the same one, so
     * the publish goes after the withdraw (one update per name at a time) */
    struct wpub *p = find_registered(w, name, true);
    lmd_txt copy;
    if (lmd_txt_copy(&copy, txt) != 0 || (!p && !(p = lmd_wp_new(w, name)))) {
        if (!p)
            lmd_txt_free(&copy);
        lmd_error("wide-area: out of memory: \"%s\" is not published in %s", name, w->domain);
        return;
    }
    if (!p->registered) { /* new: after the configured one */
        p->registered = true;
        struct wpub **pp = &w->pubs;
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

void lmd_agent_wide_service_gone(lmd_agent *a, const char *name)
{
    struct wpub *p = a->wide ? find_registered(a->wide, name, false) : NULL;
    if (!p || a->wide->stopping)
        return;
    p->gone = true;
    bool unsure = p->fails > 0; /* a failed publish may have been applied */
    p->fails = 0;
    lmd_wp_sync(p, unsure); /* withdraws, or frees what was never sent */
}

json_t *lmd_agent_wide_service_json(const lmd_agent *a, const char *name)
{
    const struct wpub *p = a->wide ? find_registered(a->wide, name, false) : NULL;
    if (!a->wide)
        return NULL;
    const char *state = !p ? "not published" : p->published ? "published" : p->fails ? "failing" : "publishing";
    json_t *j = json_pack("{s:s,s:s}", "domain", a->wide->domain, "state", state);
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
static size_t withdraw_all(lmd_agent_wide *w, bool (*keep)(const struct wpub *, const void *), const void *ctx,
                           bool with_host)
{
    w->stopping = true;
    size_t sent = 0;
    for (struct wpub *p = w->pubs; p; p = p->next) {
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

static bool any_req(const lmd_agent_wide *w)
{
    for (const struct wpub *p = w->pubs; p; p = p->next)
        if (p->req)
            return true;
    return false;
}

/* A retired one with no update left in flight is freed. */
void lmd_wp_retired_check(lmd_agent_wide *w)
{
    lmd_agent *a = w->a;
    if (a->wide == w || any_req(w))
        return;
    for (lmd_agent_wide **pp = &a->wide_retired; *pp; pp = &(*pp)->next_retired)
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
static bool still_published(const struct wpub *p, const void *arg)
{
    const struct retire_ctx *c = arg;
    if (!c->same_domain)
        return false;
    /* a registered service stays registered across a reload, unless it was
     * withdrawn (its withdraw was under way) */
    return p->registered ? !p->gone : c->cfg->announce.given && !strcmp(c->name, p->name);
}

void lmd_agent_wide_retire(lmd_agent *a)
{
    lmd_agent_wide *w = a->wide;
    if (!w)
        return;
    a->wide = NULL;
    struct retire_ctx c = {.cfg = &a->cfg};
    lmd_agent_config_name(&a->cfg, c.name, sizeof c.name);
    /* the same domain and service type: the same names */
    c.same_domain = a->cfg.wide_area.given && same_domain(a->cfg.wide_area.domain, w->domain) &&
                    !strcasecmp(a->cfg.announce.type ? a->cfg.announce.type : LMD_DEFAULT_TYPE, w->type);
    char host[256] = "";
    lmd_err err = {0};
    bool same_host = c.same_domain && host_of(&a->cfg, host, sizeof host, &err) == 0 && !strcasecmp(host, w->host) &&
                     (a->cfg.announce.given || a->svcs);
    w->next_retired = a->wide_retired;
    a->wide_retired = w;
    size_t n = withdraw_all(w, still_published, &c, !same_host);
    if (n)
        lmd_info("wide-area: reload: withdrawing %zu service(s) the new configuration does not publish in %s", n,
                 w->domain);
    lmd_wp_retired_check(w);
}

void lmd_agent_wide_stop(lmd_agent *a, double bound)
{
    lmd_agent_wide *w = a->wide;
    if ((!w || w->stopping) && !a->wide_retired)
        return;
    if (w && !w->stopping && withdraw_all(w, NULL, NULL, true) == 0 && !a->wide_retired)
        return;
    /* turn the loop until every answer or the bound (the guard's own
     * flag: libevent's clock may fire it a hair before ours) */
    bool expired = false;
    struct event *guard = evtimer_new(a->base, stop_bound, &expired);
    if (!guard || lmd_timer_in(guard, bound) != 0) {
        lmd_warn("wide-area: cannot time the withdraw (out of memory): our records stay in the zone");
        if (guard)
            event_free(guard);
        return;
    }
    while (((a->wide && any_req(a->wide)) || a->wide_retired) && !expired)
        if (event_base_loop(a->base, EVLOOP_ONCE) != 0)
            break;
    event_free(guard);
    if (a->wide && any_req(a->wide))
        lmd_warn("wide-area: no answer to the withdraw within %g s: our records stay in %s", bound, a->wide->domain);
}

void lmd_agent_wide_free(lmd_agent *a)
{
    if (a->wide)
        wide_free(a->wide);
    a->wide = NULL;
    while (a->wide_retired) {
        lmd_agent_wide *w = a->wide_retired;
        a->wide_retired = w->next_retired;
        wide_free(w);
    }
}

/* ---- what others read of it ------------------------------------------- */

void lmd_agent_wide_metrics(const lmd_agent *a, struct lmd_metrics *out)
{
    const lmd_agent_wide *w = a->wide;
    out->wide_area = a->cfg.wide_area.given;
    lmd_agent_wbrowse_metrics(a, out);
    if (!w)
        return;
    memcpy(out->dns_updates, w->counts, sizeof w->counts);
    out->dns_published = lmd_wp_config(w) && lmd_wp_config(w)->published;
    out->dns_services_published = out->dns_services_failing = 0;
    for (const struct wpub *p = w->pubs; p; p = p->next)
        if (!p->gone) {
            out->dns_services_published += p->published;
            out->dns_services_failing += p->fails > 0;
        }
    out->dns_update_seconds = w->last_seconds;
    out->dns_update_bytes = w->last_bytes;
}

const char *lmd_agent_wide_name(const lmd_agent *a)
{
    const struct wpub *p = a->wide ? lmd_wp_config(a->wide) : NULL;
    return p && p->name[0] ? p->name : NULL;
}

bool lmd_agent_wide_owns(const lmd_agent *a, const char *name)
{
    for (const struct wpub *p = a->wide ? a->wide->pubs : NULL; p; p = p->next)
        if (!strcmp(p->name, name))
            return true;
    return false;
}

bool lmd_agent_wide_published(const lmd_agent *a)
{
    const struct wpub *p = a->wide ? lmd_wp_config(a->wide) : NULL;
    return p && p->published;
}

const char *lmd_agent_wide_host(const lmd_agent *a)
{
    return a->wide ? a->wide->host : NULL;
}

const lmd_dns_key *lmd_agent_wide_key(const lmd_agent *a)
{
    return a->wide ? a->wide->key : NULL;
}
