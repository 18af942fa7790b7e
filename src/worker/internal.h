/* Shared by proc.c (the process: spawn, frames, bounds, kill) and life.c
 * (the queue, loads, restarts, suspension). */
#ifndef LMD_WORKER_INTERNAL_H
#define LMD_WORKER_INTERNAL_H

#include "worker/wire.h"
#include "worker/worker.h"

#include <sys/types.h>

struct item {
    struct item *next;
    int kind, tag;
    lmd_node_info peer, old;
    bool has_old;
    unsigned changes;
    char *reason;
};

enum op { OP_NONE, OP_LOAD, OP_ADOPT, OP_EVENT, OP_BUSY };

struct reap {
    struct reap *next;
    pid_t pid;
    bool orphan;               /* a program the ended worker had started */
    pid_t sid;                 /* orphan: the session of the worker that started it */
    struct event *ev;
    struct lmd_worker *w;
};

struct lmd_worker {
    struct lmd_worker *next_all;       /* every worker of this process (proc.c) */
    struct event_base *base;
    char *path;
    struct lmd_worker_host host;
    /* the process */
    pid_t pid;
    struct bufferevent *bev;
    struct lmd_wbuf out;
    struct reap *reaps;
    enum op op;
    double op_start, op_limit, op_wall; /* monotonic start; CPU and wall-clock bounds */
    double cpu_mark;                     /* the worker's CPU time when the op began */
    bool asked_where;                    /* SIGUSR1 sent: it says where it was and ends */
    struct event *bound, *retry;
    char stopped[600];                   /* the worker's own last words (STOPPED) */
    /* loading: the text that loaded last, and the one being loaded */
    char *source, *trying;
    size_t source_len, trying_len;
    bool restart_load;                   /* the load is a restart's, not the agent's */
    lmd_worker_loaded_fn load_done;
    void *load_ud;
    void (*adopt_done)(void *ud, int rc);
    void *adopt_ud;
    /* events */
    struct item *head, **tail, *inflight;
    bool hold;
    size_t queued, queue_max;            /* items in head; past queue_max the oldest get the fallback */
    unsigned long dropped;               /* events that got the fallback for it */
    bool dropping;                       /* said so in the log; said again when the queue drains */
    /* health */
    enum lmd_worker_state state;
    unsigned restarts;
    char last_error[600];
    double deaths[LMD_WORKER_DEATHS];
    double backoff;
    double deadline, memory_mb;
    /* what the last load said */
    char *warnings, *hooks;
    char **where_sec, **where_at;
    size_t nwhere;
    struct lmd_policy_stats stats, stats_base;
};

/* proc.c */
int lmd_worker_spawn(lmd_worker *w, lmd_err *err);
int lmd_worker_send(lmd_worker *w);      /* w->out, as built */
void lmd_worker_op(lmd_worker *w, enum op op, double cpu, double wall);
void lmd_worker_op_done(lmd_worker *w);
/* Kill the process (if any) and forget it; why: for the log and health. */
void lmd_worker_kill(lmd_worker *w);
double lmd_worker_backstop(const lmd_worker *w);

/* life.c: what the frames mean */
void lmd_worker_on_frame(lmd_worker *w, int type, struct lmd_rbuf *r);
void lmd_worker_died(lmd_worker *w, const char *why);
void lmd_worker_pump(lmd_worker *w);

/* queue.c: the event queue; fallback: the agent's verdict for it, freed */
void lmd_worker_fallback(lmd_worker *w, struct item *it);
void lmd_worker_item_free(struct item *it);

#endif
