// Dispatch, scratch sizes, and the element-wise, copy and indexing ops.
#include <cmath>
#include <cstring>

#include "backends/cpu/kernels/kernels.h"
#include "backends/cpu/kernels/matmul.h"
#include "backends/cpu/ops.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace tessera::cpu {

size_t work_per_thread(const Tensor& node) {
    switch (node.op) {
    case Op::MulMat: return mul_mat_work_per_thread(node);
    case Op::Cpy:
    case Op::Cont: return static_cast<size_t>(node.src[0]->ne[0]) * sizeof(float);
    case Op::FlashAttn: return flash_attn_work_per_thread(node);
    case Op::SetRows:  // with a rotation: one token's rotated heads
        return node.src[3] ? static_cast<size_t>(node.src[1]->ne[0] * node.src[1]->ne[1]) * sizeof(float) : 0;
    default: return 0;
    }
}

size_t work_shared(const Tensor& node) {
    if (node.op == Op::MulMat) return mul_mat_work_shared(node);
    if (node.op == Op::FlashAttn) return flash_attn_work_shared(node);
    return 0;
}

void compute_node(const Tensor& node, const ComputeParams& p) {
    switch (node.op) {
    case Op::GetRows: op_get_rows(node, p); break;
    case Op::Add:
    case Op::Mul: op_binary(node, p); break;
    case Op::Scale:
    case Op::Silu:
    case Op::Gelu:
    case Op::GeluErf:
    case Op::Tanh: op_unary(node, p); break;
    case Op::Swiglu:
    case Op::Geglu: op_gate(node, p); break;
    case Op::Cpy:
    case Op::Cont: op_copy(node, p); break;
    case Op::SetRows: node.src[3] ? op_rope_set_rows(node, p) : op_set_rows(node, p); break;
    case Op::Concat: op_concat(node, p); break;
    case Op::Argmax: op_argmax(node, p); break;
    case Op::RmsNorm:
    case Op::Norm: op_norm(node, p); break;
    case Op::SoftMax: op_soft_max(node, p); break;
    case Op::Rope: op_rope(node, p); break;
    case Op::MulMat: op_mul_mat(node, p); break;
    case Op::FlashAttn: op_flash_attn(node, p); break;
    case Op::None:
    case Op::View:
    case Op::Count: break;
    }
}

namespace {

// Row r (flattened over dims 1..3) of a tensor with strided rows.
inline char* row_at(const Tensor& t, int64_t r) {
    int64_t i1 = r % t.ne[1];
    int64_t i2 = (r / t.ne[1]) % t.ne[2];
    int64_t i3 = r / (t.ne[1] * t.ne[2]);
    return t.row_ptr(i1, i2, i3);
}

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float gelu_tanh(float x) {
    const float k = 0.7978845608028654f;  // sqrt(2/pi)
    return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}
inline float gelu_erf(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f)); }

}  // namespace

void op_get_rows(const Tensor& node, const ComputeParams& p) {
    const Tensor& a = *node.src[0];
    const Tensor& ids = *node.src[1];
    int64_t b, e;
    split_rows(ids.ne[0], p.ith, p.nth, &b, &e);
    for (int64_t i = b; i < e; ++i) {
        int32_t id = *reinterpret_cast<const int32_t*>(static_cast<const char*>(ids.data) + i * ids.nb[0]);
        float* out = reinterpret_cast<float*>(node.row_ptr(i));
        if (id < 0 || id >= a.ne[1]) {  // the runtime validates ids; never read outside `a`
            std::memset(out, 0, static_cast<size_t>(a.ne[0]) * sizeof(float));
            continue;
        }
        quant::dequantize_row(a.type, a.row_ptr(id), out, a.ne[0]);
    }
}

void op_binary(const Tensor& node, const ComputeParams& p) {
    const Tensor& a = *node.src[0];
    const Tensor& bt = *node.src[1];
    const bool is_add = node.op == Op::Add;
    int64_t rb, re;
    split_rows(node.n_rows(), p.ith, p.nth, &rb, &re);
    const int64_t n0 = a.ne[0], b0 = bt.ne[0];
    for (int64_t r = rb; r < re; ++r) {
        int64_t i1 = r % a.ne[1], i2 = (r / a.ne[1]) % a.ne[2], i3 = r / (a.ne[1] * a.ne[2]);
        const float* x = reinterpret_cast<const float*>(a.row_ptr(i1, i2, i3));
        const float* y = reinterpret_cast<const float*>(bt.row_ptr(i1 % bt.ne[1], i2 % bt.ne[2], i3 % bt.ne[3]));
        float* out = reinterpret_cast<float*>(node.row_ptr(i1, i2, i3));
        if (b0 == n0) {
            if (is_add) for (int64_t i = 0; i < n0; ++i) out[i] = x[i] + y[i];
            else for (int64_t i = 0; i < n0; ++i) out[i] = x[i] * y[i];
        } else {
            if (is_add) for (int64_t i = 0; i < n0; ++i) out[i] = x[i] + y[i % b0];
            else for (int64_t i = 0; i < n0; ++i) out[i] = x[i] * y[i % b0];
        }
    }
}

void op_unary(const Tensor& node, const ComputeParams& p) {
    const Tensor& a = *node.src[0];
    const float s = node.param_f(0);
    int64_t rb, re;
    split_rows(node.n_rows(), p.ith, p.nth, &rb, &re);
    for (int64_t r = rb; r < re; ++r) {
        const float* x = reinterpret_cast<const float*>(row_at(a, r));
        float* out = reinterpret_cast<float*>(row_at(node, r));
        switch (node.op) {
        case Op::Scale: for (int64_t i = 0; i < a.ne[0]; ++i) out[i] = x[i] * s; break;
        case Op::Silu: for (int64_t i = 0; i < a.ne[0]; ++i) out[i] = silu(x[i]); break;
        case Op::Gelu: for (int64_t i = 0; i < a.ne[0]; ++i) out[i] = gelu_tanh(x[i]); break;
        case Op::Tanh: for (int64_t i = 0; i < a.ne[0]; ++i) out[i] = std::tanh(x[i]); break;
        default: for (int64_t i = 0; i < a.ne[0]; ++i) out[i] = gelu_erf(x[i]); break;
        }
    }
}

void op_gate(const Tensor& node, const ComputeParams& p) {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    const bool swi = node.op == Op::Swiglu;
    const kernels::KernelTable& kt = kernels::active();
    int64_t rb, re;
    split_rows(node.n_rows(), p.ith, p.nth, &rb, &re);
    for (int64_t r = rb; r < re; ++r) {
        const float* g = reinterpret_cast<const float*>(row_at(a, r));
        const float* u = reinterpret_cast<const float*>(row_at(b, r));
        float* out = reinterpret_cast<float*>(row_at(node, r));
        (swi ? kt.swiglu : kt.geglu)(g, u, out, a.ne[0]);
    }
}

namespace {

float read_scalar(DType t, const char* p) {
    switch (t) {
    case DType::F32: return *reinterpret_cast<const float*>(p);
    case DType::F16: return fp16_to_fp32(*reinterpret_cast<const uint16_t*>(p));
    case DType::BF16: return bf16_to_fp32(*reinterpret_cast<const uint16_t*>(p));
    default: return 0.0f;
    }
}

void write_scalar(DType t, char* p, float v) {
    switch (t) {
    case DType::F32: *reinterpret_cast<float*>(p) = v; break;
    case DType::F16: *reinterpret_cast<uint16_t*>(p) = fp32_to_fp16(v); break;
    case DType::BF16: *reinterpret_cast<uint16_t*>(p) = fp32_to_bf16(v); break;
    default: break;
    }
}

}  // namespace

void op_copy(const Tensor& node, const ComputeParams& p) {
    const Tensor& a = *node.src[0];
    // cpy writes into src[1]'s memory (node is a view of it); cont into its own.
    const Tensor& dst = node;
    if (a.ne[0] == dst.ne[0] && a.rows_contiguous()) {
        // Row by row: dequantize (or read) a row, quantize (or write) it.
        int64_t rb, re;
        split_rows(a.n_rows(), p.ith, p.nth, &rb, &re);
        float* tmp = reinterpret_cast<float*>(p.work);
        for (int64_t r = rb; r < re; ++r) {
            const char* x = row_at(a, r);
            char* y = row_at(dst, r);
            if (a.type == dst.type) {
                std::memcpy(y, x, row_size(a.type, a.ne[0]));
            } else if (a.type == DType::F32) {
                quant::quantize_row(dst.type, reinterpret_cast<const float*>(x), y, a.ne[0]);
            } else if (dst.type == DType::F32) {
                quant::dequantize_row(a.type, x, reinterpret_cast<float*>(y), a.ne[0]);
            } else {
                quant::dequantize_row(a.type, x, tmp, a.ne[0]);
                quant::quantize_row(dst.type, tmp, y, a.ne[0]);
            }
        }
        return;
    }
    // Different row lengths (plain types only): element by element in logical order.
    int64_t eb, ee;
    split_rows(a.n_elements(), p.ith, p.nth, &eb, &ee);
    for (int64_t k = eb; k < ee; ++k) {
        int64_t i0 = k % a.ne[0], r = k / a.ne[0];
        int64_t j0 = k % dst.ne[0], s = k / dst.ne[0];
        float v = read_scalar(a.type, row_at(a, r) + i0 * a.nb[0]);
        write_scalar(dst.type, row_at(dst, s) + j0 * dst.nb[0], v);
    }
}

void op_set_rows(const Tensor& node, const ComputeParams& p) {
    const Tensor& dst = node;  // a view of src[0]
    const Tensor& src = *node.src[1];
    const Tensor& idx = *node.src[2];
    int64_t rb, re;
    split_rows(src.ne[1], p.ith, p.nth, &rb, &re);
    const auto to_f16 = kernels::active().f32_to_f16;  // the F16 KV cache: converted with SIMD
    for (int64_t r = rb; r < re; ++r) {
        const char* ip = static_cast<const char*>(idx.data) + r * idx.nb[0];
        int64_t row = idx.type == DType::I32 ? *reinterpret_cast<const int32_t*>(ip)
                                             : *reinterpret_cast<const int64_t*>(ip);
        if (row < 0 || row >= dst.ne[1]) continue;  // the runtime validates positions
        const float* x = reinterpret_cast<const float*>(src.row_ptr(r));
        if (dst.type == DType::F16 && to_f16)
            to_f16(x, reinterpret_cast<uint16_t*>(dst.row_ptr(row)), src.ne[0]);
        else
            quant::quantize_row(dst.type, x, dst.row_ptr(row), src.ne[0]);
    }
}

void op_concat(const Tensor& node, const ComputeParams& p) {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    const int dim = node.params[0];
    int64_t rb, re;
    split_rows(node.n_rows(), p.ith, p.nth, &rb, &re);
    for (int64_t r = rb; r < re; ++r) {
        int64_t i[kMaxDims] = {0, r % node.ne[1], (r / node.ne[1]) % node.ne[2], r / (node.ne[1] * node.ne[2])};
        float* out = reinterpret_cast<float*>(node.row_ptr(i[1], i[2], i[3]));
        for (int64_t i0 = 0; i0 < node.ne[0]; ++i0) {
            i[0] = i0;
            const Tensor* s = &a;
            int64_t j[kMaxDims] = {i[0], i[1], i[2], i[3]};
            if (j[dim] >= a.ne[dim]) {
                s = &b;
                j[dim] -= a.ne[dim];
            }
            out[i0] = *reinterpret_cast<const float*>(s->row_ptr(j[1], j[2], j[3]) + j[0] * s->nb[0]);
        }
    }
}

void op_argmax(const Tensor& node, const ComputeParams& p) {
    const Tensor& a = *node.src[0];
    int64_t rb, re;
    split_rows(a.ne[1], p.ith, p.nth, &rb, &re);
    for (int64_t r = rb; r < re; ++r) {
        const float* x = reinterpret_cast<const float*>(a.row_ptr(r));
        int32_t best = 0;
        for (int64_t i = 1; i < a.ne[0]; ++i)
            if (x[i] > x[best]) best = static_cast<int32_t>(i);
        reinterpret_cast<int32_t*>(node.data)[r] = best;
    }
}

}  // namespace tessera::cpu
