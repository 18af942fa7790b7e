/* `lmdisc test POLICY SUITE...`: luaunit suites against a policy. */
#include "cmd/cmd.h"
#include "policy/policy.h"

#include <stdio.h>
#include <string.h>

int lmd_test_parse(int argc, char **argv, struct lmd_test_args *out)
{
    *out = (struct lmd_test_args){0};
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        puts("Usage: lmdisc test [--timeout SECONDS] POLICY.lua SUITE.lua...\n"
             "Run luaunit suites against POLICY with simulated peers and a controllable\n"
             "clock (require \"lmdisc.testing\"; testing.load() loads POLICY).  No network.\n"
             "Policies run under the agent's own guard, deadline and memory cap; each suite\n"
             "has SECONDS (default 60, or $LMDISC_TEST_TIMEOUT) to finish.");
        return LMD_EXIT_HELP;
    }
    if (argc >= 2 && !strcmp(argv[1], "--timeout")) {
        double t;
        if (argc < 3 || lmd_parse_seconds(argv[2], &t) != 0 || t < 1)
            return lmd_usage_error("test", "--timeout needs a number of seconds from 1 to 86400");
        out->timeout = (unsigned)t;
        argc -= 2;
        argv += 2;
    }
    if (argc < 3)
        return lmd_usage_error("test", argc < 2 ? "missing POLICY.lua" : "missing SUITE.lua");
    out->policy = argv[1];
    out->nsuites = argc - 2;
    out->suites = argv + 2;
    return 0;
}

int lmd_cmd_test(int argc, char **argv)
{
    struct lmd_test_args a;
    int rc = lmd_test_parse(argc, argv, &a); /* a owns nothing: its strings are argv's */
    return rc ? lmd_exit_status(rc) : lmd_policy_run_tests(a.policy, a.nsuites, a.suites, a.timeout);
}
