// How the Highway kernel files hand their functions to the dispatcher (dispatch.cpp). Each
// fills its part of the table with the code of the Highway target chosen at the time of the
// call (HWY_DYNAMIC_DISPATCH), so they are called after that choice is made.
#pragma once

#include "backends/cpu/kernels/kernels.h"

namespace tessera::cpu::kernels::detail {

// Target name, F32/F16/BF16 dot tiles, activation quantizers, attention row helpers.
void fill_float_kernels(KernelTable* t);
// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 against Q8_0 activations. `vnni`: use the variant with the
// dot-product extension (AVX2 with AVX-VNNI, AVX3 with AVX512-VNNI, NEON and SVE with
// DOTPROD; the caller checks the CPU).
void fill_legacy_kernels(KernelTable* t, bool vnni);
// Q2_K..Q6_K against Q8_K activations.
void fill_kquant_kernels(KernelTable* t);
// Tiled attention: scores, weighted values, exponentials.
void fill_attn_kernels(KernelTable* t);
// The gated activations (SwiGLU, GeGLU).
void fill_gate_kernels(KernelTable* t);

}  // namespace tessera::cpu::kernels::detail
