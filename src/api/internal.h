/* What the files of the API (api.c, api_reg.c) share. */
#ifndef LMD_API_INTERNAL_H
#define LMD_API_INTERNAL_H

#include "api/api.h"
#include "api/conns.h"
#include "api/ring.h"

#include <event2/http.h>
#include <stdint.h>

#define RING 4096              /* events kept for clients that reconnect, at most */
#define RING_BYTES (256 << 10) /* and their JSON, at most: the oldest go first (a
                                * client asking for those gets a snapshot; a replay
                                * is at most STREAM_BUDGET / 2 anyway) */
#define RING_IDLE_BYTES (16 << 10) /* what stays once no event came for IDLE_TRIM seconds: enough for
                                * a client that reconnects to resume after a quiet spell */
#define IDLE_TRIM 5            /* seconds without an event: the ring is trimmed, and freed memory goes
                                * back to the system (one timer per burst of events, none while idle) */
#define MAX_STREAMS 64
#define MAX_STREAMS_PER_UID 16 /* per client (a uid, also over TCP from this host; an address): so that one cannot take them all */
#define STREAM_BUDGET (1 << 20) /* bytes a stream client may fall behind before it is dropped */
#define MAX_CONNS 256
#define MAX_CONNS_PER_CLIENT (MAX_CONNS / 2) /* one uid, or one TCP address: others keep half */
#define REQUEST_DEADLINE 5     /* seconds for a whole request */
#define IDLE_TIMEOUT 10        /* seconds, for ordinary requests */
#define MAX_HEADERS 65536      /* what evhttp reads: big enough that our handler refuses with JSON */
#define HEADERS_ALLOWED 8192   /* what we take */
#define MAX_PATH 2048
#define MAX_BODY 8192          /* registrations: a TXT record of 1300 bytes, escaped in JSON */

struct watcher {
    struct watcher *next;
    lmd_api *api;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    bool sse;
    bool dropped;              /* fell behind: being closed */
    char client[64];           /* whose (lmd_conns_client); "": not known */
};

struct lmd_api {
    struct event_base *base;
    struct evhttp *http;
    struct lmd_api_source src;
    char *socket_path;
    char epoch[24];
    uint64_t index;            /* of the last event */
    lmd_ring *ring;            /* the last events, for clients that resume */
    struct event *trim_ev;     /* IDLE_TRIM after the last event */
    struct watcher *watchers;
    unsigned n_watchers;
    double requests, streams_dropped;
    lmd_conns *conns;
    struct lmd_api_stream *streams;  /* registrations bound to their connection */
};

void lmd_api_reply_json(struct evhttp_request *req, int code, const char *reason, json_t *doc);
void lmd_api_reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg);
/* fleet.c: GET /, the fleet page */
void lmd_api_handle_fleet(struct evhttp_request *req);
/* api_metrics.c: GET /v1/metrics */
void lmd_api_handle_metrics(lmd_api *api, struct evhttp_request *req);
/* Free a request evhttp left to us once its connection is gone. */
void lmd_api_release_request(lmd_api *api, struct evhttp_request *req);

/* api_reg.c: PUT/PATCH/DELETE /v1/services/NAME[/pass], POST /v1/self/drain.
 * raw_path: the path as sent (names are decoded segment by segment). */
void lmd_api_handle_registration(lmd_api *api, struct evhttp_request *req, const char *raw_path);
/* Every registration stream ends (at exit): no closed() for them. */
void lmd_api_streams_free(lmd_api *api);

#endif
