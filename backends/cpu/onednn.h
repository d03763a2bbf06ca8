// oneDNN's matmul for prompt products on float weights (ops_matmul.cpp decides when), where
// it is compiled in (TESSERA_BLAS=auto or onednn, with Debian's libdnnl-dev).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tensor/dtype.h"

namespace tessera::cpu::onednn {

// What TESSERA_GEMM asks for, read once: "own" (Tessera's kernels for every product),
// "openblas", "onednn", or "" for the measured defaults (ops_matmul.cpp).
const std::string& gemm_mode();

// Whether prompt products on weights of type t run on oneDNN, natively or (types it has no
// kernel for here) on slices of weight rows converted to F32. By default (the figures are in
// ops_matmul.cpp): BF16 where oneDNN multiplies BF16 on AMX tiles, and every float type
// where the CPU's code path has no interleaved kernel for it (no AVX-512), in place of
// OpenBLAS. TESSERA_GEMM=onednn sends every float type; own (Tessera's kernels only) or
// openblas none. False when oneDNN is not compiled in.
bool chosen(DType t);

// Whether oneDNN multiplies weights of type t as they are on this CPU.
bool native(DType t);

// The activations' type for weights of type t: t where native (BF16, F16), else F32.
DType act_type(DType t);

// y[m][n] = sum_k x[m][k] * w[n][k] for m < M, n < rows, t a type native() takes: x rows
// ldx elements apart (in act_type(t)), w rows ldw elements apart (in t), y rows ldy floats apart. Runs on the
// calling thread alone; the primitive of each shape is made once and kept.
void matmul(DType t, const void* x, size_t ldx, const void* w, size_t ldw, float* y, size_t ldy, int64_t M,
            int64_t K, int64_t rows);

// What oneDNN runs a type's products with here ("brg:avx512_core_amx", "F32 slices,
// gemm:jit", ...), for messages; empty where it takes no such product or is not compiled in.
const char* implementation(DType t);

}  // namespace tessera::cpu::onednn
