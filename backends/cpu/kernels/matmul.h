// The matrix product's scratch needs (its driver is backends/cpu/ops_matmul.cpp), declared
// here so the backend's scratch planner (ops_basic.cpp) can ask for them.
#pragma once

#include <cstddef>

#include "tensor/tensor.h"

namespace tessera::cpu {

// Scratch bytes one thread needs for a MulMat node: one chunk of quantized activation rows,
// or one dequantized weight row for types without a fast kernel.
size_t mul_mat_work_per_thread(const Tensor& node);
// Scratch the team shares for a MulMat node: prompts' activation rows, quantized once.
size_t mul_mat_work_shared(const Tensor& node);

}  // namespace tessera::cpu
