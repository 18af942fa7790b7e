/* Shared inside src/dns/ only. */
#ifndef LMD_DNS_INTERNAL_H
#define LMD_DNS_INTERNAL_H

#include "dns/dns.h"

#include <ldns/ldns.h>

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
};

/* "hmac-sha256." : the algorithm name ldns wants */
void lmd_dns_key_ldns_alg(const lmd_dns_key *k, char *buf, size_t len);

/* A name as text without the final dot ("" for none; query.c). */
void lmd_dns_name_text(const ldns_rdf *d, char *buf, size_t len);

/* One record as plain data (query.c); -1 for a type lmd_dns_rr does not
 * describe or malformed rdata (o->txt may need lmd_txt_free then). */
int lmd_dns_rr_fill(const ldns_rr *rr, lmd_dns_rr *o);

/* What xfr_send.c reads of a transfer reader (xfr.c). */
void lmd_dns_xfr_reader_counts(const lmd_dns_xfr_reader *rd, size_t *messages, size_t *bytes);
const char *lmd_dns_xfr_reader_zone(const lmd_dns_xfr_reader *rd); /* "sd.lab" */
bool lmd_dns_xfr_reader_too_big(const lmd_dns_xfr_reader *rd);      /* refused for a LMD_DNS_XFR_MAX_* */

/* server (an IPv4 or IPv6 address in text) and port as a socket address
 * (send.c; xfr_send.c too). */
int lmd_dns_server_addr(const char *server, uint16_t port, struct sockaddr_storage *addr, socklen_t *alen,
                        lmd_err *err);

#endif
