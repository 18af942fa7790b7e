/* What a process that runs user code gives up before it runs any: the
 * policy worker, and the children of `lmdisc check` and `lmdisc test`.
 *
 * - PR_SET_NO_NEW_PRIVS: no exec (lmdisc.spawn) gains privileges.
 * - Every descriptor closed but stdin/stdout/stderr and keep_fd (the
 *   socketpair): the worker holds no avahi connection, no API socket, no
 *   key file.
 * - RLIMIT_DATA (heap, brk and private mappings): the kernel caps memory,
 *   whatever C path inside Lua allocates.  Not under AddressSanitizer, whose
 *   shadow mappings would count against it.
 * - A CPU-time timer (ITIMER_PROF, user + system time of this process):
 *   SIGPROF when the running call has used its share, even inside a C
 *   function that never returns to the VM.
 * No seccomp filter: spawn needs fork/exec, io.open and os.time need the
 *   file and clock calls, so an allow list would name most of what the
 *   worker can do anyway, and the worker holds nothing worth the rest. */
#ifndef LMD_WORKER_CONFINE_H
#define LMD_WORKER_CONFINE_H

#include "base/error.h"

/* memory_mb: the policy's own cap (policy.memory_mb); the kernel's is that
 * plus LMD_CONFINE_SLACK_MB for the mantle, the libraries and the loop. */
#define LMD_CONFINE_SLACK_MB 96
/* how much nicer than the core the worker runs (nice(2) increment) */
#define LMD_CONFINE_NICE 10
int lmd_confine(int keep_fd, double memory_mb, lmd_err *err);
/* Raise or lower the memory cap (after the configuration set memory_mb). */
int lmd_confine_memory(double memory_mb);
/* SIGPROF after seconds of CPU time from now; 0 disarms. */
void lmd_confine_cpu(double seconds);
/* The CPU time (user + system) of process pid, in seconds from its
 * /proc/PID/stat, or < 0. */
double lmd_confine_cpu_of(int pid);

#endif
