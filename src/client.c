/* `lmdisc peers` and `lmdisc watch`: clients of a running agent's API over
 * its Unix socket, with libcurl (which speaks HTTP over Unix sockets).
 *
 * libcurl is loaded when one of these commands first needs it, not linked:
 * it pulls some thirty libraries (TLS, Kerberos, LDAP...) worth ~5 MB of
 * resident memory into every process that links it, and the agent, which
 * never makes an HTTP request, must stay small. */
#include "cli.h"
#include "json.h"
#include "log.h"
#include "util.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/lmdisc/agent.sock"

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

struct opts {
    const char *socket;
    bool json;
};

static int parse(const char *cmd, int argc, char **argv, struct opts *o, const char *help)
{
    static const struct option lo[] = {
        {"json", no_argument, NULL, 'j'}, {"socket", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    o->socket = getenv("LMDISC_SOCKET");
    if (!o->socket || !*o->socket)
        o->socket = DEFAULT_SOCKET;
    o->json = false;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "js:h", lo, NULL)) != -1) {
        switch (c) {
        case 'j': o->json = true; break;
        case 's': o->socket = optarg; break;
        case 'h': fputs(help, stdout); return -1;
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

/* ---- peers ------------------------------------------------------------ */

struct buf {
    char *data;
    size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
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

/* ---- discover, answered by a running agent ------------------------------- */

/* The agent's /v1/services, if an agent runs here, browses this type and has
 * finished its first scan; NULL otherwise (then discover asks the network). */
json_t *lmd_client_services(const char *type)
{
    const char *socket = getenv("LMDISC_SOCKET");
    if (!socket || !*socket)
        socket = DEFAULT_SOCKET;
    if (access(socket, W_OK) != 0 || !curl_load(false))
        return NULL;
    CURL *c = curl.easy_init();
    if (!c)
        return NULL;
    struct buf b = {0};
    curl.easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket);
    curl.easy_setopt(c, CURLOPT_URL, "http://localhost/v1/services");
    curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl.easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl.easy_setopt(c, CURLOPT_TIMEOUT_MS, 500L);
    long status = 0;
    CURLcode rc = curl.easy_perform(c);
    curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl.easy_cleanup(c);
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

static const char peers_help[] =
    "Usage: lmdisc peers [--json] [--socket PATH]\n"
    "List the live peers of the agent running on this host, as its policy sees them.\n"
    "  -j, --json         print the agent's JSON (as GET /v1/peers)\n"
    "  -s, --socket PATH  the agent's API socket (default $LMDISC_SOCKET or " DEFAULT_SOCKET ")\n";

static void age(double secs, char *out, size_t len)
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

/* "10.77.0.2:8000", preferring IPv4; IPv6 in brackets */
static void endpoint(json_t *node, char *out, size_t len)
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

static int get(const char *cmd, const char *socket, const char *path, struct buf *b, long *status)
{
    (void)cmd;
    if (!curl_load(true))
        return LMD_EXIT_FAIL;
    CURL *c = curl.easy_init();
    if (!c)
        return LMD_EXIT_FAIL;
    char url[256];
    snprintf(url, sizeof url, "http://localhost%s", path);
    curl.easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket);
    curl.easy_setopt(c, CURLOPT_URL, url);
    curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl.easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl.easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl.easy_perform(c);
    curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl.easy_cleanup(c);
    if (rc != CURLE_OK || *status != 200) {
        explain(cmd, rc, socket, *status, b->data ? b->data : "");
        return LMD_EXIT_FAIL;
    }
    return 0;
}

int lmd_cmd_peers(int argc, char **argv)
{
    struct opts o;
    int rc = parse("peers", argc, argv, &o, peers_help);
    if (rc)
        return rc < 0 ? 0 : rc;
    struct buf b = {0};
    long status = 0;
    if ((rc = get("peers", o.socket, "/v1/peers", &b, &status)) != 0) {
        free(b.data);
        return rc;
    }
    json_error_t jerr;
    json_t *doc = json_loads(b.data, 0, &jerr);
    if (!json_is_array(doc)) {
        fprintf(stderr, "lmdisc peers: the agent sent something that is not a JSON list: %s\n", jerr.text);
        json_decref(doc);
        free(b.data);
        return LMD_EXIT_FAIL;
    }
    if (o.json) {
        char *s = lmd_json_dump(doc, true);
        if (s)
            puts(s);
        free(s);
    } else if (json_array_size(doc) == 0) {
        fprintf(stderr, "lmdisc peers: no live peers\n");
    } else {
        double now = lmd_now_wall();
        printf("%-24s  %-28s  %-5s  %s\n", "NAME", "ADDRESS:PORT", "AGE", "INFO");
        size_t i;
        json_t *n;
        json_array_foreach(doc, i, n) {
            char name[256], ep[96], ag[16], info[256];
            const char *nm = json_string_value(json_object_get(n, "name"));
            const char *in = json_string_value(json_object_get(n, "info"));
            endpoint(n, ep, sizeof ep);
            age(now - json_number_value(json_object_get(n, "first_seen")), ag, sizeof ag);
            printf("%-24s  %-28s  %-5s  %s\n", lmd_escape_str(nm, name, sizeof name), ep, ag,
                   in ? lmd_escape_str(in, info, sizeof info) : "-");
        }
    }
    json_decref(doc);
    free(b.data);
    return 0;
}

/* ---- watch ------------------------------------------------------------ */

static const char watch_help[] =
    "Usage: lmdisc watch [--json] [--socket PATH]\n"
    "Follow the running agent's join / update / leave events until interrupted.\n"
    "Starts with a snapshot of the live peers; if the connection drops it\n"
    "reconnects and asks only for what it missed.\n"
    "  -j, --json         one JSON document per line (as GET /v1/events)\n"
    "  -s, --socket PATH  the agent's API socket (default $LMDISC_SOCKET or " DEFAULT_SOCKET ")\n";

struct stream {
    bool json;
    struct buf line;
    long long index;
    char epoch[32];
};

static void print_event(struct stream *s, const char *text)
{
    json_t *ev = json_loads(text, 0, NULL);
    if (!ev)
        return;
    json_t *idx = json_object_get(ev, "index");
    if (json_is_integer(idx))
        s->index = json_integer_value(idx);
    const char *epoch = json_string_value(json_object_get(ev, "epoch"));
    if (epoch)
        snprintf(s->epoch, sizeof s->epoch, "%s", epoch);
    if (s->json) {
        puts(text);
        fflush(stdout);
        json_decref(ev);
        return;
    }
    const char *type = json_string_value(json_object_get(ev, "type"));
    char ts[32];
    time_t now = time(NULL);
    strftime(ts, sizeof ts, "%H:%M:%S", localtime(&now));
    if (type && !strcmp(type, "snapshot")) {
        json_t *peers = json_object_get(ev, "peers");
        printf("%s snapshot: %zu live peer(s)\n", ts, json_array_size(peers));
        size_t i;
        json_t *n;
        json_array_foreach(peers, i, n) {
            char name[256], ep[96], info[256];
            const char *in = json_string_value(json_object_get(n, "info"));
            endpoint(n, ep, sizeof ep);
            printf("%s   %s %s %s\n", ts, lmd_escape_str(json_string_value(json_object_get(n, "name")), name, sizeof name),
                   ep, in ? lmd_escape_str(in, info, sizeof info) : "-");
        }
    } else if (type) {
        json_t *peer = json_object_get(ev, "peer");
        char name[256], ep[96], info[256], extra[256] = "";
        const char *in = json_string_value(json_object_get(peer, "info"));
        endpoint(peer, ep, sizeof ep);
        if (!strcmp(type, "update")) {
            size_t i;
            json_t *c;
            json_array_foreach(json_object_get(ev, "changes"), i, c) {
                size_t used = strlen(extra);
                snprintf(extra + used, sizeof extra - used, "%s%s", i ? "," : "(", json_string_value(c));
            }
            if (*extra)
                strncat(extra, ")", sizeof extra - strlen(extra) - 1);
        } else if (!strcmp(type, "leave")) {
            const char *r = json_string_value(json_object_get(ev, "reason"));
            snprintf(extra, sizeof extra, "(%s)", r ? r : "?");
        }
        printf("%s %-6s %s %s %s %s\n", ts, type,
               lmd_escape_str(json_string_value(json_object_get(peer, "name")), name, sizeof name), ep,
               in ? lmd_escape_str(in, info, sizeof info) : "-", extra);
    }
    fflush(stdout);
    json_decref(ev);
}

static size_t on_chunk(char *p, size_t size, size_t n, void *ud)
{
    struct stream *s = ud;
    size_t len = size * n;
    if (collect(p, 1, len, &s->line) != len)
        return 0;
    char *nl;
    while (s->line.data && (nl = memchr(s->line.data, '\n', s->line.len))) {
        *nl = '\0';
        if (nl > s->line.data)
            print_event(s, s->line.data);
        size_t rest = s->line.len - (size_t)(nl + 1 - s->line.data);
        memmove(s->line.data, nl + 1, rest);
        s->line.len = rest;
        s->line.data[rest] = '\0';
    }
    return len;
}

static void watch_interrupted(int sig)
{
    (void)sig;
    _exit(0); /* every event was printed and flushed as it came */
}

int lmd_cmd_watch(int argc, char **argv)
{
    struct opts o;
    int rc = parse("watch", argc, argv, &o, watch_help);
    if (rc)
        return rc < 0 ? 0 : rc;
    struct stream s = {.json = o.json, .index = -1};
    if (!curl_load(true))
        return LMD_EXIT_FAIL;
    signal(SIGINT, watch_interrupted);
    signal(SIGTERM, watch_interrupted);
    unsigned delay = 0;
    bool connected_once = false;
    for (;;) {
        CURL *c = curl.easy_init();
        if (!c)
            return LMD_EXIT_FAIL;
        char url[256];
        if (s.index >= 0)
            snprintf(url, sizeof url, "http://localhost/v1/events?since=%lld&epoch=%s", s.index, s.epoch);
        else
            snprintf(url, sizeof url, "http://localhost/v1/events");
        curl.easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, o.socket);
        curl.easy_setopt(c, CURLOPT_URL, url);
        curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_chunk);
        curl.easy_setopt(c, CURLOPT_WRITEDATA, &s);
        curl.easy_setopt(c, CURLOPT_FAILONERROR, 1L);
        s.line.len = 0;
        CURLcode r = curl.easy_perform(c);
        long status = 0;
        curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl.easy_cleanup(c);
        if (r == CURLE_OK || r == CURLE_PARTIAL_FILE || r == CURLE_RECV_ERROR || r == CURLE_GOT_NOTHING) {
            connected_once = true;
            delay = 0;
            fprintf(stderr, "lmdisc watch: the agent closed the stream; reconnecting\n");
        } else if (!connected_once) {
            explain("watch", r, o.socket, status, "");
            free(s.line.data);
            return LMD_EXIT_FAIL;
        } else if (delay == 0) {
            fprintf(stderr, "lmdisc watch: lost the agent (%s); retrying\n", curl.easy_strerror(r));
        }
        delay = delay ? (delay < 5 ? delay + 1 : 5) : 1;
        sleep(delay); /* backoff between reconnects; the process has nothing else to do */
    }
}
