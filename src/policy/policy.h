/* The operator's configuration and policy, as the agent uses it.
 *
 * One VM per agent (vm.h).  The semantics of filter/info/hooks live in the
 * mantle (lua/lmdisc/policy.lua, shared with the lmdisc.testing harness),
 * reached only through the entry points listed in mantle.h; this is the C
 * side of it.  Nothing here includes a Lua header, so the agent does not. */
#ifndef LMD_POLICY_POLICY_H
#define LMD_POLICY_POLICY_H

#include "base/config.h"
#include "base/error.h"
#include "lua/host.h"
#include "registry/peers.h"

typedef struct lmd_policy lmd_policy;

/* The longest info a verdict may carry (lua/lmdisc/policy.lua INFO_MAX):
 * the core keeps it for every peer and serves it on /v1/peers. */
#define LMD_POLICY_INFO_MAX 65536

struct lmd_verdict {
    int emitted;     /* -1: nothing, else an lmd_event_kind */
    bool keep;
    char *info;      /* malloc'd or NULL */
    size_t info_len; /* it may hold NUL bytes */
    unsigned changes;  /* of an emitted update, as the policy saw them (LMD_CH_*) */
};

struct lmd_policy_stats {
    double hook_runs, hook_errors, hook_time;
    size_t memory;   /* bytes the VM holds */
};

/* Load the configuration at path and fill cfg.  On error err says
 * "FILE:LINE: what". */
int lmd_policy_new(const char *path, const struct lmd_policy_host *host, struct lmd_config *cfg,
                   lmd_policy **out, lmd_err *err);
void lmd_policy_free(lmd_policy *p);

/* A registry event through filter, info and the hooks. */
int lmd_policy_event(lmd_policy *p, enum lmd_event_kind kind, const lmd_node_info *peer,
                     const lmd_node_info *old, unsigned changes, const char *reason,
                     struct lmd_verdict *out);
void lmd_verdict_clear(struct lmd_verdict *v);

/* Reload (SIGHUP).  A broken file leaves the running policy alone and
 * returns its error.  A good one takes over: every current peer (all, not
 * only kept ones) is judged by the new policy, and each verdict is passed to
 * fn with its event (join/leave for peers whose verdict changed). */
typedef void (*lmd_policy_verdict_fn)(void *ud, const lmd_node_info *peer, const struct lmd_verdict *v);
int lmd_policy_reload(lmd_policy *p, const char *path, const lmd_node_list *peers, struct lmd_config *cfg,
                      lmd_policy_verdict_fn fn, void *ud, lmd_err *err);

/* The same from given text instead of reading path (a worker restarted
 * with the configuration that loaded last, whatever the file holds now). */
int lmd_policy_new_source(const char *path, const char *source, size_t source_len,
                          const struct lmd_policy_host *host, struct lmd_config *cfg, lmd_policy **out, lmd_err *err);

/* A fresh policy takes over peers whose verdicts were old[i] (a reload or a
 * restart in a new worker): each verdict is passed to fn as by reload. */
struct lmd_old_verdict {
    bool keep;
    const char *info;
    size_t info_len;
};
int lmd_policy_adopt(lmd_policy *p, const lmd_node_list *peers, const struct lmd_old_verdict *old,
                     lmd_policy_verdict_fn fn, void *ud, lmd_err *err);
/* on_start(kept peers, why) if the policy defines it. */
void lmd_policy_start(lmd_policy *p, const lmd_node_list *peers, const char *why);
/* lmd_policy_running_at reads p's stack (NULL: none). */
void lmd_policy_watch(lmd_policy *p);
/* "FILE:LINE" of the user code running now, or "": async-signal use, for a
 * handler that reports where a stuck call was. */
void lmd_policy_running_at(char *buf, size_t len);

void lmd_policy_stats(lmd_policy *p, struct lmd_policy_stats *out);
/* Names of the hooks the script defines, comma-separated, into buf. */
void lmd_policy_hooks(lmd_policy *p, char *buf, size_t len);
/* Warnings from loading (misspelt hooks...), one per line, or "". */
const char *lmd_policy_warnings(lmd_policy *p);
/* "FILE:LINE" of the directive that configured section (announce, trust,
 * ...) in the configuration in force, or its file alone when the section
 * was left out: where a start check's error points. */
void lmd_policy_where(lmd_policy *p, const char *section, char *buf, size_t len);

/* `lmdisc test`: one luaunit suite in a VM like the agent's, with
 * lmdisc.testing defaulting to the policy at policy_path; 0 if it passed.
 * No time limit of its own: cmd_test.c runs each suite in a confined
 * child (worker.h) with one. */
int lmd_policy_run_suite(const char *policy_path, const char *suite);
struct lua_State;
void lmd_policy_watch_lua(struct lua_State *L); /* lmd_policy_running_at reads L */

#endif
