/* The query side of our one-shot mDNS browse (lmd_mdnsq, see mdnsq.h):
 * the PTR query and its repeats, the asks for instances the other source
 * knows that the answers did not bring whole, what is awaited, and when
 * the answers have settled.  mdns_query.c reads the answers. */
#include "dns/mdnsq_int.h"
#include "base/loop.h"
#include "base/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Asks (issue 22).  An instance avahi's browser reports (lmd_mdnsq_want)
 * that our answers did not bring whole over either protocol used to go to
 * avahi's resolvers at the quiet point; a responder late or partly lost
 * over both protocols made those resolvers the scan's end (avahi-daemon's
 * resolvers re-query for up to ~10 s under load).  Now it is awaited here
 * until the bound, and asked for: one QM query with a question
 * INSTANCE.TYPE.local ANY per instance (RFC 6762 section 6.5: answered
 * with its SRV and TXT, and the SRV target's addresses as additional
 * records, RFC 6763 section 12.2; unique records, so without the shared
 * answers' random delay), multicast like the PTR query so avahi-daemon's
 * cache gets the answers too.  A responder does not multicast a record
 * again within a second (section 6; avahi-daemon: 0.5 s): an instance
 * still missing is named again ASK_AGAIN later, ASK_TIMES at most.  Bounded
 * against a flood of names (what avahi's browser reports comes from the
 * network): ASK_ROUNDS asks a scan, ASK_NAMES names, one ask per ASK_GAP;
 * an instance wanted late is awaited ASK_HOLD after it, never past
 * BOUND_MAX from the query.  Then avahi resolves what is still missing. */
#define ASK_GAP 0.25
#define ASK_AGAIN 0.5
#define ASK_TIMES 3
#define ASK_ROUNDS 8
#define ASK_NAMES 2048
#define ASK_HOLD 1.0
#define BOUND_MAX 3.0
#define ASK_BYTES 1400 /* one ask's questions, uncompressed: within an Ethernet MTU */

void lmd_mq_arm(lmd_mdnsq *q)
{
    if (!q->timer)
        return; /* offline */
    double wait = 2 * q->gap_max < QUIET ? QUIET : 2 * q->gap_max > QUIET_MAX ? QUIET_MAX : 2 * q->gap_max;
    if (q->quiet)
        wait = QUIET; /* what comes now answers our asks and repeats: at once (unique records) or within 120 ms */
    double due = q->st.sent + WINDOW, quiet = q->st.last_new + wait, now = lmd_now_mono();
    if (quiet > due)
        due = quiet;
    (void)lmd_timer_in(q->timer, due > now ? due - now : 0); /* out of memory: the caller's bound ends it */
}

/* TYPE.local PTR, QM, ID 0 (RFC 6762 section 18.1), in wire format. */
static int query_wire(const char *name, uint8_t **wire, size_t *len)
{
    ldns_rdf *d = ldns_dname_new_frm_str(name);
    ldns_pkt *p = d ? ldns_pkt_query_new(d, LDNS_RR_TYPE_PTR, LDNS_RR_CLASS_IN, 0) : NULL; /* takes d */
    if (!p)
        return d ? LMD_ENOMEM : LMD_EINVAL;
    ldns_pkt_set_id(p, 0);
    int rc = ldns_pkt2wire(wire, p, len) == LDNS_STATUS_OK ? 0 : LMD_ENOMEM;
    ldns_pkt_free(p);
    return rc;
}

/* Known (its PTR came, or the other source wants it), whole over neither
 * protocol, and no other source covers it. */
static bool awaited(lmd_mdnsq *q, const struct mq_inst *i)
{
    if (i->reported || i->covered || !(i->ptr || i->wanted))
        return false;
    /* an IPv6 one with an A only is whole once settled */
    if (i->srv && i->txt_ok && i->hx && i->hx->a[0])
        return false;
    const struct mq_inst *o = lmd_mq_inst_at(q, i->ifindex, i->proto == 4 ? 6 : 4, i->name, false);
    return !(o && (o->reported || o->covered));
}

static unsigned expected(lmd_mdnsq *q)
{
    unsigned n = 0;
    for (struct mq_inst *i = q->all; i; i = i->all)
        n += awaited(q, i);
    return n;
}

/* INSTANCE.TYPE.local: the label as it is (dots and all), not parsed. */
static ldns_rdf *inst_dname(const lmd_mdnsq *q, const char *label)
{
    uint8_t w[66];
    size_t n = strlen(label);
    if (!n || n > 63)
        return NULL;
    w[0] = (uint8_t)n;
    memcpy(w + 1, label, n);
    w[n + 1] = 0;
    ldns_rdf *d = ldns_dname_new_frm_data((uint16_t)(n + 2), w);
    if (d && ldns_dname_cat(d, q->browse) != LDNS_STATUS_OK) {
        ldns_rdf_deep_free(d);
        d = NULL;
    }
    return d;
}

/* Send what is built; a new packet. */
static ldns_pkt *ask_flush(lmd_mdnsq *q, ldns_pkt *p, size_t questions, bool more)
{
    if (p && questions) {
        uint8_t *wire = NULL;
        size_t len = 0;
        if (ldns_pkt2wire(&wire, p, &len) == LDNS_STATUS_OK && lmd_msock_send(q->socks, wire, len))
            q->st.asks++;
        free(wire);
    }
    if (p)
        ldns_pkt_free(p);
    if (!more)
        return NULL;
    if ((p = ldns_pkt_new()))
        ldns_pkt_set_id(p, 0);
    return p;
}

/* One ask: every instance awaited that is due to be named (above). */
static void ask(lmd_mdnsq *q, double now)
{
    if (q->ask_rounds >= ASK_ROUNDS || q->ask_names >= ASK_NAMES || !q->socks)
        return;
    ldns_pkt *p = ask_flush(q, NULL, 0, true);
    size_t bytes = 12, inp = 0; /* in this packet */
    unsigned named = 0;
    for (struct mq_inst *i = q->all; p && i && q->ask_names < ASK_NAMES; i = i->all) {
        if (i->asked >= ASK_TIMES || (i->asked && now - i->ask_at < ASK_AGAIN - 0.01) || !awaited(q, i))
            continue;
        ldns_rdf *d = inst_dname(q, i->name);
        ldns_rr *rr = d ? ldns_rr_new() : NULL;
        if (!rr) {
            if (d)
                ldns_rdf_deep_free(d);
            break;
        }
        size_t sz = ldns_rdf_size(d) + 4;
        ldns_rr_set_owner(rr, d);
        ldns_rr_set_type(rr, LDNS_RR_TYPE_ANY);
        ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
        if (bytes + sz > ASK_BYTES) {
            p = ask_flush(q, p, inp, true);
            bytes = 12;
            inp = 0;
        }
        if (!p || !ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, rr)) {
            ldns_rr_free(rr);
            break;
        }
        bytes += sz;
        inp++;
        /* the same name over the other protocol is named by this one too */
        struct mq_inst *o = lmd_mq_inst_at(q, i->ifindex, i->proto == 4 ? 6 : 4, i->name, false);
        for (struct mq_inst *x = i; x; x = x == i ? o : NULL) {
            x->asked++;
            x->ask_at = now;
        }
        q->ask_names++;
        named++;
    }
    ask_flush(q, p, inp, false);
    if (named) {
        q->ask_rounds++;
        q->ask_last = now;
        /* what is still missing then is named again (ask() looks) */
        if (q->ask_timer && q->ask_rounds < ASK_ROUNDS)
            (void)lmd_timer_in(q->ask_timer, ASK_AGAIN);
    }
}

/* An ask now if one is due and the last was ASK_GAP ago, else later. */
static void ask_maybe(lmd_mdnsq *q, double now)
{
    if (!q->ask_timer || q->settled)
        return;
    if (q->ask_last && now - q->ask_last < ASK_GAP) {
        if (!evtimer_pending(q->ask_timer, NULL))
            (void)lmd_timer_in(q->ask_timer, q->ask_last + ASK_GAP - now);
        return;
    }
    ask(q, now);
}

void lmd_mq_ask_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_mdnsq *q = arg;
    if (!q->settled)
        ask(q, lmd_now_mono());
}

void lmd_mq_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_mdnsq *q = arg;
    double now = lmd_now_mono();
    if (!q->quiet) {
        q->quiet = true;
        if (q->cb.quiet)
            q->cb.quiet(q->ud); /* may cover some (lmd_mdnsq_cover) */
    }
    unsigned n = expected(q);
    q->st.expected = n;
    if (n && now < q->bound) {
        double next = q->bound;
        for (size_t k = 0; k < sizeof REQUERY / sizeof REQUERY[0]; k++) {
            double at = q->st.sent + REQUERY[k];
            if (q->requeries == k && now >= at) {
                q->requeries++;
                q->st.requeries += lmd_msock_send(q->socks, q->query, q->query_len) > 0;
            } else if (q->requeries <= k && at < next)
                next = at;
        }
        ask_maybe(q, now);
        if (now + QUIET < next)
            next = now + QUIET;
        (void)lmd_timer_in(q->timer, next - now); /* or sooner: lmd_mq_arm() */
        return;
    }
    lmd_mdnsq_settle_now(q); /* (IPv6 instances with an A only are whole now) */
}

void lmd_mdnsq_want(lmd_mdnsq *q, int ifindex, int proto, const char *name)
{
    if (q->settled || (q->socks && !lmd_msock_has(q->socks, ifindex, proto)))
        return; /* no query of ours went there: nothing of it to await */
    struct mq_inst *i = lmd_mq_inst_at(q, ifindex, proto, name, true);
    if (!i || i->wanted || i->reported || i->covered)
        return;
    i->wanted = true;
    q->st.wanted++;
    if (!q->timer)
        return; /* offline */
    double now = lmd_now_mono(), b = now + ASK_HOLD, cap = q->st.sent + BOUND_MAX;
    if (b > cap)
        b = cap;
    if (b > q->bound)
        q->bound = b;
    if (q->quiet)
        (void)lmd_timer_in(q->timer, 0); /* looked at (and asked for) from the loop: once for a burst */
}

int lmd_mdnsq_new(struct event_base *base, const char *type, const lmd_mdnsq_callbacks *cb, void *ud,
                  lmd_mdnsq **out, lmd_err *err)
{
    *out = NULL;
    char why[256];
    if (!lmd_ldns_available(why, sizeof why))
        return lmd_err_set(err, LMD_EUNAVAIL, "no libldns (%s)", why);
    lmd_mdnsq *q = calloc(1, sizeof *q);
    if (!q)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    q->base = base;
    if (getrandom(&q->seed, sizeof q->seed, GRND_NONBLOCK) != (ssize_t)sizeof q->seed)
        q->seed = (unsigned)(lmd_now_mono() * 1e9) ^ (unsigned)(uintptr_t)q;
    if (cb)
        q->cb = *cb;
    q->ud = ud;
    int rc = LMD_ENOMEM;
    char name[300];
    if (!(q->type = lmd_strdup(type)) || (base && !(q->timer = evtimer_new(base, lmd_mq_timer, q))) ||
        (base && !(q->ask_timer = evtimer_new(base, lmd_mq_ask_timer, q)))) {
        rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(name, sizeof name, "%s.local", type);
    if ((rc = lmd_dns_mscope_new(type, "local", &q->scope, err)) != 0)
        goto fail;
    if ((rc = query_wire(name, &q->query, &q->query_len)) != 0 || !(q->browse = ldns_dname_new_frm_str(name))) {
        rc = lmd_err_set(err, rc ? rc : LMD_ENOMEM, "cannot write the query for %s", name);
        goto fail;
    }
    if (!base) { /* offline: lmd_mdnsq_feed */
        *out = q;
        return 0;
    }
    if ((rc = lmd_msock_open(base, lmd_mq_packet, q, &q->socks, err)) != 0)
        goto fail;
    q->st.sockets = lmd_msock_count(q->socks);
    q->st.sent = q->st.last_new = lmd_now_mono();
    q->bound = q->st.sent + EXPECT_MAX;
    if (!lmd_msock_send(q->socks, q->query, q->query_len)) {
        rc = lmd_err_set(err, LMD_EIO, "the mDNS query could not be sent on any interface");
        goto fail;
    }
    lmd_mq_arm(q);
    *out = q;
    return 0;
fail:
    lmd_mdnsq_free(q);
    return rc;
}

void lmd_mdnsq_settle_now(lmd_mdnsq *q)
{
    q->settled = true;
    if (q->ask_timer)
        evtimer_del(q->ask_timer);
    /* once: an IPv6 instance with an A only is whole now */
    for (struct mq_inst *i = q->all; i; i = i->all)
        lmd_mq_report(q, i);
    if (q->cb.settled)
        q->cb.settled(q->ud);
}
