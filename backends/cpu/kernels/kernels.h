// The CPU backend's SIMD kernels, reached through one table of function pointers. The
// table is filled once, for the best instruction set this CPU has (Highway's dynamic
// dispatch over the targets each kernel file is compiled for, plus our own check of the
// dot-product extensions Highway's targets do not cover: AVX-512 VNNI, AVX-VNNI), or for
// the lower one that TESSERA_CPU_TARGET names. Every kernel has a plain scalar twin in
// ref_kernels.h; tests/ops/kernel_parity_test.cpp compares the two on every target the
// machine can run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backends/cpu/kernels/repack.h"
#include "tensor/dtype.h"

namespace tessera::cpu::kernels {

// What a weight type's dot kernel wants its activation rows converted to.
enum class ActFormat : uint8_t {
    F32,   // the activation rows as they are
    Q8_0,  // block_q8_0 (the legacy 32-element formats); byte-identical to quantize_row_q8_0_ref
    Q8_K,  // block_q8_K (the k-quants); byte-identical to quantize_row_q8_K_ref
    BF16,  // bf16, rounded to nearest even (round_row_bf16): BF16 weights in the r16 layout
};

// Keys per tile of the tiled attention kernels.
inline constexpr int64_t kAttnTile = 64;

// The largest register tile a dot kernel takes in one call.
inline constexpr int kMaxTile = 4;

// A register tile of a matrix product: for r < nr, c < nc (both at most kMaxTile)
//   out[c * out_stride + r] = sum over k of W[r][k] * X[c][k]
// w: nr weight rows of k elements (k a multiple of the type's block size), w_stride bytes
// apart; x: nc activation rows in the type's ActFormat, x_stride bytes apart. Each output is
// computed by the same sequence of operations whatever the tile shape, so results do not
// depend on how rows are split between threads.
using DotTileFn = void (*)(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc,
                           float* out, size_t out_stride);

// x: k floats -> y: the activation format's blocks (k a multiple of its block size).
using QuantizeRowFn = void (*)(const float* x, void* y, int64_t k);

struct KernelTable {
    const char* target = "";  // the code path, as TESSERA_CPU_TARGET names it: "avx512_vnni", "avx2", ...
    // Per weight type (indexed by DType id); null where no fast kernel exists (the caller then
    // dequantizes the weight row and uses dot[F32]).
    DotTileFn dot[kTypeCount] = {};
    ActFormat act[kTypeCount] = {};
    // Per weight type: the r16 kernel (repack.h) of this code path, null where it has none
    // (weights are then left in the plain layout at load).
    DotR16Fn dot_r16[kTypeCount] = {};
    QuantizeRowFn quantize_q8_0 = nullptr;
    QuantizeRowFn quantize_q8_K = nullptr;
    // The tile shape the dot kernels are fastest at (rows x activation columns).
    int tile_rows = 1;
    int tile_cols = 1;

    // Row helpers (flash attention): n elements, any n.
    float (*dot_f32)(const float* a, const float* b, int64_t n) = nullptr;
    void (*axpy_f32)(float* y, float a, const float* x, int64_t n) = nullptr;  // y += a * x
    void (*scale_f32)(float* y, float a, int64_t n) = nullptr;                 // y *= a

    // Tiled attention (attn_kernels.cpp). kt: a key tile transposed, [D][kAttnTile];
    // s[r * s_stride + j] = q[r * q_stride] . column j for j < nk (columns up to nk rounded up
    // to the vector may be written too; s_stride >= kAttnTile).
    void (*attn_scores)(const float* q, size_t q_stride, int64_t nq, const float* kt, int64_t D, int64_t nk,
                        float* s, size_t s_stride) = nullptr;
    // acc[r * acc_stride + d] += sum over j < nk of w[r * w_stride + j] * v[j * Dv + d], r < nr.
    void (*attn_accumulate)(float* acc, size_t acc_stride, int64_t nr, int64_t Dv, const float* w, size_t w_stride,
                            int64_t nk, const float* v) = nullptr;
    // s[j] = s[j] * scale + mask[j] (fused) for j < n; returns the largest.
    float (*scale_mask_max)(float* s, const float* mask, int64_t n, float scale) = nullptr;
    // x[i] = exp(x[i] - m) for i < n; returns their sum.
    float (*exp_sum)(float* x, int64_t n, float m) = nullptr;
    // y[i] = x[i] as float, x in IEEE half precision.
    void (*f16_to_f32)(const uint16_t* x, float* y, int64_t n) = nullptr;
    void (*f32_to_f16)(const float* x, uint16_t* y, int64_t n) = nullptr;

    // out[i] = act(g[i]) * u[i], act SiLU or GELU (tanh form) (gate_kernels.cpp).
    void (*swiglu)(const float* g, const float* u, float* out, int64_t n) = nullptr;
    void (*geglu)(const float* g, const float* u, float* out, int64_t n) = nullptr;
};

// The table in use. The first call chooses it (reading TESSERA_CPU_TARGET); thread-safe.
const KernelTable& active();

// One selectable code path.
struct TargetInfo {
    std::string name;  // as TESSERA_CPU_TARGET spells it: "emu128", "sse4", "avx2", ...
    bool supported;    // this CPU (and OS) can run it
};

// Every code path compiled into this binary for this architecture, best first.
std::vector<TargetInfo> compiled_targets();

// Switches to the named code path ("best" restores the automatic choice). Returns false and
// leaves the table alone when the name is unknown or this CPU cannot run it; `why` then says
// which. Not safe while another thread computes: meant for start-up and tests. Forcing a lower
// path lowers Highway's choice for the whole process (it keeps one).
// TESSERA_CPU_TARGET=<name> does the same at the first use of the kernels; a name this CPU
// cannot run prints "tessera: TESSERA_CPU_TARGET=<name>: this CPU cannot run it; using <best>"
// to stderr (tests/CMakeLists.txt skips on that line) and uses the best path.
bool select_target(std::string_view name, std::string* why = nullptr);

// Features of this CPU that matter to the kernels, e.g. "AVX2 FMA F16C AVX512F ... AVX512_VNNI".
std::string cpu_feature_string();

// Bytes of one activation row of k elements in the format.
size_t act_row_size(ActFormat f, int64_t k);

// fp16 -> fp32 of every 16-bit pattern (256 KiB, built on the first call): the kernels turn a
// block's fp16 scale into a broadcast float with one load instead of a conversion and a
// shuffle, which would compete with the dot products for the same execution port on x86.
const float* fp16_table();

}  // namespace tessera::cpu::kernels
