// Decoding steps' nodes that the CUDA backend runs together, picked out of a segment's node
// order: a residual add with the RMS norm of its result; a norm, a SwiGLU or a decoding
// attention that also writes its output in the int8 form the decoding products after it read;
// products of the same
// activations in one launch; the query rotation with the key and value cache writes. A
// decoding step is a chain of small kernels, so every launch spared is time spared.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <span>

#include "tensor/tensor.h"

namespace tessera::cuda {

// What the launches of a segment share: its scratch and its stream.
struct StepScratch {
    void* work;
    size_t work_size;
    cudaStream_t stream;
};

// Whether the backend keeps this weight as split rows (quant.cuh) rather than the file's layout.
inline bool split_rows_of(const Tensor& weight) { return (weight.root()->flags & kFlagDeviceLayout) != 0; }

// Scratch bytes a flash-attention node's fused launch puts before the attention's own: the int8
// activations of the product after it.
size_t attention_acts_size(const Tensor& att);

// Runs the nodes from nodes[i] on that one fused launch (or a fused launch and the products
// it feeds) covers and returns how many ran; 0, with nothing enqueued, where none fuses at
// nodes[i] (TESSERA_CUDA_FUSE=0: only products of the same activations share a launch).
size_t run_fused(std::span<Tensor* const> nodes, size_t i, const StepScratch& scratch);

}  // namespace tessera::cuda
