// The r16 layout (repack.h): conversion both ways and the scalar reference dot products.
#include "backends/cpu/kernels/repack.h"

#include <cmath>
#include <cstring>

#include "backends/cpu/kernels/kernels.h"
#include "tensor/error.h"
#include "tensor/quant/blocks.h"

namespace tessera::cpu::kernels {

namespace {

using quant::block_q4_0;
using quant::block_q8_0;
using quant::kQK;

constexpr size_t kScaleBytes = kR16Rows * sizeof(uint16_t);

int offset_of(DType t) { return t == DType::Q4_0 ? 8 : 128; }

// Element e's byte position in an r16 block's quants, and whether it is the high nibble.
void r16_position(DType t, int row, int e, size_t* byte, bool* high) {
    if (t == DType::Q4_0) {
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
    if (k % kQK != 0 || n % kR16Rows != 0)
        throw Error("r16 layout: " + std::to_string(n) + " rows of " + std::to_string(k) +
                    " do not make whole groups of 16 rows and 32-element blocks");
}

}  // namespace

bool r16_supported(DType t) { return t == DType::Q4_0 || t == DType::Q8_0; }

size_t r16_block_bytes(DType t) { return kR16Rows * type_traits(t).type_size; }

void repack_r16(DType t, const void* src, void* dst, int64_t k, int64_t n) {
    check(t, k, n);
    const int64_t nb = k / kQK;
    const size_t bs = type_traits(t).type_size, gb = r16_block_bytes(t), row_bytes = static_cast<size_t>(nb) * bs;
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
#pragma omp parallel for schedule(static)
    for (int64_t g = 0; g < n / kR16Rows; ++g) {
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* out = d + (static_cast<size_t>(g * nb + b)) * gb;
            for (int j = 0; j < kR16Rows; ++j) {
                const uint8_t* block = s + static_cast<size_t>(g * kR16Rows + j) * row_bytes + static_cast<size_t>(b) * bs;
                std::memcpy(out + j * sizeof(uint16_t), block, sizeof(uint16_t));  // d is first in both
                uint8_t* q = out + kScaleBytes + j * 4;
                if (t == DType::Q4_0) {
                    uint8_t u[kQK];
                    for (int e = 0; e < 16; ++e) {
                        u[e] = block[2 + e] & 0x0F;
                        u[e + 16] = block[2 + e] >> 4;
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
    }
}

void unpack_r16(DType t, const void* src, void* dst, int64_t k, int64_t n) {
    check(t, k, n);
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
                if (t == DType::Q4_0) std::memset(block + 2, 0, kQK / 2);
                for (int e = 0; e < kQK; ++e) {
                    size_t pos;
                    bool high;
                    r16_position(t, j, e, &pos, &high);
                    const uint8_t q = high ? in[kScaleBytes + pos] >> 4 : in[kScaleBytes + pos] & (t == DType::Q4_0 ? 0x0F : 0xFF);
                    if (t == DType::Q4_0)
                        block[2 + (e % 16)] |= static_cast<uint8_t>(q << (e < 16 ? 0 : 4));
                    else
                        block[2 + e] = static_cast<uint8_t>(q - 128);
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
                int32_t isum = -off * sums[c * sums_stride + static_cast<size_t>(b)];
                for (int e = 0; e < kQK; ++e) {
                    size_t pos;
                    bool high;
                    r16_position(t, j, e, &pos, &high);
                    const uint8_t byte = blk[kScaleBytes + pos];
                    const int u = t == DType::Q4_0 ? (high ? byte >> 4 : byte & 0x0F) : byte;
                    isum += u * y[b].qs[e];
                }
                acc = std::fma(static_cast<float>(isum), f16[wd] * f16[y[b].d], acc);
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
    if (t == DType::Q8_0) return &dot_r16_ref_typed<DType::Q8_0>;
    return nullptr;
}

}  // namespace tessera::cpu::kernels
