// Decoding products (m <= kMmvMaxRows activation rows): quantized weights against int8
// activations (quantize_act_kernel, then mmvq_kernel), float weights against f32 ones
// (mmv_float_kernel). mulmat.cu's header describes the kernels.
#include "backends/cuda/mulmat_decode.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>

#include "backends/cuda/common.cuh"
#include "backends/cuda/device_math.cuh"
#include "backends/cuda/mulmat.h"
#include "backends/cuda/mulmat_dispatch.cuh"
#include "backends/cuda/quant.cuh"

namespace tessera::cuda {

namespace {

// ---- activation quantization (decode products on quantized weights) ----

constexpr int kActBlock = 32;
constexpr size_t kWorkAlign = 16;

// The int8 activation rows as the mmvq kernels read them.
struct ActQ8 {
    const int8_t* qs;  // [m][k]
    const float2* ds;  // [m][nb]: {d, d * sum of the block's qs}
    int64_t k;
    int64_t nb;  // k / 32
    int m;
};

size_t act_qs_bytes(int64_t k, int64_t m) { return (static_cast<size_t>(k) * m + 15) / 16 * 16; }

// blocks = m * k / 32 blocks of 32 activations, one per warp.
__global__ void __launch_bounds__(256)
    quantize_act_kernel(const float* __restrict__ b, size_t b_stride, int64_t k, int64_t blocks,
                        int8_t* __restrict__ qs, float2* __restrict__ ds) {
    pdl_wait();  // launched by launch_dependent (common.cuh)
    pdl_trigger();
    const int64_t blk = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
    if (blk >= blocks) return;
    const int64_t per_row = k / kActBlock;
    const int64_t j = blk / per_row, e0 = (blk % per_row) * kActBlock;
    quantize_block32(b[j * b_stride + e0 + threadIdx.x % kWarp], qs + j * k + e0, ds + blk);
}

// ---- decode products: int8 dot products per 32-element weight slice ----

__device__ __forceinline__ int4 load_act16(const int8_t* p) { return __ldg(reinterpret_cast<const int4*>(p)); }
__device__ __forceinline__ int2 load_act8(const int8_t* p) { return __ldg(reinterpret_cast<const int2*>(p)); }

constexpr int kLow4 = 0x0f0f0f0f;
constexpr int kOnes = 0x01010101;

// sum of v[i] * x[i] over 32 bytes: v[0..3] against x0, v[4..7] against x1.
__device__ __forceinline__ int dot32(const int (&v)[8], int4 x0, int4 x1) {
    int s = __dp4a(v[0], x0.x, 0);
    s = __dp4a(v[1], x0.y, s);
    s = __dp4a(v[2], x0.z, s);
    s = __dp4a(v[3], x0.w, s);
    s = __dp4a(v[4], x1.x, s);
    s = __dp4a(v[5], x1.y, s);
    s = __dp4a(v[6], x1.z, s);
    return __dp4a(v[7], x1.w, s);
}

__device__ __forceinline__ int dot16(const int (&v)[4], int4 x) {
    return __dp4a(v[3], x.w, __dp4a(v[2], x.z, __dp4a(v[1], x.y, __dp4a(v[0], x.x, 0))));
}
__device__ __forceinline__ int sum16(int4 x) {
    return __dp4a(kOnes, x.w, __dp4a(kOnes, x.z, __dp4a(kOnes, x.y, __dp4a(kOnes, x.x, 0))));
}
__device__ __forceinline__ int dot8(int v0, int v1, int2 x) { return __dp4a(v1, x.y, __dp4a(v0, x.x, 0)); }
__device__ __forceinline__ int sum8(int2 x) { return __dp4a(kOnes, x.y, __dp4a(kOnes, x.x, 0)); }

// Legacy 32-blocks: slice s is block s. The weights come as 8 words of bytes q (0..31 for the
// unsigned types); x = d * q + off per element, so dot = d * dx * sum(q x) + off * dx * sum(x).
template <int M>
__device__ __forceinline__ void dot_block32(const int (&v)[8], float d, float off, int64_t s, const ActQ8& a,
                                            float (&acc)[M]) {
#pragma unroll
    for (int j = 0; j < M; ++j) {
        if (j < a.m) {
            const int8_t* x = a.qs + j * a.k + kActBlock * s;
            const int sumi = dot32(v, load_act16(x), load_act16(x + 16));
            const float2 ds = __ldg(a.ds + j * a.nb + s);
            acc[j] += d * ds.x * static_cast<float>(sumi) + off * ds.y;
        }
    }
}

// Nibbles of 4 words: low nibbles are elements 0..15, high 16..31.
__device__ __forceinline__ void split_nibbles(const uint32_t (&q)[4], int (&v)[8]) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        v[i] = static_cast<int>(q[i]) & kLow4;
        v[i + 4] = static_cast<int>(q[i] >> 4) & kLow4;
    }
}

// Q5: adds the fifth bits (bit e of qh) as bit 4 of each byte.
__device__ __forceinline__ void add_fifth_bits(uint32_t qh, int (&v)[8]) {
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] |= static_cast<int>(spread_bits4((qh >> (4 * i)) & 15u) << 4);
}

__device__ __forceinline__ uint32_t load_u32_2(const uint8_t* p) {
    return load_u16(p) | static_cast<uint32_t>(load_u16(p + 2)) << 16;
}

template <DType T, int M, bool S>
__device__ __forceinline__ void vec_dot_slice(const uint8_t* wrow, int64_t s, const ActQ8& a, float (&acc)[M]) {
    if constexpr (S) {
        // A split row (quant.cuh): the block's quants with 16-byte loads, its scale apart.
        const uint4* qs = reinterpret_cast<const uint4*>(wrow + s * kQuantBytes<T>);
        const float d = load_fp16(wrow + a.nb * kQuantBytes<T> + 2 * s);
        int v[8];
        if constexpr (T == DType::Q4_0) {
            const uint4 q = __ldg(qs);
            const uint32_t w[4] = {q.x, q.y, q.z, q.w};
            split_nibbles(w, v);
            dot_block32<M>(v, d, -8.0f * d, s, a, acc);
        } else {
            static_assert(T == DType::Q8_0, "no split rows of this type");
            const uint4 q0 = __ldg(qs), q1 = __ldg(qs + 1);
            const uint32_t w[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = static_cast<int>(w[i]);
            dot_block32<M>(v, d, 0.0f, s, a, acc);
        }
    } else if constexpr (T == DType::Q4_0 || T == DType::Q4_1 || T == DType::Q5_0 || T == DType::Q5_1 ||
                         T == DType::Q8_0) {
        const uint8_t* blk = wrow + s * BlockInfo<T>::kBytes;
        const float d = load_fp16(blk);
        int v[8];
        uint32_t q[4];
        if constexpr (T == DType::Q4_0) {
            load_words<4>(blk + 2, q);
            split_nibbles(q, v);
            dot_block32<M>(v, d, -8.0f * d, s, a, acc);
        } else if constexpr (T == DType::Q4_1) {
            load_words<4>(blk + 4, q);
            split_nibbles(q, v);
            dot_block32<M>(v, d, load_fp16(blk + 2), s, a, acc);
        } else if constexpr (T == DType::Q5_0) {
            const uint32_t qh = load_u32_2(blk + 2);
            load_words<4>(blk + 6, q);
            split_nibbles(q, v);
            add_fifth_bits(qh, v);
            dot_block32<M>(v, d, -16.0f * d, s, a, acc);
        } else if constexpr (T == DType::Q5_1) {
            const uint32_t qh = load_u32_2(blk + 4);
            load_words<4>(blk + 8, q);
            split_nibbles(q, v);
            add_fifth_bits(qh, v);
            dot_block32<M>(v, d, load_fp16(blk + 2), s, a, acc);
        } else {
            uint32_t w[8];
            load_words<8>(blk + 2, w);
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = static_cast<int>(w[i]);
            dot_block32<M>(v, d, 0.0f, s, a, acc);
        }
    } else {
        // k-quants: super-block sb, slice sl (0..7) of it; activation blocks 8 sb .. 8 sb + 7.
        const int64_t sb = s >> 3;
        const int sl = static_cast<int>(s & 7);
        const uint8_t* blk = wrow + sb * BlockInfo<T>::kBytes;
        const int64_t nb = a.nb;
        if constexpr (T == DType::Q4_K || T == DType::Q5_K) {
            // Slice (c, half): bytes 16 half .. 16 half + 15 of qs pair c; low nibbles are
            // elements 64c + 16 half + 0..15 (sub-block 2c), high nibbles 32 further (2c + 1).
            const int c = sl >> 1, half = sl & 1;
            uint32_t q[4], sw[3];
            load_words<3>(blk + 4, sw);
            int v[8];
            if constexpr (T == DType::Q4_K) {
                load_words<4>(blk + 16 + 32 * c + 16 * half, q);
                split_nibbles(q, v);
            } else {
                uint32_t qh[4];
                load_words<4>(blk + 48 + 32 * c + 16 * half, q);
                load_words<4>(blk + 16 + 16 * half, qh);
                split_nibbles(q, v);
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    v[i] |= static_cast<int>((qh[i] >> (2 * c)) & kOnes) << 4;
                    v[i + 4] |= static_cast<int>((qh[i] >> (2 * c + 1)) & kOnes) << 4;
                }
            }
            int sc0, mn0, sc1, mn1;
            scale_min_k4(2 * c, sw, &sc0, &mn0);
            scale_min_k4(2 * c + 1, sw, &sc1, &mn1);
            const float d = load_fp16(blk), dmin = load_fp16(blk + 2);
            const int lo[4] = {v[0], v[1], v[2], v[3]};
            const int hi[4] = {v[4], v[5], v[6], v[7]};
#pragma unroll
            for (int j = 0; j < M; ++j) {
                if (j >= a.m) break;
                const int8_t* x = a.qs + j * a.k + 256 * sb + 64 * c + 16 * half;
                const int4 x0 = load_act16(x), x1 = load_act16(x + 32);
                const float dx0 = __ldg(a.ds + j * nb + 8 * sb + 2 * c).x;
                const float dx1 = __ldg(a.ds + j * nb + 8 * sb + 2 * c + 1).x;
                const float dot =
                    dx0 * static_cast<float>(sc0 * dot16(lo, x0)) + dx1 * static_cast<float>(sc1 * dot16(hi, x1));
                const float mins =
                    dx0 * static_cast<float>(mn0 * sum16(x0)) + dx1 * static_cast<float>(mn1 * sum16(x1));
                acc[j] += d * dot - dmin * mins;
            }
        } else {
            // Q2_K / Q3_K / Q6_K: slice (h, quarter): elements 128h + 32g + 8 quarter + 0..7 for
            // g < 4, i.e. 8 elements of each of activation blocks 4h + g; sub-block 8h + 2g + quarter / 2.
            const int h = sl >> 2, quarter = sl & 3;
            const int sub = quarter >> 1;
            int v[4][2];  // [g][word]
            int sc[4];
            float d, dmin = 0.0f;
            int mn[4] = {0, 0, 0, 0};
            int bias = 0;  // subtracted from each q (times the activation sum)
            if constexpr (T == DType::Q2_K) {
                uint32_t q[2], sw[2];
                load_words<2>(blk + 16 + 32 * h + 8 * quarter, q);
                load_words<2>(blk + 8 * h, sw);
                d = load_fp16(blk + 80);
                dmin = load_fp16(blk + 82);
#pragma unroll
                for (int g = 0; g < 4; ++g) {
                    v[g][0] = static_cast<int>(q[0] >> (2 * g)) & 0x03030303;
                    v[g][1] = static_cast<int>(q[1] >> (2 * g)) & 0x03030303;
                    const int b = byte_of(sw[g >> 1], 2 * (g & 1) + sub);
                    sc[g] = b & 15;
                    mn[g] = b >> 4;
                }
            } else if constexpr (T == DType::Q3_K) {
                uint32_t q[2], hm[2], sw[3];
                load_words<2>(blk + 32 + 32 * h + 8 * quarter, q);
                load_words<2>(blk + 8 * quarter, hm);
                load_words<3>(blk + 96, sw);
                d = load_fp16(blk + 108);
                bias = 4;
#pragma unroll
                for (int g = 0; g < 4; ++g) {
                    const uint32_t high = (hm[0] >> (4 * h + g)) & kOnes;
                    const uint32_t high1 = (hm[1] >> (4 * h + g)) & kOnes;
                    v[g][0] = static_cast<int>(((q[0] >> (2 * g)) & 0x03030303) | high << 2);
                    v[g][1] = static_cast<int>(((q[1] >> (2 * g)) & 0x03030303) | high1 << 2);
                    sc[g] = scale_q3_K(8 * h + 2 * g + sub, sw);
                }
            } else {
                static_assert(T == DType::Q6_K, "unhandled type");
                uint32_t la[2], lb[2], qh[2], sw[2];
                load_words<2>(blk + 64 * h + 8 * quarter, la);
                load_words<2>(blk + 64 * h + 32 + 8 * quarter, lb);
                load_words<2>(blk + 128 + 32 * h + 8 * quarter, qh);
                load_words<2>(blk + 192 + 8 * h, sw);
                d = load_fp16(blk + 208);
                bias = 32;
#pragma unroll
                for (int g = 0; g < 4; ++g) {
                    const uint32_t(&src)[2] = (g & 1) ? lb : la;
                    const int shift = 4 * (g >> 1);
#pragma unroll
                    for (int w = 0; w < 2; ++w)
                        v[g][w] =
                            static_cast<int>(((src[w] >> shift) & kLow4) | ((qh[w] >> (2 * g)) & 0x03030303) << 4);
                    sc[g] = static_cast<int8_t>(byte_of(sw[g >> 1], 2 * (g & 1) + sub));
                }
            }
#pragma unroll
            for (int j = 0; j < M; ++j) {
                if (j >= a.m) break;
                const int8_t* x = a.qs + j * a.k + 256 * sb + 128 * h + 8 * quarter;
                const float2* ds = a.ds + j * nb + 8 * sb + 4 * h;
                float dot = 0.0f, mins = 0.0f;
#pragma unroll
                for (int g = 0; g < 4; ++g) {
                    const int2 xv = load_act8(x + 32 * g);
                    const int sum = sum8(xv);
                    const float dx = __ldg(ds + g).x;
                    dot += dx * static_cast<float>(sc[g] * (dot8(v[g][0], v[g][1], xv) - bias * sum));
                    if constexpr (T == DType::Q2_K) mins += dx * static_cast<float>(mn[g] * sum);
                }
                acc[j] += d * dot - dmin * mins;
            }
        }
    }
}

constexpr int kMmvWarps = 4;  // warps per block of the decode kernels
constexpr int kMmvThreads = kMmvWarps * kWarp;
constexpr int kMmvUnroll = 2;  // slices per lane in flight: 4 measured slower for the k-quants on an H200

// Writes the M row sums of one weight row; lane j holds activation row j's after the reduction.
template <int M>
__device__ __forceinline__ void store_row_sums(float (&acc)[M], int m, int64_t row, float* y, size_t y_stride) {
    const int lane = threadIdx.x % kWarp;
#pragma unroll
    for (int j = 0; j < M; ++j) {
        const float v = warp_sum(acc[j]);
        if (lane == j && j < m) y[j * y_stride + row] = v;
    }
}

// Up to kMaxParts weight matrices of one type multiplied by the same activations in one launch
// (the query, key and value projections; the gate and up projections): their rows are
// numbered one after another.
struct DecodeParts {
    const uint8_t* w[kMaxDecodeParts];
    size_t w_stride[kMaxDecodeParts];
    float* y[kMaxDecodeParts];
    size_t y_stride[kMaxDecodeParts];
    int64_t end[kMaxDecodeParts];  // rows of parts 0..i together
    int count;
    int64_t prefetch_blocks;  // blocks [0, prefetch_blocks) fetch their rows into L2 first
};

// Grid: rows / R blocks of NW warps; block b takes rows R b .. R b + R - 1 of the
// parts' rows (every part's row count is a multiple of R), its threads splitting the row's
// slices among them (thread t takes slices t, t + 32 NW, ...). Splitting a row over a
// whole block rather than a warp keeps enough loads in flight on matrices of few rows or long
// rows (a 4096-row product has 4096 blocks, not 1024 warps). A block's rows share each
// activation slice it loads. M >= a.m. S: split rows.
template <DType T, int M, int R, bool S, int NW = kMmvWarps>
__global__ void __launch_bounds__(NW* kWarp) mmvq_kernel(DecodeParts parts, ActQ8 a) {
    constexpr int NT = NW * kWarp;
    int64_t row = static_cast<int64_t>(blockIdx.x) * R;
    // The part holding the rows, chosen with constant indices (a computed index into the
    // arguments would copy them to local memory).
    const uint8_t* w = parts.w[0];
    size_t w_stride = parts.w_stride[0], y_stride = parts.y_stride[0];
    float* y = parts.y[0];
    int64_t first = 0;
#pragma unroll
    for (int i = 1; i < kMaxDecodeParts; ++i)
        if (i < parts.count && row >= parts.end[i - 1]) {
            w = parts.w[i], w_stride = parts.w_stride[i];
            y = parts.y[i], y_stride = parts.y_stride[i];
            first = parts.end[i - 1];
        }
    row -= first;
    const uint8_t* wrow[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wrow[r] = w + (row + r) * w_stride;
    // The block's weight rows into L2 before waiting for the kernels before this one: the
    // blocks resident while they still run (a norm, the attention: short chains of latencies)
    // stream their weights meanwhile, and their loads below find them in L2.
    if (blockIdx.x < parts.prefetch_blocks) {
        const int64_t row_bytes = a.k / BlockInfo<T>::kElems * BlockInfo<T>::kBytes;
#pragma unroll
        for (int r = 0; r < R; ++r) prefetch_l2(wrow[r], row_bytes, threadIdx.x, NT);
    }
    pdl_wait();  // launched by launch_dependent (common.cuh)
    pdl_trigger();
    const int64_t slices = a.nb;
    float acc[R][M];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int j = 0; j < M; ++j) acc[r][j] = 0.0f;
    int64_t s = threadIdx.x;
    constexpr int kUnroll = R > 1 ? 1 : kMmvUnroll;
    // Full rounds without bounds checks, so the compiler can issue all their loads first.
    for (; s + (kUnroll - 1) * NT < slices; s += kUnroll * NT) {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
#pragma unroll
            for (int r = 0; r < R; ++r) vec_dot_slice<T, M, S>(wrow[r], s + u * NT, a, acc[r]);
    }
    for (; s < slices; s += NT)
#pragma unroll
        for (int r = 0; r < R; ++r) vec_dot_slice<T, M, S>(wrow[r], s, a, acc[r]);
    // Each warp's sums, then the warps' sums.
    __shared__ float sums[NW][R * M];
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int j = 0; j < M; ++j) {
            const float v = warp_sum(acc[r][j]);
            if (lane == 0) sums[warp][r * M + j] = v;
        }
    __syncthreads();
    if (threadIdx.x < R * M) {
        const int r = threadIdx.x / M, j = threadIdx.x % M;
        if (j < a.m) {
            float v = 0.0f;
#pragma unroll
            for (int i = 0; i < NW; ++i) v += sums[i][threadIdx.x];
            y[j * y_stride + row + r] = v;
        }
    }
}

// ---- decode products on float weights ----

// Weight elements per 16-byte load.
template <DType T>
constexpr int kVecElems = T == DType::F32 ? 4 : 8;

template <DType T>
__device__ __forceinline__ void unpack16(uint4 raw, float (&v)[kVecElems<T>]) {
    if constexpr (T == DType::F32) {
        v[0] = __uint_as_float(raw.x);
        v[1] = __uint_as_float(raw.y);
        v[2] = __uint_as_float(raw.z);
        v[3] = __uint_as_float(raw.w);
    } else {
        const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const uint16_t bits = static_cast<uint16_t>(w[i / 2] >> (16 * (i % 2)));
            v[i] = T == DType::F16 ? fp16_bits_to_float(bits) : bf16_bits_to_float(bits);
        }
    }
}

// One 16-byte weight chunk c against the M activation rows (16-byte aligned rows).
template <DType T, int M>
__device__ __forceinline__ void dot_float_chunk(uint4 raw, int64_t c, const float* b, size_t b_stride, int m,
                                                float (&acc)[M]) {
    constexpr int E = kVecElems<T>;
    float v[E];
    unpack16<T>(raw, v);
#pragma unroll
    for (int j = 0; j < M; ++j) {
        if (j >= m) break;
        const float4* x = reinterpret_cast<const float4*>(b + j * b_stride + c * E);
#pragma unroll
        for (int q = 0; q < E / 4; ++q) {
            const float4 xv = __ldg(x + q);
            acc[j] += v[4 * q] * xv.x + v[4 * q + 1] * xv.y + v[4 * q + 2] * xv.z + v[4 * q + 3] * xv.w;
        }
    }
}

// vec: weight rows and activation rows are 16-byte aligned (otherwise element by element).
template <DType T, int M>
__global__ void __launch_bounds__(kMmvThreads)
    mmv_float_kernel(const uint8_t* __restrict__ w, size_t w_stride, const float* __restrict__ b, size_t b_stride,
                     int64_t k, int64_t n, int m, bool vec, float* __restrict__ y, size_t y_stride) {
    constexpr int E = kVecElems<T>;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kMmvWarps + threadIdx.x / kWarp;
    if (row >= n) return;
    const int lane = threadIdx.x % kWarp;
    const uint8_t* wrow = w + row * w_stride;
    float acc[M];
#pragma unroll
    for (int j = 0; j < M; ++j) acc[j] = 0.0f;
    int64_t done = 0;  // elements covered by the vector loop
    if (vec) {
        const uint4* wv = reinterpret_cast<const uint4*>(wrow);
        const int64_t chunks = k / E;
        int64_t c = lane;
        for (; c + (kMmvUnroll - 1) * kWarp < chunks; c += kMmvUnroll * kWarp) {
            uint4 raw[kMmvUnroll];
#pragma unroll
            for (int u = 0; u < kMmvUnroll; ++u) raw[u] = __ldg(wv + c + u * kWarp);
#pragma unroll
            for (int u = 0; u < kMmvUnroll; ++u) dot_float_chunk<T, M>(raw[u], c + u * kWarp, b, b_stride, m, acc);
        }
        for (; c < chunks; c += kWarp) dot_float_chunk<T, M>(__ldg(wv + c), c, b, b_stride, m, acc);
        done = chunks * E;
    }
    for (int64_t i = done + lane; i < k; i += kWarp) {
        const float wi = load_float_element<T>(wrow, i);
#pragma unroll
        for (int j = 0; j < M; ++j) {
            if (j >= m) break;
            acc[j] += wi * b[j * b_stride + i];
        }
    }
    store_row_sums<M>(acc, m, row, y, y_stride);
}

// Calls f.template operator()<M> ... via a lambda taking std::integral_constant<int, M>.
template <typename F>
void with_row_count(int64_t m, F&& f) {
    if (m == 1)
        f(std::integral_constant<int, 1>{});
    else if (m == 2)
        f(std::integral_constant<int, 2>{});
    else if (m <= 4)
        f(std::integral_constant<int, 4>{});
    else
        f(std::integral_constant<int, 8>{});
}

// The longest row, in slices, that one activation row's products run in blocks of 2 warps
// (launch_mmvq_rows): TESSERA_CUDA_MMV_NARROW, read once, else 512.
int64_t narrow_block_slices() {
    static const int64_t slices = [] {
        const char* e = std::getenv("TESSERA_CUDA_MMV_NARROW");
        return e ? std::atoll(e) : int64_t{512};
    }();
    return slices;
}

// The most weight bytes a decoding product fetches into L2 before its wait (mmvq_kernel):
// TESSERA_CUDA_PREFETCH_MB, read once, else 4 MiB (0: none). Measured on an H200, tg128 (t/s, medians of 3
// runs of 3), caps 0 / 2 / 4 / 8 / 16 MiB: Llama-3-8B Q4_0 429 / 439 / 441 / 422 / 411, Q4_K_M
// 333 / 336 / 331 / 326 / -; more than a few MiB delays the small kernels it overlaps, whose
// loads queue behind it.
int64_t prefetch_cap() {
    static const int64_t bytes = [] {
        const char* e = std::getenv("TESSERA_CUDA_PREFETCH_MB");
        return (e ? std::atoll(e) : int64_t{4}) << 20;
    }();
    return bytes;
}

// The blocks of `kernel` (`threads` each) that fit the device at once.
int64_t resident_blocks(const void* kernel, int threads) {
    int per_sm = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return int64_t{per_sm} * multiprocessor_count();
}

// Launches a decoding product's blocks: those of the first wave (the ones resident at once),
// up to prefetch_cap() bytes of rows, fetch their rows into L2 before they wait.
template <DType T, int M, int R, bool S, int NW>
void launch_mmvq_blocks(DecodeParts parts, const ActQ8& act, unsigned grid, cudaStream_t stream) {
    static const int64_t resident =
        resident_blocks(reinterpret_cast<const void*>(mmvq_kernel<T, M, R, S, NW>), NW * kWarp);
    const int64_t block_bytes = R * (act.k / BlockInfo<T>::kElems * BlockInfo<T>::kBytes);
    parts.prefetch_blocks = std::min(resident, prefetch_cap() / block_bytes);
    launch_dependent(mmvq_kernel<T, M, R, S, NW>, grid, NW * kWarp, 0, stream, parts, act);
}

template <DType T, int M, int R, bool S>
void launch_mmvq_rows(const DecodeParts& parts, const ActQ8& act, cudaStream_t stream) {
    const int64_t rows = parts.end[parts.count - 1];
    const unsigned grid = static_cast<unsigned>(rows / R);
    // One activation row: blocks of 2 warps rather than 4 for rows of up to 512 slices (16384
    // elements), so that twice the blocks fit a multiprocessor and rows of 2048 elements keep
    // every thread busy. Measured on an H200, tg128 (t/s), 4 warps -> 2: TinyLlama-1.1B Q4_0
    // 1062-1079 -> 1129-1138 (2 warps only up to 64 slices: 1089-1138), Llama-3-8B Q4_0
    // 416-417 -> 419-422.
    if constexpr (M == 1) {
        if (act.nb <= narrow_block_slices()) return launch_mmvq_blocks<T, M, R, S, 2>(parts, act, grid, stream);
    }
    launch_mmvq_blocks<T, M, R, S, kMmvWarps>(parts, act, grid, stream);
}

template <DType T, int M, bool S>
void launch_mmvq(const DecodeParts& parts, const ActQ8& act, cudaStream_t stream) {
    // Two rows per block for a single activation row (measured on an H200, 8B Q4_0 decoding,
    // tg128: 1 row 282 t/s, 2 rows 277, 4 rows 254 with the file's layout; with split rows and
    // the fused norms, 2 rows 327, 4 rows 254: Q8_0 225 and 218); more activation rows already
    // reuse each weight.
    if constexpr (M == 1) {
        bool even = true;
        for (int i = 0; i < parts.count; ++i) even = even && (parts.end[i] - (i ? parts.end[i - 1] : 0)) % 2 == 0;
        if (even) return launch_mmvq_rows<T, M, 2, S>(parts, act, stream);
    }
    launch_mmvq_rows<T, M, 1, S>(parts, act, stream);
}

DecodeActs acts_in(void* work, int64_t k, int64_t m) {
    const uintptr_t base = (reinterpret_cast<uintptr_t>(work) + kWorkAlign - 1) / kWorkAlign * kWorkAlign;
    return {reinterpret_cast<int8_t*>(base), reinterpret_cast<float2*>(base + act_qs_bytes(k, m))};
}

// Quantizes the activations into the scratch (unless they are there already) and runs the
// decode kernel over the parts.
template <DType T, bool S>
void decode_quantized(const DecodeParts& parts, const float* b, size_t b_stride, int64_t k, int64_t m, void* work,
                      cudaStream_t stream, bool quantized = false) {
    const DecodeActs q = acts_in(work, k, m);
    const int64_t blocks = m * (k / kActBlock);
    if (!quantized)
        launch_dependent(quantize_act_kernel, static_cast<unsigned>((blocks + 7) / 8), 256, 0, stream, b, b_stride, k,
                         blocks, q.qs, q.ds);
    const ActQ8 act{q.qs, q.ds, k, k / kActBlock, static_cast<int>(m)};
    with_row_count(m, [&](auto rows) { launch_mmvq<T, decltype(rows)::value, S>(parts, act, stream); });
}

template <DType T, int M>
void launch_mmv_float(const uint8_t* w, size_t w_stride, const float* b, size_t b_stride, int64_t k, int64_t n, int m,
                      float* y, size_t y_stride, cudaStream_t stream) {
    const bool vec = aligned16(w) && w_stride % 16 == 0 && aligned16(b) && b_stride % 4 == 0;
    const unsigned blocks = static_cast<unsigned>((n + kMmvWarps - 1) / kMmvWarps);
    mmv_float_kernel<T, M>
        <<<blocks, kMmvThreads, 0, stream>>>(w, w_stride, b, b_stride, k, n, m, vec, y, y_stride);
}

}  // namespace

size_t decode_work_size(DType type, int64_t k, int64_t m) {
    if (is_float_type(type) || m > kMmvMaxRows || k <= 0 || m <= 0) return 0;
    return kWorkAlign + act_qs_bytes(k, m) + static_cast<size_t>(m) * (k / kActBlock) * sizeof(float2);
}

bool mul_mat_decode(DType type, bool split, const uint8_t* w, size_t w_stride, const float* b, size_t b_stride,
                    float* y, size_t y_stride, int64_t k, int64_t n, int64_t m, void* work, size_t work_size,
                    cudaStream_t stream) {
    if (m <= 0 || m > kMmvMaxRows) return false;
    bool done = false;
    visit_type(type, [&](auto tag) {
        constexpr DType T = decltype(tag)::value;
        if constexpr (is_float_type(T)) {
            with_row_count(m, [&](auto rows) {
                launch_mmv_float<T, decltype(rows)::value>(w, w_stride, b, b_stride, k, n, static_cast<int>(m), y,
                                                           y_stride, stream);
            });
            done = true;
        } else if (work != nullptr && work_size >= decode_work_size(T, k, m)) {
            DecodeParts parts{};
            parts.w[0] = w;
            parts.w_stride[0] = w_stride;
            parts.y[0] = y;
            parts.y_stride[0] = y_stride;
            parts.end[0] = n;
            parts.count = 1;
            with_split<T>(split, [&](auto sp) {
                decode_quantized<T, decltype(sp)::value>(parts, b, b_stride, k, m, work, stream);
            });
            done = true;
        }
    });
    return done;
}

DecodeActs decode_acts(DType type, int64_t k, int64_t m, void* work, size_t work_size) {
    if (!mul_mat_supports(type) || is_float_type(type) || m <= 0 || m > kMmvMaxRows || k <= 0 || k % kActBlock != 0 ||
        work == nullptr || work_size < decode_work_size(type, k, m))
        return {nullptr, nullptr};
    return acts_in(work, k, m);
}

bool mul_mat_decode_group(DType type, bool split, std::span<const MulMatPart> parts, const float* b, size_t b_stride,
                          int64_t k, int64_t m, void* work, size_t work_size, cudaStream_t stream, bool quantized) {
    if (parts.empty() || parts.size() > static_cast<size_t>(kMaxDecodeParts) || m <= 0 || m > kMmvMaxRows || k <= 0 ||
        work == nullptr || work_size < decode_work_size(type, k, m))
        return false;
    DecodeParts dp{};
    int64_t rows = 0;
    for (const MulMatPart& p : parts) {
        dp.w[dp.count] = static_cast<const uint8_t*>(p.a);
        dp.w_stride[dp.count] = p.a_stride;
        dp.y[dp.count] = p.y;
        dp.y_stride[dp.count] = p.y_stride;
        dp.end[dp.count] = rows += p.n;
        ++dp.count;
    }
    if (rows == 0) return true;
    bool done = false;
    visit_type(type, [&](auto tag) {
        constexpr DType T = decltype(tag)::value;
        if constexpr (!is_float_type(T)) {
            with_split<T>(split, [&](auto sp) {
                decode_quantized<T, decltype(sp)::value>(dp, b, b_stride, k, m, work, stream, quantized);
            });
            done = true;
        }
    });
    return done;
}

}  // namespace tessera::cuda
