// The gated activations of the feed-forward block, out = act(gate) * up, compiled once per
// Highway target, and their scalar twins (the HWY_SCALAR target's code and the parity tests'
// reference):
//  - swiglu: act(x) = x / (1 + exp(-x)) (SiLU);
//  - geglu:  act(x) = 0.5 x (1 + tanh(z)), z = sqrt(2 / pi) (x + 0.044715 x^3) (GELU, tanh
//    form), computed as x / (1 + exp(-2 z)), the same value without the cancellation of
//    1 + tanh(z) for negative x.
// The vector exponential is Highway's (a few ulp from the C library's), so the two agree to
// rounding, not bit for bit.
#include <cmath>
#include <cstdint>

#include "backends/cpu/kernels/hwy_config.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/kernels/gate_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

#include "backends/cpu/kernels/fill.h"
#include "backends/cpu/kernels/kernels.h"
#include "backends/cpu/kernels/ref_kernels.h"

#if HWY_ONCE
namespace tessera::cpu::kernels::ref {

namespace {
constexpr float kGeluK = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluC = 0.044715f;
}  // namespace

void swiglu(const float* g, const float* u, float* out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void geglu(const float* g, const float* u, float* out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float x = g[i];
        out[i] = x / (1.0f + std::exp(-2.0f * kGeluK * (x + kGeluC * x * x * x))) * u[i];
    }
}

}  // namespace tessera::cpu::kernels::ref
#endif

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_SCALAR
void FillGate(KernelTable* t) {
    t->swiglu = ref::swiglu;
    t->geglu = ref::geglu;
}
#else

using DF = hn::ScalableTag<float>;

void Swiglu(const float* g, const float* u, float* out, int64_t n) {
    const DF df;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    const auto one = hn::Set(df, 1.0f);
    // exp(88) is near the float limit; beyond it x / (1 + exp(-x)) is 0 to within a denormal.
    const auto hi = hn::Set(df, 88.0f);
    int64_t i = 0;
    for (; i + N <= n; i += N) {
        const auto x = hn::LoadU(df, g + i);
        const auto e = hn::Exp(df, hn::Min(hn::Neg(x), hi));
        hn::StoreU(hn::Mul(hn::Div(x, hn::Add(one, e)), hn::LoadU(df, u + i)), df, out + i);
    }
    for (; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void Geglu(const float* g, const float* u, float* out, int64_t n) {
    const DF df;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    const auto one = hn::Set(df, 1.0f), hi = hn::Set(df, 88.0f);
    const auto k2 = hn::Set(df, -2.0f * 0.7978845608028654f), c = hn::Set(df, 0.044715f);
    int64_t i = 0;
    for (; i + N <= n; i += N) {
        const auto x = hn::LoadU(df, g + i);
        const auto e = hn::Exp(df, hn::Min(hn::Mul(k2, hn::Add(x, hn::Mul(hn::Mul(c, x), hn::Mul(x, x)))), hi));
        hn::StoreU(hn::Mul(hn::Div(x, hn::Add(one, e)), hn::LoadU(df, u + i)), df, out + i);
    }
    if (i < n) ref::geglu(g + i, u + i, out + i, n - i);
}

void FillGate(KernelTable* t) {
    t->swiglu = Swiglu;
    t->geglu = Geglu;
}

#endif  // HWY_TARGET == HWY_SCALAR

}  // namespace tessera::cpu::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu::kernels {

HWY_EXPORT(FillGate);

void detail::fill_gate_kernels(KernelTable* t) { HWY_DYNAMIC_DISPATCH(FillGate)(t); }

}  // namespace tessera::cpu::kernels
#endif
