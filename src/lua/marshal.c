/* lmdisc's data as Lua values and back: nodes, node lists, TXT, events. */
#include "lua/marshal.h"
#include "base/node.h"
#include "base/util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>

/* addresses a node table from Lua may give (a peer has a few; a table of
 * millions is not one) */
#define MAX_NODE_ADDRS 256

/* The disagreeing instance records as the JSON has them: one entry per
 * host and port, {host=, port=, addresses={...}}. */
static void push_rivals(lua_State *L, const lmd_node_info *n)
{
    lua_newtable(L);
    int groups = 0;
    for (size_t i = 0; i < n->n_rivals; i++) {
        const lmd_rival *r = &n->rivals[i];
        int g = 0;
        for (int k = 1; k <= groups && !g; k++) {
            lua_rawgeti(L, -1, k);
            lua_getfield(L, -1, "port");
            lua_getfield(L, -2, "host");
            const char *h = lua_tostring(L, -1);
            if (lua_tointeger(L, -2) == r->port && strcmp(h ? h : "", r->host) == 0)
                g = k;
            lua_pop(L, 3);
        }
        if (!g) {
            lua_createtable(L, 0, 3);
            if (r->host[0]) {
                lua_pushstring(L, r->host);
                lua_setfield(L, -2, "host");
            }
            lua_pushinteger(L, r->port);
            lua_setfield(L, -2, "port");
            lua_newtable(L);
            lua_setfield(L, -2, "addresses");
            g = ++groups;
            lua_rawseti(L, -2, g);
        }
        if (!r->addr.addr[0])
            continue;
        lua_rawgeti(L, -1, g);
        lua_getfield(L, -1, "addresses");
        bool dup = false;
        lua_Integer len = luaL_len(L, -1);
        for (lua_Integer j = 1; j <= len && !dup; j++) {
            lua_rawgeti(L, -1, j);
            dup = strcmp(lua_tostring(L, -1), r->addr.addr) == 0;
            lua_pop(L, 1);
        }
        if (!dup) {
            lua_pushstring(L, r->addr.addr);
            lua_rawseti(L, -2, len + 1);
        }
        lua_pop(L, 2);
    }
}

void lmd_lua_push_node(lua_State *L, const lmd_node_info *n)
{
    lua_createtable(L, 0, 15);
    lua_pushstring(L, n->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, n->type);
    lua_setfield(L, -2, "type");
    lua_pushstring(L, n->domain);
    lua_setfield(L, -2, "domain");
    lua_pushstring(L, n->host);
    lua_setfield(L, -2, "host");
    lua_pushinteger(L, n->port);
    lua_setfield(L, -2, "port");
    if (n->info) {
        lua_pushlstring(L, n->info, n->info_len ? n->info_len : strlen(n->info));
        lua_setfield(L, -2, "info");
    }
    lua_createtable(L, (int)n->n_addrs, 0);
    for (size_t i = 0; i < n->n_addrs; i++) {
        lua_pushstring(L, n->addrs[i].addr);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "addresses");
    /* unique interface names, in address order */
    lua_newtable(L);
    int k = 0;
    for (size_t i = 0; i < n->n_addrs; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(n->addrs[j].ifname, n->addrs[i].ifname) == 0;
        if (!seen) {
            lua_pushstring(L, n->addrs[i].ifname);
            lua_rawseti(L, -2, ++k);
        }
    }
    lua_setfield(L, -2, "interfaces");
    lua_createtable(L, 0, (int)n->txt.n);
    for (size_t i = 0; i < n->txt.n; i++) {
        const lmd_txt_item *it = &n->txt.items[i];
        if (it->has_value)
            lua_pushlstring(L, (const char *)it->value, it->value_len);
        else
            lua_pushboolean(L, 1);
        lua_setfield(L, -2, it->key);
    }
    lua_setfield(L, -2, "txt");
    lua_pushboolean(L, lmd_node_routable(n));
    lua_setfield(L, -2, "routable");
    lua_pushboolean(L, (n->flags & LMD_NODE_CONFLICT) != 0);
    lua_setfield(L, -2, "conflict");
    if (n->n_rivals) {
        push_rivals(L, n);
        lua_setfield(L, -2, "competing");
    }
    lua_pushboolean(L, (n->flags & LMD_NODE_TRUSTED) != 0);
    lua_setfield(L, -2, "trusted");
    if (n->signer[0]) {
        lua_pushstring(L, n->signer);
        lua_setfield(L, -2, "signer");
    }
    lua_pushboolean(L, (n->flags & LMD_NODE_LOCAL) != 0);
    lua_setfield(L, -2, "local");
    lua_pushboolean(L, (n->flags & LMD_NODE_OWN) != 0);
    lua_setfield(L, -2, "self");
    lua_createtable(L, 2, 0);
    int ns = 0;
    if (n->flags & LMD_NODE_MDNS) {
        lua_pushliteral(L, "mdns");
        lua_rawseti(L, -2, ++ns);
    }
    if (n->flags & LMD_NODE_DNS) {
        lua_pushliteral(L, "dns");
        lua_rawseti(L, -2, ++ns);
    }
    lua_setfield(L, -2, "sources");
    if (n->first_seen > 0) {
        lua_pushnumber(L, n->first_seen);
        lua_setfield(L, -2, "first_seen");
    }
    if (n->last_seen > 0) {
        lua_pushnumber(L, n->last_seen);
        lua_setfield(L, -2, "last_seen");
    }
}

void lmd_lua_push_changes(lua_State *L, unsigned changes)
{
    lua_newtable(L);
    int n = 0;
    for (unsigned bit = 1; bit <= LMD_CH_LAST; bit <<= 1)
        if (changes & bit) {
            lua_pushstring(L, lmd_change_name(bit));
            lua_rawseti(L, -2, ++n);
        }
}

void lmd_lua_push_event(lua_State *L, int kind, const lmd_node_info *peer, const lmd_node_info *old,
                        unsigned changes, const char *reason)
{
    lua_pushstring(L, lmd_event_kind_name(kind));
    lmd_lua_push_node(L, peer);
    if (old)
        lmd_lua_push_node(L, old);
    else
        lua_pushnil(L);
    lmd_lua_push_changes(L, changes);
    if (reason)
        lua_pushstring(L, reason);
    else
        lua_pushnil(L);
}

void lmd_lua_push_node_list(lua_State *L, const lmd_node_list *l)
{
    lua_createtable(L, (int)l->n, 0);
    for (size_t i = 0; i < l->n; i++) {
        lmd_lua_push_node(L, &l->nodes[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

char *lmd_lua_opt_field_str(lua_State *L, int idx, const char *field)
{
    lua_getfield(L, idx, field);
    size_t len;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    char *copy = s ? lmd_strndup(s, len) : NULL;
    lua_pop(L, 1);
    return copy;
}

/* Read a TXT table {key = "value" | true} into t.  On error pushes a
 * message and returns non-zero. */
int lmd_lua_to_txt(lua_State *L, int idx, lmd_txt *t)
{
    idx = lua_absindex(L, idx);
    char err[320];
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            lua_pushstring(L, "TXT keys must be strings");
            return LMD_ETXT;
        }
        const char *key = lua_tostring(L, -2);
        int rc;
        if (lua_type(L, -1) == LUA_TBOOLEAN) {
            rc = lua_toboolean(L, -1) ? lmd_txt_set(t, key, NULL, 0, false, err, sizeof err) : 0;
        } else if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
            size_t len;
            const char *v = lua_tolstring(L, -1, &len); /* numbers become strings in place: ok, value slot */
            rc = lmd_txt_set(t, key, v, len, true, err, sizeof err);
        } else {
            snprintf(err, sizeof err, "TXT value for '%.40s' must be a string, number or true, not %s",
                     key, luaL_typename(L, -1));
            rc = LMD_ETXT;
        }
        lua_pop(L, 1);
        if (rc) {
            lua_pop(L, 1);
            lua_pushstring(L, rc == LMD_ENOMEM ? "out of memory" : err);
            return rc;
        }
    }
    return 0;
}

/* A node table (as pushed by lmd_lua_push_node) back into a node. */
int lmd_lua_to_node(lua_State *L, int idx, lmd_node_info *n)
{
    idx = lua_absindex(L, idx);
    memset(n, 0, sizeof *n);
    n->name = lmd_lua_opt_field_str(L, idx, "name");
    n->type = lmd_lua_opt_field_str(L, idx, "type");
    n->domain = lmd_lua_opt_field_str(L, idx, "domain");
    n->host = lmd_lua_opt_field_str(L, idx, "host");
    n->info = lmd_lua_opt_field_str(L, idx, "info");
    if (n->info) { /* with its length: the value may hold NUL bytes */
        lua_getfield(L, idx, "info");
        n->info_len = lua_rawlen(L, -1);
        lua_pop(L, 1);
    }
    lua_getfield(L, idx, "port");
    n->port = (uint16_t)luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    lua_getfield(L, idx, "addresses");
    if (lua_istable(L, -1)) {
        /* raw: a __len returning 2^62 must not make a loop in C, where the
         * VM's instruction limit cannot stop it */
        size_t na = lua_rawlen(L, -1);
        if (na > MAX_NODE_ADDRS)
            na = MAX_NODE_ADDRS;
        n->addrs = calloc(na ? na : 1, sizeof *n->addrs);
        for (size_t i = 0; n->addrs && i < na; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            const char *a = lua_tostring(L, -1);
            if (a) {
                lmd_addr *ad = &n->addrs[n->n_addrs++];
                snprintf(ad->addr, sizeof ad->addr, "%s", a);
                ad->family = strchr(a, ':') ? 6 : 4;
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "local");
    n->flags |= lua_toboolean(L, -1) ? LMD_NODE_LOCAL : 0;
    lua_getfield(L, idx, "self");
    n->flags |= lua_toboolean(L, -1) ? LMD_NODE_OWN : 0;
    lua_pop(L, 2);
    lua_getfield(L, idx, "sources");
    if (lua_istable(L, -1)) {
        for (lua_Integer i = 1; i <= 2; i++) { /* "mdns", "dns": two at most (raw: no __len) */
            lua_rawgeti(L, -1, i);
            const char *s = lua_tostring(L, -1);
            n->flags |= s && !strcmp(s, "mdns") ? LMD_NODE_MDNS : s && !strcmp(s, "dns") ? LMD_NODE_DNS : 0;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "txt");
    int rc = 0;
    if (lua_istable(L, -1) && (rc = lmd_lua_to_txt(L, -1, &n->txt)) != 0) {
        lua_remove(L, -2); /* keep the message */
        lmd_node_info_clear(n);
        return rc;
    }
    lua_pop(L, 1);
    return 0;
}

int lmd_lua_fail(lua_State *L, const char *msg)
{
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    return 2;
}
