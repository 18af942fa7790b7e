/* The mantle's validated settings table into struct lmd_config, generically
 * over the field list in base/config.h.  No defaults here: the schema
 * (lua/lmdisc/config.lua) filled them in. */
#include "policy/settings.h"
#include "base/log.h"
#include "base/util.h"
#include "lua/marshal.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>

static void read_field(lua_State *L, int sec, const struct lmd_cfg_field *f, struct lmd_config *c)
{
    void *at = (char *)c + f->offset;
    lua_getfield(L, sec, f->name);
    switch (f->kind) {
    case LMD_CFG_STR:
        *(char **)at = lua_type(L, -1) == LUA_TSTRING ? lmd_strdup(lua_tostring(L, -1)) : NULL;
        break;
    case LMD_CFG_NUM: *(double *)at = lua_tonumber(L, -1); break;
    case LMD_CFG_UINT: /* the schema may allow a number (announce.ttl = 30.5): the nearest whole one */
        *(unsigned *)at = (unsigned)lround(lua_tonumber(L, -1));
        break;
    case LMD_CFG_PORT: *(uint16_t *)at = (uint16_t)lua_tointeger(L, -1); break;
    case LMD_CFG_BOOL: *(bool *)at = lua_toboolean(L, -1); break;
    }
    lua_pop(L, 1);
}

/* a list of strings SECTION.FIELD (validated by the schema) into *v, *n */
static void read_strs(lua_State *L, int idx, const char *section, const char *field, char ***v, size_t *n)
{
    int top = lua_gettop(L);
    if (lua_getfield(L, idx, section) == LUA_TTABLE && lua_getfield(L, -1, field) == LUA_TTABLE) {
        size_t len = (size_t)luaL_len(L, -1);
        *v = calloc(len ? len : 1, sizeof **v);
        for (size_t i = 0; *v && i < len; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            if (lua_type(L, -1) == LUA_TSTRING && ((*v)[*n] = lmd_strdup(lua_tostring(L, -1))))
                (*n)++;
            lua_pop(L, 1);
        }
    }
    lua_settop(L, top);
}

int lmd_lua_read_settings(lua_State *L, int idx, struct lmd_config *c, lmd_err *err)
{
    memset(c, 0, sizeof *c);
    c->log_level = -1;
    idx = lua_absindex(L, idx);
    const char *open = NULL; /* the section on the stack */
    for (size_t i = 0; i < lmd_cfg_nfields; i++) {
        const struct lmd_cfg_field *f = &lmd_cfg_fields[i];
        if (!open || strcmp(open, f->section) != 0) {
            if (open)
                lua_pop(L, 1);
            open = f->section;
            *(bool *)((char *)c + f->given) = lua_getfield(L, idx, f->section) == LUA_TTABLE;
        }
        if (lua_istable(L, -1))
            read_field(L, lua_gettop(L), f, c);
    }
    if (open)
        lua_pop(L, 1);
    /* derived values */
    if (lua_getfield(L, idx, "announce") == LUA_TTABLE) {
        if (lua_getfield(L, -1, "txt") == LUA_TTABLE && lmd_lua_to_txt(L, -1, &c->announce_txt) != 0) {
            lmd_err_set(err, LMD_ETXT, "invalid announce.txt: %s", lua_tostring(L, -1));
            lua_pop(L, 3);
            lmd_config_clear(c);
            return LMD_ETXT;
        }
        lua_pop(L, 1);
        char why[320];
        if (c->announce.info &&
            lmd_txt_set(&c->announce_txt, "info", c->announce.info, strlen(c->announce.info), true, why,
                        sizeof why) != 0) {
            lua_pop(L, 1);
            lmd_config_clear(c);
            return lmd_err_set(err, LMD_ETXT, "invalid announce.info: %s", why);
        }
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "trust") == LUA_TTABLE && lua_getfield(L, -1, "fleet") == LUA_TTABLE) {
        size_t n = (size_t)luaL_len(L, -1);
        c->trust_fleet = calloc(n ? n : 1, sizeof *c->trust_fleet);
        for (size_t i = 0; c->trust_fleet && i < n; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            if (lua_type(L, -1) == LUA_TSTRING && (c->trust_fleet[c->trust_nfleet] = lmd_strdup(lua_tostring(L, -1))))
                c->trust_nfleet++;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    read_strs(L, idx, "wide_area", "read", &c->wide_read, &c->wide_nread);
    read_strs(L, idx, "wide_area", "also_notify", &c->wide_tell, &c->wide_ntell);
    c->log_level = lmd_log_parse_level(c->log.level);
    return 0;
}
