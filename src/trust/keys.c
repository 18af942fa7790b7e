/* Key files and the fleet list (see trust.h for the formats). */
#include "trust/internal.h"
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int lmd_trust_sodium(lmd_err *err)
{
    char why[256];
    if (!lmd_sodium_available(why, sizeof why))
        return lmd_err_set(err, LMD_EIO, "signing and verifying need libsodium (%s): install Debian's libsodium23",
                           why);
    if (sodium_init() < 0)
        return lmd_err_set(err, LMD_EIO, "libsodium could not initialise (no entropy source?)");
    return 0;
}

int lmd_trust_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return LMD_EIO;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int lmd_trust_create_file(const char *path, mode_t mode, const char *text, size_t len, lmd_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno == EEXIST)
        return lmd_err_set(err, LMD_EIO, "%s already exists; not overwriting it: remove it first or choose another name",
                           path);
    if (fd < 0)
        return lmd_err_set(err, LMD_EIO, "cannot create %s: %s", path, strerror(errno));
    int rc = 0;
    /* The mode we document, whatever the umask says. */
    if (fchmod(fd, mode) != 0)
        rc = lmd_err_set(err, LMD_EIO, "%s: chmod: %s", path, strerror(errno));
    if (rc == 0 && lmd_trust_write_all(fd, text, len) != 0)
        rc = lmd_err_set(err, LMD_EIO, "cannot write %s: %s", path, strerror(errno));
    if (rc == 0 && fsync(fd) != 0)
        rc = lmd_err_set(err, LMD_EIO, "cannot write %s: %s", path, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = lmd_err_set(err, LMD_EIO, "cannot write %s: %s", path, strerror(errno));
    if (rc)
        unlink(path);
    return rc;
}

static const struct {
    const char *type, *kind, *hint;
} known[] = {
    {LMD_TRUST_SECRET_TYPE, "secret key", "give the .key file"},
    {LMD_TRUST_PUBLIC_TYPE, "public key", "give the .pub file"},
    {LMD_TRUST_CERT_TYPE, "certificate", "give the .cert file"},
};

static bool starts_with_word(const char *text, size_t len, const char *word)
{
    size_t wl = strlen(word);
    return len > wl && memcmp(text, word, wl) == 0 && text[wl] == ' ';
}

int lmd_trust_parse_typed(const char *text, size_t len, const char *what, const char *type, const char *kind,
                          int variant, unsigned char *out, size_t outlen, lmd_err *err)
{
    if (len && text[len - 1] == '\n')
        len--;
    if (!starts_with_word(text, len, type)) {
        const char *hint = "";
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (!strcmp(known[i].type, type))
                hint = known[i].hint;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (starts_with_word(text, len, known[i].type))
                return lmd_err_set(err, LMD_EINVAL, "%s: wrong type line: this is a %s (%s), not a %s; %s", what,
                                   known[i].kind, known[i].type, kind, hint);
        return lmd_err_set(err, LMD_EINVAL, "%s: wrong type line: an lmdisc %s is one line '%s BASE64'", what,
                           kind, type);
    }
    const char *b = text + strlen(type) + 1;
    size_t bl = len - (size_t)(b - text);
    if (memchr(b, '\n', bl))
        return lmd_err_set(err, LMD_EINVAL, "%s: more than one line; an lmdisc %s is one line '%s BASE64'", what,
                           kind, type);
    /* Room for more than outlen, to tell a wrong length from bad base64. */
    unsigned char tmp[256];
    size_t n = 0;
    const char *end = NULL;
    int bad = bl > 4 * sizeof tmp / 3 ||
              sodium_base642bin(tmp, sizeof tmp, b, bl, NULL, &n, &end, variant) != 0 || end != b + bl;
    int rc = 0;
    if (bad)
        rc = lmd_err_set(err, LMD_EINVAL, "%s: the %s is not valid base64 (A-Z a-z 0-9 + /%s, no spaces)", what,
                         kind, variant == sodium_base64_VARIANT_ORIGINAL ? " and '=' padding" : ", no '='");
    else if (n != outlen)
        rc = lmd_err_set(err, LMD_EINVAL, "%s: the %s is %zu bytes; an lmdisc %s is %zu", what, kind, n, kind,
                         outlen);
    else
        memcpy(out, tmp, n);
    sodium_memzero(tmp, sizeof tmp);
    return rc;
}

/* ---- Secret keys ---------------------------------------------------------- */

static int secret_alloc(lmd_trust_secret **out, lmd_err *err)
{
    *out = NULL;
    int rc = lmd_trust_sodium(err);
    if (rc)
        return rc;
    /* Guarded pages, locked if the limits allow, zeroed by sodium_free. */
    *out = sodium_malloc(sizeof **out);
    return *out ? 0 : lmd_err_set(err, LMD_ENOMEM, "out of memory for a secret key");
}

int lmd_trust_secret_generate(lmd_trust_secret **out, lmd_err *err)
{
    lmd_trust_secret *k;
    int rc = secret_alloc(&k, err);
    if (rc)
        return rc;
    crypto_sign_keypair(k->pk, k->sk);
    sodium_mprotect_readonly(k);
    *out = k;
    return 0;
}

int lmd_trust_secret_load(const char *path, lmd_trust_secret **out, lmd_err *err)
{
    *out = NULL;
    char buf[LMD_TRUST_FILE_MAX];
    unsigned char seed[crypto_sign_SEEDBYTES];
    size_t len;
    lmd_trust_secret *k = NULL;
    mode_t mode = 0;
    int rc = lmd_read_small_file(path, buf, sizeof buf, &len, &mode, err);
    /* A public key or a certificate given by mistake is readable by all,
     * rightly: say what it is rather than to chmod it. */
    if (rc == 0 && !starts_with_word(buf, len, LMD_TRUST_PUBLIC_TYPE) &&
        !starts_with_word(buf, len, LMD_TRUST_CERT_TYPE))
        rc = lmd_secret_mode_check(path, mode, "secret key", "whoever reads it may sign as this host", err);
    if (rc == 0)
        rc = lmd_trust_parse_typed(buf, len, path, LMD_TRUST_SECRET_TYPE, "secret key",
                                   sodium_base64_VARIANT_ORIGINAL, seed, sizeof seed, err);
    if (rc == 0)
        rc = secret_alloc(&k, err);
    if (rc == 0) {
        crypto_sign_seed_keypair(k->pk, k->sk, seed);
        sodium_mprotect_readonly(k);
        *out = k;
    }
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(seed, sizeof seed);
    return rc;
}

void lmd_trust_secret_free(lmd_trust_secret *k)
{
    sodium_free(k); /* NULL-safe; makes the pages writable, zeroes, unmaps */
}

void lmd_trust_secret_pubkey(const lmd_trust_secret *k, lmd_trust_pubkey *out)
{
    memcpy(out->pk, k->pk, sizeof out->pk);
}

/* "lmdisc-ed25519-secret-v1 BASE64\n" into line (zeroed by the caller). */
static void secret_format(const lmd_trust_secret *k, char *line, size_t len)
{
    unsigned char seed[crypto_sign_SEEDBYTES];
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_SEEDBYTES, sodium_base64_VARIANT_ORIGINAL)];
    crypto_sign_ed25519_sk_to_seed(seed, k->sk);
    sodium_bin2base64(b64, sizeof b64, seed, sizeof seed, sodium_base64_VARIANT_ORIGINAL);
    snprintf(line, len, "%s %s\n", LMD_TRUST_SECRET_TYPE, b64);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(b64, sizeof b64);
}

/* ---- Public keys ---------------------------------------------------------- */

int lmd_trust_pubkey_parse(const char *text, size_t len, const char *what, lmd_trust_pubkey *out, lmd_err *err)
{
    int rc = lmd_trust_sodium(err);
    if (rc)
        return rc;
    return lmd_trust_parse_typed(text, len, what, LMD_TRUST_PUBLIC_TYPE, "public key",
                                 sodium_base64_VARIANT_ORIGINAL, out->pk, sizeof out->pk, err);
}

int lmd_trust_pubkey_load(const char *path, lmd_trust_pubkey *out, lmd_err *err)
{
    char buf[LMD_TRUST_FILE_MAX];
    size_t len;
    int rc = lmd_read_small_file(path, buf, sizeof buf, &len, NULL, err);
    if (rc == 0)
        rc = lmd_trust_pubkey_parse(buf, len, path, out, err);
    /* Someone may have given us their secret key by mistake. */
    sodium_memzero(buf, sizeof buf);
    return rc;
}

int lmd_trust_pubkey_format(const lmd_trust_pubkey *k, char *buf, size_t len)
{
    char b64[sodium_base64_ENCODED_LEN(LMD_TRUST_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, k->pk, sizeof k->pk, sodium_base64_VARIANT_ORIGINAL);
    int n = snprintf(buf, len, "%s %s\n", LMD_TRUST_PUBLIC_TYPE, b64);
    return n < 0 || (size_t)n >= len ? LMD_EINVAL : 0;
}

void lmd_trust_id_hex(const unsigned char *id, char hex[LMD_TRUST_ID_HEX])
{
    sodium_bin2hex(hex, LMD_TRUST_ID_HEX, id, LMD_TRUST_ID_BYTES);
}

/* ---- keygen ---------------------------------------------------------------- */

int lmd_trust_keygen(const char *prefix, lmd_trust_pubkey *pub, lmd_err *err)
{
    if (!prefix || !*prefix)
        return lmd_err_set(err, LMD_EINVAL, "keygen needs a PREFIX");
    size_t pl = strlen(prefix);
    char *kpath = malloc(pl + 5), *ppath = malloc(pl + 5);
    lmd_trust_secret *k = NULL;
    int rc = kpath && ppath ? 0 : lmd_err_set(err, LMD_ENOMEM, "out of memory");
    if (rc == 0) {
        snprintf(kpath, pl + 5, "%s.key", prefix);
        snprintf(ppath, pl + 5, "%s.pub", prefix);
        /* Say so before creating either: O_EXCL below still decides. */
        struct stat st;
        const char *exists = lstat(kpath, &st) == 0 ? kpath : lstat(ppath, &st) == 0 ? ppath : NULL;
        if (exists)
            rc = lmd_err_set(err, LMD_EIO, "%s already exists; keygen never overwrites a key: remove it first or "
                                           "choose another PREFIX", exists);
    }
    if (rc == 0)
        rc = lmd_trust_secret_generate(&k, err);
    if (rc == 0) {
        char line[128];
        secret_format(k, line, sizeof line);
        rc = lmd_trust_create_file(kpath, 0600, line, strlen(line), err);
        sodium_memzero(line, sizeof line);
    }
    if (rc == 0) {
        lmd_trust_pubkey p;
        char line[128];
        lmd_trust_secret_pubkey(k, &p);
        lmd_trust_pubkey_format(&p, line, sizeof line);
        rc = lmd_trust_create_file(ppath, 0644, line, strlen(line), err);
        if (rc)
            unlink(kpath); /* no secret key without its public half */
        else if (pub)
            *pub = p;
    }
    lmd_trust_secret_free(k);
    free(kpath);
    free(ppath);
    return rc;
}

/* ---- The fleet list ---------------------------------------------------------- */

int lmd_trust_fleet_add(lmd_trust_fleet *f, const lmd_trust_pubkey *k)
{
    lmd_trust_pubkey *keys = realloc(f->keys, (f->n + 1) * sizeof *keys);
    if (!keys)
        return LMD_ENOMEM;
    f->keys = keys;
    f->keys[f->n++] = *k;
    return 0;
}

int lmd_trust_fleet_load(const char *const *paths, size_t n, lmd_trust_fleet **out, lmd_err *err)
{
    *out = NULL;
    lmd_trust_fleet *f = calloc(1, sizeof *f);
    if (!f)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        lmd_trust_pubkey k;
        int rc = lmd_trust_pubkey_load(paths[i], &k, err);
        if (rc == 0 && lmd_trust_fleet_add(f, &k) != 0)
            rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
        if (rc) {
            lmd_trust_fleet_free(f);
            return rc;
        }
    }
    *out = f;
    return 0;
}

void lmd_trust_fleet_free(lmd_trust_fleet *f)
{
    if (!f)
        return;
    free(f->keys);
    free(f);
}

bool lmd_trust_fleet_equal(const lmd_trust_fleet *a, const lmd_trust_fleet *b)
{
    size_t na = a ? a->n : 0, nb = b ? b->n : 0;
    return na == nb && (na == 0 || memcmp(a->keys, b->keys, na * sizeof *a->keys) == 0);
}

int lmd_trust_random(void *buf, size_t len, lmd_err *err)
{
    int rc = lmd_trust_sodium(err);
    if (rc == 0)
        randombytes_buf(buf, len);
    return rc;
}
