// Boost.JSON's compiled part, built here instead of linking libboost_json.so: Boost's
// documented way is to include src.hpp in exactly one translation unit. Without a C++ shared
// library left, labd can link libstdc++ statically (agent/labd/CMakeLists.txt).
#include <boost/json/src.hpp>
