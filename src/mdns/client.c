/* The avahi-client connection behind lmd_mdns (see mdns.h).
 *
 * Patterns taken from avahi's own clients: every callback switches over the
 * full state enum, callbacks may fire inside *_new() so they use the pointer
 * they are given, and AVAHI_ERR_DISCONNECTED rebuilds everything on a new
 * AVAHI_CLIENT_NO_FAIL client. */
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "mdns/internal.h"

#include <avahi-common/error.h>
#include <event2/event.h>
#include <stdlib.h>

static void client_cb(AvahiClient *c, AvahiClientState state, void *ud);

static void set_state(lmd_mdns *m, enum lmd_mdns_state st)
{
    if (m->state == st)
        return;
    m->state = st;
    if (m->cb)
        m->cb(m->ud, st);
}

/* ---- client ---------------------------------------------------------- */

static int client_open(lmd_mdns *m)
{
    int error = 0;
    AvahiClient *c = avahi_client_new(&m->poll.api, AVAHI_CLIENT_NO_FAIL, client_cb, m, &error);
    if (c) {
        m->client = c;
        m->retries = 0;
        return 0;
    }
    if (error != AVAHI_ERR_NO_DAEMON && error != AVAHI_ERR_DBUS_ERROR) {
        lmd_error("cannot create avahi client: %s", avahi_strerror(error));
        return LMD_EAVAHI;
    }
    /* NO_FAIL covers a missing avahi-daemon, not a missing system bus (as
     * early at boot): keep trying, backing off to 8 s. */
    if (!m->told_waiting) {
        lmd_warn("cannot reach avahi-daemon over the system D-Bus (%s); waiting for it",
                 avahi_strerror(error));
        m->told_waiting = true;
    }
    set_state(m, LMD_MDNS_WAITING);
    return lmd_timer_in(m->retry, lmd_backoff(++m->retries, 1, 8));
}

static void retry_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_mdns *m = arg;
    if (!m->client && client_open(m) != 0)
        set_state(m, LMD_MDNS_FAILED);
}

static void rebuild_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_mdns *m = arg;
    /* avahi_client_free() frees every object the client made: forget them */
    lmd_mdns_browses_forget(m);
    ++m->pool_gen;
    if (m->pool)
        lmd_pool_reset(m->pool, m->pool_gen);
    if (m->client)
        avahi_client_free(m->client);
    m->client = NULL;
    m->reconnects++;
    if (client_open(m) != 0)
        set_state(m, LMD_MDNS_FAILED);
}

void lmd_mdns_lost(lmd_mdns *m, const char *why)
{
    lmd_warn("lost the connection to avahi-daemon (%s); reconnecting", why);
    set_state(m, LMD_MDNS_LOST);
    /* not from inside the client's own callback */
    event_active(m->rebuild, 0, 0);
}

static void kick_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_mdns_browses_kick(arg);
}

static void client_cb(AvahiClient *c, AvahiClientState state, void *ud)
{
    lmd_mdns *m = ud;
    m->client = c; /* may be called from inside avahi_client_new() */
    switch (state) {
    case AVAHI_CLIENT_S_RUNNING:
        m->told_waiting = false;
        set_state(m, LMD_MDNS_RUNNING);
        lmd_mdns_browses_start(m);
        break;
    case AVAHI_CLIENT_S_COLLISION:
    case AVAHI_CLIENT_S_REGISTERING:
        /* The host name is being (re)registered (the publishing thread's
         * client sees it too and publishes again once it is established). */
        break;
    case AVAHI_CLIENT_CONNECTING:
        if (!m->told_waiting) {
            lmd_warn("avahi-daemon is not running; waiting for it to start");
            m->told_waiting = true;
        }
        set_state(m, LMD_MDNS_WAITING);
        break;
    case AVAHI_CLIENT_FAILURE:
        if (avahi_client_errno(c) == AVAHI_ERR_DISCONNECTED) {
            lmd_mdns_lost(m, avahi_strerror(AVAHI_ERR_DISCONNECTED));
        } else {
            lmd_error("avahi client failure: %s", avahi_strerror(avahi_client_errno(c)));
            set_state(m, LMD_MDNS_FAILED);
        }
        break;
    }
}

int lmd_mdns_new(struct event_base *base, lmd_mdns_state_cb cb, void *ud, lmd_mdns **out, lmd_err *err)
{
    lmd_mdns *m = *out = calloc(1, sizeof *m);
    if (!m)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    m->base = base;
    m->cb = cb;
    m->ud = ud;
    m->state = LMD_MDNS_WAITING;
    lmd_avahi_poll_init(&m->poll, base);
    m->rebuild = event_new(base, -1, 0, rebuild_fire, m);
    m->retry = evtimer_new(base, retry_fire, m);
    m->kick = evtimer_new(base, kick_fire, m);
    /* the resolver pool and its thread wait for the first browser
     * (lmd_mdns_pool): a process that only announces never starts them */
    int rc = m->rebuild && m->retry && m->kick ? client_open(m) : LMD_ENOMEM;
    if (rc) {
        lmd_mdns_free(m);
        *out = NULL;
        return lmd_err_set(err, rc, "%s", rc == LMD_EAVAHI ? "cannot create an avahi client" : lmd_strerror(rc));
    }
    return 0;
}

void lmd_mdns_free(lmd_mdns *m)
{
    if (!m)
        return;
    while (m->pubs)
        lmd_pub_free(m->pubs);
    lmd_publisher_free(m->publisher); /* its client's end withdraws what is left */
    /* Browsers and resolvers are freed with their clients below, which
     * close the connection first: freeing each (a blocking call to the
     * daemon, up to a second each when it is busy with a flood) made a
     * swamped one-shot scan overrun its --timeout by far (21.8 s for 10). */
    m->closing = true;
    while (m->browses)
        lmd_browse_free(m->browses);
    lmd_pool_free(m->pool);
    if (m->client)
        avahi_client_free(m->client);
    lmd_event_free(m->rebuild);
    lmd_event_free(m->retry);
    lmd_event_free(m->kick);
    free(m);
}

void lmd_mdns_closing(lmd_mdns *m)
{
    if (m)
        m->closing = true;
}

int lmd_mdns_pool(lmd_mdns *m)
{
    return m->pool ? 0 : lmd_pool_new(m, m->pool_gen, &m->pool);
}

enum lmd_mdns_state lmd_mdns_state(const lmd_mdns *m) { return m->state; }

unsigned lmd_mdns_unresolved(const lmd_mdns *m, unsigned *resolvers)
{
    if (resolvers)
        *resolvers = m->pool ? lmd_pool_open(m->pool, NULL) : 0;
    return m->waiting;
}
unsigned lmd_mdns_reconnects(const lmd_mdns *m) { return m->reconnects; }

const char *lmd_mdns_host_fqdn(lmd_mdns *m)
{
    return (m->client && m->state == LMD_MDNS_RUNNING) ? avahi_client_get_host_name_fqdn(m->client)
                                                       : NULL;
}
