/* The settings' field list as data (see config.h), and what C does with
 * settings generically: free, compare. */
#include "base/config.h"
#include "base/util.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define LMD_CFG_DESC_(S, name, kind)                                                                           \
    {#S, #name, LMD_CFG_##kind, offsetof(struct lmd_config, S.name), offsetof(struct lmd_config, S.given)},
#define LMD_CFG_DESC_SECTION_(sec, FIELDS) FIELDS(LMD_CFG_DESC_, sec)

const struct lmd_cfg_field lmd_cfg_fields[] = {LMD_CFG_SECTIONS(LMD_CFG_DESC_SECTION_)};
const size_t lmd_cfg_nfields = LMD_ARRAY_LEN(lmd_cfg_fields);

void lmd_config_clear(struct lmd_config *c)
{
    for (size_t i = 0; i < lmd_cfg_nfields; i++)
        if (lmd_cfg_fields[i].kind == LMD_CFG_STR)
            free(*(char **)((char *)c + lmd_cfg_fields[i].offset));
    lmd_txt_free(&c->announce_txt);
    for (size_t i = 0; i < c->trust_nfleet; i++)
        free(c->trust_fleet[i]);
    free(c->trust_fleet);
    for (size_t i = 0; i < c->wide_nread; i++)
        free(c->wide_read[i]);
    free(c->wide_read);
    for (size_t i = 0; i < c->wide_ntell; i++)
        free(c->wide_tell[i]);
    free(c->wide_tell);
    memset(c, 0, sizeof *c);
    c->log_level = -1;
}

static bool field_equal(const struct lmd_config *a, const struct lmd_config *b, const struct lmd_cfg_field *f)
{
    const char *x = (const char *)a + f->offset, *y = (const char *)b + f->offset;
    switch (f->kind) {
    case LMD_CFG_STR: return lmd_streq(*(char *const *)x, *(char *const *)y);
    case LMD_CFG_NUM: return *(const double *)x == *(const double *)y;
    case LMD_CFG_UINT: return *(const unsigned *)x == *(const unsigned *)y;
    case LMD_CFG_PORT: return *(const uint16_t *)x == *(const uint16_t *)y;
    case LMD_CFG_BOOL: return *(const bool *)x == *(const bool *)y;
    }
    return false;
}

static bool ignored(const char *name, const char *const *ignore)
{
    for (; ignore && *ignore; ignore++)
        if (!strcmp(name, *ignore))
            return true;
    return false;
}

bool lmd_config_section_equal(const struct lmd_config *a, const struct lmd_config *b, const char *section,
                              const char *const *ignore)
{
    bool seen = false;
    for (size_t i = 0; i < lmd_cfg_nfields; i++) {
        const struct lmd_cfg_field *f = &lmd_cfg_fields[i];
        if (strcmp(f->section, section) != 0)
            continue;
        if (!seen && *(const bool *)((const char *)a + f->given) != *(const bool *)((const char *)b + f->given))
            return false;
        seen = true;
        if (!ignored(f->name, ignore) && !field_equal(a, b, f))
            return false;
    }
    return seen;
}

void lmd_config_name(const struct lmd_config *cfg, char *out, size_t len)
{
    if (cfg->announce.name)
        snprintf(out, len, "%s", cfg->announce.name);
    else if (cfg->announce.given)
        lmd_default_name(cfg->announce.port, out, len);
    else if (len)
        *out = '\0';
}

unsigned lmd_config_record_ttl(const struct lmd_config *cfg)
{
    /* Records live half the registry's ttl unless set (30 s by default):
     * every mDNS cache drops a host that vanished within that time, so a
     * peer is never kept longer than ttl without the network confirming it;
     * tests/bench/TTL.md measured 30 s as affordable on a 200-peer LAN. */
    return cfg->announce.ttl ? cfg->announce.ttl
           : cfg->registry.ttl >= 10 ? (unsigned)(cfg->registry.ttl / 2)
           : cfg->registry.ttl >= 1 ? 5 : 0;
}
