/* Signed announcements in the agent (trust { }): what it announces carries
 * lmd-cert and lmd-sig (src/trust/), signed again at half the validity and
 * on every change of a signed field, for names its certificate covers.
 * Peers are judged by the registry's verifier (lmd_trust_judge through
 * lmd_agent_verify_shown), which holds the fleet keys, the revocation list
 * and the newest signature seen per name; what it judges and when is the
 * registry's (src/registry/verdict.c).  Here: loading the files, at start,
 * at every reload (their contents compared, not only their paths) and when
 * the revocation list changes on disk (inotify), and telling the registry
 * to judge again when any of it, or the wall clock, changes. */
#include "agent/internal.h"
#include "base/names.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "trust/trust.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <ifaddrs.h>
#include <math.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct lmd_agent_trust {
    lmd_trust_secret *key;
    lmd_trust_cert cert;
    lmd_trust_verifier *verifier; /* lives as long as the agent: the newest signatures seen survive reloads */
    struct event *resign;
    uint64_t last_issued;         /* Unix ms: every signature gets a later one */
    char *revoked_path;           /* the file watched, or NULL */
    int inotify_fd;
    struct event *watch_ev;
    int clock_fd;                 /* a timerfd that wakes only when the wall clock is set */
    struct event *clock_ev;
    double validity;              /* trust.validity the signatures were made with */
};

/* ---- What the files hold --------------------------------------------------- */

struct loaded {
    lmd_trust_secret *key;
    lmd_trust_cert cert;
    lmd_trust_fleet *fleet;
    lmd_trust_revoked *revoked;
};

static void loaded_free(struct loaded *l)
{
    lmd_trust_secret_free(l->key);
    lmd_trust_fleet_free(l->fleet);
    lmd_trust_revoked_free(l->revoked);
    memset(l, 0, sizeof *l);
}

/* Everything trust { } names, read and checked now. */
static int load(const struct lmd_config *cfg, struct loaded *l, lmd_err *err)
{
    memset(l, 0, sizeof *l);
    /* each file's problem says which setting named it (lmdisc check adds FILE:LINE) */
    lmd_err e = {0};
    const char *what = "trust.key";
    int rc = lmd_trust_secret_load(cfg->trust.key, &l->key, &e);
    if (rc == 0) {
        what = "trust.cert";
        rc = lmd_trust_cert_load(cfg->trust.cert, &l->cert, &e);
    }
    if (rc == 0) {
        what = "trust.fleet";
        rc = lmd_trust_fleet_load((const char *const *)cfg->trust_fleet, cfg->trust_nfleet, &l->fleet, &e);
    }
    if (rc == 0 && cfg->trust.revoked) {
        what = "trust.revoked";
        rc = lmd_trust_revoked_load(cfg->trust.revoked, l->fleet, &l->revoked, &e);
    }
    if (rc)
        lmd_err_set(err, rc, "%s: %s", what, lmd_err_text(&e));
    if (rc == 0) {
        lmd_trust_pubkey mine;
        lmd_trust_secret_pubkey(l->key, &mine);
        if (memcmp(mine.pk, l->cert.host_pk, sizeof mine.pk) != 0)
            rc = lmd_err_set(err, LMD_EINVAL, "trust: %s is not a certificate for the key in %s; certify this host's "
                                              ".pub with lmdisc certify", cfg->trust.cert, cfg->trust.key);
    }
    char name[128];
    lmd_config_name(cfg, name, sizeof name);
    if (rc == 0 && cfg->announce.given && !lmd_trust_cert_covers(&l->cert, name)) {
        char names[200];
        lmd_trust_cert_names_str(&l->cert, names, sizeof names);
        rc = lmd_err_set(err, LMD_EPERM, "trust: the certificate %s names %s, not \"%s\" (announce { name }): peers "
                         "would not trust it; certify this host again with --name for it", cfg->trust.cert, names,
                         name);
    }
    if (rc)
        loaded_free(l);
    return rc;
}

/* What lmdisc check and the agent's start check (preflight.c) ask: the
 * files of trust { } as the agent would load them. */
int lmd_agent_trust_check(const struct lmd_config *cfg, lmd_err *err)
{
    if (!cfg->trust.given)
        return 0;
    struct loaded l;
    int rc = load(cfg, &l, err);
    if (rc == 0)
        loaded_free(&l);
    return rc;
}

/* A revoked key stays revoked (trust.md): a newer list that lacks entries
 * of the one in force (written from an older copy: two operators revoking
 * at once) gets them back, and the log says so.  0 or LMD_ENOMEM. */
static int keep_revoked(lmd_trust_revoked *r, const lmd_trust_revoked *cur, const char *path)
{
    size_t keys = 0, serials = 0;
    if (!cur || !r)
        return 0;
    if (lmd_trust_revoked_keep(r, cur, &keys, &serials) != 0)
        return LMD_ENOMEM;
    if (keys || serials) {
        char t1[32];
        lmd_warn("trust: %s lacks %zu host key(s) and %zu certificate(s) of the list in force (issued %s): they stay "
                 "revoked (was it written from an older copy? revoke them again in it with lmdisc certify --revoke)",
                 path, keys, serials, lmd_trust_time_str((int64_t)cur->issued, t1));
    }
    return 0;
}

/* ---- Watching the revocation list and the clock ------------------------------ */

static void rejudge(lmd_agent *a, const char *why)
{
    lmd_debug("trust: judging every peer again (%s)", why);
    lmd_peers_rejudge(a->reg, lmd_now_mono(), lmd_now_wall());
    lmd_agent_rearm(a);
}

/* The list on disk again: taken if it is signed by a trusted fleet key
 * and not older than the one in force. */
static void revoked_reload(lmd_agent *a)
{
    struct lmd_agent_trust *t = a->trust;
    lmd_err err = {0};
    lmd_trust_revoked *r = NULL;
    const lmd_trust_revoked *cur = lmd_trust_verifier_revoked(t->verifier);
    if (lmd_trust_revoked_load(t->revoked_path, lmd_trust_verifier_fleet(t->verifier), &r, &err) != 0) {
        lmd_error("trust: %s; the list in force stays", lmd_err_text(&err));
        return;
    }
    if (cur && r->issued < cur->issued) {
        char t1[32], t2[32];
        lmd_error("trust: %s was issued %s, before the list in force (%s): refused (an old copy?)", t->revoked_path,
                  lmd_trust_time_str((int64_t)r->issued, t1), lmd_trust_time_str((int64_t)cur->issued, t2));
        lmd_trust_revoked_free(r);
        return;
    }
    if (keep_revoked(r, cur, t->revoked_path) != 0) {
        lmd_error("trust: out of memory reading %s; the list in force stays", t->revoked_path);
        lmd_trust_revoked_free(r);
        return;
    }
    if (lmd_trust_revoked_equal(cur, r)) {
        lmd_trust_revoked_free(r);
        return;
    }
    lmd_info("trust: %s: %zu host key(s) and %zu certificate(s) revoked", t->revoked_path, r->n_keys, r->n_serials);
    lmd_trust_verifier_set_revoked(t->verifier, r);
    rejudge(a, "revocation list");
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    lmd_agent *a = arg;
    struct lmd_agent_trust *t = a->trust;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    const char *base = strrchr(t->revoked_path, '/');
    base = base ? base + 1 : t->revoked_path;
    bool ours = false;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (ev->len && !strcmp(ev->name, base))
                ours = true;
            p += sizeof *ev + ev->len;
        }
    if (ours)
        revoked_reload(a);
}

/* The directory, not the file: an editor or lmdisc certify replaces the
 * file by renaming another over it. */
static int watch_revoked(lmd_agent *a, lmd_err *err)
{
    struct lmd_agent_trust *t = a->trust;
    char *dir = lmd_strdup(t->revoked_path);
    if (!dir)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    int rc = 0;
    t->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (t->inotify_fd < 0 || inotify_add_watch(t->inotify_fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO) < 0)
        rc = lmd_err_set(err, LMD_EIO, "trust: cannot watch %s for changes to %s: %s", dir, t->revoked_path,
                         strerror(errno));
    else if (!(t->watch_ev = event_new(a->base, t->inotify_fd, EV_READ | EV_PERSIST, on_inotify, a)) ||
             event_add(t->watch_ev, NULL) != 0)
        rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
    free(dir);
    return rc;
}

/* A timerfd on the wall clock, armed for the end of time with
 * TFD_TIMER_CANCEL_ON_SET: it wakes only when the clock is set (the
 * verdicts' expiries are wall-clock times). */
static int arm_clock(int fd)
{
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)INT32_MAX}};
    return timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL);
}

static void on_clock_set(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    lmd_agent *a = arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != ECANCELED && errno != EAGAIN)
        lmd_warn("trust: reading the clock watch: %s", strerror(errno));
    if (arm_clock(fd) != 0)
        lmd_warn("trust: cannot watch the wall clock again (%s): a clock set is noticed at the next expiry",
                 strerror(errno));
    rejudge(a, "the wall clock was set");
}

static int watch_clock(lmd_agent *a, lmd_err *err)
{
    struct lmd_agent_trust *t = a->trust;
    t->clock_fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (t->clock_fd < 0 || arm_clock(t->clock_fd) != 0)
        return lmd_err_set(err, LMD_EIO, "trust: cannot watch the wall clock: %s", strerror(errno));
    if (!(t->clock_ev = event_new(a->base, t->clock_fd, EV_READ | EV_PERSIST, on_clock_set, a)) ||
        event_add(t->clock_ev, NULL) != 0)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    return 0;
}

/* ---- Start, reload, free ------------------------------------------------------- */

static void resign_fire(evutil_socket_t fd, short what, void *arg);

int lmd_agent_trust_start(lmd_agent *a, lmd_err *err)
{
    if (!a->cfg.trust.given)
        return 0;
    struct lmd_agent_trust *t = a->trust = calloc(1, sizeof *t);
    if (!t)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    t->inotify_fd = t->clock_fd = -1;
    struct loaded l;
    int rc = load(&a->cfg, &l, err);
    if (rc == 0)
        rc = lmd_trust_verifier_new(&t->verifier, err);
    if (rc == 0 && lmd_trust_verifier_set_fleet(t->verifier, l.fleet) != 0)
        rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
    if (rc) {
        loaded_free(&l);
        return rc;
    }
    t->key = l.key;
    t->cert = l.cert;
    t->validity = a->cfg.trust.validity;
    lmd_trust_verifier_set_revoked(t->verifier, l.revoked);
    lmd_trust_result res;
    if (lmd_trust_cert_check(l.fleet, &t->cert, (int64_t)time(NULL), &res) != 0)
        lmd_warn("trust: this host's own certificate does not pass its fleet keys (%s); peers will not trust it",
                 res.reason);
    else if (lmd_trust_revoked_has(l.revoked, &t->cert))
        lmd_warn("trust: this host's own key or certificate is in %s: peers will not trust it",
                 a->cfg.trust.revoked);
    lmd_trust_fleet_free(l.fleet);
    if (a->cfg.trust.revoked && (!(t->revoked_path = lmd_strdup(a->cfg.trust.revoked)) || watch_revoked(a, err) != 0))
        return err->msg[0] ? err->code : lmd_err_set(err, LMD_ENOMEM, "out of memory");
    /* read before the watch existed: once more (unchanged, it changes nothing) */
    if (t->revoked_path)
        revoked_reload(a);
    if ((rc = watch_clock(a, err)) != 0)
        return rc;
    if (!(t->resign = evtimer_new(a->base, resign_fire, a)) ||
        lmd_timer_in(t->resign, a->cfg.trust.validity / 2) != 0)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    char names[200];
    lmd_trust_cert_names_str(&t->cert, names, sizeof names);
    lmd_info("trust: signing as host key %.16s for %s; %zu fleet key(s) trusted%s; untrusted peers are %s",
             res.host_id, names, a->cfg.trust_nfleet, a->cfg.trust.revoked ? ", a revocation list watched" : "",
             a->cfg.trust.require ? "kept out" : "listed with trusted = false");
    lmd_peers_set_verifier(a->reg, lmd_agent_verify_shown, lmd_agent_judged);
    struct lmd_peers_config pc = lmd_agent_peers_config(a);
    lmd_peers_configure(a->reg, &pc, lmd_now_mono());
    rejudge(a, "trust { } started"); /* at start: nobody yet; after a reload: every peer */
    return 0;
}

void lmd_agent_trust_free(lmd_agent *a)
{
    struct lmd_agent_trust *t = a->trust;
    if (!t)
        return;
    if (a->reg)
        lmd_peers_set_verifier(a->reg, NULL, NULL);
    struct lmd_trust_stats st = {0};
    if (t->verifier)
        lmd_trust_verifier_stats(t->verifier, &st);
    /* what verifying cost: each distinct signed record once (the cache) */
    lmd_info("trust: %llu verdicts, %llu signatures verified, %llu answered from the cache",
             (unsigned long long)st.judged, (unsigned long long)st.signatures, (unsigned long long)st.cached);
    lmd_trust_secret_free(t->key);
    lmd_trust_verifier_free(t->verifier);
    struct event *evs[] = {t->resign, t->watch_ev, t->clock_ev};
    for (size_t i = 0; i < LMD_ARRAY_LEN(evs); i++)
        if (evs[i])
            event_free(evs[i]);
    if (t->inotify_fd >= 0)
        close(t->inotify_fd);
    if (t->clock_fd >= 0)
        close(t->clock_fd);
    free(t->revoked_path);
    free(t);
    a->trust = NULL;
}

int lmd_agent_trust_reload(lmd_agent *a, const struct lmd_config *cfg, lmd_err *err)
{
    struct lmd_agent_trust *t = a->trust;
    if (!t && !cfg->trust.given)
        return 0;
    if (!cfg->trust.given || !t) {
        /* turned off, or on (cfg is a->cfg: the settings in force) */
        lmd_agent_trust_free(a);
        struct lmd_peers_config pc = lmd_agent_peers_config(a);
        lmd_peers_configure(a->reg, &pc, lmd_now_mono());
        return cfg->trust.given ? lmd_agent_trust_start(a, err) : 0;
    }
    /* on, and on: every file read again and compared (the same paths may
     * hold new keys); the verifier stays, and with it the newest
     * signature seen per name (a reload is no way to roll one back) */
    struct loaded l;
    int rc = load(cfg, &l, err);
    if (rc)
        return rc;
    bool path_changed = !lmd_streq(cfg->trust.revoked, t->revoked_path);
    if (path_changed) {
        if (t->watch_ev)
            event_free(t->watch_ev);
        if (t->inotify_fd >= 0)
            close(t->inotify_fd);
        free(t->revoked_path);
        t->watch_ev = NULL;
        t->inotify_fd = -1;
        t->revoked_path = cfg->trust.revoked ? lmd_strdup(cfg->trust.revoked) : NULL;
        if (cfg->trust.revoked && (!t->revoked_path || watch_revoked(a, err) != 0)) {
            loaded_free(&l);
            return err->msg[0] ? err->code : lmd_err_set(err, LMD_ENOMEM, "out of memory");
        }
    }
    lmd_trust_pubkey kold, knew;
    lmd_trust_secret_pubkey(t->key, &kold);
    lmd_trust_secret_pubkey(l.key, &knew);
    unsigned char c1[LMD_TRUST_CERT_BYTES], c2[LMD_TRUST_CERT_BYTES];
    size_t n1 = lmd_trust_cert_bytes(&t->cert, c1), n2 = lmd_trust_cert_bytes(&l.cert, c2);
    bool signer_changed = memcmp(kold.pk, knew.pk, sizeof kold.pk) || n1 != n2 || memcmp(c1, c2, n1) ||
                          t->validity != cfg->trust.validity;
    const lmd_trust_revoked *cur = lmd_trust_verifier_revoked(t->verifier);
    if (cur && l.revoked && l.revoked->issued < cur->issued) {
        char t1[32], t2[32];
        lmd_error("trust: %s was issued %s, before the list in force (%s): refused (an old copy?)",
                  cfg->trust.revoked, lmd_trust_time_str((int64_t)l.revoked->issued, t1),
                  lmd_trust_time_str((int64_t)cur->issued, t2));
        lmd_trust_revoked_free(l.revoked);
        l.revoked = NULL;
    }
    if (keep_revoked(l.revoked, cur, cfg->trust.revoked) != 0) {
        loaded_free(&l);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    bool keep_list = cur && !l.revoked && cfg->trust.revoked;
    bool judge_changed = !lmd_trust_fleet_equal(lmd_trust_verifier_fleet(t->verifier), l.fleet) ||
                         (!keep_list && !lmd_trust_revoked_equal(cur, l.revoked));
    if (judge_changed && lmd_trust_verifier_set_fleet(t->verifier, l.fleet) != 0) {
        loaded_free(&l);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    if (judge_changed && !keep_list) {
        lmd_trust_verifier_set_revoked(t->verifier, l.revoked);
        l.revoked = NULL;
    }
    if (signer_changed) {
        lmd_trust_secret_free(t->key);
        t->key = l.key;
        l.key = NULL;
        t->cert = l.cert;
        t->validity = cfg->trust.validity;
    }
    loaded_free(&l);
    struct lmd_peers_config pc = lmd_agent_peers_config(a);
    lmd_peers_configure(a->reg, &pc, lmd_now_mono()); /* require may have changed */
    if (judge_changed)
        rejudge(a, "fleet keys or revocation list changed");
    if (path_changed && t->revoked_path)
        revoked_reload(a); /* read before the new watch existed (see start) */
    if (signer_changed) {
        lmd_info("trust: a new host key, certificate or validity: signing everything again");
        lmd_agent_resign_all(a);
        if (lmd_timer_in(t->resign, cfg->trust.validity / 2) != 0)
            lmd_error("trust: cannot arm the re-signing timer (out of memory)");
    }
    return 0;
}

/* ---- Signing -------------------------------------------------------------------- */

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
        const void *ad = fam == AF_INET ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
                         : fam == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr : NULL;
        if (ad && inet_ntop(fam, ad, out[n], INET6_ADDRSTRLEN))
            n++;
    }
    freeifaddrs(ifs);
    return n;
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

int lmd_agent_trust_covers(lmd_agent *a, const char *name, lmd_err *err)
{
    if (!a->trust || lmd_trust_cert_covers(&a->trust->cert, name))
        return 0;
    char names[200];
    lmd_trust_cert_names_str(&a->trust->cert, names, sizeof names);
    return lmd_err_set(err, LMD_EPERM, "this host's certificate names %s, not \"%.63s\": peers would not trust it; "
                       "choose a name it covers, or certify the host again with --name for this one", names,
                       name ? name : "(null)");
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
    struct lmd_agent_trust *t = a->trust;
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
    /* later than every signature before it: peers refuse an older one
     * while a newer is valid (a replayed state never wins) */
    uint64_t now_ms = (uint64_t)(lmd_now_wall() * 1000), issued = now_ms > t->last_issued ? now_ms : t->last_issued + 1;
    lmd_err e = {0};
    rc = lmd_trust_sign(t->key, &t->cert, &ann, ptrs, n, (uint32_t)(time(NULL) + (time_t)a->cfg.trust.validity),
                        issued, out, &e);
    if (rc) {
        lmd_txt_free(out);
        return lmd_errbuf(err, errlen, rc, "cannot sign the announcement: %s", lmd_err_text(&e));
    }
    t->last_issued = issued;
    return 0;
}

int lmd_agent_publish_txt(lmd_agent *a, lmd_pub *pub, const char *name, uint16_t port, const lmd_txt *txt)
{
    lmd_txt signed_txt;
    char err[400];
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

/* ---- Judging peers (the registry's verifier) --------------------------------------- */

void lmd_agent_verify_shown(void *ud, const lmd_node_info *peer, double wall, struct lmd_peers_verdict *out)
{
    lmd_agent *a = ud;
    lmd_trust_result res;
    if (!a->trust) {
        out->status = LMD_TRUST_ERROR;
        snprintf(out->reason, sizeof out->reason, "trust { } is off");
        return;
    }
    lmd_trust_judge_node(a->trust->verifier, peer, (int64_t)floor(wall), &res);
    out->status = (int)res.status;
    out->until = res.valid_until;
    out->newest = res.newest;
    snprintf(out->signer, sizeof out->signer, "%s", res.status == LMD_TRUST_OK ? res.host_id : "");
    snprintf(out->reason, sizeof out->reason, "%s", res.reason);
}

/* avahi renames a service "NAME #2" when another host answers for NAME:
 * the length of NAME, or 0. */
static size_t renamed_from(const char *name)
{
    size_t n = strlen(name), i = n;
    while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9')
        i--;
    return i < n && i >= 3 && name[i - 1] == '#' && name[i - 2] == ' ' ? i - 2 : 0;
}

void lmd_agent_judged(void *ud, const lmd_node_info *peer, const struct lmd_peers_verdict *v, bool refused)
{
    lmd_agent *a = ud;
    char e[160];
    lmd_escape_str(peer->name, e, sizeof e);
    if (v->status != 0) {
        if (v->status > 0 && v->status < (int)LMD_ARRAY_LEN(a->counts.untrusted))
            a->counts.untrusted[v->status]++;
        bool require = a->cfg.trust.require;
        lmd_log(require || refused ? LMD_LOG_WARN : LMD_LOG_INFO, "peer \"%s\" is not trusted (%s)%s", e, v->reason,
                refused ? ": a record refused, the trusted one stays shown" : require ? ": kept out" : "");
        return;
    }
    lmd_debug("peer \"%s\" is trusted (%s)", e, v->reason);
    size_t base = renamed_from(peer->name);
    if (base && a->trust) {
        char orig[256];
        snprintf(orig, sizeof orig, "%.*s", (int)base, peer->name);
        if (lmd_trust_verifier_knows(a->trust->verifier, v->signer, orig, (int64_t)time(NULL))) {
            char o[160];
            lmd_escape(orig, base, o, sizeof o);
            lmd_warn("peer \"%s\" is \"%s\" renamed by avahi after a name conflict (the same host key %s signs "
                     "both): another host answers for \"%s\"", e, o, v->signer, o);
        }
    }
}
