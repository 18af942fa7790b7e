#include "base/json.h"
#include "base/node.h"
#include "base/util.h"

#include <stdlib.h>

json_t *lmd_json_bytes(const void *data, size_t len)
{
    if (lmd_utf8_valid(data, len))
        return json_stringn(data, len);
    char *s = lmd_utf8_sanitize(data, len);
    json_t *j = s ? json_string(s) : NULL;
    free(s);
    return j;
}

json_t *lmd_json_str(const char *s)
{
    return s ? lmd_json_bytes(s, strlen(s)) : json_null();
}

/* Object keys must be UTF-8 too; TXT keys are printable ASCII already. */
static int set_key(json_t *obj, const char *key, json_t *val)
{
    char *k = lmd_utf8_sanitize(key, strlen(key));
    int rc = k ? json_object_set_new(obj, k, val) : -1;
    if (!k)
        json_decref(val);
    free(k);
    return rc;
}

/* The disagreeing instance records, one entry per host and port with the
 * addresses each resolved to: [{"host", "port", "addresses": [...]}]. */
static json_t *rivals_json(const lmd_node_info *n)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < n->n_rivals; i++) {
        const lmd_rival *r = &n->rivals[i];
        json_t *e = NULL, *x;
        size_t k;
        json_array_foreach(list, k, x)
        {
            if (json_integer_value(json_object_get(x, "port")) == r->port &&
                lmd_streq(json_string_value(json_object_get(x, "host")), r->host[0] ? r->host : NULL)) {
                e = x;
                break;
            }
        }
        if (!e) {
            e = json_pack("{s:o,s:i,s:[]}", "host", lmd_json_str(r->host[0] ? r->host : NULL), "port", r->port,
                          "addresses");
            if (!e || json_array_append_new(list, e) != 0)
                continue;
        }
        json_t *addrs = json_object_get(e, "addresses");
        bool dup = !r->addr.addr[0];
        for (size_t j = 0; !dup && j < json_array_size(addrs); j++)
            dup = lmd_streq(json_string_value(json_array_get(addrs, j)), r->addr.addr);
        if (!dup)
            json_array_append_new(addrs, lmd_json_str(r->addr.addr));
    }
    return list;
}

json_t *lmd_json_node(const lmd_node_info *n)
{
    json_t *o = json_object();
    json_t *addrs = json_array();
    json_t *txt = json_object();
    json_t *raw = json_object();
    if (!o || !addrs || !txt || !raw)
        goto fail;
    json_object_set_new(o, "name", lmd_json_str(n->name));
    json_object_set_new(o, "type", lmd_json_str(n->type));
    json_object_set_new(o, "domain", lmd_json_str(n->domain));
    json_object_set_new(o, "host", lmd_json_str(n->host));
    json_object_set_new(o, "port", json_integer(n->port));
    json_object_set_new(o, "info", n->info ? lmd_json_bytes(n->info, n->info_len ? n->info_len : strlen(n->info))
                                           : json_null());
    for (size_t i = 0; i < n->n_addrs; i++) {
        const lmd_addr *a = &n->addrs[i];
        /* lmd_json_str: an interface name (and so a link-local address's
         * %ifname) need not be UTF-8; json_pack would refuse it and the
         * address would silently go missing */
        json_array_append_new(addrs, json_pack("{s:o,s:i,s:o}", "address", lmd_json_str(a->addr), "family",
                                               a->family, "interface", lmd_json_str(a->ifname)));
    }
    json_object_set_new(o, "addresses", addrs);
    addrs = NULL;
    for (size_t i = 0; i < n->txt.n; i++) {
        const lmd_txt_item *it = &n->txt.items[i];
        if (!it->has_value) {
            set_key(txt, it->key, json_true());
            continue;
        }
        set_key(txt, it->key, lmd_json_bytes(it->value, it->value_len));
        if (!lmd_utf8_valid(it->value, it->value_len)) {
            char *b = lmd_base64(it->value, it->value_len);
            if (b)
                set_key(raw, it->key, json_string(b));
            free(b);
        }
    }
    json_object_set_new(o, "txt", txt);
    txt = NULL;
    if (json_object_size(raw))
        json_object_set_new(o, "txt_base64", raw);
    else
        json_decref(raw);
    raw = NULL;
    json_object_set_new(o, "routable", json_boolean(lmd_node_routable(n)));
    json_object_set_new(o, "conflict", json_boolean(n->flags & LMD_NODE_CONFLICT));
    if (n->n_rivals)
        json_object_set_new(o, "competing", rivals_json(n));
    json_object_set_new(o, "trusted", json_boolean(n->flags & LMD_NODE_TRUSTED));
    json_object_set_new(o, "signer", n->signer[0] ? json_string(n->signer) : json_null());
    json_object_set_new(o, "local", json_boolean(n->flags & LMD_NODE_LOCAL));
    json_object_set_new(o, "self", json_boolean(n->flags & LMD_NODE_OWN));
    json_t *src = json_array();
    if (src && (n->flags & LMD_NODE_MDNS))
        json_array_append_new(src, json_string("mdns"));
    if (src && (n->flags & LMD_NODE_DNS))
        json_array_append_new(src, json_string("dns"));
    json_object_set_new(o, "sources", src);
    if (n->first_seen > 0)
        json_object_set_new(o, "first_seen", json_real(n->first_seen));
    if (n->last_seen > 0)
        json_object_set_new(o, "last_seen", json_real(n->last_seen));
    return o;
fail:
    json_decref(o);
    json_decref(addrs);
    json_decref(txt);
    json_decref(raw);
    return NULL;
}

json_t *lmd_json_node_list(const lmd_node_list *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->n; i++)
        json_array_append_new(a, lmd_json_node(&l->nodes[i]));
    return a;
}

char *lmd_json_dump(json_t *j, bool pretty)
{
    /* ASCII only: every non-ASCII character is written as \uXXXX, so a
     * lookalike name (Cyrillic "\u0430" for "a"), a bidi override or a
     * zero-width character is visible in --json and in the API's bytes,
     * and nothing raw reaches a terminal. Decoders get the same strings. */
    return json_dumps(j, (pretty ? JSON_INDENT(2) : JSON_COMPACT) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
}
