/* The Lua C module lmdisc.so: require "lmdisc" from a stock lua5.4. */
#include "lua/namespaces.h"

__attribute__((visibility("default"))) int luaopen_lmdisc(lua_State *L);

int luaopen_lmdisc(lua_State *L) { return lmd_lua_open_module(L); }
