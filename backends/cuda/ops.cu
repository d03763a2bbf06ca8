// The CUDA backend's element-wise, row-wise and data-movement kernels. Indexing is plain
// (one thread per element or a block per row, byte strides as the tensors carry them):
// these nodes move a few megabytes per token, next to the gigabytes of the matrix products.
// Element-wise nodes on F32 rows of one stride each (the common case: whole tensors, and row
// views) take k_rows, four elements per thread with no index division; a prompt's element-wise
// nodes move hundreds of megabytes, and the general kernels' 64-bit divisions cost 5x there.
// RoPE and the KV cache's row writes are in rope.cu.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

#include "backends/cuda/device_math.cuh"
#include "backends/cuda/elems.cuh"
#include "backends/cuda/mulmat.h"
#include "backends/cuda/ops.h"
#include "tensor/graph.h"

namespace tessera::cuda {

namespace {

using namespace elems;

// ---- element-wise ----

__global__ void k_binary(View out, View a, View b, bool add, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t i0 = i % a.ne[0];
        int64_t r = i / a.ne[0];
        const int64_t i1 = r % a.ne[1];
        r /= a.ne[1];
        const int64_t i2 = r % a.ne[2], i3 = r / a.ne[2];
        const float x = *reinterpret_cast<const float*>(a.data + i0 * 4 + i1 * a.nb[1] + i2 * a.nb[2] + i3 * a.nb[3]);
        const float y = *reinterpret_cast<const float*>(b.data + (i0 % b.ne[0]) * 4 + (i1 % b.ne[1]) * b.nb[1] +
                                                        (i2 % b.ne[2]) * b.nb[2] + (i3 % b.ne[3]) * b.nb[3]);
        *reinterpret_cast<float*>(out.data + offset_of(out, i)) = add ? x + y : x * y;
    }
}

__global__ void k_unary(View out, View a, Op op, float s, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
        const float x = *reinterpret_cast<const float*>(a.data + offset_of(a, i));
        float y;
        switch (op) {
            case Op::Scale:
                y = x * s;
                break;
            case Op::Silu:
                y = silu(x);
                break;
            case Op::Gelu:
                y = gelu_tanh(x);
                break;
            case Op::Tanh:
                y = tanhf(x);
                break;
            default:
                y = gelu_erf(x);
                break;
        }
        *reinterpret_cast<float*>(out.data + offset_of(out, i)) = y;
    }
}

__global__ void k_gate(View out, View a, View b, bool swi, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
        const float x = *reinterpret_cast<const float*>(a.data + offset_of(a, i));
        const float g = *reinterpret_cast<const float*>(b.data + offset_of(b, i));
        *reinterpret_cast<float*>(out.data + offset_of(out, i)) = (swi ? silu(x) : gelu_tanh(x)) * g;
    }
}

// ---- element-wise on strided rows ----

enum class RowOp { Add, Mul, Scale, Silu, Gelu, Tanh, GeluErf, Swiglu, Geglu };

template <RowOp O>
__device__ __forceinline__ float row_op(float x, float y, float s) {
    if constexpr (O == RowOp::Add) return x + y;
    if constexpr (O == RowOp::Mul) return x * y;
    if constexpr (O == RowOp::Scale) return x * s;
    if constexpr (O == RowOp::Silu) return silu(x);
    if constexpr (O == RowOp::Gelu) return gelu_tanh(x);
    if constexpr (O == RowOp::Tanh) return tanhf(x);
    if constexpr (O == RowOp::GeluErf) return gelu_erf(x);
    if constexpr (O == RowOp::Swiglu) return silu(x) * y;
    return gelu_tanh(x) * y;
}

// An F32 operand as rows of `cols` floats, `stride` floats apart (0: one row broadcast).
struct Rows {
    float* p;
    int64_t stride;
};

// out[r][c] = op(a[r][c], b[r][c]) for rows r < rows, columns c < cols (b unused by unary ops).
// Grid: (ceil(cols / 4 / 256), min(rows, 65535)), rows blockIdx.y + gridDim.y i; vec: cols and
// every stride a multiple of 4 and the pointers 16-byte aligned, for float4 accesses.
template <RowOp O>
__global__ void __launch_bounds__(kThreads)
    k_rows(Rows out, Rows a, Rows b, float s, int64_t cols, int64_t rows, bool vec) {
    const int64_t c = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * 4;
    if (c >= cols) return;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const float* ar = a.p + r * a.stride + c;
        const float* br = b.p ? b.p + r * b.stride + c : nullptr;
        float* o = out.p + r * out.stride + c;
        if (vec) {
            const float4 x = *reinterpret_cast<const float4*>(ar);
            const float4 y = br ? *reinterpret_cast<const float4*>(br) : make_float4(0, 0, 0, 0);
            *reinterpret_cast<float4*>(o) = make_float4(row_op<O>(x.x, y.x, s), row_op<O>(x.y, y.y, s),
                                                        row_op<O>(x.z, y.z, s), row_op<O>(x.w, y.w, s));
        } else {
            const int64_t m = cols - c < 4 ? cols - c : 4;
            for (int64_t i = 0; i < m; ++i) o[i] = row_op<O>(ar[i], br ? br[i] : 0.0f, s);
        }
    }
}

// ---- copies ----

__global__ void k_copy_elem(View dst, View src, DType dt, DType st, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
        store_elem(dst.data + offset_of(dst, i), dt, load_elem(src.data + offset_of(src, i), st));
}

// Whole rows of bytes (a quantized tensor copied into its own type).
__global__ void k_copy_rows(View dst, View src, int64_t row_bytes, int64_t n_rows) {
    for (int64_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
        const char* s = src.data + row_offset(src, r);
        char* d = dst.data + row_offset(dst, r);
        for (int64_t j = threadIdx.x; j < row_bytes; j += blockDim.x) d[j] = s[j];
    }
}

// F32 rows into Q8_0 rows: a warp per block.
__global__ void k_copy_q8_0(View dst, View src, int64_t n_rows) {
    const int64_t blocks_per_row = src.ne[0] / 32;
    const int64_t warp = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32;
    if (warp >= n_rows * blocks_per_row) return;
    const int64_t r = warp / blocks_per_row, b = warp % blocks_per_row;
    const float x = reinterpret_cast<const float*>(src.data + row_offset(src, r))[b * 32 + threadIdx.x % 32];
    quantize_q8_0_warp(x, reinterpret_cast<BlockQ8_0*>(dst.data + row_offset(dst, r)) + b);
}

// ---- concat, argmax ----

__global__ void k_concat(View out, View a, View b, int dim, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
        int64_t c[kMaxDims];
        int64_t r = i;
        for (int d = 0; d < kMaxDims; ++d) {
            c[d] = r % out.ne[d];
            r /= out.ne[d];
        }
        const View* s = &a;
        if (c[dim] >= a.ne[dim]) {
            s = &b;
            c[dim] -= a.ne[dim];
        }
        const float v = *reinterpret_cast<const float*>(s->data + c[0] * s->nb[0] + c[1] * s->nb[1] + c[2] * s->nb[2] +
                                                        c[3] * s->nb[3]);
        *reinterpret_cast<float*>(out.data + offset_of(out, i)) = v;
    }
}

// One block per row; ties go to the lowest index, as on the CPU.
__global__ void k_argmax(int32_t* out, View a) {
    __shared__ float best_v[kThreads];
    __shared__ int32_t best_i[kThreads];
    const float* x = reinterpret_cast<const float*>(a.data + blockIdx.x * a.nb[1]);
    float bv = -INFINITY;
    int32_t bi = -1;
    for (int64_t i = threadIdx.x; i < a.ne[0]; i += blockDim.x)
        if (bi < 0 || x[i] > bv) bv = x[i], bi = static_cast<int32_t>(i);
    best_v[threadIdx.x] = bv;
    best_i[threadIdx.x] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            const float ov = best_v[threadIdx.x + s];
            const int32_t oi = best_i[threadIdx.x + s];
            const int32_t mi = best_i[threadIdx.x];
            if (oi >= 0 && (mi < 0 || ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < mi)))
                best_v[threadIdx.x] = ov, best_i[threadIdx.x] = oi;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = best_i[0] < 0 ? 0 : best_i[0];
}

// ---- norms, softmax ----

__global__ void k_norm(View out, View a, const float* weight, float eps, bool rms) {
    __shared__ float scratch[32];
    const int64_t r = blockIdx.x;
    const float* x = reinterpret_cast<const float*>(a.data + row_offset(a, r));
    float* y = reinterpret_cast<float*>(out.data + row_offset(out, r));
    const int64_t n = a.ne[0];
    if (rms) {
        float ss = 0.0f;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += x[i] * x[i];
        ss = block_reduce<false>(ss, scratch);
        const float s = 1.0f / sqrtf(ss / static_cast<float>(n) + eps);
        if (weight)
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) y[i] = x[i] * s * weight[i];
        else
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) y[i] = x[i] * s;
        return;
    }
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += x[i];
    const float mean = block_reduce<false>(sum, scratch) / static_cast<float>(n);
    float var = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) var += (x[i] - mean) * (x[i] - mean);
    var = block_reduce<false>(var, scratch);
    const float s = 1.0f / sqrtf(var / static_cast<float>(n) + eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) y[i] = (x[i] - mean) * s;
}

// The same for rows of at most kNormVec float4s per thread, 16-byte aligned: each thread keeps
// its elements in registers between the passes, so the row is read once.
constexpr int kNormVec = 2;

__global__ void k_norm_vec(View out, View a, const float* weight, float eps, bool rms) {
    __shared__ float scratch[32];
    const int64_t r = blockIdx.x;
    const float4* x = reinterpret_cast<const float4*>(a.data + row_offset(a, r));
    float4* y = reinterpret_cast<float4*>(out.data + row_offset(out, r));
    const int n4 = static_cast<int>(a.ne[0] / 4);
    float4 v[kNormVec];
    float sum = 0.0f;
#pragma unroll
    for (int u = 0; u < kNormVec; ++u) {
        const int i = threadIdx.x + u * blockDim.x;
        v[u] = i < n4 ? x[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        sum += rms ? v[u].x * v[u].x + v[u].y * v[u].y + v[u].z * v[u].z + v[u].w * v[u].w
                   : v[u].x + v[u].y + v[u].z + v[u].w;
    }
    const float n = static_cast<float>(a.ne[0]);
    sum = block_reduce<false>(sum, scratch);
    float mean = 0.0f, s;
    if (rms) {
        s = 1.0f / sqrtf(sum / n + eps);
    } else {
        mean = sum / n;
        float var = 0.0f;
#pragma unroll
        for (int u = 0; u < kNormVec; ++u) {
            if (threadIdx.x + u * blockDim.x >= n4) break;
            const float4 d = make_float4(v[u].x - mean, v[u].y - mean, v[u].z - mean, v[u].w - mean);
            var += d.x * d.x + d.y * d.y + d.z * d.z + d.w * d.w;
        }
        s = 1.0f / sqrtf(block_reduce<false>(var, scratch) / n + eps);
    }
#pragma unroll
    for (int u = 0; u < kNormVec; ++u) {
        const int i = threadIdx.x + u * blockDim.x;
        if (i >= n4) break;
        float4 o = make_float4((v[u].x - mean) * s, (v[u].y - mean) * s, (v[u].z - mean) * s, (v[u].w - mean) * s);
        if (weight) {
            const float4 w = reinterpret_cast<const float4*>(weight)[i];
            o.x *= w.x, o.y *= w.y, o.z *= w.z, o.w *= w.w;
        }
        y[i] = o;
    }
}

__global__ void k_soft_max(View out, View a, const char* mask, int64_t mask_nb1, bool mask_f16, float scale) {
    __shared__ float scratch[32];
    const int64_t r = blockIdx.x;
    const float* x = reinterpret_cast<const float*>(a.data + row_offset(a, r));
    float* y = reinterpret_cast<float*>(out.data + row_offset(out, r));
    const char* m = mask ? mask + (r % a.ne[1]) * mask_nb1 : nullptr;
    const int64_t n = a.ne[0];
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        float mv = 0.0f;
        if (m)
            mv = mask_f16 ? __half2float(reinterpret_cast<const __half*>(m)[i]) : reinterpret_cast<const float*>(m)[i];
        const float v = x[i] * scale + mv;
        y[i] = v;
        mx = fmaxf(mx, v);
    }
    mx = block_reduce<true>(mx, scratch);
    if (mx == -INFINITY) {  // a fully masked row
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) y[i] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float e = expf(y[i] - mx);
        y[i] = e;
        sum += e;
    }
    const float inv = 1.0f / block_reduce<false>(sum, scratch);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) y[i] *= inv;
}

bool is_element_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

}  // namespace

bool copy_supports(DType src, DType dst) {
    if (is_element_type(src) && is_element_type(dst)) return true;
    if (dst == DType::F32 && mul_mat_supports(src)) return true;  // dequantizing (contiguous only)
    if (src == DType::F32 && dst == DType::Q8_0) return true;
    return src == dst;
}

bool set_rows_supports(DType dst) { return is_element_type(dst) || dst == DType::Q8_0; }

void op_get_rows(const Tensor& node, cudaStream_t stream) {
    const Tensor& a = *node.src[0];
    const Tensor& ids = *node.src[1];
    dequantize_rows(a.type, (a.root()->flags & kFlagDeviceLayout) != 0, a.data, a.nb[1],
                    static_cast<const int32_t*>(ids.data), static_cast<float*>(node.data), node.nb[1] / sizeof(float),
                    a.ne[0], ids.ne[0], stream);
}

// t as rows of ne[0] F32 elements, one stride apart (its dims 1..3 collapse into one); false
// for anything else. `rows`: the number of rows the node has, which a broadcast row matches.
bool as_rows(const Tensor& t, int64_t rows, Rows* r) {
    if (t.type != DType::F32 || t.nb[0] != sizeof(float) || t.nb[1] % sizeof(float) != 0) return false;
    r->p = static_cast<float*>(t.data);
    if (t.ne[1] * t.ne[2] * t.ne[3] == 1) {
        r->stride = rows == 1 ? static_cast<int64_t>(t.nb[1] / sizeof(float)) : 0;
        return true;
    }
    if (t.ne[1] * t.ne[2] * t.ne[3] != rows) return false;
    if ((t.ne[2] > 1 && t.nb[2] != t.nb[1] * t.ne[1]) || (t.ne[3] > 1 && t.nb[3] != t.nb[2] * t.ne[2])) return false;
    r->stride = static_cast<int64_t>(t.nb[1] / sizeof(float));
    return true;
}

// The node through k_rows when out, a and b (if any) are F32 rows that fit it: b of a's shape
// or one row; false to take the general kernels.
template <RowOp O>
bool launch_rows(const Tensor& node, const Tensor& a, const Tensor* b, float s, cudaStream_t stream) {
    const int64_t cols = node.ne[0], rows = node.ne[1] * node.ne[2] * node.ne[3];
    if (a.ne[0] != cols || (b && b->ne[0] != cols) || a.n_elements() != node.n_elements()) return false;
    for (int d = 1; d < 4; ++d)
        if (a.ne[d] != node.ne[d] || (b && b->ne[d] != node.ne[d] && b->ne[d] != 1)) return false;
    Rows o{}, ra{}, rb{};
    if (!as_rows(node, rows, &o) || !as_rows(a, rows, &ra) || (b && !as_rows(*b, rows, &rb))) return false;
    auto aligned = [](const Rows& r) { return reinterpret_cast<uintptr_t>(r.p) % 16 == 0 && r.stride % 4 == 0; };
    const bool vec = cols % 4 == 0 && aligned(o) && aligned(ra) && (!b || aligned(rb));
    const dim3 grid(static_cast<unsigned>(blocks_for(cols, 4 * kThreads)),
                    static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
    k_rows<O><<<grid, kThreads, 0, stream>>>(o, ra, rb, s, cols, rows, vec);
    return true;
}

void op_binary(const Tensor& node, cudaStream_t stream) {
    const int64_t n = node.n_elements();
    if (n == 0) return;
    const Tensor &a = *node.src[0], &b = *node.src[1];
    if (node.op == Op::Add ? launch_rows<RowOp::Add>(node, a, &b, 0.0f, stream)
                           : launch_rows<RowOp::Mul>(node, a, &b, 0.0f, stream))
        return;
    k_binary<<<grid_for(n), kThreads, 0, stream>>>(view_of(node), view_of(*node.src[0]), view_of(*node.src[1]),
                                                   node.op == Op::Add, n);
}

void op_unary(const Tensor& node, cudaStream_t stream) {
    const int64_t n = node.n_elements();
    if (n == 0) return;
    const Tensor& a = *node.src[0];
    const float s = node.param_f(0);
    bool done = false;
    switch (node.op) {
        case Op::Scale:
            done = launch_rows<RowOp::Scale>(node, a, nullptr, s, stream);
            break;
        case Op::Silu:
            done = launch_rows<RowOp::Silu>(node, a, nullptr, s, stream);
            break;
        case Op::Gelu:
            done = launch_rows<RowOp::Gelu>(node, a, nullptr, s, stream);
            break;
        case Op::Tanh:
            done = launch_rows<RowOp::Tanh>(node, a, nullptr, s, stream);
            break;
        case Op::GeluErf:
            done = launch_rows<RowOp::GeluErf>(node, a, nullptr, s, stream);
            break;
        default:
            break;
    }
    if (done) return;
    k_unary<<<grid_for(n), kThreads, 0, stream>>>(view_of(node), view_of(*node.src[0]), node.op, node.param_f(0), n);
}

void op_gate(const Tensor& node, cudaStream_t stream) {
    const int64_t n = node.n_elements();
    if (n == 0) return;
    const Tensor &a = *node.src[0], &b = *node.src[1];
    if (b.n_elements() == n && (node.op == Op::Swiglu ? launch_rows<RowOp::Swiglu>(node, a, &b, 0.0f, stream)
                                                      : launch_rows<RowOp::Geglu>(node, a, &b, 0.0f, stream)))
        return;
    k_gate<<<grid_for(n), kThreads, 0, stream>>>(view_of(node), view_of(*node.src[0]), view_of(*node.src[1]),
                                                 node.op == Op::Swiglu, n);
}

void op_copy(const Tensor& node, cudaStream_t stream) {
    const Tensor& src = *node.src[0];
    const int64_t n = src.n_elements();
    if (n == 0) return;
    // For cpy the node is a view of the destination with the destination's shape; for cont
    // it has the source's shape.
    if (is_element_type(src.type) && is_element_type(node.type)) {
        k_copy_elem<<<grid_for(n), kThreads, 0, stream>>>(view_of(node), view_of(src), node.type, src.type, n);
    } else if (node.type == DType::F32 && src.type != DType::F32) {  // dequantizing, contiguous rows
        dequantize_rows(src.type, (src.root()->flags & kFlagDeviceLayout) != 0, src.data, src.nb[1], nullptr,
                        static_cast<float*>(node.data), node.nb[1] / sizeof(float), src.ne[0], src.n_rows(), stream);
    } else if (src.type == node.type) {
        k_copy_rows<<<static_cast<int>(std::min<int64_t>(src.n_rows(), 65535)), 128, 0, stream>>>(
            view_of(node), view_of(src), static_cast<int64_t>(row_size(src.type, src.ne[0])), src.n_rows());
    } else {  // F32 -> Q8_0
        const int64_t warps = src.n_rows() * (src.ne[0] / 32);
        k_copy_q8_0<<<grid_for(warps * 32), kThreads, 0, stream>>>(view_of(node), view_of(src), src.n_rows());
    }
}

void op_concat(const Tensor& node, cudaStream_t stream) {
    const int64_t n = node.n_elements();
    if (n == 0) return;
    k_concat<<<grid_for(n), kThreads, 0, stream>>>(view_of(node), view_of(*node.src[0]), view_of(*node.src[1]),
                                                   node.params[0], n);
}

void op_argmax(const Tensor& node, cudaStream_t stream) {
    const Tensor& a = *node.src[0];
    if (a.ne[1] == 0) return;
    k_argmax<<<static_cast<int>(a.ne[1]), kThreads, 0, stream>>>(static_cast<int32_t*>(node.data), view_of(a));
}

void op_norm(const Tensor& node, cudaStream_t stream) {
    const Tensor& a = *node.src[0];
    if (a.n_rows() == 0) return;
    const float* w = node.op == Op::RmsNorm && node.src[1] ? static_cast<const float*>(node.src[1]->data) : nullptr;
    auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
    const bool vec = a.ne[0] % 4 == 0 && a.ne[0] <= 1024 * 4 * kNormVec && a.nb[1] % 16 == 0 && a.nb[2] % 16 == 0 &&
                     a.nb[3] % 16 == 0 && node.nb[1] % 16 == 0 && node.nb[2] % 16 == 0 && node.nb[3] % 16 == 0 &&
                     aligned(a.data) && aligned(node.data) && (!w || aligned(w)) && a.nb[0] == sizeof(float);
    if (vec) {
        const int64_t per_thread = 4 * kNormVec;
        const int threads = static_cast<int>(std::max<int64_t>(32, blocks_for(a.ne[0], per_thread * 32) * 32));
        k_norm_vec<<<static_cast<int>(a.n_rows()), threads, 0, stream>>>(view_of(node), view_of(a), w, node.param_f(0),
                                                                         node.op == Op::RmsNorm);
        return;
    }
    const int threads = a.ne[0] >= 1024 ? 512 : a.ne[0] >= 256 ? 256 : 128;
    k_norm<<<static_cast<int>(a.n_rows()), threads, 0, stream>>>(view_of(node), view_of(a), w, node.param_f(0),
                                                                 node.op == Op::RmsNorm);
}

void op_soft_max(const Tensor& node, cudaStream_t stream) {
    const Tensor& a = *node.src[0];
    const Tensor* mask = node.src[1];
    if (a.n_rows() == 0) return;
    k_soft_max<<<static_cast<int>(a.n_rows()), kThreads, 0, stream>>>(
        view_of(node), view_of(a), mask ? static_cast<const char*>(mask->data) : nullptr,
        mask ? static_cast<int64_t>(mask->nb[1]) : 0, mask && mask->type == DType::F16, node.param_f(0));
}

}  // namespace tessera::cuda
