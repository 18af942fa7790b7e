/* The agent's local HTTP/JSON API (the only file that speaks HTTP).
 *
 *   GET /v1/peers           live peers as the policy sees them (JSON array)
 *   GET /v1/peers/NAME      one peer
 *   GET /v1/self            what this agent announces, and its state
 *   GET /v1/events          join/update/leave as they happen: NDJSON, or
 *                           Server-Sent Events with Accept: text/event-stream;
 *                           ?since=N (or Last-Event-ID) resumes after event N
 *   GET /v1/services        every service of our type on the network, as a
 *                           one-shot discover would list it (lmdisc discover
 *                           answers from here when an agent runs)
 *   GET /v1/health          200 while connected to avahi-daemon, else 503
 *   GET /metrics            Prometheus text format
 *
 * Served on a Unix socket (mode 0660 by default) and optionally on a TCP
 * address, loopback unless the configuration allows otherwise. */
#ifndef LMD_API_H
#define LMD_API_H

#include "base/error.h"
#include "lmdisc.h"
#include <jansson.h>
#include <sys/types.h>

struct event_base;
typedef struct lmd_api lmd_api;

/* Results of wide-area DNS updates (lmdisc_dns_updates_total{result}). */
enum { LMD_WIDE_OK, LMD_WIDE_UNREACHABLE, LMD_WIDE_REFUSED, LMD_WIDE_BADTIME, LMD_WIDE_BADSIG, LMD_WIDE_BADKEY,
       LMD_WIDE_ERROR, LMD_WIDE_RESULTS };
/* NOTIFYs the publisher sent to wide_area.also_notify, by result
 * (lmdisc_dns_notify_sent_total{result}); coalesced: a change told by a
 * NOTIFY already in flight or waiting its turn. */
enum { LMD_WT_TAKEN, LMD_WT_REFUSED, LMD_WT_UNANSWERED, LMD_WT_FAILED, LMD_WT_COALESCED, LMD_WT_RESULTS };

struct lmd_metrics {
    double peers_alive;       /* kept by the policy */
    double services_seen;     /* on the network, before the filter */
    double joins, updates;
    double leaves_goodbye, leaves_expired, leaves_filtered, leaves_unhealthy, leaves_other;
    double hook_runs, hook_errors, hook_seconds;
    double avahi_reconnects;
    double lua_memory_bytes;
    double checks_total, checks_failed_total, checks_in_flight_peak;
    double self_healthy;      /* 1 up, 0 down, -1 no health check */
    double untrusted[16];     /* peers found untrusted, by lmd_trust_status (trust { }) */
    bool trust;
    double services_registered; /* through the registration API */
    bool avahi_running;
    /* instances on the network not followed: avahi refuses more resolvers
     * (a flood); the registry is incomplete while it is not 0 */
    double instances_unresolved, resolvers_open;
    bool mdns_enabled;
    /* the agent's mDNS listener (open while avahi-daemon is behind): open
     * now, times opened, instances it holds avahi has not confirmed,
     * instances handed to the registry, peers that joined from it, held
     * ones gone (goodbye or TTL), records past its table's cap and
     * datagrams the kernel dropped, datagrams refused (hop limit) */
    double wire_open, wire_opens, wire_held, wire_instances, wire_joins, wire_gone, wire_dropped, wire_refused;
    /* wide_area { }: updates by result, whether the zone holds our records,
     * the last applied update's round trip and size */
    bool wide_area;
    double dns_updates[LMD_WIDE_RESULTS];
    double dns_published, dns_update_seconds, dns_update_bytes;
    double dns_services_published, dns_services_failing; /* the configured one and those registered */
    /* browsing: polls by outcome (unchanged serial, walked, failed), and
     * the services of our type the last walk found */
    double dns_polls[3], dns_services;
    double dns_sweeps[3], dns_expired;          /* swept, kept, failed; leaves by lease */
    double dns_queries, dns_bytes_out, dns_bytes_in; /* what browsing the domain cost */
    double dns_unsigned;  /* answers dropped: not signed by the key (never believed) */
    double dns_skipped;   /* instances a walk skipped (an SRV at "." or outside the domain) */
    double dns_stale;     /* signed answers from a secondary older than the zone already read (not believed) */
    double dns_view_reads[2]; /* reads taken into the view: by the changes a transfer touched, whole */
    const char *dns_read_server; /* where reads go now (wide_area.read, or the primary); NULL: not browsing */
    bool dns_notify_on;          /* wide_area.notify: NOTIFYs taken, by result */
    double dns_notify[5];        /* accepted, unsigned, badsig, invalid, ratelimited */
    bool dns_tell_on;            /* wide_area.also_notify: NOTIFYs sent, by result */
    double dns_tell[LMD_WT_RESULTS];
    /* the policy worker: 0 running, 1 restarting, 2 suspended (3 starting) */
    double policy_state, policy_restarts;
    double policy_dropped; /* events that got the fallback verdict: the worker's queue was full */
    const char *policy_state_name, *policy_last_error; /* NULL without a policy */
    bool dns_sweeper;     /* following the liveness zone (sweep_key) */
    double dns_live_polls[3], dns_live_records, dns_live_expired;
};

/* ---- registrations: servers announce themselves through the agent ----
 * (the Unix socket only; see api_reg.c for the HTTP side) */

struct lmd_service_spec {
    uint16_t port;
    const char *info;        /* NULL: none */
    const lmd_txt *txt;      /* the other keys */
    double ttl;              /* 0: lives as long as the registering connection */
};

/* A registration's open connection, over which its state goes out. */
typedef struct lmd_api_stream lmd_api_stream;

/* Who asks: the registration API is served on the Unix socket only, where
 * the kernel tells the peer's uid (SO_PEERCRED).  A registration belongs to
 * the uid that made it: another uid's PATCH, DELETE or pass is refused
 * (LMD_EPERM, 403) unless it is an admin.  Admins are root and the agent's
 * own user, who can stop or signal the agent anyway; only they may drain
 * the host (and cancel a drain), which the API checks itself. */
struct lmd_api_caller {
    uid_t uid;
    bool admin;
};

/* The registration callbacks return 0 or a negative LMD_E* code with err
 * filled (base/error.h); the API answers with the HTTP status of the code
 * (lmd_api_status). */
struct lmd_api_registry {
    int (*add)(void *ud, const struct lmd_api_caller *who, const char *name, const struct lmd_service_spec *spec,
               lmd_api_stream *stream, json_t **doc, lmd_err *err);
    /* the connection of a registration closed (its client is gone): withdraw */
    void (*closed)(void *ud, lmd_api_stream *stream);
    /* set: keys to set; remove: keys to drop; info: NULL to keep */
    int (*patch)(void *ud, const struct lmd_api_caller *who, const char *name, const lmd_txt *set,
                 const lmd_txt *remove, const char *info, json_t **doc, lmd_err *err);
    int (*remove)(void *ud, const struct lmd_api_caller *who, const char *name, json_t **doc, lmd_err *err);
    int (*pass)(void *ud, const struct lmd_api_caller *who, const char *name, json_t **doc, lmd_err *err);
    int (*drain)(void *ud, double grace, json_t **doc, lmd_err *err);
    /* cancel a drain: {"cancelled": false} when there is none */
    int (*undrain)(void *ud, json_t **doc, lmd_err *err);
};

/* Tell a registration's client a state ("registering", "established",
 * "renamed", "withdrawn"); end: the last line, the stream closes after it
 * (and closed() is not called for it). */
void lmd_api_stream_state(lmd_api_stream *s, const char *state, const char *name, const char *reason, bool end);

struct lmd_api_source {
    void *ud;
    const struct lmd_api_registry *reg;           /* NULL: no registration API */
    int (*peers)(void *ud, lmd_node_list *out);   /* kept peers, policy info */
    json_t *(*self)(void *ud);                    /* /v1/self document */
    void (*metrics)(void *ud, struct lmd_metrics *out);
    /* every service of our type on the network (ours included), and whether
     * the initial scan is done */
    int (*services)(void *ud, lmd_node_list *out, bool *settled);
    const char *type;
};

struct lmd_api_config {
    const char *socket;       /* NULL: no Unix socket */
    unsigned socket_mode;
    const char *listen;       /* "host:port" or NULL */
    bool allow_remote;        /* a non-loopback listen address is refused unless set */
};

int lmd_api_new(struct event_base *base, const struct lmd_api_config *cfg, const struct lmd_api_source *src,
                lmd_api **out, lmd_err *err);
/* What lmd_api_new would refuse, checked without listening (listen.c): a
 * socket path too long, taken by something else or in a directory this
 * process may not create it in; a listen address that is not HOST:PORT, or
 * not loopback without allow_remote.  0, or an error saying which. */
int lmd_api_check(const struct lmd_api_config *cfg, lmd_err *err);
/* api.listen "HOST:PORT" ("[::1]:7717") into host and port, by the rule
 * above (a non-loopback HOST needs allow_remote). */
int lmd_api_parse_listen(const char *spec, bool allow_remote, char *host, size_t hostlen, uint16_t *port,
                         lmd_err *err);
/* Record an event (kind: an lmd_event_kind) and send it to every watcher. */
void lmd_api_event(lmd_api *api, int kind, const lmd_node_info *peer, unsigned changes,
                   const char *reason);
void lmd_api_free(lmd_api *api);
/* The HTTP status that answers an LMD_E* code. */
int lmd_api_status(int code);

#endif
