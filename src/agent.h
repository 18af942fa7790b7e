/* The agent process (lmdisc agent) and the commands that share its VM. */
#ifndef LMD_AGENT_H
#define LMD_AGENT_H

#include <stdbool.h>

typedef struct lmd_agent lmd_agent;

/* Run until SIGTERM/SIGINT; returns the exit code. */
int lmd_agent_run(const char *config_path, bool log_level_given);

int lmd_cmd_agent(int argc, char **argv);
int lmd_cmd_check(int argc, char **argv);
int lmd_cmd_test(int argc, char **argv);

#endif
