/* lmd-lib-probe: liblmdisc.so used as a program of its own would use it,
 * for the lab suite tests/lab/test_lib.lua (never run outside a lab host:
 * it announces and browses).
 *
 *   lmd-lib-probe discover ARG OPT [TYPE [later]]
 *       lmd_discover_nodes(ARG, opts with timeout OPT): prints
 *       "rc=R complete=0|1 nodes=N elapsed=S", then "node NAME" per node.
 *       later: opts as a later header would have them (one zeroed field
 *       more, size covering it).
 *   lmd-lib-probe announce PORT NAME
 *       lmd_announce_self; prints "started", withdraws on SIGTERM.
 *   lmd-lib-probe registry
 *       lmd_registry_start; prints "started", stops on SIGTERM. */
#include <lmdisc.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SIGTERM / SIGINT blocked here, before the library starts a thread (they
 * inherit the mask), and taken by sigwait */
static sigset_t stop_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    return set;
}

static int wait_stop(sigset_t set)
{
    int sig = 0;
    printf("started\n");
    fflush(stdout);
    return sigwait(&set, &sig) == 0 ? 0 : 1;
}

static int discover(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    struct {
        lmd_discover_opts o;
        uint64_t later_field;
    } opts = {.o = LMD_DISCOVER_OPTS_INIT};
    opts.o.timeout = atof(argv[3]);
    opts.o.type = argc > 4 ? argv[4] : NULL;
    if (argc > 5 && strcmp(argv[5], "later") == 0)
        opts.o.size = sizeof opts;
    lmd_node_list l;
    double t0 = now();
    int rc = lmd_discover_nodes(atof(argv[2]), &opts.o, &l);
    printf("rc=%d complete=%d nodes=%zu elapsed=%.3f\n", rc, opts.o.complete ? 1 : 0, rc ? 0 : l.n, now() - t0);
    for (size_t i = 0; rc == 0 && i < l.n; i++)
        printf("node %s\n", l.nodes[i].name);
    if (rc == 0)
        lmd_node_list_free(&l);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "discover") == 0)
        return discover(argc, argv);
    if (argc >= 4 && strcmp(argv[1], "announce") == 0) {
        sigset_t set = stop_signals();
        lmd_announce_opts o = LMD_ANNOUNCE_OPTS_INIT;
        o.name = argv[3];
        lmd_announcement *a;
        int rc = lmd_announce_self((uint16_t)atoi(argv[2]), "probe", &o, &a);
        if (rc) {
            fprintf(stderr, "announce: %s\n", lmd_strerror(rc));
            return 1;
        }
        rc = wait_stop(set);
        lmd_announce_withdraw(a);
        return rc;
    }
    if (argc >= 2 && strcmp(argv[1], "registry") == 0) {
        sigset_t set = stop_signals();
        lmd_registry *r;
        int rc = lmd_registry_start(NULL, 0, &r);
        if (rc) {
            fprintf(stderr, "registry: %s\n", lmd_strerror(rc));
            return 1;
        }
        rc = wait_stop(set);
        lmd_registry_stop(r);
        return rc;
    }
    fprintf(stderr, "usage: lmd-lib-probe discover ARG OPT [TYPE [later]] | announce PORT NAME | registry\n");
    return 2;
}
