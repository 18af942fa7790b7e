/* The validated settings table (from the mantle) into struct lmd_config. */
#ifndef LMD_POLICY_SETTINGS_H
#define LMD_POLICY_SETTINGS_H

#include "base/config.h"
#include "base/error.h"

#include <lua.h>

int lmd_lua_read_settings(lua_State *L, int idx, struct lmd_config *c, lmd_err *err);

#endif
