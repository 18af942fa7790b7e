/* lmdisc — LAN discovery for LMServ servers over mDNS/DNS-SD (avahi).
 *
 * The names follow the Python module lmdisc replaces:
 *   announce_self(port, info)        -> lmd_announce_self()
 *   discover_nodes(timeout)          -> lmd_discover_nodes()
 *   NodeInfo(host, port, info)       -> lmd_node_info
 *   REGISTRY.list_alive()            -> lmd_registry_list_alive()
 *
 * All functions return 0 on success or a negative LMD_E* code; lmd_strerror()
 * turns a code into text.  Strings are NUL-terminated UTF-8 as far as the
 * network allows; TXT values are byte strings with an explicit length.
 *
 * ABI rules.  liblmdisc.so.0 keeps its ABI: a program built against this
 * header runs with any later liblmdisc.so.0.  So that the structs below can
 * still grow:
 * - Functions are only added, never removed or changed.
 * - Option structs (lmd_discover_opts, lmd_announce_opts), which the caller
 *   allocates, begin with size: sizeof the struct the caller was compiled
 *   with, set by LMD_DISCOVER_OPTS_INIT / LMD_ANNOUNCE_OPTS_INIT.  Fields are
 *   only appended, each at or past the former sizeof.  The library reads the
 *   fields size covers and takes later ones as zero (an older program, a
 *   newer library); bytes past the fields it knows must be zero, else the
 *   call fails with LMD_EINVAL rather than ignore what was asked (a newer
 *   program, an older library: check lmd_version()).  size 0, as in a zeroed
 *   struct, stands for this first layout: such a caller never sees a field
 *   added later.
 * - Structs the library fills, which programs index in arrays (lmd_node_info,
 *   lmd_addr, lmd_rival), keep their size for good: each ends in reserved
 *   space, zeroed by the library, from which a later version takes new
 *   fields whose zero means "not known".
 * - lmd_txt, lmd_txt_item and lmd_node_list are frozen as they are: a
 *   counted array and an RFC 6763 key/value pair have nothing to add.
 * - Constants (LMD_E*, LMD_NODE_*) keep their values; new ones are added.
 * The assertions at the end of this header, tests/abi/ (layout and exported
 * symbols against committed lists) and debian/liblmdisc0.symbols hold this.
 */
#ifndef LMDISC_H
#define LMDISC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* LMD_VERSION ("MAJOR.MINOR.PATCH") and LMD_VERSION_MAJOR/MINOR/PATCH, the
 * version this header belongs to, generated from the build's one version. */
#include "lmdisc_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What liblmdisc exports: everything else is built hidden
 * (-fvisibility=hidden), so this header is the library's whole ABI.  Other
 * compilers than GCC and Clang get plain declarations. */
#if defined(__GNUC__) || defined(__clang__)
#define LMD_API __attribute__((visibility("default")))
#else
#define LMD_API
#endif

#define LMD_DEFAULT_TYPE "_lmserv._tcp"

enum lmd_error {
    LMD_OK = 0,
    LMD_EINVAL = -1,      /* invalid argument */
    LMD_ENOMEM = -2,      /* out of memory */
    LMD_EAVAHI = -3,      /* avahi reported an error */
    LMD_ENODAEMON = -4,   /* avahi-daemon is not running */
    LMD_ETIMEDOUT = -5,   /* gave up waiting */
    LMD_ETXT = -6,        /* invalid TXT data */
    LMD_ECOLLISION = -7,  /* name collision that could not be resolved */
    LMD_EIO = -8,         /* I/O error */
    LMD_ELUA = -9,        /* error in a Lua script */
    LMD_ENOTFOUND = -10,  /* no such object */
    LMD_EEXIST = -11,     /* already there (a name taken) */
    LMD_ELIMIT = -12,     /* a limit is reached */
    LMD_EUNAVAIL = -13,   /* not available now (draining, nothing to announce with) */
    LMD_EPERM = -14,      /* not allowed to this caller */
};

LMD_API const char *lmd_strerror(int err);
/* The version of the library loaded at run time (LMD_VERSION is the one the
 * program was compiled against). */
LMD_API const char *lmd_version(void);

/* ---- TXT records ------------------------------------------------------ */

typedef struct lmd_txt_item {
    char *key;              /* printable ASCII, no '=' */
    unsigned char *value;   /* raw bytes, NUL-terminated for convenience */
    size_t value_len;
    bool has_value;         /* false for a bare "key" (boolean attribute) */
} lmd_txt_item;

typedef struct lmd_txt {
    size_t n;
    lmd_txt_item *items;
} lmd_txt;

#define LMD_TXT_ITEM_MAX 255

/* Set key to value (replacing an existing key, compared case-insensitively
 * as RFC 6763 says).  On a validation error returns LMD_ETXT and, if err is
 * not NULL, writes a one-line explanation. */
LMD_API int lmd_txt_set(lmd_txt *t, const char *key, const void *value, size_t len,
                bool has_value, char *err, size_t errlen);
/* Parse "key=value" (or bare "key") as given on a command line. */
LMD_API int lmd_txt_parse_arg(lmd_txt *t, const char *arg, char *err, size_t errlen);
LMD_API const lmd_txt_item *lmd_txt_get(const lmd_txt *t, const char *key);
LMD_API int lmd_txt_remove(lmd_txt *t, const char *key);
LMD_API int lmd_txt_copy(lmd_txt *dst, const lmd_txt *src);
LMD_API bool lmd_txt_equal(const lmd_txt *a, const lmd_txt *b);
LMD_API void lmd_txt_free(lmd_txt *t);

/* ---- Nodes (the original NodeInfo) ----------------------------------- */

typedef struct lmd_addr {
    char addr[64];          /* textual address; IPv6 link-local carries %ifname */
    int family;             /* 4 or 6 */
    int ifindex;
    char ifname[32];
    int32_t reserved[6];    /* zero (see "ABI rules" above) */
} lmd_addr;

enum {
    LMD_NODE_LOCAL = 1 << 0,   /* published on this host */
    LMD_NODE_OWN = 1 << 1,     /* published by this very process */
    LMD_NODE_CONFLICT = 1 << 2, /* instances of this name disagree on host or port: shown is the
                                 * newest, with only its own host's addresses */
    LMD_NODE_TRUSTED = 1 << 3,  /* its announcement is signed by a host key a trusted fleet certified */
    /* The sources it is currently seen through (a peer has at least one): */
    LMD_NODE_MDNS = 1 << 4,     /* mDNS, on one of our links */
    LMD_NODE_DNS = 1 << 5,      /* a wide-area DNS-SD domain */
};

/* An instance record of the same name that disagrees with the one shown
 * (another host or port: a stale or forged announcement), with
 * LMD_NODE_CONFLICT. */
typedef struct lmd_rival {
    char host[256];         /* its SRV target, "" if none */
    uint16_t port;
    lmd_addr addr;          /* the address it resolved to (addr "" if none) */
    int32_t reserved[31];   /* zero */
} lmd_rival;

typedef struct lmd_node_info {
    char *name;             /* service instance name, e.g. "h1:8000" */
    char *type;             /* e.g. "_lmserv._tcp" */
    char *domain;           /* e.g. "local" */
    char *host;             /* target host name, e.g. "h1.local" */
    uint16_t port;
    char *info;             /* TXT "info", NULL if absent (as NodeInfo.info); NUL-terminated */
    size_t info_len;        /* its length: a TXT value may hold NUL bytes (0 with info set: strlen) */
    size_t n_addrs;
    lmd_addr *addrs;        /* every address, across interfaces, IPv4 and IPv6; the nearest first:
                             * those seen over mDNS, then those from DNS (ifname "dns") */
    lmd_txt txt;            /* every TXT key */
    unsigned flags;         /* LMD_NODE_* */
    char signer[20];        /* with LMD_NODE_TRUSTED: the signing host key's id (hex), else "" */
    double first_seen;      /* wall-clock seconds since the epoch */
    double last_seen;
    size_t n_rivals;
    lmd_rival *rivals;      /* with LMD_NODE_CONFLICT: the disagreeing instance records */
    uint64_t reserved[14];  /* zero; a later field takes one slot (a pointer, size_t, double...) */
} lmd_node_info;

typedef struct lmd_node_list {
    size_t n;
    lmd_node_info *nodes;
} lmd_node_list;

LMD_API void lmd_node_info_clear(lmd_node_info *n);
LMD_API int lmd_node_info_copy(lmd_node_info *dst, const lmd_node_info *src);
LMD_API void lmd_node_list_free(lmd_node_list *l);

/* ---- One-shot discovery ---------------------------------------------- */

typedef struct lmd_discover_opts {
    size_t size;            /* LMD_DISCOVER_OPTS_INIT sets it (0: this layout) */
    double timeout;         /* upper bound in seconds when the timeout argument is <= 0
                             * (both <= 0: 5) */
    const char *type;       /* NULL: LMD_DEFAULT_TYPE */
    const char *domain;     /* NULL: "local" */
    bool complete;          /* out: true if the network answered before timeout */
} lmd_discover_opts;

#define LMD_DISCOVER_OPTS_INIT {.size = sizeof(lmd_discover_opts)}

/* Browse, resolve every instance, merge instances of one service seen on
 * several interfaces and over IPv4 and IPv6 into one node, and return as
 * soon as avahi says the network has answered (ALL_FOR_NOW and every
 * resolver finished).  timeout is only the upper bound: the argument when it
 * is > 0, else opts->timeout when > 0, else 5 seconds.  opts may be NULL. */
LMD_API int lmd_discover_nodes(double timeout, lmd_discover_opts *opts, lmd_node_list *out);

/* ---- Announcing ------------------------------------------------------ */

typedef struct lmd_announce_opts {
    size_t size;            /* LMD_ANNOUNCE_OPTS_INIT sets it (0: this layout) */
    const char *name;       /* NULL: "<hostname>:<port>" */
    const char *type;       /* NULL: LMD_DEFAULT_TYPE */
    const lmd_txt *txt;     /* extra TXT keys (info is added from the info argument) */
} lmd_announce_opts;

#define LMD_ANNOUNCE_OPTS_INIT {.size = sizeof(lmd_announce_opts)}

typedef struct lmd_announcement lmd_announcement;

/* Announce this node on every interface, IPv4 and IPv6, in the background
 * (a thread owned by the announcement), like the original announce_self.
 * Returns once the request is handed to avahi; collisions are resolved by
 * renaming.  Withdraw with lmd_announce_withdraw().  LMD_ETXT for a TXT key
 * beginning with "lmd-" (any case): those are lmdisc's own (signatures,
 * liveness). */
LMD_API int lmd_announce_self(uint16_t port, const char *info, const lmd_announce_opts *opts,
                      lmd_announcement **out);
/* Current (possibly renamed) instance name; copied into buf. */
LMD_API int lmd_announce_name(lmd_announcement *a, char *buf, size_t len);
/* Send goodbyes and free the announcement. */
LMD_API void lmd_announce_withdraw(lmd_announcement *a);

/* ---- A live registry (the original REGISTRY) ---------------------------- */

typedef struct lmd_registry lmd_registry;

/* Start a registry that a background thread keeps up to date: it browses
 * type (NULL: LMD_DEFAULT_TYPE), keeps one resolver open per instance, and
 * drops a peer not confirmed by the network for ttl seconds (<= 0: 60).
 * Joins are seen when avahi resolves them, leaves on the goodbye. */
LMD_API int lmd_registry_start(const char *type, double ttl, lmd_registry **out);
/* Snapshot of the live peers, sorted by name; free with lmd_node_list_free().
 * Safe to call from any thread. */
LMD_API int lmd_registry_list_alive(lmd_registry *reg, lmd_node_list *out);
/* Stop the thread and free the registry. */
LMD_API void lmd_registry_stop(lmd_registry *reg);

/* ---- Helpers --------------------------------------------------------- */

/* Validate a DNS-SD service type such as "_lmserv._tcp". */
LMD_API bool lmd_service_type_valid(const char *type, char *err, size_t errlen);
/* Default instance name "<hostname>:<port>". */
LMD_API int lmd_default_name(uint16_t port, char *buf, size_t len);

/* ---- The layout promised above ----------------------------------------
 * A compiler that lays these structs out otherwise (packing flags, another
 * ABI) stops here instead of corrupting memory.  The full layout, every
 * offset, is in tests/abi/. */
#if defined(__cplusplus) && __cplusplus >= 201103L
#define LMD_ABI_ASSERT(c, m) static_assert(c, m)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define LMD_ABI_ASSERT(c, m) _Static_assert(c, m)
#endif
#ifdef LMD_ABI_ASSERT
LMD_ABI_ASSERT(sizeof(lmd_addr) == 128, "lmd_addr is 128 bytes");
LMD_ABI_ASSERT(sizeof(lmd_rival) == 512 && offsetof(lmd_rival, addr) == 260, "lmd_rival is 512 bytes");
LMD_ABI_ASSERT(offsetof(lmd_discover_opts, size) == 0 && offsetof(lmd_announce_opts, size) == 0,
               "option structs begin with their size");
#if UINTPTR_MAX == UINT64_MAX && SIZE_MAX == UINT64_MAX
LMD_ABI_ASSERT(sizeof(lmd_node_info) == 256 && offsetof(lmd_node_info, reserved) == 144,
               "lmd_node_info is 256 bytes (64-bit)");
LMD_ABI_ASSERT(sizeof(lmd_txt_item) == 32 && sizeof(lmd_txt) == 16 && sizeof(lmd_node_list) == 16,
               "lmd_txt_item, lmd_txt and lmd_node_list are frozen (64-bit)");
LMD_ABI_ASSERT(sizeof(lmd_discover_opts) == 40 && sizeof(lmd_announce_opts) == 32,
               "the first layout of the option structs (64-bit)");
#endif
#undef LMD_ABI_ASSERT
#endif

#ifdef __cplusplus
}
#endif
#endif
