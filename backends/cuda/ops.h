// The CUDA backend's node kernels, one launcher per op family. Each enqueues its work on
// `stream` and returns; shapes were checked when the graph was built, and the backend's
// supports() admitted only the types these take.
#pragma once

#include <cuda_runtime.h>

#include "backends/cuda/mulmat.h"
#include "tensor/tensor.h"

namespace tessera::cuda {

void op_get_rows(const Tensor& node, cudaStream_t stream);
void op_binary(const Tensor& node, cudaStream_t stream);    // add, mul
void op_unary(const Tensor& node, cudaStream_t stream);     // scale, silu, gelu, gelu_erf, tanh
void op_gate(const Tensor& node, cudaStream_t stream);      // swiglu, geglu
void op_copy(const Tensor& node, cudaStream_t stream);      // cpy, cont
void op_set_rows(const Tensor& node, cudaStream_t stream);  // also rope_set_rows (src[3] set)
// A rope node, a rope_set_rows node and a plain set_rows node that read and write disjoint
// tensors (a decoding step's queries, keys and values) in one launch; false, with nothing
// enqueued, where they do not have those forms.
bool op_rope_kv(const Tensor& rope, const Tensor& k, const Tensor& v, cudaStream_t stream);
void op_concat(const Tensor& node, cudaStream_t stream);
void op_argmax(const Tensor& node, cudaStream_t stream);
void op_norm(const Tensor& node, cudaStream_t stream);  // rms_norm (optional weight), norm
void op_soft_max(const Tensor& node, cudaStream_t stream);
void op_rope(const Tensor& node, cudaStream_t stream);
// work: flash_attn_work_size(node) bytes. With acts.qs set (where flash_attn_writes_acts(node):
// a decoding node whose contiguous output rows are whole 32-blocks), the output is also written
// in the int8 form the decoding product after it reads, viewed as [ne[0] * ne[1], rows].
void op_flash_attn(const Tensor& node, void* work, cudaStream_t stream, DecodeActs acts = {nullptr, nullptr});
size_t flash_attn_work_size(const Tensor& node);
bool flash_attn_writes_acts(const Tensor& node);

// Types a copy or a row write can take: element types convert freely, F32 rows quantize
// into Q8_0, and any type copies into itself.
bool copy_supports(DType src, DType dst);
bool set_rows_supports(DType dst);
bool flash_attn_supports(DType kv);

}  // namespace tessera::cuda
