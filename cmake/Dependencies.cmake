# Every third-party dependency, found once, from Debian packages. Nothing is vendored.
find_package(Boost 1.81 REQUIRED CONFIG COMPONENTS system url)
find_package(OpenSSL 3 REQUIRED)
find_package(CURL REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(LibArchive REQUIRED)
find_package(Threads REQUIRED)

# fmt and Boost.JSON are the C++ libraries every part uses. In the shipped (non-sanitized)
# build neither is linked as a shared library, so that no C++ shared library besides libstdc++
# is left and labd can link that one statically (agent/labd/CMakeLists.txt):
# - fmt in its header-only mode (FMT_HEADER_ONLY, as the package's fmt::fmt-header-only target
#   does). fmt::fmt is defined here, before find_package(fmt) and spdlog's find_dependency(fmt),
#   whose target file then defines nothing: spdlog and every target linking fmt::fmt get it.
#   The sanitized test build links the package's libfmt.so instead: header-only fmt costs about
#   4 s of compiling in each of the hundred translation units that format, and that build links
#   the shared libstdc++ anyway.
# - Boost.JSON from its src.hpp, once (cmake/deps/boost_json.cpp), as Boost documents.
if(NOT LAB_SANITIZE)
  find_path(LAB_FMT_INCLUDE_DIR fmt/format-inl.h REQUIRED)
  add_library(lab_fmt_header_only INTERFACE)
  target_include_directories(lab_fmt_header_only SYSTEM INTERFACE "${LAB_FMT_INCLUDE_DIR}")
  target_compile_definitions(lab_fmt_header_only INTERFACE FMT_HEADER_ONLY=1)
  add_library(fmt::fmt ALIAS lab_fmt_header_only)
  add_library(fmt::fmt-header-only ALIAS lab_fmt_header_only)
endif()
find_package(fmt 9 REQUIRED CONFIG)

add_library(lab_boost_json STATIC "${CMAKE_CURRENT_LIST_DIR}/deps/boost_json.cpp")
target_link_libraries(lab_boost_json PUBLIC Boost::headers)
target_compile_options(lab_boost_json PRIVATE -ffunction-sections -fdata-sections)
add_library(Boost::json ALIAS lab_boost_json)

find_package(spdlog REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(CLI11 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(TSS2 REQUIRED IMPORTED_TARGET tss2-esys tss2-tctildr tss2-mu tss2-rc)
pkg_check_modules(LIBSSH REQUIRED IMPORTED_TARGET libssh)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
pkg_check_modules(YAML REQUIRED IMPORTED_TARGET yaml-0.1)

# Beast/Asio are header-only; one definition set for every target that uses them.
add_library(lab_boost_asio INTERFACE)
target_link_libraries(lab_boost_asio INTERFACE Boost::system Threads::Threads OpenSSL::SSL)
target_compile_definitions(lab_boost_asio INTERFACE
  BOOST_ASIO_NO_DEPRECATED BOOST_ASIO_DISABLE_BOOST_COROUTINE)
add_library(lab::boost_asio ALIAS lab_boost_asio)

if(LAB_BUILD_TESTS)
  find_package(GTest REQUIRED)
  find_package(benchmark REQUIRED)
endif()
