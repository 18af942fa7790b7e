/* The API's event ring (src/api/ring.c): bounds by count and bytes, the
 * oldest held, walking in order with the JSON intact across compactions,
 * the idle trim, an event bigger than the ring. */
#include "api/ring.h"
#include "../check.h"

#include <stdio.h>
#include <string.h>

static void ev_json(uint64_t i, char *buf, size_t len)
{
    /* sizes vary so that compaction moves events of every length */
    snprintf(buf, len, "{\"index\":%llu,\"pad\":\"%.*s\"}", (unsigned long long)i, (int)(i * 7 % 90),
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
}

/* Every event held is intact, in order, ending with last. */
static void check_walk(const lmd_ring *r, uint64_t last, const char *when)
{
    size_t pos = 0, bytes = 0;
    struct lmd_ring_event ev;
    uint64_t want = lmd_ring_oldest(r, last + 1), seen = 0;
    char buf[256];
    while (lmd_ring_next(r, &pos, &ev)) {
        ev_json(ev.index, buf, sizeof buf);
        CHECK(ev.index == want, "%s: event %llu where %llu was due", when, (unsigned long long)ev.index,
              (unsigned long long)want);
        CHECK(ev.len == strlen(buf) && !strcmp(ev.json, buf) && ev.kind == (int)(ev.index % 3),
              "%s: event %llu damaged", when, (unsigned long long)ev.index);
        bytes += ev.len;
        want++;
        seen++;
    }
    CHECK(seen == 0 || want == last + 1, "%s: the walk ended at %llu, not %llu", when, (unsigned long long)want - 1,
          (unsigned long long)last);
    CHECK(bytes == lmd_ring_bytes(r), "%s: %zu bytes walked, %zu counted", when, bytes, lmd_ring_bytes(r));
}

int main(void)
{
    char buf[256];
    /* bounded by count */
    lmd_ring *r = lmd_ring_new(10, 1 << 20);
    CHECK(r != NULL, "new");
    CHECK(lmd_ring_oldest(r, 1) == 1, "an empty ring's oldest is the next index");
    for (uint64_t i = 1; i <= 25; i++) {
        ev_json(i, buf, sizeof buf);
        lmd_ring_add(r, i, (int)(i % 3), buf, strlen(buf));
    }
    CHECK(lmd_ring_oldest(r, 26) == 16, "10 events kept: oldest %llu", (unsigned long long)lmd_ring_oldest(r, 26));
    check_walk(r, 25, "count");
    lmd_ring_free(r);

    /* bounded by bytes, many times round the mapping (compactions) */
    r = lmd_ring_new(4096, 2000);
    for (uint64_t i = 1; i <= 5000; i++) {
        ev_json(i, buf, sizeof buf);
        lmd_ring_add(r, i, (int)(i % 3), buf, strlen(buf));
        CHECK(lmd_ring_bytes(r) <= 2000, "at %llu: %zu bytes held", (unsigned long long)i, lmd_ring_bytes(r));
        if (i % 997 == 0)
            check_walk(r, i, "bytes");
    }
    check_walk(r, 5000, "bytes");
    CHECK(lmd_ring_oldest(r, 5001) > 4900, "only the newest are held");

    /* the idle trim keeps the newest within its bound, and adding goes on */
    lmd_ring_trim(r, 300);
    CHECK(lmd_ring_bytes(r) <= 300 && lmd_ring_bytes(r) > 0, "trimmed to %zu bytes", lmd_ring_bytes(r));
    check_walk(r, 5000, "trim");
    for (uint64_t i = 5001; i <= 5100; i++) {
        ev_json(i, buf, sizeof buf);
        lmd_ring_add(r, i, (int)(i % 3), buf, strlen(buf));
    }
    check_walk(r, 5100, "after trim");
    /* the newest stays even when it alone is past the trim's bound */
    lmd_ring_trim(r, 1);
    CHECK(lmd_ring_oldest(r, 5101) == 5100, "trim keeps the newest event");

    /* an event bigger than the ring empties it: a resuming client gets a snapshot */
    char big[4000];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    lmd_ring_add(r, 5101, 0, big, strlen(big));
    CHECK(lmd_ring_oldest(r, 5102) == 5102 && lmd_ring_bytes(r) == 0, "too big: nothing held");
    ev_json(5102, buf, sizeof buf);
    lmd_ring_add(r, 5102, (int)(5102 % 3), buf, strlen(buf));
    check_walk(r, 5102, "after a big one");
    lmd_ring_free(r);

    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
