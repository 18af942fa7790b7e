/* `lmdisc watch`: the running agent's join / update / leave events, resumed
 * after a reconnect with what was missed. */
#include "base/config.h"
#include "base/log.h"
#include "cmd/client.h"
#include "cmd/cmd.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char watch_help[] =
    "Usage: lmdisc watch [--json] [--socket PATH]\n"
    "Follow the running agent's join / update / leave events until interrupted.\n"
    "Starts with a snapshot of the live peers; if the connection drops it\n"
    "reconnects and asks only for what it missed.\n"
    "  -j, --json         one JSON document per line (as GET /v1/events)\n"
    "  -s, --socket PATH  the agent's API socket (default $LMDISC_SOCKET or " LMD_API_SOCKET ")\n";

struct stream {
    bool json;
    struct lmd_buf line;
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
            lmd_client_endpoint(n, ep, sizeof ep);
            printf("%s   %s %s %s\n", ts, lmd_escape_str(json_string_value(json_object_get(n, "name")), name, sizeof name),
                   ep, lmd_client_info(n, info, sizeof info));
        }
    } else if (type) {
        json_t *peer = json_object_get(ev, "peer");
        char name[256], ep[96], info[256], extra[256] = "";
        lmd_client_endpoint(peer, ep, sizeof ep);
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
               lmd_client_info(peer, info, sizeof info), extra);
    }
    fflush(stdout);
    json_decref(ev);
}

static size_t on_chunk(char *p, size_t size, size_t n, void *ud)
{
    struct stream *s = ud;
    size_t len = size * n;
    if (lmd_buf_append(p, 1, len, &s->line) != len)
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
    struct lmd_client_opts o;
    int rc = lmd_client_parse("watch", argc, argv, &o, watch_help);
    if (rc)
        return lmd_exit_status(rc);
    struct stream s = {.json = o.json, .index = -1};
    signal(SIGINT, watch_interrupted);
    signal(SIGTERM, watch_interrupted);
    unsigned delay = 0;
    bool connected_once = false;
    for (;;) {
        char path[256];
        if (s.index >= 0)
            snprintf(path, sizeof path, "/v1/events?since=%lld&epoch=%s", s.index, s.epoch);
        else
            snprintf(path, sizeof path, "/v1/events");
        s.line.len = 0;
        int r = lmd_client_stream("watch", o.socket, path, on_chunk, &s, connected_once);
        if (r == LMD_CLIENT_ENDED) {
            connected_once = true;
            delay = 0;
            fprintf(stderr, "lmdisc watch: the agent closed the stream; reconnecting\n");
        } else if (r == LMD_CLIENT_BUSY) {
            /* every stream slot is taken: wait for one, however long */
            if (delay == 0)
                fprintf(stderr, "lmdisc watch: the agent has no free event stream (429); waiting for one\n");
        } else if (!connected_once) {
            free(s.line.data);
            return 1;
        } else if (delay == 0) {
            fprintf(stderr, "lmdisc watch: lost the agent; retrying\n");
        }
        delay = delay ? (delay < 5 ? delay + 1 : 5) : 1;
        sleep(delay); /* backoff between reconnects; the process has nothing else to do */
    }
}
