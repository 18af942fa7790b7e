/* The agent's components (internal.h): each starts from the
 * configuration, compares its own sections at a reload, and is freed.
 * The registry, the policy, the signals and the API are the agent's frame
 * (agent.c): they exist before any component and outlive them all. */
#include "agent/internal.h"
#include "base/log.h"
#include "base/util.h"

#include <string.h>

static bool same(const struct lmd_config *x, const struct lmd_config *y, const char *section)
{
    return lmd_config_section_equal(x, y, section, NULL);
}

/* ---- trust { }: keys, certificate, fleet --------------------------------- */

/* Every reload, whatever the section says: the files it names may hold
 * new keys under the same paths (every field counts, the fleet list too). */
static int trust_reload(lmd_agent *a, const struct lmd_config *old, lmd_err *err)
{
    (void)old;
    (void)err;
    lmd_err te = {0};
    if (lmd_agent_trust_reload(a, &a->cfg, &te) != 0)
        lmd_error("reload: %s; %s", lmd_err_text(&te), a->trust ? "the keys in force stay" : "not signing");
    return 0;
}

/* ---- mdns { }: the avahi client --------------------------------------- */

static void on_mdns_state(void *ud, enum lmd_mdns_state st)
{
    (void)ud;
    if (st == LMD_MDNS_RUNNING)
        lmd_info("connected to avahi-daemon");
}

static int mdns_start(lmd_agent *a, lmd_err *err)
{
    if (a->cfg.mdns.enabled)
        return lmd_mdns_new(a->base, on_mdns_state, a, &a->m, err);
    lmd_info("mdns { enabled = false }: neither announcing nor browsing over mDNS");
    a->settled_once = true; /* nothing to scan */
    return 0;
}

static void mdns_free(lmd_agent *a)
{
    lmd_mdns_free(a->m);
    a->m = NULL;
}

/* ---- checks { } and health { }: probes of peers and of our server -------- */

static int checks_reload(lmd_agent *a, const struct lmd_config *old, lmd_err *err)
{
    if (!same(old, &a->cfg, "checks")) {
        lmd_checks_free(a->checks);
        a->checks = NULL;
    }
    if (!same(old, &a->cfg, "health")) {
        lmd_health_free(a->health);
        a->health = NULL;
        a->self_state = -1;
    }
    return lmd_agent_start_checks(a, err);
}

static void checks_free(lmd_agent *a)
{
    lmd_health_free(a->health);
    lmd_checks_free(a->checks);
    a->health = NULL;
    a->checks = NULL;
}

/* ---- announce { } over mDNS --------------------------------------------- */

static int announce_start(lmd_agent *a, lmd_err *err)
{
    int rc = lmd_agent_start_announce(a);
    return rc ? lmd_err_set(err, rc, "cannot announce: %s", lmd_strerror(rc)) : 0;
}

/* The announcement restarts when its name, port, type or TTL change, or
 * what decides whether and how it is signed or announced (health, trust);
 * TXT and info go out as a TXT update instead. */
static int announce_reload(lmd_agent *a, const struct lmd_config *old, lmd_err *err)
{
    (void)err;
    static const char *const live[] = {"info", NULL};
    bool restart = !lmd_config_section_equal(old, &a->cfg, "announce", live) ||
                   old->registry.ttl != a->cfg.registry.ttl || !same(old, &a->cfg, "health") ||
                   !same(old, &a->cfg, "trust");
    bool txt_changed = !lmd_txt_equal(&old->announce_txt, &a->cfg.announce_txt);
    if (restart || txt_changed) {
        lmd_txt_free(&a->txt);
        if (lmd_txt_copy(&a->txt, &a->cfg.announce_txt) != 0)
            lmd_error("reload: out of memory; announcing an empty TXT record");
    }
    if (restart) {
        lmd_pub_free(a->pub);
        a->pub = NULL;
        if (lmd_agent_start_announce(a) != 0)
            lmd_error("reload: cannot announce (out of memory)");
    } else if (txt_changed && a->pub &&
               lmd_agent_publish_txt(a, a->pub, lmd_pub_name(a->pub), a->cfg.announce.port, &a->txt) != 0) {
        lmd_error("reload: the new TXT record could not be announced (logged above)");
    }
    return 0;
}

static void announce_free(lmd_agent *a)
{
    lmd_pub_free(a->pub); /* goodbye */
    a->pub = NULL;
}

/* ---- registered services: nothing to start, goodbyes at the end ----------- */

static void services_free(lmd_agent *a)
{
    lmd_agent_services_free(a); /* goodbyes; their streams went with the API */
}

/* ---- wide_area { }: src/wide/, through this table ------------------------ */

static bool wide_self_wanted(void *ud)
{
    const lmd_agent *a = ud;
    if (a->drained || !a->cfg.announce.given)
        return false;
    if (!a->health)
        return true;
    return a->self_state == 1 || (a->self_state == 0 && lmd_agent_status_mode(a));
}

static bool wide_drained(void *ud)
{
    return ((const lmd_agent *)ud)->drained;
}

static const lmd_txt *wide_self_txt(void *ud)
{
    return &((const lmd_agent *)ud)->txt;
}

static int wide_sign_txt(void *ud, const char *name, uint16_t port, const lmd_txt *txt, const char *domain,
                         const char *host, lmd_txt *out, char *err, size_t errlen)
{
    return lmd_agent_sign_txt_as(ud, name, port, txt, domain, host, out, err, errlen);
}

static void wide_registry_changed(void *ud)
{
    lmd_agent_rearm(ud);
}

static int wide_start(lmd_agent *a, lmd_err *err)
{
    static const struct lmd_wide_host host_fns = {
        .self_wanted = wide_self_wanted, .drained = wide_drained, .self_txt = wide_self_txt,
        .sign_txt = wide_sign_txt, .published = lmd_agent_services_dns_published,
        .registered = lmd_agent_services_to_wide, .registry_changed = wide_registry_changed};
    struct lmd_wide_host host = host_fns;
    host.ud = a;
    return lmd_wide_new(a->base, &a->cfg, a->reg, &host, &a->wide, err);
}

static int wide_reload(lmd_agent *a, const struct lmd_config *old, lmd_err *err)
{
    lmd_err we = {0};
    (void)err;
    if (lmd_wide_reload(a->wide, old, &we) != 0)
        lmd_error("reload: %s; not publishing in DNS", lmd_err_text(&we));
    return 0;
}

static void wide_free(lmd_agent *a)
{
    lmd_wide_free(a->wide);
    a->wide = NULL;
}

/* ---- browsing over mDNS ----------------------------------------------- */

static int browse_start(lmd_agent *a, lmd_err *err)
{
    if (!a->m)
        return 0;
    return lmd_browse_new(a->m, a->cfg.announce.type, NULL, &lmd_agent_browse_callbacks, a, &a->browse, err);
}

static void browse_free(lmd_agent *a)
{
    lmd_agent_wire_free(a);
    lmd_browse_free(a->browse);
    a->browse = NULL;
}

const struct lmd_agent_component lmd_agent_components[] = {
    {"trust", lmd_agent_trust_start, trust_reload, lmd_agent_trust_free},
    {"mdns", mdns_start, NULL, mdns_free},
    {"checks", lmd_agent_start_checks, checks_reload, checks_free},
    {"announce", announce_start, announce_reload, announce_free},
    {"services", NULL, NULL, services_free},
    {"wide_area", wide_start, wide_reload, wide_free},
    {"browse", browse_start, NULL, browse_free},
};
const size_t lmd_agent_ncomponents = LMD_ARRAY_LEN(lmd_agent_components);

/* Sections no component reloads: they take effect at the next start (the
 * API's sockets, the avahi client, the loop watchdog). */
const char *const lmd_agent_restart_sections[] = {"api", "mdns", "watchdog", NULL};
