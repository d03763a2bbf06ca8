// The Vulkan backend: device buffers, the shaders' pipelines, and a segment's nodes recorded
// into one command buffer (a dispatch and a barrier per node) and submitted.
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
#define VK_NO_PROTOTYPES
#include "backends/vulkan/vulkan_backend.h"

#include <dlfcn.h>
#include <vulkan/vulkan.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>

#include "tensor/atomic_file.h"
#include "tensor/backend.h"
#include "tensor/error.h"
#include "tensor/graph.h"
#include "tensor/profile.h"

namespace tessera::vulkan {

namespace spirv {
#define TESSERA_SHADER(name)           \
    extern const unsigned char name[]; \
    extern const size_t name##_size;
TESSERA_SHADER(ew)
TESSERA_SHADER(rows)
TESSERA_SHADER(rope)
TESSERA_SHADER(flash_attn)
TESSERA_SHADER(mul_mat_F32)
TESSERA_SHADER(mul_mat_F16)
TESSERA_SHADER(mul_mat_BF16)
TESSERA_SHADER(mul_mat_Q4_0)
TESSERA_SHADER(mul_mat_Q4_1)
TESSERA_SHADER(mul_mat_Q5_0)
TESSERA_SHADER(mul_mat_Q5_1)
TESSERA_SHADER(mul_mat_Q8_0)
TESSERA_SHADER(mul_mat_Q2_K)
TESSERA_SHADER(mul_mat_Q3_K)
TESSERA_SHADER(mul_mat_Q4_K)
TESSERA_SHADER(mul_mat_Q5_K)
TESSERA_SHADER(mul_mat_Q6_K)
#undef TESSERA_SHADER
}  // namespace spirv

namespace {

// ---- the loader, opened at run time ----

#define TESSERA_VK_FUNCTIONS(X)                                                                                        \
    X(vkDestroyInstance)                                                                                               \
    X(vkEnumeratePhysicalDevices)                                                                                      \
    X(vkGetPhysicalDeviceProperties)                                                                                   \
    X(vkGetPhysicalDeviceQueueFamilyProperties)                                                                        \
    X(vkGetPhysicalDeviceMemoryProperties)                                                                             \
    X(vkCreateDevice)                                                                                                  \
    X(vkDestroyDevice)                                                                                                 \
    X(vkGetDeviceQueue)                                                                                                \
    X(vkCreateBuffer)                                                                                                  \
    X(vkDestroyBuffer)                                                                                                 \
    X(vkGetBufferMemoryRequirements) X(vkAllocateMemory) X(vkFreeMemory) X(vkBindBufferMemory) X(vkMapMemory)          \
        X(vkCreateShaderModule) X(vkDestroyShaderModule) X(vkCreateDescriptorSetLayout)                                \
            X(vkDestroyDescriptorSetLayout) X(vkCreatePipelineLayout) X(vkDestroyPipelineLayout)                       \
                X(vkCreateComputePipelines) X(vkDestroyPipeline) X(vkCreateDescriptorPool) X(vkDestroyDescriptorPool)  \
                    X(vkResetDescriptorPool) X(vkAllocateDescriptorSets) X(vkUpdateDescriptorSets)                     \
                        X(vkCreateCommandPool) X(vkDestroyCommandPool) X(vkAllocateCommandBuffers)                     \
                            X(vkResetCommandBuffer) X(vkBeginCommandBuffer) X(vkEndCommandBuffer) X(vkCmdBindPipeline) \
                                X(vkCmdBindDescriptorSets) X(vkCmdPushConstants) X(vkCmdDispatch)                      \
                                    X(vkCmdPipelineBarrier) X(vkCmdCopyBuffer) X(vkCreateFence) X(vkDestroyFence)      \
                                        X(vkResetFences) X(vkWaitForFences) X(vkQueueSubmit) X(vkDeviceWaitIdle)       \
                                            X(vkCreatePipelineCache) X(vkDestroyPipelineCache)                         \
                                                X(vkGetPipelineCacheData)

struct Api {
#define TESSERA_VK_DECLARE(f) PFN_##f f = nullptr;
    TESSERA_VK_FUNCTIONS(TESSERA_VK_DECLARE)
#undef TESSERA_VK_DECLARE
    VkInstance instance = VK_NULL_HANDLE;
    std::vector<VkPhysicalDevice> devices;  // usable ones
    std::string reason;                     // why there are none
};

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

bool usable(const Api& api, VkPhysicalDevice d) {
    VkPhysicalDeviceProperties props;
    api.vkGetPhysicalDeviceProperties(d, &props);
    if (props.apiVersion < VK_API_VERSION_1_2) return false;
    uint32_t n = 0;
    api.vkGetPhysicalDeviceQueueFamilyProperties(d, &n, nullptr);
    std::vector<VkQueueFamilyProperties> q(n);
    api.vkGetPhysicalDeviceQueueFamilyProperties(d, &n, q.data());
    return std::any_of(q.begin(), q.end(), [](const auto& f) { return (f.queueFlags & VK_QUEUE_COMPUTE_BIT) != 0; });
}

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
            r.reason = n ? "no Vulkan 1.2 device with a compute queue" : "the Vulkan loader reports no device";
        return r;
    }();
    return a;
}

// ---- buffers ----

// Address ranges handed to buffers: far from anything the CPU maps, each buffer's range
// followed by a gap, so a tensor's pointer names exactly one buffer.
std::atomic<uint64_t> next_address{uint64_t{1} << 46};

class VulkanBackend;

class DeviceBuffer : public Buffer {
public:
    DeviceBuffer(Backend* b, BufferUsage usage, size_t size, VkDevice dev, const Api& a, uint32_t host_type,
                 uint32_t device_type)
        : Buffer(b, usage), size_(size), dev_(dev), api_(a) {
        VkBufferCreateInfo bi{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
        bi.size = std::max<size_t>(size, 256);
        bi.usage =
            VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
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
            throw Error("Vulkan: cannot allocate " + std::to_string(size >> 20) + " MiB of device memory",
                        ErrorKind::Io);
        }
        check(a.vkBindBufferMemory(dev, buf_, mem_, 0), "vkBindBufferMemory");
        const uint64_t span = (static_cast<uint64_t>(size) + (1u << 20)) & ~uint64_t{(1u << 20) - 1};
        base_ = next_address.fetch_add(span + (uint64_t{1} << 20));
    }
    ~DeviceBuffer() override {
        api_.vkDestroyBuffer(dev_, buf_, nullptr);
        api_.vkFreeMemory(dev_, mem_, nullptr);
    }
    void* base() override { return reinterpret_cast<void*>(base_); }
    size_t size() const override { return size_; }
    uint64_t address() const { return base_; }
    VkBuffer handle() const { return buf_; }
    void* mapped() const { return mapped_; }

private:
    size_t size_;
    VkDevice dev_;
    const Api& api_;
    VkBuffer buf_ = VK_NULL_HANDLE;
    VkDeviceMemory mem_ = VK_NULL_HANDLE;
    void* mapped_ = nullptr;
    uint64_t base_ = 0;
};

// ---- pipelines ----

// mul_mat has one variant per weight type, in kWeightTypes' order, from kMulMat on.
enum Shader { kEw, kRows, kRope, kFlashAttn, kMulMat, kShaderCount = kMulMat + 13 };

const DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                              DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

struct ShaderInfo {
    const unsigned char* code;
    const size_t* size;
    uint32_t bindings;
};

const ShaderInfo kShaders[kShaderCount] = {
    {spirv::ew, &spirv::ew_size, 3},
    {spirv::rows, &spirv::rows_size, 3},
    {spirv::rope, &spirv::rope_size, 5},
    {spirv::flash_attn, &spirv::flash_attn_size, 5},
    {spirv::mul_mat_F32, &spirv::mul_mat_F32_size, 3},
    {spirv::mul_mat_F16, &spirv::mul_mat_F16_size, 3},
    {spirv::mul_mat_BF16, &spirv::mul_mat_BF16_size, 3},
    {spirv::mul_mat_Q4_0, &spirv::mul_mat_Q4_0_size, 3},
    {spirv::mul_mat_Q4_1, &spirv::mul_mat_Q4_1_size, 3},
    {spirv::mul_mat_Q5_0, &spirv::mul_mat_Q5_0_size, 3},
    {spirv::mul_mat_Q5_1, &spirv::mul_mat_Q5_1_size, 3},
    {spirv::mul_mat_Q8_0, &spirv::mul_mat_Q8_0_size, 3},
    {spirv::mul_mat_Q2_K, &spirv::mul_mat_Q2_K_size, 3},
    {spirv::mul_mat_Q3_K, &spirv::mul_mat_Q3_K_size, 3},
    {spirv::mul_mat_Q4_K, &spirv::mul_mat_Q4_K_size, 3},
    {spirv::mul_mat_Q5_K, &spirv::mul_mat_Q5_K_size, 3},
    {spirv::mul_mat_Q6_K, &spirv::mul_mat_Q6_K_size, 3},
};

// The mul_mat variant for a weight type.
Shader mul_mat_shader(DType t) {
    for (int i = 0; i < static_cast<int>(std::size(kWeightTypes)); ++i)
        if (kWeightTypes[i] == t) return static_cast<Shader>(kMulMat + i);
    throw Error(std::string("Vulkan backend: no matrix product for ") + std::string(type_name(t)), ErrorKind::Internal);
}

constexpr uint32_t kPushBytes = 128;
constexpr uint32_t kMaxBindings = 5;

// A tensor's place in push constants: byte offset within its binding, shape, byte strides.
struct Ten {
    uint32_t off, ne[4], nb[4];
};

bool weight_type(DType t) {
    return std::find(std::begin(kWeightTypes), std::end(kWeightTypes), t) != std::end(kWeightTypes);
}

bool element_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return n_dims * std::log(n_ctx_orig / (n_rot * 2.0f * 3.14159265358979f)) / (2.0f * std::log(base));
}

class VulkanBackend : public Backend {
public:
    VulkanBackend(int index, VkPhysicalDevice pd) : api_(api()), pd_(pd), name_("Vulkan" + std::to_string(index)) {
        const Api& a = api_;
        a.vkGetPhysicalDeviceProperties(pd, &props_);
        cpu_type_ = props_.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
        uint32_t n = 0;
        a.vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, nullptr);
        std::vector<VkQueueFamilyProperties> q(n);
        a.vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q.data());
        for (uint32_t i = 0; i < n; ++i)
            if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
                family_ = i;
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
            if ((f & host) == host && host_only_ == UINT32_MAX) host_only_ = i;
        }
        for (uint32_t i = 0; i < mp.memoryHeapCount; ++i)
            if (mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) heap_bytes_ += mp.memoryHeaps[i].size;
    }

    // The logical device, its queue and the pipelines: made on first use, so a process that
    // never puts anything on this device (a model on the CPU, system information) pays
    // nothing for it (a software driver compiles every shader when the pipelines are made).
    void open() {
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
            check(a.vkCreateDevice(pd_, &di, nullptr, &dev_), "vkCreateDevice");
            a.vkGetDeviceQueue(dev_, family_, 0, &queue_);
            create_objects();
        });
        if (!dev_ || !fence_) throw Error("Vulkan: " + name_ + " could not be opened", ErrorKind::Internal);
    }

    void create_objects() {
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

    ~VulkanBackend() override {
        if (!dev_) return;
        const Api& a = api_;
        a.vkDeviceWaitIdle(dev_);
        save_pipeline_cache();
        dummy_.reset();
        staging_.reset();
        for (auto& p : pipelines_) {
            a.vkDestroyPipeline(dev_, p.pipeline, nullptr);
            a.vkDestroyPipelineLayout(dev_, p.layout, nullptr);
            a.vkDestroyDescriptorSetLayout(dev_, p.set_layout, nullptr);
        }
        if (pipeline_cache_) a.vkDestroyPipelineCache(dev_, pipeline_cache_, nullptr);
        for (Recording& r : recordings_)
            if (r.pool) a.vkDestroyDescriptorPool(dev_, r.pool, nullptr);
        if (fence_) a.vkDestroyFence(dev_, fence_, nullptr);
        if (cmd_pool_) a.vkDestroyCommandPool(dev_, cmd_pool_, nullptr);
        a.vkDestroyDevice(dev_, nullptr);
    }

    const std::string& name() const override { return name_; }
    bool host_memory() const override { return false; }
    bool offload_by_default() const override { return !cpu_type_; }

    size_t max_buffer_bytes() const override { return props_.limits.maxStorageBufferRange; }

    DeviceMemory memory() const override {
        DeviceMemory m;
        m.total = heap_bytes_;
        m.free = heap_bytes_ > allocated_ ? heap_bytes_ - allocated_ : 0;
        return m;
    }

    std::unique_ptr<Buffer> alloc_buffer(size_t size, BufferUsage usage) override {
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

    void upload(Tensor* t, const void* src, size_t offset, size_t n) override {
        if (n == 0) return;
        std::lock_guard<std::mutex> lock(mu_);
        auto [buf, at] = locate(t->data);
        if (buf->mapped()) {
            std::memcpy(static_cast<char*>(buf->mapped()) + at + offset, src, n);
            return;
        }
        for (size_t done = 0; done < n;) {
            const size_t chunk = std::min(n - done, kStagingBytes);
            std::memcpy(staging()->mapped(), static_cast<const char*>(src) + done, chunk);
            copy_buffer(staging()->handle(), 0, buf->handle(), at + offset + done, chunk);
            done += chunk;
        }
    }

    void download(const Tensor* t, void* dst, size_t offset, size_t n) override {
        if (n == 0) return;
        std::lock_guard<std::mutex> lock(mu_);
        auto [buf, at] = locate(t->data);
        if (buf->mapped()) {
            std::memcpy(dst, static_cast<const char*>(buf->mapped()) + at + offset, n);
            return;
        }
        for (size_t done = 0; done < n;) {
            const size_t chunk = std::min(n - done, kStagingBytes);
            copy_buffer(buf->handle(), at + offset + done, staging()->handle(), 0, chunk);
            std::memcpy(static_cast<char*>(dst) + done, staging()->mapped(), chunk);
            done += chunk;
        }
    }

    bool supports(const Tensor& node) const override {
        const Tensor* a = node.src[0];
        if (op_is_f32_only(node.op)) return true;
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

    size_t work_size(std::span<Tensor* const>, int) const override { return 0; }

    double copy_bandwidth_gbs() override {
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

    void compute(std::span<Tensor* const> nodes, void*, size_t, int, const AbortCheck& abort) override {
        if (abort && abort()) throw Error("computation aborted", ErrorKind::Aborted);
        open();
        std::lock_guard<std::mutex> lock(mu_);
        // TESSERA_PROFILE=1 (tensor/profile.h): one submission per node, timed on the host.
        static NodeProfile* const prof = NodeProfile::get("Vulkan time");
        if (prof) {
            for (Tensor* n : nodes) {
                const auto t0 = std::chrono::steady_clock::now();
                submit(std::span<Tensor* const>(&n, 1));
                prof->add(*n, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            }
            return;
        }
        submit(nodes);
    }

private:
    // Records the nodes into a command buffer, or finds the one recorded for the same nodes
    // before (a planned graph evaluated again: every decoding step of one shape), and submits.
    void submit(std::span<Tensor* const> nodes) {
        const Api& a = api_;
        launch_signature(nodes, key_);
        ++clock_;
        for (Recording& r : recordings_)
            if (r.key == key_) {
                r.last_used = clock_;
                submit_and_wait(r.cmd);
                return;
            }
        if (recordings_.size() < kRecordings) {
            Recording r;
            VkCommandBufferAllocateInfo ci{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
            ci.commandPool = cmd_pool_;
            ci.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
            ci.commandBufferCount = 1;
            check(a.vkAllocateCommandBuffers(dev_, &ci, &r.cmd), "vkAllocateCommandBuffers");
            recordings_.push_back(r);
        }
        Recording& r =
            *std::min_element(recordings_.begin(), recordings_.end(),
                              [](const Recording& x, const Recording& y) { return x.last_used < y.last_used; });
        r.key = key_;
        r.last_used = clock_;
        prepare_descriptors(r, nodes.size());
        cmd_ = r.cmd;
        desc_pool_ = r.pool;
        check(a.vkResetCommandBuffer(cmd_, 0), "vkResetCommandBuffer");
        VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
        check(a.vkBeginCommandBuffer(cmd_, &bi), "vkBeginCommandBuffer");
        try {
            for (Tensor* n : nodes) record(*n);
        } catch (...) {
            a.vkEndCommandBuffer(cmd_);
            r.key.clear();  // never matched again
            throw;
        }
        check(a.vkEndCommandBuffer(cmd_), "vkEndCommandBuffer");
        submit_and_wait(cmd_);
    }

    // A recorded command buffer with the descriptor sets it binds.
    struct Recording {
        std::vector<uint64_t> key;
        VkCommandBuffer cmd = VK_NULL_HANDLE;
        VkDescriptorPool pool = VK_NULL_HANDLE;
        size_t pool_sets = 0;
        uint64_t last_used = 0;
    };
    static constexpr size_t kRecordings = 4;  // prompt and decode shapes of a context or two

    static constexpr size_t kStagingBytes = size_t{16} << 20;

    // The buffer handed out: forgets its address when freed.
    class TrackedBuffer : public Buffer {
    public:
        TrackedBuffer(std::unique_ptr<DeviceBuffer> b, VulkanBackend* owner)
            : Buffer(owner, b->usage()), inner_(std::move(b)), owner_(owner) {}
        ~TrackedBuffer() override { owner_->forget(inner_.get()); }
        void* base() override { return inner_->base(); }
        size_t size() const override { return inner_->size(); }

    private:
        std::unique_ptr<DeviceBuffer> inner_;
        VulkanBackend* owner_;
    };

    struct Pipeline {
        VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
        VkPipelineLayout layout = VK_NULL_HANDLE;
        VkPipeline pipeline = VK_NULL_HANDLE;
        uint32_t bindings = 0;
    };

    void forget(DeviceBuffer* b) {
        std::lock_guard<std::mutex> lock(mu_);
        by_address_.erase(b->address());
        allocated_ -= std::min(allocated_, b->size());
    }

    // The buffer holding address p and p's byte offset in it.
    std::pair<DeviceBuffer*, size_t> locate(const void* p) const {
        const uint64_t addr = reinterpret_cast<uint64_t>(p);
        auto it = by_address_.upper_bound(addr);
        if (it == by_address_.begin()) throw Error("Vulkan: a tensor's data is not in this device's memory");
        --it;
        const size_t at = static_cast<size_t>(addr - it->first);
        if (at > it->second->size()) throw Error("Vulkan: a tensor's data is not in this device's memory");
        return {it->second, at};
    }

    DeviceBuffer* staging() {
        if (!staging_) {
            const uint32_t type = host_only_;
            if (type == UINT32_MAX) throw Error("Vulkan: no host-visible memory for copies", ErrorKind::Unsupported);
            staging_ =
                std::make_unique<DeviceBuffer>(this, BufferUsage::Compute, kStagingBytes, dev_, api_, type, type);
        }
        return staging_.get();
    }

    void copy_buffer(VkBuffer src, size_t src_off, VkBuffer dst, size_t dst_off, size_t n) {
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

    void submit_and_wait(VkCommandBuffer cmd) {
        const Api& a = api_;
        VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
        si.commandBufferCount = 1;
        si.pCommandBuffers = &cmd;
        check(a.vkResetFences(dev_, 1, &fence_), "vkResetFences");
        check(a.vkQueueSubmit(queue_, 1, &si, fence_), "vkQueueSubmit");
        check(a.vkWaitForFences(dev_, 1, &fence_, VK_TRUE, UINT64_MAX), "vkWaitForFences");
    }

    std::filesystem::path pipeline_cache_path() const {
        const char* home = std::getenv("HOME");
        if (!home || !*home) return {};
        char name[160];
        std::snprintf(name, sizeof name, "vulkan-%04x-%04x-%08x.bin", props_.vendorID, props_.deviceID,
                      props_.driverVersion);
        return std::filesystem::path(home) / ".cache/tessera" / name;
    }

    // The pipeline cache, kept on disk so the driver compiles each shader once per device.
    void load_pipeline_cache() {
        std::vector<char> data;
        const auto path = pipeline_cache_path();
        if (!path.empty()) {
            std::ifstream f(path, std::ios::binary);
            if (f) data.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
        }
        VkPipelineCacheCreateInfo ci{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
        ci.initialDataSize = data.size();
        ci.pInitialData = data.empty() ? nullptr : data.data();
        if (api_.vkCreatePipelineCache(dev_, &ci, nullptr, &pipeline_cache_) != VK_SUCCESS) {
            ci.initialDataSize = 0;  // a stale or foreign file: start afresh
            ci.pInitialData = nullptr;
            if (api_.vkCreatePipelineCache(dev_, &ci, nullptr, &pipeline_cache_) != VK_SUCCESS)
                pipeline_cache_ = VK_NULL_HANDLE;
        }
    }

    void save_pipeline_cache() const {
        if (!pipeline_cache_) return;
        const auto path = pipeline_cache_path();
        if (path.empty()) return;
        size_t n = 0;
        if (api_.vkGetPipelineCacheData(dev_, pipeline_cache_, &n, nullptr) != VK_SUCCESS || n == 0) return;
        std::vector<char> data(n);
        if (api_.vkGetPipelineCacheData(dev_, pipeline_cache_, &n, data.data()) != VK_SUCCESS) return;
        try {  // a cache that cannot be written costs only the next start's compile
            std::filesystem::create_directories(path.parent_path());
            AtomicFile f(path.string());
            f.write(std::string_view(data.data(), n));
            f.commit();
        } catch (...) {
        }
    }

    void create_pipelines() {
        const Api& a = api_;
        load_pipeline_cache();
        for (int s = 0; s < kShaderCount; ++s) {
            const ShaderInfo& info = kShaders[s];
            std::vector<uint32_t> code((*info.size + 3) / 4);
            std::memcpy(code.data(), info.code, *info.size);
            VkShaderModuleCreateInfo mi{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
            mi.codeSize = *info.size;
            mi.pCode = code.data();
            VkShaderModule module;
            check(a.vkCreateShaderModule(dev_, &mi, nullptr, &module), "vkCreateShaderModule");
            Pipeline p;
            p.bindings = info.bindings;
            VkDescriptorSetLayoutBinding b[kMaxBindings] = {};
            for (uint32_t i = 0; i < info.bindings; ++i) {
                b[i].binding = i;
                b[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
                b[i].descriptorCount = 1;
                b[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
            }
            VkDescriptorSetLayoutCreateInfo li{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
            li.bindingCount = info.bindings;
            li.pBindings = b;
            check(a.vkCreateDescriptorSetLayout(dev_, &li, nullptr, &p.set_layout), "vkCreateDescriptorSetLayout");
            VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, kPushBytes};
            VkPipelineLayoutCreateInfo pli{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
            pli.setLayoutCount = 1;
            pli.pSetLayouts = &p.set_layout;
            pli.pushConstantRangeCount = 1;
            pli.pPushConstantRanges = &range;
            check(a.vkCreatePipelineLayout(dev_, &pli, nullptr, &p.layout), "vkCreatePipelineLayout");
            VkComputePipelineCreateInfo ci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
            ci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
            ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
            ci.stage.module = module;
            ci.stage.pName = "main";
            ci.layout = p.layout;
            const VkResult r = a.vkCreateComputePipelines(dev_, pipeline_cache_, 1, &ci, nullptr, &p.pipeline);
            a.vkDestroyShaderModule(dev_, module, nullptr);
            check(r, "vkCreateComputePipelines");
            pipelines_.push_back(p);
        }
    }

    // A recording's descriptor pool, emptied, with room for a set per node (and per extra
    // dispatch of very wide products).
    void prepare_descriptors(Recording& r, size_t n_nodes) {
        const Api& a = api_;
        if (n_nodes * 2 > r.pool_sets || !r.pool) {
            if (r.pool) a.vkDestroyDescriptorPool(dev_, r.pool, nullptr);
            r.pool_sets = std::max<size_t>(n_nodes, 64) * 2;
            VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                      static_cast<uint32_t>(r.pool_sets * kMaxBindings)};
            VkDescriptorPoolCreateInfo pi{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
            pi.maxSets = static_cast<uint32_t>(r.pool_sets);
            pi.poolSizeCount = 1;
            pi.pPoolSizes = &size;
            check(a.vkCreateDescriptorPool(dev_, &pi, nullptr, &r.pool), "vkCreateDescriptorPool");
        } else {
            a.vkResetDescriptorPool(dev_, r.pool, 0);
        }
    }

    // Binds tensors (null: a dummy buffer) and returns each one's byte offset in its binding.
    void bind(Shader s, std::initializer_list<const Tensor*> tensors, uint32_t* offsets) {
        const Api& a = api_;
        const Pipeline& p = pipelines_[s];
        VkDescriptorSetAllocateInfo ai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
        ai.descriptorPool = desc_pool_;
        ai.descriptorSetCount = 1;
        ai.pSetLayouts = &p.set_layout;
        VkDescriptorSet set;
        check(a.vkAllocateDescriptorSets(dev_, &ai, &set), "vkAllocateDescriptorSets");
        VkDescriptorBufferInfo infos[kMaxBindings];
        VkWriteDescriptorSet writes[kMaxBindings];
        const uint64_t align = std::max<uint64_t>(props_.limits.minStorageBufferOffsetAlignment, 4);
        uint32_t i = 0;
        for (const Tensor* t : tensors) {
            DeviceBuffer* buf = dummy_.get();
            size_t at = 0;
            if (t) std::tie(buf, at) = locate(t->data);
            const uint64_t start = at / align * align;
            infos[i].buffer = buf->handle();
            infos[i].offset = start;
            const uint64_t rest = std::max<uint64_t>(buf->size(), 256) - start;
            infos[i].range = std::min<uint64_t>(rest, props_.limits.maxStorageBufferRange) & ~uint64_t{3};
            if (infos[i].range == 0) infos[i].range = VK_WHOLE_SIZE;
            offsets[i] = static_cast<uint32_t>(at - start);
            writes[i] = VkWriteDescriptorSet{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
            writes[i].dstSet = set;
            writes[i].dstBinding = i;
            writes[i].descriptorCount = 1;
            writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
            writes[i].pBufferInfo = &infos[i];
            ++i;
        }
        a.vkUpdateDescriptorSets(dev_, i, writes, 0, nullptr);
        a.vkCmdBindPipeline(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
        a.vkCmdBindDescriptorSets(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &set, 0, nullptr);
    }

    // Push constants, the dispatch (workgroup counts over x, then y), and a barrier so the
    // next node sees this one's writes.
    void dispatch(Shader s, const void* push, size_t push_bytes, uint64_t groups_x, uint32_t groups_y = 1,
                  uint32_t groups_z = 1) {
        const Api& a = api_;
        a.vkCmdPushConstants(cmd_, pipelines_[s].layout, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                             static_cast<uint32_t>(push_bytes), push);
        const uint64_t max_x = props_.limits.maxComputeWorkGroupCount[0];
        uint64_t x = groups_x, y = groups_y;
        if (groups_y == 1 && groups_z == 1 && groups_x > max_x) {  // a linear count: the shader reads y * count_x + x
            x = std::min<uint64_t>(groups_x, 65535);
            y = (groups_x + x - 1) / x;
        }
        if (x > 0 && y > 0 && groups_z > 0)
            a.vkCmdDispatch(cmd_, static_cast<uint32_t>(x), static_cast<uint32_t>(y), groups_z);
        VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
        mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
        mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
        a.vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1,
                               &mb, 0, nullptr, 0, nullptr);
    }

    static Ten ten(const Tensor& t, uint32_t off) {
        Ten r;
        r.off = off;
        for (int i = 0; i < 4; ++i) {
            r.ne[i] = static_cast<uint32_t>(t.ne[i]);
            r.nb[i] = static_cast<uint32_t>(t.nb[i]);
        }
        return r;
    }

    void record(const Tensor& node) {
        uint32_t off[kMaxBindings] = {};
        const Tensor* a = node.src[0];
        const Tensor* b = node.src[1];
        switch (node.op) {
            case Op::Add:
            case Op::Mul:
            case Op::Scale:
            case Op::Silu:
            case Op::Gelu:
            case Op::GeluErf:
            case Op::Tanh:
            case Op::Swiglu:
            case Op::Geglu:
            case Op::Cont:
            case Op::Cpy:
            case Op::Concat: {
                const bool two = node.op == Op::Add || node.op == Op::Mul || node.op == Op::Swiglu ||
                                 node.op == Op::Geglu || node.op == Op::Concat;
                bind(kEw, {&node, a, two ? b : nullptr}, off);
                struct {
                    Ten o, x, y;
                    uint32_t op;
                    float param;
                    uint32_t types;
                } pc{};
                pc.o = ten(node, off[0]);
                pc.x = ten(*a, off[1]);
                if (two) pc.y = ten(*b, off[2]);
                static const std::map<Op, uint32_t> codes = {
                    {Op::Add, 0},  {Op::Mul, 1},    {Op::Scale, 2}, {Op::Silu, 3}, {Op::Gelu, 4}, {Op::GeluErf, 5},
                    {Op::Tanh, 6}, {Op::Swiglu, 7}, {Op::Geglu, 8}, {Op::Cont, 9}, {Op::Cpy, 9},  {Op::Concat, 10}};
                pc.op = codes.at(node.op);
                pc.param = node.op == Op::Scale ? node.param_f(0) : static_cast<float>(node.params[0]);
                pc.types = static_cast<uint32_t>(a->type) | static_cast<uint32_t>(node.type) << 8;
                const uint64_t n = (pc.op == 9 ? a : &node)->n_elements();
                dispatch(kEw, &pc, sizeof pc, (n + 255) / 256);
                break;
            }
            case Op::RmsNorm:
            case Op::Norm:
            case Op::SoftMax:
            case Op::Argmax: {
                bind(kRows, {&node, a, b}, off);
                struct {
                    Ten o, x, y;
                    uint32_t op;
                    float param;
                    uint32_t flags;
                } pc{};
                pc.o = ten(node, off[0]);
                pc.x = ten(*a, off[1]);
                if (b) pc.y = ten(*b, off[2]);
                pc.op = node.op == Op::RmsNorm ? 0 : node.op == Op::Norm ? 1 : node.op == Op::SoftMax ? 2 : 3;
                pc.param = node.op == Op::Argmax ? 0.0f : node.param_f(0);
                pc.flags = b ? 1u | (b->type == DType::F16 ? 2u : 0u) : 0u;
                dispatch(kRows, &pc, sizeof pc, static_cast<uint64_t>(a->n_rows()));
                break;
            }
            case Op::Rope:
            case Op::SetRows:
                record_rope(node);
                break;
            case Op::MulMat:
                record_mul_mat(node);
                break;
            case Op::GetRows: {
                const Shader sh = mul_mat_shader(a->type);
                bind(sh, {&node, a, b}, off);
                MulMatPush pc{};
                pc.a_off = off[1];
                pc.a_nb[0] = static_cast<uint32_t>(a->nb[1]);
                pc.type = static_cast<uint32_t>(a->type);
                pc.b_off = off[2];
                pc.y_off = off[0];
                pc.y_nb[0] = static_cast<uint32_t>(node.nb[1]);
                pc.K = static_cast<uint32_t>(a->ne[0]);
                pc.M = static_cast<uint32_t>(b->ne[0]);
                pc.mode = 1;
                dispatch(sh, &pc, sizeof pc, (static_cast<uint64_t>(pc.K) * pc.M + 63) / 64);
                break;
            }
            case Op::FlashAttn:
                record_flash_attn(node);
                break;
            default:
                throw Error(std::string("Vulkan backend: no shader for ") + op_name(node.op), ErrorKind::Internal);
        }
    }

    // Activation rows above which products take the tiled shader (mode 3).
    static constexpr uint32_t kTiledFromRows = 8;

    struct MulMatPush {
        uint32_t a_off, a_nb[3], type;
        uint32_t b_off, b_nb[3];
        uint32_t y_off, y_nb[3];
        uint32_t K, N, M, B2, r2, r3, mode, i_base, B3;
    };

    void record_mul_mat(const Tensor& node) {
        const Tensor& a = *node.src[0];
        const Tensor& b = *node.src[1];
        uint32_t off[kMaxBindings] = {};
        const Shader sh = mul_mat_shader(a.type);
        bind(sh, {&node, &a, &b}, off);
        MulMatPush pc{};
        pc.a_off = off[1];
        pc.type = static_cast<uint32_t>(a.type);
        pc.b_off = off[2];
        pc.y_off = off[0];
        for (int i = 0; i < 3; ++i) {
            pc.a_nb[i] = static_cast<uint32_t>(a.nb[i + 1]);
            pc.b_nb[i] = static_cast<uint32_t>(b.nb[i + 1]);
            pc.y_nb[i] = static_cast<uint32_t>(node.nb[i + 1]);
        }
        pc.K = static_cast<uint32_t>(a.ne[0]);
        pc.N = static_cast<uint32_t>(a.ne[1]);
        pc.M = static_cast<uint32_t>(b.ne[1]);
        pc.B2 = static_cast<uint32_t>(b.ne[2]);
        pc.r2 = static_cast<uint32_t>(b.ne[2] / a.ne[2]);
        pc.r3 = static_cast<uint32_t>(b.ne[3] / a.ne[3]);
        pc.B3 = static_cast<uint32_t>(b.ne[3]);
        const uint64_t batches = static_cast<uint64_t>(b.ne[2] * b.ne[3]);
        const uint64_t groups_y = ((pc.M + 7) / 8) * batches;
        const VkPhysicalDeviceLimits& lim = props_.limits;
        if (pc.M > kTiledFromRows && pc.K % 32 == 0 && (pc.N + 63) / 64 <= lim.maxComputeWorkGroupCount[0] &&
            (pc.M + 31) / 32 <= lim.maxComputeWorkGroupCount[1] && batches <= lim.maxComputeWorkGroupCount[2]) {
            pc.mode = 3;  // prompts: tiles of 64 weight rows x 32 activation rows
            dispatch(sh, &pc, sizeof pc, (pc.N + 63) / 64, (pc.M + 31) / 32, static_cast<uint32_t>(batches));
            return;
        }
        if (cpu_type_) {  // a CPU device: an invocation per output row group, no barriers
            pc.mode = 2;
            dispatch(sh, &pc, sizeof pc, (static_cast<uint64_t>(pc.N) * groups_y + 63) / 64);
            return;
        }
        const uint32_t max_x = std::min<uint32_t>(props_.limits.maxComputeWorkGroupCount[0], 1u << 30);
        // Weight rows beyond the device's largest x count go in further dispatches.
        for (uint32_t base = 0; base < pc.N; base += max_x) {
            pc.i_base = base;
            dispatch(sh, &pc, sizeof pc, std::min(max_x, pc.N - base), static_cast<uint32_t>(groups_y));
        }
    }

    void record_rope(const Tensor& node) {
        struct {
            uint32_t o_off, o_nb1, o_rows, o_type;
            uint32_t x_off, head, n_head, n_tok, x_nb1, x_nb2;
            uint32_t pos_off, idx_off, idx64, ff_off, has_ff;
            uint32_t n_dims, neox, rotate, mode;
            float base, freq_scale, ext_factor, attn_factor, corr0, corr1;
        } pc{};
        const bool rope = node.op == Op::Rope;
        const Tensor& x = rope ? *node.src[0] : *node.src[1];
        const Tensor* pos = rope ? node.src[1] : node.src[3];
        const Tensor* ff = rope ? node.src[2] : node.src[4];
        const Tensor* idx = rope ? nullptr : node.src[2];
        uint32_t off[kMaxBindings] = {};
        bind(kRope, {&node, &x, pos, idx, ff}, off);
        pc.o_off = off[0];
        pc.o_nb1 = static_cast<uint32_t>(node.nb[1]);
        pc.o_rows = static_cast<uint32_t>(node.ne[1]);
        pc.o_type = static_cast<uint32_t>(node.type);
        pc.x_off = off[1];
        if (rope || pos) {  // x: [head, n_head, n_tokens]
            pc.head = static_cast<uint32_t>(x.ne[0]);
            pc.n_head = static_cast<uint32_t>(x.ne[1]);
            pc.n_tok = static_cast<uint32_t>(x.ne[2]);
            pc.x_nb1 = static_cast<uint32_t>(x.nb[1]);
            pc.x_nb2 = static_cast<uint32_t>(x.nb[2]);
        } else {  // set_rows: x [E, n] is n tokens of one head
            pc.head = static_cast<uint32_t>(x.ne[0]);
            pc.n_head = 1;
            pc.n_tok = static_cast<uint32_t>(x.ne[1]);
            pc.x_nb1 = 0;
            pc.x_nb2 = static_cast<uint32_t>(x.nb[1]);
        }
        pc.pos_off = off[2];
        pc.idx_off = off[3];
        pc.idx64 = idx && idx->type == DType::I64;
        pc.ff_off = off[4];
        pc.has_ff = ff != nullptr;
        pc.mode = rope ? 0 : 1;
        pc.rotate = pos != nullptr;
        if (pos) {
            pc.n_dims = static_cast<uint32_t>(node.params[0]);
            pc.neox = node.params[1] == static_cast<int32_t>(RopeMode::NeoX);
            pc.base = node.param_f(3);
            pc.freq_scale = node.param_f(4);
            pc.ext_factor = node.param_f(5);
            pc.attn_factor = node.param_f(6);
            const int n_ctx_orig = node.params[2];
            if (pc.ext_factor != 0.0f && n_ctx_orig > 0) {
                const int nd = node.params[0];
                pc.corr0 = std::max(0.0f, std::floor(yarn_corr_dim(nd, n_ctx_orig, node.param_f(7), pc.base)));
                pc.corr1 = std::min(static_cast<float>(nd - 1),
                                    std::ceil(yarn_corr_dim(nd, n_ctx_orig, node.param_f(8), pc.base)));
            }
        }
        const uint64_t width = static_cast<uint64_t>(pc.head) * pc.n_head;
        const uint64_t per_row = !rope && node.type == DType::Q8_0 ? width / 32 : width;
        dispatch(kRope, &pc, sizeof pc, (per_row * pc.n_tok + 255) / 256);
    }

    void record_flash_attn(const Tensor& node) {
        const Tensor& q = *node.src[0];
        const Tensor& k = *node.src[1];
        const Tensor& v = *node.src[2];
        const Tensor* mask = node.src[3];
        uint32_t off[kMaxBindings] = {};
        bind(kFlashAttn, {&node, &q, &k, &v, mask}, off);
        struct {
            uint32_t q_off, q_nb1, q_nb2, q_nb3;
            uint32_t k_off, k_nb1, k_nb2, k_nb3;
            uint32_t v_off, v_nb1, v_nb2, v_nb3;
            uint32_t o_off, o_nb1, o_nb2;
            uint32_t m_off, m_nb1;
            uint32_t D, Dv, n_q, H, H_kv, n_kv, S;
            uint32_t flags;
            float scale, softcap;
        } pc{};
        static_assert(sizeof pc <= kPushBytes, "push constants");
        pc.q_off = off[1];
        pc.q_nb1 = static_cast<uint32_t>(q.nb[1]);
        pc.q_nb2 = static_cast<uint32_t>(q.nb[2]);
        pc.q_nb3 = static_cast<uint32_t>(q.nb[3]);
        pc.k_off = off[2];
        pc.k_nb1 = static_cast<uint32_t>(k.nb[1]);
        pc.k_nb2 = static_cast<uint32_t>(k.nb[2]);
        pc.k_nb3 = static_cast<uint32_t>(k.nb[3]);
        pc.v_off = off[3];
        pc.v_nb1 = static_cast<uint32_t>(v.nb[1]);
        pc.v_nb2 = static_cast<uint32_t>(v.nb[2]);
        pc.v_nb3 = static_cast<uint32_t>(v.nb[3]);
        pc.o_off = off[0];
        pc.o_nb1 = static_cast<uint32_t>(node.nb[1]);
        pc.o_nb2 = static_cast<uint32_t>(node.nb[2]);
        pc.m_off = off[4];
        pc.m_nb1 = mask ? static_cast<uint32_t>(mask->nb[1]) : 0;
        pc.D = static_cast<uint32_t>(q.ne[0]);
        pc.Dv = static_cast<uint32_t>(v.ne[0]);
        pc.n_q = static_cast<uint32_t>(q.ne[1]);
        pc.H = static_cast<uint32_t>(q.ne[2]);
        pc.H_kv = static_cast<uint32_t>(k.ne[2]);
        pc.n_kv = static_cast<uint32_t>(k.ne[1]);
        pc.S = static_cast<uint32_t>(q.ne[3]);
        pc.flags = static_cast<uint32_t>(k.type) | static_cast<uint32_t>(v.type) << 8 | (mask ? 1u << 16 : 0u) |
                   (mask && mask->type == DType::F16 ? 1u << 17 : 0u);
        pc.scale = node.param_f(0);
        pc.softcap = node.param_f(1);
        const uint64_t rows = static_cast<uint64_t>(pc.n_q) * pc.H * pc.S;
        dispatch(kFlashAttn, &pc, sizeof pc, rows);  // a workgroup per row
    }

    const Api& api_;
    VkPhysicalDevice pd_;
    std::string name_;
    VkPhysicalDeviceProperties props_{};
    bool cpu_type_ = false;
    uint32_t family_ = 0;
    VkDevice dev_ = VK_NULL_HANDLE;
    VkQueue queue_ = VK_NULL_HANDLE;
    uint32_t host_local_ = UINT32_MAX, device_local_ = UINT32_MAX, host_only_ = UINT32_MAX;
    size_t heap_bytes_ = 0, allocated_ = 0;
    VkCommandPool cmd_pool_ = VK_NULL_HANDLE;
    VkCommandBuffer copy_cmd_ = VK_NULL_HANDLE;
    VkFence fence_ = VK_NULL_HANDLE;
    std::vector<Recording> recordings_;
    std::vector<uint64_t> key_;
    uint64_t clock_ = 0;
    // The recording being made: record() and bind() write into these.
    VkCommandBuffer cmd_ = VK_NULL_HANDLE;
    VkDescriptorPool desc_pool_ = VK_NULL_HANDLE;
    VkPipelineCache pipeline_cache_ = VK_NULL_HANDLE;
    std::vector<Pipeline> pipelines_;
    std::unique_ptr<DeviceBuffer> dummy_, staging_;
    std::once_flag open_once_;
    std::map<uint64_t, DeviceBuffer*> by_address_;
    mutable std::mutex mu_;
};

std::string gib(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
    return buf;
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
                      std::to_string(VK_API_VERSION_MINOR(p.apiVersion)) + ", baseline shaders");
    }
    return out;
}

std::string unavailable_reason() { return api().reason; }

}  // namespace tessera::vulkan
