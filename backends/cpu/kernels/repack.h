// The interleaved weight layout for prompt processing ("r16"): weights of a supported type
// are rearranged once, at load, so that one 512-bit register holds four consecutive quants of
// each of 16 weight rows. One vpdpbusd then multiplies those 16 rows by four broadcast
// activation quants, and 16 rows' dot products grow side by side in the 16 lanes of one
// accumulator; no horizontal sums, and the 16 results of a column are stored at once.
//
// Layout of a tensor of n rows (a multiple of 16) of k elements (k / 32 = nb blocks): groups
// of 16 rows one after another; in a group, block b of all 16 rows at b * block_bytes:
//   16 fp16 scales, row j's at j;
//   then the quants as 16-row x 4-byte chunks of 64 bytes (row j's four bytes at 4 j):
//     Q4_0 (4 chunks): chunk t, byte i of row j = q[j][8t + i] | q[j][8t + 4 + i] << 4,
//          q the unsigned 4-bit quants (value = d * (q - 8));
//     Q8_0 (8 chunks): chunk t, byte i of row j = q[j][4t + i] + 128 (as unsigned).
// A group takes exactly the bytes of its 16 rows in the plain layout, so the tensor keeps
// its size and row_ptr(n) of a multiple of 16 is its group's start.
//
// Dot products against Q8_0 activation blocks use the unsigned quants and subtract
// offset * sum(y) per block (offset 8 for Q4_0, 128 for Q8_0), the sums being computed
// once per activation row (act_block_sums).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace tessera::cpu::kernels {

inline constexpr int kR16Rows = 16;
// The most activation rows one r16 tile call takes.
inline constexpr int kR16MaxCols = 8;

// Whether `t` has an r16 layout.
bool r16_supported(DType t);
// Bytes of one block of the 16 rows of a group (288 for Q4_0, 544 for Q8_0).
size_t r16_block_bytes(DType t);

// Plain rows -> r16 groups, and back. n a multiple of 16, k of 32; src and dst distinct.
void repack_r16(DType t, const void* src, void* dst, int64_t k, int64_t n);
void unpack_r16(DType t, const void* src, void* dst, int64_t k, int64_t n);

// One activation row of Q8_0 blocks -> the sum of each block's 32 quants.
void act_block_sums(const void* x, int32_t* sums, int64_t k);

// 16 weight rows (one r16 group) x nc activation rows (1..kR16MaxCols):
//   out[c * out_stride + j] = sum over blocks of fma-accumulated
//                             float(sum((u - offset) * y)) * (wd[j] * yd[c])
// in block order, each block's integer sum exact. x: nc rows of Q8_0 blocks x_stride bytes
// apart; sums: their act_block_sums, sums_stride int32s apart.
using DotR16Fn = void (*)(int64_t k, const void* w, const void* x, size_t x_stride, const int32_t* sums,
                          size_t sums_stride, int nc, float* out, size_t out_stride);

// The scalar twin of every r16 kernel (the same arithmetic, in the same order, so results
// are bit-identical), and the fallback where no SIMD one exists.
void dot_r16_ref(DType t, int64_t k, const void* w, const void* x, size_t x_stride, const int32_t* sums,
                 size_t sums_stride, int nc, float* out, size_t out_stride);
DotR16Fn dot_r16_ref_fn(DType t);

// The AVX-512 VNNI kernels (nullptr for other types, or where not compiled in).
DotR16Fn dot_r16_avx512_vnni(DType t);

}  // namespace tessera::cpu::kernels
