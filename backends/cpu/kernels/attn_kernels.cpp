// The kernels of tiled attention (ops_attention.cpp), compiled once per Highway target, and
// their scalar twins (the HWY_SCALAR target's code and the parity tests' reference):
//  - attn_scores: s[r][j] = sum_d q[r][d] * kt[d][j] for a key tile stored transposed,
//    kAttnTile keys wide: the keys of one d are one contiguous run, so each query element is
//    broadcast once against a whole row of the tile (no horizontal sums);
//  - attn_accumulate: acc[d] += sum_j w[j] * v[j][d], the tile's values weighted;
//  - exp_sum: x[i] = exp(x[i] - m), returning the sum (the softmax's exponentials).
// Accumulators are named variables, not arrays, so sizeless (SVE) vectors fit too.
#include <cmath>
#include <cstdint>

#include "backends/cpu/kernels/hwy_config.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/kernels/attn_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

#include "backends/cpu/kernels/fill.h"
#include "backends/cpu/kernels/kernels.h"

#if HWY_ONCE
namespace tessera::cpu::kernels::ref {

void attn_scores(const float* q, size_t q_stride, int64_t nq, const float* kt, int64_t D, float* s,
                 size_t s_stride) {
    for (int64_t r = 0; r < nq; ++r) {
        float* sr = s + r * s_stride;
        for (int64_t j = 0; j < kAttnTile; ++j) sr[j] = 0.0f;
        for (int64_t d = 0; d < D; ++d) {
            const float qd = q[r * q_stride + d];
            for (int64_t j = 0; j < kAttnTile; ++j) sr[j] = std::fma(qd, kt[d * kAttnTile + j], sr[j]);
        }
    }
}

void attn_accumulate(float* acc, int64_t Dv, const float* w, int64_t nk, const float* v) {
    for (int64_t j = 0; j < nk; ++j)
        for (int64_t d = 0; d < Dv; ++d) acc[d] = std::fma(w[j], v[j * Dv + d], acc[d]);
}

float exp_sum(float* x, int64_t n, float m) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - m));
    return sum;
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
    t->exp_sum = ref::exp_sum;
}
#else

using DF = hn::ScalableTag<float>;

void AttnScores(const float* q, size_t q_stride, int64_t nq, const float* kt, int64_t D, float* s, size_t s_stride) {
    const DF df;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    for (int64_t r = 0; r < nq; ++r) {
        const float* qr = q + r * q_stride;
        float* sr = s + r * s_stride;
        int64_t j = 0;
        for (; j + 4 * N <= kAttnTile; j += 4 * N) {
            auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
            for (int64_t d = 0; d < D; ++d) {
                const auto qd = hn::Set(df, qr[d]);
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
        for (; j + N <= kAttnTile; j += N) {
            auto a0 = hn::Zero(df);
            for (int64_t d = 0; d < D; ++d) a0 = hn::MulAdd(hn::Set(df, qr[d]), hn::LoadU(df, kt + d * kAttnTile + j), a0);
            hn::StoreU(a0, df, sr + j);
        }
        for (; j < kAttnTile; ++j) {
            float a = 0.0f;
            for (int64_t d = 0; d < D; ++d) a = std::fma(qr[d], kt[d * kAttnTile + j], a);
            sr[j] = a;
        }
    }
}

void AttnAccumulate(float* acc, int64_t Dv, const float* w, int64_t nk, const float* v) {
    const DF df;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    int64_t d = 0;
    for (; d + 4 * N <= Dv; d += 4 * N) {
        auto a0 = hn::LoadU(df, acc + d), a1 = hn::LoadU(df, acc + d + N), a2 = hn::LoadU(df, acc + d + 2 * N),
             a3 = hn::LoadU(df, acc + d + 3 * N);
        for (int64_t j = 0; j < nk; ++j) {
            const auto wj = hn::Set(df, w[j]);
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
        auto a0 = hn::LoadU(df, acc + d);
        for (int64_t j = 0; j < nk; ++j) a0 = hn::MulAdd(hn::Set(df, w[j]), hn::LoadU(df, v + j * Dv + d), a0);
        hn::StoreU(a0, df, acc + d);
    }
    for (; d < Dv; ++d) {
        float a = acc[d];
        for (int64_t j = 0; j < nk; ++j) a = std::fma(w[j], v[j * Dv + d], a);
        acc[d] = a;
    }
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

void FillAttn(KernelTable* t) {
    t->attn_scores = AttnScores;
    t->attn_accumulate = AttnAccumulate;
    t->exp_sum = ExpSum;
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
