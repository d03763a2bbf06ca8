// The CUDA backend's element-wise, row-wise and data-movement kernels. Indexing is plain
// (one thread per element or a block per row, byte strides as the tensors carry them):
// these nodes move a few megabytes per token, next to the gigabytes of the matrix products.
// Element-wise nodes on F32 rows of one stride each (the common case: whole tensors, and row
// views) take k_rows, four elements per thread with no index division; a prompt's element-wise
// nodes move hundreds of megabytes, and the general kernels' 64-bit divisions cost 5x there.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

#include "backends/cuda/common.cuh"
#include "backends/cuda/device_math.cuh"
#include "backends/cuda/mulmat.h"
#include "backends/cuda/ops.h"
#include "tensor/graph.h"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float load_elem(const char* p, DType t) {
    if (t == DType::F32) return *reinterpret_cast<const float*>(p);
    if (t == DType::F16) return __half2float(*reinterpret_cast<const __half*>(p));
    return __bfloat162float(*reinterpret_cast<const __nv_bfloat16*>(p));
}

__device__ __forceinline__ void store_elem(char* p, DType t, float v) {
    if (t == DType::F32)
        *reinterpret_cast<float*>(p) = v;
    else if (t == DType::F16)
        *reinterpret_cast<__half*>(p) = __float2half_rn(v);
    else
        *reinterpret_cast<__nv_bfloat16*>(p) = __float2bfloat16_rn(v);
}

// Element i (logical, ne[0] fastest) of a view: its byte offset.
__device__ __forceinline__ int64_t offset_of(const View& v, int64_t i) {
    const int64_t i0 = i % v.ne[0];
    int64_t r = i / v.ne[0];
    const int64_t i1 = r % v.ne[1];
    r /= v.ne[1];
    const int64_t i2 = r % v.ne[2];
    const int64_t i3 = r / v.ne[2];
    return i0 * v.nb[0] + i1 * v.nb[1] + i2 * v.nb[2] + i3 * v.nb[3];
}

__device__ __forceinline__ int64_t row_offset(const View& v, int64_t r) {
    const int64_t i1 = r % v.ne[1];
    r /= v.ne[1];
    return i1 * v.nb[1] + (r % v.ne[2]) * v.nb[2] + (r / v.ne[2]) * v.nb[3];
}

int grid_for(int64_t n) { return static_cast<int>(std::min<int64_t>(blocks_for(n, kThreads), 1 << 30)); }

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

// One warp quantizes one block of 32 floats to Q8_0, as the CPU reference does: the scale
// is max|x| / 127 rounded to F16, values rounded to nearest (ties to even).
struct BlockQ8_0 {
    __half d;
    int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block");

__device__ __forceinline__ void quantize_q8_0_warp(float x, BlockQ8_0* y) {
    const int lane = threadIdx.x % 32;
    const float amax = warp_max(fabsf(x));
    const __half dh = __float2half_rn(amax / 127.0f);
    const float d = __half2float(dh);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    float v = fminf(fmaxf(x * id, -127.0f), 127.0f);
    y->qs[lane] = static_cast<int8_t>(__float2int_rn(v));
    if (lane == 0) y->d = dh;
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

// ---- row writes (KV cache) and RoPE ----

struct RopeArgs {
    int n_dims;
    bool neox;
    float freq_base, freq_scale, ext_factor, attn_factor;
    float corr0, corr1;
    const float* freq_factors;
};

float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return n_dims * std::log(n_ctx_orig / (n_rot * 2.0f * 3.14159265358979f)) / (2.0f * std::log(base));
}

RopeArgs rope_args(const Tensor& node, const Tensor* ff) {
    RopeArgs a;
    a.n_dims = node.params[0];
    a.neox = node.params[1] == static_cast<int32_t>(RopeMode::NeoX);
    a.freq_base = node.param_f(3);
    a.freq_scale = node.param_f(4);
    a.ext_factor = node.param_f(5);
    a.attn_factor = node.param_f(6);
    a.corr0 = a.corr1 = 0.0f;
    const int n_ctx_orig = node.params[2];
    if (a.ext_factor != 0.0f && n_ctx_orig > 0) {
        a.corr0 = std::max(0.0f, std::floor(yarn_corr_dim(a.n_dims, n_ctx_orig, node.param_f(7), a.freq_base)));
        a.corr1 = std::min(static_cast<float>(a.n_dims - 1),
                           std::ceil(yarn_corr_dim(a.n_dims, n_ctx_orig, node.param_f(8), a.freq_base)));
    }
    a.freq_factors = ff ? static_cast<const float*>(ff->data) : nullptr;
    return a;
}

// The angle of pair i0 at position p, in double as the CPU computes it (at positions in the
// thousands, float products lose whole hundredths of a radian).
__device__ void rope_angle(const RopeArgs& a, int32_t p, int i0, float* c, float* s) {
    const double factor = a.freq_factors ? a.freq_factors[i0 / 2] : 1.0;
    const double te_d = p * pow(static_cast<double>(a.freq_base), -static_cast<double>(i0) / a.n_dims) / factor;
    double theta = a.freq_scale * te_d;
    float mscale = a.attn_factor;
    if (a.ext_factor != 0.0f) {
        const float y = (i0 / 2 - a.corr0) / fmaxf(0.001f, a.corr1 - a.corr0);
        const double mix = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * a.ext_factor;
        theta = theta * (1.0 - mix) + te_d * mix;
        mscale *= 1.0f + 0.1f * logf(1.0f / a.freq_scale);
    }
    double sd, cd;
    sincos(theta, &sd, &cd);
    *c = static_cast<float>(cd) * mscale;
    *s = static_cast<float>(sd) * mscale;
}

// Query heads that one thread rotates with one angle (rope_rows): the double-precision angle
// costs far more than rotating a pair, and every head of a token shares it.
constexpr int kRopeHeads = 8;

// The rotation of dimensions ia, ib of a head by pair index pr (angle index i0 = 2 pr).
__device__ __forceinline__ void rope_pair(const RopeArgs& a, int pr, int* ia, int* ib) {
    *ia = a.neox ? pr : 2 * pr;
    *ib = a.neox ? pr + a.n_dims / 2 : 2 * pr + 1;
}

// x [head, n_head, n_tokens] rotated into out, as thread `first` of `threads` (grid-stride):
// first one item per (pair, group of kRopeHeads heads, token), computing the angle once for
// its heads, then one per pass-through element (past n_dims).
__device__ void rope_rows(View out, View x, const int32_t* pos, RopeArgs a, int64_t first, int64_t threads) {
    const int64_t head = x.ne[0], n_head = x.ne[1];
    const int half = a.n_dims / 2;
    const int64_t groups = (n_head + kRopeHeads - 1) / kRopeHeads;
    const int64_t n_rot = half * groups * x.ne[2];
    const int64_t pass = head - a.n_dims;
    const int64_t n = n_rot + pass * n_head * x.ne[2];
    for (int64_t i = first; i < n; i += threads) {
        if (i < n_rot) {
            const int pr = static_cast<int>(i % half);
            const int64_t rest = i / half, hg = rest % groups, it = rest / groups;
            int ia, ib;
            rope_pair(a, pr, &ia, &ib);
            // The heads' loads first, all in flight while the angle is computed.
            const int64_t h0 = hg * kRopeHeads;
            float x0[kRopeHeads], x1[kRopeHeads];
#pragma unroll
            for (int u = 0; u < kRopeHeads; ++u) {
                if (h0 + u >= n_head) break;
                const float* in = reinterpret_cast<const float*>(x.data + (h0 + u) * x.nb[1] + it * x.nb[2]);
                x0[u] = in[ia];
                x1[u] = in[ib];
            }
            float c, s;
            rope_angle(a, pos[it], 2 * pr, &c, &s);
#pragma unroll
            for (int u = 0; u < kRopeHeads; ++u) {
                if (h0 + u >= n_head) break;
                float* o = reinterpret_cast<float*>(out.data + (h0 + u) * out.nb[1] + it * out.nb[2]);
                o[ia] = x0[u] * c - x1[u] * s;
                o[ib] = x0[u] * s + x1[u] * c;
            }
        } else {
            const int64_t j = i - n_rot;
            const int64_t e = a.n_dims + j % pass, r = j / pass, ih = r % n_head, it = r / n_head;
            const float* in = reinterpret_cast<const float*>(x.data + ih * x.nb[1] + it * x.nb[2]);
            reinterpret_cast<float*>(out.data + ih * out.nb[1] + it * out.nb[2])[e] = in[e];
        }
    }
}

// Work items of rope_rows.
int64_t rope_items(const Tensor& x, const RopeArgs& a) {
    const int64_t groups = (x.ne[1] + kRopeHeads - 1) / kRopeHeads;
    return (a.n_dims / 2 * groups + (x.ne[0] - a.n_dims) * x.ne[1]) * x.ne[2];
}

__global__ void k_rope(View out, View x, const int32_t* pos, RopeArgs a) {
    rope_rows(out, x, pos, a, blockIdx.x * int64_t{blockDim.x} + threadIdx.x, int64_t{gridDim.x} * blockDim.x);
}

__device__ __forceinline__ int64_t index_at(const void* idx, bool i64, int64_t j) {
    return i64 ? static_cast<const int64_t*>(idx)[j] : static_cast<const int32_t*>(idx)[j];
}

// A set_rows or rope_set_rows node as its kernel takes it: `rows` source rows in `chunks`
// chunks of `chunk` elements (whole heads when `pos` is set).
// Floats of a rotated set_rows chunk (shared memory), at most.
constexpr int64_t kRopeChunk = 4096;

struct SetRowsArgs {
    View dst;
    DType dt;
    View src;
    const void* idx;
    bool idx64;
    const int32_t* pos;  // rope_set_rows: the tokens' positions
    RopeArgs a;
    int64_t chunk, rows, chunks;
};

// Block (j, c) of a set_rows: chunk c of source row j, rotated when `pos` is set, gathered in
// shared memory (`row`, chunk floats), then converted into destination row idx[j]. Rows
// outside the destination are skipped (the runtime validates positions).
__device__ void set_rows_block(const SetRowsArgs& p, int64_t j, int64_t c, float* row) {
    const View &dst = p.dst, &src = p.src;
    const RopeArgs& a = p.a;
    const int32_t* pos = p.pos;
    const DType dt = p.dt;
    const int64_t chunk = p.chunk;
    const int64_t target = index_at(p.idx, p.idx64, j);
    if (target < 0 || target >= dst.ne[1]) return;
    const int64_t c0 = c * chunk;
    const int64_t width = min(dst.ne[0] - c0, chunk);
    if (pos) {  // src: x [head, n_head, n]; token j's heads side by side, the chunk whole heads
        const int64_t head = src.ne[0], h0 = c0 / head, nh = width / head;
        const int half = a.n_dims / 2;
        for (int pr = threadIdx.x; pr < half; pr += blockDim.x) {
            int ia, ib;
            rope_pair(a, pr, &ia, &ib);
            float c = 0.0f, s = 0.0f;
            // Heads in groups of kRopeHeads, each group's loads in flight together (the first
            // group's while the angle is computed).
            for (int64_t hb = 0; hb < nh; hb += kRopeHeads) {
                float x0[kRopeHeads], x1[kRopeHeads];
#pragma unroll
                for (int u = 0; u < kRopeHeads; ++u) {
                    if (hb + u >= nh) break;
                    const float* in =
                        reinterpret_cast<const float*>(src.data + (h0 + hb + u) * src.nb[1] + j * src.nb[2]);
                    x0[u] = in[ia];
                    x1[u] = in[ib];
                }
                if (hb == 0) rope_angle(a, pos[j], 2 * pr, &c, &s);
#pragma unroll
                for (int u = 0; u < kRopeHeads; ++u) {
                    if (hb + u >= nh) break;
                    row[(hb + u) * head + ia] = x0[u] * c - x1[u] * s;
                    row[(hb + u) * head + ib] = x0[u] * s + x1[u] * c;
                }
            }
        }
        const int64_t pass = head - a.n_dims;
        for (int64_t e = threadIdx.x; e < nh * pass; e += blockDim.x) {
            const int64_t h = e / pass, i = a.n_dims + e % pass;
            row[h * head + i] = reinterpret_cast<const float*>(src.data + (h0 + h) * src.nb[1] + j * src.nb[2])[i];
        }
    } else {
        const float* in = reinterpret_cast<const float*>(src.data + j * src.nb[1]) + c0;
        for (int64_t e = threadIdx.x; e < width; e += blockDim.x) row[e] = in[e];
    }
    __syncthreads();
    if (dt == DType::Q8_0) {
        BlockQ8_0* out = reinterpret_cast<BlockQ8_0*>(dst.data + target * dst.nb[1]) + c0 / 32;
        const int64_t n_blocks = width / 32;
        for (int64_t b = threadIdx.x / 32; b < n_blocks; b += blockDim.x / 32)
            quantize_q8_0_warp(row[b * 32 + threadIdx.x % 32], out + b);
    } else {
        const int64_t size = dt == DType::F32 ? 4 : 2;
        char* out = dst.data + target * dst.nb[1] + c0 * size;
        for (int64_t e = threadIdx.x; e < width; e += blockDim.x) store_elem(out + e * size, dt, row[e]);
    }
}

// Grid (rows, chunks).
__global__ void k_set_rows(SetRowsArgs p) {
    extern __shared__ float row[];
    set_rows_block(p, blockIdx.x, blockIdx.y, row);
}

// A decoding step's RoPE of the queries and its key (rotated) and value cache writes in one
// launch: blocks [0, q_blocks) rotate the queries, the next k.rows * k.chunks write the keys,
// the rest the values. The three read and write disjoint tensors.
__global__ void k_rope_kv(View q_out, View q, const int32_t* q_pos, RopeArgs qa, int64_t q_blocks, SetRowsArgs k,
                          SetRowsArgs v) {
    pdl_wait();  // launched by launch_dependent (common.cuh)
    pdl_trigger();
    extern __shared__ float row[];
    int64_t b = blockIdx.x;
    if (b < q_blocks) {
        rope_rows(q_out, q, q_pos, qa, b * blockDim.x + threadIdx.x, q_blocks * blockDim.x);
        return;
    }
    b -= q_blocks;
    if (b < k.rows * k.chunks) {
        set_rows_block(k, b % k.rows, b / k.rows, row);
        return;
    }
    b -= k.rows * k.chunks;
    set_rows_block(v, b % v.rows, b / v.rows, row);
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

namespace {

SetRowsArgs set_rows_args(const Tensor& node) {
    const Tensor& src = *node.src[1];
    const Tensor& idx = *node.src[2];
    const Tensor* pos = node.src[3];
    SetRowsArgs p;
    p.dst = view_of(node);
    p.dt = node.type;
    p.src = view_of(src);
    p.idx = idx.data;
    p.idx64 = idx.type == DType::I64;
    p.pos = pos ? static_cast<const int32_t*>(pos->data) : nullptr;
    p.a = pos ? rope_args(node, node.src[4]) : RopeArgs{};
    p.rows = pos ? src.ne[2] : src.ne[1];
    // Chunks: whole heads when rotating, as many as fit kRopeChunk floats (a block computes each
    // angle once for its heads; a Q8_0 block must not straddle two heads), else 256 elements
    // (whole Q8_0 blocks); one chunk for the whole row where neither fits.
    const int64_t width = node.ne[0];
    p.chunk = width;
    if (pos && width % src.ne[0] == 0 && (node.type != DType::Q8_0 || src.ne[0] % 32 == 0))
        p.chunk = src.ne[0] * std::clamp<int64_t>(kRopeChunk / src.ne[0], 1, width / src.ne[0]);
    else if (!pos)
        p.chunk = std::min<int64_t>(width, 256);
    p.chunks = blocks_for(width, p.chunk);
    return p;
}

}  // namespace

void op_set_rows(const Tensor& node, cudaStream_t stream) {
    const SetRowsArgs p = set_rows_args(node);
    if (p.rows == 0) return;
    const dim3 grid(static_cast<unsigned>(p.rows), static_cast<unsigned>(p.chunks));
    k_set_rows<<<grid, kThreads, static_cast<size_t>(p.chunk) * sizeof(float), stream>>>(p);
}

bool op_rope_kv(const Tensor& rope, const Tensor& k, const Tensor& v, cudaStream_t stream) {
    const Tensor& x = *rope.src[0];
    const int64_t n = x.n_elements();
    const SetRowsArgs kp = set_rows_args(k), vp = set_rows_args(v);
    if (n == 0 || kp.rows == 0 || vp.rows == 0 || !kp.pos || vp.pos) return false;
    const int64_t q_blocks = std::min<int64_t>(blocks_for(rope_items(x, rope_args(rope, rope.src[2])), kThreads), 1024);
    const int64_t blocks = q_blocks + kp.rows * kp.chunks + vp.rows * vp.chunks;
    if (blocks > (int64_t{1} << 31) - 1) return false;
    const size_t smem = static_cast<size_t>(std::max(kp.chunk, vp.chunk)) * sizeof(float);
    launch_dependent(k_rope_kv, static_cast<unsigned>(blocks), kThreads, smem, stream, view_of(rope), view_of(x),
                     static_cast<const int32_t*>(rope.src[1]->data), rope_args(rope, rope.src[2]), q_blocks, kp, vp);
    return true;
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

void op_rope(const Tensor& node, cudaStream_t stream) {
    const Tensor& x = *node.src[0];
    const int64_t n = x.n_elements();
    if (n == 0) return;
    k_rope<<<grid_for(rope_items(x, rope_args(node, node.src[2]))), kThreads, 0, stream>>>(
        view_of(node), view_of(x), static_cast<const int32_t*>(node.src[1]->data), rope_args(node, node.src[2]));
}

}  // namespace tessera::cuda
