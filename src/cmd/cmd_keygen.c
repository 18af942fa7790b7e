/* `lmdisc keygen PREFIX`: a new Ed25519 key pair, for a host or a fleet
 * (the files and the trust model: trust/trust.h). */
#include "cmd/cmd.h"
#include "trust/trust.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char keygen_help[] =
    "Usage: lmdisc keygen PREFIX\n"
    "Create an Ed25519 key pair: PREFIX.key, the secret key (mode 0600), and\n"
    "PREFIX.pub, the public key.  Never overwrites an existing file.\n"
    "\n"
    "Signed announcements: every host has a key of its own; a fleet key, made the\n"
    "same way and kept offline, certifies host keys ('lmdisc certify').  Agents\n"
    "trust the fleet's .pub and believe only announcements signed by a host key\n"
    "the fleet certified.\n"
    "\n"
    "  -h, --help   show this help\n";

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int lmd_cmd_keygen(int argc, char **argv)
{
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    lmd_getopt_reset();
    while ((c = getopt_long(argc, argv, "+:h", lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(keygen_help, stdout);
            return 0;
        }
        return lmd_usage_error("keygen", "unknown option '%s'", argv[optind - 1]);
    }
    if (optind >= argc)
        return lmd_usage_error("keygen", "missing PREFIX (writes PREFIX.key and PREFIX.pub)");
    if (argc - optind > 1)
        return lmd_usage_error("keygen", "give one PREFIX; '%s' is one too many", argv[optind + 1]);
    const char *prefix = argv[optind];
    if (!*prefix || ends_with(prefix, "/"))
        return lmd_usage_error("keygen", "PREFIX '%s' needs a file name part (e.g. /etc/lmdisc/host)", prefix);
    if (ends_with(prefix, ".key") || ends_with(prefix, ".pub"))
        return lmd_usage_error("keygen", "give PREFIX without .key or .pub: keygen writes PREFIX.key and "
                               "PREFIX.pub");
    lmd_err err = {0};
    lmd_trust_pubkey pub;
    if (lmd_trust_keygen(prefix, &pub, &err) != 0) {
        fprintf(stderr, "lmdisc keygen: %s\n", lmd_err_text(&err));
        return LMD_EXIT_FAIL;
    }
    char id[LMD_TRUST_ID_HEX];
    lmd_trust_id_hex(pub.pk, id);
    printf("%s.key: secret key (mode 0600: keep it private)\n%s.pub: public key, id %s\n", prefix, prefix, id);
    return 0;
}
