// Prompt products on tensor cores from half activations already in device memory: the core of
// the CUDA prompt GEMM. mulmat_f16.cu converts the activations and the weights (any type) to
// half in its scratch and calls gemm_f16 on them, or, for Q4_0 and Q8_0 split rows, hands the
// weights as they are to gemm_f16_split_rows, which converts them while staging them.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace tessera::cuda {

// k of one gemm_f16 call is a multiple of this.
constexpr int kGemmF16KStep = 32;

// Block tiles, activation rows x weight rows (x the K step of a pipeline stage).
enum class GemmF16Tile { k128x128, k128x128_k64 };

// The weights the GEMM reads: half rows, or Q4_0 / Q8_0 split rows (quant.cuh), converted to half
// as they are staged.
enum class GemmWeights { Half, Q4_0, Q8_0 };

// k of a gemm_f16_split_rows call is a multiple of this.
constexpr int kGemmSplitRowsK = 64;

// How gemm_f16 cuts a product: a block tile and the number of k slices computed side by side
// (slices past the first write partial sums that a last pass adds into y in a fixed order).
struct GemmF16Plan {
    GemmF16Tile tile = GemmF16Tile::k128x128_k64;
    int splits = 1;
};

// Whether gemm_f16 runs on the current device: an sm_80 or newer device running code compiled
// for sm_80 or newer (mma.sync m16n8k16 and cp.async). Asked once per device.
bool gemm_f16_available();

// The plan for the current device (by its SM count); splits - 1 partial products of m x n
// floats fit partial_floats.
GemmF16Plan gemm_f16_plan(int64_t k, int64_t n, int64_t m, size_t partial_floats);

// y[j * y_stride + i] = sum over e < k of a[j * lda + e] * w[i * ldw + e], for i < n, j < m,
// in f32; accumulate adds to y instead. a: [m][k] activations, w: [n][k] weights, both
// 16-byte aligned with lda and ldw multiples of 8 elements; k a multiple of kGemmF16KStep
// (k128x128_k64 falls back to k128x128 for a k that is not a multiple of 64).
// partial: (plan.splits - 1) * m * n floats of device scratch (unused for one split).
void gemm_f16(const GemmF16Plan& plan, const __half* a, int64_t lda, const __half* w, int64_t ldw, float* y,
              size_t y_stride, int64_t k, int64_t n, int64_t m, bool accumulate, float* partial, cudaStream_t stream);

// The same product with w: n weight rows in split rows of k elements (whole rows, the blocks'
// scales after their quants), w_stride bytes apart; y is written, not added to. The weights
// round to half exactly as a conversion to half would, so the results equal gemm_f16's on
// converted weights. False (nothing launched) where k is not a multiple of kGemmSplitRowsK, w or
// w_stride is not 16-byte aligned, or the device cannot run it.
bool gemm_f16_split_rows(const GemmF16Plan& plan, GemmWeights weights, const __half* a, int64_t lda, const uint8_t* w,
                         size_t w_stride, float* y, size_t y_stride, int64_t k, int64_t n, int64_t m, float* partial,
                         cudaStream_t stream);

}  // namespace tessera::cuda
