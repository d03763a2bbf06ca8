// The Vulkan backend's shared declarations: device buffers, the shaders and their push-constant
// layout, and the VulkanBackend class, whose device and memory are in vulkan_backend.cpp, its
// pipelines in vulkan_pipeline.cpp, its recording and submission in vulkan_record.cpp and the
// recording of each op in vulkan_ops.cpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backends/vulkan/vulkan_api.h"
#include "tensor/backend.h"
#include "tensor/error.h"
#include "tensor/profile.h"
#include "tensor/tensor.h"

namespace tessera::vulkan {

// ---- buffers ----

// A buffer is one VkBuffer, with an address range of its own that tensors' data pointers
// point into (never dereferenced by the CPU).
class DeviceBuffer : public Buffer {
public:
    DeviceBuffer(Backend* b, BufferUsage usage, size_t size, VkDevice dev, const Api& a, uint32_t host_type,
                 uint32_t device_type);
    ~DeviceBuffer() override;
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

// ---- shaders ----

// The weight types' variants of mul_mat and mul_vec, in kWeightTypes' order.
#define TESSERA_WEIGHT_TYPES(X) \
    X(F32) X(F16) X(BF16) X(Q4_0) X(Q4_1) X(Q5_0) X(Q5_1) X(Q8_0) X(Q2_K) X(Q3_K) X(Q4_K) X(Q5_K) X(Q6_K)

// mul_mat and mul_vec have one variant per weight type, in kWeightTypes' order, from kMulMat
// and kMulVec on; kMulVecSg's are mul_vec's with subgroup sums, kMulMatCm's mul_mat_cm's
// (prompt products on cooperative matrices, absent from builds whose compiler lacks them),
// kMulVecDp's mul_vec's on int8 activations and integer dot products (the 32-element blocks,
// Q4_K, Q5_K and Q6_K; null for the other types), kMulMatU's mul_mat's with the activations
// in a uniform buffer (a CPU device's small products, mul_mat.comp's uniform_product()).
enum Shader {
    kEw,
    kRows,
    kRope,
    kFlashAttn,
    kFlashAttnTile,
    kFlashAttnGqa,       // flash_attn.comp taking 4 heads of a KV head a workgroup (GMAX 4)
    kFlashAttnAhead,     // flash_attn.comp on F16 rows, a step's loads issued at once (AHEAD 1)
    kFlashAttnGqaAhead,  // both (GMAX 4, AHEAD 1)
    kFlashAttnCm,        // flash_attn_cm.comp: prompts on cooperative matrices (absent without them)
    kFlashAttnH,         // flash_attn_h.comp: prompts in packed f16 arithmetic
    kQuantAct,
    kPrefetch,  // prefetch.comp: weights read ahead into the L2 cache
    kMulMat,
    kMulVec = kMulMat + 13,
    kMulVecSg = kMulVec + 13,
    kMulMatCm = kMulVecSg + 13,
    kMulVecDp = kMulMatCm + 13,
    kMulMatU = kMulVecDp + 13,
    kMulMatT = kMulMatU + 13,     // mul_mat_tile.comp: a GPU's prompt products without cooperative matrices
    kMulMatTh = kMulMatT + 13,    // mul_mat_tile.comp in f16 arithmetic (F16MATH)
    kMulMatThn = kMulMatTh + 13,  // and in 128 x 64 tiles (BN 64), for products of few 128 x 128 tiles
    kShaderCount = kMulMatThn + 13
};

const DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                              DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

struct ShaderInfo {
    const unsigned char* code;  // null: not in this build
    const size_t* size;
    uint32_t bindings;
    uint32_t uniforms = 0;  // the bindings (a bit each) that are uniform buffers, not storage
};

// Each shader's SPIR-V and binding count, in Shader's order (vulkan_pipeline.cpp).
extern const ShaderInfo kShaders[kShaderCount];

// The mul_mat (or mul_vec) variant for a weight type.
inline Shader mul_mat_shader(DType t, Shader first = kMulMat) {
    for (int i = 0; i < static_cast<int>(std::size(kWeightTypes)); ++i)
        if (kWeightTypes[i] == t) return static_cast<Shader>(first + i);
    throw Error(std::string("Vulkan backend: no matrix product for ") + std::string(type_name(t)), ErrorKind::Internal);
}

constexpr uint32_t kPushBytes = 128;
// flash_attn_tile.comp's shared memory in bytes: queries 16384, weights 8320, maxima 1024 + 256.
constexpr uint32_t kAttnTileShared = 25984;
// flash_attn_cm.comp's: queries 8704, keys or values 17408, scores and partial maxima or
// products 16896, weights 4608, the live keys' bounds 8.
constexpr uint32_t kAttnCmShared = 47624;
// flash_attn_h.comp's: queries 8704, keys or values 17408, weights 4096, the rows' partial
// maxima or sums 2048, the live keys' bounds 8.
constexpr uint32_t kAttnHShared = 32264;
// flash_attn.comp's shared memory in bytes with GMAX query heads a workgroup: the queries and
// scores (2 KiB a head), the ranges' maxima and sums (64), the merge's rows (8192), a flag
// (4) and the int8 copy's block maxima (2048): 12356 for one head (within the 16 KiB every
// device has), 18500 for kAttnGqaHeads.
constexpr uint32_t attn_shared_bytes(uint32_t gmax) { return 2048 * gmax + 64 + 8192 + 4 + 2048; }
constexpr uint32_t kMaxBindings = 7;
constexpr uint64_t kAttnCounterBytes = 16384;  // flash_attn.comp's ATTN_COUNTER_BYTES
// The query heads of one KV head that a flash_attn.comp workgroup takes together (prompts,
// and decoding over many keys).
constexpr uint32_t kAttnGqaHeads = 4;
// mul_mat_cm.comp's step along K (BK) and shared memory with 2 x sgn subgroups: f16 tiles of
// 128 weight rows and 32 sgn activation rows (rows of BK + 8 halves), and a 16 x 16 f32
// result per subgroup.
constexpr uint32_t kCmStep = 64;
constexpr uint32_t cm_shared_bytes(uint32_t sgn) { return (128 + 32 * sgn) * (kCmStep + 8) * 2 + 2 * sgn * 1024; }

// A tensor's place in push constants: byte offset within its binding, shape, byte strides.
struct Ten {
    uint32_t off, ne[4], nb[4];
};

// The bytes from a tensor's first element to the end of its last (vulkan_record.cpp).
uint64_t extent(const Tensor& t);

inline bool weight_type(DType t) {
    return std::find(std::begin(kWeightTypes), std::end(kWeightTypes), t) != std::end(kWeightTypes);
}

inline bool element_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Split rows (tensor.h's split_rows_fit; dequant.glsl reads them): the upload keeps such
// product weights with each row's quants first and its scales after them (kFlagDeviceLayout).
// Such a weight is read only by products and row lookups, as their first source, by whole
// rows.
// A product's or row lookup's push constant `split`: the blocks of a row of a weight kept as
// split rows, else 0.
inline uint32_t split_blocks(const Tensor& w) {
    const Tensor* root = w.root();
    return (root->flags & kFlagDeviceLayout) ? static_cast<uint32_t>(root->ne[0] / 32) : 0u;
}

// ---- the backend ----

class VulkanBackend : public Backend {
public:
    VulkanBackend(int index, VkPhysicalDevice pd);
    ~VulkanBackend() override;

    void open();  // the device, made on first use (vulkan_backend.cpp)
    void create_objects();

    const std::string& name() const override { return name_; }
    bool host_memory() const override { return false; }
    bool offload_by_default() const override { return !cpu_type_; }
    bool shares_host_memory() const override { return unified_; }

    size_t max_buffer_bytes() const override { return props_.limits.maxStorageBufferRange; }

    DeviceMemory memory() const override;
    std::unique_ptr<Buffer> alloc_buffer(size_t size, BufferUsage usage) override;
    void upload(Tensor* t, const void* src, size_t offset, size_t n) override;
    void download(const Tensor* t, void* dst, size_t offset, size_t n) override;
    bool supports(const Tensor& node) const override;
    size_t work_size(std::span<Tensor* const>, int) const override { return 0; }
    double copy_bandwidth_gbs() override;
    void compute(std::span<Tensor* const> nodes, void*, size_t, int, const AbortCheck& abort) override;

private:
    // An output's bytes [at, at + bytes) of buf, copied at the end of a recording to byte
    // rb_at of readback_ (a discrete GPU's logits, read without a submission of their own).
    struct Readback {
        VkBuffer buf;
        uint64_t at, bytes, rb_at;
    };
    // A recorded command buffer with the descriptor sets it binds.
    struct Recording {
        std::vector<uint64_t> key;
        VkCommandBuffer cmd = VK_NULL_HANDLE;
        VkDescriptorPool pool = VK_NULL_HANDLE;
        size_t pool_sets = 0;
        uint64_t last_used = 0;
        uint32_t stamps = 0;              // timestamps it writes (TESSERA_PROFILE), 0: none
        std::vector<std::string> levels;  // TESSERA_PROFILE=levels: what ran between stamps i and i + 1
        std::vector<Readback> reads;      // the outputs it copies into readback_
    };
    static constexpr size_t kRecordings = 4;  // prompt and decode shapes of a context or two

    static constexpr size_t kStagingBytes = size_t{16} << 20;
    static constexpr uint32_t kMaxStamps = 1u << 14;  // a timestamp before the nodes and after each

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
        uint32_t uniforms = 0;  // ShaderInfo's
    };

    // ---- memory (vulkan_backend.cpp) ----
    void forget(DeviceBuffer* b);
    std::pair<DeviceBuffer*, size_t> locate(const void* p) const;
    DeviceBuffer* staging();
    void record_readback(Recording& r, std::span<Tensor* const> nodes);
    void copy_buffer(VkBuffer src, size_t src_off, VkBuffer dst, size_t dst_off, size_t n);
    bool wants_split_rows(const Tensor& t, size_t at) const;

    // ---- pipelines (vulkan_pipeline.cpp) ----
    std::filesystem::path pipeline_cache_path() const;
    void load_pipeline_cache();
    void save_pipeline_cache() const;
    void create_pipelines();

    // ---- recording and submission (vulkan_record.cpp) ----
    void submit(std::span<Tensor* const> nodes, NodeProfile* profile);
    void submit_and_wait(VkCommandBuffer cmd);
    void read_stamps(std::span<Tensor* const> nodes, const Recording& r, NodeProfile* profile);
    void prepare_descriptors(Recording& r, size_t n_nodes);
    // Bytes [at, at + bytes) of a buffer bound to a shader (bytes 0: to the buffer's end).
    struct Bound {
        DeviceBuffer* buf;
        uint64_t at, bytes;
    };
    Bound bound(const Tensor* t) const;
    void bind(Shader s, std::initializer_list<const Tensor*> tensors, uint32_t* offsets);
    void bind(Shader s, std::span<const Bound> bound, uint32_t* offsets);
    DeviceBuffer* scratch(size_t bytes);
    DeviceBuffer* grow(std::unique_ptr<DeviceBuffer>& slot, size_t bytes);
    // Activation rows as int8 blocks for the kMulVecDp products (quant_act.comp), in the
    // activation buffer: each source tensor's made once per recording.
    struct QuantActs {
        DeviceBuffer* buf;
        uint64_t at, row_bytes, ds_at, bytes;
    };
    QuantActs reserve_acts(const Tensor& b);
    bool quantize_acts(const Tensor& b, QuantActs* q);
    void dispatch_quant(const Tensor& x, const QuantActs& q, const Tensor* up, const Tensor* out, uint32_t gate);
    bool int8_source(const Tensor& node) const;      // an output that an int8 product takes
    bool int8_product(const Tensor& node) const;     // a product that takes them (kMulVecDp)
    bool tiled_product(const Tensor& node) const;    // a product on prompt tiles (mul_mat's mode 3)
    bool uniform_product(const Tensor& node) const;  // one that may take kMulMatU
    void order(const Tensor& node, const Tensor* fused = nullptr);
    void barrier();
    void close_level();
    void prefetch_ahead(std::span<Tensor* const> nodes, size_t i);
    void dispatch(Shader s, const void* push, size_t push_bytes, uint64_t groups_x, uint32_t groups_y = 1,
                  uint32_t groups_z = 1);

    // ---- each op's recording (vulkan_ops.cpp) ----
    void record(const Tensor& node);
    void record_mul_mat(const Tensor& node);
    void record_rows(const Tensor& node, const Tensor* add);
    bool fusable_add(const Tensor& add, const Tensor& norm) const;
    void record_rope(const Tensor& node);
    void record_flash_attn(const Tensor& node);

    const Api& api_;
    VkPhysicalDevice pd_;
    std::string name_;
    VkPhysicalDeviceProperties props_{};
    bool cpu_type_ = false;
    bool unified_ = false;    // the host reads the device's memory at host speed
    bool cpu_paths_ = false;  // shaders take their CPU-device code paths
    uint32_t family_ = 0;
    bool timestamps_ = false;      // the queue writes timestamps (for TESSERA_PROFILE)
    bool subgroups_ = false;       // subgroup sums in compute shaders (mul_vec.comp's SUBGROUPS)
    bool coopmat_ = false;         // prompt products on cooperative matrices (mul_mat_cm.comp)
    uint32_t cm_sgn_ = 4;          // its subgroups along the activation rows (tiles of 32 cm_sgn_ rows)
    bool fuse_ = true;             // add + RMS norm in one dispatch; attention writing its output's int8 copy
    bool attn_tiles_ = true;       // prompt attention by blocks of rows (flash_attn_tile.comp)
    bool attn_cm_ = false;         // and in f16 tiles on cooperative matrices (kFlashAttnCm)
    bool attn_h_ = false;          // or in packed f16 arithmetic (kFlashAttnH)
    int attn_gqa_ = 2;             // else by rows, a KV head's query heads together (kFlashAttnGqa):
                                   // 1 for prompts, 2 for decoding over many keys too
    uint32_t spin_us_ = 0;         // a submission's fence polled this long before sleeping on it
    bool attn_merge_ = false;      // split attention merged by each row's last workgroup
    bool norm_wide_ = true;        // RMS norms with an int8 copy: 16-byte loads and stores
    bool split_rows_ = true;       // Q4_0 and Q8_0 product weights uploaded as split rows
    uint64_t prefetch_bytes_ = 0;  // decoding products' weights read ahead a level, at most (prefetch_ahead)
    uint64_t split_target_ = 512;  // the workgroups a split of decoding attention aims at
    bool readback_on_ = false;     // graphs copy their outputs into readback_ (record_readback)
    bool attn_ahead_ = true;       // attention by rows on F16 rows: kFlashAttnAhead, kFlashAttnGqaAhead
    bool int_dot_ = false;         // decoding products on integer dot products (kMulVecDp)
    bool uniform_acts_ = false;    // a CPU device's small products on uniform-buffer activations (kMulMatU)
    bool big_tiles_ = false;       // a GPU's prompt products without cooperative matrices in kMulMatT
    bool f16_tiles_ = false;       // and those of 16-bit and quantized weights in kMulMatTh
    uint64_t narrow_below_ = 0;    // products of fewer 128 x 128 tiles in kMulMatThn's 128 x 64
    uint32_t subgroup_size_ = 0;
    uint32_t mmv_rows_ = 2;                               // weight rows per workgroup of mul_vec.comp (its R), at most
    uint32_t mmv_rows_of_[std::size(kWeightTypes)] = {};  // and each weight type's
    uint32_t mmv_width_ = 64;                             // and its invocations (W)
    bool mmv_lane_sums_ = false;  // one-subgroup workgroups' sums from the lanes (mul_vec.comp's LANE_SUMS)
    uint32_t mmv_unroll_ = 4;     // groups of 8 elements an invocation loads at once (U)
    VkDevice dev_ = VK_NULL_HANDLE;
    VkQueue queue_ = VK_NULL_HANDLE;
    uint32_t host_local_ = UINT32_MAX, device_local_ = UINT32_MAX, host_only_ = UINT32_MAX;
    size_t heap_bytes_ = 0, allocated_ = 0;
    VkCommandPool cmd_pool_ = VK_NULL_HANDLE;
    VkCommandBuffer copy_cmd_ = VK_NULL_HANDLE;
    VkFence fence_ = VK_NULL_HANDLE;
    VkQueryPool stamps_ = VK_NULL_HANDLE;  // TESSERA_PROFILE's, kMaxStamps of them
    std::vector<Recording> recordings_;
    std::vector<uint64_t> key_;
    uint64_t clock_ = 0;
    // The recording being made: record() and bind() write into these.
    // TESSERA_PROFILE=levels: the kind of the node being recorded, the kinds dispatched since
    // the last barrier, and the recording's levels and next timestamp.
    bool level_stamps_ = false;
    std::string node_kind_, level_label_;
    Recording* level_rec_ = nullptr;
    uint32_t next_stamp_ = 0;
    VkCommandBuffer cmd_ = VK_NULL_HANDLE;
    VkDescriptorPool desc_pool_ = VK_NULL_HANDLE;
    VkPipelineCache pipeline_cache_ = VK_NULL_HANDLE;
    std::vector<Pipeline> pipelines_;
    std::unique_ptr<DeviceBuffer> dummy_, staging_;
    std::unique_ptr<DeviceBuffer> readback_;  // host memory the recordings copy outputs into
    std::vector<Readback> readable_;          // what it holds now (the last submission's reads)
    std::unique_ptr<DeviceBuffer> scratch_;   // split attention's partial results
    std::unique_ptr<DeviceBuffer> acts_;      // int8 activations (quantized_acts)
    std::unique_ptr<DeviceBuffer> sink_;      // prefetch.comp's: a 16-byte slot per dispatch of a recording
    uint32_t sinks_used_ = 0;
    std::vector<const Tensor*> prefetched_;  // the products whose weights the recording read ahead
    uint64_t acts_used_ = 0;                 // bytes of it the recording has taken
    std::vector<std::pair<const Tensor*, QuantActs>> acts_made_;
    std::vector<const Tensor*> acts_wanted_;              // the recording's int8 products' sources
    std::vector<std::unique_ptr<DeviceBuffer>> retired_;  // replaced scratch, until the submission ends
    std::once_flag open_once_;
    std::map<uint64_t, DeviceBuffer*> by_address_;
    // Memory the nodes recorded since the last barrier read and write (order()).
    struct Span {
        VkBuffer buf;
        uint64_t begin, end;
        bool write;
    };
    std::vector<Span> pending_;
    mutable std::mutex mu_;
};

}  // namespace tessera::vulkan
