/* The policy worker's cost, against the in-process VM in the same run
 * (issue 18): built as lmdisc-bench-worker (make lmdisc-bench-worker), run
 * by tests/bench/worker; no network.
 *
 *   lmdisc-bench-worker POLICY.lua EVENTS
 *
 * 1. hook cost: EVENTS joins and leaves through POLICY, one at a time, in
 *    process (lmd_policy_event) and through a worker (post, verdict back
 *    on the loop): the time of each call, median and p99, and the added
 *    cost per call;
 * 2. memory: private memory (Private_Clean + Private_Dirty from
 *    smaps_rollup) of this process and of the worker with 0, 50 and 500
 *    peers joined;
 * 3. wedge to answering: a join whose hook loops inside a C function, then
 *    an ordinary join: the time from the wedging post until the ordinary
 *    verdict is back (the worker stopped at its CPU limit, restarted, took
 *    the peers over).
 * The binary is also the worker (`policy-worker`), as lmdisc is. */
#include "base/log.h"
#include "base/util.h"
#include "policy/policy.h"
#include "worker/worker.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stats(const char *what, double *v, size_t n, double *med, double *p99)
{
    qsort(v, n, sizeof *v, cmp);
    *med = v[n / 2];
    *p99 = v[(size_t)((double)n * 0.99)];
    printf("%-28s median %8.2f us  p99 %8.2f us  (n=%zu)\n", what, *med * 1e6, *p99 * 1e6, n);
}

static long private_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = 0, v;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Private_Clean: %ld kB", &v) == 1 || sscanf(line, "Private_Dirty: %ld kB", &v) == 1)
            kb += v;
    fclose(f);
    return kb;
}

static void make_peer(lmd_node_info *n, size_t i)
{
    static char name[64], host[64];
    static lmd_addr addr;
    static lmd_txt txt;
    if (!txt.n) {
        lmd_txt_set(&txt, "model", "gemma-2b-it", 11, true, NULL, 0);
        lmd_txt_set(&txt, "quant", "Q4_0", 4, true, NULL, 0);
        lmd_txt_set(&txt, "info", "gemma-2b-it Q4_0", 16, true, NULL, 0);
    }
    snprintf(name, sizeof name, "p%zu:8000", i);
    snprintf(host, sizeof host, "p%zu.local", i);
    snprintf(addr.addr, sizeof addr.addr, "10.0.%zu.%zu", i / 250, i % 250);
    addr.family = 4;
    memset(n, 0, sizeof *n);
    n->name = name;
    n->type = "_lmserv._tcp";
    n->domain = "local";
    n->host = host;
    n->port = 8000;
    n->info = "gemma-2b-it Q4_0";
    n->n_addrs = 1;
    n->addrs = &addr;
    n->txt = txt;
}

/* ---- through the worker ----------------------------------------------- */

static struct {
    struct event_base *base;
    int verdicts;
    lmd_node_list peers; /* what the takeover hands over: the joined ones */
} B;

static void on_verdict(void *ud, int kind, const lmd_node_info *peer, const char *reason, int tag,
                       const struct lmd_verdict *v)
{
    (void)ud, (void)kind, (void)peer, (void)reason, (void)tag, (void)v;
    B.verdicts++;
    event_base_loopbreak(B.base);
}

static int takeover(void *ud, lmd_node_list *peers, struct lmd_old_verdict **old)
{
    (void)ud;
    *peers = (lmd_node_list){0};
    *old = calloc(1, sizeof **old);
    return *old ? 0 : LMD_ENOMEM;
}

static int none(void *ud, lmd_node_list *out)
{
    (void)ud;
    *out = (lmd_node_list){0};
    return 0;
}

static void wait_verdicts(int n)
{
    while (B.verdicts < n)
        event_base_loop(B.base, EVLOOP_ONCE);
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "policy-worker"))
        return lmd_worker_serve(3);
    if (argc != 3) {
        fprintf(stderr, "usage: %s POLICY.lua EVENTS\n", argv[0]);
        return 2;
    }
    lmd_log_set_level(LMD_LOG_WARN);
    size_t n = (size_t)atol(argv[2]) / 2;
    double *tin = calloc(2 * n, sizeof *tin), *tw = calloc(2 * n, sizeof *tw);
    lmd_node_info peer;

    /* in process */
    struct lmd_policy_host host = {.peers_all = none};
    struct lmd_config cfg;
    lmd_policy *p;
    lmd_err err = {0};
    if (lmd_policy_new(argv[1], &host, &cfg, &p, &err) != 0) {
        fprintf(stderr, "%s\n", lmd_err_text(&err));
        return 1;
    }
    lmd_config_clear(&cfg);
    long self0 = private_kb(getpid());
    for (size_t k = 0; k < 2 * n; k++) {
        make_peer(&peer, k % n);
        struct lmd_verdict v;
        double t0 = now();
        lmd_policy_event(p, k < n ? LMD_EV_JOIN : LMD_EV_LEAVE, &peer, NULL, 0, k < n ? NULL : "goodbye", &v);
        tin[k] = now() - t0;
        lmd_verdict_clear(&v);
    }
    struct lmd_policy_stats ps;
    lmd_policy_stats(p, &ps);
    lmd_policy_free(p);

    /* memory: a fresh worker with 0, 50 and 500 peers joined (kept) */
    B.base = event_base_new();
    struct lmd_worker_host wh = {.q = {.peers_all = none}, .verdict = on_verdict, .takeover = takeover};
    lmd_worker *w;
    struct lmd_worker_status ws;
    if (lmd_worker_new(B.base, argv[1], &wh, &w, &err) != 0 || lmd_worker_load_wait(w, &cfg, &err) != 0) {
        fprintf(stderr, "%s\n", lmd_err_text(&err));
        return 1;
    }
    lmd_config_clear(&cfg);
    lmd_worker_status(w, &ws);
    long mem[3][2] = {{private_kb(getpid()), private_kb(ws.pid)}};
    size_t steps[] = {50, 500};
    for (size_t s = 0, joined = 0; s < 2; s++) {
        for (; joined < steps[s]; joined++) {
            make_peer(&peer, 100000 + joined);
            lmd_worker_post(w, LMD_EV_JOIN, &peer, NULL, 0, NULL, 0);
            wait_verdicts((int)joined + 1);
        }
        mem[s + 1][0] = private_kb(getpid());
        mem[s + 1][1] = private_kb(ws.pid);
    }
    lmd_worker_free(w);

    /* hook cost through another fresh worker */
    B.verdicts = 0;
    if (lmd_worker_new(B.base, argv[1], &wh, &w, &err) != 0 || lmd_worker_load_wait(w, &cfg, &err) != 0) {
        fprintf(stderr, "%s\n", lmd_err_text(&err));
        return 1;
    }
    lmd_config_clear(&cfg);
    for (size_t k = 0; k < 2 * n; k++) {
        make_peer(&peer, k % n);
        double t0 = now();
        lmd_worker_post(w, k < n ? LMD_EV_JOIN : LMD_EV_LEAVE, &peer, NULL, 0, k < n ? NULL : "goodbye", 0);
        wait_verdicts((int)k + 1);
        tw[k] = now() - t0;
    }
    double mi, pi, mw, pw;
    printf("policy %s, %zu events (joins then leaves)\n", argv[1], 2 * n);
    stats("in process (lmd_policy_event)", tin, 2 * n, &mi, &pi);
    stats("through the worker", tw, 2 * n, &mw, &pw);
    printf("%-28s median %8.2f us  p99 %8.2f us  ratio %.2f (median)\n", "added by the worker", (mw - mi) * 1e6,
           (pw - pi) * 1e6, mw / mi);
    printf("RESULT hook_us in_median=%.2f in_p99=%.2f worker_median=%.2f worker_p99=%.2f\n", mi * 1e6, pi * 1e6,
           mw * 1e6, pw * 1e6);
    printf("private memory (kB): this process (%ld kB with the in-process VM, before it was freed) / worker\n",
           self0);
    for (int s = 0; s < 3; s++)
        printf("RESULT memory peers=%d bench_kb=%ld worker_kb=%ld\n", s == 0 ? 0 : s == 1 ? 50 : 500, mem[s][0],
               mem[s][1]);
    printf("in-process VM held %zu bytes after the events (lmd_policy_stats)\n", ps.memory);
    fflush(stdout);

    /* wedge to answering */
    make_peer(&peer, 999999);
    peer.name = "wedge:8000";
    int before = B.verdicts;
    double t0 = now();
    lmd_worker_post(w, LMD_EV_JOIN, &peer, NULL, 0, NULL, 0);
    peer.name = "after:8000";
    lmd_worker_post(w, LMD_EV_JOIN, &peer, NULL, 0, NULL, 0);
    wait_verdicts(before + 2);
    double back = now() - t0;
    lmd_worker_status(w, &ws);
    printf("RESULT wedge seconds=%.3f restarts=%u state=%s\n", back, ws.restarts, lmd_worker_state_name(ws.state));
    lmd_worker_free(w);
    event_base_free(B.base);
    free(tin);
    free(tw);
    return 0;
}
