// A tensor is a node of a compute graph: up to 4 dimensions (ne[i] elements, nb[i] byte
// strides, ne[0] the fastest), a type, the op that produces it and that op's inputs.
// Views (view, reshape, permute, transpose) share their source's memory and cost nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "tensor/dtype.h"

namespace tessera {

inline constexpr int kMaxDims = 4;
inline constexpr int kMaxSrc = 5;
inline constexpr int kMaxOpParams = 12;  // int32 slots; floats are stored bit-wise

enum class Op : uint8_t {
    None,  // a leaf: an input, a weight, a cache
    View,  // view, reshape, permute, transpose: no computation
    Cont,  // a contiguous copy of a (possibly strided) tensor
    GetRows,
    Add,
    Mul,
    Scale,
    RmsNorm,
    Norm,
    MulMat,
    Rope,
    SoftMax,
    FlashAttn,
    Silu,
    Gelu,
    GeluErf,
    Tanh,
    Swiglu,
    Geglu,
    Cpy,
    SetRows,
    Concat,
    Argmax,
    Count,
};

const char* op_name(Op op);
// Ops whose operands and result the graph builders require to be F32 (element-wise ops,
// activations, norms, softmax, RoPE, concat, argmax): a backend with F32 kernels for them
// supports every such node.
bool op_is_f32_only(Op op);

struct Tensor;
// What a backend's launches of `nodes` depend on: every node's and source's data pointer,
// op, type, shape, strides and parameters. Equal keys give identical launches, so a backend
// may replay what it recorded for an equal key (Vulkan command buffers, CUDA graphs).
void launch_signature(std::span<Tensor* const> nodes, std::vector<uint64_t>& key);

class Buffer;

// Leaf roles, which decide where memory comes from.
enum TensorFlags : uint8_t {
    kFlagInput = 1,   // set by the caller before each evaluation; lives in the compute buffer
    kFlagOutput = 2,  // read after evaluation: its memory is never reused within the graph
    // A weight stored in the CPU kernels' interleaved r16 layout (backends/cpu/kernels/repack.h):
    // only mul_mat reads it, as its first source; same type, shape and size as before.
    kFlagRepacked = 4,
    // A matrix product whose rows must not depend on the other rows of its batch (several
    // sequences decoded together): the CPU keeps to its own kernels, whose rows are
    // computed alike at any batch size (OpenBLAS rounds by the batch's shape).
    kFlagBatchInvariant = 8,
    // A weight a GPU backend keeps in a layout of its own (the CUDA backend's split rows,
    // backends/cuda/quant.cuh), set by its upload: only that backend reads it, by whole rows.
    kFlagDeviceLayout = 16,
    // A weight that only matrix products (as their first source) and row lookups read, whole
    // rows at a time (a model's matrices): set before its upload, it lets a backend keep the
    // weight in a layout of its own (kFlagDeviceLayout).
    kFlagProductWeight = 32,
};

struct Tensor {
    DType type = DType::F32;
    int64_t ne[kMaxDims] = {1, 1, 1, 1};
    size_t nb[kMaxDims] = {0, 0, 0, 0};

    Op op = Op::None;
    Tensor* src[kMaxSrc] = {};
    int32_t params[kMaxOpParams] = {};

    Tensor* view_src = nullptr;  // the tensor whose memory this one views (never itself a view)
    size_t view_offset = 0;

    void* data = nullptr;      // set by a buffer (leaves) or by the memory plan (nodes)
    Buffer* buffer = nullptr;  // persistent memory (weights, KV cache); null for graph memory
    // A weight kept in a layout of its own (kFlagRepacked): its bytes in the file's block
    // layout, in host memory, for copies to a backend that reads that layout (may be null).
    const void* host_blocks = nullptr;
    uint8_t flags = 0;
    int16_t backend = -1;  // index into the scheduler's backends, set when planned
    char name[48] = {};

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
    // Bytes spanned by the tensor's elements (for a contiguous tensor, its size).
    size_t n_bytes() const;
    bool is_contiguous() const;
    // ne[1..3] may be strided, but each row of ne[0] elements is contiguous.
    bool rows_contiguous() const { return nb[0] == type_traits(type).type_size; }
    // The tensor that owns the memory: the view source for views, else itself.
    Tensor* root() { return view_src ? view_src : this; }
    const Tensor* root() const { return view_src ? view_src : this; }

    void set_name(const char* n);
    float param_f(int i) const {
        float f;
        std::memcpy(&f, &params[i], sizeof f);
        return f;
    }
    void set_param_f(int i, float f) { std::memcpy(&params[i], &f, sizeof f); }

    // Address of element row (i1, i2, i3).
    char* row_ptr(int64_t i1, int64_t i2 = 0, int64_t i3 = 0) const {
        return static_cast<char*>(data) + i1 * nb[1] + i2 * nb[2] + i3 * nb[3];
    }
};

// Strides of a contiguous tensor of this type and shape.
void contiguous_strides(DType type, const int64_t ne[kMaxDims], size_t nb[kMaxDims]);

// How a node reads weights that a GPU backend keeps in a layout of its own
// (kFlagDeviceLayout): kNone, or as its first source by whole rows (kRows, the only way such
// a weight can be read; which ops may is each backend's call), or otherwise (kOther).
enum class DeviceLayoutUse { kNone, kRows, kOther };
DeviceLayoutUse device_layout_use(const Tensor& node);

// Split rows, the device layout both GPU backends give Q4_0 and Q8_0 product weights: each row
// its blocks' quants one after another, then their fp16 scales. Rows of a multiple of
// kSplitRowMultiple elements (8 blocks) keep the quants 16-byte aligned.
inline constexpr int64_t kSplitRowMultiple = 256;
inline bool split_rows_fit(DType type, int64_t row_elems) {
    return (type == DType::Q4_0 || type == DType::Q8_0) && row_elems > 0 && row_elems % kSplitRowMultiple == 0;
}

}  // namespace tessera
