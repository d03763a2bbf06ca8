// The Vulkan backend's device side: the device's features, the logical device, buffers and
// copies, and the backends' registration. The shaders' pipelines (and their cache on disk)
// are made in vulkan_pipeline.cpp, a segment's nodes recorded and submitted in
// vulkan_record.cpp, each op's recording is in vulkan_ops.cpp.
//
// Memory: a buffer is one VkBuffer. Tensors carry a data pointer, which for this backend is
// an address in a range reserved per buffer (never dereferenced by the CPU); a dispatch
// turns it back into (VkBuffer, byte offset). Host-visible memory (lavapipe, integrated GPUs,
// resizable BAR) is mapped and copied with memcpy; other memory goes through a staging buffer.
//
// Submission is synchronous for now: compute() returns when the GPU has finished, so the
// scheduler's copies never race a running segment. A segment's command buffer is recorded
// once and submitted again while the same planned graph runs (every decoding step of one
// shape): only the inputs' contents change between steps, never a pointer or a shape.
#include "backends/vulkan/vulkan_backend.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "backends/vulkan/vulkan_api.h"
#include "backends/vulkan/vulkan_device.h"
#include "tensor/backend.h"
#include "tensor/error.h"
#include "tensor/graph.h"
#include "tensor/profile.h"

namespace tessera::vulkan {

// ---- buffers ----

namespace {

// What the shaders can use beyond the baseline: subgroup sums in compute shaders, and
// cooperative matrices of 16 x 16 x 16 f16 -> f32 at subgroup scope (with f16 arithmetic and
// the Vulkan memory model, which their shader declares).
struct Features {
    bool subgroups = false;
    uint32_t subgroup_size = 0;
    bool coopmat = false;
    bool int_dot = false;  // VK_KHR_shader_integer_dot_product with its feature
    bool fp16 = false;     // shaderFloat16: f16 arithmetic in shaders
};

bool env_off(const char* name) {
    const char* e = std::getenv(name);
    return e && std::strcmp(e, "0") == 0;
}

bool has_extension(const Api& a, VkPhysicalDevice pd, const char* name) {
    if (!a.vkEnumerateDeviceExtensionProperties) return false;
    uint32_t n = 0;
    a.vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, nullptr);
    std::vector<VkExtensionProperties> ext(n);
    a.vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, ext.data());
    for (const VkExtensionProperties& e : ext)
        if (std::strcmp(e.extensionName, name) == 0) return true;
    return false;
}

bool coopmat_usable(const Api& a, VkPhysicalDevice pd, uint32_t subgroup_size) {
    if (kShaders[kMulMatCm].code == nullptr || !a.vkGetPhysicalDeviceFeatures2 ||
        !a.vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR ||
        !has_extension(a, pd, VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME))
        return false;
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR cm{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
    VkPhysicalDeviceVulkan12Features v12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    v12.pNext = &cm;
    VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    f2.pNext = &v12;
    a.vkGetPhysicalDeviceFeatures2(pd, &f2);
    if (!cm.cooperativeMatrix || !v12.shaderFloat16 || !v12.vulkanMemoryModel) return false;
    // The workgroup is 4 subgroups, at least 128 invocations (the shader's loads per
    // invocation are sized for 128).
    VkPhysicalDeviceProperties props;
    a.vkGetPhysicalDeviceProperties(pd, &props);
    if (subgroup_size < 32 || 4 * subgroup_size > props.limits.maxComputeWorkGroupInvocations) return false;
    uint32_t n = 0;
    if (a.vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR(pd, &n, nullptr) != VK_SUCCESS) return false;
    std::vector<VkCooperativeMatrixPropertiesKHR> m(n, {VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR});
    if (a.vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR(pd, &n, m.data()) != VK_SUCCESS) return false;
    return std::any_of(m.begin(), m.begin() + n, [](const VkCooperativeMatrixPropertiesKHR& p) {
        return p.MSize == 16 && p.NSize == 16 && p.KSize == 16 && p.AType == VK_COMPONENT_TYPE_FLOAT16_KHR &&
               p.BType == VK_COMPONENT_TYPE_FLOAT16_KHR && p.CType == VK_COMPONENT_TYPE_FLOAT32_KHR &&
               p.ResultType == VK_COMPONENT_TYPE_FLOAT32_KHR && p.scope == VK_SCOPE_SUBGROUP_KHR;
    });
}

bool int_dot_usable(const Api& a, VkPhysicalDevice pd) {
    if (!a.vkGetPhysicalDeviceFeatures2 || !has_extension(a, pd, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME))
        return false;
    VkPhysicalDeviceShaderIntegerDotProductFeaturesKHR dp{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES_KHR};
    VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    f2.pNext = &dp;
    a.vkGetPhysicalDeviceFeatures2(pd, &f2);
    return dp.shaderIntegerDotProduct == VK_TRUE;
}

// One extension's properties structure s (its sType set), filled in by the device.
template <class T>
T properties_of(const Api& a, VkPhysicalDevice pd, T s) {
    VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    p2.pNext = &s;
    a.vkGetPhysicalDeviceProperties2(pd, &p2);
    return s;
}

// The device's compute units (NVIDIA's SMs, AMD's CUs, Arm's shader cores) where an extension
// tells them; 0 where none does.
uint32_t compute_units(const Api& a, VkPhysicalDevice pd) {
    if (!a.vkGetPhysicalDeviceProperties2) return 0;
    if (has_extension(a, pd, VK_NV_SHADER_SM_BUILTINS_EXTENSION_NAME))
        return properties_of(a, pd,
                             VkPhysicalDeviceShaderSMBuiltinsPropertiesNV{
                                 VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV})
            .shaderSMCount;
    if (has_extension(a, pd, VK_AMD_SHADER_CORE_PROPERTIES_EXTENSION_NAME)) {
        const auto amd = properties_of(
            a, pd,
            VkPhysicalDeviceShaderCorePropertiesAMD{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD});
        return amd.shaderEngineCount * amd.shaderArraysPerEngineCount * amd.computeUnitsPerShaderArray;
    }
    if (has_extension(a, pd, VK_ARM_SHADER_CORE_BUILTINS_EXTENSION_NAME))
        return properties_of(a, pd,
                             VkPhysicalDeviceShaderCoreBuiltinsPropertiesARM{
                                 VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_BUILTINS_PROPERTIES_ARM})
            .shaderCoreCount;
    return 0;
}

Features features_of(const Api& a, VkPhysicalDevice pd) {
    VkPhysicalDeviceSubgroupProperties sg{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    p2.pNext = &sg;
    Features f;
    if (!a.vkGetPhysicalDeviceProperties2) return f;
    a.vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    f.subgroup_size = sg.subgroupSize;
    f.subgroups = (sg.supportedOperations & need) == need && (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                  sg.subgroupSize >= 4;
    // TESSERA_VULKAN_SUBGROUPS=0: the baseline shaders (for tests and comparisons);
    // TESSERA_VULKAN_COOPMAT=0: prompt products without cooperative matrices;
    if (env_off("TESSERA_VULKAN_SUBGROUPS")) f.subgroups = false;
    f.coopmat = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && !env_off("TESSERA_VULKAN_COOPMAT") &&
                coopmat_usable(a, pd, sg.subgroupSize);
    // TESSERA_VULKAN_INTDOT=0: decoding products on f32 activations. The int8 ones need the
    // subgroup variants too (theirs are the only ones built).
    f.int_dot = f.subgroups && !env_off("TESSERA_VULKAN_INTDOT") && int_dot_usable(a, pd);
    // TESSERA_VULKAN_FP16=0: no shader takes f16 arithmetic but the cooperative matrices' own.
    if (a.vkGetPhysicalDeviceFeatures2 && !env_off("TESSERA_VULKAN_FP16")) {
        VkPhysicalDeviceVulkan12Features v12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
        VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
        f2.pNext = &v12;
        a.vkGetPhysicalDeviceFeatures2(pd, &f2);
        f.fp16 = v12.shaderFloat16 == VK_TRUE;
    }
    return f;
}

// Address ranges handed to buffers: far from anything the CPU maps, each buffer's range
// followed by a gap, so a tensor's pointer names exactly one buffer.
std::atomic<uint64_t> next_address{uint64_t{1} << 46};

}  // namespace

DeviceBuffer::DeviceBuffer(Backend* b, BufferUsage usage, size_t size, VkDevice dev, const Api& a, uint32_t host_type,
                           uint32_t device_type)
    : Buffer(b, usage), size_(size), dev_(dev), api_(a) {
    VkBufferCreateInfo bi{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bi.size = std::max<size_t>(size, 256);
    bi.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_BUFFER_BIT |
               VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    check(a.vkCreateBuffer(dev, &bi, nullptr, &buf_), "vkCreateBuffer");
    VkMemoryRequirements req;
    a.vkGetBufferMemoryRequirements(dev, buf_, &req);
    // Device-local and host-visible first (mapped copies), else device-local (staging).
    for (uint32_t type : {host_type, device_type}) {
        if (type == UINT32_MAX || !(req.memoryTypeBits & (1u << type))) continue;
        VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
        ai.allocationSize = req.size;
        ai.memoryTypeIndex = type;
        if (a.vkAllocateMemory(dev, &ai, nullptr, &mem_) != VK_SUCCESS) continue;
        if (type == host_type) a.vkMapMemory(dev, mem_, 0, VK_WHOLE_SIZE, 0, &mapped_);
        break;
    }
    if (!mem_) {
        a.vkDestroyBuffer(dev, buf_, nullptr);
        throw Error("Vulkan: cannot allocate " + std::to_string(size >> 20) + " MiB of device memory", ErrorKind::Io);
    }
    check(a.vkBindBufferMemory(dev, buf_, mem_, 0), "vkBindBufferMemory");
    const uint64_t span = (static_cast<uint64_t>(size) + (1u << 20)) & ~uint64_t{(1u << 20) - 1};
    base_ = next_address.fetch_add(span + (uint64_t{1} << 20));
}

DeviceBuffer::~DeviceBuffer() {
    api_.vkDestroyBuffer(dev_, buf_, nullptr);
    api_.vkFreeMemory(dev_, mem_, nullptr);
}

// ---- the device ----

VulkanBackend::VulkanBackend(int index, VkPhysicalDevice pd)
    : api_(api()), pd_(pd), name_("Vulkan" + std::to_string(index)) {
    const Api& a = api_;
    a.vkGetPhysicalDeviceProperties(pd, &props_);
    // TESSERA_VULKAN_MAX_SHARED=N and TESSERA_VULKAN_MAX_BUFFER=N: the device taken to have at
    // most N bytes of shared memory a workgroup and N-byte storage buffers, as a smaller GPU
    // has (the tests run the Vulkan minimum of 16 KiB, which some ARM boards' GPUs have).
    VkPhysicalDeviceLimits& lim = props_.limits;
    if (const char* e = std::getenv("TESSERA_VULKAN_MAX_SHARED"); e && std::atoll(e) > 0)
        lim.maxComputeSharedMemorySize = static_cast<uint32_t>(
            std::min<long long>(lim.maxComputeSharedMemorySize, std::max(16384LL, std::atoll(e))));
    if (const char* e = std::getenv("TESSERA_VULKAN_MAX_BUFFER"); e && std::atoll(e) > 0)
        lim.maxStorageBufferRange =
            static_cast<uint32_t>(std::min<long long>(lim.maxStorageBufferRange, std::max(1LL << 20, std::atoll(e))));
    const Features f = features_of(a, pd);
    subgroups_ = f.subgroups;
    coopmat_ = f.coopmat;
    int_dot_ = f.int_dot;
    subgroup_size_ = f.subgroup_size;
    cpu_type_ = props_.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    // Memory the host reads as fast as its own: a CPU device's or an integrated GPU's.
    // A discrete GPU's host-visible memory sits behind PCIe, where the CPU's reads are
    // uncached (a decoding step's logits took milliseconds), so reads go through staging.
    unified_ = cpu_type_ || props_.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU;
    // TESSERA_VULKAN_GPU_PATHS=1: a CPU device takes the shaders' GPU code paths too, so
    // the tests run them on lavapipe.
    const char* gpu_paths = std::getenv("TESSERA_VULKAN_GPU_PATHS");
    cpu_paths_ = cpu_type_ && !(gpu_paths && std::strcmp(gpu_paths, "1") == 0);
    // Prompt attention in blocks of rows that share a KV head (flash_attn_tile.comp) on a
    // CPU device, a row per workgroup (flash_attn.comp, as decoding) on a GPU: on lavapipe the
    // blocks took SmolLM2's pp256 from 9.3 to 15.5 t/s, on an H100 (NVIDIA's driver) the rows
    // were as fast at pp512 and 16% faster at a depth of 4096 (8B Q4_0: 1024 against 884 t/s),
    // its L2 holding the key and value rows that the blocks would share.
    // TESSERA_VULKAN_ATTN_TILES=1 or 0 takes one or the other everywhere.
    const char* tiles = std::getenv("TESSERA_VULKAN_ATTN_TILES");
    attn_tiles_ = tiles && *tiles ? std::strcmp(tiles, "0") != 0 : cpu_paths_;
    // TESSERA_VULKAN_FUSE=0: a residual add and the RMS norm after it as two dispatches, and
    // the attention output's int8 copy made by a dispatch of its own.
    fuse_ = !env_off("TESSERA_VULKAN_FUSE");
    // TESSERA_VULKAN_ATTN_GQA=0: attention rows a head per workgroup, not the heads of a KV
    // head together; 1: only prompts grouped; 2 (the default): decoding over many keys too.
    if (const char* e = std::getenv("TESSERA_VULKAN_ATTN_GQA"); e && *e) attn_gqa_ = std::atoi(e);
    // The grouped variants' shared memory (attn_shared_bytes) is more than a device with the
    // minimum 16 KiB has: a head a workgroup there.
    if (attn_shared_bytes(kAttnGqaHeads) > lim.maxComputeSharedMemorySize) attn_gqa_ = 0;
    // TESSERA_VULKAN_ATTN_AHEAD=0: attention by rows over F16 caches takes the general
    // shader's steps, not its path that issues a step's loads at once (kFlashAttnAhead).
    attn_ahead_ = !env_off("TESSERA_VULKAN_ATTN_AHEAD");
    // TESSERA_VULKAN_SPIN=N: poll a submission's fence for N microseconds (default 20000; 0
    // on a CPU device, whose own threads need the cores) before sleeping on it.
    spin_us_ = cpu_type_ ? 0u : 20000u;
    if (const char* e = std::getenv("TESSERA_VULKAN_SPIN"); e && *e)
        spin_us_ = static_cast<uint32_t>(std::max(0, std::atoi(e)));
    // TESSERA_VULKAN_ATTN_MERGE=1: split attention rows merged by each row's last workgroup in
    // the dispatch that computes the ranges, not by a second dispatch after a barrier. Off by
    // default: slower on an H100 (tg64 t/s, two passes against one: 8B Q4_0 at a depth of
    // 1024 272 / 269, TinyLlama Q4_0 at 4096 559 / 527; tg128 8B Q4_0 at 4096 237 / 229).
    const char* merge = std::getenv("TESSERA_VULKAN_ATTN_MERGE");
    attn_merge_ = merge && std::strcmp(merge, "1") == 0;
    // TESSERA_VULKAN_NORM_WIDE=0: an RMS norm that writes an int8 copy (and its fused add)
    // loads and stores 4 bytes at a time, not 16 where its rows are aligned (H100, tg128 t/s,
    // 16 bytes against 4: TinyLlama Q4_0 768 / 757 against 724 / 747, 8B Q4_0 309 / 308
    // against 299 / 302; the fused node 10.9 -> 9.5 us with TESSERA_PROFILE=1).
    norm_wide_ = !env_off("TESSERA_VULKAN_NORM_WIDE");
    // TESSERA_VULKAN_SPLIT_ROWS=0: Q4_0 and Q8_0 product weights kept in the file's layout, not
    // as split rows (vulkan_device.h).
    split_rows_ = !env_off("TESSERA_VULKAN_SPLIT_ROWS");
    // TESSERA_VULKAN_PREFETCH=N: decoding products' first N MiB of weights read into the L2
    // cache in the level before theirs (prefetch_ahead); 0: none.
    if (const char* e = std::getenv("TESSERA_VULKAN_PREFETCH"); e && *e)
        prefetch_bytes_ = static_cast<uint64_t>(std::max(0, std::atoi(e))) << 20;
    // TESSERA_VULKAN_SPLIT=N: decoding attention over many keys split into ranges for about N
    // workgroups in all (default 512; prompt attention in f16 blocks aims at 2 N).
    if (const char* e = std::getenv("TESSERA_VULKAN_SPLIT"); e && std::atoi(e) > 0)
        split_target_ = static_cast<uint64_t>(std::atoi(e));
    // TESSERA_VULKAN_READBACK=0|1: a graph's outputs copied into host memory by its own
    // submission (the default where the host reads device memory slowly: a discrete GPU), or
    // each read by a copy submitted when it is read.
    readback_on_ = !unified_;
    if (const char* e = std::getenv("TESSERA_VULKAN_READBACK"); e && *e) readback_on_ = std::strcmp(e, "0") != 0;
    // A CPU device's products of at most 8 activation rows read them from a uniform buffer
    // (kMulMatU) where one can hold 64 KiB: lavapipe loads a storage buffer's word lane by
    // lane even where all lanes read the same one. TESSERA_VULKAN_UNIFORM_ACTS=0: from the
    // storage buffer, as a GPU does.
    uniform_acts_ =
        cpu_paths_ && props_.limits.maxUniformBufferRange >= 65536 && !env_off("TESSERA_VULKAN_UNIFORM_ACTS");
    // A GPU's prompt products without cooperative matrices in mul_mat_tile.comp's 128 x 128
    // tiles where its 256 invocations and 32 KiB of shared memory fit, else (and on a CPU
    // device) in mul_mat.comp's 64 x 32. TESSERA_VULKAN_BIG_TILES=0: mul_mat.comp's everywhere.
    // Where the device has f16 arithmetic, the tiles of quantized and F16 weights are f16
    // (kMulMatTh), as the cooperative matrices' are.
    big_tiles_ = !cpu_paths_ && lim.maxComputeSharedMemorySize >= 32768 && lim.maxComputeWorkGroupInvocations >= 256 &&
                 lim.maxComputeWorkGroupSize[0] >= 256 && !env_off("TESSERA_VULKAN_BIG_TILES");
    f16_tiles_ = big_tiles_ && f.fp16;
    // A GPU's prompt attention without cooperative matrices in f16 tiles (kFlashAttnH) where
    // it has f16 arithmetic and the shader's shared memory and 256 invocations fit
    // (TESSERA_VULKAN_ATTN_F16=0: by rows, or flash_attn_tile.comp's f32 blocks).
    attn_h_ = !cpu_paths_ && f.fp16 && lim.maxComputeSharedMemorySize >= kAttnHShared &&
              lim.maxComputeWorkGroupInvocations >= 256 && lim.maxComputeWorkGroupSize[0] >= 256 &&
              !env_off("TESSERA_VULKAN_ATTN_F16");
    // Those of fewer 128 x 128 tiles than two a compute unit in 128 x 64 tiles, where the
    // device says how many units it has (TESSERA_VULKAN_NARROW_BELOW=N: below N tiles).
    narrow_below_ = 2 * uint64_t{compute_units(a, pd)};
    if (const char* e = std::getenv("TESSERA_VULKAN_NARROW_BELOW"); e && *e)
        narrow_below_ = static_cast<uint64_t>(std::max(0LL, std::atoll(e)));
    uint32_t n = 0;
    a.vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, nullptr);
    std::vector<VkQueueFamilyProperties> q(n);
    a.vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q.data());
    for (uint32_t i = 0; i < n; ++i)
        if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
            family_ = i;
            timestamps_ = q[i].timestampValidBits > 0 && props_.limits.timestampPeriod > 0.0f;
            break;
        }
    VkPhysicalDeviceMemoryProperties mp;
    a.vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    const VkMemoryPropertyFlags local = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    for (uint32_t i = 0; i < mp.memoryTypeCount; ++i) {
        const VkMemoryPropertyFlags f = mp.memoryTypes[i].propertyFlags;
        if ((f & (local | host)) == (local | host) && host_local_ == UINT32_MAX) host_local_ = i;
        if ((f & local) == local && device_local_ == UINT32_MAX) device_local_ = i;
    }
    // Staging: host memory, cached where there is some (the CPU reads downloads from it),
    // not the device's own where there is a choice.
    auto pick = [&](VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) {
        for (uint32_t i = 0; i < mp.memoryTypeCount; ++i) {
            const VkMemoryPropertyFlags f = mp.memoryTypes[i].propertyFlags;
            if ((f & want) == want && !(f & avoid)) return i;
        }
        return UINT32_MAX;
    };
    for (auto [want, avoid] : {std::pair{host | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, local}, std::pair{host, local},
                               std::pair{host, VkMemoryPropertyFlags{0}}})
        if (host_only_ == UINT32_MAX) host_only_ = pick(want, avoid);
    for (uint32_t i = 0; i < mp.memoryHeapCount; ++i)
        if (mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) heap_bytes_ += mp.memoryHeaps[i].size;
}

// The logical device, its queue and the pipelines: made on first use, so a process that
// never puts anything on this device (a model on the CPU, system information) pays
// nothing for it (a software driver compiles every shader when the pipelines are made).
void VulkanBackend::open() {
    std::call_once(open_once_, [this] {
        const Api& a = api_;
        const float priority = 1.0f;
        VkDeviceQueueCreateInfo qi{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
        qi.queueFamilyIndex = family_;
        qi.queueCount = 1;
        qi.pQueuePriorities = &priority;
        VkDeviceCreateInfo di{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
        di.queueCreateInfoCount = 1;
        di.pQueueCreateInfos = &qi;
        // Cooperative matrices: the extension, and the features mul_mat_cm.comp declares;
        // integer dot products: the extension and its feature.
        VkPhysicalDeviceCooperativeMatrixFeaturesKHR cm{
            VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
        VkPhysicalDeviceVulkan12Features v12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
        VkPhysicalDeviceShaderIntegerDotProductFeaturesKHR dp{
            VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES_KHR};
        const char* extensions[2];
        void* chain = nullptr;  // the features structures, built from the last
        if (int_dot_) {
            dp.shaderIntegerDotProduct = VK_TRUE;
            chain = &dp;
            extensions[di.enabledExtensionCount++] = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
        }
        if (coopmat_) {
            cm.cooperativeMatrix = VK_TRUE;
            cm.pNext = chain;
            chain = &cm;
            v12.vulkanMemoryModel = VK_TRUE;
            extensions[di.enabledExtensionCount++] = VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME;
        }
        if (coopmat_ || f16_tiles_ || attn_h_) {
            v12.shaderFloat16 = VK_TRUE;
            v12.pNext = chain;
            chain = &v12;
        }
        di.pNext = chain;
        di.ppEnabledExtensionNames = extensions;
        check(a.vkCreateDevice(pd_, &di, nullptr, &dev_), "vkCreateDevice");
        a.vkGetDeviceQueue(dev_, family_, 0, &queue_);
        create_objects();
    });
    if (!dev_ || !fence_) throw Error("Vulkan: " + name_ + " could not be opened", ErrorKind::Internal);
}

void VulkanBackend::create_objects() {
    const Api& a = api_;
    VkCommandPoolCreateInfo pi{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pi.queueFamilyIndex = family_;
    check(a.vkCreateCommandPool(dev_, &pi, nullptr, &cmd_pool_), "vkCreateCommandPool");
    VkCommandBufferAllocateInfo ci{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ci.commandPool = cmd_pool_;
    ci.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ci.commandBufferCount = 1;
    check(a.vkAllocateCommandBuffers(dev_, &ci, &copy_cmd_), "vkAllocateCommandBuffers");
    VkFenceCreateInfo fi{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    check(a.vkCreateFence(dev_, &fi, nullptr, &fence_), "vkCreateFence");
    create_pipelines();
    dummy_ = std::make_unique<DeviceBuffer>(this, BufferUsage::Compute, 256, dev_, a, host_local_, device_local_);
}

VulkanBackend::~VulkanBackend() {
    if (!dev_) return;
    const Api& a = api_;
    a.vkDeviceWaitIdle(dev_);
    save_pipeline_cache();
    dummy_.reset();
    staging_.reset();
    readback_.reset();
    scratch_.reset();
    acts_.reset();
    sink_.reset();
    for (auto& p : pipelines_) {
        a.vkDestroyPipeline(dev_, p.pipeline, nullptr);
        a.vkDestroyPipelineLayout(dev_, p.layout, nullptr);
        a.vkDestroyDescriptorSetLayout(dev_, p.set_layout, nullptr);
    }
    if (pipeline_cache_) a.vkDestroyPipelineCache(dev_, pipeline_cache_, nullptr);
    for (Recording& r : recordings_)
        if (r.pool) a.vkDestroyDescriptorPool(dev_, r.pool, nullptr);
    if (stamps_) a.vkDestroyQueryPool(dev_, stamps_, nullptr);
    if (fence_) a.vkDestroyFence(dev_, fence_, nullptr);
    if (cmd_pool_) a.vkDestroyCommandPool(dev_, cmd_pool_, nullptr);
    a.vkDestroyDevice(dev_, nullptr);
}

bool VulkanBackend::supports(const Tensor& node) const {
    const Tensor* a = node.src[0];
    if (op_is_f32_only(node.op)) return true;
    // Split rows are read by products and row lookups, as their first source, by whole rows.
    const DeviceLayoutUse split = device_layout_use(node);
    if (split == DeviceLayoutUse::kOther ||
        (split == DeviceLayoutUse::kRows && node.op != Op::MulMat && node.op != Op::GetRows))
        return false;
    switch (node.op) {
        case Op::GetRows:
        case Op::MulMat:
            return weight_type(a->type) && !(a->flags & kFlagRepacked);
        case Op::Cont:
        case Op::Cpy:
            return element_type(a->type) && element_type(node.type);
        case Op::SetRows:
            return element_type(node.type) || node.type == DType::Q8_0;
        case Op::FlashAttn: {
            auto kv = [](DType t) { return t == DType::F32 || t == DType::F16 || t == DType::Q8_0; };
            return !node.src[4] && kv(node.src[1]->type) && kv(node.src[2]->type) && node.src[2]->ne[0] <= 256 &&
                   a->ne[0] % 4 == 0 && node.src[2]->ne[0] % 4 == 0;
        }
        default:
            return false;
    }
}

// ---- memory ----

DeviceMemory VulkanBackend::memory() const {
    DeviceMemory m;
    m.total = heap_bytes_;
    m.free = heap_bytes_ > allocated_ ? heap_bytes_ - allocated_ : 0;
    return m;
}

std::unique_ptr<Buffer> VulkanBackend::alloc_buffer(size_t size, BufferUsage usage) {
    if (size > props_.limits.maxStorageBufferRange)
        throw Error("Vulkan: a buffer of " + std::to_string(size >> 20) + " MiB exceeds " + name_ +
                        "'s largest storage buffer (" + std::to_string(props_.limits.maxStorageBufferRange >> 20) +
                        " MiB)",
                    ErrorKind::Unsupported);
    open();
    auto b = std::make_unique<DeviceBuffer>(this, usage, size, dev_, api_, host_local_, device_local_);
    std::lock_guard<std::mutex> lock(mu_);
    by_address_[b->address()] = b.get();
    allocated_ += size;
    return std::unique_ptr<Buffer>(new TrackedBuffer(std::move(b), this));
}

void VulkanBackend::forget(DeviceBuffer* b) {
    std::lock_guard<std::mutex> lock(mu_);
    by_address_.erase(b->address());
    allocated_ -= std::min(allocated_, b->size());
}

// The buffer holding address p and p's byte offset in it.
std::pair<DeviceBuffer*, size_t> VulkanBackend::locate(const void* p) const {
    const uint64_t addr = reinterpret_cast<uint64_t>(p);
    auto it = by_address_.upper_bound(addr);
    if (it == by_address_.begin()) throw Error("Vulkan: a tensor's data is not in this device's memory");
    --it;
    const size_t at = static_cast<size_t>(addr - it->first);
    if (at > it->second->size()) throw Error("Vulkan: a tensor's data is not in this device's memory");
    return {it->second, at};
}

DeviceBuffer* VulkanBackend::staging() {
    if (!staging_) {
        const uint32_t type = host_only_;
        if (type == UINT32_MAX) throw Error("Vulkan: no host-visible memory for copies", ErrorKind::Unsupported);
        staging_ = std::make_unique<DeviceBuffer>(this, BufferUsage::Compute, kStagingBytes, dev_, api_, type, type);
    }
    return staging_.get();
}

// TESSERA_PROFILE=graph: the host's time in copies to and from the device, beside the
// submissions' (a decoding step's inputs and logits).
static void time_copy(const char* what, std::chrono::steady_clock::time_point t0) {
    static NodeProfile* const prof = NodeProfile::whole_graphs() ? NodeProfile::get("Vulkan time") : nullptr;
    if (prof) prof->add(what, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
}

namespace {

// Rows of Q4_0 or Q8_0 blocks (kBlock bytes each) in the file's layout to split rows
// (vulkan_device.h): each row's quants one after another, then its fp16 scales.
template <size_t kBlock>
void split_rows(const uint8_t* src, uint8_t* dst, size_t nb, int64_t rows) {
    constexpr size_t kQuants = kBlock - 2;
    for (int64_t r = 0; r < rows; ++r, src += nb * kBlock, dst += nb * kBlock)
        for (size_t c = 0; c < nb; ++c) {
            std::memcpy(dst + c * kQuants, src + c * kBlock + 2, kQuants);
            std::memcpy(dst + nb * kQuants + 2 * c, src + c * kBlock, 2);
        }
}

void split_rows(DType type, const uint8_t* src, uint8_t* dst, int64_t row_elems, int64_t rows) {
    const size_t nb = static_cast<size_t>(row_elems) / 32;
    if (type == DType::Q4_0)
        split_rows<18>(src, dst, nb, rows);
    else
        split_rows<34>(src, dst, nb, rows);
}

}  // namespace

// Whether the upload keeps this weight, at byte `at` of its buffer, as split rows: product
// weights (kFlagProductWeight) of Q4_0 and Q8_0 whose rows are a multiple of 256 long, whole
// and contiguous, 16-byte aligned (TESSERA_VULKAN_SPLIT_ROWS=0: never).
bool VulkanBackend::wants_split_rows(const Tensor& t, size_t at) const {
    return split_rows_ && (t.flags & kFlagProductWeight) && t.buffer && t.buffer->usage() == BufferUsage::Weights &&
           !t.view_src && t.is_contiguous() && split_rows_fit(t.type, t.ne[0]) && at % 16 == 0;
}

void VulkanBackend::upload(Tensor* t, const void* src, size_t offset, size_t n) {
    if (n == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    const auto t0 = std::chrono::steady_clock::now();
    readable_.clear();  // may overlap an output copied out before
    auto [buf, at] = locate(t->data);
    // A whole weight's upload decides its layout; a part of one kept as split rows cannot be
    // written in the file's.
    const bool whole = offset == 0 && n == t->n_bytes() && !t->view_src;
    if (!whole && (t->root()->flags & kFlagDeviceLayout))
        throw Error("Vulkan: a part of the weight '" + std::string(t->root()->name) +
                        "', which the device keeps in its own layout, cannot be written",
                    ErrorKind::Internal);
    const bool split = whole && wants_split_rows(*t, at);
    if (whole) t->flags = split ? t->flags | kFlagDeviceLayout : t->flags & ~kFlagDeviceLayout;
    const auto* from = static_cast<const uint8_t*>(src);
    if (buf->mapped()) {
        auto* to = static_cast<uint8_t*>(buf->mapped()) + at + offset;
        if (split)
            split_rows(t->type, from, to, t->ne[0], t->n_rows());
        else
            std::memcpy(to, from, n);
        time_copy("copy to device, mapped", t0);
        return;
    }
    // Split rows go through the staging buffer in whole rows.
    const size_t row = t->nb[1];
    const size_t most = split ? std::max<size_t>(1, kStagingBytes / row) * row : kStagingBytes;
    for (size_t done = 0; done < n;) {
        const size_t chunk = std::min(n - done, most);
        auto* stage = static_cast<uint8_t*>(staging()->mapped());
        if (split)
            split_rows(t->type, from + done, stage, t->ne[0], static_cast<int64_t>(chunk / row));
        else
            std::memcpy(stage, from + done, chunk);
        copy_buffer(staging()->handle(), 0, buf->handle(), at + offset + done, chunk);
        done += chunk;
    }
    time_copy("copy to device, staged", t0);
}

void VulkanBackend::download(const Tensor* t, void* dst, size_t offset, size_t n) {
    if (n == 0) return;
    if (t->root()->flags & kFlagDeviceLayout)
        throw Error("Vulkan: the weight '" + std::string(t->root()->name) +
                        "' is kept in the device's own layout and cannot be read back",
                    ErrorKind::Internal);
    std::lock_guard<std::mutex> lock(mu_);
    const auto t0 = std::chrono::steady_clock::now();
    auto [buf, at] = locate(t->data);
    const uint64_t from = at + offset;
    for (const Readback& rb : readable_)
        if (rb.buf == buf->handle() && rb.at <= from && from + n <= rb.at + rb.bytes) {
            std::memcpy(dst, static_cast<const char*>(readback_->mapped()) + rb.rb_at + (from - rb.at), n);
            time_copy("copy from device, in graph", t0);
            return;
        }
    if (buf->mapped() && unified_) {
        std::memcpy(dst, static_cast<const char*>(buf->mapped()) + at + offset, n);
        time_copy("copy from device, mapped", t0);
        return;
    }
    for (size_t done = 0; done < n;) {
        const size_t chunk = std::min(n - done, kStagingBytes);
        copy_buffer(buf->handle(), at + offset + done, staging()->handle(), 0, chunk);
        std::memcpy(static_cast<char*>(dst) + done, staging()->mapped(), chunk);
        done += chunk;
    }
    time_copy("copy from device, staged", t0);
}

void VulkanBackend::copy_buffer(VkBuffer src, size_t src_off, VkBuffer dst, size_t dst_off, size_t n) {
    const Api& a = api_;
    check(a.vkResetCommandBuffer(copy_cmd_, 0), "vkResetCommandBuffer");
    VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    check(a.vkBeginCommandBuffer(copy_cmd_, &bi), "vkBeginCommandBuffer");
    VkBufferCopy region{src_off, dst_off, n};
    a.vkCmdCopyBuffer(copy_cmd_, src, dst, 1, &region);
    check(a.vkEndCommandBuffer(copy_cmd_), "vkEndCommandBuffer");
    submit_and_wait(copy_cmd_);
}

double VulkanBackend::copy_bandwidth_gbs() {
    const size_t n = std::min<size_t>(size_t{256} << 20, props_.limits.maxStorageBufferRange);
    std::unique_ptr<Buffer> src, dst;
    try {
        src = alloc_buffer(n, BufferUsage::Compute);
        dst = alloc_buffer(n, BufferUsage::Compute);
    } catch (const Error&) {
        return 0.0;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto [sb, s_at] = locate(src->base());
    auto [db, d_at] = locate(dst->base());
    std::vector<double> gbs;
    for (int i = 0; i < 6; ++i) {  // the first copy warms up
        const auto t0 = std::chrono::steady_clock::now();
        copy_buffer(sb->handle(), s_at, db->handle(), d_at, n);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (i > 0 && s > 0) gbs.push_back(2.0 * static_cast<double>(n) / s / 1e9);
    }
    std::sort(gbs.begin(), gbs.end());
    return gbs.empty() ? 0.0 : gbs[gbs.size() / 2];
}

// ---- registration ----

namespace {

std::string gib(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
    return buf;
}

// The shaders' feature level, for system information.
std::string shader_level(const Features& f) {
    std::string s = f.subgroups ? "subgroup sums (" + std::to_string(f.subgroup_size) + " lanes)" : "baseline shaders";
    if (f.fp16) s += ", f16 arithmetic";
    if (f.int_dot) s += ", integer dot products";
    return f.coopmat ? s + ", cooperative matrices" : s;
}

}  // namespace

void register_vulkan_backends() {
    static std::once_flag once;
    std::call_once(once, [] {
        const Api& a = api();
        for (size_t i = 0; i < a.devices.size(); ++i) {
            VkPhysicalDevice d = a.devices[i];
            const int index = static_cast<int>(i);
            register_backend(BackendFactory{"Vulkan" + std::to_string(i), [] { return true; },
                                            [index, d] { return std::make_unique<VulkanBackend>(index, d); }});
        }
    });
}

std::vector<std::string> describe_devices() {
    std::vector<std::string> out;
    const Api& a = api();
    for (size_t i = 0; i < a.devices.size(); ++i) {
        VkPhysicalDeviceProperties p;
        a.vkGetPhysicalDeviceProperties(a.devices[i], &p);
        VkPhysicalDeviceMemoryProperties mp;
        a.vkGetPhysicalDeviceMemoryProperties(a.devices[i], &mp);
        uint64_t local = 0;
        for (uint32_t h = 0; h < mp.memoryHeapCount; ++h)
            if (mp.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) local += mp.memoryHeaps[h].size;
        const char* kind = p.deviceType == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU     ? "discrete GPU"
                           : p.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ? "integrated GPU"
                           : p.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU            ? "CPU (used only when named)"
                                                                                    : "GPU";
        out.push_back("Vulkan" + std::to_string(i) + ": " + p.deviceName + ", " + kind + ", " + gib(local) +
                      ", Vulkan " + std::to_string(VK_API_VERSION_MAJOR(p.apiVersion)) + "." +
                      std::to_string(VK_API_VERSION_MINOR(p.apiVersion)) + ", " +
                      shader_level(features_of(a, a.devices[i])));
    }
    return out;
}

std::string unavailable_reason() { return api().reason; }

}  // namespace tessera::vulkan
