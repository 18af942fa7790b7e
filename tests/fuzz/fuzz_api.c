/* The API's request parameters: where an event stream resumes (?since=N,
 * &epoch=E, an SSE client's Last-Event-ID "E:N") and the registration path
 * "/v1/services/NAME[/pass]".
 *
 * The input is read three ways:
 *   1. arbitrary bytes as the query string (also for ?routable=1), the
 *      Last-Event-ID and the
 *      agent's epoch: lmd_api_parse_resume must accept exactly what a model
 *      written here accepts (a since, from the query or after the last colon
 *      of a Last-Event-ID, is a decimal integer that fits in 64 bits), refuse
 *      the rest with a reason, and give the model's index and epoch verdict;
 *   2. a number and an epoch from the input, written the way a client
 *      writes them (query and header): they must come back exactly;
 *   3. arbitrary bytes as the path after /v1/services/: a name accepted is
 *      1 to 63 bytes with no NUL, and URL-encoding it again (as the Python
 *      client does) gives a path that parses back to the same name. */
#include "api/params.h"
#include "fuzz.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <inttypes.h>

/* A since value the model accepts: 1-20 decimal digits, <= UINT64_MAX. */
static bool model_index(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Whether the model accepts: a query libevent can parse, whose since (if
 * any) is an index; without one, a Last-Event-ID with a colon must end in
 * an index (one without a colon is no resume point: ignored). */
static bool model_accepts(const char *query, const char *leid)
{
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    bool ok = true;
    uint64_t v;
    if (query && evhttp_parse_query_str(query, &params) != 0) {
        ok = false;
    } else {
        const char *since = query ? evhttp_find_header(&params, "since") : NULL;
        const char *colon = leid ? strrchr(leid, ':') : NULL;
        if (since)
            ok = model_index(since, &v);
        else if (colon)
            ok = model_index(colon + 1, &v);
    }
    evhttp_clear_headers(&params);
    return ok;
}

static void check_resume(const char *query, const char *leid, const char *epoch)
{
    struct lmd_resume r;
    const char *why = NULL;
    int rc = lmd_api_parse_resume(query, leid, epoch, &r, &why);
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK((rc == 0) == model_accepts(query, leid));
    if (rc) {
        FUZZ_CHECK(why && why[0]);
        FUZZ_CHECK(!r.have_since);
        return;
    }
    /* accepted: a since given in the query must be the model's number;
     * without one, an SSE client's Last-Event-ID "EPOCH:N" (the last colon
     * splits it) gives N, of our epoch when EPOCH is ours exactly */
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    bool query_since = false;
    if (query) {
        FUZZ_CHECK(evhttp_parse_query_str(query, &params) == 0); /* a malformed one is refused */
        query_since = evhttp_find_header(&params, "since") != NULL;
    }
    if (!query_since) {
        const char *colon = leid ? strrchr(leid, ':') : NULL;
        uint64_t v;
        if (colon) {
            FUZZ_CHECK(model_index(colon + 1, &v));
            FUZZ_CHECK(r.have_since && r.since == v);
            size_t elen = (size_t)(colon - leid);
            FUZZ_CHECK(r.same_epoch == (strlen(epoch) == elen && memcmp(leid, epoch, elen) == 0));
        } else {
            FUZZ_CHECK(!r.have_since && r.same_epoch); /* a fresh stream */
        }
    }
    if (query) {
        const char *since = evhttp_find_header(&params, "since");
        uint64_t v;
        if (since) {
            FUZZ_CHECK(model_index(since, &v));
            FUZZ_CHECK(r.have_since && r.since == v);
            const char *e = evhttp_find_header(&params, "epoch");
            FUZZ_CHECK(r.same_epoch == (!e || strcmp(e, epoch) == 0));
        }
        /* ?ttl=S: 0 without one, else 1..86400 or refused with a reason */
        const char *why_ttl = NULL;
        double ttl = lmd_api_parse_ttl(query, &why_ttl);
        FUZZ_CHECK(ttl == -1 ? (why_ttl && why_ttl[0]) : evhttp_find_header(&params, "ttl") ? (ttl >= 1 && ttl <= 86400) : ttl == 0);
        /* ?routable=1: that parameter exactly, never a longer name's */
        const char *f = evhttp_find_header(&params, "routable");
        FUZZ_CHECK(lmd_api_query_flag(query, "routable") == (f && (!strcmp(f, "1") || !strcmp(f, "true"))));
    }
    evhttp_clear_headers(&params);
}

static void check_roundtrip(uint64_t v, const char *epoch)
{
    char *enc = evhttp_uriencode(epoch, -1, 0);
    if (!enc)
        return;
    size_t qlen = strlen(enc) + 64;
    char *q = malloc(qlen);
    if (!q)
        abort();
    snprintf(q, qlen, "since=%" PRIu64 "&epoch=%s", v, enc);
    struct lmd_resume r;
    const char *why = NULL;
    FUZZ_CHECK(lmd_api_parse_resume(q, NULL, epoch, &r, &why) == 0);
    FUZZ_CHECK(r.have_since && r.since == v && r.same_epoch);
    /* another epoch: the same since, flagged as not ours */
    snprintf(q, qlen, "since=%" PRIu64 "&epoch=x%s", v, enc);
    FUZZ_CHECK(lmd_api_parse_resume(q, NULL, epoch, &r, &why) == 0);
    FUZZ_CHECK(r.have_since && r.since == v && !r.same_epoch);
    free(q);
    free(enc);
    /* the SSE header, as the agent writes event ids */
    if (!strchr(epoch, ':')) {
        size_t hlen = strlen(epoch) + 32;
        char *h = malloc(hlen);
        if (!h)
            abort();
        snprintf(h, hlen, "%s:%" PRIu64, epoch, v);
        FUZZ_CHECK(lmd_api_parse_resume(NULL, h, epoch, &r, &why) == 0);
        FUZZ_CHECK(r.have_since && r.since == v && r.same_epoch);
        free(h);
    }
}

static void check_path(const char *tail)
{
    size_t plen = strlen(tail) + 32;
    char *path = malloc(plen);
    if (!path)
        abort();
    snprintf(path, plen, "/v1/services/%s", tail);
    char *name = NULL;
    bool pass = false;
    const char *why = NULL;
    int st = lmd_api_parse_service_path(path, &name, &pass, &why);
    free(path);
    if (st) {
        FUZZ_CHECK(st == 400 || st == 404 || st == 503);
        FUZZ_CHECK(name == NULL && why && why[0]);
        return;
    }
    FUZZ_CHECK(name != NULL);
    size_t n = strlen(name);
    FUZZ_CHECK(n >= 1 && n <= 63);
    FUZZ_CHECK(pass == (strchr(tail, '/') != NULL));
    /* encoded again the way a client does, it is the same name */
    char *enc = evhttp_uriencode(name, -1, 0);
    FUZZ_CHECK(enc != NULL);
    plen = strlen(enc) + 32;
    path = malloc(plen);
    if (!path)
        abort();
    snprintf(path, plen, "/v1/services/%s%s", enc, pass ? "/pass" : "");
    char *again = NULL;
    bool pass2 = false;
    FUZZ_CHECK(lmd_api_parse_service_path(path, &again, &pass2, &why) == 0);
    FUZZ_CHECK(strcmp(again, name) == 0 && pass2 == pass);
    free(again);
    free(path);
    free(enc);
    free(name);
}

FUZZ_INIT_SILENCED()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    size_t ql, ll, el, pl;
    const uint8_t *q = fuzz_bytes(&in, 512, &ql);
    const uint8_t *l = fuzz_bytes(&in, 128, &ll);
    const uint8_t *e = fuzz_bytes(&in, 64, &el);
    uint64_t v = (uint64_t)fuzz_u16(&in) << 48 | (uint64_t)fuzz_u16(&in) << 32 | (uint64_t)fuzz_u16(&in) << 16 |
                 fuzz_u16(&in);
    const uint8_t *p = fuzz_bytes(&in, 512, &pl);
    char *query = dup_bytes(q, ql), *leid = dup_bytes(l, ll), *epoch = dup_bytes(e, el), *tail = dup_bytes(p, pl);
    check_resume(ql ? query : NULL, ll ? leid : NULL, epoch);
    check_roundtrip(v, epoch);
    check_path(tail);
    free(query);
    free(leid);
    free(epoch);
    free(tail);
    return 0;
}
