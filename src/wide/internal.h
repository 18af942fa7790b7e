/* What the files of src/wide/ share: the whole of wide-area (publishing,
 * browsing, finding the server) and its link to the agent. */
#ifndef LMD_WIDE_INTERNAL_H
#define LMD_WIDE_INTERNAL_H

#include "api/api.h"
#include "dns/dns.h"
#include "wide/wide.h"

#include <stdbool.h>

typedef struct lmd_wide_set lmd_wide_set;       /* publishing (publish.c, set.c) */
typedef struct lmd_wide_browse lmd_wide_browse; /* reading the domain (browse.c, live.c, zone.c) */
struct lmd_wide_find;                           /* finding the server (server.c) */

struct lmd_wide {
    struct event_base *base;
    const struct lmd_config *cfg;   /* the agent's, replaced in place by a reload */
    lmd_peers *reg;
    struct lmd_wide_host host;
    char *server;                   /* wide_area.server, or the primary found (NULL: not yet) */
    bool server_found;              /* server is the one found, not configured */
    lmd_wide_set *set;              /* the publisher of this configuration */
    lmd_wide_set *retired;          /* replaced by a reload: withdrawing what it left */
    lmd_wide_browse *browse;
    struct lmd_wide_find *find;
};

static inline const char *lmd_wide_type(const struct lmd_config *cfg)
{
    return cfg->announce.type ? cfg->announce.type : LMD_DEFAULT_TYPE;
}

static inline void lmd_wide_registry_changed(const lmd_wide *w)
{
    w->host.registry_changed(w->host.ud);
}

/* set.c: start publishing and browsing (the server is known); the key the
 * publisher holds (transfers are signed with it), or NULL */
int lmd_wide_start(lmd_wide *w, lmd_err *err);
const lmd_dns_key *lmd_wide_key(const lmd_wide *w);

/* browse.c */
int lmd_wide_browse_start(lmd_wide *w, lmd_err *err);
void lmd_wide_browse_free(lmd_wide *w);
void lmd_wide_browse_metrics(const lmd_wide *w, struct lmd_metrics *out);

/* server.c: find the server when none is configured (then lmd_wide_start) */
int lmd_wide_find_start(lmd_wide *w, lmd_err *err);
void lmd_wide_find_free(lmd_wide *w);

#endif
