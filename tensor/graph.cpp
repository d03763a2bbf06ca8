// Graph builders: shape inference and checks for every op, and the zero-cost views.
#include "tensor/graph.h"

#include <algorithm>
#include <array>

#include "tensor/error.h"

namespace tessera {

// ---------------------------------------------------------------------------------------
// Tensor basics

const char* op_name(Op op) {
    switch (op) {
    case Op::None: return "leaf";
    case Op::View: return "view";
    case Op::Cont: return "cont";
    case Op::GetRows: return "get_rows";
    case Op::Add: return "add";
    case Op::Mul: return "mul";
    case Op::Scale: return "scale";
    case Op::RmsNorm: return "rms_norm";
    case Op::Norm: return "norm";
    case Op::MulMat: return "mul_mat";
    case Op::Rope: return "rope";
    case Op::SoftMax: return "soft_max";
    case Op::FlashAttn: return "flash_attn";
    case Op::Silu: return "silu";
    case Op::Gelu: return "gelu";
    case Op::GeluErf: return "gelu_erf";
    case Op::Tanh: return "tanh";
    case Op::Swiglu: return "swiglu";
    case Op::Geglu: return "geglu";
    case Op::Cpy: return "cpy";
    case Op::SetRows: return "set_rows";
    case Op::Concat: return "concat";
    case Op::Argmax: return "argmax";
    case Op::Count: break;
    }
    return "?";
}

bool op_is_f32_only(Op op) {
    switch (op) {
    case Op::Add:
    case Op::Mul:
    case Op::Scale:
    case Op::Silu:
    case Op::Gelu:
    case Op::GeluErf:
    case Op::Tanh:
    case Op::Swiglu:
    case Op::Geglu:
    case Op::RmsNorm:
    case Op::Norm:
    case Op::SoftMax:
    case Op::Rope:
    case Op::Concat:
    case Op::Argmax: return true;
    default: return false;
    }
}

void launch_signature(std::span<Tensor* const> nodes, std::vector<uint64_t>& key) {
    key.clear();
    auto add = [&](const Tensor* t) {
        key.push_back(reinterpret_cast<uint64_t>(t ? t->data : nullptr));
        if (!t) return;
        key.push_back(static_cast<uint64_t>(t->type) | static_cast<uint64_t>(t->op) << 32);
        for (int i = 0; i < kMaxDims; ++i) key.push_back(static_cast<uint64_t>(t->ne[i]) ^ (t->nb[i] << 32));
    };
    for (const Tensor* n : nodes) {
        add(n);
        for (int i = 0; i < kMaxOpParams; i += 2)
            key.push_back(static_cast<uint32_t>(n->params[i]) |
                          static_cast<uint64_t>(static_cast<uint32_t>(n->params[i + 1])) << 32);
        for (const Tensor* src : n->src) add(src);
    }
}

size_t Tensor::n_bytes() const {
    const TypeTraits& tr = type_traits(type);
    if (n_elements() == 0) return 0;
    size_t bytes = static_cast<size_t>(ne[0] / tr.block_size) * tr.type_size;
    for (int i = 1; i < kMaxDims; ++i) bytes += static_cast<size_t>(ne[i] - 1) * nb[i];
    return bytes;
}

bool Tensor::is_contiguous() const {
    size_t expect[kMaxDims];
    contiguous_strides(type, ne, expect);
    for (int i = 0; i < kMaxDims; ++i)
        if (ne[i] > 1 && nb[i] != expect[i]) return false;
    return true;
}

void Tensor::set_name(const char* n) {
    if (!n) return;
    std::strncpy(name, n, sizeof name - 1);
    name[sizeof name - 1] = '\0';
}

void contiguous_strides(DType type, const int64_t ne[kMaxDims], size_t nb[kMaxDims]) {
    const TypeTraits& tr = type_traits(type);
    nb[0] = tr.type_size;
    nb[1] = static_cast<size_t>(ne[0] / tr.block_size) * tr.type_size;
    nb[2] = nb[1] * static_cast<size_t>(ne[1]);
    nb[3] = nb[2] * static_cast<size_t>(ne[2]);
}

DeviceLayoutUse device_layout_use(const Tensor& node) {
    DeviceLayoutUse use = DeviceLayoutUse::kNone;
    for (int i = 0; i < kMaxSrc; ++i) {
        const Tensor* src = node.src[i];
        if (!src || !(src->root()->flags & kFlagDeviceLayout)) continue;
        const Tensor* root = src->root();
        const bool whole_rows =
            src->ne[0] == root->ne[0] && src->nb[1] == root->nb[1] && src->view_offset % src->nb[1] == 0;
        if (i != 0 || !whole_rows) return DeviceLayoutUse::kOther;
        use = DeviceLayoutUse::kRows;
    }
    return use;
}

std::string shape_string(const Tensor* t) {
    int n = kMaxDims;
    while (n > 1 && t->ne[n - 1] == 1) --n;
    std::string s = "[";
    for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(t->ne[i]);
    return s + "]";
}

// ---------------------------------------------------------------------------------------
// Checks

namespace {

[[noreturn]] void shape_error(const char* op, const std::string& detail) {
    throw Error(std::string(op) + ": " + detail);
}

std::string describe(const char* label, const Tensor* t) {
    return std::string(label) + " " + shape_string(t) + " " + std::string(type_name(t->type));
}

void require(bool ok, const char* op, const std::string& shapes, const char* what) {
    if (!ok) shape_error(op, shapes + ": " + what);
}

void require_not_null(const Tensor* t, const char* op, const char* label) {
    if (!t) shape_error(op, std::string(label) + " is null");
}

bool same_shape(const Tensor* a, const Tensor* b) {
    for (int i = 0; i < kMaxDims; ++i)
        if (a->ne[i] != b->ne[i]) return false;
    return true;
}

bool can_broadcast(const Tensor* b, const Tensor* a) {  // b repeats to a
    for (int i = 0; i < kMaxDims; ++i)
        if (b->ne[i] == 0 || a->ne[i] % b->ne[i] != 0) return false;
    return true;
}

std::array<int64_t, kMaxDims> shape_of(const Tensor* t) { return {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}; }

}  // namespace

// ---------------------------------------------------------------------------------------
// Construction

Tensor* Graph::make(DType type, std::span<const int64_t> ne) {
    if (ne.empty() || ne.size() > static_cast<size_t>(kMaxDims))
        throw Error("new_tensor: " + std::to_string(ne.size()) + " dimensions (expected 1 to 4)");
    const TypeTraits& tr = type_traits(type);
    if (!tr.known) throw Error("new_tensor: unknown type id " + std::to_string(static_cast<uint32_t>(type)));
    Tensor& t = tensors_.emplace_back();
    t.type = type;
    for (size_t i = 0; i < ne.size(); ++i) {
        if (ne[i] < 0) throw Error("new_tensor: negative dimension " + std::to_string(ne[i]));
        t.ne[i] = ne[i];
    }
    if (t.ne[0] % tr.block_size != 0)
        throw Error("new_tensor: row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                    std::string(tr.name) + " block size " + std::to_string(tr.block_size));
    contiguous_strides(type, t.ne, t.nb);
    return &t;
}

Tensor* Graph::new_tensor(DType type, std::span<const int64_t> ne, const char* name) {
    Tensor* t = make(type, ne);
    t->set_name(name);
    return t;
}

Tensor* Graph::input(DType type, std::initializer_list<int64_t> ne, const char* name) {
    Tensor* t = new_tensor(type, ne, name);
    t->flags |= kFlagInput;
    return t;
}

void Graph::mark_output(Tensor* t) { t->flags |= kFlagOutput; }

Tensor* Graph::make_op(Op op, DType type, std::span<const int64_t> ne, std::initializer_list<Tensor*> srcs) {
    Tensor* t = make(type, ne);
    t->op = op;
    int i = 0;
    for (Tensor* s : srcs) t->src[i++] = s;
    return t;
}

Tensor* Graph::make_view(Tensor* a, std::span<const int64_t> ne, std::span<const size_t> nb, size_t offset) {
    Tensor& t = tensors_.emplace_back();
    t.type = a->type;
    for (size_t i = 0; i < ne.size(); ++i) t.ne[i] = ne[i];
    for (size_t i = 0; i < nb.size(); ++i) t.nb[i] = nb[i];
    t.op = Op::View;
    t.src[0] = a;
    t.view_src = a->root();
    t.view_offset = (a->view_src ? a->view_offset : 0) + offset;
    t.buffer = t.view_src->buffer;
    if (t.view_src->data) t.data = static_cast<char*>(t.view_src->data) + t.view_offset;
    // A view of an input or output keeps its source's memory alive (see alloc).
    return &t;
}

// ---------------------------------------------------------------------------------------
// Views

Tensor* Graph::view(Tensor* a, std::span<const int64_t> ne, std::span<const size_t> nb, size_t offset) {
    require_not_null(a, "view", "a");
    if (ne.empty() || ne.size() > static_cast<size_t>(kMaxDims) || nb.size() != ne.size())
        shape_error("view", "expected 1 to 4 dimensions with one stride each");
    Tensor probe;
    probe.type = a->type;
    for (size_t i = 0; i < ne.size(); ++i) probe.ne[i] = ne[i];
    contiguous_strides(a->type, probe.ne, probe.nb);
    for (size_t i = 0; i < nb.size(); ++i) probe.nb[i] = nb[i];
    const TypeTraits& tr = type_traits(a->type);
    if (probe.ne[0] % tr.block_size != 0) shape_error("view", "row length is not a multiple of the block size");
    size_t root_bytes = a->root()->n_bytes();
    size_t start = (a->view_src ? a->view_offset : 0) + offset;
    if (start + probe.n_bytes() > root_bytes)
        shape_error("view", describe("a", a) + ": a view of " + std::to_string(probe.n_bytes()) + " bytes at offset " +
                                std::to_string(offset) + " lies outside the source's " + std::to_string(root_bytes) +
                                " bytes");
    return make_view(a, std::span<const int64_t>(probe.ne, kMaxDims), std::span<const size_t>(probe.nb, kMaxDims),
                     offset);
}

Tensor* Graph::reshape(Tensor* a, std::initializer_list<int64_t> ne) {
    require_not_null(a, "reshape", "a");
    if (ne.size() == 0 || ne.size() > static_cast<size_t>(kMaxDims))
        shape_error("reshape", "expected 1 to 4 dimensions");
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    if (n != a->n_elements())
        shape_error("reshape", describe("a", a) + ": cannot reshape " + std::to_string(a->n_elements()) +
                                   " elements into " + std::to_string(n));
    if (!a->is_contiguous()) shape_error("reshape", describe("a", a) + ": not contiguous (use cont first)");
    int64_t full[kMaxDims] = {1, 1, 1, 1};
    std::copy(ne.begin(), ne.end(), full);
    if (full[0] % type_traits(a->type).block_size != 0)
        shape_error("reshape", "row length is not a multiple of the block size");
    size_t nb[kMaxDims];
    contiguous_strides(a->type, full, nb);
    return make_view(a, full, nb, 0);
}

Tensor* Graph::permute(Tensor* a, int ax0, int ax1, int ax2, int ax3) {
    require_not_null(a, "permute", "a");
    const int axes[kMaxDims] = {ax0, ax1, ax2, ax3};
    bool seen[kMaxDims] = {};
    for (int ax : axes) {
        if (ax < 0 || ax >= kMaxDims || seen[ax]) shape_error("permute", "axes must be a permutation of 0..3");
        seen[ax] = true;
    }
    if (type_traits(a->type).block_size != 1 && axes[0] != 0)
        shape_error("permute", describe("a", a) + ": a quantized tensor's rows cannot move from dimension 0");
    int64_t ne[kMaxDims];
    size_t nb[kMaxDims];
    for (int i = 0; i < kMaxDims; ++i) {
        ne[axes[i]] = a->ne[i];
        nb[axes[i]] = a->nb[i];
    }
    return make_view(a, ne, nb, 0);
}

Tensor* Graph::cont(Tensor* a) {
    require_not_null(a, "cont", "a");
    if (type_traits(a->type).block_size != 1 && !a->rows_contiguous())
        shape_error("cont", describe("a", a) + ": quantized rows must be contiguous");
    auto ne = shape_of(a);
    return make_op(Op::Cont, a->type, ne, {a});
}

// ---------------------------------------------------------------------------------------
// Ops

Tensor* Graph::get_rows(Tensor* a, Tensor* ids) {
    require_not_null(a, "get_rows", "a");
    require_not_null(ids, "get_rows", "ids");
    std::string shapes = describe("a", a) + " and ids " + shape_string(ids);
    require(ids->type == DType::I32, "get_rows", shapes, "ids must be I32");
    require(a->ne[2] == 1 && a->ne[3] == 1, "get_rows", shapes, "a must be 2-D");
    require(ids->ne[1] == 1 && ids->ne[2] == 1 && ids->ne[3] == 1, "get_rows", shapes, "ids must be 1-D");
    require(a->rows_contiguous(), "get_rows", shapes, "a's rows must be contiguous");
    require(type_traits(a->type).has_reference, "get_rows", shapes, "a's type cannot be dequantized");
    const int64_t ne[] = {a->ne[0], ids->ne[0]};
    return make_op(Op::GetRows, DType::F32, ne, {a, ids});
}

namespace {
void check_binary(const char* op, const Tensor* a, const Tensor* b) {
    require_not_null(a, op, "a");
    require_not_null(b, op, "b");
    std::string shapes = describe("a", a) + " and " + describe("b", b);
    require(a->type == DType::F32 && b->type == DType::F32, op, shapes, "both must be F32");
    require(can_broadcast(b, a), op, shapes, "b's dimensions must divide a's (b broadcasts over a)");
    require(a->rows_contiguous() && b->rows_contiguous(), op, shapes, "rows must be contiguous");
}

void check_unary_f32(const char* op, const Tensor* a) {
    require_not_null(a, op, "a");
    if (a->type != DType::F32) shape_error(op, describe("a", a) + ": expected F32");
    if (!a->rows_contiguous()) shape_error(op, describe("a", a) + ": rows must be contiguous");
}
}  // namespace

Tensor* Graph::add(Tensor* a, Tensor* b) {
    check_binary("add", a, b);
    return make_op(Op::Add, DType::F32, shape_of(a), {a, b});
}

Tensor* Graph::mul(Tensor* a, Tensor* b) {
    check_binary("mul", a, b);
    return make_op(Op::Mul, DType::F32, shape_of(a), {a, b});
}

Tensor* Graph::scale(Tensor* a, float s) {
    check_unary_f32("scale", a);
    Tensor* t = make_op(Op::Scale, DType::F32, shape_of(a), {a});
    t->set_param_f(0, s);
    return t;
}

Tensor* Graph::rms_norm(Tensor* a, float eps, Tensor* weight) {
    check_unary_f32("rms_norm", a);
    if (weight) {
        check_unary_f32("rms_norm", weight);
        if (weight->ne[0] != a->ne[0] || weight->n_rows() != 1)
            shape_error("rms_norm", describe("weight", weight) + ": expected one row as wide as " + describe("a", a));
    }
    Tensor* t = weight ? make_op(Op::RmsNorm, DType::F32, shape_of(a), {a, weight})
                       : make_op(Op::RmsNorm, DType::F32, shape_of(a), {a});
    t->set_param_f(0, eps);
    return t;
}

Tensor* Graph::norm(Tensor* a, float eps) {
    check_unary_f32("norm", a);
    Tensor* t = make_op(Op::Norm, DType::F32, shape_of(a), {a});
    t->set_param_f(0, eps);
    return t;
}

Tensor* Graph::mul_mat(Tensor* a, Tensor* b) {
    require_not_null(a, "mul_mat", "a");
    require_not_null(b, "mul_mat", "b");
    std::string shapes = describe("a", a) + " and " + describe("b", b);
    require(a->ne[0] == b->ne[0], "mul_mat", shapes, "a.ne[0] must equal b.ne[0]");
    require(b->ne[2] % a->ne[2] == 0 && b->ne[3] % a->ne[3] == 0, "mul_mat", shapes,
            "a's dims 2 and 3 must divide b's (a broadcasts over b)");
    require(b->type == DType::F32, "mul_mat", shapes, "b must be F32");
    require(type_traits(a->type).has_reference, "mul_mat", shapes, "a's type cannot be dequantized");
    require(a->rows_contiguous() && b->rows_contiguous(), "mul_mat", shapes, "rows must be contiguous");
    const int64_t ne[] = {a->ne[1], b->ne[1], b->ne[2], b->ne[3]};
    Tensor* t = make_op(Op::MulMat, DType::F32, ne, {a, b});
    if (batch_invariant_) t->flags |= kFlagBatchInvariant;
    return t;
}

namespace {

// The checks rope's operands share with rope_set_rows.
void check_rope(const char* op, const Tensor* x, const Tensor* pos, const Tensor* freq_factors, const RopeParams& p) {
    require_not_null(pos, op, "pos");
    std::string shapes = describe("x", x) + " and pos " + shape_string(pos);
    require(pos->type == DType::I32 && pos->n_elements() == x->ne[2], op, shapes,
            "pos must be I32 with one position per token (x.ne[2])");
    require(x->ne[3] == 1, op, shapes, "x must be [head_dim, n_head, n_tokens]");
    require(p.n_dims > 0 && p.n_dims <= x->ne[0] && p.n_dims % 2 == 0, op, shapes,
            "n_dims must be even and within the head size");
    require(p.mode == RopeMode::Normal || p.mode == RopeMode::NeoX, op, shapes, "unknown mode");
    if (freq_factors) {
        require(freq_factors->type == DType::F32 && freq_factors->n_elements() >= p.n_dims / 2 &&
                    freq_factors->is_contiguous(),
                op, shapes, "freq_factors must be contiguous F32 with n_dims/2 values");
    }
}

void set_rope_params(Tensor* t, const RopeParams& p) {
    t->params[0] = p.n_dims;
    t->params[1] = static_cast<int32_t>(p.mode);
    t->params[2] = p.n_ctx_orig;
    t->set_param_f(3, p.freq_base);
    t->set_param_f(4, p.freq_scale);
    t->set_param_f(5, p.ext_factor);
    t->set_param_f(6, p.attn_factor);
    t->set_param_f(7, p.beta_fast);
    t->set_param_f(8, p.beta_slow);
}

}  // namespace

Tensor* Graph::rope(Tensor* x, Tensor* pos, Tensor* freq_factors, const RopeParams& p) {
    check_unary_f32("rope", x);
    check_rope("rope", x, pos, freq_factors, p);
    Tensor* t = make_op(Op::Rope, DType::F32, shape_of(x), {x, pos, freq_factors});
    set_rope_params(t, p);
    return t;
}

Tensor* Graph::soft_max(Tensor* a, Tensor* mask, float scale) {
    check_unary_f32("soft_max", a);
    if (mask) {
        std::string shapes = describe("a", a) + " and " + describe("mask", mask);
        require(mask->type == DType::F32 || mask->type == DType::F16, "soft_max", shapes, "mask must be F32 or F16");
        require(mask->ne[0] == a->ne[0] && mask->ne[1] >= a->ne[1], "soft_max", shapes,
                "mask must be [a.ne[0], >= a.ne[1]]");
        require(mask->ne[2] == 1 && mask->ne[3] == 1 && mask->rows_contiguous(), "soft_max", shapes,
                "mask must be 2-D with contiguous rows");
    }
    Tensor* t = make_op(Op::SoftMax, DType::F32, shape_of(a), {a, mask});
    t->set_param_f(0, scale);
    return t;
}

Tensor* Graph::flash_attn(Tensor* q, Tensor* k, Tensor* v, Tensor* mask, float scale, float softcap,
                          Tensor* kv_start) {
    require_not_null(q, "flash_attn", "q");
    require_not_null(k, "flash_attn", "k");
    require_not_null(v, "flash_attn", "v");
    std::string shapes = describe("q", q) + ", " + describe("k", k) + " and " + describe("v", v);
    require(q->type == DType::F32, "flash_attn", shapes, "q must be F32");
    auto kv_ok = [](DType t) { return t == DType::F32 || t == DType::F16 || t == DType::Q8_0; };
    require(kv_ok(k->type) && kv_ok(v->type), "flash_attn", shapes, "k and v must be F32, F16 or Q8_0");
    require(q->ne[0] == k->ne[0], "flash_attn", shapes, "q and k must have the same head size");
    require(k->ne[1] == v->ne[1], "flash_attn", shapes, "k and v must have the same length");
    require(k->ne[2] == v->ne[2] && k->ne[2] > 0 && q->ne[2] % k->ne[2] == 0, "flash_attn", shapes,
            "k and v must have the same head count, dividing q's");
    if (kv_start) {
        require(kv_start->type == DType::I32 && kv_start->n_elements() == q->ne[3] && k->ne[3] == 1 && v->ne[3] == 1,
                "flash_attn", shapes, "kv_start must be I32 with one row per q's dim 3, k and v one sequence");
        require(mask && mask->ne[0] <= k->ne[1] && mask->ne[1] >= q->ne[1] && mask->ne[2] == 1 &&
                    mask->ne[3] == q->ne[3],
                "flash_attn", shapes + (mask ? " with mask " + shape_string(mask) : std::string()),
                "with kv_start, mask must be [n_kv <= k's rows, >= n_q, 1, q's dim 3]");
    } else {
        require(q->ne[3] == k->ne[3] && k->ne[3] == v->ne[3], "flash_attn", shapes, "dim 3 must agree");
    }
    require(q->rows_contiguous() && k->rows_contiguous() && v->rows_contiguous(), "flash_attn", shapes,
            "rows must be contiguous");
    if (mask)
        require(mask->type == DType::F32 || mask->type == DType::F16, "flash_attn", shapes, "mask must be F32 or F16");
    if (mask && !kv_start) {
        require(mask->ne[0] == k->ne[1] && mask->ne[1] >= q->ne[1] && mask->ne[2] == 1 && mask->ne[3] == 1,
                "flash_attn", shapes + " with mask " + shape_string(mask), "mask must be [n_kv, >= n_q]");
    }
    const int64_t ne[] = {v->ne[0], q->ne[2], q->ne[1], q->ne[3]};
    Tensor* t = make_op(Op::FlashAttn, DType::F32, ne, {q, k, v, mask, kv_start});
    t->set_param_f(0, scale);
    t->set_param_f(1, softcap);
    return t;
}

Tensor* Graph::silu(Tensor* a) {
    check_unary_f32("silu", a);
    return make_op(Op::Silu, DType::F32, shape_of(a), {a});
}

Tensor* Graph::gelu(Tensor* a) {
    check_unary_f32("gelu", a);
    return make_op(Op::Gelu, DType::F32, shape_of(a), {a});
}

Tensor* Graph::tanh(Tensor* a) {
    check_unary_f32("tanh", a);
    return make_op(Op::Tanh, DType::F32, shape_of(a), {a});
}

Tensor* Graph::gelu_erf(Tensor* a) {
    check_unary_f32("gelu_erf", a);
    return make_op(Op::GeluErf, DType::F32, shape_of(a), {a});
}

namespace {
void check_gate(const char* op, const Tensor* a, const Tensor* b) {
    check_unary_f32(op, a);
    check_unary_f32(op, b);
    if (!same_shape(a, b)) shape_error(op, describe("a", a) + " and " + describe("b", b) + ": shapes differ");
}
}  // namespace

Tensor* Graph::swiglu(Tensor* a, Tensor* b) {
    check_gate("swiglu", a, b);
    return make_op(Op::Swiglu, DType::F32, shape_of(a), {a, b});
}

Tensor* Graph::geglu(Tensor* a, Tensor* b) {
    check_gate("geglu", a, b);
    return make_op(Op::Geglu, DType::F32, shape_of(a), {a, b});
}

Tensor* Graph::cpy(Tensor* a, Tensor* b) {
    require_not_null(a, "cpy", "a");
    require_not_null(b, "cpy", "b");
    std::string shapes = describe("a", a) + " and " + describe("b", b);
    require(a->n_elements() == b->n_elements(), "cpy", shapes, "element counts differ");
    require(type_traits(a->type).has_reference && type_traits(b->type).has_reference, "cpy", shapes,
            "both types need a reference conversion");
    bool quantized = type_traits(a->type).block_size > 1 || type_traits(b->type).block_size > 1;
    require(!quantized || a->ne[0] == b->ne[0], "cpy", shapes, "a quantized copy needs equal row lengths");
    require(a->rows_contiguous() && b->rows_contiguous(), "cpy", shapes, "rows must be contiguous");
    // The result is `b`'s memory, produced by this node.
    Tensor* t = make_view(b, shape_of(b), std::span<const size_t>(b->nb, kMaxDims), 0);
    t->op = Op::Cpy;
    t->src[0] = a;
    t->src[1] = b;
    return t;
}

Tensor* Graph::set_rows(Tensor* dst, Tensor* src, Tensor* idx) {
    require_not_null(dst, "set_rows", "dst");
    require_not_null(src, "set_rows", "src");
    require_not_null(idx, "set_rows", "idx");
    std::string shapes = describe("dst", dst) + ", " + describe("src", src) + " and idx " + shape_string(idx);
    require(src->type == DType::F32, "set_rows", shapes, "src must be F32");
    require(idx->type == DType::I32 || idx->type == DType::I64, "set_rows", shapes, "idx must be I32 or I64");
    require(dst->ne[0] == src->ne[0], "set_rows", shapes, "row lengths differ");
    require(dst->ne[2] == 1 && dst->ne[3] == 1 && src->ne[2] == 1 && src->ne[3] == 1, "set_rows", shapes,
            "dst and src must be 2-D");
    require(idx->n_elements() == src->ne[1], "set_rows", shapes, "one index per source row");
    require(type_traits(dst->type).has_reference, "set_rows", shapes, "dst's type has no quantizer");
    require(dst->rows_contiguous() && src->rows_contiguous() && idx->is_contiguous(), "set_rows", shapes,
            "rows must be contiguous");
    Tensor* t = make_view(dst, shape_of(dst), std::span<const size_t>(dst->nb, kMaxDims), 0);
    t->op = Op::SetRows;
    t->src[0] = dst;
    t->src[1] = src;
    t->src[2] = idx;
    return t;
}

Tensor* Graph::rope_set_rows(Tensor* dst, Tensor* x, Tensor* pos, Tensor* freq_factors, const RopeParams& p,
                             Tensor* idx) {
    check_unary_f32("rope_set_rows", x);
    check_rope("rope_set_rows", x, pos, freq_factors, p);
    require_not_null(dst, "rope_set_rows", "dst");
    require_not_null(idx, "rope_set_rows", "idx");
    // set_rows's rules, on x's tokens as rows of head * n_head.
    std::string shapes = describe("dst", dst) + ", " + describe("x", x) + " and idx " + shape_string(idx);
    require(x->is_contiguous(), "rope_set_rows", shapes, "x must be contiguous");
    require(idx->type == DType::I32 || idx->type == DType::I64, "rope_set_rows", shapes, "idx must be I32 or I64");
    require(dst->ne[0] == x->ne[0] * x->ne[1], "rope_set_rows", shapes, "dst rows must hold head x n_head values");
    require(dst->ne[2] == 1 && dst->ne[3] == 1, "rope_set_rows", shapes, "dst must be 2-D");
    require(idx->n_elements() == x->ne[2], "rope_set_rows", shapes, "one index per token");
    require(type_traits(dst->type).has_reference, "rope_set_rows", shapes, "dst's type has no quantizer");
    require(dst->rows_contiguous() && idx->is_contiguous(), "rope_set_rows", shapes, "rows must be contiguous");
    Tensor* t = make_view(dst, shape_of(dst), std::span<const size_t>(dst->nb, kMaxDims), 0);
    t->op = Op::SetRows;
    t->src[0] = dst;
    t->src[1] = x;
    t->src[2] = idx;
    t->src[3] = pos;
    t->src[4] = freq_factors;
    set_rope_params(t, p);
    return t;
}

Tensor* Graph::concat(Tensor* a, Tensor* b, int dim) {
    check_binary("concat", a, a);
    check_unary_f32("concat", b);
    std::string shapes = describe("a", a) + " and " + describe("b", b);
    require(dim >= 0 && dim < kMaxDims, "concat", shapes, "dim must be 0 to 3");
    for (int i = 0; i < kMaxDims; ++i)
        if (i != dim) require(a->ne[i] == b->ne[i], "concat", shapes, "dimensions other than dim must agree");
    auto ne = shape_of(a);
    ne[dim] += b->ne[dim];
    Tensor* t = make_op(Op::Concat, DType::F32, ne, {a, b});
    t->params[0] = dim;
    return t;
}

Tensor* Graph::argmax(Tensor* a) {
    check_unary_f32("argmax", a);
    if (a->ne[2] != 1 || a->ne[3] != 1) shape_error("argmax", describe("a", a) + ": expected 2-D");
    const int64_t ne[] = {a->ne[1]};
    return make_op(Op::Argmax, DType::I32, ne, {a});
}

}  // namespace tessera
