/* The API server's connections, counted and bounded (conns.c): a cap on
 * connections (listeners pause at it, so accept never runs the process out
 * of descriptors), a share of it per client (a uid on the Unix socket, an
 * address over TCP), counted from accept, so that one client's half-open
 * connections leave the others room, a deadline for each whole request (not
 * per byte: a client sending one header byte a second is dropped all the
 * same), and what the API needs to know of a connection: its peer's uid and
 * how much output waits for it. */
#ifndef LMD_CONNS_H
#define LMD_CONNS_H

#include "base/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
typedef struct lmd_conns lmd_conns;

struct lmd_conns_limits {
    unsigned max;            /* connections at once */
    /* of them from one uid (Unix socket; not admins) or one address (TCP);
     * more are closed at once */
    unsigned per_client;
    double request_deadline; /* seconds from connect (or the last reply) to a whole request */
};

int lmd_conns_new(struct event_base *base, struct evhttp *http, const struct lmd_conns_limits *lim,
                  lmd_conns **out, lmd_err *err);
void lmd_conns_free(lmd_conns *c);
/* A listener whose accepting pauses while the cap is reached. */
void lmd_conns_listener(lmd_conns *c, struct evhttp_bound_socket *bs);
/* A whole request arrived: its deadline stops (and restarts after the reply). */
void lmd_conns_request(lmd_conns *c, struct evhttp_request *req);
/* The request became a stream: no deadline any more. */
void lmd_conns_stream(lmd_conns *c, struct evhttp_request *req);
/* The peer's uid on a Unix socket (false on TCP). */
bool lmd_conns_peer_uid(struct evhttp_request *req, uid_t *uid);
/* Who a request's connection is from, as its connection share counts it
 * ("uid N", over the socket or TCP from this host; an address otherwise):
 * false when not known yet. */
bool lmd_conns_client(lmd_conns *c, struct evhttp_request *req, char *buf, size_t len);
/* Root or the user the agent runs as: they may change any registration and
 * drain the host, and have no share of the connections (they can stop the
 * agent anyway). */
bool lmd_conns_uid_admin(uid_t uid);
unsigned lmd_conns_count(const lmd_conns *c);
/* Connections closed at accept so far: their client held its share. */
double lmd_conns_refused(const lmd_conns *c);
/* Bytes of reply waiting to be read by the client. */
size_t lmd_conns_pending_output(struct evhttp_request *req);
/* Close the request's connection, as if the client had gone away. */
void lmd_conns_drop(struct evhttp_request *req);

#endif
