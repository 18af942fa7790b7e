# The Python package lmdisc (python/lmdisc/, standard library only) and its
# unittest suite, registered as one CTest test labelled unit. Included, OPTIONAL,
# by the top-level CMakeLists.txt after enable_testing().
#
# The suite needs no network and no agent: it runs a fake agent on a Unix socket
# in a temporary directory and a fake `lmdisc` script. LMDISC_BIN points at the
# real binary only so that a test can check its --help against the options the
# fallback passes; no test announces or discovers with it.

find_program(LMD_PYTHON3 NAMES python3 DOC "Python 3 (>= 3.11) for the lmdisc Python package's tests")
if(NOT LMD_PYTHON3)
  set(LMD_PYTHON3 python3)
endif()

add_test(NAME unit_python
         COMMAND ${LMD_PYTHON3} -m unittest discover -s ${CMAKE_SOURCE_DIR}/python/tests
                 -t ${CMAKE_SOURCE_DIR}/python -v
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/python)
set_tests_properties(unit_python PROPERTIES
  LABELS unit
  TIMEOUT 120
  ENVIRONMENT "LMDISC_BIN=$<TARGET_FILE:lmdisc>;PYTHONDONTWRITEBYTECODE=1;${LMD_SANITIZER_ENV}")
