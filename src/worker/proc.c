/* The worker process from the core's side: spawn, frames in and out, the
 * bound on each call, kill and reap.  The core never blocks on the worker:
 * frames go through a bufferevent, exits are reaped by WNOHANG retries. */
#include "worker/internal.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "worker/confine.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BOUND_SLACK 0.25 /* CPU seconds past the worker's own timer before the core kills it */
#define REAP_EVERY 0.05
#define ASK_GRACE 0.3    /* for a worker told to stop (SIGUSR1) to say where it was and end */

/* ---- reaping: a killed worker is waited for without blocking ----------- */

static void reap_free(lmd_worker *w, struct reap *r)
{
    for (struct reap **pp = &w->reaps; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    event_free(r->ev);
    free(r);
}

static void kill_orphans(lmd_worker *w, pid_t sid, bool say);

static void reap_try(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct reap *r = arg;
    int st;
    pid_t got = waitpid(r->pid, &st, WNOHANG);
    if (got == 0) {
        struct timeval tv = {0, (suseconds_t)(REAP_EVERY * 1e6)};
        evtimer_add(r->ev, &tv);
        return;
    }
    lmd_worker *w = r->w;
    bool worker = !r->orphan, ended = got == r->pid;
    pid_t sid = worker ? r->pid : r->sid;
    if (ended && worker)
        lmd_debug("policy worker %d ended (%s %d)", (int)r->pid, WIFSIGNALED(st) ? "signal" : "exit",
                  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    reap_free(w, r);
    /* its programs were handed to the core as it ended; a program killed
     * now hands its own children over: look again */
    if (ended)
        kill_orphans(w, sid, worker);
}

static void reap_later(lmd_worker *w, pid_t pid, bool orphan, pid_t sid)
{
    struct reap *r = calloc(1, sizeof *r);
    if (r && (r->ev = evtimer_new(w->base, reap_try, r))) {
        r->pid = pid;
        r->orphan = orphan;
        r->sid = sid;
        r->w = w;
        r->next = w->reaps;
        w->reaps = r;
        reap_try(-1, 0, r);
        return;
    }
    free(r);
    lmd_warn("out of memory: process %d is not reaped", (int)pid);
}

/* every worker of this process: a reload runs two side by side, and the
 * children of one are never taken for orphans of the other */
static lmd_worker *all_workers;

static bool known_child(pid_t pid)
{
    for (const lmd_worker *w = all_workers; w; w = w->next_all) {
        if (pid == w->pid)
            return true;
        for (const struct reap *r = w->reaps; r; r = r->next)
            if (r->pid == pid)
                return true;
    }
    return false;
}

/* Each child of the core (any of its threads') that no worker is, in
 * turn, until fn returns false. */
static void each_unknown_child(bool (*fn)(pid_t pid, void *arg), void *arg)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return;
    bool more = true;
    for (struct dirent *e; more && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        long p;
        while (more && fscanf(f, "%ld", &p) == 1)
            if (p > 0 && !known_child((pid_t)p))
                more = fn((pid_t)p, arg);
        fclose(f);
    }
    closedir(d);
}

struct orphans {
    pid_t sid, *found;
    size_t n, max;
};

static bool take_orphan(pid_t pid, void *arg)
{
    struct orphans *o = arg;
    if (getsid(pid) == o->sid)
        o->found[o->n++] = pid;
    return o->n < o->max;
}

/* The core's children that no worker is, in session sid (up to max): the
 * programs of the worker that led it.  Each worker leads a session of its
 * own (setsid before exec), and its programs keep it after they come to
 * the core: a child of the core in another session (another worker's
 * program, or one that left with setsid) is not this worker's. */
static size_t find_orphans(pid_t sid, pid_t *found, size_t max)
{
    /* called once the session's leader was reaped (its PID is not reused
     * before then): the worker object may still hold that PID */
    if (sid <= 0 || max == 0)
        return 0;
    struct orphans o = {sid, found, 0, max};
    each_unknown_child(take_orphan, &o);
    return o.n;
}

/* The orphan and its whole process group (each spawned program leads one;
 * its leader may be gone already), never the core's own group. */
static void kill_group(pid_t pid)
{
    pid_t g = getpgid(pid);
    if (g > 1 && g != getpgrp())
        (void)killpg(g, SIGKILL);
    (void)kill(pid, SIGKILL);
}

/* SIGCHLD in the core: a program of a live worker that came to the core
 * (its parent exited: `sh -c 'x &'`) and has now exited is reaped here,
 * or it would stay a zombie until its worker ends.  Workers and the
 * programs being killed are reaped by their own timers (known_child). */
static struct event *sigchld;

static bool reap_exited(pid_t pid, void *arg)
{
    (void)arg;
    (void)waitpid(pid, NULL, WNOHANG);
    return true;
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    each_unknown_child(reap_exited, NULL);
}

/* The programs a worker started (lmdisc.spawn: each in a process group of
 * its own, all in the worker's session) outlive a worker that is killed:
 * the core is their subreaper (lmd_worker_spawn), so they become its
 * children as the worker ends (or as their own parent does).  Each is
 * killed with its group and reaped, and every reaped one makes the core
 * look again (its children came over in turn): a spawned program lives no
 * longer than the policy VM that started it, and restarts do not pile
 * them up.  (A program that leaves the session with setsid escapes:
 * documented.) */
static void kill_orphans(lmd_worker *w, pid_t sid, bool say)
{
    unsigned killed = 0;
    for (int round = 0; round < 16; round++) {
        pid_t found[256];
        size_t n = find_orphans(sid, found, 256);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            kill_group(found[i]);
            reap_later(w, found[i], true, sid); /* known from here on */
            killed++;
        }
    }
    if (killed && say)
        lmd_info("policy worker: %u program(s) it had started ended with it", killed);
}

void lmd_worker_kill(lmd_worker *w)
{
    if (w->bev) {
        bufferevent_free(w->bev);
        w->bev = NULL;
    }
    if (w->pid > 0) {
        kill(w->pid, SIGKILL);
        reap_later(w, w->pid, false, 0);
        w->pid = 0;
    }
    lmd_worker_op_done(w);
}

/* ---- frames ------------------------------------------------------------ */

static void on_read(struct bufferevent *bev, void *arg)
{
    lmd_worker *w = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (w->bev == bev) {
        size_t have = evbuffer_get_length(in);
        unsigned char h[LMD_WIRE_HEADER];
        if (have < LMD_WIRE_HEADER || evbuffer_copyout(in, h, sizeof h) != (ev_ssize_t)sizeof h)
            return;
        int type;
        uint32_t len;
        lmd_err err = {0};
        if (lmd_wire_header(h, &type, &len, &err) != 0) {
            lmd_worker_kill(w);
            lmd_worker_died(w, lmd_err_text(&err));
            return;
        }
        if (have < LMD_WIRE_HEADER + (size_t)len)
            return;
        unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)(LMD_WIRE_HEADER + len));
        if (!p) {
            lmd_worker_kill(w);
            lmd_worker_died(w, "out of memory reading from the policy worker");
            return;
        }
        /* copied: a callback may free w->bev (a kill) or write more */
        unsigned char *copy = malloc(len ? len : 1);
        if (!copy) {
            lmd_worker_kill(w);
            lmd_worker_died(w, "out of memory reading from the policy worker");
            return;
        }
        memcpy(copy, p + LMD_WIRE_HEADER, len);
        evbuffer_drain(in, LMD_WIRE_HEADER + len);
        struct lmd_rbuf r = {.p = copy, .n = len};
        lmd_worker_on_frame(w, type, &r);
        free(copy);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    lmd_worker *w = arg;
    (void)bev;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    char why[700];
    if (w->stopped[0])
        snprintf(why, sizeof why, "%s", w->stopped);
    else
        snprintf(why, sizeof why, "the policy worker ended unexpectedly%s",
                 what & BEV_EVENT_ERROR ? " (socket error)" : "");
    w->stopped[0] = '\0';
    lmd_worker_kill(w);
    lmd_worker_died(w, why);
}

int lmd_worker_send(lmd_worker *w)
{
    if (!w->bev)
        return LMD_EIO;
    int rc = lmd_w_end(&w->out);
    if (rc)
        return rc;
    /* straight to the socket when nothing waits before it (a frame is far
     * smaller than the socket's buffer): the bufferevent would wait for a
     * turn of the loop and two epoll_ctl calls to say the socket is
     * writable, which it is */
    size_t off = 0;
    struct evbuffer *out = bufferevent_get_output(w->bev);
    if (evbuffer_get_length(out) == 0) {
        ssize_t n = send(bufferevent_getfd(w->bev), w->out.p, w->out.n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            off = (size_t)n;
    }
    if (off == w->out.n)
        return 0;
    return bufferevent_write(w->bev, w->out.p + off, w->out.n - off) == 0 ? 0 : LMD_ENOMEM;
}

/* ---- spawn ------------------------------------------------------------- */

int lmd_worker_spawn(lmd_worker *w, lmd_err *err)
{
    /* the running binary by its path (valgrind follows an exec of a path,
     * not of /proc/self/exe, which is valgrind itself); if a package
     * upgrade replaced the file, /proc/self/exe is still the binary that
     * runs (and a new binary would refuse the old protocol version) */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || (size_t)n >= sizeof exe - 1 || (exe[n] = '\0', strstr(exe, " (deleted)")) || access(exe, X_OK) != 0)
        snprintf(exe, sizeof exe, "/proc/self/exe");
    /* the worker's own children come to the core when it ends (kill_orphans) */
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (!sigchld && (sigchld = evsignal_new(w->base, SIGCHLD, on_sigchld, NULL)) && event_add(sigchld, NULL) != 0) {
        event_free(sigchld);
        sigchld = NULL;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return lmd_err_set(err, LMD_EIO, "cannot start the policy worker: socketpair: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return lmd_err_set(err, LMD_EIO, "cannot start the policy worker: fork: %s", strerror(e));
    }
    if (pid == 0) {
        /* only async-signal-safe calls until exec: the core has threads */
        if (dup2(sv[1], 3) < 0)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        (void)setsid(); /* its session marks its programs as its (kill_orphans) */
        execl(exe, "lmdisc", "policy-worker", (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    evutil_make_socket_nonblocking(sv[0]);
    w->bev = bufferevent_socket_new(w->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    if (!w->bev) {
        close(sv[0]);
        kill(pid, SIGKILL);
        reap_later(w, pid, false, 0);
        return lmd_err_set(err, LMD_ENOMEM, "cannot start the policy worker: out of memory");
    }
    w->pid = pid;
    w->stopped[0] = '\0';
    bufferevent_setcb(w->bev, on_read, NULL, on_event, w);
    bufferevent_enable(w->bev, EV_READ);
    return 0;
}

/* ---- the bound on each call -------------------------------------------- */

double lmd_worker_backstop(const lmd_worker *w)
{
    double b = 2 * w->deadline + 1;
    return b > 5 ? b : 5;
}

static void arm_bound(lmd_worker *w, double at)
{
    if (lmd_timer_at(w->bound, at) != 0)
        lmd_warn("cannot arm the policy worker's bound (out of memory)");
}

/* CPU time is what a loop burns; wall clock bounds a worker that waits
 * (a blocked read cannot happen in the sandbox, but the bound holds anyway) */
static void on_bound(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_worker *w = arg;
    if (w->op == OP_NONE || w->pid <= 0)
        return;
    double now = lmd_now_mono(), wall = now - w->op_start;
    double cpu = lmd_confine_cpu_of(w->pid);
    double used = cpu >= 0 ? cpu - w->cpu_mark : 0;
    char why[300];
    if (w->asked_where) {
        /* it did not end after SIGUSR1 (signals blocked, or stuck in the
         * kernel): no more asking */
        snprintf(why, sizeof why, "the policy worker did not stop when told to: killed");
    } else if (used >= w->op_limit + BOUND_SLACK || wall >= w->op_wall) {
        /* first ask it to stop and say where it was (its SIGUSR1 handler
         * writes the line and exits); SIGKILL if it has not ended soon */
        w->asked_where = true;
        kill(w->pid, SIGUSR1);
        arm_bound(w, now + ASK_GRACE);
        return;
    } else {
        arm_bound(w, now + BOUND_SLACK);
        return;
    }
    lmd_worker_kill(w);
    lmd_worker_died(w, why);
}

void lmd_worker_op(lmd_worker *w, enum op op, double cpu, double wall)
{
    if (!w->bound && !(w->bound = evtimer_new(w->base, on_bound, w)))
        lmd_warn("cannot bound the policy worker (out of memory)");
    w->op = op;
    w->asked_where = false;
    w->op_start = lmd_now_mono();
    w->op_limit = cpu;
    w->op_wall = wall;
    if (w->bound)
        arm_bound(w, w->op_start + (cpu + BOUND_SLACK < wall ? cpu + BOUND_SLACK : wall));
}

void lmd_worker_op_done(lmd_worker *w)
{
    w->op = OP_NONE;
    if (w->bound)
        evtimer_del(w->bound);
}

/* ---- life -------------------------------------------------------------- */

int lmd_worker_new(struct event_base *base, const char *path, const struct lmd_worker_host *host,
                   lmd_worker **out, lmd_err *err)
{
    lmd_worker *w = *out = calloc(1, sizeof *w);
    if (!w || !(w->path = lmd_strdup(path))) {
        free(w);
        *out = NULL;
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    w->base = base;
    w->host = *host;
    w->tail = &w->head;
    w->next_all = all_workers;
    all_workers = w;
    w->state = LMD_WORKER_STARTING;
    w->deadline = 0.25;
    w->memory_mb = 32;
    const char *qm = getenv("LMDISC_POLICY_QUEUE_MAX");
    long v = qm ? strtol(qm, NULL, 10) : 0;
    w->queue_max = v > 0 ? (size_t)v : LMD_WORKER_QUEUE_MAX;
    for (size_t i = 0; i < LMD_WORKER_DEATHS; i++)
        w->deaths[i] = -1e9;
    return 0;
}

/* A killed worker is gone within microseconds, unless it is stuck in the
 * kernel (a read on a hung NFS or FUSE mount): the core's loop never waits
 * more than 0.2 s for one; past that it is left a zombie, and said. */
static void reap_bounded(pid_t pid)
{
    for (int i = 0; i < 40; i++) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return;
        nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
    }
    lmd_warn("policy worker %d did not exit 0.2 s after SIGKILL (stuck in the kernel?): not waiting for it", (int)pid);
}

void lmd_worker_free(lmd_worker *w)
{
    if (!w)
        return;
    pid_t pid = w->pid;
    if (w->bev) {
        bufferevent_free(w->bev); /* EOF: a worker between calls leaves by itself */
        w->bev = NULL;
    }
    if (pid > 0) {
        kill(pid, SIGKILL);
        reap_bounded(pid);
    }
    /* the sessions of its processes, this one and those still being
     * reaped (a worker that died a moment ago): their programs end too */
    pid_t sids[8];
    size_t nsid = 0;
    if (pid > 0)
        sids[nsid++] = pid;
    while (w->reaps) {
        if (!w->reaps->orphan && nsid < LMD_ARRAY_LEN(sids))
            sids[nsid++] = w->reaps->pid;
        reap_bounded(w->reaps->pid);
        reap_free(w, w->reaps);
    }
    for (lmd_worker **pp = &all_workers; *pp; pp = &(*pp)->next_all)
        if (*pp == w) {
            *pp = w->next_all;
            break;
        }
    if (!all_workers && sigchld) { /* the last worker of this loop */
        event_free(sigchld);
        sigchld = NULL;
    }
    /* its programs, handed to the core as it ended (kill_orphans); each
     * reaped one hands its children over: rounds until none is left */
    size_t ended = 0;
    for (size_t k = 0; k < nsid; k++)
        for (int round = 0; round < 16; round++) {
            pid_t orphans[256];
            size_t norph = find_orphans(sids[k], orphans, 256);
            if (norph == 0)
                break;
            for (size_t i = 0; i < norph; i++)
                kill_group(orphans[i]);
            for (size_t i = 0; i < norph; i++)
                reap_bounded(orphans[i]);
            ended += norph;
        }
    if (ended)
        lmd_info("policy worker: %zu program(s) it had started ended with it", ended);
    if (w->inflight)
        lmd_worker_item_free(w->inflight);
    for (struct item *it = w->head, *n; it; it = n) {
        n = it->next;
        lmd_worker_item_free(it);
    }
    if (w->bound)
        event_free(w->bound);
    if (w->retry)
        event_free(w->retry);
    for (size_t i = 0; i < w->nwhere; i++) {
        free(w->where_sec[i]);
        free(w->where_at[i]);
    }
    free(w->where_sec);
    free(w->where_at);
    free(w->warnings);
    free(w->hooks);
    free(w->source);
    free(w->trying);
    free(w->path);
    lmd_wbuf_free(&w->out);
    free(w);
}
