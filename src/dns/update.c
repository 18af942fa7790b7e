/* RFC 2136 updates for one DNS-SD service, signed with TSIG (see dns.h).
 * ldns builds the message, writes the wire format and signs it. */
#include "dns/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TSIG_FUDGE 300

/* A name from text; relative names are made absolute. */
static ldns_rdf *dname(const char *text)
{
    if (!text || !*text)
        return NULL;
    return ldns_dname_new_frm_str(text);
}

/* INSTANCE.TYPE.ZONE: the instance is one label of raw bytes. */
static ldns_rdf *instance_dname(const char *label, const ldns_rdf *type_zone)
{
    size_t n = strlen(label);
    if (n == 0 || n > 63)
        return NULL;
    uint8_t wire[65];
    wire[0] = (uint8_t)n;
    memcpy(wire + 1, label, n);
    wire[n + 1] = 0;
    ldns_rdf *d = ldns_dname_new_frm_data((uint16_t)(n + 2), wire);
    if (d && ldns_dname_cat(d, type_zone) != LDNS_STATUS_OK) {
        ldns_rdf_deep_free(d);
        d = NULL;
    }
    return d;
}

/* An RR with owner, type, class and ttl; the rdata pushed by the caller. */
static ldns_rr *rr_new(const ldns_rdf *owner, ldns_rr_type type, ldns_rr_class cls, uint32_t ttl)
{
    ldns_rr *rr = ldns_rr_new();
    if (!rr)
        return NULL;
    ldns_rdf *o = ldns_rdf_clone(owner);
    if (!o) {
        ldns_rr_free(rr);
        return NULL;
    }
    ldns_rr_set_owner(rr, o);
    ldns_rr_set_type(rr, type);
    ldns_rr_set_class(rr, cls);
    ldns_rr_set_ttl(rr, ttl);
    return rr;
}

struct build {
    ldns_rr_list *up;
    bool oom;
};

static void push(struct build *b, ldns_rr *rr)
{
    if (!rr || !ldns_rr_list_push_rr(b->up, rr)) {
        ldns_rr_free(rr);
        b->oom = true;
    }
}

static void push_rdf(struct build *b, ldns_rr *rr, ldns_rdf *rdf)
{
    if (!rr)
        return;
    if (!rdf || !ldns_rr_push_rdf(rr, rdf)) {
        ldns_rdf_deep_free(rdf);
        b->oom = true;
    }
}

/* RFC 2136 2.5.2: delete an RRset (class ANY, ttl 0, no rdata). */
static void delete_rrset(struct build *b, const ldns_rdf *owner, ldns_rr_type type)
{
    push(b, rr_new(owner, type, LDNS_RR_CLASS_ANY, 0));
}

/* RFC 6763 6.1: one character-string per item, "key=value" or "key". */
static int txt_rdata(struct build *b, ldns_rr *rr, const lmd_txt *txt, lmd_err *err)
{
    size_t n = txt ? txt->n : 0;
    for (size_t i = 0; i < n; i++) {
        const lmd_txt_item *it = &txt->items[i];
        size_t klen = strlen(it->key), len = klen + (it->has_value ? 1 + it->value_len : 0);
        if (len > 255)
            return lmd_err_set(err, LMD_ETXT, "TXT item '%s' is %zu bytes, at most 255 fit in a DNS string", it->key,
                               len);
        uint8_t s[256];
        s[0] = (uint8_t)len;
        memcpy(s + 1, it->key, klen);
        if (it->has_value) {
            s[1 + klen] = '=';
            memcpy(s + 2 + klen, it->value, it->value_len);
        }
        push_rdf(b, rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, len + 1, s));
    }
    if (n == 0) /* RFC 6763 6.1: an empty TXT record is one empty string */
        push_rdf(b, rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, 1, (const uint8_t[]){0}));
    return 0;
}

static int add_records(struct build *b, const lmd_dns_service *svc, const ldns_rdf *type_zone,
                       const ldns_rdf *inst, const ldns_rdf *host, lmd_err *err)
{
    ldns_rr *ptr = rr_new(type_zone, LDNS_RR_TYPE_PTR, LDNS_RR_CLASS_IN, svc->ttl);
    push_rdf(b, ptr, ldns_rdf_clone(inst));
    push(b, ptr);

    ldns_rr *srv = rr_new(inst, LDNS_RR_TYPE_SRV, LDNS_RR_CLASS_IN, svc->ttl);
    push_rdf(b, srv, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, 0));
    push_rdf(b, srv, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, 0));
    push_rdf(b, srv, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, svc->port));
    push_rdf(b, srv, ldns_rdf_clone(host));
    push(b, srv);

    ldns_rr *txt = rr_new(inst, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, svc->ttl);
    int rc = txt_rdata(b, txt, svc->txt, err);
    if (rc) {
        ldns_rr_free(txt);
        return rc;
    }
    push(b, txt);

    for (size_t i = 0; i < svc->n_addrs; i++) {
        const char *a = svc->addrs[i];
        uint8_t bin[16];
        bool v6 = strchr(a, ':') != NULL;
        if (inet_pton(v6 ? AF_INET6 : AF_INET, a, bin) != 1)
            return lmd_err_set(err, LMD_EINVAL, "'%s' is not an IPv4 or IPv6 address", a);
        ldns_rr *rr = rr_new(host, v6 ? LDNS_RR_TYPE_AAAA : LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, svc->ttl);
        push_rdf(b, rr, ldns_rdf_new_frm_data(v6 ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, v6 ? 16 : 4, bin));
        push(b, rr);
    }
    return 0;
}

/* RFC 9664: EDNS option UPDATE-LEASE (2), LEASE and KEY-LEASE, 4 bytes
 * each, big-endian.  ldns writes the OPT record before the TSIG (which it
 * signs over).  Servers that do not implement leases ignore the option. */
#define EDNS_UPDATE_LEASE 2

static int set_lease(ldns_pkt *pkt, uint32_t lease)
{
    uint8_t data[8];
    for (int i = 0; i < 2; i++) {
        data[4 * i] = (uint8_t)(lease >> 24);
        data[4 * i + 1] = (uint8_t)(lease >> 16);
        data[4 * i + 2] = (uint8_t)(lease >> 8);
        data[4 * i + 3] = (uint8_t)lease;
    }
    ldns_edns_option_list *list = ldns_edns_option_list_new();
    ldns_edns_option *opt = ldns_edns_new_from_data(EDNS_UPDATE_LEASE, sizeof data, data);
    if (!list || !opt || !ldns_edns_option_list_push(list, opt)) {
        ldns_edns_deep_free(opt);
        ldns_edns_option_list_deep_free(list);
        return LMD_ENOMEM;
    }
    ldns_pkt_set_edns_udp_size(pkt, 1232);
    ldns_pkt_set_edns_option_list(pkt, list); /* pkt owns it */
    return 0;
}

static int sign_and_pack(ldns_pkt *pkt, const lmd_dns_key *key, lmd_dns_msg *m, lmd_err *err)
{
    char alg[40];
    lmd_dns_key_ldns_alg(key, alg, sizeof alg);
    ldns_pkt_set_random_id(pkt);
    ldns_status st = ldns_pkt_tsig_sign(pkt, key->name, key->secret, TSIG_FUDGE, alg, NULL);
    if (st != LDNS_STATUS_OK)
        return lmd_err_set(err, LMD_EINVAL, "TSIG signing with key %s failed: %s", key->name,
                           ldns_get_errorstr_by_id(st));
    ldns_rr *tsig = ldns_pkt_tsig(pkt);
    m->mac = tsig ? ldns_rdf_clone(ldns_rr_rdf(tsig, 3)) : NULL;
    st = ldns_pkt2wire(&m->wire, pkt, &m->len);
    if (st != LDNS_STATUS_OK || !m->mac)
        return lmd_err_set(err, LMD_ENOMEM, "cannot write the update message: %s", ldns_get_errorstr_by_id(st));
    m->id = ldns_pkt_id(pkt);
    return 0;
}

#define SWEEP 3 /* with LMD_DNS_PUBLISH and LMD_DNS_WITHDRAW: lmd_dns_sweep_build */

/* RFC 2136 2.4.2, "RRset exists (value dependent)": the TXT RRset at inst
 * is exactly txt (class IN, ttl 0). */
static int txt_prereq(struct build *b, ldns_rr_list *pre, const ldns_rdf *inst, const lmd_txt *txt, lmd_err *err)
{
    ldns_rr *rr = rr_new(inst, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, 0);
    int rc = txt_rdata(b, rr, txt, err);
    if (rc || !rr || !ldns_rr_list_push_rr(pre, rr)) {
        ldns_rr_free(rr);
        return rc ? rc : lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    return 0;
}

/* An update built (rc 0: the message takes the packet) or not (both go). */
static int finish(ldns_pkt *pkt, lmd_dns_msg *m, int rc, lmd_dns_msg **out)
{
    if (rc) {
        ldns_pkt_free(pkt);
        if (m)
            m->pkt = NULL;
        lmd_dns_msg_free(m);
        return rc;
    }
    m->pkt = pkt;
    *out = m;
    return 0;
}


static int build_update(const lmd_dns_service *svc, int mode, const lmd_dns_key *key, lmd_dns_msg **out,
                        lmd_err *err)
{
    *out = NULL;
    char tz[1024], sz[1024], sl[64];
    if (!svc->type || !svc->zone || !lmd_dns_type_zone(svc->type, svc->shard, svc->zone, tz, sizeof tz))
        return lmd_err_set(err, LMD_EINVAL, "service type and zone needed");
    /* a shard: one plain label below the zone */
    if (svc->shard && svc->shard[0] &&
        (snprintf(sz, sizeof sz, "%s.%s", svc->shard, svc->zone) >= (int)sizeof sz ||
         !lmd_dns_shard_of(sz, svc->zone, sl, sizeof sl) || strcmp(sl, svc->shard) != 0))
        return lmd_err_set(err, LMD_EINVAL, "shard '%s' is not one label of letters, digits, '-' and '_'", svc->shard);
    /* a sweep or a withdraw may leave the host's addresses alone (host
     * NULL: another service of the host stays) */
    bool want_host = mode == LMD_DNS_PUBLISH || svc->host;
    ldns_rdf *zone = dname(svc->zone), *type_zone = dname(tz), *host = want_host ? dname(svc->host) : NULL;
    ldns_rdf *inst = type_zone && svc->instance ? instance_dname(svc->instance, type_zone) : NULL;
    struct build b = {.up = ldns_rr_list_new()};
    ldns_rr_list *pre = mode == SWEEP ? ldns_rr_list_new() : NULL;
    lmd_dns_msg *m = calloc(1, sizeof *m);
    ldns_pkt *pkt = NULL;
    int rc = 0;
    if (!zone || !type_zone)
        rc = lmd_err_set(err, LMD_EINVAL, "'%s' is not a valid service type and zone", tz);
    else if (want_host && !host)
        rc = lmd_err_set(err, LMD_EINVAL, "'%s' is not a valid host name", svc->host ? svc->host : "");
    else if (!inst)
        rc = lmd_err_set(err, LMD_EINVAL, "instance name must be 1 to 63 bytes");
    else if (host && !ldns_dname_is_subdomain(host, zone))
        rc = lmd_err_set(err, LMD_EINVAL, "host %s is not in zone %s", svc->host, svc->zone);
    else if (!b.up || !m || (mode == SWEEP && !pre))
        rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
    if (rc == 0 && mode == SWEEP)
        rc = txt_prereq(&b, pre, inst, svc->txt, err);
    if (rc == 0) {
        /* the owner's old records first: its PTR, its instance's SRV and
         * TXT, its SRV target's addresses (whatever an earlier run left) */
        ldns_rr *old_ptr = rr_new(type_zone, LDNS_RR_TYPE_PTR, LDNS_RR_CLASS_NONE, 0);
        push_rdf(&b, old_ptr, ldns_rdf_clone(inst));
        push(&b, old_ptr);
        delete_rrset(&b, inst, LDNS_RR_TYPE_SRV);
        delete_rrset(&b, inst, LDNS_RR_TYPE_TXT);
        if (host) {
            delete_rrset(&b, host, LDNS_RR_TYPE_A);
            delete_rrset(&b, host, LDNS_RR_TYPE_AAAA);
        }
        if (mode == LMD_DNS_PUBLISH)
            rc = add_records(&b, svc, type_zone, inst, host, err);
    }
    if (rc == 0 && b.oom)
        rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
    if (rc == 0) {
        /* zone section: the zone, class IN; prerequisites: pre; the update section: b.up */
        pkt = ldns_update_pkt_new(zone, LDNS_RR_CLASS_IN, pre, b.up, NULL);
        zone = NULL; /* owned by pkt now */
        if (!pkt) {
            rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
        } else {
            ldns_pkt_set_rd(pkt, false); /* ldns sets it; an update asks no recursion */
            if (mode == LMD_DNS_PUBLISH && svc->lease && set_lease(pkt, svc->lease) != 0)
                rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
            if (rc == 0)
                rc = sign_and_pack(pkt, key, m, err);
        }
    }
    ldns_rdf_deep_free(zone);
    ldns_rdf_deep_free(type_zone);
    ldns_rdf_deep_free(host);
    ldns_rdf_deep_free(inst);
    ldns_rr_list_deep_free(b.up);
    ldns_rr_list_deep_free(pre);
    return finish(pkt, m, rc, out);
}

int lmd_dns_update_build(const lmd_dns_service *svc, int mode, const lmd_dns_key *key, lmd_dns_msg **out,
                         lmd_err *err)
{
    *out = NULL;
    if (mode != LMD_DNS_PUBLISH && mode != LMD_DNS_WITHDRAW)
        return lmd_err_set(err, LMD_EINVAL, "update mode must be publish or withdraw");
    return build_update(svc, mode, key, out, err);
}

int lmd_dns_sweep_build(const lmd_dns_service *svc, const lmd_dns_key *key, lmd_dns_msg **out, lmd_err *err)
{
    return build_update(svc, SWEEP, key, out, err);
}

int lmd_dns_live_build(const char *live_zone, const char *instance, const char *host, const char *value,
                       const char *stale, uint32_t ttl, const lmd_dns_key *key, lmd_dns_msg **out, lmd_err *err)
{
    *out = NULL;
    char hz[1024];
    if (!live_zone || !host || snprintf(hz, sizeof hz, "%s.%s", host, live_zone) >= (int)sizeof hz)
        return lmd_err_set(err, LMD_EINVAL, "liveness zone and host needed");
    ldns_rdf *zone = dname(live_zone), *host_zone = dname(hz);
    ldns_rdf *owner = host_zone && instance ? instance_dname(instance, host_zone) : NULL;
    struct build b = {.up = ldns_rr_list_new()};
    ldns_rr_list *pre = stale ? ldns_rr_list_new() : NULL;
    lmd_dns_msg *m = calloc(1, sizeof *m);
    ldns_pkt *pkt = NULL;
    int rc = 0;
    if (!zone || !host_zone || !owner)
        rc = lmd_err_set(err, LMD_EINVAL, "'%s' under '%s' is not a valid liveness name", instance ? instance : "", hz);
    else if (!b.up || !m || (stale && !pre))
        rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
    lmd_txt one = {0};
    const char *item = value ? value : stale;
    if (rc == 0 && item && lmd_txt_set(&one, LMD_DNS_LIVE_KEY, item, strlen(item), true, NULL, 0) != 0)
        rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
    if (rc == 0 && stale)
        rc = txt_prereq(&b, pre, owner, &one, err);
    if (rc == 0) {
        delete_rrset(&b, owner, LDNS_RR_TYPE_TXT);
        if (value) {
            ldns_rr *txt = rr_new(owner, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, ttl);
            rc = txt_rdata(&b, txt, &one, err);
            if (rc)
                ldns_rr_free(txt);
            else
                push(&b, txt);
        }
    }
    lmd_txt_free(&one);
    if (rc == 0 && b.oom)
        rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
    if (rc == 0) {
        pkt = ldns_update_pkt_new(zone, LDNS_RR_CLASS_IN, pre, b.up, NULL);
        zone = NULL;
        if (!pkt)
            rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
        else {
            ldns_pkt_set_rd(pkt, false);
            rc = sign_and_pack(pkt, key, m, err);
        }
    }
    ldns_rdf_deep_free(zone);
    ldns_rdf_deep_free(host_zone);
    ldns_rdf_deep_free(owner);
    ldns_rr_list_deep_free(b.up);
    ldns_rr_list_deep_free(pre);
    return finish(pkt, m, rc, out);
}

void lmd_dns_msg_free(lmd_dns_msg *m)
{
    if (!m)
        return;
    free(m->wire);
    ldns_rdf_deep_free(m->mac);
    ldns_pkt_free(m->pkt);
    free(m);
}

const uint8_t *lmd_dns_msg_wire(const lmd_dns_msg *m, size_t *len)
{
    *len = m->len;
    return m->wire;
}

char *lmd_dns_msg_text(const lmd_dns_msg *m)
{
    return m->pkt ? ldns_pkt2str(m->pkt) : NULL;
}

const char *lmd_dns_rcode_name(int rcode)
{
    static const char *const TSIG[] = {"BADSIG", "BADKEY", "BADTIME", "BADMODE", "BADNAME", "BADALG", "BADTRUNC",
                                       "BADCOOKIE"};
    _Static_assert(sizeof TSIG / sizeof TSIG[0] == 23 - 16 + 1, "a name for each TSIG error from 16 to 23");
    if (rcode >= 16 && rcode <= 23)
        return TSIG[rcode - 16];
    ldns_lookup_table *t = ldns_lookup_by_id(ldns_rcodes, rcode);
    return t && t->name ? t->name : "UNKNOWN";
}
