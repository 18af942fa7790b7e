/* Loading and validating a configuration, as `lmdisc check` does: the input
 * is written to a file in a temporary directory and loaded with
 * lmd_policy_new in the real VM with the embedded mantle, with a host that
 * has no loop (base NULL: timers and processes are accepted but never run),
 * then lmd_policy_free and lmd_config_clear.
 *
 * What a configuration may reach is fenced in, two ways, while it runs (in
 * a thread of its own, one per input):
 *   - files, by symbols of the harness that take precedence over the C
 *     library's (the executable comes first in the symbol lookup): they can
 *     be opened only inside the temporary directory (lmdisc's io.open and
 *     io.lines go through open(2); loadfile, dofile and require through
 *     fopen); dlopen aborts too (a library already loaded maps nothing the
 *     kernel could see);
 *   - processes, sockets and new code, where the kernel sees them: a
 *     seccomp filter installed in the configuration's thread traps clone,
 *     clone3, fork, vfork, execve, execveat, socket, socketpair, and mmap,
 *     mprotect or pkey_mprotect with PROT_EXEC (what dlopen does to map a
 *     library).  system() and popen() reach clone3 or clone inside glibc
 *     without calling fork or posix_spawn through the PLT, which is why
 *     interposing those was not enough.  The trap's handler says which
 *     call it was and aborts: libFuzzer saves the input as a crash.  With no
 *     loop, none of these may ever happen, so any is a finding.
 * The filter is raw BPF through prctl(2) (<linux/seccomp.h>): it needs no
 * library, and a filter installed by one thread binds that thread only, so
 * libFuzzer, the sanitizers (whose symbolizer is started before any
 * configuration runs) and the leak check at exit keep working.  The
 * temporary directory is emptied after every input.
 *
 * Self-test: with LMD_FUZZ_FENCE_SELFTEST set, a configuration that opens
 * a file named "lmd-fence-selftest-WHAT" makes the harness do WHAT from
 * inside that io.open, as if the sandbox had let the configuration reach
 * it: system, popen, fork, execve, socket, dlopen (through the harness's
 * symbol), dlopen-kernel (glibc's own dlopen: the mmap with PROT_EXEC) or
 * mmap-exec.  The fence must stop each (CTest: fuzz_config_fence_WHAT).
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
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sanitizer/common_interface_defs.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>

static char dir[256];        /* the temporary directory, made once */
static bool verbose;         /* $LMD_FUZZ_VERBOSE: say what each input gave */
static bool selftest;        /* $LMD_FUZZ_FENCE_SELFTEST */
static char path[300];       /* dir/agent.lua */
/* a configuration is running in this thread (the checks of what it gave
 * run unfenced, so that libFuzzer can write the input of a failed one) */
static _Thread_local volatile int fenced;

extern char **environ;

/* ---- the fence ----------------------------------------------------------- */

static void fence_selftest(const char *filename);

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
    fence_selftest(filename);                                                                                  \
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
    fence_selftest(filename);                                                                                  \
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
    if (fenced) {                                                                                              \
        fenced = 0;                                                                                            \
        fuzz_fail(__FILE__, __LINE__, "a configuration being checked reached " what);                          \
    }

/* dlopen of a library already loaded maps nothing new, so the kernel
 * cannot see it: the C library's entry points are fenced as well */
void *dlopen(const char *file, int mode)
{
    FORBIDDEN("dlopen()")
    static void *(*real)(const char *, int);
    if (!real)
        real = (void *(*)(const char *, int))next_sym("dlopen");
    return real(file, mode);
}

void *dlmopen(Lmid_t lmid, const char *file, int mode)
{
    FORBIDDEN("dlmopen()")
    static void *(*real)(Lmid_t, const char *, int);
    if (!real)
        real = (void *(*)(Lmid_t, const char *, int))next_sym("dlmopen");
    return real(lmid, file, mode);
}

/* ---- the kernel's side: a seccomp filter in the configuration's thread ---- */

#if defined(__x86_64__)
#define FENCE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define FENCE_ARCH AUDIT_ARCH_AARCH64
#else
#error "fuzz_config: no seccomp fence for this architecture"
#endif

static const struct {
    int nr;
    const char *name;
} TRAPPED[] = {
    {__NR_clone, "clone"},
#ifdef __NR_clone3
    {__NR_clone3, "clone3"},
#endif
#ifdef __NR_fork
    {__NR_fork, "fork"},
#endif
#ifdef __NR_vfork
    {__NR_vfork, "vfork"},
#endif
    {__NR_execve, "execve"},
    {__NR_execveat, "execveat"},
    {__NR_socket, "socket"},
    {__NR_socketpair, "socketpair"},
};
/* trapped when their prot (argument 2) has PROT_EXEC: mapping code */
static const struct {
    int nr;
    const char *name;
} EXEC_PROT[] = {
    {__NR_mmap, "mmap"},
    {__NR_mprotect, "mprotect"},
#ifdef __NR_pkey_mprotect
    {__NR_pkey_mprotect, "pkey_mprotect"},
#endif
};

static const char *syscall_name(int nr, bool *exec)
{
    for (size_t i = 0; i < LMD_ARRAY_LEN(TRAPPED); i++)
        if (TRAPPED[i].nr == nr)
            return *exec = false, TRAPPED[i].name;
    for (size_t i = 0; i < LMD_ARRAY_LEN(EXEC_PROT); i++)
        if (EXEC_PROT[i].nr == nr)
            return *exec = true, EXEC_PROT[i].name;
    return *exec = false, "?";
}

/* Argument i (0-5) of the trapped system call, from the registers. */
static unsigned long syscall_arg(const void *uctx, int i)
{
    const ucontext_t *uc = uctx;
#if defined(__x86_64__)
    static const int REGS[] = {REG_RDI, REG_RSI, REG_RDX, REG_R10, REG_R8, REG_R9};
    return (unsigned long)uc->uc_mcontext.gregs[REGS[i]];
#else
    return (unsigned long)uc->uc_mcontext.regs[i];
#endif
}

/* SIGSYS from the filter: which call, then abort (async-signal-safe but
 * for abort's own report, which is libFuzzer's) */
static void trapped(int sig, siginfo_t *si, void *uctx)
{
    (void)sig;
    fenced = 0; /* libFuzzer writes the input: a file outside the directory */
    bool exec = false;
    const char *name = syscall_name(si->si_syscall, &exec);
    const char *why = "";
    if (exec && (syscall_arg(uctx, 2) & PROT_EXEC))
        why = " with PROT_EXEC: mapping code, as dlopen does";
    else if (si->si_syscall == __NR_mmap && (syscall_arg(uctx, 3) & MAP_STACK))
        why = " with MAP_STACK: the stack of a new process (posix_spawn, system, popen) or thread";
    char msg[400];
    int n = snprintf(msg, sizeof msg,
                     "\n==lmdisc-fuzz== %s:%d: the fence: a configuration being checked made system call %d (%s%s), "
                     "stopped by the seccomp filter\n",
                     __FILE__, __LINE__, si->si_syscall, name, why);
    if (n > 0)
        (void)!write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    abort();
}

/* Install the filter in the calling thread (and threads it would create). */
static void fence_thread(void)
{
    struct sock_filter f[64];
    size_t n = 0;
#define STMT(code, k) (f[n++] = (struct sock_filter)BPF_STMT(code, k))
#define JUMP(code, k, jt, jf) (f[n++] = (struct sock_filter)BPF_JUMP(code, k, jt, jf))
    /* another ABI (x32, i386 on x86_64): trapped as a whole */
    STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, FENCE_ARCH, 1, 0);
    STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
    STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef __X32_SYSCALL_BIT
    JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 0, 1);
    STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
#endif
    for (size_t i = 0; i < LMD_ARRAY_LEN(TRAPPED); i++) {
        JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)TRAPPED[i].nr, 0, 1);
        STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
    }
    /* mmap with MAP_STACK (argument 3, low 32 bits): the child's stack
     * glibc's posix_spawn maps, while signals are still deliverable (it
     * blocks them all around its clone, when the kernel could only kill
     * the process with SIGSYS: no message, no input saved) */
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 3);
    STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[3]));
    JUMP(BPF_JMP | BPF_JSET | BPF_K, MAP_STACK, 0, 1);
    STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
    STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (size_t i = 0; i < LMD_ARRAY_LEN(EXEC_PROT); i++) {
        /* prot: the low 32 bits of argument 2 (little-endian) */
        JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)EXEC_PROT[i].nr, 0, 3);
        STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2]));
        JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1);
        STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
        STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    }
    STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
#undef STMT
#undef JUMP
    FUZZ_CHECK(n <= LMD_ARRAY_LEN(f));
    struct sock_fprog prog = {.len = (unsigned short)n, .filter = f};
    /* no_new_privs and the filter bind this thread only (no TSYNC) */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        fuzz_fail(__FILE__, __LINE__, "cannot install the seccomp filter (prctl PR_SET_SECCOMP)");
}

static void fence_init(void)
{
    struct sigaction sa = {.sa_sigaction = trapped, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) != 0)
        fuzz_fail(__FILE__, __LINE__, "sigaction(SIGSYS)");
    /* the sanitizers start their symbolizer (fork + exec) at their first
     * report: start it now, outside the fence, so that a report from a
     * configuration's thread is symbolized instead of trapped */
    char buf[256];
    __sanitizer_symbolize_pc(__builtin_return_address(0), "%p %F %L", buf, sizeof buf);
}

/* The self-test: do what was asked, from inside the configuration's
 * io.open.  Reaching the end means the fence let it through. */
static void fence_selftest(const char *filename)
{
    if (!selftest || !fenced || !filename)
        return;
    const char *base = strrchr(filename, '/');
    base = base ? base + 1 : filename;
    static const char prefix[] = "lmd-fence-selftest-";
    if (strncmp(base, prefix, sizeof prefix - 1) != 0)
        return;
    const char *what = base + sizeof prefix - 1;
    if (!strcmp(what, "system")) {
        (void)!system("true");
    } else if (!strcmp(what, "popen")) {
        FILE *p = popen("true", "r");
        if (p)
            pclose(p);
    } else if (!strcmp(what, "fork")) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid > 0)
            waitpid(pid, NULL, 0);
    } else if (!strcmp(what, "execve")) {
        char *argv[] = {(char *)"/bin/true", NULL};
        execve("/bin/true", argv, environ); /* on success the harness is gone: no message, the test fails */
    } else if (!strcmp(what, "socket")) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd >= 0)
            close(fd);
    } else if (!strcmp(what, "dlopen")) {
        void *h = dlopen("libBrokenLocale.so.1", RTLD_NOW);
        if (h)
            dlclose(h);
    } else if (!strcmp(what, "dlopen-kernel")) {
        /* glibc's dlopen itself, past the harness's symbol: only the
         * kernel's side can stop it */
        void *(*real)(const char *, int) = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
        void *h = real ? real("libBrokenLocale.so.1", RTLD_NOW) : NULL;
        if (h)
            dlclose(h);
    } else if (!strcmp(what, "mmap-exec")) {
        void *m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED)
            munmap(m, 4096);
    } else {
        return;
    }
    char msg[200];
    int n = snprintf(msg, sizeof msg, "\n==lmdisc-fuzz== fence self-test: %s was NOT stopped\n", what);
    if (n > 0)
        (void)!write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
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
    selftest = getenv("LMD_FUZZ_FENCE_SELFTEST") != NULL;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/lmd-fuzz-config-XXXXXX", tmp && *tmp && strlen(tmp) < 200 ? tmp : "/tmp");
    if (!mkdtemp(dir))
        fuzz_fail(__FILE__, __LINE__, "mkdtemp");
    snprintf(path, sizeof path, "%s/agent.lua", dir);
    atexit(remove_dir);
    fence_init();
    return 0;
}

/* One configuration, in a thread of its own behind the seccomp filter:
 * loaded (fenced), what it gave checked (unfenced: a failed check's input
 * is written by libFuzzer), freed (fenced: its finalizers run then). */
static void *run_one(void *arg)
{
    (void)arg;
    fence_thread();
    struct lmd_policy_host host = {0};
    struct lmd_config cfg;
    lmd_err err = {0};
    lmd_policy *p = (lmd_policy *)&host; /* must be set either way */
    fenced = 1;
    int rc = lmd_policy_new(path, &host, &cfg, &p, &err);
    fenced = 0;
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
        fenced = 1;
        lmd_policy_free(p);
        fenced = 0;
        lmd_config_clear(&cfg);
    } else {
        FUZZ_CHECK(rc < 0);
        FUZZ_CHECK(p == NULL);
        FUZZ_CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        FUZZ_CHECK(lmd_err_text(&err)[0] != '\0'); /* `lmdisc check` prints it: FILE:LINE: what */
        feedback(3, lmd_err_text(&err));
        say("refused", lmd_err_text(&err));
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return -1;
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);
    pthread_t t;
    FUZZ_CHECK(pthread_create(&t, NULL, run_one, NULL) == 0);
    FUZZ_CHECK(pthread_join(t, NULL) == 0);
    clean_dir();
    return 0;
}
