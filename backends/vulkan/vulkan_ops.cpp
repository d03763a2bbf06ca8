// Recording each op into the Vulkan backend's command buffer: the shader, its bindings, its
// push constants (byte offsets, shapes and strides) and its workgroup counts (bind() and
// dispatch() in vulkan_record.cpp, where order() puts the barriers between nodes).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>

#include "backends/vulkan/vulkan_api.h"
#include "backends/vulkan/vulkan_device.h"
#include "tensor/error.h"
#include "tensor/graph.h"
#include "tensor/tensor.h"

namespace tessera::vulkan {

namespace {

Ten ten(const Tensor& t, uint32_t off) {
    Ten r;
    r.off = off;
    for (int i = 0; i < 4; ++i) {
        r.ne[i] = static_cast<uint32_t>(t.ne[i]);
        r.nb[i] = static_cast<uint32_t>(t.nb[i]);
    }
    return r;
}

float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return n_dims * std::log(n_ctx_orig / (n_rot * 2.0f * 3.14159265358979f)) / (2.0f * std::log(base));
}

// Activation rows above which products take the tiled shaders (mul_mat_cm, mul_mat_tile or
// mul_mat.comp's mode 3).
constexpr uint32_t kTiledFromRows = 8;

// mul_mat_cm.comp's tile rows (its BM; its step along K, BK, is kCmStep in vulkan_device.h,
// its BN 32 cm_sgn_).
constexpr uint32_t kCmRows = 128;

// Decoding attention over more keys than this groups a KV head's query heads in a workgroup
// where its loads are not issued ahead (a Q8_0 cache, say; H100, 8B Q4_0 tg128 at a depth of
// 4096: 211 t/s grouped, 203 a head a workgroup); over fewer, the heads' workgroups keep the
// GPU busier.
constexpr int64_t kGqaDecodeKeys = 2048;

// Flash attention: the keys a workgroup takes a step (the workgroups a split aims at are
// split_target_).
constexpr uint64_t kStepKeys = 256;  // flash_attn.comp's keys a step
constexpr uint64_t kTileKeys = 64;   // flash_attn_tile.comp's

struct MulMatPush {
    uint32_t a_off, a_nb[3];
    uint32_t split;  // a weight kept as split rows (dequant.glsl's split_nb): its row's blocks, else 0
    uint32_t b_off, b_nb[3];
    uint32_t y_off, y_nb[3];
    uint32_t K, N, M, B2, r2, r3, mode, i_base, B3;
    uint32_t ds_off;  // kMulVecDp: where the activations' block scales start in b
};

}  // namespace

void VulkanBackend::record(const Tensor& node) {
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
            // A gated activation whose output an int8 product takes: computed, written and
            // quantized in one dispatch.
            if ((node.op == Op::Swiglu || node.op == Op::Geglu) && int8_source(node) && a->type == DType::F32 &&
                b->type == DType::F32 && a->nb[0] == sizeof(float) && b->nb[0] == sizeof(float) &&
                a->ne[2] * a->ne[3] == 1 && b->ne[2] * b->ne[3] == 1) {
                dispatch_quant(*a, reserve_acts(node), b, &node, node.op == Op::Swiglu ? 1 : 2);
                break;
            }
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
        case Op::Argmax:
            record_rows(node, nullptr);
            break;
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
            pc.split = split_blocks(*a);
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

bool VulkanBackend::tiled_product(const Tensor& node) const {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    const VkPhysicalDeviceLimits& lim = props_.limits;
    return b.ne[1] > kTiledFromRows && a.ne[0] % 32 == 0 &&
           static_cast<uint64_t>((a.ne[1] + 63) / 64) <= lim.maxComputeWorkGroupCount[0] &&
           static_cast<uint64_t>((b.ne[1] + 31) / 32) <= lim.maxComputeWorkGroupCount[1] &&
           static_cast<uint64_t>(b.ne[2] * b.ne[3]) <= lim.maxComputeWorkGroupCount[2];
}

// Decoding on int8 activations where the device has integer dot products and the type a
// variant (one batch: the activations are quantized as one [K, M] matrix).
bool VulkanBackend::int8_product(const Tensor& node) const {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    return !tiled_product(node) && !cpu_paths_ && int_dot_ && weight_type(a.type) &&
           kShaders[mul_mat_shader(a.type, kMulVecDp)].code && b.ne[2] == 1 && b.ne[3] == 1 && a.ne[2] == 1 &&
           a.ne[3] == 1 && a.ne[0] % 32 == 0 && b.type == DType::F32 && b.nb[0] == sizeof(float);
}

// An F32 matrix of rows of 32-element blocks that an int8 product of this recording takes.
bool VulkanBackend::int8_source(const Tensor& node) const {
    return node.type == DType::F32 && node.ne[0] % 32 == 0 && node.ne[2] * node.ne[3] == 1 &&
           node.nb[0] == sizeof(float) && node.nb[1] == node.ne[0] * sizeof(float) &&
           std::find(acts_wanted_.begin(), acts_wanted_.end(), &node) != acts_wanted_.end();
}

// Row-wise ops (rows.comp). An RMS norm whose output an int8 product takes writes the int8
// copy too; with `add` (the Add node whose result the norm takes, see fusable_add), the
// dispatch computes that sum, writes it and normalizes it.
void VulkanBackend::record_rows(const Tensor& node, const Tensor* add) {
    const Tensor* a = node.src[0];
    const Tensor* b = node.src[1];
    uint32_t off[kMaxBindings] = {};
    const bool int8 = node.op == Op::RmsNorm && int8_source(node) && a->nb[0] == sizeof(float);
    Bound bs[6] = {bound(&node), bound(a), bound(b), bound(nullptr), bound(nullptr), bound(nullptr)};
    if (int8) {
        const QuantActs q = reserve_acts(node);
        bs[3] = Bound{q.buf, q.at, q.bytes};
    }
    if (add) {
        bs[4] = bound(add->src[0]);
        bs[5] = bound(add->src[1]);
    }
    bind(kRows, bs, off);
    struct {
        Ten o, x;
        uint32_t b_off, b_nb1;
        uint32_t x_off, x_nb1, y_off, y_nb1;
        uint32_t op;
        float param;
        uint32_t flags, q_off;
    } pc{};
    static_assert(sizeof pc <= kPushBytes, "push constants");
    pc.q_off = off[3];
    pc.o = ten(node, off[0]);
    pc.x = ten(*a, off[1]);
    if (b) {
        pc.b_off = off[2];
        pc.b_nb1 = static_cast<uint32_t>(b->nb[1]);
    }
    if (add) {
        pc.x_off = off[4];
        pc.x_nb1 = static_cast<uint32_t>(add->src[0]->nb[1]);
        pc.y_off = off[5];
        pc.y_nb1 = static_cast<uint32_t>(add->src[1]->nb[1]);
    }
    pc.op = node.op == Op::RmsNorm ? 0 : node.op == Op::Norm ? 1 : node.op == Op::SoftMax ? 2 : 3;
    pc.param = node.op == Op::Argmax ? 0.0f : node.param_f(0);
    pc.flags = (b ? 1u | (b->type == DType::F16 ? 2u : 0u) : 0u) | (int8 ? 4u : 0u) | (add ? 8u : 0u) |
               (int8 && norm_wide_ ? 16u : 0u);
    dispatch(kRows, &pc, sizeof pc, static_cast<uint64_t>(a->n_rows()));
}

// Whether an Add and the RMS norm after it can run as one dispatch (record_rows): the norm
// takes the sum, both operands are F32 matrices of the sum's shape with contiguous rows, and
// the norm's output overlaps neither operand unless one workgroup does all (the norm's rows
// are written while other workgroups may still read the operands' rows).
bool VulkanBackend::fusable_add(const Tensor& add, const Tensor& norm) const {
    if (!fuse_ || add.op != Op::Add || norm.op != Op::RmsNorm || norm.src[0] != &add) return false;
    const int64_t rows = add.ne[1];
    auto plain = [&](const Tensor* t) {
        return t && t->data && t->type == DType::F32 && t->nb[0] == sizeof(float) && t->ne[0] == add.ne[0] &&
               t->ne[1] == rows && t->ne[2] * t->ne[3] == 1;
    };
    if (!plain(&add) || !plain(add.src[0]) || !plain(add.src[1]) || !norm.data) return false;
    if (rows == 1) return true;
    const Bound o = bound(&norm);
    for (const Tensor* s : {add.src[0], add.src[1]}) {
        const Bound x = bound(s);
        if (x.buf == o.buf && x.at < o.at + o.bytes && o.at < x.at + x.bytes) return false;
    }
    return true;
}

// Whether a product can read its activations from a uniform buffer (kMulMatU): all of them
// (every batch) within 64 KiB, bound at a 16-byte boundary, rows and batches 16 bytes apart
// and K a multiple of 4 (the shader's 16-byte loads), the workgroup counts within the limits.
bool VulkanBackend::uniform_product(const Tensor& node) const {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    const VkPhysicalDeviceLimits& lim = props_.limits;
    if (b.type != DType::F32 || a.ne[0] % 4 != 0 || extent(b) > 65536) return false;
    if (b.nb[1] % 16 != 0 || b.nb[2] % 16 != 0 || b.nb[3] % 16 != 0) return false;
    const uint64_t align = std::max<uint64_t>(lim.minUniformBufferOffsetAlignment, 4);
    const uint64_t at = bound(&b).at;
    if ((at - at / align * align) % 16 != 0) return false;
    return static_cast<uint64_t>((a.ne[1] + 63) / 64) <= lim.maxComputeWorkGroupCount[0] &&
           static_cast<uint64_t>((b.ne[1] + 7) / 8) <= lim.maxComputeWorkGroupCount[1] &&
           static_cast<uint64_t>(b.ne[2] * b.ne[3]) <= lim.maxComputeWorkGroupCount[2];
}

void VulkanBackend::record_mul_mat(const Tensor& node) {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    const uint64_t batches = static_cast<uint64_t>(b.ne[2] * b.ne[3]);
    const VkPhysicalDeviceLimits& lim = props_.limits;
    const bool tiled = tiled_product(node);
    const uint64_t cm_cols = 32 * cm_sgn_;  // mul_mat_cm.comp's BN
    // Prompts on cooperative matrices where the device has them (f16 weights and activations:
    // not for F32 weights, whose products stay f32, nor BF16 ones, whose range f16 lacks).
    const bool cm = tiled && coopmat_ && !cpu_paths_ && a.type != DType::F32 && a.type != DType::BF16 &&
                    a.ne[0] % kCmStep == 0 &&
                    static_cast<uint64_t>((a.ne[1] + kCmRows - 1) / kCmRows) <= lim.maxComputeWorkGroupCount[0] &&
                    (static_cast<uint64_t>(b.ne[1]) + cm_cols - 1) / cm_cols <= lim.maxComputeWorkGroupCount[1];
    const bool big = tiled && !cm && big_tiles_;  // mul_mat_tile.comp's 128 x 128 tiles
    const bool f16_tiles = big && f16_tiles_ && a.type != DType::F32 && a.type != DType::BF16;
    // Products of few 128 x 128 tiles (fewer than the device runs at once) in 128 x 64 ones.
    const bool narrow =
        f16_tiles && static_cast<uint64_t>((a.ne[1] + 127) / 128) * ((b.ne[1] + 127) / 128) * batches < narrow_below_;
    const bool dp = int8_product(node);
    const bool uniform = !tiled && uniform_acts_ && uniform_product(node);
    // Prompts and a CPU device's products in mul_mat, a GPU's decoding products in mul_vec.
    const Shader sh = mul_mat_shader(a.type, cm                    ? kMulMatCm
                                             : f16_tiles && narrow ? kMulMatThn
                                             : f16_tiles           ? kMulMatTh
                                             : big                 ? kMulMatT
                                             : dp                  ? kMulVecDp
                                             : uniform             ? kMulMatU
                                             : tiled || cpu_paths_ ? kMulMat
                                             : subgroups_          ? kMulVecSg
                                                                   : kMulVec);
    uint32_t off[kMaxBindings] = {};
    MulMatPush pc{};
    if (dp) {
        // The int8 copy (made here, then a barrier after which this node's own accesses are
        // pending again; or made before, by a product of the same source or beside it by the
        // norm that wrote it, whose barrier this node's read of it has had).
        QuantActs q;
        if (quantize_acts(b, &q))
            for (const Tensor* t : {&node, &b}) {
                const Bound tb = bound(t);
                pending_.push_back(Span{tb.buf->handle(), tb.at, tb.at + tb.bytes, t == &node});
            }
        const Bound bs[3] = {bound(&node), bound(&a), {q.buf, q.at, q.bytes}};
        bind(sh, bs, off);
        pc.b_nb[0] = static_cast<uint32_t>(q.row_bytes);
        pc.ds_off = static_cast<uint32_t>(off[2] + (q.ds_at - q.at));
    } else {
        bind(sh, {&node, &a, &b}, off);
        for (int i = 0; i < 3; ++i) pc.b_nb[i] = static_cast<uint32_t>(b.nb[i + 1]);
    }
    pc.a_off = off[1];
    pc.split = split_blocks(a);
    pc.b_off = off[2];
    pc.y_off = off[0];
    for (int i = 0; i < 3; ++i) {
        pc.a_nb[i] = static_cast<uint32_t>(a.nb[i + 1]);
        pc.y_nb[i] = static_cast<uint32_t>(node.nb[i + 1]);
    }
    pc.K = static_cast<uint32_t>(a.ne[0]);
    pc.N = static_cast<uint32_t>(a.ne[1]);
    pc.M = static_cast<uint32_t>(b.ne[1]);
    pc.B2 = static_cast<uint32_t>(b.ne[2]);
    pc.r2 = static_cast<uint32_t>(b.ne[2] / a.ne[2]);
    pc.r3 = static_cast<uint32_t>(b.ne[3] / a.ne[3]);
    pc.B3 = static_cast<uint32_t>(b.ne[3]);
    const uint64_t groups_y = ((pc.M + 7) / 8) * batches;
    if (cm) {  // tiles of kCmRows weight rows x cm_cols activation rows
        dispatch(sh, &pc, sizeof pc, (pc.N + kCmRows - 1) / kCmRows,
                 static_cast<uint32_t>((pc.M + cm_cols - 1) / cm_cols), static_cast<uint32_t>(batches));
        return;
    }
    if (big) {
        const uint32_t bn = narrow ? 64 : 128;
        dispatch(sh, &pc, sizeof pc, (pc.N + 127) / 128, static_cast<uint32_t>((pc.M + bn - 1) / bn),
                 static_cast<uint32_t>(batches));
        return;
    }
    if (tiled) {
        pc.mode = 3;  // prompts: tiles of 64 weight rows x 32 activation rows
        dispatch(sh, &pc, sizeof pc, (pc.N + 63) / 64, (pc.M + 31) / 32, static_cast<uint32_t>(batches));
        return;
    }
    if (uniform) {  // 64 weight rows x 8 activation rows of a batch a workgroup
        dispatch(sh, &pc, sizeof pc, (pc.N + 63) / 64, (pc.M + 7) / 8, static_cast<uint32_t>(batches));
        return;
    }
    if (cpu_paths_) {  // a CPU device: an invocation per output row group, no barriers
        pc.mode = 2;
        dispatch(sh, &pc, sizeof pc, (static_cast<uint64_t>(pc.N) * groups_y + 63) / 64);
        return;
    }
    // A GPU: the type's weight rows per workgroup (mul_vec.comp's R); rows beyond the device's
    // largest x count go in further dispatches.
    const uint32_t max_x = std::min<uint32_t>(lim.maxComputeWorkGroupCount[0], 1u << 30);
    const uint32_t per_group = mmv_rows_of_[(sh - kMulVec) % std::size(kWeightTypes)];
    const uint32_t groups = (pc.N + per_group - 1) / per_group;
    for (uint32_t base = 0; base < groups; base += max_x) {
        pc.i_base = base;
        dispatch(sh, &pc, sizeof pc, std::min(max_x, groups - base), static_cast<uint32_t>(groups_y));
    }
}

void VulkanBackend::record_rope(const Tensor& node) {
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

void VulkanBackend::record_flash_attn(const Tensor& node) {
    const Tensor& q = *node.src[0];
    const Tensor& k = *node.src[1];
    const Tensor& v = *node.src[2];
    const Tensor* mask = node.src[3];
    uint32_t off[kMaxBindings] = {};
    struct {
        uint32_t q_off, q_nb1, q_nb2, q_nb3;
        uint32_t k_off, k_nb1, k_nb2, k_nb3;
        uint32_t v_off, v_nb1, v_nb2, v_nb3;
        uint32_t o_off, o_nb1, o_nb2;
        uint32_t m_off, m_nb1;
        uint32_t D, Dv, n_q, H, H_kv, n_kv, S;
        uint32_t flags;
        float scale, softcap;
        uint32_t mode, split;
        uint32_t qa_off, qd_off;
        uint32_t out_off;
    } pc{};
    static_assert(sizeof pc <= kPushBytes, "push constants");
    const uint64_t rows = static_cast<uint64_t>(q.ne[1]) * q.ne[2] * q.ne[3];
    const uint64_t n_kv = static_cast<uint64_t>(k.ne[1]);
    // Prompts: a workgroup per block of rows that share a KV head (flash_attn_tile.comp's BR:
    // 32, 16 for heads over 128), where there are enough of them; decoding: one per row.
    const uint64_t block = q.ne[0] > 128 || v.ne[0] > 128 ? 16 : 32;
    const uint64_t head_rows = static_cast<uint64_t>(q.ne[1]) * (q.ne[2] / k.ne[2]);
    // In f16 blocks of 32 rows (heads of up to 128 in multiples of 16): on cooperative
    // matrices where the device has them (flash_attn_cm.comp), else in packed f16 arithmetic
    // (flash_attn_h.comp), for an F16 or Q8_0 cache: an F32 one is kept exact.
    auto half_kv = [](DType t) { return t == DType::F16 || t == DType::Q8_0; };
    const bool f16 = (attn_cm_ || attn_h_) && head_rows >= 16 && q.ne[0] % 16 == 0 && v.ne[0] % 16 == 0 &&
                     q.ne[0] <= 128 && v.ne[0] <= 128 && half_kv(k.type) && half_kv(v.type);
    const bool tiles = f16 || (attn_tiles_ && head_rows * 2 >= block);
    const uint64_t group_heads = static_cast<uint64_t>(q.ne[2] / k.ne[2]);
    // Rows of F16 keys and values: a step's loads issued at once (flash_attn.comp's AHEAD),
    // where heads are at most 128 wide, key rows 16-byte aligned and value rows 8 (their
    // offsets in the bindings too). Decoding then takes a head a workgroup at any depth
    // (H100, 8B Q4_0, tg64 at a depth of 4096: 239 t/s, against 218 grouped by KV heads
    // without loads ahead and 211 ungrouped without; at 1024: 273 against 250).
    const uint64_t align = std::max<uint64_t>(props_.limits.minStorageBufferOffsetAlignment, 4);
    auto aligned = [&](const Tensor& t, uint64_t a) {
        return ((bound(&t).at % align) | t.nb[1] | t.nb[2] | t.nb[3]) % a == 0;
    };
    const bool ahead = attn_ahead_ && !cpu_paths_ && !tiles && k.type == DType::F16 && v.type == DType::F16 &&
                       q.ne[0] % 8 == 0 && q.ne[0] <= 128 && v.ne[0] <= 128 && aligned(k, 16) && aligned(v, 8);
    // Prompts by rows: a workgroup per query row and up to kAttnGqaHeads heads of a KV head,
    // which read each key and value row once for them all.
    const bool gqa = !tiles && group_heads > 1 &&
                     ((attn_gqa_ >= 1 && q.ne[1] > 1) || (attn_gqa_ >= 2 && k.ne[1] > kGqaDecodeKeys && !ahead));
    const Shader shader = f16     ? (attn_cm_ ? kFlashAttnCm : kFlashAttnH)
                          : tiles ? kFlashAttnTile
                          : gqa   ? (ahead ? kFlashAttnGqaAhead : kFlashAttnGqa)
                          : ahead ? kFlashAttnAhead
                                  : kFlashAttn;
    const uint64_t groups = tiles ? (head_rows + block - 1) / block * k.ne[2] * q.ne[3]
                            : gqa ? (group_heads + kAttnGqaHeads - 1) / kAttnGqaHeads * k.ne[2] * q.ne[1] * q.ne[3]
                                  : rows;
    const uint64_t step = tiles ? kTileKeys : kStepKeys;
    // Few workgroups over many keys: the keys split into ranges of whole steps, enough of
    // them for about split_target_ workgroups (twice that for prompts in f16 blocks), and
    // their last workgroups (or a second pass) merge them. H100, 8B Q4_0 pp512 at a depth of
    // 4096 (512 blocks unsplit): on cooperative matrices 4715 t/s aiming at 1024 against
    // 4519 / 4405 at 512; in packed f16 1807 against 1785 / 1784 (1817 at 2048).
    const uint64_t target = f16 ? 2 * split_target_ : split_target_;
    uint64_t ranges = 1;
    if (!cpu_paths_ && n_kv > step && groups < target) {
        const uint64_t steps = (n_kv + step - 1) / step;
        ranges = std::min<uint64_t>(steps, (target + groups - 1) / groups);
        pc.split = static_cast<uint32_t>((steps + ranges - 1) / ranges * step);
        ranges = (n_kv + pc.split - 1) / pc.split;
    }
    const uint64_t part_bytes = rows * ranges * (static_cast<uint64_t>(v.ne[0]) + 2) * sizeof(float);
    // Split rows merged by their last range's workgroup (flash_attn.comp's flags bit 19), in
    // the dispatch that computes them, not by a second one after a barrier: a counter a row
    // in the scratch's first kAttnCounterBytes, zero between dispatches.
    // The counters keep their place when two passes merge (the parts go after them then too).
    const bool one_pass = ranges > 1 && !tiles && attn_merge_ && rows * sizeof(uint32_t) <= kAttnCounterBytes;
    const uint64_t counter_bytes = kAttnCounterBytes;
    DeviceBuffer* parts = ranges > 1 ? scratch(counter_bytes + part_bytes) : nullptr;
    // Decoding: where an int8 product takes the output (as rows of H * Dv), the workgroups
    // that write it write the int8 copy too (flash_attn.comp's quantize_out).
    const Tensor* int8_view = nullptr;
    if (fuse_ && !tiles && v.ne[0] % 32 == 0 && q.ne[3] == 1 && node.type == DType::F32 &&
        node.nb[0] == sizeof(float) && node.nb[1] == static_cast<size_t>(v.ne[0]) * sizeof(float) &&
        node.nb[2] == static_cast<size_t>(v.ne[0] * q.ne[2]) * sizeof(float))
        for (const Tensor* t : acts_wanted_)
            if ((t == &node || (t->view_src == &node && t->view_offset == 0)) && t->ne[0] == v.ne[0] * q.ne[2] &&
                t->ne[1] == q.ne[1] && int8_source(*t)) {
                int8_view = t;
                break;
            }
    Bound qa = bound(nullptr);
    if (int8_view) {
        const QuantActs made = reserve_acts(*int8_view);
        qa = Bound{made.buf, made.at, made.bytes};
        pc.flags = 1u << 18;
        pc.qd_off = static_cast<uint32_t>(made.ds_at - made.at);
    }
    if (parts) {
        // The partial results go to the scratch buffer, bound where the output would be;
        // after a barrier the merge reads them, bound where the query would be.
        for (const Span& p : pending_)
            if (p.buf == parts->handle()) {
                barrier();
                break;
            }
        const Bound b[7] = {{parts, 0, counter_bytes + part_bytes},
                            bound(&q),
                            bound(&k),
                            bound(&v),
                            bound(mask),
                            one_pass ? qa : bound(nullptr),
                            one_pass ? bound(&node) : bound(nullptr)};
        bind(shader, std::span<const Bound>(b, tiles ? 5 : 7), off);
        off[0] += static_cast<uint32_t>(counter_bytes);
        if (one_pass) {
            pc.flags |= 1u << 19;
            pc.qa_off = off[5];
            pc.qd_off += off[5];
            pc.out_off = off[6];
        }
    } else if (tiles) {
        bind(shader, {&node, &q, &k, &v, mask}, off);
    } else {
        const Bound b[7] = {bound(&node), bound(&q), bound(&k), bound(&v), bound(mask), qa, bound(nullptr)};
        bind(shader, b, off);
        pc.qa_off = off[5];
        pc.qd_off += off[5];
    }
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
    pc.flags |= static_cast<uint32_t>(k.type) | static_cast<uint32_t>(v.type) << 8 | (mask ? 1u << 16 : 0u) |
                (mask && mask->type == DType::F16 ? 1u << 17 : 0u);
    pc.scale = node.param_f(0);
    pc.softcap = node.param_f(1);
    if (!parts) {
        dispatch(shader, &pc, sizeof pc, groups);
        return;
    }
    pc.mode = 1;
    dispatch(shader, &pc, sizeof pc, groups * ranges);  // a workgroup per (rows, range)
    const Bound out = bound(&node);
    if (one_pass) {  // what follows waits for the output and for the scratch's counters
        pending_.push_back(Span{out.buf->handle(), out.at, out.at + out.bytes, true});
        pending_.push_back(Span{parts->handle(), 0, counter_bytes + part_bytes, true});
        return;
    }
    barrier();
    const Bound m[7] = {
        out, {parts, counter_bytes, part_bytes}, bound(nullptr), bound(nullptr), bound(nullptr), qa, bound(nullptr)};
    bind(kFlashAttn, m, off);
    pc.o_off = off[0];
    pc.q_off = off[1];
    pc.qa_off = off[5];
    pc.qd_off += off[5];
    pc.mode = 2;
    dispatch(kFlashAttn, &pc, sizeof pc, rows);
    // What follows waits for the merge's write of the output and for its reads of the parts.
    pending_.push_back(Span{out.buf->handle(), out.at, out.at + out.bytes, true});
    pending_.push_back(Span{parts->handle(), counter_bytes, counter_bytes + part_bytes, false});
}

}  // namespace tessera::vulkan
