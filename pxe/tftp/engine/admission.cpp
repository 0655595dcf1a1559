#include "pxe/tftp/engine/admission.hpp"

#include <cassert>

namespace lab::pxe::tftp::engine {

Admission::Verdict Admission::check(std::string_view address) const {
  if (total_ >= max_transfers_)
    return Verdict::server_busy;
  if (running_from(address) >= max_per_client_)
    return Verdict::client_busy;
  return Verdict::admit;
}

void Admission::started(std::string_view address) {
  ++total_;
  auto it = per_client_.find(address);
  if (it == per_client_.end())
    per_client_.emplace(address, 1);
  else
    ++it->second;
}

void Admission::ended(std::string_view address) {
  auto it = per_client_.find(address);
  assert(it != per_client_.end() && total_ > 0);
  if (it == per_client_.end())
    return;
  --total_;
  if (--it->second == 0)
    per_client_.erase(it);
}

std::size_t Admission::running_from(std::string_view address) const {
  auto it = per_client_.find(address);
  return it == per_client_.end() ? 0 : it->second;
}

}  // namespace lab::pxe::tftp::engine
