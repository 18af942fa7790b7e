/* The policy worker: the operator's Lua runs in a child process the core
 * can kill and restart (issue 18).
 *
 * The core (proc.c, life.c) owns announcing, browsing, the registry, the
 * API, checks, liveness: everything on the network.  It queues registry
 * events and sends them one at a time; it never waits for an answer (a
 * verdict comes back later as a callback).  A worker that uses more than
 * policy.deadline + 0.5 s of CPU time on one call stops itself (its CPU
 * timer says on which line); one that still runs 0.25 s of CPU time later,
 * or that has not answered after max(5 s, 2 x deadline + 1 s) of wall
 * clock, is killed (SIGKILL).  Either way a fresh worker is started with
 * the configuration text that loaded last, takes over the peers with their
 * current verdicts, and on_start(peers, "restart") runs if the policy has
 * it.  The event in flight gets the fallback verdict (the agent's, see
 * events.c): it is lost to the policy, not replayed.  Three deaths within
 * a minute suspend the policy with backoff (10 s, doubling to 5 min);
 * meanwhile events get the fallback verdicts.
 *
 * serve.c is the worker's side (`lmdisc policy-worker`). */
#ifndef LMD_WORKER_WORKER_H
#define LMD_WORKER_WORKER_H

#include "base/config.h"
#include "base/error.h"
#include "lua/host.h"
#include "policy/policy.h"

struct event_base;

typedef struct lmd_worker lmd_worker;

enum lmd_worker_state { LMD_WORKER_RUNNING, LMD_WORKER_RESTARTING, LMD_WORKER_SUSPENDED, LMD_WORKER_STARTING };

#define LMD_WORKER_LOAD_CPU 5.0   /* seconds of CPU time for a configuration's top-level code */
#define LMD_WORKER_LOAD_WALL 15.0 /* and of wall clock */
#define LMD_WORKER_DEATHS 3       /* deaths within LMD_WORKER_DEATH_WINDOW s suspend the policy */
#define LMD_WORKER_DEATH_WINDOW 60.0
/* Events waiting for the worker (one is in flight): a policy slower than
 * the network would otherwise make the core's queue, and the delay of
 * every verdict, grow without end.  Past it the oldest waiting event gets
 * the fallback verdict (as if the worker had died with it), and the log
 * says so.  LMDISC_POLICY_QUEUE_MAX in the environment sets it (tests). */
#define LMD_WORKER_QUEUE_MAX 4096

struct lmd_worker_host {
    void *ud;
    /* what the worker's queries are answered from (peers_all, self,
     * services, set_txt; base and busy unused) */
    struct lmd_policy_host q;
    /* The verdict on a posted event; v NULL: the worker could not judge it
     * (it died with it in flight, or the policy is suspended): the agent's
     * fallback applies.  tag: what lmd_worker_post was given. */
    void (*verdict)(void *ud, int kind, const lmd_node_info *peer, const char *reason, int tag,
                    const struct lmd_verdict *v);
    /* The peers a restarted worker takes over, with their verdicts now
     * (old[i] for peers->nodes[i]; info may point into the registry: it is
     * sent before the next turn of the loop). */
    int (*takeover)(void *ud, lmd_node_list *peers, struct lmd_old_verdict **old);
    /* A verdict from a takeover (restart or reload) for one peer by name. */
    void (*adopted)(void *ud, const char *name, const struct lmd_verdict *v);
    /* The state changed (the worker logged it). */
    void (*state)(void *ud, enum lmd_worker_state st);
};

/* A worker for the configuration at path, not started.  exe: the binary to
 * exec ("/proc/self/exe": the very one running, even if replaced). */
int lmd_worker_new(struct event_base *base, const char *path, const struct lmd_worker_host *host,
                   lmd_worker **out, lmd_err *err);
void lmd_worker_free(lmd_worker *w);

/* Start a worker and load the configuration: done(ud, 0, cfg, NULL) with
 * the settings (the callee takes cfg), or done(ud, rc, NULL, message). */
typedef void (*lmd_worker_loaded_fn)(void *ud, int rc, struct lmd_config *cfg, const char *msg);
int lmd_worker_load(lmd_worker *w, lmd_worker_loaded_fn done, void *ud);
/* The same, turning the loop until it is done (the agent's start, `lmdisc
 * check`): 0 with cfg filled, or an error in err. */
int lmd_worker_load_wait(lmd_worker *w, struct lmd_config *cfg, lmd_err *err);

/* After a load: the peers taken over (a reload: why "reload"); done when
 * their verdicts went to host.adopted. */
int lmd_worker_adopt(lmd_worker *w, const char *why, const lmd_node_list *peers,
                     const struct lmd_old_verdict *old, void (*done)(void *ud, int rc), void *ud);

/* Queue a registry event (copied).  Its verdict comes through host.verdict. */
int lmd_worker_post(lmd_worker *w, int kind, const lmd_node_info *peer, const lmd_node_info *old,
                    unsigned changes, const char *reason, int tag);
/* Whether nothing is queued or in flight. */
bool lmd_worker_idle(const lmd_worker *w);
/* Move from's queued events behind to's (a reload's new worker takes the
 * events that came during the takeover). */
void lmd_worker_take_queue(lmd_worker *to, lmd_worker *from);
/* Hold events in the queue (a reload takes over), or let them go. */
void lmd_worker_hold(lmd_worker *w, bool hold);

/* What the last load said. */
const char *lmd_worker_warnings(const lmd_worker *w);
const char *lmd_worker_hooks(const lmd_worker *w);
void lmd_worker_where(const lmd_worker *w, const char *section, char *buf, size_t len);
void lmd_worker_stats(const lmd_worker *w, struct lmd_policy_stats *out);

struct lmd_worker_status {
    enum lmd_worker_state state;
    unsigned restarts;
    const char *last_error; /* "" if none */
    unsigned long dropped;  /* events that got the fallback verdict because the queue was full */
    int pid;
};
void lmd_worker_status(const lmd_worker *w, struct lmd_worker_status *out);
const char *lmd_worker_state_name(enum lmd_worker_state st);
/* The limits the worker's calls run under, from the configuration. */
void lmd_worker_set_limits(lmd_worker *w, double deadline, double memory_mb);

/* `lmdisc check`, `lmdisc test`: fn(arg) in a confined child with cpu
 * seconds of CPU time and wall seconds of wall clock; its exit code, or 1
 * after one line on stderr, "WHAT: FILE:LINE: stopped: ..." (child.c). */
int lmd_worker_run_confined(int (*fn)(void *), void *arg, double cpu, double wall, const char *what);

/* `lmdisc policy-worker`: the worker's side, on descriptor fd. */
int lmd_worker_serve(int fd);

#endif
