/* What publish.c (one service's updates) and set.c (the services of
 * wide_area { }: start, registered services, stop, reload) share. */
#ifndef LMD_WIDE_PUBLISH_H
#define LMD_WIDE_PUBLISH_H

#include "wide/internal.h"

#define LMD_WP_MAX_ADDRS 8
#define LMD_WP_RETRY_FIRST 1.0
#define LMD_WP_RETRY_MAX 60.0
#define LMD_WP_UPDATE_TIMEOUT 5.0
#define LMD_WP_MAX_IN_FLIGHT 8 /* updates at a time; more wait their turn */
#define LMD_WP_GONE_TRIES 5 /* a withdrawn registered service: withdraw attempts before its records are left to expire */

/* One service in the zone (the configured one, or one registered). */
struct lmd_wpub {
    struct lmd_wpub *next;
    lmd_wide_set *w;
    char name[128];         /* the instance */
    bool registered;        /* through the API: port and txt are ours */
    uint16_t port;
    lmd_txt txt;
    bool gone;              /* registered, then withdrawn: withdraw, then free */
    lmd_dns_req *req;       /* the update in flight */
    int req_mode;
    bool req_host;          /* the update in flight is a withdraw that deletes the host's addresses */
    double req_started;
    size_t req_bytes;
    bool pending;           /* something changed while an update was in flight */
    bool pending_force;     /* ... that must be sent even if the content is the same */
    uint64_t queued;        /* waiting for room among the updates in flight: its place (0: not) */
    bool queued_force;
    struct event *timer;    /* refresh or retry */
    bool published;         /* the zone holds our records, as of the last answer */
    char *sent;             /* what the zone holds (content key), NULL when withdrawn */
    char *req_content;      /* what the update in flight sends */
    char at[64];            /* the shard of the last publish sent ("" the domain): where a withdraw goes */
    bool moving;            /* the domain's shards changed: withdraw from `at`, then publish in the new one */
    unsigned fails;
    char why[1024];         /* the last failure, one line (/v1/self) */
    uint32_t seq;           /* of lmd-live: random start (a restart is a change too) */
};

struct lmd_wide_set {
    lmd_wide *wd;
    lmd_dns_key *key;
    char *domain, *server, *type; /* copies: a retired one outlives its configuration */
    unsigned lease;
    char host[256];         /* the SRV target: HOST.DOMAIN */
    struct lmd_wpub *pubs;      /* the configured service first, when announce { } is given */
    bool stopping;          /* withdrawing everything: nothing more is sent */
    lmd_wide_set *next_retired; /* wd->retired */
    uint64_t queue_seq;
    double counts[LMD_WIDE_RESULTS];
    double last_seconds;    /* the last applied update's round trip */
    double last_bytes;
    /* the liveness zone (livepub.c) */
    char live_zone[300];    /* _live.DOMAIN */
    char host_label[64];    /* HOST of HOST.DOMAIN */
    struct lmd_wlreq **lreqs; /* liveness updates in flight */
    size_t n_lreqs;
    bool live_failing;      /* the last one failed (said once) */
    double live_counts[2];  /* applied, failed */
    /* the shard this host publishes in (shardpub.c) */
    char shard[64];         /* "" the domain itself */
    bool shard_known;       /* nothing is published before */
    bool shard_provisional; /* the list could not be read: the domain itself until it is */
    unsigned shard_fails;
    lmd_dns_req *shard_req;
    struct event *shard_timer;
    /* NOTIFYs to wide_area.also_notify (tell.c) */
    struct lmd_wtell *tell;
    double tell_counts[LMD_WT_RESULTS];
};

/* publish.c */
struct lmd_wpub *lmd_wp_new(lmd_wide_set *w, const char *name);
void lmd_wp_free(struct lmd_wpub *p);
void lmd_wp_unlink(struct lmd_wpub *p);
/* the configured service's publication, or NULL */
struct lmd_wpub *lmd_wp_config(const lmd_wide_set *w);
/* whether the service is to be in the zone now */
bool lmd_wp_wanted(const struct lmd_wpub *p);
/* send one update (LMD_DNS_PUBLISH, or LMD_DNS_WITHDRAW with or without the host's addresses) */
void lmd_wp_send(struct lmd_wpub *p, int mode, bool with_host);
/* publish or withdraw as the agent's state says; force: even if the zone agrees */
void lmd_wp_sync(struct lmd_wpub *p, bool force);

/* livepub.c: write the service's liveness record (alive), or delete it */
void lmd_wp_live(struct lmd_wpub *p, bool alive);
void lmd_wp_live_free_all(lmd_wide_set *w);

/* shardpub.c: read the domain's shards (then lmd_wide_sync); free */
void lmd_wp_shard_start(lmd_wide_set *w);
void lmd_wp_shard_free(lmd_wide_set *w);

/* tell.c: the domain changed by an update of ours: NOTIFY the secondaries
 * of wide_area.also_notify (the set's own list, copied by lmd_wt_start
 * when it starts); whether one is in flight or waiting; free */
int lmd_wt_start(lmd_wide_set *w, const struct lmd_config *cfg);
void lmd_wt_changed(lmd_wide_set *w);
bool lmd_wt_busy(const lmd_wide_set *w);
void lmd_wt_free(lmd_wide_set *w);

/* set.c: a retired (or stopping) publisher with no update in flight is freed */
void lmd_wp_retired_check(lmd_wide_set *w);

#endif
