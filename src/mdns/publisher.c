/* The publishing thread and the loop's side of lmd_pub (see publisher.h
 * for why, mdns.h for the API).
 *
 * The loop side keeps, per service, what lmd_pub_name/established answer
 * and the callback; requests (NEW, TXT, FREE) go to the thread in order,
 * and the state machine's events come back as messages, each naming its
 * lmd_pub by id (a message of a service freed meanwhile is dropped).
 *
 * The thread has its own AVAHI_CLIENT_NO_FAIL client and rebuilds it on
 * its own when the daemon goes away (the loop's client does the same for
 * browsing): every service is published again once the new one runs.  It
 * is started by the first lmd_pub_new(): a process that only browses
 * never has it. */
#include "base/loop.h"
#include "base/txt.h"
#include "base/util.h"
#include "mdns/publisher.h"

#include <avahi-common/error.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum op { RQ_NEW, RQ_TXT, RQ_FREE, RQ_QUIT };

struct req {
    struct req *next;
    enum op op;
    uint64_t id;
    char *name, *type, *domain;
    uint16_t port;
    unsigned ttl;
    lmd_txt txt;
};

/* the loop's side of one service */
struct lmd_pub {
    struct lmd_pub *next;
    lmd_mdns *m;
    uint64_t id;
    char *name;       /* as last published (renames follow) */
    char *type;
    bool established;
    lmd_pub_cb cb;
    void *ud;
};

static void req_free(struct req *q)
{
    free(q->name);
    free(q->type);
    free(q->domain);
    lmd_txt_free(&q->txt);
    free(q);
}

static void msg_free(struct lmd_pmsg *x)
{
    free(x->name);
    free(x->text);
    free(x);
}

static void drain_req(void *x) { req_free(x); }
static void drain_msg(void *x) { msg_free(x); }

/* ---- the publishing thread -------------------------------------------- */

void lmd_publisher_say(lmd_publisher *t, enum lmd_pmsg_kind kind, uint64_t id, enum lmd_pub_event ev,
                       const char *name, const char *text)
{
    struct lmd_pmsg *x = calloc(1, sizeof *x);
    if (!x)
        return; /* out of memory: the loop misses one event */
    *x = (struct lmd_pmsg){.kind = kind, .id = id, .ev = ev, .level = LMD_LOG_INFO};
    x->name = name ? lmd_strdup(name) : NULL;
    x->text = text ? lmd_strdup(text) : NULL;
    lmd_queue_push(&t->out, x);
}

void lmd_publisher_log(lmd_publisher *t, enum lmd_log_level lvl, const char *fmt, ...)
{
    if (lvl < lmd_log_get_level())
        return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    struct lmd_pmsg *x = calloc(1, sizeof *x);
    if (!x)
        return;
    *x = (struct lmd_pmsg){.kind = LMD_PMSG_LOG, .level = lvl, .text = lmd_strdup(text)};
    lmd_queue_push(&t->out, x);
}

static void client_cb(AvahiClient *c, AvahiClientState state, void *ud);

static void client_open(lmd_publisher *t)
{
    int error = 0;
    AvahiClient *c = avahi_client_new(&t->poll.api, AVAHI_CLIENT_NO_FAIL, client_cb, t, &error);
    if (c) {
        t->client = c;
        t->retries = 0;
        return;
    }
    /* NO_FAIL covers a missing avahi-daemon, not a missing system bus (as
     * early at boot): keep trying, backing off to 8 s (the loop's client
     * says it is waiting) */
    if (++t->retries == 1 && error != AVAHI_ERR_NO_DAEMON && error != AVAHI_ERR_DBUS_ERROR)
        lmd_publisher_log(t, LMD_LOG_ERROR, "cannot create an avahi client for publishing: %s",
                          avahi_strerror(error));
    if (lmd_timer_in(t->retry, lmd_backoff(t->retries, 1, 8)) != 0)
        lmd_publisher_log(t, LMD_LOG_ERROR, "cannot publish: out of memory");
}

static void client_cb(AvahiClient *c, AvahiClientState state, void *ud)
{
    lmd_publisher *t = ud;
    t->client = c; /* may be called from inside avahi_client_new() */
    switch (state) {
    case AVAHI_CLIENT_S_RUNNING:
        t->running = true;
        lmd_ppubs_start(t);
        break;
    case AVAHI_CLIENT_S_COLLISION:
    case AVAHI_CLIENT_S_REGISTERING:
        /* the host name is being (re)registered; our records go back on
         * the network once it is established (S_RUNNING) */
        t->running = false;
        lmd_ppubs_reset(t);
        break;
    case AVAHI_CLIENT_CONNECTING:
        t->running = false;
        break;
    case AVAHI_CLIENT_FAILURE:
        /* the daemon went away (AVAHI_ERR_DISCONNECTED) or the connection
         * broke: a new client, not from inside this one's callback */
        t->running = false;
        event_active(t->rebuild, 0, 0);
        break;
    }
}

static void rebuild_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_publisher *t = arg;
    /* avahi_client_free() frees every object the client made: forget them */
    lmd_ppubs_forget(t);
    if (t->client)
        avahi_client_free(t->client);
    t->client = NULL;
    client_open(t);
}

static void retry_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_publisher *t = arg;
    if (!t->client)
        client_open(t);
}

static void intake(lmd_publisher *t)
{
    struct req *all = lmd_queue_take(&t->in);
    for (struct req *q = all; q; q = q->next)
        if (q->op == RQ_QUIT) {
            /* quitting: what else came goes with the client, unasked (the
             * daemon withdraws a client's records when it disconnects) */
            for (struct req *x = all, *next; x; x = next) {
                next = x->next;
                if (x != q)
                    req_free(x);
            }
            free(q);
            t->quit = true;
            event_base_loopbreak(t->base);
            return;
        }
    for (struct req *q = all, *next; q; q = next) {
        next = q->next;
        switch (q->op) {
        case RQ_NEW:
            (void)lmd_ppub_new(t, q->id, q->name, q->type, q->domain, q->port, q->ttl, &q->txt);
            q->name = q->type = q->domain = NULL; /* taken */
            break;
        case RQ_TXT: {
            struct lmd_ppub *p = lmd_ppub_find(t, q->id);
            if (p)
                lmd_ppub_set_txt(p, &q->txt);
            break;
        }
        case RQ_FREE:
            lmd_ppub_free(lmd_ppub_find(t, q->id), false);
            break;
        case RQ_QUIT:
            break; /* (above) */
        }
        req_free(q);
    }
}

static void in_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    intake(arg);
}

static void publisher_release(lmd_publisher *t);

static void *publisher_main(void *arg)
{
    lmd_publisher *t = arg;
    client_open(t);
    while (!t->quit && event_base_loop(t->base, EVLOOP_ONCE) >= 0)
        ;
    while (t->pubs)
        lmd_ppub_free(t->pubs, true);
    if (t->client)
        avahi_client_free(t->client); /* closes the connection: the daemon withdraws our records */
    t->client = NULL;
    pthread_mutex_lock(&t->life);
    t->finished = true;
    bool orphaned = t->orphaned;
    pthread_mutex_unlock(&t->life);
    if (orphaned)
        publisher_release(t);
    return NULL;
}

/* ---- the loop side ---------------------------------------------------- */

static struct lmd_pub *pub_by_id(lmd_mdns *m, uint64_t id)
{
    for (struct lmd_pub *p = m->pubs; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static void deliver(lmd_mdns *m, const struct lmd_pmsg *x)
{
    if (x->kind == LMD_PMSG_LOG) {
        lmd_log(x->level, "%s", x->text ? x->text : "(out of memory)");
        return;
    }
    struct lmd_pub *p = pub_by_id(m, x->id);
    if (!p)
        return; /* freed meanwhile */
    if (x->kind == LMD_PMSG_DOWN) {
        p->established = false;
        return;
    }
    if (x->name && strcmp(x->name, p->name) != 0) {
        char *name = lmd_strdup(x->name);
        if (name) {
            free(p->name);
            p->name = name;
        }
    }
    p->established = x->ev == LMD_PUB_ESTABLISHED;
    if (p->cb)
        p->cb(p->ud, x->ev, p->name, x->text); /* may free p */
}

static void out_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_publisher *t = arg;
    struct lmd_pmsg *all = lmd_queue_take(&t->out);
    for (struct lmd_pmsg *x = all, *next; x; x = next) {
        next = x->next;
        deliver(t->m, x);
        msg_free(x);
    }
}

static void publisher_release(lmd_publisher *t)
{
    free(t->quit_req);
    lmd_event_free(t->in_ev);
    lmd_event_free(t->rebuild);
    lmd_event_free(t->retry);
    if (t->base)
        event_base_free(t->base);
    lmd_queue_drain(&t->in, drain_req);
    lmd_queue_drain(&t->out, drain_msg);
    free(t);
}

int lmd_publisher_get(lmd_mdns *m, lmd_publisher **out)
{
    if (m->publisher) {
        *out = m->publisher;
        return 0;
    }
    *out = NULL;
    lmd_publisher *t = calloc(1, sizeof *t);
    if (!t)
        return LMD_ENOMEM;
    t->m = m;
    t->life = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    t->in.efd = t->out.efd = -1;
    if (lmd_queue_init(&t->in) || lmd_queue_init(&t->out) || !(t->base = event_base_new()))
        goto fail;
    lmd_avahi_poll_init(&t->poll, t->base);
    t->in_ev = event_new(t->base, t->in.efd, EV_READ | EV_PERSIST, in_fire, t);
    t->rebuild = event_new(t->base, -1, 0, rebuild_fire, t);
    t->retry = evtimer_new(t->base, retry_fire, t);
    t->out_ev = event_new(m->base, t->out.efd, EV_READ | EV_PERSIST, out_fire, t);
    struct req *quit = t->quit_req = calloc(1, sizeof *quit);
    if (!quit || !t->in_ev || !t->rebuild || !t->retry || !t->out_ev || event_add(t->in_ev, NULL) ||
        event_add(t->out_ev, NULL))
        goto fail;
    quit->op = RQ_QUIT;
    if (pthread_create(&t->thread, NULL, publisher_main, t) != 0)
        goto fail;
    t->started = true;
    /* seen in /proc/PID/task/TID/comm and by debuggers (at most 15 bytes) */
    (void)pthread_setname_np(t->thread, "lmd-publisher");
    *out = m->publisher = t;
    return 0;
fail:
    lmd_publisher_free(t);
    return LMD_ENOMEM;
}

/* Waits at most QUIT_WAIT for the thread: one blocking call to a daemon
 * swamped by a flood can take seconds.  A thread that is not done by then
 * is left to finish that call and free the publisher itself; the records
 * are withdrawn by the daemon when the client's connection closes (with
 * the thread's avahi_client_free, or the process's end). */
#define QUIT_WAIT 0.25
void lmd_publisher_free(lmd_publisher *t)
{
    if (!t)
        return;
    lmd_event_free(t->out_ev); /* the loop's: nothing more is delivered */
    t->out_ev = NULL;
    if (t->m && t->m->publisher == t)
        t->m->publisher = NULL;
    t->m = NULL;
    if (t->started) {
        lmd_queue_push(&t->in, t->quit_req);
        t->quit_req = NULL; /* freed by the thread */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long ns = until.tv_nsec + (long)(QUIT_WAIT * 1e9);
        until.tv_sec += ns / 1000000000L;
        until.tv_nsec = ns % 1000000000L;
        if (pthread_timedjoin_np(t->thread, NULL, &until) != 0) {
            pthread_mutex_lock(&t->life);
            bool finished = t->finished;
            t->orphaned = !finished;
            pthread_mutex_unlock(&t->life);
            if (!finished) {
                pthread_detach(t->thread);
                return;
            }
            pthread_join(t->thread, NULL);
        }
    }
    publisher_release(t);
}

/* What the thread has not taken yet is folded, so that a client faster
 * than avahi-daemon (a PATCH loop; PUT and DELETE in turns) queues no more
 * than a few requests per service: a TXT replaces a queued TXT of the same
 * service; a FREE of a service whose NEW is still queued drops both (and
 * its TXTs).  Before, each went in the queue while the thread waited on
 * the daemon: 1,500 register-change-withdraw cycles grew the agent by
 * 700 kB, without bound (lab_attack_publish). */
static int fold(void **head, void *ud)
{
    struct req *q = ud;
    if (q->op == RQ_TXT) {
        /* the service's last request queued: its TXT is the newest (other
         * services' requests are independent of it) */
        struct req *last = NULL;
        for (struct req *x = *head; x; x = x->next)
            if (x->id == q->id)
                last = x;
        if (!last || (last->op != RQ_TXT && last->op != RQ_NEW))
            return 0;
        lmd_txt_free(&last->txt);
        last->txt = q->txt;
        q->txt = (lmd_txt){0};
        return 1;
    }
    if (q->op != RQ_FREE)
        return 0;
    bool queued_new = false;
    for (struct req *x = *head; x; x = x->next)
        queued_new = queued_new || (x->id == q->id && x->op == RQ_NEW);
    if (!queued_new)
        return 0;
    for (struct req **at = (struct req **)head; *at;) {
        struct req *x = *at;
        if (x->id == q->id) {
            *at = x->next;
            req_free(x);
        } else {
            at = &x->next;
        }
    }
    return 1;
}

static int send_req(lmd_pub *p, enum op op, const struct lmd_pub_config *cfg, const lmd_txt *txt)
{
    struct req *q = calloc(1, sizeof *q);
    if (!q)
        return LMD_ENOMEM;
    q->op = op;
    q->id = p->id;
    if (cfg) {
        q->port = cfg->port;
        q->ttl = cfg->ttl;
        q->name = lmd_strdup(cfg->name);
        q->type = lmd_strdup(cfg->type ? cfg->type : LMD_DEFAULT_TYPE);
        q->domain = cfg->domain ? lmd_strdup(cfg->domain) : NULL;
        if (!q->name || !q->type || (cfg->domain && !q->domain)) {
            req_free(q);
            return LMD_ENOMEM;
        }
    }
    if (txt && lmd_txt_copy(&q->txt, txt) != 0) {
        req_free(q);
        return LMD_ENOMEM;
    }
    if (lmd_queue_edit(&p->m->publisher->in, fold, q)) {
        req_free(q); /* folded into what is queued */
        return 0;
    }
    lmd_queue_push(&p->m->publisher->in, q);
    return 0;
}

int lmd_pub_new(lmd_mdns *m, const struct lmd_pub_config *cfg, lmd_pub_cb cb, void *ud, lmd_pub **out,
                lmd_err *err)
{
    char why[320];
    *out = NULL;
    if (cfg->txt && lmd_txt_check_record(cfg->txt, why, sizeof why) != 0)
        return lmd_err_set(err, LMD_ETXT, "%s", why);
    lmd_publisher *t;
    if (lmd_publisher_get(m, &t) != 0)
        return lmd_err_set(err, LMD_ENOMEM, "cannot start the publishing thread (out of memory)");
    struct lmd_pub *p = calloc(1, sizeof *p);
    if (!p || !(p->name = lmd_strdup(cfg->name)) ||
        !(p->type = lmd_strdup(cfg->type ? cfg->type : LMD_DEFAULT_TYPE))) {
        if (p)
            free(p->name);
        free(p);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    p->m = m;
    p->id = ++t->next_id;
    p->cb = cb;
    p->ud = ud;
    if (send_req(p, RQ_NEW, cfg, cfg->txt) != 0) {
        free(p->name);
        free(p->type);
        free(p);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    p->next = m->pubs;
    m->pubs = p;
    *out = p;
    return 0;
}

int lmd_pub_set_txt(lmd_pub *p, const lmd_txt *txt)
{
    char why[320];
    if (!txt)
        return 0;
    if (lmd_txt_check_record(txt, why, sizeof why) != 0) {
        char e[256];
        lmd_error("cannot update the TXT record of '%s': %s", lmd_escape_str(p->name, e, sizeof e), why);
        return LMD_ETXT;
    }
    return send_req(p, RQ_TXT, NULL, txt);
}

const char *lmd_pub_name(const lmd_pub *p) { return p->name; }
bool lmd_pub_established(const lmd_pub *p) { return p->established; }

void lmd_pub_free(lmd_pub *p)
{
    if (!p)
        return;
    LMD_LIST_UNLINK(&p->m->pubs, p);
    /* the thread withdraws it (goodbyes); without memory for the request,
     * it stays until the publisher ends, whose client's end withdraws it */
    if (send_req(p, RQ_FREE, NULL, NULL) != 0)
        lmd_error("cannot withdraw '%s' now (out of memory): it goes when the agent ends", p->name);
    free(p->name);
    free(p->type);
    free(p);
}

/* DNS names compare without regard to ASCII case; a type may end in '.' */
static bool type_equal(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    na -= na && a[na - 1] == '.';
    nb -= nb && b[nb - 1] == '.';
    return na == nb && strncasecmp(a, b, na) == 0;
}

bool lmd_mdns_publishes(const lmd_mdns *m, const char *name, const char *type)
{
    for (const struct lmd_pub *p = m->pubs; p; p = p->next)
        if (!strcasecmp(p->name, name) && type_equal(p->type, type))
            return true;
    return false;
}

bool lmd_mdns_is_own(const lmd_mdns *m, AvahiLookupResultFlags flags, const char *name, const char *type)
{
    if (flags & AVAHI_LOOKUP_RESULT_OUR_OWN)
        return true;
    if (!(flags & AVAHI_LOOKUP_RESULT_LOCAL))
        return false;
    for (const struct lmd_pub *p = m->pubs; p; p = p->next)
        if (!strcasecmp(p->name, name) && type_equal(p->type, type))
            return true;
    return false;
}
