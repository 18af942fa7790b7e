/* lmd_announce_self(): the original announce_self(port, info) for programs
 * that embed liblmdisc.  Like python-zeroconf's background thread, the
 * announcement runs its own small loop on a thread it owns, so the caller
 * need not run one.  Unlike it, it announces on every interface, IPv4 and
 * IPv6, and survives avahi-daemon restarts. */
#include "base/loop.h"
#include "base/txt.h"
#include "base/util.h"
#include "lib/abi.h"
#include "lmdisc.h"
#include "mdns/mdns.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct lmd_announcement {
    struct lmd_loop_thread loop;
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

/* on the loop's thread, before it ends */
static void on_stop(void *ud)
{
    struct lmd_announcement *a = ud;
    lmd_pub_free(a->pub); /* goodbye */
    a->pub = NULL;
}

static void destroy(struct lmd_announcement *a)
{
    lmd_loop_thread_stop(&a->loop);
    lmd_pub_free(a->pub);
    lmd_mdns_free(a->m);
    lmd_loop_thread_free(&a->loop);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

int lmd_announce_self(uint16_t port, const char *info, const lmd_announce_opts *opts,
                      lmd_announcement **out)
{
    *out = NULL;
    lmd_announce_opts o;
    if (lmd_lib_opts_read(&o, sizeof o, LMD_LIB_ANNOUNCE_OPTS_FIRST, opts) != 0)
        return LMD_EINVAL;
    const char *type = o.type ? o.type : LMD_DEFAULT_TYPE;
    if (port == 0 || !lmd_service_type_valid(type, NULL, 0))
        return LMD_EINVAL;
    /* lmd-* keys are lmdisc's own (signatures, liveness): never from a caller */
    if (lmd_txt_reserved_key(o.txt))
        return LMD_ETXT;
    lmd_txt txt = {0};
    int err = 0;
    if (o.txt && (err = lmd_txt_copy(&txt, o.txt)) != 0)
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
    pthread_mutex_init(&a->mu, NULL);
    if (o.name)
        snprintf(a->name, sizeof a->name, "%s", o.name);
    else
        lmd_default_name(port, a->name, sizeof a->name);
    struct lmd_pub_config cfg = {.name = a->name, .type = type, .port = port, .txt = &txt};
    err = lmd_loop_thread_init(&a->loop, on_stop, a);
    if (err == 0)
        err = lmd_mdns_new(a->loop.base, NULL, NULL, &a->m, NULL);
    if (err == 0)
        err = lmd_pub_new(a->m, &cfg, on_pub, a, &a->pub, NULL);
    if (err == 0)
        err = lmd_loop_thread_start(&a->loop);
    lmd_txt_free(&txt);
    if (err) {
        destroy(a);
        return err;
    }
    *out = a;
    return 0;
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
    if (a)
        destroy(a);
}
