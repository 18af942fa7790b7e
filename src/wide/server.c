/* Wide-area DNS-SD without wide_area { server = ... }: the updates and
 * queries go to the primary of the domain's zone, its SOA MNAME, asked of
 * the system's resolvers (src/dns/server.c), and proven by its answer
 * signed by wide_area.key (a resolver naming a rogue server is passed
 * over).  Publishing and browsing
 * (publish.c, browse.c) start once it is known, with the address taken
 * as if configured (a reload for the same domain keeps it); a failed search is logged and
 * tried again with backoff (5 s doubling to 5 min) while mDNS goes on. */
#include "wide/internal.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define FIND_TIMEOUT 10.0

struct lmd_wide_find {
    lmd_wide *wd;
    lmd_dns_find *find;
    lmd_dns_key *key;          /* the server found must answer signed by it */
    struct event *timer;
    unsigned fails;
};

static void on_found(int rc, const char *addr, const char *mname, const char *text, void *arg)
{
    struct lmd_wide_find *f = arg;
    lmd_wide *wd = f->wd;
    f->find = NULL;
    if (rc != 0) {
        f->fails++;
        double again = lmd_backoff(f->fails, 5.0, 300.0);
        lmd_error("wide-area: cannot find the DNS server of %s: %s; trying again in %g s (or set wide_area "
                  "{ server = \"ADDR\" })", wd->cfg->wide_area.domain, text, again);
        if (lmd_timer_in(f->timer, again) != 0)
            lmd_error("wide-area: cannot arm the timer (out of memory)");
        return;
    }
    char *s = lmd_strdup(addr);
    if (!s) {
        lmd_error("wide-area: out of memory");
        return;
    }
    free(wd->server);
    wd->server = s;
    wd->server_found = true;
    lmd_info("wide-area: %s's server is %s, the primary (SOA MNAME %s) of its zone", wd->cfg->wide_area.domain, addr,
             mname ? mname : "?");
    lmd_err err = {0};
    if (lmd_wide_start(wd, &err) != 0)
        lmd_error("wide-area: %s; not publishing in DNS", lmd_err_text(&err));
}

static void ask(struct lmd_wide_find *f)
{
    lmd_wide *wd = f->wd;
    lmd_err err = {0};
    if (lmd_dns_find_server(wd->base, wd->cfg->wide_area.domain, NULL, f->key, FIND_TIMEOUT, on_found, f, &f->find,
                            &err) != 0) {
        f->fails++;
        double again = lmd_backoff(f->fails, 5.0, 300.0);
        lmd_error("wide-area: cannot find the DNS server of %s: %s; trying again in %g s (or set wide_area "
                  "{ server = \"ADDR\" })", wd->cfg->wide_area.domain, lmd_err_text(&err), again);
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

void lmd_wide_find_free(lmd_wide *wd)
{
    struct lmd_wide_find *f = wd->find;
    if (!f)
        return;
    lmd_dns_find_cancel(f->find);
    lmd_dns_key_free(f->key);
    if (f->timer)
        event_free(f->timer);
    free(f);
    wd->find = NULL;
}

int lmd_wide_find_start(lmd_wide *wd, lmd_err *err)
{
    lmd_wide_find_free(wd);
    /* the key's problems are said now, not once the server is found */
    lmd_dns_key *k = NULL;
    lmd_err kerr = {0};
    if (lmd_dns_key_load(wd->cfg->wide_area.key, &k, &kerr) != 0)
        return lmd_err_set(err, kerr.code, "wide_area.key: %s", lmd_err_text(&kerr));
    struct lmd_wide_find *f = calloc(1, sizeof *f);
    if (!f || !(f->timer = evtimer_new(wd->base, on_timer, f))) {
        free(f);
        lmd_dns_key_free(k);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    f->key = k;
    f->wd = wd;
    wd->find = f;
    lmd_info("wide-area: no wide_area.server: asking the resolvers (/etc/resolv.conf) for the SOA of %s",
             wd->cfg->wide_area.domain);
    ask(f);
    return 0;
}
