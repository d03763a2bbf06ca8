// Reference quantization: block sizes, fp16/bf16 conversions, hand-built blocks decoded to
// hand-computed values (the element order inside each block format), round-trip error per
// type, and argument checks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/fp16.h"
#include "tensor/quant/blocks.h"
#include "tensor/quant/quant.h"

using namespace tessera;
using namespace tessera::quant;

namespace {

// fp16 bit patterns used to build blocks by hand.
constexpr uint16_t kHalfQuarter = 0x3400;   // 0.25
constexpr uint16_t kHalfHalf = 0x3800;      // 0.5
constexpr uint16_t kHalfMinusOne = 0xBC00;  // -1.0

template <typename Block>
std::vector<float> decode(DType t, const Block& block) {
    const int64_t n = type_traits(t).block_size;
    std::vector<float> y(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
    dequantize_row(t, &block, y.data(), n);
    return y;
}

// Compares every element exactly (the values are small dyadic numbers, so the decoder's
// float arithmetic is exact) and reports the first few mismatches by index.
void check_exact(const std::vector<float>& got, const std::vector<float>& want) {
    REQUIRE(got.size() == want.size());
    int reported = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (got[i] == want[i]) continue;
        CAPTURE(i);
        CHECK(got[i] == want[i]);
        if (++reported == 8) break;
    }
}

float bits_to_float(uint32_t u) {
    float f = 0.0f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

}  // namespace

// ---------------------------------------------------------------------------------------

TEST_CASE("block structs have the byte sizes of the traits table") {
    struct Row {
        DType t;
        size_t size;
        int block;
    };
    const Row rows[] = {
        {DType::Q4_0, sizeof(block_q4_0), kQK},  {DType::Q4_1, sizeof(block_q4_1), kQK},
        {DType::Q5_0, sizeof(block_q5_0), kQK},  {DType::Q5_1, sizeof(block_q5_1), kQK},
        {DType::Q8_0, sizeof(block_q8_0), kQK},  {DType::Q8_1, sizeof(block_q8_1), kQK},
        {DType::Q2_K, sizeof(block_q2_K), kQKK}, {DType::Q3_K, sizeof(block_q3_K), kQKK},
        {DType::Q4_K, sizeof(block_q4_K), kQKK}, {DType::Q5_K, sizeof(block_q5_K), kQKK},
        {DType::Q6_K, sizeof(block_q6_K), kQKK}, {DType::Q8_K, sizeof(block_q8_K), kQKK},
    };
    for (const Row& r : rows) {
        CAPTURE(type_name(r.t));
        CHECK(r.size == type_traits(r.t).type_size);
        CHECK(static_cast<uint32_t>(r.block) == type_traits(r.t).block_size);
        CHECK(has_reference(r.t));
    }
}

// ---------------------------------------------------------------------------------------

TEST_CASE("fp32 -> fp16: exact values, rounding and specials") {
    CHECK(fp32_to_fp16(1.0f) == 0x3C00);
    CHECK(fp32_to_fp16(-2.0f) == 0xC000);
    CHECK(fp32_to_fp16(0.5f) == 0x3800);
    CHECK(fp32_to_fp16(0.0f) == 0x0000);
    CHECK(fp32_to_fp16(-0.0f) == 0x8000);
    CHECK(fp32_to_fp16(65504.0f) == 0x7BFF);  // largest finite half
    CHECK(fp32_to_fp16(65519.0f) == 0x7BFF);  // below the 65520 midpoint
    CHECK(fp32_to_fp16(65520.0f) == 0x7C00);  // the tie rounds to even: up, to inf
    CHECK(fp32_to_fp16(1e10f) == 0x7C00);
    CHECK(fp32_to_fp16(-1e10f) == 0xFC00);
    CHECK(fp32_to_fp16(std::ldexp(1.0f, -14)) == 0x0400);     // smallest normal
    CHECK(fp32_to_fp16(std::ldexp(1023.0f, -24)) == 0x03FF);  // largest subnormal
    CHECK(fp32_to_fp16(std::ldexp(1.0f, -24)) == 0x0001);     // smallest subnormal
    CHECK(fp32_to_fp16(-std::ldexp(1.0f, -24)) == 0x8001);
    CHECK(fp32_to_fp16(std::ldexp(1.0f, -25)) == 0x0000);        // tie 0 / 2^-24: even
    CHECK(fp32_to_fp16(std::ldexp(1.0000001f, -25)) == 0x0001);  // just above the tie
    CHECK(fp32_to_fp16(std::ldexp(3.0f, -25)) == 0x0002);        // tie 1 / 2: even
    CHECK(fp32_to_fp16(std::ldexp(5.0f, -25)) == 0x0002);        // tie 2 / 3: even
    CHECK(fp32_to_fp16(std::ldexp(2047.0f, -25)) == 0x0400);     // tie 1023 / 1024
    CHECK(fp32_to_fp16(std::ldexp(1.0f, -30)) == 0x0000);
    // Ties in the normal range: 1 + 2^-11 lies halfway between 0x3C00 and 0x3C01.
    CHECK(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);
    CHECK(fp32_to_fp16(1.0f + std::ldexp(3.0f, -11)) == 0x3C02);
    CHECK(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3C01);
    CHECK(fp32_to_fp16(2049.0f) == 0x6800);  // 2048 and 2050 are neighbours: even is 2048
    CHECK(fp32_to_fp16(2051.0f) == 0x6802);  // 2050 (odd) / 2052 (even)
    CHECK(fp32_to_fp16(2047.5f) == 0x6800);  // spacing 1 here: 2047 (odd) / 2048 (even)
    CHECK(fp32_to_fp16(std::numeric_limits<float>::infinity()) == 0x7C00);
    CHECK(fp32_to_fp16(-std::numeric_limits<float>::infinity()) == 0xFC00);
    const uint16_t nan = fp32_to_fp16(std::numeric_limits<float>::quiet_NaN());
    CHECK((nan & 0x7C00) == 0x7C00);
    CHECK((nan & 0x03FF) != 0);
    // A NaN whose payload sits only in the low 13 bits must not become inf.
    const uint16_t low_nan = fp32_to_fp16(bits_to_float(0x7F800001u));
    CHECK((low_nan & 0x7C00) == 0x7C00);
    CHECK((low_nan & 0x03FF) != 0);
}

TEST_CASE("fp16 -> fp32: exact values and every half round-trips") {
    CHECK(fp16_to_fp32(0x3C00) == 1.0f);
    CHECK(fp16_to_fp32(0xC000) == -2.0f);
    CHECK(fp16_to_fp32(0x7BFF) == 65504.0f);
    CHECK(fp16_to_fp32(0x0001) == std::ldexp(1.0f, -24));
    CHECK(fp16_to_fp32(0x03FF) == std::ldexp(1023.0f, -24));
    CHECK(fp16_to_fp32(0x0400) == std::ldexp(1.0f, -14));
    // 0x3555: exponent 13 - 15 = -2, mantissa 0x155: 2^-2 * (1 + 0x155 / 2^10).
    CHECK(fp16_to_fp32(0x3555) == 0.25f + 0x155 * std::ldexp(1.0f, -12));
    CHECK(fp16_to_fp32(0x7C00) == std::numeric_limits<float>::infinity());
    CHECK(fp16_to_fp32(0xFC00) == -std::numeric_limits<float>::infinity());
    CHECK(std::isnan(fp16_to_fp32(0x7E00)));
    CHECK(std::isnan(fp16_to_fp32(0xFC01)));
    CHECK(std::signbit(fp16_to_fp32(0x8000)));
    int mismatches = 0;
    for (uint32_t h = 0; h <= 0xFFFF; ++h) {
        const float f = fp16_to_fp32(static_cast<uint16_t>(h));
        if (std::isnan(f)) {
            mismatches += !std::isnan(fp16_to_fp32(fp32_to_fp16(f)));
        } else {
            mismatches += fp32_to_fp16(f) != h;
        }
    }
    CHECK(mismatches == 0);
}

TEST_CASE("fp32 <-> bf16") {
    CHECK(fp32_to_bf16(1.0f) == 0x3F80);
    CHECK(fp32_to_bf16(-3.0f) == 0xC040);
    CHECK(fp32_to_bf16(0.0f) == 0x0000);
    CHECK(fp32_to_bf16(-0.0f) == 0x8000);
    // 1 + 2^-8 is halfway between 0x3F80 and 0x3F81: even wins; 1 + 3 * 2^-8 goes up.
    CHECK(fp32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);
    CHECK(fp32_to_bf16(1.0f + std::ldexp(3.0f, -8)) == 0x3F82);
    CHECK(fp32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3F81);
    CHECK(fp32_to_bf16(std::numeric_limits<float>::infinity()) == 0x7F80);
    CHECK(fp32_to_bf16(-std::numeric_limits<float>::infinity()) == 0xFF80);
    CHECK(fp32_to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // rounds up to inf
    CHECK(fp32_to_bf16(bits_to_float(0x00010000u)) == 0x0001);         // a subnormal
    const uint16_t nan = fp32_to_bf16(std::numeric_limits<float>::quiet_NaN());
    CHECK(std::isnan(bf16_to_fp32(nan)));
    // Payload only in the dropped half: truncating alone would give inf.
    CHECK(std::isnan(bf16_to_fp32(fp32_to_bf16(bits_to_float(0x7F800001u)))));
    CHECK(std::isnan(bf16_to_fp32(fp32_to_bf16(bits_to_float(0xFF80FFFFu)))));

    CHECK(bf16_to_fp32(0x3F80) == 1.0f);
    CHECK(bf16_to_fp32(0xC040) == -3.0f);
    CHECK(bf16_to_fp32(0x7F7F) == bits_to_float(0x7F7F0000u));
    int mismatches = 0;
    for (uint32_t h = 0; h <= 0xFFFF; ++h) {
        const float f = bf16_to_fp32(static_cast<uint16_t>(h));
        if (!std::isnan(f)) mismatches += fp32_to_bf16(f) != h;
    }
    CHECK(mismatches == 0);
}

// ---------------------------------------------------------------------------------------
// Hand-built blocks. Each expected value is worked out from the format definition in the
// comment beside it; untouched elements decode to a per-sub-block default.

TEST_CASE("F16 and BF16 rows decode exactly") {
    const uint16_t h[4] = {0x3C00, 0xC000, 0x0001, 0x7BFF};
    float y[4] = {};
    dequantize_row(DType::F16, h, y, 4);
    CHECK(y[0] == 1.0f);
    CHECK(y[1] == -2.0f);
    CHECK(y[2] == std::ldexp(1.0f, -24));
    CHECK(y[3] == 65504.0f);
    const uint16_t b[3] = {0x3F80, 0xC040, 0x4049};
    dequantize_row(DType::BF16, b, y, 3);
    CHECK(y[0] == 1.0f);
    CHECK(y[1] == -3.0f);
    CHECK(y[2] == 3.140625f);  // 0x4049: 2 * (1 + 73/128)
}

TEST_CASE("Q4_0 block: low nibbles are elements 0..15, high nibbles 16..31") {
    block_q4_0 b{};
    b.d = kHalfHalf;
    std::memset(b.qs, 0x88, sizeof b.qs);  // q = 8 everywhere: 0.5 * (8 - 8) = 0
    b.qs[0] = 0x9F;
    b.qs[5] = 0x03;
    b.qs[15] = 0xF0;
    std::vector<float> want(32, 0.0f);
    want[0] = 0.5f * (15 - 8);   // qs[0] low
    want[16] = 0.5f * (9 - 8);   // qs[0] high
    want[5] = 0.5f * (3 - 8);    // qs[5] low
    want[21] = 0.5f * (0 - 8);   // qs[5] high
    want[15] = 0.5f * (0 - 8);   // qs[15] low
    want[31] = 0.5f * (15 - 8);  // qs[15] high
    check_exact(decode(DType::Q4_0, b), want);
}

TEST_CASE("Q4_1 block: x = d * q + m") {
    block_q4_1 b{};
    b.d = kHalfHalf;
    b.m = kHalfMinusOne;
    b.qs[0] = 0x9F;
    b.qs[10] = 0x2A;
    std::vector<float> want(32, -1.0f);  // q = 0: 0.5 * 0 - 1
    want[0] = 0.5f * 15 - 1.0f;
    want[16] = 0.5f * 9 - 1.0f;
    want[10] = 0.5f * 10 - 1.0f;
    want[26] = 0.5f * 2 - 1.0f;
    check_exact(decode(DType::Q4_1, b), want);
}

TEST_CASE("Q5_0 block: bit e of qh (little-endian) is element e's fifth bit") {
    block_q5_0 b{};
    b.d = kHalfHalf;
    b.qh[0] = 0x01;  // element 0
    b.qh[1] = 0x04;  // element 10
    b.qh[2] = 0x02;  // element 17
    b.qh[3] = 0x80;  // element 31
    b.qs[0] = 0x3F;
    b.qs[1] = 0x21;
    b.qs[15] = 0x70;
    std::vector<float> want(32, 0.5f * (0 - 16));  // q = 0
    want[0] = 0.5f * ((15 | 16) - 16);
    want[16] = 0.5f * (3 - 16);
    want[1] = 0.5f * (1 - 16);
    want[17] = 0.5f * ((2 | 16) - 16);
    want[10] = 0.5f * ((0 | 16) - 16);
    want[15] = 0.5f * (0 - 16);
    want[31] = 0.5f * ((7 | 16) - 16);
    check_exact(decode(DType::Q5_0, b), want);
}

TEST_CASE("Q5_1 block: x = d * q + m with q's fifth bit from qh") {
    block_q5_1 b{};
    b.d = kHalfHalf;
    b.m = kHalfMinusOne;
    b.qh[0] = 0x01;
    b.qh[1] = 0x04;
    b.qh[2] = 0x02;
    b.qh[3] = 0x80;
    b.qs[0] = 0x3F;
    b.qs[1] = 0x21;
    b.qs[15] = 0x70;
    std::vector<float> want(32, -1.0f);
    want[0] = 0.5f * 31 - 1.0f;
    want[16] = 0.5f * 3 - 1.0f;
    want[1] = 0.5f * 1 - 1.0f;
    want[17] = 0.5f * 18 - 1.0f;
    want[10] = 0.5f * 16 - 1.0f;
    want[31] = 0.5f * 23 - 1.0f;
    check_exact(decode(DType::Q5_1, b), want);
}

TEST_CASE("Q8_0 and Q8_1 blocks: x = d * qs") {
    block_q8_0 a{};
    a.d = kHalfHalf;
    a.qs[0] = -128;
    a.qs[7] = -3;
    a.qs[31] = 127;
    std::vector<float> want(32, 0.0f);
    want[0] = -64.0f;
    want[7] = -1.5f;
    want[31] = 63.5f;
    check_exact(decode(DType::Q8_0, a), want);

    block_q8_1 b{};
    b.d = kHalfQuarter;
    b.s = 0x7C00;  // s only serves dot products; decoding must ignore it
    b.qs[0] = 100;
    b.qs[30] = -7;
    std::vector<float> want1(32, 0.0f);
    want1[0] = 25.0f;
    want1[30] = -1.75f;
    check_exact(decode(DType::Q8_1, b), want1);
}

TEST_CASE("Q2_K block: 2-bit fields 32 elements apart, 4-bit scale and min per 16") {
    block_q2_K b{};
    b.d = kHalfHalf;        // 0.5
    b.dmin = kHalfQuarter;  // 0.25
    // scales[j]: low nibble scale, high nibble min, for elements 16j..16j+15.
    b.scales[0] = 0x21;   // sc 1, m 2
    b.scales[1] = 0x13;   // sc 3, m 1
    b.scales[3] = 0x05;   // sc 5, m 0
    b.scales[9] = 0x4F;   // sc 15, m 4
    b.scales[15] = 0xF2;  // sc 2, m 15
    // Element 128h + 32j + l is bits 2j..2j+1 of qs[32h + l].
    b.qs[0] = 0x03;   // e 0:   q 3
    b.qs[17] = 0x02;  // e 17:  q 2
    b.qs[18] = 0x04;  // e 50:  bits 2-3 = 1
    b.qs[54] = 0x03;  // e 150: h 1, l 22, bits 0-1 = 3
    b.qs[48] = 0x40;  // e 240: h 1, l 16, bits 6-7 = 1
    b.qs[63] = 0x80;  // e 255: h 1, l 31, bits 6-7 = 2
    std::vector<float> want(256, 0.0f);
    // q = 0 elsewhere: -dmin * m of the sub-block.
    for (int e = 0; e < 16; ++e) want[e] = -0.25f * 2;
    for (int e = 16; e < 32; ++e) want[e] = -0.25f * 1;
    for (int e = 144; e < 160; ++e) want[e] = -0.25f * 4;
    for (int e = 240; e < 256; ++e) want[e] = -0.25f * 15;
    want[0] = 0.5f * 1 * 3 - 0.25f * 2;
    want[17] = 0.5f * 3 * 2 - 0.25f * 1;
    want[50] = 0.5f * 5 * 1 - 0.0f;
    want[150] = 0.5f * 15 * 3 - 0.25f * 4;
    want[240] = 0.5f * 2 * 1 - 0.25f * 15;
    want[255] = 0.5f * 2 * 2 - 0.25f * 15;
    check_exact(decode(DType::Q2_K, b), want);
}

TEST_CASE("Q3_K block: hmask high bit (cleared subtracts 4) and 6-bit scales offset by 32") {
    block_q3_K b{};
    b.d = kHalfHalf;
    // 16 six-bit scales s_k; effective scale s_k - 32. Chosen: s0 = 1 (-31), s6 = 30 (-2),
    // s11 = 19 (-13), s13 = 63 (+31), all others 32 (0). Sub-blocks 6, 11 and 13 are off
    // the diagonal of the top-bits table below, so a transposed reading shows.
    // Low four bits: scales[k] low nibble for k < 8, scales[k - 8] high nibble for k >= 8.
    b.scales[0] = 0x01;  // s0 low 1
    b.scales[3] = 0x30;  // s11 low 3 (high nibble)
    b.scales[5] = 0xF0;  // s13 low 15 (high nibble)
    b.scales[6] = 0x0E;  // s6 low 14
    // Top two bits of s_{4g+i} at bits 2g..2g+1 of scales[8 + i]; 0b10 (32) by default.
    b.scales[8] = 0xA8;   // s0 (g 0): 0;  s4, s8, s12: 2
    b.scales[9] = 0xEA;   // s13 (g 3): 3; s1, s5, s9: 2
    b.scales[10] = 0xA6;  // s6 (g 1): 1;  s2, s10, s14: 2
    b.scales[11] = 0x9A;  // s11 (g 2): 1; s3, s7, s15: 2
    // e = 128h + 32j + l: q = low 2 bits (bits 2j of qs[32h + l])
    //                       + 4 * (bit 4h + j of hmask[l]) - 4.
    b.qs[0] = 0x03;      // e 0: low 3
    b.hmask[0] = 0x01;   //      high bit set -> q = 3
    b.qs[15] = 0x02;     // e 15: low 2, high bit clear -> q = -2
    b.qs[4] = 0x40;      // e 100 (h 0, j 3, l 4): low 1, bit 3 of hmask[4] clear -> q = -3
    b.qs[52] = 0x0C;     // e 180 (h 1, j 1, l 20): low 3
    b.hmask[20] = 0x20;  //       bit 4h + j = 5 set -> q = 3
    b.qs[49] = 0x08;     // e 177 (h 1, j 1, l 17): low 2, clear -> q = -2
    b.hmask[31] = 0x40;  // e 223 (h 1, j 2, l 31): low 0, bit 6 set -> q = 0
    b.qs[58] = 0x10;     // e 218 (h 1, j 2, l 26): low 1
    b.hmask[26] = 0x40;  //       bit 6 set -> q = 1
    std::vector<float> want(256, 0.0f);
    // Default q = 0 - 4 = -4: 0.5 * (s - 32) * -4.
    for (int e = 0; e < 16; ++e) want[e] = 0.5f * -31 * -4;
    for (int e = 96; e < 112; ++e) want[e] = 0.5f * -2 * -4;
    for (int e = 176; e < 192; ++e) want[e] = 0.5f * -13 * -4;
    for (int e = 208; e < 224; ++e) want[e] = 0.5f * 31 * -4;
    want[0] = 0.5f * -31 * 3;
    want[15] = 0.5f * -31 * -2;
    want[100] = 0.5f * -2 * -3;
    want[180] = 0.5f * -13 * 3;
    want[177] = 0.5f * -13 * -2;
    want[223] = 0.5f * 31 * 0;
    want[218] = 0.5f * 31 * 1;
    check_exact(decode(DType::Q3_K, b), want);
}

namespace {

// Q4_K/Q5_K scale bytes giving (sc, m) = (3, 5), (0, 0), (63, 1), (0, 0), (0, 0),
// (37, 50), (0, 0), (20, 0) for sub-blocks 0..7. For j < 4: sc_j = s[j] & 63,
// m_j = s[j+4] & 63; for j >= 4 the low four bits sit in s[j+4] (sc low nibble, m high
// nibble) and the top two in bits 6-7 of s[j-4] (sc) and s[j] (m).
//   37 = 0b10'0101: s[9] low nibble 5, s[1] bits 6-7 = 2
//   50 = 0b11'0010: s[9] high nibble 2, s[5] bits 6-7 = 3
//   20 = 0b01'0100: s[11] low nibble 4, s[3] bits 6-7 = 1
constexpr uint8_t kK4Scales[12] = {0x03, 0x80, 0x3F, 0x40, 0x05, 0xC0,
                                   0x01, 0x00, 0x00, 0x25, 0x00, 0x04};

// Defaults for q = 0 with d = 0.5, dmin = 0.25: -0.25 * m of the sub-block.
std::vector<float> k4_defaults() {
    std::vector<float> want(256, 0.0f);
    for (int e = 0; e < 32; ++e) want[e] = -0.25f * 5;
    for (int e = 64; e < 96; ++e) want[e] = -0.25f * 1;
    for (int e = 160; e < 192; ++e) want[e] = -0.25f * 50;
    return want;
}

}  // namespace

TEST_CASE("Q4_K block: packed 6-bit scales/mins, sub-blocks 2c/2c+1 in low/high nibbles") {
    block_q4_K b{};
    b.d = kHalfHalf;
    b.dmin = kHalfQuarter;
    std::memcpy(b.scales, kK4Scales, 12);
    b.qs[0] = 0xA9;    // e 0: low 9; e 32 (sub 1, scale 0): high 10
    b.qs[31] = 0x01;   // e 31: low 1
    b.qs[38] = 0x0F;   // e 70 (c 1, low, l 6): 15
    b.qs[84] = 0x70;   // e 180 (c 2, high, l 20): 7
    b.qs[127] = 0xB0;  // e 255 (c 3, high, l 31): 11
    std::vector<float> want = k4_defaults();
    want[0] = 0.5f * 3 * 9 - 0.25f * 5;
    want[31] = 0.5f * 3 * 1 - 0.25f * 5;
    want[32] = 0.5f * 0 * 10 - 0.25f * 0;
    want[70] = 0.5f * 63 * 15 - 0.25f * 1;
    want[180] = 0.5f * 37 * 7 - 0.25f * 50;
    want[255] = 0.5f * 20 * 11 - 0.25f * 0;
    check_exact(decode(DType::Q4_K, b), want);
}

TEST_CASE("Q5_K block: bit (e / 32) of qh[e % 32] adds 16") {
    block_q5_K b{};
    b.d = kHalfHalf;
    b.dmin = kHalfQuarter;
    std::memcpy(b.scales, kK4Scales, 12);
    b.qs[0] = 0xA9;
    b.qs[31] = 0x01;
    b.qs[38] = 0x0F;
    b.qs[84] = 0x70;
    b.qs[127] = 0xB0;
    b.qh[0] = 0x81;   // e 0 (bit 0) and e 224 (sub 7, bit 7)
    b.qh[6] = 0x04;   // e 70: sub 2
    b.qh[20] = 0x20;  // e 180: sub 5
    b.qh[31] = 0x80;  // e 255: sub 7 (e 31 keeps bit 0 clear)
    std::vector<float> want = k4_defaults();
    want[0] = 0.5f * 3 * (9 + 16) - 0.25f * 5;
    want[31] = 0.5f * 3 * 1 - 0.25f * 5;
    want[32] = 0.0f;
    want[70] = 0.5f * 63 * (15 + 16) - 0.25f * 1;
    want[180] = 0.5f * 37 * (7 + 16) - 0.25f * 50;
    want[224] = 0.5f * 20 * (0 + 16) - 0.25f * 0;
    want[255] = 0.5f * 20 * (11 + 16) - 0.25f * 0;
    check_exact(decode(DType::Q5_K, b), want);
}

TEST_CASE("Q6_K block: ql nibbles and qh 2-bit fields interleave four quarters") {
    block_q6_K b{};
    b.d = kHalfHalf;
    b.scales[0] = 1;
    b.scales[2] = -2;
    b.scales[4] = 3;
    b.scales[7] = -4;
    b.scales[10] = 5;
    b.scales[15] = -128;
    // e = 128h + 32k + l: low 4 bits in ql[64h + 32(k & 1) + l] (high nibble if k >= 2),
    // top 2 bits at 2k of qh[32h + l]; x = d * scale[e / 16] * (q - 32).
    b.ql[0] = 0x05;    // e 0: low 5
    b.qh[0] = 0x02;    //      top 2 -> q = 37
    b.qh[1] = 0x04;    // e 33 (k 1, l 1): low 0, top 1 -> q = 16
    b.ql[2] = 0xF0;    // e 66 (k 2, l 2): low 15 (high nibble)
    b.qh[2] = 0x30;    //      top 3 -> q = 63
    b.ql[63] = 0x10;   // e 127 (k 3, l 31): low 1 (high nibble)
    b.qh[31] = 0x40;   //      top 1 -> q = 17
    b.ql[104] = 0x0D;  // e 168 (h 1, k 1, l 8): low 13
    b.qh[40] = 0x08;   //      top 2 -> q = 45
    b.ql[127] = 0x70;  // e 255 (h 1, k 3, l 31): low 7 (high nibble)
    b.qh[63] = 0xC0;   //      top 3 -> q = 55
    std::vector<float> want(256, 0.0f);
    // Default q = 0: 0.5 * scale * -32.
    const int sub[6] = {0, 2, 4, 7, 10, 15};
    const int scale[6] = {1, -2, 3, -4, 5, -128};
    for (int s = 0; s < 6; ++s)
        for (int e = 16 * sub[s]; e < 16 * sub[s] + 16; ++e) want[e] = 0.5f * scale[s] * -32;
    want[0] = 0.5f * 1 * (37 - 32);
    want[33] = 0.5f * -2 * (16 - 32);
    want[66] = 0.5f * 3 * (63 - 32);
    want[127] = 0.5f * -4 * (17 - 32);
    want[168] = 0.5f * 5 * (45 - 32);
    want[255] = 0.5f * -128 * (55 - 32);
    check_exact(decode(DType::Q6_K, b), want);
}

TEST_CASE("Q8_K block: fp32 d times qs") {
    block_q8_K b{};
    b.d = 0.25f;
    b.qs[0] = -128;
    b.qs[100] = 3;
    b.qs[255] = 127;
    b.bsums[0] = 1234;  // bsums only serve dot products
    std::vector<float> want(256, 0.0f);
    want[0] = -32.0f;
    want[100] = 0.75f;
    want[255] = 31.75f;
    check_exact(decode(DType::Q8_K, b), want);
}

// ---------------------------------------------------------------------------------------
// Round trips on random data.

namespace {

constexpr int64_t kRoundTripN = 256 * 48;

enum class Dist { Gaussian, Uniform, Outliers, Offset, Scaled, ZeroBlocks };

const char* dist_name(Dist d) {
    switch (d) {
        case Dist::Gaussian: return "gaussian";
        case Dist::Uniform: return "uniform";
        case Dist::Outliers: return "outliers";
        case Dist::Offset: return "offset";
        case Dist::Scaled: return "scaled";
        case Dist::ZeroBlocks: return "zero-blocks";
    }
    return "?";
}

constexpr Dist kDists[] = {Dist::Gaussian, Dist::Uniform, Dist::Outliers,
                           Dist::Offset,   Dist::Scaled,  Dist::ZeroBlocks};

std::vector<float> make_data(Dist dist, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    std::uniform_real_distribution<float> unif(-1.0f, 1.0f);
    std::vector<float> x(kRoundTripN);
    for (int64_t i = 0; i < kRoundTripN; ++i) {
        switch (dist) {
            case Dist::Gaussian: x[i] = gauss(rng); break;
            case Dist::Uniform: x[i] = unif(rng); break;
            case Dist::Outliers:  // about 1 in 100 values 10-30x larger, as in real weights
                x[i] = gauss(rng);
                if (unif(rng) > 0.98f) x[i] *= 20.0f + 10.0f * unif(rng);
                break;
            case Dist::Offset: x[i] = 1.5f + 0.5f * gauss(rng); break;  // mostly positive
            case Dist::Scaled: x[i] = gauss(rng); break;                // scaled below
            case Dist::ZeroBlocks: x[i] = (i / 256) % 3 == 1 ? 0.0f : gauss(rng); break;
        }
    }
    if (dist == Dist::Scaled) {
        // Each 256-block scaled by 2^k, k in [-6, 6]: exercises the fp16 super-scales.
        for (int64_t b = 0; b < kRoundTripN / 256; ++b) {
            const float s = std::ldexp(1.0f, static_cast<int>(b % 13) - 6);
            for (int64_t i = 0; i < 256; ++i) x[b * 256 + i] *= s;
        }
    }
    return x;
}

std::vector<float> round_trip(DType t, const std::vector<float>& x,
                              std::vector<uint8_t>* bytes = nullptr) {
    const int64_t n = static_cast<int64_t>(x.size());
    std::vector<uint8_t> q(row_size(t, n));
    quantize_row(t, x.data(), q.data(), n);
    std::vector<float> y(x.size());
    dequantize_row(t, q.data(), y.data(), n);
    if (bytes) *bytes = std::move(q);
    return y;
}

// rmse(y - x) / rms(x).
double normalized_rmse(const std::vector<float>& x, const std::vector<float>& y) {
    double err = 0.0;
    double ref = 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
        const double d = static_cast<double>(y[i]) - x[i];
        err += d * d;
        ref += static_cast<double>(x[i]) * x[i];
    }
    return std::sqrt(err / ref);
}

// Upper bounds on the normalized RMSE. `typical` covers every distribution above except
// Outliers, which has its own column: a 20-30x value sets its whole block's step, so the
// error there measures the format more than the quantizer. Measured (this implementation,
// worst distribution) in the comments; the bounds leave ~10% headroom, so a layout or
// rounding bug fails while a fair change to the search does not.
struct RmseBound {
    DType t;
    double typical;
    double outliers;
};
constexpr RmseBound kRmseBounds[] = {
    // type      typical  outliers     measured: typical  outliers
    {DType::F32, 0.0, 0.0},          //          0        0
    {DType::F16, 0.00025, 0.00025},  //    0.00021  0.00021
    {DType::BF16, 0.0019, 0.002},    //    0.00167  0.00175
    {DType::Q8_0, 0.0062, 0.0125},   //    0.00543  0.01108
    {DType::Q8_1, 0.0062, 0.0125},   //    0.00543  0.01108
    {DType::Q8_K, 0.0085, 0.032},    //    0.00755  0.02874
    {DType::Q6_K, 0.0195, 0.036},    //    0.01718  0.03217
    {DType::Q5_0, 0.048, 0.095},     //    0.04291  0.08517
    {DType::Q5_1, 0.043, 0.059},     //    0.03839  0.05286
    {DType::Q5_K, 0.040, 0.055},     //    0.03536  0.04896
    {DType::Q4_0, 0.097, 0.148},     //    0.08678  0.13356
    {DType::Q4_1, 0.088, 0.126},     //    0.07907  0.11341
    {DType::Q4_K, 0.079, 0.106},     //    0.07102  0.09529
    {DType::Q3_K, 0.162, 0.150},     //    0.14625  0.13464
    {DType::Q2_K, 0.290, 0.220},     //    0.26530  0.19565
};

}  // namespace

TEST_CASE("round trip: normalized RMSE per type stays under its bound") {
    // TESSERA_QUANT_REPORT=1 prints the measured table (to retune the bounds above).
    const bool report = std::getenv("TESSERA_QUANT_REPORT") != nullptr;
    for (const RmseBound& rb : kRmseBounds) {
        for (Dist dist : kDists) {
            const std::vector<float> x = make_data(dist, 1234u + static_cast<uint32_t>(dist));
            const std::vector<float> y = round_trip(rb.t, x);
            const double e = normalized_rmse(x, y);
            if (report) {
                const std::string_view name = type_name(rb.t);
                std::printf("%-5.*s %-12s %.5f\n", static_cast<int>(name.size()), name.data(),
                            dist_name(dist), e);
            }
            INFO(std::string(type_name(rb.t)), " ", std::string(dist_name(dist)));
            CHECK(e <= (dist == Dist::Outliers ? rb.outliers : rb.typical));
            if (dist == Dist::ZeroBlocks) {
                int nonzero = 0;  // all-zero blocks must come back as exact zeros
                for (int64_t i = 0; i < kRoundTripN; ++i)
                    nonzero += (i / 256) % 3 == 1 && y[i] != 0.0f;
                CHECK(nonzero == 0);
            }
            int non_finite = 0;
            for (float v : y) non_finite += !std::isfinite(v);
            CHECK(non_finite == 0);
        }
    }
}

TEST_CASE("round trip: re-quantizing dequantized legacy blocks reproduces them") {
    const DType types[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0,
                           DType::Q5_1, DType::Q8_0, DType::Q8_1};
    for (DType t : types) {
        for (Dist dist : kDists) {
            INFO(std::string(type_name(t)), " ", std::string(dist_name(dist)));
            const std::vector<float> x = make_data(dist, 99u + static_cast<uint32_t>(dist));
            const std::vector<float> y1 = round_trip(t, x);
            const std::vector<float> y2 = round_trip(t, y1);
            // Tolerance relative to each block's largest value.
            double worst = 0.0;
            for (size_t b = 0; b < x.size() / kQK; ++b) {
                float amax = 0.0f;
                for (int i = 0; i < kQK; ++i) amax = std::max(amax, std::fabs(y1[b * kQK + i]));
                for (int i = 0; i < kQK; ++i) {
                    const size_t k = b * kQK + i;
                    worst = std::max(worst, std::fabs(static_cast<double>(y2[k]) - y1[k]) /
                                                std::max(amax, 1e-30f));
                }
            }
            CHECK(worst <= 1e-5);
        }
    }
}

TEST_CASE("quantized blocks carry consistent side data (Q8_1 s, Q8_K bsums)") {
    const std::vector<float> x = make_data(Dist::Outliers, 7);
    const int64_t n = static_cast<int64_t>(x.size());

    std::vector<block_q8_1> q81(static_cast<size_t>(n / kQK));
    quantize_row_q8_1_ref(x.data(), q81.data(), n);
    for (const block_q8_1& b : q81) {
        int sum = 0;
        for (int8_t q : b.qs) sum += q;
        const float d = fp16_to_fp32(b.d);
        const float s = fp16_to_fp32(b.s);
        CHECK(std::fabs(s - d * static_cast<float>(sum)) <=
              std::fabs(d * static_cast<float>(sum)) * 1e-3f + 1e-7f);
    }

    std::vector<block_q8_K> q8k(static_cast<size_t>(n / kQKK));
    quantize_row_q8_K_ref(x.data(), q8k.data(), n);
    int bad = 0;
    for (const block_q8_K& b : q8k) {
        for (int j = 0; j < kQKK / 16; ++j) {
            int sum = 0;
            for (int i = 0; i < 16; ++i) sum += b.qs[16 * j + i];
            bad += sum != b.bsums[j];
        }
    }
    CHECK(bad == 0);
}

TEST_CASE("quantize_row dispatches to the per-type functions") {
    const std::vector<float> x = make_data(Dist::Gaussian, 3);
    const int64_t n = static_cast<int64_t>(x.size());
    std::vector<uint8_t> via_dispatch;
    round_trip(DType::Q4_K, x, &via_dispatch);
    std::vector<block_q4_K> direct(static_cast<size_t>(n / kQKK));
    quantize_row_q4_K_ref(x.data(), direct.data(), n);
    REQUIRE(via_dispatch.size() == direct.size() * sizeof(block_q4_K));
    CHECK(std::memcmp(via_dispatch.data(), direct.data(), via_dispatch.size()) == 0);

    std::vector<uint8_t> f16;
    round_trip(DType::F16, x, &f16);
    std::vector<uint16_t> f16_direct(x.size());
    quantize_row_f16_ref(x.data(), f16_direct.data(), n);
    CHECK(std::memcmp(f16.data(), f16_direct.data(), f16.size()) == 0);
}

// ---------------------------------------------------------------------------------------

TEST_CASE("bad rows and types without a reference throw tessera::Error") {
    std::vector<float> x(512, 1.0f);
    std::vector<uint8_t> buf(4096);
    CHECK_THROWS_AS(quantize_row(DType::Q4_0, x.data(), buf.data(), 33), Error);
    CHECK_THROWS_AS(dequantize_row(DType::Q4_0, buf.data(), x.data(), 31), Error);
    CHECK_THROWS_AS(quantize_row(DType::Q4_K, x.data(), buf.data(), 255), Error);
    CHECK_THROWS_AS(dequantize_row(DType::Q6_K, buf.data(), x.data(), 288), Error);
    CHECK_THROWS_AS(quantize_row(DType::Q8_0, x.data(), buf.data(), -32), Error);
    CHECK_THROWS_AS(quantize_row(DType::IQ2_XXS, x.data(), buf.data(), 256), Error);
    CHECK_THROWS_AS(dequantize_row(DType::IQ2_XXS, buf.data(), x.data(), 256), Error);
    CHECK_THROWS_AS(dequantize_row(DType::I32, buf.data(), x.data(), 4), Error);
    CHECK_THROWS_AS(dequantize_row(static_cast<DType>(4), buf.data(), x.data(), 32), Error);
    CHECK_THROWS_AS(dequantize_row(static_cast<DType>(1000), buf.data(), x.data(), 32), Error);
    try {
        quantize_row(DType::IQ2_XXS, x.data(), buf.data(), 256);
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Unsupported);
        CHECK(std::string(e.what()).find("IQ2_XXS") != std::string::npos);
    }
    try {
        quantize_row(DType::Q4_K, x.data(), buf.data(), 255);
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::InvalidArgument);
        CHECK(std::string(e.what()).find("256") != std::string::npos);
    }
    // An empty row is fine.
    CHECK_NOTHROW(quantize_row(DType::Q4_K, x.data(), buf.data(), 0));
    CHECK_NOTHROW(dequantize_row(DType::Q2_K, buf.data(), x.data(), 0));

    for (uint32_t id = 0; id < kTypeCount + 2; ++id) {
        CAPTURE(id);
        CHECK(has_reference(static_cast<DType>(id)) == type_traits(id).has_reference);
    }
    CHECK(has_reference(DType::F32));
    CHECK_FALSE(has_reference(DType::IQ2_XXS));
}
