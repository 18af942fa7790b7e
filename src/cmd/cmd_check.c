/* `lmdisc check CONFIG.lua`: load and validate, touching no network. */
#include "cmd/cmd.h"
#include "policy/policy.h"

#include <stdio.h>
#include <string.h>

static int host_none_peers(void *ud, lmd_node_list *out)
{
    (void)ud;
    out->n = 0;
    out->nodes = NULL;
    return 0;
}

int lmd_check_parse(int argc, char **argv, struct lmd_check_args *out)
{
    *out = (struct lmd_check_args){0};
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        puts("Usage: lmdisc check CONFIG.lua\n"
             "Load and validate a configuration without touching the network: syntax,\n"
             "unknown keys, wrong types, misspelt hooks.  Exit 0 if it is good.");
        return LMD_EXIT_HELP;
    }
    if (argc != 2)
        return lmd_usage_error("check", argc < 2 ? "missing CONFIG.lua" : "give one file to check");
    out->config = argv[1];
    return 0;
}

/* Load the configuration at path as the agent would, and say what it does. */
static int check_config(const char *path)
{
    struct lmd_policy_host host = {.peers = host_none_peers};
    struct lmd_config cfg;
    lmd_err err = {0};
    lmd_policy *p;
    if (lmd_policy_new(path, &host, &cfg, &p, &err) != 0) {
        fprintf(stderr, "%s\n", lmd_err_text(&err));
        return LMD_EXIT_FAIL;
    }
    const char *w = lmd_policy_warnings(p);
    if (*w)
        fprintf(stderr, "%s", w);
    char hooks[256];
    lmd_policy_hooks(p, hooks, sizeof hooks);
    printf("%s: OK", path);
    if (cfg.announce.given)
        printf("; announces port %u as %s", cfg.announce.port, cfg.announce.type);
    else
        printf("; observes only (no announce)");
    printf("; ttl %g s; hooks: %s\n", cfg.registry.ttl, *hooks ? hooks : "none");
    lmd_config_clear(&cfg);
    lmd_policy_free(p);
    return 0;
}

int lmd_cmd_check(int argc, char **argv)
{
    struct lmd_check_args a;
    int rc = lmd_check_parse(argc, argv, &a); /* a owns nothing: its strings are argv's */
    return rc ? lmd_exit_status(rc) : check_config(a.config);
}

