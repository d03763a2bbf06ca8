// Device helpers the CUDA backend's kernels share: warp and block reductions, the gated
// activations' functions, and the int8 format the decoding products read their activations in.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace tessera::cuda {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum (or max) over the block; every thread gets the result. `scratch`: 32 floats.
template <bool kMax>
__device__ float block_reduce(float v, float* scratch) {
    v = kMax ? warp_max(v) : warp_sum(v);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = (blockDim.x + 31) / 32;
    __syncthreads();  // scratch may still be read by a previous reduction
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : (kMax ? -INFINITY : 0.0f);
    return kMax ? warp_max(v) : warp_sum(v);
}

__device__ __forceinline__ float gelu_tanh(float x) {
    const float k = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}
__device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f)); }
__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

// The decoding products' activations (mulmat.cu): each 32-element block of a row as int8
// q = round(x * 127 / amax), with {d = amax / 127, d * sum(q)}. Called by a whole warp, lane l
// holding element l of the block: lane l writes qs[l], lane 0 writes *ds.
__device__ __forceinline__ void quantize_block32(float x, int8_t* qs, float2* ds) {
    const int lane = threadIdx.x % 32;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    // One warp reduction instruction each for the maximum (the bits of non-negative floats
    // order as the floats do) and the sum, where shuffles take five steps.
    const float amax = __uint_as_float(__reduce_max_sync(0xffffffffu, __float_as_uint(fabsf(x))));
#else
    const float amax = warp_max(fabsf(x));
#endif
    const float d = amax / 127.0f;
    const int q = amax > 0.0f ? __float2int_rn(x * (127.0f / amax)) : 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const int sum = __reduce_add_sync(0xffffffffu, q);
#else
    int sum = q;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
#endif
    qs[lane] = static_cast<int8_t>(q);
    if (lane == 0) *ds = make_float2(d, d * static_cast<float>(sum));
}

}  // namespace tessera::cuda
