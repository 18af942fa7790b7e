/* lmdisc.*: the pure functions, usable everywhere (stock lua5.4, the
 * agent's policies, lmdisc test): TXT and service-type checks, JSON of a
 * node, escaping, constants. */
#include "lua/namespaces.h"
#include "base/config.h"
#include "base/limits.h"
#include "base/json.h"
#include "base/txt.h"
#include "base/log.h"
#include "base/util.h"
#include "lua/marshal.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* lmdisc.txt_parse("key=value") -> key, value|true | nil, err */
static int l_txt_parse(lua_State *L)
{
    const char *arg = luaL_checkstring(L, 1);
    lmd_txt t = {0};
    char err[320];
    if (lmd_txt_parse_arg(&t, arg, err, sizeof err) != 0) {
        lmd_txt_free(&t);
        return lmd_lua_fail(L, err);
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
    char why[320];
    if (rc == 0 && (rc = lmd_txt_check_record(&t, why, sizeof why)) != 0)
        lua_pushstring(L, why);
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
        return lmd_lua_fail(L, err);
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

/* ---- files: regular ones only ------------------------------------------ */

/* Open path without blocking (O_NONBLOCK: a FIFO with no writer would block
 * open itself) and make sure it is a regular file.  -1 with errno, or
 * EINVAL for anything but a regular file. */
static int open_regular(const char *path, int flags)
{
    int fd = open(path, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0644);
    if (fd < 0)
        return -1;
    struct stat st;
    int rc = fstat(fd, &st);
    if (rc != 0 || !S_ISREG(st.st_mode)) {
        int e = rc != 0 ? errno : EINVAL;
        close(fd);
        errno = e;
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int file_fail(lua_State *L, const char *path)
{
    if (errno == EINVAL)
        return lmd_lua_fail(L, lua_pushfstring(L, "%s: not a regular file (lmdisc policies open regular files "
                                                  "only: a FIFO or device would block the agent)", path));
    return luaL_fileresult(L, 0, path);
}

static int file_close(lua_State *L)
{
    luaL_Stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
    int ok = fclose(p->f) == 0;
    return luaL_fileresult(L, ok, NULL);
}

/* lmdisc.open_file(path [, mode]) -> file | nil, err: io.open for regular
 * files only (the policies' io.open). */
static int l_open_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *mode = luaL_optstring(L, 2, "r");
    static const struct { const char *mode; int flags; } modes[] = {
        {"r", O_RDONLY}, {"rb", O_RDONLY}, {"w", O_WRONLY | O_CREAT | O_TRUNC}, {"wb", O_WRONLY | O_CREAT | O_TRUNC},
        {"a", O_WRONLY | O_CREAT | O_APPEND}, {"ab", O_WRONLY | O_CREAT | O_APPEND}, {"r+", O_RDWR},
        {"r+b", O_RDWR}, {"w+", O_RDWR | O_CREAT | O_TRUNC}, {"w+b", O_RDWR | O_CREAT | O_TRUNC},
        {"a+", O_RDWR | O_CREAT | O_APPEND}, {"a+b", O_RDWR | O_CREAT | O_APPEND},
    };
    int flags = -1;
    for (size_t i = 0; i < LMD_ARRAY_LEN(modes); i++)
        if (!strcmp(mode, modes[i].mode))
            flags = modes[i].flags;
    luaL_argcheck(L, flags >= 0, 2, "invalid mode");
    luaL_Stream *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->closef = NULL; /* not a file until opened */
    luaL_setmetatable(L, LUA_FILEHANDLE);
    int fd = open_regular(path, flags);
    if (fd < 0)
        return file_fail(L, path);
    if (!(p->f = fdopen(fd, mode))) {
        close(fd);
        return luaL_fileresult(L, 0, path);
    }
    p->closef = file_close;
    return 1;
}

/* lmdisc.read_file(path [, max]) -> text | nil, err: a whole regular file,
 * refused when larger than max bytes (default LMD_FILE_MAX, 4 MiB). */
static int l_read_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, LMD_FILE_MAX);
    luaL_argcheck(L, max >= 0, 2, "max must be >= 0");
    int fd = open_regular(path, O_RDONLY);
    if (fd < 0)
        return file_fail(L, path);
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size > max) {
        close(fd);
        return lmd_lua_fail(L, lua_pushfstring(L, "%s: larger than %I bytes; lmdisc reads configuration "
                                                  "and policy files of at most that size", path, max));
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    ssize_t n;
    lua_Integer total = 0;
    char chunk[8192];
    while ((n = read(fd, chunk, sizeof chunk)) > 0 && (total += n) <= max)
        luaL_addlstring(&b, chunk, (size_t)n);
    int e = errno;
    close(fd);
    if (n < 0 || total > max) {
        errno = e;
        return total > max ? lmd_lua_fail(L, lua_pushfstring(L, "%s: grew past %I bytes while read", path, max))
                           : luaL_fileresult(L, 0, path);
    }
    luaL_pushresult(&b);
    return 1;
}

int lmd_lua_open_core(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"txt_parse", l_txt_parse}, {"txt_check", l_txt_check}, {"service_type_check", l_service_type_check},
        {"node_json", l_node_json}, {"escape", l_escape}, {"open_file", l_open_file}, {"read_file", l_read_file},
        {NULL, NULL},
    };
    static const char *const strings[][2] = {
        {"version", LMD_VERSION}, {"SERVICE_TYPE", LMD_DEFAULT_TYPE}, {"API_SOCKET", LMD_API_SOCKET}};
    luaL_newlib(L, fns);
    for (size_t i = 0; i < LMD_ARRAY_LEN(strings); i++) {
        lua_pushstring(L, strings[i][1]);
        lua_setfield(L, -2, strings[i][0]);
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) { /* the schema's bound for policy.memory_mb */
        lua_pushinteger(L, (lua_Integer)((double)pages * (double)page / 1048576.0));
        lua_setfield(L, -2, "MEMORY_MB");
    }
    return 1;
}
