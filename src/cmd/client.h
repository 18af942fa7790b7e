/* A client of a running agent's API over its Unix socket (client.c), for
 * lmdisc peers, watch and discover. */
#ifndef LMD_CLIENT_H
#define LMD_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct lmd_client_opts {
    const char *socket;
    bool json;
};

struct lmd_buf {
    char *data;   /* NUL-terminated */
    size_t len;
};

/* $LMDISC_SOCKET, else the default socket path. */
const char *lmd_client_socket(void);
/* [--json] [--socket PATH] [--help]: 0, -1 after --help, or a usage exit code. */
int lmd_client_parse(const char *cmd, int argc, char **argv, struct lmd_client_opts *o, const char *help);
/* GET path into b; 0, or 1 after saying on stderr what went wrong and how to fix it. */
int lmd_client_get(const char *cmd, const char *socket, const char *path, struct lmd_buf *b);
/* method (POST, DELETE) with body (JSON; may be NULL) to path, the answer
 * into b; 0, or 1 as lmd_client_get. */
int lmd_client_send(const char *cmd, const char *socket, const char *method, const char *path, const char *body,
                    struct lmd_buf *b);
/* The agent's /v1/services for type, when an agent runs here and has
 * finished its first scan; NULL otherwise. */
json_t *lmd_client_services(const char *type);

/* A streamed GET: every chunk goes to sink (curl's write-callback shape). */
typedef size_t (*lmd_client_sink)(char *p, size_t size, size_t n, void *ud);
enum { LMD_CLIENT_ENDED, LMD_CLIENT_FAILED, LMD_CLIENT_BUSY };
/* LMD_CLIENT_ENDED: the agent answered and the stream ended; BUSY: it
 * answered 429 (too many streams; try again later); FAILED: it did not
 * answer (said on stderr unless quiet). */
int lmd_client_stream(const char *cmd, const char *socket, const char *path, lmd_client_sink sink, void *ud,
                      bool quiet);
size_t lmd_buf_append(char *p, size_t size, size_t n, void *ud);

/* Display helpers for node documents: "10.77.0.2:8000" (IPv4 first, IPv6
 * in brackets), and an age such as "12s", "3m". */
void lmd_client_endpoint(json_t *node, char *out, size_t len);
/* A node's info escaped for a terminal, every byte of it (a NUL too), or "-". */
const char *lmd_client_info(json_t *node, char *out, size_t len);
void lmd_client_age(double secs, char *out, size_t len);
/* A node's "sources" as "mdns,dns", or "-" when it has none. */
const char *lmd_client_sources(json_t *node, char *out, size_t len);

#endif
