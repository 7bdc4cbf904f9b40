# PYEXEC_SANITIZE: every target built with AddressSanitizer + UBSan, leak
# checking on. Included from the top-level CMakeLists.txt before any target
# exists, so it reaches every library, executable and test.
#
# Options reach the processes two ways:
#  - compiled in (sanitizer_options.c, linked into every target): the template
#    is exec'd with a scrubbed environment, so ASAN_OPTIONS would never reach
#    it, the workers or the children;
#  - the same options set for ctest (sanitizer_env.cmake.in), so a report is
#    reproducible by hand with the printed environment.
# Either way, leaks of CPython's own (never-finalised) interpreter are
# suppressed by tests/lsan.supp, not by turning leak checking off.

if(NOT CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
  message(FATAL_ERROR "PYEXEC_SANITIZE needs gcc or clang")
endif()

set(PYEXEC_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
                           -fno-omit-frame-pointer)
add_compile_options(${PYEXEC_SANITIZER_FLAGS})
add_link_options(-fsanitize=address,undefined)
if(PYEXEC_FUZZ)
  # Coverage for libFuzzer in every library; only the fuzz targets link the
  # fuzzer's main (tests/fuzz/CMakeLists.txt).
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

set(PYEXEC_LSAN_SUPPRESSIONS ${PROJECT_SOURCE_DIR}/tests/lsan.supp)
# handle_segv/sigbus/sigfpe=0: a script's own crash must reach the worker as
# the kernel's signal (the API's "killed", SIGSEGV), not as an ASan report and
# exit(1). allocator_may_return_null=1: a script over its memory limit gets
# MemoryError (the API's "memory_limit") instead of an ASan abort.
# quarantine_size_mb: freed memory is held back to catch use-after-free; the
# default 256 MiB would count against each script's memory budget.
set(PYEXEC_ASAN_OPTIONS
    "detect_leaks=1:allocator_may_return_null=1:handle_segv=0:handle_sigbus=0:handle_sigfpe=0:quarantine_size_mb=16:detect_stack_use_after_return=0:abort_on_error=0:exitcode=66")
set(PYEXEC_LSAN_OPTIONS "suppressions=${PYEXEC_LSAN_SUPPRESSIONS}:print_suppressions=0")
set(PYEXEC_UBSAN_OPTIONS "print_stacktrace=1:halt_on_error=1:exitcode=67")

add_library(pyexec_sanitizer_options OBJECT ${CMAKE_CURRENT_LIST_DIR}/sanitizer_options.c)
target_compile_definitions(pyexec_sanitizer_options PRIVATE
  PYEXEC_ASAN_OPTIONS="${PYEXEC_ASAN_OPTIONS}"
  PYEXEC_LSAN_OPTIONS="${PYEXEC_LSAN_OPTIONS}"
  PYEXEC_UBSAN_OPTIONS="${PYEXEC_UBSAN_OPTIONS}")
link_libraries(pyexec_sanitizer_options)

configure_file(${CMAKE_CURRENT_LIST_DIR}/sanitizer_env.cmake.in
               ${PROJECT_BINARY_DIR}/sanitizer_env.cmake @ONLY)
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY TEST_INCLUDE_FILES
             ${PROJECT_BINARY_DIR}/sanitizer_env.cmake)
