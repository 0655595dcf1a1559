// Values several `lab serve` components read the same way.
#include "bootstrap/serve/config_values.hpp"

#include "shared/config/config.hpp"

#include <charconv>
#include <system_error>

namespace lab::bootstrap::serve {

Result<std::filesystem::path> served_root(const std::filesystem::path& data_dir,
                                          std::string_view configured,
                                          std::string_view default_name) {
  if (!configured.empty())
    return std::filesystem::path(configured);
  std::filesystem::path root = data_dir / default_name;
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) {
    return Error(boost::system::error_code(ec.value(), boost::system::system_category()),
                 "cannot create " + root.string() + ": " + ec.message());
  }
  return root;
}

}  // namespace lab::bootstrap::serve
