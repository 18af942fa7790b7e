/* The agent process (lmdisc agent): one process, one loop, data flowing
 * one way:
 *
 *   avahi -> src/mdns/ ---instances--> src/registry/ --events--> src/policy/ (the Lua VM)
 *   DNS   -> src/wide/ -/                             \--snapshot/events--> src/api/
 *
 * Its parts are components (internal.h) that start, reload and are freed
 * in the order of one table (components.c).
 * SIGTERM/SIGINT withdraw the announcement and exit 0; SIGHUP reloads the
 * configuration, keeping the registry. */
#ifndef LMD_AGENT_H
#define LMD_AGENT_H

#include "base/config.h"
#include "policy/policy.h"

#include <stdbool.h>

/* Run until SIGTERM/SIGINT; returns the exit code.  log_level_given: the
 * command line or $LOGLEVEL set the level, the configuration does not. */
int lmd_agent_run(const char *config_path, bool log_level_given);

/* The checks the agent makes at start that need no network (preflight.c):
 * the files trust { } and wide_area { } name (readable by this user, their
 * modes, their syntax, the key and its certificate), the API's socket and
 * listen rules, the health URL.  Each failure goes to report as one line,
 * "FILE:LINE: what and what to do", FILE:LINE the directive in p's
 * configuration; returns how many failed.  The agent refuses to start on
 * any; `lmdisc check` runs the same. */
typedef void (*lmd_agent_report_fn)(void *ud, const char *line);
/* where(wud, section, buf, len): "FILE:LINE" of the directive that set section */
typedef void (*lmd_agent_where_fn)(void *wud, const char *section, char *buf, size_t len);
int lmd_agent_preflight(const struct lmd_config *cfg, lmd_agent_where_fn where, void *wud,
                        lmd_agent_report_fn report, void *ud);

#endif
