// Device-side reading of the GGUF block types: the block structs (those of tensor/quant/blocks.h,
// byte for byte), unaligned-safe loads, and dequantization of 8 consecutive elements of a row
// ("a chunk"), the unit the CUDA kernels convert weights in.
//
// Blocks in device memory are only 2-byte aligned in general (Q4_0 is 18 bytes), so nothing
// here issues a 4-byte load at an address it has not made 4-byte aligned: load_words reads
// aligned words around the wanted bytes and shifts them into place.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "tensor/dtype.h"
#include "tensor/quant/blocks.h"

namespace tessera::cuda {

using quant::block_q2_K;
using quant::block_q3_K;
using quant::block_q4_0;
using quant::block_q4_1;
using quant::block_q4_K;
using quant::block_q5_0;
using quant::block_q5_1;
using quant::block_q5_K;
using quant::block_q6_K;
using quant::block_q8_0;

// Elements and bytes per block of the types the kernels read (1 and the element size for
// the plain float types).
template <DType T>
struct BlockInfo;
template <>
struct BlockInfo<DType::F32> {
    static constexpr int kElems = 1, kBytes = 4;
};
template <>
struct BlockInfo<DType::F16> {
    static constexpr int kElems = 1, kBytes = 2;
};
template <>
struct BlockInfo<DType::BF16> {
    static constexpr int kElems = 1, kBytes = 2;
};
template <>
struct BlockInfo<DType::Q4_0> {
    static constexpr int kElems = 32, kBytes = sizeof(block_q4_0);
};
template <>
struct BlockInfo<DType::Q4_1> {
    static constexpr int kElems = 32, kBytes = sizeof(block_q4_1);
};
template <>
struct BlockInfo<DType::Q5_0> {
    static constexpr int kElems = 32, kBytes = sizeof(block_q5_0);
};
template <>
struct BlockInfo<DType::Q5_1> {
    static constexpr int kElems = 32, kBytes = sizeof(block_q5_1);
};
template <>
struct BlockInfo<DType::Q8_0> {
    static constexpr int kElems = 32, kBytes = sizeof(block_q8_0);
};
template <>
struct BlockInfo<DType::Q2_K> {
    static constexpr int kElems = 256, kBytes = sizeof(block_q2_K);
};
template <>
struct BlockInfo<DType::Q3_K> {
    static constexpr int kElems = 256, kBytes = sizeof(block_q3_K);
};
template <>
struct BlockInfo<DType::Q4_K> {
    static constexpr int kElems = 256, kBytes = sizeof(block_q4_K);
};
template <>
struct BlockInfo<DType::Q5_K> {
    static constexpr int kElems = 256, kBytes = sizeof(block_q5_K);
};
template <>
struct BlockInfo<DType::Q6_K> {
    static constexpr int kElems = 256, kBytes = sizeof(block_q6_K);
};

// Split rows: the CUDA backend keeps Q4_0 and Q8_0 weights whose rows are a multiple of
// kSplitRowMultiple long (tensor.h's split_rows_fit; tensors flagged kFlagDeviceLayout) with
// each row's nb blocks taken apart: their quants one after another (16 bytes a block for Q4_0, 32 for Q8_0), then their
// nb fp16 scales. A row keeps its size and place, so row strides and row views stay as they
// were, and its quants are 16-byte aligned: a thread reads a block's quants with one or two
// 16-byte loads where the file's 18- or 34-byte blocks take five or nine 4-byte ones.
template <DType T>
inline constexpr bool kSplitRows = T == DType::Q4_0 || T == DType::Q8_0;
template <DType T>
inline constexpr int kQuantBytes = BlockInfo<T>::kBytes - 2;  // the quants of a block (Q4_0, Q8_0)

__device__ __forceinline__ float fp16_bits_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf16_bits_to_float(uint16_t h) {
    return __uint_as_float(static_cast<uint32_t>(h) << 16);
}

// A 2-byte field at byte offset `off` of a block.
__device__ __forceinline__ uint16_t load_u16(const uint8_t* p) { return __ldg(reinterpret_cast<const uint16_t*>(p)); }
__device__ __forceinline__ float load_fp16(const uint8_t* p) { return fp16_bits_to_float(load_u16(p)); }

// w[i] = bytes p[4i .. 4i+3] (little-endian) for a 2-byte aligned p, from aligned 4-byte loads:
// the words covering the bytes, shifted by 16 bits when p is not 4-byte aligned. Reads no byte
// outside [p - 2, p + 4N), and p - 2 only when p is misaligned, so never before the block that
// holds p unless p is a block's first byte, which lies past an earlier block or past the
// 256-aligned start of an allocation.
template <int N>
__device__ __forceinline__ void load_words(const uint8_t* p, uint32_t (&w)[N]) {
    const uintptr_t addr = reinterpret_cast<uintptr_t>(p);
    const uint32_t* base = reinterpret_cast<const uint32_t*>(addr & ~static_cast<uintptr_t>(3));
    const uint32_t shift = static_cast<uint32_t>(addr & 2) * 8;
    uint32_t raw[N + 1];
#pragma unroll
    for (int i = 0; i < N; ++i) raw[i] = __ldg(base + i);
    raw[N] = shift ? __ldg(base + N) : 0u;
#pragma unroll
    for (int i = 0; i < N; ++i) w[i] = __funnelshift_r(raw[i], raw[i + 1], shift);
}

__device__ __forceinline__ int byte_of(uint32_t w, int i) { return static_cast<int>((w >> (8 * i)) & 0xffu); }

// Bit i of the 4-bit value b moved to bit 8i (one bit per byte).
__device__ __forceinline__ uint32_t spread_bits4(uint32_t b) { return (b * 0x00204081u) & 0x01010101u; }

// Scale and min of sub-block j (0..7) of a Q4_K/Q5_K block, from the 12 scale bytes as 3 words.
__device__ __forceinline__ void scale_min_k4(int j, const uint32_t (&s)[3], int* sc, int* mn) {
    if (j < 4) {
        *sc = byte_of(s[0], j) & 63;
        *mn = byte_of(s[1], j) & 63;
    } else {
        const int lo = byte_of(s[2], j - 4);
        *sc = (lo & 15) | (byte_of(s[0], j - 4) >> 6) << 4;
        *mn = (lo >> 4) | (byte_of(s[1], j - 4) >> 6) << 4;
    }
}

// Scale (6 bits, offset by 32 removed) of sub-block j (0..15) of a Q3_K block, from its 12
// scale bytes as 3 words.
__device__ __forceinline__ int scale_q3_K(int j, const uint32_t (&s)[3]) {
    const int jj = j & 7;
    const int low = (byte_of(jj < 4 ? s[0] : s[1], jj & 3) >> (4 * (j >> 3))) & 15;
    const int top = (byte_of(s[2], j & 3) >> (2 * (j >> 2))) & 3;
    return (low | top << 4) - 32;
}

// ---- dequantization of chunk c (elements 8c .. 8c+7) of one block ----

// Q4_0 and Q8_0 from a block's scale and the address of its quants (in the block, or in a
// split row).
__device__ __forceinline__ void dequant8_q4_0_qs(float d, const uint8_t* qs, int c, float (&v)[8]) {
    uint32_t q[2];
    load_words<2>(qs + 8 * (c & 1), q);
    const int shift = 4 * (c >> 1);
#pragma unroll
    for (int i = 0; i < 8; ++i)
        v[i] = d * static_cast<float>(static_cast<int>((q[i / 4] >> (8 * (i % 4) + shift)) & 15) - 8);
}

__device__ __forceinline__ void dequant8_q8_0_qs(float d, const uint8_t* qs, int c, float (&v)[8]) {
    uint32_t q[2];
    load_words<2>(qs + 8 * c, q);
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = d * static_cast<float>(static_cast<int8_t>(q[i / 4] >> (8 * (i % 4))));
}

__device__ __forceinline__ void dequant8_q4_0(const uint8_t* blk, int c, float (&v)[8]) {
    dequant8_q4_0_qs(load_fp16(blk), blk + 2, c, v);
}

__device__ __forceinline__ void dequant8_q4_1(const uint8_t* blk, int c, float (&v)[8]) {
    const float d = load_fp16(blk);
    const float m = load_fp16(blk + 2);
    uint32_t q[2];
    load_words<2>(blk + 4 + 8 * (c & 1), q);
    const int shift = 4 * (c >> 1);
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = d * static_cast<float>((q[i / 4] >> (8 * (i % 4) + shift)) & 15) + m;
}

// Q5_0/Q5_1: the fifth bits are bit e of the little-endian u32 qh.
__device__ __forceinline__ void dequant8_q5(const uint8_t* qh_p, const uint8_t* qs, int c, float d, float m, int off,
                                            float (&v)[8]) {
    const uint32_t qh = load_u16(qh_p) | static_cast<uint32_t>(load_u16(qh_p + 2)) << 16;
    uint32_t q[2];
    load_words<2>(qs + 8 * (c & 1), q);
    const int shift = 4 * (c >> 1);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int lo = (q[i / 4] >> (8 * (i % 4) + shift)) & 15;
        const int hi = (qh >> (8 * c + i)) & 1;
        v[i] = d * static_cast<float>((lo | hi << 4) - off) + m;
    }
}

__device__ __forceinline__ void dequant8_q5_0(const uint8_t* blk, int c, float (&v)[8]) {
    dequant8_q5(blk + 2, blk + 6, c, load_fp16(blk), 0.0f, 16, v);
}

__device__ __forceinline__ void dequant8_q5_1(const uint8_t* blk, int c, float (&v)[8]) {
    dequant8_q5(blk + 4, blk + 8, c, load_fp16(blk), load_fp16(blk + 2), 0, v);
}

__device__ __forceinline__ void dequant8_q8_0(const uint8_t* blk, int c, float (&v)[8]) {
    dequant8_q8_0_qs(load_fp16(blk), blk + 2, c, v);
}

// Q2_K/Q3_K/Q6_K: element e = 128h + 32j + l, and a chunk never crosses a (h, j) group.
__device__ __forceinline__ void dequant8_q2_K(const uint8_t* blk, int c, float (&v)[8]) {
    const int e = 8 * c, h = e >> 7, j = (e >> 5) & 3, l = e & 31;
    const float d = load_fp16(blk + 80);
    const float dmin = load_fp16(blk + 82);
    const int sc = blk[e >> 4];
    const float dl = d * static_cast<float>(sc & 15);
    const float ml = dmin * static_cast<float>(sc >> 4);
    uint32_t q[2];
    load_words<2>(blk + 16 + 32 * h + l, q);
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = dl * static_cast<float>((q[i / 4] >> (8 * (i % 4) + 2 * j)) & 3) - ml;
}

__device__ __forceinline__ void dequant8_q3_K(const uint8_t* blk, int c, float (&v)[8]) {
    const int e = 8 * c, h = e >> 7, j = (e >> 5) & 3, l = e & 31;
    const float d = load_fp16(blk + 108);
    uint32_t s[3];
    load_words<3>(blk + 96, s);
    const float dl = d * static_cast<float>(scale_q3_K(e >> 4, s));
    uint32_t q[2], hm[2];
    load_words<2>(blk + 32 + 32 * h + l, q);
    load_words<2>(blk + l, hm);
    const int hbit = 4 * h + j;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int low = (q[i / 4] >> (8 * (i % 4) + 2 * j)) & 3;
        const int high = (hm[i / 4] >> (8 * (i % 4) + hbit)) & 1;
        v[i] = dl * static_cast<float>(low - (high ? 0 : 4));
    }
}

// Q4_K/Q5_K: element e = 64c' + l; sub-block e / 32.
__device__ __forceinline__ void dequant8_q4_K(const uint8_t* blk, int c, float (&v)[8]) {
    const int e = 8 * c, sub = e >> 5, l = e & 31;
    uint32_t s[3];
    load_words<3>(blk + 4, s);
    int sc, mn;
    scale_min_k4(sub, s, &sc, &mn);
    const float dl = load_fp16(blk) * static_cast<float>(sc);
    const float ml = load_fp16(blk + 2) * static_cast<float>(mn);
    uint32_t q[2];
    load_words<2>(blk + 16 + 32 * (sub >> 1) + l, q);
    const int shift = 4 * (sub & 1);
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = dl * static_cast<float>((q[i / 4] >> (8 * (i % 4) + shift)) & 15) - ml;
}

__device__ __forceinline__ void dequant8_q5_K(const uint8_t* blk, int c, float (&v)[8]) {
    const int e = 8 * c, sub = e >> 5, l = e & 31;
    uint32_t s[3];
    load_words<3>(blk + 4, s);
    int sc, mn;
    scale_min_k4(sub, s, &sc, &mn);
    const float dl = load_fp16(blk) * static_cast<float>(sc);
    const float ml = load_fp16(blk + 2) * static_cast<float>(mn);
    uint32_t q[2], qh[2];
    load_words<2>(blk + 48 + 32 * (sub >> 1) + l, q);
    load_words<2>(blk + 16 + l, qh);
    const int shift = 4 * (sub & 1);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int lo = (q[i / 4] >> (8 * (i % 4) + shift)) & 15;
        const int hi = (qh[i / 4] >> (8 * (i % 4) + sub)) & 1;
        v[i] = dl * static_cast<float>(lo | hi << 4) - ml;
    }
}

__device__ __forceinline__ void dequant8_q6_K(const uint8_t* blk, int c, float (&v)[8]) {
    const int e = 8 * c, h = e >> 7, j = (e >> 5) & 3, l = e & 31;
    const float dl = load_fp16(blk + 208) * static_cast<float>(static_cast<int8_t>(blk[192 + (e >> 4)]));
    uint32_t ql[2], qh[2];
    load_words<2>(blk + 64 * h + 32 * (j & 1) + l, ql);
    load_words<2>(blk + 128 + 32 * h + l, qh);
    const int shift = 4 * (j >> 1);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int lo = (ql[i / 4] >> (8 * (i % 4) + shift)) & 15;
        const int hi = (qh[i / 4] >> (8 * (i % 4) + 2 * j)) & 3;
        v[i] = dl * static_cast<float>((lo | hi << 4) - 32);
    }
}

// Elements 8c .. 8c+7 of a row of type T starting at `row` (2-byte aligned; 4-byte for F32).
// For the float types the caller keeps 8c + 8 <= the row length. S: a split row of nb blocks.
template <DType T, bool S = false>
__device__ __forceinline__ void dequantize_chunk8(const uint8_t* row, int64_t c, float (&v)[8], int64_t nb = 0) {
    constexpr int kChunks = BlockInfo<T>::kElems / 8;  // chunks per block (quantized types)
    if constexpr (S) {
        static_assert(kSplitRows<T>, "no split rows of this type");
        const int64_t b = c / kChunks;
        const float d = load_fp16(row + nb * kQuantBytes<T> + 2 * b);
        const uint8_t* qs = row + b * kQuantBytes<T>;
        if constexpr (T == DType::Q4_0) dequant8_q4_0_qs(d, qs, static_cast<int>(c % kChunks), v);
        if constexpr (T == DType::Q8_0) dequant8_q8_0_qs(d, qs, static_cast<int>(c % kChunks), v);
    } else if constexpr (T == DType::F32) {
        const float* p = reinterpret_cast<const float*>(row) + 8 * c;
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = __ldg(p + i);
    } else if constexpr (T == DType::F16 || T == DType::BF16) {
        uint32_t w[4];
        load_words<4>(row + 16 * c, w);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const uint16_t bits = static_cast<uint16_t>(w[i / 2] >> (16 * (i % 2)));
            v[i] = T == DType::F16 ? fp16_bits_to_float(bits) : bf16_bits_to_float(bits);
        }
    } else {
        const uint8_t* blk = row + (c / kChunks) * BlockInfo<T>::kBytes;
        const int cc = static_cast<int>(c % kChunks);
        if constexpr (T == DType::Q4_0) dequant8_q4_0(blk, cc, v);
        if constexpr (T == DType::Q4_1) dequant8_q4_1(blk, cc, v);
        if constexpr (T == DType::Q5_0) dequant8_q5_0(blk, cc, v);
        if constexpr (T == DType::Q5_1) dequant8_q5_1(blk, cc, v);
        if constexpr (T == DType::Q8_0) dequant8_q8_0(blk, cc, v);
        if constexpr (T == DType::Q2_K) dequant8_q2_K(blk, cc, v);
        if constexpr (T == DType::Q3_K) dequant8_q3_K(blk, cc, v);
        if constexpr (T == DType::Q4_K) dequant8_q4_K(blk, cc, v);
        if constexpr (T == DType::Q5_K) dequant8_q5_K(blk, cc, v);
        if constexpr (T == DType::Q6_K) dequant8_q6_K(blk, cc, v);
    }
}

// Element i of a row of a plain float type (F32, F16, BF16).
template <DType T>
__device__ __forceinline__ float load_float_element(const uint8_t* row, int64_t i) {
    if constexpr (T == DType::F32) return __ldg(reinterpret_cast<const float*>(row) + i);
    if constexpr (T == DType::F16) return fp16_bits_to_float(load_u16(row + 2 * i));
    if constexpr (T == DType::BF16) return bf16_bits_to_float(load_u16(row + 2 * i));
    return 0.0f;
}

// ---- conversion to the tensor-core element types (half, or bf16 for BF16 weights) ----

template <typename E>
__device__ __forceinline__ E to_elem(float x) {
    if constexpr (std::is_same_v<E, __half>)
        return __float2half_rn(x);
    else
        return __float2bfloat16_rn(x);
}

template <typename E>
__device__ __forceinline__ float from_elem(E x) {
    if constexpr (std::is_same_v<E, __half>)
        return __half2float(x);
    else
        return __bfloat162float(x);
}

template <typename E>
__device__ __forceinline__ void store8(E* dst, const float (&v)[8]) {
    union {
        E e[8];
        uint4 u;
    } pack;
#pragma unroll
    for (int i = 0; i < 8; ++i) pack.e[i] = to_elem<E>(v[i]);
    *reinterpret_cast<uint4*>(dst) = pack.u;
}

// Elements k0 + 8c .. + 7 of a weight row, zero past k (only float types have ragged k).
// S: a split row.
template <DType T, bool S = false>
__device__ __forceinline__ void load_weight8(const uint8_t* row, int64_t k0, int c, int64_t k, float (&v)[8]) {
    const int64_t e = k0 + 8 * c;
    constexpr bool kFloat = T == DType::F32 || T == DType::F16 || T == DType::BF16;
    if (!kFloat || e + 8 <= k) {
        dequantize_chunk8<T, S>(row, e / 8, v, k / BlockInfo<T>::kElems);
    } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = e + i < k ? load_float_element<T>(row, e + i) : 0.0f;
    }
}

}  // namespace tessera::cuda
