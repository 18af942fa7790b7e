/* Signed announcements in the agent (trust { }): what it announces carries
 * lmd-cert and lmd-sig (src/trust/), signed again at half the validity and
 * on every change of a signed field; peers are verified on every join and
 * update, and with require = true only trusted ones reach the policy. */
#include "agent/internal.h"
#include "base/names.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "trust/trust.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct lmd_agent_trust {
    lmd_trust_secret *key;
    lmd_trust_cert cert;
    lmd_trust_fleet *fleet;
    struct event *resign;
};

/* The addresses avahi announces for this host: every address of every
 * interface that is up, but loopback (link-local IPv6 without its scope). */
static size_t own_addresses(char (*out)[INET6_ADDRSTRLEN], size_t max)
{
    struct ifaddrs *ifs, *i;
    size_t n = 0;
    if (getifaddrs(&ifs) != 0)
        return 0;
    for (i = ifs; i && n < max; i = i->ifa_next) {
        if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
            continue;
        int fam = i->ifa_addr->sa_family;
        const void *a = fam == AF_INET ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
                        : fam == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr : NULL;
        if (a && inet_ntop(fam, a, out[n], INET6_ADDRSTRLEN))
            n++;
    }
    freeifaddrs(ifs);
    return n;
}

static void resign_fire(evutil_socket_t fd, short what, void *arg);

/* The files trust { } names, each read and checked, and the certificate
 * checked to be the key's: what the agent needs before it signs anything. */
static int trust_load(const struct lmd_config *cfg, struct lmd_agent_trust *t, lmd_err *err)
{
    lmd_err e = {0};
    int rc = lmd_trust_secret_load(cfg->trust.key, &t->key, &e);
    if (rc)
        return lmd_err_set(err, rc, "trust.key: %s", lmd_err_text(&e));
    if ((rc = lmd_trust_cert_load(cfg->trust.cert, &t->cert, &e)) != 0)
        return lmd_err_set(err, rc, "trust.cert: %s", lmd_err_text(&e));
    if ((rc = lmd_trust_fleet_load((const char *const *)cfg->trust_fleet, cfg->trust_nfleet, &t->fleet, &e)) != 0)
        return lmd_err_set(err, rc, "trust.fleet: %s", lmd_err_text(&e));
    lmd_trust_pubkey mine;
    lmd_trust_secret_pubkey(t->key, &mine);
    if (memcmp(mine.pk, t->cert.host_pk, sizeof mine.pk) != 0)
        return lmd_err_set(err, LMD_EINVAL, "trust: %s is not a certificate for the key in %s; certify this host's "
                                            ".pub with lmdisc certify", cfg->trust.cert, cfg->trust.key);
    return 0;
}

int lmd_agent_trust_check(const struct lmd_config *cfg, lmd_err *err)
{
    if (!cfg->trust.given)
        return 0;
    struct lmd_agent_trust t = {0};
    int rc = trust_load(cfg, &t, err);
    lmd_trust_secret_free(t.key);
    lmd_trust_fleet_free(t.fleet);
    return rc;
}

int lmd_agent_trust_start(lmd_agent *a, lmd_err *err)
{
    if (!a->cfg.trust.given)
        return 0;
    struct lmd_agent_trust *t = a->trust = calloc(1, sizeof *t);
    if (!t)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    int rc = trust_load(&a->cfg, t, err);
    if (rc)
        return rc;
    lmd_trust_result res;
    if (lmd_trust_cert_check(t->fleet, &t->cert, (int64_t)time(NULL), &res) != 0)
        lmd_warn("trust: this host's own certificate does not pass its fleet keys (%s); peers will not trust it",
                 res.reason);
    if (!(t->resign = evtimer_new(a->base, resign_fire, a)) ||
        lmd_timer_in(t->resign, a->cfg.trust.validity / 2) != 0)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    lmd_info("trust: signing as host key %.16s; %zu fleet key(s) trusted; untrusted peers are %s", res.host_id,
             a->cfg.trust_nfleet, a->cfg.trust.require ? "kept out" : "listed with trusted = false");
    return 0;
}

void lmd_agent_trust_free(lmd_agent *a)
{
    struct lmd_agent_trust *t = a->trust;
    if (!t)
        return;
    lmd_trust_secret_free(t->key);
    lmd_trust_fleet_free(t->fleet);
    if (t->resign)
        event_free(t->resign);
    free(t);
    a->trust = NULL;
}

/* The host name the mDNS announcement names (what is signed for it). */
static void mdns_host(lmd_agent *a, char *host, size_t len)
{
    const char *fqdn = a->m ? lmd_mdns_host_fqdn(a->m) : NULL;
    if (!fqdn) { /* not connected yet: avahi's name is the host name */
        char hn[200];
        (void)lmd_short_hostname(hn, sizeof hn); /* LMD_ENOTFOUND: "localhost" */
        snprintf(host, len, "%s.local", hn);
    } else {
        snprintf(host, len, "%s", fqdn);
    }
    snprintf(a->signed_host, sizeof a->signed_host, "%s", host);
}

int lmd_agent_sign_txt(lmd_agent *a, const char *name, uint16_t port, const lmd_txt *txt, lmd_txt *out, char *err,
                       size_t errlen)
{
    return lmd_agent_sign_txt_as(a, name, port, txt, NULL, NULL, out, err, errlen);
}

int lmd_agent_sign_txt_as(lmd_agent *a, const char *name, uint16_t port, const lmd_txt *txt, const char *domain,
                          const char *dhost, lmd_txt *out, char *err, size_t errlen)
{
    int rc = lmd_txt_copy(out, txt);
    if (rc || !a->trust)
        return rc;
    lmd_trust_txt_strip(out); /* never sign a peer's keys along */
    char host[256];
    if (dhost)
        snprintf(host, sizeof host, "%s", dhost);
    else
        mdns_host(a, host, sizeof host);
    char addrs[LMD_TRUST_SIG_ADDRS_MAX][INET6_ADDRSTRLEN];
    const char *ptrs[LMD_TRUST_SIG_ADDRS_MAX];
    size_t n = own_addresses(addrs, LMD_TRUST_SIG_ADDRS_MAX);
    for (size_t i = 0; i < n; i++)
        ptrs[i] = addrs[i];
    lmd_trust_announcement ann = {.name = name, .type = a->cfg.announce.type ? a->cfg.announce.type : LMD_DEFAULT_TYPE,
                                  .domain = domain ? domain : "local", .port = port, .host = host, .txt = out};
    lmd_err e = {0};
    rc = lmd_trust_sign(a->trust->key, &a->trust->cert, &ann, ptrs, n,
                        (uint32_t)(time(NULL) + (time_t)a->cfg.trust.validity), out, &e);
    if (rc) {
        lmd_txt_free(out);
        return lmd_errbuf(err, errlen, rc, "cannot sign the announcement: %s", lmd_err_text(&e));
    }
    return 0;
}

int lmd_agent_publish_txt(lmd_agent *a, lmd_pub *pub, const char *name, uint16_t port, const lmd_txt *txt)
{
    lmd_txt signed_txt;
    char err[320];
    int rc = lmd_agent_sign_txt(a, name, port, txt, &signed_txt, err, sizeof err);
    if (rc) {
        lmd_error("%s", err);
        return rc;
    }
    rc = lmd_pub_set_txt(pub, &signed_txt);
    lmd_txt_free(&signed_txt);
    return rc;
}

static void resign_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_agent *a = arg;
    lmd_agent_resign_all(a);
    if (lmd_timer_in(a->trust->resign, a->cfg.trust.validity / 2) != 0)
        lmd_error("trust: cannot arm the re-signing timer (out of memory): signatures lapse in %g s",
                  a->cfg.trust.validity / 2);
}

int lmd_agent_verify_shown(void *ud, const lmd_node_info *peer, char signer[17])
{
    lmd_agent *a = ud;
    lmd_trust_result res;
    if (!a->trust || lmd_agent_verify(a, peer, &res) != 0)
        return 1;
    snprintf(signer, 17, "%s", res.host_id);
    return 0;
}

int lmd_agent_verify(lmd_agent *a, const lmd_node_info *peer, lmd_trust_result *res)
{
    const char *addrs[64];
    size_t n = 0;
    for (size_t i = 0; i < peer->n_addrs && n < LMD_ARRAY_LEN(addrs); i++)
        addrs[n++] = peer->addrs[i].addr;
    lmd_trust_announcement ann = {.name = peer->name, .type = peer->type, .domain = peer->domain,
                                  .port = peer->port, .host = peer->host, .txt = &peer->txt};
    return lmd_trust_verify(a->trust->fleet, &ann, addrs, n, (int64_t)time(NULL), res);
}
