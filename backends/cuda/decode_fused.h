// Decoding steps' row-wise nodes fused with their neighbours, which the CUDA backend picks out of
// a segment's node order: a residual add with the RMS norm of its result, and a norm or a SwiGLU
// that also writes its output in the int8 form the decoding products after it read (mulmat.h's
// DecodeActs), so that one kernel does what two or three did. Rows are contiguous F32 rows of k
// elements (k a multiple of 32) with row strides in floats.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backends/cuda/mulmat.h"

namespace tessera::cuda {

// y = rms_norm(x) * weight (weight may be null) for x = a, or x = a + b written to sum when b
// is given; y also quantized into q where q.qs is not null. Rows of a length rms_norm_rows_fit
// takes, their pointers, strides and the weight 16-byte aligned.
struct NormRows {
    const float* a;
    size_t a_stride;
    const float* b;  // null: no add
    size_t b_stride;
    float* sum;
    size_t sum_stride;
    const float* weight;
    float eps;
    float* y;
    size_t y_stride;
    int64_t k, rows;
};
bool rms_norm_rows_fit(int64_t k);
void rms_norm_rows(const NormRows& p, DecodeActs q, cudaStream_t stream);

// y = silu(g) * u, also quantized into q where q.qs is not null.
void swiglu_rows(const float* g, size_t g_stride, const float* u, size_t u_stride, float* y, size_t y_stride, int64_t k,
                 int64_t rows, DecodeActs q, cudaStream_t stream);

}  // namespace tessera::cuda
