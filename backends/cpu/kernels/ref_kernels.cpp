// Scalar twins of the SIMD kernels (see ref_kernels.h). Integer sums per block exactly as
// the SIMD code forms them; only the order of the float additions differs.
#include "backends/cpu/kernels/ref_kernels.h"

#include "backends/cpu/kernels/kquant_scales.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace tessera::cpu::kernels::ref {

namespace {

using namespace tessera::quant;

inline float h2f(uint16_t h) { return fp16_to_fp32(h); }

// Fifth bit of element j of a Q5 block, as 0 or 16.
inline int q5_high(const uint8_t qh[4], int j) { return ((qh[j / 8] >> (j % 8)) & 1) << 4; }

// Quant j (0..31) of a Q4/Q5 block's nibbles: low nibbles are elements 0..15.
inline int nibble(const uint8_t qs[16], int j) { return j < 16 ? qs[j] & 15 : qs[j - 16] >> 4; }

float dot_q4_0(int64_t k, const void* wv, const void* xv) {
    const auto* w = static_cast<const block_q4_0*>(wv);
    const auto* y = static_cast<const block_q8_0*>(xv);
    float sum = 0.0f;
    for (int64_t b = 0; b < k / kQK; ++b) {
        int isum = 0;
        for (int j = 0; j < kQK; ++j) isum += (nibble(w[b].qs, j) - 8) * y[b].qs[j];
        sum += h2f(w[b].d) * h2f(y[b].d) * static_cast<float>(isum);
    }
    return sum;
}

float dot_q4_1(int64_t k, const void* wv, const void* xv) {
    const auto* w = static_cast<const block_q4_1*>(wv);
    const auto* y = static_cast<const block_q8_0*>(xv);
    float sum = 0.0f;
    for (int64_t b = 0; b < k / kQK; ++b) {
        int isum = 0, ysum = 0;
        for (int j = 0; j < kQK; ++j) {
            isum += nibble(w[b].qs, j) * y[b].qs[j];
            ysum += y[b].qs[j];
        }
        const float yd = h2f(y[b].d);
        sum += h2f(w[b].d) * yd * static_cast<float>(isum) + h2f(w[b].m) * yd * static_cast<float>(ysum);
    }
    return sum;
}

float dot_q5_0(int64_t k, const void* wv, const void* xv) {
    const auto* w = static_cast<const block_q5_0*>(wv);
    const auto* y = static_cast<const block_q8_0*>(xv);
    float sum = 0.0f;
    for (int64_t b = 0; b < k / kQK; ++b) {
        int isum = 0;
        for (int j = 0; j < kQK; ++j) isum += ((nibble(w[b].qs, j) | q5_high(w[b].qh, j)) - 16) * y[b].qs[j];
        sum += h2f(w[b].d) * h2f(y[b].d) * static_cast<float>(isum);
    }
    return sum;
}

float dot_q5_1(int64_t k, const void* wv, const void* xv) {
    const auto* w = static_cast<const block_q5_1*>(wv);
    const auto* y = static_cast<const block_q8_0*>(xv);
    float sum = 0.0f;
    for (int64_t b = 0; b < k / kQK; ++b) {
        int isum = 0, ysum = 0;
        for (int j = 0; j < kQK; ++j) {
            isum += (nibble(w[b].qs, j) | q5_high(w[b].qh, j)) * y[b].qs[j];
            ysum += y[b].qs[j];
        }
        const float yd = h2f(y[b].d);
        sum += h2f(w[b].d) * yd * static_cast<float>(isum) + h2f(w[b].m) * yd * static_cast<float>(ysum);
    }
    return sum;
}

float dot_q8_0(int64_t k, const void* wv, const void* xv) {
    const auto* w = static_cast<const block_q8_0*>(wv);
    const auto* y = static_cast<const block_q8_0*>(xv);
    float sum = 0.0f;
    for (int64_t b = 0; b < k / kQK; ++b) {
        int isum = 0;
        for (int j = 0; j < kQK; ++j) isum += w[b].qs[j] * y[b].qs[j];
        sum += h2f(w[b].d) * h2f(y[b].d) * static_cast<float>(isum);
    }
    return sum;
}

// ---- k-quants against Q8_K: per super-block an integer sum of scale * q * y, and the
// per-sub-block offsets or mins applied through the activation's bsums. ----

float dot_q2_K(int64_t k, const void* wv, const void* xv) {
    const auto* w = static_cast<const block_q2_K*>(wv);
    const auto* y = static_cast<const block_q8_K*>(xv);
    float sum = 0.0f;
    for (int64_t b = 0; b < k / kQKK; ++b) {
        int isum = 0, msum = 0;
        for (int e = 0; e < kQKK; ++e) {
            const int h = e / 128, j = (e % 128) / 32, l = e % 32;
            const int q = (w[b].qs[32 * h + l] >> (2 * j)) & 3;
            isum += (w[b].scales[e / 16] & 15) * q * y[b].qs[e];
        }
        for (int s = 0; s < 16; ++s) msum += (w[b].scales[s] >> 4) * y[b].bsums[s];
        sum += h2f(w[b].d) * y[b].d * static_cast<float>(isum) - h2f(w[b].dmin) * y[b].d * static_cast<float>(msum);
    }
    return sum;
}

float dot_q3_K(int64_t k, const void* wv, const void* xv) {
    const auto* w = static_cast<const block_q3_K*>(wv);
    const auto* y = static_cast<const block_q8_K*>(xv);
    float sum = 0.0f;
    for (int64_t b = 0; b < k / kQKK; ++b) {
        int8_t sc[16];
        unpack_q3_K_scales(w[b].scales, sc);
        int isum = 0, osum = 0;
        for (int e = 0; e < kQKK; ++e) {
            const int h = e / 128, j = (e % 128) / 32, l = e % 32;
            const int low = (w[b].qs[32 * h + l] >> (2 * j)) & 3;
            const int high = (w[b].hmask[l] >> (4 * h + j)) & 1;
            isum += sc[e / 16] * (low | high << 2) * y[b].qs[e];  // q in [0, 7], value q - 4
        }
        for (int s = 0; s < 16; ++s) osum += 4 * sc[s] * y[b].bsums[s];
        sum += h2f(w[b].d) * y[b].d * static_cast<float>(isum - osum);
    }
    return sum;
}

// Q4_K and Q5_K share everything but the fifth bit.
template <bool kFifthBit, class Block>
float dot_q45_K(int64_t k, const Block* w, const block_q8_K* y) {
    float sum = 0.0f;
    for (int64_t b = 0; b < k / kQKK; ++b) {
        uint8_t sc[8], mn[8];
        unpack_q4_K_scales(w[b].scales, sc, mn);
        int isum = 0, msum = 0;
        for (int e = 0; e < kQKK; ++e) {
            const int c = e / 64, l = e % 32, sub = e / 32;
            const uint8_t byte = w[b].qs[32 * c + l];
            int q = sub % 2 == 0 ? byte & 15 : byte >> 4;
            if constexpr (kFifthBit) q |= ((w[b].qh[l] >> sub) & 1) << 4;
            isum += sc[sub] * q * y[b].qs[e];
        }
        for (int s = 0; s < 8; ++s) msum += mn[s] * (y[b].bsums[2 * s] + y[b].bsums[2 * s + 1]);
        sum += h2f(w[b].d) * y[b].d * static_cast<float>(isum) - h2f(w[b].dmin) * y[b].d * static_cast<float>(msum);
    }
    return sum;
}

float dot_q4_K(int64_t k, const void* w, const void* x) {
    return dot_q45_K<false>(k, static_cast<const block_q4_K*>(w), static_cast<const block_q8_K*>(x));
}

float dot_q5_K(int64_t k, const void* w, const void* x) {
    return dot_q45_K<true>(k, static_cast<const block_q5_K*>(w), static_cast<const block_q8_K*>(x));
}

float dot_q6_K(int64_t k, const void* wv, const void* xv) {
    const auto* w = static_cast<const block_q6_K*>(wv);
    const auto* y = static_cast<const block_q8_K*>(xv);
    float sum = 0.0f;
    for (int64_t b = 0; b < k / kQKK; ++b) {
        int isum = 0, osum = 0;
        for (int e = 0; e < kQKK; ++e) {
            const int h = e / 128, kk = (e % 128) / 32, l = e % 32;
            const uint8_t lo = w[b].ql[64 * h + 32 * (kk & 1) + l];
            const int q = (kk < 2 ? lo & 15 : lo >> 4) | ((w[b].qh[32 * h + l] >> (2 * kk)) & 3) << 4;
            isum += w[b].scales[e / 16] * q * y[b].qs[e];  // q in [0, 63], value q - 32
        }
        for (int s = 0; s < 16; ++s) osum += 32 * w[b].scales[s] * y[b].bsums[s];
        sum += h2f(w[b].d) * y[b].d * static_cast<float>(isum - osum);
    }
    return sum;
}

// ---- plain floats against F32 activations ----

float dot_f32_w(int64_t k, const void* w, const void* x) {
    return dot_f32(static_cast<const float*>(w), static_cast<const float*>(x), k);
}

float dot_f16_w(int64_t k, const void* w, const void* x) {
    return dot_f32_f16(static_cast<const float*>(x), static_cast<const uint16_t*>(w), k);
}

float dot_bf16_w(int64_t k, const void* wv, const void* xv) {
    const auto* w = static_cast<const uint16_t*>(wv);
    const auto* x = static_cast<const float*>(xv);
    float sum = 0.0f;
    for (int64_t i = 0; i < k; ++i) sum += bf16_to_fp32(w[i]) * x[i];
    return sum;
}

// A DotTileFn made of vec-dot calls.
template <VecDotFn kDot>
void tile(int64_t k, const void* w, size_t ws, int nr, const void* x, size_t xs, int nc, float* out, size_t os) {
    for (int c = 0; c < nc; ++c)
        for (int r = 0; r < nr; ++r)
            out[c * os + r] = kDot(k, static_cast<const char*>(w) + r * ws, static_cast<const char*>(x) + c * xs);
}

struct Entry {
    DType type;
    VecDotFn dot;
    DotTileFn tile;
    ActFormat act;
};

constexpr Entry kEntries[] = {
    {DType::F32, dot_f32_w, tile<dot_f32_w>, ActFormat::F32},
    {DType::F16, dot_f16_w, tile<dot_f16_w>, ActFormat::F32},
    {DType::BF16, dot_bf16_w, tile<dot_bf16_w>, ActFormat::F32},
    {DType::Q4_0, dot_q4_0, tile<dot_q4_0>, ActFormat::Q8_0},
    {DType::Q4_1, dot_q4_1, tile<dot_q4_1>, ActFormat::Q8_0},
    {DType::Q5_0, dot_q5_0, tile<dot_q5_0>, ActFormat::Q8_0},
    {DType::Q5_1, dot_q5_1, tile<dot_q5_1>, ActFormat::Q8_0},
    {DType::Q8_0, dot_q8_0, tile<dot_q8_0>, ActFormat::Q8_0},
    {DType::Q2_K, dot_q2_K, tile<dot_q2_K>, ActFormat::Q8_K},
    {DType::Q3_K, dot_q3_K, tile<dot_q3_K>, ActFormat::Q8_K},
    {DType::Q4_K, dot_q4_K, tile<dot_q4_K>, ActFormat::Q8_K},
    {DType::Q5_K, dot_q5_K, tile<dot_q5_K>, ActFormat::Q8_K},
    {DType::Q6_K, dot_q6_K, tile<dot_q6_K>, ActFormat::Q8_K},
};

}  // namespace

VecDotFn vec_dot(DType t) {
    for (const Entry& e : kEntries)
        if (e.type == t) return e.dot;
    return nullptr;
}

ActFormat act_format(DType t) {
    for (const Entry& e : kEntries)
        if (e.type == t) return e.act;
    return ActFormat::F32;
}

void quantize_row_q8_0(const float* x, void* y, int64_t k) { quantize_row_q8_0_ref(x, static_cast<block_q8_0*>(y), k); }

void quantize_row_q8_K(const float* x, void* y, int64_t k) { quantize_row_q8_K_ref(x, static_cast<block_q8_K*>(y), k); }

float dot_f32(const float* a, const float* b, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
    return sum;
}

float dot_f32_f16(const float* a, const uint16_t* b, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) sum += a[i] * fp16_to_fp32(b[i]);
    return sum;
}

void axpy_f32(float* y, float a, const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void scale_f32(float* y, float a, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] *= a;
}

void fill(KernelTable* t) {
    t->target = "SCALAR";
    for (const Entry& e : kEntries) {
        t->dot[static_cast<uint32_t>(e.type)] = e.tile;
        t->act[static_cast<uint32_t>(e.type)] = e.act;
    }
    t->quantize_q8_0 = quantize_row_q8_0;
    t->quantize_q8_K = quantize_row_q8_K;
    t->tile_rows = 1;
    t->tile_cols = 1;
    t->dot_f32 = dot_f32;
    t->axpy_f32 = axpy_f32;
    t->scale_f32 = scale_f32;
    t->attn_scores = attn_scores;
    t->attn_accumulate = attn_accumulate;
    t->scale_mask_max = scale_mask_max;
    t->exp_sum = exp_sum;
    t->f16_to_f32 = f16_to_f32;
    t->f32_to_f16 = f32_to_f16;
    t->swiglu = swiglu;
    t->geglu = geglu;
}

}  // namespace tessera::cpu::kernels::ref
