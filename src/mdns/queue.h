/* A queue between two threads: a mutex-guarded list (each item's first
 * member is its link) and an eventfd that is readable while it has items:
 * the resolver pool's requests to its thread and messages back (pool.c). */
#ifndef LMD_MDNS_QUEUE_H
#define LMD_MDNS_QUEUE_H

#include <pthread.h>

struct lmd_queue {
    pthread_mutex_t mu;
    void *head, **tail; /* struct req / struct lmd_pool_msg, linked by their first member */
    int efd;
};

int lmd_queue_init(struct lmd_queue *q);
void lmd_queue_push(struct lmd_queue *q, void *item);
/* fn(&head, ud) under the queue's lock: it may change or unlink what is
 * queued (not what was taken); returns what fn returns.  (The tail is
 * set again after.) */
int lmd_queue_edit(struct lmd_queue *q, int (*fn)(void **head, void *ud), void *ud);
/* everything queued, in order */
void *lmd_queue_take(struct lmd_queue *q);
/* free what is left (item_free each) and the queue's fd and mutex */
void lmd_queue_drain(struct lmd_queue *q, void (*item_free)(void *));

#endif
