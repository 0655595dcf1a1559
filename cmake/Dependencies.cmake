# Every third-party dependency, found once, from Debian packages. Nothing is vendored.
find_package(Boost 1.81 REQUIRED CONFIG COMPONENTS system json url)
find_package(OpenSSL 3 REQUIRED)
find_package(CURL REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(LibArchive REQUIRED)
find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(CLI11 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(TSS2 REQUIRED IMPORTED_TARGET tss2-esys tss2-tctildr tss2-mu tss2-rc)
pkg_check_modules(LIBSSH REQUIRED IMPORTED_TARGET libssh)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)

# Beast/Asio are header-only; one definition set for every target that uses them.
add_library(lab_boost_asio INTERFACE)
target_link_libraries(lab_boost_asio INTERFACE Boost::system Threads::Threads OpenSSL::SSL)
target_compile_definitions(lab_boost_asio INTERFACE
  BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW BOOST_ASIO_DISABLE_BOOST_COROUTINE)
add_library(lab::boost_asio ALIAS lab_boost_asio)

if(LAB_BUILD_TESTS)
  find_package(GTest REQUIRED)
  find_package(benchmark REQUIRED)
endif()
