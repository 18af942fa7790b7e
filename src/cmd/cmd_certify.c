/* `lmdisc certify`: sign a host's public key with the fleet key (a
 * certificate, as an SSH CA does), or check a certificate against the
 * fleet keys.  The formats and the trust model: trust/trust.h. */
#include "cmd/cmd.h"
#include "trust/trust.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char certify_help[] =
    "Usage: lmdisc certify --fleet-key FLEET.key --name PATTERN [--name PATTERN]...\n"
    "                      [--days N] [--not-before TIME] [--serial HEX] [--out FILE] HOST.pub\n"
    "       lmdisc certify --check --fleet-pub FLEET.pub [--fleet-pub FILE]...\n"
    "                      [--at TIME] HOST.cert\n"
    "       lmdisc certify --revoke LIST --fleet-key FLEET.key [--serial HEX]...\n"
    "                      [HOST.pub | HOST.cert]...\n"
    "Certify a host's key with the fleet key, like an SSH certificate authority:\n"
    "HOST.cert (next to HOST.pub) says that this host key belongs to the fleet for\n"
    "N days and may announce the instance names its patterns match.  Agents trust\n"
    "one or more fleet public keys (several while a fleet key is rotated) and\n"
    "believe an announcement only if a host key with a certificate valid now and\n"
    "naming that instance signed it, recently, from an address the host signed.\n"
    "Keep the fleet's secret key offline.  --revoke adds host keys (their .pub) and\n"
    "certificates (their .cert, or --serial) to the revocation list LIST, signed by\n"
    "the fleet key; agents with trust { revoked = LIST } drop them at once.\n"
    "\n"
    "  -k, --fleet-key FILE    the fleet's secret key (lmdisc keygen; mode 0600)\n"
    "  -N, --name PATTERN      an instance name the host may announce (repeat);\n"
    "                          '*' any run of characters, '?' one: 'gpu1',\n"
    "                          'gpu1-*'; '*' alone: any name.  Avahi's renames\n"
    "                          after a conflict ('gpu1 #2') are covered too\n"
    "  -d, --days N            how long the certificate is valid, 1 to 3650 days\n"
    "                          (default 365)\n"
    "  -n, --not-before TIME   when it begins, in Unix seconds (default: now, less\n"
    "                          5 minutes for clocks that run behind)\n"
    "  -s, --serial HEX        the certificate's serial, 16 hex digits (default:\n"
    "                          random); with --revoke: a serial to revoke (repeat)\n"
    "  -o, --out FILE          where to write it (default: HOST.pub with .cert for\n"
    "                          .pub); replaced atomically if it exists\n"
    "  -c, --check             check HOST.cert against the fleet public keys and\n"
    "                          show what it says; exit 1 if it is not valid\n"
    "  -p, --fleet-pub FILE    with --check: a fleet public key to trust (repeat)\n"
    "  -a, --at TIME           with --check: check at Unix time TIME, not now\n"
    "  -r, --revoke LIST       add to the revocation list LIST (created if missing)\n"
    "  -h, --help              show this help\n";

struct certify_args {
    bool check;
    const char *fleet_key, *out, *file, *revoke;
    unsigned days;
    bool days_given, not_before_given, at_given, serial_given;
    int64_t not_before, at;
    size_t n_pubs, n_names, n_serials, n_files;
    const char **pubs, **names; /* malloc'd; the strings are argv's */
    uint64_t *serials;
    char **files;               /* positional arguments (argv's) */
};

static int parse_time(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > (long long)UINT32_MAX)
        return LMD_EINVAL;
    *out = v;
    return 0;
}

/* 0 (go on), -1 (--help printed), or LMD_EXIT_USAGE / LMD_EXIT_FAIL. */
static int certify_parse(int argc, char **argv, struct certify_args *a)
{
    static const struct option lo[] = {
        {"fleet-key", required_argument, NULL, 'k'}, {"days", required_argument, NULL, 'd'},
        {"not-before", required_argument, NULL, 'n'}, {"out", required_argument, NULL, 'o'},
        {"check", no_argument, NULL, 'c'}, {"fleet-pub", required_argument, NULL, 'p'},
        {"at", required_argument, NULL, 'a'}, {"name", required_argument, NULL, 'N'},
        {"serial", required_argument, NULL, 's'}, {"revoke", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    *a = (struct certify_args){.days = 365};
    a->pubs = calloc((size_t)argc, sizeof *a->pubs);
    a->names = calloc((size_t)argc, sizeof *a->names);
    a->serials = calloc((size_t)argc, sizeof *a->serials);
    if (!a->pubs || !a->names || !a->serials) {
        fputs("lmdisc certify: out of memory\n", stderr);
        return LMD_EXIT_FAIL;
    }
    int c;
    lmd_getopt_reset();
    while ((c = getopt_long(argc, argv, "+:k:d:n:o:cp:a:N:s:r:h", lo, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'k': a->fleet_key = optarg; break;
        case 'o': a->out = optarg; break;
        case 'c': a->check = true; break;
        case 'p': a->pubs[a->n_pubs++] = optarg; break;
        case 'r': a->revoke = optarg; break;
        case 'N': {
            lmd_err e = {0};
            if (lmd_trust_name_check(optarg, &e) != 0)
                return lmd_usage_error("certify", "--name: %s", lmd_err_text(&e));
            a->names[a->n_names++] = optarg;
            break;
        }
        case 's':
            if (lmd_trust_serial_parse(optarg, &a->serials[a->n_serials]) != 0)
                return lmd_usage_error("certify", "--serial '%.40s' is not a serial (1 to 16 hex digits)", optarg);
            a->n_serials++;
            a->serial_given = true;
            break;
        case 'd': {
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > 3650)
                return lmd_usage_error("certify", "--days '%.40s' is not a number of days from 1 to 3650", optarg);
            a->days = (unsigned)v;
            a->days_given = true;
            break;
        }
        case 'n':
            if (parse_time(optarg, &a->not_before))
                return lmd_usage_error("certify", "--not-before '%.40s' is not a Unix time (seconds, 0 to %u)",
                                       optarg, UINT32_MAX);
            a->not_before_given = true;
            break;
        case 'a':
            if (parse_time(optarg, &a->at))
                return lmd_usage_error("certify", "--at '%.40s' is not a Unix time (seconds, 0 to %u)", optarg,
                                       UINT32_MAX);
            a->at_given = true;
            break;
        case 'h': fputs(certify_help, stdout); return LMD_EXIT_HELP;
        case ':': return lmd_usage_error("certify", "option '%s' needs a value", argv[optind - 1]);
        default: return lmd_usage_error("certify", "unknown option '%s'", argv[optind - 1]);
        }
    }
    a->files = argv + optind;
    a->n_files = (size_t)(argc - optind);
    if (a->check && a->revoke)
        return lmd_usage_error("certify", "--check and --revoke do not go together");
    if (a->check && (a->fleet_key || a->days_given || a->not_before_given || a->out || a->n_names || a->serial_given))
        return lmd_usage_error("certify", "--check takes --fleet-pub and --at, not --fleet-key, --days, "
                               "--not-before, --name, --serial or --out");
    if (a->revoke && (a->days_given || a->not_before_given || a->out || a->n_names || a->n_pubs || a->at_given))
        return lmd_usage_error("certify", "--revoke takes --fleet-key, --serial and the .pub or .cert files to "
                               "revoke");
    if (!a->check && (a->n_pubs || a->at_given))
        return lmd_usage_error("certify", "--fleet-pub and --at go with --check");
    if (!a->check && !a->fleet_key)
        return lmd_usage_error("certify", "missing --fleet-key FILE (the fleet's secret key)");
    if (a->check && !a->n_pubs)
        return lmd_usage_error("certify", "--check needs --fleet-pub FILE (a fleet public key to trust)");
    if (a->revoke)
        return 0;
    if (!a->check && a->n_serials > 1)
        return lmd_usage_error("certify", "a certificate has one --serial");
    if (!a->check && !a->n_names)
        return lmd_usage_error("certify", "missing --name PATTERN: a certificate names what the host may announce "
                               "(e.g. --name 'gpu1' --name 'gpu1-*'; --name '*' for any name)");
    if (a->n_files == 0)
        return lmd_usage_error("certify", a->check ? "missing HOST.cert" : "missing HOST.pub");
    if (a->n_files > 1)
        return lmd_usage_error("certify", "give one file; '%s' is one too many", a->files[1]);
    a->file = a->files[0];
    return 0;
}

static int certify_check(const struct certify_args *a)
{
    lmd_err err = {0};
    lmd_trust_fleet *fleet = NULL;
    lmd_trust_cert cert;
    int rc = lmd_trust_fleet_load(a->pubs, a->n_pubs, &fleet, &err);
    if (rc == 0)
        rc = lmd_trust_cert_load(a->file, &cert, &err);
    if (rc) {
        fprintf(stderr, "lmdisc certify: %s\n", lmd_err_text(&err));
        lmd_trust_fleet_free(fleet);
        return LMD_EXIT_FAIL;
    }
    lmd_trust_result res;
    rc = lmd_trust_cert_check(fleet, &cert, a->at_given ? a->at : (int64_t)time(NULL), &res);
    lmd_trust_fleet_free(fleet);
    if (rc) {
        fprintf(stderr, "lmdisc certify: %s: %s\n", a->file, res.reason);
        return LMD_EXIT_FAIL;
    }
    char names[512], serial[LMD_TRUST_ID_HEX];
    lmd_trust_cert_names_str(&cert, names, sizeof names);
    lmd_trust_serial_hex(cert.serial, serial);
    printf("%s: valid: %s; serial %s; names %s\n", a->file, res.reason, serial, names);
    return 0;
}

static char *default_out(const char *pub)
{
    size_t n = strlen(pub);
    if (n > 4 && !strcmp(pub + n - 4, ".pub"))
        n -= 4;
    char *out = malloc(n + 6);
    if (out)
        snprintf(out, n + 6, "%.*s.cert", (int)n, pub);
    return out;
}

static int certify_issue(const struct certify_args *a)
{
    int64_t now = time(NULL);
    int64_t nb = a->not_before_given ? a->not_before : now - LMD_TRUST_CLOCK_SKEW;
    int64_t na = nb + (int64_t)a->days * 86400;
    char t1[32], t2[32];
    if (na > (int64_t)UINT32_MAX)
        return lmd_usage_error("certify", "the certificate would end after %s, which its 32-bit times cannot say",
                               lmd_trust_time_str(UINT32_MAX, t1));
    lmd_err err = {0};
    lmd_trust_pubkey host;
    lmd_trust_secret *fleet = NULL;
    lmd_trust_cert cert;
    char *out = a->out ? NULL : default_out(a->file);
    const char *path = a->out ? a->out : out;
    int rc = path ? 0 : lmd_err_set(&err, LMD_ENOMEM, "out of memory");
    /* The host key first: a mistake there needs no secret in memory. */
    if (rc == 0)
        rc = lmd_trust_pubkey_load(a->file, &host, &err);
    if (rc == 0)
        rc = lmd_trust_secret_load(a->fleet_key, &fleet, &err);
    uint64_t serial = a->serials[0];
    if (rc == 0 && !a->serial_given)
        rc = lmd_trust_random(&serial, sizeof serial, &err);
    if (rc == 0)
        rc = lmd_trust_cert_issue(fleet, &host, (uint32_t)nb, (uint32_t)na, serial, a->names, a->n_names, &cert, &err);
    lmd_trust_secret_free(fleet);
    if (rc == 0)
        rc = lmd_trust_cert_write(path, &cert, &err);
    if (rc) {
        fprintf(stderr, "lmdisc certify: %s\n", lmd_err_text(&err));
        free(out);
        return LMD_EXIT_FAIL;
    }
    char hid[LMD_TRUST_ID_HEX], fid[LMD_TRUST_ID_HEX], sh[LMD_TRUST_ID_HEX], names[512];
    lmd_trust_id_hex(cert.host_pk, hid);
    lmd_trust_id_hex(cert.fleet_id, fid);
    lmd_trust_serial_hex(cert.serial, sh);
    lmd_trust_cert_names_str(&cert, names, sizeof names);
    printf("%s: host key %s certified by fleet key %s from %s until %s, serial %s, for %s\n", path, hid, fid,
           lmd_trust_time_str(nb, t1), lmd_trust_time_str(na, t2), sh, names);
    if (na <= now)
        fprintf(stderr, "lmdisc certify: warning: this certificate ended %s: agents will refuse it "
                "(certificate expired)\n", t2);
    free(out);
    return 0;
}

/* --revoke LIST: the list as it is (signed by this fleet key), the keys
 * and serials added, issued later than before, signed again. */
static int certify_revoke(const struct certify_args *a)
{
    lmd_err err = {0};
    lmd_trust_secret *fleet = NULL;
    lmd_trust_revoked *list = NULL;
    lmd_trust_fleet self = {0};
    lmd_trust_pubkey fp;
    int rc = lmd_trust_secret_load(a->fleet_key, &fleet, &err);
    if (rc == 0) {
        lmd_trust_secret_pubkey(fleet, &fp);
        self = (lmd_trust_fleet){.n = 1, .keys = &fp};
        if (access(a->revoke, F_OK) == 0)
            rc = lmd_trust_revoked_load(a->revoke, &self, &list, &err);
        else if (!(list = calloc(1, sizeof *list)))
            rc = lmd_err_set(&err, LMD_ENOMEM, "out of memory");
    }
    size_t keys0 = list ? list->n_keys : 0, serials0 = list ? list->n_serials : 0;
    for (size_t i = 0; rc == 0 && i < a->n_files; i++) {
        lmd_trust_pubkey k;
        lmd_trust_cert c;
        lmd_err e1 = {0}, e2 = {0};
        if (lmd_trust_pubkey_load(a->files[i], &k, &e1) == 0)
            rc = lmd_trust_revoked_add_key(list, &k);
        else if (lmd_trust_cert_load(a->files[i], &c, &e2) == 0)
            rc = lmd_trust_revoked_add_serial(list, c.serial);
        else
            rc = lmd_err_set(&err, LMD_EINVAL, "%s is neither a host's .pub nor a .cert (%s)", a->files[i],
                             lmd_err_text(&e1));
        if (rc == LMD_ENOMEM)
            lmd_err_set(&err, rc, "out of memory");
    }
    for (size_t i = 0; rc == 0 && i < a->n_serials; i++)
        if (lmd_trust_revoked_add_serial(list, a->serials[i]) != 0)
            rc = lmd_err_set(&err, LMD_ENOMEM, "out of memory");
    if (rc == 0) {
        /* later than the list it replaces: agents refuse an older one */
        uint64_t now = (uint64_t)time(NULL);
        list->issued = now > list->issued ? now : list->issued + 1;
        rc = lmd_trust_revoked_write(a->revoke, fleet, list, &err);
    }
    lmd_trust_secret_free(fleet);
    if (rc) {
        fprintf(stderr, "lmdisc certify: %s\n", lmd_err_text(&err));
        lmd_trust_revoked_free(list);
        return LMD_EXIT_FAIL;
    }
    char t[32];
    printf("%s: %zu host key(s) and %zu certificate serial(s) revoked (%zu and %zu new), issued %s\n", a->revoke,
           list->n_keys, list->n_serials, list->n_keys - keys0, list->n_serials - serials0,
           lmd_trust_time_str((int64_t)list->issued, t));
    lmd_trust_revoked_free(list);
    return 0;
}

int lmd_cmd_certify(int argc, char **argv)
{
    struct certify_args a;
    int rc = certify_parse(argc, argv, &a);
    if (rc == 0)
        rc = a.revoke ? certify_revoke(&a) : a.check ? certify_check(&a) : certify_issue(&a);
    free(a.pubs);
    free(a.names);
    free(a.serials);
    return lmd_exit_status(rc);
}
