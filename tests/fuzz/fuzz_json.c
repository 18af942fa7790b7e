/* The JSON writer on arbitrary node data, and lmd_escape.
 *
 * A node (lmd_node_info) is built from the input: arbitrary bytes in name,
 * type, domain, host, info, addresses and interface names, TXT values; the
 * input decides every length.  lmd_json_node and lmd_json_dump must then
 * give a document that jansson parses back, that is valid UTF-8, in which
 * every string that was valid UTF-8 is unchanged and every TXT value that was
 * not comes back exactly through txt_base64 (decoded here, independently).
 *
 * lmd_escape gets the input with buffers of every size: it must stay
 * inside the buffer, NUL-terminate it, let no control byte (< 0x20, 0x7f),
 * C1 control, bidi override or zero-width character through, give valid
 * UTF-8, and, given room, be undone exactly by unescaping. */
#include "base/json.h"
#include "base/log.h"
#include "base/txt.h"
#include "base/util.h"
#include "fuzz.h"

/* ---- helpers of the harness's own ------------------------------------ */

static int b64_val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard base64 with padding; strict.  Returns the length or -1. */
static long b64_decode(const char *s, uint8_t *out, size_t cap)
{
    size_t len = strlen(s), o = 0;
    if (len % 4)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64_val((unsigned char)s[i + k])) < 0) {
                return -1;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        uint8_t b[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
        for (int k = 0; k < 3 - pad; k++) {
            if (o >= cap)
                return -1;
            out[o++] = b[k];
        }
    }
    return (long)o;
}

/* A NUL-terminated copy of up to max input bytes (the string ends at the
 * first NUL byte, as C strings from the network do); NULL when the input
 * says so. */
static char *take_str(struct fuzz_in *in, size_t max, bool nullable)
{
    if (nullable && (fuzz_u8(in) & 7) == 0)
        return NULL;
    size_t len;
    const uint8_t *p = fuzz_bytes(in, max, &len);
    char *s = malloc(len + 1);
    FUZZ_CHECK(s != NULL);
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

static void take_fixed(struct fuzz_in *in, char *dst, size_t cap)
{
    size_t len;
    const uint8_t *p = fuzz_bytes(in, cap - 1, &len);
    memcpy(dst, p, len);
    dst[len] = '\0';
}

/* A JSON string member against the bytes it came from. */
static void check_bytes(json_t *o, const char *key, const char *src, size_t slen)
{
    json_t *j = json_object_get(o, key);
    if (!src) {
        FUZZ_CHECK(json_is_null(j));
        return;
    }
    FUZZ_CHECK(json_is_string(j));
    const char *s = json_string_value(j);
    size_t len = json_string_length(j);
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)s, len, false));
    if (fuzz_utf8_valid((const uint8_t *)src, slen, false))
        FUZZ_CHECK(len == slen && memcmp(s, src, len) == 0);
    else
        FUZZ_CHECK(strstr(s, "\xef\xbf\xbd") != NULL); /* U+FFFD stands for what was not UTF-8 */
}

static void check_str(json_t *o, const char *key, const char *src)
{
    check_bytes(o, key, src, src ? strlen(src) : 0);
}

/* ---- the node ----------------------------------------------------------- */

static void build_node(struct fuzz_in *in, lmd_node_info *n)
{
    memset(n, 0, sizeof *n);
    n->name = take_str(in, 255, true);
    n->type = take_str(in, 40, true);
    n->domain = take_str(in, 40, true);
    n->host = take_str(in, 255, true);
    n->port = fuzz_u16(in);
    /* info: any bytes, NUL included, with its length (or 0: up to the NUL) */
    n->info = take_str(in, 300, true);
    size_t ilen;
    const uint8_t *ib = fuzz_bytes(in, 300, &ilen);
    if (n->info && ilen && (fuzz_u8(in) & 1)) {
        free(n->info);
        n->info = malloc(ilen + 1);
        FUZZ_CHECK(n->info != NULL);
        memcpy(n->info, ib, ilen);
        n->info[ilen] = '\0';
        n->info_len = ilen;
    }
    n->flags = fuzz_u8(in);
    n->first_seen = fuzz_u16(in) * 1000.0 + fuzz_u8(in) / 100.0;
    n->last_seen = n->first_seen + fuzz_u8(in);
    size_t naddrs = fuzz_u8(in) % 5;
    if (naddrs) {
        n->addrs = calloc(naddrs, sizeof *n->addrs);
        FUZZ_CHECK(n->addrs != NULL);
        n->n_addrs = naddrs;
    }
    for (size_t i = 0; i < naddrs; i++) {
        lmd_addr *a = &n->addrs[i];
        take_fixed(in, a->addr, sizeof a->addr);
        a->family = fuzz_u8(in) & 1 ? 6 : 4;
        a->ifindex = fuzz_u8(in);
        take_fixed(in, a->ifname, sizeof a->ifname);
    }
    size_t nitems = fuzz_u8(in) % 17;
    for (size_t i = 0; i < nitems && in->n; i++) {
        size_t klen, vlen;
        const uint8_t *k = fuzz_bytes(in, 24, &klen);
        const uint8_t *v = fuzz_bytes(in, 250, &vlen);
        /* as the network hands it over: "key=value" or "key" */
        uint8_t item[255 + 2];
        bool has_value = fuzz_u8(in) & 1;
        size_t len = klen;
        memcpy(item, k, klen);
        if (has_value) {
            item[len++] = '=';
            size_t room = sizeof item - 2 - len;
            if (vlen > room)
                vlen = room;
            memcpy(item + len, v, vlen);
            len += vlen;
        }
        if (len <= 255)
            (void)lmd_txt_add_wire_item(&n->txt, item, len, NULL); /* refusals are fine here */
    }
}

static void check_node_json(const lmd_node_info *n, json_t *o)
{
    FUZZ_CHECK(json_is_object(o));
    check_str(o, "name", n->name);
    check_str(o, "type", n->type);
    check_str(o, "domain", n->domain);
    check_str(o, "host", n->host);
    check_bytes(o, "info", n->info, n->info && n->info_len ? n->info_len : n->info ? strlen(n->info) : 0);
    FUZZ_CHECK(json_integer_value(json_object_get(o, "port")) == n->port);
    FUZZ_CHECK(json_is_boolean(json_object_get(o, "local")));
    FUZZ_CHECK(json_boolean_value(json_object_get(o, "local")) == !!(n->flags & LMD_NODE_LOCAL));
    FUZZ_CHECK(json_boolean_value(json_object_get(o, "self")) == !!(n->flags & LMD_NODE_OWN));
    FUZZ_CHECK(json_is_boolean(json_object_get(o, "conflict")));
    FUZZ_CHECK(json_boolean_value(json_object_get(o, "conflict")) == !!(n->flags & LMD_NODE_CONFLICT));
    FUZZ_CHECK(json_is_boolean(json_object_get(o, "routable")));

    /* every address, in order */
    json_t *addrs = json_object_get(o, "addresses");
    FUZZ_CHECK(json_is_array(addrs));
    /* every address is there, also one whose text or interface name is not
     * UTF-8 (written with U+FFFD; once dropped: regressions/json) */
    FUZZ_CHECK(json_array_size(addrs) == n->n_addrs);
    for (size_t i = 0; i < n->n_addrs; i++) {
        json_t *a = json_array_get(addrs, i);
        FUZZ_CHECK(json_is_object(a));
        check_str(a, "address", n->addrs[i].addr);
        check_str(a, "interface", n->addrs[i].ifname);
        FUZZ_CHECK(json_integer_value(json_object_get(a, "family")) == n->addrs[i].family);
    }

    /* TXT: true for a bare key, the value as UTF-8, and the exact bytes
     * in txt_base64 for a value that was not UTF-8 */
    json_t *txt = json_object_get(o, "txt");
    json_t *raw = json_object_get(o, "txt_base64");
    FUZZ_CHECK(json_is_object(txt));
    FUZZ_CHECK(json_object_size(txt) == n->txt.n);
    size_t nraw = 0;
    for (size_t i = 0; i < n->txt.n; i++) {
        const lmd_txt_item *it = &n->txt.items[i];
        json_t *v = json_object_get(txt, it->key);
        if (!it->has_value) {
            FUZZ_CHECK(json_is_true(v));
            FUZZ_CHECK(!json_object_get(raw, it->key));
            continue;
        }
        FUZZ_CHECK(json_is_string(v));
        FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)json_string_value(v), json_string_length(v), false));
        if (fuzz_utf8_valid(it->value, it->value_len, false)) {
            FUZZ_CHECK(json_string_length(v) == it->value_len);
            FUZZ_CHECK(memcmp(json_string_value(v), it->value, it->value_len) == 0);
            FUZZ_CHECK(!json_object_get(raw, it->key));
            continue;
        }
        nraw++;
        json_t *b = json_object_get(raw, it->key);
        FUZZ_CHECK(json_is_string(b));
        uint8_t bytes[LMD_TXT_ITEM_MAX + 3];
        long len = b64_decode(json_string_value(b), bytes, sizeof bytes);
        FUZZ_CHECK(len >= 0 && (size_t)len == it->value_len);
        FUZZ_CHECK(memcmp(bytes, it->value, it->value_len) == 0);
    }
    FUZZ_CHECK(nraw == 0 ? raw == NULL : json_is_object(raw) && json_object_size(raw) == nraw);
}

/* Serialize, check the text, parse it back and check the document. */
static char *dump_and_check(const lmd_node_info *n, json_t *o, bool pretty)
{
    char *s = lmd_json_dump(o, pretty);
    FUZZ_CHECK(s != NULL);
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)s, strlen(s), false));
    json_error_t e;
    json_t *back = json_loads(s, 0, &e);
    FUZZ_CHECK(back != NULL);
    check_node_json(n, back);
    FUZZ_CHECK(json_equal(back, o));
    json_decref(back);
    return s;
}

static void fuzz_node(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    bool pretty = fuzz_u8(&in) & 1;
    lmd_node_info n;
    build_node(&in, &n);

    json_t *o = lmd_json_node(&n);
    FUZZ_CHECK(o != NULL);
    check_node_json(&n, o);
    char *s = dump_and_check(&n, o, pretty);

    /* a copy writes the same document; a list of the two, two of them */
    lmd_node_info c;
    FUZZ_CHECK(lmd_node_info_copy(&c, &n) == 0);
    json_t *oc = lmd_json_node(&c);
    char *sc = lmd_json_dump(oc, pretty);
    FUZZ_CHECK(sc && strcmp(s, sc) == 0);
    lmd_node_info nodes[2] = {n, c};
    lmd_node_list l = {2, nodes};
    json_t *arr = lmd_json_node_list(&l);
    FUZZ_CHECK(json_is_array(arr) && json_array_size(arr) == 2);
    FUZZ_CHECK(json_equal(json_array_get(arr, 0), o) && json_equal(json_array_get(arr, 1), o));
    char *sa = lmd_json_dump(arr, !pretty);
    FUZZ_CHECK(sa && fuzz_utf8_valid((const uint8_t *)sa, strlen(sa), false));
    free(sa);
    json_decref(arr);
    free(sc);
    json_decref(oc);
    lmd_node_info_clear(&c);
    free(s);
    json_decref(o);
    lmd_node_info_clear(&n);
}

/* lmd_json_bytes on the whole input */
static void fuzz_bytes_str(const uint8_t *data, size_t size)
{
    json_t *j = lmd_json_bytes(data, size);
    FUZZ_CHECK(json_is_string(j));
    const char *s = json_string_value(j);
    size_t len = json_string_length(j);
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)s, len, false));
    if (fuzz_utf8_valid(data, size, false))
        FUZZ_CHECK(len == size && memcmp(s, data, size) == 0);
    json_decref(j);
}

/* ---- lmd_escape -------------------------------------------------------- */

/* Undo lmd_escape's escapes; -1 if the text is not something it writes. */
static long unescape(const char *s, uint8_t *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == '\\') {
            char e = s[++i];
            if (e == 'n')
                c = '\n';
            else if (e == 't')
                c = '\t';
            else if (e == 'r')
                c = '\r';
            else if (e == '\\')
                c = '\\';
            else if (e == '"')
                c = '"';
            else if (e == 'u' && s[i + 1] == '{') { /* \u{XXXX}: a character, as UTF-8 */
                char *end;
                unsigned long cp = strtoul(s + i + 2, &end, 16);
                if (*end != '}' || end == s + i + 2 || cp > 0x10ffff)
                    return -1;
                i = (size_t)(end - s);
                uint8_t u[4];
                size_t n = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
                if (cp < 0x80)
                    return -1; /* never written for ASCII */
                if (n == 2)
                    u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3f));
                else if (n == 3)
                    u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)),
                    u[2] = (uint8_t)(0x80 | (cp & 0x3f));
                else
                    u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f)),
                    u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)), u[3] = (uint8_t)(0x80 | (cp & 0x3f));
                if (o + n > cap)
                    return -1;
                memcpy(out + o, u, n);
                o += n;
                continue;
            } else if (e == 'x' && s[i + 1] && s[i + 2]) {
                char hex[3] = {s[i + 1], s[i + 2], 0};
                char *end;
                c = (uint8_t)strtoul(hex, &end, 16);
                if (*end)
                    return -1;
                i += 2;
            } else {
                return -1;
            }
        }
        if (o >= cap)
            return -1;
        out[o++] = c;
    }
    return (long)o;
}

/* Characters that change how a terminal shows text without showing
 * themselves: C1 controls, bidi embeddings, overrides and isolates,
 * zero-width ones, the soft hyphen (U+00AD), the word joiner and the
 * invisible operators (U+2060-2064), and the tag characters (U+E0000-E007F,
 * which spell hidden text after an emoji). */
static bool hidden_char(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0xad || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x2069) || (cp >= 0x200b && cp <= 0x200f) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || (cp >= 0xe0000 && cp <= 0xe007f);
}

static void check_escaped(const char *out, size_t outlen)
{
    FUZZ_CHECK(memchr(out, '\0', outlen) != NULL); /* NUL-terminated inside the buffer */
    size_t len = strlen(out);
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK((uint8_t)out[i] >= 0x20 && (uint8_t)out[i] != 0x7f);
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)out, len, false));
    const uint8_t *p = (const uint8_t *)out;
    for (size_t i = 0; i < len;) {
        uint32_t cp = p[i];
        size_t n = 1;
        if (cp >= 0xf0)
            n = 4, cp = (p[i] & 0x07u) << 18 | (p[i + 1] & 0x3fu) << 12 | (p[i + 2] & 0x3fu) << 6 | (p[i + 3] & 0x3fu);
        else if (cp >= 0xe0)
            n = 3, cp = (p[i] & 0x0fu) << 12 | (p[i + 1] & 0x3fu) << 6 | (p[i + 2] & 0x3fu);
        else if (cp >= 0xc0)
            n = 2, cp = (p[i] & 0x1fu) << 6 | (p[i + 1] & 0x3fu);
        FUZZ_CHECK(!hidden_char(cp));
        i += n;
    }
}

static void fuzz_escape(const uint8_t *data, size_t size)
{
    /* with room for anything: complete, and undone exactly */
    size_t big = 4 * size + 4;
    char *full = malloc(big);
    FUZZ_CHECK(full != NULL);
    FUZZ_CHECK(lmd_escape(data, size, full, big) == full);
    check_escaped(full, big);
    uint8_t *back = malloc(size + 1);
    FUZZ_CHECK(back != NULL);
    long n = unescape(full, back, size + 1);
    FUZZ_CHECK(n >= 0 && (size_t)n == size && memcmp(back, data, size) == 0);
    free(back);

    /* buffers of exactly outlen bytes (ASan sees a byte too far): what fits,
     * then "..." when it was cut */
    size_t flen = strlen(full);
    size_t sizes[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 33, 64, flen, flen + 1, flen + 2, flen + 3, flen + 4};
    for (size_t k = 0; k < LMD_ARRAY_LEN(sizes); k++) {
        size_t outlen = sizes[k];
        char *out = malloc(outlen ? outlen : 1);
        FUZZ_CHECK(out != NULL);
        if (outlen == 0) {
            lmd_escape(data, size, out, 0); /* writes nothing */
            free(out);
            continue;
        }
        FUZZ_CHECK(lmd_escape(data, size, out, outlen) == out);
        check_escaped(out, outlen);
        size_t olen = strlen(out);
        if (olen == flen && strcmp(out, full) == 0) {
            free(out);
            continue;
        }
        /* cut: a prefix of the full text, with "..." when there was room */
        FUZZ_CHECK(olen < outlen);
        if (outlen >= 4) {
            FUZZ_CHECK(olen >= 3 && memcmp(out + olen - 3, "...", 3) == 0);
            FUZZ_CHECK(strncmp(out, full, olen - 3) == 0);
        } else {
            FUZZ_CHECK(strncmp(out, full, olen) == 0);
        }
        free(out);
    }
    free(full);

    /* lmd_escape_str on a C string (up to the first NUL) */
    char s[300];
    size_t slen = size < sizeof s - 1 ? size : sizeof s - 1;
    memcpy(s, data, slen);
    s[slen] = '\0';
    char o[96];
    lmd_escape_str(s, o, sizeof o);
    check_escaped(o, sizeof o);
    const char *none = NULL;
    lmd_escape_str(none, o, sizeof o);
    FUZZ_CHECK(o[0] == '\0');
}

FUZZ_INIT_SILENCED()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return -1;
    fuzz_node(data, size);
    fuzz_bytes_str(data, size);
    fuzz_escape(data, size);
    return 0;
}
