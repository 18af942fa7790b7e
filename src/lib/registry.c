/* lmd_registry_start(): the original module's REGISTRY, for programs that
 * embed liblmdisc.  A thread owns a small loop (mdns -> peer table) and
 * keeps the table live; callers read it with lmd_registry_list_alive() from
 * any thread, under the handle's lock. */
#include "base/limits.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "lmdisc.h"
#include "mdns/mdns.h"
#include "registry/peers.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

struct lmd_registry {
    struct lmd_loop_thread loop;
    pthread_mutex_t lock;    /* held while the loop changes the table */
    struct event *tick;
    lmd_mdns *m;
    lmd_browse *browse;
    lmd_peers *peers;
};

static void rearm(lmd_registry *r)
{
    pthread_mutex_lock(&r->lock);
    double next = lmd_peers_next_deadline(r->peers);
    pthread_mutex_unlock(&r->lock);
    lmd_timer_at(r->tick, next); /* fails only without memory: the next event re-arms */
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_registry *r = arg;
    pthread_mutex_lock(&r->lock);
    lmd_peers_tick(r->peers, lmd_now_mono());
    pthread_mutex_unlock(&r->lock);
    rearm(r);
}

static void on_resolved(void *ud, const struct lmd_instance *in)
{
    lmd_registry *r = ud;
    pthread_mutex_lock(&r->lock);
    if (lmd_peers_seen(r->peers, in, lmd_now_mono(), lmd_now_wall()) != 0)
        lmd_debug("registry: out of memory; the instance is taken up at its next announcement");
    pthread_mutex_unlock(&r->lock);
    rearm(r);
}

static void on_removed(void *ud, const struct lmd_instance *in, enum lmd_gone why)
{
    lmd_registry *r = ud;
    pthread_mutex_lock(&r->lock);
    /* LMD_ENOTFOUND: an instance we never took up (out of memory then) */
    (void)lmd_peers_gone(r->peers, in, why == LMD_GONE_GOODBYE ? LMD_REASON_GOODBYE : LMD_REASON_EXPIRED);
    pthread_mutex_unlock(&r->lock);
    rearm(r);
}

/* called with the lock held (from lmd_peers_tick) */
static void on_confirm(void *ud, const lmd_node_info *peer, int ifindex, int proto)
{
    lmd_registry *r = ud;
    (void)ifindex; /* no trust here: only the ttl asks, for the whole peer */
    (void)proto;
    /* nothing left to ask: the grace period ends it */
    (void)lmd_browse_reconfirm(r->browse, peer->name);
}

static void destroy(lmd_registry *r)
{
    lmd_loop_thread_stop(&r->loop);
    lmd_mdns_closing(r->m); /* the browser goes with the client: no call to a daemon that may not answer */
    lmd_browse_free(r->browse);
    lmd_mdns_free(r->m);
    lmd_peers_free(r->peers);
    if (r->tick)
        event_free(r->tick);
    lmd_loop_thread_free(&r->loop);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

int lmd_registry_start(const char *type, double ttl, lmd_registry **out)
{
    *out = NULL;
    if (type && !lmd_service_type_valid(type, NULL, 0))
        return LMD_EINVAL;
    lmd_registry *r = calloc(1, sizeof *r);
    if (!r)
        return LMD_ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    struct lmd_peers_config pc = {.ttl = ttl > 0 ? ttl : LMD_REGISTRY_TTL, .settle = LMD_SETTLE};
    struct lmd_browse_callbacks cb = {.resolved = on_resolved, .removed = on_removed};
    int err = lmd_loop_thread_init(&r->loop, NULL, NULL);
    if (err == 0 && !(r->tick = evtimer_new(r->loop.base, on_tick, r)))
        err = LMD_ENOMEM;
    if (err == 0)
        err = lmd_peers_new(&pc, NULL, on_confirm, r, &r->peers, NULL);
    if (err == 0)
        err = lmd_mdns_new(r->loop.base, NULL, NULL, &r->m, NULL);
    if (err == 0)
        err = lmd_browse_new(r->m, type, NULL, &cb, r, &r->browse, NULL);
    if (err == 0)
        err = lmd_loop_thread_start(&r->loop);
    if (err) {
        destroy(r);
        return err;
    }
    *out = r;
    return 0;
}

int lmd_registry_list_alive(lmd_registry *r, lmd_node_list *out)
{
    if (!r || !out)
        return LMD_EINVAL;
    pthread_mutex_lock(&r->lock);
    int rc = lmd_peers_snapshot(r->peers, true, out);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void lmd_registry_stop(lmd_registry *r)
{
    if (r)
        destroy(r);
}
