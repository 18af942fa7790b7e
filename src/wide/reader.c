/* Wide-area browsing: where reads go (wide_area.read, nearest first, then
 * the primary; failover) and that they never go back in time.  A server of
 * wide_area.read whose serial is older than one already read (a secondary
 * cut off from its primary still answers, signed, with the zone as it
 * was) is not believed: counted (lmdisc_dns_stale_total), said, and reads
 * move on to the next server, so a failover never rolls the view back (a
 * peer that left does not come back); only the primary may move the serial
 * back (a zone made again). */
#include "wide/browse.h"
#include "base/log.h"
#include "base/util.h"

#include <stdint.h>
#include <string.h>

const char *lmd_wb_reader(const lmd_wide_browse *b)
{
    const struct lmd_config *c = b->wd->cfg;
    return b->read_idx < c->wide_nread ? c->wide_read[b->read_idx] : b->wd->server;
}

static bool serial_older(uint32_t a, uint32_t b) /* RFC 1982 */
{
    return a != b && (int32_t)(a - b) < 0;
}

/* A serial read from the server reads go to: false (and the read failed,
 * said, counted) when it is older than one read before and that server is
 * not the primary.  A secondary that no longer hears from its primary
 * answers, signed, with the zone as it was until its SOA expire: believing
 * it after a failover would bring back what left.  The primary itself is
 * believed (a zone made again, from a lower serial). */
bool lmd_wb_serial_fresh(lmd_wide_browse *b, uint32_t serial)
{
    const char *from = lmd_wb_reader(b);
    if (!b->have_newest || !serial_older(serial, b->newest))
        return true;
    if (!strcmp(from, b->wd->server)) {
        lmd_warn("wide-area browse: the primary %s serves %s at serial %u, older than %u read before: the zone "
                 "was made again; reading it whole", from, b->wd->cfg->wide_area.domain, (unsigned)serial,
                 (unsigned)b->newest);
        b->newest = serial;
        lmd_dns_zone_clear(&b->zone);
        return true;
    }
    b->stale++;
    if (b->said_stale != serial)
        lmd_warn("wide-area browse: %s answered for %s with serial %u, older than %u read before: a stale copy "
                 "(a secondary that no longer hears from its primary?), not believed; trying the next server",
                 from, b->wd->cfg->wide_area.domain, (unsigned)serial, (unsigned)b->newest);
    b->said_stale = serial;
    b->failed = true;
    return false;
}

/* A read at serial was taken: the newest seen. */
void lmd_wb_serial_read(lmd_wide_browse *b, uint32_t serial)
{
    if (!b->have_newest || serial_older(b->newest, serial))
        b->newest = serial;
    b->have_newest = true;
}

/* A read failed: the next server of wide_area.read (the primary after the
 * last, then the nearest again).  The copy of the zone is kept: a zone's
 * secondaries share its serials, so the next IXFR continues it. */
void lmd_wb_read_failover(lmd_wide_browse *b)
{
    size_t n = b->wd->cfg->wide_nread;
    if (n == 0)
        return;
    const char *from = lmd_wb_reader(b);
    b->read_idx = (b->read_idx + 1) % (n + 1);
    b->read_since = lmd_now_mono();
    lmd_warn("wide-area browse: %s did not answer for %s: reading from %s now", from, b->wd->cfg->wide_area.domain,
             lmd_wb_reader(b));
}
