// Portable conversions between fp32 and the two 16-bit float formats GGUF stores (IEEE
// binary16 "F16" and bfloat16 "BF16"), by bit manipulation only: no intrinsics, no -march,
// identical results on every host. Rounding is to nearest, ties to even, as the hardware
// converters (F16C, NEON fcvt) do, so files written here match files written elsewhere.
#pragma once

#include <bit>
#include <cstdint>

namespace tessera {

// binary16: sign 1 | exponent 5 (bias 15) | mantissa 10.
// binary32: sign 1 | exponent 8 (bias 127) | mantissa 23.
constexpr uint16_t fp32_to_fp16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t mag = x & 0x7fffffffu;

    if (mag >= 0x7f800000u) {
        if (mag == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);  // inf
        // NaN: keep the top payload bits and force the quiet bit, so that a payload held
        // only in the low 13 bits does not turn the NaN into an infinity.
        return static_cast<uint16_t>(sign | 0x7e00u | ((mag >> 13) & 0x3ffu));
    }
    // 65520 is halfway between 65504 (the largest half, odd mantissa) and 65536: ties go
    // to even, i.e. up, which overflows to inf. Everything from there on is inf.
    if (mag >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);

    if (mag >= 0x38800000u) {
        // Normal half (|f| >= 2^-14). Rebias the exponent (127 -> 15, i.e. subtract
        // 112 << 23), then round away the low 13 mantissa bits to nearest even. A carry
        // out of the mantissa correctly bumps the exponent.
        const uint32_t r = mag - 0x38000000u;
        const uint32_t rounded = r + 0x0fffu + ((r >> 13) & 1u);
        return static_cast<uint16_t>(sign | (rounded >> 13));
    }
    // Subnormal half: value = m * 2^-24 with m in [0, 1023]. Below 2^-25 it rounds to
    // zero; exactly 2^-25 is a tie between 0 and 2^-24 and goes to the even one, 0.
    if (mag <= 0x33000000u) return sign;
    const uint32_t exp = mag >> 23;                       // 102..112 here
    const uint32_t mant = (mag & 0x7fffffu) | 0x800000u;  // with the implicit bit
    const uint32_t shift = 126u - exp;                    // f * 2^24 = mant >> shift
    const uint32_t half = 1u << (shift - 1);
    const uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t m = mant >> shift;
    if (rem > half || (rem == half && (m & 1u))) ++m;  // m == 1024 is the smallest normal
    return static_cast<uint16_t>(sign | m);
}

constexpr float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits = 0;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);  // inf, or NaN with its payload
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;  // +-0
    } else {
        // Subnormal half m * 2^-24 is a normal float: shift the leading one up to the
        // implicit-bit position (bit 10), lowering the exponent once per shift.
        uint32_t e = 113;  // 2^-14 expressed as a float exponent, before normalising
        while ((mant & 0x400u) == 0) {
            mant <<= 1;
            --e;
        }
        bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
    }
    return std::bit_cast<float>(bits);
}

// bfloat16 is the top half of a binary32: sign 1 | exponent 8 | mantissa 7.
constexpr uint16_t fp32_to_bf16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        // NaN: truncate and set the quiet bit so a payload only in the dropped half
        // still reads as NaN rather than inf.
        return static_cast<uint16_t>((x >> 16) | 0x0040u);
    }
    // Round the low 16 bits to nearest even; overflow past the largest finite value
    // carries into the exponent and gives inf, as it should.
    return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

constexpr float bf16_to_fp32(uint16_t h) {
    return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

}  // namespace tessera
