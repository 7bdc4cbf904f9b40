# embed/: the embedded CPython, exercised in forked children like the service's.
pyexec_unit_test(test_embed SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_embed.c
  LIBS pyexec_embed PkgConfig::JANSSON)
# The conformance cases every tier reads (tests/conformance/README.md).
target_compile_definitions(test_embed PRIVATE
  PYEXEC_CONFORMANCE_CASES="${PROJECT_SOURCE_DIR}/tests/conformance/cases.json")
