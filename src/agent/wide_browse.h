/* Wide-area browsing's state, shared by wide_browse.c (reading the domain)
 * and wide_live.c (liveness: expiry by lease, sweeping stale records). */
#ifndef LMD_AGENT_WIDE_BROWSE_H
#define LMD_AGENT_WIDE_BROWSE_H

#include "agent/internal.h"
#include "dns/dns.h"

#include <event2/event.h>

#define QUERY_TIMEOUT 3.0

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

struct sweep {                  /* one compare-and-delete in flight */
    struct lmd_agent_wbrowse *b;
    char name[64];
    lmd_dns_req *req;
};

#define T_AXFR 252

struct q {                      /* one query in flight */
    struct lmd_agent_wbrowse *b;
    int type;
    size_t idx;                 /* the instance it is for */
    lmd_dns_req *req;
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
    double polls[3];            /* unchanged, read, failed */
    struct event *expiry;       /* at the earliest lease end */
    lmd_dns_key *sweep_key;     /* wide_area.sweep_key, NULL: no sweeping */
    struct sweep **sweeps;
    size_t n_sweeps;
    double swept[3];            /* swept, kept (refreshed or gone meanwhile), failed */
    double expired;
    double sent, bytes_out, bytes_in;
};


/* wide_browse.c */
const struct found *lmd_wb_find(const struct found *f, size_t n, const char *name);
/* The registry instance of f over proto (4, 6), its address addr. */
void lmd_wb_instance(const lmd_agent_wbrowse *b, const struct found *f, int proto, lmd_addr *addr,
                     struct lmd_instance *in);

/* wide_live.c */
void lmd_wb_take_txt(struct found *f);
void lmd_wb_carry(lmd_agent_wbrowse *b);     /* each cur entry's clock, from prev */
void lmd_wb_arm_expiry(lmd_agent_wbrowse *b); /* at prev's earliest lease end */
int lmd_wb_live_start(lmd_agent_wbrowse *b, lmd_err *err);
void lmd_wb_live_free(lmd_agent_wbrowse *b);

#endif
