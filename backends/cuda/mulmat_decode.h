// The decoding products (m <= kMmvMaxRows activation rows), mulmat_decode.cu: the part of
// mul_mat (mulmat.h) that reads a weight row once for all the activation rows.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace tessera::cuda {

// The activation scratch the decode kernels on quantized weights need (0 for other products).
size_t decode_work_size(DType type, int64_t k, int64_t m);

// mul_mat for m <= kMmvMaxRows on the decode kernels; false, with nothing enqueued, where they
// do not take it (quantized weights with too small a scratch).
bool mul_mat_decode(DType type, bool split, const uint8_t* w, size_t w_stride, const float* b, size_t b_stride,
                    float* y, size_t y_stride, int64_t k, int64_t n, int64_t m, void* work, size_t work_size,
                    cudaStream_t stream);

}  // namespace tessera::cuda
