/* Wide-area DNS-SD without wide_area { server = ... }: the updates and
 * queries go to the primary of the domain's zone, its SOA MNAME, asked of
 * the system's resolvers (src/dns/server.c).  Publishing and browsing
 * (wide.c, wide_browse.c) start once it is known, with the address set as
 * a->cfg.wide_area.server as if configured; a failed search is logged and
 * tried again with backoff (5 s doubling to 5 min) while mDNS goes on. */
#include "agent/internal.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "dns/dns.h"

#include <event2/event.h>
#include <stdlib.h>

#define FIND_TIMEOUT 10.0

struct lmd_agent_wfind {
    lmd_agent *a;
    lmd_dns_find *find;
    struct event *timer;
    unsigned fails;
    bool found;             /* a->cfg.wide_area.server is the one found */
};

static int start_both(lmd_agent *a, lmd_err *err)
{
    int rc = lmd_agent_wide_start(a, err);
    return rc ? rc : lmd_agent_wbrowse_start(a, err);
}

static void on_found(int rc, const char *addr, const char *mname, const char *text, void *arg)
{
    struct lmd_agent_wfind *f = arg;
    lmd_agent *a = f->a;
    f->find = NULL;
    if (rc != 0) {
        f->fails++;
        double again = lmd_backoff(f->fails, 5.0, 300.0);
        lmd_error("wide-area: cannot find the DNS server of %s: %s; trying again in %g s (or set wide_area "
                  "{ server = \"ADDR\" })", a->cfg.wide_area.domain, text, again);
        if (lmd_timer_in(f->timer, again) != 0)
            lmd_error("wide-area: cannot arm the timer (out of memory)");
        return;
    }
    char *s = lmd_strdup(addr);
    if (!s) {
        lmd_error("wide-area: out of memory");
        return;
    }
    free(a->cfg.wide_area.server);
    a->cfg.wide_area.server = s;
    f->found = true;
    lmd_info("wide-area: %s's server is %s, the primary (SOA MNAME %s) of its zone", a->cfg.wide_area.domain, addr,
             mname ? mname : "?");
    lmd_err err = {0};
    if (start_both(a, &err) != 0)
        lmd_error("wide-area: %s; not publishing in DNS", lmd_err_text(&err));
}

static void ask(struct lmd_agent_wfind *f)
{
    lmd_agent *a = f->a;
    lmd_err err = {0};
    if (lmd_dns_find_server(a->base, a->cfg.wide_area.domain, NULL, FIND_TIMEOUT, on_found, f, &f->find, &err) != 0) {
        f->fails++;
        double again = lmd_backoff(f->fails, 5.0, 300.0);
        lmd_error("wide-area: cannot find the DNS server of %s: %s; trying again in %g s (or set wide_area "
                  "{ server = \"ADDR\" })", a->cfg.wide_area.domain, lmd_err_text(&err), again);
        if (lmd_timer_in(f->timer, again) != 0)
            lmd_error("wide-area: cannot arm the timer (out of memory)");
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ask(arg);
}

void lmd_agent_wfind_free(lmd_agent *a)
{
    struct lmd_agent_wfind *f = a->wfind;
    if (!f)
        return;
    lmd_dns_find_cancel(f->find);
    if (f->timer)
        event_free(f->timer);
    free(f);
    a->wfind = NULL;
}

int lmd_agent_wide_begin(lmd_agent *a, lmd_err *err)
{
    lmd_agent_wfind_free(a);
    if (!a->cfg.wide_area.given || a->cfg.wide_area.server)
        return start_both(a, err);
    /* the key's problems are said now, not once the server is found */
    lmd_dns_key *k = NULL;
    lmd_err kerr = {0};
    if (lmd_dns_key_load(a->cfg.wide_area.key, &k, &kerr) != 0)
        return lmd_err_set(err, kerr.code, "wide_area.key: %s", lmd_err_text(&kerr));
    lmd_dns_key_free(k);
    struct lmd_agent_wfind *f = calloc(1, sizeof *f);
    if (!f || !(f->timer = evtimer_new(a->base, on_timer, f))) {
        free(f);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    f->a = a;
    a->wfind = f;
    lmd_info("wide-area: no wide_area.server: asking the resolvers (/etc/resolv.conf) for the SOA of %s",
             a->cfg.wide_area.domain);
    ask(f);
    return 0;
}

void lmd_agent_wfind_keep(const lmd_agent *a, struct lmd_config *nc)
{
    const struct lmd_agent_wfind *f = a->wfind;
    if (!f || !f->found || !nc->wide_area.given || nc->wide_area.server || !a->cfg.wide_area.server ||
        !lmd_streq(nc->wide_area.domain, a->cfg.wide_area.domain))
        return;
    nc->wide_area.server = lmd_strdup(a->cfg.wide_area.server);
}
