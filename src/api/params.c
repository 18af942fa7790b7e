/* API request parameters (see api_params.h). */
#include "api/params.h"
#include "base/error.h"
#include "base/util.h"

#include <errno.h>
#include <math.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#define NAME_MAX_BYTES 63 /* a DNS label */

static int parse_index(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return LMD_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return LMD_EINVAL;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return LMD_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int lmd_api_parse_resume(const char *query, const char *last_event_id, const char *our_epoch,
                         struct lmd_resume *out, const char **why)
{
    static const char bad_since[] = "since must be an event index (a non-negative integer)";
    *out = (struct lmd_resume){.same_epoch = true};
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (query && evhttp_parse_query_str(query, &params) != 0) {
        *why = "malformed query string";
        return LMD_EINVAL;
    }
    const char *since = evhttp_find_header(&params, "since");
    const char *epoch = evhttp_find_header(&params, "epoch");
    int rc = 0;
    if (since) {
        rc = parse_index(since, strlen(since), &out->since);
        out->have_since = rc == 0;
        out->same_epoch = !epoch || !strcmp(epoch, our_epoch);
    } else if (last_event_id) { /* SSE reconnect: "epoch:index" */
        const char *colon = strrchr(last_event_id, ':');
        if (colon) {
            rc = parse_index(colon + 1, strlen(colon + 1), &out->since);
            out->have_since = rc == 0;
            out->same_epoch = strlen(our_epoch) == (size_t)(colon - last_event_id) &&
                              !strncmp(last_event_id, our_epoch, (size_t)(colon - last_event_id));
        }
    }
    evhttp_clear_headers(&params);
    if (rc)
        *why = bad_since;
    return rc;
}

int lmd_api_parse_service_path(const char *raw, char **name, bool *pass, const char **why)
{
    static const char prefix[] = "/v1/services/";
    *name = NULL;
    *pass = false;
    if (strncmp(raw, prefix, sizeof prefix - 1) != 0) {
        *why = "unknown path; registrations live at /v1/services/NAME and /v1/services/NAME/pass";
        return 404;
    }
    const char *p = raw + sizeof prefix - 1;
    const char *slash = strchr(p, '/');
    size_t enc = slash ? (size_t)(slash - p) : strlen(p);
    if (slash && strcmp(slash, "/pass") != 0) {
        *why = "unknown path; registrations live at /v1/services/NAME and /v1/services/NAME/pass";
        return 404;
    }
    *pass = slash != NULL;
    char *e = lmd_strndup(p, enc);
    size_t len = 0;
    *name = e ? evhttp_uridecode(e, 0, &len) : NULL;
    free(e);
    if (!*name) {
        *why = "out of memory";
        return 503;
    }
    if (len == 0 || len > NAME_MAX_BYTES || strlen(*name) != len) {
        free(*name);
        *name = NULL;
        *why = "the service name must be 1 to 63 bytes (a DNS label), URL-encoded in the path";
        return 400;
    }
    return 0;
}

bool lmd_api_query_flag(const char *query, const char *name)
{
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (!query || evhttp_parse_query_str(query, &params) != 0) {
        evhttp_clear_headers(&params);
        return false;
    }
    const char *v = evhttp_find_header(&params, name);
    bool on = v && (!strcmp(v, "1") || !strcmp(v, "true"));
    evhttp_clear_headers(&params);
    return on;
}

double lmd_api_parse_ttl(const char *query, const char **why)
{
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (query && evhttp_parse_query_str(query, &params) != 0) {
        evhttp_clear_headers(&params);
        *why = "malformed query string";
        return -1;
    }
    double ttl = 0;
    const char *t = evhttp_find_header(&params, "ttl");
    if (t) {
        char *end;
        ttl = strtod(t, &end);
        if (end == t || *end || !isfinite(ttl) || ttl < 1 || ttl > 86400) {
            *why = "ttl must be a number of seconds from 1 to 86400";
            ttl = -1;
        }
    }
    evhttp_clear_headers(&params);
    return ttl;
}
