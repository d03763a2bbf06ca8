// RoPE and row writes into the KV cache on the GPU: rope, set_rows, rope_set_rows (the key
// rotated as it is written), and a decoding step's query rotation with its key and value
// writes in one launch. Angles in double, as the CPU computes them.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

#include "backends/cuda/elems.cuh"
#include "backends/cuda/ops.h"
#include "tensor/graph.h"

namespace tessera::cuda {

namespace {

using namespace elems;

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

}  // namespace

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

void op_rope(const Tensor& node, cudaStream_t stream) {
    const Tensor& x = *node.src[0];
    const int64_t n = x.n_elements();
    if (n == 0) return;
    k_rope<<<grid_for(rope_items(x, rope_args(node, node.src[2]))), kThreads, 0, stream>>>(
        view_of(node), view_of(x), static_cast<const int32_t*>(node.src[1]->data), rope_args(node, node.src[2]));
}

}  // namespace tessera::cuda
