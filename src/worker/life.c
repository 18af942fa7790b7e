/* The policy worker's life from the core's side (see worker.h): loads,
 * the event queue (one in flight), takeovers, deaths, restarts and
 * suspension, and what health and metrics read. */
#include "worker/internal.h"
#include "base/file.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SOURCE_MAX (4u << 20) /* the mantle's own bound on a configuration */
#define BACKOFF_FIRST 10.0
#define BACKOFF_MAX 300.0

const char *lmd_worker_state_name(enum lmd_worker_state st)
{
    switch (st) {
    case LMD_WORKER_RUNNING: return "running";
    case LMD_WORKER_RESTARTING: return "restarting";
    case LMD_WORKER_SUSPENDED: return "suspended";
    case LMD_WORKER_STARTING: return "starting";
    }
    return "?";
}

static void set_state(lmd_worker *w, enum lmd_worker_state st)
{
    if (w->state == st)
        return;
    enum lmd_worker_state was = w->state;
    w->state = st;
    if (was != LMD_WORKER_STARTING && w->host.state)
        w->host.state(w->host.ud, st);
}

void lmd_worker_item_free(struct item *it)
{
    lmd_node_info_clear(&it->peer);
    if (it->has_old)
        lmd_node_info_clear(&it->old);
    free(it->reason);
    free(it);
}

/* ---- sending ------------------------------------------------------------ */

static int send_load(lmd_worker *w, const char *source, size_t len)
{
    lmd_err err = {0};
    int rc = lmd_worker_spawn(w, &err);
    if (rc) {
        lmd_error("%s", lmd_err_text(&err));
        return rc;
    }
    lmd_w_begin(&w->out, LMD_W_LOAD);
    lmd_w_str(&w->out, w->path);
    lmd_w_bytes(&w->out, source, len);
    lmd_w_f64(&w->out, LMD_WORKER_LOAD_CPU);
    lmd_w_u8(&w->out, (unsigned)lmd_log_get_level() + 1);
    lmd_w_u8(&w->out, lmd_log_level_explicit());
    rc = lmd_worker_send(w);
    if (rc == 0)
        lmd_worker_op(w, OP_LOAD, LMD_WORKER_LOAD_CPU, LMD_WORKER_LOAD_WALL);
    return rc;
}

static int send_adopt(lmd_worker *w, const char *why, const lmd_node_list *peers,
                      const struct lmd_old_verdict *old)
{
    lmd_w_begin(&w->out, LMD_W_ADOPT);
    lmd_w_str(&w->out, why);
    lmd_w_u32(&w->out, (uint32_t)peers->n);
    for (size_t i = 0; i < peers->n; i++) {
        lmd_w_node(&w->out, &peers->nodes[i]);
        lmd_w_u8(&w->out, old[i].keep);
        lmd_w_bytes(&w->out, old[i].info, old[i].info_len);
    }
    int rc = lmd_worker_send(w);
    if (rc == 0) /* each peer runs filter and info: a deadline each, and the hooks of those that changed */
        lmd_worker_op(w, OP_ADOPT, w->deadline * 2 + 0.5 + 0.01 * (double)peers->n,
                      lmd_worker_backstop(w) + 0.01 * (double)peers->n);
    return rc;
}

/* ---- loads -------------------------------------------------------------- */

int lmd_worker_load(lmd_worker *w, lmd_worker_loaded_fn done, void *ud)
{
    free(w->trying);
    w->trying = NULL;
    w->trying_len = 0;
    /* read here, kept for restarts: a restart runs what loaded, not what
     * the file holds by then; a file that cannot be read is left to the
     * worker, which says why as `lmdisc check` does */
    char *buf = malloc(SOURCE_MAX + 1);
    size_t len = 0;
    lmd_err err = {0};
    if (buf && lmd_read_small_file(w->path, buf, SOURCE_MAX + 1, &len, NULL, &err) == 0) {
        /* kept at its size, not the bound's (a mapping of 4 MiB otherwise) */
        char *fit = realloc(buf, len + 1);
        buf = fit ? fit : buf;
        w->trying = buf;
        w->trying_len = len;
    } else {
        free(buf);
    }
    w->restart_load = false;
    w->load_done = done;
    w->load_ud = ud;
    return send_load(w, w->trying, w->trying_len);
}

struct wait_load {
    bool done;
    int rc;
    struct lmd_config *cfg;
    lmd_err *err;
};

static void wait_loaded(void *ud, int rc, struct lmd_config *cfg, const char *msg)
{
    struct wait_load *wl = ud;
    wl->done = true;
    wl->rc = rc;
    if (rc == 0)
        *wl->cfg = *cfg;
    else
        lmd_err_set(wl->err, rc, "%s", msg);
}

int lmd_worker_load_wait(lmd_worker *w, struct lmd_config *cfg, lmd_err *err)
{
    struct wait_load wl = {.cfg = cfg, .err = err};
    int rc = lmd_worker_load(w, wait_loaded, &wl);
    if (rc)
        return lmd_err_set(err, rc, "cannot start the policy worker");
    while (!wl.done)
        if (event_base_loop(w->base, EVLOOP_ONCE) != 0) {
            lmd_worker_kill(w);
            return lmd_err_set(err, LMD_EIO, "the loop failed while loading the configuration");
        }
    return wl.rc;
}

static void read_loaded(lmd_worker *w, struct lmd_rbuf *r, struct lmd_config *cfg)
{
    lmd_r_config(r, cfg);
    char *warnings = lmd_r_str(r), *hooks = lmd_r_str(r);
    uint32_t n = lmd_r_u32(r);
    char **sec = n <= 64 ? calloc(n + 1, sizeof *sec) : NULL, **at = sec ? calloc(n + 1, sizeof *at) : NULL;
    for (uint32_t i = 0; at && i < n; i++) {
        sec[i] = lmd_r_str(r);
        at[i] = lmd_r_str(r);
    }
    for (size_t i = 0; i < w->nwhere; i++) {
        free(w->where_sec[i]);
        free(w->where_at[i]);
    }
    free(w->where_sec);
    free(w->where_at);
    free(w->warnings);
    free(w->hooks);
    w->where_sec = sec;
    w->where_at = at;
    w->nwhere = at ? n : 0;
    if (!at)
        free(sec);
    w->warnings = warnings;
    w->hooks = hooks;
}

static void read_stats(lmd_worker *w, struct lmd_rbuf *r)
{
    if (!lmd_r_u8(r)) { /* sent at most every 50 ms: what /metrics shows */
        w->cpu_mark = lmd_r_f64(r);
        return;
    }
    w->stats.hook_runs = w->stats_base.hook_runs + lmd_r_f64(r);
    w->stats.hook_errors = w->stats_base.hook_errors + lmd_r_f64(r);
    w->stats.hook_time = w->stats_base.hook_time + lmd_r_f64(r);
    w->stats.memory = (size_t)lmd_r_f64(r);
    w->cpu_mark = lmd_r_f64(r);
}

static void on_loaded(lmd_worker *w, struct lmd_rbuf *r)
{
    struct lmd_config cfg;
    read_loaded(w, r, &cfg);
    read_stats(w, r);
    lmd_worker_op_done(w);
    if (r->bad) {
        lmd_worker_kill(w);
        lmd_worker_died(w, "the policy worker sent a bad LOADED frame");
        return;
    }
    w->deadline = cfg.policy.deadline;
    w->memory_mb = cfg.policy.memory_mb;
    if (w->restart_load) {
        /* the same text as before: settings as before; take the peers over */
        lmd_config_clear(&cfg);
        lmd_node_list peers = {0};
        struct lmd_old_verdict *old = NULL;
        if (w->host.takeover(w->host.ud, &peers, &old) != 0 || send_adopt(w, "restart", &peers, old) != 0) {
            lmd_node_list_free(&peers);
            free(old);
            lmd_worker_kill(w);
            lmd_worker_died(w, "cannot hand the peers to the restarted policy worker (out of memory)");
            return;
        }
        lmd_node_list_free(&peers);
        free(old);
        return;
    }
    free(w->source);
    w->source = w->trying;
    w->source_len = w->trying_len;
    w->trying = NULL;
    set_state(w, LMD_WORKER_RUNNING);
    lmd_worker_loaded_fn done = w->load_done;
    w->load_done = NULL;
    if (done)
        done(w->load_ud, 0, &cfg, NULL);
    else
        lmd_config_clear(&cfg);
    lmd_worker_pump(w);
}

int lmd_worker_adopt(lmd_worker *w, const char *why, const lmd_node_list *peers,
                     const struct lmd_old_verdict *old, void (*done)(void *ud, int rc), void *ud)
{
    w->adopt_done = done;
    w->adopt_ud = ud;
    return send_adopt(w, why, peers, old);
}

static void read_verdict(struct lmd_rbuf *r, struct lmd_verdict *v)
{
    v->emitted = (int)lmd_r_u8(r) - 1;
    v->keep = lmd_r_u8(r);
    size_t len;
    const char *info = lmd_r_bytes(r, &len);
    if (info && len > LMD_POLICY_INFO_MAX) {
        /* the mantle never sends one: a worker that does is not believed
         * (the peer gets the fallback verdict) rather than held per peer */
        r->bad = true;
        info = NULL;
        len = 0;
    }
    v->info = info ? lmd_strndup(info, len) : NULL;
    v->info_len = len;
    v->changes = lmd_r_u32(r);
}

static void on_adopted(lmd_worker *w, struct lmd_rbuf *r)
{
    uint32_t n = lmd_r_u32(r);
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        char *name = lmd_r_str(r);
        struct lmd_verdict v;
        read_verdict(r, &v);
        if (name && !r->bad && w->host.adopted)
            w->host.adopted(w->host.ud, name, &v);
        lmd_verdict_clear(&v);
        free(name);
    }
    read_stats(w, r);
    lmd_worker_op_done(w);
    void (*done)(void *, int) = w->adopt_done;
    w->adopt_done = NULL;
    if (done) {
        done(w->adopt_ud, r->bad ? LMD_EIO : 0);
        return;
    }
    if (w->state == LMD_WORKER_RESTARTING)
        set_state(w, LMD_WORKER_RUNNING);
    lmd_worker_pump(w);
}

static void on_verdict(lmd_worker *w, struct lmd_rbuf *r)
{
    struct lmd_verdict v;
    read_verdict(r, &v);
    read_stats(w, r);
    lmd_worker_op_done(w);
    struct item *it = w->inflight;
    w->inflight = NULL;
    if (it) {
        w->host.verdict(w->host.ud, it->kind, &it->peer, it->reason, it->tag, r->bad ? NULL : &v);
        lmd_worker_item_free(it);
    }
    lmd_verdict_clear(&v);
    lmd_worker_pump(w);
}

/* a query from a hook: answered now, from the agent's state now */
static void on_query(lmd_worker *w, struct lmd_rbuf *r)
{
    unsigned what = lmd_r_u8(r);
    const struct lmd_policy_host *q = &w->host.q;
    lmd_w_begin(&w->out, LMD_W_ANSWER);
    if (what == LMD_Q_PEERS_ALL || what == LMD_Q_SERVICES) {
        lmd_node_list l = {0};
        int (*fn)(void *, lmd_node_list *) = what == LMD_Q_PEERS_ALL ? q->peers_all : q->services;
        int rc = fn ? fn(q->ud, &l) : 0;
        lmd_w_u32(&w->out, (uint32_t)rc);
        if (rc == 0)
            lmd_w_nodes(&w->out, &l);
        lmd_node_list_free(&l);
    } else if (what == LMD_Q_SELF) {
        lmd_node_info n = {0};
        const char *state = "";
        int rc = q->self ? q->self(q->ud, &n, &state) : LMD_ENOTFOUND;
        lmd_w_u32(&w->out, (uint32_t)rc);
        if (rc == 0) {
            lmd_w_node(&w->out, &n);
            lmd_w_str(&w->out, state);
            lmd_node_info_clear(&n);
        }
    } else if (what == LMD_Q_SET_TXT) {
        lmd_txt t;
        char e[256] = "";
        int rc = lmd_r_txt(r, &t);
        if (rc == 0)
            rc = q->set_txt ? q->set_txt(q->ud, &t, e, sizeof e) : LMD_EUNAVAIL;
        lmd_txt_free(&t);
        lmd_w_u32(&w->out, (uint32_t)rc);
        lmd_w_str(&w->out, e);
    } else {
        lmd_w_u32(&w->out, (uint32_t)LMD_EINVAL);
    }
    if (lmd_worker_send(w) != 0) {
        lmd_worker_kill(w);
        lmd_worker_died(w, "cannot answer the policy worker (out of memory)");
    }
}

void lmd_worker_on_frame(lmd_worker *w, int type, struct lmd_rbuf *r)
{
    switch (type) {
    case LMD_W_LOADED: on_loaded(w, r); break;
    case LMD_W_FAILED: {
        char *msg = lmd_r_str(r);
        snprintf(w->stopped, sizeof w->stopped, "%s", msg ? msg : "the configuration did not load");
        free(msg);
        break; /* the worker exits: on_event takes it from there */
    }
    case LMD_W_VERDICT: on_verdict(w, r); break;
    case LMD_W_ADOPTED: on_adopted(w, r); break;
    case LMD_W_QUERY: on_query(w, r); break;
    case LMD_W_BUSY: {
        bool on = lmd_r_u8(r);
        double cpu = lmd_r_f64(r);
        if (on && w->op == OP_NONE) {
            w->cpu_mark = cpu;
            lmd_worker_op(w, OP_BUSY, w->deadline + 0.5, lmd_worker_backstop(w));
        } else if (on) {
            w->op_limit += w->deadline + 0.5; /* it runs before the event the core sent meanwhile */
        } else if (w->op == OP_BUSY) {
            lmd_worker_op_done(w);
            lmd_worker_pump(w);
        }
        break;
    }
    case LMD_W_STOPPED: {
        size_t len;
        const char *s = lmd_r_bytes(r, &len);
        snprintf(w->stopped, sizeof w->stopped, "%.*s", (int)len, s ? s : "");
        break;
    }
    default:
        lmd_worker_kill(w);
        lmd_worker_died(w, "the policy worker sent a frame of an unknown type");
    }
}

/* ---- deaths -------------------------------------------------------------- */

static void restart(lmd_worker *w)
{
    set_state(w, LMD_WORKER_RESTARTING);
    w->stats_base = w->stats;
    w->restart_load = true;
    if (send_load(w, w->source, w->source_len) != 0) {
        lmd_worker_kill(w);
        lmd_worker_died(w, "cannot start a new policy worker");
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_worker *w = arg;
    lmd_info("policy: trying the policy again after %.0f s suspended", w->backoff);
    restart(w);
}

void lmd_worker_died(lmd_worker *w, const char *why)
{
    snprintf(w->last_error, sizeof w->last_error, "%s", why);
    /* a load the agent asked for (start, reload): it failed, nothing runs */
    if (w->load_done) {
        lmd_worker_loaded_fn done = w->load_done;
        w->load_done = NULL;
        done(w->load_ud, LMD_ELUA, NULL, why);
        return;
    }
    if (w->adopt_done) {
        void (*done)(void *, int) = w->adopt_done;
        w->adopt_done = NULL;
        lmd_error("policy: %s", why);
        done(w->adopt_ud, LMD_EIO);
        return;
    }
    if (w->state == LMD_WORKER_STARTING)
        return;
    w->restarts++;
    struct item *it = w->inflight;
    w->inflight = NULL;
    if (it) {
        char e[160];
        lmd_error("policy: %s; the %s of \"%s\" gets the fallback verdict (its hooks are lost)", why,
                  lmd_event_kind_name(it->kind), lmd_escape_str(it->peer.name, e, sizeof e));
        lmd_worker_fallback(w, it);
    } else {
        lmd_error("policy: %s", why);
    }
    double now = lmd_now_mono();
    memmove(w->deaths, w->deaths + 1, (LMD_WORKER_DEATHS - 1) * sizeof *w->deaths);
    w->deaths[LMD_WORKER_DEATHS - 1] = now;
    if (now - w->deaths[0] > LMD_WORKER_DEATH_WINDOW) {
        if (now - w->deaths[LMD_WORKER_DEATHS - 2] > LMD_WORKER_DEATH_WINDOW)
            w->backoff = 0; /* quiet for a minute: start the backoff over */
        restart(w);
        return;
    }
    w->backoff = w->backoff ? w->backoff * 2 : BACKOFF_FIRST;
    if (w->backoff > BACKOFF_MAX)
        w->backoff = BACKOFF_MAX;
    lmd_error("policy: the worker died %d times within %.0f s: suspended for %.0f s; peers get the fallback "
              "verdicts meanwhile", LMD_WORKER_DEATHS, LMD_WORKER_DEATH_WINDOW, w->backoff);
    set_state(w, LMD_WORKER_SUSPENDED);
    if (!w->retry && !(w->retry = evtimer_new(w->base, on_retry, w))) {
        lmd_error("policy: out of memory: the policy stays suspended until a reload");
    } else {
        struct timeval tv = {(time_t)w->backoff, 0};
        evtimer_add(w->retry, &tv);
    }
    lmd_worker_pump(w);
}

/* ---- what the agent reads ------------------------------------------------ */

const char *lmd_worker_warnings(const lmd_worker *w) { return w->warnings ? w->warnings : ""; }
const char *lmd_worker_hooks(const lmd_worker *w) { return w->hooks ? w->hooks : ""; }

void lmd_worker_where(const lmd_worker *w, const char *section, char *buf, size_t len)
{
    for (size_t i = 0; i < w->nwhere; i++)
        if (lmd_streq(w->where_sec[i], section)) {
            snprintf(buf, len, "%s", w->where_at[i] ? w->where_at[i] : "?");
            return;
        }
    snprintf(buf, len, "%s", w->path);
}

void lmd_worker_stats(const lmd_worker *w, struct lmd_policy_stats *out) { *out = w->stats; }

void lmd_worker_status(const lmd_worker *w, struct lmd_worker_status *out)
{
    out->state = w->state;
    out->restarts = w->restarts;
    out->last_error = w->last_error;
    out->dropped = w->dropped;
    out->pid = (int)w->pid;
}

void lmd_worker_set_limits(lmd_worker *w, double deadline, double memory_mb)
{
    w->deadline = deadline;
    w->memory_mb = memory_mb;
}
