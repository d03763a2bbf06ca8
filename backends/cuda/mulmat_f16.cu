// Prompt products through half scratch: act_to_f16_kernel takes the activation rows to half
// once per product (work: [rows][kp] half), weight_to_f16_kernel<T> the weights in slices of k
// (work: [n][kc] half), and gemm_f16 adds each slice's product into y (work: its k-split
// partials). Q4_0 and Q8_0 split rows skip the weight scratch: gemm_f16_split_rows reads them
// as they are. These are the half operands the WMMA kernel of mulmat.cu rounds to, so the results
// match it up to the order of f32 summation.
#include "backends/cuda/mulmat_f16.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "backends/cuda/gemm_f16.h"
#include "backends/cuda/quant.cuh"

namespace tessera::cuda {

namespace {

// Rows of half scratch, converted 8 elements per thread. Grid: (ceil(kp / 8 / 256), rows in
// groups: min(ceil(rows / group), 65535)); a thread takes chunk c = blockIdx.x * 256 +
// threadIdx.x of rows (blockIdx.y + gridDim.y i) * group + 0 .. group - 1.
constexpr unsigned kConvertThreads = 256;
constexpr int kWeightRowsPerThread = 4;  // independent weight loads in flight per thread

dim3 convert_grid(int64_t chunks_per_row, int64_t rows, int group) {
    return dim3(static_cast<unsigned>((chunks_per_row + kConvertThreads - 1) / kConvertThreads),
                static_cast<unsigned>(std::min<int64_t>((rows + group - 1) / group, 65535)));
}

// Activation rows r < rows, elements < kp (zero past k), to half: dst row r at dst + r * kp.
// vec: b and b_stride allow float4 loads.
__global__ void __launch_bounds__(kConvertThreads)
    act_to_f16_kernel(const float* __restrict__ b, size_t b_stride, int64_t k, int64_t kp, int64_t rows, bool vec,
                      __half* __restrict__ dst) {
    const int64_t e = (static_cast<int64_t>(blockIdx.x) * kConvertThreads + threadIdx.x) * 8;
    if (e >= kp) return;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const float* src = b + r * b_stride + e;
        float v[8];
        if (vec && e + 8 <= k) {
            const float4 x0 = __ldg(reinterpret_cast<const float4*>(src));
            const float4 x1 = __ldg(reinterpret_cast<const float4*>(src) + 1);
            v[0] = x0.x, v[1] = x0.y, v[2] = x0.z, v[3] = x0.w;
            v[4] = x1.x, v[5] = x1.y, v[6] = x1.z, v[7] = x1.w;
        } else {
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = e + i < k ? __ldg(src + i) : 0.0f;
        }
        store8(dst + r * kp + e, v);
    }
}

// Elements k0 .. k0 + kc - 1 of weight rows r < n to half (zero past k): dst row r at
// dst + r * kc. k0 is a multiple of the type's block size. Rows in groups of
// kWeightRowsPerThread, all loaded before any is stored. S: split rows (quant.cuh).
template <DType T, bool S>
__global__ void __launch_bounds__(kConvertThreads)
    weight_to_f16_kernel(const uint8_t* __restrict__ w, size_t w_stride, int64_t k, int64_t k0, int64_t kc, int64_t n,
                         __half* __restrict__ dst) {
    constexpr int G = kWeightRowsPerThread;
    const int c = static_cast<int>(blockIdx.x * kConvertThreads + threadIdx.x);
    if (8 * static_cast<int64_t>(c) >= kc) return;
    for (int64_t r0 = static_cast<int64_t>(blockIdx.y) * G; r0 < n; r0 += static_cast<int64_t>(gridDim.y) * G) {
        float v[G][8];
#pragma unroll
        for (int u = 0; u < G; ++u)
            if (r0 + u < n) load_weight8<T, S>(w + (r0 + u) * w_stride, k0, c, k, v[u]);
#pragma unroll
        for (int u = 0; u < G; ++u)
            if (r0 + u < n) store8(dst + (r0 + u) * kc + 8 * c, v[u]);
    }
}

// The scratch: the activations of up to `rows` rows at a time (all of them unless that passes
// kF16ActBytes), the weights kc columns at a time, the k-split partial sums of gemm_f16.
constexpr size_t kF16ActBytes = size_t{32} << 20;
constexpr size_t kF16WeightBytes = size_t{64} << 20;
constexpr size_t kF16PartialBytes = size_t{16} << 20;  // k-split partial sums (gemm_f16)
constexpr int64_t kF16KUnit = 256;                     // weight chunk boundaries: a multiple of every block size
constexpr size_t kF16Align = 256;

struct F16Plan {
    int64_t kp = 0;    // k rounded up to kGemmF16KStep: the activation row pitch
    int64_t rows = 0;  // activation rows per conversion
    int64_t kc = 0;    // weight columns per chunk (a multiple of kF16KUnit, or kp)
    size_t act_bytes = 0, weight_bytes = 0, partial_bytes = 0;
    size_t bytes() const { return kF16Align + act_bytes + weight_bytes + partial_bytes; }
};

size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

// Empty (bytes() unused, rows == 0) for products this path does not take.
F16Plan plan_f16(DType type, int64_t k, int64_t n, int64_t m) {
    F16Plan p;
    if (type == DType::F32 || type == DType::BF16 || k <= 0 || n <= 0 || m <= 0) return p;
    // So many weight rows that one k unit passes the cap: mul_mat's WMMA kernel needs no scratch.
    if (static_cast<size_t>(n) * kF16KUnit * sizeof(__half) > kF16WeightBytes) return p;
    p.kp = (k + kGemmF16KStep - 1) / kGemmF16KStep * kGemmF16KStep;
    const int64_t fit_rows = static_cast<int64_t>(kF16ActBytes / (sizeof(__half) * p.kp)) / 128 * 128;
    p.rows = std::min(m, std::max<int64_t>(fit_rows, 128));
    const int64_t kc_max = static_cast<int64_t>(kF16WeightBytes / (sizeof(__half) * n)) / kF16KUnit * kF16KUnit;
    if (p.kp <= kc_max) {
        p.kc = p.kp;
    } else {
        const int64_t chunks = (p.kp + kc_max - 1) / kc_max;
        p.kc = ((p.kp + chunks - 1) / chunks + kF16KUnit - 1) / kF16KUnit * kF16KUnit;
    }
    p.act_bytes = round_up(static_cast<size_t>(p.rows) * p.kp * sizeof(__half), kF16Align);
    p.weight_bytes = round_up(static_cast<size_t>(n) * p.kc * sizeof(__half), kF16Align);
    p.partial_bytes = std::min(kF16PartialBytes, static_cast<size_t>(3 * p.rows * n) * sizeof(float));
    return p;
}

// Whether split rows go to the GEMM as they are (gemm_f16_split_rows); TESSERA_CUDA_PROMPT_CONVERT=1
// converts them to half in the scratch first, as every other type is.
bool stage_split_rows() {
    static const bool on = [] {
        const char* e = std::getenv("TESSERA_CUDA_PROMPT_CONVERT");
        return !(e && e[0] == '1');
    }();
    return on;
}

template <DType T, bool S>
void mul_mat_f16_typed(const F16Plan& p, const uint8_t* w, size_t w_stride, const float* b, size_t b_stride, float* y,
                       size_t y_stride, int64_t k, int64_t n, int64_t m, void* work, cudaStream_t stream) {
    const uintptr_t base = round_up(reinterpret_cast<uintptr_t>(work), kF16Align);
    __half* act = reinterpret_cast<__half*>(base);
    __half* wh = reinterpret_cast<__half*>(base + p.act_bytes);
    float* partial = reinterpret_cast<float*>(base + p.act_bytes + p.weight_bytes);
    const bool vec = reinterpret_cast<uintptr_t>(b) % 16 == 0 && b_stride % 4 == 0;
    for (int64_t m0 = 0; m0 < m; m0 += p.rows) {
        const int64_t rows = std::min(p.rows, m - m0);
        act_to_f16_kernel<<<convert_grid(p.kp / 8, rows, 1), kConvertThreads, 0, stream>>>(b + m0 * b_stride, b_stride,
                                                                                           k, p.kp, rows, vec, act);
        if constexpr (S) {
            constexpr GemmWeights kW = T == DType::Q4_0 ? GemmWeights::Q4_0 : GemmWeights::Q8_0;
            const GemmF16Plan plan = gemm_f16_plan(k, n, rows, p.partial_bytes / sizeof(float));
            if (stage_split_rows() && gemm_f16_split_rows(plan, kW, act, p.kp, w, w_stride, y + m0 * y_stride, y_stride,
                                                          k, n, rows, partial, stream))
                continue;
        }
        for (int64_t k0 = 0; k0 < p.kp; k0 += p.kc) {
            const int64_t kc = std::min(p.kc, p.kp - k0);
            weight_to_f16_kernel<T, S><<<convert_grid(kc / 8, n, kWeightRowsPerThread), kConvertThreads, 0, stream>>>(
                w, w_stride, k, k0, kc, n, wh);
            const GemmF16Plan plan = gemm_f16_plan(kc, n, rows, p.partial_bytes / sizeof(float));
            gemm_f16(plan, act + k0, p.kp, wh, kc, y + m0 * y_stride, y_stride, kc, n, rows, k0 > 0, partial, stream);
        }
    }
}

// Calls f(std::integral_constant<DType, T>{}) for the types this path takes; false for others.
template <typename F>
bool visit_half_type(DType t, F&& f) {
    // clang-format off
    switch (t) {
        case DType::F16: f(std::integral_constant<DType, DType::F16>{}); return true;
        case DType::Q4_0: f(std::integral_constant<DType, DType::Q4_0>{}); return true;
        case DType::Q4_1: f(std::integral_constant<DType, DType::Q4_1>{}); return true;
        case DType::Q5_0: f(std::integral_constant<DType, DType::Q5_0>{}); return true;
        case DType::Q5_1: f(std::integral_constant<DType, DType::Q5_1>{}); return true;
        case DType::Q8_0: f(std::integral_constant<DType, DType::Q8_0>{}); return true;
        case DType::Q2_K: f(std::integral_constant<DType, DType::Q2_K>{}); return true;
        case DType::Q3_K: f(std::integral_constant<DType, DType::Q3_K>{}); return true;
        case DType::Q4_K: f(std::integral_constant<DType, DType::Q4_K>{}); return true;
        case DType::Q5_K: f(std::integral_constant<DType, DType::Q5_K>{}); return true;
        case DType::Q6_K: f(std::integral_constant<DType, DType::Q6_K>{}); return true;
        default: return false;
    }
    // clang-format on
}

}  // namespace

size_t mul_mat_f16_work_size(DType type, int64_t k, int64_t n, int64_t m) {
    const F16Plan p = plan_f16(type, k, n, m);
    return p.rows > 0 ? p.bytes() : 0;
}

bool mul_mat_f16(DType type, bool split, const uint8_t* w, size_t w_stride, const float* b, size_t b_stride, float* y,
                 size_t y_stride, int64_t k, int64_t n, int64_t m, void* work, size_t work_size, cudaStream_t stream) {
    const F16Plan p = plan_f16(type, k, n, m);
    if (p.rows == 0 || work == nullptr || work_size < p.bytes() || !gemm_f16_available()) return false;
    return visit_half_type(type, [&](auto tag) {
        constexpr DType T = decltype(tag)::value;
        if constexpr (kSplitRows<T>) {
            if (split)
                return mul_mat_f16_typed<T, true>(p, w, w_stride, b, b_stride, y, y_stride, k, n, m, work, stream);
        }
        mul_mat_f16_typed<T, false>(p, w, w_stride, b, b_stride, y, y_stride, k, n, m, work, stream);
    });
}

}  // namespace tessera::cuda
