/* TXT records: decoding from the wire, validation and editing.
 *
 * The input is read three ways:
 *   1. as DNS TXT wire format (length-prefixed strings), each item given to
 *      lmd_txt_add_wire_item as avahi hands it over, then lmd_txt_copy,
 *      _equal, _wire_size, _get and _remove on the result;
 *   2. split at NUL bytes into command-line items for lmd_txt_parse_arg
 *      (`lmdisc announce --txt KEY=VALUE`);
 *   3. as key and value bytes for lmd_txt_set (Lua's set_txt{}).
 * What each call accepts is checked against a model of RFC 6763 written
 * here, and every result against the invariants the rest of lmdisc relies
 * on (keys pass lmd_txt_key_check, a copy is equal, the wire size is the
 * sum of the items, wire encoding round-trips). */
#include "base/txt.h"
#include "fuzz.h"

#include <strings.h>

#define ERRLEN 320

/* RFC 6763 6.4 (the model): a key is 1+ printable ASCII bytes but '='. */
static bool model_key_ok(const uint8_t *k, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (k[i] < 0x20 || k[i] > 0x7e || k[i] == '=')
            return false;
    return true;
}

static bool model_has_key(const lmd_txt *t, const uint8_t *k, size_t len)
{
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->items[i].key) == len && strncasecmp(t->items[i].key, (const char *)k, len) == 0)
            return true;
    return false;
}

static void check_err(int rc, const char *err)
{
    FUZZ_CHECK(memchr(err, '\0', ERRLEN) != NULL);
    if (rc == LMD_ETXT)
        FUZZ_CHECK(err[0] != '\0'); /* a refusal always says why */
}

/* Everything that must hold of any lmd_txt lmdisc built. */
static void check_txt(const lmd_txt *t)
{
    size_t wire = 0;
    FUZZ_CHECK(t->n == 0 || t->items != NULL);
    for (size_t i = 0; i < t->n; i++) {
        const lmd_txt_item *it = &t->items[i];
        size_t klen = strlen(it->key);
        FUZZ_CHECK(lmd_txt_key_check(it->key, klen, NULL) == 0);
        FUZZ_CHECK(model_key_ok((const uint8_t *)it->key, klen));
        if (it->has_value) {
            FUZZ_CHECK(it->value != NULL);
            FUZZ_CHECK(it->value[it->value_len] == '\0'); /* NUL-terminated for convenience */
        } else {
            FUZZ_CHECK(it->value == NULL && it->value_len == 0);
        }
        size_t item = klen + (it->has_value ? 1 + it->value_len : 0);
        FUZZ_CHECK(item <= LMD_TXT_ITEM_MAX);
        wire += 1 + item;
        /* lookup is by key, case-insensitively, and finds this very item */
        FUZZ_CHECK(lmd_txt_get(t, it->key) == it);
        char flipped[LMD_TXT_ITEM_MAX + 1];
        for (size_t k = 0; k <= klen; k++) {
            char c = it->key[k];
            flipped[k] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        FUZZ_CHECK(lmd_txt_get(t, flipped) == it); /* so no other item has this key */
    }
    FUZZ_CHECK(lmd_txt_wire_size(t) == wire);
    FUZZ_CHECK(lmd_txt_get(t, NULL) == NULL);
    FUZZ_CHECK(lmd_txt_equal(t, t));

    lmd_txt c;
    int rc = lmd_txt_copy(&c, t);
    FUZZ_CHECK(rc == 0 || rc == LMD_ENOMEM);
    if (rc == 0) {
        FUZZ_CHECK(c.n == t->n);
        FUZZ_CHECK(lmd_txt_equal(&c, t) && lmd_txt_equal(t, &c));
        FUZZ_CHECK(lmd_txt_wire_size(&c) == wire);
        if (c.n) {
            /* drop the last item: no longer equal, smaller by that item */
            const lmd_txt_item *last = &t->items[t->n - 1];
            size_t sz = 1 + strlen(last->key) + (last->has_value ? 1 + last->value_len : 0);
            FUZZ_CHECK(lmd_txt_remove(&c, last->key) == 0);
            FUZZ_CHECK(c.n == t->n - 1);
            FUZZ_CHECK(!lmd_txt_equal(&c, t) && !lmd_txt_equal(t, &c));
            FUZZ_CHECK(lmd_txt_wire_size(&c) == wire - sz);
            FUZZ_CHECK(lmd_txt_get(&c, last->key) == NULL);
            FUZZ_CHECK(lmd_txt_remove(&c, last->key) == LMD_ENOTFOUND);
        }
        lmd_txt_free(&c);
        FUZZ_CHECK(c.n == 0 && c.items == NULL);
    }
}

/* Encode t as wire format and decode it again: the same record. */
static void check_wire_roundtrip(const lmd_txt *t)
{
    size_t size = lmd_txt_wire_size(t);
    uint8_t *wire = malloc(size ? size : 1);
    FUZZ_CHECK(wire != NULL);
    size_t o = 0;
    for (size_t i = 0; i < t->n; i++) {
        const lmd_txt_item *it = &t->items[i];
        size_t klen = strlen(it->key);
        size_t len = klen + (it->has_value ? 1 + it->value_len : 0);
        wire[o++] = (uint8_t)len;
        memcpy(wire + o, it->key, klen);
        o += klen;
        if (it->has_value) {
            wire[o++] = '=';
            if (it->value_len)
                memcpy(wire + o, it->value, it->value_len);
            o += it->value_len;
        }
    }
    FUZZ_CHECK(o == size);
    lmd_txt back = {0};
    lmd_err why = {0};
    for (size_t p = 0; p < size; p += 1 + wire[p])
        FUZZ_CHECK(lmd_txt_add_wire_item(&back, wire + p + 1, wire[p], &why) == 0);
    FUZZ_CHECK(lmd_txt_equal(&back, t) && lmd_txt_equal(t, &back));
    lmd_txt_free(&back);
    free(wire);
}

/* 1. wire format */
static void fuzz_wire(const uint8_t *data, size_t size)
{
    lmd_txt t = {0};
    size_t accepted = 0;
    for (size_t p = 0; p < size;) {
        size_t len = data[p++];
        if (len > size - p)
            len = size - p; /* a truncated record: its last item is what is left */
        const uint8_t *raw = data + p;
        p += len;
        /* a private copy, exactly len bytes, so that reading past it shows */
        uint8_t *item = malloc(len ? len : 1);
        FUZZ_CHECK(item != NULL);
        if (len)
            memcpy(item, raw, len);
        const uint8_t *eq = memchr(item, '=', len);
        size_t klen = eq ? (size_t)(eq - item) : len;
        bool expect = model_key_ok(item, klen) && !model_has_key(&t, item, klen);
        size_t before = t.n;
        lmd_err why;
        memset(&why, 0x55, sizeof why);
        why.msg[0] = '\0';
        int rc = lmd_txt_add_wire_item(&t, item, len, &why);
        FUZZ_CHECK(rc == 0 || rc == LMD_ETXT || rc == LMD_ENOMEM);
        check_err(rc, why.msg);
        FUZZ_CHECK(rc != LMD_ETXT || why.code == LMD_ETXT);
        if (rc != LMD_ENOMEM)
            FUZZ_CHECK((rc == 0) == expect);
        if (rc == 0) {
            accepted += 1 + len;
            FUZZ_CHECK(t.n == before + 1);
            const lmd_txt_item *it = &t.items[t.n - 1];
            FUZZ_CHECK(strlen(it->key) == klen && memcmp(it->key, item, klen) == 0);
            FUZZ_CHECK(it->has_value == (eq != NULL));
            if (eq) {
                FUZZ_CHECK(it->value_len == len - klen - 1);
                FUZZ_CHECK(it->value_len == 0 || memcmp(it->value, eq + 1, it->value_len) == 0);
            }
        } else {
            FUZZ_CHECK(t.n == before); /* an ignored item changes nothing */
        }
        free(item);
    }
    check_txt(&t);
    FUZZ_CHECK(lmd_txt_wire_size(&t) == accepted);
    check_wire_roundtrip(&t);
    lmd_txt_free(&t);
}

/* 2. command-line items, NUL-separated */
static void fuzz_args(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data, size);
    buf[size] = '\0';
    lmd_txt t = {0};
    for (char *arg = buf; arg <= buf + size; arg += strlen(arg) + 1) {
        const char *eq = strchr(arg, '=');
        size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);
        size_t vlen = eq ? strlen(eq + 1) : 0;
        bool existed = model_has_key(&t, (const uint8_t *)arg, klen);
        bool expect = model_key_ok((const uint8_t *)arg, klen) && klen + (eq ? 1 + vlen : 0) <= LMD_TXT_ITEM_MAX;
        size_t before = t.n;
        char err[ERRLEN];
        err[0] = '\0';
        int rc = lmd_txt_parse_arg(&t, arg, err, sizeof err);
        FUZZ_CHECK(rc == 0 || rc == LMD_ETXT || rc == LMD_ENOMEM);
        check_err(rc, err);
        if (rc != LMD_ENOMEM)
            FUZZ_CHECK((rc == 0) == expect);
        if (rc == 0) {
            FUZZ_CHECK(t.n == before + (existed ? 0 : 1)); /* a key given again replaces */
            char *key = strndup(arg, klen);
            FUZZ_CHECK(key != NULL);
            const lmd_txt_item *it = lmd_txt_get(&t, key);
            FUZZ_CHECK(it != NULL && it->has_value == (eq != NULL));
            FUZZ_CHECK(!eq || (it->value_len == vlen && memcmp(it->value, eq + 1, vlen) == 0));
            free(key);
        } else {
            FUZZ_CHECK(t.n == before);
        }
    }
    check_txt(&t);
    check_wire_roundtrip(&t);
    lmd_txt_free(&t);
    free(buf);
}

/* 3. lmd_txt_set with a key (up to the first byte 0x01) and value bytes */
static void fuzz_set(const uint8_t *data, size_t size)
{
    lmd_txt t = {0};
    struct fuzz_in in = {data, size};
    while (in.n) {
        size_t klen, vlen;
        const uint8_t *k = fuzz_bytes(&in, 70, &klen);
        const uint8_t *v = fuzz_bytes(&in, 300, &vlen);
        bool has_value = fuzz_u8(&in) & 1;
        char *key = malloc(klen + 1);
        FUZZ_CHECK(key != NULL);
        memcpy(key, k, klen);
        key[klen] = '\0';
        size_t skl = strlen(key); /* what lmd_txt_set sees of it */
        bool existed = model_has_key(&t, (const uint8_t *)key, skl);
        bool expect = model_key_ok((const uint8_t *)key, skl) && skl + (has_value ? 1 + vlen : 0) <= LMD_TXT_ITEM_MAX;
        size_t before = t.n;
        char err[ERRLEN];
        err[0] = '\0';
        int rc = lmd_txt_set(&t, key, v, vlen, has_value, err, sizeof err);
        FUZZ_CHECK(rc == 0 || rc == LMD_ETXT || rc == LMD_ENOMEM);
        check_err(rc, err);
        if (rc != LMD_ENOMEM)
            FUZZ_CHECK((rc == 0) == expect);
        if (rc == 0) {
            FUZZ_CHECK(t.n == before + (existed ? 0 : 1));
            const lmd_txt_item *it = lmd_txt_get(&t, key);
            FUZZ_CHECK(it != NULL && it->has_value == has_value);
            FUZZ_CHECK(!has_value || (it->value_len == vlen && (vlen == 0 || memcmp(it->value, v, vlen) == 0)));
        } else {
            FUZZ_CHECK(t.n == before);
        }
        /* NULL key: refused, never dereferenced */
        FUZZ_CHECK(lmd_txt_set(&t, NULL, v, vlen, has_value, NULL, 0) == LMD_ETXT);
        free(key);
    }
    check_txt(&t);
    check_wire_roundtrip(&t);
    lmd_txt_free(&t);
}

FUZZ_INIT_SILENCED()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return -1; /* a TXT record fits in one packet; no need to go further */
    fuzz_wire(data, size);
    fuzz_args(data, size);
    fuzz_set(data, size);
    return 0;
}
