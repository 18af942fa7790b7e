/* The lmdisc command line: one file per subcommand (cmd_*.c), the helpers
 * they share (usage.c), and the API client (client.h). */
#ifndef LMD_CMD_H
#define LMD_CMD_H

#include "lmdisc.h"

enum { LMD_EXIT_FAIL = 1, LMD_EXIT_USAGE = 2 };

/* Print "lmdisc CMD: <message>" and a --help hint; returns LMD_EXIT_USAGE. */
int lmd_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int lmd_parse_port(const char *s, uint16_t *port);
/* A number of seconds, 0 < s <= 86400. */
int lmd_parse_seconds(const char *s, double *out);

int lmd_cmd_agent(int argc, char **argv);
int lmd_cmd_announce(int argc, char **argv);
int lmd_cmd_check(int argc, char **argv);
int lmd_cmd_discover(int argc, char **argv);
int lmd_cmd_peers(int argc, char **argv);
int lmd_cmd_test(int argc, char **argv);
int lmd_cmd_watch(int argc, char **argv);

#endif
