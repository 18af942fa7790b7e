/* `lmdisc policy-worker`: the process that runs the Lua VM for the agent.
 *
 * The core execs it with the socketpair on descriptor 3.  It confines
 * itself (confine.h), then answers frames one at a time: LOAD (the
 * configuration's top-level code), EVENT (a registry event through filter,
 * info and the hooks), ADOPT (peers taken over after a reload or a restart,
 * then on_start).  What a hook asks of the agent (peers, self, services,
 * set_txt) is a QUERY the core answers at once; the worker waits for it,
 * the core never waits for the worker.  Timers and spawned programs run on
 * the worker's own loop; before their callbacks it says BUSY, so the core
 * bounds them like hooks.  Every call into user code has a CPU-time timer:
 * a C function that never returns is stopped here with the line it was
 * called from, and the core's own bound (proc.c) backs that up. */
#include "worker/worker.h"
#include "base/log.h"
#include "base/util.h"
#include "policy/policy.h"
#include "worker/confine.h"
#include "worker/wire.h"

#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdarg.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct stash {
    struct stash *next;
    int type;
    size_t len;
    unsigned char data[];
};

static struct {
    int fd;
    struct event_base *base;
    lmd_policy *pol;
    struct lmd_wbuf out, in;
    struct stash *stash, **stash_tail;
    double deadline;
    char doing[200]; /* what the CPU timer stops, for its message */
    int ev_kind;     /* or an event (formatted by the handler: the hot path only copies the name) */
    char ev_name[160];
    double stats_at; /* when the stats went out last */
    double limit;
    bool failed;     /* the socket broke: leave the loop */
} S = {.fd = -1, .ev_kind = -1};

/* SIGPROF: the call used its CPU time.  Say where, then end: the core
 * restarts a fresh worker. */
static void on_cpu_limit(int sig)
{
    char at[200], msg[600];
    lmd_policy_running_at(at, sizeof at);
    if (S.ev_kind >= 0) {
        char e[200];
        snprintf(S.doing, sizeof S.doing, "the %s event of \"%s\"", lmd_event_kind_name(S.ev_kind),
                 lmd_escape_str(S.ev_name, e, sizeof e));
    }
    int n = sig == SIGPROF
                ? snprintf(msg + LMD_WIRE_HEADER + 4, sizeof msg - LMD_WIRE_HEADER - 4,
                           "%s%s%s ran past its CPU limit of %.2f s and was stopped (a loop inside a C function, "
                           "such as pattern matching or a table or string function, cannot be interrupted in the VM)",
                           at, *at ? ": " : "", S.doing, S.limit)
                : snprintf(msg + LMD_WIRE_HEADER + 4, sizeof msg - LMD_WIRE_HEADER - 4,
                           "%s%s%s did not answer in time (the machine is busy, or it waits) and was stopped by the "
                           "agent", at, *at ? ": " : "", S.doing);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof msg - LMD_WIRE_HEADER - 5)
        n = (int)(sizeof msg - LMD_WIRE_HEADER - 5);
    uint32_t len = (uint32_t)n + 4;
    unsigned char h[LMD_WIRE_HEADER + 4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                                           (unsigned char)(len >> 8), (unsigned char)len, LMD_WIRE_VERSION,
                                           LMD_W_STOPPED, 0, 0, (unsigned char)((unsigned)n >> 24),
                                           (unsigned char)((unsigned)n >> 16), (unsigned char)((unsigned)n >> 8),
                                           (unsigned char)n};
    memcpy(msg, h, sizeof h);
    ssize_t w = write(S.fd, msg, LMD_WIRE_HEADER + len);
    (void)w; /* nothing more to do: the core sees the socket close */
    _exit(3);
}

static double cpu_now(void)
{
    struct timespec ts;
    return clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0 ? (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 : 0;
}

static void arm(double seconds, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arm(double seconds, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(S.doing, sizeof S.doing, fmt, ap);
    va_end(ap);
    S.ev_kind = -1;
    S.limit = seconds;
    lmd_confine_cpu(seconds);
}

static void arm_event(double seconds, int kind, const char *name)
{
    size_t n = strlen(name);
    if (n >= sizeof S.ev_name)
        n = sizeof S.ev_name - 1;
    memcpy(S.ev_name, name, n);
    S.ev_name[n] = '\0';
    S.ev_kind = kind;
    S.limit = seconds;
    lmd_confine_cpu(seconds);
}

static void disarm(void) { lmd_confine_cpu(0); }

static int send_out(void)
{
    if (lmd_wire_send_fd(S.fd, &S.out) != 0) {
        S.failed = true;
        return LMD_EIO;
    }
    return 0;
}

/* ---- what the policy asks of the agent: a query, answered at once ---- */

/* Send S.out (a QUERY) and wait for its ANSWER; other frames (an event the
 * core sent before it heard BUSY) wait in the stash. */
static int rpc(struct lmd_rbuf *ans)
{
    if (send_out() != 0)
        return LMD_EIO;
    for (;;) {
        int type;
        lmd_err err = {0};
        if (lmd_wire_recv_fd(S.fd, &type, &S.in, ans, &err) != 0) {
            S.failed = true;
            return LMD_EIO;
        }
        if (type == LMD_W_ANSWER)
            return 0;
        struct stash *s = malloc(sizeof *s + ans->n);
        if (!s) {
            S.failed = true;
            return LMD_ENOMEM;
        }
        s->next = NULL;
        s->type = type;
        s->len = ans->n;
        memcpy(s->data, ans->p, ans->n);
        *S.stash_tail = s;
        S.stash_tail = &s->next;
    }
}

static int q_list(int what, lmd_node_list *out)
{
    *out = (lmd_node_list){0};
    lmd_w_begin(&S.out, LMD_W_QUERY);
    lmd_w_u8(&S.out, (unsigned)what);
    struct lmd_rbuf a;
    if (rpc(&a) != 0)
        return LMD_EIO;
    int rc = (int)lmd_r_u32(&a);
    if (rc == 0)
        rc = lmd_r_nodes(&a, out);
    return rc;
}

static int h_peers_all(void *ud, lmd_node_list *out)
{
    (void)ud;
    return q_list(LMD_Q_PEERS_ALL, out);
}

static int h_services(void *ud, lmd_node_list *out)
{
    (void)ud;
    return q_list(LMD_Q_SERVICES, out);
}

static int h_self(void *ud, lmd_node_info *out, const char **state)
{
    (void)ud;
    static char st[32];
    lmd_w_begin(&S.out, LMD_W_QUERY);
    lmd_w_u8(&S.out, LMD_Q_SELF);
    struct lmd_rbuf a;
    if (rpc(&a) != 0)
        return LMD_EIO;
    int rc = (int)lmd_r_u32(&a);
    if (rc)
        return rc;
    rc = lmd_r_node(&a, out);
    size_t len;
    const char *s = lmd_r_bytes(&a, &len);
    snprintf(st, sizeof st, "%.*s", (int)len, s ? s : "");
    *state = st;
    return rc;
}

static int h_set_txt(void *ud, const lmd_txt *txt, char *err, size_t errlen)
{
    (void)ud;
    lmd_w_begin(&S.out, LMD_W_QUERY);
    lmd_w_u8(&S.out, LMD_Q_SET_TXT);
    lmd_w_txt(&S.out, txt);
    struct lmd_rbuf a;
    if (rpc(&a) != 0) {
        snprintf(err, errlen, "the agent did not answer");
        return LMD_EIO;
    }
    int rc = (int)lmd_r_u32(&a);
    size_t len;
    const char *s = lmd_r_bytes(&a, &len);
    snprintf(err, errlen, "%.*s", (int)len, s ? s : "");
    return rc;
}

/* a timer or on_exit callback: bounded like a hook */
static void h_busy(void *ud, int on)
{
    (void)ud;
    if (on)
        arm(S.deadline + 0.5, "a timer or spawn callback");
    else
        disarm();
    lmd_w_begin(&S.out, LMD_W_BUSY);
    lmd_w_u8(&S.out, on ? 1 : 0);
    lmd_w_f64(&S.out, cpu_now());
    send_out();
}

/* ---- frames from the core ---------------------------------------------- */

static void w_verdict(struct lmd_wbuf *b, const struct lmd_verdict *v)
{
    lmd_w_u8(b, (unsigned)(v->emitted + 1));
    lmd_w_u8(b, v->keep);
    lmd_w_bytes(b, v->info, v->info_len);
    lmd_w_u32(b, v->changes);
}

/* the stats, and this process's CPU time: where the core's bound on the
 * next call starts from */
static void w_stats(struct lmd_wbuf *b)
{
    double t = lmd_now_mono();
    bool send = t - S.stats_at >= 0.05;
    lmd_w_u8(b, send);
    if (!send) {
        lmd_w_f64(b, cpu_now());
        return;
    }
    S.stats_at = t;
    struct lmd_policy_stats st;
    lmd_policy_stats(S.pol, &st);
    lmd_w_f64(b, st.hook_runs);
    lmd_w_f64(b, st.hook_errors);
    lmd_w_f64(b, st.hook_time);
    lmd_w_f64(b, (double)st.memory);
    lmd_w_f64(b, cpu_now());
}

static const char *const SECTIONS[] = {
#define SEC_(name, FIELDS) #name,
    LMD_CFG_SECTIONS(SEC_)
#undef SEC_
};

static void do_load(struct lmd_rbuf *r)
{
    char *path = lmd_r_str(r);
    size_t slen;
    const char *src = lmd_r_bytes(r, &slen);
    double load_cpu = lmd_r_f64(r);
    int level = (int)lmd_r_u8(r) - 1;
    bool explicit_level = lmd_r_u8(r);
    if (level >= 0)
        lmd_log_set_level((enum lmd_log_level)level);
    struct lmd_policy_host host = {.base = S.base, .peers_all = h_peers_all, .self = h_self,
                                   .services = h_services, .set_txt = h_set_txt, .busy = h_busy};
    struct lmd_config cfg;
    lmd_err err = {0};
    int rc = r->bad || !path ? lmd_err_set(&err, LMD_EINVAL, "bad LOAD frame") : 0;
    if (rc == 0) {
        arm(load_cpu, "loading the configuration");
        rc = lmd_policy_new_source(path, src, slen, &host, &cfg, &S.pol, &err);
        disarm();
    }
    free(path);
    if (rc) {
        lmd_w_begin(&S.out, LMD_W_FAILED);
        lmd_w_str(&S.out, lmd_err_text(&err));
        send_out();
        S.failed = true; /* a worker that loaded nothing has nothing more to do */
        return;
    }
    lmd_policy_watch(S.pol);
    if (!explicit_level && cfg.log_level >= 0)
        lmd_log_set_level((enum lmd_log_level)cfg.log_level);
    S.deadline = cfg.policy.deadline;
    lmd_confine_memory(cfg.policy.memory_mb);
    char hooks[256];
    lmd_policy_hooks(S.pol, hooks, sizeof hooks);
    lmd_w_begin(&S.out, LMD_W_LOADED);
    lmd_w_config(&S.out, &cfg);
    lmd_w_str(&S.out, lmd_policy_warnings(S.pol));
    lmd_w_str(&S.out, hooks);
    lmd_w_u32(&S.out, (uint32_t)LMD_ARRAY_LEN(SECTIONS));
    for (size_t i = 0; i < LMD_ARRAY_LEN(SECTIONS); i++) {
        char where[300];
        lmd_policy_where(S.pol, SECTIONS[i], where, sizeof where);
        lmd_w_str(&S.out, SECTIONS[i]);
        lmd_w_str(&S.out, where);
    }
    w_stats(&S.out);
    lmd_config_clear(&cfg);
    send_out();
}

static void do_event(struct lmd_rbuf *r)
{
    int kind = (int)lmd_r_u8(r);
    lmd_node_info peer = {0}, old = {0};
    int rc = lmd_r_node(r, &peer);
    bool has_old = lmd_r_u8(r);
    if (rc == 0 && has_old)
        rc = lmd_r_node(r, &old);
    unsigned changes = lmd_r_u32(r);
    char *reason = lmd_r_str(r);
    struct lmd_verdict v = {.emitted = -1};
    if (rc == 0 && !r->bad) {
        /* not disarmed after: the next call arms it afresh, and an idle
         * worker uses no CPU time (one setitimer less per event) */
        arm_event(S.deadline + 0.5, kind, peer.name);
        lmd_policy_event(S.pol, kind, &peer, has_old ? &old : NULL, changes, reason, &v);
    }
    lmd_w_begin(&S.out, LMD_W_VERDICT);
    w_verdict(&S.out, &v);
    w_stats(&S.out);
    lmd_verdict_clear(&v);
    lmd_node_info_clear(&peer);
    if (has_old)
        lmd_node_info_clear(&old);
    free(reason);
    send_out();
}

struct adopted {
    size_t n;
    struct lmd_wbuf *b;
};

static void adopted_one(void *ud, const lmd_node_info *peer, const struct lmd_verdict *v)
{
    struct adopted *a = ud;
    lmd_w_str(a->b, peer->name);
    w_verdict(a->b, v);
    a->n++;
}

static void do_adopt(struct lmd_rbuf *r)
{
    char *why = lmd_r_str(r);
    lmd_node_list peers = {0};
    uint32_t n = lmd_r_u32(r);
    struct lmd_old_verdict *old = NULL;
    if (n > r->n - r->off || (n && !(peers.nodes = calloc(n, sizeof *peers.nodes))) ||
        (n && !(old = calloc(n, sizeof *old))))
        r->bad = true;
    for (uint32_t i = 0; !r->bad && i < n; i++) {
        if (lmd_r_node(r, &peers.nodes[i]) != 0)
            break;
        peers.n++;
        old[i].keep = lmd_r_u8(r);
        old[i].info = lmd_r_bytes(r, &old[i].info_len);
    }
    /* the verdicts go out as a count, then the list: the count is patched */
    lmd_w_begin(&S.out, LMD_W_ADOPTED);
    size_t at = S.out.n;
    lmd_w_u32(&S.out, 0);
    struct adopted ad = {.b = &S.out};
    if (!r->bad && why) {
        lmd_err err = {0};
        arm(S.deadline * 2 + 0.5 + 0.01 * (double)peers.n, "taking over %zu peer(s) (%s)", peers.n, why);
        if (lmd_policy_adopt(S.pol, &peers, old, adopted_one, &ad, &err) != 0)
            lmd_error("policy: %s", lmd_err_text(&err));
        disarm();
        if (!strcmp(why, "restart")) {
            arm(S.deadline + 0.5, "on_start");
            lmd_policy_start(S.pol, &peers, why);
            disarm();
        }
    }
    if (!S.out.bad) {
        uint32_t c = (uint32_t)ad.n;
        unsigned char be[4] = {(unsigned char)(c >> 24), (unsigned char)(c >> 16), (unsigned char)(c >> 8),
                               (unsigned char)c};
        memcpy(S.out.p + at, be, 4);
    }
    w_stats(&S.out);
    free(old);
    lmd_node_list_free(&peers);
    free(why);
    send_out();
}

static void dispatch(int type, struct lmd_rbuf *r)
{
    switch (type) {
    case LMD_W_LOAD: do_load(r); break;
    case LMD_W_EVENT:
        if (S.pol)
            do_event(r);
        break;
    case LMD_W_ADOPT:
        if (S.pol)
            do_adopt(r);
        break;
    default:
        lmd_error("policy worker: unexpected frame type %d", type);
        S.failed = true;
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    int type;
    struct lmd_rbuf r;
    lmd_err err = {0};
    if (lmd_wire_recv_fd(S.fd, &type, &S.in, &r, &err) != 0) {
        if (err.code != LMD_EIO)
            lmd_error("policy worker: %s", lmd_err_text(&err));
        S.failed = true;
    } else {
        dispatch(type, &r);
    }
    while (!S.failed && S.stash) {
        struct stash *s = S.stash;
        S.stash = s->next;
        if (!S.stash)
            S.stash_tail = &S.stash;
        struct lmd_rbuf sr = {.p = s->data, .n = s->len};
        dispatch(s->type, &sr);
        free(s);
    }
    if (S.failed)
        event_base_loopbreak(S.base);
}

int lmd_worker_serve(int fd)
{
    S.fd = fd;
    S.stash_tail = &S.stash;
    signal(SIGPIPE, SIG_IGN);
    /* ^C at the agent's terminal, systemd's SIGTERM to the whole unit:
     * the core's to handle; it ends the worker (EOF, or SIGKILL) */
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* and a core that dies takes it along */
    /* a program the policy spawns must not hold the socket: the core sees
     * this process end by its EOF */
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    struct sigaction sa = {.sa_handler = on_cpu_limit};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPROF, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL); /* the core's bound: say where, and end */
    lmd_err err = {0};
    if (lmd_confine(fd, 0, &err) != 0) {
        lmd_error("policy worker: %s", lmd_err_text(&err));
        return 1;
    }
    struct event *rd = NULL;
    if (!(S.base = event_base_new()) || !(rd = event_new(S.base, fd, EV_READ | EV_PERSIST, on_readable, NULL)) ||
        event_add(rd, NULL) != 0) {
        lmd_error("policy worker: out of memory");
        return 1;
    }
    event_base_dispatch(S.base);
    lmd_policy_watch(NULL);
    lmd_policy_free(S.pol);
    event_free(rd);
    event_base_free(S.base);
    lmd_wbuf_free(&S.out);
    lmd_wbuf_free(&S.in);
    return 0;
}
