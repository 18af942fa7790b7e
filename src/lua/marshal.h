/* lmdisc's data as Lua values and back (marshal.c).  The peer table a
 * policy sees: name, type, domain, host, port, info, addresses, interfaces,
 * txt, local, self, first_seen, last_seen. */
#ifndef LMD_LUA_MARSHAL_H
#define LMD_LUA_MARSHAL_H

#include "lmdisc.h"
#include "registry/peers.h"

#include <lua.h>

void lmd_lua_push_node(lua_State *L, const lmd_node_info *n);
void lmd_lua_push_node_list(lua_State *L, const lmd_node_list *l);
/* The LMD_CH_* bits as a list of names: {"txt", "addresses"} */
void lmd_lua_push_changes(lua_State *L, unsigned changes);
/* A registry event as hook arguments: kind, peer, old (or nil), changes,
 * reason (or nil). */
void lmd_lua_push_event(lua_State *L, int kind, const lmd_node_info *peer, const lmd_node_info *old,
                        unsigned changes, const char *reason);
/* A node table back into a node; on error pushes a message. */
int lmd_lua_to_node(lua_State *L, int idx, lmd_node_info *n);
/* A TXT table {key = "value" | number | true} into t; on error pushes a
 * message and returns non-zero. */
int lmd_lua_to_txt(lua_State *L, int idx, lmd_txt *t);
/* A copy of the string field, or NULL. */
char *lmd_lua_opt_field_str(lua_State *L, int idx, const char *field);
/* nil, message: the expected-failure return of a lua_CFunction */
int lmd_lua_fail(lua_State *L, const char *msg);

#endif
