/* The trust-model property test's C side (tests/unit/test_trust_model.lua
 * writes the script, runs this on it and compares with its own model):
 * the agent's verdict code -- the registry (src/registry/) with the
 * verifier (src/trust/ lmd_trust_judge_node) as the agent wires them, real
 * keys, certificates and signatures -- driven one line at a time, with a
 * clock of its own.  Not installed.
 *
 *   fleet I                          a fleet key (I = 0, 1, ...)
 *   host I FLEET NB NA NAME...       a host key, certified by fleet FLEET from
 *                                    NB until NA (Unix seconds) for the names
 *   reset T MASK                     a new registry and verifier (require): the
 *                                    clock at T, the fleets of bit MASK trusted
 *   clock T                          the clock moves to T (the wall clock and
 *                                    the monotonic one alike)
 *   step D                           the wall clock is set D seconds ahead
 *                                    (or back, D < 0); the monotonic one stays,
 *                                    and the agent judges every peer again as
 *                                    its clock watch makes it (src/agent/trust.c
 *                                    on_clock_set: a timerfd with
 *                                    TFD_TIMER_CANCEL_ON_SET)
 *   trust MASK                       the fleets trusted now
 *   revoke I                         host I's key into the revocation list
 *   rec NAME HOST ISSUED EXPIRY V FLAGS
 *                                    an instance of NAME (TXT v=V) signed by
 *                                    host HOST ('-': unsigned) at ISSUED (ms)
 *                                    until EXPIRY; FLAGS: '-', or 't' (its TXT
 *                                    changed after signing: v=Vx) and 'a' (from an
 *                                    address it did not sign)
 *   gone NAME                        its goodbye
 *
 * After each step it prints the events in order ("E join NAME", "E update
 * NAME", "E leave NAME REASON") and one line "S" with every name held:
 * NAME=STATUS,V,SHOWN (STATUS: the verdict's name, as lmd_trust_status_name
 * says).  Names are words: '_' stands for ' ' (in avahi's renames, "a1 #2"). */
#include "base/txt.h"
#include "registry/peers.h"
#include "trust/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXK 8
#define MAXN 64

static lmd_trust_secret *fleets[MAXK], *hosts[MAXK];
static lmd_trust_pubkey fleet_pub[MAXK], host_pub[MAXK];
static lmd_trust_cert certs[MAXK];
static int nfleets, nhosts;

static lmd_peers *reg;
static lmd_trust_verifier *ver;
static lmd_trust_revoked *revoked;
static double clock_now; /* the wall clock */
static double mono_now;  /* the monotonic one: a step leaves it */

/* what the driver knows of each name held: its last verdict, whether shown */
static struct held {
    char name[64];
    int status;
    bool shown;
} held[MAXN];
static int nheld;

static struct held *find(const char *name, bool add)
{
    for (int i = 0; i < nheld; i++)
        if (!strcmp(held[i].name, name))
            return &held[i];
    if (!add || nheld == MAXN)
        return NULL;
    struct held *h = &held[nheld++];
    memset(h, 0, sizeof *h);
    snprintf(h->name, sizeof h->name, "%s", name);
    h->status = -1;
    return h;
}

static void forget(const char *name)
{
    struct held *h = find(name, false);
    if (h)
        *h = held[--nheld];
}

/* The agent's verifier (src/agent/trust.c lmd_agent_verify_shown). */
static void verify(void *ud, const lmd_node_info *peer, double wall, struct lmd_peers_verdict *out)
{
    (void)ud;
    lmd_trust_result res;
    lmd_trust_judge_node(ver, peer, (int64_t)wall, &res);
    out->status = (int)res.status;
    out->until = res.valid_until;
    out->newest = res.newest;
    snprintf(out->signer, sizeof out->signer, "%s", res.status == LMD_TRUST_OK ? res.host_id : "");
    snprintf(out->reason, sizeof out->reason, "%s", res.reason);
}

static void judged(void *ud, const lmd_node_info *peer, const struct lmd_peers_verdict *v, bool refused)
{
    (void)ud;
    struct held *h = refused ? NULL : find(peer->name, true);
    if (h)
        h->status = v->status;
}

/* '_' <-> ' ' */
static const char *word(const char *s, char from, char to)
{
    static char buf[2][64];
    static int k;
    char *b = buf[k++ % 2];
    snprintf(b, 64, "%.63s", s);
    for (char *p = b; *p; p++)
        if (*p == from)
            *p = to;
    return b;
}

static void on_event(void *ud, enum lmd_event_kind kind, const lmd_node_info *peer, const lmd_node_info *old,
                     unsigned changes, const char *reason)
{
    (void)ud;
    (void)old;
    (void)changes;
    struct held *h = find(peer->name, true);
    if (h)
        h->shown = kind != LMD_EV_LEAVE;
    printf("E %s %s%s%s\n", lmd_event_kind_name(kind), word(peer->name, ' ', '_'), reason ? " " : "",
           reason ? reason : "");
}

static int cmp_held(const void *a, const void *b)
{
    return strcmp(((const struct held *)a)->name, ((const struct held *)b)->name);
}

static void state(void)
{
    qsort(held, (size_t)nheld, sizeof *held, cmp_held);
    printf("S");
    for (int i = 0; i < nheld; i++) {
        const lmd_node_info *n = lmd_peers_get(reg, held[i].name);
        const lmd_txt_item *v = n ? lmd_txt_get(&n->txt, "v") : NULL;
        printf(" %s=%s,%.*s,%d", word(held[i].name, ' ', '_'),
               held[i].status < 0 ? "none" : lmd_trust_status_name((enum lmd_trust_status)held[i].status),
               v ? (int)v->value_len : 1, v ? (const char *)v->value : "?", held[i].shown);
    }
    printf("\n");
}

static int die(const char *what, const lmd_err *err)
{
    fprintf(stderr, "model_driver: %s: %s\n", what, err ? lmd_err_text(err) : "");
    exit(2);
}

static void set_fleets(unsigned mask)
{
    lmd_trust_fleet f = {0};
    for (int i = 0; i < nfleets; i++)
        if (mask & (1u << i) && lmd_trust_fleet_add(&f, &fleet_pub[i]) != 0)
            die("out of memory", NULL);
    if (lmd_trust_verifier_set_fleet(ver, &f) != 0)
        die("out of memory", NULL);
    free(f.keys);
}

static void reset(double t, unsigned mask)
{
    lmd_peers_free(reg);
    lmd_trust_verifier_free(ver);
    lmd_err err = {0};
    struct lmd_peers_config c = {.include_self = true, .require_trusted = true};
    if (lmd_peers_new(&c, on_event, NULL, NULL, &reg, &err) != 0 || lmd_trust_verifier_new(&ver, &err) != 0)
        die("reset", &err);
    lmd_peers_set_verifier(reg, verify, judged);
    revoked = calloc(1, sizeof *revoked);
    if (!revoked)
        die("out of memory", NULL);
    lmd_trust_verifier_set_revoked(ver, revoked);
    set_fleets(mask);
    nheld = 0;
    clock_now = t;
    mono_now = 1000;
}

static void rec(const char *name, const char *host, unsigned long long issued, unsigned long expiry, const char *v,
                const char *flags)
{
    lmd_txt txt = {0};
    char item[80];
    snprintf(item, sizeof item, "v=%s", v);
    lmd_txt_parse_arg(&txt, item, NULL, 0);
    const char *signed_addr[] = {"10.0.0.1"};
    lmd_trust_announcement a = {.name = name, .type = LMD_DEFAULT_TYPE, .domain = "local", .port = 8000,
                                .host = "h.local", .txt = &txt};
    if (strcmp(host, "-") != 0) {
        int h = atoi(host);
        lmd_trust_sig s = {.expiry = (uint32_t)expiry, .issued = issued, .n_addrs = 1};
        lmd_trust_ip_parse(signed_addr[0], &s.addrs[0]);
        unsigned char *msg;
        size_t len;
        lmd_err err = {0};
        if (h < 0 || h >= nhosts || lmd_trust_canonical(&a, &certs[h], &s, &msg, &len) != 0)
            die("rec: cannot sign", NULL);
        /* as lmd_trust_sign, but for any name (an attacker's signer) */
        crypto_sign_detached(s.sig, NULL, msg, len, hosts[h]->sk);
        free(msg);
        if (lmd_trust_txt_put(&txt, &certs[h], &s, &err) != 0)
            die("rec", &err);
    }
    if (strchr(flags, 't')) {
        snprintf(item, sizeof item, "v=%sx", v);
        lmd_txt_parse_arg(&txt, item, NULL, 0);
    }
    lmd_addr addr = {.family = 4, .ifindex = 2, .ifname = "eth0"};
    snprintf(addr.addr, sizeof addr.addr, "%s", strchr(flags, 'a') ? "10.0.0.66" : signed_addr[0]);
    struct lmd_instance in = {.ifindex = 2, .ifname = "eth0", .proto = 4, .name = name, .type = LMD_DEFAULT_TYPE,
                              .domain = "local", .host = "h.local", .port = 8000, .addr = &addr, .txt = &txt,
                              .complete = true};
    if (lmd_peers_seen(reg, &in, mono_now, clock_now) != 0)
        die("rec: seen", NULL);
    lmd_peers_tick_at(reg, mono_now, clock_now); /* what the agent's timer does next */
    lmd_txt_free(&txt);
}

int main(void)
{
    char line[1024];
    lmd_err err = {0};
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    while (fgets(line, sizeof line, stdin)) {
        char w[8][64] = {{0}};
        int n = sscanf(line, "%63s %63s %63s %63s %63s %63s %63s %63s", w[0], w[1], w[2], w[3], w[4], w[5], w[6],
                       w[7]);
        if (n <= 0)
            continue;
        if (!strcmp(w[0], "fleet")) {
            if (nfleets == MAXK || lmd_trust_secret_generate(&fleets[nfleets], &err) != 0)
                die("fleet", &err);
            lmd_trust_secret_pubkey(fleets[nfleets], &fleet_pub[nfleets]);
            nfleets++;
            continue;
        }
        if (!strcmp(w[0], "host")) {
            const char *names[4];
            int nn = 0;
            for (int i = 5; i < n && nn < 4; i++)
                names[nn++] = w[i];
            int f = atoi(w[2]);
            if (nhosts == MAXK || f < 0 || f >= nfleets || lmd_trust_secret_generate(&hosts[nhosts], &err) != 0)
                die("host", &err);
            lmd_trust_secret_pubkey(hosts[nhosts], &host_pub[nhosts]);
            if (lmd_trust_cert_issue(fleets[f], &host_pub[nhosts], (uint32_t)atol(w[3]), (uint32_t)atol(w[4]),
                                     (uint64_t)nhosts + 1, names, (size_t)nn, &certs[nhosts], &err) != 0)
                die("host", &err);
            nhosts++;
            continue;
        }
        if (!strcmp(w[0], "reset")) {
            reset(atof(w[1]), (unsigned)atoi(w[2]));
        } else if (!strcmp(w[0], "clock")) {
            double t = atof(w[1]);
            mono_now += t - clock_now;
            clock_now = t;
            lmd_peers_tick_at(reg, mono_now, clock_now);
        } else if (!strcmp(w[0], "step")) {
            clock_now += atof(w[1]);
            lmd_peers_rejudge(reg, mono_now, clock_now); /* what on_clock_set does */
        } else if (!strcmp(w[0], "trust")) {
            set_fleets((unsigned)atoi(w[1]));
            lmd_peers_rejudge(reg, mono_now, clock_now);
        } else if (!strcmp(w[0], "revoke")) {
            int h = atoi(w[1]);
            if (h < 0 || h >= nhosts || lmd_trust_revoked_add_key(revoked, &host_pub[h]) != 0)
                die("revoke", NULL);
            lmd_peers_rejudge(reg, mono_now, clock_now);
        } else if (!strcmp(w[0], "rec") && n == 7) {
            rec(word(w[1], '_', ' '), w[2], strtoull(w[3], NULL, 10), strtoul(w[4], NULL, 10), w[5], w[6]);
        } else if (!strcmp(w[0], "gone")) {
            char name[64];
            snprintf(name, sizeof name, "%s", word(w[1], '_', ' '));
            struct lmd_instance in = {.ifindex = 2, .ifname = "eth0", .proto = 4, .name = name,
                                      .type = LMD_DEFAULT_TYPE, .domain = "local"};
            lmd_peers_gone_at(reg, &in, LMD_REASON_GOODBYE, mono_now);
            if (!lmd_peers_get(reg, name))
                forget(name);
        } else {
            fprintf(stderr, "model_driver: cannot read: %s", line);
            return 2;
        }
        state();
    }
    struct lmd_trust_stats st = {0};
    if (ver)
        lmd_trust_verifier_stats(ver, &st);
    fprintf(stderr, "model_driver: last sequence: %llu verdicts, %llu signatures verified, %llu from the cache\n",
            (unsigned long long)st.judged, (unsigned long long)st.signatures, (unsigned long long)st.cached);
    lmd_peers_free(reg);
    lmd_trust_verifier_free(ver);
    for (int i = 0; i < nfleets; i++)
        lmd_trust_secret_free(fleets[i]);
    for (int i = 0; i < nhosts; i++)
        lmd_trust_secret_free(hosts[i]);
    return 0;
}
