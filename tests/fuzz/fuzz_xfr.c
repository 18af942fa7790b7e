/* Zone transfer answers (src/dns/xfr.c): the input is a sequence of
 * messages fed one by one to the reader of an AXFR or IXFR request.
 *
 *   byte 0      bit 0: IXFR (else AXFR)
 *   bytes 1-4   IXFR: our serial (big-endian)
 *   then        [2-byte length][message]... as over TCP (a short last one
 *               is given as it is)
 *
 * Each message gets the request's id (else nearly nothing would be read);
 * no TSIG key (the reader's TSIG path is the unit tests' and the lab's).
 *
 * Checks: a refusal says which message and why, and the reader stays
 * refusing; a complete answer is one of the three kinds, with counts that
 * add up (records kept <= records read; UPTODATE: our serial, nothing
 * kept; FULL: no diffs; DIFF: steps that chain to the zone's serial, the
 * first from ours), and arrives at the end of a message; nothing is taken
 * before it; a message after it is refused. */
#include "dns/dns.h"
#include "fuzz.h"

FUZZ_INIT_SILENCED()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    bool ixfr = data[0] & 1;
    uint32_t ours = (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4];
    lmd_err err = {0};
    lmd_dns_msg *req = NULL;
    FUZZ_CHECK(lmd_dns_xfr_build("sd.test", NULL, ours, ixfr, &req, &err) == 0);
    if (!req)
        return 0;
    size_t rlen = 0;
    const uint8_t *rw = lmd_dns_msg_wire(req, &rlen);
    lmd_dns_xfr_reader *rd = NULL;
    FUZZ_CHECK(lmd_dns_xfr_reader_new(req, NULL, &rd, &err) == 0);
    if (!rd) {
        lmd_dns_msg_free(req);
        return 0;
    }
    lmd_dns_xfr_reader_limits(rd, 1 << 20, 64, 4096);
    size_t off = 5, fed = 0;
    int rc = 0;
    lmd_dns_xfr *x = NULL;
    while (off < size && rc == 0) {
        size_t len = size - off >= 2 ? ((size_t)data[off] << 8 | data[off + 1]) : 0;
        off += 2;
        if (off > size)
            break;
        if (len > size - off)
            len = size - off;
        uint8_t *m = malloc(len ? len : 1);
        if (!m)
            break;
        memcpy(m, data + off, len);
        off += len;
        if (len >= 2)
            memcpy(m, rw, 2); /* the request's id */
        memset(&err, 0, sizeof err);
        int rcode = -7, tsig_error = -7;
        rc = lmd_dns_xfr_reader_add(rd, m, len, &rcode, &tsig_error, &err);
        free(m);
        fed++;
        FUZZ_CHECK(rcode >= 0 && rcode <= 15 && tsig_error >= 0);
        if (rc < 0) {
            FUZZ_CHECK(err.msg[0] != '\0');
            char want[32];
            snprintf(want, sizeof want, "message %zu: ", fed);
            FUZZ_CHECK(strncmp(err.msg, want, strlen(want)) == 0);
            FUZZ_CHECK(lmd_dns_xfr_reader_take(rd) == NULL);
            uint8_t junk[12] = {0};
            FUZZ_CHECK(lmd_dns_xfr_reader_add(rd, junk, sizeof junk, NULL, NULL, &err) < 0);
        } else if (rc == 0) {
            FUZZ_CHECK(lmd_dns_xfr_reader_take(rd) == NULL);
        } else {
            FUZZ_CHECK(rc == 1);
            x = lmd_dns_xfr_reader_take(rd);
            FUZZ_CHECK(x != NULL);
            FUZZ_CHECK(lmd_dns_xfr_reader_take(rd) == NULL);
        }
    }
    if (x) {
        FUZZ_CHECK(x->messages == fed);
        size_t kept = x->n_rrs;
        for (size_t i = 0; i < x->n_diffs; i++) {
            kept += x->diffs[i].n_deleted + x->diffs[i].n_added;
            FUZZ_CHECK(i == 0 || x->diffs[i].from == x->diffs[i - 1].to);
        }
        FUZZ_CHECK(kept <= x->records && kept <= 4096);
        switch (x->kind) {
        case LMD_DNS_XFR_UPTODATE:
            FUZZ_CHECK(ixfr && x->serial == ours && kept == 0 && x->records == 1);
            break;
        case LMD_DNS_XFR_FULL:
            FUZZ_CHECK(x->n_diffs == 0 && x->records >= 2);
            break;
        case LMD_DNS_XFR_DIFF:
            FUZZ_CHECK(ixfr && x->n_rrs == 0 && x->n_diffs >= 1 && x->diffs[0].from == ours &&
                       x->diffs[x->n_diffs - 1].to == x->serial);
            break;
        default:
            FUZZ_CHECK(!"a kind");
        }
        for (size_t i = 0; i < x->n_rrs; i++)
            FUZZ_CHECK(memchr(x->rrs[i].owner, '\0', sizeof x->rrs[i].owner) != NULL);
        uint8_t hdr[12] = {0};
        memcpy(hdr, rw, 2);
        hdr[2] = 0x80;
        FUZZ_CHECK(lmd_dns_xfr_reader_add(rd, hdr, sizeof hdr, NULL, NULL, &err) < 0);
        lmd_dns_xfr_free(x);
    }
    lmd_dns_xfr_reader_free(rd);
    lmd_dns_msg_free(req);
    return 0;
}
