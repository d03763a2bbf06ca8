// Unpacking the sub-block scales of the k-quant formats (layouts in tensor/quant/blocks.h),
// shared by the scalar twins and the SIMD kernels.
#pragma once

#include <cstdint>
#include <cstring>

namespace tessera::cpu::kernels {

// Q4_K / Q5_K: 8 six-bit scales and 8 six-bit mins from 12 bytes.
inline void unpack_q4_K_scales(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; ++j) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = static_cast<uint8_t>((s[j + 8] & 15) | (s[j] >> 6) << 4);
        mn[j + 4] = static_cast<uint8_t>((s[j + 8] >> 4) | (s[j + 4] >> 6) << 4);
    }
}

// Q3_K: 16 six-bit scales, returned without their +32 offset (range -32..31).
inline void unpack_q3_K_scales(const uint8_t s[12], int8_t sc[16]) {
    for (int i = 0; i < 16; ++i) {
        const int low = i < 8 ? (s[i] & 15) : (s[i - 8] >> 4);
        const int top = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
        sc[i] = static_cast<int8_t>((low | top << 4) - 32);
    }
}

// The same two unpackings a word at a time, for the SIMD kernels (the twins use the byte
// loops above, so the tests check one against the other). Little-endian hosts only.
inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Q4_K / Q5_K: byte j of *sc is scale j, of *mn min j.
inline void q4_K_scale_words(const uint8_t s[12], uint64_t* sc, uint64_t* mn) {
    const uint32_t a = load_u32(s), b = load_u32(s + 4), c = load_u32(s + 8);
    const uint32_t sc_lo = a & 0x3f3f3f3fu, mn_lo = b & 0x3f3f3f3fu;
    const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 6) & 0x03030303u) << 4;
    const uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 6) & 0x03030303u) << 4;
    *sc = sc_lo | static_cast<uint64_t>(sc_hi) << 32;
    *mn = mn_lo | static_cast<uint64_t>(mn_hi) << 32;
}

// Q3_K: byte j of *lo is scale j, of *hi scale 8 + j, with their +32 offset (0..63).
inline void q3_K_scale_words(const uint8_t s[12], uint64_t* lo, uint64_t* hi) {
    const uint32_t a = load_u32(s), b = load_u32(s + 4), t = load_u32(s + 8);
    const uint32_t m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    const uint32_t s0 = (a & m4) | (t & m2) << 4, s1 = (b & m4) | ((t >> 2) & m2) << 4;
    const uint32_t s2 = ((a >> 4) & m4) | ((t >> 4) & m2) << 4, s3 = ((b >> 4) & m4) | ((t >> 6) & m2) << 4;
    *lo = s0 | static_cast<uint64_t>(s1) << 32;
    *hi = s2 | static_cast<uint64_t>(s3) << 32;
}

}  // namespace tessera::cpu::kernels
