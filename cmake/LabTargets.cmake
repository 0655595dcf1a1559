# Helpers that give every project target the same shape (CONVENTIONS.md, "Layout").

# Warnings are errors on project code only; third-party headers come in as SYSTEM.
set(LAB_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wold-style-cast
    -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough -Werror)

# GCC 12 at -O2/-O3 reports -Wrestrict inside std::string concatenation (GCC bug 105329).
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  list(APPEND LAB_WARNINGS -Wno-restrict)
endif()

function(lab_apply_warnings target)
  target_compile_options(${target} PRIVATE ${LAB_WARNINGS})
endfunction()

# lab_library(<name> SOURCES ... [PUBLIC ...] [PRIVATE ...])
# <name> is the folder path with '/' replaced by '_' (shared/crypto -> shared_crypto);
# the alias lab::<name> is what other targets link. Includes are rooted at the repo root.
function(lab_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC;PRIVATE" ${ARGN})
  if(ARG_SOURCES)
    add_library(${name} STATIC ${ARG_SOURCES})
    target_include_directories(${name} PUBLIC "${PROJECT_SOURCE_DIR}" "${LAB_GENERATED_DIR}")
    target_link_libraries(${name} PUBLIC ${ARG_PUBLIC} PRIVATE ${ARG_PRIVATE})
    # A section per function and object, so a program linked with --gc-sections (labd) keeps
    # only what it reaches of each library instead of every function of every object it uses.
    target_compile_options(${name} PRIVATE -ffunction-sections -fdata-sections)
    lab_apply_warnings(${name})
  else()
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE "${PROJECT_SOURCE_DIR}" "${LAB_GENERATED_DIR}")
    target_link_libraries(${name} INTERFACE ${ARG_PUBLIC})
  endif()
  add_library(lab::${name} ALIAS ${name})
endfunction()

# lab_executable(<name> SOURCES ... [PRIVATE ...])
function(lab_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PRIVATE" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_PRIVATE})
  lab_apply_warnings(${name})
  install(TARGETS ${name} RUNTIME DESTINATION bin)
endfunction()
