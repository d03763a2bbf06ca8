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
// Q4_1 (value = d * q + m): 16 fp16 scales d, then 16 fp16 mins m, then 4 chunks as Q4_0.
// Q4_K (blocks of 256 in 8 sub-blocks of 32, 2368 bytes per block of a group):
//   16 fp16 d, 16 fp16 dmin; the 6-bit sub-block scales as bytes, scale s of row j at
//   64 + 16 s + j; the mins as byte pairs, min 2p + h of row j at 192 + 32 p + 2 j + h;
//   then per sub-block s, 4 chunks as for Q4_0 at 320 + 64 (4 s + t).
// Q6_K (blocks of 256 in 16 sub-blocks of 16, 3360 bytes per block of a group, the plain
//   bytes exactly): 16 fp16 d; the signed 8-bit scales, scale s of row j at 32 + 16 s + j;
//   the low 4 bits of the quants as 32 vectors of 64 bytes at 288, vector v holding chunk 2v
//   (4 quants of each row, low nibbles) and chunk 2v + 1 (high nibbles); the top 2 bits as
//   16 vectors at 2336, vector s holding chunks 4s .. 4s + 3 as bit pairs 0-1, 2-3, 4-5, 6-7.
// F16: element i of the 16 rows side by side, 32 bytes per i (kernels: one conversion to
// 16 floats, then one FMA per activation row with the activation broadcast); F32 likewise,
// 64 bytes per i.
// BF16 (rows of even length): elements 2p and 2p + 1 of the 16 rows side by side, 64 bytes per
// pair p, row j's pair at 4 j (kernels: one vdpbf16ps per pair and activation row, against the
// activation row rounded to bf16, as llama.cpp does for BF16 weights).
// A Q4_0, Q4_1, Q8_0, Q6_K, F16, BF16 or F32 group takes exactly the bytes of its 16 rows in the
// plain layout; a Q4_K group 64 bytes more per block (r16_bytes).
//
// Dot products of Q4_0, Q4_1 and Q8_0 against Q8_0 activation blocks use the unsigned quants and
// subtract offset * sum(y) per block (offset 8 for Q4_0, 128 for Q8_0), the sums being
// computed once per activation row (act_block_sums); Q4_1 adds m * yd * sum(y) instead, a
// second float update per block. Q4_K runs against Q8_K blocks, whose
// own bsums give the mins' part; Q6_K too, the bsums giving its offset of 32.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace tessera::cpu::kernels {

inline constexpr int kR16Rows = 16;
// The most activation rows one r16 tile call takes.
inline constexpr int kR16MaxCols = 16;

// Whether `t` has an r16 layout.
bool r16_supported(DType t);
// Bytes of one block of the 16 rows of a group (288 for Q4_0, 320 for Q4_1, 544 for Q8_0, 2368 for Q4_K,
// 3360 for Q6_K).
size_t r16_block_bytes(DType t);
// Bytes of a whole tensor of n rows of k elements in the layout.
size_t r16_bytes(DType t, int64_t k, int64_t n);
// Whether the type's kernels take Q8_K activation blocks, or plain F32 activation rows
// (F16); else Q8_0 blocks plus block sums.
bool r16_uses_q8_K(DType t);
bool r16_uses_f32(DType t);
// BF16: the activation rows rounded to bf16 (round_row_bf16).
bool r16_uses_bf16(DType t);
// Whether a tensor of n rows of k elements fits the layout (whole groups and blocks).
bool r16_fits(DType t, int64_t k, int64_t n);
// x: k floats -> k bf16, rounded to nearest even (the BF16 kernels' activations).
void round_row_bf16(const float* x, uint16_t* y, int64_t k);

// Plain rows -> r16 groups, and back. n a multiple of 16, k of the block size; src and dst
// distinct.
void repack_r16(DType t, const void* src, void* dst, int64_t k, int64_t n);
void unpack_r16(DType t, const void* src, void* dst, int64_t k, int64_t n);

// One activation row of Q8_0 blocks -> the sum of each block's 32 quants.
void act_block_sums(const void* x, int32_t* sums, int64_t k);

// 16 weight rows (one r16 group) x nc activation rows (1..kR16MaxCols):
//   out[c * out_stride + j] = sum over blocks of fma-accumulated
//                             float(sum((u - offset) * y)) * (wd[j] * yd[c])
// in block order, each block's integer sum exact. x: nc rows of Q8_0 blocks x_stride bytes
// apart (Q8_K blocks for Q4_K, where the sums are unused); sums: their act_block_sums,
// sums_stride int32s apart.
using DotR16Fn = void (*)(int64_t k, const void* w, const void* x, size_t x_stride, const int32_t* sums,
                          size_t sums_stride, int nc, float* out, size_t out_stride);

// The scalar twin of every r16 kernel (the same arithmetic, in the same order, so results
// are bit-identical), and the fallback where no SIMD one exists.
void dot_r16_ref(DType t, int64_t k, const void* w, const void* x, size_t x_stride, const int32_t* sums,
                 size_t sums_stride, int nc, float* out, size_t out_stride);
DotR16Fn dot_r16_ref_fn(DType t);

// The AVX-512 VNNI kernels (nullptr for other types, or where not compiled in), and the
// AVX-512 BF16 one for BF16 weights.
DotR16Fn dot_r16_avx512_vnni(DType t);
DotR16Fn dot_r16_avx512_bf16();
// The AVX2 kernels (Q4_0, Q4_1, Q8_0, Q4_K; nullptr for other types, or where not compiled in): the
// AVX2 code paths, and AVX-512 ones without VNNI.
DotR16Fn dot_r16_avx2(DType t);
// The AMX kernels (Q4_0, Q4_1, Q8_0, Q4_K; 16 activation rows at a time, fewer on the VNNI kernels).
DotR16Fn dot_r16_amx(DType t);

}  // namespace tessera::cpu::kernels
