/* Request parameters of the API, parsed without side effects (and fuzzed:
 * tests/fuzz). */
#ifndef LMD_API_PARAMS_H
#define LMD_API_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

/* Where an event stream resumes: ?since=N[&epoch=E], or an SSE client's
 * Last-Event-ID "E:N".  Without since, a stream starts with a snapshot; a
 * since of another epoch gets a snapshot with reset. */
struct lmd_resume {
    bool have_since;
    uint64_t since;
    bool same_epoch;       /* no epoch given, or ours */
};

/* 0, or LMD_EINVAL with *why saying what was wrong (for a 400). */
int lmd_api_parse_resume(const char *query, const char *last_event_id, const char *our_epoch,
                         struct lmd_resume *out, const char **why);

/* The path of a registration, "/v1/services/NAME[/pass]" (raw, as
 * received: NAME URL-encoded): *name the decoded NAME (malloc'd), 1 to 63
 * bytes and no NUL; *pass whether "/pass" follows.  0, or an HTTP status
 * (400, 404, 503 out of memory) with *why saying what was wrong. */
int lmd_api_parse_service_path(const char *raw, char **name, bool *pass, const char **why);

/* A registration's ?ttl=S: seconds from 1 to 86400, 0 without one, or -1
 * with *why saying what was wrong. */
double lmd_api_parse_ttl(const char *query, const char **why);

/* Whether the query string has NAME=1 or NAME=true (?routable=1). */
bool lmd_api_query_flag(const char *query, const char *name);

#endif
