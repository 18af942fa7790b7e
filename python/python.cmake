# The Python package lmdisc (python/lmdisc/, standard library only) and its
# tests, registered as CTest tests labelled unit. Included, OPTIONAL, by the
# top-level CMakeLists.txt after enable_testing().
#
# unit_python: the unittest suite. It needs no network and no agent: it runs a
# fake agent on a Unix socket in a temporary directory and a fake `lmdisc`
# script. LMDISC_BIN points at the real binary only so that a test can check
# its --help against the options the fallback passes; no test announces or
# discovers with it.
#
# unit_python_install: `pip install --no-index --no-build-isolation ./python`
# into a fresh venv (python3 -m venv: its own pip and setuptools, nothing
# else; Debian's python3-venv), offline, then the same suite against the
# installed package, a pure wheel, and a clean uninstall
# (python/tests/venv_install.py; it works on a copy of python/).
#
# Both use Debian's interpreter, the product's target, even when another
# python3 (pyenv, a venv) comes first on PATH.

find_program(LMDISC_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH
             DOC "Debian's Python 3 (>= 3.9) for the lmdisc Python package's tests")
if(NOT LMDISC_PYTHON3)
  find_program(LMDISC_PYTHON3 NAMES python3 DOC "Python 3 (>= 3.9) for the lmdisc Python package's tests")
endif()
if(NOT LMDISC_PYTHON3)
  set(LMDISC_PYTHON3 python3)
endif()

add_test(NAME unit_python
         COMMAND ${LMDISC_PYTHON3} -m unittest discover -s ${CMAKE_SOURCE_DIR}/python/tests
                 -t ${CMAKE_SOURCE_DIR}/python -v
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/python)
set_tests_properties(unit_python PROPERTIES
  LABELS unit
  TIMEOUT 120
  ENVIRONMENT "LMDISC_BIN=$<TARGET_FILE:lmdisc>;PYTHONDONTWRITEBYTECODE=1;${LMD_SANITIZER_ENV}")

add_test(NAME unit_python_install
         COMMAND ${LMDISC_PYTHON3} ${CMAKE_SOURCE_DIR}/python/tests/venv_install.py ${CMAKE_SOURCE_DIR}/python)
set_tests_properties(unit_python_install PROPERTIES
  LABELS unit
  TIMEOUT 300
  ENVIRONMENT "LMDISC_BIN=$<TARGET_FILE:lmdisc>;PYTHONDONTWRITEBYTECODE=1;${LMD_SANITIZER_ENV}"
  PASS_REGULAR_EXPRESSION "\nPASS\n")
