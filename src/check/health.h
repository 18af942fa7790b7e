/* Liveness checks on the agent's loop: never blocking, always bounded.
 *
 * lmd_health checks the local server (health { http = ... | tcp = ... }) and
 * says when it goes down (after N failures in a row) and comes back (one
 * success).  lmd_checks probes every kept peer (checks { tcp | http }) with
 * jitter and a cap on probes in flight, and says when a peer becomes
 * unhealthy and healthy again.  The configuration's schema validated and
 * filled in every number (at least one failure, positive intervals). */
#ifndef LMD_HEALTH_H
#define LMD_HEALTH_H

#include "base/error.h"
#include "lmdisc.h"

struct event_base;

struct lmd_probe_config {
    bool tcp;              /* TCP connect, else HTTP GET */
    const char *path;      /* HTTP path, e.g. "/health" */
    double interval;       /* seconds between checks */
    double timeout;        /* seconds per check */
    unsigned failures;     /* failures in a row that mean down */
};

/* ---- the local server --------------------------------------------------- */

typedef struct lmd_health lmd_health;
typedef void (*lmd_health_cb)(void *ud, bool up, const char *detail);

/* target: host (numeric or "localhost") and port; the first check runs at
 * once, and cb(up) reports the first result and every change after it. */
int lmd_health_new(struct event_base *base, const struct lmd_probe_config *cfg, const char *host, uint16_t port,
                   lmd_health_cb cb, void *ud, lmd_health **out, lmd_err *err);
void lmd_health_free(lmd_health *h);

/* ---- peers ---------------------------------------------------------------- */

typedef struct lmd_checks lmd_checks;
typedef void (*lmd_checks_cb)(void *ud, const char *name, bool healthy, const char *detail);

struct lmd_checks_config {
    struct lmd_probe_config probe;
    unsigned concurrency;  /* probes in flight at most */
};

int lmd_checks_new(struct event_base *base, const struct lmd_checks_config *cfg, lmd_checks_cb cb, void *ud,
                   lmd_checks **out, lmd_err *err);
/* Check this peer (or update where it is); its first check comes at a
 * random moment within one interval, so that peers joining together are
 * not probed together. */
void lmd_checks_watch(lmd_checks *c, const lmd_node_info *peer);
void lmd_checks_forget(lmd_checks *c, const char *name);
/* The most probes that were in flight at once so far. */
unsigned lmd_checks_peak(const lmd_checks *c);
/* Probes started and failed so far. */
void lmd_checks_counts(const lmd_checks *c, double *started, double *failed);
void lmd_checks_free(lmd_checks *c);

/* Parse "http://HOST:PORT/PATH" (HOST numeric or localhost) into parts. */
int lmd_parse_http_url(const char *url, char *host, size_t hostlen, uint16_t *port, char *path,
                       size_t pathlen);

#endif
