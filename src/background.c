/* lmd_registry_start(): the original module's REGISTRY, for programs that
 * embed liblmdisc.  A thread owns a small loop (mdns -> registry) and keeps
 * the registry live; callers read it with lmd_registry_list_alive() from
 * any thread, under the registry's lock. */
#include "lmdisc.h"
#include "log.h"
#include "mdns.h"
#include "registry.h"
#include "util.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct bg {
    pthread_t thread;
    pthread_mutex_t lock;
    struct event_base *base;
    struct event *stop, *tick;
    int wake[2];
    lmd_mdns *m;
    lmd_browse *browse;
    lmd_registry *reg;
    char *type;
};

static void rearm(struct bg *b)
{
    double next = lmd_registry_next_deadline(b->reg);
    if (next < 0) {
        evtimer_del(b->tick);
        return;
    }
    double in = next - lmd_now_mono();
    if (in < 0)
        in = 0;
    struct timeval tv = {.tv_sec = (time_t)in, .tv_usec = (suseconds_t)((in - (double)(time_t)in) * 1e6)};
    evtimer_add(b->tick, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bg *b = arg;
    pthread_mutex_lock(&b->lock);
    lmd_registry_tick(b->reg, lmd_now_mono());
    pthread_mutex_unlock(&b->lock);
    rearm(b);
}

static void on_resolved(void *ud, const struct lmd_instance *in)
{
    struct bg *b = ud;
    pthread_mutex_lock(&b->lock);
    lmd_registry_instance_seen(b->reg, in, lmd_now_mono(), lmd_now_wall());
    pthread_mutex_unlock(&b->lock);
    rearm(b);
}

static void on_removed(void *ud, const struct lmd_instance *in, enum lmd_gone why)
{
    struct bg *b = ud;
    pthread_mutex_lock(&b->lock);
    lmd_registry_instance_gone(b->reg, in, why == LMD_GONE_GOODBYE ? LMD_REASON_GOODBYE : LMD_REASON_EXPIRED);
    pthread_mutex_unlock(&b->lock);
    rearm(b);
}

/* called with the lock held (from lmd_registry_tick) */
static void on_confirm(void *ud, const lmd_node_info *peer)
{
    struct bg *b = ud;
    lmd_browse_reconfirm(b->browse, peer->name);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bg *b = arg;
    event_base_loopbreak(b->base);
}

static void *run(void *arg)
{
    struct bg *b = arg;
    event_base_dispatch(b->base);
    return NULL;
}

static void destroy(struct bg *b)
{
    lmd_browse_free(b->browse);
    lmd_mdns_free(b->m);
    lmd_registry_free(b->reg);
    if (b->stop)
        event_free(b->stop);
    if (b->tick)
        event_free(b->tick);
    if (b->base)
        event_base_free(b->base);
    if (b->wake[0] >= 0)
        close(b->wake[0]);
    if (b->wake[1] >= 0)
        close(b->wake[1]);
    pthread_mutex_destroy(&b->lock);
    free(b->type);
    free(b);
}

int lmd_registry_start(const char *type, double ttl, lmd_registry **out)
{
    *out = NULL;
    if (type && !lmd_service_type_valid(type, NULL, 0))
        return LMD_EINVAL;
    struct bg *b = calloc(1, sizeof *b);
    if (!b)
        return LMD_ENOMEM;
    b->wake[0] = b->wake[1] = -1;
    pthread_mutex_init(&b->lock, NULL);
    struct lmd_registry_config rc = {.ttl = ttl > 0 ? ttl : 60, .settle = 0.05};
    struct lmd_browse_callbacks cb = {.resolved = on_resolved, .removed = on_removed};
    int err = LMD_ENOMEM;
    if (!(b->type = lmd_strdup(type ? type : LMD_DEFAULT_TYPE)) || pipe(b->wake) != 0 ||
        !(b->base = event_base_new()) || !(b->stop = event_new(b->base, b->wake[0], EV_READ, on_stop, b)) ||
        event_add(b->stop, NULL) != 0 || !(b->tick = evtimer_new(b->base, on_tick, b)) ||
        !(b->reg = lmd_registry_new(&rc, NULL, on_confirm, b)))
        goto fail;
    lmd_registry_set_owner(b->reg, &b->lock, b);
    if (!(b->m = lmd_mdns_new(b->base, NULL, NULL, &err)) ||
        !(b->browse = lmd_browse_new(b->m, b->type, NULL, &cb, b, &err)))
        goto fail;
    if (pthread_create(&b->thread, NULL, run, b) != 0) {
        err = LMD_ENOMEM;
        goto fail;
    }
    *out = b->reg;
    return 0;
fail:
    destroy(b);
    return err ? err : LMD_ENOMEM;
}

void lmd_registry_stop(lmd_registry *reg)
{
    struct bg *b = reg ? lmd_registry_owner(reg) : NULL;
    if (!b)
        return;
    char c = 1;
    if (write(b->wake[1], &c, 1) == 1)
        pthread_join(b->thread, NULL);
    destroy(b);
}
