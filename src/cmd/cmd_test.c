/* `lmdisc test POLICY SUITE...`: luaunit suites against a policy. */
#include "cmd/cmd.h"
#include "policy/policy.h"
#include "worker/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_TIMEOUT_DEFAULT 60

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

struct suite_run {
    const char *policy, *suite;
};

static int run_one(void *arg)
{
    const struct suite_run *r = arg;
    return lmd_policy_run_suite(r->policy, r->suite);
}

int lmd_cmd_test(int argc, char **argv)
{
    struct lmd_test_args a;
    int rc = lmd_test_parse(argc, argv, &a); /* a owns nothing: its strings are argv's */
    if (rc)
        return lmd_exit_status(rc);
    const char *t = getenv("LMDISC_TEST_TIMEOUT");
    unsigned timeout = a.timeout ? a.timeout : t && atoi(t) > 0 ? (unsigned)atoi(t) : TEST_TIMEOUT_DEFAULT;
    /* each suite in a confined child of its own, as the agent's policy
     * worker: one that loops (in Lua or in C) or blows its memory cap fails
     * with one line, and the next suite runs */
    int failed = 0;
    for (int i = 0; i < a.nsuites; i++) {
        char what[600];
        snprintf(what, sizeof what, "lmdisc test: %s (raise the limit with --timeout)", a.suites[i]);
        struct suite_run r = {a.policy, a.suites[i]};
        if (lmd_worker_run_confined(run_one, &r, timeout, timeout, what) != 0)
            failed++;
    }
    return failed ? 1 : 0;
}
