// r16 dot products (repack.h) on Intel AMX tiles for Q4_0, Q4_1, Q8_0 and Q4_K prompts: 16 weight
// rows x 16 activation rows per call, 32 quants at a time. The layout's 64-byte chunks
// (16 rows x 4 quants) are exactly the rows of an AMX B tile, so per block:
//   B = the block's 8 chunks (Q8_0: as stored, value + 128; Q4_0 and Q4_1: its 4 chunks
//       unpacked into 8, low nibbles then high),
//   A = the 16 activation rows' 32 quants of the block, read in place with the rows' stride,
//   C = A x B by TDPBSUD (signed activations x unsigned weights): C[m][n] = sum(y * u),
// then, as the VNNI kernels do, C - offset * sum(y), times the two scales, into 16 float
// accumulators (Q4_1: plus sum(y) times the mins and the activation's scale). The integer sums are exact and the float steps those of the scalar twin, so
// the results are bit-identical to it (repack_test, on a CPU with AMX). Fewer than 16
// activation rows take the AVX-512 VNNI kernels.
//
// AMX state is per thread: every call loads its tile configuration. The process asks Linux
// for permission to use the tile data once (cpu detection in dispatch.cpp).
#include "backends/cpu/kernels/repack.h"

#include "backends/cpu/kernels/kernels.h"
#include "tensor/quant/blocks.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <cstddef>
#include <cstring>

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined values.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define TESSERA_AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c,amx-tile,amx-int8")))

namespace tessera::cpu::kernels {

namespace {

using quant::block_q8_0;
using quant::kQK;

constexpr int kCols = 16;

// The tile configuration (palette 1), two sets for two blocks in flight: tiles 0 and 3 = C
// (16 x 16 int32), 1 and 4 = A (16 x 32 bytes), 2 and 5 = B (8 x 64 bytes).
struct alignas(64) TileConfig {
    uint8_t palette = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {64, 32, 64, 64, 32, 64};
    uint8_t rows[16] = {kCols, kCols, 8, kCols, kCols, 8};
};

// The B operand of 32 quants from their chunks: 8-bit ones as stored; 4-bit ones unpacked into
// `buf` (low nibbles of chunk t as row 2t, high as 2t + 1).
template <bool Q4>
TESSERA_AMX inline const uint8_t* b_operand(const uint8_t* chunks, uint8_t (*buf)[64]) {
    if constexpr (!Q4) {
        return chunks;
    } else {
        const __m512i low4 = _mm512_set1_epi8(0x0F);
        for (int t = 0; t < 4; ++t) {
            const __m512i v = _mm512_loadu_si512(chunks + 64 * t);
            _mm512_store_si512(buf[2 * t], _mm512_and_si512(v, low4));
            _mm512_store_si512(buf[2 * t + 1], _mm512_and_si512(_mm512_srli_epi16(v, 4), low4));
        }
        return buf[0];
    }
}

// The float update of block b from its tile of sums cb: as the VNNI kernels (and the twin).
template <DType T>
TESSERA_AMX inline void update(__m512 (&acc)[kCols], const uint8_t* wb, const int32_t (*cb)[16], const uint8_t* x,
                               size_t xs, const int32_t* sums, size_t ss, int64_t b, const float* f16) {
    constexpr int kOffset = T == DType::Q4_0 ? 8 : T == DType::Q4_1 ? 0 : 128;
    const __m512 wd = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb)));
    for (int m = 0; m < kCols; ++m) {
        const auto* y = reinterpret_cast<const block_q8_0*>(x + m * xs) + b;
        const int32_t ysum = sums[m * ss + static_cast<size_t>(b)];
        const __m512i isum = _mm512_add_epi32(_mm512_load_si512(cb[m]), _mm512_set1_epi32(-kOffset * ysum));
        const __m512 yd = _mm512_set1_ps(f16[y->d]);
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(wd, yd), acc[m]);
        if constexpr (T == DType::Q4_1) {
            const __m512 wm = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + 32)));
            acc[m] = _mm512_fmadd_ps(_mm512_set1_ps(static_cast<float>(ysum)), _mm512_mul_ps(wm, yd), acc[m]);
        }
    }
}

// Two blocks per step, each on its own tiles, so the second product runs while the first
// one's sums are scaled; the float updates stay in block order.
template <DType T>
TESSERA_AMX void tile16(int64_t nb, const uint8_t* w, const uint8_t* x, size_t xs, const int32_t* sums, size_t ss,
                        float* out, size_t os) {
    constexpr bool Q4 = T != DType::Q8_0;
    constexpr size_t kQuants = T == DType::Q4_1 ? 64 : 32, kBlockBytes = kQuants + (Q4 ? 256 : 512);
    constexpr size_t kA = offsetof(block_q8_0, qs);  // block b's quants at x + b * 34 + kA
    static const TileConfig config;
    _tile_loadconfig(&config);
    alignas(64) int32_t c[2][kCols][16];
    alignas(64) uint8_t unpacked[2][8][64];
    const float* f16 = fp16_table();
    __m512 acc[kCols];
    for (int m = 0; m < kCols; ++m) acc[m] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const uint8_t* w0 = w + static_cast<size_t>(b) * kBlockBytes;
        const uint8_t* w1 = w0 + kBlockBytes;
        for (size_t o = 0; o < 2 * kBlockBytes; o += 64)
            _mm_prefetch(reinterpret_cast<const char*>(w0 + 2 * kBlockBytes + o), _MM_HINT_T0);
        _tile_loadd(2, b_operand<Q4>(w0 + kQuants, unpacked[0]), 64);
        _tile_loadd(1, x + static_cast<size_t>(b) * sizeof(block_q8_0) + kA, xs);
        _tile_zero(0);
        _tile_dpbsud(0, 1, 2);
        _tile_loadd(5, b_operand<Q4>(w1 + kQuants, unpacked[1]), 64);
        _tile_loadd(4, x + static_cast<size_t>(b + 1) * sizeof(block_q8_0) + kA, xs);
        _tile_zero(3);
        _tile_dpbsud(3, 4, 5);
        _tile_stored(0, c[0], 64);
        update<T>(acc, w0, c[0], x, xs, sums, ss, b, f16);
        _tile_stored(3, c[1], 64);
        update<T>(acc, w1, c[1], x, xs, sums, ss, b + 1, f16);
    }
    if (b < nb) {
        const uint8_t* w0 = w + static_cast<size_t>(b) * kBlockBytes;
        _tile_loadd(2, b_operand<Q4>(w0 + kQuants, unpacked[0]), 64);
        _tile_loadd(1, x + static_cast<size_t>(b) * sizeof(block_q8_0) + kA, xs);
        _tile_zero(0);
        _tile_dpbsud(0, 1, 2);
        _tile_stored(0, c[0], 64);
        update<T>(acc, w0, c[0], x, xs, sums, ss, b, f16);
    }
    for (int m = 0; m < kCols; ++m) _mm512_storeu_ps(out + m * os, acc[m]);
}

// Q4_K (layout in repack.h), 16 weight rows x 16 activation rows of Q8_K blocks: per
// sub-block of 32, B = its 4 chunks unpacked as for Q4_0, A = the activation rows' 32 quants
// of the sub-block, C by TDPBSUD; then, as the VNNI kernel does, C times the rows' scales
// (vpmulld) summed over the block, the mins against the activation's sub-block sums
// (vpdpwssd), and the twin's two float updates. Two sub-blocks are in flight.
TESSERA_AMX void tile16_q4_K(int64_t nb, const uint8_t* w, const uint8_t* x, size_t xs, float* out, size_t os) {
    constexpr size_t kBlock = 2368, kDmin = 32, kScales = 64, kMins = 192, kQuants = 320;
    constexpr size_t kA = offsetof(quant::block_q8_K, qs);
    static const TileConfig config;
    _tile_loadconfig(&config);
    alignas(64) int32_t c[2][kCols][16];
    alignas(64) uint8_t unpacked[2][8][64];
    alignas(64) float acc[kCols][16] = {};
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* wb = w + static_cast<size_t>(b) * kBlock;
        for (size_t o = 0; o < kBlock; o += 64)
            _mm_prefetch(reinterpret_cast<const char*>(wb + 2 * kBlock + o), _MM_HINT_T0);
        const uint8_t* xb = x + static_cast<size_t>(b) * sizeof(quant::block_q8_K) + kA;
        __m512i total[kCols];
        for (int m = 0; m < kCols; ++m) total[m] = _mm512_setzero_si512();
        for (int s = 0; s < 8; s += 2) {
            _tile_loadd(2, b_operand<true>(wb + kQuants + 256 * s, unpacked[0]), 64);
            _tile_loadd(1, xb + 32 * s, xs);
            _tile_zero(0);
            _tile_dpbsud(0, 1, 2);
            _tile_loadd(5, b_operand<true>(wb + kQuants + 256 * (s + 1), unpacked[1]), 64);
            _tile_loadd(4, xb + 32 * (s + 1), xs);
            _tile_zero(3);
            _tile_dpbsud(3, 4, 5);
            _tile_stored(0, c[0], 64);
            const __m512i sc0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + kScales + 16 * s)));
            for (int m = 0; m < kCols; ++m) total[m] = _mm512_add_epi32(total[m], _mm512_mullo_epi32(_mm512_load_si512(c[0][m]), sc0));
            _tile_stored(3, c[1], 64);
            const __m512i sc1 =
                _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + kScales + 16 * (s + 1))));
            for (int m = 0; m < kCols; ++m) total[m] = _mm512_add_epi32(total[m], _mm512_mullo_epi32(_mm512_load_si512(c[1][m]), sc1));
        }
        __m512i mn[4];
        for (int p = 0; p < 4; ++p)
            mn[p] = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + kMins + 32 * p)));
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb)));
        const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + kDmin)));
        for (int m = 0; m < kCols; ++m) {
            const auto* y = reinterpret_cast<const quant::block_q8_K*>(x + m * xs) + b;
            __m512i mins = _mm512_setzero_si512();
            for (int p = 0; p < 4; ++p) {
                const int16_t* bs = y->bsums + 4 * p;
                const uint32_t pair = static_cast<uint16_t>(bs[0] + bs[1]) |
                                      static_cast<uint32_t>(static_cast<uint16_t>(bs[2] + bs[3])) << 16;
                mins = _mm512_dpwssd_epi32(mins, mn[p], _mm512_set1_epi32(static_cast<int32_t>(pair)));
            }
            const __m512 yd = _mm512_set1_ps(y->d);
            __m512 a = _mm512_load_ps(acc[m]);
            a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total[m]), _mm512_mul_ps(d, yd), a);
            a = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mins), _mm512_mul_ps(dmin, yd), a);
            _mm512_store_ps(acc[m], a);
        }
    }
    for (int m = 0; m < kCols; ++m) _mm512_storeu_ps(out + m * os, _mm512_load_ps(acc[m]));
}

void dot_q4_K(int64_t k, const void* w, const void* x, size_t xs, const int32_t* sums, size_t ss, int nc, float* out,
              size_t os) {
    const auto* wp = static_cast<const uint8_t*>(w);
    const auto* xp = static_cast<const uint8_t*>(x);
    int c = 0;
    for (; c + kCols <= nc; c += kCols) tile16_q4_K(k / quant::kQKK, wp, xp + c * xs, xs, out + c * os, os);
    if (c < nc) dot_r16_avx512_vnni(DType::Q4_K)(k, w, xp + c * xs, xs, sums, ss, nc - c, out + c * os, os);
}

template <DType T>
void dot(int64_t k, const void* w, const void* x, size_t xs, const int32_t* sums, size_t ss, int nc, float* out,
         size_t os) {
    const auto* wp = static_cast<const uint8_t*>(w);
    const auto* xp = static_cast<const uint8_t*>(x);
    int c = 0;
    for (; c + kCols <= nc; c += kCols) tile16<T>(k / kQK, wp, xp + c * xs, xs, sums + c * ss, ss, out + c * os, os);
    if (c < nc) dot_r16_avx512_vnni(T)(k, w, xp + c * xs, xs, sums + c * ss, ss, nc - c, out + c * os, os);
}

}  // namespace

DotR16Fn dot_r16_amx(DType t) {
    if (t == DType::Q4_0) return &dot<DType::Q4_0>;
    if (t == DType::Q4_1) return &dot<DType::Q4_1>;
    if (t == DType::Q8_0) return &dot<DType::Q8_0>;
    if (t == DType::Q4_K) return &dot_q4_K;
    return nullptr;
}

}  // namespace tessera::cpu::kernels

#else

namespace tessera::cpu::kernels {
DotR16Fn dot_r16_amx(DType) { return nullptr; }
}  // namespace tessera::cpu::kernels

#endif
