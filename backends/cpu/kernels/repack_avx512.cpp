// r16 dot products (repack.h) for AVX-512 with VNNI: per block, one vpdpbusd per 4-byte chunk
// and activation row covers 16 weight rows x 4 quants, with the activation quants broadcast
// from memory. Compiled for that instruction set by function attributes; dispatch.cpp hands
// them out only when the CPU has it.
#include "backends/cpu/kernels/repack.h"

#include "backends/cpu/kernels/kernels.h"
#include "tensor/quant/blocks.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <cstring>

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined values.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define TESSERA_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

namespace tessera::cpu::kernels {

namespace {

using quant::block_q8_0;
using quant::kQK;

TESSERA_AVX512_VNNI inline __m512i bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

// Runs f.template operator()<C>(c) over nc activation rows in tiles of kBig, then 4, then
// the 3, 2 or 1 left, so each kernel is instantiated for a few widths only.
template <int kBig, class F>
inline void column_tiles(int nc, F&& f) {
    int c = 0;
    for (; c + kBig <= nc; c += kBig) f.template operator()<kBig>(c);
    if constexpr (kBig > 4)
        for (; c + 4 <= nc; c += 4) f.template operator()<4>(c);
    switch (nc - c) {
        case 3: f.template operator()<3>(c); break;
        case 2: f.template operator()<2>(c); break;
        case 1: f.template operator()<1>(c); break;
        default: break;
    }
}

// 16 rows x C activation rows of Q8_0 blocks. T = Q4_0: 4-bit quants (offset 8); Q4_1:
// 4-bit quants and mins; Q8_0: 8-bit quants stored + 128.
template <DType T, int C>
TESSERA_AVX512_VNNI void tile(int64_t nb, const uint8_t* w, const uint8_t* x, size_t xs, const int32_t* sums,
                              size_t ss, float* out, size_t os) {
    constexpr bool Q4 = T != DType::Q8_0, kMins = T == DType::Q4_1;
    constexpr size_t kQuants = kMins ? 64 : 32, kBlockBytes = kQuants + (Q4 ? 256 : 512);
    constexpr int kOffset = T == DType::Q4_0 ? 8 : kMins ? 0 : 128;
    constexpr size_t kPrefetchBlocks = 24;
    const float* f16 = fp16_table();
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* wb = w + static_cast<size_t>(b) * kBlockBytes;
        // Decoding streams the weights: every line of the block 24 blocks ahead (7 to 13 KB)
        // is asked for now, far enough ahead to cover the memory latency of one core.
        for (size_t o = 0; o < kBlockBytes; o += 64)
            _mm_prefetch(reinterpret_cast<const char*>(wb + kPrefetchBlocks * kBlockBytes + o), _MM_HINT_T0);
        const block_q8_0* y[C];
        __m512i isum[C];
        for (int c = 0; c < C; ++c) {
            y[c] = reinterpret_cast<const block_q8_0*>(x + c * xs) + b;
            isum[c] = _mm512_set1_epi32(-kOffset * sums[c * ss + static_cast<size_t>(b)]);
        }
        // Two independent chains of vpdpbusd per column (integer sums: exact in any order),
        // so one column's latency does not bound the stream.
        __m512i isum2[C];
        for (int c = 0; c < C; ++c) isum2[c] = _mm512_setzero_si512();
        const __m512i* q = reinterpret_cast<const __m512i*>(wb + kQuants);
        if constexpr (Q4) {
            for (int t = 0; t < 4; ++t) {
                const __m512i v = _mm512_loadu_si512(q + t);
                const __m512i lo = _mm512_and_si512(v, low4);
                const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
                for (int c = 0; c < C; ++c) {
                    isum[c] = _mm512_dpbusd_epi32(isum[c], lo, bcast4(y[c]->qs + 8 * t));
                    isum2[c] = _mm512_dpbusd_epi32(isum2[c], hi, bcast4(y[c]->qs + 8 * t + 4));
                }
            }
        } else {
            for (int t = 0; t < 8; t += 2) {
                const __m512i v0 = _mm512_loadu_si512(q + t), v1 = _mm512_loadu_si512(q + t + 1);
                for (int c = 0; c < C; ++c) {
                    isum[c] = _mm512_dpbusd_epi32(isum[c], v0, bcast4(y[c]->qs + 4 * t));
                    isum2[c] = _mm512_dpbusd_epi32(isum2[c], v1, bcast4(y[c]->qs + 4 * t + 4));
                }
            }
        }
        for (int c = 0; c < C; ++c) isum[c] = _mm512_add_epi32(isum[c], isum2[c]);
        const __m512 wd = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb)));
        for (int c = 0; c < C; ++c)
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(wd, _mm512_set1_ps(f16[y[c]->d])),
                                     acc[c]);
        if constexpr (kMins) {
            const __m512 wm = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + 32)));
            for (int c = 0; c < C; ++c)
                acc[c] = _mm512_fmadd_ps(_mm512_set1_ps(static_cast<float>(sums[c * ss + static_cast<size_t>(b)])),
                                         _mm512_mul_ps(wm, _mm512_set1_ps(f16[y[c]->d])), acc[c]);
        }
    }
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(out + c * os, acc[c]);
}

// Q4_K: 16 rows x C activation rows of Q8_K blocks (layout in repack.h). Per block and
// column: the 8 sub-blocks' integer sums times their scales (vpmulld), the mins against the
// activation's sub-block sums two at a time (vpdpwssd), then two float updates.
template <int C>
TESSERA_AVX512_VNNI void tile_q4_K(int64_t nb, const uint8_t* w, const uint8_t* x, size_t xs, float* out, size_t os) {
    constexpr size_t kBlock = 2368, kDmin = 32, kScales = 64, kMins = 192, kQuants = 320;
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* wb = w + static_cast<size_t>(b) * kBlock;
        const quant::block_q8_K* y[C];
        __m512i total[C], mins[C];
        for (int c = 0; c < C; ++c) {
            y[c] = reinterpret_cast<const quant::block_q8_K*>(x + c * xs) + b;
            total[c] = _mm512_setzero_si512();
            mins[c] = _mm512_setzero_si512();
        }
        for (int s = 0; s < 8; ++s) {
            // Every line of the block two blocks ahead, an eighth of it per sub-block.
            for (size_t o = 0; o < 320; o += 64)
                _mm_prefetch(reinterpret_cast<const char*>(wb + 2 * kBlock + kBlock / 8 * s + o), _MM_HINT_T0);
            __m512i isum[C], isum2[C];
            for (int c = 0; c < C; ++c) isum[c] = isum2[c] = _mm512_setzero_si512();
            const __m512i* q = reinterpret_cast<const __m512i*>(wb + kQuants + 256 * s);
            for (int t = 0; t < 4; ++t) {
                const __m512i v = _mm512_loadu_si512(q + t);
                const __m512i lo = _mm512_and_si512(v, low4);
                const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
                for (int c = 0; c < C; ++c) {
                    const int8_t* yq = y[c]->qs + 32 * s + 8 * t;
                    isum[c] = _mm512_dpbusd_epi32(isum[c], lo, bcast4(yq));
                    isum2[c] = _mm512_dpbusd_epi32(isum2[c], hi, bcast4(yq + 4));
                }
            }
            for (int c = 0; c < C; ++c) isum[c] = _mm512_add_epi32(isum[c], isum2[c]);
            const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + kScales + 16 * s)));
            for (int c = 0; c < C; ++c) total[c] = _mm512_add_epi32(total[c], _mm512_mullo_epi32(isum[c], sc));
        }
        for (int p = 0; p < 4; ++p) {
            const __m512i mn = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + kMins + 32 * p)));
            for (int c = 0; c < C; ++c) {
                const int16_t* bs = y[c]->bsums + 4 * p;
                const uint32_t pair = static_cast<uint16_t>(bs[0] + bs[1]) |
                                      static_cast<uint32_t>(static_cast<uint16_t>(bs[2] + bs[3])) << 16;
                mins[c] = _mm512_dpwssd_epi32(mins[c], mn, _mm512_set1_epi32(static_cast<int32_t>(pair)));
            }
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb)));
        const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + kDmin)));
        for (int c = 0; c < C; ++c) {
            const __m512 yd = _mm512_set1_ps(y[c]->d);
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total[c]), _mm512_mul_ps(d, yd), acc[c]);
            acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mins[c]), _mm512_mul_ps(dmin, yd), acc[c]);
        }
    }
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(out + c * os, acc[c]);
}

void dot_q4_K(int64_t k, const void* w, const void* x, size_t xs, const int32_t*, size_t, int nc, float* out,
              size_t os) {
    const int64_t nb = k / quant::kQKK;
    const auto* wp = static_cast<const uint8_t*>(w);
    const auto* xp = static_cast<const uint8_t*>(x);
    column_tiles<4>(nc, [&]<int C>(int c) { tile_q4_K<C>(nb, wp, xp + c * xs, xs, out + c * os, os); });
}

// Q6_K: 16 rows x C activation rows of Q8_K blocks (layout in repack.h). Per sub-block of
// 16: the 6-bit quants rebuilt from their low-nibble and top-bit vectors (a shift and one
// ternary-logic op per chunk), four vpdpbusd per column starting from -32 times the
// activation's sub-block sum, then times the rows' signed scales (vpmulld); one float update
// per block.
template <int C>
TESSERA_AVX512_VNNI void tile_q6_K(int64_t nb, const uint8_t* w, const uint8_t* x, size_t xs, float* out, size_t os) {
    constexpr size_t kBlock = 3360, kScales = 32, kLow = 288, kHigh = 2336;
    constexpr int kOr = 0xEA;  // ternary logic: (a & b) | c
    const __m512i low4 = _mm512_set1_epi8(0x0F), top2 = _mm512_set1_epi8(0x30);
    __m512 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* wb = w + static_cast<size_t>(b) * kBlock;
        const quant::block_q8_K* y[C];
        __m512i total[C];
        for (int c = 0; c < C; ++c) {
            y[c] = reinterpret_cast<const quant::block_q8_K*>(x + c * xs) + b;
            total[c] = _mm512_setzero_si512();
        }
        for (int s = 0; s < 16; ++s) {
            // Every line of the block two blocks ahead, a sixteenth of it per sub-block.
            for (size_t o = 0; o < 256; o += 64)
                _mm_prefetch(reinterpret_cast<const char*>(wb + 2 * kBlock + kBlock / 16 * s + o), _MM_HINT_T0);
            const __m512i n0 = _mm512_loadu_si512(wb + kLow + 128 * s);
            const __m512i n1 = _mm512_loadu_si512(wb + kLow + 128 * s + 64);
            const __m512i hv = _mm512_loadu_si512(wb + kHigh + 64 * s);
            const __m512i q0 = _mm512_ternarylogic_epi32(_mm512_slli_epi16(hv, 4), top2, _mm512_and_si512(n0, low4), kOr);
            const __m512i q1 = _mm512_ternarylogic_epi32(_mm512_slli_epi16(hv, 2), top2,
                                                         _mm512_and_si512(_mm512_srli_epi16(n0, 4), low4), kOr);
            const __m512i q2 = _mm512_ternarylogic_epi32(hv, top2, _mm512_and_si512(n1, low4), kOr);
            const __m512i q3 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(hv, 2), top2,
                                                         _mm512_and_si512(_mm512_srli_epi16(n1, 4), low4), kOr);
            const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + kScales + 16 * s)));
            for (int c = 0; c < C; ++c) {
                const int8_t* yq = y[c]->qs + 16 * s;
                __m512i isum = _mm512_set1_epi32(-32 * y[c]->bsums[s]);
                __m512i isum2 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q1, bcast4(yq + 4));
                isum = _mm512_dpbusd_epi32(isum, q0, bcast4(yq));
                isum2 = _mm512_dpbusd_epi32(isum2, q3, bcast4(yq + 12));
                isum = _mm512_dpbusd_epi32(isum, q2, bcast4(yq + 8));
                total[c] = _mm512_add_epi32(total[c], _mm512_mullo_epi32(_mm512_add_epi32(isum, isum2), sc));
            }
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb)));
        for (int c = 0; c < C; ++c)
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total[c]), _mm512_mul_ps(d, _mm512_set1_ps(y[c]->d)), acc[c]);
    }
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(out + c * os, acc[c]);
}

void dot_q6_K(int64_t k, const void* w, const void* x, size_t xs, const int32_t*, size_t, int nc, float* out,
              size_t os) {
    const int64_t nb = k / quant::kQKK;
    const auto* wp = static_cast<const uint8_t*>(w);
    const auto* xp = static_cast<const uint8_t*>(x);
    column_tiles<4>(nc, [&]<int C>(int c) { tile_q6_K<C>(nb, wp, xp + c * xs, xs, out + c * os, os); });
}

// The 16 rows' weights of element i as floats: F16 converted, F32 as they are.
TESSERA_AVX512_VNNI inline __m512 load16(const uint16_t* w) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
}
TESSERA_AVX512_VNNI inline __m512 load16(const float* w) { return _mm512_loadu_ps(w); }

// F16 and F32: 16 rows x C activation rows of floats; per element i, the 16 rows' weights as
// floats times the broadcast activation, the even elements into one sum and the odd ones into
// another (two dependency chains), added at the end: the twin's sequence exactly. Every line
// of the stream is prefetched 12 KB ahead.
template <class T, int C>
TESSERA_AVX512_VNNI void tile_float(int64_t k, const T* w, const uint8_t* x, size_t xs, float* out, size_t os) {
    __m512 even[C], odd[C];
    for (int c = 0; c < C; ++c) even[c] = odd[c] = _mm512_setzero_ps();
    const float* xr[C];
    for (int c = 0; c < C; ++c) xr[c] = reinterpret_cast<const float*>(x + c * xs);
    int64_t i = 0;
    for (; i + 2 <= k; i += 2) {
        for (size_t o = 0; o < 2 * 16 * sizeof(T); o += 64)
            _mm_prefetch(reinterpret_cast<const char*>(w + i * 16) + 12288 + o, _MM_HINT_T0);
        const __m512 w0 = load16(w + i * 16), w1 = load16(w + (i + 1) * 16);
        for (int c = 0; c < C; ++c) {
            even[c] = _mm512_fmadd_ps(w0, _mm512_set1_ps(xr[c][i]), even[c]);
            odd[c] = _mm512_fmadd_ps(w1, _mm512_set1_ps(xr[c][i + 1]), odd[c]);
        }
    }
    if (i < k) {
        const __m512 w0 = load16(w + i * 16);
        for (int c = 0; c < C; ++c) even[c] = _mm512_fmadd_ps(w0, _mm512_set1_ps(xr[c][i]), even[c]);
    }
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(out + c * os, _mm512_add_ps(even[c], odd[c]));
}

template <class T>
void dot_float(int64_t k, const void* w, const void* x, size_t xs, const int32_t*, size_t, int nc, float* out,
               size_t os) {
    const auto* wp = static_cast<const T*>(w);
    const auto* xp = static_cast<const uint8_t*>(x);
    column_tiles<8>(nc, [&]<int C>(int c) { tile_float<T, C>(k, wp, xp + c * xs, xs, out + c * os, os); });
}

#define TESSERA_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))

TESSERA_AVX512_BF16 inline __m512bh pair_of(const uint16_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return (__m512bh)_mm512_set1_epi32(v);
}

// BF16: 16 rows x C activation rows of bf16; per pair p, one vdpbf16ps per column against the
// broadcast activation pair, even pairs into one sum and odd ones into another (two
// dependency chains), added at the end: the twin's sequence exactly.
template <int C>
TESSERA_AVX512_BF16 void tile_bf16(int64_t k, const uint16_t* w, const uint8_t* x, size_t xs, float* out, size_t os) {
    __m512 even[C], odd[C];
    for (int c = 0; c < C; ++c) even[c] = odd[c] = _mm512_setzero_ps();
    const uint16_t* xr[C];
    for (int c = 0; c < C; ++c) xr[c] = reinterpret_cast<const uint16_t*>(x + c * xs);
    const int64_t np = k / 2;
    int64_t p = 0;
    for (; p + 2 <= np; p += 2) {
        // Both lines of the two pairs, 12 KB ahead.
        _mm_prefetch(reinterpret_cast<const char*>(w + (p + 192) * 32), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(w + (p + 193) * 32), _MM_HINT_T0);
        const __m512bh w0 = (__m512bh)_mm512_loadu_si512(w + p * 32);
        const __m512bh w1 = (__m512bh)_mm512_loadu_si512(w + (p + 1) * 32);
        for (int c = 0; c < C; ++c) {
            even[c] = _mm512_dpbf16_ps(even[c], w0, pair_of(xr[c] + 2 * p));
            odd[c] = _mm512_dpbf16_ps(odd[c], w1, pair_of(xr[c] + 2 * p + 2));
        }
    }
    if (p < np) {
        const __m512bh w0 = (__m512bh)_mm512_loadu_si512(w + p * 32);
        for (int c = 0; c < C; ++c) even[c] = _mm512_dpbf16_ps(even[c], w0, pair_of(xr[c] + 2 * p));
    }
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(out + c * os, _mm512_add_ps(even[c], odd[c]));
}

void dot_bf16(int64_t k, const void* w, const void* x, size_t xs, const int32_t*, size_t, int nc, float* out,
              size_t os) {
    const auto* wp = static_cast<const uint16_t*>(w);
    const auto* xp = static_cast<const uint8_t*>(x);
    column_tiles<8>(nc, [&]<int C>(int c) { tile_bf16<C>(k, wp, xp + c * xs, xs, out + c * os, os); });
}

template <DType T>
void dot(int64_t k, const void* w, const void* x, size_t xs, const int32_t* sums, size_t ss, int nc, float* out,
         size_t os) {
    const int64_t nb = k / kQK;
    const auto* wp = static_cast<const uint8_t*>(w);
    const auto* xp = static_cast<const uint8_t*>(x);
    column_tiles<4>(nc, [&]<int C>(int c) {
        tile<T, C>(nb, wp, xp + c * xs, xs, sums + c * ss, ss, out + c * os, os);
    });
}

}  // namespace

DotR16Fn dot_r16_avx512_bf16() { return &dot_bf16; }

DotR16Fn dot_r16_avx512_vnni(DType t) {
    if (t == DType::Q4_0) return &dot<DType::Q4_0>;
    if (t == DType::Q4_1) return &dot<DType::Q4_1>;
    if (t == DType::Q8_0) return &dot<DType::Q8_0>;
    if (t == DType::Q4_K) return &dot_q4_K;
    if (t == DType::Q6_K) return &dot_q6_K;
    if (t == DType::F16) return &dot_float<uint16_t>;
    if (t == DType::F32) return &dot_float<float>;
    return nullptr;
}

}  // namespace tessera::cpu::kernels

#else

namespace tessera::cpu::kernels {
DotR16Fn dot_r16_avx512_vnni(DType) { return nullptr; }
DotR16Fn dot_r16_avx512_bf16() { return nullptr; }
}  // namespace tessera::cpu::kernels

#endif
