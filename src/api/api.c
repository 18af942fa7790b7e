/* The local HTTP/JSON API on libevent's evhttp (see api.h).
 *
 * Nothing here blocks the loop: replies are built from memory, event
 * streams are chunked replies written as events happen.  A stuck or hostile
 * client is bounded by header and body limits, an idle timeout, and a cap on
 * concurrent event streams.  (libevent 2.1 has no connection cap; 2.2's
 * evhttp_set_max_connections would be the next step.) */
#include "api/api.h"
#include "api/params.h"
#include "api/conns.h"
#include "base/json.h"
#include "base/node.h"
#include "base/log.h"
#include "base/util.h"
#include "registry/peers.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/internal.h"

/* ---- replies ---------------------------------------------------------- */

void lmd_api_reply_json(struct evhttp_request *req, int code, const char *reason, json_t *doc)
{
    struct evbuffer *b = evbuffer_new();
    char *s = doc ? lmd_json_dump(doc, false) : NULL;
    json_decref(doc);
    if (!b || !s) {
        free(s);
        if (b)
            evbuffer_free(b);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add_printf(b, "%s\n", s);
    free(s);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

void lmd_api_reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
    lmd_api_reply_json(req, code, reason, json_pack("{s:s%}", "error", msg, strlen(msg)));
}

static void add_index_headers(lmd_api *api, struct evhttp_request *req)
{
    char idx[32];
    snprintf(idx, sizeof idx, "%" PRIu64, api->index);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "X-Lmdisc-Index", idx);
    evhttp_add_header(h, "X-Lmdisc-Epoch", api->epoch);
}

/* ---- events ----------------------------------------------------------- */

static void format_line(struct evbuffer *out, bool sse, const char *epoch, uint64_t index,
                        const char *type, const char *json)
{
    if (sse)
        evbuffer_add_printf(out, "id: %s:%" PRIu64 "\nevent: %s\ndata: %s\n\n", epoch, index, type, json);
    else
        evbuffer_add_printf(out, "%s\n", json);
}

static void send_to(struct watcher *w, uint64_t index, const char *type, const char *json)
{
    if (w->dropped)
        return;
    /* a client that does not read must not grow the agent: past the budget
     * it is dropped, and resumes with since= where it left off */
    size_t behind = lmd_conns_pending_output(w->req);
    if (behind > STREAM_BUDGET) {
        lmd_debug("API: an event stream client fell %zu bytes behind; closing it (it resumes with since=)", behind);
        w->dropped = true;
        w->api->streams_dropped++;
        lmd_conns_drop(w->req);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return;
    format_line(b, w->sse, w->api->epoch, index, type, json);
    evhttp_send_reply_chunk(w->req, b);
    evbuffer_free(b);
}

/* No event for IDLE_TRIM seconds: keep the newest RING_IDLE_BYTES of the
 * ring, and give what the burst freed back to the system. */
static void idle_trim(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_api *api = arg;
    lmd_ring_trim(api->ring, RING_IDLE_BYTES);
    lmd_mem_trim();
}

void lmd_api_event(lmd_api *api, int kind, const lmd_node_info *peer, unsigned changes,
                   const char *reason)
{
    json_t *ch = json_array();
    for (unsigned bit = 1; bit <= LMD_CH_LAST; bit <<= 1)
        if (changes & bit)
            json_array_append_new(ch, json_string(lmd_change_name(bit)));
    uint64_t index = api->index + 1;
    json_t *doc = json_pack("{s:I,s:s,s:s,s:f,s:o,s:o}", "index", (json_int_t)index, "epoch", api->epoch,
                            "type", lmd_event_kind_name(kind), "time", lmd_now_wall(), "peer", lmd_json_node(peer),
                            "changes", ch);
    if (doc && reason)
        json_object_set_new(doc, "reason", lmd_json_str(reason));
    char *s = doc ? lmd_json_dump(doc, false) : NULL;
    json_decref(doc);
    if (!s)
        return;
    api->index = index;
    lmd_ring_add(api->ring, index, kind, s, strlen(s));
    if (api->trim_ev) {
        struct timeval tv = {IDLE_TRIM, 0};
        event_add(api->trim_ev, &tv);
    }
    for (struct watcher *w = api->watchers; w; w = w->next)
        send_to(w, index, lmd_event_kind_name(kind), s);
    free(s);
}

static void free_request_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evhttp_request_free(arg);
}

/* libevent 2.1 detaches a request whose client went away in the middle of
 * a chunked reply and leaves it to us (it would leak otherwise); it is freed
 * after evhttp is done with this connection's teardown */
void lmd_api_release_request(lmd_api *api, struct evhttp_request *req)
{
    if (evhttp_request_get_connection(req) == NULL)
        event_base_once(api->base, -1, EV_TIMEOUT, free_request_later, req, &(struct timeval){0, 0});
}

static void watcher_closed(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    struct watcher *w = arg;
    lmd_api *api = w->api;
    lmd_api_release_request(api, w->req);
    for (struct watcher **pp = &api->watchers; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            api->n_watchers--;
            break;
        }
    free(w);
}

/* The kept peers; routable_only: not those draining or down. */
static json_t *peers_json(lmd_api *api, bool routable_only)
{
    lmd_node_list l = {0};
    if (api->src.peers && api->src.peers(api->src.ud, &l) != 0)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (!routable_only || lmd_node_routable(&l.nodes[i]))
            l.nodes[k++] = l.nodes[i];
        else
            lmd_node_info_clear(&l.nodes[i]);
    }
    l.n = k;
    json_t *a = lmd_json_node_list(&l);
    lmd_node_list_free(&l);
    return a;
}

static void send_snapshot(lmd_api *api, struct watcher *w, bool reset)
{
    json_t *doc = json_pack("{s:s,s:I,s:s,s:b,s:o}", "type", "snapshot", "index", (json_int_t)api->index,
                            "epoch", api->epoch, "reset", reset, "peers", peers_json(api, false));
    char *s = doc ? lmd_json_dump(doc, false) : NULL;
    json_decref(doc);
    if (s)
        send_to(w, api->index, "snapshot", s);
    free(s);
}

/* since: resume after this index of this epoch; otherwise a snapshot first. */
static void handle_events(lmd_api *api, struct evhttp_request *req, const char *query)
{
    /* a share per client, counted as its connections are: a uid over the
     * socket and over TCP from this host alike */
    char client[64] = "";
    if (!lmd_conns_client(api->conns, req, client, sizeof client))
        client[0] = '\0';
    unsigned of_client = 0;
    for (struct watcher *x = api->watchers; client[0] && x; x = x->next)
        of_client += !strcmp(x->client, client);
    if (api->n_watchers >= MAX_STREAMS || of_client >= MAX_STREAMS_PER_UID) {
        char msg[160];
        if (of_client >= MAX_STREAMS_PER_UID)
            snprintf(msg, sizeof msg, "too many event streams are open for this %s (%d); close some",
                     strncmp(client, "uid ", 4) ? "address" : "user", MAX_STREAMS_PER_UID);
        lmd_api_reply_error(req, 429, "Too Many Requests",
                            of_client >= MAX_STREAMS_PER_UID ? msg : "too many event streams are open; try again later");
        return;
    }
    struct lmd_resume rs;
    const char *why;
    const char *accept = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
    const char *last_id = evhttp_find_header(evhttp_request_get_input_headers(req), "Last-Event-ID");
    if (lmd_api_parse_resume(query, last_id, api->epoch, &rs, &why) != 0) {
        lmd_api_reply_error(req, 400, "Bad Request", why);
        return;
    }
    bool sse = accept && strstr(accept, "text/event-stream");
    struct watcher *w = calloc(1, sizeof *w);
    if (!w) {
        lmd_api_reply_error(req, 503, "Service Unavailable", "out of memory");
        return;
    }
    w->api = api;
    w->req = req;
    w->sse = sse;
    snprintf(w->client, sizeof w->client, "%s", client);
    w->conn = evhttp_request_get_connection(req);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", sse ? "text/event-stream" : "application/x-ndjson");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    add_index_headers(api, req);
    evhttp_send_reply_start(req, 200, "OK");
    /* a stream is quiet while nothing happens: no idle timeout for it */
    evhttp_connection_set_timeout(w->conn, 365 * 86400);
    evhttp_connection_set_closecb(w->conn, watcher_closed, w);
    lmd_conns_stream(api->conns, req);
    w->next = api->watchers;
    api->watchers = w;
    api->n_watchers++;
    uint64_t oldest = lmd_ring_oldest(api->ring, api->index + 1);
    bool resumable = rs.have_since && rs.same_epoch && rs.since <= api->index && rs.since + 1 >= oldest;
    if (!resumable) {
        send_snapshot(api, w, rs.have_since);
        return;
    }
    /* A client dropped for falling behind missed about that much: a replay
     * that would not fit the budget is a fresh snapshot instead. */
    size_t replay = 0, pos = 0;
    struct lmd_ring_event ev;
    while (lmd_ring_next(api->ring, &pos, &ev))
        if (ev.index > rs.since)
            replay += ev.len + 64;
    if (replay > STREAM_BUDGET / 2) {
        send_snapshot(api, w, true);
        return;
    }
    for (pos = 0; lmd_ring_next(api->ring, &pos, &ev);)
        if (ev.index > rs.since)
            send_to(w, ev.index, lmd_event_kind_name(ev.kind), ev.json);
}

/* ---- routing ---------------------------------------------------------- */


static void handle(struct evhttp_request *req, void *arg)
{
    lmd_api *api = arg;
    api->requests++;
    lmd_conns_request(api->conns, req);
    const char *uri_s = evhttp_request_get_uri(req);
    if (uri_s && strlen(uri_s) > MAX_PATH) {
        lmd_api_reply_error(req, 414, "URI Too Long", "the request path is too long (at most 2048 bytes)");
        return;
    }
    /* evhttp takes headers up to MAX_HEADERS so that we, not it, refuse
     * big ones, with a JSON body like every other error */
    size_t hbytes = 0;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next)
        hbytes += strlen(kv->key) + strlen(kv->value) + 4;
    if (hbytes > HEADERS_ALLOWED) {
        lmd_api_reply_error(req, 431, "Request Header Fields Too Large", "the request's headers are over 8 KiB");
        return;
    }
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const struct evhttp_uri *ruri = evhttp_request_get_evhttp_uri(req);
    const char *raw_path = ruri ? evhttp_uri_get_path(ruri) : NULL;
    if (raw_path && (!strncmp(raw_path, "/v1/services/", 13) || !strcmp(raw_path, "/v1/self/drain"))) {
        lmd_api_handle_registration(api, req, raw_path);
        return;
    }
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        lmd_api_reply_error(req, 405, "Method Not Allowed",
                            "only GET is supported here (registrations: PUT/PATCH/DELETE /v1/services/NAME, "
                            "POST and DELETE /v1/self/drain)");
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
    size_t plen = 0;
    char *path = raw ? evhttp_uridecode(raw, 0, &plen) : NULL;
    if (!path || strlen(path) != plen) { /* NUL bytes in the path */
        free(path);
        lmd_api_reply_error(req, 400, "Bad Request", "malformed path");
        return;
    }
    if (!strcmp(path, "/") || !strcmp(path, "/index.html")) {
        lmd_api_handle_fleet(req);
    } else if (!strcmp(path, "/v1/peers") || !strcmp(path, "/v1/peers/")) {
        const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
        bool routable = lmd_api_query_flag(q, "routable");
        json_t *a = peers_json(api, routable);
        add_index_headers(api, req);
        if (a)
            lmd_api_reply_json(req, 200, "OK", a);
        else
            lmd_api_reply_error(req, 500, "Internal Server Error", "out of memory");
    } else if (!strncmp(path, "/v1/peers/", 10)) {
        lmd_node_list l = {0};
        const char *name = path + 10;
        json_t *found = NULL;
        /* instance names compare without ASCII case, as DNS and mDNS do;
         * the exact spelling first, should two peers differ only in case */
        if (api->src.peers && api->src.peers(api->src.ud, &l) == 0) {
            for (size_t i = 0; i < l.n && !found; i++)
                if (!strcmp(l.nodes[i].name, name))
                    found = lmd_json_node(&l.nodes[i]);
            for (size_t i = 0; i < l.n && !found; i++)
                if (!strcasecmp(l.nodes[i].name, name))
                    found = lmd_json_node(&l.nodes[i]);
        }
        lmd_node_list_free(&l);
        if (found) {
            lmd_api_reply_json(req, 200, "OK", found);
        } else {
            char esc[200], msg[300];
            snprintf(msg, sizeof msg, "no live peer named \"%s\"", lmd_escape_str(name, esc, sizeof esc));
            lmd_api_reply_error(req, 404, "Not Found", msg);
        }
    } else if (!strcmp(path, "/v1/self")) {
        json_t *s = api->src.self ? api->src.self(api->src.ud) : NULL;
        lmd_api_reply_json(req, 200, "OK", s ? s : json_pack("{s:b}", "announcing", 0));
    } else if (!strcmp(path, "/v1/services")) {
        lmd_node_list l = {0};
        bool settled = false;
        if (!api->src.services || api->src.services(api->src.ud, &l, &settled) != 0) {
            lmd_api_reply_error(req, 500, "Internal Server Error", "out of memory");
        } else {
            lmd_api_reply_json(req, 200, "OK", json_pack("{s:s,s:b,s:o}", "type", api->src.type ? api->src.type : LMD_DEFAULT_TYPE,
                                                 "complete", settled, "nodes", lmd_json_node_list(&l)));
            lmd_node_list_free(&l);
        }
    } else if (!strcmp(path, "/v1/events")) {
        handle_events(api, req, uri ? evhttp_uri_get_query(uri) : NULL);
    } else if (!strcmp(path, "/v1/health")) {
        struct lmd_metrics m = {0};
        if (api->src.metrics)
            api->src.metrics(api->src.ud, &m);
        /* degraded: no avahi (503), or a registry that misses services
         * avahi refuses to follow (200: what it has is still true) */
        bool whole = m.avahi_running && m.instances_unresolved == 0;
        json_t *doc = json_pack("{s:s,s:s,s:I,s:I}", "status", whole ? "ok" : "degraded", "avahi",
                                m.avahi_running ? "running" : "unavailable", "peers", (json_int_t)m.peers_alive,
                                "unresolved", (json_int_t)m.instances_unresolved);
        /* the policy worker: its state says whether hooks run (suspended:
         * peers get the fallback verdicts); the peers are served either way */
        if (doc && m.policy_state_name)
            json_object_set_new(doc, "policy", json_pack("{s:s,s:I,s:I,s:o}", "state", m.policy_state_name, "restarts",
                                                         (json_int_t)m.policy_restarts, "events_dropped",
                                                         (json_int_t)m.policy_dropped, "last_error",
                                                         lmd_json_str(m.policy_last_error && *m.policy_last_error
                                                                          ? m.policy_last_error : NULL)));
        lmd_api_reply_json(req, m.avahi_running ? 200 : 503, m.avahi_running ? "OK" : "Service Unavailable", doc);
    } else if (!strcmp(path, "/metrics")) {
        lmd_api_handle_metrics(api, req);
    } else {
        lmd_api_reply_error(req, 404, "Not Found",
                            "unknown path; try / (the fleet page), /v1/peers, /v1/peers/NAME, /v1/self,"
                            " /v1/events, /v1/health, /metrics");
    }
    free(path);
}

/* ---- listening -------------------------------------------------------- */

#define fail(err, ...) lmd_err_set((err), LMD_EIO, __VA_ARGS__)

static int mkdirs(const char *dir)
{
    char tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return LMD_EIO;
            *p = '/';
        }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? LMD_EIO : 0;
}

static int listen_unix(const char *path, unsigned mode, lmd_err *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return fail(err, "api.socket path is too long (%zu bytes; at most %zu)", strlen(path),
                    sizeof sa.sun_path - 1);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    char dir[sizeof sa.sun_path];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdirs(dir) != 0)
            return fail(err, "cannot create %s for the API socket: %s", dir, strerror(errno));
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return fail(err, "%s exists and is not a socket; remove it or set api { socket = ... }", path);
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int in_use = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (probe >= 0)
            close(probe);
        if (in_use)
            return fail(err, "another agent is already serving %s; stop it or set api { socket = ... }", path);
        unlink(path); /* left behind by an agent that died */
    }
    /* Bound, chmod'ed and listening under a private name, then renamed into
     * place: a client that sees the socket appear (the Python package
     * watches the directory) can connect at once, never into a socket that
     * is not listening yet or still has the wrong mode. */
    struct sockaddr_un tmp = {.sun_family = AF_UNIX};
    if ((size_t)snprintf(tmp.sun_path, sizeof tmp.sun_path, "%s.%d.new", path, (int)getpid()) >=
        sizeof tmp.sun_path)
        return fail(err, "api.socket path is too long (%zu bytes; at most %zu with room for a temporary name)",
                    strlen(path), sizeof tmp.sun_path - 16);
    unlink(tmp.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, "cannot create a Unix socket: %s", strerror(errno));
    if (bind(fd, (struct sockaddr *)&tmp, sizeof tmp) != 0 || chmod(tmp.sun_path, mode) != 0 ||
        listen(fd, 64) != 0 || rename(tmp.sun_path, path) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp.sun_path);
        return fail(err, "cannot listen on %s: %s", path, strerror(e));
    }
    return fd;
}

static int listen_tcp(lmd_api *api, const char *spec, bool allow_remote, lmd_err *err)
{
    char host[128];
    uint16_t port;
    int rc = lmd_api_parse_listen(spec, allow_remote, host, sizeof host, &port, err);
    if (rc)
        return rc;
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(api->http, host, (ev_uint16_t)port);
    if (!bs)
        return fail(err, "cannot listen on %s: %s", spec, strerror(errno));
    lmd_conns_listener(api->conns, bs);
    return 0;
}

int lmd_api_new(struct event_base *base, const struct lmd_api_config *cfg, const struct lmd_api_source *src,
                lmd_api **out, lmd_err *err)
{
    lmd_api *api = *out = calloc(1, sizeof *api);
    if (!api)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    api->base = base;
    api->src = *src;
    /* a new epoch per agent start: indexes of an earlier run are not ours */
    snprintf(api->epoch, sizeof api->epoch, "%lx%x", (unsigned long)lmd_now_wall(), (unsigned)getpid());
    int rc = LMD_ENOMEM;
    if (!(api->ring = lmd_ring_new(RING, RING_BYTES)) || !(api->trim_ev = evtimer_new(base, idle_trim, api)) ||
        !(api->http = evhttp_new(base))) {
        lmd_err_set(err, rc, "out of memory");
        goto failed;
    }
    evhttp_set_max_headers_size(api->http, MAX_HEADERS);
    evhttp_set_max_body_size(api->http, MAX_BODY);
    evhttp_set_timeout(api->http, IDLE_TIMEOUT);
    /* at most MAX_CONNS at once, and never so many that accept would run
     * out of descriptors (the agent needs some of its own) */
    struct rlimit nofile;
    unsigned max = MAX_CONNS;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < MAX_CONNS + 64)
        max = nofile.rlim_cur > 80 ? (unsigned)nofile.rlim_cur - 64 : 16;
    struct lmd_conns_limits lim = {.max = max, .per_client = MAX_CONNS_PER_CLIENT, .request_deadline = REQUEST_DEADLINE};
    if ((rc = lmd_conns_new(base, api->http, &lim, &api->conns, err)) != 0)
        goto failed;
    evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                              EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(api->http, handle, api);
    if (cfg->socket) {
        int fd = listen_unix(cfg->socket, cfg->socket_mode, err);
        if (fd < 0) {
            rc = fd;
            goto failed;
        }
        struct evhttp_bound_socket *bs = evhttp_accept_socket_with_handle(api->http, fd);
        if (!bs) {
            close(fd);
            rc = fail(err, "cannot serve %s", cfg->socket);
            goto failed;
        }
        lmd_conns_listener(api->conns, bs);
        api->socket_path = lmd_strdup(cfg->socket);
    }
    if (cfg->listen && (rc = listen_tcp(api, cfg->listen, cfg->allow_remote, err)) != 0)
        goto failed;
    return 0;
failed:
    lmd_api_free(api);
    *out = NULL;
    return rc;
}


void lmd_api_free(lmd_api *api)
{
    if (!api)
        return;
    for (struct watcher *w = api->watchers, *n; w; w = n) {
        n = w->next;
        evhttp_connection_set_closecb(w->conn, NULL, NULL);
        free(w);
    }
    lmd_api_streams_free(api);
    if (api->http)
        evhttp_free(api->http); /* closes the connections: before their accounting goes */
    lmd_conns_free(api->conns);
    if (api->socket_path) {
        unlink(api->socket_path);
        free(api->socket_path);
    }
    lmd_ring_free(api->ring);
    if (api->trim_ev)
        event_free(api->trim_ev);
    free(api);
}
