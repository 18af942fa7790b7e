/* The verdict on an announcement (trust.h): one function of the
 * announcement, the clock and what the verifier holds (fleet keys,
 * revocation list, the newest signature seen per signer and name), with
 * each distinct signed record verified once. */
#include "trust/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The signature cache: direct-mapped, keyed by a hash of the key, the
 * signature and the bytes signed (BLAKE2b, 16 bytes: finding other bytes
 * with a cached good entry's hash is a second preimage, 2^128 work).  A
 * LAN's worth of distinct records fits; a flood of distinct bad
 * signatures only evicts entries, each costing one verification again. */
#define CACHE_SLOTS 1024
#define CACHE_KEY 16

struct slot {
    unsigned char key[CACHE_KEY];
    unsigned char state; /* 0: empty, 1: good, 2: bad */
};

/* lmd-cert and lmd-sig as last decoded (base64 decoding costs more than
 * the rest of a verdict but the signature check): two-way set-associative
 * (the least recently used of the two makes room), keyed by a hash of the
 * two values.  Direct-mapped, a burst of 60 registrations evicted entries
 * between a record's first verdict and its next one (its other address). */
#define PARSED_SLOTS 64

struct parsed {
    unsigned char key[CACHE_KEY];
    bool used;
    uint32_t stamp; /* when last used (v->clock) */
    lmd_trust_cert cert;
    lmd_trust_sig sig;
};

/* The newest trusted signature seen for a signer and a name. */
struct newest {
    uint32_t hash;       /* of pk and key: scans compare this first */
    unsigned char pk[LMD_TRUST_KEY_BYTES];
    char *key;           /* "name\ntype\ndomain", folded as the signature folds them */
    uint64_t issued;
    uint32_t expiry;
};
/* Entries stay after they expire (a clock set back makes them valid
 * again); past this many (a fleet's worth of signed names) the one
 * expiring first makes room.  One signer holds at
 * most NEWEST_PER_SIGNER (far more names than an agent announces: 64
 * registrations and its own): past that its own entry expiring first makes
 * room, so that a host whose certificate names a pattern ('h3*') cannot
 * flood the table with names of its own until another signer's newest is
 * forgotten and that signer's older state can be replayed. */
#define NEWEST_MAX 4096
#define NEWEST_PER_SIGNER (NEWEST_MAX / 8)

struct lmd_trust_verifier {
    lmd_trust_fleet fleet;
    lmd_trust_revoked *revoked;
    struct slot *cache;     /* CACHE_SLOTS, allocated at the first use */
    struct parsed *parsed;  /* PARSED_SLOTS, likewise */
    uint32_t clock;         /* counts uses of parsed (least recently used) */
    struct newest *newest;
    size_t n_newest, cap_newest;
    uint32_t *slots;        /* the newest by hash: index + 1 (0: free), open addressing */
    size_t n_slots;         /* a power of two, more than twice n_newest; 0: none yet */
    struct lmd_trust_stats stats;
};

int lmd_trust_verifier_new(lmd_trust_verifier **out, lmd_err *err)
{
    int rc = lmd_trust_sodium(err);
    if (rc)
        return rc;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : lmd_err_set(err, LMD_ENOMEM, "out of memory");
}

void lmd_trust_verifier_free(lmd_trust_verifier *v)
{
    if (!v)
        return;
    free(v->fleet.keys);
    lmd_trust_revoked_free(v->revoked);
    free(v->cache);
    free(v->parsed);
    for (size_t i = 0; i < v->n_newest; i++)
        free(v->newest[i].key);
    free(v->newest);
    free(v->slots);
    free(v);
}

int lmd_trust_verifier_set_fleet(lmd_trust_verifier *v, const lmd_trust_fleet *f)
{
    size_t n = f ? f->n : 0;
    lmd_trust_pubkey *keys = NULL;
    if (n && !(keys = malloc(n * sizeof *keys)))
        return LMD_ENOMEM;
    if (n)
        memcpy(keys, f->keys, n * sizeof *keys);
    free(v->fleet.keys);
    v->fleet.keys = keys;
    v->fleet.n = n;
    /* the cache holds whether bytes verify under a key, which no fleet
     * change alters: it stays */
    return 0;
}

void lmd_trust_verifier_set_revoked(lmd_trust_verifier *v, lmd_trust_revoked *r)
{
    lmd_trust_revoked_free(v->revoked);
    v->revoked = r;
}

const lmd_trust_revoked *lmd_trust_verifier_revoked(const lmd_trust_verifier *v) { return v->revoked; }
const lmd_trust_fleet *lmd_trust_verifier_fleet(const lmd_trust_verifier *v) { return &v->fleet; }
void lmd_trust_verifier_stats(const lmd_trust_verifier *v, struct lmd_trust_stats *out) { *out = v->stats; }

bool lmd_trust_sig_ok(lmd_trust_verifier *v, const unsigned char sig[LMD_TRUST_SIG_BYTES], const unsigned char *msg,
                      size_t len, const unsigned char pk[LMD_TRUST_KEY_BYTES])
{
    if (!v)
        return crypto_sign_verify_detached(sig, msg, len, pk) == 0;
    unsigned char key[CACHE_KEY];
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, sizeof key);
    crypto_generichash_update(&h, pk, LMD_TRUST_KEY_BYTES);
    crypto_generichash_update(&h, sig, LMD_TRUST_SIG_BYTES);
    crypto_generichash_update(&h, msg, len);
    crypto_generichash_final(&h, key, sizeof key);
    if (!v->cache)
        v->cache = calloc(CACHE_SLOTS, sizeof *v->cache);
    struct slot *s = v->cache ? &v->cache[(key[0] | (unsigned)key[1] << 8) % CACHE_SLOTS] : NULL;
    if (s && s->state && !memcmp(s->key, key, sizeof key)) {
        v->stats.cached++;
        return s->state == 1;
    }
    bool good = crypto_sign_verify_detached(sig, msg, len, pk) == 0;
    v->stats.signatures++;
    if (s) {
        memcpy(s->key, key, sizeof key);
        s->state = good ? 1 : 2;
    }
    return good;
}

/* ---- The newest signature per signer and name ----------------------------- */

static char *fold(char *p, const char *s, bool drop_dot)
{
    size_t n = strlen(s);
    if (drop_dot && n && s[n - 1] == '.')
        n--;
    for (size_t i = 0; i < n; i++)
        *p++ = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] + 32) : s[i];
    return p;
}

/* "name\ntype\ndomain" as the signature compares them; malloc'd. */
static char *newest_key(const lmd_trust_announcement *a)
{
    char *k = malloc(strlen(a->name) + strlen(a->type) + strlen(a->domain) + 3), *p = k;
    if (!k)
        return NULL;
    p = fold(p, a->name, false);
    *p++ = '\n';
    p = fold(p, a->type, true);
    *p++ = '\n';
    p = fold(p, a->domain, true);
    *p = '\0';
    return k;
}

/* FNV-1a over the key's first bytes and the name: to compare cheaply. */
static uint32_t newest_hash(const unsigned char *pk, const char *key)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < 8; i++)
        h = (h ^ pk[i]) * 16777619u;
    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 16777619u;
    return h;
}

/* The index of the newest by hash (v->slots): a verdict finds its
 * name's entry without a walk over a fleet's names. */
static size_t slot_of(const lmd_trust_verifier *v, size_t i)
{
    size_t mask = v->n_slots - 1, s = v->newest[i].hash & mask;
    while (v->slots[s] != i + 1)
        s = (s + 1) & mask;
    return s;
}

static void slot_put(lmd_trust_verifier *v, size_t i)
{
    size_t mask = v->n_slots - 1, s = v->newest[i].hash & mask;
    while (v->slots[s])
        s = (s + 1) & mask;
    v->slots[s] = (uint32_t)(i + 1);
}

/* Free slot s, moving the entries after it back (linear probing keeps no
 * tombstones). */
static void slot_free(lmd_trust_verifier *v, size_t s)
{
    size_t mask = v->n_slots - 1;
    v->slots[s] = 0;
    for (size_t j = (s + 1) & mask; v->slots[j]; j = (j + 1) & mask) {
        size_t home = v->newest[v->slots[j] - 1].hash & mask;
        /* the entry at j stays unless its home is cyclically outside (s, j] */
        if ((j > s && (home <= s || home > j)) || (j < s && home <= s && home > j)) {
            v->slots[s] = v->slots[j];
            v->slots[j] = 0;
            s = j;
        }
    }
}

/* Room for n entries: the table twice as large or more.  0 or LMD_ENOMEM. */
static int slots_fit(lmd_trust_verifier *v, size_t n)
{
    if (v->n_slots >= 2 * n + 2)
        return 0;
    size_t ns = v->n_slots ? v->n_slots : 64;
    while (ns < 2 * n + 2)
        ns *= 2;
    uint32_t *sl = calloc(ns, sizeof *sl);
    if (!sl)
        return LMD_ENOMEM;
    free(v->slots);
    v->slots = sl;
    v->n_slots = ns;
    for (size_t i = 0; i < v->n_newest; i++)
        slot_put(v, i);
    return 0;
}

static struct newest *newest_find(lmd_trust_verifier *v, const unsigned char *pk, const char *key)
{
    if (!v->n_slots)
        return NULL;
    uint32_t h = newest_hash(pk, key);
    size_t mask = v->n_slots - 1;
    for (size_t s = h & mask; v->slots[s]; s = (s + 1) & mask) {
        struct newest *e = &v->newest[v->slots[s] - 1];
        if (e->hash == h && !memcmp(e->pk, pk, LMD_TRUST_KEY_BYTES) && !strcmp(e->key, key))
            return e;
    }
    return NULL;
}

static void newest_drop(lmd_trust_verifier *v, size_t i)
{
    free(v->newest[i].key);
    slot_free(v, slot_of(v, i));
    size_t last = --v->n_newest;
    if (i != last) {
        size_t s = slot_of(v, last);
        v->newest[i] = v->newest[last];
        v->slots[s] = (uint32_t)(i + 1);
    }
}

/* Remember a trusted signature as the newest for its signer and name if
 * it is (takes key): whether it is.  Out of memory: forgotten, which only
 * weakens the rollback check until the next one. */
static bool newest_note(lmd_trust_verifier *v, const unsigned char *pk, char *key, uint64_t issued, uint32_t expiry,
                        int64_t now)
{
    struct newest *e = newest_find(v, pk, key);
    if (e) {
        free(key);
        if (issued == e->issued || (issued < e->issued && (int64_t)e->expiry > now))
            return false;
        e->issued = issued;
        e->expiry = expiry;
        return true;
    }
    /* Not forgotten when it expires: a wall clock set back makes it valid
     * again, and with it the refusal of the states it superseded (row 8);
     * room is made only when needed: this signer's own entry expiring
     * first when it holds its share, else the table's expiring first when
     * it is full (expired ones, then) */
    size_t mine = 0, own_first = 0, first = 0;
    for (size_t i = 0; i < v->n_newest; i++) {
        if (!memcmp(v->newest[i].pk, pk, LMD_TRUST_KEY_BYTES) &&
            (!mine++ || v->newest[i].expiry < v->newest[own_first].expiry))
            own_first = i;
        if (v->newest[i].expiry < v->newest[first].expiry)
            first = i;
    }
    if (mine >= NEWEST_PER_SIGNER)
        newest_drop(v, own_first);
    else if (v->n_newest >= NEWEST_MAX)
        newest_drop(v, first);
    size_t cap = v->cap_newest;
    if (v->n_newest == cap)
        cap = cap ? 2 * cap : 16; /* doubled: a new name does not copy them all */
    struct newest *n = slots_fit(v, v->n_newest + 1) != 0 ? NULL
                       : cap == v->cap_newest ? v->newest : realloc(v->newest, cap * sizeof *n);
    if (!n) {
        free(key);
        return false;
    }
    v->newest = n;
    v->cap_newest = cap;
    e = &v->newest[v->n_newest++];
    e->hash = newest_hash(pk, key);
    memcpy(e->pk, pk, LMD_TRUST_KEY_BYTES);
    e->key = key;
    e->issued = issued;
    e->expiry = expiry;
    slot_put(v, v->n_newest - 1);
    return true;
}

bool lmd_trust_verifier_knows(const lmd_trust_verifier *v, const char *host_id, const char *name, int64_t now)
{
    size_t nl = name ? strlen(name) : 0;
    for (size_t i = 0; v && i < v->n_newest; i++) {
        char id[LMD_TRUST_ID_HEX];
        const struct newest *e = &v->newest[i];
        lmd_trust_id_hex(e->pk, id);
        if ((int64_t)e->expiry > now && !strcmp(id, host_id) && !strncasecmp(e->key, name, nl) && e->key[nl] == '\n')
            return true;
    }
    return false;
}

/* ---- The verdict ------------------------------------------------------------------ */

/* lmd_trust_txt_get, remembered by the values' bytes. */
static enum lmd_trust_status decode(lmd_trust_verifier *v, const lmd_txt *t, lmd_trust_cert *cert,
                                    lmd_trust_sig *sig, lmd_trust_result *res)
{
    const lmd_txt_item *c = lmd_txt_get(t, LMD_TRUST_TXT_CERT), *s = lmd_txt_get(t, LMD_TRUST_TXT_SIG);
    if (!v || !c || !s || !c->has_value || !s->has_value)
        return lmd_trust_txt_get(t, cert, sig, res);
    unsigned char key[CACHE_KEY];
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, sizeof key);
    crypto_generichash_update(&h, c->value, c->value_len);
    crypto_generichash_update(&h, (const unsigned char *)"", 1);
    crypto_generichash_update(&h, s->value, s->value_len);
    crypto_generichash_final(&h, key, sizeof key);
    if (!v->parsed)
        v->parsed = calloc(PARSED_SLOTS, sizeof *v->parsed);
    struct parsed *p = NULL;
    if (v->parsed) {
        struct parsed *w = &v->parsed[(key[0] % (PARSED_SLOTS / 2)) * 2];
        bool hit1 = w[1].used && !memcmp(w[1].key, key, sizeof key);
        p = hit1 || (w[0].used && !memcmp(w[0].key, key, sizeof key)) ? &w[hit1]
            : &w[w[0].used && (!w[1].used || w[1].stamp < w[0].stamp)];
        p->stamp = ++v->clock;
    }
    if (p && p->used && !memcmp(p->key, key, sizeof key)) {
        *cert = p->cert;
        *sig = p->sig;
        lmd_trust_id_hex(cert->host_pk, res->host_id);
        lmd_trust_id_hex(cert->fleet_id, res->fleet_id);
        res->not_after = cert->not_after;
        res->status = LMD_TRUST_OK;
        return LMD_TRUST_OK;
    }
    enum lmd_trust_status st = lmd_trust_txt_get(t, cert, sig, res);
    if (st == LMD_TRUST_OK && p) {
        memcpy(p->key, key, sizeof key);
        p->used = true;
        p->cert = *cert;
        p->sig = *sig;
    }
    return st;
}

/* The table at the head of trust.h, in its order.  v: cache, revocation
 * list and newest signatures (NULL: none of them). */
static int judge(lmd_trust_verifier *v, const lmd_trust_fleet *fleet, const lmd_trust_announcement *a,
                 const char *const *peer_addrs, size_t n_peer, int64_t now, lmd_trust_result *res)
{
    char t1[32], t2[32];
    lmd_trust_cert cert;
    lmd_trust_sig sig;
    memset(res, 0, sizeof *res);
    if (v)
        v->stats.judged++;
    if (!fleet || !a || !a->txt || !a->name || !a->type || !a->domain) {
        lmd_trust_fail(res, LMD_TRUST_ERROR, "nothing to verify against");
        return LMD_EINVAL;
    }
    /* 1: decodable */
    if (decode(v, a->txt, &cert, &sig, res) != LMD_TRUST_OK)
        return LMD_EINVAL;
    /* 2, 3: chains to a fleet key, valid now */
    if (lmd_trust_cert_check_with(v, fleet, &cert, now, res) != 0)
        return res->status == LMD_TRUST_ERROR ? LMD_EIO : LMD_EINVAL;
    const char *h = res->host_id;
    /* From here on every verdict is the clock's too: it turns when a row
     * passed so far starts failing (the certificate's end, the
     * signature's) or a failing one starts passing.  res->valid_until
     * says the earliest. */
    uint32_t until = cert.not_after;
    /* 4: not revoked */
    const lmd_trust_revoked *rev = v ? v->revoked : NULL;
    if (lmd_trust_revoked_has(rev, &cert)) {
        char serial[LMD_TRUST_ID_HEX], fid[LMD_TRUST_ID_HEX];
        lmd_trust_serial_hex(cert.serial, serial);
        lmd_trust_id_hex(rev->fleet_id, fid);
        lmd_trust_fail(res, LMD_TRUST_REVOKED, "host key %s (certificate %s) is revoked by fleet key %s's list of %s",
                       h, serial, fid, lmd_trust_time_str((int64_t)rev->issued, t1));
        res->valid_until = until;
        return LMD_EINVAL;
    }
    /* 5: a name the certificate covers */
    if (!lmd_trust_cert_covers(&cert, a->name)) {
        char names[160];
        lmd_trust_cert_names_str(&cert, names, sizeof names);
        lmd_trust_fail(res, LMD_TRUST_NAME_NOT_COVERED, "host key %s is certified for %s, not for this name", h,
                       names);
        res->valid_until = until;
        return LMD_EINVAL;
    }
    /* 6: the signature's time */
    if ((int64_t)sig.expiry <= now) {
        lmd_trust_fail(res, LMD_TRUST_SIG_EXPIRED, "the signature by host key %s ended %s; it is %s (has its agent "
                       "stopped signing?)", h, lmd_trust_time_str(sig.expiry, t1), lmd_trust_time_str(now, t2));
        res->valid_until = until;
        return LMD_EINVAL;
    }
    if ((int64_t)sig.expiry > now + LMD_TRUST_SIG_MAX_AHEAD + LMD_TRUST_CLOCK_SKEW) {
        lmd_trust_fail(res, LMD_TRUST_SIG_TOO_FAR, "the signature by host key %s lasts until %s, more than %d h "
                       "ahead; a copy could be replayed that long", h, lmd_trust_time_str(sig.expiry, t1),
                       LMD_TRUST_SIG_MAX_AHEAD / 3600);
        uint32_t ok_from = sig.expiry - LMD_TRUST_SIG_MAX_AHEAD - LMD_TRUST_CLOCK_SKEW;
        res->valid_until = ok_from < until ? ok_from : until;
        return LMD_EINVAL;
    }
    if (sig.expiry < until)
        until = sig.expiry;
    /* 7: it covers exactly what was resolved */
    unsigned char *msg;
    size_t len;
    int rc = lmd_trust_canonical(a, &cert, &sig, &msg, &len);
    if (rc == LMD_ENOMEM) {
        lmd_trust_fail(res, LMD_TRUST_ERROR, "out of memory");
        return rc;
    }
    bool good = rc == 0 && lmd_trust_sig_ok(v, sig.sig, msg, len, cert.host_pk);
    free(msg);
    if (!good) {
        lmd_trust_fail(res, LMD_TRUST_BAD_SIGNATURE, "the announcement does not match the signature by host key %s: "
                       "its name, type, domain, port, host, TXT or signed addresses differ from what was signed", h);
        res->valid_until = until;
        return LMD_EINVAL;
    }
    /* 8: no newer signature for the name still valid */
    char *key = v ? newest_key(a) : NULL;
    struct newest *e = key ? newest_find(v, cert.host_pk, key) : NULL;
    if (e && sig.issued < e->issued && now < (int64_t)e->expiry) {
        free(key);
        lmd_trust_fail(res, LMD_TRUST_SUPERSEDED, "host key %s signed this name again later (%.3f s later, valid "
                       "until %s): an older state replayed", h, (double)(e->issued - sig.issued) / 1000,
                       lmd_trust_time_str(e->expiry, t1));
        res->valid_until = e->expiry < until ? e->expiry : until;
        return LMD_EINVAL;
    }
    /* 9: from addresses it signed */
    const char *bad = n_peer == 0 ? "" : NULL;
    for (size_t i = 0; i < n_peer && !bad; i++)
        if (!lmd_trust_sig_has_addr(&sig, peer_addrs[i]))
            bad = peer_addrs[i] ? peer_addrs[i] : "(null)";
    if (bad) {
        free(key);
        if (!*bad)
            lmd_trust_fail(res, LMD_TRUST_ADDRESS_NOT_SIGNED, "no resolved address to check against the %zu host "
                           "key %s signed", sig.n_addrs, h);
        else
            lmd_trust_fail(res, LMD_TRUST_ADDRESS_NOT_SIGNED, "%.64s is not one of the %zu addresses host key %s "
                           "signed", bad, sig.n_addrs, h);
        res->valid_until = until;
        return LMD_EINVAL;
    }
    res->status = LMD_TRUST_OK;
    res->expiry = sig.expiry;
    res->issued = sig.issued;
    res->valid_until = until;
    if (key)
        res->newest = newest_note(v, cert.host_pk, key, sig.issued, sig.expiry, now);
    snprintf(res->reason, sizeof res->reason, "%s: host key %s of fleet key %s, signed until %s",
             lmd_trust_status_name(LMD_TRUST_OK), h, res->fleet_id, lmd_trust_time_str(sig.expiry, t1));
    return 0;
}

int lmd_trust_verify(const lmd_trust_fleet *fleet, const lmd_trust_announcement *a, const char *const *peer_addrs,
                     size_t n_peer, int64_t now, lmd_trust_result *res)
{
    return judge(NULL, fleet, a, peer_addrs, n_peer, now, res);
}

int lmd_trust_judge(lmd_trust_verifier *v, const lmd_trust_announcement *a, const char *const *peer_addrs,
                    size_t n_peer, int64_t now, lmd_trust_result *res)
{
    return judge(v, &v->fleet, a, peer_addrs, n_peer, now, res);
}

int lmd_trust_judge_node(lmd_trust_verifier *v, const lmd_node_info *peer, int64_t now, lmd_trust_result *res)
{
    const char *few[32] = {NULL}, **addrs = peer->n_addrs <= 32 ? few : malloc(peer->n_addrs * sizeof *addrs);
    if (!addrs) {
        memset(res, 0, sizeof *res);
        lmd_trust_fail(res, LMD_TRUST_ERROR, "out of memory");
        return LMD_ENOMEM;
    }
    for (size_t i = 0; i < peer->n_addrs; i++)
        addrs[i] = peer->addrs[i].addr;
    lmd_trust_announcement ann = {.name = peer->name, .type = peer->type, .domain = peer->domain,
                                  .port = peer->port, .host = peer->host, .txt = &peer->txt};
    int rc = lmd_trust_judge(v, &ann, addrs, peer->n_addrs, now, res);
    if (addrs != few)
        free(addrs);
    return rc;
}
