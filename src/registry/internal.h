/* What the files of src/registry/ share: the peer table's insides. */
#ifndef LMD_REGISTRY_INTERNAL_H
#define LMD_REGISTRY_INTERNAL_H

#include "registry/peers.h"

struct lmd_rinst {
    int ifindex;
    char ifname[16];   /* IFNAMSIZ; "dns" for a wide-area source */
    int proto;
    /* host, address and TXT live in ONE allocation, data (rinst_fill):
     * a peer's instances are many, their fields small */
    char *data;
    const char *host;       /* in data; NULL: none */
    const char *addr;       /* in data: the address as text ("": none) */
    const char *addr_ifname; /* in data */
    const unsigned char *txt; /* in data: the TXT record as wire bytes (lmd_rinst_txt) */
    size_t txt_len;
    int addr_family, addr_ifindex;
    uint16_t port;
    unsigned flags;
    unsigned long seq; /* when it was last resolved; the newest one speaks for the peer */
    const char *domain; /* its source's domain ("local", the wide-area domain), interned in the table
                        * (lmd_peers_intern; never NULL): the peer's while it speaks, so that each
                        * source is verified in its own domain (issue 20) */
    double held_until; /* >= 0: said goodbye (trusted peer); dropped then unless seen again */
};

/* The instance's address and TXT as consumers see them (merge.c). */
void lmd_rinst_addr(const struct lmd_rinst *ri, lmd_addr *out);
int lmd_rinst_txt(const struct lmd_rinst *ri, lmd_txt *out);

/* An instance's place: which interface, which protocol (rejoin.c). */
struct lmd_inst_key {
    int ifindex;
    int proto;
};
#define LMD_REJOIN_KEYS 8     /* instances remembered per peer */
#define LMD_REJOIN_MEMORY 64  /* peers remembered after they left */
#define LMD_DOMAINS_MAX 64    /* distinct source domains (sources are ours: "local", wide_area's) */

struct lmd_peer {
    lmd_node_info node;
    struct lmd_rinst *insts;
    size_t n_insts;
    double deadline;   /* monotonic; < 0: none */
    double hold;       /* end of the settle window; < 0: none */
    bool joined;       /* settled: its instances gathered (a join is due if it may be seen) */
    bool shown;        /* its join has been reported (consumers see it) */
    lmd_node_info *pend_old; /* state before the changes being settled */
    bool confirming;
    bool kept;
    bool unhealthy;
    char *pinfo;       /* policy info, or NULL */
    int trust;         /* the agent's verdict: -1 not judged, else its status (0: trusted) */
    double trust_until; /* monotonic: when the clock alone may change the verdict; < 0: never */
    double trust_due;  /* monotonic: when to judge again (trust_until, or sooner); < 0: never */
    char signer[20];
    char *prefer_host; /* the last trusted instance's host, port and source: it speaks for the peer */
    uint16_t prefer_port;
    bool prefer_dns;
    bool speaker_dns;  /* the instance speaking now is from DNS (lmd_peers_merge) */
    size_t pinfo_len;
    struct lmd_inst_key had[LMD_REJOIN_KEYS]; /* the instances it has had (and had when it last left) */
    size_t n_had;
};

/* The instances of a peer that left, by its name (rejoin.c). */
struct lmd_rejoin {
    char *name;                 /* NULL: a free slot */
    struct lmd_inst_key keys[LMD_REJOIN_KEYS];
    size_t n;
};

struct lmd_peers {
    struct lmd_peers_config cfg;
    lmd_peers_event_cb ev;
    lmd_peers_confirm_cb confirm;
    lmd_peers_verify_cb verify;
    lmd_peers_judged_cb judged;
    double wall_offset; /* wall - monotonic, as last given (for lmd_peers_tick) */
    double last_now;    /* the monotonic time last given */
    void *ud;
    struct lmd_peer **peers;
    size_t n, cap;
    unsigned long seq;
    struct lmd_rejoin gone[LMD_REJOIN_MEMORY]; /* the last peers that left */
    size_t gone_next;
    char *domains[LMD_DOMAINS_MAX]; /* the sources' domains, each held once (lmd_peers_intern) */
    size_t n_domains;
};

/* The domain d as held by the table (one copy per distinct domain, freed
 * with the table: "local" and the configured wide-area domains), or NULL
 * when out of memory or past LMD_DOMAINS_MAX distinct domains. */
const char *lmd_peers_intern(lmd_peers *r, const char *d);

/* Index of name, or where it would go (*found = false). */
size_t lmd_peers_find(const lmd_peers *r, const char *name, bool *found);
struct lmd_peer *lmd_peers_lookup(const lmd_peers *r, const char *name);
/* Recompute the peer's merged view (node) from its instances (merge.c). */
int lmd_peers_merge(struct lmd_peer *p);

/* rejoin.c: a peer that comes back waits for the instances it had.
 * note: p has had this instance; remember: p leaves (its instances are
 * kept under its name); recall: a new p of that name expects them;
 * expecting: one of them is not there yet (its join waits, the settle
 * window at most). */
void lmd_rejoin_note(struct lmd_peer *p, int ifindex, int proto);
void lmd_rejoin_remember(lmd_peers *r, const struct lmd_peer *p);
void lmd_rejoin_recall(lmd_peers *r, struct lmd_peer *p);
bool lmd_rejoin_expecting(const struct lmd_peer *p);
void lmd_rejoin_free(lmd_peers *r);

/* verdict.c: what may be seen of a peer, and telling consumers. */
enum lmd_view {
    LMD_VIEW_NONE,      /* nowhere: untrusted under require */
    LMD_VIEW_NETWORK,   /* listed as on the network only (our own, without include_self) */
    LMD_VIEW_PEER,      /* a peer: events, lists, metrics */
};
/* THE verdict on what consumers may see of p (peers.h, "The verdict"). */
enum lmd_view lmd_peers_view(const lmd_peers *r, const struct lmd_peer *p);
/* Ask the verifier about what p shows (no verifier: false, v untouched). */
bool lmd_peers_ask(lmd_peers *r, struct lmd_peer *p, double wall, struct lmd_peers_verdict *v);
/* Take a verdict for what p shows: the trusted mark, the signer, when the
 * clock may change it; the judged callback when it changed. */
void lmd_peers_take(lmd_peers *r, struct lmd_peer *p, const struct lmd_peers_verdict *v, double now, double wall);
/* Tell consumers what became of p: its join when it may be seen and was
 * not, its leave ("untrusted") when it may no longer be, else the update
 * from old (taken; NULL: nothing changed).  now < 0: at once, unsettled. */
void lmd_peers_report(lmd_peers *r, struct lmd_peer *p, lmd_node_info *old, double now);
/* An update of a shown peer, reported now or settled (peers.c); takes old. */
void lmd_peers_changed(lmd_peers *r, struct lmd_peer *p, lmd_node_info *old, double now);
unsigned lmd_peers_diff(const lmd_node_info *a, const lmd_node_info *b);

#endif
