/* Limits for a process that runs user code (see confine.h). */
#include "worker/confine.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define CONFINE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONFINE_ASAN 1
#endif
#endif

static void close_others(int keep_fd)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        for (int fd = 3; fd < 1024; fd++)
            if (fd != keep_fd)
                close(fd);
        return;
    }
    int fds[256], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != keep_fd && fd != dirfd(d))
            fds[n++] = fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

int lmd_confine_memory(double memory_mb)
{
#ifdef CONFINE_ASAN
    (void)memory_mb;
    return 0;
#else
    if (memory_mb <= 0)
        memory_mb = 32;
    struct rlimit rl;
    if (getrlimit(RLIMIT_DATA, &rl) != 0)
        return LMD_EIO;
    rlim_t want = (rlim_t)((memory_mb + LMD_CONFINE_SLACK_MB) * 1048576.0);
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    rl.rlim_cur = want; /* the soft limit: what Lua cannot reach (no setrlimit in the sandbox) */
    return setrlimit(RLIMIT_DATA, &rl) == 0 ? 0 : LMD_EIO;
#endif
}

int lmd_confine(int keep_fd, double memory_mb, lmd_err *err)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return lmd_err_set(err, LMD_EIO, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    close_others(keep_fd);
    /* Below the core: on a busy machine a policy spinning in C must not take
     * the CPU the core needs to answer the API and the network while it is
     * being stopped (its limits count CPU time, so this changes no verdict). */
    errno = 0;
    if (nice(LMD_CONFINE_NICE) == -1 && errno) /* an increment: allowed to anyone */
        return lmd_err_set(err, LMD_EIO, "nice: %s", strerror(errno));
    if (lmd_confine_memory(memory_mb) != 0)
        return lmd_err_set(err, LMD_EIO, "RLIMIT_DATA: %s", strerror(errno));
    return 0;
}

void lmd_confine_cpu(double seconds)
{
    struct itimerval it = {0};
    if (seconds > 0) {
        it.it_value.tv_sec = (time_t)seconds;
        it.it_value.tv_usec = (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6);
        if (!it.it_value.tv_sec && !it.it_value.tv_usec)
            it.it_value.tv_usec = 1;
    }
    setitimer(ITIMER_PROF, &it, NULL);
}

double lmd_confine_cpu_of(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* after the command name, which may hold spaces and parentheses */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long utime, stime;
    /* fields 3..15: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(utime + stime) / (double)(hz > 0 ? hz : 100);
}
