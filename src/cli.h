/* Command-line entry points; one function per subcommand. */
#ifndef LMD_CLI_H
#define LMD_CLI_H

#include "lmdisc.h"

enum { LMD_EXIT_FAIL = 1, LMD_EXIT_USAGE = 2 };

/* Print "lmdisc CMD: <message>" and a --help hint; returns LMD_EXIT_USAGE. */
int lmd_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int lmd_parse_port(const char *s, uint16_t *port);
int lmd_parse_seconds(const char *s, double *out);

int lmd_cmd_announce(int argc, char **argv);
/* (client.c) the running agent's view of the network, or NULL */
#include <jansson.h>
json_t *lmd_client_services(const char *type);
int lmd_cmd_discover(int argc, char **argv);
int lmd_cmd_peers(int argc, char **argv);
int lmd_cmd_watch(int argc, char **argv);

#endif
