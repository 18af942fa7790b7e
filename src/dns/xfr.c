/* Zone transfers (see dns.h): the AXFR (RFC 5936) and IXFR (RFC 1995)
 * requests, and the reader that takes their answer one message at a time,
 * verifies every message's TSIG as RFC 8945 5.3.1 says and turns it into
 * plain data.  ldns builds, parses and checks the signatures.  Sending and
 * reading over TCP: xfr_send.c. */
#include "dns/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the request ------------------------------------------------------ */

int lmd_dns_xfr_build(const char *zone, const lmd_dns_key *key, uint32_t serial, bool ixfr, lmd_dns_msg **out,
                      lmd_err *err)
{
    *out = NULL;
    ldns_rdf *z = zone ? ldns_dname_new_frm_str(zone) : NULL;
    if (!z)
        return lmd_err_set(err, LMD_EINVAL, "'%s' is not a valid zone name", zone ? zone : "");
    ldns_rr *soa = NULL;
    if (ixfr) { /* RFC 1995 3: our version, as a SOA in the authority section (only its serial counts) */
        soa = ldns_rr_new_frm_type(LDNS_RR_TYPE_SOA);
        ldns_rdf *root1 = ldns_dname_new_frm_str("."), *root2 = ldns_dname_new_frm_str(".");
        ldns_rdf *owner = ldns_rdf_clone(z);
        bool ok = soa && root1 && root2 && owner;
        if (ok) {
            ldns_rr_set_owner(soa, owner);
            ldns_rr_set_class(soa, LDNS_RR_CLASS_IN);
            ldns_rr_set_ttl(soa, 0);
            ldns_rr_set_rdf(soa, root1, 0);
            ldns_rr_set_rdf(soa, root2, 1);
            ldns_rr_set_rdf(soa, ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, serial), 2);
            for (size_t i = 3; i < 7; i++)
                ldns_rr_set_rdf(soa, ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, 0), i);
            for (size_t i = 0; i < 7; i++)
                ok = ok && ldns_rr_rdf(soa, i) != NULL;
        } else {
            ldns_rdf_deep_free(root1);
            ldns_rdf_deep_free(root2);
            ldns_rdf_deep_free(owner);
        }
        if (!ok) {
            ldns_rr_free(soa);
            ldns_rdf_deep_free(z);
            return lmd_err_set(err, LMD_ENOMEM, "out of memory");
        }
    }
    ldns_pkt *pkt = ldns_pkt_query_new(z, ixfr ? LDNS_RR_TYPE_IXFR : LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN, 0);
    lmd_dns_msg *m = calloc(1, sizeof *m);
    ldns_status st = LDNS_STATUS_MEM_ERR;
    if (pkt && m) {
        ldns_pkt_set_random_id(pkt);
        st = LDNS_STATUS_OK;
        if (soa && !ldns_pkt_push_rr(pkt, LDNS_SECTION_AUTHORITY, soa))
            st = LDNS_STATUS_MEM_ERR;
        soa = NULL; /* the packet's now */
        if (st == LDNS_STATUS_OK && key) {
            char alg[40];
            lmd_dns_key_ldns_alg(key, alg, sizeof alg);
            st = ldns_pkt_tsig_sign(pkt, key->name, key->secret, 300, alg, NULL);
            ldns_rr *tsig = st == LDNS_STATUS_OK ? ldns_pkt_tsig(pkt) : NULL;
            if (tsig)
                m->mac = ldns_rdf_clone(ldns_rr_rdf(tsig, 3));
            if (!m->mac)
                st = st == LDNS_STATUS_OK ? LDNS_STATUS_MEM_ERR : st;
        }
    }
    ldns_rr_free(soa);
    if (st != LDNS_STATUS_OK || ldns_pkt2wire(&m->wire, pkt, &m->len) != LDNS_STATUS_OK) {
        ldns_pkt_free(pkt);
        if (m)
            ldns_rdf_deep_free(m->mac);
        free(m);
        return lmd_err_set(err, LMD_ENOMEM, "cannot build the transfer request: %s", ldns_get_errorstr_by_id(st));
    }
    m->id = ldns_pkt_id(pkt);
    m->pkt = pkt;
    m->tcp_only = true;
    m->xfr_type = ixfr ? LDNS_RR_TYPE_IXFR : LDNS_RR_TYPE_AXFR;
    m->xfr_serial = serial;
    *out = m;
    return 0;
}

/* ---- the answer as plain data ---------------------------------------- */

static void diff_free(lmd_dns_xfr_diff *d)
{
    lmd_dns_rrs_free(d->deleted, d->n_deleted);
    lmd_dns_rrs_free(d->added, d->n_added);
}

void lmd_dns_xfr_free(lmd_dns_xfr *x)
{
    if (!x)
        return;
    lmd_dns_rrs_free(x->rrs, x->n_rrs);
    for (size_t i = 0; i < x->n_diffs; i++)
        diff_free(&x->diffs[i]);
    free(x->diffs);
    free(x);
}

/* Room for one more in an array grown by doubling from 16 (its capacity
 * follows from n: 16 below 16, else the next power of two). */
static int grow(void **arr, size_t n, size_t size)
{
    if (n != 0 && (n < 16 || (n & (n - 1)) != 0))
        return 0;
    size_t cap = n < 16 ? 16 : n * 2;
    void *p = realloc(*arr, cap * size);
    if (!p)
        return LMD_ENOMEM;
    *arr = p;
    return 0;
}

/* ---- the reader -------------------------------------------------------- */

enum rstate { R_START, R_FIRST, R_FULL, R_DEL, R_ADD, R_DONE, R_FAILED };

struct lmd_dns_xfr_reader {
    ldns_rdf *zone;
    char zone_text[1025];
    int type;                /* LDNS_RR_TYPE_AXFR / _IXFR */
    uint32_t ours;           /* IXFR: the serial asked from */
    uint16_t id;
    bool has_key;
    char key_name[256], key_secret[256], key_alg[40];
    ldns_rdf *key_dname, *alg_dname;
    ldns_rdf *mac;           /* what the next message's MAC covers: the request's, then the previous one's */
    size_t max_bytes, max_messages, max_rrs;
    bool too_big;           /* refused for a limit above */
    bool forged;            /* refused for a message not signed by the key */
    size_t messages, bytes, kept;
    enum rstate st;
    uint32_t serial;         /* the first SOA's: the zone's version now */
    lmd_dns_xfr *x;
};

void lmd_dns_xfr_reader_free(lmd_dns_xfr_reader *rd)
{
    if (!rd)
        return;
    ldns_rdf_deep_free(rd->zone);
    ldns_rdf_deep_free(rd->key_dname);
    ldns_rdf_deep_free(rd->alg_dname);
    ldns_rdf_deep_free(rd->mac);
    memset(rd->key_secret, 0, sizeof rd->key_secret);
    lmd_dns_xfr_free(rd->x);
    free(rd);
}

int lmd_dns_xfr_reader_new(const lmd_dns_msg *req, const lmd_dns_key *key, lmd_dns_xfr_reader **out, lmd_err *err)
{
    *out = NULL;
    ldns_rr_list *q = req && req->pkt ? ldns_pkt_question(req->pkt) : NULL;
    if (!req || !req->xfr_type || !q || ldns_rr_list_rr_count(q) != 1)
        return lmd_err_set(err, LMD_EINVAL, "not a transfer request (lmd_dns_xfr_build makes them)");
    if (key && !req->mac)
        return lmd_err_set(err, LMD_EINVAL, "the transfer request is not signed: no key to verify its answer with");
    lmd_dns_xfr_reader *rd = calloc(1, sizeof *rd);
    if (!rd)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    rd->zone = ldns_rdf_clone(ldns_rr_owner(ldns_rr_list_rr(q, 0)));
    rd->type = req->xfr_type;
    rd->ours = req->xfr_serial;
    rd->id = req->id;
    rd->max_bytes = LMD_DNS_XFR_MAX_BYTES;
    rd->max_messages = LMD_DNS_XFR_MAX_MESSAGES;
    rd->max_rrs = LMD_DNS_XFR_MAX_RRS;
    rd->x = calloc(1, sizeof *rd->x);
    bool ok = rd->zone && rd->x;
    if (ok && key) {
        rd->has_key = true;
        ok = snprintf(rd->key_name, sizeof rd->key_name, "%s", key->name) < (int)sizeof rd->key_name &&
             snprintf(rd->key_secret, sizeof rd->key_secret, "%s", key->secret) < (int)sizeof rd->key_secret;
        lmd_dns_key_ldns_alg(key, rd->key_alg, sizeof rd->key_alg);
        rd->key_dname = ldns_dname_new_frm_str(rd->key_name);
        rd->alg_dname = ldns_dname_new_frm_str(rd->key_alg);
        rd->mac = ldns_rdf_clone(req->mac);
        ok = ok && rd->key_dname && rd->alg_dname && rd->mac;
    }
    if (!ok) {
        lmd_dns_xfr_reader_free(rd);
        return lmd_err_set(err, LMD_ENOMEM, "cannot read the transfer (out of memory or key too long)");
    }
    lmd_dns_name_text(rd->zone, rd->zone_text, sizeof rd->zone_text);
    *out = rd;
    return 0;
}

void lmd_dns_xfr_reader_limits(lmd_dns_xfr_reader *rd, size_t max_bytes, size_t max_messages, size_t max_rrs)
{
    if (max_bytes)
        rd->max_bytes = max_bytes;
    if (max_messages)
        rd->max_messages = max_messages;
    if (max_rrs)
        rd->max_rrs = max_rrs;
}

lmd_dns_xfr *lmd_dns_xfr_reader_take(lmd_dns_xfr_reader *rd)
{
    if (!rd || rd->st != R_DONE)
        return NULL;
    lmd_dns_xfr *x = rd->x;
    rd->x = NULL;
    return x;
}

static int refuse(lmd_dns_xfr_reader *rd, lmd_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(lmd_dns_xfr_reader *rd, lmd_err *err, int code, const char *fmt, ...)
{
    char text[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    rd->st = R_FAILED;
    return lmd_err_set(err, code, "message %zu: %s", rd->messages, text);
}

/* A limit passed: refused, and marked (the zone is to be read otherwise). */
static int too_big(lmd_dns_xfr_reader *rd, lmd_err *err, const char *what, size_t max)
{
    rd->too_big = true;
    return refuse(rd, err, LMD_EIO, "more than %zu %s: too big a transfer", max, what);
}

/* Keep rr (a type lmd_dns_rr describes) at the end of arr. */
static int keep(lmd_dns_xfr_reader *rd, lmd_dns_rr **arr, size_t *n, const ldns_rr *rr, lmd_err *err)
{
    if (rd->kept >= rd->max_rrs)
        return too_big(rd, err, "records", rd->max_rrs);
    if (grow((void **)arr, *n, sizeof **arr) != 0)
        return refuse(rd, err, LMD_ENOMEM, "out of memory");
    if (lmd_dns_rr_fill(rr, &(*arr)[*n]) == 0) {
        (*n)++;
        rd->kept++;
    } else {
        lmd_txt_free(&(*arr)[*n].txt); /* a type not described, or rdata it cannot read: skipped */
    }
    return 0;
}

static int new_diff(lmd_dns_xfr_reader *rd, uint32_t from, lmd_err *err)
{
    lmd_dns_xfr *x = rd->x;
    if (grow((void **)&x->diffs, x->n_diffs, sizeof *x->diffs) != 0)
        return refuse(rd, err, LMD_ENOMEM, "out of memory");
    memset(&x->diffs[x->n_diffs], 0, sizeof *x->diffs);
    x->diffs[x->n_diffs++].from = from;
    x->kind = LMD_DNS_XFR_DIFF;
    rd->st = R_DEL;
    return 0;
}

static bool serial_newer(uint32_t a, uint32_t b) /* RFC 1982 */
{
    return a != b && (int32_t)(a - b) > 0;
}

/* One answer record; only is whether it is the only one of the first message. */
static int record(lmd_dns_xfr_reader *rd, const ldns_rr *rr, bool only, lmd_err *err)
{
    lmd_dns_xfr *x = rd->x;
    const ldns_rdf *owner = ldns_rr_owner(rr);
    char name[1025];
    if (rd->st == R_DONE)
        return refuse(rd, err, LMD_EIO, "records after the closing SOA");
    if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN)
        return refuse(rd, err, LMD_EIO, "a record of class %d, not IN", (int)ldns_rr_get_class(rr));
    if (!owner || (ldns_dname_compare(owner, rd->zone) != 0 && !ldns_dname_is_subdomain(owner, rd->zone))) {
        lmd_dns_name_text(owner, name, sizeof name);
        return refuse(rd, err, LMD_EIO, "%s is not in zone %s", name, rd->zone_text);
    }
    x->records++;
    bool soa = ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA;
    uint32_t s = 0;
    if (soa) {
        if (ldns_rr_rd_count(rr) < 3 || !ldns_rr_rdf(rr, 2) || ldns_rdf_size(ldns_rr_rdf(rr, 2)) != 4)
            return refuse(rd, err, LMD_EIO, "a malformed SOA");
        if (ldns_dname_compare(owner, rd->zone) != 0) {
            lmd_dns_name_text(owner, name, sizeof name);
            return refuse(rd, err, LMD_EIO, "a SOA for %s inside zone %s", name, rd->zone_text);
        }
        s = ldns_rdf2native_int32(ldns_rr_rdf(rr, 2));
    }
    bool ixfr = rd->type == LDNS_RR_TYPE_IXFR;
    switch (rd->st) {
    case R_START:
        if (!soa)
            return refuse(rd, err, LMD_EIO, "the answer does not begin with the SOA of %s", rd->zone_text);
        rd->serial = x->serial = s;
        rd->st = R_FIRST;
        if (ixfr && only && s == rd->ours) {
            x->kind = LMD_DNS_XFR_UPTODATE;
            rd->st = R_DONE;
        } else if (ixfr && only && !serial_newer(s, rd->ours)) {
            return refuse(rd, err, LMD_EIO, "the zone's serial %u is older than ours (%u)", s, rd->ours);
        }
        return 0;
    case R_FIRST:
        if (soa && ixfr && s != rd->serial) { /* RFC 1995 4: incremental, from our version */
            if (s != rd->ours)
                return refuse(rd, err, LMD_EIO, "the first difference is from serial %u, not ours (%u)", s, rd->ours);
            return new_diff(rd, s, err);
        }
        x->kind = LMD_DNS_XFR_FULL;
        if (soa) {
            if (s != rd->serial)
                return refuse(rd, err, LMD_EIO, "the closing SOA has serial %u, the transfer began with %u", s,
                              rd->serial);
            rd->st = R_DONE; /* a zone of its SOA alone */
            return 0;
        }
        rd->st = R_FULL;
        return keep(rd, &x->rrs, &x->n_rrs, rr, err);
    case R_FULL:
        if (soa) {
            if (s != rd->serial)
                return refuse(rd, err, LMD_EIO, "the closing SOA has serial %u, the transfer began with %u", s,
                              rd->serial);
            rd->st = R_DONE;
            return 0;
        }
        return keep(rd, &x->rrs, &x->n_rrs, rr, err);
    case R_DEL: {
        lmd_dns_xfr_diff *d = &x->diffs[x->n_diffs - 1];
        if (soa) {
            d->to = s;
            rd->st = R_ADD;
            return 0;
        }
        return keep(rd, &d->deleted, &d->n_deleted, rr, err);
    }
    case R_ADD: {
        lmd_dns_xfr_diff *d = &x->diffs[x->n_diffs - 1];
        if (!soa)
            return keep(rd, &d->added, &d->n_added, rr, err);
        if (s != d->to)
            return refuse(rd, err, LMD_EIO, "a difference from serial %u follows one that ended at %u", s, d->to);
        if (s == rd->serial) {
            rd->st = R_DONE;
            return 0;
        }
        return new_diff(rd, s, err);
    }
    default:
        return refuse(rd, err, LMD_EIO, "records after the closing SOA");
    }
}

/* The message's TSIG: ours, and right (RFC 8945 5.3.1: the first message's
 * MAC covers the request's MAC, every next one's the previous MAC and only
 * the timers of its own TSIG). */
static int verify(lmd_dns_xfr_reader *rd, ldns_pkt *pkt, const uint8_t *wire, size_t len, lmd_err *err)
{
    ldns_rr *tsig = ldns_pkt_tsig(pkt);
    if (!tsig)
        return refuse(rd, err, LMD_EIO, "not signed (key %s): not trusted", rd->key_name);
    if (ldns_rr_rd_count(tsig) <= 6 || !ldns_rr_rdf(tsig, 0) || !ldns_rr_rdf(tsig, 3) || !ldns_rr_rdf(tsig, 5))
        return refuse(rd, err, LMD_EIO, "a malformed TSIG record");
    int tsig_error = ldns_rdf2native_int16(ldns_rr_rdf(tsig, 5));
    if (tsig_error)
        return refuse(rd, err, LMD_EIO, "TSIG error %s with key %s", lmd_dns_rcode_name(tsig_error), rd->key_name);
    /* checked first: ldns loses the record when it cannot compute the MAC */
    if (ldns_dname_compare(ldns_rr_owner(tsig), rd->key_dname) != 0 ||
        ldns_rdf_get_type(ldns_rr_rdf(tsig, 0)) != LDNS_RDF_TYPE_DNAME ||
        ldns_dname_compare(ldns_rr_rdf(tsig, 0), rd->alg_dname) != 0)
        return refuse(rd, err, LMD_EIO, "signed with another key or algorithm than %s (%s): not trusted",
                      rd->key_name, rd->key_alg);
    if (!ldns_pkt_tsig_verify_next(pkt, wire, len, rd->key_name, rd->key_secret, rd->mac, rd->messages > 1 ? 1 : 0))
        return refuse(rd, err, LMD_EIO, "wrong TSIG signature (key %s): not trusted", rd->key_name);
    ldns_rdf *mac = ldns_rdf_clone(ldns_rr_rdf(tsig, 3));
    if (!mac)
        return refuse(rd, err, LMD_ENOMEM, "out of memory");
    ldns_rdf_deep_free(rd->mac);
    rd->mac = mac;
    return 0;
}

int lmd_dns_xfr_reader_add(lmd_dns_xfr_reader *rd, const uint8_t *wire, size_t len, int *rcode, int *tsig_error,
                           lmd_err *err)
{
    if (rcode)
        *rcode = 0;
    if (tsig_error)
        *tsig_error = 0;
    if (rd->st == R_FAILED)
        return lmd_err_set(err, LMD_EINVAL, "the transfer was refused already");
    rd->messages++;
    rd->bytes += len;
    if (rd->st == R_DONE)
        return refuse(rd, err, LMD_EIO, "a message after the closing SOA");
    if (rd->messages > rd->max_messages)
        return too_big(rd, err, "messages", rd->max_messages);
    if (rd->bytes > rd->max_bytes)
        return too_big(rd, err, "bytes", rd->max_bytes);
    ldns_pkt *pkt = NULL;
    ldns_status st = ldns_wire2pkt(&pkt, wire, len);
    if (st != LDNS_STATUS_OK || !pkt) {
        ldns_pkt_free(pkt);
        return refuse(rd, err, LMD_EIO, "does not parse as DNS (%s)", ldns_get_errorstr_by_id(st));
    }
    int rc = 0;
    ldns_rr_list *q = ldns_pkt_question(pkt);
    size_t nq = q ? ldns_rr_list_rr_count(q) : 0;
    const ldns_rr *q0 = nq ? ldns_rr_list_rr(q, 0) : NULL;
    int rc_ = ldns_pkt_get_rcode(pkt);
    if (ldns_pkt_id(pkt) != rd->id || !ldns_pkt_qr(pkt) || ldns_pkt_get_opcode(pkt) != LDNS_PACKET_QUERY) {
        rc = refuse(rd, err, LMD_EIO, "not an answer to this transfer (id, QR or opcode)");
        rd->forged = rd->has_key; /* the server echoes the request: not its answer, whoever sent it */
    } else if (nq > 1 || (q0 && ((int)ldns_rr_get_type(q0) != rd->type ||
                                 ldns_dname_compare(ldns_rr_owner(q0), rd->zone) != 0))) {
        rc = refuse(rd, err, LMD_EIO, "the answer to another question");
        rd->forged = rd->has_key;
    } else if (rc_ != LDNS_RCODE_NOERROR) {
        /* the rcode is believed only under the key's signature: an
         * unsigned REFUSED or NOTAUTH may come from anyone on the path (a
         * server's own BADKEY / BADSIG answers are unsigned too) */
        ldns_rr *t = ldns_pkt_tsig(pkt);
        int te = t && ldns_rr_rd_count(t) > 5 && ldns_rr_rdf(t, 5) ? ldns_rdf2native_int16(ldns_rr_rdf(t, 5)) : 0;
        lmd_err verr = {0};
        if (rd->has_key && verify(rd, pkt, wire, len, &verr) != 0) {
            rd->forged = true;
            rc = lmd_err_set(err, LMD_EIO, "message %zu: %s%s%s without a valid signature by key %s: not trusted",
                             rd->messages, lmd_dns_rcode_name(rc_), te ? ", TSIG error " : "",
                             te ? lmd_dns_rcode_name(te) : "", rd->key_name);
        } else {
            if (rcode)
                *rcode = rc_;
            if (tsig_error)
                *tsig_error = te;
            if (te)
                rc = refuse(rd, err, LMD_EIO, "%s (TSIG error %s with key %s)", lmd_dns_rcode_name(rc_),
                            lmd_dns_rcode_name(te), rd->key_name[0] ? rd->key_name : "none");
            else
                rc = refuse(rd, err, LMD_EIO, "%s", lmd_dns_rcode_name(rc_));
        }
    } else if (ldns_pkt_tc(pkt)) {
        rc = refuse(rd, err, LMD_EIO, "truncated (TC) over TCP");
    } else if (rd->has_key) {
        rc = verify(rd, pkt, wire, len, err);
        rd->forged = rc != 0;
    }
    ldns_rr_list *an = ldns_pkt_answer(pkt);
    size_t n = an ? ldns_rr_list_rr_count(an) : 0;
    if (!rc && n == 0 && rd->messages == 1)
        rc = refuse(rd, err, LMD_EIO, "an empty answer");
    for (size_t i = 0; !rc && i < n; i++)
        rc = record(rd, ldns_rr_list_rr(an, i), rd->messages == 1 && n == 1, err);
    ldns_pkt_free(pkt);
    if (rc)
        return rc;
    if (rd->st != R_DONE)
        return 0;
    rd->x->messages = rd->messages;
    rd->x->bytes = rd->bytes;
    if (!rd->x->kind)
        rd->x->kind = LMD_DNS_XFR_FULL;
    return 1;
}

void lmd_dns_xfr_reader_counts(const lmd_dns_xfr_reader *rd, size_t *messages, size_t *bytes)
{
    *messages = rd ? rd->messages : 0;
    *bytes = rd ? rd->bytes : 0;
}

bool lmd_dns_xfr_reader_forged(const lmd_dns_xfr_reader *rd)
{
    return rd && rd->forged;
}

bool lmd_dns_xfr_reader_too_big(const lmd_dns_xfr_reader *rd)
{
    return rd && rd->too_big;
}

const char *lmd_dns_xfr_reader_zone(const lmd_dns_xfr_reader *rd)
{
    return rd->zone_text;
}
