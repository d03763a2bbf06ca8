// What the CUDA matrix-product files (mulmat.cu, mulmat_decode.cu) share: the weight types as
// compile-time tags, split rows as a compile-time flag, and the regime boundary.
#pragma once

#include <cstdint>
#include <type_traits>

#include "backends/cuda/quant.cuh"
#include "tensor/dtype.h"

namespace tessera::cuda {

inline constexpr int kWarp = 32;

template <DType T>
struct TypeTag {
    static constexpr DType value = T;
};

// Calls f(TypeTag<T>{}) with t as a compile-time type; false for a type the products lack.
template <typename F>
bool visit_type(DType t, F&& f) {
    // clang-format off
    switch (t) {
        case DType::F32: f(TypeTag<DType::F32>{}); return true;
        case DType::F16: f(TypeTag<DType::F16>{}); return true;
        case DType::BF16: f(TypeTag<DType::BF16>{}); return true;
        case DType::Q4_0: f(TypeTag<DType::Q4_0>{}); return true;
        case DType::Q4_1: f(TypeTag<DType::Q4_1>{}); return true;
        case DType::Q5_0: f(TypeTag<DType::Q5_0>{}); return true;
        case DType::Q5_1: f(TypeTag<DType::Q5_1>{}); return true;
        case DType::Q8_0: f(TypeTag<DType::Q8_0>{}); return true;
        case DType::Q2_K: f(TypeTag<DType::Q2_K>{}); return true;
        case DType::Q3_K: f(TypeTag<DType::Q3_K>{}); return true;
        case DType::Q4_K: f(TypeTag<DType::Q4_K>{}); return true;
        case DType::Q5_K: f(TypeTag<DType::Q5_K>{}); return true;
        case DType::Q6_K: f(TypeTag<DType::Q6_K>{}); return true;
        default: return false;
    }
    // clang-format on
}

// Calls f(std::true_type{}) where split is set and T has split rows (quant.cuh), else
// f(std::false_type{}).
template <DType T, typename F>
void with_split(bool split, F&& f) {
    if constexpr (kSplitRows<T>) {
        if (split) return f(std::true_type{});
    }
    f(std::false_type{});
}

__host__ __device__ constexpr bool is_float_type(DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

__device__ __forceinline__ int64_t clamp_row(int64_t r, int64_t last) { return r < last ? r : last; }

inline constexpr int64_t kMmvMaxRows = 8;  // activation rows up to which products take the decode kernels

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace tessera::cuda
