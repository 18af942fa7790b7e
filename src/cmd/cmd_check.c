/* `lmdisc check [--user NAME] CONFIG.lua`: load and validate, then run
 * every start check of the agent that needs no network (agent/preflight.c),
 * as the user the agent runs as.  Touches no network. */
#include "agent/agent.h"
#include "cmd/cmd.h"
#include "policy/policy.h"
#include "worker/worker.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char check_help[] =
    "Usage: lmdisc check [--user NAME] [--timeout SECONDS] CONFIG.lua\n"
    "Load and validate a configuration without touching the network: syntax,\n"
    "unknown keys, wrong types, misspelt hooks; then every check the agent makes\n"
    "at start: the key, certificate and fleet files of trust { } and the TSIG\n"
    "keys of wide_area { } (readable by this user, modes, syntax), the API's\n"
    "socket and listen rules, the health URL.  Each problem is said with the\n"
    "FILE:LINE that asked for it.  Exit 0 if the agent would start with it.\n"
    "\n"
    "  -u, --user NAME  check as user NAME (and its groups), the user the agent\n"
    "                   runs as (root only; the Debian service's is lmdisc)\n"
    "  -t, --timeout S  CPU seconds the configuration's code may run (default 5,\n"
    "                   the agent's own limit; 3 x S of wall clock): a loop\n"
    "                   ends the check with exit 1 and the line it was on\n"
    "  -h, --help       show this help\n";

int lmd_check_parse(int argc, char **argv, struct lmd_check_args *out)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'}, {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    *out = (struct lmd_check_args){0};
    int c;
    lmd_getopt_reset();
    while ((c = getopt_long(argc, argv, "u:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            if (!*optarg)
                return lmd_usage_error("check", "--user needs a user name");
            out->user = optarg;
            break;
        case 't':
            if (lmd_parse_seconds(optarg, &out->timeout) != 0 || out->timeout > 3600)
                return lmd_usage_error("check", "--timeout needs a number of seconds from 0 to 3600");
            break;
        case 'h': fputs(check_help, stdout); return LMD_EXIT_HELP;
        default:
            return lmd_usage_error("check", optopt == 'u'   ? "--user needs a user name"
                                            : optopt == 't' ? "--timeout needs a number of seconds"
                                                            : "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return lmd_usage_error("check", "missing CONFIG.lua");
    if (argc - optind > 1)
        return lmd_usage_error("check", "give one file to check");
    out->config = argv[optind];
    return 0;
}

/* Become NAME for the rest of this process, as systemd's User= does: its
 * uid, its group and its supplementary groups. */
static int become(const char *name)
{
    errno = 0;
    const struct passwd *pw = getpwnam(name);
    if (!pw) {
        fprintf(stderr, "lmdisc check: no user '%s'%s%s\n", name, errno ? ": " : "", errno ? strerror(errno) : "");
        return LMD_EXIT_FAIL;
    }
    if (geteuid() == pw->pw_uid)
        return 0;
    if (geteuid() != 0) {
        fprintf(stderr, "lmdisc check: --user %s: only root may check as another user (or run it as %s)\n", name,
                name);
        return LMD_EXIT_FAIL;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        fprintf(stderr, "lmdisc check: cannot become user %s: %s\n", name, strerror(errno));
        return LMD_EXIT_FAIL;
    }
    return 0;
}

static int host_none_peers(void *ud, lmd_node_list *out)
{
    (void)ud;
    out->n = 0;
    out->nodes = NULL;
    return 0;
}

static void report(void *ud, const char *line)
{
    (void)ud;
    fprintf(stderr, "%s\n", line);
}

static void where_of(void *wud, const char *section, char *buf, size_t len)
{
    lmd_policy_where(wud, section, buf, len);
}

/* in the confined child (see main below) */
static int check_config(void *arg)
{
    const struct lmd_check_args *ap = arg;
    struct lmd_check_args a = *ap;
    struct lmd_policy_host host = {.peers = host_none_peers};
    struct lmd_config cfg;
    lmd_err err = {0};
    lmd_policy *p;
    if (lmd_policy_new(a.config, &host, &cfg, &p, &err) != 0) {
        fprintf(stderr, "%s\n", lmd_err_text(&err));
        return LMD_EXIT_FAIL;
    }
    const char *w = lmd_policy_warnings(p);
    if (*w)
        fprintf(stderr, "%s", w);
    int failed = lmd_agent_preflight(&cfg, where_of, p, report, NULL);
    if (failed) {
        fprintf(stderr, "%s: %d problem%s: the agent would not start with it\n", a.config, failed,
                failed == 1 ? "" : "s");
    } else {
        char hooks[256];
        lmd_policy_hooks(p, hooks, sizeof hooks);
        printf("%s: OK", a.config);
        if (cfg.announce.given)
            printf("; announces port %u as %s", cfg.announce.port, cfg.announce.type);
        else
            printf("; observes only (no announce)");
        printf("; ttl %g s; hooks: %s\n", cfg.registry.ttl, *hooks ? hooks : "none");
    }
    lmd_config_clear(&cfg);
    lmd_policy_free(p);
    return failed ? LMD_EXIT_FAIL : 0;
}

int lmd_cmd_check(int argc, char **argv)
{
    struct lmd_check_args a;
    int rc = lmd_check_parse(argc, argv, &a);
    lmd_check_args_free(&a); /* owns nothing: its strings are argv's */
    if (rc)
        return lmd_exit_status(rc);
    if (a.user && (rc = become(a.user)) != 0)
        return rc;
    /* the configuration's code runs in a confined child, under the limits
     * the agent's policy worker loads it with: a loop there, in Lua or in
     * a C function, ends the check in time with the line it was on */
    char what[600];
    snprintf(what, sizeof what, "lmdisc check: %s", a.config);
    double cpu = a.timeout > 0 ? a.timeout : LMD_WORKER_LOAD_CPU;
    return lmd_worker_run_confined(check_config, &a, cpu, a.timeout > 0 ? 3 * cpu : LMD_WORKER_LOAD_WALL, what);
}
