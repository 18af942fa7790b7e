/* Limits that more than one part of lmdisc needs, each written once.
 *
 * Those the Lua half (lua/lmdisc/) needs as well reach it from C, as
 * SERVICE_TYPE does: src/lua/ns_contract.c exports them into the lmdisc
 * module (lmdisc.MAX_TIMERS, ...), where the mantle and lmdisc.testing read
 * them.  Defaults of settings are not here: the schema (lua/lmdisc/config.lua)
 * is their only source; where C needs one without a configuration (the
 * library), tests/unit/test_contract.lua holds it to the schema. */
#ifndef LMD_BASE_LIMITS_H
#define LMD_BASE_LIMITS_H

/* Pending lmdisc.timer()/every() callbacks per policy: each holds a
 * libevent event outside the VM's memory cap, and all due together run back
 * to back on the loop (lmdisc.MAX_TIMERS). */
#define LMD_MAX_TIMERS 10000
/* Seconds a timer may wait at most (one year), and every() at least
 * (lmdisc.TIMER_MAX, lmdisc.EVERY_MIN). */
#define LMD_TIMER_MAX 31536000
#define LMD_EVERY_MIN 0.01

/* Bytes of a file read whole: the configuration itself, and what a policy
 * reads with lmdisc.read_file, loadfile, dofile or require (reading
 * /dev/zero must not take the agent down) (lmdisc.FILE_MAX). */
#define LMD_FILE_MAX (4 << 20)

/* Seconds a peer that stopped answering stays listed by a registry with no
 * configuration (lmd_registry_start, lmdisc.start_registry): the schema's
 * default of registry { ttl }, which a test holds it to
 * (lmdisc.REGISTRY_TTL). */
#define LMD_REGISTRY_TTL 60

/* The longest TTL our records get (announce { ttl }, `lmdisc announce
 * --ttl`): avahi's longest (75 min, PTR and TXT), or a host that vanished
 * would stay in caches for longer (lmdisc.RECORD_TTL_MAX; the schema's
 * bound). */
#define LMD_RECORD_TTL_MAX 4500

/* IPv4 and IPv6 instances of a service resolve within milliseconds of each
 * other.  A new peer joins as soon as the instances avahi has reported for
 * it are resolved (one join with both addresses, no wait); this is only the
 * bound on waiting for one that does not answer.  Changes to a joined peer
 * are gathered over it into one update.  Seconds; the agent's registry and
 * the library's. */
#define LMD_SETTLE 0.05

#endif
