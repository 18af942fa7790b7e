/* libsodium loaded at run time (see sodium.h). */
#define LMD_SODIUM_NO_REDIRECT
#include "trust/sodium.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define SODIUM_SONAME "libsodium.so.23"

static struct lmd_sodium_api api;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char failed[256];

static void load(void)
{
    void *h = dlopen(SODIUM_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(failed, sizeof failed, "%s", dlerror());
        return;
    }
#define LMD_SODIUM_RESOLVE(f)                                                        \
    if (!failed[0] && !(*(void **)&api.f = dlsym(h, #f)))                            \
        snprintf(failed, sizeof failed, "%s has no %s", SODIUM_SONAME, #f);
    LMD_SODIUM_SYMBOLS(LMD_SODIUM_RESOLVE)
#undef LMD_SODIUM_RESOLVE
}

bool lmd_sodium_available(char *why, size_t len)
{
    pthread_once(&once, load);
    if (failed[0] && why && len)
        snprintf(why, len, "%s", failed);
    return !failed[0];
}

const struct lmd_sodium_api *lmd_sodium(void)
{
    char why[256];
    if (!lmd_sodium_available(why, sizeof why)) {
        fprintf(stderr, "lmdisc: signing and verifying need libsodium (%s); install Debian's libsodium23\n", why);
        exit(70); /* EX_SOFTWARE: the package's dependency is missing */
    }
    return &api;
}
