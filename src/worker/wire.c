/* Frames between the core and the policy worker (see wire.h). */
#include "worker/wire.h"
#include "base/util.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NULL_LEN 0xffffffffu

/* ---- writing ----------------------------------------------------------- */

static void put(struct lmd_wbuf *b, const void *p, size_t len)
{
    if (b->bad)
        return;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len)
            cap *= 2;
        unsigned char *np = realloc(b->p, cap);
        if (!np) {
            b->bad = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, len);
    b->n += len;
}

void lmd_w_begin(struct lmd_wbuf *b, int type)
{
    unsigned char h[LMD_WIRE_HEADER] = {0, 0, 0, 0, LMD_WIRE_VERSION, (unsigned char)type, 0, 0};
    b->n = 0;
    b->bad = false;
    put(b, h, sizeof h);
}

void lmd_w_u8(struct lmd_wbuf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(b, &c, 1);
}

void lmd_w_u32(struct lmd_wbuf *b, uint32_t v)
{
    unsigned char c[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    put(b, c, 4);
}

void lmd_w_f64(struct lmd_wbuf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    lmd_w_u32(b, (uint32_t)(u >> 32));
    lmd_w_u32(b, (uint32_t)u);
}

void lmd_w_bytes(struct lmd_wbuf *b, const void *p, size_t len)
{
    if (!p) {
        lmd_w_u32(b, NULL_LEN);
        return;
    }
    if (len >= NULL_LEN) {
        b->bad = true;
        return;
    }
    lmd_w_u32(b, (uint32_t)len);
    put(b, p, len);
}

void lmd_w_str(struct lmd_wbuf *b, const char *s) { lmd_w_bytes(b, s, s ? strlen(s) : 0); }

void lmd_w_txt(struct lmd_wbuf *b, const lmd_txt *t)
{
    lmd_w_u32(b, (uint32_t)t->n);
    for (size_t i = 0; i < t->n; i++) {
        lmd_w_str(b, t->items[i].key);
        lmd_w_u8(b, t->items[i].has_value);
        lmd_w_bytes(b, t->items[i].value ? (const void *)t->items[i].value : "", t->items[i].value_len);
    }
}

static void w_addr(struct lmd_wbuf *b, const lmd_addr *a)
{
    lmd_w_str(b, a->addr);
    lmd_w_u8(b, (unsigned)a->family);
    lmd_w_u32(b, (uint32_t)a->ifindex);
    lmd_w_str(b, a->ifname);
}

void lmd_w_node(struct lmd_wbuf *b, const lmd_node_info *n)
{
    lmd_w_str(b, n->name);
    lmd_w_str(b, n->type);
    lmd_w_str(b, n->domain);
    lmd_w_str(b, n->host);
    lmd_w_u32(b, n->port);
    lmd_w_bytes(b, n->info, n->info ? (n->info_len ? n->info_len : strlen(n->info)) : 0);
    lmd_w_u32(b, (uint32_t)n->n_addrs);
    for (size_t i = 0; i < n->n_addrs; i++)
        w_addr(b, &n->addrs[i]);
    lmd_w_txt(b, &n->txt);
    lmd_w_u32(b, n->flags);
    lmd_w_str(b, n->signer);
    lmd_w_f64(b, n->first_seen);
    lmd_w_f64(b, n->last_seen);
    lmd_w_u32(b, (uint32_t)n->n_rivals);
    for (size_t i = 0; i < n->n_rivals; i++) {
        lmd_w_str(b, n->rivals[i].host);
        lmd_w_u32(b, n->rivals[i].port);
        w_addr(b, &n->rivals[i].addr);
    }
}

void lmd_w_nodes(struct lmd_wbuf *b, const lmd_node_list *l)
{
    lmd_w_u32(b, (uint32_t)l->n);
    for (size_t i = 0; i < l->n; i++)
        lmd_w_node(b, &l->nodes[i]);
}

/* A member of struct lmd_config outside its generated sections must be sent
 * by lmd_w_config and read by lmd_r_config, or the agent never sees it
 * (wide_area.read was lost that way once): a new one fails here first. */
#define CFG_AT(m) offsetof(struct lmd_config, m)
_Static_assert(CFG_AT(trust_fleet) == CFG_AT(announce_txt) + sizeof(lmd_txt) &&
                   CFG_AT(wide_read) == CFG_AT(trust_nfleet) + sizeof(size_t) &&
                   CFG_AT(wide_tell) == CFG_AT(wide_nread) + sizeof(size_t) &&
                   CFG_AT(log_level) == CFG_AT(wide_ntell) + sizeof(size_t) &&
                   sizeof(struct lmd_config) - CFG_AT(log_level) <= 8,
               "struct lmd_config has a member lmd_w_config/lmd_r_config do not send: add it there, then here");

static void w_strs(struct lmd_wbuf *b, char *const *v, size_t n)
{
    lmd_w_u32(b, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        lmd_w_str(b, v[i]);
}

/* every field of the list in config.h, the given flags, and what reading
 * the settings derived (announce's TXT, the fleet keys, wide_area.read and
 * also_notify, the log level) */
void lmd_w_config(struct lmd_wbuf *b, const struct lmd_config *c)
{
    lmd_w_u32(b, (uint32_t)lmd_cfg_nfields);
    for (size_t i = 0; i < lmd_cfg_nfields; i++) {
        const struct lmd_cfg_field *f = &lmd_cfg_fields[i];
        const char *v = (const char *)c + f->offset;
        lmd_w_u8(b, *(const bool *)((const char *)c + f->given));
        switch (f->kind) {
        case LMD_CFG_STR: lmd_w_str(b, *(char *const *)v); break;
        case LMD_CFG_NUM: lmd_w_f64(b, *(const double *)v); break;
        case LMD_CFG_UINT: lmd_w_u32(b, *(const unsigned *)v); break;
        case LMD_CFG_PORT: lmd_w_u32(b, *(const uint16_t *)v); break;
        case LMD_CFG_BOOL: lmd_w_u8(b, *(const bool *)v); break;
        }
    }
    lmd_w_txt(b, &c->announce_txt);
    w_strs(b, c->trust_fleet, c->trust_nfleet);
    w_strs(b, c->wide_read, c->wide_nread);
    w_strs(b, c->wide_tell, c->wide_ntell);
    lmd_w_u32(b, (uint32_t)(c->log_level + 1));
}

int lmd_w_end(struct lmd_wbuf *b)
{
    if (b->bad)
        return LMD_ENOMEM;
    size_t len = b->n - LMD_WIRE_HEADER;
    if (len > LMD_WIRE_MAX)
        return LMD_EINVAL;
    b->p[0] = (unsigned char)(len >> 24);
    b->p[1] = (unsigned char)(len >> 16);
    b->p[2] = (unsigned char)(len >> 8);
    b->p[3] = (unsigned char)len;
    return 0;
}

void lmd_wbuf_free(struct lmd_wbuf *b)
{
    free(b->p);
    *b = (struct lmd_wbuf){0};
}

/* ---- reading ----------------------------------------------------------- */

static const unsigned char *take(struct lmd_rbuf *r, size_t len)
{
    if (r->bad || r->n - r->off < len) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *p = r->p + r->off;
    r->off += len;
    return p;
}

unsigned lmd_r_u8(struct lmd_rbuf *r)
{
    const unsigned char *p = take(r, 1);
    return p ? p[0] : 0;
}

uint32_t lmd_r_u32(struct lmd_rbuf *r)
{
    const unsigned char *p = take(r, 4);
    return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

double lmd_r_f64(struct lmd_rbuf *r)
{
    uint64_t u = (uint64_t)lmd_r_u32(r) << 32;
    u |= lmd_r_u32(r);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

const char *lmd_r_bytes(struct lmd_rbuf *r, size_t *len)
{
    uint32_t n = lmd_r_u32(r);
    *len = 0;
    if (r->bad || n == NULL_LEN)
        return NULL;
    const unsigned char *p = take(r, n);
    if (p)
        *len = n;
    return (const char *)p;
}

char *lmd_r_str(struct lmd_rbuf *r)
{
    size_t len;
    const char *p = lmd_r_bytes(r, &len);
    if (!p)
        return NULL;
    char *s = lmd_strndup(p, len);
    if (!s)
        r->bad = true;
    return s;
}

int lmd_r_txt(struct lmd_rbuf *r, lmd_txt *out)
{
    *out = (lmd_txt){0};
    uint32_t n = lmd_r_u32(r);
    if (n > r->n - r->off) { /* each item takes bytes: a bad count cannot make us allocate */
        r->bad = true;
        return LMD_EINVAL;
    }
    if (n && !(out->items = calloc(n, sizeof *out->items))) {
        r->bad = true;
        return LMD_ENOMEM;
    }
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        lmd_txt_item *it = &out->items[i];
        it->key = lmd_r_str(r);
        it->has_value = lmd_r_u8(r);
        size_t len;
        const char *v = lmd_r_bytes(r, &len);
        it->value = malloc(len + 1);
        if (!it->value) {
            r->bad = true;
        } else {
            if (len)
                memcpy(it->value, v, len);
            it->value[len] = '\0';
            it->value_len = len;
        }
        out->n = i + 1;
        if (!it->key)
            r->bad = true;
    }
    return r->bad ? LMD_EINVAL : 0;
}

static void r_addr(struct lmd_rbuf *r, lmd_addr *a)
{
    size_t len;
    const char *s = lmd_r_bytes(r, &len);
    snprintf(a->addr, sizeof a->addr, "%.*s", (int)len, s ? s : "");
    a->family = (int)lmd_r_u8(r);
    a->ifindex = (int)lmd_r_u32(r);
    s = lmd_r_bytes(r, &len);
    snprintf(a->ifname, sizeof a->ifname, "%.*s", (int)len, s ? s : "");
}

int lmd_r_node(struct lmd_rbuf *r, lmd_node_info *n)
{
    memset(n, 0, sizeof *n);
    n->name = lmd_r_str(r);
    n->type = lmd_r_str(r);
    n->domain = lmd_r_str(r);
    n->host = lmd_r_str(r);
    n->port = (uint16_t)lmd_r_u32(r);
    size_t len;
    const char *info = lmd_r_bytes(r, &len);
    if (info) {
        n->info = lmd_strndup(info, len);
        n->info_len = len;
    }
    uint32_t na = lmd_r_u32(r);
    if (na > r->n - r->off)
        r->bad = true;
    if (!r->bad && na && !(n->addrs = calloc(na, sizeof *n->addrs)))
        r->bad = true;
    for (uint32_t i = 0; !r->bad && i < na; i++, n->n_addrs++)
        r_addr(r, &n->addrs[i]);
    lmd_r_txt(r, &n->txt);
    n->flags = lmd_r_u32(r);
    const char *s = lmd_r_bytes(r, &len);
    snprintf(n->signer, sizeof n->signer, "%.*s", (int)len, s ? s : "");
    n->first_seen = lmd_r_f64(r);
    n->last_seen = lmd_r_f64(r);
    uint32_t nr = lmd_r_u32(r);
    if (nr > r->n - r->off)
        r->bad = true;
    if (!r->bad && nr && !(n->rivals = calloc(nr, sizeof *n->rivals)))
        r->bad = true;
    for (uint32_t i = 0; !r->bad && i < nr; i++, n->n_rivals++) {
        s = lmd_r_bytes(r, &len);
        snprintf(n->rivals[i].host, sizeof n->rivals[i].host, "%.*s", (int)len, s ? s : "");
        n->rivals[i].port = (uint16_t)lmd_r_u32(r);
        r_addr(r, &n->rivals[i].addr);
    }
    if (!n->name)
        r->bad = true;
    if (r->bad) {
        lmd_node_info_clear(n);
        return LMD_EINVAL;
    }
    return 0;
}

int lmd_r_nodes(struct lmd_rbuf *r, lmd_node_list *out)
{
    *out = (lmd_node_list){0};
    uint32_t n = lmd_r_u32(r);
    if (n > r->n - r->off)
        r->bad = true;
    if (!r->bad && n && !(out->nodes = calloc(n, sizeof *out->nodes)))
        r->bad = true;
    for (uint32_t i = 0; !r->bad && i < n; i++)
        if (lmd_r_node(r, &out->nodes[i]) == 0)
            out->n++;
    if (r->bad) {
        lmd_node_list_free(out);
        return LMD_EINVAL;
    }
    return 0;
}

static void r_strs(struct lmd_rbuf *r, char ***v, size_t *n)
{
    uint32_t k = lmd_r_u32(r);
    if (k > r->n - r->off)
        r->bad = true;
    if (!r->bad && k && !(*v = calloc(k, sizeof **v)))
        r->bad = true;
    for (uint32_t i = 0; !r->bad && i < k; i++, (*n)++)
        (*v)[i] = lmd_r_str(r);
}

int lmd_r_config(struct lmd_rbuf *r, struct lmd_config *c)
{
    memset(c, 0, sizeof *c);
    if (lmd_r_u32(r) != lmd_cfg_nfields)
        r->bad = true;
    for (size_t i = 0; !r->bad && i < lmd_cfg_nfields; i++) {
        const struct lmd_cfg_field *f = &lmd_cfg_fields[i];
        char *v = (char *)c + f->offset;
        *(bool *)((char *)c + f->given) = lmd_r_u8(r);
        switch (f->kind) {
        case LMD_CFG_STR: *(char **)v = lmd_r_str(r); break;
        case LMD_CFG_NUM: *(double *)v = lmd_r_f64(r); break;
        case LMD_CFG_UINT: *(unsigned *)v = lmd_r_u32(r); break;
        case LMD_CFG_PORT: *(uint16_t *)v = (uint16_t)lmd_r_u32(r); break;
        case LMD_CFG_BOOL: *(bool *)v = lmd_r_u8(r); break;
        }
    }
    lmd_r_txt(r, &c->announce_txt);
    r_strs(r, &c->trust_fleet, &c->trust_nfleet);
    r_strs(r, &c->wide_read, &c->wide_nread);
    r_strs(r, &c->wide_tell, &c->wide_ntell);
    c->log_level = (int)lmd_r_u32(r) - 1;
    if (r->bad) {
        lmd_config_clear(c);
        return LMD_EINVAL;
    }
    return 0;
}

int lmd_wire_header(const unsigned char *h, int *type, uint32_t *len, lmd_err *err)
{
    *len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    *type = h[5];
    if (h[4] != LMD_WIRE_VERSION)
        return lmd_err_set(err, LMD_EINVAL,
                           "policy worker protocol version %u, this binary speaks %u (the binary was replaced "
                           "under the running agent: restart it)", h[4], LMD_WIRE_VERSION);
    if (*len > LMD_WIRE_MAX)
        return lmd_err_set(err, LMD_EINVAL, "policy worker frame of %u bytes (at most %u)", *len, LMD_WIRE_MAX);
    return 0;
}

/* ---- blocking ends (the worker) ---------------------------------------- */

int lmd_wire_send_fd(int fd, struct lmd_wbuf *b)
{
    if (lmd_w_end(b) != 0)
        return LMD_ENOMEM;
    for (size_t off = 0; off < b->n;) {
        ssize_t w = write(fd, b->p + off, b->n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return LMD_EIO;
        off += (size_t)w;
    }
    return 0;
}

static int read_all(int fd, unsigned char *p, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t r = read(fd, p + off, len - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return LMD_EIO;
        off += (size_t)r;
    }
    return 0;
}

int lmd_wire_recv_fd(int fd, int *type, struct lmd_wbuf *buf, struct lmd_rbuf *payload, lmd_err *err)
{
    unsigned char h[LMD_WIRE_HEADER];
    uint32_t len;
    if (read_all(fd, h, sizeof h) != 0)
        return lmd_err_set(err, LMD_EIO, "the core closed the socket");
    int rc = lmd_wire_header(h, type, &len, err);
    if (rc)
        return rc;
    if (buf->cap < (size_t)len + 1) {
        unsigned char *np = realloc(buf->p, (size_t)len + 1);
        if (!np)
            return lmd_err_set(err, LMD_ENOMEM, "out of memory for a frame of %u bytes", len);
        buf->p = np;
        buf->cap = (size_t)len + 1;
    }
    if (len && read_all(fd, buf->p, len) != 0)
        return lmd_err_set(err, LMD_EIO, "the core closed the socket");
    *payload = (struct lmd_rbuf){.p = buf->p, .n = len};
    return 0;
}
