#pragma once

#include "bootstrap/serve/component.hpp"

namespace lab::bootstrap::serve {

/// The coordinator and its HTTPS API (config keys coordinator.*). Its factory opens the store
/// and sets Services::registry, so the PXE servers created after it can use the registry.
ComponentSpec coordinator_component();

}  // namespace lab::bootstrap::serve
