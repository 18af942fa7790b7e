/* The rules for the API's listeners (api.h: lmd_api_check): what the agent
 * refuses at start, checked the same way by the agent (api.c listens with
 * what lmd_api_parse_listen gives) and by `lmdisc check`, touching no
 * network and creating nothing. */
#include "api/api.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static bool loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (!strcmp(host, "localhost"))
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

int lmd_api_parse_listen(const char *spec, bool allow_remote, char *host, size_t hostlen, uint16_t *port,
                         lmd_err *err)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || (size_t)(colon - spec) >= hostlen)
        return lmd_err_set(err, LMD_EINVAL, "api.listen '%s' must be HOST:PORT, e.g. 127.0.0.1:7717", spec);
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    if (host[0] == '[') { /* [::1]:7717 */
        size_t n = strlen(host);
        if (host[n - 1] != ']')
            return lmd_err_set(err, LMD_EINVAL, "api.listen '%s': unbalanced [ ]", spec);
        memmove(host, host + 1, n - 2);
        host[n - 2] = '\0';
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 1 || p > 65535)
        return lmd_err_set(err, LMD_EINVAL, "api.listen '%s': port must be 1-65535", spec);
    if (!loopback(host) && !allow_remote)
        return lmd_err_set(err, LMD_EINVAL,
                           "api.listen '%s' is not a loopback address; the API has no authentication, so "
                           "serving other hosts needs api { allow_remote = true }", spec);
    *port = (uint16_t)p;
    return 0;
}

/* Whether this process may create path's socket: the nearest directory of
 * it that exists must be one it may write in (the agent makes the rest). */
static int check_socket(const char *path, lmd_err *err)
{
    struct sockaddr_un sa;
    if (strlen(path) >= sizeof sa.sun_path)
        return lmd_err_set(err, LMD_EINVAL, "api.socket path is too long (%zu bytes; at most %zu)", strlen(path),
                           sizeof sa.sun_path - 1);
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
        return lmd_err_set(err, LMD_EINVAL,
                           "api.socket %s exists and is not a socket; remove it or set api { socket = ... }", path);
    char dir[sizeof sa.sun_path];
    snprintf(dir, sizeof dir, "%s", path);
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash) {
            snprintf(dir, sizeof dir, ".");
        } else if (slash == dir) {
            dir[1] = '\0';
        } else {
            *slash = '\0';
        }
        if (stat(dir, &st) == 0)
            break;
        if (errno != ENOENT || !strcmp(dir, "/") || !strcmp(dir, "."))
            return lmd_err_set(err, LMD_EIO, "api.socket %s: %s: %s", path, dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return lmd_err_set(err, LMD_EIO, "api.socket %s: %s is not a directory", path, dir);
    if (eaccess(dir, W_OK | X_OK) != 0)
        return lmd_err_set(err, LMD_EIO,
                           "api.socket %s: this user (uid %u) may not create it in %s; run the agent as a user "
                           "that may (the Debian service has RuntimeDirectory=lmdisc) or set api { socket = ... }",
                           path, (unsigned)geteuid(), dir);
    return 0;
}

int lmd_api_check(const struct lmd_api_config *cfg, lmd_err *err)
{
    if (cfg->socket) {
        int rc = check_socket(cfg->socket, err);
        if (rc)
            return rc;
    }
    if (cfg->listen) {
        char host[128];
        uint16_t port;
        return lmd_api_parse_listen(cfg->listen, cfg->allow_remote, host, sizeof host, &port, err);
    }
    return 0;
}
