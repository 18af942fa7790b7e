/* TXT and names between lmdisc's types and avahi's: string lists for
 * avahi's service calls, DNS wire format for raw records. */
#include "base/log.h"
#include "base/util.h"
#include "mdns/internal.h"
#include "base/txt.h"

#include <avahi-common/domain.h>
#include <string.h>

AvahiStringList *lmd_mdns_txt_to_avahi(const lmd_txt *t)
{
    AvahiStringList *l = NULL;
    /* avahi_string_list_add prepends: add backwards to keep our order. */
    for (size_t i = t ? t->n : 0; i-- > 0;) {
        const lmd_txt_item *it = &t->items[i];
        l = it->has_value ? avahi_string_list_add_pair_arbitrary(l, it->key, it->value, it->value_len)
                          : avahi_string_list_add(l, it->key);
    }
    return l;
}

void lmd_mdns_txt_from_avahi(lmd_txt *t, AvahiStringList *l, const char *who)
{
    for (; l; l = avahi_string_list_get_next(l)) {
        lmd_err why = {0};
        int rc = lmd_txt_add_wire_item(t, avahi_string_list_get_text(l), avahi_string_list_get_size(l), &why);
        if (rc == LMD_ETXT) {
            char esc[128], ewho[128];
            lmd_debug("ignoring TXT item '%s' from %s: %s",
                      lmd_escape(avahi_string_list_get_text(l), avahi_string_list_get_size(l), esc,
                                 sizeof esc),
                      lmd_escape_str(who, ewho, sizeof ewho), lmd_err_text(&why));
        }
    }
}

/* An escaped domain name ("a\\.b._lmserv._tcp.local") in DNS wire format. */
int lmd_mdns_name_wire(const char *escaped, uint8_t *out, size_t cap)
{
    size_t o = 0;
    const char *p = escaped;
    while (*p) {
        char label[AVAHI_LABEL_MAX];
        if (!avahi_unescape_label(&p, label, sizeof label))
            return LMD_EINVAL;
        size_t n = strlen(label);
        if (n == 0)
            break;
        if (o + 1 + n + 1 > cap)
            return LMD_EINVAL;
        out[o++] = (uint8_t)n;
        memcpy(out + o, label, n);
        o += n;
    }
    out[o++] = 0;
    return (int)o;
}

int lmd_mdns_txt_wire(const lmd_txt *t, uint8_t *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; t && i < t->n; i++) {
        const lmd_txt_item *it = &t->items[i];
        size_t k = strlen(it->key), n = k + (it->has_value ? 1 + it->value_len : 0);
        if (n > 255 || o + 1 + n > cap)
            return LMD_EINVAL;
        out[o++] = (uint8_t)n;
        memcpy(out + o, it->key, k);
        o += k;
        if (it->has_value) {
            out[o++] = '=';
            memcpy(out + o, it->value, it->value_len);
            o += it->value_len;
        }
    }
    if (o == 0) /* an empty TXT record is one empty string (RFC 6763 6.1) */
        out[o++] = 0;
    return (int)o;
}
