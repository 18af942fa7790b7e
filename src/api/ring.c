/* The API's event ring (see ring.h): events laid end to end in one
 * anonymous mapping, oldest first, from head to end; when the end reaches
 * the mapping's, what is held moves to its start. */
#include "api/ring.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct hdr {
    uint64_t index;
    uint32_t len;           /* of the JSON, without its NUL */
    int32_t kind;
};

struct lmd_ring {
    char *map;
    size_t cap;             /* the mapping's size (virtual: pages are touched as used) */
    size_t head, end;       /* the events held: [head, end) */
    size_t n, bytes;        /* how many, their JSON's bytes */
    size_t max_events, max_bytes;
};

static size_t span(size_t len) { return (sizeof(struct hdr) + len + 1 + 7) & ~(size_t)7; }

lmd_ring *lmd_ring_new(size_t max_events, size_t max_bytes)
{
    lmd_ring *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->max_events = max_events;
    r->max_bytes = max_bytes;
    /* what is held (max_bytes and a header each) and one more event of
     * max_bytes, however the last compaction left it */
    r->cap = 2 * span(max_bytes) + max_events * span(0);
    r->map = mmap(NULL, r->cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r->map == MAP_FAILED) {
        free(r);
        return NULL;
    }
    return r;
}

void lmd_ring_free(lmd_ring *r)
{
    if (!r)
        return;
    munmap(r->map, r->cap);
    free(r);
}

static void drop_oldest(lmd_ring *r)
{
    const struct hdr *h = (const struct hdr *)(r->map + r->head);
    r->head += span(h->len);
    r->bytes -= h->len;
    if (--r->n == 0)
        r->head = r->end = 0;
}

/* Move what is held to the mapping's start; the pages past it go back. */
static void compact(lmd_ring *r, bool release)
{
    if (r->head) {
        memmove(r->map, r->map + r->head, r->end - r->head);
        r->end -= r->head;
        r->head = 0;
    }
    if (release) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE), from = (r->end + page - 1) / page * page;
        if (from < r->cap)
            (void)madvise(r->map + from, r->cap - from, MADV_DONTNEED);
    }
}

void lmd_ring_add(lmd_ring *r, uint64_t index, int kind, const char *json, size_t len)
{
    size_t need = span(len);
    if (len > r->max_bytes || len > UINT32_MAX) {
        while (r->n)
            drop_oldest(r);
        return;
    }
    while (r->n && (r->n + 1 > r->max_events || r->bytes + len > r->max_bytes))
        drop_oldest(r);
    if (r->end + need > r->cap)
        compact(r, false);
    struct hdr *h = (struct hdr *)(r->map + r->end);
    h->index = index;
    h->len = (uint32_t)len;
    h->kind = kind;
    memcpy((char *)(h + 1), json, len);
    ((char *)(h + 1))[len] = '\0';
    r->end += need;
    r->n++;
    r->bytes += len;
}

void lmd_ring_trim(lmd_ring *r, size_t max_bytes)
{
    while (r->n > 1 && r->bytes > max_bytes)
        drop_oldest(r);
    compact(r, true);
}

uint64_t lmd_ring_oldest(const lmd_ring *r, uint64_t next)
{
    return r->n ? ((const struct hdr *)(r->map + r->head))->index : next;
}

size_t lmd_ring_bytes(const lmd_ring *r) { return r->bytes; }

bool lmd_ring_next(const lmd_ring *r, size_t *pos, struct lmd_ring_event *ev)
{
    size_t at = *pos ? *pos : r->head;
    if (!r->n || at >= r->end)
        return false;
    const struct hdr *h = (const struct hdr *)(r->map + at);
    ev->index = h->index;
    ev->kind = h->kind;
    ev->len = h->len;
    ev->json = (const char *)(h + 1);
    *pos = at + span(h->len);
    return true;
}
