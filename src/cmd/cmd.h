/* The lmdisc command line: one file per subcommand (cmd_*.c), the helpers
 * they share (usage.c), and the API client (client.h). */
#ifndef LMD_CMD_H
#define LMD_CMD_H

#include "lmdisc.h"

/* What a command returns: its exit status.  A parse function (below) also
 * returns LMD_EXIT_HELP: --help or --version was printed, exit 0. */
enum { LMD_EXIT_HELP = -1, LMD_EXIT_FAIL = 1, LMD_EXIT_USAGE = 2 };

/* The exit status of a parse that said stop (rc != 0). */
static inline int lmd_exit_status(int rc)
{
    return rc == LMD_EXIT_HELP ? 0 : rc;
}

/* Print "lmdisc CMD: <message>" and a --help hint; returns LMD_EXIT_USAGE. */
int lmd_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int lmd_parse_port(const char *s, uint16_t *port);
/* A number of seconds, 0 < s <= 86400. */
int lmd_parse_seconds(const char *s, double *out);
/* Before a getopt_long loop: no messages of getopt's own, and its state
 * reset in full (optind = 0: glibc also forgets where it was inside a
 * cluster such as -jh, which optind = 1 does not), so that a parse
 * function can run any number of times in one process. */
void lmd_getopt_reset(void);
/* A DNS domain as text ("sd.example.org", a final dot allowed): labels of
 * letters, digits, '-' and '_', 1-63 bytes each, 253 in all. */
bool lmd_domain_valid(const char *d);
/* An IPv4 or IPv6 address in text form. */
bool lmd_ip_valid(const char *s);
/* announce's and discover's options for DNS: opt 'd' --domain, 's'
 * --server, 'k' --key.  0 with arg stored, or LMD_EXIT_USAGE after saying
 * what is wrong with it. */
int lmd_parse_dns_option(const char *cmd, int opt, const char *arg, const char **domain, const char **server,
                         const char **key);
/* The missing value of the option getopt_long returned ':' for. */
int lmd_missing_value(const char *cmd, int argc, char **argv);

/* Parsing a command line is a pure function per command: it fills a struct
 * and does nothing else (no network, no exit; it prints only --help on
 * stdout and a usage error on stderr).  Each returns 0 (go on), LMD_EXIT_HELP
 * (--help was printed: exit 0), LMD_EXIT_USAGE (the usage error was printed) or
 * LMD_EXIT_FAIL (out of memory, said on stderr).  Whatever it returns, the
 * struct is then given to its _free.  Strings that are not said to be
 * malloc'd point into argv (or are constants). */

/* lmdisc [--log-level LEVEL] [--help] [--version] COMMAND ...: applies
 * --log-level (lmd_log_set_level_explicit) and sets *first_command_arg to
 * COMMAND's index in argv (argc when there is none: the caller says it is
 * missing). */
int lmd_parse_global(int argc, char **argv, int *first_command_arg);

struct lmd_announce_args {
    char *name;          /* --name, or <hostname>:<port>; malloc'd */
    const char *type;    /* --type, or LMD_DEFAULT_TYPE */
    uint16_t port;
    unsigned ttl;        /* --ttl; 0: avahi's */
    lmd_txt txt;         /* the --txt items and info=INFO */
    /* --domain: published in DNS (TSIG-signed RFC 2136 updates) instead of mDNS */
    const char *domain;  /* --domain DOMAIN, NULL: mDNS */
    const char *server;  /* --server ADDR; NULL: the SOA MNAME of DOMAIN's zone */
    const char *key;     /* --key FILE (required with --domain) */
    const char *host;    /* --host LABEL; NULL: the short host name */
    unsigned lease;      /* --lease SECONDS, 60-86400 (default 900) */
};
int lmd_announce_parse(int argc, char **argv, struct lmd_announce_args *out);
void lmd_announce_args_free(struct lmd_announce_args *a);

struct lmd_discover_args {
    double timeout;      /* seconds, 0 < timeout <= 86400 */
    bool json, no_agent;
    const char *type;
    const char *domain;  /* --domain DOMAIN: read from DNS instead of mDNS */
    const char *server;  /* --server ADDR; NULL: the SOA MNAME of DOMAIN's zone */
    const char *key;     /* --key FILE: TSIG-sign the queries */
};
int lmd_discover_parse(int argc, char **argv, struct lmd_discover_args *out);
static inline void lmd_discover_args_free(struct lmd_discover_args *a) { (void)a; } /* owns nothing */

struct lmd_agent_args {
    const char *config;
};
int lmd_agent_parse(int argc, char **argv, struct lmd_agent_args *out);
static inline void lmd_agent_args_free(struct lmd_agent_args *a) { (void)a; } /* owns nothing */

struct lmd_check_args {
    const char *config;
    const char *user;    /* --user NAME: check as that user */
    double timeout;      /* --timeout S: CPU seconds for the configuration's code; 0: the agent's */
};
int lmd_check_parse(int argc, char **argv, struct lmd_check_args *out);
static inline void lmd_check_args_free(struct lmd_check_args *a) { (void)a; } /* owns nothing */

struct lmd_test_args {
    const char *policy;
    int nsuites;
    char **suites;       /* points into argv */
    unsigned timeout;     /* seconds per suite; 0: the default */
};
int lmd_test_parse(int argc, char **argv, struct lmd_test_args *out);
static inline void lmd_test_args_free(struct lmd_test_args *a) { (void)a; } /* owns nothing */

/* cmd_dns.c: discover --domain and announce --domain (src/dns/) */
struct json_t;
/* The services as discover's JSON document ({type, domain, complete,
 * nodes}), or NULL with the error said on stderr and *exit_code set. */
struct json_t *lmd_discover_dns(const struct lmd_discover_args *a, int *exit_code);
int lmd_announce_dns(const struct lmd_announce_args *a);

int lmd_cmd_agent(int argc, char **argv);
int lmd_cmd_announce(int argc, char **argv);
int lmd_cmd_check(int argc, char **argv);
int lmd_cmd_discover(int argc, char **argv);
int lmd_cmd_drain(int argc, char **argv);
int lmd_cmd_peers(int argc, char **argv);
int lmd_cmd_test(int argc, char **argv);
/* hidden: `lmdisc policy-worker`, started by the agent with its socketpair on fd 3 */
int lmd_cmd_policy_worker(int argc, char **argv);
int lmd_cmd_watch(int argc, char **argv);
int lmd_cmd_keygen(int argc, char **argv);
int lmd_cmd_certify(int argc, char **argv);

#endif
