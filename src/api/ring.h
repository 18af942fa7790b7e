/* The API's event ring: the last events' JSON, for event-stream clients
 * that reconnect with since= (api.c).  Bounded by count and by bytes, and
 * held in one mapping of its own, apart from the heap: a burst of events
 * (a flood, 500 peers joining) leaves no holes among the peers' data when
 * the ring is trimmed, and the pages it gives back go back to the system
 * at once. */
#ifndef LMD_API_RING_H
#define LMD_API_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lmd_ring lmd_ring;

struct lmd_ring_event {
    uint64_t index;
    int kind;
    size_t len;
    const char *json;       /* NUL-terminated; valid until the next add or trim */
};

/* At most max_events events and max_bytes bytes of JSON; NULL when out of
 * memory. */
lmd_ring *lmd_ring_new(size_t max_events, size_t max_bytes);
void lmd_ring_free(lmd_ring *r);
/* Add event index (one more than the last one added): the oldest go to
 * make room.  One bigger than the ring is not held (the ring is then
 * empty: a client resuming before it gets a snapshot). */
void lmd_ring_add(lmd_ring *r, uint64_t index, int kind, const char *json, size_t len);
/* Keep at most max_bytes of the newest events, and give the pages freed
 * back to the system. */
void lmd_ring_trim(lmd_ring *r, size_t max_bytes);
/* The index of the oldest event held, or next (one past the last added)
 * when none is. */
uint64_t lmd_ring_oldest(const lmd_ring *r, uint64_t next);
/* Bytes of JSON held. */
size_t lmd_ring_bytes(const lmd_ring *r);
/* Walk the events held, oldest first: *pos = 0 to start; false at the end. */
bool lmd_ring_next(const lmd_ring *r, size_t *pos, struct lmd_ring_event *ev);

#endif
