/* lmd_announce_self(): the original announce_self(port, info) for programs
 * that embed liblmdisc.  Like python-zeroconf's background thread, the
 * announcement runs its own small loop on a thread it owns, so the caller
 * need not run one.  Unlike it, it announces on every interface, IPv4 and
 * IPv6, and survives avahi-daemon restarts. */
#include "lmdisc.h"
#include "log.h"
#include "mdns.h"
#include "util.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct lmd_announcement {
    pthread_t thread;
    struct event_base *base;
    struct event *stop;
    int wake[2];
    lmd_mdns *m;
    lmd_pub *pub;
    pthread_mutex_t mu;
    char name[256];
};

static void on_pub(void *ud, enum lmd_pub_event ev, const char *name, const char *detail)
{
    (void)ev;
    (void)detail;
    struct lmd_announcement *a = ud;
    pthread_mutex_lock(&a->mu);
    snprintf(a->name, sizeof a->name, "%s", name);
    pthread_mutex_unlock(&a->mu);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lmd_announcement *a = arg;
    lmd_pub_free(a->pub); /* goodbye */
    a->pub = NULL;
    event_base_loopbreak(a->base);
}

static void *run(void *arg)
{
    struct lmd_announcement *a = arg;
    event_base_dispatch(a->base);
    return NULL;
}

static void destroy(struct lmd_announcement *a)
{
    lmd_pub_free(a->pub);
    lmd_mdns_free(a->m);
    if (a->stop)
        event_free(a->stop);
    if (a->base)
        event_base_free(a->base);
    if (a->wake[0] >= 0)
        close(a->wake[0]);
    if (a->wake[1] >= 0)
        close(a->wake[1]);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

int lmd_announce_self(uint16_t port, const char *info, const lmd_announce_opts *opts,
                      lmd_announcement **out)
{
    *out = NULL;
    const char *type = opts && opts->type ? opts->type : LMD_DEFAULT_TYPE;
    if (port == 0 || !lmd_service_type_valid(type, NULL, 0))
        return LMD_EINVAL;
    lmd_txt txt = {0};
    int err = 0;
    if (opts && opts->txt && (err = lmd_txt_copy(&txt, opts->txt)) != 0)
        return err;
    if (info && (err = lmd_txt_set(&txt, "info", info, strlen(info), true, NULL, 0)) != 0) {
        lmd_txt_free(&txt);
        return err;
    }
    struct lmd_announcement *a = calloc(1, sizeof *a);
    if (!a) {
        lmd_txt_free(&txt);
        return LMD_ENOMEM;
    }
    a->wake[0] = a->wake[1] = -1;
    pthread_mutex_init(&a->mu, NULL);
    if (opts && opts->name)
        snprintf(a->name, sizeof a->name, "%s", opts->name);
    else
        lmd_default_name(port, a->name, sizeof a->name);
    err = LMD_ENOMEM;
    if (pipe(a->wake) != 0 || !(a->base = event_base_new()) ||
        !(a->stop = event_new(a->base, a->wake[0], EV_READ, on_stop, a)) ||
        event_add(a->stop, NULL) != 0)
        goto fail;
    if (!(a->m = lmd_mdns_new(a->base, NULL, NULL, &err)))
        goto fail;
    struct lmd_pub_config cfg = {.name = a->name, .type = type, .port = port, .txt = &txt};
    if (!(a->pub = lmd_pub_new(a->m, &cfg, on_pub, a, &err)))
        goto fail;
    if (pthread_create(&a->thread, NULL, run, a) != 0) {
        err = LMD_ENOMEM;
        goto fail;
    }
    lmd_txt_free(&txt);
    *out = a;
    return 0;
fail:
    lmd_txt_free(&txt);
    destroy(a);
    return err;
}

int lmd_announce_name(lmd_announcement *a, char *buf, size_t len)
{
    pthread_mutex_lock(&a->mu);
    int w = snprintf(buf, len, "%s", a->name);
    pthread_mutex_unlock(&a->mu);
    return (w < 0 || (size_t)w >= len) ? LMD_EINVAL : 0;
}

void lmd_announce_withdraw(lmd_announcement *a)
{
    if (!a)
        return;
    char c = 1;
    if (write(a->wake[1], &c, 1) == 1)
        pthread_join(a->thread, NULL);
    destroy(a);
}
