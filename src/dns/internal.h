/* Shared inside src/dns/ only. */
#ifndef LMD_DNS_INTERNAL_H
#define LMD_DNS_INTERNAL_H

#include "dns/dns.h"

#include "dns/ldns.h"
#include <netinet/in.h>

struct lmd_dns_key {
    char name[256];      /* as written in the file, no final dot */
    char algorithm[32];  /* "hmac-sha256" */
    char *secret;        /* base64, as in the file */
};

struct lmd_dns_msg {
    uint8_t *wire;
    size_t len;
    uint16_t id;
    ldns_rdf *mac;       /* the request's TSIG MAC: the answer's signature covers it */
    ldns_pkt *pkt;       /* for lmd_dns_msg_text */
    bool tcp_only;       /* a zone transfer: TCP from the start */
    int xfr_type;        /* lmd_dns_xfr_build: LDNS_RR_TYPE_AXFR or _IXFR, else 0 */
    uint32_t xfr_serial; /* IXFR: ours */
    bool signed_read;    /* lmd_dns_query_sign: unsigned answers are dropped, not reported */
};

/* "hmac-sha256." : the algorithm name ldns wants */
void lmd_dns_key_ldns_alg(const lmd_dns_key *k, char *buf, size_t len);

/* A name as text without the final dot ("" for none; query.c). */
void lmd_dns_name_text(const ldns_rdf *d, char *buf, size_t len);

/* One record as plain data (query.c); LMD_ENOTFOUND for a type lmd_dns_rr
 * does not describe, LMD_EINVAL for malformed rdata (o->txt may need
 * lmd_txt_free then). */
int lmd_dns_rr_fill(const ldns_rr *rr, lmd_dns_rr *o);

/* The names of a reader's copy (zone.c; for zone_one.c): the part of a
 * name after its first label (NULL: none); TYPE.DOMAIN's DOMAIN; whether
 * a name is TYPE.DOMAIN (shard "") or TYPE.SHARD.DOMAIN; whether it is
 * b._dns-sd._udp.DOMAIN; the hash of the copy's index; a change to the
 * copy, noted in t (NULL: nothing noted; zone_one.c). */
const char *lmd_dns_zone_parent(const char *name);
const char *lmd_dns_zone_domain(const char *type_zone);
bool lmd_dns_zone_browse_name(const char *name, const char *type_zone, char shard[64]);
bool lmd_dns_zone_list_name(const char *name, const char *type_zone);
uint32_t lmd_dns_zone_hash(int type, const char *owner);
void lmd_dns_zone_touch(lmd_dns_touched *t, const char *type_zone, const lmd_dns_rr *r);
/* Of two SRV (with a target) or two TXT records at one owner, whether a
 * is the one a reader takes rather than b (an order on their content). */
bool lmd_dns_zone_better(const struct lmd_dns_zrec *a, const struct lmd_dns_zrec *b);

/* What xfr_send.c reads of a transfer reader (xfr.c). */
void lmd_dns_xfr_reader_counts(const lmd_dns_xfr_reader *rd, size_t *messages, size_t *bytes);
const char *lmd_dns_xfr_reader_zone(const lmd_dns_xfr_reader *rd); /* "sd.lab" */
bool lmd_dns_xfr_reader_too_big(const lmd_dns_xfr_reader *rd);      /* refused for a LMD_DNS_XFR_MAX_* */

/* server (an IPv4 or IPv6 address in text) and port as a socket address
 * (tcp.c; for send.c and xfr_send.c). */
int lmd_dns_server_addr(const char *server, uint16_t port, struct sockaddr_storage *addr, socklen_t *alen,
                        lmd_err *err);

/* ---- one DNS exchange over TCP (tcp.c) -------------------------------
 * Connect, write one request with its two-byte length (RFC 1035 4.2.2),
 * then read the answer's messages, each after its two-byte length, and
 * hand each to on_msg, until the owner frees the exchange, the server
 * stops, or the deadline: then on_fail says where and why.  Both callbacks
 * run from the loop; after on_fail the exchange does nothing more and the
 * owner frees it (from the callback or later).  One message is read into a
 * buffer of LMD_DNS_TCP_FRAME_MAX bytes, at most one message per wake-up;
 * how many messages and bytes an answer may have is the owner's to count. */
#define LMD_DNS_TCP_FRAME_MAX (2 + 65535)

typedef struct lmd_dns_tcp lmd_dns_tcp;

enum lmd_dns_tcp_step {
    LMD_DNS_TCP_SOCKET,  /* opening the socket */
    LMD_DNS_TCP_CONNECT, /* connecting */
    LMD_DNS_TCP_WRITE,   /* writing the request */
    LMD_DNS_TCP_READ,    /* reading the answer */
};

/* How an exchange ended. */
typedef struct lmd_dns_tcp_end {
    int rc;                     /* LMD_EIO: the socket failed (sys) or the server closed it (sys 0);
                                 * LMD_ETIMEDOUT: the deadline; LMD_ENOMEM: out of memory (libevent);
                                 * LMD_EINVAL: a request too big for one message */
    enum lmd_dns_tcp_step step; /* where */
    int sys;                    /* the errno of the call that failed, 0 for none */
    size_t messages;            /* complete messages handed over */
    size_t partial;             /* bytes read of the next one (its length included) */
} lmd_dns_tcp_end;

/* A complete message (valid during the call; len 0 is possible).  The
 * owner may free the exchange here; else the next message is read. */
typedef void (*lmd_dns_tcp_msg_cb)(const uint8_t *wire, size_t len, void *arg);
typedef void (*lmd_dns_tcp_fail_cb)(const lmd_dns_tcp_end *end, void *arg);

/* Connect to addr (any stream socket family) and exchange msg (copied) by
 * deadline (lmd_now_mono() seconds).  0 and *out, or a negative code with
 * *end saying what failed (no callback then). */
int lmd_dns_tcp_open(struct event_base *base, const struct sockaddr_storage *addr, socklen_t alen, const uint8_t *msg,
                     size_t len, double deadline, lmd_dns_tcp_msg_cb on_msg, lmd_dns_tcp_fail_cb on_fail, void *arg,
                     lmd_dns_tcp **out, lmd_dns_tcp_end *end);
/* The same on a stream socket already connected or connecting (taken
 * over, also on failure): what lmd_dns_tcp_open does after connect(). */
int lmd_dns_tcp_attach(struct event_base *base, int fd, const uint8_t *msg, size_t len, double deadline,
                       lmd_dns_tcp_msg_cb on_msg, lmd_dns_tcp_fail_cb on_fail, void *arg, lmd_dns_tcp **out,
                       lmd_dns_tcp_end *end);
void lmd_dns_tcp_free(lmd_dns_tcp *t);
/* msg after its two-byte length, malloc'd; LMD_EINVAL past 65,535 bytes. */
int lmd_dns_tcp_frame(const uint8_t *msg, size_t len, uint8_t **out, size_t *out_len);

/* What a request to one server holds however it goes (send.c: UDP, then
 * maybe TCP; xfr_send.c: TCP), tcp.c's. */
typedef struct lmd_dns_call {
    struct event_base *base;
    struct event *start;          /* the first step runs from the loop, never from inside the call */
    struct sockaddr_storage addr;
    socklen_t alen;
    char server[INET6_ADDRSTRLEN];
    lmd_dns_msg *msg;
    double timeout, deadline;     /* s; the whole exchange's end (lmd_now_mono()) */
    lmd_dns_tcp *tcp;             /* the TCP exchange, once there is one */
} lmd_dns_call;

/* Fill c for msg (taken over, also on failure: lmd_dns_call_free frees it;
 * c NULL, its request not allocated: freed here, LMD_ENOMEM) to server (an
 * IPv4 or IPv6 address) on port (0: 53) within timeout_s from now (<= 0:
 * dflt), and run first(arg) at the loop's next turn. */
int lmd_dns_call_init(lmd_dns_call *c, struct event_base *base, const char *server, uint16_t port, lmd_dns_msg *msg,
                      double timeout_s, double dflt, void (*first)(int fd, short what, void *arg), void *arg,
                      lmd_err *err);
/* Exchange c's message over TCP, by c's deadline (lmd_dns_tcp_open). */
int lmd_dns_call_tcp(lmd_dns_call *c, lmd_dns_tcp_msg_cb on_msg, lmd_dns_tcp_fail_cb on_fail, void *arg,
                     lmd_dns_tcp_end *end);
/* Free what c holds, its message too (not c). */
void lmd_dns_call_free(lmd_dns_call *c);

#endif
