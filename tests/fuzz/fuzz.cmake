# libFuzzer harnesses for every parser of outside input (tests/fuzz/fuzz_*.c),
# built only when asked for, with clang:
#
#   CC=clang cmake -B build-fuzz -DLMDISC_FUZZ=ON && cmake --build build-fuzz --target fuzz
#   ctest --test-dir build-fuzz -L fuzz
#
# (tests/fuzz/run does both).  Without -DLMDISC_FUZZ=ON, or with another
# compiler, this file adds nothing.
#
# The project's sources are compiled a second time, instrumented
# (-fsanitize=fuzzer-no-link,address,undefined), into one static library
# the harnesses link against; each harness links with -fsanitize=fuzzer.
# Tests, label fuzz:
#   fuzz_NAME              fuzzes LMDISC_FUZZ_SECONDS (default 30) on a fresh
#                          copy of corpus/NAME/ (read-only; new inputs go to a
#                          writable directory in the build tree); any crash,
#                          leak, timeout (-timeout=10) or memory blow-up fails
#                          it, and the input is kept in fuzz/artifacts/NAME/
#   fuzz_NAME_regressions  replays the inputs in regressions/NAME/ once each,
#                          strictly: known bugs not fixed yet fail it (fuzz.h)
#   fuzz_config_fence_WHAT a configuration that reaches WHAT (system, popen,
#                          fork, execve, socket, dlopen...) through the
#                          harness's self-test: the fence must stop it
if(NOT LMDISC_FUZZ)
  return()
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(WARNING "LMDISC_FUZZ=ON needs clang (libFuzzer); the fuzz harnesses are not built with "
                  "${CMAKE_C_COMPILER_ID}: configure with CC=clang")
  return()
endif()

set(LMDISC_FUZZ_SECONDS 30 CACHE STRING "Seconds each fuzz_NAME test fuzzes")
set(LMD_FUZZ_SRC_DIR ${CMAKE_CURRENT_LIST_DIR})
set(LMD_FUZZ_BIN_DIR ${CMAKE_BINARY_DIR}/fuzz)
set(LMD_FUZZ_NAMES txt json config cli api dnskey xfr mdns)
set(LMD_FUZZ_CFLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer -g)
# the harnesses themselves: sanitized, but without coverage instrumentation
# (their checks are not what is being explored, and cost time)
set(LMD_FUZZ_HARNESS_CFLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer -g)
set(LMD_FUZZ_OPTIONS -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

# The embedded mantle, generated again into the fuzz directory by the
# binary's own command.
add_custom_command(OUTPUT ${LMD_FUZZ_BIN_DIR}/embedded_lua.c
  COMMAND ${CMAKE_COMMAND} -DOUT=${LMD_FUZZ_BIN_DIR}/embedded_lua.c -DBASE=${CMAKE_SOURCE_DIR}/lua
          "-DFILES=${LMD_MANTLE_ARG}" -P ${CMAKE_SOURCE_DIR}/src/policy/embed_lua.cmake
  DEPENDS ${LMD_MANTLE_FILES} ${CMAKE_SOURCE_DIR}/src/policy/embed_lua.cmake
  COMMENT "Embedding the Lua mantle (fuzz build)" VERBATIM)

# Every source of the lmdisc binary and its libraries, but main() (the
# harnesses have libFuzzer's): main.c is compiled on its own with main
# renamed, for lmd_parse_global.
get_target_property(_lmd_core_src lmdisc_core SOURCES)
get_target_property(_lmd_luabind_src lmdisc_luabind SOURCES)
get_target_property(_lmd_dns_src lmdisc_dns SOURCES)
get_target_property(_lmd_bin_src lmdisc SOURCES)
list(FILTER _lmd_bin_src EXCLUDE REGEX "(^|/)embedded_lua\\.c$|(^|/)src/cmd/main\\.c$")
add_library(lmd_fuzz_lib STATIC EXCLUDE_FROM_ALL ${_lmd_core_src} ${_lmd_luabind_src} ${_lmd_dns_src} ${_lmd_bin_src}
  ${LMD_FUZZ_BIN_DIR}/embedded_lua.c)
add_library(lmd_fuzz_main OBJECT EXCLUDE_FROM_ALL src/cmd/main.c)
target_compile_definitions(lmd_fuzz_main PRIVATE main=lmd_fuzz_unused_main)
# Include directories and libraries: whatever the binary and its object
# libraries use (PkgConfig::AVAHI, ::EVENT, ::JANSSON, ::LUA...), but those
# object libraries themselves, whose sources are compiled again here.
set(_lmd_fuzz_incs)
set(_lmd_fuzz_libs)
foreach(t lmdisc lmdisc_core lmdisc_luabind lmdisc_dns)
  foreach(p INCLUDE_DIRECTORIES INTERFACE_INCLUDE_DIRECTORIES)
    get_target_property(_v ${t} ${p})
    if(_v)
      list(APPEND _lmd_fuzz_incs ${_v})
    endif()
  endforeach()
  foreach(p LINK_LIBRARIES INTERFACE_LINK_LIBRARIES)
    get_target_property(_v ${t} ${p})
    if(_v)
      list(APPEND _lmd_fuzz_libs ${_v})
    endif()
  endforeach()
endforeach()
list(FILTER _lmd_fuzz_libs EXCLUDE REGEX "^lmdisc")
list(REMOVE_DUPLICATES _lmd_fuzz_incs)
list(REMOVE_DUPLICATES _lmd_fuzz_libs)
foreach(t lmd_fuzz_lib lmd_fuzz_main)
  target_compile_options(${t} PRIVATE ${LMD_FUZZ_CFLAGS})
  target_include_directories(${t} PUBLIC ${_lmd_fuzz_incs})
  target_link_libraries(${t} PUBLIC ${_lmd_fuzz_libs})
endforeach()
target_sources(lmd_fuzz_lib PRIVATE $<TARGET_OBJECTS:lmd_fuzz_main>)

add_custom_target(fuzz)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${LMD_FUZZ_SRC_DIR}/options)
foreach(name ${LMD_FUZZ_NAMES})
  add_executable(fuzz_${name} ${LMD_FUZZ_SRC_DIR}/fuzz_${name}.c)
  target_include_directories(fuzz_${name} PRIVATE ${LMD_FUZZ_SRC_DIR})
  target_compile_options(fuzz_${name} PRIVATE ${LMD_FUZZ_HARNESS_CFLAGS})
  # libldns itself too: the agent loads it at run time (src/dns/ldns.c), a
  # harness that builds its input with ldns calls it directly
  target_link_libraries(fuzz_${name} PRIVATE lmd_fuzz_lib PkgConfig::LDNS)
  target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  # the harnesses' own symbols (fuzz_config's fopen...) must be seen by the
  # shared libraries
  set_target_properties(fuzz_${name} PROPERTIES C_VISIBILITY_PRESET default
    RUNTIME_OUTPUT_DIRECTORY ${LMD_FUZZ_BIN_DIR})
  add_dependencies(fuzz fuzz_${name})

  set(_dict)
  if(EXISTS ${LMD_FUZZ_SRC_DIR}/${name}.dict)
    set(_dict -DDICT=${LMD_FUZZ_SRC_DIR}/${name}.dict)
  endif()
  # this harness's own options (tests/fuzz/options: "NAME -opt=v ...")
  set(_opts ${LMD_FUZZ_OPTIONS})
  file(STRINGS ${LMD_FUZZ_SRC_DIR}/options _lines REGEX "^${name} ")
  foreach(_l ${_lines})
    string(REGEX REPLACE "^${name} +" "" _l "${_l}")
    separate_arguments(_l UNIX_COMMAND "${_l}")
    list(APPEND _opts ${_l})
  endforeach()
  add_test(NAME fuzz_${name}
    COMMAND ${CMAKE_COMMAND} -DHARNESS=$<TARGET_FILE:fuzz_${name}> -DNAME=${name}
            -DSEEDS=${LMD_FUZZ_SRC_DIR}/corpus/${name} -DWORK=${LMD_FUZZ_BIN_DIR}/work/${name}
            -DARTIFACTS=${LMD_FUZZ_BIN_DIR}/artifacts/${name} -DSECONDS=${LMDISC_FUZZ_SECONDS}
            "-DOPTIONS=${_opts}" ${_dict} -P ${LMD_FUZZ_SRC_DIR}/run_harness.cmake)
  math(EXPR _timeout "${LMDISC_FUZZ_SECONDS} + 300")
  set_tests_properties(fuzz_${name} PROPERTIES LABELS fuzz TIMEOUT ${_timeout})

  file(GLOB _regressions CONFIGURE_DEPENDS ${LMD_FUZZ_SRC_DIR}/regressions/${name}/*)
  if(_regressions)
    # files given one by one: libFuzzer runs each once and fuzzes nothing
    add_test(NAME fuzz_${name}_regressions COMMAND fuzz_${name} ${LMD_FUZZ_OPTIONS} ${_regressions})
    set_tests_properties(fuzz_${name}_regressions PROPERTIES LABELS fuzz TIMEOUT 300
      ENVIRONMENT LMD_FUZZ_STRICT=1)
  endif()
endforeach()

# The config fuzzer's fence fires: each configuration opens
# "lmd-fence-selftest-WHAT", and with LMD_FUZZ_FENCE_SELFTEST set the
# harness does WHAT from inside that io.open (fuzz_config.c).  Passes only
# when the fence's report is printed (the harness aborts then); a WHAT that
# got through prints "was NOT stopped" and fails.  The kernel's side (the
# seccomp filter) must stop all but "dlopen", which the harness's dlopen
# symbol stops first ("dlopen-kernel" goes past it to glibc's own).
foreach(what system popen fork execve socket dlopen dlopen-kernel mmap-exec)
  set(_cfg ${LMD_FUZZ_BIN_DIR}/fence/${what}.lua)
  file(WRITE ${_cfg} "-- fuzz_config fence self-test: reach ${what}\nio.open(\"lmd-fence-selftest-${what}\")\n")
  if(what STREQUAL "dlopen")
    set(_expect "a configuration being checked reached dlopen\\(\\)")
  else()
    set(_expect "stopped by the seccomp filter")
  endif()
  add_test(NAME fuzz_config_fence_${what} COMMAND fuzz_config ${LMD_FUZZ_OPTIONS} ${_cfg})
  set_tests_properties(fuzz_config_fence_${what} PROPERTIES LABELS fuzz TIMEOUT 60
    ENVIRONMENT LMD_FUZZ_FENCE_SELFTEST=1
    PASS_REGULAR_EXPRESSION "${_expect}" FAIL_REGULAR_EXPRESSION "was NOT stopped")
endforeach()
