/* `lmdisc policy-worker`: not for people.  The agent execs it with the
 * worker end of a socketpair on descriptor 3 (src/worker/serve.c). */
#include "cmd/cmd.h"
#include "worker/worker.h"

#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>

int lmd_cmd_policy_worker(int argc, char **argv)
{
    (void)argv;
    struct stat st;
    if (argc != 1 || fstat(3, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "lmdisc policy-worker: started by `lmdisc agent` only (it runs the policy in a "
                        "process of its own); use `lmdisc agent -c CONFIG.lua`\n");
        return LMD_EXIT_USAGE;
    }
    return lmd_worker_serve(3);
}
