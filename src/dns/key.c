/* TSIG key files in BIND syntax (see dns.h). */
#include "dns/internal.h"
#include "base/file.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_FILE_MAX 8192

/* What libldns 1.8.3 can sign with: it has no hmac-sha224, and its table
 * spells hmac-sha384 "hmac-shac384." (fuzz_dnskey found both). */
static const char *const ALGORITHMS[] = {"hmac-sha256", "hmac-sha512", "hmac-sha1"};

/* ---- a tokenizer for named.conf's syntax, enough for key statements ---- */

enum tok { T_END, T_WORD, T_STRING, T_LBRACE, T_RBRACE, T_SEMI, T_BAD };

struct lexer {
    const char *p;
    int line;
    char text[512];
    const char *origin;
    lmd_err *err;
};

static void skip_space_and_comments(struct lexer *lx)
{
    for (;;) {
        while (*lx->p && isspace((unsigned char)*lx->p)) {
            if (*lx->p == '\n')
                lx->line++;
            lx->p++;
        }
        if (*lx->p == '#' || (lx->p[0] == '/' && lx->p[1] == '/')) {
            while (*lx->p && *lx->p != '\n')
                lx->p++;
        } else if (lx->p[0] == '/' && lx->p[1] == '*') {
            const char *end = strstr(lx->p + 2, "*/");
            for (const char *c = lx->p; c < (end ? end : lx->p + strlen(lx->p)); c++)
                lx->line += *c == '\n';
            lx->p = end ? end + 2 : lx->p + strlen(lx->p);
        } else {
            return;
        }
    }
}

static enum tok next(struct lexer *lx)
{
    skip_space_and_comments(lx);
    lx->text[0] = '\0';
    char c = *lx->p;
    if (!c)
        return T_END;
    if (c == '{' || c == '}' || c == ';') {
        lx->p++;
        snprintf(lx->text, sizeof lx->text, "%c", c);
        return c == '{' ? T_LBRACE : c == '}' ? T_RBRACE : T_SEMI;
    }
    size_t n = 0;
    if (c == '"') {
        lx->p++;
        while (*lx->p && *lx->p != '"' && *lx->p != '\n') {
            if (n + 1 >= sizeof lx->text)
                return T_BAD;
            lx->text[n++] = *lx->p++;
        }
        if (*lx->p != '"')
            return T_BAD;
        lx->p++;
        lx->text[n] = '\0';
        return T_STRING;
    }
    while (*lx->p && !isspace((unsigned char)*lx->p) && !strchr("{};\"#", *lx->p)) {
        if (n + 1 >= sizeof lx->text)
            return T_BAD;
        lx->text[n++] = *lx->p++;
    }
    lx->text[n] = '\0';
    return n ? T_WORD : T_BAD;
}

static int syntax(struct lexer *lx, const char *what)
{
    return lmd_err_set(lx->err, LMD_EINVAL, "%s:%d: %s (near '%s'); expected: key \"NAME\" { algorithm hmac-sha256; "
                                            "secret \"BASE64\"; };",
                       lx->origin, lx->line, what, lx->text);
}

static int expect(struct lexer *lx, enum tok want, const char *what)
{
    enum tok t = next(lx);
    if (t == want || (want == T_STRING && t == T_WORD))
        return 0;
    return syntax(lx, what);
}

/* key NAME { algorithm ALG; secret "B64"; }; -- the inside, in any order */
static int parse_key_body(struct lexer *lx, lmd_dns_key *k)
{
    if (expect(lx, T_LBRACE, "'{' missing after the key name"))
        return LMD_EINVAL;
    bool have_alg = false, have_secret = false;
    for (;;) {
        enum tok t = next(lx);
        if (t == T_RBRACE)
            break;
        if (t != T_WORD)
            return syntax(lx, "algorithm or secret expected");
        bool is_alg = strcasecmp(lx->text, "algorithm") == 0;
        if (!is_alg && strcasecmp(lx->text, "secret") != 0)
            return syntax(lx, "unknown clause in a key");
        if (expect(lx, T_STRING, is_alg ? "algorithm name missing" : "secret missing"))
            return LMD_EINVAL;
        if (is_alg) {
            size_t n = strlen(lx->text);
            if (n && lx->text[n - 1] == '.')
                lx->text[n - 1] = '\0';
            const char *found = NULL;
            for (size_t i = 0; i < sizeof ALGORITHMS / sizeof *ALGORITHMS; i++)
                if (strcasecmp(lx->text, ALGORITHMS[i]) == 0)
                    found = ALGORITHMS[i];
            if (!found)
                return lmd_err_set(lx->err, LMD_EINVAL, "%s:%d: TSIG algorithm '%s' is not supported (use hmac-sha256; hmac-sha512 "
                                   "and hmac-sha1 also work)",
                                   lx->origin, lx->line, lx->text);
            snprintf(k->algorithm, sizeof k->algorithm, "%s", found);
            have_alg = true;
        } else {
            ldns_rdf *raw = NULL;
            if (!lx->text[0] || ldns_str2rdf_b64(&raw, lx->text) != LDNS_STATUS_OK || !raw)
                return lmd_err_set(lx->err, LMD_EINVAL, "%s:%d: the secret is not base64", lx->origin, lx->line);
            ldns_rdf_deep_free(raw);
            free(k->secret);
            k->secret = strdup(lx->text);
            if (!k->secret)
                return lmd_err_set(lx->err, LMD_ENOMEM, "out of memory");
            have_secret = true;
        }
        if (expect(lx, T_SEMI, "';' missing"))
            return LMD_EINVAL;
    }
    if (expect(lx, T_SEMI, "';' missing after '}'"))
        return LMD_EINVAL;
    if (!have_alg || !have_secret)
        return lmd_err_set(lx->err, LMD_EINVAL, "%s: key \"%s\" has no %s", lx->origin, k->name,
                           have_alg ? "secret" : "algorithm");
    return 0;
}

int lmd_dns_key_parse(const char *text, const char *origin, lmd_dns_key **out, lmd_err *err)
{
    *out = NULL;
    struct lexer lx = {.p = text, .line = 1, .origin = origin ? origin : "key", .err = err};
    lmd_dns_key *k = calloc(1, sizeof *k);
    if (!k)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    int rc = 0, keys = 0;
    for (;;) {
        enum tok t = next(&lx);
        if (t == T_END)
            break;
        if (t != T_WORD || strcasecmp(lx.text, "key") != 0) {
            rc = syntax(&lx, "only a key statement may be in a TSIG key file");
            break;
        }
        if (++keys > 1) {
            rc = lmd_err_set(err, LMD_EINVAL, "%s:%d: several keys in one file; lmdisc takes exactly one", lx.origin,
                             lx.line);
            break;
        }
        if (expect(&lx, T_STRING, "key name missing")) {
            rc = LMD_EINVAL;
            break;
        }
        size_t n = strlen(lx.text);
        if (n && lx.text[n - 1] == '.')
            lx.text[--n] = '\0';
        /* what tsig-keygen and keymgr make; other bytes are legal in DNS
         * names, but ldns fails (and leaks) signing with some of them */
        if (n == 0 || strspn(lx.text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n) {
            rc = lmd_err_set(err, LMD_EINVAL, "%s:%d: key name '%s': only letters, digits, '-', '_' and '.'",
                             lx.origin, lx.line, lx.text);
            break;
        }
        ldns_rdf *dn = n < sizeof k->name ? ldns_dname_new_frm_str(lx.text) : NULL;
        if (!dn) {
            rc = lmd_err_set(err, LMD_EINVAL, "%s:%d: '%s' is not a valid key name (a DNS name)", lx.origin, lx.line,
                             lx.text);
            break;
        }
        ldns_rdf_deep_free(dn);
        memcpy(k->name, lx.text, n + 1); /* n < sizeof k->name: checked above */
        if ((rc = parse_key_body(&lx, k)) != 0)
            break;
    }
    if (rc == 0 && keys == 0)
        rc = lmd_err_set(err, LMD_EINVAL, "%s: no key statement (expected: key \"NAME\" { algorithm hmac-sha256; "
                                          "secret \"BASE64\"; };)",
                         lx.origin);
    if (rc) {
        if (err && err->code == 0)
            lmd_err_set(err, rc, "%s: invalid key file", lx.origin);
        lmd_dns_key_free(k);
        return rc < 0 ? rc : LMD_EINVAL;
    }
    *out = k;
    return 0;
}

int lmd_dns_key_load(const char *path, lmd_dns_key **out, lmd_err *err)
{
    *out = NULL;
    char *buf = malloc(KEY_FILE_MAX);
    if (!buf)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    size_t n = 0;
    mode_t mode = 0;
    int rc = lmd_read_small_file(path, buf, KEY_FILE_MAX, &n, &mode, err);
    if (rc == 0)
        rc = lmd_secret_mode_check(path, mode, "TSIG key", "whoever reads it may change the zone", err);
    if (rc == 0 && strlen(buf) != n)
        rc = lmd_err_set(err, LMD_EINVAL, "%s: a NUL byte in a TSIG key file", path);
    else if (rc == 0)
        rc = lmd_dns_key_parse(buf, path, out, err);
    memset(buf, 0, KEY_FILE_MAX);
    free(buf);
    return rc;
}

void lmd_dns_key_free(lmd_dns_key *k)
{
    if (!k)
        return;
    if (k->secret) {
        memset(k->secret, 0, strlen(k->secret));
        free(k->secret);
    }
    free(k);
}

const char *lmd_dns_key_name(const lmd_dns_key *k) { return k->name; }
const char *lmd_dns_key_algorithm(const lmd_dns_key *k) { return k->algorithm; }

void lmd_dns_key_ldns_alg(const lmd_dns_key *k, char *buf, size_t len) { snprintf(buf, len, "%s.", k->algorithm); }
