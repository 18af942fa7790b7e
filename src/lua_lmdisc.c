/* The `lmdisc` Lua namespace: what works without an agent (discovery,
 * announcing, TXT and JSON helpers, logging).  Built into lmdisc.so for a
 * stock lua5.4 and opened in the agent's VM, where policy.c adds the agent's
 * functions.  Misuse raises (luaL_argcheck); expected failures return
 * nil, message. */
#include "lua_bind.h"
#include "json.h"
#include "log.h"
#include "registry.h"
#include "util.h"

#include <lauxlib.h>
#include <stdlib.h>

#define ANNOUNCEMENT_MT "lmdisc.announcement"
#define LIVE_REGISTRY_MT "lmdisc.live_registry"

/* ---- nodes <-> tables ------------------------------------------------ */

void lmd_lua_push_node(lua_State *L, const lmd_node_info *n)
{
    lua_createtable(L, 0, 14);
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
        lua_pushstring(L, n->info);
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
    lua_pushboolean(L, (n->flags & LMD_NODE_LOCAL) != 0);
    lua_setfield(L, -2, "local");
    lua_pushboolean(L, (n->flags & LMD_NODE_OWN) != 0);
    lua_setfield(L, -2, "self");
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
    for (unsigned bit = 1; bit <= LMD_CH_INFO; bit <<= 1)
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

static char *opt_field_str(lua_State *L, int idx, const char *field)
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
    n->name = opt_field_str(L, idx, "name");
    n->type = opt_field_str(L, idx, "type");
    n->domain = opt_field_str(L, idx, "domain");
    n->host = opt_field_str(L, idx, "host");
    n->info = opt_field_str(L, idx, "info");
    lua_getfield(L, idx, "port");
    n->port = (uint16_t)luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    lua_getfield(L, idx, "addresses");
    if (lua_istable(L, -1)) {
        size_t na = (size_t)luaL_len(L, -1);
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

/* ---- functions ------------------------------------------------------- */

static int push_fail(lua_State *L, const char *msg)
{
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    return 2;
}

/* lmdisc.discover_nodes([timeout [, type]]) -> list of nodes, complete | nil, err */
static int l_discover_nodes(lua_State *L)
{
    double timeout = luaL_optnumber(L, 1, 5);
    const char *type = luaL_optstring(L, 2, LMD_DEFAULT_TYPE);
    luaL_argcheck(L, timeout > 0, 1, "timeout must be positive");
    char err[320];
    if (!lmd_service_type_valid(type, err, sizeof err))
        return luaL_argerror(L, 2, err);
    lmd_discover_opts o = {.type = type};
    lmd_node_list l;
    int rc = lmd_discover_nodes(timeout, &o, &l);
    if (rc)
        return push_fail(L, lmd_strerror(rc));
    lmd_lua_push_node_list(L, &l);
    lmd_node_list_free(&l);
    lua_pushboolean(L, o.complete);
    return 2;
}

typedef struct {
    lmd_announcement *a;
} announcement_ud;

/* lmdisc.announce_self(port [, info [, {name=, type=, txt={}}]]) -> announcement | nil, err */
static int l_announce_self(lua_State *L)
{
    lua_Integer port = luaL_checkinteger(L, 1);
    const char *info = luaL_optstring(L, 2, NULL);
    luaL_argcheck(L, port >= 1 && port <= 65535, 1, "port must be 1-65535");
    lmd_txt txt = {0};
    char *name = NULL, *type = NULL;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        name = opt_field_str(L, 3, "name");
        type = opt_field_str(L, 3, "type");
        lua_getfield(L, 3, "txt");
        if (lua_istable(L, -1) && lmd_lua_to_txt(L, -1, &txt) != 0) {
            free(name);
            free(type);
            lmd_txt_free(&txt);
            return lua_error(L);
        }
        lua_pop(L, 1);
    }
    char err[320];
    if (type && !lmd_service_type_valid(type, err, sizeof err)) {
        free(name);
        free(type);
        lmd_txt_free(&txt);
        return luaL_error(L, "%s", err);
    }
    announcement_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->a = NULL;
    luaL_setmetatable(L, ANNOUNCEMENT_MT);
    lmd_announce_opts o = {.name = name, .type = type, .txt = &txt};
    int rc = lmd_announce_self((uint16_t)port, info, &o, &u->a);
    free(name);
    free(type);
    lmd_txt_free(&txt);
    if (rc)
        return push_fail(L, lmd_strerror(rc));
    return 1;
}

static announcement_ud *check_announcement(lua_State *L)
{
    announcement_ud *u = luaL_checkudata(L, 1, ANNOUNCEMENT_MT);
    if (!u->a)
        luaL_error(L, "announcement already withdrawn");
    return u;
}

static int l_announcement_name(lua_State *L)
{
    announcement_ud *u = check_announcement(L);
    char buf[256];
    lmd_announce_name(u->a, buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
}

static int l_announcement_withdraw(lua_State *L)
{
    announcement_ud *u = luaL_checkudata(L, 1, ANNOUNCEMENT_MT);
    lmd_announce_withdraw(u->a);
    u->a = NULL;
    return 0;
}

static int l_announcement_tostring(lua_State *L)
{
    announcement_ud *u = luaL_checkudata(L, 1, ANNOUNCEMENT_MT);
    if (!u->a) {
        lua_pushliteral(L, "lmdisc.announcement (withdrawn)");
    } else {
        char buf[256];
        lmd_announce_name(u->a, buf, sizeof buf);
        lua_pushfstring(L, "lmdisc.announcement (%s)", buf);
    }
    return 1;
}

/* lmdisc.start_registry([type [, ttl]]) -> registry | nil, err
 * A registry kept live by a background thread, as the original REGISTRY;
 * reg:list_alive() -> list of peers; reg:stop(). */
typedef struct {
    lmd_registry *r;
} live_ud;

static int l_start_registry(lua_State *L)
{
    const char *type = luaL_optstring(L, 1, LMD_DEFAULT_TYPE);
    double ttl = luaL_optnumber(L, 2, 60);
    char err[320];
    if (!lmd_service_type_valid(type, err, sizeof err))
        return luaL_argerror(L, 1, err);
    live_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->r = NULL;
    luaL_setmetatable(L, LIVE_REGISTRY_MT);
    int rc = lmd_registry_start(type, ttl, &u->r);
    if (rc)
        return push_fail(L, lmd_strerror(rc));
    return 1;
}

static int l_live_list_alive(lua_State *L)
{
    live_ud *u = luaL_checkudata(L, 1, LIVE_REGISTRY_MT);
    if (!u->r)
        return luaL_error(L, "registry already stopped");
    lmd_node_list l;
    if (lmd_registry_list_alive(u->r, &l) != 0)
        return luaL_error(L, "out of memory");
    lmd_lua_push_node_list(L, &l);
    lmd_node_list_free(&l);
    return 1;
}

static int l_live_stop(lua_State *L)
{
    live_ud *u = luaL_checkudata(L, 1, LIVE_REGISTRY_MT);
    lmd_registry_stop(u->r);
    u->r = NULL;
    return 0;
}

/* lmdisc.REGISTRY in a stock lua5.4: started on first use, like importing
 * the original module's registry */
static int l_module_index(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "REGISTRY") != 0)
        return 0;
    lua_pushcfunction(L, l_start_registry);
    lua_call(L, 0, 2);
    if (lua_isnil(L, -2))
        return luaL_error(L, "lmdisc.REGISTRY: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, "REGISTRY");
    return 1;
}

/* lmdisc.txt_parse("key=value") -> key, value|true | nil, err */
static int l_txt_parse(lua_State *L)
{
    const char *arg = luaL_checkstring(L, 1);
    lmd_txt t = {0};
    char err[320];
    if (lmd_txt_parse_arg(&t, arg, err, sizeof err) != 0) {
        lmd_txt_free(&t);
        return push_fail(L, err);
    }
    lua_pushstring(L, t.items[0].key);
    if (t.items[0].has_value)
        lua_pushlstring(L, (const char *)t.items[0].value, t.items[0].value_len);
    else
        lua_pushboolean(L, 1);
    lmd_txt_free(&t);
    return 2;
}

/* lmdisc.txt_check({key = value, ...}) -> true | nil, err */
static int l_txt_check(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lmd_txt t = {0};
    int rc = lmd_lua_to_txt(L, 1, &t);
    lmd_txt_free(&t);
    if (rc) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* lmdisc.service_type_check(type) -> true | nil, err */
static int l_service_type_check(lua_State *L)
{
    char err[320];
    if (!lmd_service_type_valid(luaL_checkstring(L, 1), err, sizeof err))
        return push_fail(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* lmdisc.node_json(node [, pretty]) -> JSON text, as `discover --json` writes nodes */
static int l_node_json(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lmd_node_info n;
    if (lmd_lua_to_node(L, 1, &n) != 0)
        return lua_error(L);
    json_t *j = lmd_json_node(&n);
    char *s = j ? lmd_json_dump(j, lua_toboolean(L, 2)) : NULL;
    json_decref(j);
    lmd_node_info_clear(&n);
    if (!s)
        return luaL_error(L, "cannot encode node as JSON");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

/* lmdisc.escape(bytes) -> text safe for a terminal or a log line */
static int l_escape(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    size_t cap = len * 4 + 4;
    char *out = malloc(cap);
    if (!out)
        return luaL_error(L, "out of memory");
    lmd_escape(s, len, out, cap);
    lua_pushstring(L, out);
    free(out);
    return 1;
}

static int do_log(lua_State *L, enum lmd_log_level lvl)
{
    int n = lua_gettop(L);
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_remove(L, -2);
    lua_insert(L, 1);
    lua_call(L, n, 1);
    lmd_log(lvl, "%s", lua_tostring(L, -1));
    return 0;
}
static int l_log_debug(lua_State *L) { return do_log(L, LMD_LOG_DEBUG); }
static int l_log_info(lua_State *L) { return do_log(L, LMD_LOG_INFO); }
static int l_log_warn(lua_State *L) { return do_log(L, LMD_LOG_WARN); }
static int l_log_error(lua_State *L) { return do_log(L, LMD_LOG_ERROR); }

int lmd_lua_open_log(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"debug", l_log_debug}, {"info", l_log_info}, {"warn", l_log_warn},
        {"error", l_log_error}, {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}

int luaopen_lmdisc(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"discover_nodes", l_discover_nodes},
        {"announce_self", l_announce_self},
        {"txt_parse", l_txt_parse},
        {"txt_check", l_txt_check},
        {"service_type_check", l_service_type_check},
        {"node_json", l_node_json},
        {"escape", l_escape},
        {"start_registry", l_start_registry},
        {NULL, NULL},
    };
    static const luaL_Reg live[] = {
        {"list_alive", l_live_list_alive}, {"stop", l_live_stop}, {"__gc", l_live_stop},
        {"__close", l_live_stop}, {NULL, NULL},
    };
    if (luaL_newmetatable(L, LIVE_REGISTRY_MT)) {
        luaL_setfuncs(L, live, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    static const luaL_Reg ann[] = {
        {"name", l_announcement_name},
        {"withdraw", l_announcement_withdraw},
        {"__gc", l_announcement_withdraw},
        {"__close", l_announcement_withdraw},
        {"__tostring", l_announcement_tostring},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, ANNOUNCEMENT_MT)) {
        luaL_setfuncs(L, ann, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    lmd_lua_open_log(L);
    lua_setfield(L, -2, "log");
    lmd_lua_open_registry(L);
    lua_setfield(L, -2, "registry_new");
    lua_pushliteral(L, LMD_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushliteral(L, LMD_DEFAULT_TYPE);
    lua_setfield(L, -2, "SERVICE_TYPE");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_module_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    return 1;
}
