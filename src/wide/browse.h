/* Wide-area browsing's state, shared by browse.c (reading the domain)
 * and live.c (liveness: expiry by lease, sweeping stale records). */
#ifndef LMD_WIDE_BROWSE_H
#define LMD_WIDE_BROWSE_H

#include "wide/internal.h"

#include <event2/event.h>

#define LMD_WB_QUERY_TIMEOUT 3.0
#define LMD_WB_XFR_TIMEOUT 30.0

struct lmd_wfound {
    char name[64];
    char shard[64];         /* where it is: "" the domain, else the shard SHARD.DOMAIN */
    char host[1025];
    uint16_t port;
    lmd_txt txt;            /* without lmd-live: what the registry sees */
    lmd_txt full;           /* as in the zone (a sweep's prerequisite) */
    char live[24];          /* lmd-live's SEQ/LEASE, "" without */
    unsigned lease;         /* from lmd-live; 0: never expires */
    double changed_at;      /* monotonic: when we last saw it change (or first saw it) */
    bool expired;
    char a4[64], a6[64];
    bool srv, txt_ok;
};

struct lmd_wsweep {                  /* one compare-and-delete, in flight or waiting */
    struct lmd_wide_browse *b;
    char name[64];
    char shard[64];             /* of the browse records: "" the domain, else SHARD.DOMAIN */
    lmd_txt full;               /* the stale TXT: the prerequisite */
    bool live;                  /* of the liveness record INSTANCE.HOST._live.DOMAIN (sweep.c) */
    char host[64], stale[32];   /* live: its HOST label and stale lmd-live value (the prerequisite) */
    bool then_browse;           /* live: once it is deleted, the browse records (TXT full) */
    lmd_dns_req *req;           /* NULL: waiting (for room, or to try again) */
    unsigned tries;
    double not_before;          /* monotonic: no try before */
};


struct lmd_wide_browse {
    lmd_wide *wd;
    struct event *timer;
    char type_zone[1024];
    uint32_t serial;
    bool have_serial, walked, failed, logged_down;
    bool queries;               /* transfers refused or too big: plain queries */
    struct lmd_wfound **view;   /* the services read, sorted by name, each its own allocation (view.c) */
    size_t n_view, cap_view;
    struct lmd_wfound *cur;     /* a whole read (a walk, the whole copy) on its way into the view */
    size_t n_cur;
    lmd_dns_touched touched;    /* the last transfer's changes: only these are read into the view */
    bool by_changes;            /* the next report reads the touched services alone (else cur, whole) */
    bool view_behind;           /* the copy moved without the view: the next read goes whole */
    double view_reads[2];       /* reports into the view: by the changes touched, whole */
    lmd_dns_req *soa;                /* the SOA query in flight */
    lmd_dns_walk *walk;              /* reading the domain by queries (src/dns/walk.c) */
    double polls[3];            /* unchanged, read, failed */
    struct event *expiry;       /* at the earliest lease end */
    lmd_dns_key *sweep_key;     /* wide_area.sweep_key, NULL: no sweeping */
    struct lmd_wsweep **sweeps;      /* at most MAX_SWEEPS; MAX_SWEEPS_IN_FLIGHT sent at a time */
    size_t n_sweeps;
    struct event *sweep_timer;  /* the next try of a waiting one */
    double swept[3];            /* swept, kept (refreshed or gone meanwhile), failed */
    double expired;
    double sent, bytes_out, bytes_in;
    double dropped;             /* answers not signed by our key: dropped, never believed */
    double skipped;             /* instances skipped by a walk (an SRV that cannot be followed) */
    bool said_dropped;          /* the first dropped answer was logged */
    char said_txt[64];          /* the instance last said skipped for too big a TXT */
    uint32_t newest;            /* the newest serial read (RFC 1982): a read server's older one is stale */
    bool have_newest;
    double stale;               /* answers refused for a serial older than newest */
    uint32_t said_stale;        /* the serial last said stale (said once per serial) */
    lmd_dns_zone zone;              /* for IXFR (src/dns/zone.c) */
    lmd_dns_xfr_req *xreq;      /* the transfer in flight */
    struct lmd_wsweeper *sweeper; /* sweep_key: following the liveness zone (sweep.c) */
    size_t read_idx;            /* wide_area.read: the one reads go to (past the list: the primary) */
    double read_since;          /* monotonic: when reads moved off the nearest */
    struct lmd_wnotify *notify; /* wide_area.notify: the NOTIFY listener (notify.c) */
    uint32_t want_serial;       /* a NOTIFY said the domain is at this serial */
    unsigned chase;             /* quick re-polls left until the reader has it */
};


/* reader.c */
bool lmd_wb_serial_fresh(lmd_wide_browse *b, uint32_t serial);
void lmd_wb_serial_read(lmd_wide_browse *b, uint32_t serial);
void lmd_wb_read_failover(lmd_wide_browse *b);

/* view.c: the view (b->view), what changes in it reported to the registry */
/* the view's service of that name, or NULL */
struct lmd_wfound *lmd_wb_find(const lmd_wide_browse *b, const char *name);
/* f sorted by name, duplicates dropped */
void lmd_wb_sort(struct lmd_wfound *f, size_t *n);
/* The registry instance of f over proto (4, 6), its address addr. */
void lmd_wb_instance(const lmd_wide_browse *b, const struct lmd_wfound *f, int proto, lmd_addr *addr,
                     struct lmd_instance *in);
/* A read is done: into the view, either b->cur (whole: every service
 * compared) or, with b->by_changes, only the services b->touched names
 * (from the copy); what changed is reported.  On failure (out of memory)
 * the view is behind the copy: b->view_behind, read whole next time. */
void lmd_wb_report(lmd_wide_browse *b);
void lmd_wb_view_free(lmd_wide_browse *b);
void lmd_wb_found_free(struct lmd_wfound *f, size_t n);

/* browse.c: the server reads go to (wide_area.read in order, then the primary) */
const char *lmd_wb_reader(const lmd_wide_browse *b);

/* view.c: instances read (a walk or the whole copy) into b->cur, sorted */
int lmd_wb_take_found(lmd_wide_browse *b, const lmd_dns_found *in, size_t n);

/* live.c */
void lmd_wb_take_txt(struct lmd_wfound *f);
/* f's TXT (lmd-live stripped) is past LMD_TXT_RECORD_MAX: true, and the
 * instance is to be skipped (counted in b->skipped, said once per name) */
bool lmd_wb_txt_refused(lmd_wide_browse *b, const struct lmd_wfound *f);
void lmd_wb_arm_expiry(lmd_wide_browse *b); /* at the view's earliest lease end */
int lmd_wb_live_start(lmd_wide_browse *b, lmd_err *err);
void lmd_wb_live_free(lmd_wide_browse *b);
/* queue the compare-and-delete of f's browse records / of a liveness
 * record (name, host label, stale value); then lmd_wb_pump */
void lmd_wb_sweep(lmd_wide_browse *b, const struct lmd_wfound *f);
void lmd_wb_sweep_live(lmd_wide_browse *b, const char *name, const char *host, const char *stale,
                       const struct lmd_wfound *then);
void lmd_wb_pump(lmd_wide_browse *b);

/* notify.c: the NOTIFY listener of wide_area.notify (started with
 * browsing; a port that cannot be had is the start's error) */
int lmd_wn_start(lmd_wide_browse *b, lmd_err *err);
void lmd_wn_free(lmd_wide_browse *b);
void lmd_wn_metrics(const lmd_wide_browse *b, struct lmd_metrics *out);
/* notify.c: a NOTIFY signed by our key said the domain changed (to serial,
 * if have): read it now; while the reader is behind that serial (a
 * secondary still transferring), ask again every 20 ms, at most 2 s.
 * When the next poll is due (browse.c, after each one): that, or poll. */
void lmd_wb_notified(lmd_wide_browse *b, uint32_t serial, bool have);
double lmd_wb_next_poll(lmd_wide_browse *b);

/* sweep.c: the liveness zone, for agents with sweep_key */
int lmd_ws_start(lmd_wide_browse *b, lmd_err *err);
void lmd_ws_poll(lmd_wide_browse *b);   /* at each poll */
void lmd_ws_free(lmd_wide_browse *b);
void lmd_ws_metrics(const lmd_wide_browse *b, struct lmd_metrics *out);

#endif
