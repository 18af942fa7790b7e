/* What the files of src/registry/ share: the peer table's insides. */
#ifndef LMD_REGISTRY_INTERNAL_H
#define LMD_REGISTRY_INTERNAL_H

#include "registry/peers.h"

struct lmd_rinst {
    /* host, address, its interface and TXT live in ONE allocation, data
     * (lmd_rinst_fill; read through lmd_ri_*): a peer's instances are
     * many, their fields small */
    char *data;
    const char *ifname; /* interned (lmd_peers_intern): "eth0"; "dns" for a wide-area source */
    const char *domain; /* its source's domain ("local", the wide-area domain), interned in the table
                        * (lmd_peers_intern; never NULL): the peer's while it speaks, so that each
                        * source is verified in its own domain (issue 20) */
    unsigned long seq;  /* when it was last resolved; the newest one speaks for the peer */
    double held_until;  /* >= 0: said goodbye (trusted peer); dropped then unless seen again */
    int ifindex, addr_ifindex;
    unsigned flags;
    uint32_t txt_len;   /* the TXT record as wire bytes (lmd_rinst_txt), at data + o_txt */
    uint16_t port;
    uint16_t o_addr, o_aif, o_txt; /* offsets in data: the address as text ("": none), its interface, the TXT */
    uint8_t proto, addr_family;
    bool has_host;      /* data begins with the host (else none) */
};

static inline const char *lmd_ri_host(const struct lmd_rinst *ri) { return ri->has_host ? ri->data : NULL; }
static inline const char *lmd_ri_addr(const struct lmd_rinst *ri) { return ri->data + ri->o_addr; }
static inline const char *lmd_ri_aif(const struct lmd_rinst *ri) { return ri->data + ri->o_aif; }
static inline const unsigned char *lmd_ri_txt(const struct lmd_rinst *ri)
{
    return (const unsigned char *)ri->data + ri->o_txt;
}

/* The instance's address and TXT as consumers see them (merge.c). */
void lmd_rinst_addr(const struct lmd_rinst *ri, lmd_addr *out);
int lmd_rinst_txt(const struct lmd_rinst *ri, lmd_txt *out);

/* An instance's place: which interface, which protocol (rejoin.c). */
struct lmd_inst_key { /* 4 bytes: 8 of them in every peer */
    int ifindex : 28;     /* Linux numbers interfaces from 1 up; one past 2^27 would only make a
                           * returning peer's join wait for an instance (the settle window at most) */
    unsigned proto : 4;   /* 4 or 6 */
};
#define LMD_REJOIN_KEYS 8     /* instances remembered per peer */
#define LMD_REJOIN_MEMORY 64  /* peers remembered after they left */

/* A peer holds its instances, not what consumers see of it: that view (an
 * lmd_node_info, with its addresses as lmd_addr) is built from them when
 * someone asks (lmd_peers_build: an event, a snapshot, the verifier) and
 * freed after, so that an idle peer costs its instances and this entry. */
struct lmd_peer { /* pointers, then times, then the small fields: no padding to speak of */
    char *name;
    const char *type;   /* interned (lmd_peers_intern) */
    const char *domain; /* interned: the speaking instance's, once one has a domain */
    struct lmd_rinst *insts;
    lmd_node_info *pend_old; /* state before the changes being settled */
    char *pinfo;       /* policy info, or NULL */
    char *prefer_host; /* the last trusted instance's host, port and source: it speaks for the peer */
    size_t pinfo_len;
    double first_seen, last_seen; /* wall-clock */
    double deadline;   /* monotonic; < 0: none */
    double hold;       /* end of the settle window; < 0: none */
    double trust_until; /* monotonic: when the clock alone may change the verdict; < 0: never */
    double trust_due;  /* monotonic: when to judge again (trust_until, or sooner); < 0: never */
    struct lmd_inst_key had[LMD_REJOIN_KEYS]; /* the instances it has had (and had when it last left) */
    uint32_t n_insts;
    int trust;         /* the agent's verdict: -1 not judged, else its status (0: trusted) */
    uint16_t prefer_port;
    uint8_t n_had;
    char signer[17];   /* as lmd_peers_verdict's */
    bool joined;       /* settled: its instances gathered (a join is due if it may be seen) */
    bool shown;        /* its join has been reported (consumers see it) */
    bool confirming;
    bool kept;
    bool unhealthy;
    bool prefer_dns;
    bool speaker_dns;  /* the instance speaking now is from DNS (lmd_peers_merge) */
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
    char **strs; /* the sources' domains and the services' types, each held once (lmd_peers_intern) */
    size_t n_strs, cap_strs;
    lmd_node_info got; /* what lmd_peers_get last returned (valid until its next call) */
    bool has_got;
};

/* The string d as held by the table (one copy per distinct string, freed
 * with the table: "local", the wide-area domains, the browsed types), or
 * NULL when out of memory. */
const char *lmd_peers_intern(lmd_peers *r, const char *d);

/* instances.c.  Fill ri from a resolver's answer (its data in one
 * allocation; the old one freed), seq: when. */
int lmd_rinst_fill(lmd_peers *r, struct lmd_rinst *ri, const struct lmd_instance *in, unsigned long seq);
/* Whether the answer in says what ri holds already (a refresh). */
bool lmd_rinst_same(lmd_peers *r, const struct lmd_rinst *ri, const struct lmd_instance *in);
/* p's instance on in's interface and protocol, or NULL. */
struct lmd_rinst *lmd_rinst_find(struct lmd_peer *p, const struct lmd_instance *in);

/* Index of name, or where it would go (*found = false). */
size_t lmd_peers_find(const lmd_peers *r, const char *name, bool *found);
struct lmd_peer *lmd_peers_lookup(const lmd_peers *r, const char *name);
/* merge.c.  The instance that speaks for p (host, port, TXT): the newest,
 * with trust the newest of the trusted host's, over DNS the same server's
 * mDNS one. */
const struct lmd_rinst *lmd_peers_speaker(const struct lmd_peer *p);
/* Whether a speaking for its peer would show what b speaking shows (the
 * same host, port, TXT, domain and source): then which of them is the
 * newest changes nothing. */
bool lmd_peers_alike(const struct lmd_rinst *a, const struct lmd_rinst *b);
/* Note who speaks for p now (speaker_dns, domain): after its instances
 * changed.  Allocates nothing. */
void lmd_peers_merge(struct lmd_peer *p);
/* p's LMD_NODE_* flags as its view shows them (no allocation). */
unsigned lmd_peers_flags(const struct lmd_peer *p);
/* What consumers see of p, built from its instances (owned by out: free
 * with lmd_node_info_clear). */
int lmd_peers_build(const struct lmd_peer *p, lmd_node_info *out);
/* The same without allocating (name, type and domain only, borrowed from p;
 * not to be cleared): when out of memory, for a leave that must be told. */
void lmd_peers_build_min(const struct lmd_peer *p, lmd_node_info *out);

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
/* Ask the verifier about what p shows (view: p's, built; NULL: built here).
 * No verifier, or out of memory: false, v untouched. */
bool lmd_peers_ask(lmd_peers *r, struct lmd_peer *p, const lmd_node_info *view, double wall,
                   struct lmd_peers_verdict *v);
/* Whether the trusted verdict on p stands for cur without asking: only
 * addresses went (the instances that had them did), so that cur's are a
 * subset of before's (ch: their lmd_peers_diff), the verdict is trusted
 * and the clock has not ended it.  Same record, fewer addresses: every
 * row of the verdict passes as it did (a leave costs no verdict). */
bool lmd_peers_fewer_addrs(const struct lmd_peer *p, const lmd_node_info *before, const lmd_node_info *cur,
                           unsigned ch, double now);
/* Take a verdict for what p shows: the trusted mark, the signer, when the
 * clock may change it; the judged callback when it changed. */
void lmd_peers_take(lmd_peers *r, struct lmd_peer *p, const struct lmd_peers_verdict *v, double now, double wall);
/* Tell consumers what became of p: its join when it may be seen and was
 * not, its leave ("untrusted") when it may no longer be, else the update
 * from old (taken; NULL: nothing changed).  now < 0: at once, unsettled. */
void lmd_peers_report(lmd_peers *r, struct lmd_peer *p, lmd_node_info *old, double now);
/* An update of a shown peer (cur: its view now), reported now or settled
 * (peers.c); takes old. */
void lmd_peers_changed(lmd_peers *r, struct lmd_peer *p, const lmd_node_info *cur, lmd_node_info *old,
                       double now);
unsigned lmd_peers_diff(const lmd_node_info *a, const lmd_node_info *b);

#endif
