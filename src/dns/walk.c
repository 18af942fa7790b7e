/* One read of a DNS-SD domain's services of a type (see dns.h): the
 * domain's browse list (its shards), then PTR of the domain and of each
 * shard, then SRV and TXT of each instance, then A and AAAA of each SRV
 * target, every
 * query sent as soon as what it needs is known, on the caller's loop
 * (lmd_dns_send), at most MAX_IN_FLIGHT at a time (each is a socket: a
 * domain of thousands of services must not run out of descriptors), the
 * rest in order as answers come.  The walk ends with the last answer:
 * nothing waits for a timeout that an answer already made moot. */
#include "dns/internal.h"

#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_IN_FLIGHT 64

struct item {
    lmd_dns_found f;
    bool bad;               /* skipped: its SRV cannot be followed (at ".", outside the domain, unanswered) */
    char v4[LMD_DNS_WALK_ADDRS][64], v6[LMD_DNS_WALK_ADDRS][64];
    size_t n4, n6;
};

struct q {
    lmd_dns_walk *w;
    int type;
    size_t idx;             /* the instance it is for (SRV, TXT, A, AAAA) */
    lmd_dns_req *req;
    size_t slot;            /* in w->qs */
};

struct later {              /* a query waiting for room: SRV, TXT, A or AAAA of an item; PTR of a shard */
    int type;
    size_t idx;
};

/* q->idx of a PTR query: the browse list, the domain, shard k at SHARD0 + k */
enum { LIST = 0, APEX = 1, SHARD0 = 2 };

struct lmd_dns_walk {
    struct event_base *base;
    char server[64];
    char domain[1025];
    char type_zone[1025];
    char type[256];
    const lmd_dns_key *key;
    double deadline;
    lmd_dns_walk_cb cb;
    void *arg;
    struct item *items;
    size_t n_items, cap_items;
    char (*shards)[64];     /* the shards the domain lists */
    size_t n_shards;
    struct q **qs;
    size_t n_qs, cap_qs;
    struct later *later;
    size_t n_later, cap_later, next_later;
    int rc;
    char text[512];
    size_t queries;
    double bytes_out, bytes_in;
    size_t dropped, skipped;
};

static void on_answer(const lmd_dns_result *res, void *arg);

static void walk_free(lmd_dns_walk *w)
{
    for (size_t i = 0; i < w->n_qs; i++) {
        lmd_dns_req_cancel(w->qs[i]->req);
        free(w->qs[i]);
    }
    free(w->qs);
    free(w->later);
    free(w->shards);
    for (size_t i = 0; i < w->n_items; i++)
        lmd_txt_free(&w->items[i].f.txt);
    free(w->items);
    free(w);
}

void lmd_dns_walk_cancel(lmd_dns_walk *w)
{
    if (w)
        walk_free(w);
}

/* A query for LABEL.NAME of type, TSIG-signed when the walk has a key. */
static int build(const lmd_dns_walk *w, const char *label, const char *name, int type, lmd_dns_msg **out,
                 lmd_err *err)
{
    int rc = lmd_dns_query_build(label, name, type, out, err);
    if (rc || !w->key)
        return rc;
    rc = lmd_dns_query_sign(*out, w->key, err);
    if (rc) {
        lmd_dns_msg_free(*out);
        *out = NULL;
    }
    return rc;
}

static void fail(lmd_dns_walk *w, int rc, const char *fmt, const char *what, const char *why)
{
    if (w->rc)
        return;
    w->rc = rc;
    snprintf(w->text, sizeof w->text, fmt, what, why);
}

static void send_query(lmd_dns_walk *w, const char *label, const char *name, int type, size_t idx);

/* SRV, TXT, A, AAAA of item idx: sent now, or when there is room. */
static void ask(lmd_dns_walk *w, int type, size_t idx)
{
    if (w->rc)
        return;
    if (w->n_qs < MAX_IN_FLIGHT) {
        char tz[1100];
        if (type == LMD_DNS_T_PTR) {
            if (!lmd_dns_type_zone(w->type, idx >= SHARD0 ? w->shards[idx - SHARD0] : NULL, w->domain, tz, sizeof tz))
                fail(w, LMD_EINVAL, "%s%s", "a shard's name is too long", "");
            else
                send_query(w, NULL, tz, type, idx);
            return;
        }
        bool addr = type == LMD_DNS_T_A || type == LMD_DNS_T_AAAA;
        if (!addr && !lmd_dns_type_zone(w->type, w->items[idx].f.shard, w->domain, tz, sizeof tz)) {
            fail(w, LMD_EINVAL, "%s%s", "a shard's name is too long", "");
            return;
        }
        send_query(w, addr ? NULL : w->items[idx].f.name, addr ? w->items[idx].f.host : tz, type, idx);
        return;
    }
    if (w->n_later == w->cap_later) {
        size_t cap = w->cap_later ? 2 * w->cap_later : 64;
        struct later *l = realloc(w->later, cap * sizeof *l);
        if (!l) {
            fail(w, LMD_ENOMEM, "%s%s", "out of memory", "");
            return;
        }
        w->later = l;
        w->cap_later = cap;
    }
    w->later[w->n_later++] = (struct later){.type = type, .idx = idx};
}

/* The waiting ones, in order, while there is room. */
static void ask_later(lmd_dns_walk *w)
{
    while (!w->rc && w->next_later < w->n_later && w->n_qs < MAX_IN_FLIGHT) {
        struct later l = w->later[w->next_later++];
        ask(w, l.type, l.idx);
    }
}

static void send_query(lmd_dns_walk *w, const char *label, const char *name, int type, size_t idx)
{
    if (w->rc)
        return;
    double left = w->deadline - lmd_now_mono();
    if (left <= 0.01) {
        fail(w, LMD_ETIMEDOUT, "no answer for %s from %s in time", name, w->server);
        return;
    }
    if (w->n_qs == w->cap_qs) {
        size_t cap = w->cap_qs ? 2 * w->cap_qs : 16;
        struct q **qs = realloc(w->qs, cap * sizeof *qs);
        if (!qs) {
            fail(w, LMD_ENOMEM, "%s%s", "out of memory", "");
            return;
        }
        w->qs = qs;
        w->cap_qs = cap;
    }
    struct q *q = calloc(1, sizeof *q);
    lmd_dns_msg *m = NULL;
    lmd_err err = {0};
    if (!q) {
        fail(w, LMD_ENOMEM, "%s%s", "out of memory", "");
        return;
    }
    *q = (struct q){.w = w, .type = type, .idx = idx, .slot = w->n_qs};
    size_t len = 0;
    if (build(w, label, name, type, &m, &err) != 0 || !lmd_dns_msg_wire(m, &len) ||
        (w->queries++, w->bytes_out += (double)len,
         lmd_dns_send(w->base, w->server, 0, m, w->key, left, on_answer, q, &q->req, &err)) != 0) {
        free(q);
        fail(w, err.code ? err.code : LMD_EIO, "cannot ask for %s: %s", name, lmd_err_text(&err));
        return;
    }
    w->qs[w->n_qs++] = q;
}

static void forget(lmd_dns_walk *w, struct q *q)
{
    size_t s = q->slot;
    w->qs[s] = w->qs[--w->n_qs];
    w->qs[s]->slot = s;
    free(q);
}

static void report(lmd_dns_walk *w)
{
    size_t k = 0;
    lmd_dns_found *out = calloc(w->n_items ? w->n_items : 1, sizeof *out);
    if (!out && !w->rc)
        fail(w, LMD_ENOMEM, "%s%s", "out of memory", "");
    for (size_t i = 0; out && !w->rc && i < w->n_items; i++) {
        struct item *it = &w->items[i];
        if (!it->f.srv || it->bad)
            continue;
        it->f.n_addrs = 0;
        for (size_t j = 0; j < it->n4 && it->f.n_addrs < LMD_DNS_WALK_ADDRS; j++)
            memcpy(it->f.addrs[it->f.n_addrs++], it->v4[j], 64);
        for (size_t j = 0; j < it->n6 && it->f.n_addrs < LMD_DNS_WALK_ADDRS; j++)
            memcpy(it->f.addrs[it->f.n_addrs++], it->v6[j], 64);
        out[k++] = it->f; /* shallow: the txt stays the item's */
    }
    lmd_dns_walk_result res = {.rc = w->rc, .text = w->rc ? w->text : "", .found = w->rc ? NULL : out,
                               .n = w->rc ? 0 : k, .queries = w->queries, .bytes_out = w->bytes_out,
                               .bytes_in = w->bytes_in, .dropped = w->dropped, .skipped = w->skipped};
    lmd_dns_walk_cb cb = w->cb;
    void *arg = w->arg;
    /* the callback sees the items' TXT: free the walk after it */
    for (size_t i = 0; i < w->n_qs; i++) {
        lmd_dns_req_cancel(w->qs[i]->req);
        free(w->qs[i]);
    }
    w->n_qs = 0;
    cb(&res, arg);
    free(out);
    walk_free(w);
}

/* name is domain or below it (no final dots either). */
static bool in_domain(const char *name, const char *domain)
{
    size_t n = strlen(name), d = strlen(domain);
    return (n == d && !strcasecmp(name, domain)) || (n > d + 1 && name[n - d - 1] == '.' &&
                                                       !strcasecmp(name + n - d, domain));
}

/* The browse list: the domain, and each shard it lists (b._dns-sd._udp
 * PTR SHARD.DOMAIN; other names, the domain itself, repeats skipped). */
static void on_list(lmd_dns_walk *w, const lmd_dns_rr *rrs, size_t n)
{
    w->shards = calloc(LMD_DNS_MAX_SHARDS, sizeof *w->shards);
    if (!w->shards) {
        fail(w, LMD_ENOMEM, "%s%s", "out of memory", "");
        return;
    }
    for (size_t i = 0; i < n && w->n_shards < LMD_DNS_MAX_SHARDS; i++) {
        char label[64];
        bool dup = false;
        if (!lmd_dns_shard_of(rrs[i].target, w->domain, label, sizeof label))
            continue;
        for (size_t j = 0; j < w->n_shards && !dup; j++)
            dup = !strcasecmp(w->shards[j], label);
        if (!dup)
            memcpy(w->shards[w->n_shards++], label, sizeof label);
    }
    ask(w, LMD_DNS_T_PTR, APEX);
    for (size_t i = 0; i < w->n_shards; i++)
        ask(w, LMD_DNS_T_PTR, SHARD0 + i);
}

/* One PTR set: of the domain (idx APEX) or of a shard.  An RRset holds
 * each record once; the same instance in two places is read from both,
 * and the reader keeps one. */
static void on_ptr(lmd_dns_walk *w, size_t idx, const lmd_dns_rr *rrs, size_t n)
{
    const char *shard = idx >= SHARD0 ? w->shards[idx - SHARD0] : "";
    char tz[1100];
    if (!lmd_dns_type_zone(w->type, shard, w->domain, tz, sizeof tz))
        return;
    if (w->n_items + n > w->cap_items) {
        size_t cap = w->n_items + n + 16;
        struct item *more = realloc(w->items, cap * sizeof *more);
        if (!more) {
            fail(w, LMD_ENOMEM, "%s%s", "out of memory", "");
            return;
        }
        memset(more + w->n_items, 0, (cap - w->n_items) * sizeof *more);
        w->items = more;
        w->cap_items = cap;
    }
    size_t first = w->n_items;
    for (size_t i = 0; i < n && w->n_items < LMD_DNS_MAX_INSTANCES; i++) {
        /* only INSTANCE.TYPE.[SHARD.]DOMAIN */
        if (!lmd_dns_instance_name(rrs[i].target, tz))
            continue;
        struct item *it = &w->items[w->n_items++];
        snprintf(it->f.name, sizeof it->f.name, "%s", rrs[i].label);
        snprintf(it->f.shard, sizeof it->f.shard, "%s", shard);
    }
    for (size_t i = first; i < w->n_items; i++) {
        ask(w, LMD_DNS_T_SRV, i);
        ask(w, LMD_DNS_T_TXT, i);
    }
}

static void on_rrs(lmd_dns_walk *w, const struct q *q, lmd_dns_rr *rrs, size_t n)
{
    struct item *it = q->type == LMD_DNS_T_PTR ? NULL : &w->items[q->idx];
    switch (q->type) {
    case LMD_DNS_T_PTR:
        if (q->idx == LIST)
            on_list(w, rrs, n);
        else
            on_ptr(w, q->idx, rrs, n);
        break;
    case LMD_DNS_T_SRV:
        if (n == 0)
            break; /* gone since the PTR */
        if (!rrs[0].target[0] || !strcmp(rrs[0].target, ".") || !in_domain(rrs[0].target, w->domain)) {
            /* "no such service" (RFC 2782), or a host this server does
             * not answer for: this instance is skipped, not the walk */
            it->bad = true;
            w->skipped++;
            break;
        }
        it->f.srv = true;
        it->f.port = rrs[0].port;
        snprintf(it->f.host, sizeof it->f.host, "%s", rrs[0].target);
        ask(w, LMD_DNS_T_A, q->idx);
        ask(w, LMD_DNS_T_AAAA, q->idx);
        break;
    case LMD_DNS_T_TXT:
        if (n) {
            it->f.txt_ok = true;
            it->f.txt = rrs[0].txt; /* taken over */
            memset(&rrs[0].txt, 0, sizeof rrs[0].txt);
        }
        break;
    case LMD_DNS_T_A:
    case LMD_DNS_T_AAAA:
        for (size_t i = 0; i < n; i++) {
            bool v4 = q->type == LMD_DNS_T_A;
            size_t *cnt = v4 ? &it->n4 : &it->n6;
            if (*cnt < LMD_DNS_WALK_ADDRS)
                memcpy((v4 ? it->v4 : it->v6)[(*cnt)++], rrs[i].addr, 64);
        }
        break;
    default:
        break;
    }
}

static void on_answer(const lmd_dns_result *res, void *arg)
{
    struct q *q = arg;
    lmd_dns_walk *w = q->w;
    q->req = NULL;
    struct q mine = *q;
    forget(w, q);
    w->bytes_in += (double)res->answer_len;
    w->dropped += res->dropped;
    bool addr = mine.type == LMD_DNS_T_A || mine.type == LMD_DNS_T_AAAA;
    if (addr && res->rc != 0 && res->verified && res->rcode > 0 && res->rcode != 3) {
        /* the server will not answer for this host (REFUSED, SERVFAIL...):
         * its instance is skipped, the rest of the walk stands */
        if (!w->items[mine.idx].bad)
            w->skipped++;
        w->items[mine.idx].bad = true;
        ask_later(w);
        if ((w->n_qs == 0 && w->next_later == w->n_later) || w->rc)
            report(w);
        return;
    }
    /* NXDOMAIN is an answer: nothing there (signed queries report it as a failure) */
    bool empty = res->rcode == 3 && res->answer && res->verified; /* a forged NXDOMAIN must not hide a service */
    if (res->rc != 0 && !empty) {
        const char *what = mine.type == LMD_DNS_T_PTR ? (mine.idx == LIST ? "the browse domains" : "the service list") : mine.type == LMD_DNS_T_SRV ? "SRV"
                           : mine.type == LMD_DNS_T_TXT ? "TXT" : "an address";
        char why[600];
        snprintf(why, sizeof why, "%s: %s", what, res->text);
        fail(w, res->rc, "reading %.250s failed (%.240s)", w->type_zone, why);
    } else if (!w->rc && !empty) {
        lmd_dns_rr *rrs = NULL;
        size_t n = 0;
        lmd_err err = {0};
        if (lmd_dns_answer_parse(res->answer, res->answer_len, mine.type, &rrs, &n, &err) != 0)
            fail(w, LMD_EIO, "reading %.250s failed (%.240s)", w->type_zone, lmd_err_text(&err));
        else
            on_rrs(w, &mine, rrs, n);
        lmd_dns_rrs_free(rrs, n);
    } else if (!w->rc && mine.type == LMD_DNS_T_PTR) {
        if (mine.idx == LIST)
            on_list(w, NULL, 0);
    }
    ask_later(w);
    if ((w->n_qs == 0 && w->next_later == w->n_later) || w->rc)
        report(w);
}

int lmd_dns_walk_start(struct event_base *base, const char *server, const char *domain, const char *type,
                       const lmd_dns_key *key, double timeout_s, lmd_dns_walk_cb cb, void *arg, lmd_dns_walk **out,
                       lmd_err *err)
{
    if (out)
        *out = NULL;
    if (!server || !domain || !type)
        return lmd_err_set(err, LMD_EINVAL, "server, domain and type needed");
    lmd_dns_walk *w = calloc(1, sizeof *w);
    if (!w)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    size_t dl = strlen(domain);
    while (dl > 1 && domain[dl - 1] == '.')
        dl--;
    if (strlen(server) >= sizeof w->server || dl + strlen(type) + 2 > sizeof w->type_zone || strlen(type) >= sizeof w->type) {
        free(w);
        return lmd_err_set(err, LMD_EINVAL, "server, domain or type too long");
    }
    *w = (lmd_dns_walk){.base = base, .key = key, .cb = cb, .arg = arg,
                        .deadline = lmd_now_mono() + (timeout_s > 0 ? timeout_s : 5.0)};
    memcpy(w->server, server, strlen(server) + 1);
    memcpy(w->domain, domain, dl);
    w->domain[dl] = '\0';
    memcpy(w->type_zone, type, strlen(type));
    w->type_zone[strlen(type)] = '.';
    memcpy(w->type_zone + strlen(type) + 1, domain, dl);
    w->type_zone[strlen(type) + 1 + dl] = '\0';
    memcpy(w->type, type, strlen(type) + 1);
    /* the browse domains first: the shards to read besides the domain */
    char list[1100];
    snprintf(list, sizeof list, "%s.%s", LMD_DNS_BROWSE_LIST, w->domain);
    send_query(w, NULL, list, LMD_DNS_T_PTR, LIST);
    if (w->rc) {
        lmd_err_set(err, w->rc, "%s", w->text);
        int rc = w->rc;
        walk_free(w);
        return rc;
    }
    if (out)
        *out = w;
    return 0;
}
