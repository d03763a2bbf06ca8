// The backends compiled into this build.
#pragma once

#include <memory>
#include <vector>

#include "tensor/backend.h"

namespace tessera::backends {

// Registers every compiled-in backend (once) and creates those whose device is present
// at run time, the CPU last.
std::vector<std::unique_ptr<Backend>> create_available();

}  // namespace tessera::backends
