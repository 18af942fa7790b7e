/* API connections (see conns.h).  libevent 2.1's evhttp has no connection
 * hooks of its own, but it lets us make each connection's bufferevent
 * (evhttp_set_bevcb): a pass-through filter over the socket, whose free
 * callback tells us when the connection is gone. */
#include "agent/conns.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <sys/socket.h>

#define MAX_LISTENERS 4

struct slot {
    struct slot *next;
    lmd_conns *c;
    struct bufferevent *bev;  /* the filter evhttp reads and writes */
    struct event *deadline;
    uid_t uid;
    bool uid_known, stream;
};

struct lmd_conns {
    struct event_base *base;
    struct lmd_conns_limits lim;
    struct slot *slots;
    unsigned n;
    struct evconnlistener *listeners[MAX_LISTENERS];
    unsigned n_listeners;
    bool paused;
    double warned;            /* when the cap was last reported */
};

static enum bufferevent_filter_result pass(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
                                           enum bufferevent_flush_mode mode, void *ctx)
{
    (void)limit;
    (void)mode;
    (void)ctx;
    return evbuffer_add_buffer(dst, src) == 0 ? BEV_OK : BEV_ERROR;
}

static void pause_listeners(lmd_conns *c, bool pause)
{
    if (c->paused == pause)
        return;
    c->paused = pause;
    for (unsigned i = 0; i < c->n_listeners; i++)
        (void)(pause ? evconnlistener_disable(c->listeners[i]) : evconnlistener_enable(c->listeners[i]));
    if (pause && lmd_now_mono() - c->warned > 60) {
        c->warned = lmd_now_mono();
        lmd_warn("API: %u connections are open, the most it serves at once; new ones wait until some close "
                 "(said once a minute)", c->n);
    }
}

static void slot_freed(void *arg)
{
    struct slot *s = arg;
    lmd_conns *c = s->c;
    for (struct slot **pp = &c->slots; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    c->n--;
    if (s->deadline)
        event_free(s->deadline);
    free(s);
    if (c->n < c->lim.max)
        pause_listeners(c, false);
}

static void deadline_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct slot *s = arg;
    lmd_debug("API: a client sent no whole request within %g s; closing its connection", s->c->lim.request_deadline);
    /* evhttp closes the connection as on EOF (deferred: not from inside this
     * timer, which goes with the connection) */
    bufferevent_trigger_event(s->bev, BEV_EVENT_EOF | BEV_EVENT_READING, BEV_TRIG_DEFER_CALLBACKS);
}

static struct bufferevent *new_conn(struct event_base *base, void *arg)
{
    lmd_conns *c = arg;
    /* on failure evhttp makes a plain bufferevent of its own: served, not counted */
    struct slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->c = c;
    struct bufferevent *u = NULL, *f = NULL;
    if (!(s->deadline = evtimer_new(base, deadline_fire, s)) ||
        !(u = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) ||
        !(f = bufferevent_filter_new(u, pass, pass, BEV_OPT_CLOSE_ON_FREE, slot_freed, s))) {
        if (u)
            bufferevent_free(u);
        if (s->deadline)
            event_free(s->deadline);
        free(s);
        return NULL;
    }
    s->bev = f;
    s->next = c->slots;
    c->slots = s;
    if (lmd_timer_in(s->deadline, c->lim.request_deadline) != 0)
        lmd_warn("API: cannot arm a request deadline (out of memory)");
    if (++c->n >= c->lim.max)
        pause_listeners(c, true);
    return f;
}

int lmd_conns_new(struct event_base *base, struct evhttp *http, const struct lmd_conns_limits *lim,
                  lmd_conns **out, lmd_err *err)
{
    lmd_conns *c = *out = calloc(1, sizeof *c);
    if (!c)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    c->base = base;
    c->lim = *lim;
    c->warned = -1e9;
    evhttp_set_bevcb(http, new_conn, c);
    return 0;
}

void lmd_conns_free(lmd_conns *c)
{
    /* the connections' bufferevents are freed by evhttp_free, before this */
    free(c);
}

void lmd_conns_listener(lmd_conns *c, struct evhttp_bound_socket *bs)
{
    struct evconnlistener *l = evhttp_bound_socket_get_listener(bs);
    if (l && c->n_listeners < MAX_LISTENERS)
        c->listeners[c->n_listeners++] = l;
}

static struct slot *slot_of(lmd_conns *c, struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    for (struct slot *s = c->slots; bev && s; s = s->next)
        if (s->bev == bev)
            return s;
    return NULL;
}

/* The reply is out: the next request on this connection gets a deadline. */
static void replied(struct evhttp_request *req, void *arg)
{
    struct slot *s = slot_of(arg, req);
    if (s && !s->stream && lmd_timer_in(s->deadline, s->c->lim.request_deadline) != 0)
        lmd_warn("API: cannot arm a request deadline (out of memory)");
}

void lmd_conns_request(lmd_conns *c, struct evhttp_request *req)
{
    struct slot *s = slot_of(c, req);
    if (!s)
        return;
    event_del(s->deadline);
    if (!s->uid_known)
        s->uid_known = lmd_conns_peer_uid(req, &s->uid);
    evhttp_request_set_on_complete_cb(req, replied, c);
}

void lmd_conns_stream(lmd_conns *c, struct evhttp_request *req)
{
    struct slot *s = slot_of(c, req);
    if (s) {
        s->stream = true;
        event_del(s->deadline);
    }
}

bool lmd_conns_peer_uid(struct evhttp_request *req, uid_t *uid)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred)
        return false;
    *uid = cred.uid;
    return true;
}

unsigned lmd_conns_count_uid(lmd_conns *c, uid_t uid)
{
    unsigned n = 0;
    for (struct slot *s = c->slots; s; s = s->next)
        n += s->uid_known && s->uid == uid;
    return n;
}

unsigned lmd_conns_count(const lmd_conns *c) { return c->n; }

size_t lmd_conns_pending_output(struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    if (!bev)
        return 0;
    struct bufferevent *u = bufferevent_get_underlying(bev);
    return evbuffer_get_length(bufferevent_get_output(bev)) + (u ? evbuffer_get_length(bufferevent_get_output(u)) : 0);
}

void lmd_conns_drop(struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    if (bev)
        bufferevent_trigger_event(bev, BEV_EVENT_ERROR | BEV_EVENT_WRITING, BEV_TRIG_DEFER_CALLBACKS);
}
