/* The agent's start checks (agent.h: lmd_agent_preflight): everything it
 * would refuse at start that needs no network, each said at the line of
 * the configuration that asked for it.  The agent runs them before it
 * starts anything; `lmdisc check` runs them too, so that a configuration
 * it passes is one the agent starts with (as the same user). */
#include "agent/internal.h"
#include "base/util.h"
#include "check/health.h"

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <unistd.h>

static int api_check(const struct lmd_config *c, lmd_err *err)
{
    struct lmd_api_config ac = {.socket = c->api.socket && *c->api.socket ? c->api.socket : NULL,
                                .socket_mode = c->api.socket_mode, .listen = c->api.listen,
                                .allow_remote = c->api.allow_remote};
    return lmd_api_check(&ac, err);
}

static int health_check(const struct lmd_config *c, lmd_err *err)
{
    char host[128], path[256];
    uint16_t port;
    if (c->health.given && c->announce.given && c->health.http &&
        lmd_parse_http_url(c->health.http, host, sizeof host, &port, path, sizeof path) != 0)
        return lmd_err_set(err, LMD_EINVAL, "health.http '%s' is not an http://HOST:PORT/PATH URL", c->health.http);
    return 0;
}

static const struct {
    const char *section;
    int (*check)(const struct lmd_config *c, lmd_err *err);
} CHECKS[] = {
    {"trust", lmd_agent_trust_check},
    {"wide_area", lmd_wide_check},
    {"api", api_check},
    {"health", health_check},
};

int lmd_agent_preflight(const struct lmd_config *cfg, lmd_agent_where_fn where_fn, void *wud,
                        lmd_agent_report_fn report, void *ud)
{
    int failed = 0;
    for (size_t i = 0; i < LMD_ARRAY_LEN(CHECKS); i++) {
        lmd_err e = {0};
        if (CHECKS[i].check(cfg, &e) == 0)
            continue;
        failed++;
        char where[512], who[160] = "";
        where_fn(wud, CHECKS[i].section, where, sizeof where);
        /* a file the service user may not read: say which user that is */
        if (strstr(e.msg, "Permission denied") && geteuid() != 0) {
            const struct passwd *pw = getpwuid(geteuid());
            const struct group *gr = getgrgid(getegid());
            snprintf(who, sizeof who, " (as user %s, uid %u: give it to the agent's group, e.g. chown root:%s FILE; "
                                      "chmod 640 FILE)",
                     pw ? pw->pw_name : "?", (unsigned)geteuid(), gr ? gr->gr_name : "lmdisc");
        }
        char line[2048];
        snprintf(line, sizeof line, "%s: %s%s", where, lmd_err_text(&e), who);
        report(ud, line);
    }
    return failed;
}
