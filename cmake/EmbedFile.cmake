# pyexec_embed_file(SYMBOL INPUT OUTPUT): write OUTPUT, a C file defining
# `const char SYMBOL[]` with INPUT's bytes and a final NUL, regenerated when
# INPUT changes. Used for files the binaries carry instead of reading at run
# time (embed/harness.py, server/openapi.json).
function(pyexec_embed_file symbol input output)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${input})
  file(READ ${input} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  get_filename_component(name ${input} NAME)
  # file(CONFIGURE) rewrites the output only when its content changes.
  file(CONFIGURE OUTPUT ${output} CONTENT
    "/* Generated from ${name} by cmake/EmbedFile.cmake. Do not edit. */
const char ${symbol}[] = {${bytes} 0x00};
")
endfunction()
