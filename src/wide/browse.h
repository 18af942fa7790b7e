/* Wide-area browsing's state, shared by wide_browse.c (reading the domain)
 * and wide_live.c (liveness: expiry by lease, sweeping stale records). */
#ifndef LMD_AGENT_WIDE_BROWSE_H
#define LMD_AGENT_WIDE_BROWSE_H

#include "agent/internal.h"
#include "dns/dns.h"

#include <event2/event.h>

#define QUERY_TIMEOUT 3.0
#define XFR_TIMEOUT 30.0
#define MAX_INSTANCES 16384 /* services of our type one agent follows in a domain */
#define MAX_INFLIGHT 64     /* queries at once (each a socket) */
#define MAX_ZONE_RECORDS LMD_DNS_XFR_MAX_RRS /* the kept copy of the domain: what one transfer may bring */

struct found {
    char name[64];
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

struct zrec {                   /* one record of the zone copy (wide_zone.c) */
    uint16_t type, port;
    char *owner, *target;
    char owner_label[64], label[64];
    lmd_txt txt;
    char addr[46];
};

struct wzone {                  /* the domain as the last transfer said */
    struct zrec *r;
    size_t n, cap;
    uint32_t serial;
    bool have;
};

struct sweep {                  /* one compare-and-delete, in flight or waiting */
    struct lmd_agent_wbrowse *b;
    char name[64];
    lmd_txt full;               /* the stale TXT: the prerequisite */
    lmd_dns_req *req;           /* NULL: waiting (for room, or to try again) */
    unsigned tries;
    double not_before;          /* monotonic: no try before */
};


struct q {                      /* one query in flight */
    struct lmd_agent_wbrowse *b;
    int type;
    size_t idx;                 /* the instance it is for */
    lmd_dns_req *req;
};

struct later {                  /* a query waiting for room (MAX_INFLIGHT) */
    int type;
    size_t idx;
};

struct lmd_agent_wbrowse {
    lmd_agent *a;
    struct event *timer;
    char type_zone[1024];
    uint32_t serial;
    bool have_serial, walked, failed, logged_down;
    bool queries;               /* transfers refused or too big: plain queries */
    struct found *cur, *prev;
    size_t n_cur, n_prev;
    struct q **qs;              /* in flight */
    size_t n_qs, cap_qs;
    struct later *later;        /* waiting */
    size_t n_later, cap_later;
    double polls[3];            /* unchanged, read, failed */
    struct event *expiry;       /* at the earliest lease end */
    lmd_dns_key *sweep_key;     /* wide_area.sweep_key, NULL: no sweeping */
    struct sweep **sweeps;      /* at most MAX_SWEEPS; MAX_SWEEPS_IN_FLIGHT sent at a time */
    size_t n_sweeps;
    struct event *sweep_timer;  /* the next try of a waiting one */
    double swept[3];            /* swept, kept (refreshed or gone meanwhile), failed */
    double expired;
    double sent, bytes_out, bytes_in;
    struct wzone zone;          /* for IXFR */
    lmd_dns_xfr_req *xreq;      /* the transfer in flight */
};


/* wide_browse.c */
/* f sorted by name (lmd_wb_sort: duplicates dropped) */
const struct found *lmd_wb_find(const struct found *f, size_t n, const char *name);
void lmd_wb_sort(struct found *f, size_t *n);
/* The registry instance of f over proto (4, 6), its address addr. */
void lmd_wb_instance(const lmd_agent_wbrowse *b, const struct found *f, int proto, lmd_addr *addr,
                     struct lmd_instance *in);

/* wide_zone.c: the copy of the domain, for IXFR */
void lmd_wb_zone_clear(struct wzone *zn);
/* Apply a transfer (whole zone, diff, up to date) to the copy; -1: the copy
 * is gone (out of memory, or the diff did not fit it): read it whole. */
int lmd_wb_zone_take(struct wzone *zn, const char *type_zone, const lmd_dns_xfr *x);
int lmd_wb_zone_services(const struct wzone *zn, struct found **out, size_t *n);

/* wide_live.c */
void lmd_wb_take_txt(struct found *f);
void lmd_wb_carry(lmd_agent_wbrowse *b);     /* each cur entry's clock, from prev */
void lmd_wb_arm_expiry(lmd_agent_wbrowse *b); /* at prev's earliest lease end */
int lmd_wb_live_start(lmd_agent_wbrowse *b, lmd_err *err);
void lmd_wb_live_free(lmd_agent_wbrowse *b);

#endif
