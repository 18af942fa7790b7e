/* User code run by `lmdisc check` and `lmdisc test`: in a child process
 * confined like the policy worker (confine.h), with a bound in CPU time
 * (ITIMER_PROF) and in wall-clock time (alarm), and the parent's own
 * backstop (SIGKILL) if the child does not end by itself.  Whatever loops,
 * inside Lua or inside a C function, the command returns in time with one
 * line saying which limit stopped it and on which line. */
#include "worker/worker.h"
#include "worker/confine.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char who[512];
static double cpu_limit, wall_limit;

static void say_stopped(int sig)
{
    char at[200], msg[1024];
    lmd_policy_running_at(at, sizeof at);
    int n = snprintf(msg, sizeof msg,
                     "%s: %s%sdid not finish within its time limit of %g s%s (a loop the VM cannot interrupt, "
                     "such as one inside a C function, is caught by this limit)\n",
                     who, at, *at ? ": " : "", sig == SIGPROF ? cpu_limit : wall_limit,
                     sig == SIGPROF ? " of CPU time" : "");
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        (void)w;
    }
    _exit(1);
}

int lmd_worker_run_confined(int (*fn)(void *), void *arg, double cpu, double wall, const char *what)
{
    fflush(stdout);
    fflush(stderr);
    snprintf(who, sizeof who, "%s", what);
    cpu_limit = cpu;
    wall_limit = wall;
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: cannot fork: %s\n", what, strerror(errno));
        return 1;
    }
    if (pid == 0) {
        struct sigaction sa = {.sa_handler = say_stopped};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPROF, &sa, NULL);
        sigaction(SIGALRM, &sa, NULL);
        lmd_err err = {0};
        if (lmd_confine(-1, 0, &err) != 0) {
            fprintf(stderr, "%s: %s\n", what, lmd_err_text(&err));
            _exit(1);
        }
        lmd_confine_cpu(cpu);
        alarm((unsigned)wall + 1 > 1 ? (unsigned)wall : 1);
        int rc = fn(arg);
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    /* the backstop: the child ends itself at its limits; if it does not
     * (signals blocked by a C library it called), it is killed */
    struct timespec t0, now, nap = {0, 10 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int st;
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid) {
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            fprintf(stderr, "%s: ended by signal %d (%s)%s\n", what, WTERMSIG(st), strsignal(WTERMSIG(st)),
                    WTERMSIG(st) == SIGKILL || WTERMSIG(st) == SIGSEGV || WTERMSIG(st) == SIGABRT
                        ? ": out of memory under its cap, or a crash"
                        : "");
            return 1;
        }
        if (got < 0 && errno != EINTR) {
            fprintf(stderr, "%s: waitpid: %s\n", what, strerror(errno));
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
        if (el > wall + 2) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fprintf(stderr, "%s: killed after %.1f s: past its limit of %g s and it did not stop by itself\n", what,
                    el, wall);
            return 1;
        }
        nanosleep(&nap, NULL);
    }
}
