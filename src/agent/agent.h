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

#include <stdbool.h>

/* Run until SIGTERM/SIGINT; returns the exit code.  log_level_given: the
 * command line or $LOGLEVEL set the level, the configuration does not. */
int lmd_agent_run(const char *config_path, bool log_level_given);

#endif
