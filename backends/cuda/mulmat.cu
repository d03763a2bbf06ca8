// Matrix products y[j][i] = dot(a row i, b row j) for weights a of any supported type and F32
// activations b, and rows of any supported type converted to F32 (get_rows).
//
// Kernels, by regime (m = activation rows, n = weight rows, k = the shared length; the
// decoding ones, m <= 8, live in mulmat_decode.cu):
//  - quantize_act_kernel: the activation rows (m <= 8) to int8 once per product, one warp per
//    32 elements: work = [m][k] int8 (16-byte aligned rows), then [m][k/32] float2 {d, d * sum(q)}.
//  - mmvq_kernel<T, M, R, S> (decode, quantized weights, m <= 8): one block of 128 threads per
//    R weight rows, M activation rows at once. A row is cut into 32-element slices (a legacy
//    block; an eighth of a k-quant super-block); thread t takes slices t, t + 128, ..., decodes
//    the weights to bytes and dots them with __dp4a against the int8 activations, applying
//    block scales (and mins through the activation sums) in f32; warp-shuffle and shared
//    memory reduction. S: Q4_0/Q8_0 weights in split rows (quant.cuh), read with 16-byte loads.
//  - mmv_float_kernel<T, M> (decode, F32/F16/BF16 weights): one warp per weight row, 16-byte
//    loads of weights and activations, f32 accumulation.
//  - mul_mat_f16 (mulmat_f16.cu, gemm_f16.cu) (prompts, m > 8, quantized and F16 weights,
//    sm_80+): activations and weights to half in the scratch, an mma.sync GEMM on them.
//  - gemm_wmma_kernel<T> (prompts on BF16, and the other types without that scratch or below
//    sm_80): 128 weight rows x 64 activation rows per block, K steps of 32; weights dequantized
//    into shared memory as half (bf16 for BF16, exact), activations as half (as bf16 hi + lo
//    for BF16, so they keep ~16 bits), 8 warps of 32x32 WMMA 16x16x16 tiles with f32
//    accumulators.
//  - gemm_f32_kernel<T> (prompts on F32 weights, and BF16 below sm_80): 64x64 SIMT tiles.
//  - dequantize_rows_kernel<T> / convert_rows_kernel<T>: get_rows to F32, 8 elements or 1 per
//    thread.
// Weight blocks in the file's layout are read with 2-byte-alignment-safe loads (quant.cuh's
// load_words).
#include "backends/cuda/mulmat.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <algorithm>
#include <type_traits>

#include "backends/cuda/common.cuh"
#include "backends/cuda/device_math.cuh"
#include "backends/cuda/mulmat_decode.h"
#include "backends/cuda/mulmat_dispatch.cuh"
#include "backends/cuda/mulmat_f16.h"
#include "backends/cuda/quant.cuh"
#include "tensor/tensor.h"

namespace tessera::cuda {
namespace {

// ---- prompt products on tensor cores ----

constexpr int kGemmN = 128;          // weight rows per block
constexpr int kGemmM = 64;           // activation rows per block
constexpr int kGemmK = 32;           // k per step: one legacy block, an eighth of a super-block
constexpr int kGemmLd = kGemmK + 8;  // shared row pitch (elements): 16-byte aligned, banks shifted
constexpr int kGemmThreads = 256;    // 8 warps: 4 along n x 2 along m, 32x32 each

template <DType T, bool S>
__device__ void gemm_wmma_body(const uint8_t* __restrict__ w, size_t w_stride, const float* __restrict__ b,
                               size_t b_stride, float* __restrict__ y, size_t y_stride, int64_t k, int64_t n,
                               int64_t m) {
    namespace wmma = nvcuda::wmma;
    using E = std::conditional_t<T == DType::BF16, __nv_bfloat16, __half>;
    // BF16 activations as hi + lo: bf16 alone would leave a relative error of 2^-9 per element.
    constexpr bool kSplit = T == DType::BF16;
    constexpr int kBRows = kSplit ? 2 * kGemmM : kGemmM;
    __shared__ __align__(32) E as[kGemmN * kGemmLd];
    __shared__ __align__(32) E bs[kBRows * kGemmLd];
    __shared__ __align__(32) float stage[kGemmThreads / kWarp][16 * 16];

    const int t = threadIdx.x;
    const int warp = t / kWarp, lane = t % kWarp;
    const int wn = warp % 4, wm = warp / 4;
    const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kGemmN;
    const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kGemmM;

    // Loader roles: chunk t % 4 of weight rows t / 4 and t / 4 + 64, and of activation row t / 4.
    // Rows past the edge repeat the last row; their results are never stored.
    const int lc = t % 4, lr = t / 4;
    const uint8_t* wrow0 = w + clamp_row(n0 + lr, n - 1) * w_stride;
    const uint8_t* wrow1 = w + clamp_row(n0 + lr + 64, n - 1) * w_stride;
    const float* brow = b + clamp_row(m0 + lr, m - 1) * b_stride;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

    for (int64_t k0 = 0; k0 < k; k0 += kGemmK) {
        float v[8];
        load_weight8<T, S>(wrow0, k0, lc, k, v);
        __syncthreads();  // the previous step's fragments are loaded
        store8(as + lr * kGemmLd + 8 * lc, v);
        load_weight8<T, S>(wrow1, k0, lc, k, v);
        store8(as + (lr + 64) * kGemmLd + 8 * lc, v);
        const int64_t e = k0 + 8 * lc;
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = e + i < k ? brow[e + i] : 0.0f;
        store8(bs + lr * kGemmLd + 8 * lc, v);
        if constexpr (kSplit) {
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] -= from_elem(to_elem<E>(v[i]));
            store8(bs + (kGemmM + lr) * kGemmLd + 8 * lc, v);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kGemmK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, E, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, E, wmma::col_major> fb[2];
#pragma unroll
            for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], as + (wn * 32 + 16 * i) * kGemmLd + kk, kGemmLd);
#pragma unroll
            for (int part = 0; part < (kSplit ? 2 : 1); ++part) {
#pragma unroll
                for (int j = 0; j < 2; ++j)
                    wmma::load_matrix_sync(fb[j], bs + (part * kGemmM + wm * 32 + 16 * j) * kGemmLd + kk, kGemmLd);
#pragma unroll
                for (int i = 0; i < 2; ++i)
#pragma unroll
                    for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
            }
        }
    }

    // Each 16x16 tile through the warp's staging square (column-major: element (i, j) at i + 16 j),
    // then to y with bounds checks; a half-warp writes 16 consecutive outputs of one activation row.
    float* st = stage[warp];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            wmma::store_matrix_sync(st, acc[i][j], 16, wmma::mem_col_major);
            __syncwarp();
#pragma unroll
            for (int r = 0; r < 8; ++r) {
                const int idx = lane + kWarp * r;
                const int64_t row = n0 + wn * 32 + 16 * i + (idx & 15);
                const int64_t col = m0 + wm * 32 + 16 * j + (idx >> 4);
                if (row < n && col < m) y[col * y_stride + row] = st[idx];
            }
            __syncwarp();
        }
    }
}

// Grid: (ceil(n / kGemmN), ceil(m / kGemmM)). S: split rows.
template <DType T, bool S>
__global__ void __launch_bounds__(kGemmThreads)
    gemm_wmma_kernel(const uint8_t* __restrict__ w, size_t w_stride, const float* __restrict__ b, size_t b_stride,
                     float* __restrict__ y, size_t y_stride, int64_t k, int64_t n, int64_t m) {
    if constexpr (T == DType::BF16) {
        // bf16 WMMA needs sm_80; the host sends BF16 to gemm_f32_kernel below that.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
        gemm_wmma_body<T, false>(w, w_stride, b, b_stride, y, y_stride, k, n, m);
#endif
    } else {
        gemm_wmma_body<T, S>(w, w_stride, b, b_stride, y, y_stride, k, n, m);
    }
}

// ---- prompt products on F32 weights (exact f32; also BF16 where bf16 WMMA is missing) ----

constexpr int kSgN = 64, kSgM = 64, kSgK = 16;

// Grid: (ceil(n / kSgN), ceil(m / kSgM)), 256 threads, each 4 weight rows x 4 activation rows.
template <DType T>
__global__ void __launch_bounds__(256)
    gemm_f32_kernel(const uint8_t* __restrict__ w, size_t w_stride, const float* __restrict__ b, size_t b_stride,
                    float* __restrict__ y, size_t y_stride, int64_t k, int64_t n, int64_t m) {
    __shared__ __align__(16) float as[kSgK][kSgN + 4];  // [k][weight row]
    __shared__ __align__(16) float bs[kSgK][kSgM + 4];  // [k][activation row]
    const int t = threadIdx.x;
    const int tx = t % 16, ty = t / 16;
    const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kSgN;
    const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kSgM;
    // Loader roles: 4 consecutive k of row t / 4 for both tiles.
    const int lr = t / 4, lk = 4 * (t % 4);
    const uint8_t* wrow = w + clamp_row(n0 + lr, n - 1) * w_stride;
    const float* brow = b + clamp_row(m0 + lr, m - 1) * b_stride;
    float acc[4][4] = {};
    for (int64_t k0 = 0; k0 < k; k0 += kSgK) {
        float wv[4], bv[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int64_t e = k0 + lk + i;
            wv[i] = e < k ? load_float_element<T>(wrow, e) : 0.0f;
            bv[i] = e < k ? brow[e] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            as[lk + i][lr] = wv[i];
            bs[lk + i][lr] = bv[i];
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kSgK; ++kk) {
            const float4 a4 = *reinterpret_cast<const float4*>(&as[kk][4 * tx]);
            const float4 b4 = *reinterpret_cast<const float4*>(&bs[kk][4 * ty]);
            const float av[4] = {a4.x, a4.y, a4.z, a4.w};
            const float bw[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
            for (int r = 0; r < 4; ++r)
#pragma unroll
                for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(av[r], bw[c], acc[r][c]);
        }
    }
#pragma unroll
    for (int c = 0; c < 4; ++c) {
        const int64_t col = m0 + 4 * ty + c;
        if (col >= m) break;
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int64_t row = n0 + 4 * tx + r;
            if (row < n) y[col * y_stride + row] = acc[r][c];
        }
    }
}

// ---- rows to F32 ----

// Quantized types: one 8-element chunk per thread, grid-stride over n * k / 8 chunks. S: split
// rows.
template <DType T, bool S>
__global__ void __launch_bounds__(256)
    dequantize_rows_kernel(const uint8_t* __restrict__ src, size_t src_stride, const int32_t* __restrict__ ids,
                           float* __restrict__ dst, size_t dst_stride, int64_t k, int64_t n) {
    const int64_t per_row = k / 8;
    const int64_t total = per_row * n;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t i = idx / per_row, c = idx % per_row;
        const int64_t r = ids ? ids[i] : i;
        float v[8];
        dequantize_chunk8<T, S>(src + r * src_stride, c, v, k / BlockInfo<T>::kElems);
        float* out = dst + i * dst_stride + 8 * c;
#pragma unroll
        for (int e = 0; e < 8; ++e) out[e] = v[e];
    }
}

// File-layout rows to split rows (quant.cuh): one block per thread, grid-stride over n * nb
// blocks, copied in 2-byte pieces (blocks and quants are 2-byte aligned in both layouts).
template <DType T>
__global__ void __launch_bounds__(256)
    split_rows_kernel(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst, int64_t nb, int64_t n) {
    constexpr int kQ = kQuantBytes<T>;
    const size_t row_bytes = static_cast<size_t>(nb) * BlockInfo<T>::kBytes;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n * nb;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t r = idx / nb, blk = idx % nb;
        const uint16_t* from = reinterpret_cast<const uint16_t*>(src + r * row_bytes + blk * BlockInfo<T>::kBytes);
        uint8_t* row = dst + r * row_bytes;
        uint16_t* qs = reinterpret_cast<uint16_t*>(row + blk * kQ);
#pragma unroll
        for (int i = 0; i < kQ / 2; ++i) qs[i] = from[1 + i];
        *reinterpret_cast<uint16_t*>(row + nb * kQ + 2 * blk) = from[0];
    }
}

// Float types: one element per thread, grid-stride over n * k elements.
template <DType T>
__global__ void __launch_bounds__(256)
    convert_rows_kernel(const uint8_t* __restrict__ src, size_t src_stride, const int32_t* __restrict__ ids,
                        float* __restrict__ dst, size_t dst_stride, int64_t k, int64_t n) {
    const int64_t total = k * n;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t i = idx / k, e = idx % k;
        const int64_t r = ids ? ids[i] : i;
        dst[i * dst_stride + e] = load_float_element<T>(src + r * src_stride, e);
    }
}

// ---- host side ----

unsigned grid_stride_blocks(int64_t items, int threads) {
    return static_cast<unsigned>(std::min<int64_t>((items + threads - 1) / threads, int64_t{1} << 20));
}

// Whether the BF16 WMMA kernel has a body here: the device is sm_80 or newer and the code it
// runs was compiled for sm_80 or newer (a build with PTX for an older target alone, JIT-
// compiled by the driver, has the guard's empty body). Asked once per device.
bool device_has_bf16_mma();

bool device_has_bf16_mma() {
    return runs_sm80_code(reinterpret_cast<const void*>(gemm_wmma_kernel<DType::BF16, false>));
}

}  // namespace

bool mul_mat_supports(DType type) {
    return visit_type(type, [](auto) {});
}

void split_rows(DType type, const void* src, void* dst, int64_t k, int64_t n, cudaStream_t stream) {
    if (!split_rows_fit(type, k) || n <= 0) return;
    const int64_t nb = k / 32;
    auto launch = [&](auto kernel) {
        kernel<<<grid_stride_blocks(n * nb, 256), 256, 0, stream>>>(static_cast<const uint8_t*>(src),
                                                                    static_cast<uint8_t*>(dst), nb, n);
    };
    if (type == DType::Q4_0) launch(split_rows_kernel<DType::Q4_0>);
    if (type == DType::Q8_0) launch(split_rows_kernel<DType::Q8_0>);
}

size_t mul_mat_work_size(DType type, int64_t k, int64_t n, int64_t m) {
    if (!mul_mat_supports(type) || n <= 0) return 0;
    if (m > kMmvMaxRows) return mul_mat_f16_work_size(type, k, n, m);
    return decode_work_size(type, k, m);
}

void mul_mat(DType type, bool split, const void* a, size_t a_stride, const float* b, size_t b_stride, float* y,
             size_t y_stride, int64_t k, int64_t n, int64_t m, void* work, size_t work_size, cudaStream_t stream) {
    if (n <= 0 || m <= 0) return;
    if (k <= 0) {
        cudaMemset2DAsync(y, y_stride * sizeof(float), 0, n * sizeof(float), m, stream);
        return;
    }
    const uint8_t* w = static_cast<const uint8_t*>(a);
    // Too small a scratch (never, when sized by mul_mat_work_size) falls through to the GEMM.
    if (m <= kMmvMaxRows &&
        mul_mat_decode(type, split, w, a_stride, b, b_stride, y, y_stride, k, n, m, work, work_size, stream))
        return;
    visit_type(type, [&](auto tag) {
        constexpr DType T = decltype(tag)::value;
        if (T == DType::F32 || (T == DType::BF16 && !device_has_bf16_mma())) {
            const dim3 grid(static_cast<unsigned>((n + kSgN - 1) / kSgN), static_cast<unsigned>((m + kSgM - 1) / kSgM));
            if constexpr (T == DType::F32 || T == DType::BF16)
                gemm_f32_kernel<T><<<grid, 256, 0, stream>>>(w, a_stride, b, b_stride, y, y_stride, k, n, m);
            return;
        }
        if (mul_mat_f16(T, split, w, a_stride, b, b_stride, y, y_stride, k, n, m, work, work_size, stream)) return;
        if constexpr (T != DType::F32) {
            const dim3 grid(static_cast<unsigned>((n + kGemmN - 1) / kGemmN),
                            static_cast<unsigned>((m + kGemmM - 1) / kGemmM));
            with_split<T>(split, [&](auto sp) {
                gemm_wmma_kernel<T, decltype(sp)::value>
                    <<<grid, kGemmThreads, 0, stream>>>(w, a_stride, b, b_stride, y, y_stride, k, n, m);
            });
        }
    });
}

void dequantize_rows(DType type, bool split, const void* src, size_t src_stride, const int32_t* ids, float* dst,
                     size_t dst_stride, int64_t k, int64_t n, cudaStream_t stream) {
    if (n <= 0 || k <= 0) return;
    const uint8_t* s = static_cast<const uint8_t*>(src);
    visit_type(type, [&](auto tag) {
        constexpr DType T = decltype(tag)::value;
        if constexpr (is_float_type(T)) {
            convert_rows_kernel<T>
                <<<grid_stride_blocks(k * n, 256), 256, 0, stream>>>(s, src_stride, ids, dst, dst_stride, k, n);
        } else {
            with_split<T>(split, [&](auto sp) {
                dequantize_rows_kernel<T, decltype(sp)::value>
                    <<<grid_stride_blocks(k / 8 * n, 256), 256, 0, stream>>>(s, src_stride, ids, dst, dst_stride, k, n);
            });
        }
    });
}

}  // namespace tessera::cuda
