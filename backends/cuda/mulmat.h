// Matrix products and block conversions on the GPU: the weight-type-specific part of the
// CUDA backend. Everything here is enqueued on `stream` and returns at once.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "tensor/dtype.h"

namespace tessera::cuda {

// Whether mul_mat and dequantize_rows take weights of this type.
bool mul_mat_supports(DType type);

// The rearrangement of n rows of k elements in the file's layout at src into split rows
// (quant.cuh; tensor.h's split_rows_fit says which fit) at dst (device memory, 16-byte
// aligned, not src).
void split_rows(DType type, const void* src, void* dst, int64_t k, int64_t n, cudaStream_t stream);

// Device scratch bytes mul_mat needs for a product of these sizes (the activation
// quantized once, staging tiles); 0 when it needs none.
size_t mul_mat_work_size(DType type, int64_t k, int64_t n, int64_t m);

// y[j * y_stride + i] = dot(row i of a, row j of b) for i < n, j < m.
// a: n rows of k elements of `type`, row i at (const char*)a + i * a_stride; k is a
//    multiple of the type's block size.
// b: m rows of k floats, row j at b + j * b_stride (strides in floats).
// y: m rows of n floats, row j at y + j * y_stride.
// work: device memory of at least mul_mat_work_size(type, k, n, m) bytes.
// split: a's rows are split rows (split_rows), 16-byte aligned.
void mul_mat(DType type, bool split, const void* a, size_t a_stride, const float* b, size_t b_stride, float* y,
             size_t y_stride, int64_t k, int64_t n, int64_t m, void* work, size_t work_size, cudaStream_t stream);

// One weight matrix of a group product: n rows at a (row stride a_stride bytes), results to y.
struct MulMatPart {
    const void* a;
    size_t a_stride;
    int64_t n;
    float* y;
    size_t y_stride;
};
inline constexpr int kMaxDecodeParts = 3;

// The decoding products' activations in their scratch (work): m rows of k quantized to int8
// (device_math.cuh's quantize_block32), qs [m][k] and ds [m][k / 32]. Null pointers where
// products of this type and size do not take the decoding kernels (float weights, m > 8,
// too small a scratch).
struct DecodeActs {
    int8_t* qs;
    float2* ds;
};
DecodeActs decode_acts(DType type, int64_t k, int64_t m, void* work, size_t work_size);

// The products of up to kMaxDecodeParts matrices of one quantized type with the same m <= 8
// activation rows b, as mul_mat computes each, in one launch (the activations quantized once;
// quantized: already in decode_acts' place, put there by a kernel before). False, with nothing
// enqueued, where the group does not qualify (float weights, more rows, too small a scratch:
// mul_mat_work_size(type, k, n, m) is enough).
bool mul_mat_decode_group(DType type, bool split, std::span<const MulMatPart> parts, const float* b, size_t b_stride,
                          int64_t k, int64_t m, void* work, size_t work_size, cudaStream_t stream,
                          bool quantized = false);

// Rows of `type` to F32: n rows of k elements; src row i at (const char*)src + ids[i] *
// src_stride (ids: device I32, or null for row i), dst row i at dst + i * dst_stride floats.
// split: the rows are split rows.
void dequantize_rows(DType type, bool split, const void* src, size_t src_stride, const int32_t* ids, float* dst,
                     size_t dst_stride, int64_t k, int64_t n, cudaStream_t stream);

}  // namespace tessera::cuda
