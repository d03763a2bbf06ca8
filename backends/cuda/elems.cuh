// Element reads and writes that the CUDA backend's row-wise kernels share (ops.cu, rope.cu):
// F32/F16/BF16 elements, byte offsets of a view's elements and rows, Q8_0 quantization by a
// warp, and the launch size of element-wise kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "backends/cuda/common.cuh"
#include "backends/cuda/device_math.cuh"

namespace tessera::cuda::elems {

constexpr int kThreads = 256;

__device__ __forceinline__ float load_elem(const char* p, DType t) {
    if (t == DType::F32) return *reinterpret_cast<const float*>(p);
    if (t == DType::F16) return __half2float(*reinterpret_cast<const __half*>(p));
    return __bfloat162float(*reinterpret_cast<const __nv_bfloat16*>(p));
}

__device__ __forceinline__ void store_elem(char* p, DType t, float v) {
    if (t == DType::F32)
        *reinterpret_cast<float*>(p) = v;
    else if (t == DType::F16)
        *reinterpret_cast<__half*>(p) = __float2half_rn(v);
    else
        *reinterpret_cast<__nv_bfloat16*>(p) = __float2bfloat16_rn(v);
}

// Element i (logical, ne[0] fastest) of a view: its byte offset.
__device__ __forceinline__ int64_t offset_of(const View& v, int64_t i) {
    const int64_t i0 = i % v.ne[0];
    int64_t r = i / v.ne[0];
    const int64_t i1 = r % v.ne[1];
    r /= v.ne[1];
    const int64_t i2 = r % v.ne[2];
    const int64_t i3 = r / v.ne[2];
    return i0 * v.nb[0] + i1 * v.nb[1] + i2 * v.nb[2] + i3 * v.nb[3];
}

__device__ __forceinline__ int64_t row_offset(const View& v, int64_t r) {
    const int64_t i1 = r % v.ne[1];
    r /= v.ne[1];
    return i1 * v.nb[1] + (r % v.ne[2]) * v.nb[2] + (r / v.ne[2]) * v.nb[3];
}

inline int grid_for(int64_t n) { return static_cast<int>(std::min<int64_t>(blocks_for(n, kThreads), 1 << 30)); }

// One warp quantizes one block of 32 floats to Q8_0, as the CPU reference does: the scale
// is max|x| / 127 rounded to F16, values rounded to nearest (ties to even).
struct BlockQ8_0 {
    __half d;
    int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block");

__device__ __forceinline__ void quantize_q8_0_warp(float x, BlockQ8_0* y) {
    const int lane = threadIdx.x % 32;
    const float amax = warp_max(fabsf(x));
    const __half dh = __float2half_rn(amax / 127.0f);
    const float d = __half2float(dh);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    float v = fminf(fmaxf(x * id, -127.0f), 127.0f);
    y->qs[lane] = static_cast<int8_t>(__float2int_rn(v));
    if (lane == 0) y->d = dh;
}

}  // namespace tessera::cuda::elems
