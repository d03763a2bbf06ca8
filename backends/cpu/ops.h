// The CPU backend's op kernels. Each computes its share (rows split by thread index) of
// one node; none allocates or throws: shapes were checked when the graph was built.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>

#include "tensor/tensor.h"

namespace tessera::cpu {

struct ComputeParams {
    int ith = 0;  // this thread
    int nth = 1;  // threads in the team
    // This thread's scratch: `work_per_thread` bytes, 64-byte aligned.
    char* work = nullptr;
    size_t work_per_thread = 0;
    // Scratch all threads of the team share (64-byte aligned): an op that fills it must
    // separate writing from reading with a barrier, which every thread of the team reaches.
    char* shared = nullptr;
    size_t shared_size = 0;
};

// [begin, end) of `total` items for thread ith of nth.
inline void split_rows(int64_t total, int ith, int nth, int64_t* begin, int64_t* end) {
    int64_t per = (total + nth - 1) / nth;
    *begin = std::min<int64_t>(total, per * ith);
    *end = std::min<int64_t>(total, *begin + per);
}

// Scratch bytes one thread needs for this node, and bytes the team shares.
size_t work_per_thread(const Tensor& node);
size_t work_shared(const Tensor& node);

void compute_node(const Tensor& node, const ComputeParams& p);

// Per op family (ops_*.cpp).
void op_get_rows(const Tensor& node, const ComputeParams& p);
void op_binary(const Tensor& node, const ComputeParams& p);  // add, mul
void op_unary(const Tensor& node, const ComputeParams& p);   // scale, silu, gelu, gelu_erf, tanh
void op_gate(const Tensor& node, const ComputeParams& p);    // swiglu, geglu
void op_copy(const Tensor& node, const ComputeParams& p);    // cpy, cont
void op_set_rows(const Tensor& node, const ComputeParams& p);
void op_concat(const Tensor& node, const ComputeParams& p);
void op_argmax(const Tensor& node, const ComputeParams& p);
void op_norm(const Tensor& node, const ComputeParams& p);  // rms_norm, norm
void op_soft_max(const Tensor& node, const ComputeParams& p);
void op_rope(const Tensor& node, const ComputeParams& p);
void op_rope_set_rows(const Tensor& node, const ComputeParams& p);  // set_rows with src[3] (pos)
void op_mul_mat(const Tensor& node, const ComputeParams& p);
void op_flash_attn(const Tensor& node, const ComputeParams& p);
size_t flash_attn_work_per_thread(const Tensor& node);
size_t flash_attn_work_shared(const Tensor& node);

}  // namespace tessera::cpu
