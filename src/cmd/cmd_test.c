/* `lmdisc test POLICY SUITE...`: luaunit suites against a policy. */
#include "cmd/cmd.h"
#include "lua/policy.h"

#include <stdio.h>
#include <string.h>

int lmd_cmd_test(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        puts("Usage: lmdisc test POLICY.lua SUITE.lua...\n"
             "Run luaunit suites against POLICY with simulated peers and a controllable\n"
             "clock (require \"lmdisc.testing\"; testing.load() loads POLICY).  No network.");
        return 0;
    }
    if (argc < 3)
        return lmd_usage_error("test", argc < 2 ? "missing POLICY.lua" : "missing SUITE.lua");
    return lmd_policy_run_tests(argv[1], argc - 2, argv + 2);
}
