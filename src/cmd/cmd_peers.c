/* `lmdisc peers`: the running agent's live peers. */
#include "base/config.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "cmd/client.h"
#include "cmd/cmd.h"

#include <stdio.h>
#include <stdlib.h>

static const char peers_help[] =
    "Usage: lmdisc peers [--json] [--socket PATH]\n"
    "List the live peers of the agent running on this host, as its policy sees them,\n"
    "with the sources each is seen through (mdns, dns).\n"
    "  -j, --json         print the agent's JSON (as GET /v1/peers)\n"
    "  -s, --socket PATH  the agent's API socket (default $LMDISC_SOCKET or " LMD_API_SOCKET ")\n";

int lmd_cmd_peers(int argc, char **argv)
{
    struct lmd_client_opts o;
    int rc = lmd_client_parse("peers", argc, argv, &o, peers_help);
    if (rc)
        return lmd_exit_status(rc);
    struct lmd_buf b = {0};
    if ((rc = lmd_client_get("peers", o.socket, "/v1/peers", &b)) != 0) {
        free(b.data);
        return rc;
    }
    json_error_t jerr;
    json_t *doc = json_loads(b.data, 0, &jerr);
    if (!json_is_array(doc)) {
        fprintf(stderr, "lmdisc peers: the agent sent something that is not a JSON list: %s\n", jerr.text);
        json_decref(doc);
        free(b.data);
        return LMD_EXIT_FAIL;
    }
    if (o.json) {
        char *s = lmd_json_dump(doc, true);
        if (s)
            puts(s);
        free(s);
    } else if (json_array_size(doc) == 0) {
        fprintf(stderr, "lmdisc peers: no live peers\n");
    } else {
        double now = lmd_now_wall();
        printf("%-24s  %-28s  %-5s  %-8s  %s\n", "NAME", "ADDRESS:PORT", "AGE", "SOURCES", "INFO");
        size_t i;
        json_t *n;
        json_array_foreach(doc, i, n) {
            char name[256], ep[96], ag[16], src[16], info[256];
            const char *nm = json_string_value(json_object_get(n, "name"));
            lmd_client_endpoint(n, ep, sizeof ep);
            lmd_client_age(now - json_number_value(json_object_get(n, "first_seen")), ag, sizeof ag);
            printf("%-24s  %-28s  %-5s  %-8s  %s\n", lmd_escape_str(nm, name, sizeof name), ep, ag,
                   lmd_client_sources(n, src, sizeof src), lmd_client_info(n, info, sizeof info));
        }
    }
    json_decref(doc);
    free(b.data);
    return 0;
}

