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

// Programmatic dependent launches (sm_90 and newer): a kernel started by launch_dependent may
// begin while the kernel before it in the stream is finishing, so a decoding step's chain of
// small kernels does not pay a whole launch between each two. Such a kernel calls
// pdl_wait() before it touches memory the kernels before it write (first thing, here): it
// returns once those have finished and their writes are visible. pdl_trigger() lets the next
// kernel be scheduled while this one runs. Elsewhere both are no-ops and launch_dependent is an
// ordinary launch. On by default where the device has it; TESSERA_CUDA_PDL=0 turns it off.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Fetches bytes [p, p + n) from memory into L2, thread t of `threads` taking every threads-th
// 128-byte line. Kernels launched by launch_dependent call it before pdl_wait() on memory no
// kernel before them writes (weights), or may write (L2 is where writes become visible, so a
// line fetched early is still read as written): the fetch then overlaps the kernel before.
__device__ __forceinline__ void prefetch_l2(const void* p, int64_t n, int t, int threads) {
    const uintptr_t end = reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(n);
    for (uintptr_t a = (reinterpret_cast<uintptr_t>(p) & ~uintptr_t{127}) + 128 * static_cast<uintptr_t>(t); a < end;
         a += 128 * static_cast<uintptr_t>(threads))
        asm volatile("prefetch.global.L2 [%0];\n" ::"l"(a));
}

// Whether launch_dependent asks for overlap for `kernel` on the current device: an sm_90 or
// newer device running the kernel's code for sm_90 or newer (where pdl_wait is no no-op).
bool pdl_enabled(const void* kernel);

template <typename... KernelArgs, typename... Args>
void launch_dependent(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                      Args&&... args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = smem;
    config.stream = stream;
    config.attrs = attr;
    config.numAttrs = pdl_enabled(reinterpret_cast<const void*>(kernel)) ? 1 : 0;
    check(cudaLaunchKernelEx(&config, kernel, static_cast<KernelArgs>(args)...), "cudaLaunchKernelEx");
}

}  // namespace tessera::cuda
