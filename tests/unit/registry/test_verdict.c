/* The registry's verdict (src/registry/verdict.c): every path by which a
 * peer comes to be seen, or stops being seen, goes through the one
 * function, and asks the verifier exactly when what it shows or the clock
 * changed.  A fake verifier answers by the TXT item "v" (its status
 * table below) and counts the calls; no crypto here (the real verifier:
 * tests/unit/trust/, and both together: test_trust_model.lua). */
#include "base/txt.h"
#include "registry/peers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"

/* ---- The fake verifier and what the registry tells ---------------------- */

static int status_of[10];   /* by v=0..9; 0: trusted */
static double until_of[10]; /* wall seconds; 0: never */
static int verify_calls;
static char log_[8192];     /* events and verdicts, one a line */

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    size_t used = strlen(log_);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log_ + used, sizeof log_ - used, fmt, ap);
    va_end(ap);
}

static int v_of(const lmd_node_info *peer)
{
    const lmd_txt_item *it = lmd_txt_get(&peer->txt, "v");
    return it && it->has_value ? it->value[0] - '0' : 9;
}

static void verify(void *ud, const lmd_node_info *peer, double wall, struct lmd_peers_verdict *out)
{
    (void)ud;
    (void)wall;
    verify_calls++;
    int v = v_of(peer);
    out->status = status_of[v];
    out->until = until_of[v];
    snprintf(out->signer, sizeof out->signer, "%s", out->status == 0 ? "0123456789abcdef" : "");
    snprintf(out->reason, sizeof out->reason, "status %d", out->status);
}

static void judged(void *ud, const lmd_node_info *peer, const struct lmd_peers_verdict *v, bool refused)
{
    (void)ud;
    note("%s %s %d;", refused ? "refused" : "judged", peer->name, v->status);
}

static void on_event(void *ud, enum lmd_event_kind kind, const lmd_node_info *peer, const lmd_node_info *old,
                     unsigned changes, const char *reason)
{
    (void)ud;
    (void)old;
    (void)changes;
    note("%s %s%s%s%s;", lmd_event_kind_name(kind), peer->name, reason ? " " : "", reason ? reason : "",
         peer->flags & LMD_NODE_TRUSTED ? " T" : "");
}

static int confirms;
static void on_confirm(void *ud, const lmd_node_info *peer, int ifindex, int proto)
{
    (void)ud;
    (void)peer;
    (void)ifindex;
    (void)proto;
    confirms++;
}

/* The log since the last call (and forget it). */
static const char *took(void)
{
    static char out[sizeof log_];
    snprintf(out, sizeof out, "%s", log_);
    log_[0] = '\0';
    return out;
}

static lmd_peers *registry(bool require, bool hide_own, double settle)
{
    struct lmd_peers_config c = {.goodbye_hold = 2, .require_trusted = require, .hide_own = hide_own,
                                 .include_self = true, .settle = settle};
    lmd_peers *r;
    if (lmd_peers_new(&c, on_event, on_confirm, NULL, &r, NULL) != 0)
        abort();
    lmd_peers_set_verifier(r, verify, judged);
    memset(status_of, 0, sizeof status_of);
    memset(until_of, 0, sizeof until_of);
    status_of[9] = 1; /* no v: unsigned */
    verify_calls = 0;
    confirms = 0;
    log_[0] = '\0';
    return r;
}

/* An instance of name with TXT v=V on (ifindex, proto), from host:port. */
static int seen(lmd_peers *r, const char *name, int v, int ifindex, int proto, const char *ifname, double now,
                bool own)
{
    lmd_txt txt = {0};
    char item[8];
    snprintf(item, sizeof item, "v=%d", v);
    lmd_txt_parse_arg(&txt, item, NULL, 0);
    lmd_addr addr = {.family = proto, .ifindex = ifindex};
    snprintf(addr.addr, sizeof addr.addr, proto == 4 ? "10.0.0.%d" : "fd00::%d", ifindex + 1);
    snprintf(addr.ifname, sizeof addr.ifname, "%s", ifname);
    struct lmd_instance in = {.ifindex = ifindex, .ifname = ifname, .proto = proto, .name = name,
                              .type = "_lmserv._tcp", .domain = "local", .host = "h.local", .port = 8000,
                              .addr = &addr, .txt = &txt, .flags = own ? LMD_NODE_OWN | LMD_NODE_LOCAL : 0,
                              .complete = true};
    int rc = lmd_peers_seen(r, &in, now, 1000 + now);
    lmd_txt_free(&txt);
    return rc;
}

static void gone(lmd_peers *r, const char *name, int ifindex, int proto, const char *reason, double now)
{
    struct lmd_instance in = {.ifindex = ifindex, .ifname = ifindex ? "eth0" : "dns", .proto = proto, .name = name,
                              .type = "_lmserv._tcp", .domain = "local"};
    lmd_peers_gone_at(r, &in, reason, now);
}

static size_t listed(const lmd_peers *r, bool network)
{
    lmd_node_list l;
    if ((network ? lmd_peers_snapshot_network(r, &l) : lmd_peers_snapshot(r, false, &l)) != 0)
        abort();
    size_t n = l.n;
    lmd_node_list_free(&l);
    return n;
}

static void count_visit(void *ud, const lmd_node_info *peer)
{
    (void)peer;
    (*(int *)ud)++;
}

#define EXPECT_LOG(want) do { const char *got = took(); CHECK(!strcmp(got, want), "log '%s', want '%s'", got, want); } while (0)

/* ---- The paths ---------------------------------------------------------------- */

/* A join, with require: judged before anyone sees it; untrusted, nowhere. */
static void test_join(void)
{
    lmd_peers *r = registry(true, false, 0);
    status_of[2] = 3; /* "unknown fleet" */
    seen(r, "good", 1, 2, 4, "eth0", 1, false);
    EXPECT_LOG("judged good 0;join good T;");
    seen(r, "bad", 2, 2, 4, "eth0", 1, false);
    EXPECT_LOG("judged bad 3;");
    CHECK(verify_calls == 2, "%d calls", verify_calls);
    CHECK(listed(r, false) == 1 && listed(r, true) == 1, "listed %zu / network %zu", listed(r, false),
          listed(r, true));
    CHECK(!lmd_peers_kept(r, "bad") && lmd_peers_kept(r, "good"), "kept: only what may be seen");
    int visits = 0;
    lmd_peers_foreach(r, count_visit, &visits);
    CHECK(visits == 1, "foreach visited %d", visits);
    CHECK(lmd_peers_get(r, "bad") != NULL, "the table holds it all the same");
    lmd_peers_free(r);
}

/* Confirmations of the same data are no new record: not verified again;
 * a change is; a change to an untrusted record of a trusted peer is
 * refused (and no sighting); to another trusted record, an update. */
static void test_updates_and_refusals(void)
{
    lmd_peers *r = registry(true, false, 0);
    status_of[2] = 14; /* superseded */
    seen(r, "p", 1, 2, 4, "eth0", 1, false);
    took();
    for (int i = 0; i < 5; i++)
        seen(r, "p", 1, 2, 4, "eth0", 2 + i, false);
    CHECK(verify_calls == 1, "confirmations verified: %d calls", verify_calls);
    seen(r, "p", 3, 2, 4, "eth0", 10, false); /* another trusted record */
    EXPECT_LOG("update p T;");
    CHECK(verify_calls == 2, "%d calls", verify_calls);
    seen(r, "p", 2, 2, 4, "eth0", 11, false); /* an older state replayed */
    EXPECT_LOG("refused p 14;");
    const lmd_node_info *n = lmd_peers_get(r, "p");
    CHECK(n && v_of(n) == 3 && (n->flags & LMD_NODE_TRUSTED), "the trusted record stays shown");
    /* on another interface too: refused, not added */
    seen(r, "p", 2, 3, 6, "eth1", 12, false);
    EXPECT_LOG("refused p 14;");
    CHECK(n->n_addrs == 1, "%zu addresses", n->n_addrs);
    /* a refused record is no sighting: a goodbye held is not cancelled */
    gone(r, "p", 2, 4, LMD_REASON_GOODBYE, 20);
    CHECK(confirms == 1, "%d confirms", confirms);
    seen(r, "p", 2, 2, 4, "eth0", 21, false);
    lmd_peers_tick(r, 22.5);
    EXPECT_LOG("refused p 14;leave p goodbye T;");
    lmd_peers_free(r);
}

/* Without require the untrusted are seen, marked; a trusted peer is still
 * never displaced by an untrusted record. */
static void test_without_require(void)
{
    lmd_peers *r = registry(false, false, 0);
    status_of[2] = 1;
    seen(r, "u", 2, 2, 4, "eth0", 1, false);
    EXPECT_LOG("judged u 1;join u;");
    seen(r, "t", 1, 2, 4, "eth0", 1, false);
    EXPECT_LOG("judged t 0;join t T;");
    seen(r, "t", 2, 2, 4, "eth0", 2, false);
    EXPECT_LOG("refused t 1;");
    /* an untrusted peer's new record that is trusted: an update, trusted */
    seen(r, "u", 1, 2, 4, "eth0", 3, false);
    EXPECT_LOG("judged u 0;update u T;");
    lmd_peers_free(r);
}

/* The clock: judged again at the time the verdict named, once; the leave
 * is "untrusted"; the registry's deadline is that time. */
static void test_the_clock(void)
{
    lmd_peers *r = registry(true, false, 0);
    until_of[1] = 1000 + 30; /* the signature ends at wall 1030 = mono 30 */
    seen(r, "p", 1, 2, 4, "eth0", 1, false);
    took();
    CHECK(lmd_peers_next_deadline(r) >= 30 && lmd_peers_next_deadline(r) < 30.01, "deadline %g",
          lmd_peers_next_deadline(r));
    lmd_peers_tick_at(r, 29.9, 1029.9);
    CHECK(verify_calls == 1, "judged before its time (%d calls)", verify_calls);
    status_of[1] = 7; /* from then on: signature expired, for good */
    until_of[1] = 0;
    lmd_peers_tick_at(r, 30, 1030);
    EXPECT_LOG("judged p 7;leave p untrusted;");
    CHECK(verify_calls == 2 && lmd_peers_next_deadline(r) < 0, "%d calls, deadline %g", verify_calls,
          lmd_peers_next_deadline(r));
    /* a verdict the clock turns the other way: not yet valid, then valid */
    status_of[4] = 5;
    until_of[4] = 1000 + 50;
    seen(r, "q", 4, 2, 4, "eth0", 40, false);
    EXPECT_LOG("judged q 5;");
    status_of[4] = 0;
    until_of[4] = 0;
    lmd_peers_tick_at(r, 50, 1050);
    EXPECT_LOG("judged q 0;join q T;");
    /* lmd_peers_tick takes the wall clock from the last call that gave one */
    until_of[5] = 1000 + 70;
    seen(r, "s", 5, 2, 4, "eth0", 60, false);
    took();
    status_of[5] = 7;
    until_of[5] = 0;
    lmd_peers_tick(r, 70);
    EXPECT_LOG("judged s 7;leave s untrusted;");
    lmd_peers_free(r);
}

/* Everything judged again (settings changed): joins and leaves. */
static void test_rejudge_and_configure(void)
{
    lmd_peers *r = registry(true, false, 0);
    seen(r, "a", 1, 2, 4, "eth0", 1, false);
    seen(r, "b", 2, 2, 4, "eth0", 1, false);
    took();
    status_of[1] = 12; /* revoked */
    status_of[2] = 12;
    lmd_peers_rejudge(r, 5, 1005);
    EXPECT_LOG("judged a 12;leave a untrusted;judged b 12;leave b untrusted;");
    CHECK(verify_calls == 4, "%d calls", verify_calls);
    status_of[2] = 0;
    lmd_peers_rejudge(r, 6, 1006);
    EXPECT_LOG("judged b 0;join b T;");
    /* require off: the untrusted are seen (joins), on again: leaves */
    struct lmd_peers_config c = {.goodbye_hold = 2, .include_self = true};
    lmd_peers_configure(r, &c, 7);
    EXPECT_LOG("join a;");
    c.require_trusted = true;
    lmd_peers_configure(r, &c, 8);
    EXPECT_LOG("leave a untrusted;");
    /* another verifier: no verdict stands (until asked again) */
    lmd_peers_set_verifier(r, NULL, NULL);
    CHECK(!(lmd_peers_get(r, "b")->flags & LMD_NODE_TRUSTED), "a verdict survived its verifier");
    lmd_peers_rejudge(r, 9, 1009);
    EXPECT_LOG("leave b untrusted;");
    lmd_peers_free(r);
}

/* Our own services: held (the network listing), a peer only without
 * hide_own; exempt from require. */
static void test_own(void)
{
    lmd_peers *r = registry(true, true, 0);
    status_of[1] = 1;
    seen(r, "me", 1, 2, 4, "eth0", 1, true);
    EXPECT_LOG("judged me 1;");
    CHECK(listed(r, false) == 0 && listed(r, true) == 1, "own: peers %zu, network %zu", listed(r, false),
          listed(r, true));
    struct lmd_peers_config c = {.goodbye_hold = 2, .include_self = true, .require_trusted = true};
    lmd_peers_configure(r, &c, 2);
    EXPECT_LOG("join me;");
    lmd_peers_free(r);
}

/* Instances gone: what shows changes; judged again unless the peer is
 * trusted and only addresses went (the same record, fewer addresses: its
 * verdict stands, a leave costs no verdict); the last one: a leave,
 * goodbyes held for the network (for every peer seen). */
static void test_instances_and_goodbyes(void)
{
    lmd_peers *r = registry(false, false, 0);
    status_of[2] = 1;
    seen(r, "p", 1, 2, 4, "eth0", 1, false);
    seen(r, "p", 1, 3, 4, "eth1", 1, false);
    took();
    int calls = verify_calls;
    gone(r, "p", 3, 4, LMD_REASON_GOODBYE, 2);
    CHECK(confirms == 1, "held and asked: %d", confirms);
    lmd_peers_tick(r, 4);
    CHECK(verify_calls == calls, "trusted, an address fewer: not judged again (%d calls)", verify_calls - calls);
    EXPECT_LOG("update p T;");
    /* untrusted, an address fewer: judged again (the one that went may
     * have been the one not signed) */
    status_of[3] = 1;
    seen(r, "q", 3, 2, 4, "eth0", 4, false);
    seen(r, "q", 3, 3, 4, "eth1", 4, false);
    took();
    calls = verify_calls;
    gone(r, "q", 3, 4, LMD_REASON_EXPIRED, 4);
    CHECK(verify_calls == calls + 1, "untrusted, an instance fewer: judged again (%d calls)", verify_calls - calls);
    /* trusted, and the instance that went spoke with another TXT: judged again */
    seen(r, "s", 1, 2, 4, "eth0", 4, false);
    seen(r, "s", 4, 3, 4, "eth1", 4, false); /* the newest speaks: v=4 (trusted too) */
    took();
    calls = verify_calls;
    gone(r, "s", 3, 4, LMD_REASON_EXPIRED, 4);
    CHECK(verify_calls == calls + 1, "trusted, the speaker went: judged again (%d calls)", verify_calls - calls);
    took();
    /* an untrusted peer's goodbye is held too */
    seen(r, "u", 2, 2, 4, "eth0", 5, false);
    took();
    gone(r, "u", 2, 4, LMD_REASON_GOODBYE, 6);
    CHECK(confirms == 2, "%d confirms", confirms);
    seen(r, "u", 2, 2, 4, "eth0", 7, false); /* it answered */
    lmd_peers_tick(r, 9);
    EXPECT_LOG("");
    gone(r, "u", 2, 4, LMD_REASON_EXPIRED, 10); /* not a goodbye: at once */
    EXPECT_LOG("leave u expired;");
    lmd_peers_free(r);
}

/* A peer over DNS and mDNS: one peer, judged as merged; a new source that
 * changes nothing shown is no new record. */
static void test_dns_source(void)
{
    lmd_peers *r = registry(true, false, 0);
    seen(r, "p", 1, 0, 4, "dns", 1, false);
    EXPECT_LOG("judged p 0;join p T;");
    int calls = verify_calls;
    seen(r, "p", 1, 2, 4, "eth0", 2, false); /* sources: mdns too */
    CHECK(verify_calls == calls + 1, "the sources changed: judged (%d)", verify_calls - calls);
    EXPECT_LOG("update p T;");
    lmd_peers_free(r);
}

/* Settling: a join waits for its instances, then is judged as a whole. */
static void test_settle(void)
{
    lmd_peers *r = registry(true, false, 0.5);
    status_of[2] = 1;
    lmd_txt txt = {0};
    lmd_txt_parse_arg(&txt, "v=2", NULL, 0);
    struct lmd_instance in = {.ifindex = 2, .ifname = "eth0", .proto = 4, .name = "s", .type = "_lmserv._tcp",
                              .domain = "local", .host = "h.local", .port = 8000, .txt = &txt};
    lmd_peers_seen(r, &in, 1, 1001);
    lmd_peers_tick(r, 1.5);
    EXPECT_LOG("judged s 1;");
    CHECK(listed(r, false) == 0, "an untrusted settled peer listed");
    lmd_txt_free(&txt);
    lmd_peers_free(r);
}

int main(void)
{
    test_join();
    test_updates_and_refusals();
    test_without_require();
    test_the_clock();
    test_rejudge_and_configure();
    test_own();
    test_instances_and_goodbyes();
    test_dns_source();
    test_settle();
    printf("%s: %d checks, %d failed\n", failures ? "FAILED" : "OK", checks, failures);
    return failures ? 1 : 0;
}
