// Registration of the compiled-in backends.
#include "backends/registry.h"

#include <mutex>

#include "backends/cpu/cpu_backend.h"
#ifdef TESSERA_HAVE_CUDA
#include "backends/cuda/cuda_backend.h"
#endif
#ifdef TESSERA_HAVE_VULKAN
#include "backends/vulkan/vulkan_backend.h"
#endif

namespace tessera::backends {

namespace {

void register_all() {
    static std::once_flag once;
    std::call_once(once, [] {
#ifdef TESSERA_HAVE_CUDA
        cuda::register_cuda_backends();
#endif
#ifdef TESSERA_HAVE_VULKAN
        vulkan::register_vulkan_backends();
#endif
        cpu::register_cpu_backend();
    });
}

}  // namespace

std::vector<std::unique_ptr<Backend>> create_available() {
    register_all();
    return create_available_backends();
}

std::unique_ptr<Backend> create_instance(const std::string& name) {
    register_all();
    for (const BackendFactory& f : backend_registry())
        if (f.name == name && f.available()) return f.create();
    return nullptr;
}

std::vector<std::string> gpu_devices() {
    std::vector<std::string> out;
#ifdef TESSERA_HAVE_CUDA
    for (const std::string& d : cuda::describe_devices()) out.push_back("CUDA: " + d);
    if (out.empty()) out.push_back("CUDA: no device (" + cuda::unavailable_reason() + ")");
#endif
#ifdef TESSERA_HAVE_VULKAN
    const auto vk = vulkan::describe_devices();
    for (const std::string& d : vk) out.push_back("Vulkan: " + d);
    if (vk.empty()) out.push_back("Vulkan: no device (" + vulkan::unavailable_reason() + ")");
#endif
    return out;
}

std::string gpu_unavailable_reason() {
#ifdef TESSERA_HAVE_CUDA
    const std::string r = cuda::unavailable_reason();
    if (!r.empty()) return "CUDA: " + r;
#endif
#ifdef TESSERA_HAVE_VULKAN
    const std::string v = vulkan::unavailable_reason();
    if (!v.empty()) return "Vulkan: " + v;
#endif
    return "";
}

}  // namespace tessera::backends
