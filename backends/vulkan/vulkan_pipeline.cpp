// The Vulkan backend's shaders and pipelines: the SPIR-V embedded at build time with each
// shader's bindings, the compute pipelines made from them (specialization constants choose
// a decoding product's rows and invocations, an attention variant's heads and loads), and the
// pipeline cache kept on disk under ~/.cache/tessera so a driver compiles each shader once.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <vector>

#include "backends/vulkan/vulkan_api.h"
#include "backends/vulkan/vulkan_device.h"
#include "tensor/atomic_file.h"

namespace tessera::vulkan {
namespace spirv {
#define TESSERA_SHADER(name)           \
    extern const unsigned char name[]; \
    extern const size_t name##_size;
TESSERA_SHADER(ew)
TESSERA_SHADER(rows)
TESSERA_SHADER(rope)
TESSERA_SHADER(flash_attn)
TESSERA_SHADER(flash_attn_tile)
TESSERA_SHADER(quant_act)
TESSERA_SHADER(prefetch)
// The weight types' variants of mul_mat and mul_vec (TESSERA_WEIGHT_TYPES, vulkan_device.h).
#define TESSERA_MUL_MAT(t) TESSERA_SHADER(mul_mat_##t)
#define TESSERA_MUL_VEC(t) TESSERA_SHADER(mul_vec_##t)
#define TESSERA_MUL_VEC_SG(t) TESSERA_SHADER(mul_vec_sg_##t)
#define TESSERA_MUL_MAT_U(t) TESSERA_SHADER(mul_mat_u_##t)
#define TESSERA_MUL_MAT_T(t) TESSERA_SHADER(mul_mat_tile_##t)
#define TESSERA_MUL_MAT_TH(t) TESSERA_SHADER(mul_mat_tile_h_##t)
#define TESSERA_MUL_MAT_THN(t) TESSERA_SHADER(mul_mat_tile_hn_##t)
TESSERA_WEIGHT_TYPES(TESSERA_MUL_MAT)
TESSERA_WEIGHT_TYPES(TESSERA_MUL_MAT_T)
TESSERA_WEIGHT_TYPES(TESSERA_MUL_MAT_TH)
TESSERA_WEIGHT_TYPES(TESSERA_MUL_MAT_THN)
TESSERA_WEIGHT_TYPES(TESSERA_MUL_MAT_U)
TESSERA_WEIGHT_TYPES(TESSERA_MUL_VEC)
TESSERA_WEIGHT_TYPES(TESSERA_MUL_VEC_SG)
TESSERA_SHADER(flash_attn_h)
#if TESSERA_HAVE_VULKAN_COOPMAT
TESSERA_SHADER(flash_attn_cm)
#define TESSERA_MUL_MAT_CM(t) TESSERA_SHADER(mul_mat_cm_##t)
TESSERA_WEIGHT_TYPES(TESSERA_MUL_MAT_CM)
#undef TESSERA_MUL_MAT_CM
#endif
#undef TESSERA_MUL_VEC_SG
#undef TESSERA_MUL_MAT_U
#undef TESSERA_MUL_MAT_T
#undef TESSERA_MUL_MAT_TH
#undef TESSERA_MUL_MAT_THN
#undef TESSERA_MUL_MAT
#undef TESSERA_MUL_VEC
// mul_vec's variants on integer dot products: the types that have them.
#define TESSERA_DP_TYPES(X) X(Q4_0) X(Q4_1) X(Q5_0) X(Q5_1) X(Q8_0) X(Q4_K) X(Q5_K) X(Q6_K)
#define TESSERA_MUL_VEC_DP(t) TESSERA_SHADER(mul_vec_dp_##t)
TESSERA_DP_TYPES(TESSERA_MUL_VEC_DP)
#undef TESSERA_MUL_VEC_DP
#undef TESSERA_SHADER
}  // namespace spirv

const ShaderInfo kShaders[kShaderCount] = {
    {spirv::ew, &spirv::ew_size, 3},
    {spirv::rows, &spirv::rows_size, 6},
    {spirv::rope, &spirv::rope_size, 5},
    {spirv::flash_attn, &spirv::flash_attn_size, 7},
    {spirv::flash_attn_tile, &spirv::flash_attn_tile_size, 5},
    {spirv::flash_attn, &spirv::flash_attn_size, 7},
    {spirv::flash_attn, &spirv::flash_attn_size, 7},
    {spirv::flash_attn, &spirv::flash_attn_size, 7},
#if TESSERA_HAVE_VULKAN_COOPMAT
    {spirv::flash_attn_cm, &spirv::flash_attn_cm_size, 5},
#else
    {nullptr, nullptr, 5},
#endif
    {spirv::flash_attn_h, &spirv::flash_attn_h_size, 5},
    {spirv::quant_act, &spirv::quant_act_size, 4},
    {spirv::prefetch, &spirv::prefetch_size, 2},
#define TESSERA_MUL_MAT(t) {spirv::mul_mat_##t, &spirv::mul_mat_##t##_size, 3},
#define TESSERA_MUL_VEC(t) {spirv::mul_vec_##t, &spirv::mul_vec_##t##_size, 3},
#define TESSERA_MUL_VEC_SG(t) {spirv::mul_vec_sg_##t, &spirv::mul_vec_sg_##t##_size, 3},
    TESSERA_WEIGHT_TYPES(TESSERA_MUL_MAT) TESSERA_WEIGHT_TYPES(TESSERA_MUL_VEC) TESSERA_WEIGHT_TYPES(TESSERA_MUL_VEC_SG)
#if TESSERA_HAVE_VULKAN_COOPMAT
#define TESSERA_MUL_MAT_CM(t) {spirv::mul_mat_cm_##t, &spirv::mul_mat_cm_##t##_size, 3},
        TESSERA_WEIGHT_TYPES(TESSERA_MUL_MAT_CM)
#else
#define TESSERA_MUL_MAT_CM(t) {nullptr, nullptr, 3},
        TESSERA_WEIGHT_TYPES(TESSERA_MUL_MAT_CM)
#endif
#undef TESSERA_MUL_MAT_CM
#undef TESSERA_MUL_VEC_SG
#undef TESSERA_MUL_MAT
#undef TESSERA_MUL_VEC
#define TESSERA_DP(t) \
    { spirv::mul_vec_dp_##t, &spirv::mul_vec_dp_##t##_size, 3 }
#define TESSERA_NO_DP \
    { nullptr, nullptr, 3 }
    // In kWeightTypes' order: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K,
    // Q5_K, Q6_K.
    TESSERA_NO_DP,
    TESSERA_NO_DP,
    TESSERA_NO_DP,
    TESSERA_DP(Q4_0),
    TESSERA_DP(Q4_1),
    TESSERA_DP(Q5_0),
    TESSERA_DP(Q5_1),
    TESSERA_DP(Q8_0),
    TESSERA_NO_DP,
    TESSERA_NO_DP,
    TESSERA_DP(Q4_K),
    TESSERA_DP(Q5_K),
    TESSERA_DP(Q6_K),
#undef TESSERA_NO_DP
#undef TESSERA_DP
// mul_mat's with the activations (binding 2) in a uniform buffer.
#define TESSERA_MUL_MAT_U(t) {spirv::mul_mat_u_##t, &spirv::mul_mat_u_##t##_size, 3, 1u << 2},
    TESSERA_WEIGHT_TYPES(TESSERA_MUL_MAT_U)
#undef TESSERA_MUL_MAT_U
// clang-format off
#define TESSERA_MUL_MAT_T(t) {spirv::mul_mat_tile_##t, &spirv::mul_mat_tile_##t##_size, 3},
    TESSERA_WEIGHT_TYPES(TESSERA_MUL_MAT_T)
#undef TESSERA_MUL_MAT_T
#define TESSERA_MUL_MAT_TH(t) {spirv::mul_mat_tile_h_##t, &spirv::mul_mat_tile_h_##t##_size, 3},
    TESSERA_WEIGHT_TYPES(TESSERA_MUL_MAT_TH)
#undef TESSERA_MUL_MAT_TH
#define TESSERA_MUL_MAT_THN(t) {spirv::mul_mat_tile_hn_##t, &spirv::mul_mat_tile_hn_##t##_size, 3},
    TESSERA_WEIGHT_TYPES(TESSERA_MUL_MAT_THN)
#undef TESSERA_MUL_MAT_THN
    // clang-format on
};

// ---- pipelines ----

std::filesystem::path VulkanBackend::pipeline_cache_path() const {
    const char* home = std::getenv("HOME");
    if (!home || !*home) return {};
    char name[160];
    std::snprintf(name, sizeof name, "vulkan-%04x-%04x-%08x.bin", props_.vendorID, props_.deviceID,
                  props_.driverVersion);
    return std::filesystem::path(home) / ".cache/tessera" / name;
}

// The pipeline cache, kept on disk so the driver compiles each shader once per device.
void VulkanBackend::load_pipeline_cache() {
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

void VulkanBackend::save_pipeline_cache() const {
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

void VulkanBackend::create_pipelines() {
    const Api& a = api_;
    // Tuning: TESSERA_VULKAN_MMV_ROWS=1|2|4|8, weight rows per workgroup of a decoding
    // product, TESSERA_VULKAN_MMV_WG=8|16|32|64|128|256, its invocations, and
    // TESSERA_VULKAN_MMV_UNROLL=1|2|4|8, the groups of 8 elements an invocation loads at once.
    if (const char* e = std::getenv("TESSERA_VULKAN_MMV_ROWS")) {
        const int r = std::atoi(e);
        if (r == 1 || r == 2 || r == 4 || r == 8) mmv_rows_ = static_cast<uint32_t>(r);
    }
    // The k-quants' groups take more registers to dequantize: one row per workgroup keeps
    // more workgroups resident (H200, tg128 t/s, 8B Q4_K_M: 92 at 1 row, 73 at 2), where
    // the 32-element blocks' two rows share each activation load (8B Q4_0: 134 at 1, 147 at 2).
    auto rows_of = [&](Shader s) {
        const DType t = kWeightTypes[(s - kMulVec) % std::size(kWeightTypes)];
        const bool k_quant =
            t == DType::Q2_K || t == DType::Q3_K || t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K;
        return std::getenv("TESSERA_VULKAN_MMV_ROWS") || !k_quant ? mmv_rows_ : 1u;
    };
    // A workgroup of one subgroup sums without shared memory's tree (H100, tg64 t/s, 8B Q4_0,
    // 2 rows: 260 at 32 invocations, 246 at 64, 221 at 128).
    if (subgroups_ && (subgroup_size_ == 32 || subgroup_size_ == 64)) mmv_width_ = subgroup_size_;
    if (const char* e = std::getenv("TESSERA_VULKAN_MMV_WG")) {
        const int w = std::atoi(e);
        if (w == 8 || w == 16 || w == 32 || w == 64 || w == 128 || w == 256) mmv_width_ = static_cast<uint32_t>(w);
    }
    // TESSERA_VULKAN_MMV_LANE_SUMS=1: a workgroup of one subgroup writes its sums from the
    // lanes, without shared memory and its barrier (off until measured on a GPU).
    if (const char* e = std::getenv("TESSERA_VULKAN_MMV_LANE_SUMS")) mmv_lane_sums_ = std::strcmp(e, "1") == 0;
    if (const char* e = std::getenv("TESSERA_VULKAN_MMV_UNROLL")) {
        const int u = std::atoi(e);
        if (u == 1 || u == 2 || u == 4 || u == 8) mmv_unroll_ = static_cast<uint32_t>(u);
    }
    // Its shared memory (8 R W floats) within the device's, and W within its workgroup size.
    while (mmv_width_ > 32 && (mmv_width_ > props_.limits.maxComputeWorkGroupSize[0] ||
                               mmv_width_ > props_.limits.maxComputeWorkGroupInvocations ||
                               32u * mmv_rows_ * mmv_width_ > props_.limits.maxComputeSharedMemorySize))
        mmv_width_ /= 2;
    while (mmv_rows_ > 1 && 32u * mmv_rows_ * mmv_width_ > props_.limits.maxComputeSharedMemorySize) mmv_rows_ /= 2;
    // flash_attn_tile.comp's shared memory (about 25.4 KiB) is more than the 16 KiB a device
    // may have: the prompts' attention then goes a row per workgroup.
    if (props_.limits.maxComputeSharedMemorySize < kAttnTileShared) attn_tiles_ = false;
    // The cooperative-matrix prompt tile's activation rows (64 or 128: TESSERA_VULKAN_CM_COLS),
    // within the device's workgroup size and shared memory.
    if (const char* e = std::getenv("TESSERA_VULKAN_CM_COLS")) {
        const int c = std::atoi(e);
        if (c == 64 || c == 128) cm_sgn_ = static_cast<uint32_t>(c / 32);
    }
    while (cm_sgn_ > 2 && (2 * cm_sgn_ * subgroup_size_ > props_.limits.maxComputeWorkGroupInvocations ||
                           2 * cm_sgn_ * subgroup_size_ > props_.limits.maxComputeWorkGroupSize[0] ||
                           cm_shared_bytes(cm_sgn_) > props_.limits.maxComputeSharedMemorySize))
        cm_sgn_ /= 2;
    if (cm_shared_bytes(cm_sgn_) > props_.limits.maxComputeSharedMemorySize) coopmat_ = false;
    // Prompt attention on cooperative matrices where the products have them and the shader's
    // shared memory and workgroup of 256 fit (TESSERA_VULKAN_ATTN_CM=0: not on them, so in
    // packed f16 arithmetic where the device has that, else in the f32 shaders).
    const char* attn_cm = std::getenv("TESSERA_VULKAN_ATTN_CM");
    attn_cm_ = coopmat_ && !cpu_paths_ && kShaders[kFlashAttnCm].code &&
               props_.limits.maxComputeSharedMemorySize >= kAttnCmShared &&
               props_.limits.maxComputeWorkGroupInvocations >= 256 && props_.limits.maxComputeWorkGroupSize[0] >= 256 &&
               !(attn_cm && std::strcmp(attn_cm, "0") == 0);
    load_pipeline_cache();
    for (int s = 0; s < kShaderCount; ++s) {
        // Decoding products: a CPU device never dispatches them, a GPU one set of the two; the
        // products on uniform-buffer activations only a CPU device.
        const bool cm = s >= kMulMatCm && s < kMulVecDp;
        const bool dp = s >= kMulVecDp && s < kMulMatU;
        const bool big_tiles = s >= kMulMatT && s < kMulMatTh;
        const bool mul_vec = (s >= kMulVec && s < kMulMatCm) || dp;
        const bool unused = (mul_vec && !dp && (cpu_paths_ || (s >= kMulVecSg) != subgroups_)) ||
                            (cm && (!coopmat_ || cpu_paths_)) ||
                            (dp && (!int_dot_ || cpu_paths_ || !kShaders[s].code)) ||
                            (s >= kMulMatU && s < kMulMatT && !uniform_acts_) || (big_tiles && !big_tiles_) ||
                            (s >= kMulMatTh && !f16_tiles_) || (s == kFlashAttnTile && !attn_tiles_) ||
                            (s == kFlashAttnCm && !attn_cm_) || (s == kFlashAttnH && (!attn_h_ || attn_cm_)) ||
                            ((s == kFlashAttnGqa || s == kFlashAttnGqaAhead) && attn_gqa_ == 0) ||
                            ((s == kFlashAttnAhead || s == kFlashAttnGqaAhead) && (cpu_paths_ || !attn_ahead_));
        if (unused) {
            pipelines_.push_back(Pipeline{});
            continue;
        }
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
        p.uniforms = info.uniforms;
        VkDescriptorSetLayoutBinding b[kMaxBindings] = {};
        for (uint32_t i = 0; i < info.bindings; ++i) {
            b[i].binding = i;
            b[i].descriptorType =
                (info.uniforms >> i) & 1u ? VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
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
        // The decoding products' rows and invocations per workgroup and groups per step
        // (mul_vec.comp's R, W and U).
        const uint32_t values[4] = {mul_vec ? rows_of(static_cast<Shader>(s)) : 0u, mmv_width_, mmv_unroll_,
                                    mmv_lane_sums_ ? 1u : 0u};
        if (mul_vec) mmv_rows_of_[(s - kMulVec) % std::size(kWeightTypes)] = values[0];
        const VkSpecializationMapEntry entries[4] = {{0, 0, 4}, {1, 4, 4}, {2, 8, 4}, {3, 12, 4}};
        const VkSpecializationInfo spec{4, entries, sizeof values, values};
        if (mul_vec) ci.stage.pSpecializationInfo = &spec;
        // mul_mat_cm.comp's workgroup: 2 x SGN subgroups.
        const uint32_t cm_values[2] = {2 * cm_sgn_ * subgroup_size_, cm_sgn_};
        const VkSpecializationMapEntry cm_entries[2] = {{0, 0, 4}, {1, 4, 4}};
        const VkSpecializationInfo cm_spec{2, cm_entries, sizeof cm_values, cm_values};
        if (cm) ci.stage.pSpecializationInfo = &cm_spec;
        // flash_attn.comp's query heads a workgroup (GMAX) and its loads issued ahead (AHEAD).
        const bool gqa = s == kFlashAttnGqa || s == kFlashAttnGqaAhead;
        const bool ahead = s == kFlashAttnAhead || s == kFlashAttnGqaAhead;
        const uint32_t attn_values[2] = {gqa ? kAttnGqaHeads : 1u, ahead ? 1u : 0u};
        const VkSpecializationMapEntry attn_entries[2] = {{0, 0, 4}, {1, 4, 4}};
        const VkSpecializationInfo attn_spec{2, attn_entries, sizeof attn_values, attn_values};
        if (gqa || ahead) ci.stage.pSpecializationInfo = &attn_spec;
        ci.layout = p.layout;
        const VkResult r = a.vkCreateComputePipelines(dev_, pipeline_cache_, 1, &ci, nullptr, &p.pipeline);
        a.vkDestroyShaderModule(dev_, module, nullptr);
        if (r != VK_SUCCESS && (cm || s == kFlashAttnCm)) {
            // A driver that lists cooperative matrices but cannot build a shader on them: the
            // prompts take the f32 shaders instead (tiles for the products, rows or tiles for
            // attention).
            const bool attn = s == kFlashAttnCm;
            std::fprintf(stderr, "tessera: %s: cooperative-matrix %s unavailable (%s); prompts use f32 shaders\n",
                         name_.c_str(), attn ? "attention" : "products", result_name(r));
            a.vkDestroyPipelineLayout(dev_, p.layout, nullptr);
            a.vkDestroyDescriptorSetLayout(dev_, p.set_layout, nullptr);
            (attn ? attn_cm_ : coopmat_) = false;
            pipelines_.push_back(Pipeline{});
            continue;
        }
        check(r, "vkCreateComputePipelines");
        pipelines_.push_back(p);
    }
}

}  // namespace tessera::vulkan
