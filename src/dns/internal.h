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
};

/* "hmac-sha256." : the algorithm name ldns wants */
void lmd_dns_key_ldns_alg(const lmd_dns_key *k, char *buf, size_t len);

#endif
