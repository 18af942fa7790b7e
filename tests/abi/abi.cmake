# The public C API's ABI (include/lmdisc.h, "ABI rules").  Included by the
# top-level CMakeLists.txt after the test helpers.
#
# lmd-abi-layout prints the public structs' layout and constants as a
# program built against the header sees them; tests/unit/test_abi.lua
# compares it, and liblmdisc.so's exports, with the committed lists
# (tests/abi/layout-ARCH.txt, debian/liblmdisc0.symbols).
add_executable(lmd-abi-layout tests/abi/layout.c)
target_include_directories(lmd-abi-layout PRIVATE include)

# Option structs of any layout (no network).
add_executable(test_abi_opts tests/abi/test_opts.c)
target_link_libraries(test_abi_opts PRIVATE lmdisc_core)
add_test(NAME unit_abi_opts COMMAND test_abi_opts)
set_tests_properties(unit_abi_opts PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "${LMD_SANITIZER_ENV}")

# lmd-lib-probe: liblmdisc.so as a program uses it, for the lab suite
# tests/lab/test_lib.lua.
add_executable(lmd-lib-probe tests/abi/probe.c)
target_include_directories(lmd-lib-probe PRIVATE include)
target_link_libraries(lmd-lib-probe PRIVATE liblmdisc)
