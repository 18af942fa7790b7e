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

int lmd_cmd_agent(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const char *cfg = NULL;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cfg = optarg; break;
        case 'h': fputs(agent_help, stdout); return 0;
        default:
            return lmd_usage_error("agent", optopt == 'c' ? "-c needs a file" : "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return lmd_usage_error("agent", "unexpected argument '%s' (give the configuration with -c)", argv[optind]);
    if (!cfg)
        return lmd_usage_error("agent", "missing -c CONFIG.lua");
    return lmd_agent_run(cfg, lmd_log_level_explicit());
}

