# One bounded fuzzing run of a harness, for CTest (see fuzz.cmake):
#   cmake -DHARNESS=exe -DNAME=n -DSEEDS=dir -DWORK=dir -DARTIFACTS=dir
#         -DSECONDS=s "-DOPTIONS=-timeout=10;..." [-DDICT=file] -P run_harness.cmake
# The seed corpus is only read: libFuzzer writes new inputs into the first
# corpus directory it is given, a fresh WORK/corpus.  A crash, a leak, a
# timeout or running out of memory fails the test; the input that did it is
# in ARTIFACTS.
foreach(v HARNESS NAME SEEDS WORK ARTIFACTS SECONDS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_harness.cmake: -D${v}= is missing")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK})
# TMPDIR: fuzz_config's directory (a crash leaves it behind) stays here
file(MAKE_DIRECTORY ${WORK}/corpus ${WORK}/tmp ${ARTIFACTS})
set(dict)
if(DICT)
  set(dict -dict=${DICT})
endif()
set(cmd ${CMAKE_COMMAND} -E env TMPDIR=${WORK}/tmp ${HARNESS} ${WORK}/corpus ${SEEDS} -max_total_time=${SECONDS} ${OPTIONS} ${dict}
    -artifact_prefix=${ARTIFACTS}/)
string(REPLACE ";" " " shown "${cmd}")
message(STATUS "${shown}")
execute_process(COMMAND ${cmd} WORKING_DIRECTORY ${WORK} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found ${ARTIFACTS}/*)
  message(FATAL_ERROR "fuzz_${NAME}: the harness failed (${rc}); inputs kept: ${found}\n"
                      "Replay one with: ${HARNESS} FILE")
endif()
