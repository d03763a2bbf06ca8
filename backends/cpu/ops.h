// The CPU backend's op kernels. Each computes its share (rows split by thread index) of
// one node; none allocates or throws: shapes were checked when the graph was built.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
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
    // A counter of this node's, zero when the node starts, shared by the team (null: none).
    std::atomic<int64_t>* claims = nullptr;
};

// [begin, end) of `total` items for thread ith of nth.
inline void split_rows(int64_t total, int ith, int nth, int64_t* begin, int64_t* end) {
    int64_t per = (total + nth - 1) / nth;
    *begin = std::min<int64_t>(total, per * ith);
    *end = std::min<int64_t>(total, *begin + per);
}

// Items [0, total) in runs of `run`, dealt to the team: thread ith takes run ith, then the
// next run no thread has claimed. A thread slowed down (another process on its core, a
// busier memory channel) leaves its runs to the others instead of holding the team at the
// next barrier. Without a counter, each thread takes its split_rows range. f(begin, end).
// The counter serves one dealing: an op calls this at most once per node.
template <class F>
void for_each_run(const ComputeParams& p, int64_t total, int64_t run, F&& f) {
    if (!p.claims || p.nth == 1) {
        int64_t b, e;
        split_rows(total, p.ith, p.nth, &b, &e);
        if (b < e) f(b, e);
        return;
    }
    const int64_t runs = (total + run - 1) / run;
    for (int64_t r = p.ith; r < runs; r = p.nth + p.claims->fetch_add(1, std::memory_order_relaxed))
        f(r * run, std::min(total, (r + 1) * run));
}

// Runs of about a quarter of an even share: few enough claims, enough to even out.
inline int64_t run_length(int64_t total, int nth) { return std::max<int64_t>(1, (total + 4 * nth - 1) / (4 * nth)); }

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
