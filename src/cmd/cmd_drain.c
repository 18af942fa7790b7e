/* `lmdisc drain [--grace S]`: take this host out of rotation before it goes
 * away: the agent announces TXT status=draining on every service it
 * announces (peers mark it "routable": false), then withdraws them. */
#include "base/config.h"
#include "cmd/client.h"
#include "cmd/cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char drain_help[] =
    "Usage: lmdisc drain [--grace SECONDS] [--socket PATH]\n"
    "Tell the running agent to drain this host: it announces status=draining on\n"
    "every service it announces, so that peers stop sending new work here\n"
    "(\"routable\": false), and withdraws them after the grace period.\n"
    "  -g, --grace SECONDS  how long to announce draining first (default 30)\n"
    "  -s, --socket PATH    the agent's API socket (default $LMDISC_SOCKET or " LMD_API_SOCKET ")\n";

int lmd_cmd_drain(int argc, char **argv)
{
    static const struct option lo[] = {{"grace", required_argument, NULL, 'g'},
                                       {"socket", required_argument, NULL, 's'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *socket = lmd_client_socket();
    double grace = -1;
    char *end;
    int c;
    lmd_getopt_reset();
    while ((c = getopt_long(argc, argv, "g:s:h", lo, NULL)) != -1) {
        switch (c) {
        case 'g':
            if (lmd_parse_seconds(optarg, &grace) != 0 && !(strtod(optarg, &end) == 0 && end != optarg && !*end))
                return lmd_usage_error("drain", "--grace '%.40s' is not a number of seconds (0 to 3600)", optarg);
            if (grace < 0) /* "0", "0.0" */
                grace = 0;
            if (grace > 3600)
                return lmd_usage_error("drain", "--grace must be at most 3600 seconds");
            break;
        case 's': socket = optarg; break;
        case 'h': fputs(drain_help, stdout); return 0;
        default: return lmd_usage_error("drain", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return lmd_usage_error("drain", "unexpected argument '%s'", argv[optind]);
    char body[64] = "{}";
    if (grace >= 0)
        snprintf(body, sizeof body, "{\"grace\": %g}", grace);
    struct lmd_buf b = {0};
    int rc = lmd_client_post("drain", socket, "/v1/self/drain", body, &b);
    if (rc == 0)
        printf("draining: %s", b.data ? b.data : "\n");
    free(b.data);
    return rc;
}
