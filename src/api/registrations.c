/* The registration API (see api.h): servers announce themselves through the
 * agent, on the Unix socket only.
 *
 *   PUT /v1/services/NAME          {"port", "info", "txt"}: announced while the
 *                                  connection stays open; the reply streams
 *                                  state lines (NDJSON)
 *   PUT /v1/services/NAME?ttl=S    announced until S passes without a pass
 *   PUT /v1/services/NAME/pass     the TTL starts again
 *   PATCH /v1/services/NAME        {"txt": {k: v | true | null}, "info"}
 *   DELETE /v1/services/NAME       withdraw
 *   POST /v1/self/drain            {"grace": S}: status=draining, then withdraw
 *   DELETE /v1/self/drain          cancel the drain (during its grace or after)
 *
 * Who asks is the Unix socket peer's uid (api.h, struct lmd_api_caller): a
 * registration is its uid's; draining and cancelling a drain are for admins. */
#include "api/internal.h"
#include "api/params.h"
#include "base/json.h"
#include "base/log.h"
#include "base/txt.h"
#include "base/util.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <unistd.h>


struct lmd_api_stream {
    struct lmd_api_stream *next;
    lmd_api *api;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    bool started;           /* headers and "registering" are out */
    /* states reported before that, sent right after: a name is at most 63
     * bytes, 6 in JSON each (\uXXXX), so a line fits in 512 */
    char pending[8][512];
    unsigned n_pending;
};

/* The reason phrase of a status the registration API sends. */
static const char *reason(int status)
{
    switch (status) {
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "Bad Request";
    }
}

int lmd_api_status(int code)
{
    switch (code) {
    case 0: return 0;
    case LMD_EINVAL:
    case LMD_ETXT: return 400;
    case LMD_EPERM: return 403;
    case LMD_ENOTFOUND: return 404;
    case LMD_EEXIST: return 409;
    case LMD_ELIMIT: return 429;
    default: return 503; /* out of memory, draining, avahi away... */
    }
}

/* A registration callback's answer: its HTTP status (0: done) and, on a
 * failure, its message in buf. */
static int called(int code, const lmd_err *e, char *buf, size_t len)
{
    if (code != 0)
        snprintf(buf, len, "%s", lmd_err_text(e));
    return lmd_api_status(code);
}

/* ---- input --------------------------------------------------------------- */

/* The request body as JSON (an object), or NULL with *why. */
static json_t *body_json(struct evhttp_request *req, bool required, const char **why)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = in ? evbuffer_get_length(in) : 0;
    if (len == 0) {
        *why = required ? "give a JSON body, e.g. {\"port\": 8000, \"info\": \"gemma-2b-it Q4_0\"}" : NULL;
        return required ? NULL : json_object();
    }
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        *why = "the body must be a JSON object";
        return NULL;
    }
    return doc;
}

/* {"k": "v" | number | true | null/false} into set (and remove, where given). */
static int txt_from_json(json_t *obj, lmd_txt *set, lmd_txt *remove, char *err, size_t errlen)
{
    if (!obj)
        return 0;
    if (!json_is_object(obj))
        return lmd_errbuf(err, errlen, 400, "txt must be a JSON object {\"key\": \"value\" | true}");
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        int rc = 0;
        if (json_is_string(v))
            rc = lmd_txt_set(set, k, json_string_value(v), json_string_length(v), true, err, errlen);
        else if (json_is_number(v)) {
            char num[64];
            if (json_is_integer(v))
                snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            else
                snprintf(num, sizeof num, "%.17g", json_real_value(v));
            rc = lmd_txt_set(set, k, num, strlen(num), true, err, errlen);
        } else if (json_is_true(v))
            rc = lmd_txt_set(set, k, NULL, 0, false, err, errlen);
        else if ((json_is_null(v) || json_is_false(v)) && remove)
            rc = lmd_txt_set(remove, k, NULL, 0, false, err, errlen);
        else
            return lmd_errbuf(err, errlen, 400, "TXT value for '%.40s' must be a string, number or true%s", k,
                              remove ? " (null removes it)" : "");
        if (rc)
            return rc == LMD_ENOMEM ? 503 : 400;
    }
    return 0;
}

/* ---- streams ------------------------------------------------------------- */

static void stream_unlink(struct lmd_api_stream *s)
{
    for (struct lmd_api_stream **pp = &s->api->streams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
}

static void stream_closed(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    struct lmd_api_stream *s = arg;
    lmd_api *api = s->api;
    stream_unlink(s);
    if (api->src.reg && api->src.reg->closed)
        api->src.reg->closed(api->src.ud, s);
    lmd_api_release_request(api, s->req);
    free(s);
}

static void send_line(struct lmd_api_stream *s, const char *line)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return;
    evbuffer_add_printf(b, "%s\n", line);
    evhttp_send_reply_chunk(s->req, b);
    evbuffer_free(b);
}

void lmd_api_stream_state(lmd_api_stream *s, const char *state, const char *name, const char *reason, bool end)
{
    json_t *doc = json_pack("{s:s,s:o}", "state", state, "name", lmd_json_str(name));
    if (doc && reason)
        json_object_set_new(doc, "reason", json_string(reason));
    char *line = doc ? lmd_json_dump(doc, false) : NULL;
    json_decref(doc);
    if (!s->started) {
        /* add() is still running: say it right after the headers */
        if (line && s->n_pending < LMD_ARRAY_LEN(s->pending) && strlen(line) < sizeof s->pending[0])
            snprintf(s->pending[s->n_pending++], sizeof s->pending[0], "%s", line);
    } else if (line) {
        send_line(s, line);
    }
    free(line);
    if (!end || !s->started)
        return;
    evhttp_connection_set_closecb(s->conn, NULL, NULL);
    evhttp_send_reply_end(s->req);
    stream_unlink(s);
    free(s);
}

void lmd_api_streams_free(lmd_api *api)
{
    while (api->streams) {
        struct lmd_api_stream *s = api->streams;
        api->streams = s->next;
        evhttp_connection_set_closecb(s->conn, NULL, NULL);
        free(s);
    }
}

/* ---- handlers ------------------------------------------------------------ */

static void put_service(lmd_api *api, struct evhttp_request *req, const struct lmd_api_caller *who, const char *name)
{
    const char *why = NULL;
    char err[320] = "";
    lmd_err e = {0};
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    double ttl = lmd_api_parse_ttl(uri ? evhttp_uri_get_query(uri) : NULL, &why);
    json_t *body = ttl >= 0 ? body_json(req, true, &why) : NULL;
    if (!body) {
        lmd_api_reply_error(req, 400, "Bad Request", why);
        return;
    }
    json_t *port = json_object_get(body, "port"), *info = json_object_get(body, "info");
    lmd_txt txt = {0};
    int status = 0;
    if (!json_is_integer(port) || json_integer_value(port) < 1 || json_integer_value(port) > 65535)
        status = lmd_errbuf(err, sizeof err, 400, "port must be an integer from 1 to 65535");
    else if (info && !json_is_string(info))
        status = lmd_errbuf(err, sizeof err, 400, "info must be a string");
    else if (!(status = txt_from_json(json_object_get(body, "txt"), &txt, NULL, err, sizeof err)) &&
             lmd_txt_get(&txt, "info"))
        status = lmd_errbuf(err, sizeof err, 400, "give info as \"info\", not inside \"txt\"");
    struct lmd_service_spec spec = {.port = (uint16_t)json_integer_value(port),
                                    .info = json_string_value(info), .txt = &txt, .ttl = ttl};
    struct lmd_api_stream *s = NULL;
    json_t *doc = NULL;
    if (!status && ttl == 0 && !(s = calloc(1, sizeof *s)))
        status = lmd_errbuf(err, sizeof err, 503, "out of memory");
    if (s) {
        s->api = api;
        s->req = req;
        s->conn = evhttp_request_get_connection(req);
    }
    if (!status)
        status = called(api->src.reg->add(api->src.ud, who, name, &spec, s, &doc, &e), &e, err, sizeof err);
    lmd_txt_free(&txt);
    json_decref(body);
    if (status) {
        free(s);
        lmd_api_reply_error(req, status, reason(status),
                            *err ? err : "cannot register the service");
        return;
    }
    if (!s) { /* ttl: a plain reply */
        lmd_api_reply_json(req, 201, "Created", doc);
        return;
    }
    json_decref(doc);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/x-ndjson");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-cache");
    evhttp_send_reply_start(req, 200, "OK");
    s->started = true;
    /* a registration is as quiet as an event stream: no idle timeout */
    evhttp_connection_set_timeout(s->conn, 365 * 86400);
    evhttp_connection_set_closecb(s->conn, stream_closed, s);
    lmd_conns_stream(api->conns, req);
    s->next = api->streams;
    api->streams = s;
    json_t *reg = json_pack("{s:s,s:o}", "state", "registering", "name", lmd_json_str(name));
    char *txtline = reg ? lmd_json_dump(reg, false) : NULL;
    json_decref(reg);
    send_line(s, txtline ? txtline : "{\"state\":\"registering\"}");
    free(txtline);
    for (unsigned i = 0; i < s->n_pending; i++)
        send_line(s, s->pending[i]);
    s->n_pending = 0;
}

static void patch_service(lmd_api *api, struct evhttp_request *req, const struct lmd_api_caller *who,
                          const char *name)
{
    const char *why = NULL;
    char err[320] = "";
    lmd_err e = {0};
    json_t *body = body_json(req, true, &why);
    if (!body) {
        lmd_api_reply_error(req, 400, "Bad Request", why);
        return;
    }
    lmd_txt set = {0}, remove = {0};
    json_t *info = json_object_get(body, "info"), *doc = NULL;
    int status = txt_from_json(json_object_get(body, "txt"), &set, &remove, err, sizeof err);
    if (!status && info && !json_is_string(info))
        status = lmd_errbuf(err, sizeof err, 400, "info must be a string");
    if (!status)
        status = called(api->src.reg->patch(api->src.ud, who, name, &set, &remove, json_string_value(info), &doc, &e),
                        &e, err, sizeof err);
    lmd_txt_free(&set);
    lmd_txt_free(&remove);
    json_decref(body);
    if (status)
        lmd_api_reply_error(req, status, reason(status), err);
    else
        lmd_api_reply_json(req, 200, "OK", doc);
}

/* 0 with *doc, or status with err: the common shape of the simple calls */
static void answer(struct evhttp_request *req, int status, json_t *doc, const char *err, int ok)
{
    if (status)
        lmd_api_reply_error(req, status, reason(status), err);
    else
        lmd_api_reply_json(req, ok, ok == 202 ? "Accepted" : "OK", doc);
}

void lmd_api_handle_registration(lmd_api *api, struct evhttp_request *req, const char *raw_path)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (!api->src.reg) {
        lmd_api_reply_error(req, 404, "Not Found", "this agent takes no registrations");
        return;
    }
    bool drain = !strcmp(raw_path, "/v1/self/drain");
    char *name = NULL;
    bool pass = false;
    const char *why = "";
    int status = drain ? 0 : lmd_api_parse_service_path(raw_path, &name, &pass, &why);
    if (status) {
        lmd_api_reply_error(req, status,
                            reason(status), why);
        return;
    }
    /* the method first (405 wherever it is asked), then who asks */
    bool allowed = drain ? (cmd == EVHTTP_REQ_POST || cmd == EVHTTP_REQ_DELETE)
                         : pass ? cmd == EVHTTP_REQ_PUT
                                : (cmd == EVHTTP_REQ_PUT || cmd == EVHTTP_REQ_PATCH || cmd == EVHTTP_REQ_DELETE);
    if (!allowed) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          drain ? "POST, DELETE" : pass ? "PUT" : "PUT, PATCH, DELETE");
        lmd_api_reply_error(req, 405, "Method Not Allowed",
                            drain  ? "use POST /v1/self/drain (DELETE cancels a drain)"
                            : pass ? "use PUT /v1/services/NAME/pass"
                                   : "use PUT, PATCH or DELETE on /v1/services/NAME");
        free(name);
        return;
    }
    uid_t uid;
    if (!lmd_conns_peer_uid(req, &uid)) {
        lmd_api_reply_error(req, 403, "Forbidden", "registrations are taken on the agent's Unix socket only");
        free(name);
        return;
    }
    struct lmd_api_caller who = {.uid = uid, .admin = lmd_conns_uid_admin(uid)};
    /* the whole host: for those who could stop the agent anyway (any
     * method on the drain route, a cancel included) */
    if (drain && !who.admin) {
        char msg[200];
        snprintf(msg, sizeof msg, "draining this host is for root and the agent's user (uid %u); uid %u may not",
                 (unsigned)geteuid(), (unsigned)uid);
        lmd_api_reply_error(req, 403, "Forbidden", msg);
        return;
    }
    char err[320] = "";
    lmd_err e = {0};
    json_t *doc = NULL;
    if (drain && cmd == EVHTTP_REQ_DELETE) {
        status = called(api->src.reg->undrain(api->src.ud, &doc, &e), &e, err, sizeof err);
        answer(req, status, doc, err, 200);
    } else if (drain) {
        json_t *body = body_json(req, false, &why);
        json_t *g = body ? json_object_get(body, "grace") : NULL;
        double grace = json_is_number(g) ? json_number_value(g) : -1;
        status = !body || (g && (!json_is_number(g) || grace < 0 || grace > 3600))
                     ? lmd_errbuf(err, sizeof err, 400, "%s", why && *why ? why : "grace must be a number of seconds from 0 to 3600")
                     : called(api->src.reg->drain(api->src.ud, grace, &doc, &e), &e, err, sizeof err);
        json_decref(body);
        answer(req, status, doc, err, 202);
    } else if (pass) {
        status = called(api->src.reg->pass(api->src.ud, &who, name, &doc, &e), &e, err, sizeof err);
        answer(req, status, doc, err, 200);
    } else if (cmd == EVHTTP_REQ_PUT) {
        put_service(api, req, &who, name);
    } else if (cmd == EVHTTP_REQ_PATCH) {
        patch_service(api, req, &who, name);
    } else {
        status = called(api->src.reg->remove(api->src.ud, &who, name, &doc, &e), &e, err, sizeof err);
        answer(req, status, doc, err, 200);
    }
    free(name);
}
