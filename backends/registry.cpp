// Registration of the compiled-in backends.
#include "backends/registry.h"

#include <mutex>

#include "backends/cpu/cpu_backend.h"

namespace tessera::backends {

std::vector<std::unique_ptr<Backend>> create_available() {
    static std::once_flag once;
    std::call_once(once, [] { cpu::register_cpu_backend(); });
    return create_available_backends();
}

}  // namespace tessera::backends
