/* What the files of src/mdns/ share: the client connection, and the calls
 * client.c makes into the publishers and browsers it owns.  Only avahi
 * headers here, and only files of this folder include it. */
#ifndef LMD_MDNS_INTERNAL_H
#define LMD_MDNS_INTERNAL_H

#include "mdns/mdns.h"
#include "mdns/poll.h"

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>

struct lmd_mdns {
    struct event_base *base;
    lmd_avahi_poll poll;
    AvahiClient *client;
    enum lmd_mdns_state state;
    lmd_mdns_state_cb cb;
    void *ud;
    struct lmd_pub *pubs;
    struct lmd_browse *browses;
    struct event *rebuild;
    struct event *retry;     /* no system bus: try to connect again later */
    unsigned retries;
    unsigned reconnects;
    bool told_waiting;
};

/* the client is running: (re)start every publisher / browser */
void lmd_mdns_pubs_start(lmd_mdns *m);
void lmd_mdns_browses_start(lmd_mdns *m);
/* the host name is being (re)registered: our records go back on the
 * network once it is established */
void lmd_mdns_pubs_reset(lmd_mdns *m);
/* the client and every avahi object it made are about to be freed; what
 * browsers knew stays, marked stale */
void lmd_mdns_pubs_forget(lmd_mdns *m);
void lmd_mdns_browses_forget(lmd_mdns *m);

/* TXT between lmd_txt and avahi's string lists and wire format (records.c) */
AvahiStringList *lmd_mdns_txt_to_avahi(const lmd_txt *t);
void lmd_mdns_txt_from_avahi(lmd_txt *t, AvahiStringList *l, const char *who);
/* An escaped domain name ("a\\.b._lmserv._tcp.local") in DNS wire format;
 * bytes written, or -1. */
int lmd_mdns_name_wire(const char *escaped, uint8_t *out, size_t cap);
int lmd_mdns_txt_wire(const lmd_txt *t, uint8_t *out, size_t cap);

#endif
