/* Option structs of any layout (include/lmdisc.h, "ABI rules"): what
 * lmd_lib_opts_read takes and refuses, and that lmd_discover_nodes and
 * lmd_announce_self go by it.  No network: the system bus is pointed at a
 * path that does not exist, so no call can reach an avahi-daemon.  Built
 * against the core objects (tests/abi/abi.cmake). */
#include "lib/abi.h"
#include "lmdisc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/check.h"

/* A program built against a later header: one field more. */
struct later_discover {
    lmd_discover_opts o;
    uint64_t extra;
};

/* A later library: it knows one field more than this one. */
struct later_lib {
    lmd_discover_opts o;
    double extra;
};

static void test_read(void)
{
    const size_t first = LMD_LIB_DISCOVER_OPTS_FIRST;
    lmd_discover_opts d;
    memset(&d, 0xAB, sizeof d);
    CHECK(lmd_lib_opts_read(&d, sizeof d, first, NULL) == 0, "NULL: the defaults");
    CHECK(d.size == 0 && d.timeout == 0 && !d.type && !d.domain && !d.complete, "NULL gives a zeroed copy");

    lmd_discover_opts zero = {.timeout = 2, .type = "_x._tcp", .domain = "d", .complete = true};
    CHECK(lmd_lib_opts_read(&d, sizeof d, first, &zero) == 0, "size 0 is the first layout");
    CHECK(d.timeout == 2 && d.type == zero.type && d.domain == zero.domain && d.complete,
          "size 0: every field of the first layout is read");

    lmd_discover_opts init = LMD_DISCOVER_OPTS_INIT;
    CHECK(init.size == sizeof init, "the INIT macro sets size: %zu", init.size);
    init.timeout = 3;
    init.domain = "e";
    CHECK(lmd_lib_opts_read(&d, sizeof d, first, &init) == 0 && d.timeout == 3 && d.domain == init.domain,
          "this layout is read");

    size_t bad[] = {1, sizeof(size_t), first - 1};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lmd_discover_opts o = {.size = bad[i]};
        CHECK(lmd_lib_opts_read(&d, sizeof d, first, &o) == LMD_EINVAL, "size %zu is below the first layout",
              bad[i]);
    }

    /* a later program: what this library does not know must be zero */
    struct later_discover *later = calloc(1, sizeof *later);
    later->o.size = sizeof *later;
    later->o.timeout = 4;
    CHECK(lmd_lib_opts_read(&d, sizeof d, first, later) == 0 && d.timeout == 4,
          "a later layout with its new field zero is read");
    later->extra = 1;
    CHECK(lmd_lib_opts_read(&d, sizeof d, first, later) == LMD_EINVAL,
          "a later layout asking for what this library lacks is refused");
    free(later);

    /* an earlier program with a later library: nothing read past its size
     * (the struct is on the heap at its exact size: ASan sees any
     * over-read), the fields it lacks are zero */
    struct later_lib l;
    memset(&l, 0xAB, sizeof l);
    lmd_discover_opts *old = malloc(sizeof *old);
    *old = (lmd_discover_opts)LMD_DISCOVER_OPTS_INIT;
    old->timeout = 5;
    CHECK(lmd_lib_opts_read(&l, sizeof l, first, old) == 0 && l.o.timeout == 5 && l.extra == 0,
          "an earlier layout: later fields are zero");
    memset(&l, 0xAB, sizeof l);
    old->size = 0;
    CHECK(lmd_lib_opts_read(&l, sizeof l, first, old) == 0 && l.o.timeout == 5 && l.extra == 0,
          "size 0: later fields are zero");
    free(old);
}

static void test_public_calls(void)
{
    lmd_node_list l = {.n = 7};
    lmd_discover_opts small = {.size = 1};
    CHECK(lmd_discover_nodes(1, &small, &l) == LMD_EINVAL && l.n == 0 && !l.nodes, "discover: size too small");

    struct later_discover later = {.o = LMD_DISCOVER_OPTS_INIT};
    later.o.size = sizeof later;
    later.extra = 1;
    CHECK(lmd_discover_nodes(1, &later.o, &l) == LMD_EINVAL, "discover: an unknown field is refused");
    later.extra = 0;
    int rc = lmd_discover_nodes(1, &later.o, &l);
    CHECK(rc == LMD_ENODAEMON, "discover: a later layout is taken (no bus: %s)", lmd_strerror(rc));

    /* the fields are read: an invalid type is refused, whatever the layout */
    lmd_discover_opts zero = {.type = "not a type"};
    CHECK(lmd_discover_nodes(1, &zero, &l) == LMD_EINVAL, "discover: size 0 reads type");
    lmd_discover_opts init = LMD_DISCOVER_OPTS_INIT;
    init.type = "not a type";
    CHECK(lmd_discover_nodes(1, &init, &l) == LMD_EINVAL, "discover: INIT reads type");

    lmd_announcement *a = (lmd_announcement *)&l;
    lmd_announce_opts as = {.size = 2};
    CHECK(lmd_announce_self(8000, NULL, &as, &a) == LMD_EINVAL && !a, "announce: size too small");
    lmd_announce_opts at = {.type = "not a type"};
    CHECK(lmd_announce_self(8000, NULL, &at, &a) == LMD_EINVAL && !a, "announce: size 0 reads type");
    lmd_announce_opts ai = LMD_ANNOUNCE_OPTS_INIT;
    CHECK(ai.size == sizeof ai, "the INIT macro sets size");
    ai.type = "not a type";
    CHECK(lmd_announce_self(8000, NULL, &ai, &a) == LMD_EINVAL && !a, "announce: INIT reads type");
}

int main(void)
{
    /* no avahi-daemon can be reached from here */
    setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/lmdisc-test-no-bus", 1);
    test_read();
    test_public_calls();
    CHECK(strcmp(lmd_version(), LMD_VERSION) == 0, "lmd_version() %s, LMD_VERSION %s", lmd_version(), LMD_VERSION);
    printf("%s: %d checks, %d failed\n", failures ? "FAILED" : "OK", checks, failures);
    return failures ? 1 : 0;
}
