# Every test is a luaunit suite run by lua5.4 (or by `lmdisc test`), labelled
# unit (no network), lab (simulated hosts in network namespaces; needs root)
# or bench (not part of the default run).

set(LMD_LUA_PATH "${CMAKE_SOURCE_DIR}/lua/?.lua\;${CMAKE_SOURCE_DIR}/tests/lab/?.lua\;${CMAKE_SOURCE_DIR}/tests/unit/?.lua\;/usr/share/lua/5.4/?.lua\;/usr/share/lua/5.4/?/init.lua\;\;")
set(LMD_LUA_CPATH "${CMAKE_BINARY_DIR}/lua/?.so\;/usr/lib/x86_64-linux-gnu/lua/5.4/?.so\;\;")

# Labs of this build directory's suites are named LMD_LAB_PREFIX*: the
# cleanup below removes only those, never another run's or a person's.
string(MD5 _lmd_dir_hash "${CMAKE_BINARY_DIR}")
string(SUBSTRING "${_lmd_dir_hash}" 0 3 _lmd_dir_hash)
set(LMD_LAB_PREFIX "t${_lmd_dir_hash}")

set(LMD_TEST_ENV
  "LUA_PATH=${LMD_LUA_PATH}"
  "LUA_CPATH=${LMD_LUA_CPATH}"
  "LMDISC_BIN=$<TARGET_FILE:lmdisc>"
  "LMDISC_SRC=${CMAKE_SOURCE_DIR}"
  "LMDISC_BUILD=${CMAKE_BINARY_DIR}"
  "LMD_LAB_PREFIX=${LMD_LAB_PREFIX}"
  "LMD_DNS_UPDATE=$<TARGET_FILE:lmd-dns-update>"
  "LMD_DNS_XFR=$<TARGET_FILE:lmd-dns-xfr>"
  "LMD_TRUST_SIGN=$<TARGET_FILE:lmd-trust-sign>")
if(LMDISC_SANITIZE)
  # lua5.4 itself is not instrumented; the sanitizer runtimes must come first
  # when it loads the instrumented lmdisc.so.
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                  OUTPUT_VARIABLE LMD_ASAN OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libubsan.so
                  OUTPUT_VARIABLE LMD_UBSAN OUTPUT_STRIP_TRAILING_WHITESPACE)
  # The sanitizers exit 86, a code no command the tests run uses (lmdisc,
  # lmd-dns-update and lmd-dns-xfr exit 1 on a refused input): a memory
  # error in a refusal path cannot pass for the refusal.  The helpers that
  # run programs (tests/lab/sanitizer.lua) also fail a test on any report
  # in the output, whatever the exit code.  LMD_SANITIZER_ENV reaches every
  # test that runs an instrumented program (python/python.cmake's too), and
  # through the lab's `exec` and `bg` every process in a lab host.
  set(LMD_SANITIZER_ENV
      "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=86"
      "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=86"
      "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp:exitcode=86")
  list(APPEND LMD_TEST_ENV "LMD_PRELOAD=${LMD_ASAN}:${LMD_UBSAN}" ${LMD_SANITIZER_ENV})
endif()

# lmd_lua_test(NAME FILE LABEL [TIMEOUT s])
function(lmd_lua_test name file label)
  set(timeout 120)
  if(ARGC GREATER 3)
    set(timeout ${ARGV3})
  endif()
  # arguments past the timeout: luaunit's (a class to run)
  set(extra "")
  if(ARGC GREATER 4)
    list(SUBLIST ARGV 4 -1 extra)
  endif()
  # tests/run-suite fails a suite that ran no test
  if(LMDISC_SANITIZE)
    set(cmd ${CMAKE_SOURCE_DIR}/tests/run-suite env "LD_PRELOAD=${LMD_ASAN}:${LMD_UBSAN}" ${LUA_INTERP} ${file} -v ${extra})
  else()
    set(cmd ${CMAKE_SOURCE_DIR}/tests/run-suite ${LUA_INTERP} ${file} -v ${extra})
  endif()
  add_test(NAME ${name} COMMAND ${cmd} WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(${name} PROPERTIES LABELS ${label} TIMEOUT ${timeout}
                       ENVIRONMENT "${LMD_TEST_ENV}")
  if(label STREQUAL "lab")
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED lab)
  endif()
endfunction()

file(GLOB LMD_UNIT_SUITES CONFIGURE_DEPENDS RELATIVE ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/tests/unit/test_*.lua)
foreach(suite ${LMD_UNIT_SUITES})
  get_filename_component(n ${suite} NAME_WE)
  string(REPLACE "test_" "unit_" n ${n})
  lmd_lua_test(${n} ${suite} unit)
endforeach()

file(GLOB LMD_LAB_SUITES CONFIGURE_DEPENDS RELATIVE ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/tests/lab/test_*.lua)
# A suite with one class per DNS server (TestXNamed, TestXKnot, from
# make_class) is two tests, one per class: each has a lab of its own, so
# they run side by side and each stays well inside its timeout.
foreach(suite ${LMD_LAB_SUITES})
  get_filename_component(n ${suite} NAME_WE)
  string(REPLACE "test_" "lab_" n ${n})
  file(READ ${CMAKE_SOURCE_DIR}/${suite} body)
  string(REGEX MATCHALL "\n(Test[A-Za-z]+)(Named|Knot) = make_class" classes "${body}")
  if(classes)
    foreach(c ${classes})
      string(REGEX REPLACE "^\n(Test[A-Za-z]+(Named|Knot)) = make_class$" "\\1" cls "${c}")
      string(REGEX REPLACE "^.*(Named|Knot)$" "\\1" kind "${cls}")
      string(TOLOWER ${kind} kind)
      lmd_lua_test(${n}_${kind} ${suite} lab 300 ${cls})
    endforeach()
  else()
    lmd_lua_test(${n} ${suite} lab 300)
  endif()
endforeach()

# The suites that keep a core busy on purpose (a 1,000-service flood; policies
# spinning in C until their CPU limit) are timed against bounds: two of them
# side by side on a 2-core machine starved each other's agents (the flood's
# trusted join missed its 5 s).  Never together; any other suite may run
# beside either.
set_tests_properties(lab_hostile lab_worker lab_worker_attacks lab_wirejoin PROPERTIES RESOURCE_LOCK lab_cpu_burn)
# lab_wirejoin floods three times and waits each time for avahi-daemon to
# confirm what the wire gave (up to 150 s) and for the listener to close
# (30 s quiet): 210 s at load 3, over 300 s at load 16
set_tests_properties(lab_wirejoin PROPERTIES TIMEOUT 600)

# Lab suites mostly wait (leases, polls, probes): four run side by side
# (ctest -j4 --resource-spec-file tests/lab/resources.json, 4 "cpu" slots),
# but a suite that keeps a core busy takes three of them, so at most one
# other suite runs beside it.  Without the spec file the groups are
# ignored.
get_property(lmd_all_tests DIRECTORY PROPERTY TESTS)
foreach(t ${lmd_all_tests})
  get_test_property(${t} LABELS l)
  if("lab" IN_LIST l AND NOT t STREQUAL "lab_cleanup")
    set_tests_properties(${t} PROPERTIES RESOURCE_GROUPS "cpu:1")
  endif()
endforeach()
set_tests_properties(lab_hostile lab_worker lab_worker_attacks lab_wirejoin PROPERTIES RESOURCE_GROUPS "cpu:3")

# The sanitizer pass of CI (ASan+UBSan; .ci/run) runs the unit suites and
# these lab suites: where hostile or malformed input, lifetimes (kill,
# restart, reload, crash) and every src/ folder meet the agent's C; each
# wide-area suite once (against BIND: its Knot twin runs the same agent
# code).  Not here, for CI's time: the flood (lab_hostile: avahi parses the
# packets; the agent's side of it is what lab_api_bounds and the attack
# suites drive) and the checks (lab_liveness: plain sockets).  The full lab
# under ASan: LMDISC_SANITIZE=1 LMDISC_SANITIZE_ALL=1 .ci/quickstart test.
foreach(t lab_agent lab_api lab_api_bounds lab_api_owners lab_worker_attacks lab_wedges
        lab_trust_attacks lab_zeroconf_mixed lab_discover_complete lab_discover_many lab_python_failover lab_lib
        lab_wide_forged_named lab_wide_attacks_named lab_wide_notify_named lab_wide_shards_named
        lab_wide_site_named lab_wide_view_named lab_discover_spoof lab_worker_escapes)
  if(TEST ${t})
    set_property(TEST ${t} APPEND PROPERTY LABELS sanitize)
  endif()
endforeach()

# The long suites start first (ctest runs the costliest first when it has no
# timings of its own, as on a fresh clone): a 4-minute suite started last
# would leave one core idle for its whole length.  Seconds, plain build.
foreach(t_cost lab_wide_agent_named:250 lab_wirejoin:210 lab_wide_agent_knot:190 lab_hostile:170 lab_worker:130
        lab_wide_attacks_named:120 lab_wide_attacks_knot:120 lab_register:110 lab_trust_verdicts:110
        lab_worker_attacks:100 lab_api_bounds:55 lab_liveness:55
        lab_announce_discover:50 lab_discover_many:45 lab_wide_site_knot:46 lab_wide_forged_named:45 lab_wide_forged_knot:45
        lab_wide_site_named:40 lab_wide_notify_named:20 lab_wide_notify_knot:22)
  string(REPLACE ":" ";" t_cost ${t_cost})
  list(GET t_cost 0 t)
  list(GET t_cost 1 c)
  if(TEST ${t})
    set_tests_properties(${t} PROPERTIES COST ${c})
  endif()
endforeach()

# Whatever a failed or interrupted lab suite of this build left behind is
# torn down.
add_test(NAME lab_cleanup COMMAND ${CMAKE_SOURCE_DIR}/tests/lab/lab down-all ${LMD_LAB_PREFIX})
set_tests_properties(lab_cleanup PROPERTIES FIXTURES_CLEANUP lab LABELS lab)

# Example policies: each suite runs the way operators run it (`lmdisc test`,
# in a VM like the agent's) and under a stock lua5.4 with lmdisc.so.
file(GLOB LMD_EXAMPLES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/examples/*/test_agent.lua)
foreach(suite ${LMD_EXAMPLES})
  get_filename_component(dir ${suite} DIRECTORY)
  get_filename_component(ex ${dir} NAME)
  add_test(NAME unit_example_${ex}
           COMMAND $<TARGET_FILE:lmdisc> test ${dir}/agent.lua ${suite}
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(unit_example_${ex} PROPERTIES LABELS unit TIMEOUT 60
                       ENVIRONMENT "${LMD_TEST_ENV}")
  lmd_lua_test(unit_example_${ex}_lua ${suite} unit)
endforeach()

# The benchmark against avahi-browse and python-zeroconf (label bench; not
# part of the default run: `ctest -L bench`, or tests/bench/run for the full
# one).  --quick takes about 5 minutes.
add_test(NAME bench_compare COMMAND ${CMAKE_SOURCE_DIR}/tests/bench/run --quick
         --id b${LMD_LAB_PREFIX} --out ${CMAKE_BINARY_DIR}/bench-results.md)
set_tests_properties(bench_compare PROPERTIES LABELS bench TIMEOUT 1200
                     ENVIRONMENT "LMDISC_BIN=$<TARGET_FILE:lmdisc>")

# The trust module's signing and verifying, in C (no binary needed).
add_executable(test_trust_sign tests/unit/trust/test_sign.c)
target_link_libraries(test_trust_sign PRIVATE lmdisc_core)
add_test(NAME unit_trust_sign COMMAND test_trust_sign)
set_tests_properties(unit_trust_sign PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "${LMD_SANITIZER_ENV}")
# The registry's verdict: every path into what may be seen (a fake verifier).
add_executable(test_registry_verdict tests/unit/registry/test_verdict.c)
target_link_libraries(test_registry_verdict PRIVATE lmdisc_core)
add_test(NAME unit_registry_verdict COMMAND test_registry_verdict)
set_tests_properties(unit_registry_verdict PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "${LMD_SANITIZER_ENV}")
# The API's event ring (src/api/ring.c, built in): bounds, order, the idle trim.
add_executable(test_api_ring tests/unit/api/test_ring.c src/api/ring.c)
target_include_directories(test_api_ring PRIVATE ${CMAKE_SOURCE_DIR}/src)
add_test(NAME unit_api_ring COMMAND test_api_ring)
set_tests_properties(unit_api_ring PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "${LMD_SANITIZER_ENV}")
# The trust-model property test's C side (tests/unit/test_trust_model.lua
# runs it): the registry and the verifier as the agent wires them.
add_executable(test_trust_model_driver tests/unit/trust/model_driver.c)
target_link_libraries(test_trust_model_driver PRIVATE lmdisc_core)
# lmd-trust-sign: signs like an agent whose key was stolen (any name, any
# validity), for the lab suite test_trust_verdicts
add_executable(lmd-trust-sign tests/lab/tools/trust_sign.c)
target_link_libraries(lmd-trust-sign PRIVATE lmdisc_core)

# Wide-area DNS-SD (src/dns/): key files and update messages in C (no
# network); lmd-dns-update sends one update for the lab suite test_wide_dns.
add_executable(test_dns tests/unit/dns/test_dns.c)
target_link_libraries(test_dns PRIVATE lmdisc_dns lmdisc_core PkgConfig::LDNS)
add_test(NAME unit_dns COMMAND test_dns)
set_tests_properties(unit_dns PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "${LMD_SANITIZER_ENV}")
# the agent's passive mDNS listener (src/dns/mdns_wire.c): its assembly, offline
add_executable(test_dns_mwire tests/unit/dns/test_mwire.c)
target_link_libraries(test_dns_mwire PRIVATE lmdisc_dns lmdisc_core PkgConfig::LDNS)
add_test(NAME unit_dns_mwire COMMAND test_dns_mwire)
set_tests_properties(unit_dns_mwire PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "${LMD_SANITIZER_ENV}")
# zone transfers (src/dns/xfr.c): answer message sequences read by the reader
add_executable(test_dns_xfr tests/unit/dns/test_xfr.c)
target_link_libraries(test_dns_xfr PRIVATE lmdisc_dns lmdisc_core PkgConfig::LDNS)
add_test(NAME unit_dns_xfr COMMAND test_dns_xfr)
set_tests_properties(unit_dns_xfr PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "${LMD_SANITIZER_ENV}")
# a reader's copy of a domain (src/dns/zone.c): whole transfers, diffs, resets
add_executable(test_dns_zone tests/unit/dns/test_zone.c)
target_link_libraries(test_dns_zone PRIVATE lmdisc_dns lmdisc_core PkgConfig::LDNS)
add_test(NAME unit_dns_zone COMMAND test_dns_zone)
set_tests_properties(unit_dns_zone PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "${LMD_SANITIZER_ENV}")
# the copy read a service at a time (src/dns/zone_one.c): what a diff
# touched, read again, equals a whole read, over many random diffs
add_executable(test_dns_zone_one tests/unit/dns/test_zone_one.c)
target_link_libraries(test_dns_zone_one PRIVATE lmdisc_dns lmdisc_core PkgConfig::LDNS)
add_test(NAME unit_dns_zone_one COMMAND test_dns_zone_one)
set_tests_properties(unit_dns_zone_one PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "${LMD_SANITIZER_ENV}")
# attacks on the incremental view: specific diff sequences, by changes = whole read
add_executable(test_dns_zone_attack tests/unit/dns/test_zone_attack.c)
target_link_libraries(test_dns_zone_attack PRIVATE lmdisc_dns lmdisc_core PkgConfig::LDNS)
add_test(NAME unit_dns_zone_attack COMMAND test_dns_zone_attack)
set_tests_properties(unit_dns_zone_attack PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "${LMD_SANITIZER_ENV}")
# the DNS-over-TCP client of updates and transfers (src/dns/tcp.c), over
# socketpairs and Unix sockets
add_executable(test_dns_tcp tests/unit/dns/test_tcp.c)
target_link_libraries(test_dns_tcp PRIVATE lmdisc_dns lmdisc_core PkgConfig::LDNS)
add_test(NAME unit_dns_tcp COMMAND test_dns_tcp)
set_tests_properties(unit_dns_tcp PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "${LMD_SANITIZER_ENV}")
# signed reads (src/dns/tsig.c, send.c): answers the key did not sign are
# dropped and counted, against a UDP server on loopback in the test
add_executable(test_dns_tsig tests/unit/dns/test_tsig.c)
target_link_libraries(test_dns_tsig PRIVATE lmdisc_dns lmdisc_core PkgConfig::LDNS)
add_test(NAME unit_dns_tsig COMMAND test_dns_tsig)
set_tests_properties(unit_dns_tsig PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "${LMD_SANITIZER_ENV}")
# NOTIFY received (src/dns/notify.c): only our key's signature is believed and answered
add_executable(test_dns_notify tests/unit/dns/test_notify.c)
target_link_libraries(test_dns_notify PRIVATE lmdisc_dns lmdisc_core PkgConfig::LDNS)
add_test(NAME unit_dns_notify COMMAND test_dns_notify)
set_tests_properties(unit_dns_notify PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "${LMD_SANITIZER_ENV}")
add_executable(lmd-dns-update tests/lab/tools/dns_update.c)
target_link_libraries(lmd-dns-update PRIVATE lmdisc_dns lmdisc_core PkgConfig::LDNS)
# lmd-dns-xfr: one zone transfer (AXFR / IXFR) read to its end, for the same suite
add_executable(lmd-dns-xfr tests/lab/tools/dns_xfr.c)
target_link_libraries(lmd-dns-xfr PRIVATE lmdisc_dns lmdisc_core PkgConfig::LDNS)
