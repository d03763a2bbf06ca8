// The Vulkan loader, opened at run time: dlopen of libvulkan, the instance, the devices the
// backend can use (Vulkan 1.2 with a compute queue) and the function table.
#include "backends/vulkan/vulkan_api.h"

#include <dlfcn.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tensor/error.h"

namespace tessera::vulkan {

const char* result_name(VkResult r) {
    switch (r) {
        case VK_ERROR_OUT_OF_HOST_MEMORY:
            return "out of host memory";
        case VK_ERROR_OUT_OF_DEVICE_MEMORY:
            return "out of device memory";
        case VK_ERROR_INITIALIZATION_FAILED:
            return "initialization failed";
        case VK_ERROR_DEVICE_LOST:
            return "device lost";
        case VK_ERROR_INCOMPATIBLE_DRIVER:
            return "no compatible Vulkan driver";
        case VK_ERROR_LAYER_NOT_PRESENT:
            return "a requested layer is not present";
        case VK_ERROR_EXTENSION_NOT_PRESENT:
            return "an extension is not present";
        case VK_ERROR_FEATURE_NOT_PRESENT:
            return "a feature is not present";
        case VK_TIMEOUT:
            return "timeout";
        default:
            return "error";
    }
}

void check(VkResult r, const char* what) {
    if (r != VK_SUCCESS)
        throw Error(std::string("Vulkan: ") + what + " failed: " + result_name(r) + " (" + std::to_string(r) + ")",
                    ErrorKind::Internal);
}

namespace {

bool usable(const Api& api, VkPhysicalDevice d) {
    VkPhysicalDeviceProperties props;
    api.vkGetPhysicalDeviceProperties(d, &props);
    if (props.apiVersion < VK_API_VERSION_1_2) return false;
    // The shaders' workgroups are up to 256 invocations wide (Vulkan guarantees 128).
    if (props.limits.maxComputeWorkGroupInvocations < 256 || props.limits.maxComputeWorkGroupSize[0] < 256)
        return false;
    // flash_attn.comp binds 7 storage buffers (Vulkan guarantees 4; GPUs have 8 or more).
    if (props.limits.maxPerStageDescriptorStorageBuffers < 7 || props.limits.maxDescriptorSetStorageBuffers < 7)
        return false;
    uint32_t n = 0;
    api.vkGetPhysicalDeviceQueueFamilyProperties(d, &n, nullptr);
    std::vector<VkQueueFamilyProperties> q(n);
    api.vkGetPhysicalDeviceQueueFamilyProperties(d, &n, q.data());
    return std::any_of(q.begin(), q.end(), [](const auto& f) { return (f.queueFlags & VK_QUEUE_COMPUTE_BIT) != 0; });
}

}  // namespace

const Api& api() {
    static const Api a = [] {
        Api r;
        void* lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!lib) lib = dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            r.reason = "no Vulkan loader (libvulkan.so.1) installed";
            return r;
        }
        auto get_instance_proc = reinterpret_cast<PFN_vkGetInstanceProcAddr>(dlsym(lib, "vkGetInstanceProcAddr"));
        auto create = get_instance_proc
                          ? reinterpret_cast<PFN_vkCreateInstance>(get_instance_proc(nullptr, "vkCreateInstance"))
                          : nullptr;
        if (!create) {
            r.reason = "the Vulkan loader lacks vkCreateInstance";
            return r;
        }
        VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
        app.pApplicationName = "tessera";
        app.apiVersion = VK_API_VERSION_1_2;
        VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
        ci.pApplicationInfo = &app;
        const VkResult res = create(&ci, nullptr, &r.instance);
        if (res != VK_SUCCESS) {
            r.reason = std::string("cannot create a Vulkan instance: ") + result_name(res);
            r.instance = VK_NULL_HANDLE;
            return r;
        }
#define TESSERA_VK_LOAD(f) r.f = reinterpret_cast<PFN_##f>(get_instance_proc(r.instance, #f));
        TESSERA_VK_FUNCTIONS(TESSERA_VK_LOAD)
#undef TESSERA_VK_LOAD
        uint32_t n = 0;
        r.vkEnumeratePhysicalDevices(r.instance, &n, nullptr);
        std::vector<VkPhysicalDevice> all(n);
        r.vkEnumeratePhysicalDevices(r.instance, &n, all.data());
        for (VkPhysicalDevice d : all)
            if (usable(r, d)) r.devices.push_back(d);
        if (r.devices.empty())
            r.reason = n ? "no Vulkan 1.2 device with a compute queue, workgroups of 256 invocations and 7 storage "
                           "buffers a shader"
                         : "the Vulkan loader reports no device";
        return r;
    }();
    return a;
}

}  // namespace tessera::vulkan
