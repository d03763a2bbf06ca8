// Flash attention on the GPU: one warp per (query row, head), walking the keys with an
// online softmax, its lanes splitting the head dimension (lane l holds elements l, l + 32,
// ...). Keys a row's mask hides (-inf) cost no dot product, so a causal prompt does half
// the work. Decoding has few rows, so the keys are also split into chunks, each chunk's
// (max, sum, weighted values) written to scratch and merged by a second kernel: the cache
// is then read by every multiprocessor, not by one block per head.
#include <cuda_fp16.h>

#include <algorithm>

#include "backends/cuda/common.cuh"
#include "backends/cuda/ops.h"

namespace tessera::cuda {

namespace {

constexpr int kWarps = 4;           // warps (rows) per block
constexpr int kMaxPerLane = 8;      // head sizes up to 256
constexpr int64_t kMinChunk = 256;  // keys per split, at least

struct BlockQ8_0 {
    __half d;
    int8_t qs[32];
};

// Element e of a K or V row.
__device__ __forceinline__ float kv_at(const char* row, DType t, int e) {
    if (t == DType::F16) return __half2float(reinterpret_cast<const __half*>(row)[e]);
    if (t == DType::F32) return reinterpret_cast<const float*>(row)[e];
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(row) + e / 32;
    return __half2float(b->d) * static_cast<float>(b->qs[e % 32]);
}

struct Args {
    View q, k, v, out;
    DType kt, vt;
    const char* mask;
    int64_t mask_nb1;
    bool mask_f16;
    float scale, softcap;
    int64_t n_rows;  // n_q * H * S
    int64_t chunk;   // keys per split
    int n_splits;
    float* partial;  // n_splits x n_rows x (Dv + 2) floats, when n_splits > 1
};

__global__ void __launch_bounds__(kWarps * 32) k_flash_attn(Args a) {
    const int lane = threadIdx.x % 32;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
    if (row >= a.n_rows) return;
    const int split = blockIdx.y;
    const int64_t H = a.q.ne[2], n_q = a.q.ne[1];
    const int64_t h = row % H, i = (row / H) % n_q, s = row / (H * n_q);
    const int64_t h_kv = h / (H / a.k.ne[2]);
    const int D = static_cast<int>(a.q.ne[0]), Dv = static_cast<int>(a.v.ne[0]);

    float q[kMaxPerLane], acc[kMaxPerLane];
    const float* qr = reinterpret_cast<const float*>(a.q.data + i * a.q.nb[1] + h * a.q.nb[2] + s * a.q.nb[3]);
#pragma unroll
    for (int t = 0; t < kMaxPerLane; ++t) {
        const int e = lane + 32 * t;
        q[t] = e < D ? qr[e] : 0.0f;
        acc[t] = 0.0f;
    }
    const char* kbase = a.k.data + h_kv * a.k.nb[2] + s * a.k.nb[3];
    const char* vbase = a.v.data + h_kv * a.v.nb[2] + s * a.v.nb[3];
    const char* mrow = a.mask ? a.mask + i * a.mask_nb1 : nullptr;
    const int64_t n_kv = a.k.ne[1];
    const int64_t j0 = split * a.chunk, j1 = min(n_kv, j0 + a.chunk);
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = j0; j < j1; ++j) {
        float mv = 0.0f;
        if (mrow) {
            mv = a.mask_f16 ? __half2float(reinterpret_cast<const __half*>(mrow)[j])
                            : reinterpret_cast<const float*>(mrow)[j];
            if (mv == -INFINITY) continue;
        }
        const char* kr = kbase + j * a.k.nb[1];
        float d = 0.0f;
#pragma unroll
        for (int t = 0; t < kMaxPerLane; ++t) {
            const int e = lane + 32 * t;
            if (e < D) d += q[t] * kv_at(kr, a.kt, e);
        }
        for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
        float sc = a.softcap > 0.0f ? a.softcap * tanhf(d * a.scale / a.softcap) : d * a.scale;
        sc += mv;
        if (sc == -INFINITY) continue;
        const float m_new = fmaxf(m, sc);
        const float c = __expf(m - m_new);  // 0 on the first key (m = -inf)
        const float p = __expf(sc - m_new);
        l = l * c + p;
        const char* vr = vbase + j * a.v.nb[1];
#pragma unroll
        for (int t = 0; t < kMaxPerLane; ++t) {
            const int e = lane + 32 * t;
            if (e < Dv) acc[t] = acc[t] * c + p * kv_at(vr, a.vt, e);
        }
        m = m_new;
    }
    if (a.n_splits == 1) {
        float* o = reinterpret_cast<float*>(a.out.data + h * a.out.nb[1] + i * a.out.nb[2] + s * a.out.nb[3]);
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
        for (int t = 0; t < kMaxPerLane; ++t) {
            const int e = lane + 32 * t;
            if (e < Dv) o[e] = acc[t] * inv;
        }
        return;
    }
    float* p = a.partial + (static_cast<int64_t>(split) * a.n_rows + row) * (Dv + 2);
    if (lane == 0) p[0] = m, p[1] = l;
#pragma unroll
    for (int t = 0; t < kMaxPerLane; ++t) {
        const int e = lane + 32 * t;
        if (e < Dv) p[2 + e] = acc[t];
    }
}

// One warp per row merges the splits' partial results.
__global__ void k_flash_merge(Args a) {
    const int lane = threadIdx.x % 32;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
    if (row >= a.n_rows) return;
    const int64_t H = a.q.ne[2], n_q = a.q.ne[1];
    const int64_t h = row % H, i = (row / H) % n_q, s = row / (H * n_q);
    const int Dv = static_cast<int>(a.v.ne[0]);
    const int64_t stride = a.n_rows * (Dv + 2);
    const float* base = a.partial + row * (Dv + 2);
    float m = -INFINITY;
    for (int sp = 0; sp < a.n_splits; ++sp) m = fmaxf(m, base[sp * stride]);
    float l = 0.0f;
    for (int sp = 0; sp < a.n_splits; ++sp) {
        const float ms = base[sp * stride];
        if (ms != -INFINITY) l += base[sp * stride + 1] * __expf(ms - m);
    }
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    float* o = reinterpret_cast<float*>(a.out.data + h * a.out.nb[1] + i * a.out.nb[2] + s * a.out.nb[3]);
    for (int e = lane; e < Dv; e += 32) {
        float sum = 0.0f;
        for (int sp = 0; sp < a.n_splits; ++sp) {
            const float ms = base[sp * stride];
            if (ms != -INFINITY) sum += base[sp * stride + 2 + e] * __expf(ms - m);
        }
        o[e] = sum * inv;
    }
}

// Splits for a node: enough blocks to cover the multiprocessors several times over when
// there are few rows (decoding), one when the rows alone fill the GPU (prompts).
int n_splits_for(const Tensor& node) {
    const Tensor& q = *node.src[0];
    const Tensor& k = *node.src[1];
    const int64_t rows = q.ne[1] * q.ne[2] * q.ne[3];
    const int64_t row_blocks = (rows + kWarps - 1) / kWarps;
    if (row_blocks >= 512) return 1;
    const int64_t want = std::max<int64_t>(1, 1024 / row_blocks);
    const int64_t by_len = std::max<int64_t>(1, k.ne[1] / kMinChunk);
    return static_cast<int>(std::min(want, by_len));
}

}  // namespace

bool flash_attn_supports(DType kv) { return kv == DType::F16 || kv == DType::F32 || kv == DType::Q8_0; }

size_t flash_attn_work_size(const Tensor& node) {
    const int splits = n_splits_for(node);
    if (splits == 1) return 0;
    const Tensor& q = *node.src[0];
    const int64_t rows = q.ne[1] * q.ne[2] * q.ne[3];
    return static_cast<size_t>(splits) * static_cast<size_t>(rows) * static_cast<size_t>(node.src[2]->ne[0] + 2) *
           sizeof(float);
}

void op_flash_attn(const Tensor& node, void* work, cudaStream_t stream) {
    Args a;
    a.q = view_of(*node.src[0]);
    a.k = view_of(*node.src[1]);
    a.v = view_of(*node.src[2]);
    a.out = view_of(node);
    a.kt = node.src[1]->type;
    a.vt = node.src[2]->type;
    const Tensor* mask = node.src[3];
    a.mask = mask ? static_cast<const char*>(mask->data) : nullptr;
    a.mask_nb1 = mask ? static_cast<int64_t>(mask->nb[1]) : 0;
    a.mask_f16 = mask && mask->type == DType::F16;
    a.scale = node.param_f(0);
    a.softcap = node.param_f(1);
    a.n_rows = a.q.ne[1] * a.q.ne[2] * a.q.ne[3];
    if (a.n_rows == 0) return;
    a.n_splits = n_splits_for(node);
    a.chunk = (a.k.ne[1] + a.n_splits - 1) / a.n_splits;
    a.partial = static_cast<float*>(work);
    const dim3 grid(static_cast<unsigned>((a.n_rows + kWarps - 1) / kWarps), static_cast<unsigned>(a.n_splits));
    k_flash_attn<<<grid, kWarps * 32, 0, stream>>>(a);
    if (a.n_splits > 1)
        k_flash_merge<<<static_cast<unsigned>((a.n_rows + kWarps - 1) / kWarps), kWarps * 32, 0, stream>>>(a);
}

}  // namespace tessera::cuda
