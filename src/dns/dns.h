/* Wide-area DNS-SD over unicast DNS (the only home of libldns).
 *
 * What is here so far (issue 10's foundation):
 *
 *   - TSIG keys in BIND key-file syntax, as `tsig-keygen` writes them and
 *     `nsupdate -k` reads them:
 *         key "h1-key" { algorithm hmac-sha256; secret "base64..."; };
 *     One key per file; comments (#, //, C style) allowed.  The file must be
 *     a regular file that only its owner and group may read (0600, or
 *     root:lmdisc 0640 for the service user; lmd_secret_mode_check): the
 *     key lets its holder change the zone, so anything else is refused with
 *     an error that says so.
 *   - One RFC 2136 update per service, atomic and TSIG-signed (ldns signs):
 *     delete the owner's old RRsets (its PTR at the browse name, the SRV
 *     and TXT of its instance, the A and AAAA of its SRV target), then add
 *     the new ones (LMD_DNS_PUBLISH), or only delete them (LMD_DNS_WITHDRAW).
 *     Only per-type deletes are used, so the update fits grants that name
 *     types (BIND update-policy, Knot update-type; examples/wide-area/).
 *   - Sending it without blocking on a libevent loop: UDP (retried with
 *     backoff within the timeout), TCP when the message is over 512 bytes
 *     or the answer is truncated.  The answer's TSIG is verified against
 *     the request; the callback gets the rcode and one line of text.
 *   - Zone transfers read to their end over several messages (AXFR, and
 *     IXFR from a serial: up to date, the whole zone, or the differences),
 *     every message's TSIG verified, bounded in bytes, messages and time.
 *
 * Nothing here logs; errors follow base/error.h.  No ldns type appears in
 * this header: callers outside src/dns/ never include ldns. */
#ifndef LMD_DNS_H
#define LMD_DNS_H

#include "base/error.h"
#include "lmdisc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/* ---- TSIG keys ------------------------------------------------------- */

typedef struct lmd_dns_key lmd_dns_key;

/* Read a BIND key file.  Refuses: not a regular file, a mode that lets
 * others read it or its group write it (lmd_secret_mode_check),
 * syntax errors (with the line), no or several keys, an algorithm other
 * than hmac-sha256, hmac-sha512 or hmac-sha1 (what libldns signs with), a
 * secret that is not base64, a key name of other than letters, digits, '-',
 * '_' and '.'. */
int lmd_dns_key_load(const char *path, lmd_dns_key **out, lmd_err *err);
/* The same from text (no mode check; origin names the text in errors). */
int lmd_dns_key_parse(const char *text, const char *origin, lmd_dns_key **out, lmd_err *err);
void lmd_dns_key_free(lmd_dns_key *k);
const char *lmd_dns_key_name(const lmd_dns_key *k);      /* "h1-key" */
const char *lmd_dns_key_algorithm(const lmd_dns_key *k); /* "hmac-sha256" */

/* ---- updates --------------------------------------------------------- */

/* One service as DNS-SD records in a zone:
 *   TYPE.ZONE            PTR  INSTANCE.TYPE.ZONE
 *   INSTANCE.TYPE.ZONE   SRV  0 0 PORT HOST
 *   INSTANCE.TYPE.ZONE   TXT  the items (an empty TXT has one empty string)
 *   HOST                 A / AAAA  addrs
 * INSTANCE is one label of any bytes (dots and spaces included, at most 63);
 * TYPE ("_lmserv._tcp"), ZONE ("sd.example.org") and HOST
 * ("h1.sd.example.org") are names in text form (a final dot optional). */
typedef struct lmd_dns_service {
    const char *zone;
    const char *instance;
    const char *type;
    const char *host;
    uint16_t port;
    const lmd_txt *txt;        /* NULL: no items */
    const char *const *addrs;  /* IPv4 / IPv6 in text form */
    size_t n_addrs;
    uint32_t ttl;              /* of every record added */
    uint32_t lease;            /* > 0: an RFC 9664 update-lease EDNS option (LEASE = KEY-LEASE = lease s) */
    const char *shard;         /* NULL or "": the PTR, SRV and TXT in ZONE; else one label, a shard of a
                                * sharded domain: TYPE.SHARD.ZONE PTR INSTANCE.TYPE.SHARD.ZONE and its SRV
                                * and TXT (HOST and the update's zone section stay ZONE) */
} lmd_dns_service;

enum { LMD_DNS_PUBLISH = 1, LMD_DNS_WITHDRAW = 2 };

/* The liveness item "lmd-live=SEQ/LEASE", SEQ (8 hex digits) new at every
 * refresh, LEASE the lease in seconds: what an agent writes in the
 * liveness zone (lmd_dns_live_build).  Records that carry it in their own
 * TXT (by hand, older agents) expire on every browser as before; it is
 * never part of the peer's information (browsers strip it). */
#define LMD_DNS_LIVE_KEY "lmd-live"

/* A signed update message in wire format, ready to send. */
typedef struct lmd_dns_msg lmd_dns_msg;

/* Build and sign the update (mode: LMD_DNS_PUBLISH or LMD_DNS_WITHDRAW).
 * Both delete the instance's PTR, SRV and TXT and svc->host's A and AAAA;
 * a withdraw with host NULL leaves the addresses (another service of the
 * host stays).  The signing time is now; the fudge 300 s. */
int lmd_dns_update_build(const lmd_dns_service *svc, int mode, const lmd_dns_key *key, lmd_dns_msg **out,
                         lmd_err *err);
/* A compare-and-delete of a stale service (a crashed host's, whose records
 * stopped being refreshed): delete its PTR, SRV and TXT (and the A/AAAA of
 * svc->host when host is not NULL), on the RFC 2136 prerequisite that its
 * TXT RRset is still exactly svc->txt.  A refresh that got there first
 * changed the TXT (the agent's lmd-live item counts refreshes): the server
 * answers NXRRSET (8) and deletes nothing.  Port, addrs and ttl unused. */
int lmd_dns_sweep_build(const lmd_dns_service *svc, const lmd_dns_key *key, lmd_dns_msg **out, lmd_err *err);
/* Liveness out of the browse path (issue 20): a publisher's refresh
 * evidence is one TXT record "lmd-live=SEQ/LEASE" at
 * INSTANCE.HOST.LIVE_ZONE, LIVE_ZONE being _live.DOMAIN (LMD_DNS_LIVE_LABEL),
 * a zone of its own on the same server, so that a refresh changes neither
 * the browse zone's records nor its serial: browsers transfer only real
 * changes; only sweepers read the liveness zone.  The update replaces the
 * TXT RRset there with value (ttl), or deletes it (value NULL).  stale not
 * NULL: a sweeper's compare-and-delete (value NULL), on the prerequisite
 * that the record is still "lmd-live=STALE".  host: the SRV target's first
 * label ("h1"). */
#define LMD_DNS_LIVE_LABEL "_live"
int lmd_dns_live_build(const char *live_zone, const char *instance, const char *host, const char *value,
                       const char *stale, uint32_t ttl, const lmd_dns_key *key, lmd_dns_msg **out, lmd_err *err);
void lmd_dns_msg_free(lmd_dns_msg *m);
const uint8_t *lmd_dns_msg_wire(const lmd_dns_msg *m, size_t *len);
/* The message as text (dig-like; for logs and tests); free() it. */
char *lmd_dns_msg_text(const lmd_dns_msg *m);

/* ---- sending --------------------------------------------------------- */

typedef struct lmd_dns_result {
    int rc;           /* 0: the server applied it (NOERROR, answer signed by the key); else LMD_E* */
    int rcode;        /* the answer's rcode (0 NOERROR, 5 REFUSED, 9 NOTAUTH...), -1 without an answer */
    int tsig_error;   /* the answer's TSIG error (16 BADSIG, 17 BADKEY, 18 BADTIME), 0 if none */
    bool tcp;         /* the answer came over TCP */
    bool verified;    /* with a key: the answer's TSIG verified (whatever its rcode); plain queries: true */
    const char *text; /* one line: what happened ("REFUSED by 10.0.0.53", "timed out after 5 s"...) */
    const uint8_t *answer; /* the answer's wire format (valid during the callback), NULL without one */
    size_t answer_len;
    unsigned dropped; /* a signed read (lmd_dns_query_sign): answers dropped for want of a valid signature */
} lmd_dns_result;

typedef void (*lmd_dns_done_cb)(const lmd_dns_result *res, void *arg);

typedef struct lmd_dns_req lmd_dns_req;

/* Send msg (taken over, also on failure) to server (an IPv4 or IPv6
 * address; port 0 = 53) on base; key NULL for a plain query (the answer is
 * not verified); cb runs once, from the loop, never from
 * inside this call, after which the request is freed.  timeout_s bounds the
 * whole exchange.  The request may be cancelled before cb (cb is not called). */
int lmd_dns_send(struct event_base *base, const char *server, uint16_t port, lmd_dns_msg *msg,
                 const lmd_dns_key *key, double timeout_s, lmd_dns_done_cb cb, void *arg, lmd_dns_req **out,
                 lmd_err *err);
void lmd_dns_req_cancel(lmd_dns_req *r);

/* ---- queries (browsing a domain) ------------------------------------ */

enum { LMD_DNS_T_A = 1, LMD_DNS_T_SOA = 6, LMD_DNS_T_PTR = 12, LMD_DNS_T_TXT = 16, LMD_DNS_T_AAAA = 28,
       LMD_DNS_T_SRV = 33 };

/* A plain query (no TSIG, no recursion) for LABEL.NAME (label: one label of
 * raw bytes, an instance name; NULL: NAME alone).  Sent with lmd_dns_send
 * and key NULL: rc 0 for NOERROR and NXDOMAIN, and res->answer holds it. */
int lmd_dns_query_build(const char *label, const char *name, int type, lmd_dns_msg **out, lmd_err *err);
/* Sign a query built by lmd_dns_query_build with key (TSIG, tsig.c): sent
 * with lmd_dns_send and the same key, only an answer that key signed is
 * believed, whatever its rcode.  An unsigned or badly signed one (a forged
 * REFUSED, a stale SOA from whoever answers in the server's place) is
 * dropped and counted (res->dropped), and the request waits on for the
 * server's own answer until its timeout: it then fails (rc LMD_ETIMEDOUT,
 * rcode -1, verified false), never with the dropped answer's rcode. */
int lmd_dns_query_sign(lmd_dns_msg *m, const lmd_dns_key *key, lmd_err *err);


/* One record of an answer, as plain data (what the type has). */
typedef struct lmd_dns_rr {
    int type;
    uint32_t ttl;
    char owner[1025];    /* as text, no final dot */
    char owner_label[64];/* the owner's first label, raw */
    char label[64];      /* PTR: the target's first label, raw (the instance name) */
    char target[1025];   /* PTR, SRV: the target name as text, no final dot */
    uint16_t port;       /* SRV */
    lmd_txt txt;         /* TXT: the key[=value] items (others skipped) */
    char addr[64];       /* A, AAAA */
    uint32_t serial;     /* SOA */
} lmd_dns_rr;

/* The answer section's records of type (class IN); free with lmd_dns_rrs_free. */
/* (type 0: of every type this struct describes) */
int lmd_dns_answer_parse(const uint8_t *wire, size_t len, int type, lmd_dns_rr **out, size_t *n, lmd_err *err);
void lmd_dns_rrs_free(lmd_dns_rr *rrs, size_t n);

/* ---- zone transfers over several messages (AXFR, IXFR) -------------- */

/* A transfer request for zone over TCP, TSIG-signed with key (NULL: not
 * signed, and the answer not verified).  ixfr false: AXFR (RFC 5936) --
 * serial unused.  ixfr true: IXFR (RFC 1995) from serial, the zone's serial
 * the caller holds (it goes in the authority section as our SOA).  Send it
 * with lmd_dns_xfr_send (lmd_dns_send reads only one message). */
int lmd_dns_xfr_build(const char *zone, const lmd_dns_key *key, uint32_t serial, bool ixfr, lmd_dns_msg **out,
                      lmd_err *err);

enum { LMD_DNS_XFR_UPTODATE = 1, /* IXFR: the server has our serial: nothing changed */
       LMD_DNS_XFR_FULL = 2,     /* the whole zone (AXFR, or an IXFR the server answered AXFR-style) */
       LMD_DNS_XFR_DIFF = 3 };   /* IXFR: the changes since our serial, in order */

/* One step of an IXFR answer: from serial `from` to serial `to`, the
 * records deleted, then the records added (SOAs not included). */
typedef struct lmd_dns_xfr_diff {
    uint32_t from, to;
    lmd_dns_rr *deleted, *added;
    size_t n_deleted, n_added;
} lmd_dns_xfr_diff;

/* A transfer's answer as plain data.  Only the records lmd_dns_rr
 * describes (PTR SRV TXT A AAAA) are kept, class IN; the others (NS,
 * unknown types...) are counted in `records` and skipped.  No SOA is in
 * rrs or the diffs: the zone's serial is `serial`. */
typedef struct lmd_dns_xfr {
    int kind;                 /* LMD_DNS_XFR_* */
    uint32_t serial;          /* the zone's serial now (UPTODATE: ours) */
    lmd_dns_rr *rrs;          /* FULL: the zone, in the server's order */
    size_t n_rrs;
    lmd_dns_xfr_diff *diffs;  /* DIFF: the steps, oldest first */
    size_t n_diffs;
    size_t messages;          /* how it came: DNS messages, */
    size_t bytes;             /* their bytes (no TCP length prefixes), */
    size_t records;           /* answer records, SOAs included */
} lmd_dns_xfr;

void lmd_dns_xfr_free(lmd_dns_xfr *x);

/* Bounds on one transfer (the reader refuses past them, the send ends). */
#define LMD_DNS_XFR_MAX_BYTES (64u << 20)  /* 64 MiB of messages */
#define LMD_DNS_XFR_MAX_MESSAGES 65536u
#define LMD_DNS_XFR_MAX_RRS 100000u        /* kept records: 2,280 bytes each, so up to ~230 MB */

/* Reading an answer message by message (what lmd_dns_xfr_send does with
 * what it receives; also for tests).  req is the request as built (its id,
 * zone, type, serial and TSIG MAC: the reader copies them); key as given
 * to lmd_dns_xfr_build, NULL: no TSIG check.  With a key, every message
 * must be signed by it (RFC 8945 5.3.1: the first one's MAC covers the
 * request's, each next one's the previous one's; BIND and Knot sign every
 * message, so unsigned intermediate messages are refused).  Refused, with
 * the message's number and what was wrong: a message that does not parse,
 * that is not an answer to req (id, QR, opcode, question), TC set, an rcode
 * other than NOERROR (with the TSIG error if any), a missing or wrong
 * signature, a record not of class IN or not in the zone, a first record
 * that is not the zone's SOA, a closing SOA with another serial, an IXFR
 * step that does not continue the previous one (or the first not from our
 * serial), records after the closing SOA, and the bounds above. */
typedef struct lmd_dns_xfr_reader lmd_dns_xfr_reader;

int lmd_dns_xfr_reader_new(const lmd_dns_msg *req, const lmd_dns_key *key, lmd_dns_xfr_reader **out, lmd_err *err);
/* Refused for a message without a valid signature by the key: whatever
 * its rcode said is not believed (*rcode stays 0). */
bool lmd_dns_xfr_reader_forged(const lmd_dns_xfr_reader *rd);
/* Lower the bounds (0: keep the default). */
void lmd_dns_xfr_reader_limits(lmd_dns_xfr_reader *rd, size_t max_bytes, size_t max_messages, size_t max_rrs);
/* One message: 1 the answer is complete (lmd_dns_xfr_reader_take), 0 more
 * messages are needed, < 0 refused (err says why; the reader stays
 * refusing).  rcode / tsig_error (may be NULL): of the message that ended
 * it when that was an rcode other than NOERROR, else 0. */
int lmd_dns_xfr_reader_add(lmd_dns_xfr_reader *rd, const uint8_t *wire, size_t len, int *rcode, int *tsig_error,
                           lmd_err *err);
/* The complete answer, once; the caller frees it.  NULL before. */
lmd_dns_xfr *lmd_dns_xfr_reader_take(lmd_dns_xfr_reader *rd);
void lmd_dns_xfr_reader_free(lmd_dns_xfr_reader *rd);

typedef struct lmd_dns_xfr_result {
    int rc;           /* 0: complete and verified; else LMD_E* */
    int rcode;        /* the rcode that refused it, 0 if none, -1 without an answer */
    int tsig_error;   /* its TSIG error (16 BADSIG...), 0 if none */
    const char *text; /* one line, naming the server: "AXFR of sd.lab from 10.0.0.53: 3 messages, ..." */
    lmd_dns_xfr *xfr; /* rc 0: the answer, now the callback's (lmd_dns_xfr_free); else NULL */
    size_t messages;  /* read so far (also on failure) */
    size_t bytes;
    bool too_big;     /* refused past LMD_DNS_XFR_MAX_*: the zone is too big to transfer */
    bool forged;      /* ended by a message not signed by the key (rcode and tsig_error 0 then: not believed) */
} lmd_dns_xfr_result;

typedef void (*lmd_dns_xfr_cb)(const lmd_dns_xfr_result *res, void *arg);

/* Send a transfer request built by lmd_dns_xfr_build (msg taken over, also
 * on failure) to server (IPv4 or IPv6 address; port 0 = 53) over TCP on
 * base, without blocking, and read every message of the answer with a
 * reader (above) until the closing SOA.  timeout_s bounds the whole
 * transfer (connect included; default 30 s); the bytes and messages too
 * (LMD_DNS_XFR_MAX_*).  A server that closes or goes silent mid-transfer,
 * sends garbage or anything the reader refuses ends it: rc < 0 and a text
 * naming the server, the message and what was wrong.  cb runs once, from
 * the loop, never from inside this call; the request is freed after it.
 * lmd_dns_req_cancel does not apply: cancel with lmd_dns_xfr_cancel
 * (before cb; cb is then not called). */
typedef struct lmd_dns_xfr_req lmd_dns_xfr_req;

int lmd_dns_xfr_send(struct event_base *base, const char *server, uint16_t port, lmd_dns_msg *msg,
                     const lmd_dns_key *key, double timeout_s, lmd_dns_xfr_cb cb, void *arg, lmd_dns_xfr_req **out,
                     lmd_err *err);
void lmd_dns_xfr_cancel(lmd_dns_xfr_req *r);

/* "NOERROR", "REFUSED", ... for an rcode; "BADKEY"... for a TSIG error. */
const char *lmd_dns_rcode_name(int rcode);

/* ---- one-shot browsing of a domain (walk.c) -------------------------- */

/* One service instance read from DNS: INSTANCE.TYPE.DOMAIN's SRV and TXT,
 * and the A/AAAA of its SRV target. */
#define LMD_DNS_WALK_ADDRS 8
/* Services of one type one reader follows in a domain (a walk, the
 * agent's copy of the zone). */
#define LMD_DNS_MAX_INSTANCES 16384
typedef struct lmd_dns_found {
    char name[64];               /* the instance label, raw */
    char shard[64];              /* where it was found: "" DOMAIN itself, else the shard SHARD.DOMAIN */
    char host[1025];             /* the SRV target as text, no final dot ("" without SRV) */
    uint16_t port;
    lmd_txt txt;
    bool srv, txt_ok;            /* the SRV / TXT record was there */
    size_t n_addrs;
    char addrs[LMD_DNS_WALK_ADDRS][64]; /* IPv4 first, then IPv6 */
} lmd_dns_found;

typedef struct lmd_dns_walk_result {
    int rc;                      /* 0: every query answered; else the first failure (LMD_E*) */
    const char *text;            /* rc != 0: one line on what failed */
    const lmd_dns_found *found;  /* the instances with an SRV record, in PTR order (valid in the callback) */
    size_t n;
    size_t queries;              /* what the walk sent and read: messages, bytes */
    double bytes_out, bytes_in;
    size_t dropped;              /* answers dropped unsigned or badly signed (a walk with a key) */
    size_t skipped;              /* instances skipped: an SRV at "." or outside the domain, an address
                                  * query the server would not answer; the rest of the walk stands */
} lmd_dns_walk_result;

typedef void (*lmd_dns_walk_cb)(const lmd_dns_walk_result *res, void *arg);
/* A list of lmd_dns_found that the caller owns (each one's txt too). */
void lmd_dns_found_free(lmd_dns_found *f, size_t n);
typedef struct lmd_dns_walk lmd_dns_walk;

/* Read the services of type (e.g. "_lmserv._tcp") in domain from server,
 * once, with plain queries sent at once (RFC 6763: the browse domains
 * b._dns-sd._udp.DOMAIN PTR for the domain's shards, then PTR of
 * TYPE.DOMAIN and of TYPE.SHARD.DOMAIN of each shard, then SRV and TXT of
 * each instance, then A and AAAA of each SRV target; an SRV target must be
 * in domain).
 * key: NULL for unsigned queries, else each query is TSIG-signed and each
 * answer must be signed by it.  cb runs once from the loop as soon as the
 * last answer came (or the first failure, or timeout_s for the whole walk),
 * then the walk is freed; lmd_dns_walk_cancel before that: no callback. */
int lmd_dns_walk_start(struct event_base *base, const char *server, const char *domain, const char *type,
                       const lmd_dns_key *key, double timeout_s, lmd_dns_walk_cb cb, void *arg, lmd_dns_walk **out,
                       lmd_err *err);
void lmd_dns_walk_cancel(lmd_dns_walk *w);

/* ---- a reader's copy of a domain, for IXFR (zone.c) ------------------ */

/* Only what reading services needs is kept, compactly (lmd_dns_rr is
 * 2 KiB a record): the SRV and TXT records of the instances at TYPE.DOMAIN
 * and TYPE.SHARD.DOMAIN (any one-label SHARD), the browse domains
 * (b._dns-sd._udp.DOMAIN PTR: which shards are listed), and every A and
 * AAAA (SRV targets may be anywhere).  The services are the SRV owners:
 * the PTR RRsets are every host's to write (zone.c).  TYPE is the first
 * two labels of type_zone ("_lmserv._tcp"), DOMAIN the rest. */
struct lmd_dns_zrec {
    uint16_t type, port;
    char *owner, *target;
    char owner_label[64], label[64];
    lmd_txt txt;
    char addr[46];
    uint32_t next;       /* the next record of its hash chain, + 1 (0: none) */
};

typedef struct lmd_dns_zone {
    struct lmd_dns_zrec *r;
    size_t n, cap;
    uint32_t *heads;             /* hash chains by type and owner (a diff's deletes find their record at once) */
    size_t n_heads;
    uint32_t serial;             /* of the last transfer taken */
    bool have;                   /* a copy is held: the next transfer may be an IXFR from serial */
    bool live;                   /* a liveness zone's copy (set before the first take): only the TXT records
                                  * INSTANCE.HOST.TYPE_ZONE are kept, TYPE_ZONE being the liveness zone */
    char type_zone[1024];        /* as given to the last take */
} lmd_dns_zone;

void lmd_dns_zone_clear(lmd_dns_zone *zn);
/* Apply a transfer (whole zone, diff, up to date) for the services of
 * TYPE_ZONE (TYPE.DOMAIN) to the copy: 0, or a negative code and the copy
 * is gone (out of memory, a diff that deletes what the copy does not hold,
 * a diff or "up to date" with no copy): read it whole next time. */
int lmd_dns_zone_take(lmd_dns_zone *zn, const char *type_zone, const lmd_dns_xfr *x);
/* The services in the copy, of DOMAIN and of each shard it lists, sorted
 * by name, each once (of one name in several shards: DOMAIN's, else the
 * first shard's by name), with the lowest
 * IPv4 and IPv6 address of its SRV target (of several, the same one every
 * time); free with lmd_dns_found_free. */
int lmd_dns_zone_services(const lmd_dns_zone *zn, lmd_dns_found **out, size_t *n);

/* What a transfer changed in the copy (lmd_dns_zone_take_changes), so that
 * a reader reads again only the services it touched (zone_one.c): the
 * instances whose SRV or TXT a diff deleted or added, the hosts whose A or
 * AAAA it did; or `all`: a whole zone, a change to the shards listed, or
 * more names than LMD_DNS_TOUCHED_MAX (reading every service is as cheap
 * then).  Each name once, each host once (case-insensitive). */
#define LMD_DNS_TOUCHED_MAX 4096
typedef struct lmd_dns_touched {
    bool all;
    struct lmd_dns_touch {
        char name[64];            /* the instance label, raw (lmd_dns_found.name) */
        char text[256];           /* the same label as the copy's owner names write it */
    } *names;
    size_t n_names;
    char (*hosts)[1025];          /* A/AAAA owners, as text */
    size_t n_hosts, cap_names, cap_hosts;
} lmd_dns_touched;
void lmd_dns_touched_clear(lmd_dns_touched *t);
/* lmd_dns_zone_take, and what it changed added to *t (NULL: not wanted;
 * on failure t says `all`). */
int lmd_dns_zone_take_changes(lmd_dns_zone *zn, const char *type_zone, const lmd_dns_xfr *x, lmd_dns_touched *t);
/* One service of the copy, as lmd_dns_zone_services would list it: the
 * SRV owner NAME (raw; TEXT its label as written in owner names) at
 * TYPE.DOMAIN or in a listed shard (of several: DOMAIN's, else the first
 * shard's by name).  1 and *out (its txt to lmd_txt_free), 0 when there is
 * no such service.  A few hash lookups: no walk over the copy. */
int lmd_dns_zone_service(const lmd_dns_zone *zn, const char *name, const char *text, lmd_dns_found *out);
/* The lowest IPv4 and IPv6 address of host in the copy ("" for none), as
 * lmd_dns_zone_services picks them. */
void lmd_dns_zone_addrs(const lmd_dns_zone *zn, const char *host, char a4[46], char a6[46]);

/* ---- sharded domains (shard.c, issue 20) ----------------------------- */

/* One PTR RRset holds one record per service of a type, and an RRset must
 * fit one DNS message (64 KiB: about 2,000 to 2,800 services; past it
 * BIND and Knot fail the transfer and the query).  A domain with more
 * lists shards, sub-domains one label below it in the same zone, among
 * its browse domains (RFC 6763 section 11):
 *     b._dns-sd._udp.DOMAIN  PTR  s0.DOMAIN
 *     b._dns-sd._udp.DOMAIN  PTR  s1.DOMAIN ...
 * and each publisher writes its PTR, SRV and TXT in one of them,
 * TYPE.SN.DOMAIN (lmd_dns_shard_pick), its host's A/AAAA at HOST.DOMAIN
 * as before.  Readers read DOMAIN itself and every listed shard (a
 * transfer of the zone holds them all; a walk asks each).  A domain
 * that lists none (or only itself) is read and written as before. */
#define LMD_DNS_BROWSE_LIST "b._dns-sd._udp"
#define LMD_DNS_MAX_SHARDS 256
/* Whether name (text, no final dot) is a shard of domain: one plain label
 * (letters, digits, '-', '_') below it; the label into label. */
bool lmd_dns_shard_of(const char *name, const char *domain, char *label, size_t len);
/* The shard of host (its first label, case-insensitive) among n labels:
 * the highest of fmix64(FNV-1a-64("host/shard")) (rendezvous hashing): the same on
 * every agent, whatever the order listed, and adding a shard moves only the
 * hosts it takes.  -1 when n is 0. */
long lmd_dns_shard_pick(const char *host, const char (*labels)[64], size_t n);
/* TYPE.DOMAIN (shard NULL or "") or TYPE.SHARD.DOMAIN into out; false if
 * it does not fit.  domain may end with a dot. */
bool lmd_dns_type_zone(const char *type, const char *shard, const char *domain, char *out, size_t len);

/* ---- the domain's primary server (server.c) ------------------------- */

/* Where the updates of domain go when no server is given: the MNAME of the
 * SOA of the zone that holds domain, asked of the system's resolvers
 * (nameserver lines of resolv_conf; NULL: /etc/resolv.conf) with recursive
 * queries (the SOA in the answer, or in the authority section of a
 * negative answer; else the parent name is asked, up to the root), then
 * MNAME's A (else AAAA).  With a key (kept alive by the caller until cb),
 * the address found must then prove itself: a SOA query for domain sent to
 * it, signed by key, must come back NOERROR and signed by key (a resolver
 * that names a rogue server, or a rogue that answers as the resolver,
 * cannot sign); else the next resolver is asked from the start, and when
 * none names a server that proves itself, cb gets LMD_EPERM.  Without a
 * key the first answer is taken.  cb gets rc 0 and the address, or an
 * error and one line; it runs once from the loop, then the search is freed
 * (cancel before that: no callback). */
typedef void (*lmd_dns_server_cb)(int rc, const char *addr, const char *mname, const char *text, void *arg);
typedef struct lmd_dns_find lmd_dns_find;
int lmd_dns_find_server(struct event_base *base, const char *domain, const char *resolv_conf,
                        const lmd_dns_key *key, double timeout_s, lmd_dns_server_cb cb, void *arg,
                        lmd_dns_find **out, lmd_err *err);
void lmd_dns_find_cancel(lmd_dns_find *f);

/* ---- naming what a host publishes (host.c) -------------------------- */

/* This host's routable addresses (up, not loopback, not link-local), IPv4
 * first, as text; returns how many (at most max). */
size_t lmd_dns_routable_addrs(char out[][64], size_t max);
/* This machine's short host name (lmd_short_hostname) when it is a DNS
 * label (letters, digits, '-'; at most 63): 0, else LMD_ENOTFOUND (the
 * machine has no name: its fallback is no name to publish) or LMD_EINVAL. */
int lmd_dns_short_host(char *buf, size_t len);
/* Whether name (text, as lmd_dns_rr has it) is INSTANCE.TYPE_ZONE with
 * INSTANCE one label without NUL: not a name below another instance. */
bool lmd_dns_instance_name(const char *name, const char *type_zone);
/* A label as DNS writes it (dig, zone files): '.' and '\\' escaped, bytes
 * outside printable ASCII and the space as \DDD. */
void lmd_dns_label_text(const char *label, char *out, size_t len);
/* What an update's failure means for the names it changes, in one line
 * (no trailing period): why the server said no and what fixes it. */
void lmd_dns_update_explain(const lmd_dns_result *res, const lmd_dns_service *svc, const char *key_name,
                            const char *key_path, char *out, size_t len);

/* ---- NOTIFY received (notify.c) --------------------------------------
 * A datagram sent to the agent's wide_area.notify port, read: a NOTIFY
 * (RFC 1996) for one zone, signed by key (name, MAC over these bytes,
 * signed within its fudge of now), is LMD_DNS_NOTIFY_OK with its zone and
 * the new serial when it carries the SOA, and *out the signed answer to
 * send back (free()).  Anything else is never answered (a forgery gets
 * nothing to reflect): UNSIGNED, BADSIG (another key or secret, bytes
 * changed, out of time), INVALID (not a NOTIFY, malformed). */
enum lmd_dns_notify_result {
    LMD_DNS_NOTIFY_OK,
    LMD_DNS_NOTIFY_UNSIGNED,
    LMD_DNS_NOTIFY_BADSIG,
    LMD_DNS_NOTIFY_INVALID,
};
typedef struct lmd_dns_notify_info {
    char zone[256]; /* without the final dot */
    uint32_t serial;
    bool have_serial;
} lmd_dns_notify_info;
enum lmd_dns_notify_result lmd_dns_notify_read(const uint8_t *wire, size_t len, const lmd_dns_key *key,
                                               lmd_dns_notify_info *info, uint8_t **out, size_t *out_len);

/* ---- NOTIFY sent (notify.c) ------------------------------------------
 * A NOTIFY (RFC 1996) for zone, TSIG-signed with key, no SOA in it (the
 * secondary asks its primary for the serial): sent with lmd_dns_send and
 * the same key, only an answer signed by key is believed (as a signed
 * read: unsigned or badly signed answers are dropped and counted); rc 0
 * when the secondary took it (NOERROR), else its rcode (REFUSED: its
 * allow-notify / acl does not name the key; NOTAUTH: zone is not its). */
int lmd_dns_notify_build(const char *zone, const lmd_dns_key *key, lmd_dns_msg **out, lmd_err *err);

#endif
