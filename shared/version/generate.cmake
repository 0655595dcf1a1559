# Runs at build time: writes version.hpp with the current commit, touching it only on change.
execute_process(
  COMMAND git -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
  OUTPUT_VARIABLE LAB_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT LAB_GIT_COMMIT)
  set(LAB_GIT_COMMIT "unknown")
endif()
configure_file("${INPUT}" "${OUTPUT}" @ONLY)
