/* `lmdisc drain [--grace S]`: take this host out of rotation before it goes
 * away: the agent announces TXT status=draining on every service it
 * announces (peers mark it "routable": false), then withdraws them.
 * `lmdisc drain --cancel` undoes it, during the grace or after. */
#include "base/config.h"
#include "cmd/client.h"
#include "cmd/cmd.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char drain_help[] =
    "Usage: lmdisc drain [--grace SECONDS] [--socket PATH]\n"
    "       lmdisc drain --cancel [--socket PATH]\n"
    "Tell the running agent to drain this host: it announces status=draining on\n"
    "every service it announces, so that peers stop sending new work here\n"
    "(\"routable\": false), and withdraws them after the grace period.\n"
    "--cancel undoes a drain: the status it had before, and what was withdrawn\n"
    "announced again (registered services whose clients re-register).\n"
    "  -g, --grace SECONDS  how long to announce draining first (default 30)\n"
    "  -c, --cancel         cancel the drain (nothing to cancel is not an error)\n"
    "  -s, --socket PATH    the agent's API socket (default $LMDISC_SOCKET or " LMD_API_SOCKET ")\n";

int lmd_cmd_drain(int argc, char **argv)
{
    static const struct option lo[] = {{"grace", required_argument, NULL, 'g'},
                                       {"cancel", no_argument, NULL, 'c'},
                                       {"socket", required_argument, NULL, 's'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *socket = lmd_client_socket();
    double grace = -1;
    bool cancel = false;
    char *end;
    int c;
    lmd_getopt_reset();
    while ((c = getopt_long(argc, argv, "g:cs:h", lo, NULL)) != -1) {
        switch (c) {
        case 'g':
            if (lmd_parse_seconds(optarg, &grace) != 0 && !(strtod(optarg, &end) == 0 && end != optarg && !*end))
                return lmd_usage_error("drain", "--grace '%.40s' is not a number of seconds (0 to 3600)", optarg);
            if (grace < 0) /* "0", "0.0" */
                grace = 0;
            if (grace > 3600)
                return lmd_usage_error("drain", "--grace must be at most 3600 seconds");
            break;
        case 'c': cancel = true; break;
        case 's': socket = optarg; break;
        case 'h': fputs(drain_help, stdout); return 0;
        default: return lmd_usage_error("drain", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return lmd_usage_error("drain", "unexpected argument '%s'", argv[optind]);
    if (cancel && grace >= 0)
        return lmd_usage_error("drain", "--cancel takes no --grace");
    struct lmd_buf b = {0};
    int rc;
    if (cancel) {
        rc = lmd_client_send("drain", socket, "DELETE", "/v1/self/drain", NULL, &b);
        json_t *doc = rc == 0 && b.data ? json_loads(b.data, 0, NULL) : NULL;
        if (rc == 0)
            printf("%s", json_is_true(json_object_get(doc, "cancelled"))
                             ? "drain cancelled: announcing again\n"
                             : "not draining: nothing to cancel\n");
        json_decref(doc);
    } else {
        char body[64] = "{}";
        if (grace >= 0)
            snprintf(body, sizeof body, "{\"grace\": %g}", grace);
        rc = lmd_client_send("drain", socket, "POST", "/v1/self/drain", body, &b);
        if (rc == 0)
            printf("draining: %s", b.data ? b.data : "\n");
    }
    free(b.data);
    return rc;
}
