// Reference (scalar) conversions between F32 and the GGUF storage types: the plain twin
// that faster kernels are tested against, and the path that reads any GGUF tensor.
//
// Dequantization is bit-exact with ggml's reference for the same block bytes (the float
// operations are done in the same order; see tensor/quant/blocks.h for the layouts).
// Quantization produces valid blocks with low error but need not match ggml byte for byte.
//
// Per-type functions take `n` elements (a multiple of the type's block size: 32 for the
// legacy formats, 256 for the k-quants) and neither check it nor throw; quantize_row and
// dequantize_row check it and dispatch on the type.
#pragma once

#include <cstdint>

#include "tensor/dtype.h"
#include "tensor/quant/blocks.h"

namespace tessera::quant {

// True when the type can be converted to and from F32 here (type_traits(t).has_reference).
bool has_reference(DType t);

// x: [n] floats -> dst: row_size(t, n) bytes. Throws tessera::Error if the type has no
// reference conversion or n is negative or not a multiple of its block size.
void quantize_row(DType t, const float* x, void* dst, int64_t n);

// src: row_size(t, n) bytes -> y: [n] floats. Throws as quantize_row.
void dequantize_row(DType t, const void* src, float* y, int64_t n);

// ---- plain floats (quant_legacy.cpp) ----
void quantize_row_f16_ref(const float* x, uint16_t* y, int64_t n);
void dequantize_row_f16(const uint16_t* x, float* y, int64_t n);
void quantize_row_bf16_ref(const float* x, uint16_t* y, int64_t n);
void dequantize_row_bf16(const uint16_t* x, float* y, int64_t n);

// ---- 32-element blocks (quant_legacy.cpp) ----
void quantize_row_q4_0_ref(const float* x, block_q4_0* y, int64_t n);
void dequantize_row_q4_0(const block_q4_0* x, float* y, int64_t n);
void quantize_row_q4_1_ref(const float* x, block_q4_1* y, int64_t n);
void dequantize_row_q4_1(const block_q4_1* x, float* y, int64_t n);
void quantize_row_q5_0_ref(const float* x, block_q5_0* y, int64_t n);
void dequantize_row_q5_0(const block_q5_0* x, float* y, int64_t n);
void quantize_row_q5_1_ref(const float* x, block_q5_1* y, int64_t n);
void dequantize_row_q5_1(const block_q5_1* x, float* y, int64_t n);
void quantize_row_q8_0_ref(const float* x, block_q8_0* y, int64_t n);
void dequantize_row_q8_0(const block_q8_0* x, float* y, int64_t n);
void quantize_row_q8_1_ref(const float* x, block_q8_1* y, int64_t n);
void dequantize_row_q8_1(const block_q8_1* x, float* y, int64_t n);

// ---- 256-element k-quant super-blocks (quant_k.cpp) ----
void quantize_row_q2_K_ref(const float* x, block_q2_K* y, int64_t n);
void dequantize_row_q2_K(const block_q2_K* x, float* y, int64_t n);
void quantize_row_q3_K_ref(const float* x, block_q3_K* y, int64_t n);
void dequantize_row_q3_K(const block_q3_K* x, float* y, int64_t n);
void quantize_row_q4_K_ref(const float* x, block_q4_K* y, int64_t n);
void dequantize_row_q4_K(const block_q4_K* x, float* y, int64_t n);
void quantize_row_q5_K_ref(const float* x, block_q5_K* y, int64_t n);
void dequantize_row_q5_K(const block_q5_K* x, float* y, int64_t n);
void quantize_row_q6_K_ref(const float* x, block_q6_K* y, int64_t n);
void dequantize_row_q6_K(const block_q6_K* x, float* y, int64_t n);
void quantize_row_q8_K_ref(const float* x, block_q8_K* y, int64_t n);
void dequantize_row_q8_K(const block_q8_K* x, float* y, int64_t n);

}  // namespace tessera::quant
