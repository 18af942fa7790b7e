/* Loading and validating a configuration, as `lmdisc check` does: the input
 * is written to a file in a temporary directory and loaded with
 * lmd_policy_new in the real VM with the embedded mantle, with a host that
 * has no loop (base NULL: timers and processes are accepted but never run),
 * then lmd_policy_free and lmd_config_clear.
 *
 * What a configuration may reach is fenced in here, by symbols of the
 * harness that take precedence over the C library's (the executable comes
 * first in the symbol lookup): while a configuration runs, files can be
 * opened only inside the temporary directory (lmdisc's io.open and io.lines
 * go through open(2); loadfile, dofile and require through fopen), and
 * creating a process or a socket aborts: with no loop, neither may ever
 * happen, so either is a finding.  The temporary directory is emptied after
 * every input.
 *
 * Inputs that never terminate must be stopped by the VM's own deadline
 * (policy { deadline }, 0.25 s while loading); run with -timeout=10 so that
 * a real hang is reported. */
#include "base/config.h"
#include "base/txt.h"
#include "base/util.h"
#include "fuzz.h"
#include "policy/policy.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/socket.h>

static char dir[256];        /* the temporary directory, made once */
static bool verbose;         /* $LMD_FUZZ_VERBOSE: say what each input gave */
static char path[300];       /* dir/agent.lua */
static volatile int fenced;  /* a configuration is running */

/* ---- the fence ----------------------------------------------------------- */

static bool path_allowed(const char *p)
{
    size_t n = strlen(dir);
    if (!p || strncmp(p, dir, n) != 0 || p[n] != '/')
        return false;
    return strstr(p + n, "/..") == NULL; /* no way back out */
}

static void *next_sym(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f)
        fuzz_fail(__FILE__, __LINE__, name);
    return f;
}

#define FENCED_OPEN(name, ...)                                                                                 \
    if (fenced && !path_allowed(filename)) {                                                                   \
        errno = EACCES;                                                                                        \
        return NULL;                                                                                           \
    }                                                                                                          \
    static FILE *(*real)(__VA_ARGS__);                                                                         \
    if (!real)                                                                                                 \
        real = (FILE * (*)(__VA_ARGS__)) next_sym(name);

FILE *fopen(const char *filename, const char *mode)
{
    FENCED_OPEN("fopen", const char *, const char *)
    return real(filename, mode);
}

FILE *fopen64(const char *filename, const char *mode)
{
    FENCED_OPEN("fopen64", const char *, const char *)
    return real(filename, mode);
}

FILE *freopen(const char *filename, const char *mode, FILE *f)
{
    FENCED_OPEN("freopen", const char *, const char *, FILE *)
    return real(filename, mode, f);
}

FILE *freopen64(const char *filename, const char *mode, FILE *f)
{
    FENCED_OPEN("freopen64", const char *, const char *, FILE *)
    return real(filename, mode, f);
}

/* open(2) and friends, which lmdisc's own io.open (lmdisc.open_file, for
 * regular files only) uses */
#define FENCED_FD(name, ...)                                                                                   \
    mode_t mode = 0;                                                                                           \
    if (flags & (O_CREAT | O_TMPFILE)) {                                                                       \
        va_list ap;                                                                                            \
        va_start(ap, flags);                                                                                   \
        mode = (mode_t)va_arg(ap, int);                                                                        \
        va_end(ap);                                                                                            \
    }                                                                                                          \
    if (fenced && !path_allowed(filename)) {                                                                   \
        errno = EACCES;                                                                                        \
        return -1;                                                                                             \
    }                                                                                                          \
    static int (*real)(__VA_ARGS__);                                                                           \
    if (!real)                                                                                                 \
        real = (int (*)(__VA_ARGS__))next_sym(name);

int open(const char *filename, int flags, ...)
{
    FENCED_FD("open", const char *, int, ...)
    return real(filename, flags, mode);
}

int open64(const char *filename, int flags, ...)
{
    FENCED_FD("open64", const char *, int, ...)
    return real(filename, flags, mode);
}

/* relative to a directory: only absolute paths inside the fence */
int openat(int dirfd, const char *filename, int flags, ...)
{
    FENCED_FD("openat", int, const char *, int, ...)
    return real(dirfd, filename, flags, mode);
}

int openat64(int dirfd, const char *filename, int flags, ...)
{
    FENCED_FD("openat64", int, const char *, int, ...)
    return real(dirfd, filename, flags, mode);
}

#define FORBIDDEN(what)                                                                                        \
    if (fenced)                                                                                                \
        fuzz_fail(__FILE__, __LINE__, "a configuration being checked reached " what);

pid_t fork(void)
{
    FORBIDDEN("fork()")
    static pid_t (*real)(void);
    if (!real)
        real = (pid_t(*)(void))next_sym("fork");
    return real();
}

int posix_spawn(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
                char *const argv[], char *const envp[])
{
    FORBIDDEN("posix_spawn()")
    static int (*real)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                       char *const[], char *const[]);
    if (!real)
        real = (int (*)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                        char *const[], char *const[]))next_sym("posix_spawn");
    return real(pid, file, fa, attr, argv, envp);
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    FORBIDDEN("posix_spawnp()")
    static int (*real)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                       char *const[], char *const[]);
    if (!real)
        real = (int (*)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                        char *const[], char *const[]))next_sym("posix_spawnp");
    return real(pid, file, fa, attr, argv, envp);
}

int socket(int domain, int type, int protocol)
{
    FORBIDDEN("socket()")
    static int (*real)(int, int, int);
    if (!real)
        real = (int (*)(int, int, int))next_sym("socket");
    return real(domain, type, protocol);
}

/* Whatever the configuration left in the directory goes, but the file. */
static void clean_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[sizeof dir + 300];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static void remove_dir(void)
{
    clean_dir();
    rmdir(dir);
}

/* ---- what a loaded configuration must be -------------------------------- */

static void check_config(const struct lmd_config *c)
{
    if (c->announce.given) {
        FUZZ_CHECK(c->announce.port >= 1);
        FUZZ_CHECK(c->announce.type && lmd_service_type_valid(c->announce.type, NULL, 0));
        FUZZ_CHECK(!c->announce.name || (*c->announce.name && strlen(c->announce.name) <= 63));
        /* what lmd_pub_new will be given: valid items, info included */
        for (size_t i = 0; i < c->announce_txt.n; i++) {
            const lmd_txt_item *it = &c->announce_txt.items[i];
            FUZZ_CHECK(lmd_txt_key_check(it->key, strlen(it->key), NULL) == 0);
            FUZZ_CHECK(strlen(it->key) + (it->has_value ? 1 + it->value_len : 0) <= LMD_TXT_ITEM_MAX);
        }
        /* and the whole record fits in a packet (lmd_pub_new refuses more) */
        FUZZ_CHECK(lmd_txt_check_record(&c->announce_txt, NULL, 0) == 0);
        FUZZ_CHECK(c->announce.ttl <= 4500);
        const lmd_txt_item *info = lmd_txt_get(&c->announce_txt, "info");
        FUZZ_CHECK(!c->announce.info == !info);
        if (info)
            FUZZ_CHECK(info->value_len == strlen(c->announce.info) &&
                       memcmp(info->value, c->announce.info, info->value_len) == 0);
    } else {
        FUZZ_CHECK(c->announce_txt.n == 0);
    }
    /* the schema's bounds (lua/lmdisc/config.lua), which C relies on */
    FUZZ_CHECK(c->registry.ttl > 0 && c->registry.ttl <= 9000);
    FUZZ_CHECK(c->policy.deadline > 0 && c->policy.deadline <= 10);
    FUZZ_CHECK(c->policy.memory_mb >= 1 && c->policy.memory_mb <= 65536);
    FUZZ_CHECK(c->api.socket && *c->api.socket && strlen(c->api.socket) <= 107); /* sun_path */
    FUZZ_CHECK(c->api.socket_mode <= 0777);
    if (c->health.given) {
        FUZZ_CHECK(c->announce.given);
        FUZZ_CHECK(!c->health.http != !c->health.tcp); /* exactly one */
        FUZZ_CHECK(c->health.interval >= 0.1 && c->health.interval <= 3600);
        FUZZ_CHECK(c->health.timeout >= 0.01 && c->health.timeout <= 60);
        FUZZ_CHECK(c->health.failures >= 1 && c->health.failures <= 100);
        FUZZ_CHECK(c->health.on_fail && (!strcmp(c->health.on_fail, "withdraw") || !strcmp(c->health.on_fail, "status")));
    }
    if (c->checks.given) {
        FUZZ_CHECK(!c->checks.http != !c->checks.tcp);
        FUZZ_CHECK(c->checks.interval >= 0.1 && c->checks.interval <= 3600);
        FUZZ_CHECK(c->checks.timeout >= 0.01 && c->checks.timeout <= 60);
        FUZZ_CHECK(c->checks.failures >= 1 && c->checks.failures <= 100);
        FUZZ_CHECK(c->checks.concurrency >= 1 && c->checks.concurrency <= 256);
    }
    FUZZ_CHECK(c->watchdog.timeout >= 1 && c->watchdog.timeout <= 300);
    FUZZ_CHECK(c->log.level && c->log_level >= 0);
}

/* ---- feedback -------------------------------------------------------------- */

/* liblua is not instrumented, so the mantle's Lua code gives libFuzzer no
 * coverage of its own: what it said is used instead.  Each distinct shape of
 * error message, warning and hook list (digits and quoted text left out)
 * lights a counter of its own, so an input that reaches a new refusal of the
 * schema counts as new coverage. */
__attribute__((section("__libfuzzer_extra_counters"), used)) static uint8_t said[4096];

static void feedback(unsigned salt, const char *text)
{
    uint32_t h = 2166136261u ^ salt;
    char quote = 0;
    for (const char *p = text; *p; p++) {
        char c = *p;
        if (quote) {
            if (c == quote)
                quote = 0;
            continue;
        }
        if (c == '"' || c == '\'') {
            quote = c;
            continue;
        }
        if (c >= '0' && c <= '9')
            continue;
        h = (h ^ (uint8_t)c) * 16777619u;
        if (c == '\n') { /* one counter per line as well */
            said[h % sizeof said]++;
            h = 2166136261u ^ salt;
        }
    }
    said[h % sizeof said]++;
}

static void say(const char *what, const char *text)
{
    if (!verbose)
        return;
    char line[1400];
    int n = snprintf(line, sizeof line, "[fuzz_config] %s: %s\n", what, text);
    if (n > 0)
        (void)!write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* ---- libFuzzer ------------------------------------------------------------ */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_silence();
    verbose = getenv("LMD_FUZZ_VERBOSE") != NULL;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/lmd-fuzz-config-XXXXXX", tmp && *tmp && strlen(tmp) < 200 ? tmp : "/tmp");
    if (!mkdtemp(dir))
        fuzz_fail(__FILE__, __LINE__, "mkdtemp");
    snprintf(path, sizeof path, "%s/agent.lua", dir);
    atexit(remove_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return -1;
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);

    struct lmd_policy_host host = {0};
    struct lmd_config cfg;
    lmd_err err = {0};
    lmd_policy *p = (lmd_policy *)&host; /* must be set either way */
    fenced = 1;
    int rc = lmd_policy_new(path, &host, &cfg, &p, &err);
    if (rc == 0) {
        check_config(&cfg);
        char hooks[256];
        lmd_policy_hooks(p, hooks, sizeof hooks);
        FUZZ_CHECK(memchr(hooks, '\0', sizeof hooks) != NULL);
        const char *w = lmd_policy_warnings(p);
        FUZZ_CHECK(w != NULL);
        feedback(1, hooks);
        feedback(2, w);
        say("OK, hooks", hooks);
        say("warnings", w);
        struct lmd_policy_stats st;
        lmd_policy_stats(p, &st);
        lmd_policy_free(p);
        lmd_config_clear(&cfg);
    } else {
        FUZZ_CHECK(rc < 0);
        FUZZ_CHECK(p == NULL);
        FUZZ_CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        FUZZ_CHECK(lmd_err_text(&err)[0] != '\0'); /* `lmdisc check` prints it: FILE:LINE: what */
        feedback(3, lmd_err_text(&err));
        say("refused", lmd_err_text(&err));
    }
    fenced = 0;
    clean_dir();
    return 0;
}
