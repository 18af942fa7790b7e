/* The primary server of a domain's zone, from its SOA's MNAME, asked of the
 * system's resolvers (see dns.h).  Recursive queries (RD) go to the
 * nameservers of resolv.conf in turn (the next one when one fails), sent
 * without blocking with lmd_dns_send; ldns only reads resolv.conf and the
 * answers. */
#include "dns/internal.h"

#include "base/util.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NS 3
#define PER_QUERY 3.0   /* seconds one resolver gets for one question */

enum stage { ST_SOA, ST_A, ST_AAAA, ST_PROVE };

struct lmd_dns_find {
    struct event_base *base;
    char ns[MAX_NS][64];
    size_t n_ns, ns_idx;
    char domain[1025];
    char name[1025];        /* the name whose SOA is asked (domain, then its parents) */
    char mname[1025];
    char addr[64];          /* ST_PROVE: the candidate, asked directly under the key */
    const lmd_dns_key *key; /* NULL: the first answer is taken unverified */
    enum stage stage;
    double deadline;
    lmd_dns_req *req;
    char last[512];         /* the last failure, for the error */
    unsigned dropped;       /* ST_PROVE: answers not signed by the key */
    lmd_dns_server_cb cb;
    void *arg;
};

void lmd_dns_find_cancel(lmd_dns_find *f)
{
    if (!f)
        return;
    lmd_dns_req_cancel(f->req);
    free(f);
}

static void on_answer(const lmd_dns_result *res, void *arg);

static void done(lmd_dns_find *f, int rc, const char *addr, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void done(lmd_dns_find *f, int rc, const char *addr, const char *fmt, ...)
{
    char text[768] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    lmd_dns_server_cb cb = f->cb;
    void *arg = f->arg;
    char mname[1025], where[64];
    snprintf(mname, sizeof mname, "%s", f->mname);
    snprintf(where, sizeof where, "%s", addr ? addr : ""); /* addr may be f's own (f->addr) */
    f->req = NULL;
    free(f);
    cb(rc, addr ? where : NULL, mname[0] ? mname : NULL, text, arg);
}

/* A recursive query for name of type. */
static int build(const char *name, int type, lmd_dns_msg **out, lmd_err *err)
{
    int rc = lmd_dns_query_build(NULL, name, type, out, err);
    if (rc)
        return rc;
    lmd_dns_msg *m = *out;
    ldns_pkt_set_rd(m->pkt, true);
    free(m->wire);
    m->wire = NULL;
    if (ldns_pkt2wire(&m->wire, m->pkt, &m->len) != LDNS_STATUS_OK) {
        lmd_dns_msg_free(m);
        *out = NULL;
        return lmd_err_set(err, LMD_ENOMEM, "cannot write the query");
    }
    return 0;
}

/* Ask the current resolver the current question; false: nothing was sent
 * (done() ran). */
static bool ask(lmd_dns_find *f)
{
    double left = f->deadline - lmd_now_mono();
    if (left <= 0.01) {
        done(f, LMD_ETIMEDOUT, NULL, "no answer from the resolvers (%s) in time%s%s", f->ns[0],
             f->last[0] ? "; last: " : "", f->last);
        return false;
    }
    const char *name = f->stage == ST_SOA ? f->name : f->stage == ST_PROVE ? f->domain : f->mname;
    int type = f->stage == ST_SOA || f->stage == ST_PROVE ? LMD_DNS_T_SOA
               : f->stage == ST_A                          ? LMD_DNS_T_A
                                                           : LMD_DNS_T_AAAA;
    const char *to = f->stage == ST_PROVE ? f->addr : f->ns[f->ns_idx];
    lmd_dns_msg *m = NULL;
    lmd_err err = {0};
    int rc = f->stage == ST_PROVE ? lmd_dns_query_build(NULL, name, type, &m, &err) : build(name, type, &m, &err);
    if (rc == 0 && f->stage == ST_PROVE && (rc = lmd_dns_query_sign(m, f->key, &err)) != 0)
        lmd_dns_msg_free(m);
    if (rc != 0 || lmd_dns_send(f->base, to, 0, m, f->stage == ST_PROVE ? f->key : NULL,
                                left < PER_QUERY ? left : PER_QUERY, on_answer, f, &f->req, &err) != 0) {
        done(f, err.code ? err.code : LMD_EIO, NULL, "cannot ask %s for %s: %s", to, name, lmd_err_text(&err));
        return false;
    }
    return true;
}

/* The MNAME of the first SOA in list, as text without the final dot. */
static bool soa_mname(const ldns_rr_list *list, char *out, size_t len)
{
    for (size_t i = 0; list && i < ldns_rr_list_rr_count(list); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(list, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA || ldns_rr_rd_count(rr) < 1)
            continue;
        char *s = ldns_rdf2str(ldns_rr_rdf(rr, 0));
        if (!s)
            return false;
        size_t n = strlen(s);
        if (n > 1 && s[n - 1] == '.')
            s[n - 1] = '\0';
        snprintf(out, len, "%s", s);
        free(s);
        return out[0] && strcmp(out, ".") != 0;
    }
    return false;
}

/* What the resolver f->ns[f->ns_idx] said did not hold: the next one,
 * from the start (another resolver may name the real primary). */
static void next_resolver(lmd_dns_find *f, int rc)
{
    if (++f->ns_idx < f->n_ns) {
        f->stage = ST_SOA;
        f->mname[0] = '\0';
        snprintf(f->name, sizeof f->name, "%s", f->domain);
        ask(f);
        return;
    }
    done(f, rc, NULL, "no resolver (%s%s) named a server that proves it holds key %s: %s", f->ns[0],
         f->n_ns > 1 ? "..." : "", lmd_dns_key_name(f->key), f->last);
}

/* The candidate's own answer to a signed SOA query for the domain: it
 * must be signed by the key (whoever answered the resolver's way, or
 * posed as the resolver, cannot sign) and NOERROR. */
static void proven(lmd_dns_find *f, const lmd_dns_result *res)
{
    if (res->rc == 0 && res->verified) {
        done(f, 0, f->addr, "%s (the SOA MNAME of %s's zone) is %s, and answers signed by key %s", f->mname,
             f->domain, f->addr, lmd_dns_key_name(f->key));
        return;
    }
    f->dropped += res->dropped;
    snprintf(f->last, sizeof f->last, "%s (%.120s), named by %s, %.200s", f->addr, f->mname, f->ns[f->ns_idx],
             res->verified ? res->text : "gave no answer signed by the key");
    next_resolver(f, LMD_EPERM);
}

static void on_answer(const lmd_dns_result *res, void *arg)
{
    lmd_dns_find *f = arg;
    f->req = NULL;
    if (f->stage == ST_PROVE) {
        proven(f, res);
        return;
    }
    ldns_pkt *pkt = NULL;
    if (res->rc != 0 || !res->answer || ldns_wire2pkt(&pkt, res->answer, res->answer_len) != LDNS_STATUS_OK) {
        snprintf(f->last, sizeof f->last, "%s", res->rc ? res->text : "an answer that does not parse");
        ldns_pkt_free(pkt);
        if (++f->ns_idx < f->n_ns) { /* the next resolver */
            ask(f);
            return;
        }
        done(f, res->rc ? res->rc : LMD_EIO, NULL, "the resolvers (%s%s) could not say: %s", f->ns[0],
             f->n_ns > 1 ? "..." : "", f->last);
        return;
    }
    if (f->stage == ST_SOA) {
        bool found = soa_mname(ldns_pkt_answer(pkt), f->mname, sizeof f->mname) ||
                     soa_mname(ldns_pkt_authority(pkt), f->mname, sizeof f->mname);
        ldns_pkt_free(pkt);
        if (found) {
            f->stage = ST_A;
        } else {
            /* no SOA said: the parent name holds the zone */
            const char *dot = strchr(f->name, '.');
            if (!dot || !dot[1]) {
                done(f, LMD_ENOTFOUND, NULL, "no SOA record for %s or any name above it (asked %s)", f->domain,
                     f->ns[f->ns_idx]);
                return;
            }
            memmove(f->name, dot + 1, strlen(dot + 1) + 1);
        }
        ask(f);
        return;
    }
    char addr[64] = "";
    const ldns_rr_list *an = ldns_pkt_answer(pkt);
    ldns_rr_type want = f->stage == ST_A ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA;
    for (size_t i = 0; an && i < ldns_rr_list_rr_count(an) && !addr[0]; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(an, i);
        if (ldns_rr_get_type(rr) != want || ldns_rr_rd_count(rr) < 1)
            continue;
        char *s = ldns_rdf2str(ldns_rr_rdf(rr, 0));
        snprintf(addr, sizeof addr, "%s", s ? s : "");
        free(s);
    }
    ldns_pkt_free(pkt);
    if (addr[0] && f->key) {
        snprintf(f->addr, sizeof f->addr, "%s", addr);
        f->stage = ST_PROVE;
        ask(f);
        return;
    }
    if (addr[0]) {
        done(f, 0, addr, "%s (the SOA MNAME of %s's zone) is %s (not verified: no key)", f->mname, f->domain, addr);
        return;
    }
    if (f->stage == ST_A) {
        f->stage = ST_AAAA;
        ask(f);
        return;
    }
    done(f, LMD_ENOTFOUND, NULL, "%s (the SOA MNAME of %s's zone) has no A or AAAA record", f->mname, f->domain);
}

int lmd_dns_find_server(struct event_base *base, const char *domain, const char *resolv_conf,
                        const lmd_dns_key *key, double timeout_s, lmd_dns_server_cb cb, void *arg,
                        lmd_dns_find **out, lmd_err *err)
{
    if (out)
        *out = NULL;
    const char *path = resolv_conf ? resolv_conf : "/etc/resolv.conf";
    ldns_rdf *check = domain ? ldns_dname_new_frm_str(domain) : NULL;
    if (!check)
        return lmd_err_set(err, LMD_EINVAL, "'%s' is not a domain name", domain ? domain : "");
    ldns_rdf_deep_free(check);
    ldns_resolver *r = NULL;
    ldns_status st = ldns_resolver_new_frm_file(&r, path);
    if (st != LDNS_STATUS_OK || !r) {
        ldns_resolver_deep_free(r);
        return lmd_err_set(err, LMD_ENOTFOUND, "cannot read the resolvers from %s (%s): give the server's address",
                           path, ldns_get_errorstr_by_id(st));
    }
    lmd_dns_find *f = calloc(1, sizeof *f);
    if (!f) {
        ldns_resolver_deep_free(r);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    ldns_rdf **ns = ldns_resolver_nameservers(r);
    for (size_t i = 0; i < ldns_resolver_nameserver_count(r) && f->n_ns < MAX_NS; i++) {
        char *s = ldns_rdf2str(ns[i]);
        unsigned char bin[16];
        if (s && strlen(s) < sizeof f->ns[0] && (inet_pton(AF_INET, s, bin) == 1 || inet_pton(AF_INET6, s, bin) == 1))
            snprintf(f->ns[f->n_ns++], sizeof f->ns[0], "%s", s);
        free(s);
    }
    ldns_resolver_deep_free(r);
    if (f->n_ns == 0) {
        free(f);
        return lmd_err_set(err, LMD_ENOTFOUND, "no nameserver in %s: give the server's address", path);
    }
    f->base = base;
    f->key = key;
    f->cb = cb;
    f->arg = arg;
    f->deadline = lmd_now_mono() + (timeout_s > 0 ? timeout_s : 10.0);
    size_t dl = strlen(domain);
    while (dl > 1 && domain[dl - 1] == '.')
        dl--;
    snprintf(f->domain, sizeof f->domain, "%.*s", (int)dl, domain);
    snprintf(f->name, sizeof f->name, "%s", f->domain);
    /* the first question from here: its failure is this call's error, and
     * cb never runs from inside this call */
    lmd_dns_msg *m = NULL;
    if (build(f->name, LMD_DNS_T_SOA, &m, err) != 0 ||
        lmd_dns_send(base, f->ns[0], 0, m, NULL, PER_QUERY, on_answer, f, &f->req, err) != 0) {
        free(f);
        return err && err->code ? err->code : LMD_EIO;
    }
    if (out)
        *out = f;
    return 0;
}
