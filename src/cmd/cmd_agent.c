/* `lmdisc agent -c CONFIG.lua`: the command line of the agent (agent/). */
#include "agent/agent.h"
#include "base/log.h"
#include "cmd/cmd.h"

#include <getopt.h>
#include <stdio.h>

static const char agent_help[] =
    "Usage: lmdisc agent -c CONFIG.lua\n"
    "Run the agent: announce this server, keep browsing, hold a live registry of\n"
    "peers, and run the Lua policy in CONFIG on every join, update and leave.\n"
    "\n"
    "  -c, --config FILE   the configuration (Lua); see lmdisc-config(5)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Signals: TERM/INT withdraw the announcement and exit 0; HUP reloads CONFIG\n"
    "(a broken file leaves the running policy in force).\n";

int lmd_agent_parse(int argc, char **argv, struct lmd_agent_args *out)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    *out = (struct lmd_agent_args){0};
    int c;
    lmd_getopt_reset();
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': out->config = optarg; break;
        case 'h': fputs(agent_help, stdout); return LMD_EXIT_HELP;
        default:
            return lmd_usage_error("agent", optopt == 'c' ? "-c needs a file" : "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return lmd_usage_error("agent", "unexpected argument '%s' (give the configuration with -c)", argv[optind]);
    if (!out->config)
        return lmd_usage_error("agent", "missing -c CONFIG.lua");
    return 0;
}

int lmd_cmd_agent(int argc, char **argv)
{
    struct lmd_agent_args a;
    int rc = lmd_agent_parse(argc, argv, &a); /* a owns nothing: its strings are argv's */
    return rc ? lmd_exit_status(rc) : lmd_agent_run(a.config, lmd_log_level_explicit());
}
