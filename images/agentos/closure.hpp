#pragma once

#include "images/archive/error.hpp"

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lab::images {

/// The shared libraries `binary` loads, with the program interpreter, as ldd resolves them on
/// this machine (mkinitramfs's copy_exec does the same). Empty for a static binary. Each path
/// is where the loader looks for it; copy the file's content to that same path in the image.
Result<std::vector<std::filesystem::path>> shared_libraries(const std::filesystem::path& binary);

/// The modules a kernel module needs loaded first: its `.modinfo` "depends=" entry.
std::vector<std::string> module_dependencies(std::string_view module_bytes);

/// Orders the modules named in `wanted` and everything they depend on so that each comes after
/// its dependencies. `modules` maps module names (with '_', never '-') to their bytes. A
/// dependency missing from `modules` is an error naming it and who needs it.
Result<std::vector<std::string>> module_load_order(
    const std::map<std::string, std::string>& modules, const std::vector<std::string>& wanted);

}  // namespace lab::images
