/* What this agent announces: starting (once the local server is healthy),
 * TXT changes from the policy and the health check, and how it looks to
 * the policy (self()) and the API (/v1/self). */
#include "agent/internal.h"
#include "base/json.h"
#include "base/log.h"
#include "base/txt.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>

void lmd_agent_on_pub(void *ud, enum lmd_pub_event ev, const char *name, const char *detail)
{
    lmd_agent *a = ud;
    char e[160];
    const char *fqdn = a->m ? lmd_mdns_host_fqdn(a->m) : NULL;
    switch (ev) {
    case LMD_PUB_ESTABLISHED:
        lmd_info("announced \"%s\"", lmd_escape_str(name, e, sizeof e));
        /* signed before avahi had the host name: sign again with it */
        if (a->trust && a->pub && fqdn && strcmp(fqdn, a->signed_host) != 0)
            (void)lmd_agent_publish_txt(a, a->pub, name, a->cfg.announce.port, &a->txt);
        break;
    case LMD_PUB_RENAMED:
        lmd_warn("name collision: now announcing as \"%s\"", lmd_escape_str(name, e, sizeof e));
        if (a->trust && a->pub) /* the instance name is signed (failures logged) */
            (void)lmd_agent_publish_txt(a, a->pub, name, a->cfg.announce.port, &a->txt);
        break;
    case LMD_PUB_FAILED:
        lmd_error("announcing failed: %s", detail ? detail : "?");
        break;
    }
}

int lmd_agent_start_announce(lmd_agent *a)
{
    if (!a->cfg.announce.given || !a->m || a->pub || a->draining)
        return 0;
    /* with a health check, announce once its first answer is in (a dead
     * server is not announced; status= is right from the start) */
    if (a->health && (a->self_state < 0 || (a->self_state == 0 && !lmd_agent_status_mode(a))))
        return 0;
    lmd_config_name(&a->cfg, a->name, sizeof a->name);
    unsigned ttl = lmd_config_record_ttl(&a->cfg);
    lmd_txt txt;
    char err[320];
    int rc = lmd_agent_sign_txt(a, a->name, a->cfg.announce.port, &a->txt, &txt, err, sizeof err);
    if (rc) {
        lmd_error("%s", err);
        return rc;
    }
    struct lmd_pub_config pc = {.name = a->name, .type = a->cfg.announce.type, .port = a->cfg.announce.port,
                                .txt = &txt, .ttl = ttl};
    rc = lmd_pub_new(a->m, &pc, lmd_agent_on_pub, a, &a->pub, NULL);
    lmd_txt_free(&txt);
    return rc;
}

void lmd_agent_resign_all(lmd_agent *a)
{
    if (a->pub)
        (void)lmd_agent_publish_txt(a, a->pub, lmd_pub_name(a->pub), a->cfg.announce.port, &a->txt);
    lmd_agent_services_resign(a);
    if (a->trust)
        lmd_wide_resign(a->wide);
}

int lmd_agent_host_self(void *ud, lmd_node_info *out, const char **state)
{
    lmd_agent *a = ud;
    memset(out, 0, sizeof *out);
    if (!a->cfg.announce.given)
        return LMD_ENOTFOUND;
    const char *wname = lmd_wide_name(a->wide);
    out->name = lmd_strdup(a->pub ? lmd_pub_name(a->pub) : a->name[0] || !wname ? a->name : wname);
    out->type = lmd_strdup(a->cfg.announce.type ? a->cfg.announce.type : LMD_DEFAULT_TYPE);
    /* without mDNS, what the wide-area domain holds */
    bool dns_only = !a->m && lmd_wide_host_name(a->wide);
    out->domain = lmd_strdup(dns_only ? a->cfg.wide_area.domain : "local");
    out->host = lmd_strdup(a->m ? lmd_mdns_host_fqdn(a->m) : lmd_wide_host_name(a->wide));
    out->port = a->cfg.announce.port;
    const lmd_txt_item *it = lmd_txt_get(&a->txt, "info");
    out->info = it && it->has_value ? lmd_strndup(it->value, it->value_len) : NULL;
    out->info_len = out->info ? it->value_len : 0;
    out->flags = LMD_NODE_LOCAL | LMD_NODE_OWN;
    if (lmd_txt_copy(&out->txt, &a->txt) != 0 || !out->name) {
        lmd_node_info_clear(out);
        return LMD_ENOMEM;
    }
    *state = dns_only ? (lmd_wide_published(a->wide) ? "established" : "registering")
             : !a->m || lmd_mdns_state(a->m) != LMD_MDNS_RUNNING ? "waiting"
             : a->health && a->self_state == 0 && !lmd_agent_status_mode(a) ? "withdrawn (unhealthy)"
             : a->pub && lmd_pub_established(a->pub)            ? "established"
                                                                 : "registering";
    return 0;
}

int lmd_agent_host_set_txt(void *ud, const lmd_txt *txt, char *err, size_t errlen)
{
    lmd_agent *a = ud;
    /* lmd-* keys are the agent's own (the signature, liveness): whatever
     * runs the policy, a policy never sets them (the configuration cannot
     * either, so our own TXT never holds one) */
    const char *reserved = lmd_txt_reserved_key(txt);
    if (reserved) {
        lmd_err e = {0};
        int code = lmd_txt_reserved_error(reserved, &e);
        return lmd_errbuf(err, errlen, code, "%s", lmd_err_text(&e));
    }
    int rc = lmd_txt_check_record(txt, err, errlen);
    if (rc)
        return rc;
    lmd_txt copy;
    if (lmd_txt_copy(&copy, txt) != 0)
        return LMD_ENOMEM;
    lmd_txt_free(&a->txt);
    a->txt = copy;
    lmd_wide_sync(a->wide); /* the TXT in DNS too (wide_area { }) */
    return a->pub ? lmd_agent_publish_txt(a, a->pub, lmd_pub_name(a->pub), a->cfg.announce.port, &a->txt) : 0;
}

json_t *lmd_agent_api_self(void *ud)
{
    lmd_agent *a = ud;
    lmd_node_info n;
    const char *state;
    if (lmd_agent_host_self(a, &n, &state) != 0)
        return json_pack("{s:b,s:s,s:o}", "announcing", 0, "state", a->draining ? "draining" : "observing", "services",
                         lmd_agent_services_json(a));
    json_t *j = lmd_json_node(&n);
    lmd_node_info_clear(&n);
    if (j) {
        /* drained: withdrawn for good */
        json_object_set_new(j, "announcing", json_boolean(!(a->draining && !a->pub)));
        json_object_set_new(j, "state", json_string(a->draining ? (a->pub ? "draining" : "drained") : state));
        json_object_set_new(j, "services", lmd_agent_services_json(a));
    }
    return j;
}

void lmd_agent_set_status(lmd_agent *a, const char *status)
{
    lmd_txt t;
    if (lmd_txt_copy(&t, &a->txt) != 0) {
        lmd_error("cannot announce status=%s: out of memory", status);
        return;
    }
    char err[160];
    if (lmd_txt_set(&t, "status", status, strlen(status), true, err, sizeof err) != 0 ||
        lmd_agent_host_set_txt(a, &t, err, sizeof err) != 0)
        lmd_error("cannot announce status=%s: %s", status, err);
    lmd_txt_free(&t);
}

void lmd_agent_on_self_health(void *ud, bool up, const char *detail)
{
    lmd_agent *a = ud;
    a->self_state = up;
    if (lmd_agent_status_mode(a)) {
        lmd_log(up ? LMD_LOG_INFO : LMD_LOG_WARN, "local server %s (%s): announcing status=%s",
                up ? "is healthy" : "failed its health check", detail, up ? "up" : "down");
        if (!a->draining) /* status=draining stays; a cancelled drain gives this one back */
            lmd_agent_set_status(a, up ? "up" : "down");
        lmd_agent_start_announce(a);
    } else if (up) {
        lmd_info("local server is healthy (%s): announcing", detail);
        lmd_agent_start_announce(a);
    } else if (a->pub) {
        lmd_warn("local server failed %u health check(s) in a row (%s): withdrawing the announcement",
                 a->cfg.health.failures, detail);
        lmd_pub_free(a->pub); /* goodbye */
        a->pub = NULL;
    } else {
        lmd_warn("local server is not healthy (%s): not announcing until it passes", detail);
    }
    lmd_wide_sync(a->wide);
}

