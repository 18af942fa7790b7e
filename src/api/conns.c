/* API connections (see conns.h).  libevent 2.1's evhttp has no connection
 * hooks of its own, but it lets us make each connection's bufferevent
 * (evhttp_set_bevcb).  We keep a reference to it: when evhttp is done with
 * the connection it frees the bufferevent, which (our reference holding it)
 * only clears its callbacks; a sweep, running only while connections exist,
 * notices that, lets go, and enforces the request deadlines.
 *
 * Who a connection is from (the uid of a Unix socket peer, the address of
 * a TCP one) is known at accept, before any byte of a request: evhttp gives
 * the new bufferevent its socket right after making it, so an event made
 * active then (identify) runs before the connection is read.  Each client
 * holds at most lim.per_client connections; past that its new ones are
 * closed at once, so that one client's half-open connections never take the
 * slots another needs.  Admins (root, the agent's own user) have no share:
 * they can stop the agent anyway.
 *
 * A client is a uid on the Unix socket, and the same uid over TCP from
 * this host (the other end's owner, asked of the kernel as ss does: every
 * address of 127.0.0.0/8 and every one of the host's own is a source a
 * local user may pick, so counting them apart would give one user a share
 * per address); a TCP address otherwise.  Remote clients together hold at
 * most three quarters of the slots: the rest stays for this host's users,
 * however many addresses a remote host sends from. */
#include "api/conns.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#define SWEEP 0.5 /* seconds between looks at the connections */
#define MAX_LISTENERS 4

/* Who a connection is from: a uid (AF_UNIX) or an address (AF_INET, IPv4
 * in IPv6 as IPv4); family 0: not known (not limited). */
struct client {
    int family;
    uid_t uid;
    unsigned char addr[16];
    bool tcp;       /* a uid (AF_UNIX) over TCP from this host: no admin exemption */
};

struct slot {
    struct slot *next;
    struct bufferevent *bev;  /* the connection's; we hold a reference */
    double waiting_since;     /* for a whole request; < 0: one is being served, or a stream */
    struct client from;
    bool identified, stream;
};

struct lmd_conns {
    struct event_base *base;
    struct lmd_conns_limits lim;
    struct slot *slots;
    unsigned n;
    struct event *sweep;
    struct event *identify;   /* active while new connections wait to be identified */
    struct evconnlistener *listeners[MAX_LISTENERS];
    unsigned n_listeners;
    bool paused;
    double warned;            /* when the cap was last reported */
    double warned_client;     /* when a client over its share was last reported */
    double refused;           /* connections closed at accept: a client over its share */
};

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

/* evhttp freed it: only our reference is left, its callbacks are gone */
static bool released(struct bufferevent *bev)
{
    bufferevent_data_cb r, w;
    bufferevent_event_cb e;
    void *arg;
    bufferevent_getcb(bev, &r, &w, &e, &arg);
    return !r && !w && !e;
}

static void sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_conns *c = arg;
    double now = lmd_now_mono();
    for (struct slot **pp = &c->slots; *pp;) {
        struct slot *s = *pp;
        if (released(s->bev)) {
            *pp = s->next;
            bufferevent_decref(s->bev); /* closes the socket */
            free(s);
            c->n--;
            continue;
        }
        if (!s->stream && s->waiting_since >= 0 && now - s->waiting_since > c->lim.request_deadline) {
            lmd_debug("API: a client sent no whole request within %g s; closing its connection",
                      c->lim.request_deadline);
            s->waiting_since = -1;
            /* evhttp closes the connection as on EOF */
            bufferevent_trigger_event(s->bev, BEV_EVENT_EOF | BEV_EVENT_READING, BEV_TRIG_DEFER_CALLBACKS);
        }
        pp = &s->next;
    }
    if (c->n < c->lim.max)
        pause_listeners(c, false);
    if (c->n > 0 && lmd_timer_in(c->sweep, SWEEP) != 0)
        lmd_warn("API: cannot arm the connection sweep (out of memory)");
}

static bool client_of(evutil_socket_t fd, struct client *out)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(out, 0, sizeof *out);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return false;
    if (ss.ss_family == AF_UNIX) {
        struct ucred cred;
        socklen_t len = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred)
            return false;
        out->family = AF_UNIX;
        out->uid = cred.uid;
        return true;
    }
    sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
        return false;
    if (ss.ss_family == AF_INET) {
        out->family = AF_INET;
        memcpy(out->addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        out->family = IN6_IS_ADDR_V4MAPPED(a6) ? AF_INET : AF_INET6;
        memcpy(out->addr, out->family == AF_INET ? a6->s6_addr + 12 : a6->s6_addr, out->family == AF_INET ? 4 : 16);
    } else {
        return false;
    }
    return true;
}

/* The uid owning the other end of a TCP connection on this host (fd is our
 * end): NETLINK_SOCK_DIAG finds the peer's socket by its addresses and
 * ports.  false when the kernel does not say (the peer gone already). */
static bool tcp_peer_uid(evutil_socket_t fd, uid_t *uid)
{
    struct sockaddr_storage me, peer;
    socklen_t ml = sizeof me, pl = sizeof peer;
    if (getsockname(fd, (struct sockaddr *)&me, &ml) != 0 || getpeername(fd, (struct sockaddr *)&peer, &pl) != 0 ||
        me.ss_family != peer.ss_family)
        return false;
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } req;
    memset(&req, 0, sizeof req);
    req.nlh.nlmsg_len = sizeof req;
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST;
    req.r.sdiag_family = (uint8_t)me.ss_family;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = ~0u;
    req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    /* the peer's socket: its source is the peer's address, its
     * destination ours */
    if (me.ss_family == AF_INET) {
        const struct sockaddr_in *m = (const struct sockaddr_in *)&me, *p = (const struct sockaddr_in *)&peer;
        req.r.id.idiag_sport = p->sin_port;
        req.r.id.idiag_dport = m->sin_port;
        memcpy(req.r.id.idiag_src, &p->sin_addr, 4);
        memcpy(req.r.id.idiag_dst, &m->sin_addr, 4);
    } else if (me.ss_family == AF_INET6) {
        const struct sockaddr_in6 *m = (const struct sockaddr_in6 *)&me, *p = (const struct sockaddr_in6 *)&peer;
        req.r.id.idiag_sport = p->sin6_port;
        req.r.id.idiag_dport = m->sin6_port;
        memcpy(req.r.id.idiag_src, &p->sin6_addr, 16);
        memcpy(req.r.id.idiag_dst, &m->sin6_addr, 16);
    } else {
        return false;
    }
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return false;
    union {
        struct nlmsghdr h;
        char b[1024];
    } buf;
    bool ok = false;
    /* the kernel answers within send(): the reply is queued when it returns */
    if (send(nl, &req, sizeof req, 0) == (ssize_t)sizeof req) {
        ssize_t n = recv(nl, &buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0 && NLMSG_OK(&buf.h, (size_t)n) && buf.h.nlmsg_type == SOCK_DIAG_BY_FAMILY &&
            buf.h.nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
            const struct inet_diag_msg *m = NLMSG_DATA(&buf.h);
            *uid = m->idiag_uid;
            ok = true;
        }
    }
    close(nl);
    return ok;
}

/* Who counts for a share (the head of this file): a TCP client on this
 * host is its uid (or, when the kernel does not say, a loopback one is one
 * client "127.0.0.0/8"). */
static void client_share(evutil_socket_t fd, struct client *cl)
{
    uid_t uid;
    if (cl->family != AF_INET && cl->family != AF_INET6)
        return;
    if (tcp_peer_uid(fd, &uid)) {
        memset(cl->addr, 0, sizeof cl->addr);
        cl->family = AF_UNIX;
        cl->uid = uid;
        cl->tcp = true;
    } else if (cl->family == AF_INET && cl->addr[0] == 127) {
        memset(cl->addr, 0, sizeof cl->addr);
        cl->addr[0] = 127;
    }
}

static bool same_client(const struct client *x, const struct client *y)
{
    return x->family && x->family == y->family && x->uid == y->uid && !memcmp(x->addr, y->addr, sizeof x->addr);
}

static const char *client_text(const struct client *cl, char *buf, size_t len)
{
    if (cl->family == AF_UNIX)
        snprintf(buf, len, "uid %u", (unsigned)cl->uid);
    else if (!inet_ntop(cl->family, cl->addr, buf, (socklen_t)len))
        snprintf(buf, len, "a client");
    else if (cl->family == AF_INET && cl->addr[0] == 127 && strlen(buf) + 3 < len)
        strcat(buf, "/8");
    return buf;
}

/* Close a connection that nothing was read from, at once: evhttp frees it
 * as on EOF, and its socket closes then (our reference goes now). */
static void refuse(lmd_conns *c, struct slot **pp)
{
    struct slot *s = *pp;
    *pp = s->next;
    c->n--;
    c->refused++;
    bufferevent_trigger_event(s->bev, BEV_EVENT_EOF | BEV_EVENT_READING, BEV_TRIG_DEFER_CALLBACKS);
    bufferevent_decref(s->bev);
    free(s);
}

/* Who the new connections are from; those of a client already holding its
 * share are closed. */
static void identify(evutil_socket_t fd_unused, short what, void *arg)
{
    (void)fd_unused;
    (void)what;
    lmd_conns *c = arg;
    for (struct slot **pp = &c->slots; *pp;) {
        struct slot *s = *pp;
        evutil_socket_t fd = s->identified ? -1 : bufferevent_getfd(s->bev);
        if (fd < 0) {
            pp = &s->next;
            continue;
        }
        s->identified = true;
        if (!client_of(fd, &s->from)) {
            pp = &s->next;
            continue;
        }
        client_share(fd, &s->from);
        if (s->from.family == AF_UNIX && !s->from.tcp && lmd_conns_uid_admin(s->from.uid)) {
            pp = &s->next;
            continue;
        }
        bool remote = s->from.family != AF_UNIX;
        unsigned held = 0, remotes = 0;
        for (struct slot *o = c->slots; o; o = o->next) {
            held += o != s && o->identified && same_client(&o->from, &s->from);
            remotes += o != s && o->identified && o->from.family && o->from.family != AF_UNIX;
        }
        unsigned remote_max = c->lim.max - c->lim.max / 4;
        if (held < c->lim.per_client && (!remote || remotes < remote_max)) {
            pp = &s->next;
            continue;
        }
        if (lmd_now_mono() - c->warned_client > 60) {
            char who[INET6_ADDRSTRLEN + 16];
            c->warned_client = lmd_now_mono();
            if (held >= c->lim.per_client)
                lmd_warn("API: %s has %u connections open, the most one client may; its new ones are closed at once "
                         "(said once a minute)", client_text(&s->from, who, sizeof who), held);
            else
                lmd_warn("API: remote clients have %u connections open, the most they may together (the rest is "
                         "kept for this host's users); %s's new one is closed (said once a minute)", remotes,
                         client_text(&s->from, who, sizeof who));
        }
        refuse(c, pp);
    }
    if (c->n < c->lim.max)
        pause_listeners(c, false);
}

static struct bufferevent *new_conn(struct event_base *base, void *arg)
{
    lmd_conns *c = arg;
    /* on failure evhttp makes a plain bufferevent of its own: served, not counted */
    struct slot *s = calloc(1, sizeof *s);
    struct bufferevent *bev = s ? bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        free(s);
        return NULL;
    }
    bufferevent_incref(bev);
    s->bev = bev;
    s->waiting_since = lmd_now_mono();
    s->next = c->slots;
    c->slots = s;
    if (c->n++ == 0 && lmd_timer_in(c->sweep, SWEEP) != 0)
        lmd_warn("API: cannot arm the connection sweep (out of memory)");
    /* evhttp sets the socket when this returns: identify runs after that,
     * before the loop reads anything from it */
    event_active(c->identify, EV_TIMEOUT, 0);
    if (c->n >= c->lim.max)
        pause_listeners(c, true);
    return bev;
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
    c->warned_client = -1e9;
    if (!(c->sweep = evtimer_new(base, sweep, c)) || !(c->identify = event_new(base, -1, 0, identify, c))) {
        if (c->sweep)
            event_free(c->sweep);
        free(c);
        *out = NULL;
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    evhttp_set_bevcb(http, new_conn, c);
    return 0;
}

void lmd_conns_free(lmd_conns *c)
{
    if (!c)
        return;
    /* evhttp_free, before this, released every connection: our references go */
    while (c->slots) {
        struct slot *s = c->slots;
        c->slots = s->next;
        bufferevent_decref(s->bev);
        free(s);
    }
    event_free(c->sweep);
    event_free(c->identify);
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
    if (s && !s->stream)
        s->waiting_since = lmd_now_mono();
}

void lmd_conns_request(lmd_conns *c, struct evhttp_request *req)
{
    struct slot *s = slot_of(c, req);
    if (!s)
        return;
    s->waiting_since = -1;
    if (!s->identified) /* (identify saw no socket yet: look again) */
        event_active(c->identify, EV_TIMEOUT, 0);
    evhttp_request_set_on_complete_cb(req, replied, c);
}

void lmd_conns_stream(lmd_conns *c, struct evhttp_request *req)
{
    struct slot *s = slot_of(c, req);
    if (s) {
        s->stream = true;
        s->waiting_since = -1;
    }
}

bool lmd_conns_peer_uid(struct evhttp_request *req, uid_t *uid)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    /* Unix sockets only: Linux answers SO_PEERCRED on TCP too, with
     * uid -1, and a TCP client must never count as a local user */
    struct client cl;
    if (fd < 0 || !client_of(fd, &cl) || cl.family != AF_UNIX)
        return false;
    *uid = cl.uid;
    return true;
}

bool lmd_conns_client(lmd_conns *c, struct evhttp_request *req, char *buf, size_t len)
{
    const struct slot *s = slot_of(c, req);
    if (!s || !s->identified || !s->from.family)
        return false;
    client_text(&s->from, buf, len);
    return true;
}

bool lmd_conns_uid_admin(uid_t uid)
{
    return uid == 0 || uid == geteuid();
}

unsigned lmd_conns_count(const lmd_conns *c) { return c->n; }

double lmd_conns_refused(const lmd_conns *c) { return c->refused; }

size_t lmd_conns_pending_output(struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    if (!bev)
        return 0;
    return evbuffer_get_length(bufferevent_get_output(bev));
}

void lmd_conns_drop(struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    if (bev)
        bufferevent_trigger_event(bev, BEV_EVENT_ERROR | BEV_EVENT_WRITING, BEV_TRIG_DEFER_CALLBACKS);
}
