// What the CUDA backend's .cu files share: error checks, a tensor's shape as kernels take
// it, and launch helpers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "tensor/error.h"
#include "tensor/tensor.h"

namespace tessera::cuda {

// Throws tessera::Error naming the call and CUDA's reason.
[[noreturn]] void fail(cudaError_t err, const char* what);
inline void check(cudaError_t err, const char* what) {
    if (err != cudaSuccess) fail(err, what);
}
#define TESSERA_CUDA_CHECK(call) ::tessera::cuda::check((call), #call)

// A tensor as a kernel argument (by value): data, shape and byte strides.
struct View {
    char* data;
    int64_t ne[kMaxDims];
    int64_t nb[kMaxDims];
};

inline View view_of(const Tensor& t) {
    View v;
    v.data = static_cast<char*>(t.data);
    for (int i = 0; i < kMaxDims; ++i) {
        v.ne[i] = t.ne[i];
        v.nb[i] = static_cast<int64_t>(t.nb[i]);
    }
    return v;
}

inline int64_t blocks_for(int64_t n, int64_t per_block) { return (n + per_block - 1) / per_block; }

// Whether `kernel` runs sm_80 code on the current device: the device is sm_80 or newer and the
// binary holds code compiled for sm_80 or newer (a build with only an older PTX target gives
// kernels whose sm_80 parts are guarded out empty bodies). Asked once per device and kernel.
bool runs_sm80_code(const void* kernel);
// The current device's multiprocessors (32 where it cannot be asked). Asked once per device.
int multiprocessor_count();

}  // namespace tessera::cuda
