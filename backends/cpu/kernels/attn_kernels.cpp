// The kernels of tiled attention (ops_attention.cpp), compiled once per Highway target, and
// their scalar twins (the HWY_SCALAR target's code and the parity tests' reference):
//  - attn_scores: s[r][j] = sum_d q[r][d] * kt[d][j] for a key tile stored transposed,
//    kAttnTile keys wide: the keys of one d are one contiguous run, so each query element is
//    broadcast once against a whole row of the tile (no horizontal sums); four query rows
//    per pass share the tile's loads;
//  - attn_accumulate: acc[r][d] += sum_j w[r][j] * v[j][d], the tile's values weighted, four
//    rows per pass sharing the loads of v;
//  - scale_mask_max: s[j] = s[j] * scale + mask[j] (one rounding), returning the maximum;
//  - exp_sum: x[i] = exp(x[i] - m), returning the sum (the softmax's exponentials);
//  - f16_to_f32: a row of halves as floats (the F16 KV cache);
//  - f32_to_f16: floats as halves, rounded to nearest even (writes into the F16 KV cache).
// Accumulators are named variables, not arrays, so sizeless (SVE) vectors fit too.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "backends/cpu/kernels/hwy_config.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/kernels/attn_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

#include "backends/cpu/kernels/fill.h"
#include "backends/cpu/kernels/kernels.h"
#include "backends/cpu/kernels/ref_kernels.h"
#include "tensor/fp16.h"

#if HWY_ONCE
namespace tessera::cpu::kernels::ref {

void attn_scores(const float* q, size_t q_stride, int64_t nq, const float* kt, int64_t D, int64_t nk, float* s,
                 size_t s_stride) {
    for (int64_t r = 0; r < nq; ++r)
        for (int64_t j = 0; j < nk; ++j) {
            float a = 0.0f;
            for (int64_t d = 0; d < D; ++d) a = std::fma(q[r * q_stride + d], kt[d * kAttnTile + j], a);
            s[r * s_stride + j] = a;
        }
}

void attn_accumulate(float* acc, size_t acc_stride, int64_t nr, int64_t Dv, const float* w, size_t w_stride,
                     int64_t nk, const float* v) {
    for (int64_t r = 0; r < nr; ++r)
        for (int64_t j = 0; j < nk; ++j)
            for (int64_t d = 0; d < Dv; ++d)
                acc[r * acc_stride + d] = std::fma(w[r * w_stride + j], v[j * Dv + d], acc[r * acc_stride + d]);
}

float scale_mask_max(float* s, const float* mask, int64_t n, float scale) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j] = std::fma(s[j], scale, mask[j]));
    return mx;
}

float exp_sum(float* x, int64_t n, float m) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - m));
    return sum;
}

void f16_to_f32(const uint16_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}

void f32_to_f16(const float* x, uint16_t* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

}  // namespace tessera::cpu::kernels::ref
#endif

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_SCALAR
void FillAttn(KernelTable* t) {
    t->attn_scores = ref::attn_scores;
    t->attn_accumulate = ref::attn_accumulate;
    t->scale_mask_max = ref::scale_mask_max;
    t->exp_sum = ref::exp_sum;
    t->f16_to_f32 = ref::f16_to_f32;
    t->f32_to_f16 = ref::f32_to_f16;
}
#else

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Both products are C = A B over a short inner dimension n, B's rows contiguous:
//   C[r][c] = (kLoad ? C[r][c] : 0) + sum over i, in order, of A[r][i] * B[i][c].
// Scores: A the queries, B the transposed key tile, n = D. Weighted values: A the weights,
// B the value rows, n = the tile's keys, C the accumulators (kLoad).

template <bool kLoad>
HWY_INLINE VF start(const float* c) {
    if constexpr (kLoad) return hn::LoadU(DF(), c);
    else return hn::Zero(DF());
}

// Four rows x two vectors from c: eight independent sums, each load of B shared by four rows.
template <bool kLoad>
HWY_INLINE void block4x2(const float* a, size_t as, const float* b, size_t bs, int64_t n, float* c, size_t cs) {
    const DF df;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    const float *a0 = a, *a1 = a0 + as, *a2 = a1 + as, *a3 = a2 + as;
    float *c0 = c, *c1 = c0 + cs, *c2 = c1 + cs, *c3 = c2 + cs;
    VF x0 = start<kLoad>(c0), x1 = start<kLoad>(c0 + N), y0 = start<kLoad>(c1), y1 = start<kLoad>(c1 + N);
    VF z0 = start<kLoad>(c2), z1 = start<kLoad>(c2 + N), u0 = start<kLoad>(c3), u1 = start<kLoad>(c3 + N);
    for (int64_t i = 0; i < n; ++i) {
        const float* row = b + i * static_cast<int64_t>(bs);
        const VF b0 = hn::LoadU(df, row), b1 = hn::LoadU(df, row + N);
        const VF e0 = hn::Set(df, a0[i]), e1 = hn::Set(df, a1[i]);
        x0 = hn::MulAdd(e0, b0, x0);
        x1 = hn::MulAdd(e0, b1, x1);
        y0 = hn::MulAdd(e1, b0, y0);
        y1 = hn::MulAdd(e1, b1, y1);
        const VF e2 = hn::Set(df, a2[i]), e3 = hn::Set(df, a3[i]);
        z0 = hn::MulAdd(e2, b0, z0);
        z1 = hn::MulAdd(e2, b1, z1);
        u0 = hn::MulAdd(e3, b0, u0);
        u1 = hn::MulAdd(e3, b1, u1);
    }
    hn::StoreU(x0, df, c0);
    hn::StoreU(x1, df, c0 + N);
    hn::StoreU(y0, df, c1);
    hn::StoreU(y1, df, c1 + N);
    hn::StoreU(z0, df, c2);
    hn::StoreU(z1, df, c2 + N);
    hn::StoreU(u0, df, c3);
    hn::StoreU(u1, df, c3 + N);
}

// Four rows x one vector: four sums, still enough to fill the FMA pipeline on the narrow
// diagonal tiles of a causal mask.
template <bool kLoad>
HWY_INLINE void block4x1(const float* a, size_t as, const float* b, size_t bs, int64_t n, float* c, size_t cs) {
    const DF df;
    VF x = start<kLoad>(c), y = start<kLoad>(c + cs), z = start<kLoad>(c + 2 * cs), u = start<kLoad>(c + 3 * cs);
    for (int64_t i = 0; i < n; ++i) {
        const VF b0 = hn::LoadU(df, b + i * static_cast<int64_t>(bs));
        x = hn::MulAdd(hn::Set(df, a[i]), b0, x);
        y = hn::MulAdd(hn::Set(df, a[as + i]), b0, y);
        z = hn::MulAdd(hn::Set(df, a[2 * as + i]), b0, z);
        u = hn::MulAdd(hn::Set(df, a[3 * as + i]), b0, u);
    }
    hn::StoreU(x, df, c);
    hn::StoreU(y, df, c + cs);
    hn::StoreU(z, df, c + 2 * cs);
    hn::StoreU(u, df, c + 3 * cs);
}

// One row, columns [0, cols) (whole vectors): four vectors at a time, then one.
template <bool kLoad>
HWY_INLINE void row_vectors(const float* a, const float* b, size_t bs, int64_t n, float* c, int64_t cols) {
    const DF df;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    int64_t j = 0;
    for (; j + 4 * N <= cols; j += 4 * N) {
        VF x0 = start<kLoad>(c + j), x1 = start<kLoad>(c + j + N), x2 = start<kLoad>(c + j + 2 * N),
           x3 = start<kLoad>(c + j + 3 * N);
        for (int64_t i = 0; i < n; ++i) {
            const VF e = hn::Set(df, a[i]);
            const float* row = b + i * static_cast<int64_t>(bs) + j;
            x0 = hn::MulAdd(e, hn::LoadU(df, row), x0);
            x1 = hn::MulAdd(e, hn::LoadU(df, row + N), x1);
            x2 = hn::MulAdd(e, hn::LoadU(df, row + 2 * N), x2);
            x3 = hn::MulAdd(e, hn::LoadU(df, row + 3 * N), x3);
        }
        hn::StoreU(x0, df, c + j);
        hn::StoreU(x1, df, c + j + N);
        hn::StoreU(x2, df, c + j + 2 * N);
        hn::StoreU(x3, df, c + j + 3 * N);
    }
    for (; j < cols; j += N) {
        VF x = start<kLoad>(c + j);
        for (int64_t i = 0; i < n; ++i) x = hn::MulAdd(hn::Set(df, a[i]), hn::LoadU(df, b + i * static_cast<int64_t>(bs) + j), x);
        hn::StoreU(x, df, c + j);
    }
}

// C's columns [0, cols), cols a whole number of vectors: rows four at a time against two
// vectors, then a last single vector; the rows left one at a time.
template <bool kLoad>
HWY_INLINE void product(const float* a, size_t as, int64_t nr, const float* b, size_t bs, int64_t n, float* c, size_t cs,
             int64_t cols) {
    const int64_t N = static_cast<int64_t>(hn::Lanes(DF()));
    int64_t r = 0;
    for (; r + 4 <= nr; r += 4) {
        const float* ar = a + r * static_cast<int64_t>(as);
        float* cr = c + r * static_cast<int64_t>(cs);
        int64_t j = 0;
        for (; j + 2 * N <= cols; j += 2 * N) block4x2<kLoad>(ar, as, b + j, bs, n, cr + j, cs);
        if (j < cols) block4x1<kLoad>(ar, as, b + j, bs, n, cr + j, cs);
    }
    for (; r < nr; ++r)
        row_vectors<kLoad>(a + r * static_cast<int64_t>(as), b, bs, n, c + r * static_cast<int64_t>(cs), cols);
}

// Columns are computed in whole vectors: up to nk rounded up to the lanes (at most
// kAttnTile; the caller's rows are at least that wide).
void AttnScores(const float* q, size_t q_stride, int64_t nq, const float* kt, int64_t D, int64_t nk, float* s,
                size_t s_stride) {
    const int64_t N = static_cast<int64_t>(hn::Lanes(DF()));
    const int64_t cols = std::min<int64_t>(kAttnTile, (nk + N - 1) / N * N);
    product<false>(q, q_stride, nq, kt, kAttnTile, D, s, s_stride, cols);
}

// The whole vectors of each row, then its last Dv % lanes elements one at a time.
void AttnAccumulate(float* acc, size_t acc_stride, int64_t nr, int64_t Dv, const float* w, size_t w_stride,
                    int64_t nk, const float* v) {
    const int64_t N = static_cast<int64_t>(hn::Lanes(DF()));
    const int64_t vec = Dv / N * N;
    product<true>(w, w_stride, nr, v, static_cast<size_t>(Dv), nk, acc, acc_stride, vec);
    for (int64_t r = 0; r < nr; ++r) {
        float* c = acc + r * static_cast<int64_t>(acc_stride);
        const float* wr = w + r * static_cast<int64_t>(w_stride);
        for (int64_t d = vec; d < Dv; ++d) {
            float x = c[d];
            for (int64_t j = 0; j < nk; ++j) x = std::fma(wr[j], v[j * Dv + d], x);
            c[d] = x;
        }
    }
}

float ScaleMaskMax(float* s, const float* mask, int64_t n, float scale) {
    const DF df;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    const VF vs = hn::Set(df, scale);
    VF mx = hn::Set(df, -std::numeric_limits<float>::infinity());
    int64_t j = 0;
    for (; j + N <= n; j += N) {
        const VF x = hn::MulAdd(hn::LoadU(df, s + j), vs, hn::LoadU(df, mask + j));
        hn::StoreU(x, df, s + j);
        mx = hn::Max(mx, x);
    }
    float m = hn::GetLane(hn::MaxOfLanes(df, mx));
    for (; j < n; ++j) m = std::max(m, s[j] = std::fma(s[j], scale, mask[j]));
    return m;
}

float ExpSum(float* x, int64_t n, float m) {
    const DF df;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    const auto vm = hn::Set(df, m);
    auto sum = hn::Zero(df);
    int64_t i = 0;
    for (; i + N <= n; i += N) {
        const auto e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vm));
        hn::StoreU(e, df, x + i);
        sum = hn::Add(sum, e);
    }
    // The last partial vector in its lanes too: element i always lands in lane i % N, so the
    // sum does not depend on n beyond the elements themselves (those past a row's last
    // visible key are 0), and a row's softmax is the same whatever tile width it got.
    if (i < n) {
        const auto live = hn::FirstN(df, static_cast<size_t>(n - i));
        const auto e = hn::IfThenElseZero(live, hn::Exp(df, hn::Sub(hn::MaskedLoad(live, df, x + i), vm)));
        hn::BlendedStore(e, live, df, x + i);
        sum = hn::Add(sum, e);
    }
    return hn::GetLane(hn::SumOfLanes(df, sum));
}

// x86 below AVX2 has no F16C; Highway's emulation there turns infinities into finite
// values, so those code paths convert one half at a time, exactly.
#if HWY_ARCH_X86 && HWY_TARGET > HWY_AVX2
void F16ToF32(const uint16_t* x, float* y, int64_t n) { ref::f16_to_f32(x, y, n); }
void F32ToF16(const float* x, uint16_t* y, int64_t n) { ref::f32_to_f16(x, y, n); }
#else
// The converters round to nearest even, as fp32_to_fp16 does; a NaN keeps its sign and
// becomes a quiet NaN (its payload bits may differ: the cache never holds one).
void F32ToF16(const float* x, uint16_t* y, int64_t n) {
    const DF df;
    const hn::Rebind<hwy::float16_t, DF> dh;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    auto* h = reinterpret_cast<hwy::float16_t*>(y);
    int64_t i = 0;
    for (; i + N <= n; i += N) hn::StoreU(hn::DemoteTo(dh, hn::LoadU(df, x + i)), dh, h + i);
    for (; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

void F16ToF32(const uint16_t* x, float* y, int64_t n) {
    const DF df;
    const hn::Rebind<hwy::float16_t, DF> dh;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    const auto* h = reinterpret_cast<const hwy::float16_t*>(x);
    int64_t i = 0;
    for (; i + N <= n; i += N) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, h + i)), df, y + i);
    for (; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}
#endif

void FillAttn(KernelTable* t) {
    t->attn_scores = AttnScores;
    t->attn_accumulate = AttnAccumulate;
    t->scale_mask_max = ScaleMaskMax;
    t->exp_sum = ExpSum;
    t->f16_to_f32 = F16ToF32;
    t->f32_to_f16 = F32ToF16;
}

#endif  // HWY_TARGET == HWY_SCALAR

}  // namespace tessera::cpu::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu::kernels {

HWY_EXPORT(FillAttn);

void detail::fill_attn_kernels(KernelTable* t) { HWY_DYNAMIC_DISPATCH(FillAttn)(t); }

}  // namespace tessera::cpu::kernels
#endif
