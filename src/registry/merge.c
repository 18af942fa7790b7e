/* One peer's view from its instances (see peers.h): which instance speaks
 * for it, which agree with it (their addresses are the peer's, the nearest
 * first) and which compete (a conflict), and the sources it is seen
 * through. */
#include "registry/internal.h"
#include "base/txt.h"
#include "base/util.h"

#include <strings.h>
#include <stdio.h>
#include <stdlib.h>

/* Instances and addresses from wide-area DNS-SD (src/wide/browse.c)
 * are on no interface: ifindex 0, ifname "dns".  Every other one is mDNS. */
static bool from_dns(int ifindex, const char *ifname) { return ifindex == 0 && !strcmp(ifname, "dns"); }

void lmd_rinst_addr(const struct lmd_rinst *ri, lmd_addr *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->addr, sizeof out->addr, "%s", lmd_ri_addr(ri));
    snprintf(out->ifname, sizeof out->ifname, "%s", lmd_ri_aif(ri));
    out->family = ri->addr_family;
    out->ifindex = ri->addr_ifindex;
}

int lmd_rinst_txt(const struct lmd_rinst *ri, lmd_txt *out)
{
    *out = (lmd_txt){0};
    const unsigned char *txt = lmd_ri_txt(ri);
    for (size_t at = 0; at < ri->txt_len;) {
        size_t n = txt[at];
        if (n > ri->txt_len - at - 1)
            break; /* cannot be: lmd_rinst_fill wrote it */
        int rc = lmd_txt_add_wire_item(out, txt + at + 1, n, NULL);
        if (rc == LMD_ENOMEM) {
            lmd_txt_free(out);
            return rc;
        }
        at += 1 + n;
    }
    return 0;
}

/* The nearest addresses first: mDNS (on our link) before DNS, then IPv4
 * before IPv6, then in text order. */
static int addr_cmp(const void *a, const void *b)
{
    const lmd_addr *x = a, *y = b;
    bool dx = from_dns(x->ifindex, x->ifname), dy = from_dns(y->ifindex, y->ifname);
    if (dx != dy)
        return dx - dy;
    if (x->family != y->family)
        return x->family - y->family;
    int c = strcmp(x->addr, y->addr);
    return c ? c : strcmp(x->ifname, y->ifname);
}

/* The host's first label: "h1" of "h1.local" and of "h1.sd.example.org". */
static bool same_first_label(const char *a, const char *b)
{
    size_t la = strcspn(a, "."), lb = strcspn(b, ".");
    return la == lb && la > 0 && !strncasecmp(a, b, la);
}

/* Whether instance `in` speaks for the same server as `newest` (the one
 * that speaks for peer p).  Over one source, the same host and port.
 * Across sources the host names differ by nature (h1.local over mDNS,
 * h1.DOMAIN in DNS, as src/wide/publish.c publishes it): the same port and the same
 * host label -- but once p's host is verified (trust), not for an mDNS
 * instance joining a peer the zone speaks for: anyone on the link can
 * claim that label, and would lend the verified peer its addresses (and
 * make it fail verification).  The zone's records are written by keys. */
static bool same_server(const struct lmd_peer *p, const struct lmd_rinst *in, const struct lmd_rinst *newest)
{
    if (in->port != newest->port)
        return false;
    if (!lmd_ri_host(in) || !lmd_ri_host(newest))
        return lmd_ri_host(in) == lmd_ri_host(newest);
    bool in_dns = from_dns(in->ifindex, in->ifname), newest_dns = from_dns(newest->ifindex, newest->ifname);
    /* checked before the host: an mDNS record may name the zone's host
     * (h1.DOMAIN) as well as h1.local */
    if (p->prefer_host && p->prefer_dns && !in_dns)
        return false;
    if (!strcasecmp(lmd_ri_host(in), lmd_ri_host(newest)))
        return true;
    if (in_dns == newest_dns)
        return false;
    return same_first_label(lmd_ri_host(in), lmd_ri_host(newest));
}

/* Whether in is the verified instance's: its host, port and source (an
 * mDNS record naming the zone's host is not the zone's record). */
static bool preferred(const struct lmd_peer *p, const struct lmd_rinst *in)
{
    return p->prefer_host && in->port == p->prefer_port && lmd_ri_host(in) && !strcasecmp(lmd_ri_host(in), p->prefer_host) &&
           from_dns(in->ifindex, in->ifname) == p->prefer_dns;
}

const struct lmd_rinst *lmd_peers_speaker(const struct lmd_peer *p)
{
    /* the newest instance speaks for the peer; with trust, the newest of
     * the trusted host's, so that a forged newer record cannot take over */
    const struct lmd_rinst *newest = NULL;
    for (int pass = p->prefer_host ? 0 : 1; pass < 2 && !newest; pass++)
        for (size_t i = 0; i < p->n_insts; i++) {
            const struct lmd_rinst *in = &p->insts[i];
            if (pass == 0 && !preferred(p, in))
                continue;
            if (!newest || in->seq > newest->seq)
                newest = in;
        }
    /* the same server over mDNS speaks rather than its DNS record: the
     * nearest host name, and TXT changes seen on the link at once */
    const struct lmd_rinst *near = NULL;
    for (size_t i = 0; newest && from_dns(newest->ifindex, newest->ifname) && i < p->n_insts; i++) {
        const struct lmd_rinst *in = &p->insts[i];
        if (!from_dns(in->ifindex, in->ifname) && same_server(p, in, newest) && (!near || in->seq > near->seq))
            near = in;
    }
    return near ? near : newest;
}

bool lmd_peers_alike(const struct lmd_rinst *a, const struct lmd_rinst *b)
{
    /* what the view takes from its speaker (host, port, TXT, domain,
     * source), and what the other instances are compared with */
    return a->port == b->port && lmd_streq(lmd_ri_host(a), lmd_ri_host(b)) && a->domain == b->domain &&
           from_dns(a->ifindex, a->ifname) == from_dns(b->ifindex, b->ifname) && a->txt_len == b->txt_len &&
           !memcmp(lmd_ri_txt(a), lmd_ri_txt(b), a->txt_len);
}

void lmd_peers_merge(struct lmd_peer *p)
{
    const struct lmd_rinst *newest = lmd_peers_speaker(p);
    if (!newest)
        return;
    p->speaker_dns = from_dns(newest->ifindex, newest->ifname);
    /* the speaking instance's domain: a signature is for the domain it was
     * published in (NAME.local over mDNS, NAME.DOMAIN in DNS) */
    if (newest->domain && newest->domain[0])
        p->domain = newest->domain;
}

/* The flags, given the speaker: the sources the name is seen through,
 * a conflict, the agreeing instances' own flags, and trust -- only while
 * the verified host and port speak: a record of another host shown
 * meanwhile is not trusted until it is verified itself. */
static unsigned flags_of(const struct lmd_peer *p, const struct lmd_rinst *newest)
{
    unsigned flags = 0;
    for (size_t i = 0; i < p->n_insts; i++) {
        const struct lmd_rinst *in = &p->insts[i];
        /* every instance counts (a rival too: its disagreement is flagged
         * as a conflict) */
        flags |= from_dns(in->ifindex, in->ifname) ? LMD_NODE_DNS : LMD_NODE_MDNS;
        if (!same_server(p, in, newest))
            flags |= LMD_NODE_CONFLICT;
        else
            flags |= in->flags;
    }
    if (p->trust == 0 && (!p->prefer_host || preferred(p, newest)))
        flags |= LMD_NODE_TRUSTED;
    return flags;
}

unsigned lmd_peers_flags(const struct lmd_peer *p)
{
    const struct lmd_rinst *newest = lmd_peers_speaker(p);
    return newest ? flags_of(p, newest) : 0;
}

void lmd_peers_build_min(const struct lmd_peer *p, lmd_node_info *out)
{
    memset(out, 0, sizeof *out);
    out->name = p->name;
    out->type = (char *)p->type;
    out->domain = (char *)p->domain;
    out->first_seen = p->first_seen;
    out->last_seen = p->last_seen;
    out->flags = lmd_peers_flags(p);
}

/* What consumers see of the peer, from its instances. */
int lmd_peers_build(const struct lmd_peer *p, lmd_node_info *n)
{
    memset(n, 0, sizeof *n);
    const struct lmd_rinst *newest = lmd_peers_speaker(p);
    if (!newest)
        return LMD_EINVAL; /* cannot be: a peer has an instance */
    n->name = lmd_strdup(p->name);
    n->type = lmd_strdup(p->type);
    n->domain = lmd_strdup(p->domain);
    n->host = lmd_strdup(lmd_ri_host(newest));
    n->port = newest->port;
    n->first_seen = p->first_seen;
    n->last_seen = p->last_seen;
    int rc = 0;
    if (!n->name || !n->type || !n->domain || (lmd_ri_host(newest) && !n->host) || lmd_rinst_txt(newest, &n->txt) != 0)
        rc = LMD_ENOMEM;
    const lmd_txt_item *it = lmd_txt_get(&n->txt, "info");
    if (rc == 0 && it && it->has_value) {
        n->info = lmd_strndup(it->value, it->value_len);
        n->info_len = it->value_len;
        if (!n->info)
            rc = LMD_ENOMEM;
    }
    /* One coherent view: host, port, TXT and addresses all from the newest
     * instance's host.  Another host answering for the same name (a forged
     * or stale record) must not lend it addresses: a client would reach the
     * real host on the forger's port, or the forger under the real host's
     * name.  Such a disagreement is flagged. */
    size_t na = 0, nr = 0;
    for (size_t i = 0; i < p->n_insts; i++) {
        if (same_server(p, &p->insts[i], newest))
            na += lmd_ri_addr(&p->insts[i])[0] != '\0';
        else
            nr++;
    }
    if (rc == 0 && na && !(n->addrs = malloc(na * sizeof *n->addrs)))
        rc = LMD_ENOMEM;
    if (rc == 0 && nr && !(n->rivals = malloc(nr * sizeof *n->rivals)))
        rc = LMD_ENOMEM;
    if (rc) {
        lmd_node_info_clear(n);
        return rc;
    }
    na = 0;
    for (size_t i = 0; i < p->n_insts; i++) {
        const struct lmd_rinst *in = &p->insts[i];
        if (!same_server(p, in, newest)) {
            lmd_rival *r = &n->rivals[n->n_rivals++];
            memset(r, 0, sizeof *r);
            snprintf(r->host, sizeof r->host, "%s", lmd_ri_host(in) ? lmd_ri_host(in) : "");
            r->port = in->port;
            lmd_rinst_addr(in, &r->addr);
        } else if (lmd_ri_addr(in)[0]) {
            lmd_rinst_addr(in, &n->addrs[na++]);
        }
    }
    /* sorted first, so that of an address seen over both sources the mDNS
     * one (with its interface) is kept */
    if (na)
        qsort(n->addrs, na, sizeof *n->addrs, addr_cmp);
    size_t nu = 0;
    for (size_t i = 0; i < na; i++) {
        bool dup = false;
        for (size_t j = 0; j < nu && !dup; j++)
            dup = strcmp(n->addrs[j].addr, n->addrs[i].addr) == 0;
        if (!dup)
            n->addrs[nu++] = n->addrs[i];
    }
    n->n_addrs = nu;
    if (!nu) {
        free(n->addrs);
        n->addrs = NULL;
    }
    n->flags = flags_of(p, newest);
    snprintf(n->signer, sizeof n->signer, "%s", (n->flags & LMD_NODE_TRUSTED) ? p->signer : "");
    return 0;
}
