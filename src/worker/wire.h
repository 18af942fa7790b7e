/* The framing between the core and its policy worker (a socketpair).
 *
 * A frame: an 8-byte header (payload length, 32 bits big-endian; version;
 * type; two bytes zero) and a payload of fields written in order: u8, u32,
 * f64 (IEEE, big-endian), byte strings (u32 length, 0xffffffff for NULL),
 * nodes and TXT records built from those.  Both ends are the same binary, so
 * the version only guards against a worker exec'd from a binary replaced
 * under a running agent (a package upgrade): it is refused, not misread. */
#ifndef LMD_WORKER_WIRE_H
#define LMD_WORKER_WIRE_H

#include "base/config.h"
#include "base/error.h"
#include "lmdisc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LMD_WIRE_VERSION 2 /* 2: wide_area.read in the settings */
#define LMD_WIRE_HEADER 8
#define LMD_WIRE_MAX (64u << 20) /* a payload; 500 peers with full TXT records are about 1 MiB */

enum lmd_wire_type {
    /* core -> worker */
    LMD_W_LOAD = 1,    /* str path, bytes source|NULL, f64 memory_mb */
    LMD_W_EVENT = 2,   /* u8 kind, node peer, u8 has_old [node old], u32 changes, str reason */
    LMD_W_ADOPT = 3,   /* str why ("reload", "restart"), u32 n, n x (node, u8 keep, bytes info) */
    LMD_W_ANSWER = 4,  /* the answer to a QUERY (see serve.c) */
    /* worker -> core */
    LMD_W_LOADED = 32, /* config, str warnings, str hooks, u32 n, n x (str section, str where) */
    LMD_W_FAILED = 33, /* str message */
    LMD_W_VERDICT = 34, /* verdict, stats */
    LMD_W_ADOPTED = 35, /* u32 n, n x (str name, verdict), stats */
    LMD_W_QUERY = 36,  /* u8 what [txt for set_txt] */
    LMD_W_BUSY = 37,   /* u8 on: a timer or spawn callback runs user code */
    LMD_W_STOPPED = 38, /* str message: the worker stopped itself (CPU limit), where it was */
};

enum lmd_wire_query { LMD_Q_PEERS_ALL = 1, LMD_Q_SELF, LMD_Q_SERVICES, LMD_Q_SET_TXT };

/* A payload being written; a failed allocation is remembered (bad) and the
 * frame refused when sent. */
struct lmd_wbuf {
    unsigned char *p;
    size_t n, cap;
    bool bad;
};
void lmd_w_begin(struct lmd_wbuf *b, int type); /* reset, header reserved */
void lmd_w_u8(struct lmd_wbuf *b, unsigned v);
void lmd_w_u32(struct lmd_wbuf *b, uint32_t v);
void lmd_w_f64(struct lmd_wbuf *b, double v);
void lmd_w_bytes(struct lmd_wbuf *b, const void *p, size_t len); /* p NULL: a NULL string */
void lmd_w_str(struct lmd_wbuf *b, const char *s);
void lmd_w_txt(struct lmd_wbuf *b, const lmd_txt *t);
void lmd_w_node(struct lmd_wbuf *b, const lmd_node_info *n);
void lmd_w_nodes(struct lmd_wbuf *b, const lmd_node_list *l);
void lmd_w_config(struct lmd_wbuf *b, const struct lmd_config *c);
/* The header filled in: 0, or LMD_ENOMEM / LMD_EINVAL (too big). */
int lmd_w_end(struct lmd_wbuf *b);
void lmd_wbuf_free(struct lmd_wbuf *b);

/* A payload being read; reading past its end or a bad field sets bad and
 * returns zeros / NULL, so a reader checks once at the end. */
struct lmd_rbuf {
    const unsigned char *p;
    size_t n, off;
    bool bad;
};
unsigned lmd_r_u8(struct lmd_rbuf *r);
uint32_t lmd_r_u32(struct lmd_rbuf *r);
double lmd_r_f64(struct lmd_rbuf *r);
/* Points into the payload; *isnull for a NULL string. */
const char *lmd_r_bytes(struct lmd_rbuf *r, size_t *len);
char *lmd_r_str(struct lmd_rbuf *r); /* malloc'd, NUL-terminated, NULL for NULL */
int lmd_r_txt(struct lmd_rbuf *r, lmd_txt *out);
int lmd_r_node(struct lmd_rbuf *r, lmd_node_info *out);
int lmd_r_nodes(struct lmd_rbuf *r, lmd_node_list *out);
int lmd_r_config(struct lmd_rbuf *r, struct lmd_config *c);

/* A header: 0 with type and payload length, or an error saying what. */
int lmd_wire_header(const unsigned char *h, int *type, uint32_t *len, lmd_err *err);

/* Blocking, for the worker: send a frame; receive one into *buf (grown as
 * needed).  0, or LMD_EIO on EOF or an error. */
int lmd_wire_send_fd(int fd, struct lmd_wbuf *b);
int lmd_wire_recv_fd(int fd, int *type, struct lmd_wbuf *buf, struct lmd_rbuf *payload, lmd_err *err);

#endif
