// The GGUF quantized block layouts, byte for byte as ggml writes them, so that tensor data
// mapped from a file can be read as arrays of these structs.
//
// Half-precision fields (d, m, dmin, s) are raw IEEE binary16 bits; convert them with
// tensor/fp16.h. All fields are little-endian in files; like ggml, Tessera reads them in
// place and so supports little-endian hosts only. The structs need at most 2-byte
// alignment (4 for block_q8_K, which is never stored in files); every type_size is even,
// so rows that start aligned keep every block aligned.
//
// Meaning of the bits (element e of a block; "d" etc. are the fp16 fields as floats):
//   Q4_0  x = d * (q - 8),        q: 4 bits, qs[e] low nibble for e < 16, qs[e-16] high
//   Q4_1  x = d * q + m,          same nibble order
//   Q5_0  x = d * (q - 16),       q: nibble as Q4_0 plus bit e of qh (a little-endian u32)
//   Q5_1  x = d * q + m,          same bit order
//   Q8_0  x = d * qs[e]
//   Q8_1  x = d * qs[e],          s = d * sum(qs), used by dot products against Q4_1/Q5_1
//   k-quants: super-blocks of 256 elements; see each struct below.
#pragma once

#include <cstdint>

namespace tessera::quant {

inline constexpr int kQK = 32;    // elements per block of the legacy formats
inline constexpr int kQKK = 256;  // elements per super-block of the k-quants

struct block_q4_0 {
    uint16_t d;           // fp16 scale
    uint8_t qs[kQK / 2];  // nibbles: low = elements 0..15, high = elements 16..31
};

struct block_q4_1 {
    uint16_t d;           // fp16 scale
    uint16_t m;           // fp16 offset (the block minimum)
    uint8_t qs[kQK / 2];  // as block_q4_0
};

struct block_q5_0 {
    uint16_t d;           // fp16 scale
    uint8_t qh[4];        // bit e = fifth bit of element e (read as a little-endian u32)
    uint8_t qs[kQK / 2];  // low four bits, as block_q4_0
};

struct block_q5_1 {
    uint16_t d;           // fp16 scale
    uint16_t m;           // fp16 offset
    uint8_t qh[4];        // as block_q5_0
    uint8_t qs[kQK / 2];  // as block_q4_0
};

struct block_q8_0 {
    uint16_t d;  // fp16 scale
    int8_t qs[kQK];
};

struct block_q8_1 {
    uint16_t d;  // fp16 scale
    uint16_t s;  // fp16 d * sum(qs)
    int8_t qs[kQK];
};

// Q2_K: 16 sub-blocks of 16. x = d * (scales[e/16] & 15) * q - dmin * (scales[e/16] >> 4).
// q (2 bits): with e = 128*h + 32*j + l (h < 2, j < 4, l < 32) it is bits 2j..2j+1 of
// qs[32*h + l]: each byte holds four elements 32 apart.
struct block_q2_K {
    uint8_t scales[kQKK / 16];  // low nibble: scale, high nibble: min, per sub-block
    uint8_t qs[kQKK / 4];
    uint16_t d;     // fp16 super-block scale of the scales
    uint16_t dmin;  // fp16 super-block scale of the mins
};

// Q3_K: 16 sub-blocks of 16. x = d * (sc[e/16] - 32) * (q - 4), q = 3 bits:
//   low two bits as Q2_K (bits 2j..2j+1 of qs[32*h + l]);
//   high bit = bit (4*h + j) of hmask[l]. A cleared high bit is what subtracts 4.
// sc (6 bits, stored offset by 32): low four bits in scales[0..7] (low nibbles for
// sub-blocks 0..7, high nibbles for 8..15); the top two bits of sub-block 4*g + i are
// bits 2g..2g+1 of scales[8 + i].
struct block_q3_K {
    uint8_t hmask[kQKK / 8];
    uint8_t qs[kQKK / 4];
    uint8_t scales[12];
    uint16_t d;  // fp16 super-block scale
};

// Q4_K: 8 sub-blocks of 32. x = d * sc[e/32] * q - dmin * m[e/32], q = 4 bits:
//   e = 64*c + l (c < 4, l < 64): qs[32*c + l] low nibble for l < 32, qs[32*c + l - 32]
//   high nibble otherwise (sub-block 2c in the low nibbles, 2c+1 in the high).
// sc and m (6 bits each) packed in 12 bytes; for j < 4:
//   sc[j] = scales[j] & 63            m[j] = scales[j+4] & 63
//   sc[j+4] = (scales[j+8] & 15) | (scales[j] >> 6) << 4
//   m[j+4]  = (scales[j+8] >> 4) | (scales[j+4] >> 6) << 4
struct block_q4_K {
    uint16_t d;     // fp16 super-block scale of the scales
    uint16_t dmin;  // fp16 super-block scale of the mins
    uint8_t scales[12];
    uint8_t qs[kQKK / 2];
};

// Q5_K: as Q4_K with a fifth bit per element: bit (e/32) of qh[e%32] adds 16 to q.
struct block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];  // packed as block_q4_K
    uint8_t qh[kQKK / 8];
    uint8_t qs[kQKK / 2];  // low four bits, as block_q4_K
};

// Q6_K: 16 sub-blocks of 16. x = d * scales[e/16] * (q - 32), q = 6 bits.
// With e = 128*h + 32*k + l (h < 2, k < 4, l < 32):
//   low four bits: ql[64*h + 32*(k & 1) + l], low nibble for k < 2, high nibble for k >= 2;
//   high two bits: bits 2k..2k+1 of qh[32*h + l].
struct block_q6_K {
    uint8_t ql[kQKK / 2];
    uint8_t qh[kQKK / 4];
    int8_t scales[kQKK / 16];
    uint16_t d;  // fp16 super-block scale
};

// Q8_K: the activation format dotted against the k-quants. x = d * qs[e]; bsums[i] is the
// sum of qs[16*i .. 16*i + 15], so dot products can apply the k-quant mins per sub-block.
struct block_q8_K {
    float d;  // fp32 scale (not fp16)
    int8_t qs[kQKK];
    int16_t bsums[kQKK / 16];
};

// The byte counts GGUF defines (tensor/dtype.cpp's type_size; tests compare the two).
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 must be 18 bytes");
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 must be 20 bytes");
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 must be 22 bytes");
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 must be 24 bytes");
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 must be 34 bytes");
static_assert(sizeof(block_q8_1) == 36, "block_q8_1 must be 36 bytes");
static_assert(sizeof(block_q2_K) == 84, "block_q2_K must be 84 bytes");
static_assert(sizeof(block_q3_K) == 110, "block_q3_K must be 110 bytes");
static_assert(sizeof(block_q4_K) == 144, "block_q4_K must be 144 bytes");
static_assert(sizeof(block_q5_K) == 176, "block_q5_K must be 176 bytes");
static_assert(sizeof(block_q6_K) == 210, "block_q6_K must be 210 bytes");
static_assert(sizeof(block_q8_K) == 292, "block_q8_K must be 292 bytes");

}  // namespace tessera::quant
