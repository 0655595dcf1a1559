#include "shared/net/ip.hpp"

#include <arpa/inet.h>

#include <array>
#include <string>

namespace lab::shared::net {

bool is_ip_literal(std::string_view text) {
  std::array<unsigned char, 16> buf{};
  const std::string s(text);  // inet_pton needs a terminated string
  return inet_pton(AF_INET, s.c_str(), buf.data()) == 1 ||
         inet_pton(AF_INET6, s.c_str(), buf.data()) == 1;
}

}  // namespace lab::shared::net
