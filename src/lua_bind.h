/* Shared pieces of the Lua bindings (the only files, with policy.c, that
 * include Lua headers). */
#ifndef LMD_LUA_BIND_H
#define LMD_LUA_BIND_H

#include "lmdisc.h"
#include <lua.h>

int luaopen_lmdisc(lua_State *L);
int lmd_lua_open_log(lua_State *L);
int lmd_lua_open_registry(lua_State *L);
void lmd_lua_push_node(lua_State *L, const lmd_node_info *n);
void lmd_lua_push_node_list(lua_State *L, const lmd_node_list *l);
/* The LMD_CH_* bits as a list of names: {"txt", "addresses"} */
void lmd_lua_push_changes(lua_State *L, unsigned changes);
/* A registry event as hook arguments: kind, peer, old (or nil), changes, reason (or nil). */
void lmd_lua_push_event(lua_State *L, int kind, const lmd_node_info *peer, const lmd_node_info *old,
                        unsigned changes, const char *reason);
int lmd_lua_to_node(lua_State *L, int idx, lmd_node_info *n);
int lmd_lua_to_txt(lua_State *L, int idx, lmd_txt *t);

#endif
