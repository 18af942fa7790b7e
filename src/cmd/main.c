/* lmdisc: global options, then one subcommand (cmd_*.c). */
#include "base/log.h"
#include "base/util.h"
#include "cmd/cmd.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static const char help[] =
    "Usage: lmdisc [--log-level LEVEL] COMMAND [ARGS]\n"
    "LAN discovery for LMServ servers over mDNS/DNS-SD (avahi).\n"
    "\n"
    "Commands:\n"
    "  agent -c CONFIG.lua        run the agent: announce, browse, keep the registry,\n"
    "                             run the Lua policy\n"
    "  announce PORT [INFO] ...   announce one service until interrupted (mDNS; or\n"
    "                             in a DNS domain: --domain D --key FILE)\n"
    "  discover [--timeout S] [--json] [--domain D]\n"
    "                             scan once (mDNS, or DNS with --domain); returns as\n"
    "                             soon as the network answered\n"
    "  peers [--json]             the running agent's live peers\n"
    "  watch [--json]             follow the running agent's join/update/leave events\n"
    "  drain [--grace S]          announce status=draining, withdraw after S seconds\n"
    "  check [--user U] CONFIG    validate a configuration and the agent's start checks\n"
    "  test POLICY.lua SUITE.lua...  run luaunit suites against a policy, no network\n"
    "  keygen PREFIX              an Ed25519 key pair for signed announcements\n"
    "  certify --fleet-key FLEET.key --name PATTERN... HOST.pub\n"
    "                             certify a host key for the fleet and the names it\n"
    "                             may announce (--revoke LIST: revoke keys)\n"
    "\n"
    "Options:\n"
    "  --log-level LEVEL   DEBUG, INFO, WARNING or ERROR (default: $LOGLEVEL or INFO)\n"
    "  -h, --help          show this help; 'lmdisc COMMAND --help' for a command\n"
    "  -V, --version       show the version\n";

static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {
    {"agent", lmd_cmd_agent},       {"announce", lmd_cmd_announce},
    {"discover", lmd_cmd_discover}, {"check", lmd_cmd_check},
    {"test", lmd_cmd_test},         {"peers", lmd_cmd_peers},
    {"watch", lmd_cmd_watch},       {"drain", lmd_cmd_drain},
    {"keygen", lmd_cmd_keygen},     {"certify", lmd_cmd_certify},
};

int lmd_parse_global(int argc, char **argv, int *first_command_arg)
{
    int i = 1;
    *first_command_arg = argc;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return LMD_EXIT_HELP;
        }
        if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("lmdisc %s\n", LMD_VERSION);
            return LMD_EXIT_HELP;
        }
        if (!strncmp(a, "--log-level", 11)) {
            const char *v = a[11] == '=' ? a + 12 : (a[11] == '\0' && i + 1 < argc ? argv[++i] : NULL);
            int lvl = lmd_log_parse_level(v);
            if (a[11] != '=' && a[11] != '\0')
                return lmd_usage_error(NULL, "unknown option '%s'", a);
            if (lvl < 0)
                return lmd_usage_error(NULL, "--log-level needs one of DEBUG, INFO, WARNING, ERROR");
            lmd_log_set_level_explicit((enum lmd_log_level)lvl);
            continue;
        }
        return lmd_usage_error(NULL, "unknown option '%s'", a);
    }
    *first_command_arg = i;
    return 0;
}

int main(int argc, char **argv)
{
    /* A parent that blocked or ignored the stopping signals (a server that
     * sigwaits for them) must not hand that on: SIGTERM, from a service
     * manager or the parent-death signal, always stops lmdisc. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &stop, NULL);
    signal(SIGTERM, SIG_DFL);
    if (lmd_log_level_from_env() != 0)
        return lmd_usage_error(NULL, "LOGLEVEL='%.40s' is not one of DEBUG, INFO, WARNING, ERROR",
                               getenv("LOGLEVEL"));
    int i;
    int rc = lmd_parse_global(argc, argv, &i);
    if (rc)
        return lmd_exit_status(rc);
    if (i >= argc)
        return lmd_usage_error(NULL, "missing COMMAND (one of: agent, announce, discover, peers, watch, drain, check, test, keygen, certify)");
    /* hidden: the agent's policy worker, exec'd with its socket on fd 3 */
    if (!strcmp(argv[i], "policy-worker"))
        return lmd_cmd_policy_worker(argc - i, argv + i);
    for (size_t c = 0; c < LMD_ARRAY_LEN(commands); c++)
        if (!strcmp(argv[i], commands[c].name))
            return commands[c].fn(argc - i, argv + i);
    return lmd_usage_error(NULL, "unknown command '%.40s' (one of: agent, announce, discover, peers, watch, drain, check, test, keygen, certify)", argv[i]);
}
