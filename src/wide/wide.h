/* Wide-area DNS-SD (wide_area { }): the configured service and the
 * services registered through the API published in wide_area.domain, the
 * domain's services read into the registry, liveness and sweeps of what a
 * crashed host left, and finding the server when none is configured.
 *
 * It knows the agent only through the table of callbacks below (callbacks
 * cross upward: nothing here calls into src/agent/), and the agent knows
 * it only through these functions.  Without wide_area { } every function
 * is a no-op. */
#ifndef LMD_WIDE_H
#define LMD_WIDE_H

#include "base/config.h"
#include "base/error.h"
#include "lmdisc.h"
#include "registry/peers.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct lmd_metrics;
typedef struct lmd_wide lmd_wide;

/* What wide-area asks of the agent. */
struct lmd_wide_host {
    void *ud;
    /* Whether the configured service is to be in the zone now (as for mDNS:
     * announce { } given, healthy or in status mode, not drained). */
    bool (*self_wanted)(void *ud);
    /* Whether the host is drained: nothing of it is published, registered
     * services neither. */
    bool (*drained)(void *ud);
    /* The configured service's TXT as announced now. */
    const lmd_txt *(*self_txt)(void *ud);
    /* txt as announced for NAME:PORT in DOMAIN with SRV target HOST: a copy,
     * signed when trust is on. */
    int (*sign_txt)(void *ud, const char *name, uint16_t port, const lmd_txt *txt, const char *domain,
                    const char *host, lmd_txt *out, char *err, size_t errlen);
    /* The registered service NAME is in the zone for the first time (a
     * client of an agent without mDNS is told "established"). */
    void (*published)(void *ud, const char *name);
    /* Hand every registered service to lmd_wide_service(); returns how
     * many there are (called with w NULL: only count them). */
    size_t (*registered)(void *ud, lmd_wide *w);
    /* The registry was changed from here: its timer is due again. */
    void (*registry_changed)(void *ud);
};

/* What starting wide_area { } refuses without asking the network: its key
 * files (wide_area.key, sweep_key: their syntax and mode) and the SRV
 * target's host name.  0 (also without wide_area { }), or an error naming
 * the setting.  `lmdisc check` and the agent's start checks run it. */
int lmd_wide_check(const struct lmd_config *cfg, lmd_err *err);

/* cfg is the agent's configuration, read for the object's life: a reload
 * replaces it in place, then calls lmd_wide_reload with the old one.
 * Publishing and browsing start at once with wide_area.server, else once
 * the SOA MNAME of the domain's zone is found. */
int lmd_wide_new(struct event_base *base, const struct lmd_config *cfg, lmd_peers *reg,
                 const struct lmd_wide_host *host, lmd_wide **out, lmd_err *err);
/* The configuration changed (old: the one before).  A new wide_area { } or
 * announcement is published afresh; what the old one published under
 * another name or domain is withdrawn in the background, bounded by the
 * update timeout; otherwise the zone is brought up to date. */
int lmd_wide_reload(lmd_wide *w, const struct lmd_config *old, lmd_err *err);
/* Publish, change or withdraw as the agent's state says now (announce,
 * TXT, health, drain); nothing is sent when the zone already agrees. */
void lmd_wide_sync(lmd_wide *w);
/* Sign again and send (the trust signature's half-life). */
void lmd_wide_resign(lmd_wide *w);
/* A registered service, new or changed (its TXT), into the zone; gone:
 * withdrawn from it. */
void lmd_wide_service(lmd_wide *w, const char *name, uint16_t port, const lmd_txt *txt);
void lmd_wide_service_gone(lmd_wide *w, const char *name);
/* What /v1/self says of a registered service in the zone: {"domain",
 * "state": "published" | "publishing" | "failing", "error"}; NULL without
 * wide_area { }. */
json_t *lmd_wide_service_json(const lmd_wide *w, const char *name);
/* Whether NAME is one of the services this agent publishes in the zone. */
bool lmd_wide_owns(const lmd_wide *w, const char *name);
void lmd_wide_metrics(const lmd_wide *w, struct lmd_metrics *out);
/* The instance name published in DNS, or NULL; its SRV target; whether the
 * zone holds it. */
const char *lmd_wide_name(const lmd_wide *w);
const char *lmd_wide_host_name(const lmd_wide *w);
bool lmd_wide_published(const lmd_wide *w);
/* A clean stop: withdraw, turning the loop at most bound seconds. */
void lmd_wide_stop(lmd_wide *w, double bound);
void lmd_wide_free(lmd_wide *w);

#endif
