// Prompt products on tensor cores from half operands already in device memory: the type-free
// core of the CUDA prompt GEMM. mulmat.cu converts the activations and the weights (any type)
// to half in its scratch and calls gemm_f16 on them.
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

}  // namespace tessera::cuda
