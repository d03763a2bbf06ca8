// Reference conversions for the plain float types (F32, F16, BF16) and the 32-element
// block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1), plus the type-dispatching row entry
// points. Layouts: tensor/quant/blocks.h.
#include <cmath>
#include <cstring>
#include <string>

#include "tensor/error.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"
#include "tensor/quant/rounding.h"

namespace tessera::quant {
namespace {


// The element of largest magnitude, with its sign (0 for an all-zero block).
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

inline void min_max(const float* x, int n, float* lo, float* hi) {
    float mn = x[0];
    float mx = x[0];
    for (int i = 1; i < n; ++i) {
        mn = std::fmin(mn, x[i]);
        mx = std::fmax(mx, x[i]);
    }
    *lo = mn;
    *hi = mx;
}

inline float inverse_or_zero(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

// Q5's fifth bits: bit e of the 4 qh bytes read as a little-endian u32. Assembled byte by
// byte so the bit order does not depend on the host's endianness.
inline uint32_t load_qh(const uint8_t qh[4]) {
    return static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 |
           static_cast<uint32_t>(qh[2]) << 16 | static_cast<uint32_t>(qh[3]) << 24;
}

inline void store_qh(uint32_t bits, uint8_t qh[4]) {
    for (int k = 0; k < 4; ++k) qh[k] = static_cast<uint8_t>(bits >> (8 * k));
}

// Nibble order shared by Q4_x/Q5_x: byte j holds element j (low) and j + 16 (high).
constexpr int kHalf = kQK / 2;

}  // namespace

// ---- plain floats ----

void quantize_row_f16_ref(const float* x, uint16_t* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

void dequantize_row_f16(const uint16_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}

void quantize_row_bf16_ref(const float* x, uint16_t* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_bf16(x[i]);
}

void dequantize_row_bf16(const uint16_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(x[i]);
}

// ---- Q4_0: x = d * (q - 8) ----
// The largest magnitude maps to q - 8 = -8, the level without a positive twin, so the
// block keeps one more level on that element's side. q is found with the fp16-rounded d,
// the one dequantization will use.

void quantize_row_q4_0_ref(const float* x, block_q4_0* y, int64_t n) {
    const int64_t nb = n / kQK;
    for (int64_t b = 0; b < nb; ++b, x += kQK) {
        const uint16_t dh = fp32_to_fp16(signed_absmax(x, kQK) / -8.0f);
        const float id = inverse_or_zero(fp16_to_fp32(dh));
        y[b].d = dh;
        for (int j = 0; j < kHalf; ++j) {
            const int lo = round_clamped(x[j] * id, -8, 7) + 8;
            const int hi = round_clamped(x[j + kHalf] * id, -8, 7) + 8;
            y[b].qs[j] = static_cast<uint8_t>(lo | hi << 4);
        }
    }
}

void dequantize_row_q4_0(const block_q4_0* x, float* y, int64_t n) {
    const int64_t nb = n / kQK;
    for (int64_t b = 0; b < nb; ++b, y += kQK) {
        const float d = fp16_to_fp32(x[b].d);
        for (int j = 0; j < kHalf; ++j) {
            y[j] = static_cast<float>((x[b].qs[j] & 0x0f) - 8) * d;
            y[j + kHalf] = static_cast<float>((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

// ---- Q4_1: x = d * q + m, q in [0, 15], m the block minimum ----

void quantize_row_q4_1_ref(const float* x, block_q4_1* y, int64_t n) {
    const int64_t nb = n / kQK;
    for (int64_t b = 0; b < nb; ++b, x += kQK) {
        float lo = 0.0f;
        float hi = 0.0f;
        min_max(x, kQK, &lo, &hi);
        const uint16_t dh = fp32_to_fp16((hi - lo) / 15.0f);
        const uint16_t mh = fp32_to_fp16(lo);
        const float id = inverse_or_zero(fp16_to_fp32(dh));
        const float m = fp16_to_fp32(mh);
        y[b].d = dh;
        y[b].m = mh;
        for (int j = 0; j < kHalf; ++j) {
            const int q0 = round_clamped((x[j] - m) * id, 0, 15);
            const int q1 = round_clamped((x[j + kHalf] - m) * id, 0, 15);
            y[b].qs[j] = static_cast<uint8_t>(q0 | q1 << 4);
        }
    }
}

void dequantize_row_q4_1(const block_q4_1* x, float* y, int64_t n) {
    const int64_t nb = n / kQK;
    for (int64_t b = 0; b < nb; ++b, y += kQK) {
        const float d = fp16_to_fp32(x[b].d);
        const float m = fp16_to_fp32(x[b].m);
        for (int j = 0; j < kHalf; ++j) {
            y[j] = static_cast<float>(x[b].qs[j] & 0x0f) * d + m;
            y[j + kHalf] = static_cast<float>(x[b].qs[j] >> 4) * d + m;
        }
    }
}

// ---- Q5_0: x = d * (q - 16), q = nibble | (bit e of qh) << 4 ----

void quantize_row_q5_0_ref(const float* x, block_q5_0* y, int64_t n) {
    const int64_t nb = n / kQK;
    for (int64_t b = 0; b < nb; ++b, x += kQK) {
        const uint16_t dh = fp32_to_fp16(signed_absmax(x, kQK) / -16.0f);
        const float id = inverse_or_zero(fp16_to_fp32(dh));
        y[b].d = dh;
        uint32_t qh = 0;
        for (int j = 0; j < kHalf; ++j) {
            const int q0 = round_clamped(x[j] * id, -16, 15) + 16;
            const int q1 = round_clamped(x[j + kHalf] * id, -16, 15) + 16;
            y[b].qs[j] = static_cast<uint8_t>((q0 & 0x0f) | (q1 & 0x0f) << 4);
            qh |= static_cast<uint32_t>(q0 >> 4) << j;
            qh |= static_cast<uint32_t>(q1 >> 4) << (j + kHalf);
        }
        store_qh(qh, y[b].qh);
    }
}

void dequantize_row_q5_0(const block_q5_0* x, float* y, int64_t n) {
    const int64_t nb = n / kQK;
    for (int64_t b = 0; b < nb; ++b, y += kQK) {
        const float d = fp16_to_fp32(x[b].d);
        const uint32_t qh = load_qh(x[b].qh);
        for (int j = 0; j < kHalf; ++j) {
            const int q0 = (x[b].qs[j] & 0x0f) | static_cast<int>((qh >> j) & 1u) << 4;
            const int q1 = (x[b].qs[j] >> 4) | static_cast<int>((qh >> (j + kHalf)) & 1u) << 4;
            y[j] = static_cast<float>(q0 - 16) * d;
            y[j + kHalf] = static_cast<float>(q1 - 16) * d;
        }
    }
}

// ---- Q5_1: x = d * q + m, q in [0, 31], fifth bits as Q5_0 ----

void quantize_row_q5_1_ref(const float* x, block_q5_1* y, int64_t n) {
    const int64_t nb = n / kQK;
    for (int64_t b = 0; b < nb; ++b, x += kQK) {
        float lo = 0.0f;
        float hi = 0.0f;
        min_max(x, kQK, &lo, &hi);
        const uint16_t dh = fp32_to_fp16((hi - lo) / 31.0f);
        const uint16_t mh = fp32_to_fp16(lo);
        const float id = inverse_or_zero(fp16_to_fp32(dh));
        const float m = fp16_to_fp32(mh);
        y[b].d = dh;
        y[b].m = mh;
        uint32_t qh = 0;
        for (int j = 0; j < kHalf; ++j) {
            const int q0 = round_clamped((x[j] - m) * id, 0, 31);
            const int q1 = round_clamped((x[j + kHalf] - m) * id, 0, 31);
            y[b].qs[j] = static_cast<uint8_t>((q0 & 0x0f) | (q1 & 0x0f) << 4);
            qh |= static_cast<uint32_t>(q0 >> 4) << j;
            qh |= static_cast<uint32_t>(q1 >> 4) << (j + kHalf);
        }
        store_qh(qh, y[b].qh);
    }
}

void dequantize_row_q5_1(const block_q5_1* x, float* y, int64_t n) {
    const int64_t nb = n / kQK;
    for (int64_t b = 0; b < nb; ++b, y += kQK) {
        const float d = fp16_to_fp32(x[b].d);
        const float m = fp16_to_fp32(x[b].m);
        const uint32_t qh = load_qh(x[b].qh);
        for (int j = 0; j < kHalf; ++j) {
            const int q0 = (x[b].qs[j] & 0x0f) | static_cast<int>((qh >> j) & 1u) << 4;
            const int q1 = (x[b].qs[j] >> 4) | static_cast<int>((qh >> (j + kHalf)) & 1u) << 4;
            y[j] = static_cast<float>(q0) * d + m;
            y[j + kHalf] = static_cast<float>(q1) * d + m;
        }
    }
}

// ---- Q8_0 / Q8_1: x = d * q, q in [-127, 127] (-128 unused, so the range is symmetric) ----

void quantize_row_q8_0_ref(const float* x, block_q8_0* y, int64_t n) {
    const int64_t nb = n / kQK;
    for (int64_t b = 0; b < nb; ++b, x += kQK) {
        const uint16_t dh = fp32_to_fp16(std::fabs(signed_absmax(x, kQK)) / 127.0f);
        const float id = inverse_or_zero(fp16_to_fp32(dh));
        y[b].d = dh;
        for (int j = 0; j < kQK; ++j)
            y[b].qs[j] = static_cast<int8_t>(round_clamped(x[j] * id, -127, 127));
    }
}

void dequantize_row_q8_0(const block_q8_0* x, float* y, int64_t n) {
    const int64_t nb = n / kQK;
    for (int64_t b = 0; b < nb; ++b, y += kQK) {
        const float d = fp16_to_fp32(x[b].d);
        for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
    }
}

void quantize_row_q8_1_ref(const float* x, block_q8_1* y, int64_t n) {
    const int64_t nb = n / kQK;
    for (int64_t b = 0; b < nb; ++b, x += kQK) {
        const uint16_t dh = fp32_to_fp16(std::fabs(signed_absmax(x, kQK)) / 127.0f);
        const float d = fp16_to_fp32(dh);
        const float id = inverse_or_zero(d);
        int sum = 0;
        for (int j = 0; j < kQK; ++j) {
            const int q = round_clamped(x[j] * id, -127, 127);
            y[b].qs[j] = static_cast<int8_t>(q);
            sum += q;
        }
        y[b].d = dh;
        // s uses the stored d, so d * sum(qs) and s agree up to s's own fp16 rounding.
        y[b].s = fp32_to_fp16(d * static_cast<float>(sum));
    }
}

void dequantize_row_q8_1(const block_q8_1* x, float* y, int64_t n) {
    const int64_t nb = n / kQK;
    for (int64_t b = 0; b < nb; ++b, y += kQK) {
        const float d = fp16_to_fp32(x[b].d);
        for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
    }
}

// ---- dispatch ----

namespace {

// "Q4_K", or "unknown type id 4"; only built on the way to a throw.
std::string type_label(DType t) {
    const TypeTraits& tr = type_traits(t);
    return tr.known ? std::string(tr.name)
                    : "unknown type id " + std::to_string(static_cast<uint32_t>(t));
}

void check_row(DType t, int64_t n, const char* what) {
    const TypeTraits& tr = type_traits(t);
    if (!tr.has_reference) {
        throw Error(std::string(what) + ": type " + type_label(t) +
                        " has no reference conversion to or from F32",
                    ErrorKind::Unsupported);
    }
    if (n < 0 || n % tr.block_size != 0) {
        throw Error(std::string(what) + ": row of " + std::to_string(n) + " elements of type " +
                    type_label(t) + "; expected a non-negative multiple of its block size " +
                    std::to_string(tr.block_size));
    }
}

[[noreturn]] void missing_case(DType t, const char* what) {
    throw Error(std::string(what) + ": type " + type_label(t) +
                    " is marked has_reference but has no conversion here",
                ErrorKind::Internal);
}

}  // namespace

bool has_reference(DType t) { return type_traits(t).has_reference; }

void quantize_row(DType t, const float* x, void* dst, int64_t n) {
    check_row(t, n, "quantize_row");
    if (n == 0) return;  // nothing to do, and memcpy must not see null pointers
    switch (t) {
        case DType::F32: std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float)); return;
        case DType::F16: quantize_row_f16_ref(x, static_cast<uint16_t*>(dst), n); return;
        case DType::BF16: quantize_row_bf16_ref(x, static_cast<uint16_t*>(dst), n); return;
        case DType::Q4_0: quantize_row_q4_0_ref(x, static_cast<block_q4_0*>(dst), n); return;
        case DType::Q4_1: quantize_row_q4_1_ref(x, static_cast<block_q4_1*>(dst), n); return;
        case DType::Q5_0: quantize_row_q5_0_ref(x, static_cast<block_q5_0*>(dst), n); return;
        case DType::Q5_1: quantize_row_q5_1_ref(x, static_cast<block_q5_1*>(dst), n); return;
        case DType::Q8_0: quantize_row_q8_0_ref(x, static_cast<block_q8_0*>(dst), n); return;
        case DType::Q8_1: quantize_row_q8_1_ref(x, static_cast<block_q8_1*>(dst), n); return;
        case DType::Q2_K: quantize_row_q2_K_ref(x, static_cast<block_q2_K*>(dst), n); return;
        case DType::Q3_K: quantize_row_q3_K_ref(x, static_cast<block_q3_K*>(dst), n); return;
        case DType::Q4_K: quantize_row_q4_K_ref(x, static_cast<block_q4_K*>(dst), n); return;
        case DType::Q5_K: quantize_row_q5_K_ref(x, static_cast<block_q5_K*>(dst), n); return;
        case DType::Q6_K: quantize_row_q6_K_ref(x, static_cast<block_q6_K*>(dst), n); return;
        case DType::Q8_K: quantize_row_q8_K_ref(x, static_cast<block_q8_K*>(dst), n); return;
        default: missing_case(t, "quantize_row");
    }
}

void dequantize_row(DType t, const void* src, float* y, int64_t n) {
    check_row(t, n, "dequantize_row");
    if (n == 0) return;
    switch (t) {
        case DType::F32: std::memcpy(y, src, static_cast<size_t>(n) * sizeof(float)); return;
        case DType::F16: dequantize_row_f16(static_cast<const uint16_t*>(src), y, n); return;
        case DType::BF16: dequantize_row_bf16(static_cast<const uint16_t*>(src), y, n); return;
        case DType::Q4_0: dequantize_row_q4_0(static_cast<const block_q4_0*>(src), y, n); return;
        case DType::Q4_1: dequantize_row_q4_1(static_cast<const block_q4_1*>(src), y, n); return;
        case DType::Q5_0: dequantize_row_q5_0(static_cast<const block_q5_0*>(src), y, n); return;
        case DType::Q5_1: dequantize_row_q5_1(static_cast<const block_q5_1*>(src), y, n); return;
        case DType::Q8_0: dequantize_row_q8_0(static_cast<const block_q8_0*>(src), y, n); return;
        case DType::Q8_1: dequantize_row_q8_1(static_cast<const block_q8_1*>(src), y, n); return;
        case DType::Q2_K: dequantize_row_q2_K(static_cast<const block_q2_K*>(src), y, n); return;
        case DType::Q3_K: dequantize_row_q3_K(static_cast<const block_q3_K*>(src), y, n); return;
        case DType::Q4_K: dequantize_row_q4_K(static_cast<const block_q4_K*>(src), y, n); return;
        case DType::Q5_K: dequantize_row_q5_K(static_cast<const block_q5_K*>(src), y, n); return;
        case DType::Q6_K: dequantize_row_q6_K(static_cast<const block_q6_K*>(src), y, n); return;
        case DType::Q8_K: dequantize_row_q8_K(static_cast<const block_q8_K*>(src), y, n); return;
        default: missing_case(t, "dequantize_row");
    }
}

}  // namespace tessera::quant
