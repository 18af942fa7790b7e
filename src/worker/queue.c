/* The queue of events for the policy worker, from the core's side: one in
 * flight, the others waiting (bounded: see LMD_WORKER_QUEUE_MAX). */
#include "worker/internal.h"
#include "base/log.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

static void send_event(lmd_worker *w, struct item *it)
{
    lmd_w_begin(&w->out, LMD_W_EVENT);
    lmd_w_u8(&w->out, (unsigned)it->kind);
    lmd_w_node(&w->out, &it->peer);
    lmd_w_u8(&w->out, it->has_old);
    if (it->has_old)
        lmd_w_node(&w->out, &it->old);
    lmd_w_u32(&w->out, it->changes);
    lmd_w_str(&w->out, it->reason);
    w->inflight = it;
    if (lmd_worker_send(w) != 0) {
        lmd_worker_kill(w);
        lmd_worker_died(w, "cannot send an event to the policy worker (out of memory)");
        return;
    }
    lmd_worker_op(w, OP_EVENT, w->deadline + 0.5, lmd_worker_backstop(w));
}

void lmd_worker_fallback(lmd_worker *w, struct item *it)
{
    w->host.verdict(w->host.ud, it->kind, &it->peer, it->reason, it->tag, NULL);
    lmd_worker_item_free(it);
}

static void drained(lmd_worker *w)
{
    if (w->dropping && w->queued <= w->queue_max / 2) {
        w->dropping = false;
        lmd_warn("policy: the events waiting for the policy worker are down to %zu; %lu event(s) got the fallback "
                 "verdict while it could not keep up", w->queued, w->dropped);
    }
}

/* The queue is over its bound: the oldest waiting event that is not about
 * the peer in flight gets the fallback verdict now (the events of one peer
 * keep their order: none before it is waiting, none is in flight). */
static void drop_one(lmd_worker *w)
{
    const char *busy = w->inflight ? w->inflight->peer.name : NULL;
    struct item **pp = &w->head;
    while (*pp && busy && (*pp)->peer.name && !strcmp((*pp)->peer.name, busy))
        pp = &(*pp)->next;
    struct item *it = *pp;
    if (!it)
        return; /* all about the peer in flight: they wait */
    if (!(*pp = it->next))
        w->tail = pp;
    w->queued--;
    w->dropped++;
    if (!w->dropping) {
        char e[160];
        w->dropping = true;
        lmd_error("policy: %zu events wait for the policy worker, which is slower than the network: the oldest get "
                  "the fallback verdict, their hooks do not run (from the %s of \"%s\" on; make the hooks faster)",
                  w->queue_max, lmd_event_kind_name(it->kind), lmd_escape_str(it->peer.name, e, sizeof e));
    }
    lmd_worker_fallback(w, it);
}

void lmd_worker_pump(lmd_worker *w)
{
    while (w->head && !w->hold && !w->inflight &&
           (w->state == LMD_WORKER_SUSPENDED || (w->state == LMD_WORKER_RUNNING && w->op == OP_NONE))) {
        struct item *it = w->head;
        if (!(w->head = it->next))
            w->tail = &w->head;
        w->queued--;
        drained(w);
        if (w->state == LMD_WORKER_SUSPENDED)
            lmd_worker_fallback(w, it);
        else
            send_event(w, it);
    }
}

int lmd_worker_post(lmd_worker *w, int kind, const lmd_node_info *peer, const lmd_node_info *old,
                    unsigned changes, const char *reason, int tag)
{
    struct item *it = calloc(1, sizeof *it);
    if (!it)
        return LMD_ENOMEM;
    it->kind = kind;
    it->tag = tag;
    it->changes = changes;
    it->has_old = old != NULL;
    if (lmd_node_info_copy(&it->peer, peer) != 0 || (old && lmd_node_info_copy(&it->old, old) != 0) ||
        (reason && !(it->reason = lmd_strdup(reason)))) {
        lmd_worker_item_free(it);
        return LMD_ENOMEM;
    }
    *w->tail = it;
    w->tail = &it->next;
    w->queued++;
    lmd_worker_pump(w);
    while (w->queued > w->queue_max && w->head) {
        size_t before = w->queued;
        drop_one(w);
        if (w->queued == before)
            break;
    }
    return 0;
}

bool lmd_worker_idle(const lmd_worker *w) { return !w->head && !w->inflight; }

void lmd_worker_hold(lmd_worker *w, bool hold)
{
    w->hold = hold;
    if (!hold)
        lmd_worker_pump(w);
}

void lmd_worker_take_queue(lmd_worker *to, lmd_worker *from)
{
    if (from->head) {
        *to->tail = from->head;
        to->tail = from->tail;
        from->head = NULL;
        from->tail = &from->head;
        to->queued += from->queued;
        from->queued = 0;
    }
    lmd_worker_pump(to);
}
