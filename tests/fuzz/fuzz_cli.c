/* The command line: the global options and every subcommand's parse
 * function (src/cmd/cmd.h), which fill a struct and do nothing else.
 *
 * The input is split at NUL bytes into at most MAX_ARGS argument strings.
 * They are given, each time in fresh heap copies (so that a pointer kept
 * from an earlier command line shows as a use after free), to:
 *   - lmd_parse_global as `lmdisc ARGS...`, then, as main() does, to the
 *     parse function of the command it found;
 *   - every parse function as `COMMAND ARGS...`, and lmd_client_parse as
 *     `peers ARGS...` (peers and watch).
 * Whatever a parse function accepts must be something the command can run
 * with: a port from 1 to 65535, a valid service type, a name of 1 to 63
 * bytes, valid TXT items with no info key but the INFO argument's, a
 * timeout in (0, 86400]...  Usage errors and --help go to /dev/null. */
#include "base/txt.h"
#include "base/util.h"
#include "cmd/client.h"
#include "cmd/cmd.h"
#include "fuzz.h"

#include <getopt.h>
#include <math.h>
#include <strings.h>

#define MAX_ARGS 24

struct args {
    int argc;
    char *argv[MAX_ARGS + 2];
};

/* argv[0] = name, then the NUL-separated pieces of the input (none for an
 * empty input; "\0" is one empty argument) */
static void make_args(struct args *a, const char *name, const uint8_t *data, size_t size)
{
    a->argc = 0;
    a->argv[a->argc++] = strdup(name);
    size_t start = 0;
    for (size_t i = 0; i <= size && a->argc <= MAX_ARGS; i++) {
        if (i == size || data[i] == '\0') {
            if (i == size && start == size)
                break; /* a trailing NUL ends the last argument, it adds no empty one */
            char *s = malloc(i - start + 1);
            FUZZ_CHECK(s != NULL);
            memcpy(s, data + start, i - start);
            s[i - start] = '\0';
            a->argv[a->argc++] = s;
            start = i + 1;
        }
    }
    a->argv[a->argc] = NULL;
}

/* getopt permutes argv: free the strings, whatever order they are in now */
static void free_args(struct args *a)
{
    for (int i = 0; i < a->argc; i++)
        free(a->argv[i]);
    a->argc = 0;
}

/* s points into one of the argument strings (--type=T: just past the '=') */
static bool in_argv(const struct args *a, const char *s)
{
    for (int i = 0; i < a->argc; i++)
        if (s >= a->argv[i] && s <= a->argv[i] + strlen(a->argv[i]))
            return true;
    return false;
}

/* Coverage cannot tell a 100-byte TXT record from a 1000-byte one; these
 * counters can (one per 64 bytes of an accepted record), so the fuzzer is
 * led towards the packet limit. */
__attribute__((section("__libfuzzer_extra_counters"), used)) static uint8_t txt_size[64];

static void check_rc(int rc)
{
    FUZZ_CHECK(rc == 0 || rc == LMD_EXIT_HELP || rc == LMD_EXIT_USAGE || rc == LMD_EXIT_FAIL);
}

/* ---- each command ----------------------------------------------------- */

static void run_announce(int argc, char **argv, const struct args *a)
{
    struct lmd_announce_args o;
    int rc = lmd_announce_parse(argc, argv, &o);
    check_rc(rc);
    if (rc == 0) {
        FUZZ_CHECK(o.port >= 1);
        FUZZ_CHECK(o.name && *o.name && strlen(o.name) <= 63);
        FUZZ_CHECK(o.type && lmd_service_type_valid(o.type, NULL, 0));
        FUZZ_CHECK(!strcmp(o.type, LMD_DEFAULT_TYPE) || in_argv(a, o.type));
        FUZZ_CHECK(o.ttl <= 86400);
        /* DNS: a valid domain with a key; its options only with it */
        FUZZ_CHECK(!o.domain || (lmd_domain_valid(o.domain) && o.key && *o.key));
        FUZZ_CHECK(o.domain || (!o.key && !o.server && !o.host));
        FUZZ_CHECK(!o.server || lmd_ip_valid(o.server));
        FUZZ_CHECK(o.lease >= 60 && o.lease <= 86400);
        /* the record fits in one packet: lmd_pub_new would refuse it */
        size_t wire = lmd_txt_wire_size(&o.txt);
        txt_size[wire / 64 < sizeof txt_size ? wire / 64 : sizeof txt_size - 1]++;
        FUZZ_CHECK(lmd_txt_check_record(&o.txt, NULL, 0) == 0);
        for (size_t i = 0; i < o.txt.n; i++) {
            const lmd_txt_item *it = &o.txt.items[i];
            FUZZ_CHECK(lmd_txt_key_check(it->key, strlen(it->key), NULL) == 0);
            FUZZ_CHECK(strlen(it->key) + (it->has_value ? 1 + it->value_len : 0) <= LMD_TXT_ITEM_MAX);
            /* info comes only from the INFO argument, which is set as
             * exactly "info": a key that reads as info in any case (TXT
             * keys are case-insensitive) came from --txt */
            if (strcasecmp(it->key, "info") == 0)
                FUZZ_CHECK(strcmp(it->key, "info") == 0);
        }
    }
    lmd_announce_args_free(&o);
}

static void run_discover(int argc, char **argv, const struct args *a)
{
    struct lmd_discover_args o;
    int rc = lmd_discover_parse(argc, argv, &o);
    check_rc(rc);
    if (rc == 0) {
        FUZZ_CHECK(isfinite(o.timeout) && o.timeout > 0 && o.timeout <= 86400);
        FUZZ_CHECK(o.type && lmd_service_type_valid(o.type, NULL, 0));
        FUZZ_CHECK(!strcmp(o.type, LMD_DEFAULT_TYPE) || in_argv(a, o.type));
        FUZZ_CHECK(!o.domain || lmd_domain_valid(o.domain));
        FUZZ_CHECK(o.domain || (!o.key && !o.server));
        FUZZ_CHECK(!o.server || lmd_ip_valid(o.server));
    }
    lmd_discover_args_free(&o);
}

static void run_agent(int argc, char **argv, const struct args *a)
{
    struct lmd_agent_args o;
    int rc = lmd_agent_parse(argc, argv, &o);
    check_rc(rc);
    if (rc == 0)
        FUZZ_CHECK(o.config && in_argv(a, o.config));
    lmd_agent_args_free(&o);
}

static void run_check(int argc, char **argv, const struct args *a)
{
    struct lmd_check_args o;
    int rc = lmd_check_parse(argc, argv, &o);
    check_rc(rc);
    if (rc == 0)
        FUZZ_CHECK(o.config && in_argv(a, o.config) && (!o.user || (*o.user && in_argv(a, o.user))));
    lmd_check_args_free(&o);
}

static void run_test(int argc, char **argv, const struct args *a)
{
    struct lmd_test_args o;
    int rc = lmd_test_parse(argc, argv, &o);
    check_rc(rc);
    if (rc == 0) {
        FUZZ_CHECK(o.policy && in_argv(a, o.policy));
        /* [--timeout SECONDS] POLICY SUITE... */
        bool timeout = !strcmp(argv[1], "--timeout");
        FUZZ_CHECK(timeout ? o.timeout >= 1 && o.timeout <= 86400 : o.timeout == 0);
        FUZZ_CHECK(o.nsuites >= 1 && o.nsuites == argc - 2 - (timeout ? 2 : 0));
        for (int i = 0; i < o.nsuites; i++)
            FUZZ_CHECK(in_argv(a, o.suites[i]));
    }
    lmd_test_args_free(&o);
}

static void run_client(int argc, char **argv, const struct args *a)
{
    struct lmd_client_opts o;
    int rc = lmd_client_parse(argv[0], argc, argv, &o, "help\n");
    check_rc(rc);
    if (rc == 0)
        FUZZ_CHECK(o.socket && (in_argv(a, o.socket) || o.socket == lmd_client_socket()));
}

static const struct {
    const char *name;
    void (*run)(int, char **, const struct args *);
} commands[] = {
    {"agent", run_agent}, {"announce", run_announce}, {"discover", run_discover}, {"check", run_check},
    {"test", run_test},   {"peers", run_client},      {"watch", run_client},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_silence();
    unsetenv("LMDISC_SOCKET");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return -1;
    struct args a;

    /* lmdisc ARGS...: global options, then the command's own */
    make_args(&a, "lmdisc", data, size);
    int first = -7;
    int rc = lmd_parse_global(a.argc, a.argv, &first);
    check_rc(rc);
    if (rc == 0) {
        FUZZ_CHECK(first >= 1 && first <= a.argc);
        for (int i = 1; i < first; i++)
            FUZZ_CHECK(a.argv[i][0] == '-' || (i > 1 && !strcmp(a.argv[i - 1], "--log-level")));
        if (first < a.argc)
            for (size_t c = 0; c < LMD_ARRAY_LEN(commands); c++)
                if (!strcmp(a.argv[first], commands[c].name))
                    commands[c].run(a.argc - first, a.argv + first, &a);
    }
    free_args(&a);

    /* COMMAND ARGS... for every command */
    for (size_t c = 0; c < LMD_ARRAY_LEN(commands); c++) {
        make_args(&a, commands[c].name, data, size);
        commands[c].run(a.argc, a.argv, &a);
        free_args(&a);
    }
    return 0;
}
