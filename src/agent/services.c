/* Services that servers register through the agent's API (api_reg.c), and
 * draining: they are announced the way the configured one is (collision
 * renames, the record TTL, lmdisc.self(), /v1/self), live as long as their
 * client's connection (or their TTL without a pass), and go with a goodbye.
 *
 * A registration belongs to the uid that made it: only that uid and the
 * admins (root, the agent's own user) change or withdraw it.  Names are
 * compared as DNS and mDNS compare them, without ASCII case: "GPU1" is
 * taken when "gpu1" is. */
#include "agent/internal.h"
#include "base/json.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/txt.h"
#include "base/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

struct lmd_svc {
    struct lmd_svc *next;
    lmd_agent *a;
    char *name;              /* as registered (the path's NAME) */
    uid_t owner;             /* who registered it */
    bool admin;              /* root or the agent's user: outside the users' shares */
    lmd_pub *pub;
    uint16_t port;
    lmd_txt txt;             /* info included */
    lmd_api_stream *stream;  /* NULL: ttl mode */
    struct event *ttl_ev;
    double ttl;
    const char *state;       /* "registering", "established" */
    bool registered;         /* past svc_add: given to src/wide */
    char *undrain;           /* its status= before a drain ("": none), given back if it is cancelled */
};

/* One instance name: DNS labels compare without ASCII case (RFC 4343),
 * and so does mDNS (RFC 6762 16). */
static bool same_name(const char *x, const char *y)
{
    return x && y && strcasecmp(x, y) == 0;
}

static struct lmd_svc *find(lmd_agent *a, const char *name)
{
    for (struct lmd_svc *s = a->svcs; s; s = s->next)
        if (same_name(s->name, name) || (s->pub && same_name(lmd_pub_name(s->pub), name)))
            return s;
    return NULL;
}

/* The registration named name, if who may change it: 0 with *out, or
 * LMD_ENOTFOUND / LMD_EPERM with err saying so. */
static int find_owned(lmd_agent *a, const struct lmd_api_caller *who, const char *name, const char *verb,
                      struct lmd_svc **out, lmd_err *err)
{
    struct lmd_svc *s = *out = find(a, name);
    if (!s)
        return lmd_err_set(err, LMD_ENOTFOUND, "no registered service named \"%.63s\"", name);
    if (who->admin || who->uid == s->owner)
        return 0;
    *out = NULL;
    return lmd_err_set(err, LMD_EPERM, "\"%.63s\" was registered by uid %u: only that user, root and the agent's "
                                       "user may %s it (you are uid %u)", s->name, (unsigned)s->owner, verb,
                       (unsigned)who->uid);
}

/* The TXT a registration would announce: no lmd-* key (LMD_ETXT). */
static int check_txt(const lmd_txt *t, lmd_err *err)
{
    const char *reserved = lmd_txt_reserved_key(t);
    if (reserved)
        return lmd_txt_reserved_error(reserved, err);
    return lmd_txt_check_record(t, err->msg, sizeof err->msg);
}

static void svc_free(lmd_agent *a, struct lmd_svc *s)
{
    for (struct lmd_svc **pp = &a->svcs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    lmd_pub_free(s->pub); /* goodbye */
    if (s->registered)
        lmd_wide_service_gone(a->wide, s->name); /* and out of the zone */
    if (s->ttl_ev)
        event_free(s->ttl_ev);
    lmd_txt_free(&s->txt);
    free(s->undrain);
    free(s->name);
    free(s);
}

/* Withdraw, telling a connected client why (its stream then ends). */
static void withdraw(lmd_agent *a, struct lmd_svc *s, const char *reason)
{
    char e[160];
    lmd_info("withdrawing registered service \"%s\" (%s)", lmd_escape_str(s->pub ? lmd_pub_name(s->pub) : s->name, e, sizeof e),
             reason);
    if (s->stream)
        lmd_api_stream_state(s->stream, "withdrawn", s->pub ? lmd_pub_name(s->pub) : s->name, reason, true);
    svc_free(a, s);
}

static void on_pub(void *ud, enum lmd_pub_event ev, const char *name, const char *detail)
{
    struct lmd_svc *s = ud;
    char e[160];
    lmd_escape_str(name, e, sizeof e);
    switch (ev) {
    case LMD_PUB_ESTABLISHED:
        s->state = "established";
        lmd_info("announced registered service \"%s\"", e);
        break;
    case LMD_PUB_RENAMED:
        lmd_warn("name collision: registered service \"%s\" now announced as \"%s\"", s->name, e);
        if (s->a->trust && s->pub) /* the instance name is signed */
            (void)lmd_agent_publish_txt(s->a, s->pub, name, s->port, &s->txt);
        break;
    case LMD_PUB_FAILED:
        lmd_error("announcing registered service \"%s\" failed: %s", e, detail ? detail : "?");
        break;
    }
    if (s->stream)
        lmd_api_stream_state(s->stream, ev == LMD_PUB_ESTABLISHED ? "established" : ev == LMD_PUB_RENAMED ? "renamed" : "failed",
                             name, ev == LMD_PUB_FAILED ? detail : NULL, false);
}

static void ttl_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lmd_svc *s = arg;
    withdraw(s->a, s, "its ttl passed without a pass");
}

static json_t *svc_json(const struct lmd_svc *s)
{
    json_t *doc = json_pack("{s:o,s:s,s:i,s:I}", "name", lmd_json_str(s->pub ? lmd_pub_name(s->pub) : s->name),
                            "state", s->state, "port", s->port, "uid", (json_int_t)s->owner);
    json_t *dns = lmd_wide_service_json(s->a->wide, s->name); /* wide_area { }: its state in the zone */
    if (doc && dns)
        json_object_set_new(doc, "dns", dns);
    else
        json_decref(dns);
    if (doc && s->ttl > 0)
        json_object_set_new(doc, "ttl", json_real(s->ttl));
    if (doc && s->name && s->pub && strcmp(s->name, lmd_pub_name(s->pub)))
        json_object_set_new(doc, "registered_as", lmd_json_str(s->name));
    lmd_node_info n = {.txt = s->txt};
    json_t *node = lmd_json_node(&n); /* the txt, rendered the way peers' is */
    if (doc && node)
        json_object_set(doc, "txt", json_object_get(node, "txt"));
    json_decref(node);
    return doc;
}

static int svc_add(void *ud, const struct lmd_api_caller *who, const char *name, const struct lmd_service_spec *spec,
                   lmd_api_stream *stream, json_t **doc, lmd_err *err)
{
    lmd_agent *a = ud;
    if (a->draining)
        return lmd_err_set(err, LMD_EUNAVAIL, "this host is draining: it takes no new services");
    if (!a->m && !a->cfg.wide_area.given)
        return lmd_err_set(err, LMD_EUNAVAIL, "mdns { enabled = false } and no wide_area { }: this agent announces "
                                            "nothing anywhere; enable one of them");
    /* trust { }: a name this host's certificate does not cover would be
     * refused by every peer; say so (403) before anything is made */
    int rc = lmd_agent_trust_covers(a, name, err);
    if (rc)
        return rc;
    /* the configured service's name: as announced over mDNS (after a
     * collision rename) and as published in the zone (never renamed) */
    const char *wname = lmd_wide_name(a->wide);
    char configured[sizeof a->name];
    lmd_config_name(&a->cfg, configured, sizeof configured); /* "" without announce { } */
    if (find(a, name) || (a->pub && same_name(lmd_pub_name(a->pub), name)) || same_name(configured, name) ||
        same_name(wname, name))
        return lmd_err_set(err, LMD_EEXIST, "a service named \"%.63s\" is already announced by this agent; "
                                            "withdraw it first or choose another name", name);
    /* each costs avahi objects (an entry group) that the browser needs too;
     * ttl registrations hold no connection, so only this count bounds them */
    if (lmd_agent_services_count(a) >= LMD_MAX_REGISTRATIONS)
        return lmd_err_set(err, LMD_ELIMIT, "this agent announces %d registered services already, the most it "
                                            "takes; withdraw some first", LMD_MAX_REGISTRATIONS);
    /* and no user takes the others' places: a share each, and the last
     * places are kept for root and the agent's user */
    unsigned by_uid = 0, by_users = 0;
    for (const struct lmd_svc *o = a->svcs; o; o = o->next) {
        by_uid += o->owner == who->uid;
        by_users += !o->admin;
    }
    if (!who->admin && by_uid >= LMD_MAX_REGISTRATIONS_PER_UID)
        return lmd_err_set(err, LMD_ELIMIT, "uid %u has %u registered services, the most one user may; withdraw some "
                           "first", (unsigned)who->uid, by_uid);
    if (!who->admin && by_users >= LMD_MAX_REGISTRATIONS_USERS)
        return lmd_err_set(err, LMD_ELIMIT, "users other than root and the agent's own hold %u registered services, "
                           "the most they may together; withdraw some first", by_users);
    struct lmd_svc *s = calloc(1, sizeof *s);
    if (!s || !(s->name = lmd_strdup(name)) || lmd_txt_copy(&s->txt, spec->txt) != 0) {
        if (s) {
            free(s->name);
            lmd_txt_free(&s->txt);
        }
        free(s);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    s->a = a;
    s->owner = who->uid;
    s->admin = who->admin;
    s->port = spec->port;
    s->stream = stream;
    s->ttl = spec->ttl;
    s->state = "registering";
    rc = spec->info ? lmd_txt_set(&s->txt, "info", spec->info, strlen(spec->info), true, err->msg, sizeof err->msg) : 0;
    if (rc == 0)
        rc = check_txt(&s->txt, err);
    if (rc) {
        svc_free(a, s);
        return err->code = rc;
    }
    if (spec->ttl > 0 && (!(s->ttl_ev = evtimer_new(a->base, ttl_fire, s)) || lmd_timer_in(s->ttl_ev, spec->ttl) != 0)) {
        svc_free(a, s);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    s->next = a->svcs;
    a->svcs = s;
    lmd_txt signed_txt;
    if (lmd_agent_sign_txt(a, name, spec->port, &s->txt, &signed_txt, err->msg, sizeof err->msg) != 0) {
        svc_free(a, s);
        return err->code = LMD_EINVAL;
    }
    struct lmd_pub_config pc = {.name = name, .type = a->cfg.announce.type, .port = spec->port, .txt = &signed_txt,
                                .ttl = lmd_config_record_ttl(&a->cfg)};
    lmd_err e = {0};
    rc = a->m ? lmd_pub_new(a->m, &pc, on_pub, s, &s->pub, &e) : 0; /* without mDNS: in the zone only */
    lmd_txt_free(&signed_txt);
    if (rc != 0) {
        svc_free(a, s);
        return lmd_err_set(err, e.code, "%s", lmd_err_text(&e));
    }
    s->registered = true;
    lmd_wide_service(a->wide, name, spec->port, &s->txt); /* wide_area { }: in the zone too */
    char esc[160];
    lmd_info("registered service \"%s\" on port %u (%s)", lmd_escape_str(name, esc, sizeof esc), spec->port,
             stream ? "while its client stays connected" : "with a ttl");
    *doc = svc_json(s);
    return 0;
}

static void svc_closed(void *ud, lmd_api_stream *stream)
{
    lmd_agent *a = ud;
    for (struct lmd_svc *s = a->svcs; s; s = s->next)
        if (s->stream == stream) {
            s->stream = NULL; /* gone: nothing more to tell it */
            withdraw(a, s, "its client's connection closed");
            return;
        }
}

static int svc_patch(void *ud, const struct lmd_api_caller *who, const char *name, const lmd_txt *set,
                     const lmd_txt *remove, const char *info, json_t **doc, lmd_err *err)
{
    lmd_agent *a = ud;
    struct lmd_svc *s;
    int rc = find_owned(a, who, name, "change", &s, err);
    if (rc)
        return rc;
    lmd_txt t;
    if (lmd_txt_copy(&t, &s->txt) != 0)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    for (size_t i = 0; i < remove->n; i++)
        (void)lmd_txt_remove(&t, remove->items[i].key); /* LMD_ENOTFOUND: nothing to remove */
    for (size_t i = 0; rc == 0 && i < set->n; i++)
        rc = lmd_txt_set(&t, set->items[i].key, set->items[i].value, set->items[i].value_len, set->items[i].has_value,
                         err->msg, sizeof err->msg);
    if (rc == 0 && info)
        rc = lmd_txt_set(&t, "info", info, strlen(info), true, err->msg, sizeof err->msg);
    if (rc == 0)
        rc = check_txt(&t, err);
    if (rc == 0 && s->pub && (rc = lmd_agent_publish_txt(a, s->pub, lmd_pub_name(s->pub), s->port, &t)) != 0)
        lmd_err_set(err, rc, "avahi refused the TXT update (see the agent's log)");
    if (rc) {
        lmd_txt_free(&t);
        return err->code = rc;
    }
    lmd_txt_free(&s->txt);
    s->txt = t;
    lmd_wide_service(a->wide, s->name, s->port, &s->txt);
    *doc = svc_json(s);
    return 0;
}

static int svc_remove(void *ud, const struct lmd_api_caller *who, const char *name, json_t **doc, lmd_err *err)
{
    lmd_agent *a = ud;
    struct lmd_svc *s;
    int rc = find_owned(a, who, name, "withdraw", &s, err);
    if (rc)
        return rc;
    *doc = json_pack("{s:o,s:s}", "name", lmd_json_str(s->pub ? lmd_pub_name(s->pub) : s->name), "state", "withdrawn");
    withdraw(a, s, "withdrawn by DELETE");
    return 0;
}

static int svc_pass(void *ud, const struct lmd_api_caller *who, const char *name, json_t **doc, lmd_err *err)
{
    lmd_agent *a = ud;
    struct lmd_svc *s;
    int rc = find_owned(a, who, name, "pass", &s, err);
    if (rc)
        return rc;
    if (!s->ttl_ev)
        return lmd_err_set(err, LMD_EINVAL, "\"%.63s\" lives as long as its connection; it has no ttl to pass",
                          name);
    if (lmd_timer_in(s->ttl_ev, s->ttl) != 0)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    *doc = svc_json(s);
    return 0;
}

/* ---- draining ------------------------------------------------------------ */

/* txt's status= value, "" without one (NULL: out of memory) */
static char *status_of(const lmd_txt *txt)
{
    const lmd_txt_item *it = lmd_txt_get(txt, "status");
    return it && it->has_value ? lmd_strndup(it->value, it->value_len) : lmd_strdup("");
}

/* txt with status= as it was (was: "" none, NULL leave it), into out */
static int with_status(const lmd_txt *txt, const char *was, lmd_txt *out)
{
    char why[320];
    int rc = lmd_txt_copy(out, txt);
    if (rc == 0 && was && !*was)
        (void)lmd_txt_remove(out, "status"); /* LMD_ENOTFOUND: none to remove */
    else if (rc == 0 && was)
        rc = lmd_txt_set(out, "status", was, strlen(was), true, why, sizeof why);
    if (rc)
        lmd_txt_free(out);
    return rc;
}

static void drained(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_agent *a = arg;
    lmd_info("drain: grace period over; withdrawing every service this agent announces");
    a->drained = true;
    lmd_wide_sync(a->wide);
    while (a->svcs)
        withdraw(a, a->svcs, "drained");
    lmd_pub_free(a->pub); /* goodbye; not announced again while draining */
    a->pub = NULL;
}

static int drain(void *ud, double grace, json_t **doc, lmd_err *err)
{
    lmd_agent *a = ud;
    if (grace < 0)
        grace = LMD_DRAIN_GRACE;
    if (!a->drain_ev && !(a->drain_ev = evtimer_new(a->base, drained, a)))
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    if (!a->draining) {
        a->draining = true;
        lmd_info("drain: announcing status=draining, withdrawing in %g s", grace);
        free(a->undrain);
        a->undrain = status_of(&a->txt);
        lmd_agent_set_status(a, "draining");
        for (struct lmd_svc *s = a->svcs; s; s = s->next) {
            char why[320];
            lmd_txt t;
            free(s->undrain);
            s->undrain = status_of(&s->txt);
            if (lmd_txt_copy(&t, &s->txt) == 0 && lmd_txt_set(&t, "status", "draining", 8, true, why, sizeof why) == 0 &&
                (!s->pub || lmd_agent_publish_txt(a, s->pub, lmd_pub_name(s->pub), s->port, &t) == 0)) {
                lmd_txt_free(&s->txt);
                s->txt = t;
                lmd_wide_service(a->wide, s->name, s->port, &s->txt);
            } else {
                lmd_txt_free(&t);
                lmd_error("drain: cannot announce status=draining for \"%s\"", s->name);
            }
        }
    }
    if (lmd_timer_in(a->drain_ev, grace) != 0)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    *doc = json_pack("{s:s,s:f}", "state", "draining", "grace", grace);
    return 0;
}

/* The drain undone: during its grace, each service gets back the status it
 * had (the configured one: what its health check says, in status mode);
 * after it, the configured service is announced again (registered ones
 * were withdrawn with their clients told "drained": they register again). */
static int undrain(void *ud, json_t **doc, lmd_err *err)
{
    lmd_agent *a = ud;
    if (!a->draining) {
        *doc = json_pack("{s:b,s:s}", "cancelled", 0, "state", "not draining");
        return *doc ? 0 : lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    bool withdrawn = a->drained;
    if (a->drain_ev)
        event_del(a->drain_ev);
    a->draining = a->drained = false;
    const char *was = a->undrain;
    if (a->health && lmd_agent_status_mode(a) && a->self_state >= 0)
        was = a->self_state ? "up" : "down";
    lmd_txt t;
    char why[320];
    if (with_status(&a->txt, was, &t) != 0 || lmd_agent_host_set_txt(a, &t, why, sizeof why) != 0)
        lmd_error("drain cancelled: cannot announce this host's status again");
    lmd_txt_free(&t);
    for (struct lmd_svc *s = a->svcs; s; s = s->next) {
        if (with_status(&s->txt, s->undrain, &t) == 0 &&
            (!s->pub || lmd_agent_publish_txt(a, s->pub, lmd_pub_name(s->pub), s->port, &t) == 0)) {
            lmd_txt_free(&s->txt);
            s->txt = t;
            lmd_wide_service(a->wide, s->name, s->port, &s->txt);
        } else {
            lmd_txt_free(&t);
            lmd_error("drain cancelled: cannot announce \"%s\" without status=draining", s->name);
        }
    }
    free(a->undrain);
    a->undrain = NULL;
    if (withdrawn && lmd_agent_start_announce(a) != 0)
        lmd_error("drain cancelled: cannot announce again (logged above)");
    lmd_wide_sync(a->wide);
    lmd_info("drain cancelled%s", withdrawn ? ": announcing again" : " during its grace: announcing as before");
    *doc = json_pack("{s:b,s:s}", "cancelled", 1, "state", withdrawn ? "announcing again" : "announcing");
    return *doc ? 0 : lmd_err_set(err, LMD_ENOMEM, "out of memory");
}

const struct lmd_api_registry lmd_agent_registry = {
    .add = svc_add, .closed = svc_closed, .patch = svc_patch, .remove = svc_remove, .pass = svc_pass, .drain = drain,
    .undrain = undrain,
};

json_t *lmd_agent_services_json(lmd_agent *a)
{
    json_t *arr = json_array();
    for (struct lmd_svc *s = a->svcs; arr && s; s = s->next)
        json_array_append_new(arr, svc_json(s));
    return arr;
}

void lmd_agent_services_free(lmd_agent *a)
{
    while (a->svcs)
        svc_free(a, a->svcs);
    if (a->drain_ev)
        event_free(a->drain_ev);
    a->drain_ev = NULL;
    free(a->undrain);
    a->undrain = NULL;
}

void lmd_agent_services_resign(lmd_agent *a)
{
    for (struct lmd_svc *s = a->svcs; s; s = s->next)
        if (s->pub)
            (void)lmd_agent_publish_txt(a, s->pub, lmd_pub_name(s->pub), s->port, &s->txt);
}

int lmd_agent_host_services(void *ud, lmd_node_list *out)
{
    lmd_agent *a = ud;
    size_t n = 0;
    for (struct lmd_svc *s = a->svcs; s; s = s->next)
        n++;
    *out = (lmd_node_list){.nodes = n ? calloc(n, sizeof *out->nodes) : NULL};
    if (n && !out->nodes)
        return LMD_ENOMEM;
    for (struct lmd_svc *s = a->svcs; s; s = s->next) {
        lmd_node_info *node = &out->nodes[out->n];
        const lmd_txt_item *it = lmd_txt_get(&s->txt, "info");
        node->name = lmd_strdup(s->pub ? lmd_pub_name(s->pub) : s->name);
        node->type = lmd_strdup(a->cfg.announce.type ? a->cfg.announce.type : LMD_DEFAULT_TYPE);
        node->domain = lmd_strdup("local");
        node->port = s->port;
        node->flags = LMD_NODE_LOCAL | LMD_NODE_OWN;
        if (it && it->has_value) {
            node->info = lmd_strndup(it->value, it->value_len);
            node->info_len = it->value_len;
        }
        out->n++;
        if (!node->name || !node->type || !node->domain || lmd_txt_copy(&node->txt, &s->txt) != 0) {
            lmd_node_list_free(out);
            return LMD_ENOMEM;
        }
    }
    return 0;
}

size_t lmd_agent_services_to_wide(void *ud, lmd_wide *w)
{
    lmd_agent *a = ud;
    for (struct lmd_svc *s = a->svcs; s && w; s = s->next)
        if (s->registered)
            lmd_wide_service(w, s->name, s->port, &s->txt);
    return lmd_agent_services_count(a);
}

void lmd_agent_services_dns_published(void *ud, const char *name)
{
    lmd_agent *a = ud;
    for (struct lmd_svc *s = a->svcs; s; s = s->next)
        if (s->registered && same_name(s->name, name) && !s->pub) {
            /* no mDNS: the zone is where it is established */
            s->state = "established";
            char e[160];
            lmd_info("announced registered service \"%s\" in %s", lmd_escape_str(name, e, sizeof e),
                     a->cfg.wide_area.domain);
            if (s->stream)
                lmd_api_stream_state(s->stream, "established", s->name, NULL, false);
            return;
        }
}

size_t lmd_agent_services_count(const lmd_agent *a)
{
    size_t n = 0;
    for (const struct lmd_svc *s = a->svcs; s; s = s->next)
        n++;
    return n;
}
