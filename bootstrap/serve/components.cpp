// The wiring board of `lab serve`: every component, in start order. Each line names a
// factory defined beside the component's own wiring.
#include "bootstrap/serve/component.hpp"

namespace lab::bootstrap::serve {

ComponentSpec recorder_component();     // recorder_component.cpp
ComponentSpec coordinator_component();  // coordinator_component.cpp
ComponentSpec dhcp_component();         // dhcp_component.cpp
ComponentSpec tftp_component();         // tftp_component.cpp
ComponentSpec httpboot_component();     // httpboot_component.cpp
ComponentSpec metrics_component();      // metrics_component.cpp

std::vector<ComponentSpec> all_components() {
  std::vector<ComponentSpec> out;
  out.push_back(recorder_component());
  out.push_back(coordinator_component());
  out.push_back(dhcp_component());
  out.push_back(tftp_component());
  out.push_back(httpboot_component());
  out.push_back(metrics_component());  // last: serves what the others registered
  return out;
}

}  // namespace lab::bootstrap::serve
