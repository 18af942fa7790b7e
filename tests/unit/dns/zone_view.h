/* The services view both zone tests keep: a whole read of the copy, and
 * the same view followed by what a diff touched (as src/wide/view.c does).
 * Included by test_zone_one.c and test_zone_attack.c (after ../check.h). */
#ifndef LMD_TEST_ZONE_VIEW_H
#define LMD_TEST_ZONE_VIEW_H

#include "base/txt.h"
#include "dns/dns.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* records (the includer defines DOM, TYPE and TZ) */
/* place 0: the domain, 1..3: shards s1..s3 (s3 listed only sometimes) */
static void owner_of(char *out, size_t len, const char *inst, unsigned place)
{
    if (place == 0)
        snprintf(out, len, "%s." TZ, inst);
    else
        snprintf(out, len, "%s." TYPE ".s%u." DOM, inst, place);
}

static lmd_dns_rr srv(const char *inst, unsigned place, unsigned host, uint16_t port)
{
    lmd_dns_rr r = {.type = LMD_DNS_T_SRV, .port = port};
    owner_of(r.owner, sizeof r.owner, inst, place);
    snprintf(r.owner_label, sizeof r.owner_label, "%s", inst);
    if (host) /* 0: the target "." (no target) */
        snprintf(r.target, sizeof r.target, "h%u." DOM, host);
    return r;
}

static lmd_dns_rr txt(const char *inst, unsigned place, unsigned model)
{
    lmd_dns_rr r = {.type = LMD_DNS_T_TXT};
    owner_of(r.owner, sizeof r.owner, inst, place);
    snprintf(r.owner_label, sizeof r.owner_label, "%s", inst);
    char v[16];
    snprintf(v, sizeof v, "m%u", model);
    CHECK(lmd_txt_set(&r.txt, "model", v, strlen(v), true, NULL, 0) == 0, "txt");
    return r;
}

static lmd_dns_rr addr(unsigned host, bool v6, unsigned a)
{
    lmd_dns_rr r = {.type = v6 ? LMD_DNS_T_AAAA : LMD_DNS_T_A};
    snprintf(r.owner, sizeof r.owner, "h%u." DOM, host);
    if (v6)
        snprintf(r.addr, sizeof r.addr, "2001:db8::%x", a);
    else
        snprintf(r.addr, sizeof r.addr, "10.0.%u.%u", a / 250, a % 250);
    return r;
}

/* one service as text: name shard host:port model addrs */
static void line(const lmd_dns_found *f, char *out, size_t len)
{
    const lmd_txt_item *m = f->txt_ok ? lmd_txt_get(&f->txt, "model") : NULL;
    if (snprintf(out, len, "%s [%s] %s:%u %s", f->name, f->shard, f->srv ? f->host : "-", f->port,
                 m ? (const char *)m->value : "-") >= (int)len)
        return; /* (the tests' names are short: never) */
    for (size_t j = 0; j < f->n_addrs; j++) {
        size_t o = strlen(out);
        snprintf(out + o, len - o, " %s", f->addrs[j]);
    }
}

#define MAXS 512
struct view {
    size_t n;
    char name[MAXS][64];
    char text[MAXS][200];
    char host[MAXS][64];
};

/* the whole copy, as lines sorted by name */
static void whole(const lmd_dns_zone *zn, struct view *v)
{
    lmd_dns_found *f = NULL;
    size_t n = 0;
    CHECK(lmd_dns_zone_services(zn, &f, &n) == 0 && n <= MAXS, "services (%zu)", n);
    v->n = n;
    for (size_t i = 0; i < n && i < MAXS; i++) {
        snprintf(v->name[i], 64, "%.63s", f[i].name);
        line(&f[i], v->text[i], sizeof v->text[i]);
        snprintf(v->host[i], 64, "%.63s", f[i].srv ? f[i].host : "");
    }
    lmd_dns_found_free(f, n);
}

static long at(const struct view *v, const char *name)
{
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->name[i], name))
            return (long)i;
    return -1;
}

/* name as read now into v (found: its line; else out) */
static void put(struct view *v, const char *name, const lmd_dns_found *f)
{
    long i = at(v, name);
    if (!f) {
        if (i >= 0) {
            memmove(v->name[i], v->name[i + 1], (v->n - (size_t)i - 1) * 64);
            memmove(v->text[i], v->text[i + 1], (v->n - (size_t)i - 1) * 200);
            memmove(v->host[i], v->host[i + 1], (v->n - (size_t)i - 1) * 64);
            v->n--;
        }
        return;
    }
    if (i < 0) {
        size_t k = 0;
        while (k < v->n && strcmp(v->name[k], name) < 0)
            k++;
        memmove(v->name[k + 1], v->name[k], (v->n - k) * 64);
        memmove(v->text[k + 1], v->text[k], (v->n - k) * 200);
        memmove(v->host[k + 1], v->host[k], (v->n - k) * 64);
        v->n++;
        i = (long)k;
    }
    snprintf(v->name[i], 64, "%s", name);
    line(f, v->text[i], sizeof v->text[i]);
    snprintf(v->host[i], 64, "%.63s", f->srv ? f->host : "");
}

/* v updated by what t says, from the copy (as src/wide/view.c does);
 * returns how many services were derived again */
static size_t follow(const lmd_dns_zone *zn, const lmd_dns_touched *t, struct view *v)
{
    size_t derived = 0;
    for (size_t i = 0; i < t->n_names; i++) {
        lmd_dns_found f;
        int rc = lmd_dns_zone_service(zn, t->names[i].name, t->names[i].text, &f);
        CHECK(rc >= 0, "service %s", t->names[i].name);
        put(v, t->names[i].name, rc == 1 ? &f : NULL);
        lmd_txt_free(&f.txt);
        derived++;
    }
    for (size_t h = 0; h < t->n_hosts; h++)
        for (size_t i = 0; i < v->n; i++) {
            if (strcasecmp(v->host[i], t->hosts[h]))
                continue;
            lmd_dns_found f;
            /* its name's text is its name here (plain labels) */
            char nm[64]; /* put() writes v->name[i]: not from itself */
            snprintf(nm, sizeof nm, "%s", v->name[i]);
            CHECK(lmd_dns_zone_service(zn, nm, nm, &f) == 1, "host %s", t->hosts[h]);
            char a4[46], a6[46];
            lmd_dns_zone_addrs(zn, t->hosts[h], a4, a6);
            CHECK((f.n_addrs > 0 ? !strcmp(f.addrs[0], a4[0] ? a4 : a6) : !a4[0] && !a6[0]),
                  "lmd_dns_zone_addrs agrees with the service's addresses (%s)", t->hosts[h]);
            put(v, nm, &f);
            lmd_txt_free(&f.txt);
            derived++;
        }
    return derived;
}

#endif
