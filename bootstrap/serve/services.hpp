#pragma once

namespace lab::bootstrap::serve {

/// Interfaces one component offers to those created after it (the composition root's wiring
/// board). Each member is null until the component providing it is created.
struct Services {};

}  // namespace lab::bootstrap::serve
