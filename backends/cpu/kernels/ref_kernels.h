// The scalar twins of the SIMD kernels: plain C++ doing the same block math (integer sums
// per block, the same scales), one element at a time. Tests compare every SIMD kernel with
// its twin; the twins are checked against dequantize-then-dot in double precision. They are
// also the code of the HWY_SCALAR fallback target.
#pragma once

#include <cstdint>

#include "backends/cpu/kernels/kernels.h"
#include "tensor/dtype.h"

namespace tessera::cpu::kernels::ref {

// Dot of one weight row of `k` elements of type `t` with one activation row in the type's
// activation format (kernels::ActFormat: F32, Q8_0 or Q8_K blocks).
using VecDotFn = float (*)(int64_t k, const void* w, const void* x);

// The twin of KernelTable::dot[t] for one row pair; null for types without a fast kernel.
VecDotFn vec_dot(DType t);
// The activation format the twin (and the fast kernel) of `t` expects.
ActFormat act_format(DType t);

// Activation quantizers: byte for byte tensor/quant's quantize_row_q8_0_ref / q8_K_ref.
void quantize_row_q8_0(const float* x, void* y, int64_t k);
void quantize_row_q8_K(const float* x, void* y, int64_t k);

// Attention row helpers.
float dot_f32(const float* a, const float* b, int64_t n);
float dot_f32_f16(const float* a, const uint16_t* b, int64_t n);
void axpy_f32(float* y, float a, const float* x, int64_t n);
void scale_f32(float* y, float a, int64_t n);

// Tiled attention (defined in attn_kernels.cpp).
void attn_scores(const float* q, size_t q_stride, int64_t nq, const float* kt, int64_t D, int64_t nk, float* s,
                 size_t s_stride);
void attn_accumulate(float* acc, size_t acc_stride, int64_t nr, int64_t Dv, const float* w, size_t w_stride,
                     int64_t nk, const float* v);
float scale_mask_max(float* s, const float* mask, int64_t n, float scale);
float exp_sum(float* x, int64_t n, float m);
void f16_to_f32(const uint16_t* x, float* y, int64_t n);
void f32_to_f16(const float* x, uint16_t* y, int64_t n);

// Gated activations (defined in gate_kernels.cpp).
void swiglu(const float* g, const float* u, float* out, int64_t n);
void geglu(const float* g, const float* u, float* out, int64_t n);

// Fills every entry of the table with the twins (the HWY_SCALAR target).
void fill(KernelTable* t);

}  // namespace tessera::cpu::kernels::ref
