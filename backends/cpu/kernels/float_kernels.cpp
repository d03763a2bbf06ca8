// Float kernels, compiled once per Highway target with Highway's own (full-width) vectors:
// dot tiles of F32, F16 and BF16 weights against F32 activation rows, the activation
// quantizers (F32 -> Q8_0 and Q8_K blocks, byte for byte as tensor/quant's reference
// quantizers), and row helpers. The twins are in ref_kernels.cpp.
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "backends/cpu/kernels/hwy_config.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/kernels/float_kernels.cpp"
#include "hwy/cache_control.h"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include "backends/cpu/kernels/fill.h"
#include "backends/cpu/kernels/ref_kernels.h"
#include "backends/cpu/kernels/tile_pieces.h"
#include "tensor/fp16.h"
#include "tensor/quant/blocks.h"

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_SCALAR
void FillFloat(KernelTable* t) { ref::fill(t); }
#else

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Register tile: R*C accumulators plus C activation vectors (AVX3, NEON and SVE have 32
// registers, the others 16).
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_NEON || HWY_HAVE_SCALABLE
constexpr int kRows = 4, kCols = 4;
#else
constexpr int kRows = 4, kCols = 2;
#endif

inline float to_float(float v) { return v; }
inline float to_float(hwy::float16_t v) {
    uint16_t bits;
    std::memcpy(&bits, &v, 2);
    return fp16_to_fp32(bits);
}
inline float to_float(hwy::bfloat16_t v) {
    uint16_t bits;
    std::memcpy(&bits, &v, 2);
    return bf16_to_fp32(bits);
}

template <class T>
HWY_INLINE VF load_as_float(const T* p) {
    if constexpr (std::is_same_v<T, float>) {
        return hn::LoadU(DF(), p);
    } else {
        return hn::PromoteTo(DF(), hn::LoadU(hn::Rebind<T, DF>(), p));
    }
}

#if !HWY_HAVE_SCALABLE

// R weight rows x C activation rows; the last k % lanes elements one at a time.
template <class T, int R, int C>
HWY_NOINLINE void tile(int64_t k, const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* out, size_t os) {
    const DF df;
    const int64_t n = static_cast<int64_t>(hn::Lanes(df));
    const size_t prefetch_ahead = 2 * R * ws;  // the rows of the tile after next (simd_ops-inl.h)
    VF acc[R][C];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) acc[r][c] = hn::Zero(df);
    int64_t i = 0;
    for (; i + n <= k; i += n) {
        VF xv[C];
        for (int c = 0; c < C; ++c) xv[c] = hn::LoadU(df, reinterpret_cast<const float*>(x + c * xs) + i);
        for (int r = 0; r < R; ++r) {
            const T* wr = reinterpret_cast<const T*>(w + r * ws) + i;
            hwy::Prefetch(reinterpret_cast<const uint8_t*>(wr) + prefetch_ahead);
            const VF wv = load_as_float(wr);
            for (int c = 0; c < C; ++c) acc[r][c] = hn::MulAdd(wv, xv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < R; ++r) {
        const T* wr = reinterpret_cast<const T*>(w + r * ws);
        for (int c = 0; c < C; ++c) {
            const float* xr = reinterpret_cast<const float*>(x + c * xs);
            float sum = hn::GetLane(hn::SumOfLanes(df, acc[r][c]));
            for (int64_t j = i; j < k; ++j) sum += to_float(wr[j]) * xr[j];
            out[c * os + r] = sum;
        }
    }
}

#else  // SVE

// The weight row and activation row's sum of products: the vector part's lanes, then the
// last k % lanes elements one at a time, as in the array version.
template <class T>
HWY_INLINE float finish(VF acc, int64_t i, int64_t k, const T* wr, const float* xr) {
    float sum = hn::GetLane(hn::SumOfLanes(DF(), acc));
    for (int64_t j = i; j < k; ++j) sum += to_float(wr[j]) * xr[j];
    return sum;
}

// The same tile for SVE, whose sizeless vectors cannot form arrays: each accumulator is a named
// variable, a<r><c>, and the rows and columns past R and C are never used (the compiler drops
// them). The operations per output are those of the array version.
static_assert(kRows == 4 && kCols == 4, "the SVE tile is written out for 4 x 4");

// Weight row r's step: a_c += w * x_c for c < C.
template <class T, int R, int C>
HWY_INLINE void row_step(int r, int64_t i, const uint8_t* w, size_t ws, size_t prefetch_ahead, VF x0, VF x1, VF x2,
                         VF x3, VF& a0, VF& a1, VF& a2, VF& a3) {
    if (r >= R) return;
    const T* wr = reinterpret_cast<const T*>(w + r * ws) + i;
    hwy::Prefetch(reinterpret_cast<const uint8_t*>(wr) + prefetch_ahead);
    const VF wv = load_as_float(wr);
    a0 = hn::MulAdd(wv, x0, a0);
    if constexpr (C > 1) a1 = hn::MulAdd(wv, x1, a1);
    if constexpr (C > 2) a2 = hn::MulAdd(wv, x2, a2);
    if constexpr (C > 3) a3 = hn::MulAdd(wv, x3, a3);
}

// Weight row r's outputs.
template <class T, int R, int C>
HWY_INLINE void row_finish(int r, int64_t i, int64_t k, const uint8_t* w, size_t ws, const uint8_t* x, size_t xs,
                           float* out, size_t os, VF a0, VF a1, VF a2, VF a3) {
    if (r >= R) return;
    const T* wr = reinterpret_cast<const T*>(w + r * ws);
    const auto xr = [&](int c) { return reinterpret_cast<const float*>(x + c * xs); };
    out[r] = finish(a0, i, k, wr, xr(0));
    if constexpr (C > 1) out[os + r] = finish(a1, i, k, wr, xr(1));
    if constexpr (C > 2) out[2 * os + r] = finish(a2, i, k, wr, xr(2));
    if constexpr (C > 3) out[3 * os + r] = finish(a3, i, k, wr, xr(3));
}

template <class T, int R, int C>
HWY_NOINLINE void tile(int64_t k, const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* out, size_t os) {
    const DF df;
    const int64_t n = static_cast<int64_t>(hn::Lanes(df));
    const size_t prefetch_ahead = 2 * R * ws;
    const auto load_x = [&](int c, int64_t i) {
        return c < C ? hn::LoadU(df, reinterpret_cast<const float*>(x + c * xs) + i) : hn::Zero(df);
    };
    VF a00 = hn::Zero(df), a01 = a00, a02 = a00, a03 = a00;
    VF a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    VF a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    VF a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    int64_t i = 0;
    for (; i + n <= k; i += n) {
        const VF x0 = load_x(0, i), x1 = load_x(1, i), x2 = load_x(2, i), x3 = load_x(3, i);
        row_step<T, R, C>(0, i, w, ws, prefetch_ahead, x0, x1, x2, x3, a00, a01, a02, a03);
        row_step<T, R, C>(1, i, w, ws, prefetch_ahead, x0, x1, x2, x3, a10, a11, a12, a13);
        row_step<T, R, C>(2, i, w, ws, prefetch_ahead, x0, x1, x2, x3, a20, a21, a22, a23);
        row_step<T, R, C>(3, i, w, ws, prefetch_ahead, x0, x1, x2, x3, a30, a31, a32, a33);
    }
    row_finish<T, R, C>(0, i, k, w, ws, x, xs, out, os, a00, a01, a02, a03);
    row_finish<T, R, C>(1, i, k, w, ws, x, xs, out, os, a10, a11, a12, a13);
    row_finish<T, R, C>(2, i, k, w, ws, x, xs, out, os, a20, a21, a22, a23);
    row_finish<T, R, C>(3, i, k, w, ws, x, xs, out, os, a30, a31, a32, a33);
}

#endif  // HWY_HAVE_SCALABLE

template <class T>
void dot_tile(int64_t k, const void* w, size_t ws, int nr, const void* x, size_t xs, int nc, float* out, size_t os) {
    const uint8_t* wp = static_cast<const uint8_t*>(w);
    const uint8_t* xp = static_cast<const uint8_t*>(x);
    for_each_piece<kRows, kCols>(nr, nc, [&]<int R, int C>(int r, int c) {
        tile<T, R, C>(k, wp + r * ws, ws, xp + c * xs, xs, out + c * os + r, os);
    });
}

// ---- activation quantizers ----

// x * id rounded to nearest-even and clamped to [-127, 127], as the reference does (a NaN
// gives -127 there and here: Max returns its second operand for a NaN first one).
template <class D>
HWY_INLINE hn::Vec<hn::Rebind<int32_t, D> > quantize_lanes(D d, const float* x, hn::Vec<D> id) {
    const auto v = hn::Min(hn::Max(hn::Mul(hn::LoadU(d, x), id), hn::Set(d, -127.0f)), hn::Set(d, 127.0f));
    return hn::NearestInt(v);
}

// Largest |x| over n elements; NaNs are skipped as the reference's comparison skips them.
template <class D>
HWY_INLINE float abs_max(D d, const float* x, int n) {
    auto m = hn::Zero(d);
    for (int j = 0; j < n; j += static_cast<int>(hn::Lanes(d))) m = hn::Max(hn::Abs(hn::LoadU(d, x + j)), m);
    return hn::GetLane(hn::MaxOfLanes(d, m));
}

void QuantizeQ8_0(const float* x, void* yv, int64_t k) {
    const hn::CappedTag<float, quant::kQK> d;
    const hn::Rebind<int8_t, decltype(d)> d8;
    const int n = static_cast<int>(hn::Lanes(d));
    auto* y = static_cast<quant::block_q8_0*>(yv);
    for (int64_t b = 0; b < k / quant::kQK; ++b, x += quant::kQK) {
        const uint16_t dh = fp32_to_fp16(abs_max(d, x, quant::kQK) / 127.0f);
        const float dd = fp16_to_fp32(dh);
        const auto id = hn::Set(d, dd != 0.0f ? 1.0f / dd : 0.0f);
        y[b].d = dh;
        for (int j = 0; j < quant::kQK; j += n)
            hn::StoreU(hn::DemoteTo(d8, quantize_lanes(d, x + j, id)), d8, y[b].qs + j);
    }
}

void QuantizeQ8_K(const float* x, void* yv, int64_t k) {
    const hn::CappedTag<float, 16> d;  // 16 divides by the lane count: one bsum per 16 / n vectors
    const hn::Rebind<int32_t, decltype(d)> di;
    const hn::Rebind<int8_t, decltype(d)> d8;
    const int n = static_cast<int>(hn::Lanes(d));
    auto* y = static_cast<quant::block_q8_K*>(yv);
    for (int64_t b = 0; b < k / quant::kQKK; ++b, x += quant::kQKK) {
        const float dd = abs_max(d, x, quant::kQKK) / 127.0f;
        const auto id = hn::Set(d, dd != 0.0f ? 1.0f / dd : 0.0f);
        y[b].d = dd;
        for (int g = 0; g < quant::kQKK / 16; ++g) {
            auto sum = hn::Zero(di);
            for (int j = 16 * g; j < 16 * g + 16; j += n) {
                const auto q = quantize_lanes(d, x + j, id);
                sum = hn::Add(sum, q);
                hn::StoreU(hn::DemoteTo(d8, q), d8, y[b].qs + j);
            }
            y[b].bsums[g] = static_cast<int16_t>(hn::GetLane(hn::SumOfLanes(di, sum)));
        }
    }
}

// ---- row helpers ----

float DotF32(const float* a, const float* b, int64_t n) {
    const DF df;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
    VF s0 = hn::Zero(df), s1 = hn::Zero(df);
    int64_t i = 0;
    for (; i + 2 * lanes <= n; i += 2 * lanes) {
        s0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), s0);
        s1 = hn::MulAdd(hn::LoadU(df, a + i + lanes), hn::LoadU(df, b + i + lanes), s1);
    }
    for (; i + lanes <= n; i += lanes) s0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), s0);
    float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(s0, s1)));
    for (; i < n; ++i) sum += a[i] * b[i];
    return sum;
}

void AxpyF32(float* y, float a, const float* x, int64_t n) {
    const DF df;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
    const VF va = hn::Set(df, a);
    int64_t i = 0;
    for (; i + lanes <= n; i += lanes) hn::StoreU(hn::MulAdd(va, hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, y + i);
    for (; i < n; ++i) y[i] += a * x[i];
}

void ScaleF32(float* y, float a, int64_t n) {
    const DF df;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
    int64_t i = 0;
    for (; i + lanes <= n; i += lanes) hn::StoreU(hn::Mul(hn::LoadU(df, y + i), hn::Set(df, a)), df, y + i);
    for (; i < n; ++i) y[i] *= a;
}

void FillFloat(KernelTable* t) {
    t->target = hwy::TargetName(HWY_TARGET);
    const auto set = [t](DType type, DotTileFn fn) {
        t->dot[static_cast<uint32_t>(type)] = fn;
        t->act[static_cast<uint32_t>(type)] = ActFormat::F32;
    };
    set(DType::F32, &dot_tile<float>);
    set(DType::F16, &dot_tile<hwy::float16_t>);
    set(DType::BF16, &dot_tile<hwy::bfloat16_t>);
    t->quantize_q8_0 = QuantizeQ8_0;
    t->quantize_q8_K = QuantizeQ8_K;
    t->dot_f32 = DotF32;
    t->axpy_f32 = AxpyF32;
    t->scale_f32 = ScaleF32;
}

#endif  // HWY_TARGET == HWY_SCALAR

}  // namespace tessera::cpu::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu::kernels {

HWY_EXPORT(FillFloat);

void detail::fill_float_kernels(KernelTable* t) { HWY_DYNAMIC_DISPATCH(FillFloat)(t); }

}  // namespace tessera::cpu::kernels
#endif
