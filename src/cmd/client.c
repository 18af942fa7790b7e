/* The agent's API over its Unix socket, with libcurl (which speaks HTTP
 * over Unix sockets); the only file that includes curl.
 *
 * libcurl is loaded when a command first needs it, not linked: it pulls
 * some thirty libraries (TLS, Kerberos, LDAP...) worth ~5 MB of resident
 * memory into every process that links it, and the agent, which never makes
 * an HTTP request, must stay small. */
#include "cmd/client.h"
#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "cmd/cmd.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static struct {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
} curl;

/* Resolve libcurl once; false (with a message when loud) if it is missing. */
static bool curl_load(bool loud)
{
    static int state; /* 0 not tried, 1 loaded, -1 failed */
    if (state)
        return state > 0;
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (h) {
        *(void **)&curl.easy_init = dlsym(h, "curl_easy_init");
        *(void **)&curl.easy_setopt = dlsym(h, "curl_easy_setopt");
        *(void **)&curl.easy_perform = dlsym(h, "curl_easy_perform");
        *(void **)&curl.easy_getinfo = dlsym(h, "curl_easy_getinfo");
        *(void **)&curl.easy_cleanup = dlsym(h, "curl_easy_cleanup");
        *(void **)&curl.easy_strerror = dlsym(h, "curl_easy_strerror");
    }
    state = h && curl.easy_init && curl.easy_setopt && curl.easy_perform && curl.easy_getinfo &&
                    curl.easy_cleanup && curl.easy_strerror ? 1 : -1;
    if (state < 0 && loud)
        fprintf(stderr, "lmdisc: talking to the agent needs libcurl (%s); install Debian's libcurl4\n",
                dlerror());
    return state > 0;
}

const char *lmd_client_socket(void)
{
    const char *s = getenv("LMDISC_SOCKET");
    return s && *s ? s : LMD_API_SOCKET;
}

int lmd_client_parse(const char *cmd, int argc, char **argv, struct lmd_client_opts *o, const char *help)
{
    static const struct option lo[] = {
        {"json", no_argument, NULL, 'j'}, {"socket", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    o->socket = lmd_client_socket();
    o->json = false;
    int c;
    lmd_getopt_reset();
    while ((c = getopt_long(argc, argv, "js:h", lo, NULL)) != -1) {
        switch (c) {
        case 'j': o->json = true; break;
        case 's': o->socket = optarg; break;
        case 'h': fputs(help, stdout); return LMD_EXIT_HELP;
        default: return lmd_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return lmd_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    return 0;
}

static void explain(const char *cmd, CURLcode rc, const char *socket, long status, const char *detail)
{
    if (rc == CURLE_COULDNT_CONNECT) {
        if (access(socket, F_OK) == 0 && access(socket, W_OK) != 0)
            fprintf(stderr, "lmdisc %s: no permission to use %s (it is meant for root and its group)\n",
                    cmd, socket);
        else
            fprintf(stderr,
                    "lmdisc %s: no lmdisc agent is running here (nothing listens on %s); start one with "
                    "'lmdisc agent -c CONFIG.lua', or give --socket PATH\n", cmd, socket);
    } else if (rc != CURLE_OK) {
        fprintf(stderr, "lmdisc %s: talking to the agent on %s failed: %s\n", cmd, socket, curl.easy_strerror(rc));
    } else {
        fprintf(stderr, "lmdisc %s: the agent answered %ld: %s\n", cmd, status, detail);
    }
}

size_t lmd_buf_append(char *p, size_t size, size_t n, void *ud)
{
    struct lmd_buf *b = ud;
    size_t add = size * n;
    char *d = realloc(b->data, b->len + add + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, p, add);
    b->data = d;
    b->len += add;
    d[b->len] = '\0';
    return add;
}


/* One request; what a stream's chunks go to is sink (NULL: collect into b).
 * Returns curl's code; *status the HTTP status. */
/* body: POST it (JSON), else GET; method: another one (DELETE). */
static CURLcode request_body(const char *socket, const char *path, const char *method, const char *body,
                             long timeout_ms, lmd_client_sink sink, void *ud, long *status)
{
    CURL *c = curl.easy_init();
    if (!c)
        return CURLE_OUT_OF_MEMORY;
    char url[512];
    snprintf(url, sizeof url, "http://localhost%s", path);
    curl.easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket);
    if (body)
        curl.easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (method)
        curl.easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl.easy_setopt(c, CURLOPT_URL, url);
    curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl.easy_setopt(c, CURLOPT_WRITEDATA, ud);
    if (timeout_ms > 0)
        curl.easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    else
        curl.easy_setopt(c, CURLOPT_FAILONERROR, 1L); /* a stream: an error status is a failure */
    *status = 0;
    CURLcode rc = curl.easy_perform(c);
    curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl.easy_cleanup(c);
    return rc;
}

static CURLcode request(const char *socket, const char *path, long timeout_ms, lmd_client_sink sink, void *ud,
                        long *status)
{
    return request_body(socket, path, NULL, NULL, timeout_ms, sink, ud, status);
}

static size_t collect(char *p, size_t size, size_t n, void *ud) { return lmd_buf_append(p, size, n, ud); }

int lmd_client_send(const char *cmd, const char *socket, const char *method, const char *path, const char *body,
                    struct lmd_buf *b)
{
    if (!curl_load(true))
        return 1;
    long status;
    CURLcode rc = request_body(socket, path, method, body, 10000, collect, b, &status);
    if (rc != CURLE_OK || status / 100 != 2) {
        explain(cmd, rc, socket, status, b->data ? b->data : "");
        return 1;
    }
    return 0;
}

int lmd_client_get(const char *cmd, const char *socket, const char *path, struct lmd_buf *b)
{
    if (!curl_load(true))
        return 1;
    long status;
    CURLcode rc = request(socket, path, 10000, collect, b, &status);
    if (rc != CURLE_OK || status != 200) {
        explain(cmd, rc, socket, status, b->data ? b->data : "");
        return 1;
    }
    return 0;
}

/* The agent's /v1/services, if an agent runs here, browses this type and has
 * finished its first scan; NULL otherwise (then discover asks the network). */
json_t *lmd_client_services(const char *type)
{
    const char *socket = lmd_client_socket();
    if (access(socket, W_OK) != 0 || !curl_load(false))
        return NULL;
    struct lmd_buf b = {0};
    long status;
    CURLcode rc = request(socket, "/v1/services", 500, collect, &b, &status);
    json_t *doc = rc == CURLE_OK && status == 200 && b.data ? json_loads(b.data, 0, NULL) : NULL;
    free(b.data);
    if (!doc || !json_is_true(json_object_get(doc, "complete")) ||
        !lmd_streq(json_string_value(json_object_get(doc, "type")), type) ||
        !json_is_array(json_object_get(doc, "nodes"))) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int lmd_client_stream(const char *cmd, const char *socket, const char *path, lmd_client_sink sink, void *ud,
                      bool quiet)
{
    if (!curl_load(true))
        return LMD_CLIENT_FAILED;
    long status;
    CURLcode r = request(socket, path, 0, sink, ud, &status);
    if (r == CURLE_HTTP_RETURNED_ERROR && status == 429)
        return LMD_CLIENT_BUSY;
    if (r == CURLE_OK || r == CURLE_PARTIAL_FILE || r == CURLE_RECV_ERROR || r == CURLE_GOT_NOTHING)
        return LMD_CLIENT_ENDED;
    if (!quiet)
        explain(cmd, r, socket, status, "");
    return LMD_CLIENT_FAILED;
}

void lmd_client_age(double secs, char *out, size_t len)
{
    if (secs < 0 || !isfinite(secs))
        snprintf(out, len, "-");
    else if (secs < 120)
        snprintf(out, len, "%.0fs", secs);
    else if (secs < 7200)
        snprintf(out, len, "%.0fm", secs / 60);
    else if (secs < 172800)
        snprintf(out, len, "%.0fh", secs / 3600);
    else
        snprintf(out, len, "%.0fd", secs / 86400);
}

const char *lmd_client_sources(json_t *node, char *out, size_t len)
{
    size_t i, used = 0;
    json_t *s;
    out[0] = 0;
    json_array_foreach(json_object_get(node, "sources"), i, s) {
        const char *v = json_string_value(s);
        if (v && (!strcmp(v, "mdns") || !strcmp(v, "dns")) && used < len) /* ours: never terminal bytes */
            used += (size_t)snprintf(out + used, len - used, "%s%s", used ? "," : "", v);
    }
    return out[0] ? out : "-";
}

/* "10.77.0.2:8000", preferring IPv4; IPv6 in brackets */
void lmd_client_endpoint(json_t *node, char *out, size_t len)
{
    json_t *addrs = json_object_get(node, "addresses");
    const char *pick = NULL;
    int fam = 0;
    size_t i;
    json_t *a;
    json_array_foreach(addrs, i, a) {
        int f = (int)json_integer_value(json_object_get(a, "family"));
        if (!pick || (f == 4 && fam != 4)) {
            pick = json_string_value(json_object_get(a, "address"));
            fam = f;
        }
    }
    long port = (long)json_integer_value(json_object_get(node, "port"));
    if (!pick)
        pick = json_string_value(json_object_get(node, "host"));
    snprintf(out, len, fam == 6 ? "[%s]:%ld" : "%s:%ld", pick ? pick : "?", port);
}


const char *lmd_client_info(json_t *node, char *out, size_t len)
{
    json_t *in = json_object_get(node, "info");
    if (!json_is_string(in))
        return "-";
    return lmd_escape(json_string_value(in), json_string_length(in), out, len);
}
