// r16 dot products (repack.h) for AVX2 without AVX-512, on the same layout as the AVX-512
// kernels: each 64-byte chunk of 16 rows x 4 quants is two 256-bit halves (rows 0-7, 8-15).
// Per half and activation row, vpmaddubsw multiplies 8 rows x 4 unsigned quants by four
// broadcast activation quants into int16 pair sums, vpmaddwd turns them into one int32 sum
// per row; 8 rows' dot products grow side by side, with no horizontal sums.
//  - Q4_0 and Q4_1: the products of one block stay within int16 (at most 8 x 2 x 15 x 127 =
//    30480), so a block's eight vpmaddubsw results are added as int16 and widened once;
//  - Q8_0: the stored quants (value + 128) are flipped back to signed, and the sign moved
//    onto the activation (vpsignb), as vpmaddubsw wants one unsigned operand;
//  - Q4_K: as Q4_0 per sub-block of 32, then the sub-block scales and mins.
// The integer sums are exact, and the float steps per block are the scalar twin's, so the
// results are bit-identical to it (repack_test). Compiled for AVX2 by function attributes;
// dispatch.cpp hands them out for the AVX2 code paths.
#include "backends/cpu/kernels/repack.h"

#include "backends/cpu/kernels/kernels.h"
#include "tensor/quant/blocks.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <cstring>

#define TESSERA_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace tessera::cpu::kernels {

namespace {

using quant::block_q8_0;
using quant::kQK;

TESSERA_AVX2 inline __m256i bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// 16 rows x C (1 or 2) activation rows of Q8_0 blocks. T = Q4_0: 4-bit quants (offset 8);
// Q4_1: 4-bit quants and mins; Q8_0: 8-bit quants stored + 128.
template <DType T, int C>
TESSERA_AVX2 void tile(int64_t nb, const uint8_t* w, const uint8_t* x, size_t xs, const int32_t* sums, size_t ss,
                       float* out, size_t os) {
    constexpr bool Q4 = T != DType::Q8_0, kMins = T == DType::Q4_1;
    constexpr size_t kQuants = kMins ? 64 : 32, kBlockBytes = kQuants + (Q4 ? 256 : 512);
    constexpr int kOffset = T == DType::Q4_0 ? 8 : 0;
    constexpr size_t kPrefetchBlocks = 24;  // as the AVX-512 kernels: 7 to 13 KB ahead
    const float* f16 = fp16_table();
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[C][2];
    for (int c = 0; c < C; ++c) acc[c][0] = acc[c][1] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* wb = w + static_cast<size_t>(b) * kBlockBytes;
        for (size_t o = 0; o < kBlockBytes; o += 64)
            _mm_prefetch(reinterpret_cast<const char*>(wb + kPrefetchBlocks * kBlockBytes + o), _MM_HINT_T0);
        const block_q8_0* y[C];
        for (int c = 0; c < C; ++c) y[c] = reinterpret_cast<const block_q8_0*>(x + c * xs) + b;
        const uint8_t* q = wb + kQuants;
        __m256i isum[C][2];
        if constexpr (Q4) {
            __m256i s16[C][2];
            for (int c = 0; c < C; ++c) s16[c][0] = s16[c][1] = _mm256_setzero_si256();
            for (int t = 0; t < 4; ++t)
                for (int h = 0; h < 2; ++h) {
                    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * t + 32 * h));
                    const __m256i lo = _mm256_and_si256(v, low4);
                    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
                    for (int c = 0; c < C; ++c) {
                        s16[c][h] = _mm256_add_epi16(s16[c][h], _mm256_maddubs_epi16(lo, bcast4(y[c]->qs + 8 * t)));
                        s16[c][h] = _mm256_add_epi16(s16[c][h], _mm256_maddubs_epi16(hi, bcast4(y[c]->qs + 8 * t + 4)));
                    }
                }
            for (int c = 0; c < C; ++c) {
                const __m256i off = _mm256_set1_epi32(-kOffset * sums[c * ss + static_cast<size_t>(b)]);
                for (int h = 0; h < 2; ++h) isum[c][h] = _mm256_add_epi32(_mm256_madd_epi16(s16[c][h], ones), off);
            }
        } else {
            const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
            for (int c = 0; c < C; ++c) isum[c][0] = isum[c][1] = _mm256_setzero_si256();
            for (int t = 0; t < 8; ++t)
                for (int h = 0; h < 2; ++h) {
                    const __m256i s = _mm256_xor_si256(
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * t + 32 * h)), flip);
                    const __m256i a = _mm256_abs_epi8(s);  // -128 stays 0x80: 128 as unsigned
                    for (int c = 0; c < C; ++c) {
                        const __m256i p = _mm256_maddubs_epi16(a, _mm256_sign_epi8(bcast4(y[c]->qs + 4 * t), s));
                        isum[c][h] = _mm256_add_epi32(isum[c][h], _mm256_madd_epi16(p, ones));
                    }
                }
        }
        for (int h = 0; h < 2; ++h) {
            const __m256 wd = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + 16 * h)));
            for (int c = 0; c < C; ++c)
                acc[c][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c][h]), _mm256_mul_ps(wd, _mm256_set1_ps(f16[y[c]->d])),
                                            acc[c][h]);
            if constexpr (kMins) {
                const __m256 wm = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + 32 + 16 * h)));
                for (int c = 0; c < C; ++c)
                    acc[c][h] = _mm256_fmadd_ps(_mm256_set1_ps(static_cast<float>(sums[c * ss + static_cast<size_t>(b)])),
                                                _mm256_mul_ps(wm, _mm256_set1_ps(f16[y[c]->d])), acc[c][h]);
            }
        }
    }
    for (int c = 0; c < C; ++c) {
        _mm256_storeu_ps(out + c * os, acc[c][0]);
        _mm256_storeu_ps(out + c * os + 8, acc[c][1]);
    }
}

template <DType T>
void dot(int64_t k, const void* w, const void* x, size_t xs, const int32_t* sums, size_t ss, int nc, float* out,
         size_t os) {
    const int64_t nb = k / kQK;
    const auto* wp = static_cast<const uint8_t*>(w);
    const auto* xp = static_cast<const uint8_t*>(x);
    int c = 0;
    for (; c + 2 <= nc; c += 2) tile<T, 2>(nb, wp, xp + c * xs, xs, sums + c * ss, ss, out + c * os, os);
    if (c < nc) tile<T, 1>(nb, wp, xp + c * xs, xs, sums + c * ss, ss, out + c * os, os);
}

// Q4_K: rows [8 h0, 8 (h0 + NH)) x C activation rows of Q8_K blocks (layout in repack.h).
// Per block, half and column: each sub-block's int16 products widened once (at most
// 16 x 15 x 127 per lane), times the rows' scales (vpmulld); the mins against the
// activation's sub-block sums two at a time (vpmaddwd); then the twin's two float updates.
template <int C, int NH>
TESSERA_AVX2 void tile_q4_K(int64_t nb, const uint8_t* w, int h0, const uint8_t* x, size_t xs, float* out, size_t os) {
    constexpr size_t kBlock = 2368, kDmin = 32, kScales = 64, kMins = 192, kQuants = 320;
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[C][NH];
    for (int c = 0; c < C; ++c)
        for (int h = 0; h < NH; ++h) acc[c][h] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* wb = w + static_cast<size_t>(b) * kBlock;
        for (size_t o = 0; o < kBlock; o += 64)
            _mm_prefetch(reinterpret_cast<const char*>(wb + 2 * kBlock + o), _MM_HINT_T0);
        const quant::block_q8_K* y[C];
        for (int c = 0; c < C; ++c) y[c] = reinterpret_cast<const quant::block_q8_K*>(x + c * xs) + b;
        __m256i total[C][NH], mins[C][NH];
        for (int c = 0; c < C; ++c)
            for (int h = 0; h < NH; ++h) total[c][h] = mins[c][h] = _mm256_setzero_si256();
        for (int s = 0; s < 8; ++s) {
            __m256i s16[C][NH];
            for (int c = 0; c < C; ++c)
                for (int h = 0; h < NH; ++h) s16[c][h] = _mm256_setzero_si256();
            for (int t = 0; t < 4; ++t)
                for (int h = 0; h < NH; ++h) {
                    const __m256i v = _mm256_loadu_si256(
                        reinterpret_cast<const __m256i*>(wb + kQuants + 64 * (4 * s + t) + 32 * (h0 + h)));
                    const __m256i lo = _mm256_and_si256(v, low4);
                    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
                    for (int c = 0; c < C; ++c) {
                        const int8_t* yq = y[c]->qs + 32 * s + 8 * t;
                        s16[c][h] = _mm256_add_epi16(s16[c][h], _mm256_maddubs_epi16(lo, bcast4(yq)));
                        s16[c][h] = _mm256_add_epi16(s16[c][h], _mm256_maddubs_epi16(hi, bcast4(yq + 4)));
                    }
                }
            for (int h = 0; h < NH; ++h) {
                const __m256i sc = _mm256_cvtepu8_epi32(
                    _mm_loadl_epi64(reinterpret_cast<const __m128i*>(wb + kScales + 16 * s + 8 * (h0 + h))));
                for (int c = 0; c < C; ++c)
                    total[c][h] = _mm256_add_epi32(total[c][h], _mm256_mullo_epi32(_mm256_madd_epi16(s16[c][h], ones), sc));
            }
        }
        for (int p = 0; p < 4; ++p)
            for (int h = 0; h < NH; ++h) {
                const __m256i mn = _mm256_cvtepu8_epi16(
                    _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + kMins + 32 * p + 16 * (h0 + h))));
                for (int c = 0; c < C; ++c) {
                    const int16_t* bs = y[c]->bsums + 4 * p;
                    const uint32_t pair = static_cast<uint16_t>(bs[0] + bs[1]) |
                                          static_cast<uint32_t>(static_cast<uint16_t>(bs[2] + bs[3])) << 16;
                    mins[c][h] = _mm256_add_epi32(mins[c][h],
                                                  _mm256_madd_epi16(mn, _mm256_set1_epi32(static_cast<int32_t>(pair))));
                }
            }
        for (int h = 0; h < NH; ++h) {
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + 16 * (h0 + h))));
            const __m256 dmin =
                _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + kDmin + 16 * (h0 + h))));
            for (int c = 0; c < C; ++c) {
                const __m256 yd = _mm256_set1_ps(y[c]->d);
                acc[c][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total[c][h]), _mm256_mul_ps(d, yd), acc[c][h]);
                acc[c][h] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins[c][h]), _mm256_mul_ps(dmin, yd), acc[c][h]);
            }
        }
    }
    for (int c = 0; c < C; ++c)
        for (int h = 0; h < NH; ++h) _mm256_storeu_ps(out + c * os + 8 * (h0 + h), acc[c][h]);
}

// One column: both halves in one pass (decoding reads each block once); pairs of columns:
// a half at a time, so the sums fit in the 16 registers.
void dot_q4_K(int64_t k, const void* w, const void* x, size_t xs, const int32_t*, size_t, int nc, float* out,
              size_t os) {
    const int64_t nb = k / quant::kQKK;
    const auto* wp = static_cast<const uint8_t*>(w);
    const auto* xp = static_cast<const uint8_t*>(x);
    int c = 0;
    for (; c + 2 <= nc; c += 2)
        for (int h = 0; h < 2; ++h) tile_q4_K<2, 1>(nb, wp, h, xp + c * xs, xs, out + c * os, os);
    if (c < nc) tile_q4_K<1, 2>(nb, wp, 0, xp + c * xs, xs, out + c * os, os);
}

}  // namespace

DotR16Fn dot_r16_avx2(DType t) {
    if (t == DType::Q4_0) return &dot<DType::Q4_0>;
    if (t == DType::Q4_1) return &dot<DType::Q4_1>;
    if (t == DType::Q8_0) return &dot<DType::Q8_0>;
    if (t == DType::Q4_K) return &dot_q4_K;
    return nullptr;
}

}  // namespace tessera::cpu::kernels

#else

namespace tessera::cpu::kernels {
DotR16Fn dot_r16_avx2(DType) { return nullptr; }
}  // namespace tessera::cpu::kernels

#endif
