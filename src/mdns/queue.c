/* The resolver pool's two queues (see queue.h). */
#include "mdns/queue.h"
#include "lmdisc.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct link { struct link *next; };

int lmd_queue_init(struct lmd_queue *q)
{
    q->head = NULL;
    q->tail = &q->head;
    q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->efd < 0)
        return LMD_EIO;
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        close(q->efd);
        q->efd = -1;
        return LMD_EIO;
    }
    return 0;
}

void lmd_queue_push(struct lmd_queue *q, void *item)
{
    ((struct link *)item)->next = NULL;
    pthread_mutex_lock(&q->mu);
    bool was_empty = !q->head;
    *q->tail = item;
    q->tail = (void **)&((struct link *)item)->next;
    pthread_mutex_unlock(&q->mu);
    if (was_empty) {
        uint64_t one = 1;
        /* EAGAIN only when the counter is full: it is readable anyway */
        (void)!write(q->efd, &one, sizeof one);
    }
}

int lmd_queue_edit(struct lmd_queue *q, int (*fn)(void **head, void *ud), void *ud)
{
    pthread_mutex_lock(&q->mu);
    int rc = fn(&q->head, ud);
    q->tail = &q->head;
    while (*q->tail)
        q->tail = (void **)&((struct link *)*q->tail)->next;
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* everything queued, in order */
void *lmd_queue_take(struct lmd_queue *q)
{
    uint64_t n;
    (void)!read(q->efd, &n, sizeof n);
    pthread_mutex_lock(&q->mu);
    void *all = q->head;
    q->head = NULL;
    q->tail = &q->head;
    pthread_mutex_unlock(&q->mu);
    return all;
}

void lmd_queue_drain(struct lmd_queue *q, void (*item_free)(void *))
{
    if (q->efd < 0)
        return;
    for (struct link *x = q->head, *next; x; x = next) {
        next = x->next;
        item_free(x);
    }
    close(q->efd);
    pthread_mutex_destroy(&q->mu);
}

