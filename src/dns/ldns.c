/* libldns loaded at run time (see ldns.h). */
#define LMD_LDNS_NO_REDIRECT
#include "dns/ldns.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define LDNS_SONAME "libldns.so.3"

static struct lmd_ldns_api api;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char failed[256];

static void load(void)
{
    void *h = dlopen(LDNS_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(failed, sizeof failed, "%s", dlerror());
        return;
    }
#define LMD_LDNS_RESOLVE(f)                                                          \
    if (!failed[0] && !(*(void **)&api.f = dlsym(h, #f)))                            \
        snprintf(failed, sizeof failed, "%s has no %s", LDNS_SONAME, #f);
    LMD_LDNS_SYMBOLS(LMD_LDNS_RESOLVE)
#undef LMD_LDNS_RESOLVE
}

bool lmd_ldns_available(char *why, size_t len)
{
    pthread_once(&once, load);
    if (failed[0] && why && len)
        snprintf(why, len, "%s", failed);
    return !failed[0];
}

const struct lmd_ldns_api *lmd_ldns(void)
{
    char why[256];
    if (!lmd_ldns_available(why, sizeof why)) {
        fprintf(stderr, "lmdisc: DNS needs libldns (%s); install Debian's libldns3\n", why);
        exit(70); /* EX_SOFTWARE: the package's dependency is missing */
    }
    return &api;
}
