// Decoding steps' fused launches (fusion.h).
#include "backends/cuda/fusion.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "backends/cuda/decode_fused.h"
#include "backends/cuda/mulmat.h"
#include "backends/cuda/mulmat_decode.h"
#include "backends/cuda/ops.h"
#include "tensor/error.h"

namespace tessera::cuda {

namespace {

// A 2-D product with contiguous rows (no broadcast over dims 2 and 3).
bool is_plain_product(const Tensor& n) {
    const Tensor& a = *n.src[0];
    const Tensor& b = *n.src[1];
    return n.op == Op::MulMat && a.ne[2] == 1 && a.ne[3] == 1 && b.ne[2] == 1 && b.ne[3] == 1 &&
           b.nb[0] == sizeof(float) && n.nb[0] == sizeof(float);
}

// Contiguous F32 rows, two dimensions at most, row length a multiple of 32.
bool plain_rows(const Tensor& t) {
    return t.type == DType::F32 && t.nb[0] == sizeof(float) && t.ne[2] == 1 && t.ne[3] == 1 && t.ne[0] % 32 == 0 &&
           t.nb[1] % sizeof(float) == 0;
}
bool same_rows(const Tensor& a, const Tensor& b) { return a.ne[0] == b.ne[0] && a.ne[1] == b.ne[1]; }
size_t row_stride(const Tensor& t) { return t.nb[1] / sizeof(float); }

// Whether rows r of out may be written while other blocks still read any row of in: out and in
// share no byte, or out is in row for row (each block reads its row before writing it).
bool rows_apart(const Tensor& out, const Tensor& in) {
    if (out.data == in.data && out.nb[1] == in.nb[1]) return true;
    auto span = [](const Tensor& t) {
        const auto* p = static_cast<const char*>(t.data);
        return std::pair{p, p + (t.ne[1] - 1) * t.nb[1] + t.ne[0] * sizeof(float)};
    };
    const auto [o0, o1] = span(out);
    const auto [i0, i1] = span(in);
    return o1 <= i0 || i1 <= o0;
}

// The products from nodes[start] on that multiply the same weight type and row length by the
// activations b, as long as they come one after another (a decoding step's query, key and
// value projections; its gate and up projections): at most kMaxDecodeParts.
size_t collect_products(std::span<Tensor* const> nodes, size_t start, const Tensor* b,
                        MulMatPart (&parts)[kMaxDecodeParts]) {
    size_t count = 0;
    const Tensor* first = nullptr;
    while (count < static_cast<size_t>(kMaxDecodeParts) && start + count < nodes.size()) {
        const Tensor& n = *nodes[start + count];
        if (!is_plain_product(n) || n.src[1] != b) break;
        if (first && (n.src[0]->type != first->type || n.src[0]->ne[0] != first->ne[0] ||
                      split_rows_of(*n.src[0]) != split_rows_of(*first)))
            break;
        first = n.src[0];
        parts[count++] =
            MulMatPart{n.src[0]->data, n.src[0]->nb[1], n.src[0]->ne[1], static_cast<float*>(n.data), row_stride(n)};
    }
    return count;
}

// TESSERA_CUDA_FUSE=0: no fused kernels (products of the same activations still share a launch).
bool fusion_on() {
    static const bool on = [] {
        const char* e = std::getenv("TESSERA_CUDA_FUSE");
        return !(e && std::strcmp(e, "0") == 0);
    }();
    return on;
}

// Runs the count > 0 decoding products at nodes[start] (parts) of the activations b, which a
// kernel before quantized into the scratch where `quantized`. Returns the nodes run, 0 where
// the products do not take the decoding kernels.
size_t run_products(std::span<Tensor* const> nodes, size_t start, size_t count, MulMatPart (&parts)[kMaxDecodeParts],
                    const Tensor& b, bool quantized, const StepScratch& sc) {
    const Tensor& w = *nodes[start]->src[0];
    if (!mul_mat_decode_group(w.type, split_rows_of(w), std::span(parts, count), static_cast<const float*>(b.data),
                              row_stride(b), b.ne[0], b.ne[1], sc.work, sc.work_size, sc.stream, quantized)) {
        if (quantized)
            throw Error("CUDA backend: decoding products refused their quantized activations", ErrorKind::Internal);
        return 0;
    }
    return count;
}

// A decoding step's attention and the products of its output (the output projection): the
// attention kernel also writes its output as their int8 activations, in the scratch before its
// own (CudaBackend::work_size leaves room for both).
size_t run_attention_products(std::span<Tensor* const> nodes, size_t i, const StepScratch& sc) {
    const Tensor& att = *nodes[i];
    if (i + 1 >= nodes.size() || !is_plain_product(*nodes[i + 1]) || !flash_attn_writes_acts(att)) return 0;
    const Tensor& b = *nodes[i + 1]->src[1];  // the output viewed as [ne[0] * ne[1], rows]
    if (b.data != att.data || b.nb[1] != b.ne[0] * sizeof(float) || b.ne[0] * b.ne[1] != att.n_elements() ||
        b.ne[0] != att.ne[0] * att.ne[1])
        return 0;
    MulMatPart parts[kMaxDecodeParts];
    const size_t count = collect_products(nodes, i + 1, &b, parts);
    const DType wt = nodes[i + 1]->src[0]->type;
    const DecodeActs q = decode_acts(wt, b.ne[0], b.ne[1], sc.work, sc.work_size);
    const size_t acts = attention_acts_size(att);
    if (!q.qs || decode_work_size(wt, b.ne[0], b.ne[1]) > acts || acts + flash_attn_work_size(att) > sc.work_size)
        return 0;
    op_flash_attn(att, static_cast<char*>(sc.work) + acts, sc.stream, q);
    return 1 + run_products(nodes, i + 1, count, parts, b, true, sc);
}

}  // namespace

size_t attention_acts_size(const Tensor& att) {
    return decode_work_size(DType::Q8_0, att.ne[0] * att.ne[1], att.ne[2] * att.ne[3]);
}

size_t run_fused(std::span<Tensor* const> nodes, size_t i, const StepScratch& sc) {
    const Tensor& first = *nodes[i];
    if (is_plain_product(first)) {
        // Products of the same activations (the query, key and value projections).
        MulMatPart parts[kMaxDecodeParts];
        const size_t count = collect_products(nodes, i, first.src[1], parts);
        return count > 1 ? run_products(nodes, i, count, parts, *first.src[1], false, sc) : 0;
    }
    if (!fusion_on()) return 0;
    if (first.op == Op::FlashAttn) return run_attention_products(nodes, i, sc);
    if (first.op == Op::Rope && i + 2 < nodes.size()) {
        // A decoding step's query rotation and its key and value cache writes: one launch.
        const Tensor &k = *nodes[i + 1], &v = *nodes[i + 2];
        auto reads = [](const Tensor& n, const Tensor& t) {
            for (const Tensor* src : n.src)
                if (src && src->root() == t.root()) return true;
            return false;
        };
        if (k.op == Op::SetRows && k.src[3] && v.op == Op::SetRows && !v.src[3] && !reads(k, first) &&
            !reads(v, first) && !reads(v, k) && k.src[0]->root() != v.src[0]->root() &&
            op_rope_kv(first, k, v, sc.stream))
            return 3;
        return 0;
    }
    const Tensor* add = &first;
    size_t j = i;
    if (add->op == Op::Add && i + 1 < nodes.size() && nodes[i + 1]->op == Op::RmsNorm && nodes[i + 1]->src[0] == add &&
        plain_rows(*add) && plain_rows(*add->src[0]) && plain_rows(*add->src[1]) && same_rows(*add, *add->src[0]) &&
        same_rows(*add, *add->src[1]) &&
        // The memory plan may put the norm's output over the add's operands, dead once the
        // add has run: fused, a block's writes must not reach rows another block reads.
        (add->ne[1] == 1 || (rows_apart(*nodes[i + 1], *add->src[0]) && rows_apart(*nodes[i + 1], *add->src[1]) &&
                             rows_apart(*add, *add->src[0]) && rows_apart(*add, *add->src[1]))))
        j = i + 1;
    else
        add = nullptr;
    const Tensor& head = *nodes[j];
    const Tensor* w = head.op == Op::RmsNorm ? head.src[1] : nullptr;
    // The norm kernel reads and writes float4s.
    auto aligned = [](const Tensor* t) {
        return !t || (reinterpret_cast<uintptr_t>(t->data) % 16 == 0 && t->nb[1] % 16 == 0);
    };
    const bool norm = head.op == Op::RmsNorm && plain_rows(head) && plain_rows(*head.src[0]) &&
                      same_rows(head, *head.src[0]) && rms_norm_rows_fit(head.ne[0]) && aligned(&head) &&
                      aligned(head.src[0]) && aligned(w) && (!add || (aligned(add->src[0]) && aligned(add->src[1]))) &&
                      (!w || (w->type == DType::F32 && w->ne[0] == head.ne[0] && w->is_contiguous()));
    const bool gate = !add && head.op == Op::Swiglu && plain_rows(head) && plain_rows(*head.src[0]) &&
                      plain_rows(*head.src[1]) && same_rows(head, *head.src[0]) && same_rows(head, *head.src[1]);
    if (!norm && !gate) return 0;
    MulMatPart parts[kMaxDecodeParts];
    const size_t count = collect_products(nodes, j + 1, &head, parts);
    DecodeActs q{nullptr, nullptr};
    if (count > 0) q = decode_acts(nodes[j + 1]->src[0]->type, head.ne[0], head.ne[1], sc.work, sc.work_size);
    if (!q.qs && !add) return 0;  // nothing saved
    const int64_t k = head.ne[0], rows = head.ne[1];
    if (norm) {
        const Tensor& x = add ? *add->src[0] : *head.src[0];
        NormRows p{};
        p.a = static_cast<const float*>(x.data), p.a_stride = row_stride(x);
        if (add) {
            p.b = static_cast<const float*>(add->src[1]->data), p.b_stride = row_stride(*add->src[1]);
            p.sum = static_cast<float*>(add->data), p.sum_stride = row_stride(*add);
        }
        p.weight = w ? static_cast<const float*>(w->data) : nullptr;
        p.eps = head.param_f(0);
        p.y = static_cast<float*>(head.data), p.y_stride = row_stride(head);
        p.k = k, p.rows = rows;
        rms_norm_rows(p, q, sc.stream);
    } else {
        const Tensor &g = *head.src[0], &u = *head.src[1];
        swiglu_rows(static_cast<const float*>(g.data), row_stride(g), static_cast<const float*>(u.data), row_stride(u),
                    static_cast<float*>(head.data), row_stride(head), k, rows, q, sc.stream);
    }
    const size_t ran = j - i + 1;
    return q.qs ? ran + run_products(nodes, j + 1, count, parts, head, true, sc) : ran;
}

}  // namespace tessera::cuda
