// Reference conversions for the 256-element k-quant super-blocks (Q2_K, Q3_K, Q4_K, Q5_K,
// Q6_K, Q8_K). Layouts and bit orders: tensor/quant/blocks.h.
//
// Quantization is two-level: each sub-block (16 or 32 elements) first gets its own float
// scale (and min) by a least-squares search, then those are themselves quantized against
// one fp16 super-block scale, and the elements are finally rounded against the scales the
// decoder will actually see. Dequantization repeats ggml's float operations in ggml's order
// so the results are bit-identical.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "tensor/fp16.h"
#include "tensor/quant/quant.h"
#include "tensor/quant/rounding.h"

namespace tessera::quant {
namespace {


inline float inverse_or_zero(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

// The value of largest magnitude, with its sign (0 if all are zero).
inline float signed_absmax(const float* x, int n) {
    float amax = 0.0f;
    float vmax = 0.0f;
    for (int i = 0; i < n; ++i) {
        const float a = std::fabs(x[i]);
        if (a > amax) {
            amax = a;
            vmax = x[i];
        }
    }
    return vmax;
}

constexpr int kMaxSub = 32;      // largest sub-block, for the stack scratch of the fits
constexpr int kGridSteps = 10;   // starting scales tried: nmax +- 0.1 * (0..kGridSteps)
constexpr int kRefineIters = 6;  // alternations of "round L" and "solve scale" after that

// ---- sub-block fits ----

// Least squares for x[i] ~= a * L[i] - m with L fixed: returns the squared error and sets
// a >= 0, m >= 0. The formats can only subtract a min, so an optimum with m < 0 (all
// values positive) is replaced by the best fit through the origin.
float solve_affine(const float* x, const uint8_t* L, int n, float* a, float* m) {
    float sl = 0.0f, sll = 0.0f, sx = 0.0f, slx = 0.0f;
    for (int i = 0; i < n; ++i) {
        const float l = static_cast<float>(L[i]);
        sl += l;
        sll += l * l;
        sx += x[i];
        slx += l * x[i];
    }
    const float fn = static_cast<float>(n);
    const float det = fn * sll - sl * sl;  // exact: small integers
    float scale = 0.0f;
    float offset = sx / fn;  // all L equal: the best constant
    if (det > 0.0f) {
        scale = (fn * slx - sl * sx) / det;
        offset = (sll * sx - sl * slx) / det;
    }
    if (offset > 0.0f) {
        offset = 0.0f;
        scale = sll > 0.0f ? slx / sll : 0.0f;
    }
    if (scale < 0.0f) scale = 0.0f;  // cannot happen with L monotone in x; keep it valid
    float err = 0.0f;
    for (int i = 0; i < n; ++i) {
        const float diff = scale * static_cast<float>(L[i]) + offset - x[i];
        err += diff * diff;
    }
    *a = scale;
    *m = -offset;
    return err;
}

// Fits x[0..n) ~= scale * L - min with L in [0, nmax] (Q2_K, Q4_K, Q5_K sub-blocks).
// Tries grids that map [min(x, 0), max(x)] onto slightly fewer or more than nmax steps,
// solves each for the least-squares scale and min, keeps the best, then alternates
// re-rounding L and re-solving while the error drops.
void fit_affine(const float* x, int n, int nmax, uint8_t* L, float* scale, float* min) {
    std::memset(L, 0, static_cast<size_t>(n));  // stays valid even if every fit is NaN
    float lo = x[0];
    float hi = x[0];
    for (int i = 1; i < n; ++i) {
        lo = std::fmin(lo, x[i]);
        hi = std::fmax(hi, x[i]);
    }
    if (lo > 0.0f) lo = 0.0f;  // a positive minimum cannot be stored: the min only subtracts
    if (!(hi > lo)) {          // constant non-positive block (all zero included), or NaN
        *scale = 0.0f;
        *min = std::isfinite(lo) ? -lo : 0.0f;
        return;
    }

    uint8_t trial[kMaxSub];
    float best_err = std::numeric_limits<float>::infinity();
    float best_a = 0.0f;
    float best_m = 0.0f;
    for (int k = -kGridSteps; k <= kGridSteps; ++k) {
        const float iscale = (static_cast<float>(nmax) + 0.1f * static_cast<float>(k)) / (hi - lo);
        for (int i = 0; i < n; ++i)
            trial[i] = static_cast<uint8_t>(round_clamped(iscale * (x[i] - lo), 0, nmax));
        float a = 0.0f;
        float m = 0.0f;
        const float err = solve_affine(x, trial, n, &a, &m);
        if (err < best_err) {
            best_err = err;
            best_a = a;
            best_m = m;
            std::memcpy(L, trial, static_cast<size_t>(n));
        }
    }
    for (int it = 0; it < kRefineIters && best_a > 0.0f; ++it) {
        const float inv = 1.0f / best_a;
        bool changed = false;
        for (int i = 0; i < n; ++i) {
            trial[i] = static_cast<uint8_t>(round_clamped((x[i] + best_m) * inv, 0, nmax));
            changed |= trial[i] != L[i];
        }
        if (!changed) break;
        float a = 0.0f;
        float m = 0.0f;
        const float err = solve_affine(x, trial, n, &a, &m);
        if (!(err < best_err)) break;
        best_err = err;
        best_a = a;
        best_m = m;
        std::memcpy(L, trial, static_cast<size_t>(n));
    }
    *scale = best_a;
    *min = best_m;
}

// Fits x[0..n) ~= scale * L with L in [-nmax, nmax - 1] (Q3_K: nmax 4, Q6_K: nmax 32).
// The scale may be negative: the largest magnitude goes to whichever end of the range
// fits best, which usually is -nmax, the end with the extra level. For a fixed L the
// best scale is sum(x L) / sum(L^2) and the error is sum(x^2) - sum(x L)^2 / sum(L^2), so
// candidates are ranked by sum(x L)^2 / sum(L^2).
float fit_symmetric(const float* x, int n, int nmax, int8_t* L) {
    std::memset(L, 0, static_cast<size_t>(n));  // stays valid even if every fit is NaN
    const float vmax = signed_absmax(x, n);
    if (vmax == 0.0f || !std::isfinite(vmax)) return 0.0f;

    int8_t trial[kMaxSub];
    float best_score = -1.0f;
    float best_a = 0.0f;
    auto score_trial = [&]() {
        float sxl = 0.0f;
        float sll = 0.0f;
        for (int i = 0; i < n; ++i) {
            const float l = static_cast<float>(trial[i]);
            sxl += x[i] * l;
            sll += l * l;
        }
        if (!(sll > 0.0f)) return false;
        const float score = sxl * sxl / sll;
        if (!(score > best_score)) return false;
        best_score = score;
        best_a = sxl / sll;
        std::memcpy(L, trial, static_cast<size_t>(n));
        return true;
    };

    for (int k = -kGridSteps; k <= kGridSteps; ++k) {
        const float step = 0.1f * static_cast<float>(k);
        // vmax towards -nmax, then towards nmax - 1.
        for (const float target :
             {-static_cast<float>(nmax) + step, static_cast<float>(nmax - 1) + step}) {
            const float iscale = target / vmax;
            for (int i = 0; i < n; ++i)
                trial[i] = static_cast<int8_t>(round_clamped(iscale * x[i], -nmax, nmax - 1));
            score_trial();
        }
    }
    for (int it = 0; it < kRefineIters && best_a != 0.0f; ++it) {
        const float inv = 1.0f / best_a;
        bool changed = false;
        for (int i = 0; i < n; ++i) {
            trial[i] = static_cast<int8_t>(round_clamped(x[i] * inv, -nmax, nmax - 1));
            changed |= trial[i] != L[i];
        }
        if (!changed || !score_trial()) break;
    }
    return best_a;
}

// The largest of n non-negative values.
inline float max_of(const float* v, int n) {
    float m = 0.0f;
    for (int i = 0; i < n; ++i) m = std::fmax(m, v[i]);
    return m;
}

// Quantizes non-negative per-sub-block scales (or mins) to integers in [0, qmax] against
// one fp16 super-block scale; returns that scale's fp16 bits.
uint16_t quantize_unsigned_scales(const float* v, int n, int qmax, int* q) {
    const uint16_t dh = fp32_to_fp16(max_of(v, n) / static_cast<float>(qmax));
    const float id = inverse_or_zero(fp16_to_fp32(dh));
    for (int i = 0; i < n; ++i) q[i] = round_clamped(v[i] * id, 0, qmax);
    return dh;
}

// Signed per-sub-block scales to integers in [-qlim, qlim - 1]: the largest magnitude
// maps to -qlim (the extra level), as for the elements.
uint16_t quantize_signed_scales(const float* v, int n, int qlim, int* q) {
    const uint16_t dh = fp32_to_fp16(signed_absmax(v, n) / -static_cast<float>(qlim));
    const float id = inverse_or_zero(fp16_to_fp32(dh));
    for (int i = 0; i < n; ++i) q[i] = round_clamped(v[i] * id, -qlim, qlim - 1);
    return dh;
}

// Q4_K/Q5_K: the 8 (scale, min) pairs of 6 bits in 12 bytes (layout in blocks.h).
void pack_scale_min_k4(const int* sc, const int* mn, uint8_t out[12]) {
    for (int j = 0; j < 4; ++j) {
        out[j] = static_cast<uint8_t>((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
        out[j + 4] = static_cast<uint8_t>((mn[j] & 63) | (mn[j + 4] >> 4) << 6);
        out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
}

inline void unpack_scale_min_k4(int j, const uint8_t s[12], int* sc, int* mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

// Q3_K: 16 six-bit values (already offset by 32) in 12 bytes (layout in blocks.h).
void pack_scales_q3_K(const int* v, uint8_t out[12]) {
    for (int k = 0; k < 8; ++k) out[k] = static_cast<uint8_t>((v[k] & 15) | (v[k + 8] & 15) << 4);
    for (int i = 0; i < 4; ++i) {
        int top = 0;
        for (int g = 0; g < 4; ++g) top |= ((v[4 * g + i] >> 4) & 3) << (2 * g);
        out[8 + i] = static_cast<uint8_t>(top);
    }
}

inline void unpack_scales_q3_K(const uint8_t s[12], int* v) {
    for (int k = 0; k < 16; ++k) {
        const int low = k < 8 ? (s[k] & 15) : (s[k - 8] >> 4);
        const int top = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
        v[k] = low | top << 4;
    }
}

// Final step of the affine k-quants: with the super-block scales fixed (df, mf), tries the
// integer sub-block scale and min one step either side of their rounded values, rounds the
// elements against each pair exactly as the decoder will see it (d * sc, dmin * m), and
// keeps the pair with the least squared error. Sets the final L.
void settle_scale_min(const float* x, int n, int nmax, float df, float mf, int qmax, int* sc,
                      int* mn, uint8_t* L) {
    const int sc0 = *sc;
    const int mn0 = *mn;
    float best_err = std::numeric_limits<float>::infinity();
    for (int s = std::max(sc0 - 1, 0); s <= std::min(sc0 + 1, qmax); ++s) {
        for (int m = std::max(mn0 - 1, 0); m <= std::min(mn0 + 1, qmax); ++m) {
            const float ds = df * static_cast<float>(s);
            const float dm = mf * static_cast<float>(m);
            const float inv = inverse_or_zero(ds);
            float err = 0.0f;
            for (int i = 0; i < n; ++i) {
                const int q = round_clamped((x[i] + dm) * inv, 0, nmax);
                const float diff = ds * static_cast<float>(q) - dm - x[i];
                err += diff * diff;
            }
            if (err < best_err) {
                best_err = err;
                *sc = s;
                *mn = m;
            }
        }
    }
    const float ds = df * static_cast<float>(*sc);
    const float dm = mf * static_cast<float>(*mn);
    const float inv = inverse_or_zero(ds);
    for (int i = 0; i < n; ++i)
        L[i] = static_cast<uint8_t>(round_clamped((x[i] + dm) * inv, 0, nmax));
}

// Q4_K and Q5_K share everything but the fifth bit: fits 8 sub-blocks of 32 with
// L in [0, nmax], quantizes the scales and mins to 6 bits, and leaves the final L.
void quantize_super_k4(const float* x, int nmax, uint16_t* d, uint16_t* dmin, uint8_t scales[12],
                       uint8_t* L) {
    constexpr int kSub = 32;
    float sub_scale[8];
    float sub_min[8];
    for (int j = 0; j < 8; ++j)
        fit_affine(x + kSub * j, kSub, nmax, L + kSub * j, &sub_scale[j], &sub_min[j]);
    int sc[8];
    int mn[8];
    *d = quantize_unsigned_scales(sub_scale, 8, 63, sc);
    *dmin = quantize_unsigned_scales(sub_min, 8, 63, mn);
    const float df = fp16_to_fp32(*d);
    const float mf = fp16_to_fp32(*dmin);
    for (int j = 0; j < 8; ++j)
        settle_scale_min(x + kSub * j, kSub, nmax, df, mf, 63, &sc[j], &mn[j], L + kSub * j);
    pack_scale_min_k4(sc, mn, scales);
}

}  // namespace

// ---- Q2_K: x = d * sc * q - dmin * m per 16 elements, q in [0, 3] ----

void quantize_row_q2_K_ref(const float* x, block_q2_K* y, int64_t n) {
    constexpr int kSub = 16;
    const int64_t nb = n / kQKK;
    for (int64_t b = 0; b < nb; ++b, x += kQKK) {
        uint8_t L[kQKK];
        float sub_scale[16];
        float sub_min[16];
        for (int j = 0; j < 16; ++j)
            fit_affine(x + kSub * j, kSub, 3, L + kSub * j, &sub_scale[j], &sub_min[j]);
        int sc[16];
        int mn[16];
        y[b].d = quantize_unsigned_scales(sub_scale, 16, 15, sc);
        y[b].dmin = quantize_unsigned_scales(sub_min, 16, 15, mn);
        const float df = fp16_to_fp32(y[b].d);
        const float mf = fp16_to_fp32(y[b].dmin);
        for (int j = 0; j < 16; ++j) {
            settle_scale_min(x + kSub * j, kSub, 3, df, mf, 15, &sc[j], &mn[j], L + kSub * j);
            y[b].scales[j] = static_cast<uint8_t>(sc[j] | mn[j] << 4);
        }
        // Element 128*h + 32*j + l lives in bits 2j..2j+1 of qs[32*h + l].
        std::memset(y[b].qs, 0, sizeof(y[b].qs));
        for (int e = 0; e < kQKK; ++e) {
            const int h = e / 128, j = (e % 128) / 32, l = e % 32;
            y[b].qs[32 * h + l] |= static_cast<uint8_t>(L[e] << (2 * j));
        }
    }
}

void dequantize_row_q2_K(const block_q2_K* x, float* y, int64_t n) {
    const int64_t nb = n / kQKK;
    for (int64_t b = 0; b < nb; ++b) {
        const float d = fp16_to_fp32(x[b].d);
        const float dmin = fp16_to_fp32(x[b].dmin);
        const uint8_t* q = x[b].qs;
        int is = 0;
        for (int h = 0; h < 2; ++h, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                // Two sub-blocks of 16 per shift: bytes 0..15 then 16..31 of this half.
                for (int half = 0; half < 2; ++half, ++is) {
                    const uint8_t sc = x[b].scales[is];
                    const float dl = d * static_cast<float>(sc & 15);
                    const float ml = dmin * static_cast<float>(sc >> 4);
                    for (int l = 0; l < 16; ++l)
                        *y++ = dl * static_cast<float>((q[16 * half + l] >> shift) & 3) - ml;
                }
            }
        }
    }
}

// ---- Q3_K: x = d * (sc - 32) * (q - 4) per 16 elements, q in [0, 7] ----

void quantize_row_q3_K_ref(const float* x, block_q3_K* y, int64_t n) {
    constexpr int kSub = 16;
    const int64_t nb = n / kQKK;
    for (int64_t b = 0; b < nb; ++b, x += kQKK) {
        int8_t L[kQKK];
        float sub_scale[16];
        for (int j = 0; j < 16; ++j)
            sub_scale[j] = fit_symmetric(x + kSub * j, kSub, 4, L + kSub * j);
        int sc[16];
        y[b].d = quantize_signed_scales(sub_scale, 16, 32, sc);
        const float df = fp16_to_fp32(y[b].d);
        int stored[16];
        for (int j = 0; j < 16; ++j) {
            stored[j] = sc[j] + 32;
            const float inv = inverse_or_zero(df * static_cast<float>(sc[j]));
            for (int i = 0; i < kSub; ++i) {
                const int e = kSub * j + i;
                L[e] = static_cast<int8_t>(round_clamped(x[e] * inv, -4, 3));
            }
        }
        pack_scales_q3_K(stored, y[b].scales);
        // v = q in [0, 7]: low two bits as Q2_K, the third in hmask (set = no -4).
        std::memset(y[b].qs, 0, sizeof(y[b].qs));
        std::memset(y[b].hmask, 0, sizeof(y[b].hmask));
        for (int e = 0; e < kQKK; ++e) {
            const int v = L[e] + 4;
            const int h = e / 128, j = (e % 128) / 32, l = e % 32;
            y[b].qs[32 * h + l] |= static_cast<uint8_t>((v & 3) << (2 * j));
            y[b].hmask[l] |= static_cast<uint8_t>((v >> 2) << (4 * h + j));
        }
    }
}

void dequantize_row_q3_K(const block_q3_K* x, float* y, int64_t n) {
    const int64_t nb = n / kQKK;
    for (int64_t b = 0; b < nb; ++b) {
        const float d = fp16_to_fp32(x[b].d);
        int sc[16];
        unpack_scales_q3_K(x[b].scales, sc);
        const uint8_t* q = x[b].qs;
        const uint8_t* hm = x[b].hmask;
        int is = 0;
        int bit = 0;  // hmask bit: 0..3 in the first 128 elements, 4..7 in the second
        for (int h = 0; h < 2; ++h, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, ++bit) {
                for (int half = 0; half < 2; ++half, ++is) {
                    const float dl = d * static_cast<float>(sc[is] - 32);
                    for (int l = 16 * half; l < 16 * half + 16; ++l) {
                        const int low = (q[l] >> shift) & 3;
                        const int sub = (hm[l] >> bit) & 1 ? 0 : 4;
                        *y++ = dl * static_cast<float>(low - sub);
                    }
                }
            }
        }
    }
}

// ---- Q4_K: x = d * sc * q - dmin * m per 32 elements, q in [0, 15] ----

void quantize_row_q4_K_ref(const float* x, block_q4_K* y, int64_t n) {
    const int64_t nb = n / kQKK;
    for (int64_t b = 0; b < nb; ++b, x += kQKK) {
        uint8_t L[kQKK];
        quantize_super_k4(x, 15, &y[b].d, &y[b].dmin, y[b].scales, L);
        // Sub-blocks 2c and 2c+1 share bytes 32c..32c+31: low then high nibble.
        for (int c = 0; c < 4; ++c)
            for (int l = 0; l < 32; ++l)
                y[b].qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | L[64 * c + 32 + l] << 4);
    }
}

void dequantize_row_q4_K(const block_q4_K* x, float* y, int64_t n) {
    const int64_t nb = n / kQKK;
    for (int64_t b = 0; b < nb; ++b) {
        const float d = fp16_to_fp32(x[b].d);
        const float dmin = fp16_to_fp32(x[b].dmin);
        const uint8_t* q = x[b].qs;
        for (int c = 0; c < 4; ++c, q += 32) {
            int sc = 0, mn = 0;
            unpack_scale_min_k4(2 * c, x[b].scales, &sc, &mn);
            const float d1 = d * static_cast<float>(sc);
            const float m1 = dmin * static_cast<float>(mn);
            unpack_scale_min_k4(2 * c + 1, x[b].scales, &sc, &mn);
            const float d2 = d * static_cast<float>(sc);
            const float m2 = dmin * static_cast<float>(mn);
            for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 15) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
        }
    }
}

// ---- Q5_K: as Q4_K with q in [0, 31]; bit (e / 32) of qh[e % 32] is q's fifth bit ----

void quantize_row_q5_K_ref(const float* x, block_q5_K* y, int64_t n) {
    const int64_t nb = n / kQKK;
    for (int64_t b = 0; b < nb; ++b, x += kQKK) {
        uint8_t L[kQKK];
        quantize_super_k4(x, 31, &y[b].d, &y[b].dmin, y[b].scales, L);
        std::memset(y[b].qh, 0, sizeof(y[b].qh));
        for (int c = 0; c < 4; ++c) {
            for (int l = 0; l < 32; ++l) {
                const int lo = L[64 * c + l];
                const int hi = L[64 * c + 32 + l];
                y[b].qs[32 * c + l] = static_cast<uint8_t>((lo & 15) | (hi & 15) << 4);
                y[b].qh[l] |= static_cast<uint8_t>((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
            }
        }
    }
}

void dequantize_row_q5_K(const block_q5_K* x, float* y, int64_t n) {
    const int64_t nb = n / kQKK;
    for (int64_t b = 0; b < nb; ++b) {
        const float d = fp16_to_fp32(x[b].d);
        const float dmin = fp16_to_fp32(x[b].dmin);
        const uint8_t* ql = x[b].qs;
        const uint8_t* qh = x[b].qh;
        for (int c = 0; c < 4; ++c, ql += 32) {
            int sc = 0, mn = 0;
            unpack_scale_min_k4(2 * c, x[b].scales, &sc, &mn);
            const float d1 = d * static_cast<float>(sc);
            const float m1 = dmin * static_cast<float>(mn);
            unpack_scale_min_k4(2 * c + 1, x[b].scales, &sc, &mn);
            const float d2 = d * static_cast<float>(sc);
            const float m2 = dmin * static_cast<float>(mn);
            const int bit_lo = 2 * c;
            const int bit_hi = 2 * c + 1;
            for (int l = 0; l < 32; ++l) {
                const int q = (ql[l] & 15) + ((qh[l] >> bit_lo) & 1 ? 16 : 0);
                *y++ = d1 * static_cast<float>(q) - m1;
            }
            for (int l = 0; l < 32; ++l) {
                const int q = (ql[l] >> 4) + ((qh[l] >> bit_hi) & 1 ? 16 : 0);
                *y++ = d2 * static_cast<float>(q) - m2;
            }
        }
    }
}

// ---- Q6_K: x = d * sc * (q - 32) per 16 elements, q in [0, 63] ----

void quantize_row_q6_K_ref(const float* x, block_q6_K* y, int64_t n) {
    constexpr int kSub = 16;
    const int64_t nb = n / kQKK;
    for (int64_t b = 0; b < nb; ++b, x += kQKK) {
        int8_t L[kQKK];
        float sub_scale[16];
        for (int j = 0; j < 16; ++j)
            sub_scale[j] = fit_symmetric(x + kSub * j, kSub, 32, L + kSub * j);
        int sc[16];
        y[b].d = quantize_signed_scales(sub_scale, 16, 128, sc);
        const float df = fp16_to_fp32(y[b].d);
        uint8_t q[kQKK];
        for (int j = 0; j < 16; ++j) {
            y[b].scales[j] = static_cast<int8_t>(sc[j]);
            const float inv = inverse_or_zero(df * static_cast<float>(sc[j]));
            for (int i = 0; i < kSub; ++i) {
                const int e = kSub * j + i;
                q[e] = static_cast<uint8_t>(round_clamped(x[e] * inv, -32, 31) + 32);
            }
        }
        // Element 128*h + 32*k + l: low nibble or high nibble (k >= 2) of
        // ql[64*h + 32*(k&1) + l], top two bits at 2k of qh[32*h + l].
        for (int h = 0; h < 2; ++h) {
            const uint8_t* qq = q + 128 * h;
            for (int l = 0; l < 32; ++l) {
                y[b].ql[64 * h + l] = static_cast<uint8_t>((qq[l] & 15) | (qq[l + 64] & 15) << 4);
                y[b].ql[64 * h + 32 + l] =
                    static_cast<uint8_t>((qq[l + 32] & 15) | (qq[l + 96] & 15) << 4);
                y[b].qh[32 * h + l] =
                    static_cast<uint8_t>((qq[l] >> 4) | (qq[l + 32] >> 4) << 2 |
                                         (qq[l + 64] >> 4) << 4 | (qq[l + 96] >> 4) << 6);
            }
        }
    }
}

void dequantize_row_q6_K(const block_q6_K* x, float* y, int64_t n) {
    const int64_t nb = n / kQKK;
    for (int64_t b = 0; b < nb; ++b) {
        const float d = fp16_to_fp32(x[b].d);
        const uint8_t* ql = x[b].ql;
        const uint8_t* qh = x[b].qh;
        const int8_t* sc = x[b].scales;
        for (int h = 0; h < 2; ++h, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32;
                const int q2 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
                const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                // (d * scale) * q, in that order, as ggml does.
                y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
                y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
                y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
                y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
            }
        }
    }
}

// ---- Q8_K: x = d * q, q in [-127, 127], fp32 d, bsums per 16 ----

void quantize_row_q8_K_ref(const float* x, block_q8_K* y, int64_t n) {
    const int64_t nb = n / kQKK;
    for (int64_t b = 0; b < nb; ++b, x += kQKK) {
        const float d = std::fabs(signed_absmax(x, kQKK)) / 127.0f;
        const float id = inverse_or_zero(d);
        y[b].d = d;
        for (int j = 0; j < kQKK / 16; ++j) {
            int sum = 0;
            for (int i = 16 * j; i < 16 * j + 16; ++i) {
                const int q = round_clamped(x[i] * id, -127, 127);
                y[b].qs[i] = static_cast<int8_t>(q);
                sum += q;
            }
            y[b].bsums[j] = static_cast<int16_t>(sum);
        }
    }
}

void dequantize_row_q8_K(const block_q8_K* x, float* y, int64_t n) {
    const int64_t nb = n / kQKK;
    for (int64_t b = 0; b < nb; ++b, y += kQKK)
        for (int i = 0; i < kQKK; ++i) y[i] = x[b].d * static_cast<float>(x[b].qs[i]);
}

}  // namespace tessera::quant
