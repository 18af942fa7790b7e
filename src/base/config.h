/* The agent's settings as plain data.
 *
 * lua/lmdisc/config.lua (the schema) is the only source of defaults and of
 * validation; C reads the filled-in, validated settings table (src/policy/
 * settings.c) into this struct and knows nothing of defaults.  Each field is
 * listed once, below: its section, name and kind.  Adding a setting is one
 * line in the schema and one line here.
 *
 * Kinds: STR (char *, NULL when absent), NUM (double), UINT (unsigned),
 * PORT (uint16_t), BOOL (bool).  Optional sections (announce, health,
 * checks) have given = false when the configuration leaves them out. */
#ifndef LMD_CONFIG_H
#define LMD_CONFIG_H

#include "lmdisc.h"

/* Where the agent serves its API unless api { socket = ... } says otherwise;
 * the schema (as lmdisc.API_SOCKET) and the client commands take it from here. */
#define LMD_API_SOCKET "/run/lmdisc/agent.sock"

#define LMD_CFG_ANNOUNCE(X, S) X(S, port, PORT) X(S, name, STR) X(S, type, STR) X(S, info, STR) X(S, ttl, UINT)
#define LMD_CFG_REGISTRY(X, S) X(S, ttl, NUM) X(S, include_self, BOOL)
#define LMD_CFG_POLICY(X, S) X(S, deadline, NUM) X(S, memory_mb, NUM)
#define LMD_CFG_API(X, S) X(S, socket, STR) X(S, socket_mode, UINT) X(S, listen, STR) X(S, allow_remote, BOOL)
#define LMD_CFG_HEALTH(X, S)                                                                                   \
    X(S, http, STR) X(S, tcp, PORT) X(S, interval, NUM) X(S, timeout, NUM) X(S, failures, UINT) X(S, on_fail, STR)
#define LMD_CFG_CHECKS(X, S)                                                                                   \
    X(S, tcp, BOOL) X(S, http, STR) X(S, interval, NUM) X(S, timeout, NUM) X(S, failures, UINT)               \
        X(S, concurrency, UINT)
#define LMD_CFG_LOG(X, S) X(S, level, STR)
#define LMD_CFG_WATCHDOG(X, S) X(S, timeout, NUM)
#define LMD_CFG_TRUST(X, S) X(S, key, STR) X(S, cert, STR) X(S, require, BOOL) X(S, validity, NUM) X(S, revoked, STR)
#define LMD_CFG_WIDE_AREA(X, S)                                                                                \
    X(S, domain, STR) X(S, server, STR) X(S, key, STR) X(S, lease, UINT) X(S, poll, NUM) X(S, host, STR)   \
        X(S, sweep_key, STR) X(S, notify, PORT)
#define LMD_CFG_MDNS(X, S) X(S, enabled, BOOL)

/* SECTION(name, FIELDS) for every section, in the schema's order */
#define LMD_CFG_SECTIONS(SECTION)                                                                              \
    SECTION(announce, LMD_CFG_ANNOUNCE)                                                                        \
    SECTION(registry, LMD_CFG_REGISTRY)                                                                        \
    SECTION(policy, LMD_CFG_POLICY)                                                                            \
    SECTION(api, LMD_CFG_API)                                                                                  \
    SECTION(health, LMD_CFG_HEALTH)                                                                            \
    SECTION(checks, LMD_CFG_CHECKS)                                                                            \
    SECTION(log, LMD_CFG_LOG)                                                                                  \
    SECTION(trust, LMD_CFG_TRUST)                                                                              \
    SECTION(wide_area, LMD_CFG_WIDE_AREA)                                                                      \
    SECTION(mdns, LMD_CFG_MDNS)                                                                                \
    SECTION(watchdog, LMD_CFG_WATCHDOG)

#define LMD_CFG_CTYPE_STR char *
#define LMD_CFG_CTYPE_NUM double
#define LMD_CFG_CTYPE_UINT unsigned
#define LMD_CFG_CTYPE_PORT uint16_t
#define LMD_CFG_CTYPE_BOOL bool

#define LMD_CFG_MEMBER_(S, name, kind) LMD_CFG_CTYPE_##kind name;
#define LMD_CFG_SECTION_(sec, FIELDS)                                                                          \
    struct {                                                                                                   \
        bool given;                                                                                            \
        FIELDS(LMD_CFG_MEMBER_, sec)                                                                           \
    } sec;

struct lmd_config {
    LMD_CFG_SECTIONS(LMD_CFG_SECTION_)
    /* derived while reading, not fields of their own in the list */
    lmd_txt announce_txt;    /* announce.txt with info= added */
    char **trust_fleet;      /* trust.fleet: paths of fleet public keys */
    size_t trust_nfleet;
    char **wide_read;        /* wide_area.read: servers to read the domain from, nearest first */
    size_t wide_nread;
    char **wide_tell;        /* wide_area.also_notify: secondaries NOTIFYed after each change we make */
    size_t wide_ntell;
    int log_level;           /* log.level as an lmd_log_level */
};

enum lmd_cfg_kind { LMD_CFG_STR, LMD_CFG_NUM, LMD_CFG_UINT, LMD_CFG_PORT, LMD_CFG_BOOL };

/* One entry per field, generated from the lists above. */
struct lmd_cfg_field {
    const char *section, *name;
    enum lmd_cfg_kind kind;
    size_t offset;          /* of the value in struct lmd_config */
    size_t given;           /* of its section's given flag */
};
extern const struct lmd_cfg_field lmd_cfg_fields[];
extern const size_t lmd_cfg_nfields;

void lmd_config_clear(struct lmd_config *c);

/* The configured service's instance name: announce.name, else HOST:PORT
 * ("" without announce { }); mDNS may rename it, the zone never does. */
void lmd_config_name(const struct lmd_config *cfg, char *out, size_t len);
/* The TTL of our records: announce.ttl, else half the registry's ttl. */
unsigned lmd_config_record_ttl(const struct lmd_config *cfg);
/* Whether two configurations agree on a section: given or not, and every
 * field but those named in ignore (NULL-terminated; may be NULL). */
bool lmd_config_section_equal(const struct lmd_config *a, const struct lmd_config *b, const char *section,
                              const char *const *ignore);

#endif
