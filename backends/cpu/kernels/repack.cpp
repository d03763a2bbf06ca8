// The r16 layout (repack.h): conversion both ways and the scalar reference dot products.
#include "backends/cpu/kernels/repack.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#include "backends/cpu/kernels/kernels.h"
#include "backends/cpu/kernels/kquant_scales.h"
#include "tensor/error.h"
#include "tensor/fp16.h"
#include "tensor/quant/blocks.h"

namespace {

// Runs f(g) for g in [0, n) on the machine's cores, a contiguous range per thread. Plain
// threads, not OpenMP: a model loads on one thread and may decode on another, and an OpenMP
// team left on the loading thread makes libgomp count twice the threads it manages, so the
// decoding team stops spinning at its barriers (a futex sleep per graph node).
template <class F>
void for_each_group(int64_t n, F&& f) {
    const int64_t nth = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, std::max<int64_t>(n / 4, 1));
    if (nth == 1) {
        for (int64_t g = 0; g < n; ++g) f(g);
        return;
    }
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(nth));
    try {
        for (int64_t t = 0; t < nth; ++t)
            threads.emplace_back([&, t] {
                for (int64_t g = n * t / nth; g < n * (t + 1) / nth; ++g) f(g);
            });
    } catch (...) {  // a thread that could not start (out of memory): the started ones finish first
        for (std::thread& th : threads) th.join();
        throw;
    }
    for (std::thread& th : threads) th.join();
}

}  // namespace

namespace tessera::cpu::kernels {

namespace {

using quant::block_q4_0;
using quant::block_q4_K;
using quant::block_q8_0;
using quant::block_q8_K;
using quant::kQK;
using quant::kQKK;

// Q4_K group block: offsets of its parts.
constexpr size_t kKDmin = 32, kKScales = 64, kKMins = 192, kKQuants = 320, kKBlock = 2368;

// The unsigned 4-bit quant of element e (0..255) of a plain Q4_K block.
uint8_t q4k_quant(const block_q4_K& b, int e) {
    const int c = e / 64, in = e % 64;
    return in < 32 ? b.qs[32 * c + in] & 0x0F : b.qs[32 * c + in - 32] >> 4;
}

// Byte position of element e of row j in a Q4_K group block's quants, and its nibble.
void q4k_position(int j, int e, size_t* byte, bool* high) {
    const int s = e / 32, in = e % 32, t = in / 8, i = in % 8;
    *byte = kKQuants + static_cast<size_t>((4 * s + t) * 64 + 4 * j + i % 4);
    *high = i >= 4;
}

void repack_q4_K(const uint8_t* src, uint8_t* dst, int64_t k, int64_t n) {
    const int64_t nb = k / kQKK;
    const size_t row_bytes = static_cast<size_t>(nb) * sizeof(block_q4_K);
    for_each_group(n / kR16Rows, [&](int64_t g) {
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* out = dst + static_cast<size_t>(g * nb + b) * kKBlock;
            std::memset(out, 0, kKBlock);
            for (int j = 0; j < kR16Rows; ++j) {
                const auto& blk = *reinterpret_cast<const block_q4_K*>(src + static_cast<size_t>(g * kR16Rows + j) * row_bytes +
                                                                       static_cast<size_t>(b) * sizeof(block_q4_K));
                std::memcpy(out + 2 * j, &blk.d, 2);
                std::memcpy(out + kKDmin + 2 * j, &blk.dmin, 2);
                uint8_t sc[8], mn[8];
                unpack_q4_K_scales(blk.scales, sc, mn);
                for (int s = 0; s < 8; ++s) {
                    out[kKScales + 16 * s + j] = sc[s];
                    out[kKMins + 32 * (s / 2) + 2 * j + s % 2] = mn[s];
                }
                for (int e = 0; e < kQKK; ++e) {
                    size_t pos;
                    bool high;
                    q4k_position(j, e, &pos, &high);
                    out[pos] |= static_cast<uint8_t>(q4k_quant(blk, e) << (high ? 4 : 0));
                }
            }
        }
    });
}

void unpack_q4_K(const uint8_t* src, uint8_t* dst, int64_t k, int64_t n) {
    const int64_t nb = k / kQKK;
    const size_t row_bytes = static_cast<size_t>(nb) * sizeof(block_q4_K);
    for (int64_t g = 0; g < n / kR16Rows; ++g) {
        for (int64_t b = 0; b < nb; ++b) {
            const uint8_t* in = src + static_cast<size_t>(g * nb + b) * kKBlock;
            for (int j = 0; j < kR16Rows; ++j) {
                auto& blk = *reinterpret_cast<block_q4_K*>(dst + static_cast<size_t>(g * kR16Rows + j) * row_bytes +
                                                          static_cast<size_t>(b) * sizeof(block_q4_K));
                std::memcpy(&blk.d, in + 2 * j, 2);
                std::memcpy(&blk.dmin, in + kKDmin + 2 * j, 2);
                uint8_t sc[8], mn[8];
                for (int s = 0; s < 8; ++s) {
                    sc[s] = in[kKScales + 16 * s + j];
                    mn[s] = in[kKMins + 32 * (s / 2) + 2 * j + s % 2];
                }
                for (int i = 0; i < 4; ++i) {
                    blk.scales[i] = static_cast<uint8_t>((sc[i] & 63) | (sc[i + 4] >> 4) << 6);
                    blk.scales[i + 4] = static_cast<uint8_t>((mn[i] & 63) | (mn[i + 4] >> 4) << 6);
                    blk.scales[i + 8] = static_cast<uint8_t>((sc[i + 4] & 15) | (mn[i + 4] & 15) << 4);
                }
                std::memset(blk.qs, 0, sizeof blk.qs);
                for (int e = 0; e < kQKK; ++e) {
                    size_t pos;
                    bool high;
                    q4k_position(j, e, &pos, &high);
                    const uint8_t q = high ? in[pos] >> 4 : in[pos] & 0x0F;
                    const int c = e / 64, w = e % 64;
                    if (w < 32) blk.qs[32 * c + w] |= q;
                    else blk.qs[32 * c + w - 32] |= static_cast<uint8_t>(q << 4);
                }
            }
        }
    }
}

// The Q4_K twin: per row and block, total = sum_s scale_s * sum(q * y) and
// mins = sum_s min_s * (sum of y over sub-block s), then
// acc = fma(total, d * yd, acc); acc = fma(-mins, dmin * yd, acc).
void dot_r16_q4_K_ref(int64_t k, const void* w, const void* x, size_t x_stride, int nc, float* out,
                      size_t out_stride) {
    const int64_t nb = k / kQKK;
    const float* f16 = fp16_table();
    const auto* wp = static_cast<const uint8_t*>(w);
    for (int c = 0; c < nc; ++c) {
        const auto* y = reinterpret_cast<const block_q8_K*>(static_cast<const uint8_t*>(x) + c * x_stride);
        for (int j = 0; j < kR16Rows; ++j) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; ++b) {
                const uint8_t* blk = wp + static_cast<size_t>(b) * kKBlock;
                uint16_t d, dmin;
                std::memcpy(&d, blk + 2 * j, 2);
                std::memcpy(&dmin, blk + kKDmin + 2 * j, 2);
                int32_t total = 0, mins = 0;
                for (int s = 0; s < 8; ++s) {
                    int32_t isum = 0;
                    for (int e = 32 * s; e < 32 * s + 32; ++e) {
                        size_t pos;
                        bool high;
                        q4k_position(j, e, &pos, &high);
                        isum += (high ? blk[pos] >> 4 : blk[pos] & 0x0F) * y[b].qs[e];
                    }
                    total += blk[kKScales + 16 * s + j] * isum;
                    mins += blk[kKMins + 32 * (s / 2) + 2 * j + s % 2] * (y[b].bsums[2 * s] + y[b].bsums[2 * s + 1]);
                }
                acc = std::fma(static_cast<float>(total), f16[d] * y[b].d, acc);
                acc = std::fma(-static_cast<float>(mins), f16[dmin] * y[b].d, acc);
            }
            out[c * out_stride + static_cast<size_t>(j)] = acc;
        }
    }
}

// Q6_K group block (3360 bytes, the 16 rows' plain bytes exactly): offsets of its parts.
constexpr size_t kQ6Scales = 32, kQ6Low = 288, kQ6High = 2336, kQ6Block = 3360;

// The unsigned 6-bit quant (0..63) of element e (0..255) of a plain Q6_K block.
uint8_t q6k_quant(const quant::block_q6_K& b, int e) {
    const int h = e / 128, l = e % 128, quarter = l / 32, li = l % 32;
    const uint8_t low = b.ql[64 * h + 32 * (quarter & 1) + li];
    const uint8_t nib = quarter >= 2 ? low >> 4 : low & 0x0F;
    return static_cast<uint8_t>(nib | ((b.qh[32 * h + li] >> (2 * quarter)) & 3) << 4);
}

// Where element e of row j sits in a Q6_K group block: the byte of its low 4 bits (and
// whether they are the high nibble), and the byte and shift of its top 2 bits. Sub-block s
// (elements 16 s ..) has low-bit vectors 2 s, 2 s + 1 and top-bit vector s; chunk t of 4
// elements (t = e / 4) takes the low or high nibbles of vector t / 2 and bit pair t % 4 of
// the top bits.
void q6k_position(int j, int e, size_t* low, bool* high_nibble, size_t* top, int* shift) {
    const int t = e / 4, i = e % 4;
    *low = kQ6Low + static_cast<size_t>((t / 2) * 64 + 4 * j + i);
    *high_nibble = t % 2 == 1;
    *top = kQ6High + static_cast<size_t>((t / 4) * 64 + 4 * j + i);
    *shift = 2 * (t % 4);
}

uint8_t q6k_r16_quant(const uint8_t* blk, int j, int e) {
    size_t low, top;
    bool hn;
    int shift;
    q6k_position(j, e, &low, &hn, &top, &shift);
    const uint8_t nib = hn ? blk[low] >> 4 : blk[low] & 0x0F;
    return static_cast<uint8_t>(nib | ((blk[top] >> shift) & 3) << 4);
}

void repack_q6_K(const uint8_t* src, uint8_t* dst, int64_t k, int64_t n) {
    const int64_t nb = k / kQKK;
    const size_t row_bytes = static_cast<size_t>(nb) * sizeof(quant::block_q6_K);
    for_each_group(n / kR16Rows, [&](int64_t g) {
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* out = dst + static_cast<size_t>(g * nb + b) * kQ6Block;
            std::memset(out, 0, kQ6Block);
            for (int j = 0; j < kR16Rows; ++j) {
                const auto& blk = *reinterpret_cast<const quant::block_q6_K*>(
                    src + static_cast<size_t>(g * kR16Rows + j) * row_bytes + static_cast<size_t>(b) * sizeof(quant::block_q6_K));
                std::memcpy(out + 2 * j, &blk.d, 2);
                for (int s = 0; s < 16; ++s) out[kQ6Scales + 16 * s + j] = static_cast<uint8_t>(blk.scales[s]);
                for (int e = 0; e < kQKK; ++e) {
                    size_t low, top;
                    bool hn;
                    int shift;
                    q6k_position(j, e, &low, &hn, &top, &shift);
                    const uint8_t q = q6k_quant(blk, e);
                    out[low] |= static_cast<uint8_t>((q & 0x0F) << (hn ? 4 : 0));
                    out[top] |= static_cast<uint8_t>((q >> 4) << shift);
                }
            }
        }
    });
}

void unpack_q6_K(const uint8_t* src, uint8_t* dst, int64_t k, int64_t n) {
    const int64_t nb = k / kQKK;
    const size_t row_bytes = static_cast<size_t>(nb) * sizeof(quant::block_q6_K);
    for (int64_t g = 0; g < n / kR16Rows; ++g) {
        for (int64_t b = 0; b < nb; ++b) {
            const uint8_t* in = src + static_cast<size_t>(g * nb + b) * kQ6Block;
            for (int j = 0; j < kR16Rows; ++j) {
                auto& blk = *reinterpret_cast<quant::block_q6_K*>(dst + static_cast<size_t>(g * kR16Rows + j) * row_bytes +
                                                                  static_cast<size_t>(b) * sizeof(quant::block_q6_K));
                std::memcpy(&blk.d, in + 2 * j, 2);
                for (int s = 0; s < 16; ++s) blk.scales[s] = static_cast<int8_t>(in[kQ6Scales + 16 * s + j]);
                std::memset(blk.ql, 0, sizeof blk.ql);
                std::memset(blk.qh, 0, sizeof blk.qh);
                for (int e = 0; e < kQKK; ++e) {
                    const uint8_t q = q6k_r16_quant(in, j, e);
                    const int h = e / 128, l = e % 128, quarter = l / 32, li = l % 32;
                    blk.ql[64 * h + 32 * (quarter & 1) + li] |= static_cast<uint8_t>((q & 0x0F) << (quarter >= 2 ? 4 : 0));
                    blk.qh[32 * h + li] |= static_cast<uint8_t>((q >> 4) << (2 * quarter));
                }
            }
        }
    }
}

// The Q6_K twin: per row and block, total = sum_s scale_s * (sum(q * y) - 32 * bsum_s) over
// the 16 sub-blocks of 16, then acc = fma(total, d * yd, acc).
void dot_r16_q6_K_ref(int64_t k, const void* w, const void* x, size_t x_stride, int nc, float* out,
                      size_t out_stride) {
    const int64_t nb = k / kQKK;
    const float* f16 = fp16_table();
    const auto* wp = static_cast<const uint8_t*>(w);
    for (int c = 0; c < nc; ++c) {
        const auto* y = reinterpret_cast<const block_q8_K*>(static_cast<const uint8_t*>(x) + c * x_stride);
        for (int j = 0; j < kR16Rows; ++j) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; ++b) {
                const uint8_t* blk = wp + static_cast<size_t>(b) * kQ6Block;
                uint16_t d;
                std::memcpy(&d, blk + 2 * j, 2);
                int32_t total = 0;
                for (int s = 0; s < 16; ++s) {
                    int32_t isum = -32 * y[b].bsums[s];
                    for (int e = 16 * s; e < 16 * s + 16; ++e) isum += q6k_r16_quant(blk, j, e) * y[b].qs[e];
                    total += static_cast<int8_t>(blk[kQ6Scales + 16 * s + j]) * isum;
                }
                acc = std::fma(static_cast<float>(total), f16[d] * y[b].d, acc);
            }
            out[c * out_stride + static_cast<size_t>(j)] = acc;
        }
    }
}

constexpr size_t kScaleBytes = kR16Rows * sizeof(uint16_t);

// The legacy 32-element types: Q4_0 and Q8_0 (scales, quants), Q4_1 (scales, mins, quants).
bool is_4bit(DType t) { return t == DType::Q4_0 || t == DType::Q4_1; }
int offset_of(DType t) { return t == DType::Q4_0 ? 8 : t == DType::Q4_1 ? 0 : 128; }
size_t quants_at(DType t) { return t == DType::Q4_1 ? 2 * kScaleBytes : kScaleBytes; }

// Element e's byte position in an r16 block's quants, and whether it is the high nibble.
void r16_position(DType t, int row, int e, size_t* byte, bool* high) {
    if (is_4bit(t)) {
        const int chunk = e / 8, in = e % 8;
        *byte = static_cast<size_t>(chunk * 64 + row * 4 + in % 4);
        *high = in >= 4;
    } else {
        *byte = static_cast<size_t>((e / 4) * 64 + row * 4 + e % 4);
        *high = false;
    }
}

void check(DType t, int64_t k, int64_t n) {
    if (!r16_supported(t)) throw Error("r16 layout: unsupported type " + std::string(type_name(t)));
    if (k % type_traits(t).block_size != 0 || n % kR16Rows != 0 || (t == DType::BF16 && k % 2 != 0))
        throw Error("r16 layout: " + std::to_string(n) + " rows of " + std::to_string(k) +
                    " do not make whole groups of 16 rows and 32-element blocks");
}

// F16 and F32 (E = 1): element i of the 16 rows of a group side by side (32 or 64 bytes per
// i). BF16 (E = 2): pair p of the 16 rows side by side, row j's two elements at 2 j (in 16-bit
// units), 32 units per pair.
template <class T, int E>
void repack_interleaved(const T* src, T* dst, int64_t k, int64_t n, bool to_r16) {
    for_each_group(n / kR16Rows, [&](int64_t g) {
        for (int j = 0; j < kR16Rows; ++j) {
            const size_t row = static_cast<size_t>(g * kR16Rows + j) * static_cast<size_t>(k);
            const size_t group = static_cast<size_t>(g * kR16Rows) * static_cast<size_t>(k);
            for (int64_t i = 0; i < k; ++i) {
                const size_t r16 = group + static_cast<size_t>(i / E) * E * kR16Rows + E * static_cast<size_t>(j) +
                                   static_cast<size_t>(i % E);
                if (to_r16) dst[r16] = src[row + static_cast<size_t>(i)];
                else dst[row + static_cast<size_t>(i)] = src[r16];
            }
        }
    });
}

// The F16 and F32 twin: even = fma(w[j][i], x[c][i], even) over the even i in order, odd
// likewise over the odd i; the result is even + odd.
template <class T>
void dot_r16_float_ref(int64_t k, const void* w, const void* x, size_t x_stride, int nc, float* out,
                       size_t out_stride) {
    const float* f16 = fp16_table();
    const auto* wp = static_cast<const T*>(w);
    const auto weight = [&](size_t i) {
        if constexpr (sizeof(T) == 2) return f16[wp[i]];
        else return wp[i];
    };
    for (int c = 0; c < nc; ++c) {
        const auto* xr = reinterpret_cast<const float*>(static_cast<const uint8_t*>(x) + c * x_stride);
        for (int j = 0; j < kR16Rows; ++j) {
            float sum[2] = {0.0f, 0.0f};
            for (int64_t i = 0; i < k; ++i)
                sum[i % 2] = std::fma(weight(static_cast<size_t>(i * kR16Rows + j)), xr[i], sum[i % 2]);
            out[c * out_stride + static_cast<size_t>(j)] = sum[0] + sum[1];
        }
    }
}

// vdpbf16ps's arithmetic: bf16 inputs with a zero exponent read as zero, and a sum that
// falls below the smallest normal float is flushed to zero.
float bf16_daz(uint16_t h) { return (h & 0x7f80u) == 0 ? 0.0f : bf16_to_fp32(h); }
float add_ftz(float acc, float product) {
    const float s = acc + product;
    return std::fabs(s) < std::numeric_limits<float>::min() ? std::copysign(0.0f, s) : s;
}

// The BF16 twin: per pair p, acc += w1 * x1, then acc += w0 * x0 (each product exact in
// float, each sum rounded once), the even pairs into one sum and the odd ones into
// another; the result is even + odd.
void dot_r16_bf16_ref(int64_t k, const void* w, const void* x, size_t x_stride, int nc, float* out,
                      size_t out_stride) {
    const auto* wp = static_cast<const uint16_t*>(w);
    for (int c = 0; c < nc; ++c) {
        const auto* xr = reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(x) + c * x_stride);
        for (int j = 0; j < kR16Rows; ++j) {
            float sum[2] = {0.0f, 0.0f};
            for (int64_t p = 0; p < k / 2; ++p) {
                const uint16_t* pair = wp + p * 2 * kR16Rows + 2 * j;
                float& s = sum[p % 2];
                s = add_ftz(s, bf16_daz(pair[1]) * bf16_daz(xr[2 * p + 1]));
                s = add_ftz(s, bf16_daz(pair[0]) * bf16_daz(xr[2 * p]));
            }
            out[c * out_stride + static_cast<size_t>(j)] = sum[0] + sum[1];
        }
    }
}

}  // namespace

bool r16_supported(DType t) {
    return t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q8_0 || t == DType::Q4_K || t == DType::Q6_K || t == DType::F16 ||
           t == DType::BF16 || t == DType::F32;
}

bool r16_fits(DType t, int64_t k, int64_t n) {
    return r16_supported(t) && n % kR16Rows == 0 && k % type_traits(t).block_size == 0 && (t != DType::BF16 || k % 2 == 0);
}

bool r16_uses_bf16(DType t) { return t == DType::BF16; }

void round_row_bf16(const float* x, uint16_t* y, int64_t k) {
    for (int64_t i = 0; i < k; ++i) y[i] = fp32_to_bf16(x[i]);
}

size_t r16_block_bytes(DType t) { return t == DType::Q4_K ? kKBlock : kR16Rows * type_traits(t).type_size; }

size_t r16_bytes(DType t, int64_t k, int64_t n) {
    return static_cast<size_t>(n / kR16Rows) * static_cast<size_t>(k / type_traits(t).block_size) * r16_block_bytes(t);
}

bool r16_uses_q8_K(DType t) { return t == DType::Q4_K || t == DType::Q6_K; }

bool r16_uses_f32(DType t) { return t == DType::F16 || t == DType::F32; }

void repack_r16(DType t, const void* src, void* dst, int64_t k, int64_t n) {
    check(t, k, n);
    if (t == DType::Q4_K) return repack_q4_K(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), k, n);
    if (t == DType::Q6_K) return repack_q6_K(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), k, n);
    if (t == DType::F16) return repack_interleaved<uint16_t, 1>(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), k, n, true);
    if (t == DType::F32) return repack_interleaved<float, 1>(static_cast<const float*>(src), static_cast<float*>(dst), k, n, true);
    if (t == DType::BF16) return repack_interleaved<uint16_t, 2>(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), k, n, true);
    const int64_t nb = k / kQK;
    const size_t bs = type_traits(t).type_size, gb = r16_block_bytes(t), row_bytes = static_cast<size_t>(nb) * bs;
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for_each_group(n / kR16Rows, [&](int64_t g) {
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* out = d + (static_cast<size_t>(g * nb + b)) * gb;
            for (int j = 0; j < kR16Rows; ++j) {
                const uint8_t* block = s + static_cast<size_t>(g * kR16Rows + j) * row_bytes + static_cast<size_t>(b) * bs;
                std::memcpy(out + j * sizeof(uint16_t), block, sizeof(uint16_t));  // d is first in every type
                if (t == DType::Q4_1) std::memcpy(out + kScaleBytes + j * sizeof(uint16_t), block + 2, sizeof(uint16_t));
                uint8_t* q = out + quants_at(t) + j * 4;
                if (is_4bit(t)) {
                    const uint8_t* qs = block + (bs - kQK / 2);
                    uint8_t u[kQK];
                    for (int e = 0; e < 16; ++e) {
                        u[e] = qs[e] & 0x0F;
                        u[e + 16] = qs[e] >> 4;
                    }
                    for (int c = 0; c < 4; ++c)
                        for (int i = 0; i < 4; ++i)
                            q[c * 64 + i] = static_cast<uint8_t>(u[8 * c + i] | u[8 * c + 4 + i] << 4);
                } else {
                    for (int c = 0; c < 8; ++c)
                        for (int i = 0; i < 4; ++i) q[c * 64 + i] = static_cast<uint8_t>(block[2 + 4 * c + i] ^ 0x80);
                }
            }
        }
    });
}

void unpack_r16(DType t, const void* src, void* dst, int64_t k, int64_t n) {
    check(t, k, n);
    if (t == DType::Q4_K) return unpack_q4_K(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), k, n);
    if (t == DType::Q6_K) return unpack_q6_K(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), k, n);
    if (t == DType::F16) return repack_interleaved<uint16_t, 1>(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), k, n, false);
    if (t == DType::F32) return repack_interleaved<float, 1>(static_cast<const float*>(src), static_cast<float*>(dst), k, n, false);
    if (t == DType::BF16) return repack_interleaved<uint16_t, 2>(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), k, n, false);
    const int64_t nb = k / kQK;
    const size_t bs = type_traits(t).type_size, gb = r16_block_bytes(t), row_bytes = static_cast<size_t>(nb) * bs;
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t g = 0; g < n / kR16Rows; ++g) {
        for (int64_t b = 0; b < nb; ++b) {
            const uint8_t* in = s + static_cast<size_t>(g * nb + b) * gb;
            for (int j = 0; j < kR16Rows; ++j) {
                uint8_t* block = d + static_cast<size_t>(g * kR16Rows + j) * row_bytes + static_cast<size_t>(b) * bs;
                std::memcpy(block, in + j * sizeof(uint16_t), sizeof(uint16_t));
                if (t == DType::Q4_1) std::memcpy(block + 2, in + kScaleBytes + j * sizeof(uint16_t), sizeof(uint16_t));
                uint8_t* qs = block + (bs - (is_4bit(t) ? kQK / 2 : kQK));
                if (is_4bit(t)) std::memset(qs, 0, kQK / 2);
                const uint8_t* iq = in + quants_at(t);
                for (int e = 0; e < kQK; ++e) {
                    size_t pos;
                    bool high;
                    r16_position(t, j, e, &pos, &high);
                    const uint8_t q = high ? iq[pos] >> 4 : iq[pos] & (is_4bit(t) ? 0x0F : 0xFF);
                    if (is_4bit(t))
                        qs[e % 16] |= static_cast<uint8_t>(q << (e < 16 ? 0 : 4));
                    else
                        qs[e] = static_cast<uint8_t>(q - 128);
                }
            }
        }
    }
}

void act_block_sums(const void* x, int32_t* sums, int64_t k) {
    const auto* y = static_cast<const block_q8_0*>(x);
    for (int64_t b = 0; b < k / kQK; ++b) {
        int32_t s = 0;
        for (int e = 0; e < kQK; ++e) s += y[b].qs[e];
        sums[b] = s;
    }
}

void dot_r16_ref(DType t, int64_t k, const void* w, const void* x, size_t x_stride, const int32_t* sums,
                 size_t sums_stride, int nc, float* out, size_t out_stride) {
    if (t == DType::Q4_K) return dot_r16_q4_K_ref(k, w, x, x_stride, nc, out, out_stride);
    if (t == DType::Q6_K) return dot_r16_q6_K_ref(k, w, x, x_stride, nc, out, out_stride);
    if (t == DType::F16) return dot_r16_float_ref<uint16_t>(k, w, x, x_stride, nc, out, out_stride);
    if (t == DType::F32) return dot_r16_float_ref<float>(k, w, x, x_stride, nc, out, out_stride);
    if (t == DType::BF16) return dot_r16_bf16_ref(k, w, x, x_stride, nc, out, out_stride);
    const int64_t nb = k / kQK;
    const size_t gb = r16_block_bytes(t);
    const int off = offset_of(t);
    const float* f16 = fp16_table();
    const auto* wp = static_cast<const uint8_t*>(w);
    for (int c = 0; c < nc; ++c) {
        const auto* y = reinterpret_cast<const block_q8_0*>(static_cast<const uint8_t*>(x) + c * x_stride);
        for (int j = 0; j < kR16Rows; ++j) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; ++b) {
                const uint8_t* blk = wp + static_cast<size_t>(b) * gb;
                uint16_t wd;
                std::memcpy(&wd, blk + j * sizeof(uint16_t), sizeof wd);
                const int32_t ysum = sums[c * sums_stride + static_cast<size_t>(b)];
                int32_t isum = -off * ysum;
                for (int e = 0; e < kQK; ++e) {
                    size_t pos;
                    bool high;
                    r16_position(t, j, e, &pos, &high);
                    const uint8_t byte = blk[quants_at(t) + pos];
                    const int u = is_4bit(t) ? (high ? byte >> 4 : byte & 0x0F) : byte;
                    isum += u * y[b].qs[e];
                }
                acc = std::fma(static_cast<float>(isum), f16[wd] * f16[y[b].d], acc);
                if (t == DType::Q4_1) {  // the mins: m * yd * sum(y)
                    uint16_t wm;
                    std::memcpy(&wm, blk + kScaleBytes + j * sizeof(uint16_t), sizeof wm);
                    acc = std::fma(static_cast<float>(ysum), f16[wm] * f16[y[b].d], acc);
                }
            }
            out[c * out_stride + static_cast<size_t>(j)] = acc;
        }
    }
}

namespace {
template <DType T>
void dot_r16_ref_typed(int64_t k, const void* w, const void* x, size_t x_stride, const int32_t* sums,
                       size_t sums_stride, int nc, float* out, size_t out_stride) {
    dot_r16_ref(T, k, w, x, x_stride, sums, sums_stride, nc, out, out_stride);
}
}  // namespace

DotR16Fn dot_r16_ref_fn(DType t) {
    if (t == DType::Q4_0) return &dot_r16_ref_typed<DType::Q4_0>;
    if (t == DType::Q4_1) return &dot_r16_ref_typed<DType::Q4_1>;
    if (t == DType::Q8_0) return &dot_r16_ref_typed<DType::Q8_0>;
    if (t == DType::Q4_K) return &dot_r16_ref_typed<DType::Q4_K>;
    if (t == DType::Q6_K) return &dot_r16_ref_typed<DType::Q6_K>;
    if (t == DType::F16) return &dot_r16_ref_typed<DType::F16>;
    if (t == DType::F32) return &dot_r16_ref_typed<DType::F32>;
    if (t == DType::BF16) return &dot_r16_ref_typed<DType::BF16>;
    return nullptr;
}

}  // namespace tessera::cpu::kernels
