/* Publishing off the loop: the publishing thread (publisher.c) and the
 * publish state machine it runs (publish.c).  Only files of src/mdns/
 * include it.
 *
 * avahi-client makes every entry group call (new, add, commit, reset,
 * update, free) and every record browser with a blocking D-Bus call, and
 * an avahi-daemon busy with a flood answered them seconds later: on the
 * agent's loop, a real peer's agent started during a 1,000-service flood
 * stalled up to 25 s inside avahi_entry_group_commit and its watchdog
 * ended it (tests/bench/hostile).  So, as the resolvers (pool.c), the
 * publishers live on a thread of their own, with an avahi client of their
 * own: the loop side (struct lmd_pub) sends requests and gets the state
 * machine's events back as messages.  Nothing of avahi crosses between
 * the threads but copies; the thread does not log (messages carry the
 * text). */
#ifndef LMD_MDNS_PUBLISHER_H
#define LMD_MDNS_PUBLISHER_H

#include "base/log.h"
#include "mdns/internal.h"
#include "mdns/queue.h"

#include <pthread.h>
#include <stdint.h>

typedef struct lmd_publisher lmd_publisher;
struct lmd_ppub;

enum lmd_pmsg_kind {
    LMD_PMSG_EVENT, /* ev, name, text (FAILED's detail) */
    LMD_PMSG_DOWN,  /* not established any more (collision, daemon gone) */
    LMD_PMSG_LOG,   /* level, text */
};

/* What the thread tells the loop (copies; next must come first). */
struct lmd_pmsg {
    struct lmd_pmsg *next;
    enum lmd_pmsg_kind kind;
    uint64_t id; /* the lmd_pub's (0: none) */
    enum lmd_pub_event ev;
    enum lmd_log_level level;
    char *name, *text;
};

struct lmd_publisher {
    lmd_mdns *m;
    pthread_t thread;
    bool started;
    struct lmd_queue in, out; /* requests to the thread, messages back */
    struct event *out_ev;     /* loop side: messages to read */
    uint64_t next_id;         /* loop side: the next lmd_pub's id */
    /* publishing thread only */
    struct event_base *base;
    struct event *in_ev;
    struct event *rebuild;    /* the client failed: a new one, from the loop */
    struct event *retry;      /* no system bus: try again later */
    unsigned retries;
    lmd_avahi_poll poll;
    AvahiClient *client;
    bool running;             /* the client is in S_RUNNING */
    struct lmd_ppub *pubs;
    void *quit_req;           /* made up front: quitting cannot fail */
    bool quit;
    /* lmd_publisher_free stopped waiting for the thread (a blocking call
     * to a daemon swamped by a flood): the thread frees it as it ends */
    pthread_mutex_t life;
    bool orphaned, finished;
};

/* ---- publisher.c: the thread ------------------------------------------ */

/* m's publisher, started (its thread, its client) on first use. */
int lmd_publisher_get(lmd_mdns *m, lmd_publisher **out);
void lmd_publisher_free(lmd_publisher *t);
/* From the thread: an event of publisher id's, or a log line. */
void lmd_publisher_say(lmd_publisher *t, enum lmd_pmsg_kind kind, uint64_t id, enum lmd_pub_event ev,
                       const char *name, const char *text);
void lmd_publisher_log(lmd_publisher *t, enum lmd_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- publish.c: one service's state machine, on the thread ------------- */

/* Takes name, type, domain (malloc'd; domain may be NULL) and txt. */
struct lmd_ppub *lmd_ppub_new(lmd_publisher *t, uint64_t id, char *name, char *type, char *domain, uint16_t port,
                              unsigned ttl, lmd_txt *txt);
struct lmd_ppub *lmd_ppub_find(lmd_publisher *t, uint64_t id);
/* Takes txt. */
void lmd_ppub_set_txt(struct lmd_ppub *p, lmd_txt *txt);
/* Withdraw (goodbye) and free; with the client going (quitting), only free. */
void lmd_ppub_free(struct lmd_ppub *p, bool client_going);
/* the client is running: (re)start every publisher */
void lmd_ppubs_start(lmd_publisher *t);
/* the host name is being (re)registered: our records go back on the
 * network once it is established */
void lmd_ppubs_reset(lmd_publisher *t);
/* the client and every avahi object it made are about to be freed */
void lmd_ppubs_forget(lmd_publisher *t);

#endif
