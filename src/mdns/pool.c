/* The resolver pool: service resolvers on avahi clients of their own, on a
 * thread of their own, started by an lmd_mdns's first browser (client.c,
 * lmd_mdns_pool): publishing alone needs none of it.
 *
 * Two things a flood of forged services did to the agent, and why this
 * file exists:
 * - avahi-daemon caps the objects of one client (objects-per-client-max,
 *   1,024 by default) and every instance followed costs one open resolver,
 *   so one client followed at most about 500 dual-stack services, and a
 *   flood kept real peers out.  Resolvers now live on clients of their own,
 *   opened as they fill up (at most LMD_MDNS_RESOLVER_CLIENTS), so the main
 *   client keeps its quota for publishing and browsing, and the agent can
 *   follow more services than avahi-daemon caches (cache-entries-max, 4,096
 *   records per interface and protocol by default: about 1,365 services).
 * - avahi-client makes every resolver with a blocking D-Bus call, and a
 *   daemon busy with a burst of packets answers it up to a second later
 *   (measured: 0.92 s): on the agent's loop, the API stalled that long.
 *   Those calls are made here, on the pool's thread, and its results reach
 *   the loop as messages (struct lmd_pool_msg), a bounded number per turn.
 *
 * The loop side (browse.c) asks with lmd_pool_resolve/cancel/reset and gets
 * lmd_mdns_pool_msg() calls.  Nothing of avahi crosses between the threads
 * but copies; the pool thread does not log (messages carry the text). */
#include "base/loop.h"
#include "base/util.h"
#include "mdns/internal.h"
#include "mdns/queue.h"

#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MSGS_PER_TURN 64 /* replies handled per loop turn (the API goes between) */

enum op { OP_RESOLVE, OP_CANCEL, OP_RESET, OP_QUIT };

struct req {
    struct req *next;
    enum op op;
    uint64_t rid;
    AvahiIfIndex ifindex;
    AvahiProtocol proto, aproto;
    char *name, *type, *domain;
    bool once;
};

/* one resolver open on the pool thread */
struct res {
    struct res *next;
    struct lmd_pool *p;
    uint64_t rid;
    AvahiServiceResolver *r;
    int slot;
    bool once;
};

struct rclient {
    AvahiClient *c;
    unsigned used;
    bool full;
};

struct lmd_pool {
    lmd_mdns *m;
    pthread_t thread;
    bool started;
    struct lmd_queue in, out;        /* requests to the thread, messages back */
    struct event *out_ev;        /* loop side: messages to read */
    /* pool thread only */
    struct event_base *base;
    struct event *in_ev;
    struct event *work;          /* zero timer: the next resolver to open */
    struct req *stack;           /* RESOLVE requests not done yet, newest first */
    lmd_avahi_poll poll;
    struct rclient rc[LMD_MDNS_RESOLVER_CLIENTS];
    unsigned n_rc;
    struct res *res;
    bool refused;                /* said FULL since the last release */
    uint64_t gen;                /* of the last RESET: tags messages */
    struct req *quit_req;        /* made up front: quitting cannot fail */
    bool quit;
    bool dead;                   /* a client failed: all gone until RESET */
    /* read by the loop */
    atomic_uint open, clients;
    /* lmd_pool_free stopped waiting for the thread (a blocking call to a
     * daemon swamped by a flood): the thread frees the pool as it ends */
    pthread_mutex_t life;
    bool orphaned, finished;
};

/* ---- queues (queue.c) -------------------------------------------------- */

static void req_free(struct req *r)
{
    free(r->name);
    free(r->type);
    free(r->domain);
    free(r);
}

void lmd_pool_msg_free(struct lmd_pool_msg *msg)
{
    if (!msg)
        return;
    free(msg->name);
    free(msg->host);
    free(msg->text);
    avahi_string_list_free(msg->txt);
    free(msg);
}

static void drain_req(void *x) { req_free(x); }
static void drain_msg(void *x) { lmd_pool_msg_free(x); }

/* ---- the pool thread -------------------------------------------------- */

static void say(struct lmd_pool *p, enum lmd_pool_kind kind, uint64_t rid, const char *text)
{
    struct lmd_pool_msg *msg = calloc(1, sizeof *msg);
    if (!msg)
        return; /* the loop side retries waiting instances every 2 s */
    msg->kind = kind;
    msg->rid = rid;
    msg->gen = p->gen;
    msg->text = text ? lmd_strdup(text) : NULL;
    lmd_queue_push(&p->out, msg);
}

static void count(struct lmd_pool *p)
{
    unsigned n = 0;
    for (unsigned i = 0; i < p->n_rc; i++)
        n += p->rc[i].used;
    atomic_store(&p->open, n);
    atomic_store(&p->clients, p->n_rc);
}

static void res_drop(struct lmd_pool *p, struct res *x)
{
    LMD_LIST_UNLINK(&p->res, x);
    if (x->r)
        avahi_service_resolver_free(x->r);
    if (x->slot >= 0 && (unsigned)x->slot < p->n_rc) {
        struct rclient *rc = &p->rc[x->slot];
        rc->used--;
        rc->full = false;
        if (p->refused) {
            p->refused = false;
            say(p, LMD_POOL_ROOM, 0, NULL);
        }
    }
    free(x);
    count(p);
}

static void close_all(struct lmd_pool *p)
{
    while (p->res) {
        struct res *x = p->res;
        p->res = x->next;
        free(x); /* its resolver goes with its client */
    }
    for (unsigned i = 0; i < p->n_rc; i++)
        avahi_client_free(p->rc[i].c);
    p->n_rc = 0;
    p->refused = false;
    count(p);
}

static void rclient_cb(AvahiClient *c, AvahiClientState state, void *ud)
{
    struct lmd_pool *p = ud;
    if (state != AVAHI_CLIENT_FAILURE)
        return;
    for (unsigned i = 0; i < p->n_rc; i++)
        if (p->rc[i].c == c && !p->dead) {
            /* the daemon went away (the main client sees it too and resets
             * the pool) or this connection broke: the loop rebuilds all */
            p->dead = true;
            say(p, LMD_POOL_LOST, 0, avahi_strerror(avahi_client_errno(c)));
        }
}

static void resolver_cb(AvahiServiceResolver *r, AvahiIfIndex ifindex, AvahiProtocol proto,
                        AvahiResolverEvent event, const char *name, const char *type, const char *domain,
                        const char *host, const AvahiAddress *addr, uint16_t port, AvahiStringList *txt,
                        AvahiLookupResultFlags flags, void *ud)
{
    (void)type;
    (void)domain;
    struct res *x = ud;
    struct lmd_pool *p = x->p;
    x->r = r;
    struct lmd_pool_msg *msg = calloc(1, sizeof *msg);
    if (msg) {
        msg->gen = p->gen;
        msg->rid = x->rid;
        msg->ifindex = ifindex;
        msg->proto = proto;
        if (event == AVAHI_RESOLVER_FOUND) {
            msg->kind = LMD_POOL_FOUND;
            msg->name = lmd_strdup(name ? name : "");
            msg->host = lmd_strdup(host ? host : "");
            msg->addr = *addr;
            msg->port = port;
            msg->txt = avahi_string_list_copy(txt);
            msg->flags = flags;
            if (!msg->name || !msg->host || (txt && !msg->txt)) {
                lmd_pool_msg_free(msg);
                msg = NULL;
            }
        } else {
            msg->kind = LMD_POOL_FAILED;
            msg->text = lmd_strdup(avahi_strerror(avahi_client_errno(avahi_service_resolver_get_client(r))));
        }
    }
    if (!msg) { /* out of memory: as a failure the loop side retries */
        msg = calloc(1, sizeof *msg);
        if (msg) {
            msg->kind = LMD_POOL_FAILED;
            msg->rid = x->rid;
            msg->gen = p->gen;
        }
    }
    if (msg)
        lmd_queue_push(&p->out, msg);
    if (event != AVAHI_RESOLVER_FOUND || x->once)
        res_drop(p, x);
}

/* a client with room, opening one if needed: its slot, or LMD_EAVAHI
 * (*error: avahi's) */
static int pick(struct lmd_pool *p, int *error)
{
    for (unsigned i = 0; i < p->n_rc; i++)
        if (!p->rc[i].full)
            return (int)i;
    if (p->n_rc == LMD_MDNS_RESOLVER_CLIENTS) {
        *error = AVAHI_ERR_TOO_MANY_OBJECTS;
        return LMD_EAVAHI;
    }
    AvahiClient *c = avahi_client_new(&p->poll.api, 0, rclient_cb, p, error);
    if (!c)
        return LMD_EAVAHI;
    p->rc[p->n_rc] = (struct rclient){.c = c};
    count(p);
    return (int)p->n_rc++;
}

static void do_resolve(struct lmd_pool *p, struct req *q)
{
    struct res *x = calloc(1, sizeof *x);
    if (!x) {
        say(p, LMD_POOL_FAILED, q->rid, "out of memory");
        return;
    }
    x->p = p;
    x->rid = q->rid;
    x->once = q->once;
    x->slot = -1;
    int error = 0;
    /* bounded: each round returns or marks one client full */
    for (unsigned round = 0; round <= LMD_MDNS_RESOLVER_CLIENTS; round++) {
        int i = p->dead ? LMD_EAVAHI : pick(p, &error);
        if (i < 0)
            break;
        x->slot = i;
        p->rc[i].used++;
        x->next = p->res;
        p->res = x;
        /* aprotocol: the address family asked for (see browse.c's
         * inst_resolve: any family first) */
        AvahiServiceResolver *r = avahi_service_resolver_new(p->rc[i].c, q->ifindex, q->proto, q->name, q->type,
                                                             q->domain, q->aproto, 0, resolver_cb, x);
        if (r) {
            x->r = r;
            count(p);
            return;
        }
        error = avahi_client_errno(p->rc[i].c);
        p->res = x->next;
        p->rc[i].used--;
        x->slot = -1;
        if (error != AVAHI_ERR_TOO_MANY_OBJECTS)
            break;
        p->rc[i].full = true; /* until one of its resolvers is released */
    }
    free(x);
    if (error == AVAHI_ERR_TOO_MANY_OBJECTS || error == AVAHI_ERR_TOO_MANY_CLIENTS) {
        p->refused = true;
        say(p, LMD_POOL_FULL, q->rid, avahi_strerror(error));
    } else {
        say(p, LMD_POOL_FAILED, q->rid, p->dead ? "avahi-daemon connection lost" : avahi_strerror(error));
    }
}

/* Requests are taken as they come, but resolvers are opened one per loop
 * turn, newest first: avahi-client opens each with a blocking call (about
 * 1 ms, up to a second while the daemon is busy), and a burst of forged
 * services must not queue a real peer that arrives after it behind all of
 * them; between two, the turn delivers the answers of those already open. */
static void intake(struct lmd_pool *p)
{
    struct req *all = lmd_queue_take(&p->in);
    for (struct req *q = all; q; q = q->next)
        if (q->op == OP_QUIT) {
            /* quitting: what else came goes with the clients, unasked (a
             * cancel is a blocking call to the daemon per resolver) */
            for (struct req *x = all, *next; x; x = next) {
                next = x->next;
                if (x != q)
                    req_free(x);
            }
            p->quit = true;
            event_base_loopbreak(p->base);
            req_free(q);
            return;
        }
    for (struct req *q = all, *next; q; q = next) {
        next = q->next;
        switch (q->op) {
        case OP_RESOLVE:
            q->next = p->stack;
            p->stack = q;
            continue; /* kept */
        case OP_CANCEL: {
            bool queued = false;
            for (struct req **pp = &p->stack; *pp; pp = &(*pp)->next)
                if ((*pp)->rid == q->rid) {
                    struct req *x = *pp;
                    *pp = x->next;
                    req_free(x);
                    queued = true;
                    break;
                }
            for (struct res *x = p->res; x && !queued; x = x->next)
                if (x->rid == q->rid) {
                    res_drop(p, x);
                    break;
                }
            break;
        }
        case OP_RESET:
            while (p->stack) {
                struct req *x = p->stack;
                p->stack = x->next;
                req_free(x);
            }
            close_all(p);
            p->dead = false;
            p->gen = q->rid;
            break;
        case OP_QUIT:
            p->quit = true;
            event_base_loopbreak(p->base);
            break;
        }
        req_free(q);
    }
    if (p->stack && !p->quit && !evtimer_pending(p->work, NULL)) {
        static const struct timeval now = {0, 0};
        evtimer_add(p->work, &now);
    }
}

static void in_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    intake(arg);
}

static void work_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lmd_pool *p = arg;
    intake(p); /* what came meanwhile goes on top */
    struct req *q = p->stack;
    if (!q || p->quit)
        return;
    p->stack = q->next;
    do_resolve(p, q);
    req_free(q);
    if (p->stack && !evtimer_pending(p->work, NULL)) {
        static const struct timeval now = {0, 0};
        evtimer_add(p->work, &now);
    }
}

static void pool_release(struct lmd_pool *p);

static void *pool_main(void *arg)
{
    struct lmd_pool *p = arg;
    while (!p->quit && event_base_loop(p->base, EVLOOP_ONCE) >= 0)
        ;
    while (p->stack) {
        struct req *x = p->stack;
        p->stack = x->next;
        req_free(x);
    }
    close_all(p);
    pthread_mutex_lock(&p->life);
    p->finished = true;
    bool orphaned = p->orphaned;
    pthread_mutex_unlock(&p->life);
    if (orphaned)
        pool_release(p);
    return NULL;
}

/* ---- the loop side ---------------------------------------------------- */

static void out_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lmd_pool *p = arg;
    /* a bounded number a turn; what is left stays queued, and the eventfd
     * is set again so that the next turn takes it */
    uint64_t v;
    (void)!read(p->out.efd, &v, sizeof v);
    pthread_mutex_lock(&p->out.mu);
    struct lmd_pool_msg *batch = p->out.head, *last = NULL;
    unsigned n = 0;
    for (struct lmd_pool_msg *x = batch; x && n < MSGS_PER_TURN; x = x->next, n++)
        last = x;
    if (last) {
        p->out.head = last->next;
        if (!p->out.head)
            p->out.tail = &p->out.head;
        last->next = NULL;
    }
    bool more = p->out.head != NULL;
    pthread_mutex_unlock(&p->out.mu);
    if (more) {
        uint64_t one = 1;
        (void)!write(p->out.efd, &one, sizeof one);
    }
    for (struct lmd_pool_msg *x = last ? batch : NULL, *next; x; x = next) {
        next = x->next;
        lmd_mdns_pool_msg(p->m, x);
        lmd_pool_msg_free(x);
    }
}

int lmd_pool_new(lmd_mdns *m, uint64_t gen, lmd_pool **out)
{
    struct lmd_pool *p = *out = calloc(1, sizeof *p);
    if (!p)
        return LMD_ENOMEM;
    p->m = m;
    p->life = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    p->gen = gen; /* set before the thread starts: its own from here on */
    p->in.efd = p->out.efd = -1;
    if (lmd_queue_init(&p->in) || lmd_queue_init(&p->out) || !(p->base = event_base_new()))
        goto fail;
    lmd_avahi_poll_init(&p->poll, p->base);
    p->in_ev = event_new(p->base, p->in.efd, EV_READ | EV_PERSIST, in_fire, p);
    p->work = evtimer_new(p->base, work_fire, p);
    p->out_ev = event_new(m->base, p->out.efd, EV_READ | EV_PERSIST, out_fire, p);
    p->quit_req = calloc(1, sizeof *p->quit_req);
    if (!p->quit_req || !p->in_ev || !p->work || !p->out_ev || event_add(p->in_ev, NULL) || event_add(p->out_ev, NULL))
        goto fail;
    p->quit_req->op = OP_QUIT;
    if (pthread_create(&p->thread, NULL, pool_main, p) != 0)
        goto fail;
    p->started = true;
    /* seen in /proc/PID/task/TID/comm and by debuggers (at most 15 bytes) */
    (void)pthread_setname_np(p->thread, "lmd-resolvers");
    return 0;
fail:
    lmd_pool_free(p);
    *out = NULL;
    return LMD_ENOMEM;
}

static int send_req(lmd_pool *p, enum op op, uint64_t rid, AvahiIfIndex ifindex, AvahiProtocol proto,
                    AvahiProtocol aproto, const char *name, const char *type, const char *domain, bool once)
{
    struct req *q = calloc(1, sizeof *q);
    if (!q)
        return LMD_ENOMEM;
    *q = (struct req){.op = op, .rid = rid, .ifindex = ifindex, .proto = proto, .aproto = aproto, .once = once};
    if (name && (!(q->name = lmd_strdup(name)) || !(q->type = lmd_strdup(type)) ||
                 (domain && !(q->domain = lmd_strdup(domain))))) {
        req_free(q);
        return LMD_ENOMEM;
    }
    lmd_queue_push(&p->in, q);
    return 0;
}

int lmd_pool_resolve(lmd_pool *p, uint64_t rid, AvahiIfIndex ifindex, AvahiProtocol proto, AvahiProtocol aproto,
                     const char *name, const char *type, const char *domain, bool once)
{
    return send_req(p, OP_RESOLVE, rid, ifindex, proto, aproto, name, type, domain, once);
}

void lmd_pool_cancel(lmd_pool *p, uint64_t rid)
{
    /* out of memory: the resolver stays open until the next reset, and its
     * messages are dropped (no instance has that rid any more) */
    (void)send_req(p, OP_CANCEL, rid, 0, 0, 0, NULL, NULL, NULL, false);
}

void lmd_pool_reset(lmd_pool *p, uint64_t gen)
{
    /* out of memory: the old resolvers stay, and a client failure or the
     * next reset closes them; their messages carry the old generation */
    (void)send_req(p, OP_RESET, gen, 0, 0, 0, NULL, NULL, NULL, false);
}

unsigned lmd_pool_open(const lmd_pool *p, unsigned *clients)
{
    if (clients)
        *clients = atomic_load(&((lmd_pool *)p)->clients);
    return atomic_load(&((lmd_pool *)p)->open);
}

/* What lmd_pool_free leaves once the thread is gone (and the loop side's
 * event is freed): on the loop, or on the thread itself if orphaned. */
static void pool_release(struct lmd_pool *p)
{
    free(p->quit_req);
    lmd_event_free(p->in_ev);
    lmd_event_free(p->work);
    if (p->base)
        event_base_free(p->base);
    lmd_queue_drain(&p->in, drain_req);
    lmd_queue_drain(&p->out, drain_msg);
    free(p);
}

/* Waits at most QUIT_WAIT for the thread: one blocking call to a daemon
 * swamped by a flood can take seconds, and lmd_discover_nodes' timeout is
 * a hard bound.  A thread that is not done by then is left to finish that
 * call and free the pool itself. */
#define QUIT_WAIT 0.25
void lmd_pool_free(lmd_pool *p)
{
    if (!p)
        return;
    lmd_event_free(p->out_ev); /* the loop's: nothing more is delivered */
    p->out_ev = NULL;
    if (p->started) {
        lmd_queue_push(&p->in, p->quit_req);
        p->quit_req = NULL; /* freed by the thread */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long ns = until.tv_nsec + (long)(QUIT_WAIT * 1e9);
        until.tv_sec += ns / 1000000000L;
        until.tv_nsec = ns % 1000000000L;
        if (pthread_timedjoin_np(p->thread, NULL, &until) != 0) {
            pthread_mutex_lock(&p->life);
            bool finished = p->finished;
            p->orphaned = !finished;
            pthread_mutex_unlock(&p->life);
            if (!finished) {
                pthread_detach(p->thread);
                return;
            }
            pthread_join(p->thread, NULL);
        }
    }
    pool_release(p);
}
