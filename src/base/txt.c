/* TXT records (RFC 6763 section 6): validation, editing, comparison.
 * Knows nothing of avahi: src/mdns/ converts to and from AvahiStringList. */
#include "base/error.h"
#include "base/log.h"
#include "base/txt.h"
#include "base/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

int lmd_txt_key_check(const void *key, size_t len, lmd_err *err)
{
    const unsigned char *k = key;
    if (len == 0)
        return lmd_err_set(err, LMD_ETXT, "TXT key is empty; write key=value with a non-empty key");
    for (size_t i = 0; i < len; i++) {
        if (k[i] == '=')
            return lmd_err_set(err, LMD_ETXT, "TXT key may not contain '='");
        if (k[i] < 0x20 || k[i] > 0x7e)
            return lmd_err_set(err, LMD_ETXT,
                               "TXT key has byte 0x%02x at offset %zu; keys are printable ASCII (0x20-0x7e)", k[i],
                               i);
    }
    return 0;
}

bool lmd_txt_key_reserved(const char *key)
{
    return key && strncasecmp(key, LMD_TXT_RESERVED, strlen(LMD_TXT_RESERVED)) == 0;
}

const char *lmd_txt_reserved_key(const lmd_txt *t)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (lmd_txt_key_reserved(t->items[i].key))
            return t->items[i].key;
    return NULL;
}

int lmd_txt_reserved_error(const char *key, lmd_err *err)
{
    char esc[64];
    return lmd_err_set(err, LMD_ETXT, "the TXT key '%s' is reserved: keys beginning with '%s' are lmdisc's own "
                                      "(signatures, liveness); choose another name",
                       lmd_escape_str(key, esc, sizeof esc), LMD_TXT_RESERVED);
}

static lmd_txt_item *find(const lmd_txt *t, const char *key, size_t klen)
{
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->items[i].key) == klen && strncasecmp(t->items[i].key, key, klen) == 0)
            return &t->items[i];
    return NULL;
}

/* lmd_txt_set with an lmd_err (what the public one wraps). */
static int set_item(lmd_txt *t, const char *key, const void *value, size_t len, bool has_value, lmd_err *err)
{
    size_t klen = key ? strlen(key) : 0;
    int rc = lmd_txt_key_check(key, klen, err);
    if (rc)
        return rc;
    size_t total = klen + (has_value ? 1 + len : 0);
    if (total > LMD_TXT_ITEM_MAX)
        return lmd_err_set(err, LMD_ETXT,
                           "TXT item '%.*s=...' is %zu bytes; each item (key, '=' and value) must be at "
                           "most %d bytes: shorten the value",
                           (int)(klen > 40 ? 40 : klen), key, total, LMD_TXT_ITEM_MAX);
    unsigned char *v = NULL;
    if (has_value) {
        v = malloc(len + 1);
        if (!v)
            return LMD_ENOMEM;
        if (len)
            memcpy(v, value, len);
        v[len] = '\0';
    }
    lmd_txt_item *it = find(t, key, klen);
    if (it) {
        free(it->value);
    } else {
        lmd_txt_item *items = realloc(t->items, (t->n + 1) * sizeof *items);
        char *k = lmd_strdup(key);
        if (!items || !k) {
            if (items)
                t->items = items;
            free(k);
            free(v);
            return LMD_ENOMEM;
        }
        t->items = items;
        it = &t->items[t->n++];
        it->key = k;
    }
    it->value = v;
    it->value_len = has_value ? len : 0;
    it->has_value = has_value;
    return 0;
}

int lmd_txt_set(lmd_txt *t, const char *key, const void *value, size_t len, bool has_value, char *err,
                size_t errlen)
{
    lmd_err e = {0};
    int rc = set_item(t, key, value, len, has_value, &e);
    if (rc && e.msg[0]) /* (out of memory leaves err as it was) */
        lmd_errbuf(err, errlen, rc, "%s", e.msg);
    return rc;
}

int lmd_txt_parse_arg(lmd_txt *t, const char *arg, char *err, size_t errlen)
{
    const char *eq = strchr(arg, '=');
    if (!eq)
        return lmd_txt_set(t, arg, NULL, 0, false, err, errlen);
    char *key = lmd_strndup(arg, (size_t)(eq - arg));
    if (!key)
        return LMD_ENOMEM;
    int rc = lmd_txt_set(t, key, eq + 1, strlen(eq + 1), true, err, errlen);
    free(key);
    return rc;
}

int lmd_txt_add_wire_item(lmd_txt *t, const void *raw, size_t len, lmd_err *why)
{
    const unsigned char *p = raw;
    const unsigned char *eq = memchr(p, '=', len);
    size_t klen = eq ? (size_t)(eq - p) : len;
    int rc = lmd_txt_key_check(p, klen, why);
    if (rc)
        return rc;
    char *key = lmd_strndup(p, klen);
    if (!key)
        return LMD_ENOMEM;
    /* RFC 6763 6.4: all but the first occurrence of a key are ignored. */
    if (find(t, key, klen)) {
        free(key);
        return lmd_err_set(why, LMD_ETXT, "duplicate TXT key ignored");
    }
    rc = set_item(t, key, eq ? eq + 1 : NULL, eq ? len - klen - 1 : 0, eq != NULL, why);
    free(key);
    return rc;
}

const lmd_txt_item *lmd_txt_get(const lmd_txt *t, const char *key)
{
    return key ? find(t, key, strlen(key)) : NULL;
}

int lmd_txt_remove(lmd_txt *t, const char *key)
{
    lmd_txt_item *it = key ? find(t, key, strlen(key)) : NULL;
    if (!it)
        return LMD_ENOTFOUND;
    free(it->key);
    free(it->value);
    size_t idx = (size_t)(it - t->items);
    memmove(it, it + 1, (t->n - idx - 1) * sizeof *it);
    t->n--;
    return 0;
}

int lmd_txt_copy(lmd_txt *dst, const lmd_txt *src)
{
    dst->n = 0;
    dst->items = NULL;
    for (size_t i = 0; i < src->n; i++) {
        const lmd_txt_item *it = &src->items[i];
        int rc = set_item(dst, it->key, it->value, it->value_len, it->has_value, NULL);
        if (rc) {
            lmd_txt_free(dst);
            return rc;
        }
    }
    return 0;
}

bool lmd_txt_equal(const lmd_txt *a, const lmd_txt *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const lmd_txt_item *x = &a->items[i];
        const lmd_txt_item *y = lmd_txt_get(b, x->key);
        if (!y || x->has_value != y->has_value || x->value_len != y->value_len ||
            (x->value_len && memcmp(x->value, y->value, x->value_len) != 0))
            return false;
    }
    return true;
}

size_t lmd_txt_wire_size(const lmd_txt *t)
{
    size_t total = 0;
    for (size_t i = 0; i < t->n; i++)
        total += 1 + strlen(t->items[i].key) + (t->items[i].has_value ? 1 + t->items[i].value_len : 0);
    return total;
}

int lmd_txt_check_record(const lmd_txt *t, char *err, size_t errlen)
{
    size_t n = lmd_txt_wire_size(t);
    if (n > LMD_TXT_RECORD_MAX)
        return lmd_errbuf(err, errlen, LMD_ETXT,
                          "the TXT record would be %zu bytes; at most %d fit in one mDNS packet (avahi would not "
                          "send it and no peer could resolve the service): shorten or drop some keys",
                          n, LMD_TXT_RECORD_MAX);
    return 0;
}

void lmd_txt_free(lmd_txt *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->items[i].key);
        free(t->items[i].value);
    }
    free(t->items);
    t->items = NULL;
    t->n = 0;
}
