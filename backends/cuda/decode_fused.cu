// Fused row-wise kernels of decoding steps (decode_fused.h).
#include "backends/cuda/decode_fused.h"

#include <algorithm>

#include "backends/cuda/common.cuh"
#include "backends/cuda/device_math.cuh"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxNormVec = 4;  // float4s per thread of k_rms_norm_rows

// The int8 form of 32 elements held 4 apiece by 8 consecutive lanes (lane t holds elements
// 4 (t % 8) .. + 3 of the block), as quantize_block32 computes it. All 32 lanes take part;
// `active` lanes write (their 4 quants, and the first lane of 8 the block's ds).
__device__ __forceinline__ void quantize_block32_x4(float4 v, bool active, int8_t* qs4, float2* ds) {
    float amax = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
#pragma unroll
    for (int o = 1; o < 8; o <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const int q0 = __float2int_rn(v.x * id), q1 = __float2int_rn(v.y * id);
    const int q2 = __float2int_rn(v.z * id), q3 = __float2int_rn(v.w * id);
    int sum = q0 + q1 + q2 + q3;
#pragma unroll
    for (int o = 1; o < 8; o <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (!active) return;
    *reinterpret_cast<char4*>(qs4) = make_char4(static_cast<signed char>(q0), static_cast<signed char>(q1),
                                                static_cast<signed char>(q2), static_cast<signed char>(q3));
    if (threadIdx.x % 8 == 0) *ds = make_float2(d, d * static_cast<float>(sum));
}

__device__ __forceinline__ float4 add4(float4 a, float4 b) {
    return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

// Grid: one block per row, of a multiple of 32 threads; thread t holds the row's float4s
// t, t + blockDim, ... (V of them) in registers, so the row is read once and nothing waits on
// a reload. Rows and the weight are 16-byte aligned; k is a multiple of 32, so each 32-element
// block lies with 8 consecutive lanes.
template <int V>
__global__ void __launch_bounds__(1024) k_rms_norm_rows(NormRows p, DecodeActs q) {
    pdl_wait();  // launched by launch_dependent (common.cuh)
    pdl_trigger();
    __shared__ float scratch[32];
    const int64_t r = blockIdx.x;
    const int n4 = static_cast<int>(p.k / 4);
    const float4* a = reinterpret_cast<const float4*>(p.a + r * p.a_stride);
    const float4* b = p.b ? reinterpret_cast<const float4*>(p.b + r * p.b_stride) : nullptr;
    float4* sum = reinterpret_cast<float4*>(p.sum + r * p.sum_stride);
    float4 x[V];
    float ss = 0.0f;
#pragma unroll
    for (int u = 0; u < V; ++u) {
        const int f = threadIdx.x + u * blockDim.x;
        x[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (f < n4) {
            x[u] = a[f];
            if (b) {
                x[u] = add4(x[u], b[f]);
                sum[f] = x[u];
            }
        }
        ss += x[u].x * x[u].x + x[u].y * x[u].y + x[u].z * x[u].z + x[u].w * x[u].w;
    }
    ss = block_reduce<false>(ss, scratch);
    const float s = 1.0f / sqrtf(ss / static_cast<float>(p.k) + p.eps);
    float4* y = reinterpret_cast<float4*>(p.y + r * p.y_stride);
    const float4* w = reinterpret_cast<const float4*>(p.weight);
#pragma unroll
    for (int u = 0; u < V; ++u) {
        const int f = threadIdx.x + u * blockDim.x;
        const bool active = f < n4;
        float4 v = make_float4(x[u].x * s, x[u].y * s, x[u].z * s, x[u].w * s);
        if (active) {
            if (w) {
                const float4 wv = w[f];
                v.x *= wv.x, v.y *= wv.y, v.z *= wv.z, v.w *= wv.w;
            }
            y[f] = v;
        }
        if (q.qs) quantize_block32_x4(v, active, q.qs + r * p.k + 4 * f, q.ds + r * (p.k / 32) + f / 8);
    }
}

// Grid: (ceil(k / 256), rows), one element per thread.
__global__ void __launch_bounds__(kThreads)
    k_swiglu_rows(const float* g, size_t g_stride, const float* u, size_t u_stride, float* y, size_t y_stride,
                  int64_t k, DecodeActs q) {
    pdl_wait();  // launched by launch_dependent (common.cuh)
    pdl_trigger();
    const int64_t r = blockIdx.y;
    const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
    if (i >= k) return;  // whole warps, k being a multiple of 32
    const float v = silu(g[r * g_stride + i]) * u[r * u_stride + i];
    y[r * y_stride + i] = v;
    if (q.qs) quantize_block32(v, q.qs + r * k + (i & ~int64_t{31}), q.ds + r * (k / 32) + i / 32);
}

}  // namespace

bool rms_norm_rows_fit(int64_t k) { return k > 0 && k % 32 == 0 && k <= 4 * kMaxNormVec * 1024; }

void rms_norm_rows(const NormRows& p, DecodeActs q, cudaStream_t stream) {
    if (p.rows <= 0 || p.k <= 0) return;
    NormRows args = p;
    if (!args.b) args.sum = args.y, args.sum_stride = 0;  // unused
    const int64_t n4 = p.k / 4;
    const int threads = static_cast<int>(std::min<int64_t>(1024, blocks_for(n4, 32) * 32));
    const int64_t per_thread = blocks_for(n4, threads);
    const unsigned grid = static_cast<unsigned>(p.rows);
    if (per_thread <= 1)
        launch_dependent(k_rms_norm_rows<1>, grid, threads, 0, stream, args, q);
    else if (per_thread <= 2)
        launch_dependent(k_rms_norm_rows<2>, grid, threads, 0, stream, args, q);
    else
        launch_dependent(k_rms_norm_rows<kMaxNormVec>, grid, threads, 0, stream, args, q);
}

void swiglu_rows(const float* g, size_t g_stride, const float* u, size_t u_stride, float* y, size_t y_stride, int64_t k,
                 int64_t rows, DecodeActs q, cudaStream_t stream) {
    if (rows <= 0 || k <= 0) return;
    const dim3 grid(static_cast<unsigned>(blocks_for(k, kThreads)), static_cast<unsigned>(rows));
    launch_dependent(k_swiglu_rows, grid, kThreads, 0, stream, g, g_stride, u, u_stride, y, y_stride, k, q);
}

}  // namespace tessera::cuda
