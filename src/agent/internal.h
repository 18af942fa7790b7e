/* What the files of src/agent/ share: the agent's state and the calls
 * between agent.c (life, reload), events.c (registry events through the
 * policy), self.c (what we announce) and liveness.c (checks). */
#ifndef LMD_AGENT_INTERNAL_H
#define LMD_AGENT_INTERNAL_H

#include "agent/agent.h"
#include "api/api.h"
#include "check/health.h"
#include "base/config.h"
#include "base/limits.h" /* LMD_SETTLE */
#include "policy/policy.h"
#include "mdns/mdns.h"
#include "registry/peers.h"
#include "wide/wide.h"
#include "worker/worker.h"

#include <jansson.h>
#include <string.h>

/* Seconds a drain announces status=draining before withdrawing, unless the
 * request says (lmdisc drain --grace). */
#define LMD_DRAIN_GRACE 30
/* A peer's goodbye is confirmed by asking the network again before its
 * leave is reported (a forged goodbye does nothing): what that takes, at
 * most.  Every peer's, with or without trust { }: a real leave is
 * reported this much later (docs/guide/liveness.md). */
#define LMD_GOODBYE_HOLD 2.0
/* A clean stop withdraws the wide-area records, waiting at most this long
 * for the server (SIGTERM to exit within 2 s even with a silent server; a retry of the
 * UDP packet goes out at 1 s). */
#define LMD_WIDE_STOP_BOUND 1.2
#define LMD_MAX_REGISTRATIONS 64 /* services registered through the API at once */
/* One user's share (root and the agent's user have none), and what users
 * together may hold: the rest stays for root and the agent's user. */
#define LMD_MAX_REGISTRATIONS_PER_UID (LMD_MAX_REGISTRATIONS / 4)
#define LMD_MAX_REGISTRATIONS_USERS (LMD_MAX_REGISTRATIONS - LMD_MAX_REGISTRATIONS_PER_UID)

typedef struct lmd_agent {
    char *path;
    struct event_base *base;
    struct lmd_config cfg;
    lmd_worker *pol;        /* the policy, in its worker process (src/worker/) */
    lmd_worker *pol_next;   /* during a reload: the new configuration's worker */
    struct lmd_config reload_cfg; /* its settings, once it loaded */
    bool reload_ready;      /* loaded: it takes over once the running one is idle */
    lmd_mdns *m;
    lmd_pub *pub;
    lmd_browse *browse;
    struct lmd_mwire *wire;  /* wire.c: open while avahi is behind */
    struct event *wire_timer;
    double wire_busy;        /* when an instance last awaited avahi */
    unsigned wire_joins_now; /* peers joined from the wire since it opened */
    bool wire_failed;        /* could not open: not tried again */
    lmd_peers *reg;
    struct event *sig_int, *sig_term, *sig_hup, *reg_timer;
    struct event *rearm_ev;  /* lmd_agent_rearm: once per loop turn */
    lmd_api *api;
    lmd_health *health;     /* of the local server, if configured */
    lmd_checks *checks;     /* of kept peers, if configured */
    int self_state;         /* health: -1 unknown, 0 down, 1 up */
    struct lmd_metrics counts;  /* the counters; gauges are filled when asked */
    lmd_txt txt;            /* what we announce now */
    char name[128];         /* instance name we asked for */
    bool settled_once;
    struct lmd_svc *svcs;   /* registered through the API (services.c) */
    struct lmd_agent_trust *trust;  /* trust { }: keys and fleet (trust.c) */
    char signed_host[256];  /* the SRV target our last signature named */
    bool draining;          /* nothing is announced again */
    bool drained;           /* the drain's grace is over: withdrawn */
    lmd_wide *wide;         /* wide_area { }: publishing and browsing (src/wide/) */
    bool exiting;           /* past the main loop: withdrawing, no reload */
    struct reload_told *reload_told; /* during a reload: the joins not told yet (agent.c) */
    struct event *drain_ev;
    char *undrain;          /* status= before the drain ("": none), given back if it is cancelled */
} lmd_agent;

/* health { on_fail = "status" }: announce status=down instead of withdrawing */
static inline bool lmd_agent_status_mode(const lmd_agent *a)
{
    return a->cfg.health.on_fail && !strcmp(a->cfg.health.on_fail, "status");
}

/* agent.c: arm the registry's timer for its next deadline */
void lmd_agent_rearm(lmd_agent *a);
/* agent.c: during a reload, a leave of a peer whose join is not told yet
 * (trust { } may keep it out): true, and neither is told. */
bool lmd_agent_reload_untold(lmd_agent *a, const char *name, int kind);

/* events.c */
/* tags of a posted event: what its verdict needs to know */
enum { LMD_TAG_KEPT = 1, LMD_TAG_LIVENESS = 2 };
/* A verdict from the worker (v NULL: the fallback, see worker.h). */
void lmd_agent_on_verdict(void *ud, int kind, const lmd_node_info *peer, const char *reason, int tag,
                          const struct lmd_verdict *v);
/* Every peer the policy may see with its verdict now (a takeover). */
int lmd_agent_takeover(void *ud, lmd_node_list *peers, struct lmd_old_verdict **old);
/* What the worker's host is: queries, verdicts, takeovers. */
struct lmd_worker_host lmd_agent_worker_host(lmd_agent *a);
/* agent.c: a reload's verdict for peer (its joins wait for trust, see agent.c) */
void lmd_agent_reload_verdict(struct reload_told *t, const lmd_node_info *peer, const struct lmd_verdict *v);
/* agent.c: a reload waiting for the running worker to be idle */
void lmd_agent_reload_step(lmd_agent *a);
void lmd_agent_on_reg_event(void *ud, enum lmd_event_kind kind, const lmd_node_info *peer,
                            const lmd_node_info *old, unsigned changes, const char *reason);
/* An event the policy emitted: log, count, checks, API watchers. */
void lmd_agent_emit(lmd_agent *a, const lmd_node_info *peer, int kind, unsigned changes, const char *reason,
                    const char *info, size_t info_len);
/* The policy's verdict into the registry (a failure is logged). */
void lmd_agent_set_verdict(lmd_agent *a, const char *name, bool keep, const char *info, size_t info_len);
extern const struct lmd_browse_callbacks lmd_agent_browse_callbacks;
/* (wire.c) avahi is behind: open the mDNS listener; avahi resolved or
 * removed an instance: the listener does not hold it any more; close it;
 * its gauges and counters into out. */
void lmd_agent_wire_behind(void *ud);
void lmd_agent_wire_confirm(lmd_agent *a, const struct lmd_instance *in);
void lmd_agent_wire_free(lmd_agent *a);
void lmd_agent_wire_metrics(const lmd_agent *a, struct lmd_metrics *out);
int lmd_agent_host_peers(void *ud, lmd_node_list *out);
int lmd_agent_host_peers_all(void *ud, lmd_node_list *out);

/* self.c */
int lmd_agent_start_announce(lmd_agent *a);
void lmd_agent_on_pub(void *ud, enum lmd_pub_event ev, const char *name, const char *detail);
int lmd_agent_host_self(void *ud, lmd_node_info *out, const char **state);
int lmd_agent_host_set_txt(void *ud, const lmd_txt *txt, char *err, size_t errlen);
json_t *lmd_agent_api_self(void *ud);
void lmd_agent_on_self_health(void *ud, bool up, const char *detail);

/* Announce TXT status=STATUS on the configured service (failures logged). */
void lmd_agent_set_status(lmd_agent *a, const char *status);

/* services.c: the registration API, and what /v1/self lists of it */
extern const struct lmd_api_registry lmd_agent_registry;
json_t *lmd_agent_services_json(lmd_agent *a);
int lmd_agent_host_services(void *ud, lmd_node_list *out);
size_t lmd_agent_services_count(const lmd_agent *a);
void lmd_agent_services_free(lmd_agent *a);
/* The wide-area host's registered and published (struct lmd_wide_host). */
size_t lmd_agent_services_to_wide(void *ud, lmd_wide *w);
void lmd_agent_services_dns_published(void *ud, const char *name);

/* trust.c: signed announcements (all of it a no-op without trust { }) */
int lmd_agent_trust_start(lmd_agent *a, lmd_err *err);
/* What trust_start refuses (the files, the key and its certificate), with
 * nothing started: the start checks (preflight.c). */
int lmd_agent_trust_check(const struct lmd_config *cfg, lmd_err *err);
void lmd_agent_trust_free(lmd_agent *a);
/* Read every file trust { } names in cfg again (cfg is a->cfg, or, before
 * a reload hands peers to a new policy, the settings still in force) and
 * apply what changed: peers judged again, everything signed again.  On an
 * error the keys in force stay. */
int lmd_agent_trust_reload(lmd_agent *a, const struct lmd_config *cfg, lmd_err *err);
/* 0 when this host's certificate covers name (or trust is off), else
 * LMD_EPERM with a line saying which names it covers: what a registration
 * is checked with before it is announced. */
int lmd_agent_trust_covers(lmd_agent *a, const char *name, lmd_err *err);
/* txt as announced for (name, port): a copy, signed when trust is on */
int lmd_agent_sign_txt(lmd_agent *a, const char *name, uint16_t port, const lmd_txt *txt, lmd_txt *out, char *err,
                       size_t errlen);
/* The same for another domain and host (wide-area DNS-SD: DOMAIN and
 * HOST.DOMAIN); domain and host NULL: "local" and avahi's host name. */
int lmd_agent_sign_txt_as(lmd_agent *a, const char *name, uint16_t port, const lmd_txt *txt, const char *domain,
                          const char *host, lmd_txt *out, char *err, size_t errlen);
/* lmd_pub_set_txt of the signed txt (failures logged) */
int lmd_agent_publish_txt(lmd_agent *a, lmd_pub *pub, const char *name, uint16_t port, const lmd_txt *txt);
/* the registry's verifier (lmd_peers_verify_cb): what a peer shows, judged */
void lmd_agent_verify_shown(void *ud, const lmd_node_info *peer, double wall, struct lmd_peers_verdict *out);
/* the registry's lmd_peers_judged_cb: logged and counted by reason */
void lmd_agent_judged(void *ud, const lmd_node_info *peer, const struct lmd_peers_verdict *v, bool refused);
/* self.c: sign everything we announce again (the configured service and the registered ones) */
void lmd_agent_resign_all(lmd_agent *a);
void lmd_agent_services_resign(lmd_agent *a);

/* liveness.c: (re)start the checks the configuration asks for */
int lmd_agent_start_checks(lmd_agent *a, lmd_err *err);

/* components.c: the parts of the agent with a life of their own, in the
 * order they start (and the reverse of the order they are freed in).  A
 * reload hands each the configuration it replaced (a->cfg is the new one
 * by then): each compares its own sections and restarts what changed. */
struct lmd_agent_component {
    const char *name;
    int (*start)(lmd_agent *a, lmd_err *err);
    int (*reload)(lmd_agent *a, const struct lmd_config *old, lmd_err *err);
    void (*free)(lmd_agent *a);
};
extern const struct lmd_agent_component lmd_agent_components[];
extern const size_t lmd_agent_ncomponents;
extern const char *const lmd_agent_restart_sections[];
/* The registry's settings (what may be seen depends on trust { } and
 * registry { include_self }). */
struct lmd_peers_config lmd_agent_peers_config(const lmd_agent *a);

#endif
