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
//  - f16_to_f32: a row of halves as floats (the F16 KV cache).
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
}
#else

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Scores of one query row, columns [j, cols): four vectors at a time, then one.
HWY_INLINE void scores_row(const float* qr, const float* kt, int64_t D, int64_t j, int64_t cols, float* sr) {
    const DF df;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    for (; j + 4 * N <= cols; j += 4 * N) {
        VF a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
        for (int64_t d = 0; d < D; ++d) {
            const VF qd = hn::Set(df, qr[d]);
            const float* row = kt + d * kAttnTile + j;
            a0 = hn::MulAdd(qd, hn::LoadU(df, row), a0);
            a1 = hn::MulAdd(qd, hn::LoadU(df, row + N), a1);
            a2 = hn::MulAdd(qd, hn::LoadU(df, row + 2 * N), a2);
            a3 = hn::MulAdd(qd, hn::LoadU(df, row + 3 * N), a3);
        }
        hn::StoreU(a0, df, sr + j);
        hn::StoreU(a1, df, sr + j + N);
        hn::StoreU(a2, df, sr + j + 2 * N);
        hn::StoreU(a3, df, sr + j + 3 * N);
    }
    for (; j < cols; j += N) {
        VF a0 = hn::Zero(df);
        for (int64_t d = 0; d < D; ++d) a0 = hn::MulAdd(hn::Set(df, qr[d]), hn::LoadU(df, kt + d * kAttnTile + j), a0);
        hn::StoreU(a0, df, sr + j);
    }
}

// Columns are computed in whole vectors: up to nk rounded up to the lanes (at most
// kAttnTile; the caller's rows are at least that wide). Rows go four at a time against two
// vectors of columns (eight independent sums, the loads of the tile shared by four rows),
// then against a last single vector (four sums, still enough to fill the FMA pipeline on
// the diagonal tiles of a causal mask, which are narrow); the rows left one at a time.
void AttnScores(const float* q, size_t q_stride, int64_t nq, const float* kt, int64_t D, int64_t nk, float* s,
                size_t s_stride) {
    const DF df;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    const int64_t cols = std::min<int64_t>(kAttnTile, (nk + N - 1) / N * N);
    int64_t r = 0;
    for (; r + 4 <= nq; r += 4) {
        const float* q0 = q + r * q_stride;
        const float* q1 = q0 + q_stride;
        const float* q2 = q1 + q_stride;
        const float* q3 = q2 + q_stride;
        float* s0 = s + r * s_stride;
        float* s1 = s0 + s_stride;
        float* s2 = s1 + s_stride;
        float* s3 = s2 + s_stride;
        int64_t j = 0;
        for (; j + 2 * N <= cols; j += 2 * N) {
            VF a0 = hn::Zero(df), a1 = hn::Zero(df), b0 = hn::Zero(df), b1 = hn::Zero(df);
            VF c0 = hn::Zero(df), c1 = hn::Zero(df), e0 = hn::Zero(df), e1 = hn::Zero(df);
            for (int64_t d = 0; d < D; ++d) {
                const float* row = kt + d * kAttnTile + j;
                const VF k0 = hn::LoadU(df, row), k1 = hn::LoadU(df, row + N);
                const VF x0 = hn::Set(df, q0[d]), x1 = hn::Set(df, q1[d]);
                a0 = hn::MulAdd(x0, k0, a0);
                a1 = hn::MulAdd(x0, k1, a1);
                b0 = hn::MulAdd(x1, k0, b0);
                b1 = hn::MulAdd(x1, k1, b1);
                const VF x2 = hn::Set(df, q2[d]), x3 = hn::Set(df, q3[d]);
                c0 = hn::MulAdd(x2, k0, c0);
                c1 = hn::MulAdd(x2, k1, c1);
                e0 = hn::MulAdd(x3, k0, e0);
                e1 = hn::MulAdd(x3, k1, e1);
            }
            hn::StoreU(a0, df, s0 + j);
            hn::StoreU(a1, df, s0 + j + N);
            hn::StoreU(b0, df, s1 + j);
            hn::StoreU(b1, df, s1 + j + N);
            hn::StoreU(c0, df, s2 + j);
            hn::StoreU(c1, df, s2 + j + N);
            hn::StoreU(e0, df, s3 + j);
            hn::StoreU(e1, df, s3 + j + N);
        }
        if (j < cols) {
            VF a0 = hn::Zero(df), b0 = hn::Zero(df), c0 = hn::Zero(df), e0 = hn::Zero(df);
            for (int64_t d = 0; d < D; ++d) {
                const VF k0 = hn::LoadU(df, kt + d * kAttnTile + j);
                a0 = hn::MulAdd(hn::Set(df, q0[d]), k0, a0);
                b0 = hn::MulAdd(hn::Set(df, q1[d]), k0, b0);
                c0 = hn::MulAdd(hn::Set(df, q2[d]), k0, c0);
                e0 = hn::MulAdd(hn::Set(df, q3[d]), k0, e0);
            }
            hn::StoreU(a0, df, s0 + j);
            hn::StoreU(b0, df, s1 + j);
            hn::StoreU(c0, df, s2 + j);
            hn::StoreU(e0, df, s3 + j);
        }
    }
    for (; r < nq; ++r) scores_row(q + r * q_stride, kt, D, 0, cols, s + r * s_stride);
}

// One row's accumulation, elements [d, Dv): four vectors at a time, one, then one element.
HWY_INLINE void accumulate_row(float* acc, int64_t d, int64_t Dv, const float* w, int64_t nk, const float* v) {
    const DF df;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    for (; d + 4 * N <= Dv; d += 4 * N) {
        VF a0 = hn::LoadU(df, acc + d), a1 = hn::LoadU(df, acc + d + N), a2 = hn::LoadU(df, acc + d + 2 * N),
           a3 = hn::LoadU(df, acc + d + 3 * N);
        for (int64_t j = 0; j < nk; ++j) {
            const VF wj = hn::Set(df, w[j]);
            const float* row = v + j * Dv + d;
            a0 = hn::MulAdd(wj, hn::LoadU(df, row), a0);
            a1 = hn::MulAdd(wj, hn::LoadU(df, row + N), a1);
            a2 = hn::MulAdd(wj, hn::LoadU(df, row + 2 * N), a2);
            a3 = hn::MulAdd(wj, hn::LoadU(df, row + 3 * N), a3);
        }
        hn::StoreU(a0, df, acc + d);
        hn::StoreU(a1, df, acc + d + N);
        hn::StoreU(a2, df, acc + d + 2 * N);
        hn::StoreU(a3, df, acc + d + 3 * N);
    }
    for (; d + N <= Dv; d += N) {
        VF a0 = hn::LoadU(df, acc + d);
        for (int64_t j = 0; j < nk; ++j) a0 = hn::MulAdd(hn::Set(df, w[j]), hn::LoadU(df, v + j * Dv + d), a0);
        hn::StoreU(a0, df, acc + d);
    }
    for (; d < Dv; ++d) {
        float a = acc[d];
        for (int64_t j = 0; j < nk; ++j) a = std::fma(w[j], v[j * Dv + d], a);
        acc[d] = a;
    }
}

// Rows four at a time against two vectors of elements (eight independent sums, each load
// of v shared by four rows), then a last single vector; the rows left one at a time.
void AttnAccumulate(float* acc, size_t acc_stride, int64_t nr, int64_t Dv, const float* w, size_t w_stride,
                    int64_t nk, const float* v) {
    const DF df;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    int64_t r = 0;
    for (; r + 4 <= nr; r += 4) {
        float* c0 = acc + r * acc_stride;
        float* c1 = c0 + acc_stride;
        float* c2 = c1 + acc_stride;
        float* c3 = c2 + acc_stride;
        const float* w0 = w + r * w_stride;
        const float* w1 = w0 + w_stride;
        const float* w2 = w1 + w_stride;
        const float* w3 = w2 + w_stride;
        int64_t d = 0;
        for (; d + 2 * N <= Dv; d += 2 * N) {
            VF a0 = hn::LoadU(df, c0 + d), a1 = hn::LoadU(df, c0 + d + N);
            VF b0 = hn::LoadU(df, c1 + d), b1 = hn::LoadU(df, c1 + d + N);
            VF e0 = hn::LoadU(df, c2 + d), e1 = hn::LoadU(df, c2 + d + N);
            VF f0 = hn::LoadU(df, c3 + d), f1 = hn::LoadU(df, c3 + d + N);
            for (int64_t j = 0; j < nk; ++j) {
                const float* row = v + j * Dv + d;
                const VF v0 = hn::LoadU(df, row), v1 = hn::LoadU(df, row + N);
                const VF x0 = hn::Set(df, w0[j]), x1 = hn::Set(df, w1[j]);
                a0 = hn::MulAdd(x0, v0, a0);
                a1 = hn::MulAdd(x0, v1, a1);
                b0 = hn::MulAdd(x1, v0, b0);
                b1 = hn::MulAdd(x1, v1, b1);
                const VF x2 = hn::Set(df, w2[j]), x3 = hn::Set(df, w3[j]);
                e0 = hn::MulAdd(x2, v0, e0);
                e1 = hn::MulAdd(x2, v1, e1);
                f0 = hn::MulAdd(x3, v0, f0);
                f1 = hn::MulAdd(x3, v1, f1);
            }
            hn::StoreU(a0, df, c0 + d);
            hn::StoreU(a1, df, c0 + d + N);
            hn::StoreU(b0, df, c1 + d);
            hn::StoreU(b1, df, c1 + d + N);
            hn::StoreU(e0, df, c2 + d);
            hn::StoreU(e1, df, c2 + d + N);
            hn::StoreU(f0, df, c3 + d);
            hn::StoreU(f1, df, c3 + d + N);
        }
        if (d + N <= Dv) {
            VF a0 = hn::LoadU(df, c0 + d), b0 = hn::LoadU(df, c1 + d), e0 = hn::LoadU(df, c2 + d),
               f0 = hn::LoadU(df, c3 + d);
            for (int64_t j = 0; j < nk; ++j) {
                const VF v0 = hn::LoadU(df, v + j * Dv + d);
                a0 = hn::MulAdd(hn::Set(df, w0[j]), v0, a0);
                b0 = hn::MulAdd(hn::Set(df, w1[j]), v0, b0);
                e0 = hn::MulAdd(hn::Set(df, w2[j]), v0, e0);
                f0 = hn::MulAdd(hn::Set(df, w3[j]), v0, f0);
            }
            hn::StoreU(a0, df, c0 + d);
            hn::StoreU(b0, df, c1 + d);
            hn::StoreU(e0, df, c2 + d);
            hn::StoreU(f0, df, c3 + d);
            d += N;
        }
        accumulate_row(c0, d, Dv, w0, nk, v);  // the last Dv % lanes elements
        accumulate_row(c1, d, Dv, w1, nk, v);
        accumulate_row(c2, d, Dv, w2, nk, v);
        accumulate_row(c3, d, Dv, w3, nk, v);
    }
    for (; r < nr; ++r) accumulate_row(acc + r * acc_stride, 0, Dv, w + r * w_stride, nk, v);
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
    float total = hn::GetLane(hn::SumOfLanes(df, sum));
    for (; i < n; ++i) total += (x[i] = std::exp(x[i] - m));
    return total;
}

// x86 below AVX2 has no F16C; Highway's emulation there turns infinities into finite
// values, so those code paths convert one half at a time, exactly.
#if HWY_ARCH_X86 && HWY_TARGET > HWY_AVX2
void F16ToF32(const uint16_t* x, float* y, int64_t n) { ref::f16_to_f32(x, y, n); }
#else
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
