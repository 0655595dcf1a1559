// The wiring board of `lab serve`: every component, in start order. Each line names a
// factory defined beside the component's own wiring.
#include "bootstrap/serve/component.hpp"

namespace lab::bootstrap::serve {

ComponentSpec dhcp_component();  // dhcp_component.cpp
ComponentSpec tftp_component();  // tftp_component.cpp

std::vector<ComponentSpec> all_components() {
  std::vector<ComponentSpec> out;
  out.push_back(dhcp_component());
  out.push_back(tftp_component());
  return out;
}

}  // namespace lab::bootstrap::serve
