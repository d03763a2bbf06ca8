// Dot-product tiles of the k-quant weight formats (Q2_K..Q6_K) against Q8_K activation
// blocks, compiled once per Highway target. Per super-block of 256 and pair (weight row r,
// activation row c) the kernels form, exactly in int32,
//   isum = sum over sub-blocks j of scale_j * sum(q * y)      q the stored unsigned quant
// and apply the per-sub-block offsets (Q3_K: 4, Q6_K: 32) or mins (Q2_K, Q4_K, Q5_K) through
// the activation's bsums (sums of 16 quants), so the inner loop never widens to float:
//   Q3_K, Q6_K:        d * yd * (isum - offset * sum_j scale_j * bsum_j)
//   Q2_K, Q4_K, Q5_K:  d * yd * isum - dmin * yd * sum_j min_j * bsum_j
// The scalar twins are in ref_kernels.cpp.
#include <cstdint>
#include <cstring>

#include "backends/cpu/kernels/hwy_config.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/kernels/dot_kquant.cpp"
#include "hwy/cache_control.h"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include "backends/cpu/kernels/fill.h"
#include "backends/cpu/kernels/kquant_scales.h"
#include "backends/cpu/kernels/ref_kernels.h"
#include "backends/cpu/kernels/tile_pieces.h"
#include "tensor/fp16.h"
#include "tensor/quant/blocks.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

#if HWY_HAVE_SCALABLE
// SVE: the 128-bit Ops keep vectors in structs and arrays, which SVE's sizeless vector types
// cannot; every SVE CPU has NEON too, so the SVE targets take the NEON code of this file.
#if !(HWY_TARGETS & HWY_NEON)
#error "the SVE kernels need the NEON target, which Highway drops when -march already has SVE"
#endif
namespace tessera::cpu::kernels::N_NEON {
void FillKQuant(KernelTable* t);
}  // namespace tessera::cpu::kernels::N_NEON
#endif

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_SCALAR
void FillKQuant(KernelTable* t) { ref::fill(t); }
#elif HWY_HAVE_SCALABLE
void FillKQuant(KernelTable* t) { N_NEON::FillKQuant(t); }
#else

#define TESSERA_KERNEL_VNNI 0
#include "backends/cpu/kernels/simd_ops-inl.h"
#undef TESSERA_KERNEL_VNNI

using quant::block_q2_K;
using quant::block_q3_K;
using quant::block_q4_K;
using quant::block_q5_K;
using quant::block_q6_K;
using quant::block_q8_K;
using quant::kQKK;

// The per-row work of one format: `rows` adds one weight super-block's contribution, for C
// activation super-blocks, into acc[0..C).
struct Q2K {
    using Block = block_q2_K;
    template <int C>
    static HWY_INLINE void row(const Block& b, const block_q8_K* const* y, const float* yd, const Ops::VW* bs,
                               Ops::VF* acc) {
        const Ops::VW packed = Ops::widen_u8(b.scales);  // scale in the low nibble, min in the high
        const Ops::VW scales = Ops::and_w(packed, 15), mins = Ops::shr_w(packed, 4);
        Ops::VI isum[C];
        for (int c = 0; c < C; ++c) isum[c] = Ops::zero_i();
        for (int h = 0; h < 2; ++h) {
            const Ops::VB qs = Ops::load(b.qs + 32 * h);
            const Ops::VW half_scales = Ops::dup_half(scales, h);
            for (int j = 0; j < 4; ++j) {
                const Ops::VB q = Ops::shr_and(qs, 2 * j, 3);
                const Ops::VW sc = Ops::pair(half_scales, j);  // sub-blocks 8h + 2j, 8h + 2j + 1
                for (int c = 0; c < C; ++c)
                    isum[c] = Ops::add(isum[c], Ops::dot_u_sc(q, Ops::load(y[c]->qs + 128 * h + 32 * j), sc));
            }
        }
        const float d = Ops::half(b.d), dmin = Ops::half(b.dmin);
        for (int c = 0; c < C; ++c) {
            acc[c] = Ops::fma_i(acc[c], isum[c], d * yd[c]);
            acc[c] = Ops::fma_i(acc[c], Ops::madd_w(bs[c], mins), -dmin * yd[c]);
        }
    }
};

struct Q3K {
    using Block = block_q3_K;
    template <int C>
    static HWY_INLINE void row(const Block& b, const block_q8_K* const* y, const float* yd, const Ops::VW* bs,
                               Ops::VF* acc) {
        uint64_t lo, hi;
        q3_K_scale_words(b.scales, &lo, &hi);
        const Ops::VW scales = Ops::add_w(Ops::widen_u8(lo, hi), -32);
        Ops::VI isum[C];
        for (int c = 0; c < C; ++c) isum[c] = Ops::zero_i();
        const Ops::VB hmask = Ops::load(b.hmask);
        for (int h = 0; h < 2; ++h) {
            const Ops::VB qs = Ops::load(b.qs + 32 * h);
            const Ops::VW half_scales = Ops::dup_half(scales, h);
            for (int j = 0; j < 4; ++j) {
                // q = low two bits | high bit << 2, in [0, 7]; the value is q - 4.
                const Ops::VB q = Ops::or_(Ops::shr_and(qs, 2 * j, 3), Ops::shl(Ops::shr_and(hmask, 4 * h + j, 1), 2));
                const Ops::VW sc = Ops::pair(half_scales, j);
                for (int c = 0; c < C; ++c)
                    isum[c] = Ops::add(isum[c], Ops::dot_u_sc(q, Ops::load(y[c]->qs + 128 * h + 32 * j), sc));
            }
        }
        const Ops::VW offsets = Ops::shl_w(scales, 2);  // 4 * scale_j
        const float d = Ops::half(b.d);
        for (int c = 0; c < C; ++c)
            acc[c] = Ops::fma_i(acc[c], Ops::sub(isum[c], Ops::madd_w(bs[c], offsets)), d * yd[c]);
    }
};

template <bool kFifthBit, class B>
struct Q45K {
    using Block = B;
    template <int C>
    static HWY_INLINE void row(const Block& b, const block_q8_K* const* y, const float* yd, const Ops::VW* bs,
                               Ops::VF* acc) {
        uint64_t scale, min;
        q4_K_scale_words(b.scales, &scale, &min);
        const Ops::VW scales = Ops::widen_u8x8(scale);
        Ops::VI isum[C];
        for (int c = 0; c < C; ++c) isum[c] = Ops::zero_i();
        [[maybe_unused]] Ops::VB qh;
        if constexpr (kFifthBit) qh = Ops::load(b.qh);
        for (int ch = 0; ch < 4; ++ch) {
            // Sub-block 2ch in the low nibbles of 32 bytes, 2ch + 1 in the high ones.
            const Ops::VB qs = Ops::load(b.qs + 32 * ch);
            Ops::VB lo = Ops::shr_and(qs, 0, 15), hi = Ops::shr_and(qs, 4, 15);
            if constexpr (kFifthBit) {
                lo = Ops::or_(lo, Ops::shl(Ops::shr_and(qh, 2 * ch, 1), 4));
                hi = Ops::or_(hi, Ops::shl(Ops::shr_and(qh, 2 * ch + 1, 1), 4));
            }
            const Ops::VW sc_lo = Ops::splat(scales, 2 * ch), sc_hi = Ops::splat(scales, 2 * ch + 1);
            for (int c = 0; c < C; ++c) {
                isum[c] = Ops::add(isum[c], Ops::dot_u_sc(lo, Ops::load(y[c]->qs + 64 * ch), sc_lo));
                isum[c] = Ops::add(isum[c], Ops::dot_u_sc(hi, Ops::load(y[c]->qs + 64 * ch + 32), sc_hi));
            }
        }
        const Ops::VW mins = Ops::widen_dup_u8(min);  // min_j for each 16 of sub-block j
        const float d = Ops::half(b.d), dmin = Ops::half(b.dmin);
        for (int c = 0; c < C; ++c) {
            acc[c] = Ops::fma_i(acc[c], isum[c], d * yd[c]);
            acc[c] = Ops::fma_i(acc[c], Ops::madd_w(bs[c], mins), -dmin * yd[c]);
        }
    }
};

struct Q6K {
    using Block = block_q6_K;
    template <int C>
    static HWY_INLINE void row(const Block& b, const block_q8_K* const* y, const float* yd, const Ops::VW* bs,
                               Ops::VF* acc) {
        const Ops::VW scales = Ops::widen_s8(b.scales);
        Ops::VI isum[C];
        for (int c = 0; c < C; ++c) isum[c] = Ops::zero_i();
        for (int h = 0; h < 2; ++h) {
            const Ops::VB ql0 = Ops::load(b.ql + 64 * h), ql1 = Ops::load(b.ql + 64 * h + 32);
            const Ops::VB qh = Ops::load(b.qh + 32 * h);
            const Ops::VW half_scales = Ops::dup_half(scales, h);
            for (int k = 0; k < 4; ++k) {
                // q = four low bits | two high bits << 4, in [0, 63]; the value is q - 32.
                const Ops::VB low = Ops::shr_and(k & 1 ? ql1 : ql0, k < 2 ? 0 : 4, 15);
                const Ops::VB q = Ops::or_(low, Ops::shl(Ops::shr_and(qh, 2 * k, 3), 4));
                const Ops::VW sc = Ops::pair(half_scales, k);
                for (int c = 0; c < C; ++c)
                    isum[c] = Ops::add(isum[c], Ops::dot_u_sc(q, Ops::load(y[c]->qs + 128 * h + 32 * k), sc));
            }
        }
        const Ops::VW offsets = Ops::shl_w(scales, 5);  // 32 * scale_j
        const float d = Ops::half(b.d);
        for (int c = 0; c < C; ++c)
            acc[c] = Ops::fma_i(acc[c], Ops::sub(isum[c], Ops::madd_w(bs[c], offsets)), d * yd[c]);
    }
};

// R weight rows x C activation rows, all k / 256 super-blocks. out[c * os + r].
template <class F, int R, int C>
HWY_NOINLINE void tile(int64_t k, const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* out, size_t os) {
    using Block = typename F::Block;
    const int64_t nb = k / kQKK;
    const size_t prefetch_ahead = kPrefetchTiles * R * ws;
    Ops::VF acc[R][C];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) acc[r][c] = Ops::zero_f();
    for (int64_t i = 0; i < nb; ++i) {
        const block_q8_K* y[C];
        float yd[C];
        Ops::VW bs[C];
        for (int c = 0; c < C; ++c) {
            y[c] = reinterpret_cast<const block_q8_K*>(x + c * xs) + i;
            yd[c] = y[c]->d;
            bs[c] = Ops::load_w(y[c]->bsums);
        }
        for (int r = 0; r < R; ++r) {
            const Block& b = reinterpret_cast<const Block*>(w + r * ws)[i];
            const uint8_t* ahead = reinterpret_cast<const uint8_t*>(&b) + prefetch_ahead;
            for (size_t line = 0; line < sizeof(Block); line += 64) hwy::Prefetch(ahead + line);
            F::template row<C>(b, y, yd, bs, acc[r]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) out[c * os + r] = Ops::reduce(acc[r][c]);
}

template <class F>
void dot_tile(int64_t k, const void* w, size_t ws, int nr, const void* x, size_t xs, int nc, float* out, size_t os) {
    const uint8_t* wp = static_cast<const uint8_t*>(w);
    const uint8_t* xp = static_cast<const uint8_t*>(x);
    for_each_piece<Ops::kTileRows, Ops::kTileCols>(nr, nc, [&]<int R, int C>(int r, int c) {
        tile<F, R, C>(k, wp + r * ws, ws, xp + c * xs, xs, out + c * os + r, os);
    });
}

void FillKQuant(KernelTable* t) {
    const auto set = [t](DType type, DotTileFn fn) {
        t->dot[static_cast<uint32_t>(type)] = fn;
        t->act[static_cast<uint32_t>(type)] = ActFormat::Q8_K;
    };
    set(DType::Q2_K, &dot_tile<Q2K>);
    set(DType::Q3_K, &dot_tile<Q3K>);
    set(DType::Q4_K, &dot_tile<Q45K<false, block_q4_K> >);
    set(DType::Q5_K, &dot_tile<Q45K<true, block_q5_K> >);
    set(DType::Q6_K, &dot_tile<Q6K>);
}

#endif  // HWY_TARGET == HWY_SCALAR

}  // namespace tessera::cpu::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu::kernels {

HWY_EXPORT(FillKQuant);

void detail::fill_kquant_kernels(KernelTable* t) { HWY_DYNAMIC_DISPATCH(FillKQuant)(t); }

}  // namespace tessera::cpu::kernels
#endif
