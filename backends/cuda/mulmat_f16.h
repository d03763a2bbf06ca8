// Prompt products through half scratch (sm_80+): the activations and the weights (a quantized
// type or F16) converted to half in the product's scratch and multiplied on tensor cores by
// gemm_f16. mul_mat (mulmat.cu) sends its prompt products here first.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace tessera::cuda {

// Device scratch bytes mul_mat_f16 needs for this product; 0 where it never takes it (F32 and
// BF16 weights, weight rows so many that one slice of k passes its cap).
size_t mul_mat_f16_work_size(DType type, int64_t k, int64_t n, int64_t m);

// Enqueues the product as mul_mat (mulmat.h) defines it and returns true; returns false, having
// enqueued nothing, where it does not take it: a type above, work smaller than
// mul_mat_f16_work_size, or no sm_80 code for the current device. split: the weights are split
// rows (mulmat.h).
bool mul_mat_f16(DType type, bool split, const uint8_t* w, size_t w_stride, const float* b, size_t b_stride, float* y,
                 size_t y_stride, int64_t k, int64_t n, int64_t m, void* work, size_t work_size, cudaStream_t stream);

}  // namespace tessera::cuda
